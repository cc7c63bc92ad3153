// The FlowManager's packet parser (bpf/include/parsing.h + parse_packet() in
// bpf/flowmgr.bpf.c) as plain inline functions shared by the CPU extractor
// (features_cpu.cpp) and the CUDA extractor (features.cu): no STL, no
// exceptions, no allocation; every function is ETC_HD so device code calls
// the very same code. See gpu/features.hpp for the semantics.
#pragma once

#include <stdint.h>

#include "etcpipe/flowmgr.h"

#ifdef __CUDACC__
#define ETC_HD __host__ __device__
#else
#define ETC_HD
#endif

namespace etcpipe::features::pp {

// One parsed packet. Offsets are from the start of the Ethernet frame.
struct Parsed {
    etc_flow_key key;      // canonical (a <= b), pad = 0
    uint32_t ip_off;       // first byte of the IP header
    uint32_t l4_off;       // first byte of the L4 header (== payload_off for other protos)
    uint32_t payload_off;  // first byte of the L4 payload
    uint32_t payload_len;  // L4 payload bytes per the IP/L4 headers (not caplen)
    uint32_t ip_len;       // IPv4 total length; IPv6 40 + payload length
    uint8_t from_a;        // 1: sent by canonical endpoint a (also when src == dst)
    uint8_t has_ports;     // 1: TCP or UDP (ports at l4_off, l4_off + 2)
    uint8_t pad[2];
};

ETC_HD inline uint16_t rd16(const uint8_t* p) {
    return static_cast<uint16_t>(static_cast<uint16_t>(p[0]) << 8 | p[1]);
}

ETC_HD inline bool is_ipv6_ext(uint8_t nh) {
    return nh == 0 || nh == 43 || nh == 60 || nh == 44 || nh == 51 || nh == 135;
}

// Parses Ethernet / ≤2 VLAN / IPv4|IPv6(+ext) / TCP|UDP|other. Returns false
// for every packet the FlowManager refuses (truncated, malformed, fragment,
// not IP, too many tags or extension headers).
ETC_HD inline bool parse(const uint8_t* p, uint32_t caplen, Parsed* out) {
    uint8_t* kb = reinterpret_cast<uint8_t*>(&out->key);
    for (uint32_t i = 0; i < sizeof(etc_flow_key); ++i) kb[i] = 0;
    etc_flow_key& k = out->key;

    if (caplen < 14) return false;
    uint16_t et = rd16(p + 12);
    uint32_t pos = 14;
    for (int i = 0; i < ETC_MAX_VLAN_DEPTH; ++i) {
        if (et != 0x8100 && et != 0x88a8) break;
        if (pos + 4 > caplen) return false;
        k.vlan[i] = static_cast<uint16_t>(rd16(p + pos) & 0x0fff);
        et = rd16(p + pos + 2);
        pos += 4;
    }
    if (et == 0x8100 || et == 0x88a8) return false;

    uint32_t ip_payload = 0;
    uint32_t src_off = 0, dst_off = 0, alen = 0;
    out->ip_off = pos;
    if (et == 0x0800) {
        if (pos + 20 > caplen) return false;
        const uint32_t ver = p[pos] >> 4, ihl = p[pos] & 0x0fu;
        if (ver != 4 || ihl < 5) return false;
        const uint32_t hl = ihl * 4;
        if (pos + hl > caplen) return false;
        const uint32_t tot = rd16(p + pos + 2);
        if (tot < hl) return false;
        if (rd16(p + pos + 6) & 0x1fff) return false;  // non-first fragment
        k.family = 4;
        k.proto = p[pos + 9];
        src_off = pos + 12;
        dst_off = pos + 16;
        alen = 4;
        out->ip_len = tot;
        ip_payload = tot - hl;
        pos += hl;
    } else if (et == 0x86dd) {
        if (pos + 40 > caplen) return false;
        if ((p[pos] >> 4) != 6) return false;
        const uint32_t plen = rd16(p + pos + 4);
        uint8_t nh = p[pos + 6];
        src_off = pos + 8;
        dst_off = pos + 24;
        alen = 16;
        out->ip_len = 40 + plen;
        pos += 40;
        uint32_t consumed = 0;
        for (int i = 0; i < ETC_MAX_IPV6_EXT; ++i) {
            if (!is_ipv6_ext(nh)) break;
            if (pos + 2 > caplen) return false;
            uint32_t len;
            if (nh == 44) {
                if (pos + 8 > caplen) return false;
                if (rd16(p + pos + 2) & 0xfff8) return false;  // non-first fragment
                len = 8;
            } else if (nh == 51) {
                len = (p[pos + 1] + 2u) * 4u;
            } else {
                len = (p[pos + 1] + 1u) * 8u;
            }
            if (pos + len > caplen) return false;
            nh = p[pos];
            pos += len;
            consumed += len;
        }
        if (is_ipv6_ext(nh)) return false;
        if (consumed > plen) return false;
        k.family = 6;
        k.proto = nh;
        ip_payload = plen - consumed;
    } else {
        return false;
    }

    out->l4_off = pos;
    uint16_t sport = 0, dport = 0;
    out->has_ports = 0;
    if (k.proto == 6) {
        if (pos + 20 > caplen) return false;
        const uint32_t hl = (p[pos + 12] >> 4) * 4u;
        if (hl < 20) return false;
        if (pos + hl > caplen) return false;
        if (hl > ip_payload) return false;
        sport = rd16(p + pos);
        dport = rd16(p + pos + 2);
        out->has_ports = 1;
        out->payload_off = pos + hl;
        out->payload_len = ip_payload - hl;
    } else if (k.proto == 17) {
        if (pos + 8 > caplen) return false;
        if (ip_payload < 8) return false;
        sport = rd16(p + pos);
        dport = rd16(p + pos + 2);
        out->has_ports = 1;
        out->payload_off = pos + 8;
        out->payload_len = ip_payload - 8;
    } else {
        out->payload_off = pos;
        out->payload_len = ip_payload;
    }

    // Canonical order: compare addresses (network byte order), then ports.
    int cmp = 0;
    for (uint32_t i = 0; i < alen && cmp == 0; ++i) {
        if (p[src_off + i] != p[dst_off + i]) cmp = p[src_off + i] < p[dst_off + i] ? -1 : 1;
    }
    if (cmp == 0 && sport != dport) cmp = sport < dport ? -1 : 1;
    const bool src_is_a = cmp <= 0;
    const uint32_t a_off = src_is_a ? src_off : dst_off;
    const uint32_t b_off = src_is_a ? dst_off : src_off;
    for (uint32_t i = 0; i < alen; ++i) {
        k.addr_a[i] = p[a_off + i];
        k.addr_b[i] = p[b_off + i];
    }
    k.port_a = src_is_a ? sport : dport;
    k.port_b = src_is_a ? dport : sport;
    out->from_a = src_is_a ? 1 : 0;
    return true;
}

ETC_HD inline uint32_t min_u32(uint32_t a, uint32_t b) { return a < b ? a : b; }

// payload:HxL row for one packet: writes exactly L bytes to dst (copied
// prefix, zero padding).
ETC_HD inline void fill_payload(const uint8_t* p, uint32_t caplen, const Parsed& pk, uint8_t* dst,
                                uint32_t L) {
    const uint32_t n = min_u32(min_u32(L, pk.payload_len), caplen - pk.payload_off);
    for (uint32_t i = 0; i < n; ++i) dst[i] = p[pk.payload_off + i];
    for (uint32_t i = n; i < L; ++i) dst[i] = 0;
}

// packet:HxL row: the first L bytes from the IP header (bounded by the IP
// packet length and caplen), addresses and TCP/UDP ports zeroed, zero padded.
ETC_HD inline void fill_packet(const uint8_t* p, uint32_t caplen, const Parsed& pk, uint8_t* dst,
                               uint32_t L) {
    const uint32_t n = min_u32(min_u32(L, pk.ip_len), caplen - pk.ip_off);
    for (uint32_t i = 0; i < n; ++i) dst[i] = p[pk.ip_off + i];
    for (uint32_t i = n; i < L; ++i) dst[i] = 0;
    // Addresses: IPv4 12..20, IPv6 8..40 (relative to the IP header).
    const uint32_t a0 = pk.key.family == 4 ? 12u : 8u;
    const uint32_t a1 = pk.key.family == 4 ? 20u : 40u;
    for (uint32_t i = a0; i < a1 && i < L; ++i) dst[i] = 0;
    if (pk.has_ports) {
        const uint32_t l4 = pk.l4_off - pk.ip_off;
        for (uint32_t i = l4; i < l4 + 4 && i < L; ++i) dst[i] = 0;
    }
}

// sizes:H element: IP length, positive from the initiator.
ETC_HD inline int32_t signed_size(const Parsed& pk, uint8_t initiator_is_a) {
    const int32_t s = static_cast<int32_t>(pk.ip_len);
    return pk.from_a == initiator_is_a ? s : -s;
}

// port:H element: IP protocol × 65536 + the server port, taken as the lower
// of the two ports (0 for protocols without ports). The same for every
// packet of a flow, whichever way it goes.
ETC_HD inline int32_t port_code(const Parsed& pk) {
    uint32_t port = 0;
    if (pk.has_ports) port = pk.key.port_a < pk.key.port_b ? pk.key.port_a : pk.key.port_b;
    return static_cast<int32_t>(uint32_t{pk.key.proto} << 16 | port);
}

// iat:H element: µs since the previous selected packet, toward zero.
ETC_HD inline int64_t iat_us(uint64_t ts, uint64_t prev_ts) {
    return static_cast<int64_t>(ts - prev_ts) / 1000;
}

// Key hashing / equality (FNV-1a over the 40 key bytes; pad is always 0).
ETC_HD inline uint64_t key_hash(const etc_flow_key& k) {
    const uint8_t* b = reinterpret_cast<const uint8_t*>(&k);
    uint64_t h = 1469598103934665603ull;
    for (uint32_t i = 0; i < sizeof(etc_flow_key); ++i) {
        h ^= b[i];
        h *= 1099511628211ull;
    }
    return h ^ (h >> 29);
}

ETC_HD inline bool key_equal(const etc_flow_key& x, const etc_flow_key& y) {
    const uint8_t* a = reinterpret_cast<const uint8_t*>(&x);
    const uint8_t* b = reinterpret_cast<const uint8_t*>(&y);
    for (uint32_t i = 0; i < sizeof(etc_flow_key); ++i)
        if (a[i] != b[i]) return false;
    return true;
}

}  // namespace etcpipe::features::pp
