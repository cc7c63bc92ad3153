// The latency benchmark (`etcpipe anova bench`, `make bench`): one request
// at a time from namespace A over a veth to namespace B, answered either by
// xdp_anova (native XDP, XDP_TX) or by the user-space server, timed with the
// TSC; plus the kernel-measured BPF_PROG_TEST_RUN cost next to xdp_pass. It
// builds and removes its own two-namespace topology.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

#include "anova/anova.hpp"
#include "common/latency.hpp"
#include "common/netns.hpp"
#include "common/result.hpp"
#include "etcpipe/anova.h"

namespace etcpipe::anova {

// Two namespaces "etcanA<pid>"/"etcanB<pid>", veth "etcva<pid>"/"etcvb<pid>"
// 10.78.0.1/24 ↔ 10.78.0.2/24, static neighbours, IPv6 off, links up.
// Everything is removed by the NetnsPair's destructor (and by a failed create()).
struct BenchTopology {
    static constexpr const char* kAddrA = "10.78.0.1";
    static constexpr const char* kAddrB = "10.78.0.2";

    [[nodiscard]] static Result<NetnsPair> create();
};

// Round trips to one target: the summary of those answered, and the rest.
struct LatencyStats : LatencySummary {
    size_t lost = 0;          // timeouts
    size_t wrong = 0;         // verdict ≠ decide_u32
};

struct BenchOptions {
    size_t windows = 100000;            // round trips per target
    size_t block = 1000;                // interleaving block
    std::string series_path;            // empty: a synthetic random walk
    Params params;                      // u32 encoding, params.frac_bits
    uint16_t xdp_port = ANOVA_DEFAULT_PORT;
    uint16_t user_port = ANOVA_DEFAULT_PORT + 1;
    int timeout_ms = 200;               // per round trip
    int max_seconds = 60;               // the timed phase, both targets together
    uint32_t test_run_repeat = 10000;
    size_t verify = 32;                 // windows checked against decide_u32 first
    std::atomic<bool>* stop = nullptr;  // e.g. set by SIGINT
};

struct BenchResult {
    LatencyStats xdp, user;
    double ratio_p50 = 0, ratio_p99 = 0;   // user / xdp
    double tsc_hz = 0;
    bool tsc_invariant = false;            // constant_tsc and nonstop_tsc
    double loadavg = -1;                   // 1-minute load average at the start
    unsigned cpus = 0;                     // online CPUs
    bool aborted = false;                  // time limit or stop flag hit
    size_t verified = 0;                   // windows checked per target
    double seconds = 0;                    // timed phase
    // BPF_PROG_TEST_RUN, kernel-measured, same run:
    double test_run_anova_ns = 0;          // xdp_anova, fresh request each call (repeat 1)
    double test_run_pass_ns = 0;           // xdp_pass, same frames, repeat 1
    double test_run_anova_rep_ns = 0;      // xdp_anova, one call with repeat N
    double test_run_pass_rep_ns = 0;       // xdp_pass, one call with repeat N
    uint32_t repeat = 0;
};

[[nodiscard]] Result<BenchResult> latency_bench(const BenchOptions& opts);
[[nodiscard]] std::string format_bench(const BenchResult& r);

}  // namespace etcpipe::anova
