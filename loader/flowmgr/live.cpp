#include "flowmgr/live.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cinttypes>
#include <cstring>
#include <ctime>
#include <deque>
#include <fstream>
#include <memory>
#include <optional>
#include <unordered_map>
#include <vector>

#include "common/fd.hpp"
#include "gpu/features.hpp"
#include "gpu/infer.hpp"
#include "common/log.hpp"

namespace etcpipe {
namespace {

using Clock = std::chrono::steady_clock;

uint64_t now_ns() {
    return static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count());
}

uint64_t unix_ns() {
    timespec ts{};
    clock_gettime(CLOCK_REALTIME, &ts);
    return uint64_t(ts.tv_sec) * 1000000000ull + uint64_t(ts.tv_nsec);
}

// ---- the maps we use, from our own object or from an attached program ----

struct Maps {
    int prog_fd = -1;
    int counters = -1, xsks = -1, ringbuf = -1, run_stats = -1;
    std::vector<UniqueFd> owned;  // fds opened here (attach_existing)
    etc_flowmgr_config config{};
    uint32_t prog_id = 0;
};

Result<Maps> maps_of_attached(const RunOptions& o) {
    auto st = xdp_status(o.iface);
    if (!st) return st.error();
    const ProgramStatus* fm = nullptr;
    for (const auto& i : *st)
        for (const auto& p : i.programs)
            if (p.flowmgr && !fm) fm = &p;
    if (!fm)
        return Error{ErrorKind::Usage, ENOENT, o.iface, "find an attached FlowManager",
                     "no xdp_flowmgr program is attached",
                     "attach one first: `etcpipe load " + o.iface +
                         " --pin-path DIR` or `ip link set dev " + o.iface +
                         " xdp obj bpf/flowmgr.bpf.o sec xdp`; or drop --attach-existing"};
    Maps m;
    m.prog_id = fm->id;
    if (fm->config) m.config = *fm->config;
    m.owned.emplace_back(bpf_prog_get_fd_by_id(fm->id));
    m.prog_fd = m.owned.back().get();
    if (m.prog_fd < 0) return make_error(ErrorKind::Bpf, errno, o.iface, "open the attached program");

    auto take = [&](int fd, const char* name) {
        m.owned.emplace_back(fd);
        if (!std::strcmp(name, ETC_MAP_COUNTERS)) m.counters = fd;
        if (!std::strcmp(name, ETC_MAP_XSKS)) m.xsks = fd;
        if (!std::strcmp(name, ETC_MAP_RINGBUF)) m.ringbuf = fd;
        if (!std::strcmp(name, ETC_MAP_RUN_STATS)) m.run_stats = fd;
    };
    if (!o.pin_path.empty()) {
        // The pins (`ip link` pins by name, `etcpipe load -p` under its path).
        for (const char* name : {ETC_MAP_COUNTERS, ETC_MAP_XSKS, ETC_MAP_RINGBUF, ETC_MAP_RUN_STATS}) {
            const std::string path = o.pin_path + "/" + name;
            int fd = bpf_obj_get(path.c_str());
            if (fd < 0) {
                if (!std::strcmp(name, ETC_MAP_RUN_STATS)) continue;  // optional
                return make_error(ErrorKind::Bpf, errno, path, "open pinned map",
                                  "is the FlowManager pinned there? (`ip link` pins under "
                                  "/sys/fs/bpf/xdp/globals)");
            }
            take(fd, name);
        }
    } else {
        // The program's own maps, found through its map ids.
        std::array<uint32_t, 32> ids{};
        bpf_prog_info info{};
        uint32_t len = sizeof(info);
        info.nr_map_ids = ids.size();
        info.map_ids = reinterpret_cast<uintptr_t>(ids.data());
        if (bpf_obj_get_info_by_fd(m.prog_fd, &info, &len))
            return make_error(ErrorKind::Bpf, errno, o.iface, "read the attached program's maps");
        for (uint32_t i = 0; i < std::min<uint32_t>(info.nr_map_ids, ids.size()); ++i) {
            int fd = bpf_map_get_fd_by_id(ids[i]);
            if (fd < 0) continue;
            bpf_map_info mi{};
            uint32_t ml = sizeof(mi);
            if (bpf_obj_get_info_by_fd(fd, &mi, &ml)) {
                close(fd);
                continue;
            }
            take(fd, mi.name);
        }
        // An unreferenced map is not among the program's maps until bound;
        // `ip link` pins it by name, so look there too.
        if (m.run_stats < 0) {
            int fd = bpf_obj_get("/sys/fs/bpf/xdp/globals/" ETC_MAP_RUN_STATS);
            if (fd >= 0) take(fd, ETC_MAP_RUN_STATS);
        }
    }
    if (m.counters < 0 || m.xsks < 0 || m.ringbuf < 0)
        return Error{ErrorKind::Bpf, ENOENT, o.iface, "find the FlowManager's maps",
                     "counters, XSKMAP or ring buffer missing", "give --pin-path where they are pinned"};
    return m;
}

// ---- detach on any exit: a child waits for our death ----------------------

// When this process ends without detaching (SIGKILL, a crash), a forked
// child sees its pipe close and detaches the program by id. Forked before
// any thread exists; it closes every other descriptor so it holds nothing.
class DetachGuardian {
  public:
    DetachGuardian() = default;
    DetachGuardian(const DetachGuardian&) = delete;
    DetachGuardian& operator=(const DetachGuardian&) = delete;
    ~DetachGuardian() { disarm(); }

