// Unit tests for loader/mdfeed/packet (frames crafted byte by byte below) and
// loader/mdfeed/reassembler, checked against a reference: a stream of random
// bytes cut into segments and fed in order, shuffled, duplicated, overlapped,
// with holes, across 2^32, and for many connections at once. The recording
// sink places every delivered byte at its stream position (on_gap moves the
// position by the bytes lost), so "delivered equals the reference" is checked
// byte by byte, holes included.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "mdfeed/packet.hpp"
#include "mdfeed/reassembler.hpp"

namespace etcpipe::test {
namespace {

using md::CloseReason;
using md::ConnKey;
using md::L4View;
using md::ParseResult;
using md::Reassembler;
using md::ReassemblerOptions;
using Bytes = std::vector<uint8_t>;

std::span<const uint8_t> sp(const Bytes& b) { return {b.data(), b.size()}; }

Bytes random_bytes(std::mt19937_64& rng, size_t n) {
    Bytes b(n);
    for (auto& x : b) x = static_cast<uint8_t>(rng());
    return b;
}

// ---- frame builder -------------------------------------------------------------

void be16(Bytes& b, size_t v) {
    b.push_back(static_cast<uint8_t>(v >> 8));
    b.push_back(static_cast<uint8_t>(v));
}
void be32(Bytes& b, uint32_t v) {
    be16(b, v >> 16);
    be16(b, v & 0xffff);
}
Bytes cat(Bytes a, const Bytes& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
}

Bytes tcp_hdr(uint16_t sport, uint16_t dport, uint32_t seq, uint8_t flags, size_t option_words = 0,
              int doff_override = -1) {
    Bytes t;
    be16(t, sport);
    be16(t, dport);
    be32(t, seq);
    be32(t, 0x01020304);  // ack
    const size_t doff = doff_override >= 0 ? static_cast<size_t>(doff_override) : 5 + option_words;
    t.push_back(static_cast<uint8_t>(doff << 4));
    t.push_back(flags);
    be16(t, 65535);
    be16(t, 0);
    be16(t, 0);
    for (size_t i = 0; i < option_words; ++i) t.insert(t.end(), {1, 1, 1, 1});  // NOPs
    return t;
}

Bytes udp_hdr(uint16_t sport, uint16_t dport, size_t payload_len, int len_override = -1) {
    Bytes u;
    be16(u, sport);
    be16(u, dport);
    be16(u, len_override >= 0 ? static_cast<size_t>(len_override) : 8 + payload_len);
    be16(u, 0);
    return u;
}

struct Ip4 {
    uint8_t proto = md::kProtoTcp;
    size_t option_words = 0;
    uint16_t frag = 0x4000;  // DF
    int total_override = -1;
    int version = 4;
    int ihl_override = -1;
};

Bytes ipv4(const Ip4& o, const Bytes& l4) {
    Bytes h;
    const size_t ihl = o.ihl_override >= 0 ? static_cast<size_t>(o.ihl_override) : 5 + o.option_words;
    h.push_back(static_cast<uint8_t>(o.version << 4 | ihl));
    h.push_back(0);
    be16(h, o.total_override >= 0 ? static_cast<size_t>(o.total_override) : (5 + o.option_words) * 4 + l4.size());
    be16(h, 0x1234);
    be16(h, o.frag);
    h.push_back(64);
    h.push_back(o.proto);
    be16(h, 0);
    h.insert(h.end(), {10, 0, 0, 1, 10, 0, 0, 2});
    for (size_t i = 0; i < o.option_words; ++i) h.insert(h.end(), {1, 1, 1, 1});
    return cat(h, l4);
}

// ext: {type, body} pairs in order; each body is padded to its header's unit.
Bytes ipv6(uint8_t first_next, const std::vector<std::pair<uint8_t, Bytes>>& ext, uint8_t l4_proto, const Bytes& l4) {
    Bytes chain;
    for (size_t i = 0; i < ext.size(); ++i) {
        const uint8_t next = i + 1 < ext.size() ? ext[i + 1].first : l4_proto;
        Bytes e = {next, 0};
        e.insert(e.end(), ext[i].second.begin(), ext[i].second.end());
        if (ext[i].first == 44) {  // fragment header: fixed 8 bytes
            e.resize(8);
        } else {
            while (e.size() % 8) e.push_back(0);
            e[1] = static_cast<uint8_t>(e.size() / 8 - 1);
        }
        chain = cat(chain, e);
    }
    Bytes h = {0x60, 0, 0, 0};
    be16(h, chain.size() + l4.size());
    h.push_back(ext.empty() ? l4_proto : first_next);
    h.push_back(64);
    for (int i = 0; i < 16; ++i) h.push_back(static_cast<uint8_t>(0x20 + i));
    for (int i = 0; i < 16; ++i) h.push_back(static_cast<uint8_t>(0x40 + i));
    return cat(cat(h, chain), l4);
}

Bytes ether(uint16_t type, const Bytes& l3, const std::vector<std::pair<uint16_t, uint16_t>>& tags = {}) {
    Bytes f = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
    for (auto [tpid, vid] : tags) {
        be16(f, tpid);
        be16(f, vid);
    }
    be16(f, type);
    return cat(f, l3);
}

const Bytes kData = {'h', 'e', 'l', 'l', 'o'};

// ---- packet ------------------------------------------------------------------

TEST(MdPacket, Ipv4TcpWithOptionsAndEthernetPadding) {
    const Bytes seg = cat(tcp_hdr(1234, 80, 0xdeadbeef, md::kTcpAck | md::kTcpPsh, 3), kData);
    Bytes frame = ether(0x0800, ipv4(Ip4{.option_words = 2}, seg));
    frame.resize(std::max<size_t>(frame.size(), 60) + 6, 0xee);  // padding that must not show
    L4View v;
    ASSERT_EQ(md::parse_frame(sp(frame), v), ParseResult::Ok);
    EXPECT_EQ(v.family, 4);
    EXPECT_EQ(v.proto, md::kProtoTcp);
    EXPECT_EQ(v.sport, 1234);
    EXPECT_EQ(v.dport, 80);
    EXPECT_EQ(v.seq, 0xdeadbeefu);
    EXPECT_EQ(v.flags, md::kTcpAck | md::kTcpPsh);
    EXPECT_EQ(Bytes(v.payload.begin(), v.payload.end()), kData);
    EXPECT_EQ(Bytes(v.src.begin(), v.src.begin() + 4), (Bytes{10, 0, 0, 1}));
    EXPECT_EQ(Bytes(v.dst.begin(), v.dst.begin() + 4), (Bytes{10, 0, 0, 2}));
    EXPECT_EQ(v.src[4], 0);
    EXPECT_FALSE(v.fragment);
}

TEST(MdPacket, Ipv4UdpCutToItsLength) {
    Bytes frame = ether(0x0800, ipv4(Ip4{.proto = md::kProtoUdp}, cat(udp_hdr(5000, 6000, 5), kData)));
    frame.resize(60, 0xee);
    L4View v;
    ASSERT_EQ(md::parse_frame(sp(frame), v), ParseResult::Ok);
    EXPECT_EQ(v.proto, md::kProtoUdp);
    EXPECT_EQ(v.sport, 5000);
    EXPECT_EQ(v.dport, 6000);
    EXPECT_EQ(Bytes(v.payload.begin(), v.payload.end()), kData);
    // A UDP length beyond the packet is a truncated L4 header.
    const Bytes bad = ether(0x0800, ipv4(Ip4{.proto = md::kProtoUdp}, cat(udp_hdr(1, 2, 5, 40), kData)));
    EXPECT_EQ(md::parse_frame(sp(bad), v), ParseResult::TruncatedL4);
}

TEST(MdPacket, VlanAndQinQ) {
    const Bytes ip = ipv4(Ip4{}, cat(tcp_hdr(1, 2, 3, md::kTcpAck), kData));
    L4View v;
    const Bytes one = ether(0x0800, ip, {{0x8100, 100}});
    ASSERT_EQ(md::parse_frame(sp(one), v), ParseResult::Ok);
    EXPECT_EQ(v.vlan_depth, 1);
    EXPECT_EQ(v.vlan[0], 100);
    const Bytes two = ether(0x0800, ip, {{0x88a8, 7}, {0x8100, 0x2000 | 200}});
    ASSERT_EQ(md::parse_frame(sp(two), v), ParseResult::Ok);
    EXPECT_EQ(v.vlan_depth, 2);
    EXPECT_EQ(v.vlan[0], 7);
    EXPECT_EQ(v.vlan[1], 200);  // PCP bits dropped
    EXPECT_EQ(Bytes(v.payload.begin(), v.payload.end()), kData);
    const Bytes three = ether(0x0800, ip, {{0x88a8, 1}, {0x8100, 2}, {0x8100, 3}});
    EXPECT_EQ(md::parse_frame(sp(three), v), ParseResult::VlanTooDeep);
}

TEST(MdPacket, Ipv6WithExtensionHeaders) {
    const Bytes seg = cat(tcp_hdr(443, 5555, 77, md::kTcpSyn), kData);
    const Bytes ip = ipv6(0, {{0, Bytes(4, 1)}, {43, Bytes(14, 2)}, {60, Bytes(6, 3)}}, md::kProtoTcp, seg);
    const Bytes frame = ether(0x86dd, ip);  // v.payload points into it
    L4View v;
    ASSERT_EQ(md::parse_frame(sp(frame), v), ParseResult::Ok);
    EXPECT_EQ(v.family, 6);
    EXPECT_EQ(v.sport, 443);
    EXPECT_EQ(v.seq, 77u);
    EXPECT_EQ(v.flags, md::kTcpSyn);
    EXPECT_EQ(v.src[0], 0x20);
    EXPECT_EQ(v.dst[15], 0x4f);
    EXPECT_EQ(Bytes(v.payload.begin(), v.payload.end()), kData);
    // Padding after the IPv6 payload is cut too.
    Bytes padded = ether(0x86dd, ipv6(0, {}, md::kProtoUdp, cat(udp_hdr(1, 2, 5), kData)));
    padded.resize(padded.size() + 9, 0xee);
    ASSERT_EQ(md::parse_frame(sp(padded), v), ParseResult::Ok);
    EXPECT_EQ(Bytes(v.payload.begin(), v.payload.end()), kData);
    // A fragment header anywhere in the chain.
    const Bytes frag = ipv6(0, {{0, {}}, {44, {}}}, md::kProtoUdp, cat(udp_hdr(1, 2, 5), kData));
    EXPECT_EQ(md::parse_frame(sp(ether(0x86dd, frag)), v), ParseResult::Fragment);
    EXPECT_TRUE(v.fragment);
    EXPECT_EQ(v.proto, md::kProtoUdp);
    EXPECT_EQ(v.family, 6);
}

TEST(MdPacket, Ipv4FragmentsAreReportedNotParsed) {
    const Bytes seg = cat(udp_hdr(1, 2, 5), kData);
    L4View v;
    for (uint16_t frag : {uint16_t{0x2000}, uint16_t{0x0001}, uint16_t{0x2010}}) {
        const Bytes f = ether(0x0800, ipv4(Ip4{.proto = md::kProtoUdp, .frag = frag}, seg));
        EXPECT_EQ(md::parse_frame(sp(f), v), ParseResult::Fragment) << frag;
        EXPECT_TRUE(v.fragment);
        EXPECT_EQ(v.proto, md::kProtoUdp);
        EXPECT_EQ(v.src[0], 10);
        EXPECT_TRUE(v.payload.empty());
    }
}

TEST(MdPacket, ReasonsForWhatIsNotL4) {
    L4View v;
    const Bytes seg = cat(tcp_hdr(1, 2, 3, 0), kData);
    EXPECT_EQ(md::parse_frame(sp(ether(0x0806, Bytes(28, 0))), v), ParseResult::NotIp);
    EXPECT_EQ(md::parse_frame(sp(ether(0x0800, ipv4(Ip4{.proto = 1}, Bytes(8, 0)))), v), ParseResult::NotTcpUdp);
    EXPECT_EQ(v.proto, 1);
    EXPECT_EQ(md::parse_frame(sp(ether(0x0800, ipv4(Ip4{.version = 6}, seg))), v), ParseResult::BadIpv4);
    EXPECT_EQ(md::parse_frame(sp(ether(0x0800, ipv4(Ip4{.ihl_override = 4}, seg))), v), ParseResult::BadIpv4);
    EXPECT_EQ(md::parse_frame(sp(ether(0x0800, ipv4(Ip4{.total_override = 19}, seg))), v), ParseResult::BadIpv4);
    EXPECT_EQ(md::parse_frame(sp(ether(0x0800, ipv4(Ip4{.total_override = 200}, seg))), v), ParseResult::TruncatedIp);
    EXPECT_EQ(md::parse_frame(sp(ether(0x0800, ipv4(Ip4{.total_override = 30}, seg))), v), ParseResult::TruncatedL4);
    EXPECT_EQ(md::parse_frame(sp(ether(0x0800, ipv4(Ip4{}, cat(tcp_hdr(1, 2, 3, 0, 0, 4), kData)))), v),
              ParseResult::BadTcpOffset);
    EXPECT_EQ(md::parse_frame(sp(ether(0x0800, ipv4(Ip4{}, cat(tcp_hdr(1, 2, 3, 0, 0, 15), kData)))), v),
              ParseResult::BadTcpOffset);
    Bytes v6 = ipv6(0, {}, md::kProtoTcp, seg);
    v6[0] = 0x40;
    EXPECT_EQ(md::parse_frame(sp(ether(0x86dd, v6)), v), ParseResult::BadIpv6);
    Bytes jumbo = ipv6(0, {}, md::kProtoTcp, seg);
    jumbo[4] = jumbo[5] = 0;
    EXPECT_EQ(md::parse_frame(sp(ether(0x86dd, jumbo)), v), ParseResult::BadIpv6);
    // An extension header claiming more than the packet holds.
    Bytes longext = ipv6(0, {{60, Bytes(6, 0)}}, md::kProtoTcp, seg);
    longext[40 + 1] = 200;
    EXPECT_EQ(md::parse_frame(sp(ether(0x86dd, longext)), v), ParseResult::BadIpv6);
    EXPECT_STREQ(md::parse_result_name(ParseResult::VlanTooDeep), "more than 2 VLAN tags");
}

// Every truncation of a good frame fails, with the reason of the header it cuts.
TEST(MdPacket, TruncatedAtEveryLength) {
    struct Case {
        const char* what;
        Bytes frame;
        size_t l2;  // Ethernet header bytes (with tags)
    };
    const Bytes seg = cat(tcp_hdr(1, 2, 3, md::kTcpAck, 2), kData);
    const std::vector<Case> cases = {
        {"ipv4", ether(0x0800, ipv4(Ip4{.option_words = 1}, seg)), 14},
        {"ipv4 qinq", ether(0x0800, ipv4(Ip4{}, seg), {{0x88a8, 1}, {0x8100, 2}}), 22},
        {"ipv6 ext", ether(0x86dd, ipv6(0, {{0, Bytes(4, 0)}, {60, Bytes(12, 0)}}, md::kProtoTcp, seg)), 14},
        {"ipv6 udp", ether(0x86dd, ipv6(0, {}, md::kProtoUdp, cat(udp_hdr(1, 2, 5), kData))), 14},
    };
    for (const auto& c : cases) {
        L4View v;
        ASSERT_EQ(md::parse_frame(sp(c.frame), v), ParseResult::Ok) << c.what;
        for (size_t k = 0; k < c.frame.size(); ++k) {
            const ParseResult r = md::parse_frame(sp(c.frame).first(k), v);
            const ParseResult want = k < c.l2 ? ParseResult::TruncatedEthernet : ParseResult::TruncatedIp;
            ASSERT_EQ(r, want) << c.what << " cut at " << k << ": " << md::parse_result_name(r);
        }
    }
}

// ---- reassembler ------------------------------------------------------------

// What the sink saw of one connection: bytes at their stream positions.
struct Rec {
    ConnKey key;
    bool midstream = false;
    bool closed = false;
    CloseReason why = CloseReason::Flush;
    uint64_t pos = 0;  // stream position of the next byte (delivered + lost)
    Bytes data;        // delivered bytes, in order
    std::vector<std::pair<uint64_t, uint64_t>> gaps;  // (position, bytes lost)
    std::vector<uint64_t> at;  // stream position of each delivered byte run start (for checks)
    std::vector<std::pair<uint64_t, uint64_t>> runs;  // (position, length) of each on_data
    uint64_t last_ts = 0;
};

struct Sink : md::ReassemblySink {
    std::map<uint32_t, Rec> conns;
    std::vector<uint32_t> order;  // ids in the order opened
    void on_open(uint32_t id, const ConnKey& key, bool midstream) override {
        ASSERT_EQ(conns.count(id), 0u);
        conns[id].key = key;
        conns[id].midstream = midstream;
        order.push_back(id);
    }
    void on_data(uint32_t id, std::span<const uint8_t> b, uint64_t ts) override {
        Rec& r = conns.at(id);
        ASSERT_FALSE(r.closed);
        ASSERT_FALSE(b.empty());
        r.runs.emplace_back(r.pos, b.size());
        r.data.insert(r.data.end(), b.begin(), b.end());
        r.pos += b.size();
        r.last_ts = ts;
    }
    void on_gap(uint32_t id, uint64_t lost) override {
        Rec& r = conns.at(id);
        ASSERT_FALSE(r.closed);
        ASSERT_GT(lost, 0u);
        r.gaps.emplace_back(r.pos, lost);
        r.pos += lost;
    }
    void on_close(uint32_t id, CloseReason why) override {
        Rec& r = conns.at(id);
        ASSERT_FALSE(r.closed);
        r.closed = true;
        r.why = why;
    }
    // The only connection (most tests have one).
    Rec& one() {
        EXPECT_EQ(conns.size(), 1u);
        return conns.begin()->second;
    }
};

// Delivered bytes equal the reference at their positions; holes are exactly
// the ranges in `lost` (start, length), if given.
void expect_matches(const Rec& r, const Bytes& ref, uint64_t ref_base = 0) {
    uint64_t off = 0;
    for (auto [pos, len] : r.runs) {
        ASSERT_LE(pos + len, ref_base + ref.size());
        ASSERT_GE(pos, 0u);
        for (uint64_t i = 0; i < len; ++i)
            ASSERT_EQ(r.data[off + i], ref[ref_base + pos + i]) << "stream byte " << pos + i;
        off += len;
    }
}

// The accounting identities of ReassemblyCounters.
void expect_consistent(const md::ReassemblyCounters& c, size_t buffered) {
    EXPECT_EQ(c.segments, c.in_order_segments + c.out_of_order_segments + c.duplicate_segments +
                              c.segments_before_start + c.segments_after_fin + c.segments_after_close +
                              c.segments_ignored + c.segments_no_payload);
    EXPECT_EQ(c.payload_bytes_in, c.bytes_accepted + c.duplicate_bytes + c.overlap_equal_bytes +
                                      c.overlap_mismatch_bytes + c.bytes_before_start + c.bytes_after_fin +
                                      c.bytes_after_close + c.bytes_ignored);
    EXPECT_EQ(c.bytes_accepted, c.bytes_delivered + buffered);
}

struct Seg {
    uint64_t off;
    uint32_t len;
};

// Cuts [0, n) into segments of 1..max bytes (mostly max).
std::vector<Seg> cut(std::mt19937_64& rng, uint64_t n, uint32_t max = 1400) {
    std::vector<Seg> s;
    for (uint64_t off = 0; off < n;) {
        uint32_t len = rng() % 4 == 0 ? static_cast<uint32_t>(1 + rng() % max) : max;
        len = static_cast<uint32_t>(std::min<uint64_t>(len, n - off));
        s.push_back({off, len});
        off += len;
    }
    return s;
}

ConnKey key(uint32_t i) {
    ConnKey k;
    k.family = 4;
    k.src = {10, 1, static_cast<uint8_t>(i >> 8), static_cast<uint8_t>(i)};
    k.dst = {10, 2, 0, 1};
    k.sport = static_cast<uint16_t>(40000 + i);
    k.dport = 9000;
    return k;
}

struct Feeder {
    Reassembler& r;
    ConnKey k;
    uint32_t isn;  // seq of stream offset 0
    const Bytes& ref;
    void seg(const Seg& s, uint64_t ts, uint8_t flags = md::kTcpAck) {
        r.segment(k, isn + static_cast<uint32_t>(s.off), flags, {ref.data() + s.off, s.len}, ts);
    }
    void seg(uint64_t off, uint32_t len, uint64_t ts, uint8_t flags = md::kTcpAck) { seg(Seg{off, len}, ts, flags); }
};

TEST(MdReassembly, InOrderMidstream) {
    std::mt19937_64 rng(10);
    const Bytes ref = random_bytes(rng, 300000);
    Sink sink;
    Reassembler r({}, sink);
    Feeder f{r, key(1), 123456789, ref};
    const auto segs = cut(rng, ref.size());
    for (const auto& s : segs) f.seg(s, 1000);
    EXPECT_EQ(r.connections(), 1u);
    r.flush();
    Rec& rec = sink.one();
    EXPECT_TRUE(rec.midstream);
    EXPECT_EQ(rec.data, ref);
    EXPECT_TRUE(rec.gaps.empty());
    EXPECT_EQ(rec.why, CloseReason::Flush);
    const auto& c = r.counters();
    EXPECT_EQ(c.in_order_segments, segs.size());
    EXPECT_EQ(c.bytes_delivered, ref.size());
    EXPECT_EQ(c.bytes_lost, 0u);
    EXPECT_EQ(c.connections_opened_midstream, 1u);
    EXPECT_EQ(c.connections_closed_flush, 1u);
    EXPECT_EQ(r.connections(), 0u);
    expect_consistent(c, r.buffered_bytes());
}

// Local shuffles whose reach stays within the buffer: delivered exactly, no gap.
TEST(MdReassembly, ShufflesWithinTheBuffer) {
    for (uint64_t seed = 0; seed < 20; ++seed) {
        std::mt19937_64 rng(100 + seed);
        const Bytes ref = random_bytes(rng, 100000);
        auto segs = cut(rng, ref.size());
        for (size_t i = 0; i < segs.size(); i += 16) {  // 16 x 1400 < 32 KiB
            const size_t e = std::min(segs.size(), i + 16);
            std::shuffle(segs.begin() + static_cast<long>(i), segs.begin() + static_cast<long>(e), rng);
        }
        Sink sink;
        Reassembler r({}, sink);
        // Start the stream with a SYN so a shuffled first segment is not a mid-stream start.
        const uint32_t isn = static_cast<uint32_t>(rng());
        r.segment(key(1), isn - 1, md::kTcpSyn, {}, 0);
        Feeder f{r, key(1), isn, ref};
        uint64_t ts = 0;
        for (const auto& s : segs) f.seg(s, ts += 1000);
        r.flush();
        Rec& rec = sink.one();
        ASSERT_EQ(rec.data, ref) << "seed " << seed;
        EXPECT_TRUE(rec.gaps.empty());
        EXPECT_FALSE(rec.midstream);
        EXPECT_EQ(r.counters().bytes_lost, 0u);
        EXPECT_GT(r.counters().out_of_order_segments, 0u);
        EXPECT_EQ(r.counters().connections_opened_syn, 1u);
        expect_consistent(r.counters(), 0);
    }
}

TEST(MdReassembly, DuplicatesAreCountedAndDropped) {
    std::mt19937_64 rng(11);
    const Bytes ref = random_bytes(rng, 50000);
    const auto segs = cut(rng, ref.size());
    Sink sink;
    Reassembler r({}, sink);
    Feeder f{r, key(1), 5, ref};
    std::vector<Seg> sched;
    size_t dups = 0;
    for (size_t i = 0; i < segs.size(); ++i) {
        sched.push_back(segs[i]);
        if (i > 0 && rng() % 3 == 0) {  // a retransmission of an older one
            sched.push_back(segs[i - 1 - rng() % std::min<size_t>(i, 5)]);
            ++dups;
        }
    }
    for (const auto& s : sched) f.seg(s, 1);
    r.flush();
    EXPECT_EQ(sink.one().data, ref);
    const auto& c = r.counters();
    EXPECT_EQ(c.duplicate_segments, dups);
    EXPECT_GT(c.duplicate_bytes, 0u);
    EXPECT_EQ(c.overlap_mismatch_bytes, 0u);
    expect_consistent(c, 0);
}

// Two different segmentations of the same stream, both sent, out of order:
// every overlapping byte is compared and equal.
TEST(MdReassembly, OverlapsWithEqualBytes) {
    std::mt19937_64 rng(12);
    const Bytes ref = random_bytes(rng, 60000);
    auto a = cut(rng, ref.size(), 1000);
    auto b = cut(rng, ref.size(), 1400);
    std::vector<Seg> all = a;
    all.insert(all.end(), b.begin(), b.end());
    std::sort(all.begin(), all.end(), [](const Seg& x, const Seg& y) { return x.off < y.off; });
    for (size_t i = 0; i + 8 < all.size(); i += 8)
        std::shuffle(all.begin() + static_cast<long>(i), all.begin() + static_cast<long>(i + 8), rng);
    Sink sink;
    Reassembler r({}, sink);
    r.segment(key(1), 999, md::kTcpSyn, {}, 0);
    Feeder f{r, key(1), 1000, ref};
    for (const auto& s : all) f.seg(s, 1);
    r.flush();
    EXPECT_EQ(sink.one().data, ref);
    const auto& c = r.counters();
    EXPECT_GT(c.overlap_equal_bytes, 0u);
    EXPECT_EQ(c.overlap_mismatch_bytes, 0u);
    EXPECT_EQ(c.bytes_lost, 0u);
    // Every byte was sent twice: once accepted, once counted as a repeat.
    EXPECT_EQ(c.bytes_accepted, ref.size());
    EXPECT_EQ(c.duplicate_bytes + c.overlap_equal_bytes, ref.size());
    expect_consistent(c, 0);
}

TEST(MdReassembly, OverlapsWithDifferentBytesFirstWins) {
    std::mt19937_64 rng(13);
    const Bytes ref = random_bytes(rng, 400);
    Bytes bad = ref;
    for (size_t i = 100; i < 200; ++i) bad[i] = static_cast<uint8_t>(~ref[i]);
    for (int corrupt_first = 0; corrupt_first < 2; ++corrupt_first) {
        Sink sink;
        Reassembler r({}, sink);
        r.segment(key(1), 0, md::kTcpSyn, {}, 0);
        const Bytes& first = corrupt_first ? bad : ref;
        const Bytes& later = corrupt_first ? ref : bad;
        // [100, 200) held ahead of a hole, then [0, 300) covers both.
        r.segment(key(1), 1 + 100, md::kTcpAck, {first.data() + 100, 100}, 1);
        r.segment(key(1), 1 + 0, md::kTcpAck, {later.data(), 300}, 2);
        // And [250, 400) overlaps bytes just delivered directly: [250,300) not compared.
        r.segment(key(1), 1 + 250, md::kTcpAck, {ref.data() + 250, 150}, 3);
        r.flush();
        Bytes want(later.begin(), later.begin() + 300);
        std::copy(first.begin() + 100, first.begin() + 200, want.begin() + 100);
        want.insert(want.end(), ref.begin() + 300, ref.end());
        EXPECT_EQ(sink.one().data, want) << corrupt_first;
        const auto& c = r.counters();
        EXPECT_EQ(c.overlap_mismatch_bytes, 100u);
        EXPECT_EQ(c.overlap_equal_bytes, 0u);
        EXPECT_EQ(c.duplicate_bytes, 50u);
        expect_consistent(c, 0);
    }
}

TEST(MdReassembly, SequenceWrapAt2To32) {
    std::mt19937_64 rng(14);
    const Bytes ref = random_bytes(rng, 200000);
    auto segs = cut(rng, ref.size());
    for (size_t i = 0; i + 10 < segs.size(); i += 10)
        std::shuffle(segs.begin() + static_cast<long>(i) + 1, segs.begin() + static_cast<long>(i + 10), rng);
    Sink sink;
    Reassembler r({}, sink);
    Feeder f{r, key(1), 0xffffffffu - 70000, ref};  // wraps a third of the way in
    for (const auto& s : segs) f.seg(s, 1);
    r.flush();
    EXPECT_EQ(sink.one().data, ref);
    EXPECT_EQ(r.counters().bytes_lost, 0u);
}

TEST(MdReassembly, MidstreamPickupDropsWhatCameBefore) {
    std::mt19937_64 rng(15);
    const Bytes ref = random_bytes(rng, 20000);
    const auto segs = cut(rng, ref.size(), 1000);
    Sink sink;
    Reassembler r({}, sink);
    Feeder f{r, key(1), 777, ref};
    // We start seeing the stream at segment 5; segments 3 and 4 arrive late.
    for (size_t i = 5; i < 8; ++i) f.seg(segs[i], 1);
    f.seg(segs[3], 2);
    f.seg(segs[4], 2);
    for (size_t i = 8; i < segs.size(); ++i) f.seg(segs[i], 3);
    r.flush();
    Rec& rec = sink.one();
    EXPECT_TRUE(rec.midstream);
    EXPECT_EQ(rec.data, Bytes(ref.begin() + static_cast<long>(segs[5].off), ref.end()));
    EXPECT_EQ(r.counters().segments_before_start, 2u);
    EXPECT_EQ(r.counters().bytes_before_start, uint64_t{segs[3].len} + segs[4].len);
    expect_consistent(r.counters(), 0);
}

TEST(MdReassembly, SynStartsTheStreamAtSeqPlusOne) {
    const Bytes ref = {'a', 'b', 'c', 'd', 'e', 'f'};
    Sink sink;
    Reassembler r({}, sink);
    const ConnKey k = key(1);
    r.segment(k, 0xfffffffe, md::kTcpSyn, {ref.data(), 2}, 1);  // SYN with data (TFO): data at 0xffffffff
    r.segment(k, 0xfffffffe, md::kTcpSyn, {}, 2);               // retransmitted SYN
    r.segment(k, 0xfffffffd, md::kTcpAck, {ref.data(), 1}, 3);  // before the start
    r.segment(k, 0x00000001, md::kTcpAck, {ref.data() + 2, 4}, 4);
    r.flush();
    Rec& rec = sink.one();
    EXPECT_FALSE(rec.midstream);
    EXPECT_EQ(rec.data, ref);
    const auto& c = r.counters();
    EXPECT_EQ(c.connections_opened_syn, 1u);
    EXPECT_EQ(c.syn_retransmits, 1u);
    EXPECT_EQ(c.segments_before_start, 1u);
    expect_consistent(c, 0);
}

TEST(MdReassembly, SynWithNewIsnReopens) {
    Sink sink;
    Reassembler r({}, sink);
    const Bytes d(10, 'x');
    r.segment(key(1), 100, md::kTcpSyn, {}, 1);
    r.segment(key(1), 101, md::kTcpAck, sp(d), 2);
    r.segment(key(1), 5000, md::kTcpSyn, {}, 3);
    r.segment(key(1), 5001, md::kTcpAck, sp(d), 4);
    r.flush();
    ASSERT_EQ(sink.conns.size(), 2u);
    EXPECT_EQ(sink.conns[sink.order[0]].why, CloseReason::Reused);
    EXPECT_EQ(sink.conns[sink.order[0]].data, d);
    EXPECT_EQ(sink.conns[sink.order[1]].data, d);
    EXPECT_EQ(r.counters().connections_reused, 1u);
}

// A lost segment that no retransmission fills: once data ahead no longer fits
// the buffer, the hole is declared with its exact size and delivery resumes.
TEST(MdReassembly, GapWhenTheBufferIsFull) {
    std::mt19937_64 rng(16);
    const Bytes ref = random_bytes(rng, 100000);
    const auto segs = cut(rng, ref.size(), 1400);
    const size_t lost = 10;
    Sink sink;
    ReassemblerOptions o;
    o.gap_timeout_ns = ~uint64_t{0} / 2;  // only the buffer decides
    Reassembler r(o, sink);
    Feeder f{r, key(1), 42, ref};
    uint64_t held_when_gap = 0;
    for (size_t i = 0; i < segs.size(); ++i) {
        if (i == lost) continue;
        const size_t before = sink.conns.empty() ? 0 : sink.one().gaps.size();
        f.seg(segs[i], 1);
        if (before == 0 && !sink.one().gaps.empty()) held_when_gap = segs[i].off + segs[i].len;
    }
    r.flush();
    Rec& rec = sink.one();
    ASSERT_EQ(rec.gaps.size(), 1u);
    EXPECT_EQ(rec.gaps[0].first, segs[lost].off);
    EXPECT_EQ(rec.gaps[0].second, segs[lost].len);
    // Declared by the first segment that ended more than 32 KiB past the hole.
    EXPECT_GT(held_when_gap - segs[lost].off, o.buffer_bytes);
    EXPECT_LE(held_when_gap - segs[lost].off, o.buffer_bytes + 1400);
    expect_matches(rec, ref);
    const auto& c = r.counters();
    EXPECT_EQ(c.gaps_buffer_full, 1u);
    EXPECT_EQ(c.bytes_lost, segs[lost].len);
    EXPECT_EQ(c.bytes_delivered + c.bytes_lost, ref.size());
    expect_consistent(c, 0);
}

// A segment far ahead with nothing held before it: the hole up to it is lost.
TEST(MdReassembly, FarAheadSkipsToIt) {
    const Bytes d(100, 'z');
    Sink sink;
    Reassembler r({}, sink);
    r.segment(key(1), 1000, md::kTcpAck, sp(d), 1);
    r.segment(key(1), 1000 + 100 + 1000000, md::kTcpAck, sp(d), 2);
    EXPECT_EQ(r.counters().gaps_buffer_full, 1u);
    EXPECT_EQ(r.counters().bytes_lost, 1000000u);
    EXPECT_EQ(sink.one().data.size(), 200u);
    EXPECT_EQ(sink.one().gaps[0], (std::pair<uint64_t, uint64_t>{100, 1000000}));
}

TEST(MdReassembly, GapByTimeout) {
    std::mt19937_64 rng(17);
    const Bytes ref = random_bytes(rng, 20000);
    const auto segs = cut(rng, ref.size(), 1000);
    ReassemblerOptions o;
    Sink sink;
    Reassembler r(o, sink);
    Feeder f{r, key(1), 1, ref};
    const uint64_t t0 = 1'000'000'000;
    for (size_t i = 0; i < 5; ++i) f.seg(segs[i], t0);
    // Segment 5 is lost; 6..8 are held from t0 + 10.
    for (size_t i = 6; i < 9; ++i) f.seg(segs[i], t0 + 10);
    const uint64_t held_end = segs[8].off + segs[8].len;
    EXPECT_EQ(r.buffered_bytes(), held_end - segs[6].off);
    r.advance_time(t0 + 10 + o.gap_timeout_ns);  // not longer than the timeout yet
    EXPECT_TRUE(sink.one().gaps.empty());
    r.advance_time(t0 + 10 + o.gap_timeout_ns + 1);
    ASSERT_EQ(sink.one().gaps.size(), 1u);
    EXPECT_EQ(sink.one().gaps[0], (std::pair<uint64_t, uint64_t>{segs[5].off, segs[5].len}));
    EXPECT_EQ(sink.one().pos, held_end);  // delivery resumed at the next held byte
    EXPECT_EQ(r.buffered_bytes(), 0u);
    EXPECT_EQ(r.counters().gaps_timeout, 1u);

    // The same check on segment(): segment 10 is lost, 11 held, 12 arrives late enough.
    f.seg(segs[9], t0 + 20);
    const uint64_t t1 = t0 + 30'000'000;
    f.seg(segs[11], t1);
    f.seg(segs[12], t1 + o.gap_timeout_ns + 1);
    ASSERT_EQ(sink.one().gaps.size(), 2u);
    EXPECT_EQ(sink.one().gaps[1], (std::pair<uint64_t, uint64_t>{segs[10].off, segs[10].len}));
    EXPECT_EQ(sink.one().last_ts, t1 + o.gap_timeout_ns + 1);
    for (size_t i = 13; i < segs.size(); ++i) f.seg(segs[i], t1 + o.gap_timeout_ns + 2);
    r.flush();
    expect_matches(sink.one(), ref);
    const auto& c = r.counters();
    EXPECT_EQ(c.gaps_timeout, 2u);
    EXPECT_EQ(c.bytes_lost, uint64_t{segs[5].len} + segs[10].len);
    EXPECT_EQ(c.bytes_delivered + c.bytes_lost, ref.size());
    expect_consistent(c, 0);
}

TEST(MdReassembly, FinClosesAfterTheLastByte) {
    std::mt19937_64 rng(18);
    const Bytes ref = random_bytes(rng, 10000);
    const auto segs = cut(rng, ref.size(), 1000);
    const size_t n = segs.size();
    {  // In order, FIN on the last data segment.
        Sink sink;
        Reassembler r({}, sink);
        Feeder f{r, key(1), 9, ref};
        for (size_t i = 0; i < n; ++i) f.seg(segs[i], 1, i + 1 == n ? md::kTcpAck | md::kTcpFin : md::kTcpAck);
        EXPECT_TRUE(sink.one().closed);
        EXPECT_EQ(sink.one().why, CloseReason::Fin);
        EXPECT_EQ(sink.one().data, ref);
        EXPECT_EQ(r.connections(), 0u);
        // A late retransmission after the close does not open a new stream.
        f.seg(segs[n - 2], 2);
        f.seg(ref.size(), 0, 2, md::kTcpAck | md::kTcpFin);
        EXPECT_EQ(sink.conns.size(), 1u);
        EXPECT_EQ(r.counters().segments_after_close, 2u);
        EXPECT_EQ(r.counters().connections_closed_fin, 1u);
        expect_consistent(r.counters(), 0);
    }
    {  // FIN (no data) before the last two segments: waits for the hole.
        Sink sink;
        Reassembler r({}, sink);
        Feeder f{r, key(1), 9, ref};
        for (size_t i = 0; i + 2 < n; ++i) f.seg(segs[i], 1);
        f.seg(ref.size(), 0, 1, md::kTcpFin | md::kTcpAck);
        f.seg(segs[n - 1], 1);
        EXPECT_FALSE(sink.one().closed);
        f.seg(segs[n - 2], 2);
        EXPECT_TRUE(sink.one().closed);
        EXPECT_EQ(sink.one().data, ref);
        EXPECT_EQ(r.counters().bytes_lost, 0u);
    }
    {  // FIN behind a hole that never fills: the timeout declares it, then closes.
        Sink sink;
        Reassembler r({}, sink);
        Feeder f{r, key(1), 9, ref};
        for (size_t i = 0; i + 1 < n; ++i) f.seg(segs[i], 1);
        f.seg(ref.size(), 0, 1, md::kTcpFin);
        r.advance_time(2 + ReassemblerOptions{}.gap_timeout_ns);
        EXPECT_TRUE(sink.one().closed);
        EXPECT_EQ(sink.one().why, CloseReason::Fin);
        const auto& c = r.counters();
        EXPECT_EQ(c.bytes_lost, segs[n - 1].len);
        EXPECT_EQ(c.bytes_delivered + c.bytes_lost, ref.size());
    }
    {  // Data beyond the FIN is dropped.
        Sink sink;
        Reassembler r({}, sink);
        Feeder f{r, key(1), 9, ref};
        f.seg(0, 100, 1);
        f.seg(200, 0, 1, md::kTcpFin);
        f.seg(150, 100, 1);  // [150, 200) held, [200, 250) past the FIN
        f.seg(250, 10, 1);
        f.seg(100, 50, 1);
        EXPECT_TRUE(sink.one().closed);
        EXPECT_EQ(sink.one().data, Bytes(ref.begin(), ref.begin() + 200));
        EXPECT_EQ(r.counters().bytes_after_fin, 60u);
        EXPECT_EQ(r.counters().segments_after_fin, 1u);
        expect_consistent(r.counters(), 0);
    }
}

TEST(MdReassembly, RstClosesAndDeliversWhatIsHeld) {
    std::mt19937_64 rng(19);
    const Bytes ref = random_bytes(rng, 5000);
    Sink sink;
    Reassembler r({}, sink);
    Feeder f{r, key(1), 9, ref};
    f.seg(0, 1000, 1);
    f.seg(2000, 1000, 1);  // held behind a hole
    f.seg(4000, 500, 1);
    r.segment(key(1).reversed(), 12345, md::kTcpRst, {}, 2);  // the receiver resets
    Rec& rec = sink.one();
    EXPECT_TRUE(rec.closed);
    EXPECT_EQ(rec.why, CloseReason::Rst);
    EXPECT_EQ(rec.gaps, (std::vector<std::pair<uint64_t, uint64_t>>{{1000, 1000}, {3000, 1000}}));
    expect_matches(rec, ref);
    EXPECT_EQ(rec.data.size(), 2500u);
    const auto& c = r.counters();
    EXPECT_EQ(c.connections_closed_rst, 1u);
    EXPECT_EQ(c.gaps_at_close, 2u);
    EXPECT_EQ(r.connections(), 0u);
    // An RST in the data direction closes too.
    r.segment(key(1), 9 + 1'000'000'000u, md::kTcpAck, {ref.data(), 10}, 3);  // far from the closed stream: a new one
    EXPECT_EQ(r.connections(), 1u);
    r.segment(key(1), 9 + 1'000'000'010u, md::kTcpRst | md::kTcpAck, {}, 4);
    EXPECT_EQ(r.connections(), 0u);
    EXPECT_EQ(r.counters().connections_closed_rst, 2u);
    expect_consistent(r.counters(), 0);
}

TEST(MdReassembly, TooManyHolesDeclaresTheOldest) {
    const Bytes ref(1000, 'q');
    ReassemblerOptions o;
    o.max_holes = 3;
    Sink sink;
    Reassembler r(o, sink);
    Feeder f{r, key(1), 9, ref};
    f.seg(0, 10, 1);
    for (uint64_t k = 1; k <= 4; ++k) f.seg(k * 100, 10, 1);  // four disjoint runs
    EXPECT_EQ(r.counters().gaps_holes_full, 1u);
    EXPECT_EQ(sink.one().gaps[0], (std::pair<uint64_t, uint64_t>{10, 90}));
    EXPECT_EQ(sink.one().pos, 110u);
    expect_consistent(r.counters(), r.buffered_bytes());
}

// 64 connections at once, 3 % of segments delayed by a few positions, random
// ISNs (some wrapping): every stream equals its reference, nothing evicted.
TEST(MdReassembly, ManyInterleavedConnections) {
    std::mt19937_64 rng(20);
    constexpr uint32_t kConns = 64;
    struct Stream {
        Bytes ref;
        std::vector<Seg> segs;
        uint32_t isn;
        size_t next = 0;
    };
    std::vector<Stream> st(kConns);
    for (uint32_t i = 0; i < kConns; ++i) {
        st[i].ref = random_bytes(rng, 100000 + rng() % 100000);
        st[i].segs = cut(rng, st[i].ref.size());
        st[i].isn = i % 4 == 0 ? 0xffffffffu - static_cast<uint32_t>(rng() % 200000) : static_cast<uint32_t>(rng());
        // 3 % reordering: a segment swaps with one up to 4 later.
        auto& s = st[i].segs;
        for (size_t j = 1; j + 5 < s.size(); ++j)
            if (rng() % 100 < 3) std::swap(s[j], s[j + 1 + rng() % 4]);
    }
    Sink sink;
    Reassembler r({}, sink);
    std::vector<uint32_t> live(kConns);
    std::iota(live.begin(), live.end(), 0u);
    uint64_t ts = 0;
    while (!live.empty()) {
        const size_t pick = rng() % live.size();
        Stream& s = st[live[pick]];
        const Seg& g = s.segs[s.next++];
        const bool last = s.next == s.segs.size();
        r.segment(key(live[pick]), s.isn + static_cast<uint32_t>(g.off), md::kTcpAck, {s.ref.data() + g.off, g.len},
                  ts += 100);
        if (last) {
            r.segment(key(live[pick]), s.isn + static_cast<uint32_t>(s.ref.size()), md::kTcpFin | md::kTcpAck, {},
                      ts);
            live.erase(live.begin() + static_cast<long>(pick));
        }
    }
    ASSERT_EQ(sink.conns.size(), kConns);
    for (const auto& [id, rec] : sink.conns) {
        uint32_t i = 0;
        while (!(key(i) == rec.key)) ++i;
        EXPECT_EQ(rec.data, st[i].ref) << "connection " << i;
        EXPECT_EQ(rec.why, CloseReason::Fin);
    }
    const auto& c = r.counters();
    EXPECT_EQ(c.evictions_lru, 0u);
    EXPECT_EQ(c.bytes_lost, 0u);
    EXPECT_EQ(c.connections_closed_fin, kConns);
    EXPECT_GT(c.out_of_order_segments, 0u);
    uint64_t total = 0;
    for (const auto& s : st) total += s.ref.size();
    EXPECT_EQ(c.bytes_delivered, total);
    expect_consistent(c, 0);
}

TEST(MdReassembly, EvictsTheLeastRecentlyUsed) {
    const Bytes d(10, 'e');
    Sink sink;
    Reassembler r({}, sink);
    for (uint32_t i = 0; i < 64; ++i) r.segment(key(i), 1000, md::kTcpAck, sp(d), i);
    EXPECT_EQ(r.connections(), 64u);
    r.segment(key(0), 1010, md::kTcpAck, sp(d), 100);  // 0 is fresh again: 1 is the LRU
    r.segment(key(64), 1000, md::kTcpAck, sp(d), 101);  // connection 65
    EXPECT_EQ(r.connections(), 64u);
    EXPECT_EQ(r.counters().evictions_lru, 1u);
    uint32_t evicted = 0;
    for (const auto& [id, rec] : sink.conns)
        if (rec.closed) {
            EXPECT_EQ(rec.why, CloseReason::Evicted);
            EXPECT_TRUE(rec.key == key(1));
            ++evicted;
        }
    EXPECT_EQ(evicted, 1u);
    // Closed slots are reused before open connections are evicted.
    r.segment(key(2), 1010, md::kTcpFin, {}, 102);
    r.segment(key(65), 1000, md::kTcpAck, sp(d), 103);
    EXPECT_EQ(r.counters().evictions_lru, 1u);
    EXPECT_EQ(r.connections(), 64u);
    r.flush();
    EXPECT_EQ(r.counters().connections_closed_flush, 64u);
    expect_consistent(r.counters(), 0);
}

TEST(MdReassembly, SegmentFromL4View) {
    const Bytes seg = cat(tcp_hdr(1234, 80, 500, md::kTcpAck), kData);
    const Bytes frame = ether(0x0800, ipv4(Ip4{}, seg));
    L4View v;
    ASSERT_EQ(md::parse_frame(sp(frame), v), ParseResult::Ok);
    Sink sink;
    Reassembler r({}, sink);
    r.segment(v, 1);
    r.flush();
    EXPECT_EQ(sink.one().data, kData);
    EXPECT_EQ(sink.one().key.sport, 1234);
    EXPECT_EQ(sink.one().key.src[0], 10);
    L4View udp = v;
    udp.proto = md::kProtoUdp;
    r.segment(udp, 2);
    EXPECT_EQ(r.counters().segments_ignored, 1u);
}

// Random loss, duplication, reordering, corruption-free overlaps and timeouts:
// whatever is delivered sits at its right position, and at the end delivered +
// lost equals the stream (the last segment always arrives, then a FIN).
TEST(MdReassembly, RandomisedAgainstReference) {
    for (uint64_t seed = 0; seed < 30; ++seed) {
        std::mt19937_64 rng(1000 + seed);
        const Bytes ref = random_bytes(rng, 20000 + rng() % 200000);
        auto segs = cut(rng, ref.size(), 1 + static_cast<uint32_t>(rng() % 1400));
        const Seg last = segs.back();
        segs.pop_back();
        std::vector<Seg> sched;
        for (const auto& s : segs) {
            const auto roll = rng() % 100;
            if (roll < 3) continue;  // lost
            sched.push_back(s);
            if (roll < 6) sched.push_back(s);  // duplicated
            if (roll < 8 && s.len > 2) sched.push_back({s.off + 1, s.len - 2});  // overlapping repeat
        }
        for (size_t j = 0; j + 12 < sched.size(); ++j)
            if (rng() % 100 < 5) std::swap(sched[j], sched[j + 1 + rng() % 11]);
        sched.push_back(last);
        ReassemblerOptions o;
        o.buffer_bytes = 4096 << (rng() % 4);
        o.max_holes = 2 + rng() % 8;
        o.gap_timeout_ns = 1000 + rng() % 100000;
        Sink sink;
        Reassembler r(o, sink);
        const uint32_t isn = static_cast<uint32_t>(rng());
        r.segment(key(1), isn - 1, md::kTcpSyn, {}, 0);
        Feeder f{r, key(1), isn, ref};
        uint64_t ts = 0;
        for (const auto& s : sched) {
            ts += rng() % 500;
            f.seg(s, ts);
            if (rng() % 50 == 0) r.advance_time(ts + rng() % 3000);
        }
        f.seg(ref.size(), 0, ts, md::kTcpFin);
        r.flush();
        Rec& rec = sink.one();
        SCOPED_TRACE("seed " + std::to_string(seed));
        expect_matches(rec, ref);
        EXPECT_EQ(rec.pos, ref.size());
        const auto& c = r.counters();
        EXPECT_EQ(c.bytes_delivered + c.bytes_lost, ref.size());
        EXPECT_EQ(c.overlap_mismatch_bytes, 0u);
        EXPECT_EQ(c.gaps_buffer_full + c.gaps_holes_full + c.gaps_timeout + c.gaps_at_close, rec.gaps.size());
        expect_consistent(c, 0);
    }
}

}  // namespace
}  // namespace etcpipe::test
