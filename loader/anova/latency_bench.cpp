#include "anova/latency_bench.hpp"

#include <bpf/libbpf.h>

#include <algorithm>
#include <random>
#include <vector>

#include "anova/wire.hpp"
#include "common/skeleton.hpp"
#include "xdp_pass.skel.h"

namespace etcpipe::anova {

LatencyTopology BenchTopology::names() { return {"etcanA", "etcanB", "etcva", "etcvb"}; }

Result<NetnsPair> BenchTopology::create() { return names().create(); }

namespace {

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

// The request datagrams (u32 encoding) and their reference verdicts.
struct Requests {
    std::vector<std::vector<uint8_t>> bytes;
    std::vector<uint32_t> ref;  // decide_u32
};

// Requests (u32 encoding) and their reference verdicts.
Result<Requests> build_requests(const BenchOptions& o) {
    std::vector<double> series;
    if (o.series_path.empty()) {
        series = synthetic_series(4096);
    } else {
        auto r = read_series(o.series_path);
        if (!r) return r.error();
        series = std::move(*r);
    }
    Requests reqs;
    for (size_t i = 0; i + ANOVA_SAMPLES <= series.size(); ++i) {
        std::span<const double, ANOVA_SAMPLES> w(series.data() + i, ANOVA_SAMPLES);
        auto bytes = encode_request(w, ANOVA_ENC_U32, o.params.frac_bits);
        if (!bytes) continue;
        std::array<uint32_t, ANOVA_SAMPLES> x;
        for (size_t k = 0; k < ANOVA_SAMPLES; ++k) x[k] = *to_fixed(w[k], o.params.frac_bits);
        reqs.bytes.push_back(std::move(*bytes));
        reqs.ref.push_back(decide_u32(x, o.params));
    }
    if (reqs.bytes.empty())
        return Error{ErrorKind::Data, 0, o.series_path, "build requests",
                     "no representable 16-sample window", {}};
    return reqs;
}

UdpLatencyLabels labels() {
    UdpLatencyLabels l;
    l.title = "ANOVA latency: one UDP request, decision, reply; client in netns A, veth to netns "
              "B; one request at a time";
    l.prog = ANOVA_PROG_NAME;
    l.xdp_row = ANOVA_PROG_NAME " (native XDP, XDP_TX)";
    l.user_who = "user-space serve";
    l.user_row = "user-space serve (UDP socket)";
    l.item = "window";
    l.answer = "verdict";
    l.reference = "decide_u32";
    l.repeat_note =
        "  (repeat N reuses the frame the previous run changed: after the first run it carries\n"
        "   a verdict and swapped ports, so only the first of the N runs decides; the repeat 1\n"
        "   row is the per-decision cost, including the kernel's timer overhead for both)\n";
    return l;
}

}  // namespace

Result<BenchResult> latency_bench(const BenchOptions& o) {
    if (auto v = check_latency_options(o); !v) return v.error();
    if (auto v = check_params(o.params); !v) return v.error();
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

    UdpLatencyBench b;
    b.labels = labels();
    b.topology = BenchTopology::names();
    b.requests = std::move(reqs->bytes);
    b.check = [&](std::span<const uint8_t> reply, size_t k) {
        uint32_t tag = 0;
        if (!is_reply_to(reply, b.requests[k], tag)) return ReplyCheck::Other;
        return tag == reqs->ref[k] ? ReplyCheck::Right : ReplyCheck::Wrong;
    };
    b.xdp = native_xdp_side(prog->prog_fd());
    // What `etcpipe anova serve` does with a datagram.
    b.answer = [&](std::span<const uint8_t> d, std::vector<uint8_t>& reply) {
        reply.assign(d.begin(), d.end());
        return answer_in_place(reply, ANOVA_ENC_U32, o.params) == Ignored::None;
    };
    b.prog_fd = prog->prog_fd();
    b.pass_fd = bpf_program__fd(pass->get()->progs.xdp_pass);
    return udp_latency_bench(b, o);
}

std::string format_bench(const BenchResult& r) { return format_latency(r, labels()); }

}  // namespace etcpipe::anova
