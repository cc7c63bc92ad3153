#include "anova/latency_bench.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <bpf/libbpf.h>
#include <linux/if_link.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <random>
#include <thread>
#include <vector>

#include "common/fmt.hpp"
#include "anova/net_tools.hpp"
#include "anova/wire.hpp"
#include "common/fd.hpp"
#include "common/log.hpp"
#include "common/skeleton.hpp"
#include "common/test_run.hpp"
#include "common/xdp_attach.hpp"
#include "xdp_pass.skel.h"

namespace etcpipe::anova {

Result<NetnsPair> BenchTopology::create() {
    if (::geteuid() != 0)
        return Error{ErrorKind::Usage, EPERM, "bench", "create network namespaces", {},
                     "run as root"};
    const std::string pid = std::to_string(::getpid());
    VethPairSpec spec;
    spec.ns_a = "etcanA" + pid;
    spec.ns_b = "etcanB" + pid;
    spec.veth_a = "etcva" + pid;
    spec.veth_b = "etcvb" + pid;
    spec.mac_a = "02:78:00:00:00:01";
    spec.mac_b = "02:78:00:00:00:02";
    spec.addr_a = std::string(kAddrA) + "/24";
    spec.addr_b = std::string(kAddrB) + "/24";
    spec.static_neighbours = true;
    return NetnsPair::create(spec);
}

namespace {

// The program attached to an interface of a namespace; detached on destruction.
class XdpAttachment {
  public:
    XdpAttachment() = default;
    XdpAttachment(const XdpAttachment&) = delete;
    XdpAttachment& operator=(const XdpAttachment&) = delete;
    ~XdpAttachment() { detach(); }

    Result<void> attach(const std::string& ns, const std::string& iface, int prog_fd) {
        auto r = in_netns(ns, [&]() -> Result<void> {
            auto idx = interface_index(iface);
            if (!idx) return idx.error();
            int err = bpf_xdp_attach(*idx, prog_fd, XDP_FLAGS_DRV_MODE, nullptr);
            if (err)
                return make_error(ErrorKind::Bpf, err, iface, "attach XDP program (native)", {},
                                  "veth supports native XDP since Linux 4.19");
            ifindex_ = *idx;
            return {};
        });
        if (r) ns_ = ns;
        return r;
    }
    void detach() {
        if (ns_.empty()) return;
        auto r = in_netns(ns_, [&]() -> Result<void> {
            int err = bpf_xdp_detach(ifindex_, XDP_FLAGS_DRV_MODE, nullptr);
            if (err) return make_error(ErrorKind::Bpf, err, ns_, "detach XDP program");
            return {};
        });
        if (!r) ETC_WARN("%s", r.error().message().c_str());
        ns_.clear();
    }

