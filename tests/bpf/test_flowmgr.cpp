// BPF_PROG_TEST_RUN tests of the real FlowManager program (bpf/flowmgr.bpf.c)
// through etcpipe::FlowManager. Needs root (CAP_BPF + CAP_NET_ADMIN); without
// it every test is skipped with the reason.
//
// After every test_run the counter invariants documented in
// include/etcpipe/flowmgr.h are checked:
//   RX = SELECTED + NOT_SELECTED + FILTERED + Σ PARSE_*
//   RX = VERDICT_PASS + VERDICT_DROP + VERDICT_REDIRECT + VERDICT_ABORTED
// plus the reason splits the program keeps:
//   NOT_SELECTED = SKIP_NO_PAYLOAD + SKIP_BEYOND_N + FLOW_TABLE_FAIL
//   FILTERED     = Σ FILTER_*
//
// Behaviour these tests pin down (as the program implements it):
// - The L4 payload length comes from the IP header lengths (IPv4 total
//   length, IPv6 payload length minus the extension headers), not from the
//   captured bytes: a frame cut inside the payload still parses and is
//   selected; Ethernet padding after the IP packet is not payload.
// - Protocols other than TCP and UDP (ICMP, ICMPv6, GRE, ...) are keyed by
//   protocol + addresses with ports 0, their L4 header is not read, and the
//   whole IP payload (the ICMP header included) counts as payload: an ICMP
//   echo without data is selected.
// - A first fragment (offset 0, MF/M set) is parsed and tracked like any
//   packet, with the payload of that fragment only; later fragments carry no
//   L4 header and are passed untracked as PARSE_FRAGMENT, so a fragmented
//   datagram counts once in its flow.
// - A flow idle for more than idle_timeout (strictly) restarts: FLOW_EXPIRED
//   (not FLOW_NEW) is counted, a new flow_id is issued and the indexes
//   restart at 0.
// - Parse failures are always passed; in tap mode with unselected_drop,
//   filtered and not-selected packets are dropped.
#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>
#include <linux/bpf.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "etcpipe/flowmgr.h"
#include "flowmgr/flowmgr.hpp"
#include "flowmgr/replay.hpp"
#include "gpu/parse_packet.hpp"
#include "packet_builder.hpp"
#include "tests/common/expect_ok.hpp"
#include "tests/common/skip.hpp"

namespace etcpipe::test {
namespace {

constexpr uint64_t kSec = 1'000'000'000ull;
constexpr uint64_t kT0 = 1000 * kSec;  // replay time of the first packet
constexpr uint16_t kNoIndex = 0xffff;
constexpr uint16_t kFlagsSelNew = ETC_META_NEW_FLOW | ETC_META_SELECTED | ETC_META_PAYLOAD;
constexpr uint16_t kFlagsSel = ETC_META_SELECTED | ETC_META_PAYLOAD;

using Deltas = std::vector<std::pair<int, uint64_t>>;

const char* action_name(int a) {
    switch (a) {
    case XDP_ABORTED: return "XDP_ABORTED";
    case XDP_DROP: return "XDP_DROP";
    case XDP_PASS: return "XDP_PASS";
    case XDP_TX: return "XDP_TX";
    case XDP_REDIRECT: return "XDP_REDIRECT";
    }
    return "XDP_?";
}

std::string describe(const Counters& c) {
    std::string s;
    for (int i = 0; i < ETC_CNT_MAX; ++i)
        if (c[static_cast<size_t>(i)])
            s += std::string(" ") + counter_name(i) + "=" + std::to_string(c[static_cast<size_t>(i)]);
    return s.empty() ? " (none)" : s;
}

uint64_t at(const Counters& c, int i) { return c[static_cast<size_t>(i)]; }

void expect_invariants(const Counters& c) {
    uint64_t parse = 0;
    for (int i = ETC_CNT_PARSE_TRUNC_ETH; i <= ETC_CNT_PARSE_TRUNC_UDP; ++i) parse += at(c, i);
    uint64_t filters = 0;
    for (int i = ETC_CNT_FILTER_PROTO; i <= ETC_CNT_FILTER_CIDR_NOT_ALLOWED; ++i)
        filters += at(c, i);
    EXPECT_EQ(at(c, ETC_CNT_RX), at(c, ETC_CNT_SELECTED) + at(c, ETC_CNT_NOT_SELECTED) +
                                     at(c, ETC_CNT_FILTERED) + parse)
        << "RX = SELECTED + NOT_SELECTED + FILTERED + Σ PARSE_*; counters:" << describe(c);
    EXPECT_EQ(at(c, ETC_CNT_RX), at(c, ETC_CNT_VERDICT_PASS) + at(c, ETC_CNT_VERDICT_DROP) +
                                     at(c, ETC_CNT_VERDICT_REDIRECT) +
                                     at(c, ETC_CNT_VERDICT_ABORTED))
        << "RX = Σ VERDICT_*; counters:" << describe(c);
    EXPECT_EQ(at(c, ETC_CNT_NOT_SELECTED), at(c, ETC_CNT_SKIP_NO_PAYLOAD) +
                                               at(c, ETC_CNT_SKIP_BEYOND_N) +
                                               at(c, ETC_CNT_FLOW_TABLE_FAIL))
        << "NOT_SELECTED split by reason; counters:" << describe(c);
    EXPECT_EQ(at(c, ETC_CNT_FILTERED), filters) << "FILTERED split by reason;" << describe(c);
}

struct Ran {
    bool ok = false;
    TestRunResult r;
    Counters delta{};
    std::string error;
};

// One frame through the program; checks the invariants on the totals after.
Ran run(FlowManager& fm, const std::vector<uint8_t>& frame, uint64_t ts = kT0, uint32_t repeat = 1) {
    Ran out;
    auto before = fm.counters();
    EXPECT_OK(before);
    auto r = fm.test_run(frame, ts, repeat);
    auto after = fm.counters();
    EXPECT_OK(after);
    if (!before.ok() || !after.ok()) return out;
    for (size_t i = 0; i < out.delta.size(); ++i) out.delta[i] = (*after)[i] - (*before)[i];
    expect_invariants(*after);
    if (!r.ok()) {
        out.error = r.error().message();
        return out;
    }
    out.ok = true;
    out.r = *r;
    return out;
}

std::vector<std::pair<etc_flow_key, etc_flow_value>> flows(const FlowManager& fm) {
    std::vector<std::pair<etc_flow_key, etc_flow_value>> v;
    auto n = fm.for_each_flow(
        [&](const etc_flow_key& k, const etc_flow_value& val) { v.emplace_back(k, val); });
    EXPECT_OK(n);
    for (const auto& [k, val] : v) {
        // canonical order: (addr_a, port_a) <= (addr_b, port_b)
        int cmp = std::memcmp(k.addr_a, k.addr_b, 16);
        EXPECT_TRUE(cmp < 0 || (cmp == 0 && k.port_a <= k.port_b)) << "key not canonical";
        EXPECT_NE(val.flow_id, 0u);
        EXPECT_LE(val.selected, val.payload_pkts);
        EXPECT_LE(val.payload_pkts, val.packets);
        EXPECT_LE(val.first_ns, val.last_ns);
    }
    return v;
}

class FlowMgrTest : public ::testing::Test {
  protected:
    void SetUp() override {
        SKIP_UNLESS_ROOT("for BPF_PROG_TEST_RUN of an XDP program (CAP_BPF, CAP_NET_ADMIN)");
    }

