#include "common/latency.hpp"

#include <time.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <string>
#include <thread>

namespace etcpipe {

bool tsc_invariant() {
    std::ifstream f("/proc/cpuinfo");
    std::string line;
    while (std::getline(f, line)) {
        if (line.rfind("flags", 0) != 0) continue;
        line += ' ';
        return line.find(" constant_tsc ") != std::string::npos &&
               line.find(" nonstop_tsc ") != std::string::npos;
    }
    return false;
}

double calibrate_tsc() {
    auto now_ns = [] {
        timespec ts{};
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
    };
    int64_t t0 = now_ns();
    uint64_t c0 = read_tsc();
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    int64_t t1 = now_ns();
    uint64_t c1 = read_tsc();
    return static_cast<double>(c1 - c0) * 1e9 / static_cast<double>(t1 - t0);
}

uint64_t percentile(std::span<const uint64_t> sorted, double p) {
    size_t idx = static_cast<size_t>(std::ceil(p * static_cast<double>(sorted.size())));
    return sorted[std::min(sorted.size() - 1, idx ? idx - 1 : 0)];
}

LatencySummary summarize_cycles(std::vector<uint64_t>& cycles, double tsc_hz) {
    LatencySummary s;
    s.samples = cycles.size();
    if (cycles.empty()) return s;
    std::sort(cycles.begin(), cycles.end());
    auto us = [&](uint64_t c) { return static_cast<double>(c) / tsc_hz * 1e6; };
    s.p50_us = us(percentile(cycles, 0.50));
    s.p99_us = us(percentile(cycles, 0.99));
    s.p999_us = us(percentile(cycles, 0.999));
    s.max_us = us(cycles.back());
    long double sum = 0;
    for (uint64_t c : cycles) sum += c;
    s.mean_us = us(static_cast<uint64_t>(sum / cycles.size()));
    return s;
}

}  // namespace etcpipe
