// A small fluent builder of Ethernet frames for BPF_PROG_TEST_RUN tests.
//
//   auto frame = PacketBuilder()
//                    .eth()
//                    .vlan(100)                       // 802.1Q; vlan(200, kTpidQinQ) for 802.1ad
//                    .ipv4("10.0.0.1", "10.0.0.2").ip_options({1, 1, 1, 1})
//                    .tcp(40000, 443, kTcpAck | kTcpPsh)
//                    .payload(100)
//                    .build();
//
// Layers are written in the order they are added. Unless overridden, build()
// fills the "next protocol" field of every layer (EtherType, VLAN inner
// type, IPv4 protocol, IPv6 next header, extension next header) from the
// layer that follows, the IPv4 total length and IPv6 payload length from the
// bytes that follow (trailing pad() bytes excluded), the UDP length, and the
// IPv4 header, TCP, UDP, ICMP and ICMPv6 checksums. spans() gives each
// layer's byte range in the built frame, for truncation tests.
#pragma once

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <initializer_list>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace etcpipe::test {

using Mac = std::array<uint8_t, 6>;

inline constexpr Mac kMacA{0x02, 0x00, 0x00, 0x00, 0x00, 0x01};
inline constexpr Mac kMacB{0x02, 0x00, 0x00, 0x00, 0x00, 0x02};

inline constexpr uint16_t kEthIpv4 = 0x0800;
inline constexpr uint16_t kEthIpv6 = 0x86dd;
inline constexpr uint16_t kEthArp = 0x0806;
inline constexpr uint16_t kTpidDot1Q = 0x8100;
inline constexpr uint16_t kTpidQinQ = 0x88a8;

inline constexpr uint8_t kTcpFin = 0x01;
inline constexpr uint8_t kTcpSyn = 0x02;
inline constexpr uint8_t kTcpRst = 0x04;
inline constexpr uint8_t kTcpPsh = 0x08;
inline constexpr uint8_t kTcpAck = 0x10;
inline constexpr uint8_t kTcpUrg = 0x20;

inline constexpr uint8_t kProtoIcmp = 1;
inline constexpr uint8_t kProtoTcp = 6;
inline constexpr uint8_t kProtoUdp = 17;
inline constexpr uint8_t kProtoGre = 47;
inline constexpr uint8_t kProtoIcmpv6 = 58;
inline constexpr uint8_t kProtoNone = 59;  // IPv6 "no next header"
inline constexpr uint8_t kExtHopByHop = 0;
inline constexpr uint8_t kExtRouting = 43;
inline constexpr uint8_t kExtFragment = 44;
inline constexpr uint8_t kExtAh = 51;
inline constexpr uint8_t kExtDstOpts = 60;
inline constexpr uint8_t kExtMobility = 135;

enum class LayerKind { Eth, Vlan, Ipv4, Ipv6, Ipv6Ext, Tcp, Udp, Icmp, Icmpv6, L4Other, Arp, Payload, Pad };

[[nodiscard]] inline const char* layer_kind_name(LayerKind k) {
    switch (k) {
    case LayerKind::Eth: return "eth";
    case LayerKind::Vlan: return "vlan";
    case LayerKind::Ipv4: return "ipv4";
    case LayerKind::Ipv6: return "ipv6";
    case LayerKind::Ipv6Ext: return "ipv6-ext";
    case LayerKind::Tcp: return "tcp";
    case LayerKind::Udp: return "udp";
    case LayerKind::Icmp: return "icmp";
    case LayerKind::Icmpv6: return "icmpv6";
    case LayerKind::L4Other: return "l4-other";
    case LayerKind::Arp: return "arp";
    case LayerKind::Payload: return "payload";
    case LayerKind::Pad: return "pad";
    }
    return "?";
}

// One header's byte range [begin, end) in a built frame.
struct HeaderSpan {
    LayerKind kind;
    uint8_t type = 0;  // IPv6 extension type, or the L4Other protocol
    size_t begin = 0;
    size_t end = 0;
};

class PacketBuilder {
  public:
    // ---- link layer -------------------------------------------------------
    PacketBuilder& eth(const Mac& src = kMacA, const Mac& dst = kMacB) {
        Layer l(LayerKind::Eth);
        l.hdr.assign(dst.begin(), dst.end());
        l.hdr.insert(l.hdr.end(), src.begin(), src.end());
        l.hdr.push_back(0);
        l.hdr.push_back(0);
        return add(std::move(l));
    }
    // Sets the EtherType (or VLAN inner type) of the last link layer instead
    // of deriving it from the next layer.
    PacketBuilder& ethertype(uint16_t type) {
        last_of({LayerKind::Eth, LayerKind::Vlan}).next_override = type;
        return *this;
    }
    PacketBuilder& vlan(uint16_t vid, uint16_t tpid = kTpidDot1Q, uint8_t pcp = 0) {
        Layer l(LayerKind::Vlan);
        l.tpid = tpid;
        uint16_t tci = static_cast<uint16_t>((pcp & 7u) << 13 | (vid & 0x0fffu));
        l.hdr = {hi(tci), lo(tci), 0, 0};
        return add(std::move(l));
    }
    // A minimal ARP request (Ethernet/IPv4).
    PacketBuilder& arp() {
        Layer l(LayerKind::Arp);
        l.hdr = {0, 1, 0x08, 0, 6, 4, 0, 1};
        l.hdr.insert(l.hdr.end(), kMacA.begin(), kMacA.end());
        l.hdr.insert(l.hdr.end(), {10, 0, 0, 1});
        l.hdr.insert(l.hdr.end(), 6, 0);
        l.hdr.insert(l.hdr.end(), {10, 0, 0, 2});
        return add(std::move(l));
    }

    // ---- IPv4 ----------------------------------------------------------------
    PacketBuilder& ipv4(std::string_view src, std::string_view dst, uint8_t ttl = 64) {
        Layer l(LayerKind::Ipv4);
        l.hdr.assign(20, 0);
        l.hdr[0] = 0x45;
        l.hdr[4] = 0x12;  // identification
        l.hdr[5] = 0x34;
        l.hdr[8] = ttl;
        put_addr(AF_INET, src, &l.hdr[12]);
        put_addr(AF_INET, dst, &l.hdr[16]);
        return add(std::move(l));
    }
    // Options of the last IPv4 header, zero-padded (EOL) to a multiple of 4.
    PacketBuilder& ip_options(std::vector<uint8_t> opts) {
        Layer& l = last_of({LayerKind::Ipv4});
        while (opts.size() % 4) opts.push_back(0);
        if (opts.size() > 40) throw std::invalid_argument("IPv4 options exceed 40 bytes");
        l.hdr.resize(20);
        l.hdr.insert(l.hdr.end(), opts.begin(), opts.end());
        l.hdr[0] = static_cast<uint8_t>(0x40 | (l.hdr.size() / 4));
        return *this;
    }
    // IPv4 fragment: offset in 8-byte units, MF and DF flags.
    PacketBuilder& ipv4_frag(uint16_t offset8, bool more, bool dont = false) {
        Layer& l = last_of({LayerKind::Ipv4});
        uint16_t v = static_cast<uint16_t>((offset8 & 0x1fffu) | (more ? 0x2000u : 0u) |
                                           (dont ? 0x4000u : 0u));
        l.hdr[6] = hi(v);
        l.hdr[7] = lo(v);
        return *this;
    }
    // Raw IHL (header stays the size the options gave it).
    PacketBuilder& ipv4_ihl(uint8_t ihl) {
        Layer& l = last_of({LayerKind::Ipv4});
        l.hdr[0] = static_cast<uint8_t>((l.hdr[0] & 0xf0) | (ihl & 0x0f));
        return *this;
    }
    // Version nibble of the last IP header.
    PacketBuilder& ip_version(uint8_t version) {
        Layer& l = last_of({LayerKind::Ipv4, LayerKind::Ipv6});
        l.hdr[0] = static_cast<uint8_t>((version << 4) | (l.hdr[0] & 0x0f));
        return *this;
    }
    // IPv4 total length / IPv6 payload length of the last IP header, as written.
    PacketBuilder& length(uint16_t len) {
        last_of({LayerKind::Ipv4, LayerKind::Ipv6}).len_override = len;
        return *this;
    }
    // UDP length field of the last UDP header, as written.
    PacketBuilder& udp_length(uint16_t len) {
        last_of({LayerKind::Udp}).len_override = len;
        return *this;
    }
    // IPv4 protocol / IPv6 or extension next header, as written.
    PacketBuilder& next_proto(uint8_t proto) {
        last_of({LayerKind::Ipv4, LayerKind::Ipv6, LayerKind::Ipv6Ext}).next_override = proto;
        return *this;
    }

    // ---- IPv6 ----------------------------------------------------------------
    PacketBuilder& ipv6(std::string_view src, std::string_view dst, uint8_t hop_limit = 64) {
        Layer l(LayerKind::Ipv6);
        l.hdr.assign(40, 0);
        l.hdr[0] = 0x60;
        l.hdr[7] = hop_limit;
        put_addr(AF_INET6, src, &l.hdr[8]);
        put_addr(AF_INET6, dst, &l.hdr[24]);
        return add(std::move(l));
    }
    // Hop-by-hop options, routing and destination options: (hdrlen + 1) * 8
    // bytes, filled with PadN so the options parse.
    PacketBuilder& hop_by_hop(uint8_t hdrlen = 0) { return ext8(kExtHopByHop, hdrlen); }
    PacketBuilder& dst_opts(uint8_t hdrlen = 0) { return ext8(kExtDstOpts, hdrlen); }
    // Routing header type 4 (SRH-like), segments left 0.
    PacketBuilder& routing(uint8_t hdrlen = 2) {
        ext8(kExtRouting, hdrlen);
        Layer& l = layers_.back();
        std::fill(l.hdr.begin() + 2, l.hdr.end(), 0);
        l.hdr[2] = 4;
        return *this;
    }
    // Mobility header (RFC 6275): (hdrlen + 1) * 8 bytes, MH type 0.
    PacketBuilder& mobility(uint8_t hdrlen = 0) {
        ext8(kExtMobility, hdrlen);
        Layer& l = layers_.back();
        std::fill(l.hdr.begin() + 2, l.hdr.end(), 0);
        return *this;
    }
    // Fragment header: offset in 8-byte units and the M flag.
    PacketBuilder& fragment6(uint16_t offset8, bool more, uint32_t ident = 0x01020304) {
        Layer l(LayerKind::Ipv6Ext);
        l.type = kExtFragment;
        uint16_t v = static_cast<uint16_t>((offset8 & 0x1fffu) << 3 | (more ? 1u : 0u));
        l.hdr = {0, 0, hi(v), lo(v), static_cast<uint8_t>(ident >> 24),
                 static_cast<uint8_t>(ident >> 16), static_cast<uint8_t>(ident >> 8),
                 static_cast<uint8_t>(ident)};
        return add(std::move(l));
    }
    // Authentication header: (payload_len + 2) * 4 bytes (payload_len >= 1:
    // SPI, sequence and an ICV of (payload_len - 1) * 4 bytes).
    PacketBuilder& ah(uint8_t payload_len = 4) {
        Layer l(LayerKind::Ipv6Ext);
        l.type = kExtAh;
        l.hdr.assign((payload_len + 2u) * 4u, 0);
        l.hdr[1] = payload_len;
        l.hdr[7] = 1;   // SPI
        l.hdr[11] = 1;  // sequence
        return add(std::move(l));
    }

    // ---- L4 ----------------------------------------------------------------
    PacketBuilder& tcp(uint16_t sport, uint16_t dport, uint8_t flags = kTcpAck | kTcpPsh,
                       uint32_t seq = 1000, uint32_t ack = 2000) {
        Layer l(LayerKind::Tcp);
        l.hdr.assign(20, 0);
        put16(&l.hdr[0], sport);
        put16(&l.hdr[2], dport);
        put32(&l.hdr[4], seq);
        put32(&l.hdr[8], (flags & kTcpAck) ? ack : 0);
        l.hdr[12] = 5 << 4;
        l.hdr[13] = flags;
        put16(&l.hdr[14], 65535);
        return add(std::move(l));
    }
    // TCP options, NOP-padded to a multiple of 4.
    PacketBuilder& tcp_options(std::vector<uint8_t> opts) {
        Layer& l = last_of({LayerKind::Tcp});
        while (opts.size() % 4) opts.push_back(1);
        if (opts.size() > 40) throw std::invalid_argument("TCP options exceed 40 bytes");
        l.hdr.resize(20);
        l.hdr.insert(l.hdr.end(), opts.begin(), opts.end());
        l.hdr[12] = static_cast<uint8_t>((l.hdr.size() / 4) << 4);
        return *this;
    }
    // Raw data offset (header stays the size the options gave it).
    PacketBuilder& tcp_doff(uint8_t doff) {
        last_of({LayerKind::Tcp}).hdr[12] = static_cast<uint8_t>(doff << 4);
        return *this;
    }
    PacketBuilder& udp(uint16_t sport, uint16_t dport) {
        Layer l(LayerKind::Udp);
        l.hdr.assign(8, 0);
        put16(&l.hdr[0], sport);
        put16(&l.hdr[2], dport);
        return add(std::move(l));
    }
    // ICMP (v4) header: type, code, checksum, then 4 bytes (id, sequence).
    PacketBuilder& icmp(uint8_t type = 8, uint8_t code = 0, uint16_t id = 0x77,
                        uint16_t seq = 1) {
        Layer l(LayerKind::Icmp);
        l.hdr = {type, code, 0, 0, hi(id), lo(id), hi(seq), lo(seq)};
        return add(std::move(l));
    }
    PacketBuilder& icmpv6(uint8_t type = 128, uint8_t code = 0, uint16_t id = 0x77,
                          uint16_t seq = 1) {
        Layer l(LayerKind::Icmpv6);
        l.hdr = {type, code, 0, 0, hi(id), lo(id), hi(seq), lo(seq)};
        return add(std::move(l));
    }
    // Any other IP protocol, with its header bytes as given (e.g. GRE 47).
    PacketBuilder& l4(uint8_t proto, std::vector<uint8_t> header) {
        Layer l(LayerKind::L4Other);
        l.type = proto;
        l.hdr = std::move(header);
        return add(std::move(l));
    }
    // A basic GRE header carrying IPv4 (no checksum, key or sequence).
    PacketBuilder& gre() { return l4(kProtoGre, {0, 0, 0x08, 0x00}); }

    // ---- data ----------------------------------------------------------------
    // n bytes of a recognisable pattern (start + i).
    PacketBuilder& payload(size_t n, uint8_t start = 0xa0) {
        Layer l(LayerKind::Payload);
        l.hdr.resize(n);
        for (size_t i = 0; i < n; ++i) l.hdr[i] = static_cast<uint8_t>(start + i);
        return add(std::move(l));
    }
    PacketBuilder& payload(std::vector<uint8_t> bytes) {
        Layer l(LayerKind::Payload);
        l.hdr = std::move(bytes);
        return add(std::move(l));
    }
    // Ethernet padding up to total bytes: not counted in any IP/UDP length.
    PacketBuilder& pad_to(size_t total) {
        size_t have = 0;
        for (const auto& l : layers_) have += l.hdr.size();
        Layer l(LayerKind::Pad);
        if (total > have) l.hdr.assign(total - have, 0);
        return add(std::move(l));
    }

    [[nodiscard]] std::vector<uint8_t> build() const {
        std::vector<size_t> off(layers_.size());
        std::vector<uint8_t> out;
        for (size_t i = 0; i < layers_.size(); ++i) {
            off[i] = out.size();
            out.insert(out.end(), layers_[i].hdr.begin(), layers_[i].hdr.end());
        }
        size_t content_end = out.size();  // excludes trailing pad
        for (size_t i = layers_.size(); i-- > 0;) {
            if (layers_[i].kind != LayerKind::Pad) break;
            content_end = off[i];
        }
        // next-protocol fields
        for (size_t i = 0; i < layers_.size(); ++i) {
            const Layer& l = layers_[i];
            const Layer* next = i + 1 < layers_.size() ? &layers_[i + 1] : nullptr;
            uint8_t* h = out.data() + off[i];
            switch (l.kind) {
            case LayerKind::Eth:
            case LayerKind::Vlan: {
                uint16_t t = l.next_override ? *l.next_override : next_ethertype(next);
                put16(h + (l.kind == LayerKind::Eth ? 12 : 2), t);
                break;
            }
            case LayerKind::Ipv4:
                h[9] = static_cast<uint8_t>(l.next_override ? *l.next_override : next_ipproto(next));
                break;
            case LayerKind::Ipv6:
                h[6] = static_cast<uint8_t>(l.next_override ? *l.next_override : next_ipproto(next));
                break;
            case LayerKind::Ipv6Ext:
                h[0] = static_cast<uint8_t>(l.next_override ? *l.next_override : next_ipproto(next));
                break;
            default: break;
            }
        }
        // lengths, then checksums (inner first, IPv4 header after its length)
        for (size_t i = 0; i < layers_.size(); ++i) {
            const Layer& l = layers_[i];
            uint8_t* h = out.data() + off[i];
            size_t rest = content_end > off[i] ? content_end - off[i] : 0;
            if (l.kind == LayerKind::Ipv4)
                put16(h + 2, l.len_override ? *l.len_override : static_cast<uint16_t>(rest));
            else if (l.kind == LayerKind::Ipv6)
                put16(h + 4, l.len_override ? *l.len_override
                                            : static_cast<uint16_t>(rest >= 40 ? rest - 40 : 0));
            else if (l.kind == LayerKind::Udp)
                put16(h + 4, l.len_override ? *l.len_override : static_cast<uint16_t>(rest));
        }
        for (size_t i = layers_.size(); i-- > 0;) {
            const Layer& l = layers_[i];
            uint8_t* h = out.data() + off[i];
            size_t rest = content_end > off[i] ? content_end - off[i] : 0;
            if (l.kind == LayerKind::Tcp || l.kind == LayerKind::Udp ||
                l.kind == LayerKind::Icmpv6) {
                size_t csum_at = l.kind == LayerKind::Tcp ? 16 : l.kind == LayerKind::Udp ? 6 : 2;
                uint8_t proto = l.kind == LayerKind::Tcp   ? kProtoTcp
                                : l.kind == LayerKind::Udp ? kProtoUdp
                                                           : kProtoIcmpv6;
                put16(h + csum_at, 0);
                uint32_t sum = pseudo_sum(out, off, i, proto, rest) + raw_sum(h, rest);
                uint16_t c = fold(sum);
                if (l.kind == LayerKind::Udp && c == 0) c = 0xffff;
                put16(h + csum_at, c);
            } else if (l.kind == LayerKind::Icmp) {
                put16(h + 2, 0);
                put16(h + 2, fold(raw_sum(h, rest)));
            } else if (l.kind == LayerKind::Ipv4) {
                put16(h + 10, 0);
                put16(h + 10, fold(raw_sum(h, l.hdr.size())));
            }
        }
        return out;
    }

    [[nodiscard]] std::vector<HeaderSpan> spans() const {
        std::vector<HeaderSpan> s;
        size_t at = 0;
        for (const auto& l : layers_) {
            s.push_back({l.kind, l.type, at, at + l.hdr.size()});
            at += l.hdr.size();
        }
        return s;
    }

  private:
    struct Layer {
        explicit Layer(LayerKind k) : kind(k) {}
        LayerKind kind;
        uint8_t type = 0;     // extension type / other protocol
        uint16_t tpid = 0;    // VLAN
        std::vector<uint8_t> hdr;
        std::optional<uint16_t> next_override;
        std::optional<uint16_t> len_override;
    };

    PacketBuilder& add(Layer l) {
        layers_.push_back(std::move(l));
        return *this;
    }
    Layer& last_of(std::initializer_list<LayerKind> kinds) {
        for (size_t i = layers_.size(); i-- > 0;)
            for (LayerKind k : kinds)
                if (layers_[i].kind == k) return layers_[i];
        throw std::logic_error("PacketBuilder: no layer to apply this setter to");
    }
    PacketBuilder& ext8(uint8_t type, uint8_t hdrlen) {
        Layer l(LayerKind::Ipv6Ext);
        l.type = type;
        l.hdr.assign((hdrlen + 1u) * 8u, 0);
        l.hdr[1] = hdrlen;
        // PadN over the 6 + 8*hdrlen option bytes (PadN carries ≤ 255 bytes).
        size_t at = 2;
        while (at < l.hdr.size()) {
            size_t left = l.hdr.size() - at;
            if (left == 1) break;  // Pad1 (0)
            size_t n = std::min<size_t>(left - 2, 255);
            l.hdr[at] = 1;
            l.hdr[at + 1] = static_cast<uint8_t>(n);
            at += 2 + n;
        }
        return add(std::move(l));
    }

    static uint16_t next_ethertype(const Layer* next) {
        if (!next) return 0x88b5;  // local experimental
        switch (next->kind) {
        case LayerKind::Vlan: return next->tpid;
        case LayerKind::Ipv4: return kEthIpv4;
        case LayerKind::Ipv6: return kEthIpv6;
        case LayerKind::Arp: return kEthArp;
        default: return 0x88b5;
        }
    }
    static uint8_t next_ipproto(const Layer* next) {
        if (!next) return kProtoNone;
        switch (next->kind) {
        case LayerKind::Ipv4: return 4;
        case LayerKind::Ipv6: return 41;
        case LayerKind::Ipv6Ext: return next->type;
        case LayerKind::Tcp: return kProtoTcp;
        case LayerKind::Udp: return kProtoUdp;
        case LayerKind::Icmp: return kProtoIcmp;
        case LayerKind::Icmpv6: return kProtoIcmpv6;
        case LayerKind::L4Other: return next->type;
        default: return kProtoNone;
        }
    }
    // Pseudo-header sum from the nearest IP header before layer i.
    uint32_t pseudo_sum(const std::vector<uint8_t>& out, const std::vector<size_t>& off, size_t i,
                        uint8_t proto, size_t len) const {
        for (size_t j = i; j-- > 0;) {
            const uint8_t* ip = out.data() + off[j];
            if (layers_[j].kind == LayerKind::Ipv4)
                return raw_sum(ip + 12, 8) + proto + static_cast<uint32_t>(len);
            if (layers_[j].kind == LayerKind::Ipv6)
                return raw_sum(ip + 8, 32) + proto + static_cast<uint32_t>(len >> 16) +
                       static_cast<uint32_t>(len & 0xffff);
        }
        return 0;
    }
    static uint32_t raw_sum(const uint8_t* p, size_t n) {
        uint32_t s = 0;
        for (size_t i = 0; i + 1 < n; i += 2) s += static_cast<uint32_t>(p[i] << 8 | p[i + 1]);
        if (n & 1) s += static_cast<uint32_t>(p[n - 1] << 8);
        return s;
    }
    static uint16_t fold(uint32_t s) {
        while (s >> 16) s = (s & 0xffff) + (s >> 16);
        return static_cast<uint16_t>(~s & 0xffff);
    }
    static uint8_t hi(uint16_t v) { return static_cast<uint8_t>(v >> 8); }
    static uint8_t lo(uint16_t v) { return static_cast<uint8_t>(v & 0xff); }
    static void put16(uint8_t* p, uint16_t v) {
        p[0] = hi(v);
        p[1] = lo(v);
    }
    static void put32(uint8_t* p, uint32_t v) {
        put16(p, static_cast<uint16_t>(v >> 16));
        put16(p + 2, static_cast<uint16_t>(v & 0xffff));
    }
    static void put_addr(int af, std::string_view text, uint8_t* dst) {
        std::string s(text);
        if (inet_pton(af, s.c_str(), dst) != 1)
            throw std::invalid_argument("PacketBuilder: bad address " + s);
    }

    std::vector<Layer> layers_;
};

// "0000  45 00 ..." lines of 16 bytes, for failure messages.
[[nodiscard]] inline std::string hex_dump(const std::vector<uint8_t>& frame, size_t max = 256) {
    std::string s;
    char buf[32];
    size_t n = std::min(frame.size(), max);
    for (size_t i = 0; i < n; ++i) {
        if (i % 16 == 0) {
            std::snprintf(buf, sizeof(buf), "%s%04zx ", i ? "\n" : "", i);
            s += buf;
        }
        std::snprintf(buf, sizeof(buf), " %02x", frame[i]);
        s += buf;
    }
    if (n < frame.size()) s += "\n... (" + std::to_string(frame.size()) + " bytes)";
    return s;
}

}  // namespace etcpipe::test
