#include "flowmgr/live.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <poll.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/log.hpp"
#include "flowmgr/attached_maps.hpp"
#include "common/detach_guardian.hpp"
#include "common/ready_file.hpp"
#include "flowmgr/flow_assembler.hpp"
#include "flowmgr/live_sinks.hpp"
#include "gpu/features.hpp"
#include "gpu/infer.hpp"

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

// What the AF_XDP socket must know of the FlowManager's metadata.
XskMetaFormat etc_meta_format() {
    XskMetaFormat f;
    f.size = sizeof(etc_meta);
    f.magic = ETC_META_MAGIC;
    f.magic_offset = offsetof(etc_meta, magic);
    return f;
}

// One run of the pipeline. Members are declared in the order they are set
// up, so they are torn down in reverse: sockets before the detach, the
// detach before the maps and the program are closed.
class LiveRun {
  public:
    LiveRun(const RunOptions& o, const std::atomic<bool>& stop) : o_(o), stop_(stop), detach_(guardian_) {}
    LiveRun(const LiveRun&) = delete;
    LiveRun& operator=(const LiveRun&) = delete;
    ~LiveRun();

    [[nodiscard]] Result<void> prepare();          // program, extractor, delivery, sink
    [[nodiscard]] Result<void> run();              // until stop, the duration, or a failure
    [[nodiscard]] Result<RunSummary> shut_down();  // drain, emit every partial flow, summary

  private:
    Result<void> load_classifier();
    Result<void> check_options();
    Result<void> open_program();
    Result<void> attach_own();
    Result<void> open_delivery();
    Result<void> open_sockets();
    size_t receive_all(uint64_t now);
    Result<void> dispatch();
    Result<live::Predictions> classify(const features::Output& out);
    void publish();
    void tick(uint64_t now);
    void print_rates(uint64_t now);

    const RunOptions& o_;
    const std::atomic<bool>& stop_;
    std::unique_ptr<infer::Backend> classifier_;
    std::string spec_text_;
    std::vector<features::Feature> spec_;
    uint32_t h_ = 0;
    std::optional<FlowManager> fm_;
    live::Maps maps_;
    DetachGuardian guardian_;
    DetachOnExit detach_;
    etc_run_stats st_{};
    std::optional<live::Assembler> assembler_;
    std::unique_ptr<features::Extractor> ex_;
    std::vector<std::unique_ptr<XskSocket>> socks_;
    std::vector<uint32_t> queues_used_;
    ring_buffer* ring_ = nullptr;
    live::RingCtx ring_ctx_{};
    std::unique_ptr<live::Sink> sink_;
    LatencyHist lat_;
    uint64_t global_index_ = 0;
    uint64_t last_tick_ = 0;
    Counters prev_kernel_{};
    etc_run_stats prev_{};
};

LiveRun::~LiveRun() {
    // Take our sockets out of the XSKMAP on the way out (an attached program
    // we do not own keeps running and passes the packets again).
    for (uint32_t q : queues_used_) (void)bpf_map_delete_elem(maps_.xsks, &q);
    if (ring_) ring_buffer__free(ring_);
}

// With a model, the features are the model's (its metadata names them).
Result<void> LiveRun::load_classifier() {
    spec_text_ = o_.spec;
    if (o_.model_path.empty()) return {};
    infer::BackendOptions bo;
    bo.device = o_.device;
    bo.threads = o_.threads;
    auto be = infer::Backend::load(o_.model_path, bo);
    if (!be) return be.error();
    classifier_ = std::move(be.value());
    const std::string& ms = classifier_->model().spec_text;
    if (o_.spec_set && o_.spec != ms)
        return Error{ErrorKind::Usage, EINVAL, "--features", "check options",
                     "the model " + o_.model_path + " needs '" + ms + "', not '" + o_.spec + "'",
                     "leave --features out with --model"};
    spec_text_ = ms;
    ETC_INFO("%s: %zu classes, %s backend, features %s", o_.model_path.c_str(),
             classifier_->model().num_classes(), classifier_->name(), ms.c_str());
    return {};
}