    Result<void> start(const std::string& iface, uint32_t prog_id) {
        int p[2];
        if (pipe2(p, O_CLOEXEC)) return make_error(ErrorKind::Io, errno, iface, "create guardian pipe");
        std::fflush(nullptr);
        const pid_t pid = fork();
        if (pid < 0) {
            close(p[0]);
            close(p[1]);
            return make_error(ErrorKind::Io, errno, iface, "fork detach guardian");
        }
        if (pid == 0) {
            // Child: only the read end, no terminal signals, quiet stdio.
            signal(SIGINT, SIG_IGN);
            signal(SIGTERM, SIG_IGN);
            signal(SIGHUP, SIG_IGN);
            signal(SIGPIPE, SIG_IGN);
            int devnull = open("/dev/null", O_RDWR);
            if (devnull >= 0) {
                dup2(devnull, 0);
                dup2(devnull, 1);
            }
            if (p[0] != 3) {
                dup2(p[0], 3);
            }
            // stderr stays: a failed detach must be reported somewhere.
            for (int fd = 4; fd < 1024; ++fd) close(fd);
            if (devnull > 3) close(devnull);
            char b;
            while (read(3, &b, 1) < 0 && errno == EINTR) {
            }
            DetachOptions d;
            d.id = prog_id;
            auto r = detach(iface, d);
            if (r && *r > 0)
                std::fprintf(stderr, "etcpipe run: process ended without detaching; guardian "
                                     "detached program %u from %s\n", prog_id, iface.c_str());
            _exit(0);
        }
        close(p[0]);
        pid_ = pid;
        wfd_ = p[1];
        return {};
    }

    // After our own detach: let the child find nothing to do, and reap it.
    void disarm() {
        if (wfd_ >= 0) close(wfd_);
        wfd_ = -1;
        if (pid_ > 0) {
            int st;
            while (waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
            }
        }
        pid_ = -1;
    }

