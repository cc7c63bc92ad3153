// BPF_PROG_TEST_RUN tests of the ANOVA XDP programs (bpf/anova.bpf.c for
// u32, bpf/anova_f64.bpf.c for f64: Program::load picks the object of the
// configured encoding, so every test below runs both) through etcpipe::anova, and of
// the user-space reference and series reader. Tests that load the program
// need root (CAP_BPF + CAP_NET_ADMIN); without it they are skipped with the
// reason. Series come from testdata/anova/ (run from the repository root).
//
// What is pinned down:
// - golden: the seed's series with the seed's rule gives 748 splits in 3239
//   windows, computed by the XDP program;
// - the program's verdict equals decide_u32 / decide_f64 on every window of
//   every shipped series (both profiles) and on random and edge windows;
// - tx replies swap MACs, addresses and ports and keep the IPv4 header and
//   UDP checksums valid (checked here by an independent sum); an IPv4 UDP
//   checksum of 0 stays 0;
// - everything that is not a request passes byte-identical with XDP_PASS, and
//   so does a request to an object whose config map names the other encoding.
#include <gtest/gtest.h>
#include <linux/bpf.h>
#include <unistd.h>

#include <array>
#include <bit>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "anova/anova.hpp"
#include "anova/anova_object.hpp"
#include "common/test_run.hpp"
#include "etcpipe/anova.h"
#include "packet_builder.hpp"

namespace etcpipe::test {
namespace {

using anova::Params;
using anova::Program;
using anova::ProgramOptions;
using U32Window = std::array<uint32_t, ANOVA_SAMPLES>;
using F64Window = std::array<double, ANOVA_SAMPLES>;

const std::string kOsh = "testdata/anova/osh_000001SZ_daily.txt";
const std::string kEu = "testdata/anova/EuStockMarkets.csv";

#define SKIP_UNLESS_ROOT()                                                                \
    do {                                                                                  \
        if (geteuid() != 0) GTEST_SKIP() << "needs root (CAP_BPF, CAP_NET_ADMIN) to load BPF"; \
    } while (0)

Program load_or_die(const Params& p, anova_encoding enc, anova_reply reply = ANOVA_REPLY_PASS,
                    uint16_t port = ANOVA_DEFAULT_PORT) {
    ProgramOptions o;
    o.params = p;
    o.encoding = enc;
    o.reply = reply;
    o.port = port;
    auto r = Program::load(o);
    if (!r) throw std::runtime_error(r.error().message());
    return std::move(*r);
}

std::vector<double> series_or_die(const std::string& path, const std::string& col = {}) {
    auto r = anova::read_series(path, col);
    if (!r) throw std::runtime_error(r.error().message());
    return *r;
}

std::string window_str(const auto& w) {
    std::string s;
    for (auto v : w) s += (s.empty() ? "" : " ") + std::to_string(v);
    return s;
}

std::string bits_str(const F64Window& w) {
    std::string s;
    char buf[24];
    for (double v : w) {
        std::snprintf(buf, sizeof(buf), "%s%016llx", s.empty() ? "" : " ",
                      static_cast<unsigned long long>(std::bit_cast<uint64_t>(v)));
        s += buf;
    }
    return s;
}

// ---- reference and series reader (no BPF) ------------------------------------

TEST(AnovaReference, ToFixedEdges) {
    EXPECT_EQ(anova::to_fixed(0.0, 14), 0u);
    EXPECT_EQ(anova::to_fixed(-0.0, 14), 0u);
    EXPECT_EQ(anova::to_fixed(1.51, 14), 24739u);  // 24739.84 truncated
    EXPECT_EQ(anova::to_fixed(std::ldexp(1.0, -14), 14), 1u);
    EXPECT_EQ(anova::to_fixed(std::nextafter(std::ldexp(1.0, -14), 0.0), 14), 0u);
    EXPECT_EQ(anova::to_fixed(std::numeric_limits<double>::denorm_min(), 14), 0u);
    EXPECT_EQ(anova::to_fixed(std::nextafter(std::ldexp(1.0, 18), 0.0), 14), 0xffffffffu);
    EXPECT_FALSE(anova::to_fixed(std::ldexp(1.0, 18), 14));
    EXPECT_FALSE(anova::to_fixed(-1e-300, 14));
    EXPECT_FALSE(anova::to_fixed(-std::numeric_limits<double>::denorm_min(), 14));
    EXPECT_FALSE(anova::to_fixed(std::numeric_limits<double>::quiet_NaN(), 14));
    EXPECT_FALSE(anova::to_fixed(std::numeric_limits<double>::infinity(), 14));
    EXPECT_FALSE(anova::to_fixed(-std::numeric_limits<double>::infinity(), 14));
}

TEST(AnovaReference, RuleEdges) {
    const Params p = anova::osh_profile();
    U32Window w;
    w.fill(100000);
    EXPECT_EQ(anova::decide_u32(w, p), ANOVA_TAG_NO_SPLIT);  // var 0, tot 0
    w[15] = 100000 + 1638;                                   // |x − mean| = ε counts
    EXPECT_EQ(anova::decide_u32(w, p), ANOVA_TAG_SPLIT);
    w[15] = 100000 + 1637;
    EXPECT_EQ(anova::decide_u32(w, p), ANOVA_TAG_NO_SPLIT);
    w[15] = 100000 - 1638;
    EXPECT_EQ(anova::decide_u32(w, p), ANOVA_TAG_SPLIT);
}

TEST(AnovaSeries, OshSkipsBlankLines) {
    auto s = series_or_die(kOsh);
    // 3402 lines, 148 of them empty (see testdata/anova/PROVENANCE.md)
    ASSERT_EQ(s.size(), 3254u);
    EXPECT_DOUBLE_EQ(s.front(), 1.51);
    EXPECT_DOUBLE_EQ(s.back(), 9.38);
}

TEST(AnovaSeries, CsvColumns) {
    auto dax = series_or_die(kEu, "DAX");
    ASSERT_EQ(dax.size(), 1860u);
    EXPECT_DOUBLE_EQ(dax.front(), 1628.75);
    EXPECT_DOUBLE_EQ(dax.back(), 5473.72);
    auto by_num = series_or_die(kEu, "2");
    EXPECT_EQ(by_num, dax);
    auto ftse = series_or_die(kEu, "FTSE");
    EXPECT_DOUBLE_EQ(ftse.back(), 5455);
}

TEST(AnovaSeries, ErrorsNameFileAndLine) {
    const std::string path = ::testing::TempDir() + "anova_series_bad.txt";
    {
        std::ofstream f(path);
        f << "1.5\n\n# comment\n2.5\nabc\n";
    }
    auto r = anova::read_series(path);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message().find(path), std::string::npos) << r.error().message();
    EXPECT_NE(r.error().message().find("line 5"), std::string::npos) << r.error().message();