Result<void> LiveRun::check_options() {
    auto spec = features::parse_spec(spec_text_);
    if (!spec) return spec.error();
    spec_ = std::move(spec.value());
    h_ = features::max_packets(spec_);
    if (o_.batch_packets == 0)
        return Error{ErrorKind::Usage, EINVAL, "--batch", "parse option", "must be > 0", {}};
    if (o_.output != "-") {
        // Checked now, before the program is attached: a bad target found only
        // at the first part file would lose every flow of the run.
        if (mkdir(o_.output.c_str(), 0755) && errno != EEXIST)
            return make_error(ErrorKind::Io, errno, o_.output, "create output directory");
        struct stat st{};
        if (stat(o_.output.c_str(), &st) != 0)
            return make_error(ErrorKind::Io, errno, o_.output, "check output directory");
        if (!S_ISDIR(st.st_mode))
            return Error{ErrorKind::Io, ENOTDIR, o_.output, "check output directory",
                         "exists and is not a directory",
                         "-o names a directory for the part-NNNNNN files; '-' is stdout"};
        if (access(o_.output.c_str(), W_OK | X_OK) != 0)
            return make_error(ErrorKind::Io, errno, o_.output, "check output directory");
    }
    if (!o_.ready_file.empty()) {
        // The same for the ready file's directory.
        const auto slash = o_.ready_file.rfind('/');
        const std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : o_.ready_file.substr(0, slash);
        if (access(dir.c_str(), W_OK | X_OK) != 0)
            return make_error(ErrorKind::Io, errno, o_.ready_file, "check the ready file's directory");
    }
    return {};
}

// The program: ours, or the one already attached.
Result<void> LiveRun::open_program() {
    if (!o_.attach_existing) return attach_own();
    auto m = live::maps_of_attached(o_.iface, o_.pin_path);
    if (!m) return m.error();
    maps_ = std::move(*m);
    if (maps_.config.max_pkts && maps_.config.max_pkts < h_)
        ETC_WARN("%s: the attached FlowManager selects N=%u packets per flow, the features need "
                 "H=%u: every flow will be emitted partial, after --flow-timeout",
                 o_.iface.c_str(), maps_.config.max_pkts, h_);
    return {};
}

Result<void> LiveRun::attach_own() {
    if (auto idx = interface_index(o_.iface); !idx) return idx.error();
    FlowMgrOptions fo = o_.flowmgr;
    if (!o_.flowmgr_packets_set) fo.max_pkts = h_;
    if (fo.max_pkts < h_)
        return Error{ErrorKind::Usage, EINVAL, "-N/--packets", "check options",
                     "N=" + std::to_string(fo.max_pkts) + " < H=" + std::to_string(h_) +
                         " packets the features need",
                     "raise -N or shorten the feature spec"};
    if (uint64_t{o_.flow_timeout_s} >= fo.idle_timeout_s)
        return Error{ErrorKind::Usage, EINVAL, "--flow-timeout", "check options",
                     "must be shorter than the program's --idle-timeout (" +
                         std::to_string(fo.idle_timeout_s) + " s)",
                     "else a restarted flow could merge with the old one"};
    fo.pin_path = o_.pin ? o_.pin_path : std::string();
    auto f = FlowManager::open(fo);
    if (!f) return f.error();
    fm_.emplace(std::move(f.value()));
    auto a = attach_object(o_.iface, o_.mode, fm_->object(), ETC_PROG_FLOWMGR, {});
    if (!a) return a.error();
    maps_ = live::maps_of_own(*fm_, a->prog_id, fo);
    ETC_INFO("%s: FlowManager attached (%s mode, program id %u, N=%u)%s", o_.iface.c_str(),
             xdp_mode_name(a->mode), a->prog_id, fo.max_pkts,
             o_.pin ? "; stays attached after exit (--pin)" : "");
    if (o_.pin) return {};
    if (auto g = guardian_.start(o_.iface, a->prog_id); !g)
        ETC_WARN("%s (the program is still detached on a clean exit)", g.error().message().c_str());
    detach_.arm(o_.iface, a->prog_id);  // on every way out from here
    return {};
}

// Delivery: AF_XDP sockets (tap) or the ring buffer (inline).
Result<void> LiveRun::open_delivery() {
    if (maps_.config.delivery != ETC_DELIVERY_INLINE) return open_sockets();
    ring_ctx_ = live::RingCtx{&*assembler_, &st_, 0};
    ring_ = ring_buffer__new(maps_.ringbuf, live::on_ring_record, &ring_ctx_, nullptr);
    if (!ring_) return make_error(ErrorKind::Bpf, errno, o_.iface, "open the ring buffer");
    return {};
}

