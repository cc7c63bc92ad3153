// BPF_PROG_TEST_RUN of one frame through any XDP program (replay, the
// ANOVA tools, the tests and benchmarks). What the metadata area in front of
// the frame means belongs to the program: callers pass their own bytes in and
// decode the bytes that come back.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "common/result.hpp"

namespace etcpipe {

// Scratch space for xdp_test_run, reused across calls.
struct TestRunBuffers {
    std::vector<uint8_t> in, out;
};

struct XdpTestRun {
    int action = 0;                  // XDP_* verdict
    uint32_t duration_ns = 0;        // kernel-measured, averaged over repeats
    std::span<const uint8_t> meta;   // metadata area after the run (points into bufs.out)
    std::span<const uint8_t> frame;  // the frame after the run (points into bufs.out)
};

// Runs `frame` with `meta` (may be empty) in the XDP metadata area just in
// front of it, `repeat` times. The spans returned stay valid until bufs is
// used again.
enum class TestRunOutput {
    Whole,     // metadata and frame as the program left them
    MetaOnly,  // only the metadata area, for a program that keeps it at the
               // size passed in (no bpf_xdp_adjust_meta): the kernel then
               // copies no frame back and `frame` is empty (frames over
               // 3 KB, and runs without metadata, still come back whole)
};
[[nodiscard]] Result<XdpTestRun> xdp_test_run(int prog_fd, std::span<const uint8_t> frame,
                                              std::span<const uint8_t> meta, uint32_t repeat,
                                              TestRunBuffers& bufs,
                                              TestRunOutput output = TestRunOutput::Whole);

}  // namespace etcpipe
