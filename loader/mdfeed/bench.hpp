// `etcpipe md bench` and `make bench`: every row side by side in one run.
//   decode:     ns per record and records/s on one core for 3201 and 5801
//               records, raw and STEP framing, against memcpy of the bytes;
//   reassembly: Gb/s on one core in order and with 3 % reordering, against
//               memcpy of the bytes;
//   latency:    one way, sender stamp → decoded record, between two network
//               namespaces, 100- and 1,408-byte messages: (a) md listen over
//               AF_XDP busy-polling, (b) a blocking kernel UDP socket, (c) a
//               busy-polling one, (d) a kernel TCP client, (e) a TCP connection
//               copied by tc mirred to a monitor port and reassembled by us;
//               p50/p99/p99.9/max/lost, the AF_XDP breakdown, ratios to (a).
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "common/result.hpp"

namespace etcpipe::md {

struct BenchOptions {
    std::string templates = "testdata/mdfeed/sse.xml";
    std::vector<std::string> rows;   // empty: all
    bool quick = false;
    uint64_t latency_messages = 20000;
    double latency_rate = 10000;     // 100-byte messages per second (larger ones: same bytes/s)
};

[[nodiscard]] Result<void> run_bench(const BenchOptions& o, std::FILE* out);

}  // namespace etcpipe::md