  private:
    pid_t pid_ = -1;
    int wfd_ = -1;
};

// ---- batch latency: log2 histogram in µs ----------------------------------

struct LatencyHist {
    std::array<uint64_t, 40> bins{};
    uint64_t n = 0, max_us = 0;
    void add(uint64_t us) {
        bins[std::min<size_t>(us ? 64 - __builtin_clzll(us) : 0, bins.size() - 1)]++;
        ++n;
        max_us = std::max(max_us, us);
    }
    // Upper bound of the bin holding quantile q.
    uint64_t quantile(double q) const {
        if (!n) return 0;
        const uint64_t want = static_cast<uint64_t>(q * static_cast<double>(n - 1)) + 1;
        uint64_t acc = 0;
        for (size_t b = 0; b < bins.size(); ++b) {
            acc += bins[b];
            if (acc >= want) return std::min<uint64_t>(b ? (1ull << b) - 1 : 0, max_us);
        }
        return max_us;
    }
};

// ---- output -----------------------------------------------------------------

std::string addr_text(const uint8_t* a, uint8_t family) {
    char buf[INET6_ADDRSTRLEN] = {};
    if (!inet_ntop(family == 6 ? AF_INET6 : AF_INET, a, buf, sizeof buf)) return "?";
    return buf;
}

// Per-flow classes from the model (`--model`): probs is rows × classes.
struct Predictions {
    const std::vector<std::string>* classes = nullptr;
    std::vector<float> probs;
    [[nodiscard]] bool empty() const { return classes == nullptr; }
    [[nodiscard]] size_t best(size_t r) const {
        const size_t nc = classes->size();
        return static_cast<size_t>(std::max_element(probs.begin() + static_cast<long>(r * nc),
                                                    probs.begin() + static_cast<long>((r + 1) * nc)) -
                                   (probs.begin() + static_cast<long>(r * nc)));
    }
};

class Sink {
  public:
    virtual ~Sink() = default;
    virtual Result<void> write(const features::Output& out, const std::vector<uint64_t>& flow_ids,
                               const std::vector<uint8_t>& complete, const Predictions& pred) = 0;
    virtual Result<void> close() { return {}; }
};

// One JSON object per flow; payload/packet rows as hex, one string per packet.
class JsonlSink final : public Sink {
  public:
    Result<void> write(const features::Output& out, const std::vector<uint64_t>& ids,
                       const std::vector<uint8_t>& complete, const Predictions& pred) override {
        std::string s;
        static constexpr char kHex[] = "0123456789abcdef";
        for (size_t r = 0; r < out.rows.size(); ++r) {
            const features::FlowRow& row = out.rows[r];
            const etc_flow_key& k = row.key;
            const bool a = row.initiator_is_a != 0;
            s += "{\"flow_id\":" + std::to_string(r < ids.size() ? ids[r] : 0);
            const char* pn = k.proto == 6 ? "tcp" : k.proto == 17 ? "udp" : k.proto == 1 ? "icmp"
                           : k.proto == 58 ? "icmp6" : nullptr;
            s += ",\"proto\":" + (pn ? "\"" + std::string(pn) + "\"" : std::to_string(k.proto));
            s += ",\"src\":\"" + addr_text(a ? k.addr_a : k.addr_b, k.family) + "\"";
            s += ",\"sport\":" + std::to_string(a ? k.port_a : k.port_b);
            s += ",\"dst\":\"" + addr_text(a ? k.addr_b : k.addr_a, k.family) + "\"";
            s += ",\"dport\":" + std::to_string(a ? k.port_b : k.port_a);
            s += ",\"vlan\":[" + std::to_string(k.vlan[0]) + "," + std::to_string(k.vlan[1]) + "]";
            s += ",\"first_ns\":" + std::to_string(row.first_ns);
            s += ",\"packets\":" + std::to_string(row.selected);
            s += std::string(",\"complete\":") + (r < complete.size() && complete[r] ? "true" : "false");
            if (!pred.empty()) {
                const size_t nc = pred.classes->size(), b = pred.best(r);
                char num[32];
                std::snprintf(num, sizeof num, "%.6g", static_cast<double>(pred.probs[r * nc + b]));
                s += ",\"class\":\"" + (*pred.classes)[b] + "\",\"probability\":" + num + ",\"probabilities\":{";
                for (size_t c = 0; c < nc; ++c) {
                    std::snprintf(num, sizeof num, "%.6g", static_cast<double>(pred.probs[r * nc + c]));
                    s += (c ? ",\"" : "\"") + (*pred.classes)[c] + "\":" + num;
                }
                s += '}';
            }
            for (size_t f = 0; f < out.spec.size(); ++f) {
                const features::Feature& ft = out.spec[f];
                const uint8_t* base = out.tensors[f].data() + r * ft.row_bytes();
                s += ",\"" + ft.name() + "\":[";
                for (uint32_t j = 0; j < ft.h; ++j) {
                    if (j) s += ',';
                    if (ft.kind == features::Kind::Payload || ft.kind == features::Kind::Packet) {
                        s += '"';
                        const uint8_t* p = base + size_t{j} * ft.l;
                        for (uint32_t i = 0; i < ft.l; ++i) {
                            s += kHex[p[i] >> 4];
                            s += kHex[p[i] & 15];
                        }
                        s += '"';
                    } else if (ft.kind == features::Kind::Sizes) {
                        int32_t v;
                        std::memcpy(&v, base + size_t{j} * 4, 4);
                        s += std::to_string(v);
                    } else {
                        int64_t v;
                        std::memcpy(&v, base + size_t{j} * 8, 8);
                        s += std::to_string(v);
                    }
                }
                s += ']';
            }
            s += "}\n";
        }
        if (std::fwrite(s.data(), 1, s.size(), stdout) != s.size() || std::fflush(stdout))
            return make_error(ErrorKind::Io, errno ? errno : EIO, "stdout", "write JSON Lines");
        return {};
    }
};

// Rolling parts: DIR/part-000000/{<feature>.npy…, flows.csv}, each with up
// to `rotate` flows, written when full and at the end.
class NpySink final : public Sink {
  public:
    NpySink(std::string dir, uint32_t rotate) : dir_(std::move(dir)), rotate_(rotate) {}

    Result<void> write(const features::Output& out, const std::vector<uint64_t>&,
                       const std::vector<uint8_t>&, const Predictions& pred) override {
        if (!pred.empty()) classes_ = pred.classes;
        if (acc_.spec.empty()) {
            acc_.spec = out.spec;
            acc_.tensors.resize(out.spec.size());
        }
        for (size_t r = 0; r < out.rows.size(); ++r) {
            acc_.rows.push_back(out.rows[r]);
            if (!pred.empty()) {
                const size_t b = pred.best(r);
                pred_.emplace_back(static_cast<uint32_t>(b), pred.probs[r * pred.classes->size() + b]);
            }
            for (size_t f = 0; f < out.spec.size(); ++f) {
                const size_t rb = out.spec[f].row_bytes();
                const uint8_t* p = out.tensors[f].data() + r * rb;
                acc_.tensors[f].insert(acc_.tensors[f].end(), p, p + rb);
            }
            if (acc_.rows.size() >= rotate_)
                if (auto w = flush(); !w) return w.error();
        }
        return {};
    }

