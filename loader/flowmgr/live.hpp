// `etcpipe run`: the live pipeline. The FlowManager (attached here, or one
// already attached by `ip link`/`etcpipe load`) selects the first N payload
// packets of each flow at XDP; they reach user space through one AF_XDP
// socket per RX queue (tap) or the BPF ring buffer (inline). Packets are
// grouped by the program's flow id until a flow has H packets (or goes quiet,
// or the run ends); complete flows are batched into the feature extractor
// (GPU or CPU, gpu/features.hpp) and their features written as JSON Lines or
// rolling .npy parts.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "etcpipe/flowmgr.h"
#include "flowmgr/flowmgr.hpp"
#include "common/result.hpp"
#include "common/xdp_attach.hpp"
#include "common/xsk.hpp"
#include "gpu/features.hpp"

namespace etcpipe {

struct RunOptions {
    std::string iface;
    XdpMode mode = XdpMode::Native;
    FlowMgrOptions flowmgr;           // our own program (not with attach_existing)
    bool flowmgr_packets_set = false; // -N given: else N follows the feature spec's H
    bool attach_existing = false;     // use the FlowManager already on iface
    std::string pin_path;             // attach_existing: maps pinned here; pin: pin here
    bool pin = false;                 // leave the program attached after exit
    uint32_t queues = 0;              // 0: every RX queue of iface
    XskOptions xsk;
    std::string spec = "payload:10x256,sizes:10,iat:10";
    Device device = Device::Auto;
    unsigned threads = 1;             // CPU extractor threads (0: all)
    uint32_t batch_packets = 4096;    // dispatch when this many packets are ready…
    uint32_t batch_timeout_ms = 100;  // …or the oldest ready flow waited this long
    uint32_t flow_timeout_s = 10;     // emit a partial flow after this much silence
    uint32_t max_pending = 1u << 20;  // flows waiting for packets
    std::string output = "-";         // "-": JSON Lines on stdout; else a directory
    uint32_t rotate_flows = 65536;    // flows per .npy part
    bool stats = false;               // one line per second on stderr
    double duration_s = 0;            // 0: until SIGINT/SIGTERM
    std::string ready_file;           // touched once the sockets are ready (tests, scripts)
    std::string model_path;           // classify every emitted flow with this ONNX model
    bool spec_set = false;            // --features given (must then match the model's)
};

struct RunSummary {
    Counters kernel{};
    etc_run_stats run{};
    std::vector<std::pair<uint32_t, uint64_t>> per_queue;  // (RX queue, packets read)
};

// Runs until `stop` becomes true (signal) or the duration ends; flushes the
// partial flows, detaches (unless pinned or attach_existing) and returns the
// final counters.
[[nodiscard]] Result<RunSummary> run_live(const RunOptions& opts, const std::atomic<bool>& stop);

// The user-space counters, one per line (status and the final summary).
void print_run_stats(FILE* out, const etc_run_stats& s, const char* indent);

}  // namespace etcpipe
