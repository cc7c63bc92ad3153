#include "common/udp_latency.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <linux/if_link.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <thread>

#include "common/fd.hpp"
#include "common/fmt.hpp"
#include "common/log.hpp"
#include "common/test_run.hpp"
#include "common/udp_frame.hpp"
#include "common/udp_socket.hpp"
#include "common/xdp_attach.hpp"

namespace etcpipe {

Result<NetnsPair> LatencyTopology::create() const {
    if (::geteuid() != 0)
        return Error{ErrorKind::Usage, EPERM, "bench", "create network namespaces", {},
                     "run as root"};
    const std::string pid = std::to_string(::getpid());
    VethPairSpec spec;
    spec.ns_a = ns_a + pid;
    spec.ns_b = ns_b + pid;
    spec.veth_a = veth_a + pid;
    spec.veth_b = veth_b + pid;
    spec.mac_a = "02:78:00:00:00:01";
    spec.mac_b = "02:78:00:00:00:02";
    spec.addr_a = std::string(kAddrA) + "/24";
    spec.addr_b = std::string(kAddrB) + "/24";
    spec.static_neighbours = true;
    return NetnsPair::create(spec);
}

XdpSide native_xdp_side(int prog_fd) {
    XdpSide s;
    s.attach = [prog_fd](const std::string& iface) -> Result<void> {
        auto idx = interface_index(iface);
        if (!idx) return idx.error();
        int err = bpf_xdp_attach(*idx, prog_fd, XDP_FLAGS_DRV_MODE, nullptr);
        if (err)
            return make_error(ErrorKind::Bpf, err, iface, "attach XDP program (native)", {},
                              "veth supports native XDP since Linux 4.19");
        return {};
    };
    s.detach = [](const std::string& iface) -> Result<void> {
        auto idx = interface_index(iface);
        if (!idx) return idx.error();
        int err = bpf_xdp_detach(*idx, XDP_FLAGS_DRV_MODE, nullptr);
        if (err) return make_error(ErrorKind::Bpf, err, iface, "detach XDP program");
        return {};
    };
    return s;
}

namespace {

// An XdpSide put on an interface of a namespace; taken off on destruction.
class XdpAttachment {
  public:
    XdpAttachment() = default;
    XdpAttachment(const XdpAttachment&) = delete;
    XdpAttachment& operator=(const XdpAttachment&) = delete;
    ~XdpAttachment() { detach(); }

    Result<void> attach(const std::string& ns, const std::string& iface, const XdpSide& side) {
        auto r = in_netns(ns, [&] { return side.attach(iface); });
        if (r) {
            ns_ = ns;
            iface_ = iface;
            side_ = side;
        }
        return r;
    }
    void detach() {
        if (ns_.empty()) return;
        auto r = in_netns(ns_, [&] { return side_.detach(iface_); });
        if (!r) ETC_WARN("%s: %s", ns_.c_str(), r.error().message().c_str());
        ns_.clear();
    }