Result<void> LiveRun::open_sockets() {
    XskOptions xo = o_.xsk;
    xo.meta = etc_meta_format();
    const uint32_t nq = o_.queues ? o_.queues : rx_queue_count(o_.iface);
    for (uint32_t q = 0; q < nq; ++q) {
        auto s = XskSocket::create(o_.iface, q, xo);
        if (!s) return s.error();
        int fd = (*s)->fd();
        if (bpf_map_update_elem(maps_.xsks, &q, &fd, BPF_ANY))
            return make_error(ErrorKind::Bpf, errno, o_.iface, "add AF_XDP socket to the XSKMAP",
                              "queue " + std::to_string(q) + " (the XSKMAP holds 64)");
        st_.zero_copy += (*s)->zero_copy();
        queues_used_.push_back(q);
        socks_.push_back(std::move(s.value()));
    }
    st_.sockets = static_cast<uint32_t>(socks_.size());
    ETC_INFO("%s: %zu AF_XDP socket(s), %s", o_.iface.c_str(), socks_.size(),
             st_.zero_copy == socks_.size() ? "zero-copy" : st_.zero_copy ? "some zero-copy" : "copy mode");
    return {};
}

Result<void> LiveRun::prepare() {
    if (auto r = load_classifier(); !r) return r;
    if (auto r = check_options(); !r) return r;
    if (auto r = open_program(); !r) return r;
    live::bind_run_stats(maps_);
    st_.pid = static_cast<uint64_t>(getpid());
    assembler_.emplace(h_, st_, o_.max_pending);
    auto ex = features::make_extractor(o_.device, o_.threads, spec_);
    if (!ex) return ex.error();
    ex_ = std::move(ex.value());
    if (auto r = open_delivery(); !r) return r;
    sink_ = live::make_sink(o_.output, o_.rotate_flows);
    if (!o_.ready_file.empty())
        if (auto r = write_ready_file(o_.ready_file); !r) return r;
    ETC_INFO("%s: running (%s delivery, features %s, %s extractor%s); Ctrl-C to stop", o_.iface.c_str(),
             ring_ ? "inline" : "tap", spec_text_.c_str(), ex_->name(),
             classifier_ ? ", classifying" : "");
    return {};
}

size_t LiveRun::receive_all(uint64_t now) {
    size_t got = 0;
    for (auto& s : socks_)
        got += s->receive(256, [&](const XskSocket::Frame& f) {
            st_.xsk_rx++;
            const etc_meta* meta = f.meta_as<etc_meta>();
            if (!meta) {
                st_.no_meta++;
                return;
            }
            assembler_->add(*meta, f.data, now);
        });
    if (ring_) {
        ring_ctx_.now = now;
        const int n = ring_buffer__consume(ring_);
        if (n > 0) got += static_cast<size_t>(n);
    }
    return got;
}

Result<live::Predictions> LiveRun::classify(const features::Output& out) {
    live::Predictions pred;
    if (!classifier_ || out.rows.empty()) return pred;
    infer::HostBatch hb;
    hb.rows = out.rows.size();
    for (const auto& t : out.tensors) hb.tensors.emplace_back(t.data(), t.size());
    pred.classes = &classifier_->model().classes;
    pred.probs.resize(hb.rows * pred.classes->size());
    if (auto r = classifier_->infer(hb, pred.probs); !r) return r.error();
    return pred;
}

// The ready flows through the extractor (and the model) into the sink.
Result<void> LiveRun::dispatch() {
    if (!assembler_->has_ready()) return {};
    const uint64_t t0 = now_ns();
    features::Batch b;
    b.first_index = global_index_;
    std::vector<uint64_t> ids;
    std::vector<uint8_t> complete;
    assembler_->take(b, ids, complete);
    global_index_ += b.size();
    st_.batches++;
    st_.batch_packets += b.size();
    if (auto r = ex_->push(b); !r) return r.error();
    auto out = ex_->finish();
    if (!out) return out.error();
    // One row per ready flow, in the same order, unless the extractor
    // could not parse a flow's packets; then ids are not aligned.
    if (out->rows.size() != ids.size()) {
        ETC_WARN("extractor emitted %zu flows for %zu assembled", out->rows.size(), ids.size());
        ids.clear();
        complete.clear();
    }
    for (size_t r = 0; r < out->rows.size(); ++r) {
        const bool c = r < complete.size() ? complete[r] != 0 : out->rows[r].selected >= h_;
        (c ? st_.flows_complete : st_.flows_partial)++;
    }
    st_.flows_emitted += out->rows.size();
    auto pred = classify(*out);
    if (!pred) return pred.error();
    if (auto w = sink_->write(*out, ids, complete, *pred); !w) return w.error();
    lat_.add((now_ns() - t0) / 1000);
    return {};
}

