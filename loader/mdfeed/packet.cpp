// Ethernet frame → L4 view: a forward-only cursor, bounds-checked per header.
#include "mdfeed/packet.hpp"

#include <cstring>

namespace etcpipe::md {

namespace {

constexpr uint16_t kEthIpv4 = 0x0800;
constexpr uint16_t kEthIpv6 = 0x86dd;
constexpr uint16_t kEthVlan = 0x8100;   // 802.1Q
constexpr uint16_t kEthQinQ = 0x88a8;   // 802.1ad
constexpr uint16_t kEthQinQOld = 0x9100;

constexpr uint8_t kIp6HopByHop = 0;
constexpr uint8_t kIp6Routing = 43;
constexpr uint8_t kIp6Fragment = 44;
constexpr uint8_t kIp6Ah = 51;
constexpr uint8_t kIp6DestOpts = 60;

// The cursor: [p, end) is what is left of the frame (or of the IP packet once
// its length is known).
struct Cursor {
    const uint8_t* p;
    const uint8_t* end;

    [[nodiscard]] size_t left() const { return static_cast<size_t>(end - p); }
    [[nodiscard]] bool has(size_t n) const { return left() >= n; }
    [[nodiscard]] uint16_t be16(size_t off) const {
        return static_cast<uint16_t>(p[off] << 8 | p[off + 1]);
    }
    [[nodiscard]] uint32_t be32(size_t off) const {
        return uint32_t{p[off]} << 24 | uint32_t{p[off + 1]} << 16 | uint32_t{p[off + 2]} << 8 |
               uint32_t{p[off + 3]};
    }
    void skip(size_t n) { p += n; }
};

ParseResult parse_l4(Cursor c, uint8_t proto, L4View& out) {
    out.proto = proto;
    if (proto == kProtoUdp) {
        if (!c.has(8)) return ParseResult::TruncatedL4;
        out.sport = c.be16(0);
        out.dport = c.be16(2);
        const uint16_t ulen = c.be16(4);
        if (ulen < 8 || ulen > c.left()) return ParseResult::TruncatedL4;
        out.payload = {c.p + 8, static_cast<size_t>(ulen - 8)};
        return ParseResult::Ok;
    }
    if (proto == kProtoTcp) {
        if (!c.has(20)) return ParseResult::TruncatedL4;
        out.sport = c.be16(0);
        out.dport = c.be16(2);
        out.seq = c.be32(4);
        out.ack = c.be32(8);
        out.flags = c.p[13];
        const size_t doff = static_cast<size_t>(c.p[12] >> 4) * 4;
        if (doff < 20 || doff > c.left()) return ParseResult::BadTcpOffset;
        out.payload = {c.p + doff, c.left() - doff};
        return ParseResult::Ok;
    }
    return ParseResult::NotTcpUdp;
}

ParseResult parse_ipv4(Cursor c, L4View& out) {
    out.family = 4;
    if (!c.has(20)) return ParseResult::TruncatedIp;
    if ((c.p[0] >> 4) != 4) return ParseResult::BadIpv4;
    const size_t ihl = static_cast<size_t>(c.p[0] & 15) * 4;
    const size_t total = c.be16(2);
    if (ihl < 20 || total < ihl) return ParseResult::BadIpv4;
    if (total > c.left()) return ParseResult::TruncatedIp;
    std::memcpy(out.src.data(), c.p + 12, 4);
    std::memcpy(out.dst.data(), c.p + 16, 4);
    out.proto = c.p[9];
    const uint16_t frag = c.be16(6);
    if ((frag & 0x2000) != 0 || (frag & 0x1fff) != 0) {  // MF or a fragment offset
        out.fragment = true;
        return ParseResult::Fragment;
    }
    c.end = c.p + total;  // drop Ethernet padding
    c.skip(ihl);
    return parse_l4(c, out.proto, out);
}

ParseResult parse_ipv6(Cursor c, L4View& out) {
    out.family = 6;
    if (!c.has(40)) return ParseResult::TruncatedIp;
    if ((c.p[0] >> 4) != 6) return ParseResult::BadIpv6;
    const size_t plen = c.be16(4);
    if (plen == 0) return ParseResult::BadIpv6;  // jumbogram or no payload: not ours
    if (40 + plen > c.left()) return ParseResult::TruncatedIp;
    uint8_t next = c.p[6];
    std::memcpy(out.src.data(), c.p + 8, 16);
    std::memcpy(out.dst.data(), c.p + 24, 16);
    c.end = c.p + 40 + plen;
    c.skip(40);
    for (int i = 0; i < kMaxIpv6ExtHeaders; ++i) {
        switch (next) {
            case kIp6HopByHop:
            case kIp6Routing:
            case kIp6DestOpts: {
                if (!c.has(8)) return ParseResult::BadIpv6;
                const size_t len = (static_cast<size_t>(c.p[1]) + 1) * 8;
                if (!c.has(len)) return ParseResult::BadIpv6;
                next = c.p[0];
                c.skip(len);
                continue;
            }
            case kIp6Ah: {
                if (!c.has(8)) return ParseResult::BadIpv6;
                const size_t len = (static_cast<size_t>(c.p[1]) + 2) * 4;
                if (!c.has(len)) return ParseResult::BadIpv6;
                next = c.p[0];
                c.skip(len);
                continue;
            }
            case kIp6Fragment:
                if (!c.has(8)) return ParseResult::BadIpv6;
                out.proto = c.p[0];
                out.fragment = true;
                return ParseResult::Fragment;
            default: return parse_l4(c, next, out);
        }
    }
    return ParseResult::BadIpv6;  // extension header chain too long
}

}  // namespace

const char* parse_result_name(ParseResult r) {
    switch (r) {
        case ParseResult::Ok: return "ok";
        case ParseResult::TruncatedEthernet: return "truncated Ethernet header";
        case ParseResult::VlanTooDeep: return "more than 2 VLAN tags";
        case ParseResult::NotIp: return "not IP";
        case ParseResult::BadIpv4: return "bad IPv4 header";
        case ParseResult::BadIpv6: return "bad IPv6 header";
        case ParseResult::TruncatedIp: return "truncated IP packet";
        case ParseResult::Fragment: return "IP fragment";
        case ParseResult::NotTcpUdp: return "not TCP or UDP";
        case ParseResult::TruncatedL4: return "truncated TCP/UDP header";
        case ParseResult::BadTcpOffset: return "bad TCP data offset";
    }
    return "?";
}

ParseResult parse_frame(std::span<const uint8_t> frame, L4View& out) {
    out = L4View{};
    Cursor c{frame.data(), frame.data() + frame.size()};
    if (!c.has(14)) return ParseResult::TruncatedEthernet;
    uint16_t type = c.be16(12);
    c.skip(14);
    while (type == kEthVlan || type == kEthQinQ || type == kEthQinQOld) {
        if (out.vlan_depth == kMaxVlanDepth) return ParseResult::VlanTooDeep;
        if (!c.has(4)) return ParseResult::TruncatedEthernet;
        out.vlan[out.vlan_depth++] = c.be16(0) & 0x0fff;
        type = c.be16(2);
        c.skip(4);
    }
    if (type == kEthIpv4) return parse_ipv4(c, out);
    if (type == kEthIpv6) return parse_ipv6(c, out);
    return ParseResult::NotIp;
}

}  // namespace etcpipe::md