    Result<void> close() override { return acc_.rows.empty() && part_ > 0 ? Result<void>{} : flush(); }

  private:
    Result<void> flush() {
        char name[32];
        std::snprintf(name, sizeof name, "/part-%06u", part_++);
        const std::string d = dir_ + name;
        if (mkdir(d.c_str(), 0755) && errno != EEXIST)
            return make_error(ErrorKind::Io, errno, d, "create output part");
        if (acc_.spec.empty()) return {};
        for (size_t f = 0; f < acc_.spec.size(); ++f)
            if (auto r = features::write_npy(d + "/" + acc_.spec[f].name() + ".npy", acc_.spec[f],
                                             acc_.tensors[f], acc_.rows.size());
                !r)
                return r.error();
        if (auto r = features::write_flows_csv(d + "/flows.csv", acc_); !r) return r.error();
        if (classes_) {
            // One line per row of flows.csv: the model's class and its probability.
            std::ofstream p(d + "/predictions.csv", std::ios::trunc);
            p << "row,class,probability\n";
            for (size_t r = 0; r < pred_.size(); ++r)
                p << r << ',' << (*classes_)[pred_[r].first] << ',' << pred_[r].second << '\n';
            p.close();
            if (!p) return make_error(ErrorKind::Io, errno ? errno : EIO, d + "/predictions.csv", "write");
        }
        pred_.clear();
        acc_.rows.clear();
        for (auto& t : acc_.tensors) t.clear();
        return {};
    }

    std::string dir_;
    uint32_t rotate_;
    uint32_t part_ = 0;
    features::Output acc_;
    const std::vector<std::string>* classes_ = nullptr;
    std::vector<std::pair<uint32_t, float>> pred_;
};

// ---- flow assembly -----------------------------------------------------------

struct PendingPkt {
    uint16_t index;
    uint64_t ts_ns;
    uint32_t off, len;
};

struct PendingFlow {
    uint64_t flow_id = 0;
    uint64_t last_seen_ns = 0;  // host monotonic time
    std::vector<PendingPkt> pkts;
    std::vector<uint8_t> bytes;
};

class Assembler {
  public:
    Assembler(uint32_t h, etc_run_stats& st, uint32_t max_pending)
        : h_(h), st_(st), max_pending_(max_pending) {}

    void add(const etc_meta& m, std::span<const uint8_t> frame, uint64_t now) {
        if (m.index >= h_) {
            st_.beyond_h++;
            return;
        }
        auto it = pending_.find(m.flow_id);
        if (it == pending_.end()) {
            if (pending_.size() >= max_pending_) {
                st_.pending_full++;
                return;
            }
            it = pending_.emplace(m.flow_id, PendingFlow{}).first;
            it->second.flow_id = m.flow_id;
            it->second.pkts.reserve(h_);
        }
        PendingFlow& f = it->second;
        st_.accepted++;
        f.last_seen_ns = now;
        f.pkts.push_back(PendingPkt{m.index, m.ts_ns, static_cast<uint32_t>(f.bytes.size()),
                                    static_cast<uint32_t>(frame.size())});
        f.bytes.insert(f.bytes.end(), frame.begin(), frame.end());
        if (f.pkts.size() >= h_) {
            ready_.push_back(Ready{std::move(f), now, 1});
            ready_packets_ += h_;
            pending_.erase(it);
        }
    }

    // Flows silent for `timeout_ns` (or all, at the end) become ready, partial.
    void expire(uint64_t now, uint64_t timeout_ns, bool all) {
        for (auto it = pending_.begin(); it != pending_.end();) {
            if (all || now - it->second.last_seen_ns >= timeout_ns) {
                ready_packets_ += it->second.pkts.size();
                ready_.push_back(Ready{std::move(it->second), now, 0});
                it = pending_.erase(it);
            } else {
                ++it;
            }
        }
    }

    size_t pending() const { return pending_.size(); }
    size_t ready_packets() const { return ready_packets_; }
    bool has_ready() const { return !ready_.empty(); }
    uint64_t oldest_ready_ns() const { return ready_.empty() ? 0 : ready_.front().since_ns; }

    // Moves the ready flows into `batch` (packets of a flow in selection
    // order, flows in the order they became ready).
    void take(features::Batch& batch, std::vector<uint64_t>& ids, std::vector<uint8_t>& complete) {
        for (Ready& r : ready_) {
            std::sort(r.flow.pkts.begin(), r.flow.pkts.end(),
                      [](const PendingPkt& a, const PendingPkt& b) { return a.index < b.index; });
            for (const PendingPkt& p : r.flow.pkts)
                batch.add({r.flow.bytes.data() + p.off, p.len}, p.ts_ns);
            ids.push_back(r.flow.flow_id);
            complete.push_back(r.complete);
        }
        ready_.clear();
        ready_packets_ = 0;
    }

