// BPF_PROG_TEST_RUN tests of the per-packet tagger (bpf/pkttag.bpf.c, the
// DSCP variant, and bpf/pkttag_meta.bpf.c, the metadata variant) through
// etcpipe::pkttag, and of the C++ reference. Tests that load a program need
// root; without it they skip with the reason, as without the nDPI captures.
//
// What is pinned down:
// - on every frame of every nDPI capture, both programs give the tag the
//   plain C++ reference computes: xdp_pkttag writes it into the DSCP and
//   changes nothing else but the IPv4 header checksum, which stays valid
//   where it was; xdp_pkttag_meta leaves the frame alone and puts
//   {magic, tag} in the metadata; an untagged frame comes back unchanged;
// - the reference's features of crafted packets (ports, flags, lengths,
//   payload bytes; padding and short payloads read as zeros);
// - edge cases: short frames, non-IP, three VLAN tags, non-first
//   fragments, TCP headers cut short pass untagged; one or two VLAN tags
//   are read through.
#include <gtest/gtest.h>
#include <linux/bpf.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <optional>
#include <vector>

#include "common/pcap.hpp"
#include "etcpipe/pkttag.h"
#include "etcpipe/pkttag_model.h"
#include "packet_builder.hpp"
#include "pkttag/pkttag.hpp"
#include "tests/common/skip.hpp"