  private:
    std::string ns_, iface_;
    XdpSide side_;
};

// One client socket in namespace A, connected to B:port.
struct Target {
    UniqueFd fd;
    std::vector<uint64_t> cycles;
    size_t lost = 0, wrong = 0;
};

enum class Trip { Ok, Lost, Wrong };

Trip round_trip(Target& t, const UdpLatencyBench& b, size_t k, int timeout_ms,
                std::vector<uint8_t>& buf, bool record) {
    const auto& rq = b.requests[k];
    const auto until = Clock::now() + std::chrono::milliseconds(timeout_ms);
    const uint64_t c0 = read_tsc();
    if (::send(t.fd.get(), rq.data(), rq.size(), 0) < 0) {
        ++t.lost;
        return Trip::Lost;
    }
    for (;;) {
        ssize_t len = ::recv(t.fd.get(), buf.data(), buf.size(), MSG_DONTWAIT);
        if (len < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) break;
            int wait = ms_until(until);
            if (wait == 0) break;
            pollfd p{t.fd.get(), POLLIN, 0};
            (void)::poll(&p, 1, wait);
            continue;
        }
        const ReplyCheck c = b.check({buf.data(), static_cast<size_t>(len)}, k);
        if (c == ReplyCheck::Other) continue;
        const uint64_t c1 = read_tsc();
        if (record) t.cycles.push_back(c1 - c0);
        if (c == ReplyCheck::Wrong) {
            ++t.wrong;
            return Trip::Wrong;
        }
        return Trip::Ok;
    }
    ++t.lost;
    return Trip::Lost;
}

Result<Target> connect_target(uint16_t port) {
    Target t;
    // Only ever the peer namespace's address. No UDP checksum (IPv4 allows
    // 0, the programs keep it 0): a checksum would leave veth as
    // CHECKSUM_PARTIAL (pseudo-header sum only), which XDP_TX sends back
    // unfinished and the client would drop the reply.
    auto fd = connect_udp(LatencyTopology::kAddrB, port, false);
    if (!fd) return fd.error();
    t.fd = std::move(*fd);
    return t;
}

// BPF_PROG_TEST_RUN: a fresh request frame per call (repeat 1), both
// programs interleaved; then one call with repeat N on one frame.
Result<void> measure_test_run(const UdpLatencyBench& b, const UdpLatencyOptions& o,
                              UdpLatencyResult& res) {
    std::vector<std::vector<uint8_t>> frames;
    for (size_t k = 0; k < std::min<size_t>(b.requests.size(), 256); ++k)
        frames.push_back(build_udp_frame(b.requests[k], o.xdp_port));
    TestRunBuffers bufs;
    uint64_t prog_ns = 0, pass_ns = 0;
    for (uint32_t i = 0; i < o.test_run_repeat; ++i) {
        const auto& f = frames[i % frames.size()];
        auto a = xdp_test_run(b.prog_fd, f, {}, 1, bufs);
        if (!a) return a.error();
        if (i == 0 && a->action != XDP_TX)
            return Error{ErrorKind::Bpf, 0, b.labels.prog, "test run",
                         "a request returned action " + std::to_string(a->action),
                         "expected XDP_TX (3)"};
        auto p = xdp_test_run(b.pass_fd, f, {}, 1, bufs);
        if (!p) return p.error();
        prog_ns += a->duration_ns;
        pass_ns += p->duration_ns;
    }
    res.test_run_prog_ns = static_cast<double>(prog_ns) / o.test_run_repeat;
    res.test_run_pass_ns = static_cast<double>(pass_ns) / o.test_run_repeat;
    auto a = xdp_test_run(b.prog_fd, frames[0], {}, o.test_run_repeat, bufs);
    if (!a) return a.error();
    auto p = xdp_test_run(b.pass_fd, frames[0], {}, o.test_run_repeat, bufs);
    if (!p) return p.error();
    res.test_run_prog_rep_ns = a->duration_ns;
    res.test_run_pass_rep_ns = p->duration_ns;
    return {};
}

Result<void> serve(const UdpLatencyBench& b, uint16_t port, std::atomic<bool>& stop,
                   std::atomic<bool>& ready) {
    auto fd = bind_udp(LatencyTopology::kAddrB, port);
    if (!fd) return fd.error();
    ready.store(true);
    std::vector<uint8_t> buf(65536), reply;
    while (!stop.load(std::memory_order_relaxed)) {
        pollfd p{fd->get(), POLLIN, 0};
        int n = ::poll(&p, 1, 50);
        if (n < 0) {
            if (errno == EINTR) continue;
            return make_error(ErrorKind::Io, errno, b.labels.user_who, "poll");
        }
        if (n == 0) continue;
        auto answered = [&](std::span<uint8_t> d, const sockaddr_storage& peer, socklen_t len) {
            if (!b.answer(d, reply)) return;
            (void)::sendto(fd->get(), reply.data(), reply.size(), 0,
                           reinterpret_cast<const sockaddr*>(&peer), len);
        };
        auto stopped = [&] { return stop.load(std::memory_order_relaxed); };
        if (auto r = drain_udp(fd->get(), buf, b.labels.user_who, stopped, answered); !r)
            return r;
    }
    return {};
}

// The user-space server on a thread in namespace `ns`; stopped and joined
// on every exit path.
class ServerThread {
  public:
    ServerThread(const std::string& ns, const UdpLatencyBench& b, uint16_t port) {
        thread_ = std::thread([this, ns, &b, port] {
            result_ = in_netns(ns, [&] { return serve(b, port, stop_, ready_); });
            done_.store(true);
        });
    }
    ~ServerThread() { (void)finish(); }
    ServerThread(const ServerThread&) = delete;
    ServerThread& operator=(const ServerThread&) = delete;

    // Waits up to 5 s for the socket to be bound.
    Result<void> wait_ready() {
        const auto ready_by = Clock::now() + std::chrono::seconds(5);
        while (!ready_.load() && !done_.load() && Clock::now() < ready_by)
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        if (ready_.load()) return {};
        (void)finish();
        return result_ ? Error{ErrorKind::Io, ETIMEDOUT, "serve", "start", {}, {}}
                       : result_.error();
    }
    // Stops the server; what it returned.
    Result<void> finish() {
        stop_.store(true);
        if (thread_.joinable()) thread_.join();
        return result_;
    }