    auto c = anova::read_series(kEu, "NOPE");
    ASSERT_FALSE(c);
    EXPECT_NE(c.error().message().find(kEu), std::string::npos);
    EXPECT_NE(c.error().message().find("line 1"), std::string::npos) << c.error().message();

    {
        std::ofstream f(path);
        f << "\"a\",\"b\"\n1,2\n3\n";
    }
    auto s = anova::read_series(path, "b");
    ASSERT_FALSE(s);
    EXPECT_NE(s.error().message().find("line 3"), std::string::npos) << s.error().message();
    auto a = anova::read_series(path, "a");
    ASSERT_TRUE(a) << a.error().message();
    EXPECT_EQ(*a, (std::vector<double>{1, 3}));

    auto missing = anova::read_series(path + ".missing");
    ASSERT_FALSE(missing);
    EXPECT_NE(missing.error().message().find(path + ".missing"), std::string::npos);
    std::remove(path.c_str());
}

TEST(AnovaProgram, RejectsConfigBeyond32Bits) {
    SKIP_UNLESS_ROOT();
    ProgramOptions o;
    o.params.eps2 = 1ull << 32;
    EXPECT_FALSE(Program::load(o));
    o = {};
    o.params.frac_bits = 33;
    EXPECT_FALSE(Program::load(o));
}

// ---- the XDP program against the reference --------------------------------

TEST(AnovaProgram, GoldenOshSeries) {
    SKIP_UNLESS_ROOT();
    auto prog = load_or_die(anova::osh_profile(), ANOVA_ENC_U32);
    auto series = series_or_die(kOsh);
    auto r = anova::split_series(prog, series);
    ASSERT_TRUE(r) << r.error().message();
    std::printf("[ golden   ] %s: %zu splits in %zu windows by xdp_anova (14-bit, eps 1638)\n",
                kOsh.c_str(), r->splits.size(), r->windows);
    EXPECT_EQ(r->windows, 3239u);
    EXPECT_EQ(r->splits.size(), 748u);
    EXPECT_EQ(r->invalid, 0u);

    // The same through the double encoding: conversion inside XDP.
    auto prog64 = load_or_die(anova::osh_profile(), ANOVA_ENC_F64);
    auto r64 = anova::split_series(prog64, series);
    ASSERT_TRUE(r64) << r64.error().message();
    std::printf("[ golden   ] same series as doubles: %zu splits in %zu windows\n",
                r64->splits.size(), r64->windows);
    EXPECT_EQ(r64->splits, r->splits);
}

struct NamedSeries {
    std::string name;
    std::vector<double> values;
};

std::vector<NamedSeries> shipped_series() {
    std::vector<NamedSeries> all;
    all.push_back({"osh_000001SZ", series_or_die(kOsh)});
    for (const char* col : {"DAX", "SMI", "CAC", "FTSE"})
        all.push_back({std::string("EuStockMarkets:") + col, series_or_die(kEu, col)});
    return all;
}

TEST(AnovaProgram, EveryShippedWindowMatchesReference) {
    SKIP_UNLESS_ROOT();
    const auto all = shipped_series();
    for (const auto& [pname, params] :
         {std::pair{"14-bit", anova::osh_profile()}, std::pair{"10-bit", anova::report_profile()}}) {
        auto p32 = load_or_die(params, ANOVA_ENC_U32);
        auto p64 = load_or_die(params, ANOVA_ENC_F64);
        for (const auto& s : all) {
            size_t windows = 0, splits = 0, invalid = 0;
            for (size_t i = 0; i + ANOVA_SAMPLES <= s.values.size(); ++i) {
                F64Window wd;
                U32Window wu{};
                bool ok = true;
                for (size_t k = 0; k < ANOVA_SAMPLES; ++k) {
                    wd[k] = s.values[i + k];
                    auto v = anova::to_fixed(wd[k], params.frac_bits);
                    ok = ok && v.has_value();
                    wu[k] = v.value_or(0);
                }
                ++windows;
                const uint32_t want64 = anova::decide_f64(wd, params);
                auto got64 = p64.decide(wd);
                ASSERT_TRUE(got64) << got64.error().message();
                ASSERT_EQ(*got64, want64) << pname << " " << s.name << " window " << i << " (f64)";
                if (!ok) {
                    ++invalid;
                    continue;
                }
                const uint32_t want = anova::decide_u32(wu, params);
                auto got = p32.decide(wu);
                ASSERT_TRUE(got) << got.error().message();
                ASSERT_EQ(*got, want) << pname << " " << s.name << " window " << i << ": "
                                      << window_str(wu);
                splits += want == ANOVA_TAG_SPLIT;
            }
            std::printf("[ series   ] %-22s %s: %4zu splits in %4zu windows (%zu invalid)\n",
                        s.name.c_str(), pname, splits, windows, invalid);
        }
    }
}

// Random and edge windows of fixed-point samples.
U32Window random_u32_window(std::mt19937_64& rng, const Params& p) {
    U32Window w{};
    auto u32 = [&] { return static_cast<uint32_t>(rng()); };
    switch (rng() % 8) {
    case 0:  // anything
        for (auto& v : w) v = u32();
        break;
    case 1: {  // the 0 / 2^32−1 extremes, mixed
        for (auto& v : w) v = rng() & 1 ? 0xffffffffu : 0u;
        break;
    }
    case 2: {  // maximal variance: alternating 0 and 2^32−1, window 2 anything
        for (size_t i = 0; i < ANOVA_SAMPLES; ++i) w[i] = i & 1 ? 0xffffffffu : 0u;
        for (size_t i = ANOVA_HALF; i < ANOVA_SAMPLES; ++i)
            if (rng() & 1) w[i] = u32();
        break;
    }
    case 3: {  // all equal, some of window 2 moved by about ε
        const uint32_t base = u32() % (1u << 20) + static_cast<uint32_t>(p.eps);
        w.fill(base);
        for (size_t i = ANOVA_HALF; i < ANOVA_SAMPLES; ++i) {
            const int64_t off = static_cast<int64_t>(p.eps) + static_cast<int64_t>(rng() % 3) - 1;
            if (rng() % 3 == 0) w[i] = static_cast<uint32_t>(rng() & 1 ? base + off : base - off);
        }
        break;
    }
    case 4: {  // a small spread in window 1, window 2 straddling mean ± ε
        const uint32_t base = u32() % (1u << 24) + 4 * static_cast<uint32_t>(p.eps);
        for (size_t i = 0; i < ANOVA_HALF; ++i)
            w[i] = base + static_cast<uint32_t>(rng() % (2 * p.eps + 1)) - static_cast<uint32_t>(p.eps);
        uint64_t s1 = 0;
        for (size_t i = 0; i < ANOVA_HALF; ++i) s1 += w[i];
        const uint32_t mean = static_cast<uint32_t>(s1 >> 3);
        for (size_t i = ANOVA_HALF; i < ANOVA_SAMPLES; ++i) {
            const int64_t off = static_cast<int64_t>(p.eps) + static_cast<int64_t>(rng() % 3) - 1;
            w[i] = static_cast<uint32_t>(rng() & 1 ? mean + off : mean - off);
        }
        break;
    }
    case 5:  // all equal (incl. the extremes)
        w.fill(rng() % 3 == 0 ? (rng() & 1 ? 0xffffffffu : 0u) : u32());
        break;
    case 6:  // prices: the range the series live in
        for (auto& v : w) v = static_cast<uint32_t>(rng() % (100000ull << p.frac_bits >> 4));
        break;
    default:  // near the top, where 64-bit sums of squares wrap
        for (auto& v : w) v = 0xffffffffu - static_cast<uint32_t>(rng() % 4096);
        break;
    }
    return w;
}

TEST(AnovaProgram, RandomAndEdgeU32Windows) {
    SKIP_UNLESS_ROOT();
    const uint64_t seed = 0x5eed2026;
    for (const auto& [params, n] :
         {std::pair{anova::osh_profile(), 100000}, std::pair{anova::report_profile(), 20000}}) {
        auto prog = load_or_die(params, ANOVA_ENC_U32);
        std::mt19937_64 rng(seed);
        size_t splits = 0;
        std::vector<U32Window> fixed;
        fixed.push_back({});                       // all 0
        fixed.push_back({});
        fixed.back().fill(0xffffffffu);            // all 2^32−1
        U32Window alt{};
        for (size_t i = 0; i < ANOVA_SAMPLES; ++i) alt[i] = i & 1 ? 0xffffffffu : 0u;
        fixed.push_back(alt);
        for (int i = 0; i < n; ++i) {
            const U32Window w = i < static_cast<int>(fixed.size()) ? fixed[static_cast<size_t>(i)]
                                                                   : random_u32_window(rng, params);
            const uint32_t want = anova::decide_u32(w, params);
            auto got = prog.decide(w);
            ASSERT_TRUE(got) << got.error().message();
            ASSERT_EQ(*got, want) << "frac " << params.frac_bits << " window " << i << ": "
                                  << window_str(w);
            splits += want == ANOVA_TAG_SPLIT;
        }
        std::printf("[ random   ] %d u32 windows (%u-bit, seed %#llx): %zu splits, all equal to "
                    "decide_u32\n",
                    n, params.frac_bits, static_cast<unsigned long long>(seed), splits);
    }
}

std::vector<double> special_doubles(uint32_t frac) {
    const double top = std::ldexp(1.0, 32 - static_cast<int>(frac));
    const double ulp = std::ldexp(1.0, -static_cast<int>(frac));
    return {
        std::numeric_limits<double>::quiet_NaN(),
        std::bit_cast<double>(0x7ff0000000000001ull),  // signalling NaN
        std::bit_cast<double>(0xfff8000000000123ull),  // negative NaN with payload
        std::numeric_limits<double>::infinity(),
        -std::numeric_limits<double>::infinity(),
        -0.0,
        0.0,
        std::numeric_limits<double>::denorm_min(),
        std::bit_cast<double>(0x000fffffffffffffull),  // largest subnormal
        -std::numeric_limits<double>::denorm_min(),
        -1.0,
        -1e-300,
        std::numeric_limits<double>::min(),
        std::numeric_limits<double>::max(),
        top,
        std::nextafter(top, 0.0),
        top * 2,
        top / 2,
        ulp,
        std::nextafter(ulp, 0.0),
        ulp * 1.5,
        1.51,
        1e-30,
    };
}

F64Window random_f64_window(std::mt19937_64& rng, uint32_t frac, const std::vector<double>& sp) {
    F64Window w{};
    const double top = std::ldexp(1.0, 32 - static_cast<int>(frac));
    std::uniform_real_distribution<double> unit(0.0, 1.0);
    const int scale = static_cast<int>(rng() % 40);  // spread values over many exponents
    for (auto& v : w) v = unit(rng) * top * std::ldexp(1.0, -scale);
    switch (rng() % 4) {
    case 0: break;  // all valid
    case 1: w[rng() % ANOVA_SAMPLES] = sp[rng() % sp.size()]; break;
    case 2:
        for (auto& v : w) v = sp[rng() % sp.size()];
        break;
    default:
        w[rng() % ANOVA_SAMPLES] = std::bit_cast<double>(rng());  // any bit pattern
        break;
    }
    return w;
}

TEST(AnovaProgram, RandomAndEdgeF64Windows) {
    SKIP_UNLESS_ROOT();
    const uint64_t seed = 0xd0b1e;
    for (const Params& params : {anova::osh_profile(), anova::report_profile()}) {
        auto prog = load_or_die(params, ANOVA_ENC_F64);
        const auto sp = special_doubles(params.frac_bits);
        std::mt19937_64 rng(seed);
        size_t tags[4] = {};
        // every special value alone in an otherwise valid window, at both ends
        std::vector<F64Window> fixed;
        for (double v : sp)
            for (size_t at : {size_t{0}, size_t{ANOVA_SAMPLES - 1}}) {
                F64Window w;
                w.fill(1.25);
                w[at] = v;
                fixed.push_back(w);
            }
        const size_t n = params.frac_bits == 14 ? 100000 : 30000;  // ≥100k for the main profile
        for (size_t i = 0; i < n; ++i) {
            const F64Window w = i < fixed.size() ? fixed[i] : random_f64_window(rng, params.frac_bits, sp);
            const uint32_t want = anova::decide_f64(w, params);
            auto got = prog.decide(w);
            ASSERT_TRUE(got) << got.error().message();
            ASSERT_EQ(*got, want) << "frac " << params.frac_bits << " window " << i << ": "
                                  << bits_str(w);
            ++tags[want & 3];
        }
        EXPECT_GT(tags[ANOVA_TAG_INVALID], 0u);
        EXPECT_GT(tags[ANOVA_TAG_SPLIT], 0u);
        EXPECT_GT(tags[ANOVA_TAG_NO_SPLIT], 0u);
        std::printf("[ random   ] %zu f64 windows (%u-bit): %zu split, %zu no split, %zu invalid, "
                    "all equal to decide_f64\n",
                    n, params.frac_bits, tags[1], tags[2], tags[3]);
    }
}

// ---- frames: tx replies, pass mode, pass-through -----------------------------

template <class Msg>
std::vector<uint8_t> msg_bytes(const Msg& m) {
    std::vector<uint8_t> b(sizeof(m));
    std::memcpy(b.data(), &m, sizeof(m));
    return b;
}

std::vector<uint8_t> u32_payload(const U32Window& w, uint64_t magic = ANOVA_MAGIC,
                                 uint64_t tag = ANOVA_TAG_DECIDE) {
    anova_msg_u32 m;
    m.hdr.magic = magic;
    m.hdr.tag = tag;
    std::memcpy(m.x, w.data(), sizeof(m.x));
    return msg_bytes(m);
}

std::vector<uint8_t> f64_payload(const F64Window& w) {
    anova_msg_f64 m;
    m.hdr.magic = ANOVA_MAGIC;
    m.hdr.tag = ANOVA_TAG_DECIDE;
    std::memcpy(m.x, w.data(), sizeof(m.x));
    return msg_bytes(m);
}

// Independent ones' complement sum (RFC 1071) over big-endian 16-bit words.
uint32_t ones_sum(const uint8_t* p, size_t n, uint32_t sum = 0) {
    for (size_t i = 0; i < n; i += 2)
        sum += static_cast<uint32_t>(p[i]) << 8 | (i + 1 < n ? p[i + 1] : 0u);
    return sum;
}
uint16_t fold16(uint32_t s) {
    while (s >> 16) s = (s & 0xffff) + (s >> 16);
    return static_cast<uint16_t>(s);
}

struct Offsets {
    size_t l3 = 0, l4 = 0;
    bool v6 = false;
};

Offsets offsets_of(const PacketBuilder& b) {
    Offsets o;
    for (const auto& s : b.spans()) {
        if (s.kind == LayerKind::Ipv4 || s.kind == LayerKind::Ipv6) {
            o.l3 = s.begin;
            o.v6 = s.kind == LayerKind::Ipv6;
        }
        if (s.kind == LayerKind::Udp) o.l4 = s.begin;
    }
    return o;
}

// The IPv4 header sums to 0xffff with its checksum; the UDP segment with the
// pseudo-header too (and its checksum is not 0 unless allowed).
void expect_checksums_valid(const std::vector<uint8_t>& f, const Offsets& o, bool udp_zero_ok) {
    const uint8_t* ip = f.data() + o.l3;
    const uint8_t* udp = f.data() + o.l4;
    const size_t udp_len = static_cast<size_t>(udp[4] << 8 | udp[5]);
    uint32_t pseudo;
    if (o.v6) {
        pseudo = ones_sum(ip + 8, 32) + kProtoUdp + static_cast<uint32_t>(udp_len);
    } else {
        const size_t ihl = (ip[0] & 0xf) * 4u;
        EXPECT_EQ(fold16(ones_sum(ip, ihl)), 0xffff) << "IPv4 header checksum\n" << hex_dump(f);
        pseudo = ones_sum(ip + 12, 8) + kProtoUdp + static_cast<uint32_t>(udp_len);
    }
    const uint16_t check = static_cast<uint16_t>(udp[6] << 8 | udp[7]);
    if (check == 0 && udp_zero_ok) return;
    EXPECT_NE(check, 0) << "UDP checksum 0\n" << hex_dump(f);
    EXPECT_EQ(fold16(ones_sum(udp, udp_len, pseudo)), 0xffff) << "UDP checksum\n" << hex_dump(f);
}

// What the program must leave: the input with the tag written and, for tx,
// MACs, addresses and ports swapped. The UDP checksum field is taken from
// the output (it is verified on its own).
std::vector<uint8_t> expected_output(std::vector<uint8_t> in, const Offsets& o, uint32_t tag,
                                     bool tx, const std::vector<uint8_t>& out) {
    const size_t tag_at = o.l4 + 8 + offsetof(anova_hdr, tag);
    uint64_t t = tag;
    std::memcpy(&in[tag_at], &t, sizeof(t));
    in[o.l4 + 6] = out[o.l4 + 6];
    in[o.l4 + 7] = out[o.l4 + 7];
    if (tx) {
        std::swap_ranges(in.begin(), in.begin() + 6, in.begin() + 6);
        const size_t a = o.l3 + (o.v6 ? 8 : 12), n = o.v6 ? 16 : 4;
        std::swap_ranges(in.begin() + static_cast<std::ptrdiff_t>(a),
                         in.begin() + static_cast<std::ptrdiff_t>(a + n),
                         in.begin() + static_cast<std::ptrdiff_t>(a + n));
        std::swap_ranges(in.begin() + static_cast<std::ptrdiff_t>(o.l4),
                         in.begin() + static_cast<std::ptrdiff_t>(o.l4 + 2),
                         in.begin() + static_cast<std::ptrdiff_t>(o.l4 + 2));
    }
    return in;
}

U32Window split_window() {
    U32Window w;
    w.fill(100000);
    w[12] = 200000;
    return w;
}
U32Window calm_window() {
    U32Window w;
    w.fill(100000);
    return w;
}

void check_reply(Program& prog, const PacketBuilder& b, uint32_t want_tag, bool tx,
                 bool zero_csum = false) {
    auto in = b.build();
    const Offsets o = offsets_of(b);
    if (zero_csum) in[o.l4 + 6] = in[o.l4 + 7] = 0;
    auto r = prog.run(in);
    ASSERT_TRUE(r) << r.error().message();
    EXPECT_EQ(r->action, tx ? XDP_TX : XDP_PASS);
    ASSERT_EQ(r->frame.size(), in.size());
    EXPECT_EQ(r->frame, expected_output(in, o, want_tag, tx, r->frame))
        << "in:\n" << hex_dump(in) << "\nout:\n" << hex_dump(r->frame);
    if (zero_csum) {
        EXPECT_EQ(r->frame[o.l4 + 6], 0);
        EXPECT_EQ(r->frame[o.l4 + 7], 0);
    }
    expect_checksums_valid(r->frame, o, zero_csum);
}

TEST(AnovaFrames, TxRepliesSwapAndKeepChecksumsValid) {
    SKIP_UNLESS_ROOT();
    auto prog = load_or_die(anova::osh_profile(), ANOVA_ENC_U32, ANOVA_REPLY_TX);
    const uint16_t port = ANOVA_DEFAULT_PORT;
    for (const U32Window& w : {split_window(), calm_window()}) {
        const uint32_t want = anova::decide_u32(w, anova::osh_profile());
        SCOPED_TRACE(want == ANOVA_TAG_SPLIT ? "split" : "no split");
        check_reply(prog, PacketBuilder().eth().ipv4("10.1.2.3", "10.9.8.7").udp(40001, port).payload(u32_payload(w)), want, true);
        check_reply(prog, PacketBuilder().eth().ipv4("10.1.2.3", "10.9.8.7").udp(40001, port).payload(u32_payload(w)), want, true, true);
        check_reply(prog, PacketBuilder().eth().vlan(100).vlan(200, kTpidQinQ).ipv4("172.16.0.1", "172.16.0.2").ip_options({1, 1, 1, 0x94, 4, 0, 0}).udp(5353, port).payload(u32_payload(w)).pad_to(200), want, true);
        check_reply(prog, PacketBuilder().eth().ipv6("2001:db8::1", "2001:db8:ffff::abcd").udp(40001, port).payload(u32_payload(w)), want, true);
        check_reply(prog, PacketBuilder().eth().vlan(7).ipv6("fe80::1", "ff02::1").udp(1, port).payload(u32_payload(w)), want, true);
    }
    // The double encoding, an invalid window: tag 3, still a valid reply.
    auto p64 = load_or_die(anova::osh_profile(), ANOVA_ENC_F64, ANOVA_REPLY_TX);
    F64Window bad;
    bad.fill(1.5);
    bad[3] = -2.0;
    check_reply(p64, PacketBuilder().eth().ipv4("10.1.2.3", "10.9.8.7").udp(40001, port).payload(f64_payload(bad)), ANOVA_TAG_INVALID, true);
    check_reply(p64, PacketBuilder().eth().ipv6("2001:db8::1", "2001:db8::2").udp(40001, port).payload(f64_payload(bad)), ANOVA_TAG_INVALID, true);
}

TEST(AnovaFrames, PassModeWritesTagAndChecksum) {
    SKIP_UNLESS_ROOT();
    auto prog = load_or_die(anova::osh_profile(), ANOVA_ENC_U32, ANOVA_REPLY_PASS);
    const uint16_t port = ANOVA_DEFAULT_PORT;
    check_reply(prog, PacketBuilder().eth().ipv4("10.1.2.3", "10.9.8.7").udp(40001, port).payload(u32_payload(split_window())), ANOVA_TAG_SPLIT, false);
    check_reply(prog, PacketBuilder().eth().ipv6("2001:db8::1", "2001:db8::2").udp(40001, port).payload(u32_payload(calm_window())), ANOVA_TAG_NO_SPLIT, false);
    check_reply(prog, PacketBuilder().eth().ipv4("10.1.2.3", "10.9.8.7").udp(40001, port).payload(u32_payload(calm_window())), ANOVA_TAG_NO_SPLIT, false, true);
}

// The checksum edge cases: an original checksum of 0xffff (a sum of 0) and
// an updated one that folds to 0 and must be sent as 0xffff. Source ports
// are searched until the builder's frame hits each case.
TEST(AnovaFrames, ChecksumFoldEdges) {
    SKIP_UNLESS_ROOT();
    auto prog = load_or_die(anova::osh_profile(), ANOVA_ENC_U32, ANOVA_REPLY_TX);
    for (bool v6 : {false, true}) {
        for (const U32Window& w : {split_window(), calm_window()}) {
            const uint32_t want = anova::decide_u32(w, anova::osh_profile());
            int found_orig = 0, found_new = 0;
            for (uint32_t sport = 1; sport < 65536 && (found_orig == 0 || found_new == 0); ++sport) {
                PacketBuilder b;
                b.eth();
                if (v6) b.ipv6("2001:db8::1", "2001:db8::2");
                else b.ipv4("10.1.2.3", "10.9.8.7");
                b.udp(static_cast<uint16_t>(sport), ANOVA_DEFAULT_PORT).payload(u32_payload(w));
                auto f = b.build();
                const Offsets o = offsets_of(b);
                const uint16_t orig = static_cast<uint16_t>(f[o.l4 + 6] << 8 | f[o.l4 + 7]);
                // the checksum after the tag word went from 0 to want << 8
                const uint16_t upd = static_cast<uint16_t>(~fold16(static_cast<uint16_t>(~orig) + (want << 8)));
                if (orig == 0xffff && !found_orig) {
                    SCOPED_TRACE("original checksum 0xffff, sport " + std::to_string(sport));
                    check_reply(prog, b, want, true);
                    ++found_orig;
                } else if (upd == 0 && !found_new) {
                    SCOPED_TRACE("new checksum folds to 0, sport " + std::to_string(sport));
                    check_reply(prog, b, want, true);
                    auto r = prog.run(f);
                    ASSERT_TRUE(r);
                    EXPECT_EQ(r->frame[o.l4 + 6], 0xff);
                    EXPECT_EQ(r->frame[o.l4 + 7], 0xff);
                    ++found_new;
                }
            }
            EXPECT_EQ(found_orig, 1) << "no source port gives checksum 0xffff";
            EXPECT_EQ(found_new, 1) << "no source port makes the new checksum fold to 0";
        }
    }
}

struct PassCase {
    std::string name;
    std::vector<uint8_t> frame;
};

std::vector<PassCase> pass_cases() {
    const uint16_t port = ANOVA_DEFAULT_PORT;
    const auto ok = u32_payload(split_window());
    auto base = [&] { return PacketBuilder().eth().ipv4("10.1.2.3", "10.9.8.7"); };
    std::vector<PassCase> c;
    c.push_back({"other dst port", base().udp(40001, port + 1).payload(ok).build()});
    c.push_back({"port as source only", base().udp(port, 40001).payload(ok).build()});
    c.push_back({"bad magic", base().udp(40001, port).payload(u32_payload(split_window(), ANOVA_MAGIC ^ 1)).build()});
    for (uint64_t tag : {1ull, 2ull, 3ull, 0x100ull, 1ull << 63})
        c.push_back({"tag " + std::to_string(tag), base().udp(40001, port).payload(u32_payload(split_window(), ANOVA_MAGIC, tag)).build()});
    auto shortp = ok;
    shortp.pop_back();
    c.push_back({"payload one byte short", base().udp(40001, port).payload(shortp).build()});
    c.push_back({"header only", base().udp(40001, port).payload(std::vector<uint8_t>(ok.begin(), ok.begin() + 16)).build()});
    c.push_back({"UDP length short of the samples", base().udp(40001, port).payload(ok).udp_length(8 + 79).build()});
    c.push_back({"UDP length beyond the IP packet", base().udp(40001, port).payload(ok).udp_length(8 + 88 + 4).build()});
    {
        auto f = base().udp(40001, port).payload(ok).build();
        f.resize(f.size() - 1);  // IP says more than the frame holds
        c.push_back({"frame cut inside the samples", f});
    }
    c.push_back({"TCP", base().tcp(40001, port).payload(ok).build()});
    c.push_back({"IPv4 first fragment (MF)", base().ipv4_frag(0, true).udp(40001, port).payload(ok).build()});
    c.push_back({"IPv4 later fragment", base().ipv4_frag(20, false).udp(40001, port).payload(ok).build()});
    c.push_back({"IPv4 bad version", base().ip_version(5).udp(40001, port).payload(ok).build()});
    c.push_back({"IPv4 IHL 4", base().ipv4_ihl(4).udp(40001, port).payload(ok).build()});
    c.push_back({"IPv6 TCP", PacketBuilder().eth().ipv6("2001:db8::1", "2001:db8::2").tcp(40001, port).payload(ok).build()});
    c.push_back({"IPv6 hop-by-hop then UDP (no extension headers taken)",
                 PacketBuilder().eth().ipv6("2001:db8::1", "2001:db8::2").hop_by_hop().udp(40001, port).payload(ok).build()});
    {
        PacketBuilder b;
        b.eth().ipv6("2001:db8::1", "2001:db8::2").udp(40001, port).payload(ok);
        auto f = b.build();
        const Offsets o = offsets_of(b);
        f[o.l4 + 6] = f[o.l4 + 7] = 0;
        c.push_back({"IPv6 UDP checksum 0 (forbidden)", f});
    }
    c.push_back({"three VLAN tags", PacketBuilder().eth().vlan(1).vlan(2).vlan(3).ipv4("10.1.2.3", "10.9.8.7").udp(40001, port).payload(ok).build()});
    c.push_back({"ARP", PacketBuilder().eth().arp().build()});
    c.push_back({"u32 request to a double program is short", base().udp(40001, port).payload(ok).build()});
    // truncated headers: the same request cut at every header boundary and
    // inside each header (BPF_PROG_TEST_RUN needs the 14 Ethernet bytes)
    {
        PacketBuilder b = PacketBuilder().eth().vlan(9).ipv4("10.1.2.3", "10.9.8.7").udp(40001, port).payload(ok);
        const auto full = b.build();
        for (size_t n : {size_t{14}, size_t{16}, size_t{18}, size_t{30}, size_t{37}, size_t{38},
                         size_t{42}, size_t{45}, size_t{46}, size_t{54}, size_t{61}})
            c.push_back({"truncated to " + std::to_string(n),
                         std::vector<uint8_t>(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(n))});
    }
    return c;
}

TEST(AnovaFrames, NonRequestsPassByteIdentical) {
    SKIP_UNLESS_ROOT();
    for (anova_reply reply : {ANOVA_REPLY_PASS, ANOVA_REPLY_TX}) {
        auto p32 = load_or_die(anova::osh_profile(), ANOVA_ENC_U32, reply);
        auto p64 = load_or_die(anova::osh_profile(), ANOVA_ENC_F64, reply);
        for (const auto& pc : pass_cases()) {
            Program& prog = pc.name.starts_with("u32 request to a double") ? p64 : p32;
            auto r = prog.run(pc.frame);
            ASSERT_TRUE(r) << pc.name << ": " << r.error().message();
            EXPECT_EQ(r->action, XDP_PASS) << pc.name;
            EXPECT_EQ(r->frame, pc.frame) << pc.name << "\nin:\n"
                                          << hex_dump(pc.frame) << "\nout:\n" << hex_dump(r->frame);
        }
        // and the well-formed request is answered by both (the cases above
        // fail for their one difference, not for the base frame)
        auto req = PacketBuilder().eth().ipv4("10.1.2.3", "10.9.8.7").udp(40001, ANOVA_DEFAULT_PORT).payload(u32_payload(split_window())).build();
        auto r = p32.run(req);
        ASSERT_TRUE(r);
        EXPECT_EQ(r->action, reply == ANOVA_REPLY_TX ? XDP_TX : XDP_PASS);
        EXPECT_NE(r->frame, req);
    }
}

// Each object answers only its own encoding: loaded by hand (not through
// Program::load, which always matches them) with the other encoding in its
// config map, it passes every request untouched; with its own, it answers.
TEST(AnovaFrames, ObjectPassesWhenConfiguredForTheOtherEncoding) {
    SKIP_UNLESS_ROOT();
    const auto u32_req = PacketBuilder().eth().ipv4("10.1.2.3", "10.9.8.7").udp(40001, ANOVA_DEFAULT_PORT).payload(u32_payload(split_window())).build();
    F64Window fw{};
    for (size_t i = 0; i < fw.size(); ++i) fw[i] = static_cast<double>(split_window()[i]) / 16384.0;
    const auto f64_req = PacketBuilder().eth().ipv4("10.1.2.3", "10.9.8.7").udp(40001, ANOVA_DEFAULT_PORT).payload(f64_payload(fw)).build();
    for (anova_encoding enc : {ANOVA_ENC_U32, ANOVA_ENC_F64}) {
        SCOPED_TRACE(anova::object_file(enc));
        auto obj = anova::Object::open(enc);
        ASSERT_TRUE(obj) << obj.error().message();
        ASSERT_TRUE(obj->load()) << "load " << obj->file();
        const int fd = bpf_program__fd(obj->prog());
        ASSERT_GE(fd, 0);
        EXPECT_STREQ(bpf_program__name(obj->prog()), ANOVA_PROG_NAME);
        const auto& own = enc == ANOVA_ENC_U32 ? u32_req : f64_req;
        TestRunBuffers bufs;
        for (anova_encoding cfg_enc : {ANOVA_ENC_U32, ANOVA_ENC_F64}) {
            ProgramOptions o;
            o.params = anova::osh_profile();
            o.encoding = cfg_enc;
            const anova_config cfg = anova::make_config(o);
            const uint32_t key = 0;
            ASSERT_EQ(bpf_map__update_elem(obj->config_map(), &key, sizeof(key), &cfg, sizeof(cfg), BPF_ANY), 0);
            for (const auto* frame : {&u32_req, &f64_req}) {
                auto r = xdp_test_run(fd, *frame, {}, 1, bufs);
                ASSERT_TRUE(r) << r.error().message();
                EXPECT_EQ(r->action, XDP_PASS);
                const std::vector<uint8_t> out(bufs.out.begin(), bufs.out.begin() + static_cast<std::ptrdiff_t>(frame->size()));
                const char* what = frame == &u32_req ? "u32 request" : "f64 request";
                // the other encoding configured: nothing answered (tag written)
                if (cfg_enc != enc) {
                    EXPECT_EQ(out, *frame) << what;
                }
                // its own: its own request answered (a u32 program also reads
                // the first 16 words of the longer f64 request, as before)
                if (cfg_enc == enc && frame == &own) {
                    EXPECT_NE(out, *frame) << what;
                }
            }
        }
    }
}

}  // namespace
}  // namespace etcpipe::test