namespace etcpipe::test {
namespace {

using pkttag::Variant;

constexpr const char* kPcapDir = "testdata/ndpi/pcap";

// The ones' complement sum over the IPv4 header at off is 0xffff.
bool ipv4_checksum_ok(std::span<const uint8_t> f, size_t off) {
    const size_t len = (f[off] & 15u) * 4u;
    if (f.size() < off + len) return false;
    uint32_t s = 0;
    for (size_t i = 0; i < len; i += 2) s += static_cast<uint32_t>(f[off + i] << 8 | f[off + i + 1]);
    while (s >> 16) s = (s & 0xffff) + (s >> 16);
    return s == 0xffff;
}

// What xdp_pkttag must return for `in` with tag `tag` (not 0): in with the
// DSCP set, ECN kept; the IPv4 checksum bytes are compared separately.
std::vector<uint8_t> with_dscp(std::span<const uint8_t> in, const pkttag::Packet& p, uint32_t tag) {
    std::vector<uint8_t> out(in.begin(), in.end());
    const size_t o = p.l3_offset;
    if (p.family == 4) {
        out[o + 1] = static_cast<uint8_t>(tag << 2 | (in[o + 1] & 3));
    } else {
        out[o] = static_cast<uint8_t>((in[o] & 0xf0) | tag >> 2);
        out[o + 1] = static_cast<uint8_t>((in[o + 1] & 0x3f) | (tag & 3) << 6);
    }
    return out;
}

struct Checked {
    uint64_t frames = 0, tagged = 0, v4_checksums = 0;
};

// One frame through both programs, checked against the reference.
void check_frame(pkttag::Program& dscp, pkttag::Program& meta, std::span<const uint8_t> f,
                 const std::string& where, Checked& c) {
    const pkttag::Packet p = pkttag::parse(f);
    const uint32_t ref = pkttag::reference(f);
    ++c.frames;
    {
        auto r = dscp.run(f);
        ASSERT_TRUE(r) << where << ": " << r.error().message();
        EXPECT_EQ(r->action, XDP_PASS) << where;
        ASSERT_EQ(r->frame.size(), f.size()) << where;
        if (ref == 0) {
            EXPECT_TRUE(std::equal(f.begin(), f.end(), r->frame.begin())) << where << ": untagged frame changed";
        } else {
            ++c.tagged;
            auto want = with_dscp(f, p, ref);
            std::vector<uint8_t> got(r->frame.begin(), r->frame.end());
            EXPECT_EQ(pkttag::dscp_of(got, p.l3_offset, p.family), ref) << where;
            if (p.family == 4) {
                const size_t ck = p.l3_offset + 10;
                if (ipv4_checksum_ok(f, p.l3_offset)) {
                    ++c.v4_checksums;
                    EXPECT_TRUE(ipv4_checksum_ok(got, p.l3_offset)) << where << ": IPv4 checksum broken";
                }
                want[ck] = got[ck], want[ck + 1] = got[ck + 1];
            }
            EXPECT_EQ(got, want) << where;
        }
    }
    {
        auto r = meta.run(f);
        ASSERT_TRUE(r) << where << ": " << r.error().message();
        EXPECT_EQ(r->action, XDP_PASS) << where;
        EXPECT_EQ(r->tag, ref) << where;
        EXPECT_EQ(r->meta.size(), ref ? sizeof(pkttag_meta) : 0u) << where;
        EXPECT_TRUE(r->frame.size() == f.size() && std::equal(f.begin(), f.end(), r->frame.begin()))
            << where << ": the metadata variant changed the frame";
    }
}

struct Programs {
    pkttag::Program dscp, meta;
};

std::optional<Programs> load_both() {
    auto d = pkttag::Program::load(Variant::Dscp);
    if (!d) {
        ADD_FAILURE() << d.error().message();
        return std::nullopt;
    }
    auto m = pkttag::Program::load(Variant::Meta);
    if (!m) {
        ADD_FAILURE() << m.error().message();
        return std::nullopt;
    }
    return Programs{std::move(*d), std::move(*m)};
}

std::vector<uint8_t> tls_frame() {
    return PacketBuilder()
        .eth()
        .ipv4("10.0.0.1", "10.0.0.2")
        .tcp(51000, 443, kTcpAck | kTcpPsh)
        .payload({0x16, 0x03, 0x01, 0x02, 0x00})
        .build();
}

TEST(PkttagReference, FeaturesOfATcpPacket) {
    const auto f = tls_frame();
    const auto p = pkttag::parse(f);
    ASSERT_TRUE(p.ok);
    EXPECT_EQ(p.family, 4);
    EXPECT_EQ(p.proto, 6);
    EXPECT_EQ(p.src, "10.0.0.1");
    EXPECT_EQ(p.sport, 51000);
    EXPECT_EQ(p.dport, 443);
    const pkttag::Features want{15, 0, 0, 0,          // TCP, IPv4
                                0, 1, 11, 11,         // 443 = 0x01bb
                                51000 >> 12,          // the higher port
                                (20 + 20 + 5) >> 7,   // total length 45
                                std::min(45 >> 3, 15),
                                kTcpPsh, kTcpAck >> 4,
                                5,                    // payload length
                                1, 6, 0, 3, 0, 1, 0, 2};
    EXPECT_EQ(p.x, want);
}

TEST(PkttagReference, ShortPayloadsAndPaddingReadAsZeros) {
    // 3 payload bytes: no payload bytes read
    auto f = PacketBuilder().eth().ipv4("10.0.0.1", "10.0.0.2").udp(53, 40000).payload({1, 2, 3}).build();
    auto p = pkttag::parse(f);
    ASSERT_TRUE(p.ok);
    for (int i = PKTTAG_X_B0_HI; i <= PKTTAG_X_B3_LO; ++i) EXPECT_EQ(p.x[static_cast<size_t>(i)], 0) << i;
    EXPECT_EQ(p.x[PKTTAG_X_PAYLOAD_LEN], 3);
    EXPECT_EQ(p.x[PKTTAG_X_UDP], 15);
    // a bare ACK padded to 60 bytes with non-zero bytes: the padding is not payload
    f = PacketBuilder().eth().ipv4("10.0.0.1", "10.0.0.2").tcp(40000, 80, kTcpAck).build();
    f.resize(60, 0xee);
    p = pkttag::parse(f);
    ASSERT_TRUE(p.ok);
    EXPECT_EQ(p.x[PKTTAG_X_PAYLOAD_LEN], 0);
    EXPECT_EQ(p.x[PKTTAG_X_B0_HI], 0);
    // ICMP: no ports, the payload is the ICMP header
    f = PacketBuilder().eth().ipv4("10.0.0.1", "10.0.0.2").icmp(8, 0).build();
    p = pkttag::parse(f);
    ASSERT_TRUE(p.ok);
    EXPECT_EQ(p.x[PKTTAG_X_OTHER], 15);
    EXPECT_EQ(p.x[PKTTAG_X_LO_PORT_N0], 0);
    EXPECT_EQ(p.x[PKTTAG_X_B0_HI], 0);  // type 8
    EXPECT_EQ(p.x[PKTTAG_X_B0_LO], 8);
}

TEST(PkttagReference, WhatGetsNoTag) {
    auto arp = PacketBuilder().eth().arp().build();
    EXPECT_EQ(pkttag::reference(arp), 0u);
    auto base = tls_frame();
    EXPECT_NE(pkttag::reference(base), 0u);
    EXPECT_EQ(pkttag::reference(std::span(base).first(13)), 0u);
    EXPECT_EQ(pkttag::reference(std::span(base).first(14 + 20 + 10)), 0u);  // TCP header cut short
    auto frag = PacketBuilder().eth().ipv4("10.0.0.1", "10.0.0.2").ipv4_frag(8, false).udp(1, 2).payload(8).build();
    EXPECT_EQ(pkttag::reference(frag), 0u);
    auto three = PacketBuilder().eth().vlan(1).vlan(2).vlan(3).ipv4("10.0.0.1", "10.0.0.2").udp(53, 999).build();
    EXPECT_EQ(pkttag::reference(three), 0u);
    // one or two tags are read through: same features as untagged
    auto plain = PacketBuilder().eth().ipv4("10.0.0.1", "10.0.0.2").udp(53, 999).payload(8).build();
    auto one = PacketBuilder().eth().vlan(7).ipv4("10.0.0.1", "10.0.0.2").udp(53, 999).payload(8).build();
    auto two = PacketBuilder().eth().vlan(7, kTpidQinQ).vlan(8).ipv4("10.0.0.1", "10.0.0.2").udp(53, 999).payload(8).build();
    EXPECT_EQ(pkttag::parse(one).x, pkttag::parse(plain).x);
    EXPECT_EQ(pkttag::parse(two).x, pkttag::parse(plain).x);
}

TEST(PkttagModel, ParametersAreWhatTheProgramAssumes) {
    EXPECT_LE(PKTTAG_CLASSES, PKTTAG_MAX_TAG);
    for (int k = 0; k < PKTTAG_CLASSES; ++k)
        for (int j = 0; j < PKTTAG_HIDDEN; ++j) {
            const int w = pkttag_w2[k][j], a = w < 0 ? -w : w;
            EXPECT_TRUE(a == 0 || ((a & (a - 1)) == 0 && a <= (1 << PKTTAG_OUT_EMAX))) << k << "," << j;
        }
    for (int j = 0; j < PKTTAG_HIDDEN; ++j)
        for (int i = 0; i < PKTTAG_FEATURES; ++i) EXPECT_LE(std::abs(int{pkttag_w1[j][i]}), 1);
    for (uint32_t t = 1; t <= PKTTAG_CLASSES; ++t) EXPECT_STRNE(pkttag::tag_name(t), "?");
}

TEST(PkttagXdp, CraftedPacketsEqualTheReference) {
    SKIP_UNLESS_ROOT("(CAP_BPF, CAP_NET_ADMIN) to load BPF");
    auto progs = load_both();
    ASSERT_TRUE(progs);
    Checked c;
    std::vector<std::vector<uint8_t>> frames;
    const auto tls = tls_frame();
    frames.push_back(tls);
    frames.push_back(PacketBuilder().eth().arp().build());
    frames.push_back(std::vector<uint8_t>(tls.begin(), tls.begin() + 14));
    frames.push_back(std::vector<uint8_t>(tls.begin(), tls.begin() + 14 + 20 + 10));
    frames.push_back(PacketBuilder().eth().vlan(1).vlan(2).vlan(3).ipv4("10.0.0.1", "10.0.0.2").udp(53, 999).build());
    frames.push_back(PacketBuilder().eth().vlan(7).ipv4("10.0.0.1", "10.0.0.2").udp(53, 999).payload(8).build());
    frames.push_back(PacketBuilder().eth().vlan(7, kTpidQinQ).vlan(8).ipv6("fe80::1", "ff02::fb").udp(5353, 5353).payload(12).build());
    frames.push_back(PacketBuilder().eth().ipv4("10.0.0.1", "10.0.0.2").ipv4_frag(8, false).udp(1, 2).payload(8).build());
    frames.push_back(PacketBuilder().eth().ipv4("10.0.0.1", "10.0.0.2").ipv4_frag(0, true).udp(1, 2).payload(8).build());
    frames.push_back(PacketBuilder().eth().ipv4("10.0.0.1", "10.0.0.2").ip_options({1, 1, 1, 1}).tcp(1, 2).payload(4).build());
    frames.push_back(PacketBuilder().eth().ipv6("2001:db8::1", "2001:db8::2").tcp(443, 50000, kTcpSyn).build());
    frames.push_back(PacketBuilder().eth().ipv6("2001:db8::1", "2001:db8::2").hop_by_hop().udp(1, 2).payload(9).build());
    frames.push_back(PacketBuilder().eth().ipv6("2001:db8::1", "2001:db8::2").icmpv6().build());
    frames.push_back(PacketBuilder().eth().ipv4("10.0.0.1", "10.0.0.2").gre().payload(30).build());
    frames.push_back(PacketBuilder().eth().ipv4("10.0.0.1", "10.0.0.2").tcp(1, 2).tcp_doff(4).build());
    frames.push_back(PacketBuilder().eth().ipv4("10.0.0.1", "10.0.0.2").udp(1, 2).length(24).payload(8).build());
    frames.push_back(PacketBuilder().eth().ipv4("10.0.0.1", "10.0.0.2").ip_version(5).udp(1, 2).build());
    for (size_t i = 0; i < frames.size(); ++i) check_frame(progs->dscp, progs->meta, frames[i], "crafted " + std::to_string(i), c);
    // the cases above that must pass untagged
    for (size_t i : {1, 2, 3, 4, 7, 14, 15, 16}) EXPECT_EQ(pkttag::reference(frames[i]), 0u) << i;
    for (size_t i : {0, 5, 6, 8, 9, 10, 11, 12, 13}) EXPECT_NE(pkttag::reference(frames[i]), 0u) << i;
}

TEST(PkttagXdp, DscpKeepsTheIpv4ChecksumValidAndEcn) {
    SKIP_UNLESS_ROOT("(CAP_BPF, CAP_NET_ADMIN) to load BPF");
    auto progs = load_both();
    ASSERT_TRUE(progs);
    Checked c;
    for (int tos = 0; tos < 256; tos += 5) {
        for (uint16_t port : {53, 80, 443, 123, 5353}) {
            auto f = PacketBuilder().eth().ipv4("192.168.1.10", "8.8.8.8").udp(40000, port).payload(20).build();
            f[14 + 1] = static_cast<uint8_t>(tos);
            // fix the header checksum for the new TOS
            f[14 + 10] = f[14 + 11] = 0;
            uint32_t s = 0;
            for (size_t i = 0; i < 20; i += 2) s += static_cast<uint32_t>(f[14 + i] << 8 | f[14 + i + 1]);
            while (s >> 16) s = (s & 0xffff) + (s >> 16);
            f[14 + 10] = static_cast<uint8_t>(~s >> 8), f[14 + 11] = static_cast<uint8_t>(~s);
            ASSERT_TRUE(ipv4_checksum_ok(f, 14));
            check_frame(progs->dscp, progs->meta, f, "tos " + std::to_string(tos), c);
            auto r = progs->dscp.run(f);
            ASSERT_TRUE(r);
            EXPECT_EQ(r->frame[15] & 3, tos & 3) << "ECN kept";
        }
    }
    EXPECT_EQ(c.v4_checksums, c.tagged);
    EXPECT_GT(c.tagged, 0u);
}

TEST(PkttagXdp, EqualsTheReferenceOnEveryNdpiPacket) {
    SKIP_WITHOUT_TESTDATA(kPcapDir);
    SKIP_UNLESS_ROOT("(CAP_BPF, CAP_NET_ADMIN) to load BPF");
    auto progs = load_both();
    ASSERT_TRUE(progs);
    std::vector<std::string> files;
    for (const auto& e : std::filesystem::directory_iterator(kPcapDir)) files.push_back(e.path().string());
    std::sort(files.begin(), files.end());
    Checked c;
    uint64_t unreadable = 0, skipped = 0, captures = 0;
    std::vector<uint8_t> scratch;
    for (const auto& path : files) {
        auto rd = pcap::Reader::open(path);
        if (!rd) {
            ++unreadable;
            continue;
        }
        ++captures;
        pcap::Frame fr;
        for (;;) {
            auto more = rd->next(fr);
            if (!more) {
                ++unreadable;
                break;
            }
            if (!*more) break;
            auto eth = pcap::to_ethernet(fr, scratch);
            if (!eth || eth->size() < 14) {
                ++skipped;
                continue;
            }
            const uint64_t before = static_cast<uint64_t>(::testing::Test::HasFailure());
            check_frame(progs->dscp, progs->meta, *eth, path + " frame " + std::to_string(fr.index), c);
            if (!before && ::testing::Test::HasFailure()) return;  // the first failing frame is enough
        }
    }
    std::printf("pkttag: %" PRIu64 " frames of %" PRIu64 " captures through both programs, %" PRIu64
                " tagged (%" PRIu64 " IPv4 with a valid header checksum, still valid), %" PRIu64
                " skipped (not Ethernet-convertible or < 14 bytes), %" PRIu64 " read errors\n",
                c.frames, captures, c.tagged, c.v4_checksums, skipped, unreadable);
    EXPECT_GT(c.frames, 100000u);
    EXPECT_GT(c.tagged, c.frames / 2);
}

}  // namespace
}  // namespace etcpipe::test
