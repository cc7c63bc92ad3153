// Latency measurement for benchmarks: the TSC as a clock (read, calibrated
// against CLOCK_MONOTONIC, checked for invariance) and the summary of a set
// of round-trip times (nearest-rank percentiles, mean, max) in microseconds.
#pragma once

#include <x86intrin.h>

#include <cstdint>
#include <span>
#include <vector>

namespace etcpipe {

// The TSC; rdtscp waits for earlier instructions, so a round trip timed
// between two reads does not start early.
inline uint64_t read_tsc() {
    unsigned aux;
    return __rdtscp(&aux);
}

// Whether /proc/cpuinfo lists constant_tsc and nonstop_tsc (ticks at a fixed
// rate through frequency changes and idle states).
[[nodiscard]] bool tsc_invariant();

// TSC ticks per second, against CLOCK_MONOTONIC over ~100 ms.
[[nodiscard]] double calibrate_tsc();

struct LatencySummary {
    size_t samples = 0;
    double p50_us = 0, p99_us = 0, p999_us = 0, max_us = 0, mean_us = 0;
};

// The nearest-rank percentile p (0..1] of ascending `sorted` (not empty).
[[nodiscard]] uint64_t percentile(std::span<const uint64_t> sorted, double p);

// Summary of TSC tick counts; sorts `cycles` in place.
[[nodiscard]] LatencySummary summarize_cycles(std::vector<uint64_t>& cycles, double tsc_hz);

}  // namespace etcpipe