  private:
    struct Ready {
        PendingFlow flow;
        uint64_t since_ns;
        uint8_t complete;
    };
    uint32_t h_;
    etc_run_stats& st_;
    uint32_t max_pending_;
    std::unordered_map<uint64_t, PendingFlow> pending_;
    std::deque<Ready> ready_;
    size_t ready_packets_ = 0;
};

struct RingCtx {
    Assembler* asm_;
    etc_run_stats* st;
    uint64_t now;
};

int on_ring_record(void* ctx, void* data, size_t size) {
    auto* c = static_cast<RingCtx*>(ctx);
    c->st->ring_rx++;
    if (size < sizeof(etc_ring_hdr)) {
        c->st->no_meta++;
        return 0;
    }
    etc_ring_hdr h;
    std::memcpy(&h, data, sizeof h);
    if (h.meta.magic != ETC_META_MAGIC || sizeof(etc_ring_hdr) + h.cap_len > size) {
        c->st->no_meta++;
        return 0;
    }
    c->asm_->add(h.meta, {static_cast<const uint8_t*>(data) + sizeof(etc_ring_hdr), h.cap_len}, c->now);
    return 0;
}

}  // namespace

void print_run_stats(FILE* out, const etc_run_stats& s, const char* in) {
    auto u = [](uint64_t v) { return static_cast<unsigned long long>(v); };
    std::fprintf(out, "%sAF_XDP sockets %u (%u zero-copy)\n", in, s.sockets, s.zero_copy);
    std::fprintf(out, "%s%-22s %12llu  descriptors read from AF_XDP RX rings\n", in, "xsk_rx", u(s.xsk_rx));
    std::fprintf(out, "%s%-22s %12llu  inline ring-buffer records read\n", in, "ring_rx", u(s.ring_rx));
    std::fprintf(out, "%s%-22s %12llu  lost in the socket (kernel rx_dropped)\n", in, "xsk_rx_dropped", u(s.xsk_rx_dropped));
    std::fprintf(out, "%s%-22s %12llu  lost: RX ring full (user space too slow)\n", in, "xsk_rx_ring_full", u(s.xsk_rx_ring_full));
    std::fprintf(out, "%s%-22s %12llu  lost: fill ring empty\n", in, "xsk_fill_empty", u(s.xsk_fill_empty));
    std::fprintf(out, "%s%-22s %12llu  invalid descriptors\n", in, "xsk_invalid_descs", u(s.xsk_invalid_descs));
    std::fprintf(out, "%s%-22s %12llu  packets taken into a flow\n", in, "accepted", u(s.accepted));
    std::fprintf(out, "%s%-22s %12llu  ignored: no FlowManager metadata\n", in, "no_meta", u(s.no_meta));
    std::fprintf(out, "%s%-22s %12llu  ignored: selection index ≥ H (program N > H)\n", in, "beyond_h", u(s.beyond_h));
    std::fprintf(out, "%s%-22s %12llu  dropped: pending-flow table full\n", in, "pending_full", u(s.pending_full));
    std::fprintf(out, "%s%-22s %12llu  flows waiting for packets\n", in, "flows_pending", u(s.flows_pending));
    std::fprintf(out, "%s%-22s %12llu  emitted with H packets\n", in, "flows_complete", u(s.flows_complete));
    std::fprintf(out, "%s%-22s %12llu  emitted with fewer (flow timeout or shutdown)\n", in, "flows_partial", u(s.flows_partial));
    std::fprintf(out, "%s%-22s %12llu  batches (%llu packets) to the extractor\n", in, "batches", u(s.batches), u(s.batch_packets));
    std::fprintf(out, "%s%-22s %12s  p50 %llu  p99 %llu  max %llu (extract + write)\n", in, "batch latency µs", "",
                 u(s.batch_p50_us), u(s.batch_p99_us), u(s.batch_max_us));
}

