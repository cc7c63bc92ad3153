// The FlowManager XDP program from user space: options → rodata/maps, load,
// BPF_PROG_TEST_RUN of single frames (the replay path), counters, the flow
// table, and the inline ring buffer.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "etcpipe/flowmgr.h"
#include "common/result.hpp"
#include "common/test_run.hpp"

struct flowmgr_bpf;
struct bpf_object;
struct bpf_program;
struct ring_buffer;

namespace etcpipe {

struct Cidr {
    uint8_t family = 4;  // 4 or 6
    std::array<uint8_t, 16> addr{};
    uint8_t prefix = 0;  // CIDR length
};

// "10.0.0.0/8", "2001:db8::/32", "192.0.2.1" (host route).
[[nodiscard]] Result<Cidr> parse_cidr(const std::string& text);
// "tcp,udp,icmp,47" → protocol numbers.
[[nodiscard]] Result<std::vector<uint8_t>> parse_protocols(const std::string& text);
// "443,8000-8100" → ports.
[[nodiscard]] Result<std::vector<uint16_t>> parse_ports(const std::string& text);

// The inline ring buffer's largest size (1 GiB: the kernel's own limit is
// near 2^32 - but the memory is locked, memcg-charged kernel memory).
inline constexpr uint32_t kMaxRingbufBytes = 1u << 30;

struct FlowMgrOptions {
    uint32_t max_pkts = ETC_DEFAULT_MAX_PKTS;     // N
    uint32_t flows = ETC_DEFAULT_FLOWS;           // flow table entries
    uint32_t idle_timeout_s = ETC_DEFAULT_IDLE_SEC;
    uint32_t snap_len = ETC_DEFAULT_SNAP;         // L (inline copies)
    uint32_t ringbuf_bytes = 1u << 22;
    etc_delivery delivery = ETC_DELIVERY_TAP;
    bool unselected_drop = false;                 // tap: drop the rest
    bool count_all = false;                       // select any packet, not only payload
    bool meta_all = false;                        // etc_meta on unselected packets too (replay: always)
    std::vector<uint8_t> protocols;               // empty: all
    std::vector<uint16_t> ports;                  // empty: no port filter
    std::vector<Cidr> allow;                      // empty: no allow-list
    std::vector<Cidr> deny;
    std::string pin_path;                         // empty: maps not pinned
    uint8_t bench_stage = ETC_BENCH_FULL;         // make bench: stop after a stage
    bool percpu_lru = false;                      // BPF_F_NO_COMMON_LRU flow table
    bool ring_wakeup = true;                      // inline: wake a reader in epoll (replay: off)

    [[nodiscard]] Result<void> validate() const;
};

using Counters = std::array<uint64_t, ETC_CNT_MAX>;

[[nodiscard]] const char* counter_name(int counter);
[[nodiscard]] const char* counter_doc(int counter);
// Sums the per-CPU slots of an ETC_MAP_COUNTERS map.
[[nodiscard]] Result<Counters> read_counters(int map_fd);

struct TestRunResult {
    int action = 0;                  // XDP_* verdict
    std::optional<etc_meta> meta;    // present when the program tracked the packet
    uint32_t duration_ns = 0;        // kernel-measured, averaged over repeats
};

// xdp_test_run (common/test_run.hpp) in FlowManager terms: a non-zero ts_ns is
// sent in front of the frame as replay metadata (ETC_META_MAGIC_REPLAY), and
// the FlowManager's own metadata comes back in TestRunResult::meta. Works on
// any XDP program: the benchmark runs its baseline program through it too.
[[nodiscard]] Result<TestRunResult> flowmgr_test_run(int prog_fd, std::span<const uint8_t> frame,
                                                     uint64_t ts_ns, uint32_t repeat,
                                                     TestRunBuffers& bufs);

class FlowManager {
  public:
    FlowManager();
    ~FlowManager();
    FlowManager(FlowManager&&) noexcept;
    FlowManager& operator=(FlowManager&&) noexcept;
    FlowManager(const FlowManager&) = delete;
    FlowManager& operator=(const FlowManager&) = delete;

    // Opens the embedded object and applies the options (rodata, map sizes,
    // pin paths, filled filter maps); the program is not loaded yet, so it
    // can be loaded by load() or by libxdp (xdp_attach.hpp).
    [[nodiscard]] static Result<FlowManager> open(const FlowMgrOptions& opts);
    // Loads the opened object.
    [[nodiscard]] Result<void> load();
    // open() + load().
    [[nodiscard]] static Result<FlowManager> load(const FlowMgrOptions& opts);

    [[nodiscard]] const FlowMgrOptions& options() const;
    [[nodiscard]] bpf_object* object() const;
    [[nodiscard]] bpf_program* program() const;
    [[nodiscard]] int prog_fd() const;
    [[nodiscard]] int map_fd(const char* name) const;

    // Runs one Ethernet frame through the program with BPF_PROG_TEST_RUN.
    // ts_ns (non-zero) reaches the program as the packet's time, so idle
    // expiry follows capture time.
    [[nodiscard]] Result<TestRunResult> test_run(std::span<const uint8_t> frame, uint64_t ts_ns,
                                                 uint32_t repeat = 1);

    // Back to the state just after load(): empty flow table, zero counters
    // and run stats, no ring-buffer records, flow ids from 1 again. The
    // options (rodata, filter maps) stay, so one loaded program can serve
    // many independent runs (the tests load once per option set).
    [[nodiscard]] Result<void> reset();

    [[nodiscard]] Result<Counters> counters() const;
    using FlowVisitor = std::function<void(const etc_flow_key&, const etc_flow_value&)>;
    [[nodiscard]] Result<size_t> for_each_flow(const FlowVisitor& visit) const;
    // for_each_flow that also empties the table as it goes (one pass); the
    // next reset() then has no flows to delete.
    [[nodiscard]] Result<size_t> take_flows(const FlowVisitor& visit);
    // The same, given the keys of every flow the runs since reset() created
    // (a replayer knows them from the packets): one lookup-and-delete per key
    // instead of a pass over every bucket of the table. When the deletes
    // account for every insert the program counted (flow_new), nothing else
    // can be left and the pass is skipped; otherwise (a key missed, an
    // entry evicted, a pinned table others share) the pass takes the rest.
    [[nodiscard]] Result<size_t> take_flows(std::span<const etc_flow_key> keys, const FlowVisitor& visit);

    // Inline delivery: drains ring-buffer records into the callback.
    using RingVisitor = std::function<void(const etc_ring_hdr&, std::span<const uint8_t>)>;
    [[nodiscard]] Result<int> drain_ring(const RingVisitor& visit, int timeout_ms = 0);

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace etcpipe