  private:
    std::string ns_;
    int ifindex_ = 0;
};

// A deterministic random walk with level shifts: both verdicts occur.
std::vector<double> synthetic_series(size_t n) {
    std::mt19937_64 rng(0x5eed);
    std::normal_distribution<double> step(0.0, 0.02);
    std::uniform_real_distribution<double> u(0.0, 1.0);
    std::vector<double> v(n);
    double x = 10.0;
    for (size_t i = 0; i < n; ++i) {
        x += step(rng);
        if (u(rng) < 0.02) x += u(rng) < 0.5 ? -0.5 : 0.5;
        x = std::clamp(x, 1.0, 100.0);
        v[i] = x;
    }
    return v;
}

struct Request {
    std::vector<uint8_t> bytes;
    uint32_t ref = 0;  // decide_u32
};

// One client socket in namespace A, connected to B:port.
struct Target {
    UniqueFd fd;
    std::vector<uint64_t> cycles;
    size_t lost = 0, wrong = 0;
};

enum class Trip { Ok, Lost, Wrong };

Trip round_trip(Target& t, const Request& rq, int timeout_ms, std::vector<uint8_t>& buf,
                bool record) {
    const auto until = Clock::now() + std::chrono::milliseconds(timeout_ms);
    const uint64_t c0 = read_tsc();
    if (::send(t.fd.get(), rq.bytes.data(), rq.bytes.size(), 0) < 0) {
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
        uint32_t tag = 0;
        if (!is_reply_to({buf.data(), static_cast<size_t>(len)}, rq.bytes, tag)) continue;
        const uint64_t c1 = read_tsc();
        if (record) t.cycles.push_back(c1 - c0);
        if (tag != rq.ref) {
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
    // 0, xdp_anova keeps it 0): a checksum would leave veth as
    // CHECKSUM_PARTIAL (pseudo-header sum only), which XDP_TX sends back
    // unfinished and the client would drop the reply.
    auto fd = connect_udp(BenchTopology::kAddrB, port, false);
    if (!fd) return fd.error();
    t.fd = std::move(*fd);
    return t;
}

Result<void> check_options(const BenchOptions& o) {
    if (o.windows == 0 || o.block == 0 || o.timeout_ms <= 0 || o.max_seconds <= 0 ||
        o.test_run_repeat == 0 || o.xdp_port == o.user_port)
        return Error{ErrorKind::Usage, 0, "bench", "check options",
                     "windows, block, timeout, max_seconds and repeat must be > 0; two ports",
                     {}};
    if (::geteuid() != 0)
        return Error{ErrorKind::Usage, EPERM, "bench", "start", "needs network namespaces and XDP",
                     "run as root"};
    return check_params(o.params);
}

// Requests (u32 encoding) and their reference verdicts.
Result<std::vector<Request>> build_requests(const BenchOptions& o) {
    std::vector<double> series;
    if (o.series_path.empty()) {
        series = synthetic_series(4096);
    } else {
        auto r = read_series(o.series_path);
        if (!r) return r.error();
        series = std::move(*r);
    }
    std::vector<Request> reqs;
    for (size_t i = 0; i + ANOVA_SAMPLES <= series.size(); ++i) {
        std::span<const double, ANOVA_SAMPLES> w(series.data() + i, ANOVA_SAMPLES);
        auto bytes = encode_request(w, ANOVA_ENC_U32, o.params.frac_bits);
        if (!bytes) continue;
        std::array<uint32_t, ANOVA_SAMPLES> x;
        for (size_t k = 0; k < ANOVA_SAMPLES; ++k) x[k] = *to_fixed(w[k], o.params.frac_bits);
        reqs.push_back({std::move(*bytes), decide_u32(x, o.params)});
    }
    if (reqs.empty())
        return Error{ErrorKind::Data, 0, o.series_path, "build requests",
                     "no representable 16-sample window", {}};
    return reqs;
}

// BPF_PROG_TEST_RUN: a fresh request frame per call (repeat 1), both
// programs interleaved; then one call with repeat N on one frame.
Result<void> measure_test_run(int anova_fd, int pass_fd, const std::vector<Request>& reqs,
                              const BenchOptions& o, BenchResult& res) {
    std::vector<std::vector<uint8_t>> frames;
    for (size_t k = 0; k < std::min<size_t>(reqs.size(), 256); ++k)
        frames.push_back(build_udp_frame(reqs[k].bytes, o.xdp_port));
    TestRunBuffers bufs;
    uint64_t anova_ns = 0, pass_ns = 0;
    for (uint32_t i = 0; i < o.test_run_repeat; ++i) {
        const auto& f = frames[i % frames.size()];
        auto a = xdp_test_run(anova_fd, f, {}, 1, bufs);
        if (!a) return a.error();
        if (i == 0 && a->action != XDP_TX)
            return Error{ErrorKind::Bpf, 0, ANOVA_PROG_NAME, "test run",
                         "a request in tx mode returned action " + std::to_string(a->action),
                         "expected XDP_TX (3)"};
        auto b = xdp_test_run(pass_fd, f, {}, 1, bufs);
        if (!b) return b.error();
        anova_ns += a->duration_ns;
        pass_ns += b->duration_ns;
    }
    res.test_run_anova_ns = static_cast<double>(anova_ns) / o.test_run_repeat;
    res.test_run_pass_ns = static_cast<double>(pass_ns) / o.test_run_repeat;
    auto a = xdp_test_run(anova_fd, frames[0], {}, o.test_run_repeat, bufs);
    if (!a) return a.error();
    auto b = xdp_test_run(pass_fd, frames[0], {}, o.test_run_repeat, bufs);
    if (!b) return b.error();
    res.test_run_anova_rep_ns = a->duration_ns;
    res.test_run_pass_rep_ns = b->duration_ns;
    return {};
}

// The user-space server on a thread in namespace `ns`; stopped and joined
// on every exit path.
class ServerThread {
  public:
    ServerThread(const std::string& ns, const BenchOptions& o) {
        thread_ = std::thread([this, ns, &o] {
            result_ = in_netns(ns, [&]() -> Result<void> {
                ServeOptions so;
                so.bind = BenchTopology::kAddrB;
                so.port = o.user_port;
                so.params = o.params;
                so.encoding = ANOVA_ENC_U32;
                so.stop = &stop_;
                so.ready = &ready_;
                so.poll_ms = 50;
                auto st = serve(so);
                if (!st) return st.error();
                return {};
            });
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

// Correctness first: both targets answer with decide_u32's verdict.
Result<void> verify_targets(Target& tx, Target& tu, const std::vector<Request>& reqs,
                            const BenchOptions& o, std::vector<uint8_t>& buf, BenchResult& res) {
    for (size_t k = 0; k < std::min(o.verify, reqs.size()); ++k) {
        for (Target* t : {&tx, &tu}) {
            const Trip trip = round_trip(*t, reqs[k], 1000, buf, false);
            const char* who = t == &tx ? ANOVA_PROG_NAME " (XDP_TX)" : "user-space serve";
            if (trip == Trip::Lost)
                return Error{ErrorKind::Io, ETIMEDOUT, who, "verify",
                             "no reply to window " + std::to_string(k), {}};
            if (trip == Trip::Wrong)
                return Error{ErrorKind::Data, 0, who, "verify",
                             "verdict of window " + std::to_string(k) + " differs from decide_u32",
                             {}};
        }
        ++res.verified;
    }
    tx.lost = tx.wrong = tu.lost = tu.wrong = 0;
    return {};
}

// Timed phase: blocks of round trips, alternating which target goes first.
void timed_phase(Target& tx, Target& tu, const std::vector<Request>& reqs, const BenchOptions& o,
                 std::vector<uint8_t>& buf, BenchResult& res) {
    tx.cycles.reserve(o.windows);
    tu.cycles.reserve(o.windows);
    const auto start = Clock::now();
    const auto give_up = start + std::chrono::seconds(o.max_seconds);
    size_t done = 0;
    for (size_t blk = 0; done < o.windows && !res.aborted; ++blk) {
        const size_t n = std::min(o.block, o.windows - done);
        Target* order[2] = {&tx, &tu};
        if (blk % 2) std::swap(order[0], order[1]);
        for (Target* t : order)
            for (size_t j = 0; j < n; ++j) {
                if (Clock::now() >= give_up || (o.stop && o.stop->load())) {
                    res.aborted = true;
                    break;
                }
                (void)round_trip(*t, reqs[(done + j) % reqs.size()], o.timeout_ms, buf, true);
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
Result<void> run_client(const std::string& ns, const std::vector<Request>& reqs,
                        const BenchOptions& o, BenchResult& res) {
    Target tx, tu;
    auto r = in_netns(ns, [&]() -> Result<void> {
        auto a = connect_target(o.xdp_port);
        if (!a) return a.error();
        auto b = connect_target(o.user_port);
        if (!b) return b.error();
        tx = std::move(*a);
        tu = std::move(*b);
        std::vector<uint8_t> buf(2048);
        if (auto v = verify_targets(tx, tu, reqs, o, buf, res); !v) return v;
        timed_phase(tx, tu, reqs, o, buf, res);
        return {};
    });
    if (!r) return r;
    res.xdp = summarize(tx, res.tsc_hz);
    res.user = summarize(tu, res.tsc_hz);
    return {};
}

}  // namespace

Result<BenchResult> latency_bench(const BenchOptions& o) {
    if (auto v = check_options(o); !v) return v.error();
    BenchResult res;
    res.repeat = o.test_run_repeat;
    res.tsc_invariant = tsc_invariant();
    if (!res.tsc_invariant)
        ETC_WARN("bench: the CPU lacks constant_tsc/nonstop_tsc; TSC timings may be off");
    res.tsc_hz = calibrate_tsc();
    res.cpus = std::thread::hardware_concurrency();
    if (double la[1]; ::getloadavg(la, 1) == 1) res.loadavg = la[0];
    auto reqs = build_requests(o);
    if (!reqs) return reqs.error();

    // The programs: xdp_anova in tx mode, and xdp_pass as the floor.
    ProgramOptions popts;
    popts.params = o.params;
    popts.port = o.xdp_port;
    popts.reply = ANOVA_REPLY_TX;
    popts.encoding = ANOVA_ENC_U32;
    auto prog = Program::load(popts);
    if (!prog) return prog.error();
    auto pass = Skeleton<xdp_pass_bpf>::open("xdp_pass.bpf.o");
    if (!pass) return pass.error();
    if (auto r = pass->load("xdp_pass.bpf.o"); !r) return r.error();
    const int pass_fd = bpf_program__fd(pass->get()->progs.xdp_pass);
    if (auto r = measure_test_run(prog->prog_fd(), pass_fd, *reqs, o, res); !r) return r.error();

    // Topology, then the attachments and the server (destroyed before it,
    // in reverse order).
    auto topo = BenchTopology::create();
    if (!topo) return topo.error();
    XdpAttachment att_b, att_a;
    if (auto r = att_b.attach(topo->ns_b(), topo->veth_b(), prog->prog_fd()); !r) return r.error();
    // veth delivers XDP_TX frames only to a peer with NAPI on (an XDP
    // program or GRO): xdp_pass on veth A, the same for both targets.
    if (auto r = att_a.attach(topo->ns_a(), topo->veth_a(), pass_fd); !r) return r.error();
    ServerThread srv(topo->ns_b(), o);
    if (auto r = srv.wait_ready(); !r) return r.error();

    auto client = run_client(topo->ns_a(), *reqs, o, res);
    auto served = srv.finish();
    att_a.detach();
    att_b.detach();
    if (!client) return client.error();
    if (!served) return served.error();
    if (res.xdp.p50_us > 0) res.ratio_p50 = res.user.p50_us / res.xdp.p50_us;
    if (res.xdp.p99_us > 0) res.ratio_p99 = res.user.p99_us / res.xdp.p99_us;
    return res;
}

std::string format_bench(const BenchResult& r) {
    std::string s;
    s += fmt("ANOVA latency: one UDP request, decision, reply; client in netns A, veth to netns "
             "B; one request at a time\n");
    s += fmt("TSC %.3f GHz, calibrated against CLOCK_MONOTONIC over 100 ms; constant_tsc and "
             "nonstop_tsc: %s\n",
             r.tsc_hz / 1e9, r.tsc_invariant ? "yes" : "NO (timings may be unreliable)");
    if (r.loadavg >= 0)
        s += fmt("load average %.2f on %u CPUs at the start (the user-space path needs thread "
                 "wake-ups: load shows there first)\n",
                 r.loadavg, r.cpus);
    s += fmt("verified before timing: %zu windows per target agree with decide_u32\n",
             r.verified);
    s += fmt("timed phase: %.2f s%s\n\n", r.seconds,
             r.aborted ? " (ABORTED: time limit or signal; partial figures)" : "");
    s += fmt("%-34s %9s %6s %6s %9s %9s %9s %9s %9s\n", "round trip (µs)", "samples", "lost",
             "wrong", "mean", "p50", "p99", "p99.9", "max");
    auto row = [&](const char* name, const LatencyStats& l) {
        s += fmt("%-34s %9zu %6zu %6zu %9.2f %9.2f %9.2f %9.2f %9.2f\n", name, l.samples, l.lost,
                 l.wrong, l.mean_us, l.p50_us, l.p99_us, l.p999_us, l.max_us);
    };
    row(ANOVA_PROG_NAME " (native XDP, XDP_TX)", r.xdp);
    row("user-space serve (UDP socket)", r.user);
    auto ratio = [](double a, double b) { return b > 0 ? a / b : 0.0; };
    s += fmt("%-34s %9s %6s %6s %9.2f %9.2f %9.2f %9.2f %9.2f\n\n", "ratio user-space / XDP", "",
             "", "", ratio(r.user.mean_us, r.xdp.mean_us), ratio(r.user.p50_us, r.xdp.p50_us),
             ratio(r.user.p99_us, r.xdp.p99_us), ratio(r.user.p999_us, r.xdp.p999_us),
             ratio(r.user.max_us, r.xdp.max_us));
    s += fmt("BPF_PROG_TEST_RUN, kernel-measured ns per run, same run:\n");
    s += fmt("%-34s %12s %12s %12s\n", "", ANOVA_PROG_NAME, "xdp_pass", "difference");
    s += fmt("%-34s %12.1f %12.1f %12.1f\n",
             fmt("fresh request, repeat 1 (x%u)", r.repeat).c_str(), r.test_run_anova_ns,
             r.test_run_pass_ns, r.test_run_anova_ns - r.test_run_pass_ns);
    s += fmt("%-34s %12.1f %12.1f %12.1f\n", fmt("one frame, repeat %u", r.repeat).c_str(),
             r.test_run_anova_rep_ns, r.test_run_pass_rep_ns,
             r.test_run_anova_rep_ns - r.test_run_pass_rep_ns);
    s += "  (repeat N reuses the frame the previous run changed: after the first run it carries\n"
         "   a verdict and swapped ports, so only the first of the N runs decides; the repeat 1\n"
         "   row is the per-decision cost, including the kernel's timer overhead for both)\n";
    return s;
}

}  // namespace etcpipe::anova