// The user-space counters into the run-stats map (`etcpipe status` reads them).
void LiveRun::publish() {
    XskStats sum;
    for (const auto& s : socks_)
        if (auto x = s->stats()) {
            sum.rx_dropped += x->rx_dropped;
            sum.rx_ring_full += x->rx_ring_full;
            sum.fill_ring_empty += x->fill_ring_empty;
            sum.invalid_descs += x->invalid_descs;
        }
    st_.xsk_rx_dropped = sum.rx_dropped;
    st_.xsk_rx_ring_full = sum.rx_ring_full;
    st_.xsk_fill_empty = sum.fill_ring_empty;
    st_.xsk_invalid_descs = sum.invalid_descs;
    st_.flows_pending = assembler_->pending();
    st_.batch_p50_us = lat_.quantile(0.50);
    st_.batch_p99_us = lat_.quantile(0.99);
    st_.batch_max_us = lat_.max_us;
    st_.updated_unix_ns = unix_ns();
    live::write_run_stats(maps_, st_);
}

// `--stats`: one line of rates since the last tick on stderr.
void LiveRun::print_rates(uint64_t now) {
    auto k = read_counters(maps_.counters);
    if (!k) return;
    const double dt = static_cast<double>(now - last_tick_) / 1e9;
    auto rate = [&](int c) { return static_cast<double>((*k)[c] - prev_kernel_[c]) / dt; };
    std::fprintf(stderr,
                 "rx %.0f/s sel %.0f/s pass %.0f/s drop %.0f/s | xsk %.0f/s lost %llu | "
                 "flows out %.0f/s pending %llu | batches %llu p50 %lluµs p99 %lluµs\n",
                 rate(ETC_CNT_RX), rate(ETC_CNT_SELECTED), rate(ETC_CNT_VERDICT_PASS),
                 rate(ETC_CNT_VERDICT_DROP),
                 static_cast<double>(st_.xsk_rx + st_.ring_rx - prev_.xsk_rx - prev_.ring_rx) / dt,
                 static_cast<unsigned long long>(st_.xsk_rx_dropped + st_.xsk_rx_ring_full +
                                                 st_.xsk_fill_empty + st_.pending_full),
                 static_cast<double>(st_.flows_emitted - prev_.flows_emitted) / dt,
                 static_cast<unsigned long long>(st_.flows_pending),
                 static_cast<unsigned long long>(st_.batches),
                 static_cast<unsigned long long>(st_.batch_p50_us),
                 static_cast<unsigned long long>(st_.batch_p99_us));
    prev_kernel_ = *k;
    prev_ = st_;
}

// Once a second: quiet flows out, counters published (and printed).
void LiveRun::tick(uint64_t now) {
    assembler_->expire(now, uint64_t{o_.flow_timeout_s} * 1000000000ull, false);
    publish();
    if (o_.stats) print_rates(now);
    last_tick_ = now;
}

Result<void> LiveRun::run() {
    std::vector<pollfd> pfds;
    for (const auto& s : socks_) pfds.push_back(pollfd{s->fd(), POLLIN, 0});
    const uint64_t start = now_ns();
    last_tick_ = start;
    const uint64_t batch_timeout_ns = uint64_t{o_.batch_timeout_ms} * 1000000ull;
    for (;;) {
        const bool stopping = stop_.load() || (o_.duration_s > 0 && static_cast<double>(now_ns() - start) / 1e9 >= o_.duration_s);
        if (stopping) return {};
        if (ring_) {
            (void)ring_buffer__poll(ring_, 50);
        } else if (!pfds.empty()) {
            (void)poll(pfds.data(), pfds.size(), 50);
        }
        const uint64_t now = now_ns();
        // Bounded, so that batches, timeouts and stats still run under load.
        for (int round = 0; round < 64 && receive_all(now) > 0; ++round) {
        }
        if (assembler_->ready_packets() >= o_.batch_packets ||
            (assembler_->has_ready() && now - assembler_->oldest_ready_ns() >= batch_timeout_ns))
            if (auto r = dispatch(); !r) return r;
        if (now - last_tick_ >= 1000000000ull) {
            tick(now);
            (void)guardian_.check_lost();
        }
    }
}

Result<RunSummary> LiveRun::shut_down() {
    const uint64_t now = now_ns();
    // What is already in the rings; bounded, since traffic may keep coming
    // (the program is still attached until we return).
    for (int round = 0; round < 1024 && receive_all(now) > 0; ++round) {
    }
    assembler_->expire(now, 0, true);
    if (auto r = dispatch(); !r) return r.error();
    if (auto r = sink_->close(); !r) return r.error();
    publish();

    RunSummary sum;
    sum.run = st_;
    for (const auto& sk : socks_) sum.per_queue.emplace_back(sk->queue(), sk->received());
    if (auto k = read_counters(maps_.counters)) sum.kernel = *k;
    return sum;
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
    LiveRun run(o, stop);
    if (auto r = run.prepare(); !r) return r.error();
    if (auto r = run.run(); !r) return r.error();
    return run.shut_down();
}

}  // namespace etcpipe
