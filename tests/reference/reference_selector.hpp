// Reference FlowManager: an independent, deliberately plain C++ model of
// bpf/flowmgr.bpf.c's selection rules, used as the oracle in
// tests/reference/test_reference_selection.cpp.
//
// It shares no code with the BPF side (no parsing.h, no kernel headers): it
// reads the Ethernet frame bytes with its own parser and only takes the ABI
// constants (defaults, counter numbers) from include/etcpipe/flowmgr.h.
//
// The rules it implements:
//   * Ethernet, then at most ETC_MAX_VLAN_DEPTH 802.1Q/802.1ad tags (VIDs
//     outer→inner, 0 when absent); a third tag is "too deep".
//   * IPv4 (with options) or IPv6 (with up to ETC_MAX_IPV6_EXT extension
//     headers: hop-by-hop, routing, destination options, fragment, AH,
//     mobility). Any other EtherType is not IP. Non-first fragments carry no
//     L4 header and are not parsable.
//   * TCP (header with options), UDP, or any other protocol (ports 0).
//   * L4 payload length comes from the IP headers' lengths, never from the
//     captured length: IPv4 total length − IHL·4, IPv6 payload length − the
//     extension headers walked, minus the TCP header (data offset) or the
//     8-byte UDP header.
//   * Flow identity: family, IP protocol, VLAN ids, and the two (address,
//     port) endpoints in canonical order (smaller address — bytes compared
//     in network order — then smaller port is endpoint a), so both
//     directions share one flow.
//   * A flow whose last-seen time is more than the idle timeout (strictly)
//     before the current packet's time restarts as a new flow (new identity,
//     counters at 0, first/last time = the packet's). Time going backwards
//     never expires a flow, and the last-seen time never moves backwards: it
//     is the latest time seen in the flow, not the latest packet's time (a
//     reordered packet must not shorten the idle time).
//   * A packet is a "payload packet" when its L4 payload length is > 0 (or
//     always, with count_all). The first max_pkts payload packets of a flow
//     are selected; the selected index is the payload packet's position.
//   * Direction: "reply" when the packet's source is not the endpoint that
//     sent the flow's first packet.
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <map>
#include <span>
#include <vector>

#include "etcpipe/flowmgr.h"

namespace etcpipe::reference {

// Why a frame could not be parsed, with the BPF counter of the same meaning
// (Ok = 0 is parsable). Values are enum etc_counter numbers.
enum class Parse : int {
    Ok = 0,
    TruncEth = ETC_CNT_PARSE_TRUNC_ETH,
    TruncVlan = ETC_CNT_PARSE_TRUNC_VLAN,
    VlanDepth = ETC_CNT_PARSE_VLAN_DEPTH,
    NotIp = ETC_CNT_PARSE_NOT_IP,
    TruncIpv4 = ETC_CNT_PARSE_TRUNC_IPV4,
    BadIpv4 = ETC_CNT_PARSE_BAD_IPV4,
    TruncIpv6 = ETC_CNT_PARSE_TRUNC_IPV6,
    BadIpv6 = ETC_CNT_PARSE_BAD_IPV6,
    TruncIpv6Ext = ETC_CNT_PARSE_TRUNC_IPV6_EXT,
    Ipv6ExtDepth = ETC_CNT_PARSE_IPV6_EXT_DEPTH,
    Fragment = ETC_CNT_PARSE_FRAGMENT,
    TruncTcp = ETC_CNT_PARSE_TRUNC_TCP,
    BadTcp = ETC_CNT_PARSE_BAD_TCP,
    TruncUdp = ETC_CNT_PARSE_TRUNC_UDP,
};

const char* parse_name(Parse p);

// One endpoint: address (IPv4 in the first 4 bytes, rest 0) and port.
struct Endpoint {
    std::array<uint8_t, 16> addr{};
    uint16_t port = 0;
    auto operator<=>(const Endpoint&) const = default;
};

// Canonical bidirectional flow identity: a <= b.
struct FlowKey {
    uint8_t family = 0;  // 4 or 6
    uint8_t proto = 0;   // IP protocol
    std::array<uint16_t, ETC_MAX_VLAN_DEPTH> vlan{};
    Endpoint a, b;
    auto operator<=>(const FlowKey&) const = default;
};

struct ParsedFrame {
    Parse status = Parse::Ok;
    FlowKey key;               // canonical (valid when status == Ok)
    bool src_is_b = false;     // the packet was sent by endpoint b
    uint32_t payload_len = 0;  // L4 payload bytes per the headers
    uint32_t ip_total_len = 0; // bytes of the outermost IP packet per its header
    uint32_t ip_offset = 0;    // where the IP header starts in the frame
};

// Parses one Ethernet frame (the captured bytes).
ParsedFrame parse_frame(std::span<const uint8_t> frame);

struct Config {
    uint32_t max_pkts = ETC_DEFAULT_MAX_PKTS;
    uint64_t idle_timeout_ns = uint64_t{ETC_DEFAULT_IDLE_SEC} * 1000000000ull;
    bool count_all = false;
};

// One flow (one "generation": an idle restart makes a new Flow).
struct Flow {
    uint64_t id = 0;  // 1, 2, ... in order of creation
    FlowKey key;
    bool first_src_is_b = false;  // direction of the first packet
    uint64_t first_ns = 0, last_ns = 0;
    uint64_t bytes = 0;  // sum of the frames' lengths
    uint32_t packets = 0, payload_pkts = 0, selected = 0;
    uint32_t packets_from_a = 0, packets_from_b = 0;
};

// What the reference decided for one frame.
struct Decision {
    Parse status = Parse::Ok;
    uint64_t flow_id = 0;  // 0 when not tracked (status != Ok)
    bool new_flow = false;
    bool expired = false;  // new_flow because an idle flow of the same key restarted
    bool reply = false;
    bool payload = false;
    bool selected = false;
    uint16_t index = 0xffff;  // within the flow's selected packets
    uint32_t pkt_index = 0;   // within all the flow's packets
    uint32_t payload_len = 0;
};

class Selector {
  public:
    explicit Selector(Config cfg = {}) : cfg_(cfg) {}

    Decision feed(std::span<const uint8_t> frame, uint64_t ts_ns);

    // All flows ever created, indexed by id - 1.
    [[nodiscard]] const std::vector<Flow>& flows() const { return flows_; }
    // The current (latest) flow id of each key.
    [[nodiscard]] const std::map<FlowKey, uint64_t>& current() const { return current_; }

  private:
    Config cfg_;
    std::vector<Flow> flows_;
    std::map<FlowKey, uint64_t> current_;
};

}  // namespace etcpipe::reference
