// Unit tests for the feature extractors (gpu/features.hpp, SPEC §4): the
// spec parser, the .npy writer, exact tensor bytes on hand-made frames, the
// CPU extractor's thread-count independence and an independent reference
// (its own parser and std::map flow table, written here) on the nDPI captures.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "gpu/features.hpp"
#include "common/pcap.hpp"
#include "tests/common/expect_ok.hpp"

#ifndef ETC_SOURCE_DIR
#define ETC_SOURCE_DIR "."  // tests run from the repository root
#endif

namespace fs = std::filesystem;
using namespace etcpipe;
using namespace etcpipe::features;

namespace {

using Bytes = std::vector<uint8_t>;

// ---------------------------------------------------------------- frames --

struct Pkt {
    std::vector<uint16_t> vlans;  // VIDs outer→inner
    int family = 4;
    uint8_t proto = 6;
    std::array<uint8_t, 16> src{}, dst{};
    uint16_t sport = 0, dport = 0;
    Bytes payload;
    uint32_t extra_ip_len = 0;  // claimed by the IP header but not captured
};

std::array<uint8_t, 16> v4(uint8_t a, uint8_t b, uint8_t c, uint8_t d) {
    return {a, b, c, d};
}
std::array<uint8_t, 16> v6(uint8_t last) {
    std::array<uint8_t, 16> x{0x20, 0x01, 0x0d, 0xb8};
    x[15] = last;
    return x;
}

void put16(Bytes& b, uint16_t v) {
    b.push_back(static_cast<uint8_t>(v >> 8));
    b.push_back(static_cast<uint8_t>(v));
}

Bytes build(const Pkt& p) {
    Bytes b(12, 0x11);  // MACs
    for (uint16_t vid : p.vlans) {
        put16(b, 0x8100);
        put16(b, vid);
    }
    put16(b, p.family == 4 ? 0x0800 : 0x86dd);
    Bytes l4;
    if (p.proto == 6) {
        put16(l4, p.sport);
        put16(l4, p.dport);
        for (int i = 0; i < 8; ++i) l4.push_back(static_cast<uint8_t>(0xa0 + i));  // seq, ack
        l4.push_back(0x50);  // doff 5
        l4.push_back(0x18);
        put16(l4, 1024);
        put16(l4, 0);
        put16(l4, 0);
    } else if (p.proto == 17) {
        put16(l4, p.sport);
        put16(l4, p.dport);
        put16(l4, static_cast<uint16_t>(8 + p.payload.size() + p.extra_ip_len));
        put16(l4, 0);
    }
    l4.insert(l4.end(), p.payload.begin(), p.payload.end());
    const auto l4len = static_cast<uint16_t>(l4.size() + p.extra_ip_len);
    if (p.family == 4) {
        b.push_back(0x45);
        b.push_back(0);
        put16(b, static_cast<uint16_t>(20 + l4len));
        put16(b, 0x1234);
        put16(b, 0x4000);
        b.push_back(64);
        b.push_back(p.proto);
        put16(b, 0);
        b.insert(b.end(), p.src.begin(), p.src.begin() + 4);
        b.insert(b.end(), p.dst.begin(), p.dst.begin() + 4);
    } else {
        b.push_back(0x60);
        b.push_back(0);
        put16(b, 0);
        put16(b, l4len);
        b.push_back(p.proto);
        b.push_back(64);
        b.insert(b.end(), p.src.begin(), p.src.end());
        b.insert(b.end(), p.dst.begin(), p.dst.end());
    }
    b.insert(b.end(), l4.begin(), l4.end());
    return b;
}

Bytes str(const char* s) { return Bytes(s, s + std::strlen(s)); }

struct Capture {
    std::vector<Bytes> frames;
    std::vector<uint64_t> ts;
    void add(const Bytes& f, uint64_t t) {
        frames.push_back(f);
        ts.push_back(t);
    }
};

Output run_cpu(const Capture& c, const std::vector<Feature>& spec, unsigned threads,
               size_t batch = 4096) {
    auto ex = make_cpu_extractor(spec, CpuOptions{threads});
    Batch b;
    for (size_t i = 0; i < c.frames.size(); ++i) {
        if (b.size() == 0) b.first_index = i;
        b.add(c.frames[i], c.ts[i]);
        if (b.size() == batch) {
            EXPECT_TRUE(ex->push(b).ok());
            b.clear();
        }
    }
    if (b.size()) {
        EXPECT_TRUE(ex->push(b).ok());
    }
    auto out = ex->finish();
    EXPECT_TRUE(out.ok());
    return std::move(out).value();
}

std::vector<Feature> spec_of(const std::string& s) {
    auto r = parse_spec(s);
    EXPECT_OK(r);
    return r.ok() ? r.value() : std::vector<Feature>{};
}

template <class T>
T elem(const Output& o, size_t f, size_t row, size_t j) {
    T v;
    std::memcpy(&v, o.tensors[f].data() + row * o.spec[f].row_bytes() + j * sizeof(T), sizeof v);
    return v;
}

Bytes bytes_row(const Output& o, size_t f, size_t row, size_t j) {
    const size_t l = o.spec[f].l;
    const uint8_t* p = o.tensors[f].data() + row * o.spec[f].row_bytes() + j * l;
    return Bytes(p, p + l);
}

// The expected packet:…xL row computed from a built frame.
Bytes expect_packet(const Bytes& frame, size_t ip_off, uint32_t ip_len, int family, bool ports,
                    size_t l) {
    Bytes r(l, 0);
    for (size_t i = 0; i < l && i < ip_len && ip_off + i < frame.size(); ++i) r[i] = frame[ip_off + i];
    const size_t a0 = family == 4 ? 12 : 8, a1 = family == 4 ? 20 : 40;
    const size_t l4 = family == 4 ? 20 : 40;
    for (size_t i = 0; i < l; ++i)
        if ((i >= a0 && i < a1) || (ports && i >= l4 && i < l4 + 4)) r[i] = 0;
    return r;
}

bool rows_equal(const FlowRow& a, const FlowRow& b) {
    return std::memcmp(&a.key, &b.key, sizeof a.key) == 0 && a.initiator_is_a == b.initiator_is_a &&
           a.first_index == b.first_index && a.first_ns == b.first_ns && a.packets == b.packets &&
           a.selected == b.selected;
}

void expect_same(const Output& x, const Output& y, const std::string& what) {
    ASSERT_EQ(x.rows.size(), y.rows.size()) << what;
    for (size_t i = 0; i < x.rows.size(); ++i)
        ASSERT_TRUE(rows_equal(x.rows[i], y.rows[i])) << what << ": row " << i;
    ASSERT_EQ(x.tensors.size(), y.tensors.size()) << what;
    for (size_t f = 0; f < x.tensors.size(); ++f) {
        ASSERT_EQ(x.tensors[f].size(), y.tensors[f].size()) << what << " " << x.spec[f].name();
        if (x.tensors[f] != y.tensors[f]) {
            const size_t rb = x.spec[f].row_bytes();
            size_t i = 0;
            while (x.tensors[f][i] == y.tensors[f][i]) ++i;
            FAIL() << what << ": " << x.spec[f].name() << " differs at flow row " << i / rb
                   << " byte " << i % rb;
        }
    }
}

// ------------------------------------------------------------- the spec --

TEST(FeatureSpec, ParsesGoodSpecs) {
    auto r = parse_spec("payload:10x1000,packet:5x100,sizes:10,iat:20,port:1");
    ASSERT_TRUE(r.ok()) << r.error().message();
    ASSERT_EQ(r->size(), 5u);
    EXPECT_EQ((*r)[0].kind, Kind::Payload);
    EXPECT_EQ((*r)[0].h, 10u);
    EXPECT_EQ((*r)[0].l, 1000u);
    EXPECT_EQ((*r)[0].name(), "payload_10x1000");
    EXPECT_EQ((*r)[0].row_bytes(), 10000u);
    EXPECT_EQ((*r)[1].name(), "packet_5x100");
    EXPECT_EQ((*r)[1].elem_size(), 1u);
    EXPECT_EQ((*r)[2].name(), "sizes_10");
    EXPECT_EQ((*r)[2].row_bytes(), 40u);
    EXPECT_EQ((*r)[2].elem_size(), 4u);
    EXPECT_EQ((*r)[3].name(), "iat_20");
    EXPECT_EQ((*r)[3].row_bytes(), 160u);
    EXPECT_EQ((*r)[3].elem_size(), 8u);
    EXPECT_EQ((*r)[4].kind, Kind::Port);
    EXPECT_EQ((*r)[4].name(), "port_1");
    EXPECT_EQ((*r)[4].row_bytes(), 4u);
    EXPECT_EQ(max_packets(*r), 20u);
    auto one = parse_spec("sizes:3");
    ASSERT_TRUE(one.ok());
    EXPECT_EQ(max_packets(*one), 3u);
}

TEST(FeatureSpec, RejectsBadSpecsNamingThePart) {
    const std::vector<std::pair<std::string, std::string>> bad = {
        {"", ""},
        {"payload", "payload"},
        {"payload:10", "payload:10"},
        {"payload:0x10", "payload:0x10"},
        {"payload:10x0", "payload:10x0"},
        {"payload:10xabc", "payload:10xabc"},
        {"sizes:10,bogus:3", "bogus:3"},
        {"sizes:-1", "sizes:-1"},
        {"sizes:10x3", "sizes:10x3"},
        {"sizes:10,,iat:3", "''"},
        {"sizes:10,", "''"},
        {"iat:5,iat:5", "iat:5"},
        {"sizes:99999999999", "sizes:99999999999"},
        {"port:2x3", "port:2x3"},
        {"port:0", "port:0"},
    };
    for (const auto& [spec, part] : bad) {
        auto r = parse_spec(spec);
        ASSERT_FALSE(r.ok()) << spec;
        EXPECT_EQ(r.error().kind, ErrorKind::Usage) << spec;
        if (!part.empty()) {
            EXPECT_NE(r.error().message().find(part), std::string::npos)
                << spec << " → " << r.error().message();
        }
    }
}

// ------------------------------------------------------------------ npy --

TEST(Npy, HeaderIsParseableAndAligned) {
    const fs::path dir = fs::temp_directory_path() / ("etc_npy_" + std::to_string(::getpid()));
    fs::create_directories(dir);
    struct Case {
        Feature f;
        size_t rows;
        const char* descr;
        std::string shape;
    };
    const std::vector<Case> cases = {
        {{Kind::Payload, 10, 1000}, 3, "|u1", "(3, 10, 1000)"},
        {{Kind::Packet, 2, 7}, 0, "|u1", "(0, 2, 7)"},
        {{Kind::Sizes, 10, 0}, 5, "<i4", "(5, 10)"},
        {{Kind::Iat, 1, 0}, 123456, "<i8", "(123456, 1)"},
        {{Kind::Port, 2, 0}, 4, "<i4", "(4, 2)"},
    };
    for (const Case& c : cases) {
        Bytes t(c.rows * c.f.row_bytes());
        for (size_t i = 0; i < t.size(); ++i) t[i] = static_cast<uint8_t>(i * 7);
        const std::string path = (dir / (c.f.name() + ".npy")).string();
        ASSERT_TRUE(write_npy(path, c.f, t, c.rows).ok());
        std::ifstream in(path, std::ios::binary);
        Bytes all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        ASSERT_GE(all.size(), 10u);
        EXPECT_EQ(std::string(all.begin(), all.begin() + 6), "\x93NUMPY");
        EXPECT_EQ(all[6], 1);
        EXPECT_EQ(all[7], 0);
        const size_t hlen = all[8] | all[9] << 8;
        EXPECT_EQ((10 + hlen) % 64, 0u);
        ASSERT_EQ(all.size(), 10 + hlen + t.size());
        const std::string h(all.begin() + 10, all.begin() + 10 + static_cast<long>(hlen));
        EXPECT_EQ(h.back(), '\n');
        EXPECT_EQ(h.find("{'descr': '" + std::string(c.descr) +
                         "', 'fortran_order': False, 'shape': " + c.shape + ", }"),
                  0u)
            << h;
        EXPECT_EQ(h.find_first_not_of(' ', h.find('}') + 1), h.size() - 1) << h;
        EXPECT_TRUE(std::equal(t.begin(), t.end(), all.begin() + 10 + static_cast<long>(hlen)));
    }
    // A tensor of the wrong size is refused.
    EXPECT_FALSE(write_npy((dir / "bad.npy").string(), Feature{Kind::Sizes, 2, 0}, Bytes(7), 1).ok());
    fs::remove_all(dir);
}

// ------------------------------------------------------- hand-made flows --

TEST(CpuExtractor, ExactBytesOnHandMadeFlows) {
    const auto spec = spec_of("payload:3x8,packet:3x48,sizes:3,iat:3,port:3");
    Capture c;
    const auto cli = v4(10, 0, 0, 2), srv = v4(10, 0, 0, 1);  // the server is endpoint a
    auto tcp = [&](bool from_cli, const char* data) {
        Pkt p;
        p.src = from_cli ? cli : srv;
        p.dst = from_cli ? srv : cli;
        p.sport = from_cli ? 40000 : 80;
        p.dport = from_cli ? 80 : 40000;
        p.payload = str(data);
        return p;
    };
    const uint64_t t0 = 1'000'000'000'500;
    c.add(build(tcp(true, "")), t0);                                   // 0 SYN
    c.add(build(tcp(false, "")), t0 + 100'000);                         // 1 SYN-ACK
    c.add(build(tcp(true, "")), t0 + 200'000);                          // 2 ACK
    c.add(build(tcp(true, "hello")), t0 + 300'000);                     // 3 selected 0
    c.add(build(tcp(false, "")), t0 + 350'000);                         // 4 pure ACK
    c.add(build(tcp(false, "world!!!!!")), t0 + 300'000 + 700'999);     // 5 selected 1
    // A UDP/IPv6 flow on VLAN 5 and the same 5-tuple on VLAN 6: two flows.
    Pkt u;
    u.family = 6;
    u.proto = 17;
    u.vlans = {5};
    u.src = v6(9);
    u.dst = v6(3);
    u.sport = 5353;
    u.dport = 53;
    u.payload = str("abc");
    u.extra_ip_len = 100;  // the header claims more than was captured
    c.add(build(u), t0 + 2'000'000);                                   // 6 UDP vlan5
    Pkt u6 = u;
    u6.vlans = {6, 7};
    u6.extra_ip_len = 0;
    c.add(build(u6), t0 + 2'100'000);                                  // 7 UDP vlan6/7
    c.add(build(tcp(true, "x")), t0 + 300'000 + 700'999 + 1'800'000);   // 8 selected 2 → emitted
    c.add(build(tcp(true, "more")), t0 + 9'000'000);                    // 9 ignored: done
    c.add(build(tcp(false, "again")), t0 + 9'100'000);                  // 10 ignored: done
    // Pure ACKs only: never emitted.
    Pkt ack = tcp(true, "");
    ack.sport = 41000;
    c.add(build(ack), t0 + 3'000'000);                                 // 11
    c.add(build(ack), t0 + 3'100'000);                                 // 12
    // Time running backwards in a flow.
    Pkt back = tcp(true, "a");
    back.sport = 42000;
    c.add(build(back), t0 + 5'000'000);                                // 13
    c.add(build(back), t0 + 5'000'000 - 1'500'400);                    // 14
    // Unparsable: ARP, a truncated IPv4 header.
    Bytes arp(42, 0);
    arp[12] = 0x08;
    arp[13] = 0x06;
    c.add(arp, t0);                                                    // 15
    Bytes trunc = build(tcp(true, "zzz"));
    trunc.resize(14 + 10);
    c.add(trunc, t0);                                                  // 16

    for (unsigned threads : {1u, 3u}) {
        for (size_t batch : {size_t{1}, size_t{4}, size_t{4096}}) {
            SCOPED_TRACE("threads " + std::to_string(threads) + " batch " + std::to_string(batch));
            const Output o = run_cpu(c, spec, threads, batch);
            ASSERT_EQ(o.rows.size(), 4u);
            ASSERT_EQ(o.tensors.size(), 5u);
            for (size_t f = 0; f < 5; ++f) EXPECT_EQ(o.tensors[f].size(), 4 * spec[f].row_bytes());

            // Row 0: the TCP flow, first packet 0, initiator = client = endpoint b.
            const FlowRow& r0 = o.rows[0];
            EXPECT_EQ(r0.first_index, 0u);
            EXPECT_EQ(r0.first_ns, t0);
            EXPECT_EQ(r0.initiator_is_a, 0);
            EXPECT_EQ(r0.packets, 7u);  // 0-5 and 8 (6, 7 are other flows; 9, 10 came after emission)
            EXPECT_EQ(r0.selected, 3u);
            EXPECT_EQ(r0.key.family, 4);
            EXPECT_EQ(r0.key.proto, 6);
            EXPECT_EQ(r0.key.addr_a[3], 1);
            EXPECT_EQ(r0.key.addr_b[3], 2);
            EXPECT_EQ(r0.key.port_a, 80);
            EXPECT_EQ(r0.key.port_b, 40000);
            EXPECT_EQ(bytes_row(o, 0, 0, 0), Bytes({'h', 'e', 'l', 'l', 'o', 0, 0, 0}));
            EXPECT_EQ(bytes_row(o, 0, 0, 1), str("world!!!"));
            EXPECT_EQ(bytes_row(o, 0, 0, 2), Bytes({'x', 0, 0, 0, 0, 0, 0, 0}));
            EXPECT_EQ(bytes_row(o, 1, 0, 0), expect_packet(c.frames[3], 14, 45, 4, true, 48));
            EXPECT_EQ(bytes_row(o, 1, 0, 1), expect_packet(c.frames[5], 14, 50, 4, true, 48));
            EXPECT_EQ(bytes_row(o, 1, 0, 2), expect_packet(c.frames[8], 14, 41, 4, true, 48));
            EXPECT_EQ(bytes_row(o, 1, 0, 0)[9], 6);   // protocol kept
            EXPECT_EQ(bytes_row(o, 1, 0, 0)[40], 'h');  // payload after the headers
            EXPECT_EQ((elem<int32_t>(o, 2, 0, 0)), 45);
            EXPECT_EQ((elem<int32_t>(o, 2, 0, 1)), -50);
            EXPECT_EQ((elem<int32_t>(o, 2, 0, 2)), 41);
            EXPECT_EQ((elem<int64_t>(o, 3, 0, 0)), 0);
            EXPECT_EQ((elem<int64_t>(o, 3, 0, 1)), 700);
            EXPECT_EQ((elem<int64_t>(o, 3, 0, 2)), 1800);
            // port: TCP × 65536 + 80 (the lower port) for packets either way; zero padding after
            EXPECT_EQ((elem<int32_t>(o, 4, 0, 0)), 6 * 65536 + 80);
            EXPECT_EQ((elem<int32_t>(o, 4, 0, 1)), 6 * 65536 + 80);
            EXPECT_EQ((elem<int32_t>(o, 4, 0, 2)), 6 * 65536 + 80);

            // Row 1: UDP/IPv6 VLAN 5, one selected packet, truncated capture.
            const FlowRow& r1 = o.rows[1];
            EXPECT_EQ(r1.first_index, 6u);
            EXPECT_EQ(r1.key.family, 6);
            EXPECT_EQ(r1.key.proto, 17);
            EXPECT_EQ(r1.key.vlan[0], 5);
            EXPECT_EQ(r1.key.vlan[1], 0);
            EXPECT_EQ(r1.key.addr_a[15], 3);
            EXPECT_EQ(r1.key.port_a, 53);
            EXPECT_EQ(r1.initiator_is_a, 0);
            EXPECT_EQ(r1.packets, 1u);
            EXPECT_EQ(r1.selected, 1u);
            EXPECT_EQ(bytes_row(o, 0, 1, 0), Bytes({'a', 'b', 'c', 0, 0, 0, 0, 0}));
            EXPECT_EQ(bytes_row(o, 0, 1, 1), Bytes(8, 0));
            EXPECT_EQ(bytes_row(o, 1, 1, 0), expect_packet(c.frames[6], 18, 151, 6, true, 48));
            EXPECT_EQ(bytes_row(o, 1, 1, 1), Bytes(48, 0));
            EXPECT_EQ((elem<int32_t>(o, 2, 1, 0)), 40 + 8 + 3 + 100);
            EXPECT_EQ((elem<int32_t>(o, 2, 1, 1)), 0);
            EXPECT_EQ((elem<int64_t>(o, 3, 1, 0)), 0);
            EXPECT_EQ((elem<int32_t>(o, 4, 1, 0)), 17 * 65536 + 53);
            EXPECT_EQ((elem<int32_t>(o, 4, 1, 1)), 0);  // one packet: padding

            // Row 2: the same 5-tuple on VLANs 6/7 is another flow.
            EXPECT_EQ(o.rows[2].first_index, 7u);
            EXPECT_EQ(o.rows[2].key.vlan[0], 6);
            EXPECT_EQ(o.rows[2].key.vlan[1], 7);
            EXPECT_EQ(bytes_row(o, 1, 2, 0), expect_packet(c.frames[7], 22, 51, 6, true, 48));

            // Row 3: time ran backwards (packets 11/12, pure ACKs, are absent).
            EXPECT_EQ(o.rows[3].first_index, 13u);
            EXPECT_EQ(o.rows[3].selected, 2u);
            EXPECT_EQ(o.rows[3].initiator_is_a, 0);
            EXPECT_EQ((elem<int64_t>(o, 3, 3, 1)), -1500);
            EXPECT_EQ((elem<int32_t>(o, 2, 3, 1)), 41);
        }
    }
}

TEST(CpuExtractor, FlowsCsv) {
    const auto spec = spec_of("sizes:2");
    Capture c;
    Pkt p;
    p.src = v4(192, 168, 1, 20);
    p.dst = v4(8, 8, 8, 8);
    p.sport = 5555;
    p.dport = 443;
    p.payload = str("q");
    c.add(build(p), 42);
    const Output o = run_cpu(c, spec, 2);
    const std::string path = (fs::temp_directory_path() / "etc_flows_test.csv").string();
    ASSERT_TRUE(write_flows_csv(path, o).ok());
    std::ifstream in(path);
    std::string h, l;
    std::getline(in, h);
    std::getline(in, l);
    EXPECT_EQ(h, "row,proto,src,sport,dst,dport,vlan0,vlan1,first_ns,packets,selected");
    EXPECT_EQ(l, "0,6,192.168.1.20,5555,8.8.8.8,443,0,0,42,1,1");
    std::remove(path.c_str());
}

TEST(CpuExtractor, RefusesBatchesOutOfOrder) {
    auto ex = make_cpu_extractor(spec_of("sizes:2"), CpuOptions{2});
    Batch b;
    b.add(build(Pkt{}), 1);
    b.first_index = 10;
    ASSERT_TRUE(ex->push(b).ok());
    b.first_index = 5;
    EXPECT_FALSE(ex->push(b).ok());
}

// ------------------------------------------- the independent reference --
// The simplest code that states SPEC §4: a parser over std::vector with
// at(), a std::map from (family, proto, vlans, endpoint a, endpoint b).

struct RefEnd {
    std::array<uint8_t, 16> addr{};
    uint16_t port = 0;
    auto operator<=>(const RefEnd&) const = default;
};

struct RefParsed {
    int family = 0, proto = 0;
    std::array<uint16_t, 2> vlan{};
    RefEnd src, dst;
    size_t ip_off = 0, l4_off = 0, pay_off = 0;
    long pay_len = 0, ip_len = 0;
    bool ports = false;
};

bool ref_parse(const Bytes& f, RefParsed& r) {
    auto has = [&](size_t off, size_t n) { return off + n <= f.size(); };
    auto be16 = [&](size_t off) { return (f.at(off) << 8) | f.at(off + 1); };
    if (!has(0, 14)) return false;
    size_t pos = 12;
    int type = be16(pos);
    pos += 2;
    int tags = 0;
    while (type == 0x8100 || type == 0x88a8) {
        if (tags == 2 || !has(pos, 4)) return false;
        r.vlan[static_cast<size_t>(tags++)] = static_cast<uint16_t>(be16(pos) & 0xfff);
        type = be16(pos + 2);
        pos += 4;
    }
    r.ip_off = pos;
    long ip_payload;
    if (type == 0x0800) {
        if (!has(pos, 20) || f[pos] >> 4 != 4) return false;
        const size_t ihl = (f[pos] & 15u) * 4u;
        if (ihl < 20 || !has(pos, ihl)) return false;
        r.ip_len = be16(pos + 2);
        if (r.ip_len < static_cast<long>(ihl)) return false;
        if ((be16(pos + 6) & 0x1fff) != 0) return false;
        r.family = 4;
        r.proto = f[pos + 9];
        std::copy(f.begin() + static_cast<long>(pos) + 12, f.begin() + static_cast<long>(pos) + 16,
                  r.src.addr.begin());
        std::copy(f.begin() + static_cast<long>(pos) + 16, f.begin() + static_cast<long>(pos) + 20,
                  r.dst.addr.begin());
        ip_payload = r.ip_len - static_cast<long>(ihl);
        pos += ihl;
    } else if (type == 0x86dd) {
        if (!has(pos, 40) || f[pos] >> 4 != 6) return false;
        const long plen = be16(pos + 4);
        r.ip_len = 40 + plen;
        int next = f[pos + 6];
        std::copy(f.begin() + static_cast<long>(pos) + 8, f.begin() + static_cast<long>(pos) + 24,
                  r.src.addr.begin());
        std::copy(f.begin() + static_cast<long>(pos) + 24, f.begin() + static_cast<long>(pos) + 40,
                  r.dst.addr.begin());
        pos += 40;
        long ext = 0;
        int count = 0;
        const std::vector<int> exts = {0, 43, 44, 51, 60, 135};
        while (std::find(exts.begin(), exts.end(), next) != exts.end()) {
            if (count++ == 6 || !has(pos, 2)) return false;
            size_t len = (f[pos + 1] + 1u) * 8u;
            if (next == 51) len = (f[pos + 1] + 2u) * 4u;
            if (next == 44) {
                if (!has(pos, 8) || (be16(pos + 2) & ~7) != 0) return false;
                len = 8;
            }
            if (!has(pos, len)) return false;
            next = f[pos];
            pos += len;
            ext += static_cast<long>(len);
        }
        if (ext > plen) return false;
        r.family = 6;
        r.proto = next;
        ip_payload = plen - ext;
    } else {
        return false;
    }
    r.l4_off = pos;
    long hdr = 0;
    if (r.proto == 6) {
        if (!has(pos, 20)) return false;
        hdr = (f[pos + 12] >> 4) * 4;
        if (hdr < 20 || !has(pos, static_cast<size_t>(hdr)) || hdr > ip_payload) return false;
    } else if (r.proto == 17) {
        hdr = 8;
        if (!has(pos, 8) || ip_payload < 8) return false;
    }
    if (hdr > 0) {
        r.ports = true;
        r.src.port = static_cast<uint16_t>(be16(pos));
        r.dst.port = static_cast<uint16_t>(be16(pos + 2));
    }
    r.pay_off = pos + static_cast<size_t>(hdr);
    r.pay_len = ip_payload - hdr;
    return true;
}

struct RefFlow {
    FlowRow row;
    bool done = false;
    uint64_t last = 0;
    std::vector<Bytes> t;  // per feature
};

Output ref_extract(const std::vector<Bytes>& frames, const std::vector<uint64_t>& ts,
                   const std::vector<Feature>& spec) {
    const uint32_t H = max_packets(spec);
    using Key = std::tuple<int, int, std::array<uint16_t, 2>, RefEnd, RefEnd>;
    std::map<Key, size_t> index;
    std::vector<RefFlow> flows;  // in order of creation = order of first packet
    for (size_t i = 0; i < frames.size(); ++i) {
        RefParsed p;
        if (!ref_parse(frames[i], p)) continue;
        const bool src_is_a = !(p.dst < p.src);
        const RefEnd& a = src_is_a ? p.src : p.dst;
        const RefEnd& b = src_is_a ? p.dst : p.src;
        const Key key{p.family, p.proto, p.vlan, a, b};
        if (!index.count(key)) {
            index[key] = flows.size();
            RefFlow nf;
            nf.row.key.family = static_cast<uint8_t>(p.family);
            nf.row.key.proto = static_cast<uint8_t>(p.proto);
            nf.row.key.vlan[0] = p.vlan[0];
            nf.row.key.vlan[1] = p.vlan[1];
            std::copy(a.addr.begin(), a.addr.end(), nf.row.key.addr_a);
            std::copy(b.addr.begin(), b.addr.end(), nf.row.key.addr_b);
            nf.row.key.port_a = a.port;
            nf.row.key.port_b = b.port;
            nf.row.initiator_is_a = src_is_a;
            nf.row.first_index = i;
            nf.row.first_ns = ts[i];
            for (const Feature& f : spec) nf.t.emplace_back(f.row_bytes(), 0);
            flows.push_back(nf);
        }
        RefFlow& fl = flows[index[key]];
        if (fl.done) continue;
        fl.row.packets++;
        if (p.pay_len <= 0) continue;
        const uint32_t j = fl.row.selected++;
        const Bytes& fr = frames[i];
        for (size_t k = 0; k < spec.size(); ++k) {
            const Feature& f = spec[k];
            if (j >= f.h) continue;
            if (f.kind == Kind::Payload) {
                for (size_t x = 0; x < f.l; ++x)
                    if (static_cast<long>(x) < p.pay_len && p.pay_off + x < fr.size())
                        fl.t[k][j * f.l + x] = fr[p.pay_off + x];
            } else if (f.kind == Kind::Packet) {
                for (size_t x = 0; x < f.l; ++x) {
                    const size_t at = p.ip_off + x;
                    const bool addr = p.family == 4 ? (x >= 12 && x < 20) : (x >= 8 && x < 40);
                    const bool port = p.ports && at >= p.l4_off && at < p.l4_off + 4;
                    if (static_cast<long>(x) < p.ip_len && at < fr.size() && !addr && !port)
                        fl.t[k][j * f.l + x] = fr[at];
                }
            } else if (f.kind == Kind::Sizes) {
                const int32_t v = static_cast<int32_t>(
                    src_is_a == static_cast<bool>(fl.row.initiator_is_a) ? p.ip_len : -p.ip_len);
                std::memcpy(&fl.t[k][j * 4], &v, 4);
            } else if (f.kind == Kind::Port) {
                const int server = p.ports ? std::min(p.src.port, p.dst.port) : 0;
                const int32_t v = p.proto * 65536 + server;
                std::memcpy(&fl.t[k][j * 4], &v, 4);
            } else {
                const int64_t v =
                    j == 0 ? 0
                           : (static_cast<int64_t>(ts[i]) - static_cast<int64_t>(fl.last)) / 1000;
                std::memcpy(&fl.t[k][j * 8], &v, 8);
            }
        }
        fl.last = ts[i];
        if (fl.row.selected == H) fl.done = true;
    }
    Output out;
    out.spec = spec;
    out.tensors.resize(spec.size());
    for (const RefFlow& fl : flows) {
        if (fl.row.selected == 0) continue;
        out.rows.push_back(fl.row);
        for (size_t k = 0; k < spec.size(); ++k)
            out.tensors[k].insert(out.tensors[k].end(), fl.t[k].begin(), fl.t[k].end());
    }
    return out;
}

TEST(Reference, AgreesOnHandMadeFlows) {
    // A few handmade frames through both: a smoke test of the reference itself.
    Capture c;
    Pkt p;
    p.src = v4(1, 2, 3, 4);
    p.dst = v4(1, 2, 3, 4);
    p.sport = 9;
    p.dport = 9;  // src == dst
    p.payload = str("same");
    c.add(build(p), 5);
    p.proto = 47;  // GRE: no ports, the whole IP payload is payload
    c.add(build(p), 6);
    const auto spec = spec_of("payload:2x6,packet:2x30,sizes:2,iat:2,port:2");
    const Output ref = ref_extract(c.frames, c.ts, spec);
    ASSERT_EQ(ref.rows.size(), 2u);
    expect_same(run_cpu(c, spec, 2), ref, "handmade");
}

// Enough flows and packets per batch that push() and finish() take their
// parallel paths (the nDPI captures are mostly small enough for the serial
// ones): 6,000 interleaved flows over IPv4 / IPv6, TCP / UDP, some with
// packets without payload and some that never carry any, in batches of
// 4,096 and one odd-sized batch; threads 1, 2, 4, 7 and the reference agree.
TEST(Reference, ManyInterleavedFlowsAllThreadCounts) {
    Capture c;
    const size_t kFlows = 6000;
    uint64_t ts = 1'000'000'000;
    for (size_t round = 0; round < 4; ++round)
        for (size_t f = 0; f < kFlows; ++f) {
            Pkt p;
            p.family = f % 5 == 0 ? 6 : 4;
            p.proto = f % 3 == 0 ? 17 : 6;
            if (p.family == 4) {
                p.src = v4(10, static_cast<uint8_t>(f >> 8), static_cast<uint8_t>(f), 1);
                p.dst = v4(10, 200, 0, 2);
            } else {
                p.src = v6(static_cast<uint8_t>(f));
                p.src[14] = static_cast<uint8_t>(f >> 8);
                p.dst = v6(0);
            }
            p.sport = static_cast<uint16_t>(1024 + f);
            p.dport = 443;
            if (round % 2 == 1) std::swap(p.src, p.dst), std::swap(p.sport, p.dport);
            // flows f % 7 == 0 never carry payload; round 2 carries none
            if (f % 7 != 0 && round != 2)
                for (size_t k = 0; k < 20 + (f * 13 + round * 7) % 300; ++k)
                    p.payload.push_back(static_cast<uint8_t>(f * 31 + round * 17 + k));
            c.add(build(p), ts);
            ts += 1000 + (f % 11) * 100;
        }
    const auto spec = spec_of("payload:3x200,packet:2x64,sizes:4,iat:4,port:1");
    const Output ref = ref_extract(c.frames, c.ts, spec);
    ASSERT_GT(ref.rows.size(), 5000u);
    for (unsigned threads : {1u, 2u, 4u, 7u})
        for (size_t batch : {size_t{4096}, size_t{5003}}) {
            SCOPED_TRACE("threads " + std::to_string(threads) + " batch " + std::to_string(batch));
            expect_same(run_cpu(c, spec, threads, batch), ref, "interleaved");
            if (HasFatalFailure()) return;
        }
}

// ------------------------------------------------------------ nDPI data --

std::vector<fs::path> ndpi_captures() {
    std::vector<fs::path> out;
    const fs::path dir = fs::path(ETC_SOURCE_DIR) / "testdata/ndpi/pcap";
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) return out;
    for (const auto& e : fs::directory_iterator(dir, ec))
        if (e.is_regular_file() && (e.path().extension() == ".pcap" ||
                                    e.path().extension() == ".pcapng" ||
                                    e.path().extension() == ".cap"))
            out.push_back(e.path());
    std::sort(out.begin(), out.end());
    return out;
}

bool load(const fs::path& path, Capture& c) {
    auto r = pcap::Reader::open(path.string());
    if (!r.ok()) return false;
    pcap::Frame f;
    std::vector<uint8_t> scratch;
    while (true) {
        auto more = r->next(f);
        if (!more.ok() || !*more) break;
        auto eth = pcap::to_ethernet(f, scratch);
        if (!eth.ok()) continue;
        c.add(Bytes(eth->begin(), eth->end()), f.ts_ns);
    }
    return true;
}

// GTEST_SKIP returns from the test body, so this is a macro, not a function.
#define SKIP_WITHOUT_NDPI(files)                                                           \
    do {                                                                                   \
        if ((files).empty()) {                                                             \
            std::printf("[  SKIPPED ] testdata/ndpi/pcap missing (run `make testdata`)\n"); \
            GTEST_SKIP() << "testdata/ndpi/pcap missing";                                  \
        }                                                                                  \
    } while (0)

// The CLI keeps one extractor per worker for all its captures: after
// finish() it must start from nothing (indices from 0, no flows, its
// threads kept), also after an input abandoned half-way and discarded with
// a finish() whose output is thrown away.
TEST(Ndpi, CpuExtractorReusedAcrossCapturesMatchesFresh) {
    const auto files = ndpi_captures();
    SKIP_WITHOUT_NDPI(files);
    const auto spec = spec_of("payload:4x300,sizes:10,iat:10,port:1");
    auto ex = make_cpu_extractor(spec, CpuOptions{3});
    auto feed = [&](const Capture& c, size_t upto) {
        Batch b;
        for (size_t i = 0; i < upto; ++i) {
            if (b.size() == 0) b.first_index = i;
            b.add(c.frames[i], c.ts[i]);
            if (b.size() == 500) {
                EXPECT_TRUE(ex->push(b).ok());
                b.clear();
            }
        }
        if (b.size()) {
            EXPECT_TRUE(ex->push(b).ok());
        }
    };
    size_t compared = 0, flows = 0;
    for (size_t k = 0; k < files.size() && compared < 24; k += 9) {
        Capture c;
        if (!load(files[k], c) || c.frames.empty()) continue;
        if (compared % 3 == 1) {  // an input abandoned half-way, then discarded
            feed(c, c.frames.size() / 2);
            ASSERT_TRUE(ex->finish().ok());
        }
        feed(c, c.frames.size());
        auto got = ex->finish();
        ASSERT_TRUE(got.ok()) << got.error().message();
        const Output fresh = run_cpu(c, spec, 3, 500);
        expect_same(*got, fresh, files[k].filename().string() + " (reused vs fresh)");
        if (HasFatalFailure()) return;
        ++compared;
        flows += fresh.rows.size();
    }
    std::printf("one extractor reused over %zu captures (%zu flows): same as fresh ones\n", compared, flows);
    EXPECT_GE(compared, 10u);
}

TEST(Ndpi, CpuThreadsAndReferenceAgree) {
    const auto files = ndpi_captures();
    SKIP_WITHOUT_NDPI(files);
    const auto spec = spec_of("payload:10x1000,packet:10x200,sizes:10,iat:10,port:10");
    size_t captures = 0, flows = 0, packets = 0, unreadable = 0;
    const auto t0 = std::chrono::steady_clock::now();
    for (const fs::path& path : files) {
        Capture c;
        if (!load(path, c)) {
            ++unreadable;
            continue;
        }
        const Output one = run_cpu(c, spec, 1);
        const Output four = run_cpu(c, spec, 4);
        expect_same(one, four, path.filename().string() + " (1 vs 4 threads)");
        const Output ref = ref_extract(c.frames, c.ts, spec);
        expect_same(four, ref, path.filename().string() + " (cpu vs reference)");
        if (HasFatalFailure()) return;
        ++captures;
        flows += ref.rows.size();
        packets += c.frames.size();
    }
    const double s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("nDPI: %zu captures (%zu unreadable), %zu flows, %zu packets compared "
                "(1 vs 4 threads, cpu vs reference) in %.1f s\n",
                captures, unreadable, flows, packets, s);
    EXPECT_GT(captures, 0u);
}

}  // namespace