    // Loads the program; skips the test when the kernel refuses for lack of
    // privilege, fails it on any other error. Callers return when !fm.
    void load(const FlowMgrOptions& o, std::optional<FlowManager>& fm) {
        auto r = FlowManager::load(o);
        if (!r.ok()) {
            const Error& e = r.error();
            // EACCES is the verifier refusing the program: a failure, not a skip.
            if (e.code == EPERM)
                GTEST_SKIP() << "missing privilege to load BPF: " << e.message();
            FAIL() << "FlowManager::load: " << e.message();
        }
        fm.emplace(std::move(r).value());
    }
};

#define LOAD_OR_RETURN(fm, opts)             \
    std::optional<FlowManager> fm;           \
    load(opts, fm);                          \
    if (!fm || HasFatalFailure() || IsSkipped()) return

// ---- the table -------------------------------------------------------------

enum class Outcome { ParseFail, Filtered, NotSelected, Selected };

const char* outcome_name(Outcome o) {
    switch (o) {
    case Outcome::ParseFail: return "parse failure";
    case Outcome::Filtered: return "filtered";
    case Outcome::NotSelected: return "tracked, not selected";
    case Outcome::Selected: return "selected";
    }
    return "?";
}

struct KeySpec {
    uint8_t family = 4;
    uint8_t proto = kProtoTcp;
    uint16_t port_a = 0, port_b = 0;
    uint16_t vlan0 = 0, vlan1 = 0;
};

struct Case {
    std::string name;
    std::vector<uint8_t> frame;
    std::function<void(FlowMgrOptions&)> tweak;  // may be empty
    int action = XDP_PASS;
    Outcome outcome = Outcome::Selected;
    // Every counter expected to move besides RX, the verdict and the outcome
    // total (SELECTED / NOT_SELECTED / FILTERED): all others must stay put.
    Deltas deltas;
    uint16_t flags = 0;  // meta flags when tracked
    std::optional<KeySpec> key;
};

// Reason sets for the common outcomes of a first packet in tap mode.
Deltas sel_tap() { return {{ETC_CNT_FLOW_NEW, 1}, {ETC_CNT_XSK_NO_SOCKET, 1}}; }
Deltas no_payload() { return {{ETC_CNT_FLOW_NEW, 1}, {ETC_CNT_SKIP_NO_PAYLOAD, 1}}; }
Deltas one(int counter) { return {{counter, 1}}; }

Case parse_fail(std::string name, std::vector<uint8_t> frame, int counter) {
    return {std::move(name), std::move(frame), {}, XDP_PASS, Outcome::ParseFail, one(counter), 0, {}};
}
Case selected(std::string name, std::vector<uint8_t> frame, std::optional<KeySpec> key = {}) {
    return {std::move(name), std::move(frame), {}, XDP_PASS, Outcome::Selected, sel_tap(),
            kFlagsSelNew, key};
}
Case unselected(std::string name, std::vector<uint8_t> frame, std::optional<KeySpec> key = {}) {
    return {std::move(name), std::move(frame), {}, XDP_PASS, Outcome::NotSelected, no_payload(),
            ETC_META_NEW_FLOW, key};
}
Case filtered(std::string name, std::vector<uint8_t> frame,
              std::function<void(FlowMgrOptions&)> tweak, int counter) {
    return {std::move(name), std::move(frame), std::move(tweak), XDP_PASS, Outcome::Filtered,
            one(counter), 0, {}};
}
Case with(Case c, std::function<void(FlowMgrOptions&)> tweak) {
    c.tweak = std::move(tweak);
    return c;
}

KeySpec k4(uint8_t proto, uint16_t pa, uint16_t pb, uint16_t v0 = 0, uint16_t v1 = 0) {
    return {4, proto, pa, pb, v0, v1};
}
KeySpec k6(uint8_t proto, uint16_t pa, uint16_t pb, uint16_t v0 = 0, uint16_t v1 = 0) {
    return {6, proto, pa, pb, v0, v1};
}

// 10.0.0.1:40000 → 10.0.0.2:443; the client is endpoint a.
PacketBuilder v4() { return std::move(PacketBuilder().eth().ipv4("10.0.0.1", "10.0.0.2")); }
PacketBuilder v6() { return std::move(PacketBuilder().eth().ipv6("2001:db8::1", "2001:db8::2")); }
PacketBuilder v4_tcp(size_t payload, uint8_t flags = kTcpAck | kTcpPsh) {
    auto b = v4();
    b.tcp(40000, 443, flags);
    if (payload) b.payload(payload);
    return b;
}
PacketBuilder v6_udp(size_t payload) {
    auto b = v6();
    b.udp(5353, 53);
    if (payload) b.payload(payload);
    return b;
}

std::vector<Case> table() {
    std::vector<Case> t;
    const KeySpec tcp4 = k4(kProtoTcp, 40000, 443);
    const KeySpec udp6 = k6(kProtoUdp, 5353, 53);

    // -- VLAN depth
    t.push_back(selected("vlan0", v4_tcp(10).build(), tcp4));
    t.push_back(selected("vlan1 802.1Q",
                         PacketBuilder().eth().vlan(100).ipv4("10.0.0.1", "10.0.0.2")
                             .tcp(40000, 443).payload(10).build(),
                         k4(kProtoTcp, 40000, 443, 100)));
    t.push_back(selected("vlan1 802.1ad",
                         PacketBuilder().eth().vlan(101, kTpidQinQ).ipv4("10.0.0.1", "10.0.0.2")
                             .tcp(40000, 443).payload(10).build(),
                         k4(kProtoTcp, 40000, 443, 101)));
    t.push_back(selected("vlan2 QinQ 88a8/8100",
                         PacketBuilder().eth().vlan(100, kTpidQinQ).vlan(200)
                             .ipv6("2001:db8::1", "2001:db8::2").udp(5353, 53).payload(3).build(),
                         k6(kProtoUdp, 5353, 53, 100, 200)));
    t.push_back(selected("vlan2 8100/8100 pcp 5, vid 4095",
                         PacketBuilder().eth().vlan(4095, kTpidDot1Q, 5).vlan(1)
                             .ipv4("10.0.0.1", "10.0.0.2").tcp(40000, 443).payload(1).build(),
                         k4(kProtoTcp, 40000, 443, 4095, 1)));
    t.push_back(parse_fail("vlan3 → depth",
                           PacketBuilder().eth().vlan(1, kTpidQinQ).vlan(2).vlan(3)
                               .ipv4("10.0.0.1", "10.0.0.2").tcp(40000, 443).payload(10).build(),
                           ETC_CNT_PARSE_VLAN_DEPTH));
    t.push_back(parse_fail("vlan3 of 8100 → depth",
                           PacketBuilder().eth().vlan(1).vlan(2).vlan(3)
                               .ipv4("10.0.0.1", "10.0.0.2").udp(1, 2).payload(10).build(),
                           ETC_CNT_PARSE_VLAN_DEPTH));
    {
        auto f = PacketBuilder().eth().vlan(7).ipv4("10.0.0.1", "10.0.0.2").build();
        f.resize(16);  // half a tag
        t.push_back(parse_fail("vlan tag cut", f, ETC_CNT_PARSE_TRUNC_VLAN));
    }
    t.push_back(parse_fail("vlan1 ARP → not IP", PacketBuilder().eth().vlan(5).arp().build(),
                           ETC_CNT_PARSE_NOT_IP));

    // -- non-IP and bare Ethernet
    t.push_back(parse_fail("ARP", PacketBuilder().eth().arp().build(), ETC_CNT_PARSE_NOT_IP));
    t.push_back(parse_fail("ethertype 0x88b5 + payload",
                           PacketBuilder().eth().payload(50).build(), ETC_CNT_PARSE_NOT_IP));
    t.push_back(parse_fail("eth only, type IPv4",
                           PacketBuilder().eth().ethertype(kEthIpv4).build(),
                           ETC_CNT_PARSE_TRUNC_IPV4));
    t.push_back(parse_fail("eth only, type IPv6",
                           PacketBuilder().eth().ethertype(kEthIpv6).build(),
                           ETC_CNT_PARSE_TRUNC_IPV6));

    // -- IPv4 options: IHL 6..15. The payload length must be exactly
    //    total length - IHL*4 - TCP header: 0 → not selected, 1 → selected,
    //    and a total length that ends inside the TCP header → BAD_TCP.
    for (uint8_t ihl = 6; ihl <= 15; ++ihl) {
        std::vector<uint8_t> opts(static_cast<size_t>(ihl - 5) * 4, 1);  // NOPs
        opts.back() = 0;                                                 // EOL
        auto mk = [&](size_t payload) {
            auto b = v4();
            b.ip_options(opts).tcp(40000, 443);
            if (payload) b.payload(payload);
            return b;
        };
        std::string n = "ipv4 ihl " + std::to_string(ihl);
        t.push_back(selected(n + " payload 1", mk(1).build(), tcp4));
        t.push_back(selected(n + " payload 700", mk(700).build(), tcp4));
        t.push_back(unselected(n + " payload 0", mk(0).build(), tcp4));
        t.push_back(parse_fail(n + " total length ends in TCP header",
                               mk(20).length(static_cast<uint16_t>(ihl * 4 + 19)).build(),
                               ETC_CNT_PARSE_BAD_TCP));
    }
    t.push_back(selected("ipv4 options: record route + timestamp",
                         v4().ip_options({7, 11, 4, 0, 0, 0, 0, 0, 0, 0, 0, 68, 12, 5, 0, 0, 0, 0,
                                          0, 0, 0, 0, 0})
                             .udp(1000, 2000).payload(1).build(),
                         k4(kProtoUdp, 1000, 2000)));
    t.push_back(parse_fail("ipv4 ihl 4", v4_tcp(10).ipv4_ihl(4).build(), ETC_CNT_PARSE_BAD_IPV4));
    t.push_back(parse_fail("ipv4 ihl 0", v4_tcp(10).ipv4_ihl(0).build(), ETC_CNT_PARSE_BAD_IPV4));
    t.push_back(parse_fail("ipv4 version 5", v4_tcp(10).ip_version(5).build(),
                           ETC_CNT_PARSE_BAD_IPV4));
    t.push_back(parse_fail("ipv4 ethertype, version 6", v4_tcp(10).ip_version(6).build(),
                           ETC_CNT_PARSE_BAD_IPV4));
    t.push_back(parse_fail("ipv4 total length 19", v4_tcp(10).length(19).build(),
                           ETC_CNT_PARSE_BAD_IPV4));
    t.push_back(parse_fail("ipv4 total length 0", v4_tcp(10).length(0).build(),
                           ETC_CNT_PARSE_BAD_IPV4));
    t.push_back(parse_fail("ipv4 ihl 8, total length 24 < 32",
                           v4().ip_options({1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0}).tcp(1, 2)
                               .payload(4).length(24).build(),
                           ETC_CNT_PARSE_BAD_IPV4));
    t.push_back(parse_fail("ipv4 total length = IHL: TCP header beyond IP payload",
                           v4_tcp(10).length(20).build(), ETC_CNT_PARSE_BAD_TCP));
    {
        auto f = v4_tcp(0).ipv4_ihl(15).build();  // 20 bytes written, 60 claimed
        f.resize(14 + 50);
        t.push_back(parse_fail("ipv4 ihl 15, options cut", f, ETC_CNT_PARSE_TRUNC_IPV4));
    }
    {
        auto f = v4_tcp(0).build();
        f.resize(14 + 19);
        t.push_back(parse_fail("ipv4 fixed header cut", f, ETC_CNT_PARSE_TRUNC_IPV4));
    }
    // The payload length is taken from the IP header: a capture cut in the
    // payload is still selected; padding after the datagram is not payload.
    {
        auto f = v4_tcp(1000).build();
        f.resize(14 + 20 + 20 + 1);
        t.push_back(selected("ipv4 frame cut inside the payload", f, tcp4));
    }
    t.push_back(unselected("ipv4 pure ACK padded to 60", v4_tcp(0, kTcpAck).pad_to(60).build(),
                           tcp4));
    t.push_back(selected("ipv4 1-byte payload padded to 60", v4_tcp(1).pad_to(60).build(), tcp4));
    t.push_back(unselected("ipv6 UDP, no payload, padded to 80", v6_udp(0).pad_to(80).build(),
                           udp6));

    // -- IPv4 fragments
    t.push_back(selected("ipv4 first fragment (MF, offset 0)",
                         v4().ipv4_frag(0, true).tcp(40000, 443).payload(100).build(), tcp4));
    t.push_back(unselected("ipv4 first fragment, TCP header only",
                           v4().ipv4_frag(0, true).tcp(40000, 443).build(), tcp4));
    t.push_back(selected("ipv4 DF, offset 0",
                         v4().ipv4_frag(0, false, true).tcp(40000, 443).payload(5).build(), tcp4));
    t.push_back(parse_fail("ipv4 middle fragment",
                           v4().ipv4_frag(185, true).payload(1480).build(), ETC_CNT_PARSE_FRAGMENT));
    t.push_back(parse_fail("ipv4 last fragment", v4().ipv4_frag(370, false).payload(100).build(),
                           ETC_CNT_PARSE_FRAGMENT));
    t.push_back(parse_fail("ipv4 fragment offset 1 (8 bytes)",
                           v4().ipv4_frag(1, false).next_proto(kProtoTcp).payload(40).build(),
                           ETC_CNT_PARSE_FRAGMENT));

    // -- IPv6 and each extension header alone, then chains
    t.push_back(selected("ipv6 udp", v6_udp(10).build(), udp6));
    t.push_back(unselected("ipv6 udp no payload", v6_udp(0).build(), udp6));
    struct Ext {
        const char* name;
        std::function<void(PacketBuilder&)> add;
    };
    const std::vector<Ext> exts = {
        {"hop-by-hop", [](PacketBuilder& b) { b.hop_by_hop(); }},
        {"hop-by-hop 24B", [](PacketBuilder& b) { b.hop_by_hop(2); }},
        {"routing", [](PacketBuilder& b) { b.routing(); }},
        {"dst-opts", [](PacketBuilder& b) { b.dst_opts(); }},
        {"dst-opts 2048B", [](PacketBuilder& b) { b.dst_opts(255); }},
        {"fragment first (M)", [](PacketBuilder& b) { b.fragment6(0, true); }},
        {"fragment atomic", [](PacketBuilder& b) { b.fragment6(0, false); }},
        {"AH", [](PacketBuilder& b) { b.ah(); }},
        {"AH 12B", [](PacketBuilder& b) { b.ah(1); }},
        {"mobility", [](PacketBuilder& b) { b.mobility(); }},
    };
    for (const auto& e : exts) {
        auto b = v6();
        e.add(b);
        auto b0 = b;
        b.udp(5353, 53).payload(10);
        t.push_back(selected(std::string("ipv6 ") + e.name + " + udp", b.build(), udp6));
        b0.tcp(40000, 443, kTcpAck);
        t.push_back(unselected(std::string("ipv6 ") + e.name + " + pure ACK", b0.build(),
                               k6(kProtoTcp, 40000, 443)));
    }
    t.push_back(unselected("ipv6 mobility, no next header", v6().mobility(1).build(),
                           k6(kProtoNone, 0, 0)));
    t.push_back(selected("ipv6 chain hbh,dst,rt,frag,ah,dst (6) + udp",
                         v6().hop_by_hop().dst_opts(1).routing().fragment6(0, true).ah().dst_opts()
                             .udp(5353, 53).payload(10).build(),
                         udp6));
    t.push_back(selected("ipv6 chain of 6 incl. mobility + tcp",
                         v6().hop_by_hop().dst_opts().routing().ah().dst_opts().mobility()
                             .tcp(40000, 443).payload(1).build(),
                         k6(kProtoTcp, 40000, 443)));
    t.push_back(parse_fail("ipv6 chain of 7 → depth",
                           v6().hop_by_hop().dst_opts().routing().fragment6(0, true).ah().dst_opts()
                               .mobility().udp(5353, 53).payload(10).build(),
                           ETC_CNT_PARSE_IPV6_EXT_DEPTH));
    t.push_back(parse_fail("ipv6 7 dst-opts → depth",
                           v6().dst_opts().dst_opts().dst_opts().dst_opts().dst_opts().dst_opts()
                               .dst_opts().udp(5353, 53).payload(10).build(),
                           ETC_CNT_PARSE_IPV6_EXT_DEPTH));
    t.push_back(parse_fail("ipv6 non-first fragment",
                           v6().fragment6(1, true).next_proto(kProtoUdp).payload(64).build(),
                           ETC_CNT_PARSE_FRAGMENT));
    t.push_back(parse_fail("ipv6 last fragment after hbh",
                           v6().hop_by_hop().fragment6(200, false).next_proto(kProtoUdp)
                               .payload(64).build(),
                           ETC_CNT_PARSE_FRAGMENT));
    t.push_back(parse_fail("ipv6 version 4", v6_udp(10).ip_version(4).build(),
                           ETC_CNT_PARSE_BAD_IPV6));
    t.push_back(parse_fail("ipv6 extensions exceed payload length",
                           v6().hop_by_hop(1).udp(5353, 53).payload(10).length(8).build(),
                           ETC_CNT_PARSE_BAD_IPV6));
    {
        auto f = v6_udp(10).build();
        f.resize(14 + 39);
        t.push_back(parse_fail("ipv6 fixed header cut", f, ETC_CNT_PARSE_TRUNC_IPV6));
    }
    {
        auto f = v6().hop_by_hop(3).udp(5353, 53).build();
        f.resize(14 + 40 + 31);
        t.push_back(parse_fail("ipv6 hop-by-hop cut", f, ETC_CNT_PARSE_TRUNC_IPV6_EXT));
        auto g = v6().fragment6(0, true).udp(5353, 53).build();
        g.resize(14 + 40 + 7);
        t.push_back(parse_fail("ipv6 fragment header cut", g, ETC_CNT_PARSE_TRUNC_IPV6_EXT));
        auto h = v6().ah(4).udp(5353, 53).build();
        h.resize(14 + 40 + 1);
        t.push_back(parse_fail("ipv6 AH cut after 1 byte", h, ETC_CNT_PARSE_TRUNC_IPV6_EXT));
    }
    t.push_back(selected("ipv6 ESP (not an extension the program walks) is the L4",
                         v6().l4(50, {0, 0, 0, 1, 0, 0, 0, 1}).payload(16).build(),
                         k6(50, 0, 0)));
    t.push_back(parse_fail("ipv6 UDP length per IP header < 8",
                           v6_udp(10).length(4).build(), ETC_CNT_PARSE_TRUNC_UDP));

    // -- TCP flags and header
    t.push_back(unselected("tcp pure ACK", v4_tcp(0, kTcpAck).build(), tcp4));
    t.push_back(unselected("tcp SYN", v4_tcp(0, kTcpSyn).tcp_options({2, 4, 5, 0xb4, 4, 2}).build(),
                           tcp4));
    t.push_back(selected("tcp SYN with data (TFO)", v4_tcp(16, kTcpSyn).build(), tcp4));
    t.push_back(unselected("tcp FIN", v4_tcp(0, kTcpFin | kTcpAck).build(), tcp4));
    t.push_back(selected("tcp FIN with data", v4_tcp(7, kTcpFin | kTcpAck | kTcpPsh).build(), tcp4));
    t.push_back(unselected("tcp RST", v4_tcp(0, kTcpRst).build(), tcp4));
    t.push_back(selected("tcp RST with data", v4_tcp(3, kTcpRst | kTcpAck).build(), tcp4));
    t.push_back(unselected("tcp ACK with timestamps, no data",
                           v4().tcp(40000, 443, kTcpAck).tcp_options({1, 1, 8, 10, 0, 0, 0, 1, 0, 0,
                                                                      0, 2})
                               .build(),
                           tcp4));
    t.push_back(selected("tcp 40 bytes of options + data",
                         v4().tcp(40000, 443).tcp_options(std::vector<uint8_t>(40, 1)).payload(1)
                             .build(),
                         tcp4));
    t.push_back(parse_fail("tcp doff 4", v4_tcp(10).tcp_doff(4).build(), ETC_CNT_PARSE_BAD_TCP));
    t.push_back(parse_fail("tcp doff 0", v4_tcp(10).tcp_doff(0).build(), ETC_CNT_PARSE_BAD_TCP));
    {
        auto f = v4_tcp(0).tcp_doff(15).build();  // claims 60, has 20
        t.push_back(parse_fail("tcp doff 15 beyond the frame", f, ETC_CNT_PARSE_TRUNC_TCP));
        auto g = v4_tcp(100).tcp_doff(15).build();  // fits in the frame, not in IP length? no: fits
        t.push_back(selected("tcp doff 15 inside 100 data bytes → 60 B header, 60 B payload", g,
                             tcp4));
        auto h = v4_tcp(10).build();
        h.resize(14 + 20 + 19);
        t.push_back(parse_fail("tcp header cut", h, ETC_CNT_PARSE_TRUNC_TCP));
    }
    // -- UDP
    t.push_back(selected("udp with payload", v4().udp(1000, 53).payload(30).build(),
                         k4(kProtoUdp, 1000, 53)));
    t.push_back(unselected("udp without payload", v4().udp(1000, 53).build(),
                           k4(kProtoUdp, 1000, 53)));
    {
        auto f = v4().udp(1000, 53).payload(30).build();
        f.resize(14 + 20 + 7);
        t.push_back(parse_fail("udp header cut", f, ETC_CNT_PARSE_TRUNC_UDP));
    }
    // The UDP length field is not consulted: the IP lengths rule.
    t.push_back(selected("udp length field 4 (ignored)",
                         v4().udp(1000, 53).payload(30).udp_length(4).build(),
                         k4(kProtoUdp, 1000, 53)));
    t.push_back(selected("udp length field 0xffff (ignored)",
                         v6().udp(1000, 53).payload(30).udp_length(0xffff).build(),
                         k6(kProtoUdp, 1000, 53)));
    t.push_back(parse_fail("udp: IP total length leaves 4 bytes",
                           v4().udp(1000, 53).payload(30).length(24).build(),
                           ETC_CNT_PARSE_TRUNC_UDP));
    // -- ICMP, ICMPv6, GRE: ports 0; the IP payload (ICMP header included) is payload.
    t.push_back(selected("icmp echo without data", v4().icmp(8).build(), k4(kProtoIcmp, 0, 0)));
    t.push_back(selected("icmp echo with data", v4().icmp(8).payload(56).build(),
                         k4(kProtoIcmp, 0, 0)));
    t.push_back(selected("icmpv6 echo", v6().icmpv6(128).payload(8).build(),
                         k6(kProtoIcmpv6, 0, 0)));
    t.push_back(selected("gre", v4().gre().payload(40).build(), k4(kProtoGre, 0, 0)));
    t.push_back(unselected("ipv4 protocol 59, total length = header", v4().next_proto(59).build(),
                           k4(59, 0, 0)));

    // -- options
    {
        auto ack = v4_tcp(0, kTcpAck).build();
        Case c = with(selected("count_all selects a pure ACK", ack, tcp4),
                      [](FlowMgrOptions& o) { o.count_all = true; });
        t.push_back(c);
    }
    auto tcp_only = [](FlowMgrOptions& o) { o.protocols = {kProtoTcp}; };
    t.push_back(with(selected("protocols tcp: tcp", v4_tcp(5).build(), tcp4), tcp_only));
    t.push_back(filtered("protocols tcp: udp", v4().udp(1, 2).payload(5).build(), tcp_only,
                         ETC_CNT_FILTER_PROTO));
    t.push_back(filtered("protocols udp,gre: icmp", v4().icmp().build(),
                         [](FlowMgrOptions& o) { o.protocols = {kProtoUdp, kProtoGre}; },
                         ETC_CNT_FILTER_PROTO));
    t.push_back(with(selected("protocols 135..255 bits: proto 200", v4().l4(200, {}).payload(4)
                                                                          .build(),
                              k4(200, 0, 0)),
                     [](FlowMgrOptions& o) { o.protocols = {135, 200, 255}; }));
    t.push_back(filtered("protocols 200: proto 201", v4().l4(201, {}).payload(4).build(),
                         [](FlowMgrOptions& o) { o.protocols = {200}; }, ETC_CNT_FILTER_PROTO));
    auto port443 = [](FlowMgrOptions& o) { o.ports = {443, 8443}; };
    t.push_back(with(selected("ports 443: dst 443", v4_tcp(5).build(), tcp4), port443));
    t.push_back(with(selected("ports 443: src 443",
                              PacketBuilder().eth().ipv4("10.0.0.2", "10.0.0.1")
                                  .tcp(443, 40000).payload(5).build(),
                              tcp4),
                     port443));
    t.push_back(filtered("ports 443: tcp 80", v4().tcp(40000, 80).payload(5).build(), port443,
                         ETC_CNT_FILTER_PORT));
    t.push_back(filtered("ports 443: icmp (port 0)", v4().icmp().build(), port443,
                         ETC_CNT_FILTER_PORT));
    t.push_back(filtered("protocols udp + ports 443: tcp 443 → proto first", v4_tcp(5).build(),
                         [](FlowMgrOptions& o) {
                             o.protocols = {kProtoUdp};
                             o.ports = {443};
                         },
                         ETC_CNT_FILTER_PROTO));

    auto cidr = [](std::vector<std::string> allow, std::vector<std::string> deny) {
        return [allow, deny](FlowMgrOptions& o) {
            for (const auto& a : allow) o.allow.push_back(*parse_cidr(a));
            for (const auto& d : deny) o.deny.push_back(*parse_cidr(d));
        };
    };
    auto p4 = [](const char* s, const char* d) {
        return PacketBuilder().eth().ipv4(s, d).udp(1000, 2000).payload(8).build();
    };
    auto p6 = [](const char* s, const char* d) {
        return PacketBuilder().eth().ipv6(s, d).udp(1000, 2000).payload(8).build();
    };
    const KeySpec u4 = k4(kProtoUdp, 1000, 2000), u6 = k6(kProtoUdp, 1000, 2000);
    const KeySpec u4r = k4(kProtoUdp, 2000, 1000), u6r = k6(kProtoUdp, 2000, 1000);
    t.push_back(with(selected("allow 10/8: src in", p4("10.1.2.3", "192.168.1.1"), u4),
                     cidr({"10.0.0.0/8"}, {})));
    t.push_back(with(selected("allow 10/8: dst in", p4("192.168.1.1", "10.1.2.3"), u4r),
                     cidr({"10.0.0.0/8"}, {})));
    t.push_back(filtered("allow 10/8: neither", p4("192.168.1.1", "192.168.1.2"),
                         cidr({"10.0.0.0/8"}, {}), ETC_CNT_FILTER_CIDR_NOT_ALLOWED));
    t.push_back(filtered("allow 10/8: v6 0a00::1 (family byte)", p6("a00::1", "a00::2"),
                         cidr({"10.0.0.0/8"}, {}), ETC_CNT_FILTER_CIDR_NOT_ALLOWED));
    t.push_back(filtered("deny 192.168/16: dst", p4("10.0.0.1", "192.168.7.7"),
                         cidr({}, {"192.168.0.0/16"}), ETC_CNT_FILTER_CIDR_DENY));
    t.push_back(with(selected("deny 192.168/16: neither", p4("10.0.0.1", "10.0.0.2"), u4),
                     cidr({}, {"192.168.0.0/16"})));
    t.push_back(filtered("deny host 10.0.0.2", p4("10.0.0.1", "10.0.0.2"),
                         cidr({}, {"10.0.0.2"}), ETC_CNT_FILTER_CIDR_DENY));
    t.push_back(filtered("allow 10/8 + deny 10.9/16: one end denied",
                         p4("10.1.1.1", "10.9.1.1"), cidr({"10.0.0.0/8"}, {"10.9.0.0/16"}),
                         ETC_CNT_FILTER_CIDR_DENY));
    t.push_back(with(selected("allow 10/8 + deny 10.9/16: allowed", p4("10.1.1.1", "10.2.2.2"), u4),
                     cidr({"10.0.0.0/8"}, {"10.9.0.0/16"})));
    t.push_back(filtered("allow 10/8 + deny 10.9/16: outside", p4("172.16.0.1", "172.16.0.2"),
                         cidr({"10.0.0.0/8"}, {"10.9.0.0/16"}),
                         ETC_CNT_FILTER_CIDR_NOT_ALLOWED));
    t.push_back(with(selected("allow 2001:db8::/32: src in", p6("2001:db8::1", "2001:db9::1"), u6),
                     cidr({"2001:db8::/32"}, {})));
    t.push_back(with(selected("allow 2001:db8::/32: dst in", p6("2001:db9::1", "2001:db8::1"), u6r),
                     cidr({"2001:db8::/32"}, {})));
    t.push_back(filtered("allow 2001:db8::/32: neither", p6("2001:db9::1", "2001:db9::2"),
                         cidr({"2001:db8::/32"}, {}), ETC_CNT_FILTER_CIDR_NOT_ALLOWED));
    t.push_back(filtered("allow 2001:db8::/32: v4 packet", p4("10.0.0.1", "10.0.0.2"),
                         cidr({"2001:db8::/32"}, {}), ETC_CNT_FILTER_CIDR_NOT_ALLOWED));
    t.push_back(filtered("allow db8/32 + deny db8:dead/48", p6("2001:db8:dead::1", "2001:db8::2"),
                         cidr({"2001:db8::/32"}, {"2001:db8:dead::/48"}),
                         ETC_CNT_FILTER_CIDR_DENY));
    t.push_back(with(selected("allow db8/32 + deny db8:dead/48: allowed",
                              p6("2001:db8:beef::1", "2001:db8::2"), u6r),
                     cidr({"2001:db8::/32"}, {"2001:db8:dead::/48"})));
    t.push_back(filtered("deny v6 host", p6("2001:db8::1", "2001:db8::2"),
                         cidr({}, {"2001:db8::2/128"}), ETC_CNT_FILTER_CIDR_DENY));

    // -- delivery and unselected action
    auto drop = [](FlowMgrOptions& o) { o.unselected_drop = true; };
    auto inl = [](FlowMgrOptions& o) { o.delivery = ETC_DELIVERY_INLINE; };
    auto inl_drop = [](FlowMgrOptions& o) {
        o.delivery = ETC_DELIVERY_INLINE;
        o.unselected_drop = true;
    };
    t.push_back(with(selected("tap+drop: selected passes (no socket)", v4_tcp(10).build(), tcp4),
                     drop));
    {
        Case c = with(unselected("tap+drop: pure ACK dropped", v4_tcp(0, kTcpAck).build(), tcp4),
                      drop);
        c.action = XDP_DROP;
        t.push_back(c);
        Case f = filtered("tap+drop: filtered dropped", v4().udp(1, 2).payload(4).build(),
                          [](FlowMgrOptions& o) {
                              o.unselected_drop = true;
                              o.protocols = {kProtoTcp};
                          },
                          ETC_CNT_FILTER_PROTO);
        f.action = XDP_DROP;
        t.push_back(f);
        t.push_back(with(parse_fail("tap+drop: unparsable passes", PacketBuilder().eth().arp()
                                                                       .build(),
                                    ETC_CNT_PARSE_NOT_IP),
                         drop));
        t.push_back(with(parse_fail("tap+drop: fragment passes",
                                    v4().ipv4_frag(10, false).payload(20).build(),
                                    ETC_CNT_PARSE_FRAGMENT),
                         drop));
    }
    {
        Case c = with(selected("inline: selected passes", v4_tcp(10).build(), tcp4), inl);
        c.deltas = one(ETC_CNT_FLOW_NEW);
        t.push_back(c);
        t.push_back(with(unselected("inline+drop: pure ACK still passes",
                                    v4_tcp(0, kTcpAck).build(), tcp4),
                         inl_drop));
        Case d = with(selected("inline+drop: selected passes", v4_tcp(10).build(), tcp4),
                      inl_drop);
        d.deltas = one(ETC_CNT_FLOW_NEW);
        t.push_back(d);
    }
    return t;
}

// Runs one case on a freshly loaded (or reset) program and checks everything it says.
void check_case(FlowManager& fm, const Case& c, Counters* out_delta = nullptr) {
    auto ran = run(fm, c.frame);
    ASSERT_TRUE(ran.ok) << "test_run failed: " << ran.error;
    if (out_delta) *out_delta = ran.delta;
    const auto& r = ran.r;
    EXPECT_EQ(r.action, c.action) << "got " << action_name(r.action) << ", want "
                                  << action_name(c.action);

    Counters want{};
    want[ETC_CNT_RX] = 1;
    switch (c.action) {
    case XDP_PASS: want[ETC_CNT_VERDICT_PASS] = 1; break;
    case XDP_DROP: want[ETC_CNT_VERDICT_DROP] = 1; break;
    case XDP_REDIRECT: want[ETC_CNT_VERDICT_REDIRECT] = 1; break;
    default: want[ETC_CNT_VERDICT_ABORTED] = 1; break;
    }
    if (c.outcome == Outcome::Selected) want[ETC_CNT_SELECTED] = 1;
    if (c.outcome == Outcome::NotSelected) want[ETC_CNT_NOT_SELECTED] = 1;
    if (c.outcome == Outcome::Filtered) want[ETC_CNT_FILTERED] = 1;
    for (auto [i, n] : c.deltas) want[static_cast<size_t>(i)] += n;
    for (int i = 0; i < ETC_CNT_MAX; ++i)
        EXPECT_EQ(ran.delta[static_cast<size_t>(i)], want[static_cast<size_t>(i)])
            << "counter " << counter_name(i) << " (want outcome: " << outcome_name(c.outcome)
            << ")\n  deltas got:" << describe(ran.delta) << "\n  deltas want:" << describe(want);

    auto fl = flows(fm);
    bool tracked = c.outcome == Outcome::Selected || c.outcome == Outcome::NotSelected;
    ASSERT_EQ(r.meta.has_value(), tracked) << "meta present iff the packet was tracked";
    if (!tracked) {
        EXPECT_TRUE(fl.empty()) << "an untracked packet created " << fl.size() << " flow(s)";
        return;
    }
    const etc_meta& m = *r.meta;
    EXPECT_EQ(m.flags, c.flags);
    EXPECT_EQ(m.flow_id, 1u);
    EXPECT_EQ(m.ts_ns, kT0);
    EXPECT_EQ(m.orig_len, c.frame.size());
    EXPECT_EQ(m.pkt_index, 0u);
    EXPECT_EQ(m.index, c.outcome == Outcome::Selected ? 0 : kNoIndex);
    ASSERT_EQ(fl.size(), 1u);
    const auto& [k, v] = fl[0];
    EXPECT_EQ(v.flow_id, m.flow_id);
    EXPECT_EQ(v.packets, 1u);
    EXPECT_EQ(v.payload_pkts, (c.flags & ETC_META_PAYLOAD) ? 1u : 0u);
    EXPECT_EQ(v.selected, c.outcome == Outcome::Selected ? 1u : 0u);
    EXPECT_EQ(v.bytes, c.frame.size());
    EXPECT_EQ(v.first_ns, kT0);
    EXPECT_EQ(v.last_ns, kT0);
    if (c.key) {
        EXPECT_EQ(k.family, c.key->family);
        EXPECT_EQ(k.proto, c.key->proto);
        EXPECT_EQ(k.port_a, c.key->port_a);
        EXPECT_EQ(k.port_b, c.key->port_b);
        EXPECT_EQ(k.vlan[0], c.key->vlan0);
        EXPECT_EQ(k.vlan[1], c.key->vlan1);
        if (k.family == 4) {
            for (int i = 4; i < 16; ++i) EXPECT_EQ(k.addr_a[i] | k.addr_b[i], 0) << "v4 tail";
        }
    }
}

// What tells two option sets apart: the Table loads one program per key.
std::string options_key(const FlowMgrOptions& o) {
    std::string k = std::to_string(o.max_pkts) + "/" + std::to_string(o.flows) + "/" +
                    std::to_string(o.idle_timeout_s) + "/" + std::to_string(o.snap_len) + "/" +
                    std::to_string(o.ringbuf_bytes) + "/" + std::to_string(o.delivery) + "/" +
                    std::to_string(o.unselected_drop) + std::to_string(o.count_all) + "/" +
                    o.pin_path + "/p";
    for (uint8_t p : o.protocols) k += " " + std::to_string(p);
    k += "/ports";
    for (uint16_t p : o.ports) k += " " + std::to_string(p);
    auto cidrs = [&](const char* what, const std::vector<Cidr>& list) {
        k += what;
        for (const auto& c : list) {
            k += " " + std::to_string(c.family) + ":" + std::to_string(c.prefix) + ":";
            for (uint8_t b : c.addr) k += std::to_string(b) + ".";
        }
    };
    cidrs("/allow", o.allow);
    cidrs("/deny", o.deny);
    return k;
}

TEST_F(FlowMgrTest, Table) {
    auto cases = table();
    ASSERT_GT(cases.size(), 150u);
    // Loading (verification) is what costs; a reset is a few map writes. So
    // one program per option set, reset before each case that reuses it.
    std::map<std::string, FlowManager> loaded;
    for (const auto& c : cases) {
        SCOPED_TRACE("case \"" + c.name + "\" (" + std::to_string(c.frame.size()) + " bytes)\n" +
                     hex_dump(c.frame));
        FlowMgrOptions o;
        o.flows = 256;  // one packet per case: a small table loads faster
        if (c.tweak) c.tweak(o);
        const std::string key = options_key(o);
        auto it = loaded.find(key);
        if (it != loaded.end()) {
            ASSERT_OK(it->second.reset());
        } else {
            LOAD_OR_RETURN(fm, o);
            it = loaded.emplace(key, std::move(*fm)).first;
        }
        check_case(it->second, c);
    }
    std::printf("[          ] %zu table cases, %zu programs loaded\n", cases.size(), loaded.size());
}

// reset() must leave nothing a case could see: the Table depends on it.
TEST_F(FlowMgrTest, ResetReturnsToTheLoadedState) {
    FlowMgrOptions o;
    o.delivery = ETC_DELIVERY_INLINE;
    LOAD_OR_RETURN(fm, o);
    for (int round = 0; round < 2; ++round) {
        SCOPED_TRACE("round " + std::to_string(round));
        auto a = run(*fm, v4_tcp(10).build());
        auto b = run(*fm, v6_udp(10).build());
        ASSERT_TRUE(a.ok && a.r.meta && b.ok && b.r.meta) << a.error << b.error;
        EXPECT_EQ(a.r.meta->flow_id, 1u);
        EXPECT_EQ(b.r.meta->flow_id, 2u);
        EXPECT_EQ(flows(*fm).size(), 2u);
        ASSERT_OK(fm->reset());
        auto cn = fm->counters();
        ASSERT_OK(cn);
        EXPECT_EQ(*cn, Counters{}) << "counters after reset:" << describe(*cn);
        EXPECT_TRUE(flows(*fm).empty());
        auto records = fm->drain_ring([](const etc_ring_hdr&, std::span<const uint8_t>) {});
        ASSERT_OK(records);
        EXPECT_EQ(*records, 0) << "ring records survived the reset";
    }
}

// take_flows(keys, ...): the keyed deletes visit each flow once and leave the
// table empty; keys it lacks, or keys of flows no longer there, leave the rest
// to the pass over the table, so the table ends empty whatever the keys.
TEST_F(FlowMgrTest, TakeFlowsByKeyFallsBackToThePass) {
    LOAD_OR_RETURN(fm, FlowMgrOptions{});
    const std::vector<std::vector<uint8_t>> frames = {v4_tcp(10).build(), v6_udp(10).build(),
                                                      v4().udp(1000, 2000).payload(5).build()};
    std::vector<etc_flow_key> all;
    for (const auto& f : frames) {
        features::pp::Parsed p;
        ASSERT_TRUE(features::pp::parse(f.data(), static_cast<uint32_t>(f.size()), &p));
        all.push_back(p.key);
    }
    etc_flow_key absent = all[0];
    absent.port_b = 9;  // a flow the table never had
    const std::vector<std::vector<etc_flow_key>> key_sets = {
        all, {}, {all[1]}, {absent, all[2], all[0], all[1]}, {all[0], all[0], all[1], all[2]}};
    for (size_t i = 0; i < key_sets.size(); ++i) {
        SCOPED_TRACE("key set " + std::to_string(i));
        ASSERT_OK(fm->reset());
        for (const auto& f : frames) ASSERT_TRUE(run(*fm, f).ok);
        std::map<uint64_t, int> visits;
        auto n = fm->take_flows(key_sets[i], [&](const etc_flow_key& k, const etc_flow_value& v) {
            ++visits[v.flow_id];
            EXPECT_EQ(v.packets, 1u);
            EXPECT_TRUE(std::any_of(all.begin(), all.end(),
                                    [&](const etc_flow_key& a) { return std::memcmp(&a, &k, sizeof(k)) == 0; }))
                << "a key the program did not make";
        });
        ASSERT_OK(n);
        EXPECT_EQ(*n, frames.size());
        EXPECT_EQ(visits.size(), frames.size());
        for (const auto& [id, times] : visits) EXPECT_EQ(times, 1) << "flow " << id;
        EXPECT_TRUE(flows(*fm).empty()) << "flows left in the table";
    }
}

// A replay of real captures, one program for all: the parser twin's keys
// empty the table (nothing left for the next capture), and the table agreed
// with the metadata on every flow.
TEST_F(FlowMgrTest, ReplayEmptiesTheTableByKey) {
    const std::string dir = "testdata/ndpi/pcap";
    SKIP_WITHOUT_TESTDATA(dir);
    FlowMgrOptions o;
    o.delivery = ETC_DELIVERY_INLINE;
    o.ring_wakeup = false;
    LOAD_OR_RETURN(fm, o);
    size_t flows_seen = 0;
    for (const char* name :
         {"quic.pcap", "dns_fragmented.pcap", "ipv6_in_gtp.pcap", "skype.pcap", "avast_securedns.pcapng"}) {
        const std::string path = dir + "/" + name;
        SCOPED_TRACE(path);
        auto r = replay_capture(*fm, path, 0, false, {});
        ASSERT_OK(r);
        EXPECT_EQ(r->table_mismatches, 0u);
        flows_seen += r->flows.size();
        EXPECT_TRUE(flows(*fm).empty()) << "flows left in the table after " << name;
    }
    EXPECT_GT(flows_seen, 0u);
}

// ---- frames shorter than Ethernet ------------------------------------------

TEST_F(FlowMgrTest, FramesShorterThanEthernetAreRefused) {
    LOAD_OR_RETURN(fm, FlowMgrOptions{});
    auto full = v4_tcp(10).build();
    for (size_t n = 0; n < 14; ++n) {
        std::vector<uint8_t> f(full.begin(), full.begin() + static_cast<long>(n));
        SCOPED_TRACE("frame of " + std::to_string(n) + " bytes");
        // Live time (no replay header): the kernel sees < ETH_HLEN bytes.
        auto ran = run(*fm, f, 0);
        EXPECT_FALSE(ran.ok) << "BPF_PROG_TEST_RUN accepted a frame of " << n << " bytes";
        EXPECT_EQ(at(ran.delta, ETC_CNT_RX), 0u);
        // With a replay timestamp the buffer handed to the kernel is 32 bytes
        // longer, but the kernel checks the frame itself (data_end - data).
        auto ran_ts = run(*fm, f, kT0);
        EXPECT_FALSE(ran_ts.ok) << "accepted a " << n << "-byte frame behind a replay header";
        EXPECT_EQ(at(ran_ts.delta, ETC_CNT_RX), 0u);
    }
    EXPECT_TRUE(flows(*fm).empty());
}

// ---- truncation at every byte -----------------------------------------------

int parse_counter_for(LayerKind k) {
    switch (k) {
    case LayerKind::Eth: return ETC_CNT_PARSE_TRUNC_ETH;
    case LayerKind::Vlan: return ETC_CNT_PARSE_TRUNC_VLAN;
    case LayerKind::Ipv4: return ETC_CNT_PARSE_TRUNC_IPV4;
    case LayerKind::Ipv6: return ETC_CNT_PARSE_TRUNC_IPV6;
    case LayerKind::Ipv6Ext: return ETC_CNT_PARSE_TRUNC_IPV6_EXT;
    case LayerKind::Tcp: return ETC_CNT_PARSE_TRUNC_TCP;
    case LayerKind::Udp: return ETC_CNT_PARSE_TRUNC_UDP;
    default: return -1;  // not read by the program
    }
}

TEST_F(FlowMgrTest, TruncationAtEveryByte) {
    struct Shape {
        const char* name;
        PacketBuilder b;
    };
    std::vector<Shape> shapes;
    shapes.push_back({"eth/ipv4+opts/tcp+opts/payload",
                      std::move(v4().ip_options({1, 1, 1, 1, 1, 1, 1, 0}).tcp(40000, 443)
                                    .tcp_options({2, 4, 5, 0xb4, 1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2})
                                    .payload(24))});
    shapes.push_back({"eth/vlan/vlan/ipv6/hbh/frag/dst/udp/payload",
                      std::move(PacketBuilder().eth().vlan(10, kTpidQinQ).vlan(20)
                                    .ipv6("2001:db8::1", "2001:db8::2").hop_by_hop(1)
                                    .fragment6(0, true).dst_opts().udp(5353, 53).payload(12))});
    shapes.push_back({"eth/vlan/ipv4/udp/payload",
                      std::move(PacketBuilder().eth().vlan(30).ipv4("10.0.0.1", "10.0.0.2")
                                    .udp(1, 2).payload(9))});
    shapes.push_back({"eth/ipv6/ah/routing/mobility/tcp/payload",
                      std::move(v6().ah().routing().mobility().tcp(40000, 443).payload(5))});
    shapes.push_back({"eth/ipv4/icmp/payload (ICMP header not read)",
                      std::move(v4().icmp().payload(16))});
    shapes.push_back({"eth/ipv6/tcp pure ACK", std::move(v6().tcp(1, 2, kTcpAck))});

    size_t runs = 0;
    for (const auto& s : shapes) {
        FlowMgrOptions o;
        o.max_pkts = 0xfffe;  // every parsable payload packet is selected
        LOAD_OR_RETURN(fm, o);
        auto full = s.b.build();
        auto spans = s.b.spans();
        // The L4 payload length comes from the IP header, so it is the same
        // for every cut that parses: selected iff the whole frame is.
        auto whole = run(*fm, full);
        ASSERT_TRUE(whole.ok) << whole.error;
        ASSERT_TRUE(whole.r.meta.has_value()) << s.name;
        const bool payload = whole.r.meta->flags & ETC_META_PAYLOAD;
        size_t l4_end = 0;
        for (const auto& sp : spans)
            if (sp.kind == LayerKind::Tcp || sp.kind == LayerKind::Udp) l4_end = sp.end;

        for (size_t cut = 14; cut < full.size(); ++cut) {
            std::vector<uint8_t> f(full.begin(), full.begin() + static_cast<long>(cut));
            SCOPED_TRACE(std::string(s.name) + " cut at " + std::to_string(cut) + "\n" +
                         hex_dump(f));
            int want = -1;
            for (const auto& sp : spans) {
                if (cut >= sp.end) continue;
                want = parse_counter_for(sp.kind);
                if (want >= 0 || sp.kind == LayerKind::Payload || sp.kind == LayerKind::Icmp) break;
            }
            auto ran = run(*fm, f);
            ++runs;
            ASSERT_TRUE(ran.ok) << ran.error;
            EXPECT_EQ(ran.r.action, XDP_PASS);
            EXPECT_EQ(at(ran.delta, ETC_CNT_RX), 1u);
            uint64_t fails = 0;
            for (int i = ETC_CNT_PARSE_TRUNC_ETH; i <= ETC_CNT_PARSE_TRUNC_UDP; ++i)
                fails += at(ran.delta, i);
            if (want >= 0) {
                EXPECT_EQ(fails, 1u) << describe(ran.delta);
                EXPECT_EQ(at(ran.delta, want), 1u)
                    << "want " << counter_name(want) << ", got" << describe(ran.delta);
                EXPECT_FALSE(ran.r.meta.has_value());
                continue;
            }
            EXPECT_EQ(fails, 0u) << describe(ran.delta);
            ASSERT_TRUE(ran.r.meta.has_value()) << "parsable cut not tracked";
            const etc_meta& m = *ran.r.meta;
            EXPECT_EQ(m.orig_len, cut);
            EXPECT_EQ(m.flow_id, whole.r.meta->flow_id);
            EXPECT_EQ(bool(m.flags & ETC_META_SELECTED), payload);
            EXPECT_EQ(at(ran.delta, ETC_CNT_SELECTED), payload ? 1u : 0u);
            EXPECT_EQ(at(ran.delta, ETC_CNT_NOT_SELECTED), payload ? 0u : 1u);
            if (m.flags & ETC_META_SELECTED) {
                EXPECT_GE(cut, l4_end) << "selected a packet whose L4 header is cut";
            }
        }
        auto fl = flows(*fm);
        EXPECT_EQ(fl.size(), 1u) << s.name;
    }
    std::printf("[          ] %zu truncated frames\n", runs);
}

// ---- selection of the first N payload packets ------------------------------

TEST_F(FlowMgrTest, FirstNPayloadPackets) {
    for (uint32_t n : {1u, 3u, 10u}) {
        SCOPED_TRACE("N = " + std::to_string(n));
        FlowMgrOptions o;
        if (n != 10) o.max_pkts = n;  // 10 is the default
        LOAD_OR_RETURN(fm, o);
        auto data = v4_tcp(100).build();
        auto ack = v4_tcp(0, kTcpAck).build();
        uint32_t pkt = 0, payload_pkts = 0;
        for (uint32_t i = 0; i < n + 3; ++i) {
            SCOPED_TRACE("payload packet " + std::to_string(i));
            // A pure ACK before every payload packet: never counts.
            auto a = run(*fm, ack, kT0 + pkt);
            ASSERT_TRUE(a.ok && a.r.meta) << a.error;
            EXPECT_EQ(a.r.meta->flags & ~ETC_META_NEW_FLOW, 0);
            EXPECT_EQ(a.r.meta->pkt_index, pkt);
            EXPECT_EQ(at(a.delta, ETC_CNT_SKIP_NO_PAYLOAD), 1u);
            ++pkt;
            auto d = run(*fm, data, kT0 + pkt);
            ASSERT_TRUE(d.ok && d.r.meta) << d.error;
            const etc_meta& m = *d.r.meta;
            EXPECT_EQ(m.flow_id, a.r.meta->flow_id);
            EXPECT_EQ(m.pkt_index, pkt);
            ++pkt;
            ++payload_pkts;
            if (i < n) {
                EXPECT_EQ(m.flags, kFlagsSel);
                EXPECT_EQ(m.index, i);
                EXPECT_EQ(at(d.delta, ETC_CNT_SELECTED), 1u);
                EXPECT_EQ(at(d.delta, ETC_CNT_XSK_NO_SOCKET), 1u);
            } else {
                EXPECT_EQ(m.flags, ETC_META_PAYLOAD);
                EXPECT_EQ(m.index, kNoIndex);
                EXPECT_EQ(at(d.delta, ETC_CNT_SKIP_BEYOND_N), 1u);
                EXPECT_EQ(at(d.delta, ETC_CNT_NOT_SELECTED), 1u);
                EXPECT_EQ(at(d.delta, ETC_CNT_SELECTED), 0u);
            }
            EXPECT_EQ(d.r.action, XDP_PASS);
        }
        auto fl = flows(*fm);
        ASSERT_EQ(fl.size(), 1u);
        EXPECT_EQ(fl[0].second.packets, pkt);
        EXPECT_EQ(fl[0].second.payload_pkts, payload_pkts);
        EXPECT_EQ(fl[0].second.selected, n);
        auto c = fm->counters();
        ASSERT_TRUE(c.ok());
        EXPECT_EQ(at(*c, ETC_CNT_FLOW_NEW), 1u);
        EXPECT_EQ(at(*c, ETC_CNT_SELECTED), n);
        EXPECT_EQ(at(*c, ETC_CNT_SKIP_BEYOND_N), 3u);
    }
}

// ---- directions, VLANs, families ----------------------------------------------

struct Dir {
    std::vector<uint8_t> frame;
    bool reply;
    bool payload;
};

void check_conversation(FlowManager& fm, const std::vector<Dir>& seq, uint8_t family) {
    uint64_t id = 0;
    uint16_t selected = 0;
    for (size_t i = 0; i < seq.size(); ++i) {
        SCOPED_TRACE("packet " + std::to_string(i) + "\n" + hex_dump(seq[i].frame));
        auto r = run(fm, seq[i].frame, kT0 + i * kSec);
        ASSERT_TRUE(r.ok && r.r.meta) << r.error;
        const etc_meta& m = *r.r.meta;
        if (i == 0) id = m.flow_id;
        EXPECT_EQ(m.flow_id, id) << "both directions must map to one flow";
        EXPECT_EQ(bool(m.flags & ETC_META_DIR_REPLY), seq[i].reply);
        EXPECT_EQ(bool(m.flags & ETC_META_NEW_FLOW), i == 0);
        EXPECT_EQ(bool(m.flags & ETC_META_SELECTED), seq[i].payload);
        if (seq[i].payload) {
            EXPECT_EQ(m.index, selected++);
        }
        EXPECT_EQ(m.ts_ns, kT0 + i * kSec);
    }
    auto fl = flows(fm);
    ASSERT_EQ(fl.size(), 1u);
    EXPECT_EQ(fl[0].first.family, family);
    EXPECT_EQ(fl[0].second.packets, seq.size());
    EXPECT_EQ(fl[0].second.selected, selected);
    EXPECT_EQ(fl[0].second.first_ns, kT0);
    EXPECT_EQ(fl[0].second.last_ns, kT0 + (seq.size() - 1) * kSec);
}

TEST_F(FlowMgrTest, BothDirectionsOneFlowIpv4) {
    LOAD_OR_RETURN(fm, FlowMgrOptions{});
    auto c2s = [](uint8_t fl, size_t n) {
        auto b = PacketBuilder().eth(kMacA, kMacB).ipv4("192.0.2.10", "192.0.2.1");
        b.tcp(51000, 80, fl);
        if (n) b.payload(n);
        return b.build();
    };
    auto s2c = [](uint8_t fl, size_t n) {
        auto b = PacketBuilder().eth(kMacB, kMacA).ipv4("192.0.2.1", "192.0.2.10");
        b.tcp(80, 51000, fl);
        if (n) b.payload(n);
        return b.build();
    };
    // The client is the larger address: the first packet's canonical
    // direction is 1, and DIR_REPLY is relative to it, not to the key order.
    check_conversation(*fm,
                       {{c2s(kTcpSyn, 0), false, false},
                        {s2c(kTcpSyn | kTcpAck, 0), true, false},
                        {c2s(kTcpAck, 0), false, false},
                        {c2s(kTcpAck | kTcpPsh, 300), false, true},
                        {s2c(kTcpAck | kTcpPsh, 1200), true, true},
                        {s2c(kTcpAck | kTcpPsh, 1200), true, true},
                        {c2s(kTcpAck, 0), false, false},
                        {c2s(kTcpFin | kTcpAck, 0), false, false},
                        {s2c(kTcpFin | kTcpAck, 0), true, false}},
                       4);
    auto fl = flows(*fm);
    ASSERT_EQ(fl.size(), 1u);
    EXPECT_EQ(fl[0].second.first_dir, 1);
    EXPECT_EQ(fl[0].first.port_a, 80);
    EXPECT_EQ(fl[0].first.port_b, 51000);
}

TEST_F(FlowMgrTest, BothDirectionsOneFlowIpv6AndSameAddress) {
    {
        LOAD_OR_RETURN(fm, FlowMgrOptions{});
        auto a = [](size_t n) {
            return v6().udp(5353, 53).payload(n).build();
        };
        auto b = [](size_t n) {
            return PacketBuilder().eth().ipv6("2001:db8::2", "2001:db8::1").udp(53, 5353)
                .payload(n).build();
        };
        check_conversation(*fm, {{a(30), false, true}, {b(90), true, true}, {a(30), false, true}},
                           6);
        auto fl = flows(*fm);
        ASSERT_EQ(fl.size(), 1u);
        EXPECT_EQ(fl[0].second.first_dir, 0);
    }
    {
        // Same address both ends (loopback-like): ports order the endpoints.
        LOAD_OR_RETURN(fm, FlowMgrOptions{});
        auto a = PacketBuilder().eth().ipv4("127.0.0.1", "127.0.0.1").tcp(5000, 80).payload(5)
                     .build();
        auto b = PacketBuilder().eth().ipv4("127.0.0.1", "127.0.0.1").tcp(80, 5000).payload(5)
                     .build();
        check_conversation(*fm, {{a, false, true}, {b, true, true}}, 4);
    }
    {
        // ICMP: echo and reply share the flow (proto + addresses).
        LOAD_OR_RETURN(fm, FlowMgrOptions{});
        auto req = v4().icmp(8, 0, 1, 1).build();
        auto rep = PacketBuilder().eth().ipv4("10.0.0.2", "10.0.0.1").icmp(0, 0, 1, 1).build();
        auto req2 = v4().icmp(8, 0, 2, 9).build();  // other id/seq: same flow
        check_conversation(*fm, {{req, false, true}, {rep, true, true}, {req2, false, true}}, 4);
    }
}

TEST_F(FlowMgrTest, VlanAndFamilyMakeDifferentFlows) {
    LOAD_OR_RETURN(fm, FlowMgrOptions{});
    auto with_vlans = [](std::vector<std::pair<uint16_t, uint16_t>> tags, uint8_t pcp = 0) {
        PacketBuilder b;
        b.eth();
        for (auto [vid, tpid] : tags) b.vlan(vid, tpid, pcp);
        b.ipv4("10.0.0.1", "10.0.0.2").tcp(40000, 443).payload(10);
        return b.build();
    };
    std::vector<std::vector<uint8_t>> distinct = {
        with_vlans({}),
        with_vlans({{100, kTpidDot1Q}}),
        with_vlans({{200, kTpidDot1Q}}),
        with_vlans({{100, kTpidQinQ}, {200, kTpidDot1Q}}),
        with_vlans({{200, kTpidQinQ}, {100, kTpidDot1Q}}),
        v4().udp(40000, 443).payload(10).build(),
        PacketBuilder().eth().ipv6("::ffff:10.0.0.1", "::ffff:10.0.0.2").tcp(40000, 443)
            .payload(10).build(),
    };
    std::vector<uint64_t> ids;
    for (size_t i = 0; i < distinct.size(); ++i) {
        SCOPED_TRACE("frame " + std::to_string(i) + "\n" + hex_dump(distinct[i]));
        auto r = run(*fm, distinct[i]);
        ASSERT_TRUE(r.ok && r.r.meta) << r.error;
        EXPECT_EQ(r.r.meta->flags, kFlagsSelNew);
        EXPECT_EQ(r.r.meta->index, 0);
        ids.push_back(r.r.meta->flow_id);
    }
    auto sorted = ids;
    std::sort(sorted.begin(), sorted.end());
    EXPECT_EQ(std::unique(sorted.begin(), sorted.end()), sorted.end()) << "flow ids repeat";
    EXPECT_EQ(flows(*fm).size(), distinct.size());

    // The key holds VIDs only: the TPID and the priority bits do not split a flow.
    auto same1 = run(*fm, with_vlans({{100, kTpidQinQ}}, 7));
    ASSERT_TRUE(same1.ok && same1.r.meta);
    EXPECT_EQ(same1.r.meta->flow_id, ids[1]);
    EXPECT_EQ(same1.r.meta->index, 1);
    // An untagged frame and a priority-tagged one (VID 0) share a key.
    auto prio = run(*fm, with_vlans({{0, kTpidDot1Q}}));
    ASSERT_TRUE(prio.ok && prio.r.meta);
    EXPECT_EQ(prio.r.meta->flow_id, ids[0]);
    EXPECT_EQ(flows(*fm).size(), distinct.size());
}

// ---- idle expiry ----------------------------------------------------------------

TEST_F(FlowMgrTest, IdleExpiryRestartsTheFlow) {
    FlowMgrOptions o;
    o.idle_timeout_s = 2;
    o.max_pkts = 2;
    LOAD_OR_RETURN(fm, o);
    auto data = v4_tcp(50).build();
    auto reply = PacketBuilder().eth().ipv4("10.0.0.2", "10.0.0.1").tcp(443, 40000).payload(50)
                     .build();
    auto p1 = run(*fm, data, kT0);
    ASSERT_TRUE(p1.ok && p1.r.meta);
    EXPECT_EQ(p1.r.meta->flags, kFlagsSelNew);
    // Idle exactly the timeout: still the same flow.
    auto p2 = run(*fm, reply, kT0 + 2 * kSec);
    ASSERT_TRUE(p2.ok && p2.r.meta);
    EXPECT_EQ(p2.r.meta->flow_id, p1.r.meta->flow_id);
    EXPECT_EQ(p2.r.meta->flags, kFlagsSel | ETC_META_DIR_REPLY);
    EXPECT_EQ(p2.r.meta->index, 1);
    auto p3 = run(*fm, data, kT0 + 3 * kSec);
    ASSERT_TRUE(p3.ok && p3.r.meta);
    EXPECT_EQ(p3.r.meta->flags, ETC_META_PAYLOAD);
    EXPECT_EQ(at(p3.delta, ETC_CNT_SKIP_BEYOND_N), 1u);
    // A packet from the past (reordered capture) does not expire anything
    // and does not move last_ns back.
    auto back = run(*fm, data, kT0);
    ASSERT_TRUE(back.ok && back.r.meta);
    EXPECT_EQ(back.r.meta->flow_id, p1.r.meta->flow_id);
    EXPECT_EQ(back.r.meta->ts_ns, kT0);
    EXPECT_EQ(at(back.delta, ETC_CNT_FLOW_EXPIRED), 0u);
    // 2 s after the latest packet (kT0 + 3 s), not after the reordered one.
    auto same = run(*fm, data, kT0 + 5 * kSec);
    ASSERT_TRUE(same.ok && same.r.meta);
    EXPECT_EQ(same.r.meta->flow_id, p1.r.meta->flow_id) << "reordered packet shortened idle time";
    EXPECT_EQ(at(same.delta, ETC_CNT_FLOW_EXPIRED), 0u);
    // Idle 2 s + 1 ns: a fresh flow, first direction now the reply's.
    uint64_t t4 = kT0 + 7 * kSec + 1;
    auto p4 = run(*fm, reply, t4);
    ASSERT_TRUE(p4.ok && p4.r.meta);
    EXPECT_NE(p4.r.meta->flow_id, p1.r.meta->flow_id);
    EXPECT_EQ(p4.r.meta->flags, kFlagsSelNew);
    EXPECT_EQ(p4.r.meta->index, 0);
    EXPECT_EQ(p4.r.meta->pkt_index, 0u);
    EXPECT_EQ(at(p4.delta, ETC_CNT_FLOW_EXPIRED), 1u);
    EXPECT_EQ(at(p4.delta, ETC_CNT_FLOW_NEW), 0u);
    auto p5 = run(*fm, data, t4 + kSec);
    ASSERT_TRUE(p5.ok && p5.r.meta);
    EXPECT_EQ(p5.r.meta->flow_id, p4.r.meta->flow_id);
    EXPECT_EQ(p5.r.meta->flags, kFlagsSel | ETC_META_DIR_REPLY);
    EXPECT_EQ(p5.r.meta->index, 1);
    auto fl = flows(*fm);
    ASSERT_EQ(fl.size(), 1u);
    const auto& v = fl[0].second;
    EXPECT_EQ(v.flow_id, p4.r.meta->flow_id);
    EXPECT_EQ(v.packets, 2u);
    EXPECT_EQ(v.payload_pkts, 2u);
    EXPECT_EQ(v.selected, 2u);
    EXPECT_EQ(v.bytes, reply.size() + data.size());
    EXPECT_EQ(v.first_ns, t4);
    EXPECT_EQ(v.last_ns, t4 + kSec);
    EXPECT_EQ(v.first_dir, 1);
}

TEST_F(FlowMgrTest, LiveTimeWithoutReplayHeader) {
    LOAD_OR_RETURN(fm, FlowMgrOptions{});
    auto f = v4_tcp(20).build();
    auto r = run(*fm, f, 0);
    ASSERT_TRUE(r.ok && r.r.meta) << r.error;
    EXPECT_EQ(r.r.meta->flags, kFlagsSelNew);
    EXPECT_GT(r.r.meta->ts_ns, 0u);  // ktime
    EXPECT_EQ(r.r.meta->orig_len, f.size());
    auto r2 = run(*fm, f, 0);
    ASSERT_TRUE(r2.ok && r2.r.meta);
    EXPECT_EQ(r2.r.meta->flow_id, r.r.meta->flow_id);
    EXPECT_GE(r2.r.meta->ts_ns, r.r.meta->ts_ns);
    EXPECT_EQ(r2.r.meta->index, 1);
}

// Live (no replay header): only selected packets get metadata unless
// meta_all asks for it on every tracked packet; the table counts them all.
TEST_F(FlowMgrTest, LiveMetadataOnSelectedPacketsUnlessMetaAll) {
    for (bool all : {false, true}) {
        SCOPED_TRACE(all ? "meta_all" : "default");
        FlowMgrOptions o;
        o.max_pkts = 2;
        o.meta_all = all;
        LOAD_OR_RETURN(fm, o);
        auto data = v4_tcp(20).build();
        auto ack = v4_tcp(0, kTcpAck).build();
        // data, data (selected), data (beyond N), ack (no payload)
        const std::vector<std::pair<const std::vector<uint8_t>*, bool>> seq{
            {&data, true}, {&data, true}, {&data, false}, {&ack, false}};
        uint64_t flow_id = 0;
        for (size_t i = 0; i < seq.size(); ++i) {
            SCOPED_TRACE("packet " + std::to_string(i));
            auto r = run(*fm, *seq[i].first, 0);
            ASSERT_TRUE(r.ok) << r.error;
            if (!seq[i].second && !all) {
                EXPECT_FALSE(r.r.meta.has_value());
                EXPECT_EQ(at(r.delta, ETC_CNT_META_FAIL), 0u);
                continue;
            }
            ASSERT_TRUE(r.r.meta.has_value());
            const etc_meta& m = *r.r.meta;
            if (i == 0) flow_id = m.flow_id;
            EXPECT_EQ(m.flow_id, flow_id);
            EXPECT_EQ(m.pkt_index, i);
            EXPECT_EQ(bool(m.flags & ETC_META_SELECTED), seq[i].second);
            EXPECT_EQ(m.index, seq[i].second ? i : kNoIndex);
            EXPECT_GT(m.ts_ns, 0u);  // CLOCK_MONOTONIC, fine or coarse
        }
        auto fl = flows(*fm);
        ASSERT_EQ(fl.size(), 1u);
        EXPECT_EQ(fl[0].second.packets, 4u);
        EXPECT_EQ(fl[0].second.payload_pkts, 3u);
        EXPECT_EQ(fl[0].second.selected, 2u);
        EXPECT_EQ(fl[0].second.bytes, 3 * data.size() + ack.size());
    }
}

// Live packets (no replay header) expire on the flow table's own clock
// (jiffies times ns_per_tick, or the coarse clock): wrong units would keep
// the flow, or restart it at once.
TEST_F(FlowMgrTest, LiveIdleExpiryOnTheTableClock) {
    FlowMgrOptions o;
    o.idle_timeout_s = 1;
    o.meta_all = true;
    LOAD_OR_RETURN(fm, o);
    auto f = v4_tcp(20).build();
    auto a = run(*fm, f, 0);
    auto b = run(*fm, f, 0);
    ASSERT_TRUE(a.ok && a.r.meta && b.ok && b.r.meta) << a.error << b.error;
    EXPECT_EQ(b.r.meta->flow_id, a.r.meta->flow_id);
    EXPECT_EQ(at(b.delta, ETC_CNT_FLOW_EXPIRED), 0u);
    std::this_thread::sleep_for(std::chrono::milliseconds(2300));  // > 1 s idle, one tick of slack
    auto c = run(*fm, f, 0);
    ASSERT_TRUE(c.ok && c.r.meta) << c.error;
    EXPECT_EQ(at(c.delta, ETC_CNT_FLOW_EXPIRED), 1u);
    EXPECT_NE(c.r.meta->flow_id, a.r.meta->flow_id);
    EXPECT_TRUE(c.r.meta->flags & ETC_META_NEW_FLOW);
}

TEST_F(FlowMgrTest, RepeatRunsCountEveryRun) {
    LOAD_OR_RETURN(fm, FlowMgrOptions{});
    auto f = v4_tcp(20).build();
    auto r = run(*fm, f, 0, 25);
    ASSERT_TRUE(r.ok) << r.error;
    EXPECT_EQ(at(r.delta, ETC_CNT_RX), 25u);
    EXPECT_EQ(at(r.delta, ETC_CNT_SELECTED), 10u);
    EXPECT_EQ(at(r.delta, ETC_CNT_SKIP_BEYOND_N), 15u);
    auto fl = flows(*fm);
    ASSERT_EQ(fl.size(), 1u);
    EXPECT_EQ(fl[0].second.packets, 25u);
}

// ---- inline delivery -------------------------------------------------------------

TEST_F(FlowMgrTest, InlineRingRecords) {
    for (uint32_t snap : {64u, 1514u, 2048u}) {
        SCOPED_TRACE("snap_len " + std::to_string(snap));
        FlowMgrOptions o;
        o.delivery = ETC_DELIVERY_INLINE;
        o.snap_len = snap;
        o.max_pkts = 6;
        LOAD_OR_RETURN(fm, o);
        std::vector<std::vector<uint8_t>> frames = {
            v4_tcp(6).build(),                              // 60
            v4_tcp(10).build(),                             // 64
            v4_tcp(11).build(),                             // 65
            v4_tcp(0, kTcpAck).build(),                     // not selected: no record
            v6_udp(1400).build(),                           // another flow
            v4_tcp(1460).build(),                           // 1514
            v4_tcp(3000).build(),                           // > 2048 bytes, one page
            v4_tcp(9000 - 54).build(),                      // jumbo: multi-buffer
            v4_tcp(5).build(),                              // 7th payload packet: beyond N
        };
        std::vector<etc_meta> want_meta;
        std::vector<size_t> want_frame;
        for (size_t i = 0; i < frames.size(); ++i) {
            SCOPED_TRACE("frame " + std::to_string(i));
            auto r = run(*fm, frames[i]);
            ASSERT_TRUE(r.ok && r.r.meta) << r.error;
            EXPECT_EQ(r.r.action, XDP_PASS);
            EXPECT_EQ(at(r.delta, ETC_CNT_XSK_NO_SOCKET), 0u);
            EXPECT_EQ(at(r.delta, ETC_CNT_RINGBUF_FULL), 0u);
            if (r.r.meta->flags & ETC_META_SELECTED) {
                want_meta.push_back(*r.r.meta);
                want_frame.push_back(i);
            }
        }
        ASSERT_EQ(want_meta.size(), 7u);  // 6 of the v4 flow (N = 6), 1 of the v6 flow
        size_t got = 0;
        auto n = fm->drain_ring([&](const etc_ring_hdr& h, std::span<const uint8_t> data) {
            SCOPED_TRACE("ring record " + std::to_string(got));
            ASSERT_LT(got, want_meta.size());
            const etc_meta& w = want_meta[got];
            const auto& f = frames[want_frame[got]];
            EXPECT_EQ(std::memcmp(&h.meta, &w, sizeof(w)), 0) << "ring meta differs from the "
                                                                 "packet's metadata";
            EXPECT_EQ(h.meta.flow_id, w.flow_id);
            EXPECT_EQ(h.meta.index, w.index);
            EXPECT_EQ(h.meta.orig_len, f.size());
            size_t cap = std::min<size_t>(snap, f.size());
            EXPECT_EQ(h.cap_len, cap);
            ASSERT_EQ(data.size(), cap);
            EXPECT_TRUE(std::equal(data.begin(), data.end(), f.begin()))
                << "ring data is not the frame's first " << cap << " bytes";
            ++got;
        });
        ASSERT_OK(n);
        EXPECT_EQ(*n, static_cast<int>(want_meta.size()));
        EXPECT_EQ(got, want_meta.size());
    }
}

// ---- large frames (xdp.frags) -----------------------------------------------------

TEST_F(FlowMgrTest, LargeMultiBufferFrames) {
    LOAD_OR_RETURN(fm, FlowMgrOptions{});
    uint64_t bytes4 = 0;
    for (size_t total : {9000u, 60000u}) {
        auto f = v4_tcp(total - 54).build();
        ASSERT_EQ(f.size(), total);
        SCOPED_TRACE("ipv4 frame of " + std::to_string(total) + "\n" + hex_dump(f, 64));
        auto r = run(*fm, f);
        ASSERT_TRUE(r.ok && r.r.meta) << r.error;
        EXPECT_EQ(r.r.action, XDP_PASS);
        EXPECT_EQ(r.r.meta->orig_len, total);
        EXPECT_TRUE(r.r.meta->flags & ETC_META_SELECTED);
        bytes4 += total;
        auto g = v6_udp(total - 62).build();
        ASSERT_EQ(g.size(), total);
        auto r6 = run(*fm, g);
        ASSERT_TRUE(r6.ok && r6.r.meta) << r6.error;
        EXPECT_EQ(r6.r.meta->orig_len, total);
        EXPECT_TRUE(r6.r.meta->flags & ETC_META_SELECTED);
    }
    for (const auto& [k, v] : flows(*fm)) {
        if (k.family == 4) {
            EXPECT_EQ(v.bytes, bytes4);
        }
    }
}

// ---- flow table values after a sequence ---------------------------------------------

TEST_F(FlowMgrTest, FlowTableValues) {
    FlowMgrOptions o;
    o.max_pkts = 3;
    LOAD_OR_RETURN(fm, o);
    struct P {
        std::vector<uint8_t> f;
        uint64_t ts;
    };
    auto c = [](uint8_t fl, size_t n) {
        auto b = v4();
        b.tcp(40000, 443, fl);
        if (n) b.payload(n);
        return b.build();
    };
    auto s = [](uint8_t fl, size_t n) {
        auto b = PacketBuilder().eth().ipv4("10.0.0.2", "10.0.0.1");
        b.tcp(443, 40000, fl);
        if (n) b.payload(n);
        return b.build();
    };
    std::vector<P> seq = {
        {c(kTcpSyn, 0), kT0 + 5},
        {s(kTcpSyn | kTcpAck, 0), kT0 + 100},
        {c(kTcpAck, 0), kT0 + 200},
        {c(kTcpAck | kTcpPsh, 517), kT0 + 300},
        {s(kTcpAck | kTcpPsh, 1400), kT0 + 400},
        {s(kTcpAck | kTcpPsh, 1400), kT0 + 500},
        {c(kTcpAck, 0), kT0 + 600},
        {s(kTcpAck | kTcpPsh, 90), kT0 + 700},
        {c(kTcpRst, 0), kT0 + 900},
    };
    uint64_t bytes = 0;
    for (const auto& p : seq) {
        auto r = run(*fm, p.f, p.ts);
        ASSERT_TRUE(r.ok && r.r.meta) << r.error;
        bytes += p.f.size();
    }
    // a different flow, untouched by the sequence
    auto other = run(*fm, v4().udp(1, 2).payload(3).build(), kT0 + 50);
    ASSERT_TRUE(other.ok && other.r.meta);
    auto fl = flows(*fm);
    ASSERT_EQ(fl.size(), 2u);
    bool seen = false;
    for (const auto& [k, v] : fl) {
        if (k.proto != kProtoTcp) {
            EXPECT_EQ(v.packets, 1u);
            EXPECT_EQ(v.first_ns, kT0 + 50);
            continue;
        }
        seen = true;
        EXPECT_EQ(k.family, 4);
        EXPECT_EQ(k.port_a, 40000);
        EXPECT_EQ(k.port_b, 443);
        EXPECT_EQ(k.addr_a[3], 1);
        EXPECT_EQ(k.addr_b[3], 2);
        EXPECT_EQ(v.packets, 9u);
        EXPECT_EQ(v.payload_pkts, 4u);
        EXPECT_EQ(v.selected, 3u);
        EXPECT_EQ(v.bytes, bytes);
        EXPECT_EQ(v.first_ns, kT0 + 5);
        EXPECT_EQ(v.last_ns, kT0 + 900);
        EXPECT_EQ(v.first_dir, 0);
        EXPECT_NE(v.flow_id, other.r.meta->flow_id);
    }
    EXPECT_TRUE(seen);
    auto cn = fm->counters();
    ASSERT_TRUE(cn.ok());
    EXPECT_EQ(at(*cn, ETC_CNT_RX), 10u);
    EXPECT_EQ(at(*cn, ETC_CNT_FLOW_NEW), 2u);
    EXPECT_EQ(at(*cn, ETC_CNT_SELECTED), 4u);
    EXPECT_EQ(at(*cn, ETC_CNT_SKIP_NO_PAYLOAD), 5u);
    EXPECT_EQ(at(*cn, ETC_CNT_SKIP_BEYOND_N), 1u);
}

// ---- the invariant check itself can fail ---------------------------------------------

TEST(FlowMgrInvariants, DetectsBrokenCounters) {
    Counters c{};
    c[ETC_CNT_RX] = 2;
    c[ETC_CNT_SELECTED] = 1;
    c[ETC_CNT_VERDICT_PASS] = 2;
    ::testing::TestPartResultArray failures;
    {
        ::testing::ScopedFakeTestPartResultReporter reporter(
            ::testing::ScopedFakeTestPartResultReporter::INTERCEPT_ONLY_CURRENT_THREAD, &failures);
        expect_invariants(c);
    }
    EXPECT_EQ(failures.size(), 1);
    c[ETC_CNT_PARSE_FRAGMENT] = 1;
    expect_invariants(c);
}

}  // namespace
}  // namespace etcpipe::test
