// `etcpipe replay`: every frame of a capture through the loaded FlowManager
// with BPF_PROG_TEST_RUN (the real program and maps), capture timestamps
// driving flow expiry; per-flow JSON Lines, the selected packets as a pcap,
// and the program's counters.
#pragma once

#include <cstdint>
#include <cstdio>
#include <functional>
#include <span>
#include <map>
#include <string>
#include <vector>

#include "flowmgr/flowmgr.hpp"
#include "common/pcap.hpp"
#include "common/result.hpp"

namespace etcpipe {

struct ReplayOptions {
    std::string capture;
    std::string json_path = "-";  // "-" = stdout, "" = no JSON
    std::string write_pcap;       // selected packets, "" = none
    uint64_t max_frames = 0;      // 0 = all
    bool progress = true;         // a bar on stderr when it is a terminal
    FlowMgrOptions flowmgr;
};

// One flow as the replay saw it (from the metadata of its packets). The
// endpoints are oriented as the flow's first packet: src sent it.
struct ReplayFlow {
    uint64_t flow_id = 0;
    uint8_t family = 0;
    uint8_t proto = 0;
    std::string src, dst;
    uint16_t sport = 0, dport = 0;
    uint16_t vlan[ETC_MAX_VLAN_DEPTH] = {0, 0};
    uint64_t packets = 0, packets_fwd = 0, packets_rev = 0;
    uint64_t bytes = 0;
    uint64_t payload_packets = 0;
    uint64_t selected = 0;
    uint64_t first_ns = 0, last_ns = 0;
    uint64_t first_frame = 0;  // frame number (1-based, as Wireshark shows it)
};

struct ReplayStats {
    uint64_t frames = 0;          // read from the capture
    uint64_t ran = 0;             // run through the program
    uint64_t too_short = 0;       // < 14 bytes after link conversion: the kernel refuses them
    uint64_t not_convertible = 0; // link layer we cannot turn into Ethernet
    uint64_t selected = 0;        // from per-packet metadata
    uint64_t ring_records = 0;    // inline delivery: records drained
    uint64_t pcap_written = 0;    // selected packets the sink took
    uint64_t table_mismatches = 0;// flows whose table entry disagrees with the metadata
    double seconds = 0;
    Counters counters{};
    std::vector<ReplayFlow> flows;  // in flow-id (creation) order
};

// Runs the replay. On a corrupt capture the frames before the damage are
// replayed and reported (stats, JSON) before the error is returned, with
// `partial` holding what was read.
[[nodiscard]] Result<ReplayStats> replay(const ReplayOptions& opts, ReplayStats* partial = nullptr);

// Each selected packet of a replay, whole, as read from the capture (never
// cut at the program's snap length), with its time and original length.
using SelectedSink =
    std::function<Result<void>(uint64_t ts_ns, std::span<const uint8_t> frame, uint32_t origlen)>;

// One capture through a FlowManager that is already loaded (reset first: an
// empty flow table and zero counters, so one load serves many captures).
// The same stats as replay(); errors as replay(), with `partial` holding
// what was read before them.
[[nodiscard]] Result<ReplayStats> replay_capture(FlowManager& fm, const std::string& capture,
                                                 uint64_t max_frames, bool progress,
                                                 const SelectedSink& on_selected,
                                                 ReplayStats* partial = nullptr);
// The same on a capture already open (`capture` names it in messages).
[[nodiscard]] Result<ReplayStats> replay_capture(FlowManager& fm, pcap::Reader& reader, const std::string& capture,
                                                 uint64_t max_frames, bool progress,
                                                 const SelectedSink& on_selected,
                                                 ReplayStats* partial = nullptr);

// One JSON object (no newline) for a flow.
[[nodiscard]] std::string flow_json(const ReplayFlow& f);

// Counter table: every non-zero counter (or all with `all`), one per line.
void print_counters(std::FILE* out, const Counters& c, bool all);

}  // namespace etcpipe