  private:
    std::atomic<bool> stop_{false}, ready_{false}, done_{false};
    Result<void> result_ = Error{ErrorKind::Io, 0, "serve", "not run", {}, {}};
    std::thread thread_;
};

// Correctness first: both targets give the right answers.
Result<void> verify_targets(Target& tx, Target& tu, const UdpLatencyBench& b,
                            const UdpLatencyOptions& o, std::vector<uint8_t>& buf,
                            UdpLatencyResult& res) {
    const auto& l = b.labels;
    const std::string xdp_who = l.prog + " (XDP_TX)";
    for (size_t k = 0; k < std::min(o.verify, b.requests.size()); ++k) {
        for (Target* t : {&tx, &tu}) {
            const Trip trip = round_trip(*t, b, k, 1000, buf, false);
            const std::string& who = t == &tx ? xdp_who : l.user_who;
            if (trip == Trip::Lost)
                return Error{ErrorKind::Io, ETIMEDOUT, who, "verify",
                             "no reply to " + l.item + " " + std::to_string(k), {}};
            if (trip == Trip::Wrong)
                return Error{ErrorKind::Data, 0, who, "verify",
                             l.answer + " of " + l.item + " " + std::to_string(k) +
                                 " differs from " + l.reference,
                             {}};
        }
        ++res.verified;
    }
    tx.lost = tx.wrong = tu.lost = tu.wrong = 0;
    return {};
}

// Timed phase: blocks of round trips, alternating which target goes first.
void timed_phase(Target& tx, Target& tu, const UdpLatencyBench& b, const UdpLatencyOptions& o,
                 std::vector<uint8_t>& buf, UdpLatencyResult& res) {
    tx.cycles.reserve(o.round_trips);
    tu.cycles.reserve(o.round_trips);
    const auto start = Clock::now();
    const auto give_up = start + std::chrono::seconds(o.max_seconds);
    size_t done = 0;
    for (size_t blk = 0; done < o.round_trips && !res.aborted; ++blk) {
        const size_t n = std::min(o.block, o.round_trips - done);
        Target* order[2] = {&tx, &tu};
        if (blk % 2) std::swap(order[0], order[1]);
        for (Target* t : order)
            for (size_t j = 0; j < n; ++j) {
                if (Clock::now() >= give_up || (o.stop && o.stop->load())) {
                    res.aborted = true;
                    break;
                }
                (void)round_trip(*t, b, (done + j) % b.requests.size(), o.timeout_ms, buf, true);
            }
        done += n;
    }
    res.seconds = std::chrono::duration<double>(Clock::now() - start).count();
}

LatencyStats summarize(Target& t, double tsc_hz) {
    LatencyStats s;
    static_cast<LatencySummary&>(s) = summarize_cycles(t.cycles, tsc_hz);
    s.lost = t.lost;
    s.wrong = t.wrong;
    return s;
}

// The client in namespace A: verification, then the timed phase.
Result<void> run_client(const std::string& ns, const UdpLatencyBench& b,
                        const UdpLatencyOptions& o, UdpLatencyResult& res) {
    Target tx, tu;
    auto r = in_netns(ns, [&]() -> Result<void> {
        auto a = connect_target(o.xdp_port);
        if (!a) return a.error();
        auto u = connect_target(o.user_port);
        if (!u) return u.error();
        tx = std::move(*a);
        tu = std::move(*u);
        std::vector<uint8_t> buf(2048);
        if (auto v = verify_targets(tx, tu, b, o, buf, res); !v) return v;
        timed_phase(tx, tu, b, o, buf, res);
        return {};
    });
    if (!r) return r;
    res.xdp = summarize(tx, res.tsc_hz);
    res.user = summarize(tu, res.tsc_hz);
    return {};
}

}  // namespace

Result<void> check_latency_options(const UdpLatencyOptions& o) {
    if (o.round_trips == 0 || o.block == 0 || o.timeout_ms <= 0 || o.max_seconds <= 0 ||
        o.test_run_repeat == 0 || o.xdp_port == o.user_port)
        return Error{ErrorKind::Usage, 0, "bench", "check options",
                     "windows, block, timeout, max_seconds and repeat must be > 0; two ports",
                     {}};
    if (::geteuid() != 0)
        return Error{ErrorKind::Usage, EPERM, "bench", "start", "needs network namespaces and XDP",
                     "run as root"};
    return {};
}