Result<RunSummary> run_live(const RunOptions& o, const std::atomic<bool>& stop) {
    // With a model, the features are the model's (its metadata names them).
    std::unique_ptr<infer::Backend> classifier;
    std::string spec_text = o.spec;
    if (!o.model_path.empty()) {
        infer::BackendOptions bo;
        bo.device = o.device;
        bo.threads = o.threads;
        auto be = infer::Backend::load(o.model_path, bo);
        if (!be) return be.error();
        classifier = std::move(be.value());
        const std::string& ms = classifier->model().spec_text;
        if (o.spec_set && o.spec != ms)
            return Error{ErrorKind::Usage, EINVAL, "--features", "check options",
                         "the model " + o.model_path + " needs '" + ms + "', not '" + o.spec + "'",
                         "leave --features out with --model"};
        spec_text = ms;
        ETC_INFO("%s: %zu classes, %s backend, features %s", o.model_path.c_str(),
                 classifier->model().num_classes(), classifier->name(), ms.c_str());
    }
    auto spec = features::parse_spec(spec_text);
    if (!spec) return spec.error();
    const uint32_t h = features::max_packets(*spec);
    if (o.batch_packets == 0)
        return Error{ErrorKind::Usage, EINVAL, "--batch", "parse option", "must be > 0", {}};
    if (o.output != "-" && mkdir(o.output.c_str(), 0755) && errno != EEXIST)
        return make_error(ErrorKind::Io, errno, o.output, "create output directory");

    // The program: ours, or the one already attached.
    std::optional<FlowManager> fm;
    Maps maps;
    DetachGuardian guardian;
    bool attached_here = false;
    if (o.attach_existing) {
        auto m = maps_of_attached(o);
        if (!m) return m.error();
        maps = std::move(*m);
        if (maps.config.max_pkts && maps.config.max_pkts < h)
            ETC_WARN("%s: the attached FlowManager selects N=%u packets per flow, the features need "
                     "H=%u: every flow will be emitted partial, after --flow-timeout",
                     o.iface.c_str(), maps.config.max_pkts, h);
    } else {
        if (auto idx = interface_index(o.iface); !idx) return idx.error();
        FlowMgrOptions fo = o.flowmgr;
        if (!o.flowmgr_packets_set) fo.max_pkts = h;
        if (fo.max_pkts < h)
            return Error{ErrorKind::Usage, EINVAL, "-N/--packets", "check options",
                         "N=" + std::to_string(fo.max_pkts) + " < H=" + std::to_string(h) +
                             " packets the features need",
                         "raise -N or shorten the feature spec"};
        if (uint64_t{o.flow_timeout_s} >= fo.idle_timeout_s)
            return Error{ErrorKind::Usage, EINVAL, "--flow-timeout", "check options",
                         "must be shorter than the program's --idle-timeout (" +
                             std::to_string(fo.idle_timeout_s) + " s)",
                         "else a restarted flow could merge with the old one"};
        fo.pin_path = o.pin ? o.pin_path : std::string();
        auto f = FlowManager::open(fo);
        if (!f) return f.error();
        fm.emplace(std::move(f.value()));
        auto a = attach_object(o.iface, o.mode, fm->object(), ETC_PROG_FLOWMGR, {});
        if (!a) return a.error();
        attached_here = true;
        maps.prog_id = a->prog_id;
        maps.prog_fd = fm->prog_fd();
        maps.counters = fm->map_fd(ETC_MAP_COUNTERS);
        maps.xsks = fm->map_fd(ETC_MAP_XSKS);
        maps.ringbuf = fm->map_fd(ETC_MAP_RINGBUF);
        maps.run_stats = fm->map_fd(ETC_MAP_RUN_STATS);
        maps.config.delivery = static_cast<uint8_t>(fo.delivery);
        maps.config.max_pkts = fo.max_pkts;
        ETC_INFO("%s: FlowManager attached (%s mode, program id %u, N=%u)%s", o.iface.c_str(),
                 xdp_mode_name(a->mode), a->prog_id, fo.max_pkts,
                 o.pin ? "; stays attached after exit (--pin)" : "");
        if (!o.pin)
            if (auto g = guardian.start(o.iface, a->prog_id); !g)
                ETC_WARN("%s (the program is still detached on a clean exit)", g.error().message().c_str());
    }
    // Detach on every way out of this function (unless pinned).
    struct DetachOnExit {
        bool armed;
        const std::string& iface;
        uint32_t id;
        DetachGuardian& g;
        ~DetachOnExit() {
            if (!armed) return;
            DetachOptions d;
            d.id = id;
            if (auto r = detach(iface, d); !r) ETC_ERR("%s", r.error().message().c_str());
            g.disarm();
        }
    } detach_on_exit{attached_here && !o.pin, o.iface, maps.prog_id, guardian};

    if (maps.run_stats >= 0 && maps.prog_fd >= 0) {
        // So `etcpipe status` finds the map among the program's.
        if (bpf_prog_bind_map(maps.prog_fd, maps.run_stats, nullptr))
            ETC_DEBUG("bind %s: %s", ETC_MAP_RUN_STATS, std::strerror(errno));
    }

    etc_run_stats st{};
    st.pid = static_cast<uint64_t>(getpid());
    Assembler assembler(h, st, o.max_pending);
    auto ex = features::make_extractor(o.device, o.threads, *spec);
    if (!ex) return ex.error();

    // Delivery: AF_XDP sockets (tap) or the ring buffer (inline).
    const bool inline_mode = maps.config.delivery == ETC_DELIVERY_INLINE;
    std::vector<std::unique_ptr<XskSocket>> socks;
    ring_buffer* ring = nullptr;
    RingCtx ring_ctx{&assembler, &st, 0};
    struct RingFree {
        ring_buffer*& r;
        ~RingFree() {
            if (r) ring_buffer__free(r);
        }
    } ring_free{ring};
    std::vector<uint32_t> queues_used;
    if (inline_mode) {
        ring = ring_buffer__new(maps.ringbuf, on_ring_record, &ring_ctx, nullptr);
        if (!ring) return make_error(ErrorKind::Bpf, errno, o.iface, "open the ring buffer");
    } else {
        const uint32_t nq = o.queues ? o.queues : rx_queue_count(o.iface);
        for (uint32_t q = 0; q < nq; ++q) {
            auto s = XskSocket::create(o.iface, q, o.xsk);
            if (!s) return s.error();
            int fd = (*s)->fd();
            if (bpf_map_update_elem(maps.xsks, &q, &fd, BPF_ANY))
                return make_error(ErrorKind::Bpf, errno, o.iface, "add AF_XDP socket to the XSKMAP",
                                  "queue " + std::to_string(q) + " (the XSKMAP holds 64)");
            st.zero_copy += (*s)->zero_copy();
            queues_used.push_back(q);
            socks.push_back(std::move(s.value()));
        }
        st.sockets = static_cast<uint32_t>(socks.size());
        ETC_INFO("%s: %zu AF_XDP socket(s), %s", o.iface.c_str(), socks.size(),
                 st.zero_copy == socks.size() ? "zero-copy" : st.zero_copy ? "some zero-copy" : "copy mode");
    }
    // Take our sockets out of the XSKMAP on the way out (an attached program
    // we do not own keeps running and passes the packets again).
    struct XskUnmap {
        int map;
        const std::vector<uint32_t>& qs;
        ~XskUnmap() {
            for (uint32_t q : qs) (void)bpf_map_delete_elem(map, &q);
        }
    } xsk_unmap{maps.xsks, queues_used};

    std::unique_ptr<Sink> sink;
    if (o.output == "-")
        sink = std::make_unique<JsonlSink>();
    else
        sink = std::make_unique<NpySink>(o.output, o.rotate_flows);

    LatencyHist lat;
    uint64_t global_index = 0;
    auto dispatch = [&]() -> Result<void> {
        if (!assembler.has_ready()) return {};
        const uint64_t t0 = now_ns();
        features::Batch b;
        b.first_index = global_index;
        std::vector<uint64_t> ids;
        std::vector<uint8_t> complete;
        assembler.take(b, ids, complete);
        global_index += b.size();
        st.batches++;
        st.batch_packets += b.size();
        if (auto r = (*ex)->push(b); !r) return r.error();
        auto out = (*ex)->finish();
        if (!out) return out.error();
        // One row per ready flow, in the same order, unless the extractor
        // could not parse a flow's packets; then ids are not aligned.
        if (out->rows.size() != ids.size()) {
            ETC_WARN("extractor emitted %zu flows for %zu assembled", out->rows.size(), ids.size());
            ids.clear();
            complete.clear();
        }
        for (size_t r = 0; r < out->rows.size(); ++r) {
            const bool c = r < complete.size() ? complete[r] != 0 : out->rows[r].selected >= h;
            (c ? st.flows_complete : st.flows_partial)++;
        }
        st.flows_emitted += out->rows.size();
        Predictions pred;
        if (classifier && !out->rows.empty()) {
            infer::HostBatch hb;
            hb.rows = out->rows.size();
            for (const auto& t : out->tensors) hb.tensors.emplace_back(t.data(), t.size());
            pred.classes = &classifier->model().classes;
            pred.probs.resize(hb.rows * pred.classes->size());
            if (auto r = classifier->infer(hb, pred.probs); !r) return r.error();
        }
        if (auto w = sink->write(*out, ids, complete, pred); !w) return w.error();
        lat.add((now_ns() - t0) / 1000);
        return {};
    };

    auto publish = [&] {
        XskStats sum;
        for (const auto& s : socks)
            if (auto x = s->stats()) {
                sum.rx_dropped += x->rx_dropped;
                sum.rx_ring_full += x->rx_ring_full;
                sum.fill_ring_empty += x->fill_ring_empty;
                sum.invalid_descs += x->invalid_descs;
            }
        st.xsk_rx_dropped = sum.rx_dropped;
        st.xsk_rx_ring_full = sum.rx_ring_full;
        st.xsk_fill_empty = sum.fill_ring_empty;
        st.xsk_invalid_descs = sum.invalid_descs;
        st.flows_pending = assembler.pending();
        st.batch_p50_us = lat.quantile(0.50);
        st.batch_p99_us = lat.quantile(0.99);
        st.batch_max_us = lat.max_us;
        st.updated_unix_ns = unix_ns();
        if (maps.run_stats >= 0) {
            uint32_t zero = 0;
            (void)bpf_map_update_elem(maps.run_stats, &zero, &st, BPF_ANY);
        }
    };

    if (!o.ready_file.empty()) {
        std::ofstream(o.ready_file) << getpid() << '\n';
    }
    ETC_INFO("%s: running (%s delivery, features %s, %s extractor%s); Ctrl-C to stop", o.iface.c_str(),
             inline_mode ? "inline" : "tap", spec_text.c_str(), (*ex)->name(),
             classifier ? ", classifying" : "");

    std::vector<pollfd> pfds;
    for (const auto& s : socks) pfds.push_back(pollfd{s->fd(), POLLIN, 0});
    const uint64_t start = now_ns();
    uint64_t last_tick = start;
    Counters prev_kernel{};
    etc_run_stats prev{};
    const uint64_t flow_timeout_ns = uint64_t{o.flow_timeout_s} * 1000000000ull;
    const uint64_t batch_timeout_ns = uint64_t{o.batch_timeout_ms} * 1000000ull;

    auto receive_all = [&](uint64_t now) {
        size_t got = 0;
        for (auto& s : socks)
            got += s->receive(256, [&](const XskSocket::Frame& f) {
                st.xsk_rx++;
                if (!f.meta) {
                    st.no_meta++;
                    return;
                }
                assembler.add(*f.meta, f.data, now);
            });
        if (ring) {
            ring_ctx.now = now;
            const int n = ring_buffer__consume(ring);
            if (n > 0) got += static_cast<size_t>(n);
        }
        return got;
    };

    Result<void> failure;
    for (;;) {
        const bool stopping = stop.load() || (o.duration_s > 0 && static_cast<double>(now_ns() - start) / 1e9 >= o.duration_s);
        if (stopping) break;
        if (ring) {
            (void)ring_buffer__poll(ring, 50);
        } else if (!pfds.empty()) {
            (void)poll(pfds.data(), pfds.size(), 50);
        }
        const uint64_t now = now_ns();
        // Bounded, so that batches, timeouts and stats still run under load.
        for (int round = 0; round < 64 && receive_all(now) > 0; ++round) {
        }
        if (assembler.ready_packets() >= o.batch_packets ||
            (assembler.has_ready() && now - assembler.oldest_ready_ns() >= batch_timeout_ns)) {
            failure = dispatch();
            if (!failure) break;
        }
        if (now - last_tick >= 1000000000ull) {
            assembler.expire(now, flow_timeout_ns, false);
            publish();
            if (o.stats) {
                auto k = read_counters(maps.counters);
                if (k) {
                    const double dt = static_cast<double>(now - last_tick) / 1e9;
                    auto rate = [&](int c) { return static_cast<double>((*k)[c] - prev_kernel[c]) / dt; };
                    std::fprintf(stderr,
                                 "rx %.0f/s sel %.0f/s pass %.0f/s drop %.0f/s | xsk %.0f/s lost %llu | "
                                 "flows out %.0f/s pending %llu | batches %llu p50 %lluµs p99 %lluµs\n",
                                 rate(ETC_CNT_RX), rate(ETC_CNT_SELECTED), rate(ETC_CNT_VERDICT_PASS),
                                 rate(ETC_CNT_VERDICT_DROP),
                                 static_cast<double>(st.xsk_rx + st.ring_rx - prev.xsk_rx - prev.ring_rx) / dt,
                                 static_cast<unsigned long long>(st.xsk_rx_dropped + st.xsk_rx_ring_full +
                                                                 st.xsk_fill_empty + st.pending_full),
                                 static_cast<double>(st.flows_emitted - prev.flows_emitted) / dt,
                                 static_cast<unsigned long long>(st.flows_pending),
                                 static_cast<unsigned long long>(st.batches),
                                 static_cast<unsigned long long>(st.batch_p50_us),
                                 static_cast<unsigned long long>(st.batch_p99_us));
                    prev_kernel = *k;
                    prev = st;
                }
            }
            last_tick = now;
        }
    }
    if (!failure) return failure.error();

    // Shutdown: what is in the rings, then every partial flow.
    const uint64_t now = now_ns();
    // What is already in the rings; bounded, since traffic may keep coming
    // (the program is still attached until we return).
    for (int round = 0; round < 1024 && receive_all(now) > 0; ++round) {
    }
    assembler.expire(now, 0, true);
    if (auto r = dispatch(); !r) return r.error();
    if (auto r = sink->close(); !r) return r.error();
    publish();


    RunSummary sum;
    sum.run = st;
    for (const auto& sk : socks) sum.per_queue.emplace_back(sk->queue(), sk->received());
    if (auto k = read_counters(maps.counters)) sum.kernel = *k;
    return sum;
}

}  // namespace etcpipe
