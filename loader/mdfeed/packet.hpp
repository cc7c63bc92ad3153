// Ethernet frame → L4 view (TCP or UDP), for the market-data path.
//
// A cursor-style parser over one captured frame: every header is bounds-checked
// before it is read, the cursor only moves forward, nothing is allocated and the
// payload is a span into the frame. Handled: Ethernet II with up to kMaxVlanDepth
// 802.1Q / 802.1ad tags; IPv4 with options, cut to its total length (so the
// Ethernet padding of short frames is not taken as payload); IPv6 with the
// hop-by-hop, routing, destination-options and AH extension headers. IPv4
// fragments and IPv6 fragment headers are reported as ParseResult::Fragment,
// with the addresses and protocol filled in, and parsed no further.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

namespace etcpipe::md {

inline constexpr int kMaxVlanDepth = 2;
inline constexpr int kMaxIpv6ExtHeaders = 8;

// TCP flag bits as in the header's 13th byte.
inline constexpr uint8_t kTcpFin = 0x01;
inline constexpr uint8_t kTcpSyn = 0x02;
inline constexpr uint8_t kTcpRst = 0x04;
inline constexpr uint8_t kTcpPsh = 0x08;
inline constexpr uint8_t kTcpAck = 0x10;
inline constexpr uint8_t kTcpUrg = 0x20;

inline constexpr uint8_t kProtoTcp = 6;
inline constexpr uint8_t kProtoUdp = 17;

enum class ParseResult : uint8_t {
    Ok,
    TruncatedEthernet,  // shorter than the Ethernet header or a VLAN tag
    VlanTooDeep,        // more than kMaxVlanDepth tags
    NotIp,              // EtherType is neither IPv4 nor IPv6
    BadIpv4,            // version, IHL, total length below the header
    BadIpv6,            // version, zero payload length (jumbogram), extension header chain
    TruncatedIp,        // the frame ends before the IP total / payload length
    Fragment,           // IPv4 fragment or IPv6 fragment header: addresses and proto are set
    NotTcpUdp,          // another L4 protocol (proto is set)
    TruncatedL4,        // shorter than the TCP/UDP header, or a UDP length beyond the packet
    BadTcpOffset,       // TCP data offset below 5 or beyond the segment
};

[[nodiscard]] const char* parse_result_name(ParseResult r);

struct L4View {
    uint8_t family = 0;  // 4 or 6
    uint8_t proto = 0;   // kProtoTcp, kProtoUdp (or the unsupported one)
    bool fragment = false;
    uint8_t vlan_depth = 0;
    std::array<uint16_t, kMaxVlanDepth> vlan{};  // VIDs, outermost first
    std::array<uint8_t, 16> src{};               // IPv4 in the first 4 bytes, rest zero
    std::array<uint8_t, 16> dst{};
    uint16_t sport = 0;  // host order
    uint16_t dport = 0;
    // TCP only.
    uint32_t seq = 0;
    uint32_t ack = 0;
    uint8_t flags = 0;  // kTcp* bits
    std::span<const uint8_t> payload;  // L4 payload, cut to the IP length
};

// Parses an Ethernet frame. On Ok every field is set; on another result `out`
// holds what was parsed before the failure (family, addresses, proto, ...).
[[nodiscard]] ParseResult parse_frame(std::span<const uint8_t> ethernet_frame, L4View& out);

}  // namespace etcpipe::md