Result<UdpLatencyResult> udp_latency_bench(const UdpLatencyBench& b, const UdpLatencyOptions& o) {
    if (auto v = check_latency_options(o); !v) return v.error();
    if (b.requests.empty() || !b.check || !b.answer || !b.xdp.attach || !b.xdp.detach ||
        b.prog_fd < 0 || b.pass_fd < 0)
        return Error{ErrorKind::Usage, 0, "bench", "check options",
                     "requests, check, answer, the XDP side and both programs are needed", {}};
    UdpLatencyResult res;
    res.repeat = o.test_run_repeat;
    res.tsc_invariant = tsc_invariant();
    if (!res.tsc_invariant)
        ETC_WARN("bench: the CPU lacks constant_tsc/nonstop_tsc; TSC timings may be off");
    res.tsc_hz = calibrate_tsc();
    res.cpus = std::thread::hardware_concurrency();
    if (double la[1]; ::getloadavg(la, 1) == 1) res.loadavg = la[0];
    if (auto r = measure_test_run(b, o, res); !r) return r.error();

    // Topology, then the attachments and the server (destroyed before it,
    // in reverse order).
    auto topo = b.topology.create();
    if (!topo) return topo.error();
    XdpAttachment att_b, att_a;
    if (auto r = att_b.attach(topo->ns_b(), topo->veth_b(), b.xdp); !r) return r.error();
    // veth delivers XDP_TX frames only to a peer with NAPI on (an XDP
    // program or GRO): xdp_pass on veth A, the same for both targets.
    if (auto r = att_a.attach(topo->ns_a(), topo->veth_a(), native_xdp_side(b.pass_fd)); !r)
        return r.error();
    ServerThread srv(topo->ns_b(), b, o.user_port);
    if (auto r = srv.wait_ready(); !r) return r.error();

    auto client = run_client(topo->ns_a(), b, o, res);
    auto served = srv.finish();
    att_a.detach();
    att_b.detach();
    if (!client) return client.error();
    if (!served) return served.error();
    if (res.xdp.p50_us > 0) res.ratio_p50 = res.user.p50_us / res.xdp.p50_us;
    if (res.xdp.p99_us > 0) res.ratio_p99 = res.user.p99_us / res.xdp.p99_us;
    return res;
}

std::string format_latency(const UdpLatencyResult& r, const UdpLatencyLabels& l) {
    std::string s;
    s += l.title + "\n";
    s += fmt("TSC %.3f GHz, calibrated against CLOCK_MONOTONIC over 100 ms; constant_tsc and "
             "nonstop_tsc: %s\n",
             r.tsc_hz / 1e9, r.tsc_invariant ? "yes" : "NO (timings may be unreliable)");
    if (r.loadavg >= 0)
        s += fmt("load average %.2f on %u CPUs at the start (the user-space path needs thread "
                 "wake-ups: load shows there first)\n",
                 r.loadavg, r.cpus);
    s += fmt("verified before timing: %zu %ss per target agree with %s\n", r.verified,
             l.item.c_str(), l.reference.c_str());
    s += fmt("timed phase: %.2f s%s\n\n", r.seconds,
             r.aborted ? " (ABORTED: time limit or signal; partial figures)" : "");
    s += fmt("%-34s %9s %6s %6s %9s %9s %9s %9s %9s\n", "round trip (µs)", "samples", "lost",
             "wrong", "mean", "p50", "p99", "p99.9", "max");
    auto row = [&](const std::string& name, const LatencyStats& st) {
        s += fmt("%-34s %9zu %6zu %6zu %9.2f %9.2f %9.2f %9.2f %9.2f\n", name.c_str(), st.samples,
                 st.lost, st.wrong, st.mean_us, st.p50_us, st.p99_us, st.p999_us, st.max_us);
    };
    row(l.xdp_row, r.xdp);
    row(l.user_row, r.user);
    auto ratio = [](double a, double b) { return b > 0 ? a / b : 0.0; };
    s += fmt("%-34s %9s %6s %6s %9.2f %9.2f %9.2f %9.2f %9.2f\n\n", "ratio user-space / XDP", "",
             "", "", ratio(r.user.mean_us, r.xdp.mean_us), ratio(r.user.p50_us, r.xdp.p50_us),
             ratio(r.user.p99_us, r.xdp.p99_us), ratio(r.user.p999_us, r.xdp.p999_us),
             ratio(r.user.max_us, r.xdp.max_us));
    s += fmt("BPF_PROG_TEST_RUN, kernel-measured ns per run, same run:\n");
    s += fmt("%-34s %12s %12s %12s\n", "", l.prog.c_str(), "xdp_pass", "difference");
    s += fmt("%-34s %12.1f %12.1f %12.1f\n",
             fmt("fresh request, repeat 1 (x%u)", r.repeat).c_str(), r.test_run_prog_ns,
             r.test_run_pass_ns, r.test_run_prog_ns - r.test_run_pass_ns);
    s += fmt("%-34s %12.1f %12.1f %12.1f\n", fmt("one frame, repeat %u", r.repeat).c_str(),
             r.test_run_prog_rep_ns, r.test_run_pass_rep_ns,
             r.test_run_prog_rep_ns - r.test_run_pass_rep_ns);
    s += l.repeat_note;
    return s;
}

}  // namespace etcpipe
