// The latency benchmark (`etcpipe anova bench`, `make bench`): one request
// at a time from namespace A over a veth to namespace B, answered either by
// xdp_anova (native XDP, XDP_TX) or by a user-space server running
// answer_in_place, timed with the TSC; plus the kernel-measured
// BPF_PROG_TEST_RUN cost next to xdp_pass. The ANOVA side (requests, the
// check against decide_u32, the programs) of common/udp_latency.hpp, which
// builds and removes the two-namespace topology and does the timing.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

#include "anova/anova.hpp"
#include "common/netns.hpp"
#include "common/result.hpp"
#include "common/udp_latency.hpp"
#include "etcpipe/anova.h"

namespace etcpipe::anova {

// The common benchmark's topology (common/udp_latency.hpp) with the ANOVA
// names: namespaces "etcanA<pid>"/"etcanB<pid>", veth "etcva<pid>"/"etcvb<pid>".
struct BenchTopology {
    static constexpr const char* kAddrA = LatencyTopology::kAddrA;
    static constexpr const char* kAddrB = LatencyTopology::kAddrB;

    [[nodiscard]] static LatencyTopology names();
    [[nodiscard]] static Result<NetnsPair> create();
};

using etcpipe::LatencyStats;

// round_trips: windows per target; verify: windows checked against
// decide_u32 first.
struct BenchOptions : UdpLatencyOptions {
    BenchOptions() {
        xdp_port = ANOVA_DEFAULT_PORT;
        user_port = ANOVA_DEFAULT_PORT + 1;
    }
    std::string series_path;  // empty: a synthetic random walk
    Params params;            // u32 encoding, params.frac_bits
};

// test_run_prog_* are xdp_anova's.
using BenchResult = UdpLatencyResult;

[[nodiscard]] Result<BenchResult> latency_bench(const BenchOptions& opts);
[[nodiscard]] std::string format_bench(const BenchResult& r);

}  // namespace etcpipe::anova
