// Reference FlowManager; see reference_selector.hpp for the rules.
#include "reference_selector.hpp"

#include <algorithm>
#include <utility>

namespace etcpipe::reference {
namespace {

constexpr uint16_t kEtherIpv4 = 0x0800;
constexpr uint16_t kEtherIpv6 = 0x86dd;
constexpr uint16_t kEtherVlan = 0x8100;   // 802.1Q
constexpr uint16_t kEtherQinQ = 0x88a8;   // 802.1ad

constexpr uint8_t kProtoHopByHop = 0;
constexpr uint8_t kProtoTcp = 6;
constexpr uint8_t kProtoUdp = 17;
constexpr uint8_t kProtoRouting = 43;
constexpr uint8_t kProtoFragment = 44;
constexpr uint8_t kProtoAh = 51;
constexpr uint8_t kProtoDestOpts = 60;
constexpr uint8_t kProtoMobility = 135;

bool is_vlan(uint16_t ethertype) { return ethertype == kEtherVlan || ethertype == kEtherQinQ; }

bool is_ipv6_ext(uint8_t nh) {
    return nh == kProtoHopByHop || nh == kProtoRouting || nh == kProtoDestOpts ||
           nh == kProtoFragment || nh == kProtoAh || nh == kProtoMobility;
}

// Bounds-checked big-endian reads over the frame.
struct Bytes {
    std::span<const uint8_t> d;
    [[nodiscard]] bool has(size_t off, size_t len) const { return off + len <= d.size(); }
    [[nodiscard]] uint8_t u8(size_t off) const { return d[off]; }
    [[nodiscard]] uint16_t u16(size_t off) const {
        return static_cast<uint16_t>(d[off] << 8 | d[off + 1]);
    }
};

}  // namespace

const char* parse_name(Parse p) {
    switch (p) {
    case Parse::Ok: return "ok";
    case Parse::TruncEth: return "trunc-eth";
    case Parse::TruncVlan: return "trunc-vlan";
    case Parse::VlanDepth: return "vlan-depth";
    case Parse::NotIp: return "not-ip";
    case Parse::TruncIpv4: return "trunc-ipv4";
    case Parse::BadIpv4: return "bad-ipv4";
    case Parse::TruncIpv6: return "trunc-ipv6";
    case Parse::BadIpv6: return "bad-ipv6";
    case Parse::TruncIpv6Ext: return "trunc-ipv6-ext";
    case Parse::Ipv6ExtDepth: return "ipv6-ext-depth";
    case Parse::Fragment: return "fragment";
    case Parse::TruncTcp: return "trunc-tcp";
    case Parse::BadTcp: return "bad-tcp";
    case Parse::TruncUdp: return "trunc-udp";
    }
    return "?";
}

ParsedFrame parse_frame(std::span<const uint8_t> frame) {
    const Bytes b{frame};
    ParsedFrame out;
    FlowKey& k = out.key;
    Endpoint src, dst;

    // --- Ethernet and VLAN tags ---
    if (!b.has(0, 14)) return out.status = Parse::TruncEth, out;
    uint16_t ethertype = b.u16(12);
    size_t pos = 14;
    for (int depth = 0; is_vlan(ethertype); ++depth) {
        if (depth == ETC_MAX_VLAN_DEPTH) return out.status = Parse::VlanDepth, out;
        if (!b.has(pos, 4)) return out.status = Parse::TruncVlan, out;
        k.vlan[depth] = b.u16(pos) & 0x0fff;
        ethertype = b.u16(pos + 2);
        pos += 4;
    }

    // --- IP ---
    uint32_t ip_payload = 0;  // bytes after the IP header(s), per the header
    out.ip_offset = static_cast<uint32_t>(pos);
    if (ethertype == kEtherIpv4) {
        if (!b.has(pos, 20)) return out.status = Parse::TruncIpv4, out;
        const unsigned version = b.u8(pos) >> 4, ihl = b.u8(pos) & 0x0f;
        if (version != 4 || ihl < 5) return out.status = Parse::BadIpv4, out;
        const uint32_t hdr_len = ihl * 4;
        if (!b.has(pos, hdr_len)) return out.status = Parse::TruncIpv4, out;
        const uint32_t total = b.u16(pos + 2);
        if (total < hdr_len) return out.status = Parse::BadIpv4, out;
        if (b.u16(pos + 6) & 0x1fff) return out.status = Parse::Fragment, out;
        k.family = 4;
        k.proto = b.u8(pos + 9);
        std::copy_n(frame.begin() + static_cast<std::ptrdiff_t>(pos + 12), 4, src.addr.begin());
        std::copy_n(frame.begin() + static_cast<std::ptrdiff_t>(pos + 16), 4, dst.addr.begin());
        out.ip_total_len = total;
        ip_payload = total - hdr_len;
        pos += hdr_len;
    } else if (ethertype == kEtherIpv6) {
        if (!b.has(pos, 40)) return out.status = Parse::TruncIpv6, out;
        if ((b.u8(pos) >> 4) != 6) return out.status = Parse::BadIpv6, out;
        const uint32_t payload_len = b.u16(pos + 4);
        uint8_t next = b.u8(pos + 6);
        std::copy_n(frame.begin() + static_cast<std::ptrdiff_t>(pos + 8), 16, src.addr.begin());
        std::copy_n(frame.begin() + static_cast<std::ptrdiff_t>(pos + 24), 16, dst.addr.begin());
        out.ip_total_len = 40 + payload_len;
        pos += 40;
        uint32_t ext_bytes = 0;
        for (int n = 0; is_ipv6_ext(next); ++n) {
            if (n == ETC_MAX_IPV6_EXT) return out.status = Parse::Ipv6ExtDepth, out;
            if (!b.has(pos, 2)) return out.status = Parse::TruncIpv6Ext, out;
            uint32_t len;
            if (next == kProtoFragment) {
                if (!b.has(pos, 8)) return out.status = Parse::TruncIpv6Ext, out;
                if (b.u16(pos + 2) & 0xfff8) return out.status = Parse::Fragment, out;
                len = 8;
            } else if (next == kProtoAh) {
                len = (b.u8(pos + 1) + 2u) * 4;  // RFC 4302: 4-byte units, minus 2
            } else {
                len = (b.u8(pos + 1) + 1u) * 8;  // RFC 8200: 8-byte units, minus 1
            }
            if (!b.has(pos, len)) return out.status = Parse::TruncIpv6Ext, out;
            next = b.u8(pos);
            pos += len;
            ext_bytes += len;
        }
        if (ext_bytes > payload_len) return out.status = Parse::BadIpv6, out;
        k.family = 6;
        k.proto = next;
        ip_payload = payload_len - ext_bytes;
    } else {
        return out.status = Parse::NotIp, out;
    }

    // --- L4 ---
    if (k.proto == kProtoTcp) {
        if (!b.has(pos, 20)) return out.status = Parse::TruncTcp, out;
        const uint32_t hdr_len = (b.u8(pos + 12) >> 4) * 4u;
        if (hdr_len < 20) return out.status = Parse::BadTcp, out;
        if (!b.has(pos, hdr_len)) return out.status = Parse::TruncTcp, out;
        if (hdr_len > ip_payload) return out.status = Parse::BadTcp, out;
        src.port = b.u16(pos);
        dst.port = b.u16(pos + 2);
        out.payload_len = ip_payload - hdr_len;
    } else if (k.proto == kProtoUdp) {
        if (!b.has(pos, 8)) return out.status = Parse::TruncUdp, out;
        if (ip_payload < 8) return out.status = Parse::TruncUdp, out;
        src.port = b.u16(pos);
        dst.port = b.u16(pos + 2);
        out.payload_len = ip_payload - 8;
    } else {
        out.payload_len = ip_payload;
    }

    // --- canonical order: smaller (address, port) is endpoint a ---
    out.src_is_b = dst < src;
    k.a = out.src_is_b ? dst : src;
    k.b = out.src_is_b ? src : dst;
    return out;
}

Decision Selector::feed(std::span<const uint8_t> frame, uint64_t ts_ns) {
    const ParsedFrame p = parse_frame(frame);
    Decision d;
    d.status = p.status;
    if (p.status != Parse::Ok) return d;

    // Find the flow; create it, or restart it when idle past the timeout.
    Flow* f = nullptr;
    if (auto it = current_.find(p.key); it != current_.end()) {
        Flow& old = flows_[it->second - 1];
        const bool idle = ts_ns > old.last_ns && ts_ns - old.last_ns > cfg_.idle_timeout_ns;
        if (!idle) f = &old;
        d.expired = idle;
    }
    if (!f) {
        Flow fresh;
        fresh.id = flows_.size() + 1;
        fresh.key = p.key;
        fresh.first_src_is_b = p.src_is_b;
        fresh.first_ns = ts_ns;
        flows_.push_back(fresh);
        current_[p.key] = fresh.id;
        f = &flows_.back();
        d.new_flow = true;
    }

    f->last_ns = std::max(f->last_ns, ts_ns);  // never backwards
    d.flow_id = f->id;
    d.pkt_index = f->packets++;
    f->bytes += frame.size();
    (p.src_is_b ? f->packets_from_b : f->packets_from_a)++;
    d.reply = p.src_is_b != f->first_src_is_b;
    d.payload_len = p.payload_len;
    d.payload = cfg_.count_all || p.payload_len > 0;
    if (d.payload) {
        const uint32_t n = f->payload_pkts++;
        if (n < cfg_.max_pkts) {
            d.selected = true;
            d.index = static_cast<uint16_t>(n);
            f->selected++;
        }
    }
    return d;
}

}  // namespace etcpipe::reference
