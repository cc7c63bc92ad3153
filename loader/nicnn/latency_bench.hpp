// The latency benchmark of the digit CNN (`etcpipe nicnn bench`, `make
// bench`): real digit images as requests with NICNN_F_REPLY, one at a time
// from namespace A over a veth to namespace B, answered either by xdp_nicnn
// (native XDP on veth B, XDP_TX) or by a user-space UDP server running
// nicnn::reference (answer_in_place); every reply is checked against
// reference(). Plus BPF_PROG_TEST_RUN of xdp_nicnn next to xdp_pass on the
// same frames, and reference()'s own compute time per image. The nicnn side
// of common/udp_latency.hpp, which builds and removes the topology
// (namespaces "etcnnA<pid>"/"etcnnB<pid>", veth "etcna<pid>"/"etcnb<pid>").
#pragma once

#include <string>
#include <vector>

#include "common/result.hpp"
#include "common/udp_latency.hpp"
#include "etcpipe/nicnn.h"
#include "nicnn/nicnn.hpp"

namespace etcpipe::nicnn {

[[nodiscard]] LatencyTopology bench_topology();

struct BenchOptions : UdpLatencyOptions {
    BenchOptions() {
        round_trips = 100000;  // per target, cycling through the images
        xdp_port = NICNN_PORT;
        user_port = NICNN_PORT + 1;
    }
    std::vector<Image> images;  // the requests; empty: load_digits(default_digits_path())
    std::string split = "test"; // of the default digits: test (1347..), train or all
    size_t reference_calls = 200000;  // reference() timed alone this often
};

struct BenchResult : UdpLatencyResult {
    size_t images = 0;             // distinct images sent
    std::string source;            // where they came from
    double reference_ns = 0;       // reference() per image, user space alone
    size_t reference_calls = 0;
    bool multiprog = false;        // xdp_nicnn under libxdp's dispatcher on veth B
};

[[nodiscard]] Result<BenchResult> latency_bench(const BenchOptions& opts);
[[nodiscard]] std::string format_bench(const BenchResult& r);

}  // namespace etcpipe::nicnn
