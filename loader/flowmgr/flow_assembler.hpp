// Groups the packets `etcpipe run` receives by the FlowManager's flow id
// until a flow has H packets (or goes quiet, or the run ends); ready flows
// are then taken, in the order they became ready, into a feature batch.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <span>
#include <unordered_map>
#include <vector>

#include "etcpipe/flowmgr.h"
#include "gpu/features.hpp"

namespace etcpipe::live {

struct PendingPkt {
    uint16_t index;
    uint64_t ts_ns;
    uint32_t off, len;
};

struct PendingFlow {
    uint64_t flow_id = 0;
    uint64_t last_seen_ns = 0;  // host monotonic time
    std::vector<PendingPkt> pkts;
    std::vector<uint8_t> bytes;
};

class Assembler {
  public:
    Assembler(uint32_t h, etc_run_stats& st, uint32_t max_pending)
        : h_(h), st_(st), max_pending_(max_pending) {}

    // One selected packet (its metadata and bytes) seen at host time `now`.
    void add(const etc_meta& m, std::span<const uint8_t> frame, uint64_t now);

    // Flows silent for `timeout_ns` (or all, at the end) become ready, partial.
    void expire(uint64_t now, uint64_t timeout_ns, bool all);

    size_t pending() const { return pending_.size(); }
    size_t ready_packets() const { return ready_packets_; }
    bool has_ready() const { return !ready_.empty(); }
    uint64_t oldest_ready_ns() const { return ready_.empty() ? 0 : ready_.front().since_ns; }

    // Moves the ready flows into `batch` (packets of a flow in selection
    // order, flows in the order they became ready).
    void take(features::Batch& batch, std::vector<uint64_t>& ids, std::vector<uint8_t>& complete);

  private:
    struct Ready {
        PendingFlow flow;
        uint64_t since_ns;
        uint8_t complete;
    };
    uint32_t h_;
    etc_run_stats& st_;
    uint32_t max_pending_;
    std::unordered_map<uint64_t, PendingFlow> pending_;
    std::deque<Ready> ready_;
    size_t ready_packets_ = 0;
};

// Inline delivery: the ring-buffer callback feeding the assembler.
struct RingCtx {
    Assembler* asm_;
    etc_run_stats* st;
    uint64_t now;
};

// ring_buffer__new's sample callback; ctx is a RingCtx.
int on_ring_record(void* ctx, void* data, size_t size);

}  // namespace etcpipe::live
