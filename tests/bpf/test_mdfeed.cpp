// Tests of the market-data feed filter (bpf/mdfeed.bpf.c) through
// etcpipe::md::FeedProgram: BPF_PROG_TEST_RUN of frames built here, one
// real attach on a veth pair in namespaces the test creates and removes, and
// the filter-string parsers. Loading BPF needs root (CAP_BPF,
// CAP_NET_ADMIN); without it those tests skip with the reason. The parser
// tests run anywhere.
//
// After every run the counter invariants of include/etcpipe/mdfeed.h are
// checked on the totals:
//   RX = REDIRECT_UDP + REDIRECT_TCP + PASS_NOT_FEED + PASS_NO_SOCKET + Σ parse outcomes
//   RX = Σ VERDICT_*,  VERDICT_REDIRECT = REDIRECT_UDP + REDIRECT_TCP
//   Σ MATCH_* = REDIRECT_UDP + REDIRECT_TCP + PASS_NO_SOCKET,  META_FAIL ≤ Σ MATCH_*
//
// BPF_PROG_TEST_RUN and redirects: with an empty XSKMAP slot the program's
// bpf_redirect_map falls back to XDP_PASS (counted PASS_NO_SOCKET), so the
// table sees every feed packet pass with its md_meta in front. With a bound
// AF_XDP socket in the slot the verdict is XDP_REDIRECT (the test run does
// not deliver it); the real delivery is the veth test's.
//
// Behaviour pinned down here:
// - Groups are looked up before ports: UDP to 239.1.1.1:5000 with group
//   239.1.1.1:6000 and port 5000 configured matches the port.
// - Lengths come from the IP header: a frame cut inside the payload still
//   matches (as a multi-buffer frame's linear part would); cuts inside any
//   header are parse failures, passed untouched.
// - A first fragment matches; later fragments pass as PASS_FRAGMENT.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <linux/bpf.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "common/netns.hpp"
#include "common/test_run.hpp"
#include "common/xdp_attach.hpp"
#include "common/xsk.hpp"
#include "etcpipe/mdfeed.h"
#include "mdfeed/mdfeed_attach.hpp"
#include "packet_builder.hpp"
#include "tests/common/expect_ok.hpp"
#include "tests/common/skip.hpp"

namespace etcpipe::test {
namespace {

using md::Counters;
using md::FeedFilter;
using md::FeedProgram;

uint64_t mono_ns() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

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

uint64_t at(const Counters& c, int i) { return c[static_cast<size_t>(i)]; }

std::string describe(const Counters& c) {
    std::string s;
    for (int i = 0; i < MD_CNT_MAX; ++i)
        if (at(c, i)) s += std::string(" ") + md::counter_name(i) + "=" + std::to_string(at(c, i));
    return s.empty() ? " (none)" : s;
}

uint64_t parse_outcomes(const Counters& c) {
    uint64_t n = 0;
    for (int i = MD_CNT_PARSE_FIRST; i <= MD_CNT_PARSE_LAST; ++i) n += at(c, i);
    return n;
}

uint64_t matches(const Counters& c) {
    return at(c, MD_CNT_MATCH_UDP_PORT) + at(c, MD_CNT_MATCH_GROUP) + at(c, MD_CNT_MATCH_TCP_FROM_SERVER) +
           at(c, MD_CNT_MATCH_TCP_TO_SERVER);
}

void expect_invariants(const Counters& c) {
    EXPECT_EQ(at(c, MD_CNT_RX), at(c, MD_CNT_REDIRECT_UDP) + at(c, MD_CNT_REDIRECT_TCP) +
                                    at(c, MD_CNT_PASS_NOT_FEED) + at(c, MD_CNT_PASS_NO_SOCKET) +
                                    parse_outcomes(c))
        << "RX = Σ outcomes; counters:" << describe(c);
    EXPECT_EQ(at(c, MD_CNT_RX), at(c, MD_CNT_VERDICT_PASS) + at(c, MD_CNT_VERDICT_DROP) +
                                    at(c, MD_CNT_VERDICT_REDIRECT) + at(c, MD_CNT_VERDICT_ABORTED))
        << "RX = Σ VERDICT_*; counters:" << describe(c);
    EXPECT_EQ(at(c, MD_CNT_VERDICT_REDIRECT), at(c, MD_CNT_REDIRECT_UDP) + at(c, MD_CNT_REDIRECT_TCP))
        << describe(c);
    EXPECT_EQ(matches(c), at(c, MD_CNT_REDIRECT_UDP) + at(c, MD_CNT_REDIRECT_TCP) + at(c, MD_CNT_PASS_NO_SOCKET))
        << "Σ MATCH_* = feed packets; counters:" << describe(c);
    EXPECT_LE(at(c, MD_CNT_META_FAIL), matches(c)) << describe(c);
    EXPECT_EQ(at(c, MD_CNT_VERDICT_DROP), 0u) << "the program never drops";
    EXPECT_EQ(at(c, MD_CNT_VERDICT_ABORTED), 0u);
}

struct Ran {
    bool ok = false;
    md::TestRun r;
    Counters delta{};
    uint64_t t_before = 0, t_after = 0;
    std::string error;
};

Ran run(FeedProgram& p, const std::vector<uint8_t>& frame, uint32_t repeat = 1) {
    Ran out;
    auto before = p.counters();
    EXPECT_OK(before);
    out.t_before = mono_ns();
    auto r = p.test_run(frame, repeat);
    out.t_after = mono_ns();
    auto after = p.counters();
    EXPECT_OK(after);
    if (!before.ok() || !after.ok()) return out;
    for (size_t i = 0; i < out.delta.size(); ++i) out.delta[i] = (*after)[i] - (*before)[i];
    expect_invariants(*after);
    if (!r.ok()) {
        out.error = r.error().message();
        return out;
    }
    out.ok = true;
    out.r = std::move(*r);
    return out;
}

// ---- filters the table uses --------------------------------------------------

md::McastGroup group(const char* text) {
    auto g = md::parse_group(text);
    if (!g) throw std::invalid_argument(g.error().message());
    return *g;
}

md::TcpServer server(const char* text) {
    auto s = md::parse_tcp_server(text);
    if (!s) throw std::invalid_argument(s.error().message());
    return *s;
}

// Rule ids are positions: ports 5000 → 1, 5001 → 2; groups 239.1.1.1:6000 → 1,
// 239.1.1.2 (any) → 2, [ff15::1]:7000 → 3, ff02::5 (any) → 4; servers
// 10.0.0.1:9000 → 1, [2001:db8::1]:9000 → 2, 10.0.0.9 (any) → 3.
FeedFilter full_filter(bool both = false) {
    FeedFilter f;
    f.udp_ports = {5000, 5001};
    f.groups = {group("239.1.1.1:6000"), group("239.1.1.2"), group("[ff15::1]:7000"), group("ff02::5")};
    f.tcp_servers = {server("10.0.0.1:9000"), server("[2001:db8::1]:9000"), server("10.0.0.9")};
    f.tcp_both_directions = both;
    return f;
}

const std::map<std::string, FeedFilter>& filters() {
    static const std::map<std::string, FeedFilter> m = [] {
        std::map<std::string, FeedFilter> f;
        f["full"] = full_filter();
        f["both"] = full_filter(true);
        FeedFilter groups;
        groups.groups = full_filter().groups;
        f["groups-only"] = groups;
        FeedFilter ports;
        ports.udp_ports = {5000};
        f["ports-only"] = ports;
        FeedFilter tcp;
        tcp.tcp_servers = full_filter().tcp_servers;
        f["tcp-only"] = tcp;
        return f;
    }();
    return m;
}

class MdFeedTest : public ::testing::Test {
  protected:
    void SetUp() override {
        SKIP_UNLESS_ROOT("for BPF_PROG_TEST_RUN of an XDP program (CAP_BPF, CAP_NET_ADMIN)");
    }

    // Loads the program; skips without privilege, fails on any other error.
    void load(const FeedFilter& f, std::optional<FeedProgram>& p) {
        auto r = FeedProgram::load(f);
        if (!r.ok()) {
            const Error& e = r.error();
            if (e.code == EPERM) GTEST_SKIP() << "missing privilege to load BPF: " << e.message();
            FAIL() << "FeedProgram::load: " << e.message();
        }
        p.emplace(std::move(r).value());
    }
};

#define LOAD_OR_RETURN(p, filter)      \
    std::optional<FeedProgram> p;      \
    load(filter, p);                   \
    if (!p || HasFatalFailure() || IsSkipped()) return

// ---- the table -----------------------------------------------------------------

struct Case {
    std::string name;
    std::string filter = "full";
    std::vector<uint8_t> frame;
    int outcome = MD_CNT_PASS_NOT_FEED;  // the outcome counter that moves
    // feed packets only:
    uint8_t match = MD_MATCH_NONE;
    uint32_t rule = 0;
    uint16_t port = 0;
    uint8_t family = 4;
    uint16_t vlan0 = 0, vlan1 = 0;
    uint16_t flags = 0;
    size_t payload_off = 0;
    uint16_t payload_len = 0;
};

int match_counter(uint8_t m) {
    switch (m) {
    case MD_MATCH_UDP_PORT: return MD_CNT_MATCH_UDP_PORT;
    case MD_MATCH_GROUP: return MD_CNT_MATCH_GROUP;
    case MD_MATCH_TCP_FROM_SERVER: return MD_CNT_MATCH_TCP_FROM_SERVER;
    case MD_MATCH_TCP_TO_SERVER: return MD_CNT_MATCH_TCP_TO_SERVER;
    }
    return -1;
}

// Where the L4 payload starts: the end of the TCP/UDP header.
size_t l4_end(const PacketBuilder& b) {
    size_t end = 0;
    for (const auto& s : b.spans())
        if (s.kind == LayerKind::Tcp || s.kind == LayerKind::Udp) end = s.end;
    return end;
}

struct Want {
    uint8_t match;
    uint32_t rule;
    uint16_t port;
    uint16_t payload_len;
    uint16_t flags = 0;
    uint16_t vlan0 = 0, vlan1 = 0;
};

Case feed(std::string name, const PacketBuilder& b, Want w, std::string filter = "full") {
    Case c;
    c.name = std::move(name);
    c.filter = std::move(filter);
    c.frame = b.build();
    c.outcome = MD_CNT_PASS_NO_SOCKET;
    c.match = w.match;
    c.rule = w.rule;
    c.port = w.port;
    c.flags = w.flags;
    c.vlan0 = w.vlan0;
    c.vlan1 = w.vlan1;
    c.payload_len = w.payload_len;
    c.payload_off = l4_end(b);
    for (const auto& s : b.spans())
        if (s.kind == LayerKind::Ipv6) c.family = 6;
    return c;
}

Case other(std::string name, const PacketBuilder& b, int outcome = MD_CNT_PASS_NOT_FEED,
           std::string filter = "full") {
    Case c;
    c.name = std::move(name);
    c.filter = std::move(filter);
    c.frame = b.build();
    c.outcome = outcome;
    return c;
}

PacketBuilder v4(const char* src = "10.0.0.5", const char* dst = "10.0.0.2") {
    return std::move(PacketBuilder().eth().ipv4(src, dst));
}
PacketBuilder v6(const char* src = "2001:db8::5", const char* dst = "2001:db8::2") {
    return std::move(PacketBuilder().eth().ipv6(src, dst));
}
PacketBuilder udp4(const char* dst, uint16_t dport, size_t payload = 100, uint16_t sport = 40000) {
    auto b = v4("10.0.0.5", dst);
    b.udp(sport, dport);
    if (payload) b.payload(payload);
    return b;
}
PacketBuilder udp6(const char* dst, uint16_t dport, size_t payload = 100) {
    auto b = v6("2001:db8::5", dst);
    b.udp(40000, dport);
    if (payload) b.payload(payload);
    return b;
}
PacketBuilder tcp4(const char* src, uint16_t sport, const char* dst, uint16_t dport, size_t payload = 100,
                   uint8_t flags = kTcpAck | kTcpPsh) {
    auto b = v4(src, dst);
    b.tcp(sport, dport, flags);
    if (payload) b.payload(payload);
    return b;
}
PacketBuilder tcp6(const char* src, uint16_t sport, const char* dst, uint16_t dport, size_t payload = 100) {
    auto b = v6(src, dst);
    b.tcp(sport, dport);
    if (payload) b.payload(payload);
    return b;
}

constexpr uint16_t kMc = MD_META_MULTICAST;
constexpr uint16_t kVl = MD_META_VLAN;

std::vector<Case> table() {
    std::vector<Case> t;
    const uint8_t UDP = MD_MATCH_UDP_PORT, GRP = MD_MATCH_GROUP, FROM = MD_MATCH_TCP_FROM_SERVER,
                  TO = MD_MATCH_TCP_TO_SERVER;

    // -- UDP by destination port, any address
    t.push_back(feed("udp4 → port 5000", udp4("10.0.0.2", 5000), {UDP, 1, 5000, 100}));
    t.push_back(feed("udp4 → port 5001", udp4("192.0.2.77", 5001, 1), {UDP, 2, 5001, 1}));
    t.push_back(feed("udp4 → port 5000, no payload", udp4("10.0.0.2", 5000, 0), {UDP, 1, 5000, 0}));
    t.push_back(feed("udp4 → port 5000, padded to 60", std::move(udp4("10.0.0.2", 5000, 1).pad_to(60)),
                     {UDP, 1, 5000, 1}));
    t.push_back(feed("udp4 with IP options → port 5000",
                     std::move(v4().ip_options({1, 1, 1, 0}).udp(1, 5000).payload(7)), {UDP, 1, 5000, 7}));
    t.push_back(feed("udp4 ihl 15 → port 5001",
                     std::move(v4().ip_options(std::vector<uint8_t>(40, 1)).udp(1, 5001).payload(3)),
                     {UDP, 2, 5001, 3}));
    t.push_back(feed("udp6 → port 5001", udp6("2001:db8::2", 5001, 64), {UDP, 2, 5001, 64}));
    t.push_back(feed("udp6 hop-by-hop + dst-opts → port 5000",
                     std::move(v6().hop_by_hop(1).dst_opts().udp(1, 5000).payload(9)), {UDP, 1, 5000, 9}));
    t.push_back(feed("udp6 routing + AH → port 5000",
                     std::move(v6().routing().ah().udp(1, 5000).payload(2)), {UDP, 1, 5000, 2}));
    t.push_back(other("udp4 → port 5002", udp4("10.0.0.2", 5002)));
    t.push_back(other("udp4 → port 4999", udp4("10.0.0.2", 4999)));
    t.push_back(other("udp4 from port 5000 (source does not count)", udp4("10.0.0.2", 40001, 10, 5000)));
    t.push_back(other("udp6 → port 5002", udp6("2001:db8::2", 5002)));
    t.push_back(other("tcp4 → port 5000 (UDP ports are UDP only)", tcp4("10.0.0.5", 40000, "10.0.0.2", 5000)));

    // -- multicast groups (looked up before ports)
    t.push_back(feed("udp4 → group 239.1.1.1:6000", udp4("239.1.1.1", 6000), {GRP, 1, 6000, 100, kMc}));
    t.push_back(other("udp4 → 239.1.1.1:6001 (group has another port)", udp4("239.1.1.1", 6001)));
    t.push_back(feed("udp4 → 239.1.1.1:5000: group misses, port matches", udp4("239.1.1.1", 5000),
                     {UDP, 1, 5000, 100, kMc}));
    t.push_back(feed("udp4 → group 239.1.1.2, any port (1234)", udp4("239.1.1.2", 1234), {GRP, 2, 1234, 100, kMc}));
    t.push_back(feed("udp4 → group 239.1.1.2, any port (5000 too)", udp4("239.1.1.2", 5000),
                     {GRP, 2, 5000, 100, kMc}));
    t.push_back(other("udp4 → 239.1.1.3:6000 (no such group)", udp4("239.1.1.3", 6000)));
    t.push_back(other("udp4 → unicast 10.0.0.2:6000 (a group's port)", udp4("10.0.0.2", 6000)));
    t.push_back(feed("udp6 → group [ff15::1]:7000", udp6("ff15::1", 7000, 20), {GRP, 3, 7000, 20, kMc}));
    t.push_back(other("udp6 → [ff15::1]:7001", udp6("ff15::1", 7001)));
    t.push_back(feed("udp6 → group ff02::5, any port", udp6("ff02::5", 9), {GRP, 4, 9, 100, kMc}));
    t.push_back(feed("udp6 → ff02::6:5001 (no group, port matches)", udp6("ff02::6", 5001), {UDP, 2, 5001, 100, kMc}));
    t.push_back(other("icmp4 → group 239.1.1.2 (not UDP)", std::move(v4("10.0.0.5", "239.1.1.2").icmp().payload(8))));
    t.push_back(other("groups only: 239.1.1.1:5000 (ports off)", udp4("239.1.1.1", 5000), MD_CNT_PASS_NOT_FEED,
                      "groups-only"));
    t.push_back(feed("groups only: group 239.1.1.1:6000", udp4("239.1.1.1", 6000), {GRP, 1, 6000, 100, kMc},
                     "groups-only"));
    t.push_back(other("ports only: 239.1.1.1:6000 (groups off)", udp4("239.1.1.1", 6000), MD_CNT_PASS_NOT_FEED,
                      "ports-only"));
    t.push_back(feed("ports only: 239.1.1.2:5000", udp4("239.1.1.2", 5000), {UDP, 1, 5000, 100, kMc}, "ports-only"));
    t.push_back(other("tcp only: udp4 → port 5000", udp4("10.0.0.2", 5000), MD_CNT_PASS_NOT_FEED, "tcp-only"));

    // -- VLAN
    t.push_back(feed("vlan 100 udp4 → 5000",
                     std::move(PacketBuilder().eth().vlan(100).ipv4("10.0.0.5", "10.0.0.2").udp(1, 5000).payload(10)),
                     {UDP, 1, 5000, 10, kVl, 100}));
    t.push_back(feed("vlan 0 (priority tag) udp4 → 5000",
                     std::move(PacketBuilder().eth().vlan(0, kTpidDot1Q, 5).ipv4("10.0.0.5", "10.0.0.2").udp(1, 5000)
                                   .payload(10)),
                     {UDP, 1, 5000, 10, kVl, 0}));
    t.push_back(feed("QinQ 88a8/8100 udp6 → group [ff15::1]:7000",
                     std::move(PacketBuilder().eth().vlan(100, kTpidQinQ).vlan(200).ipv6("2001:db8::5", "ff15::1")
                                   .udp(1, 7000).payload(5)),
                     {GRP, 3, 7000, 5, kMc | kVl, 100, 200}));
    t.push_back(feed("QinQ 8100/8100 tcp4 from server",
                     std::move(PacketBuilder().eth().vlan(4095).vlan(1).ipv4("10.0.0.1", "10.0.0.50")
                                   .tcp(9000, 40000).payload(30)),
                     {FROM, 1, 9000, 30, kVl, 4095, 1}));
    t.push_back(other("three tags", std::move(PacketBuilder().eth().vlan(1, kTpidQinQ).vlan(2).vlan(3)
                                                  .ipv4("10.0.0.5", "10.0.0.2").udp(1, 5000).payload(10)),
                      MD_CNT_PARSE_VLAN_DEPTH));
    t.push_back(other("vlan ARP", std::move(PacketBuilder().eth().vlan(5).arp()), MD_CNT_PARSE_NOT_IP));

    // -- TCP servers (mirror port)
    t.push_back(feed("tcp4 from server 10.0.0.1:9000", tcp4("10.0.0.1", 9000, "10.0.0.50", 40000),
                     {FROM, 1, 9000, 100}));
    t.push_back(feed("tcp4 from server, pure ACK", tcp4("10.0.0.1", 9000, "10.0.0.50", 40000, 0, kTcpAck),
                     {FROM, 1, 9000, 0}));
    t.push_back(feed("tcp4 from server, TCP options",
                     std::move(v4("10.0.0.1", "10.0.0.50").tcp(9000, 40000)
                                   .tcp_options({1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2}).payload(12)),
                     {FROM, 1, 9000, 12}));
    t.push_back(other("tcp4 to server 10.0.0.1:9000 (one direction only)", tcp4("10.0.0.50", 40000, "10.0.0.1", 9000)));
    t.push_back(feed("both: tcp4 to server 10.0.0.1:9000", tcp4("10.0.0.50", 40000, "10.0.0.1", 9000),
                     {TO, 1, 9000, 100}, "both"));
    t.push_back(feed("both: tcp4 from server 10.0.0.1:9000", tcp4("10.0.0.1", 9000, "10.0.0.50", 40000),
                     {FROM, 1, 9000, 100}, "both"));
    t.push_back(other("tcp4 from 10.0.0.1:9001 (server has another port)", tcp4("10.0.0.1", 9001, "10.0.0.50", 40000)));
    t.push_back(other("both: tcp4 to 10.0.0.1:9001", tcp4("10.0.0.50", 40000, "10.0.0.1", 9001), MD_CNT_PASS_NOT_FEED,
                      "both"));
    t.push_back(feed("tcp4 from server 10.0.0.9, any port", tcp4("10.0.0.9", 1234, "10.0.0.50", 40000),
                     {FROM, 3, 1234, 100}));
    t.push_back(feed("both: tcp4 to server 10.0.0.9:80", tcp4("10.0.0.50", 40000, "10.0.0.9", 80), {TO, 3, 80, 100},
                     "both"));
    t.push_back(feed("both: server to server: from wins", tcp4("10.0.0.1", 9000, "10.0.0.9", 80), {FROM, 1, 9000, 100},
                     "both"));
    t.push_back(feed("tcp6 from server [2001:db8::1]:9000", tcp6("2001:db8::1", 9000, "2001:db8::50", 40000, 3),
                     {FROM, 2, 9000, 3}));
    t.push_back(other("tcp6 to server [2001:db8::1]:9000", tcp6("2001:db8::50", 40000, "2001:db8::1", 9000)));
    t.push_back(feed("both: tcp6 to server [2001:db8::1]:9000", tcp6("2001:db8::50", 40000, "2001:db8::1", 9000, 3),
                     {TO, 2, 9000, 3}, "both"));
    t.push_back(other("tcp6 from ::ffff:10.0.0.1 (IPv4-mapped: family 6, server's is 4)",
                      tcp6("::ffff:10.0.0.1", 9000, "2001:db8::50", 40000)));
    t.push_back(other("udp4 from server 10.0.0.1:9000 (servers are TCP only)",
                      std::move(v4("10.0.0.1", "10.0.0.50").udp(9000, 40000).payload(10))));
    t.push_back(other("ports only: tcp4 from server", tcp4("10.0.0.1", 9000, "10.0.0.50", 40000), MD_CNT_PASS_NOT_FEED,
                      "ports-only"));

    // -- fragments
    t.push_back(feed("ipv4 first fragment → 5000", std::move(v4().ipv4_frag(0, true).udp(1, 5000).payload(100)),
                     {UDP, 1, 5000, 100}));
    t.push_back(feed("ipv4 DF → 5000", std::move(v4().ipv4_frag(0, false, true).udp(1, 5000).payload(4)),
                     {UDP, 1, 5000, 4}));
    t.push_back(other("ipv4 middle fragment", std::move(v4().ipv4_frag(185, true).payload(1480)), MD_CNT_PASS_FRAGMENT));
    t.push_back(other("ipv4 last fragment of a UDP datagram",
                      std::move(v4().ipv4_frag(370, false).next_proto(kProtoUdp).payload(100)), MD_CNT_PASS_FRAGMENT));
    t.push_back(feed("ipv6 first fragment → group [ff15::1]:7000",
                     std::move(v6("2001:db8::5", "ff15::1").fragment6(0, true).udp(1, 7000).payload(50)),
                     {GRP, 3, 7000, 50, kMc}));
    t.push_back(other("ipv6 later fragment",
                      std::move(v6("2001:db8::5", "ff15::1").fragment6(100, false).next_proto(kProtoUdp).payload(50)),
                      MD_CNT_PASS_FRAGMENT));

    // -- not IP, malformed
    t.push_back(other("ARP", std::move(PacketBuilder().eth().arp()), MD_CNT_PARSE_NOT_IP));
    t.push_back(other("ethertype 0x88b5", std::move(PacketBuilder().eth().payload(50)), MD_CNT_PARSE_NOT_IP));
    t.push_back(other("icmp4", std::move(v4().icmp().payload(8))));
    t.push_back(other("icmp6", std::move(v6().icmpv6())));
    t.push_back(other("gre", std::move(v4().gre().payload(20))));
    t.push_back(other("ipv4 version 5", std::move(udp4("10.0.0.2", 5000).ip_version(5)), MD_CNT_PARSE_BAD_IPV4));
    t.push_back(other("ipv4 ihl 4", std::move(udp4("10.0.0.2", 5000).ipv4_ihl(4)), MD_CNT_PARSE_BAD_IPV4));
    t.push_back(other("ipv4 total length 19", std::move(udp4("10.0.0.2", 5000).length(19)), MD_CNT_PARSE_BAD_IPV4));
    t.push_back(other("ipv4 total length 20: UDP beyond the IP payload", std::move(udp4("10.0.0.2", 5000).length(20)),
                      MD_CNT_PARSE_TRUNC_UDP));
    t.push_back(other("ipv6 version 4", std::move(udp6("2001:db8::2", 5000).ip_version(4)), MD_CNT_PARSE_BAD_IPV6));
    t.push_back(other("tcp data offset 4", std::move(tcp4("10.0.0.1", 9000, "10.0.0.50", 1).tcp_doff(4)),
                      MD_CNT_PARSE_BAD_TCP));
    t.push_back(other("tcp header beyond the IP payload", std::move(tcp4("10.0.0.1", 9000, "10.0.0.50", 1).length(30)),
                      MD_CNT_PARSE_BAD_TCP));
    t.push_back(other("eth only, type IPv4", std::move(PacketBuilder().eth().ethertype(kEthIpv4)),
                      MD_CNT_PARSE_TRUNC_IPV4));
    t.push_back(other("eth only, type IPv6", std::move(PacketBuilder().eth().ethertype(kEthIpv6)),
                      MD_CNT_PARSE_TRUNC_IPV6));
    return t;
}

void check_case(FeedProgram& p, const Case& c) {
    auto ran = run(p, c.frame);
    ASSERT_TRUE(ran.ok) << ran.error;
    const auto& r = ran.r;
    EXPECT_EQ(r.action, XDP_PASS) << action_name(r.action);
    EXPECT_EQ(at(ran.delta, MD_CNT_RX), 1u);
    EXPECT_EQ(at(ran.delta, c.outcome), 1u) << "want " << md::counter_name(c.outcome) << ", got" << describe(ran.delta);
    EXPECT_EQ(at(ran.delta, MD_CNT_VERDICT_PASS), 1u);
    // Every other counter stays put.
    const int mc = match_counter(c.match);
    for (int i = 0; i < MD_CNT_MAX; ++i) {
        if (i == MD_CNT_RX || i == c.outcome || i == MD_CNT_VERDICT_PASS || i == mc) continue;
        EXPECT_EQ(at(ran.delta, i), 0u) << md::counter_name(i) << " moved;" << describe(ran.delta);
    }
    // The packet bytes are never changed.
    EXPECT_EQ(r.frame, c.frame) << "output frame\n" << hex_dump(r.frame);
    if (c.match == MD_MATCH_NONE) {
        EXPECT_EQ(r.meta_len, 0u) << "metadata written for a packet that is not feed";
        EXPECT_FALSE(r.meta.has_value());
        return;
    }
    EXPECT_EQ(at(ran.delta, mc), 1u) << describe(ran.delta);
    EXPECT_EQ(r.meta_len, sizeof(md_meta));
    ASSERT_TRUE(r.meta.has_value()) << "no md_meta (magic/version) in front of a feed packet";
    const md_meta& m = *r.meta;
    EXPECT_EQ(m.magic, MD_META_MAGIC);
    EXPECT_EQ(m.version, MD_META_VERSION);
    EXPECT_NE(m.rx_ns, 0u);
    EXPECT_GE(m.rx_ns, ran.t_before) << "rx_ns is CLOCK_MONOTONIC";
    EXPECT_LE(m.rx_ns, ran.t_after) << "rx_ns is CLOCK_MONOTONIC";
    EXPECT_EQ(m.match, c.match) << md::match_name(m.match);
    EXPECT_EQ(m.rule, c.rule);
    EXPECT_EQ(m.port, c.port);
    EXPECT_EQ(m.family, c.family);
    EXPECT_EQ(m.vlan[0], c.vlan0);
    EXPECT_EQ(m.vlan[1], c.vlan1);
    EXPECT_EQ(m.flags, c.flags);
    EXPECT_EQ(m.payload_off, c.payload_off);
    EXPECT_EQ(m.payload_len, c.payload_len);
}

TEST_F(MdFeedTest, Table) {
    const auto cases = table();
    ASSERT_GT(cases.size(), 60u);
    std::map<std::string, FeedProgram> loaded;
    for (const auto& c : cases) {
        SCOPED_TRACE("case \"" + c.name + "\" [filter " + c.filter + "] (" + std::to_string(c.frame.size()) +
                     " bytes)\n" + hex_dump(c.frame));
        auto it = loaded.find(c.filter);
        if (it == loaded.end()) {
            LOAD_OR_RETURN(p, filters().at(c.filter));
            it = loaded.emplace(c.filter, std::move(*p)).first;
        }
        check_case(it->second, c);
    }
    std::printf("[          ] %zu table cases, %zu programs loaded\n", cases.size(), loaded.size());
}

// ---- truncation at every length --------------------------------------------------

int parse_counter_for(LayerKind k) {
    switch (k) {
    case LayerKind::Eth: return MD_CNT_PARSE_TRUNC_ETH;
    case LayerKind::Vlan: return MD_CNT_PARSE_TRUNC_VLAN;
    case LayerKind::Ipv4: return MD_CNT_PARSE_TRUNC_IPV4;
    case LayerKind::Ipv6: return MD_CNT_PARSE_TRUNC_IPV6;
    case LayerKind::Ipv6Ext: return MD_CNT_PARSE_TRUNC_IPV6_EXT;
    case LayerKind::Tcp: return MD_CNT_PARSE_TRUNC_TCP;
    case LayerKind::Udp: return MD_CNT_PARSE_TRUNC_UDP;
    default: return -1;  // payload: not read
    }
}

TEST_F(MdFeedTest, TruncationAtEveryLength) {
    struct Shape {
        const char* name;
        PacketBuilder b;
        uint8_t match;
    };
    std::vector<Shape> shapes;
    shapes.push_back({"eth/ipv4+opts/udp → 5000/payload",
                      std::move(v4().ip_options({1, 1, 1, 1, 1, 1, 1, 0}).udp(1, 5000).payload(24)),
                      MD_MATCH_UDP_PORT});
    shapes.push_back({"eth/vlan/vlan/ipv6/hbh/frag/dst/udp → [ff15::1]:7000/payload",
                      std::move(PacketBuilder().eth().vlan(10, kTpidQinQ).vlan(20).ipv6("2001:db8::5", "ff15::1")
                                    .hop_by_hop(1).fragment6(0, true).dst_opts().udp(1, 7000).payload(12)),
                      MD_MATCH_GROUP});
    shapes.push_back({"eth/ipv4/tcp+opts from server/payload",
                      std::move(v4("10.0.0.1", "10.0.0.50").tcp(9000, 40000)
                                    .tcp_options({2, 4, 5, 0xb4, 1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2}).payload(24)),
                      MD_MATCH_TCP_FROM_SERVER});
    shapes.push_back({"eth/vlan/ipv6/ah/routing/tcp from server, pure ACK",
                      std::move(PacketBuilder().eth().vlan(7).ipv6("2001:db8::1", "2001:db8::50").ah().routing()
                                    .tcp(9000, 40000, kTcpAck)),
                      MD_MATCH_TCP_FROM_SERVER});
    shapes.push_back({"eth/ipv4/udp → 5002 (not feed)", udp4("10.0.0.2", 5002, 10), MD_MATCH_NONE});

    LOAD_OR_RETURN(p, full_filter());
    size_t runs = 0;
    for (const auto& s : shapes) {
        const auto full = s.b.build();
        const auto spans = s.b.spans();
        for (size_t cut = 14; cut < full.size(); ++cut) {
            std::vector<uint8_t> f(full.begin(), full.begin() + static_cast<long>(cut));
            SCOPED_TRACE(std::string(s.name) + " cut at " + std::to_string(cut) + "\n" + hex_dump(f));
            int want = -1;
            for (const auto& sp : spans) {
                if (cut >= sp.end) continue;
                want = parse_counter_for(sp.kind);
                break;
            }
            if (want < 0) want = s.match == MD_MATCH_NONE ? MD_CNT_PASS_NOT_FEED : MD_CNT_PASS_NO_SOCKET;
            auto ran = run(*p, f);
            ++runs;
            ASSERT_TRUE(ran.ok) << ran.error;
            EXPECT_EQ(ran.r.action, XDP_PASS);
            EXPECT_EQ(at(ran.delta, MD_CNT_RX), 1u);
            EXPECT_EQ(at(ran.delta, want), 1u) << "want " << md::counter_name(want) << ", got" << describe(ran.delta);
            EXPECT_EQ(ran.r.frame, f) << "bytes changed";
            const bool fed = want == MD_CNT_PASS_NO_SOCKET;
            EXPECT_EQ(parse_outcomes(ran.delta), fed || want == MD_CNT_PASS_NOT_FEED ? 0u : 1u) << describe(ran.delta);
            EXPECT_EQ(ran.r.meta.has_value(), fed);
            EXPECT_EQ(ran.r.meta_len, fed ? sizeof(md_meta) : 0u);
            if (fed && ran.r.meta) {
                EXPECT_EQ(ran.r.meta->match, s.match);
                EXPECT_EQ(ran.r.meta->payload_off, l4_end(s.b));
                EXPECT_GE(cut, l4_end(s.b)) << "matched a packet whose L4 header is cut";
            }
        }
    }
    std::printf("[          ] %zu truncated frames\n", runs);
}

TEST_F(MdFeedTest, FramesShorterThanEthernetAreRefused) {
    LOAD_OR_RETURN(p, full_filter());
    const auto full = udp4("10.0.0.2", 5000).build();
    for (size_t n = 0; n < 14; ++n) {
        SCOPED_TRACE("frame of " + std::to_string(n) + " bytes");
        std::vector<uint8_t> f(full.begin(), full.begin() + static_cast<long>(n));
        auto ran = run(*p, f);
        EXPECT_FALSE(ran.ok) << "BPF_PROG_TEST_RUN accepted a frame of " << n << " bytes";
        EXPECT_EQ(at(ran.delta, MD_CNT_RX), 0u);
    }
}

TEST_F(MdFeedTest, RepeatedRunsCountEveryRun) {
    LOAD_OR_RETURN(p, full_filter());
    auto ran = run(*p, udp4("239.1.1.1", 6000).build(), 100);
    ASSERT_TRUE(ran.ok) << ran.error;
    EXPECT_EQ(at(ran.delta, MD_CNT_RX), 100u);
    EXPECT_EQ(at(ran.delta, MD_CNT_MATCH_GROUP), 100u);
    EXPECT_EQ(at(ran.delta, MD_CNT_PASS_NO_SOCKET), 100u);
    EXPECT_EQ(at(ran.delta, MD_CNT_META_FAIL), 0u);
    ASSERT_TRUE(ran.r.meta.has_value());
    EXPECT_EQ(ran.r.meta_len, sizeof(md_meta));
    auto other_run = run(*p, udp4("10.0.0.2", 5002).build(), 50);
    ASSERT_TRUE(other_run.ok) << other_run.error;
    EXPECT_EQ(at(other_run.delta, MD_CNT_PASS_NOT_FEED), 50u);
    ASSERT_OK(p->reset_counters());
    auto c = p->counters();
    ASSERT_OK(c);
    EXPECT_EQ(*c, Counters{}) << describe(*c);
}

// An earlier program in the chain (FlowManager, or anything) may have left
// metadata of its own: it is replaced by exactly one md_meta.
TEST_F(MdFeedTest, ReplacesEarlierMetadata) {
    LOAD_OR_RETURN(p, full_filter());
    TestRunBuffers bufs;
    const auto frame = udp4("10.0.0.2", 5001).build();
    for (size_t len : {4u, 12u, 28u, 32u}) {
        SCOPED_TRACE("metadata of " + std::to_string(len) + " bytes in front");
        std::vector<uint8_t> meta_in(len, 0xee);
        auto r = xdp_test_run(p->prog_fd(), frame, meta_in, 1, bufs);
        ASSERT_OK(r);
        EXPECT_EQ(r->action, XDP_PASS);
        EXPECT_EQ(r->meta.size(), sizeof(md_meta));
        auto m = md::parse_meta(r->meta);
        ASSERT_TRUE(m.has_value());
        EXPECT_EQ(m->match, MD_MATCH_UDP_PORT);
        EXPECT_EQ(m->rule, 2u);
        EXPECT_TRUE(std::equal(r->frame.begin(), r->frame.end(), frame.begin(), frame.end()));
    }
    // Not feed: the earlier program's metadata stays as it was.
    std::vector<uint8_t> meta_in(12, 0xab);
    auto r = xdp_test_run(p->prog_fd(), udp4("10.0.0.2", 5002).build(), meta_in, 1, bufs);
    ASSERT_OK(r);
    EXPECT_TRUE(std::equal(r->meta.begin(), r->meta.end(), meta_in.begin(), meta_in.end()));
    auto c = p->counters();
    ASSERT_OK(c);
    expect_invariants(*c);
    EXPECT_EQ(at(*c, MD_CNT_META_FAIL), 0u);
}

TEST_F(MdFeedTest, StatusDescribesConfigFiltersAndCounters) {
    LOAD_OR_RETURN(p, full_filter(true));
    auto ran = run(*p, udp4("10.0.0.2", 5000).build());
    ASSERT_TRUE(ran.ok) << ran.error;
    const ProgramKind kind = md::program_kind();
    EXPECT_EQ(kind.application, "mdfeed");
    EXPECT_TRUE(kind.owns(MD_PROG_FEED));
    EXPECT_TRUE(kind.owns(MD_PROG_FEED_SB));
    EXPECT_TRUE(kind.pinned_maps.empty());
    char* buf = nullptr;
    size_t len = 0;
    std::FILE* out = open_memstream(&buf, &len);
    ASSERT_NE(out, nullptr);
    kind.describe(p->prog_fd(), false, out);
    std::fclose(out);
    const std::string text(buf, len);
    std::free(buf);
    SCOPED_TRACE(text);
    EXPECT_NE(text.find("config: udp-ports=on groups=on tcp=from+to server"), std::string::npos);
    EXPECT_NE(text.find("udp ports: 5000 5001\n"), std::string::npos);
    EXPECT_NE(text.find("multicast groups: 239.1.1.1:6000 239.1.1.2:* [ff15::1]:7000 [ff02::5]:*\n"),
              std::string::npos);
    EXPECT_NE(text.find("tcp servers: 10.0.0.1:9000 [2001:db8::1]:9000 10.0.0.9:*\n"), std::string::npos);
    EXPECT_NE(text.find("match_udp_port"), std::string::npos);
    EXPECT_NE(text.find("pass_no_socket"), std::string::npos);
    EXPECT_EQ(text.find("verdict_drop"), std::string::npos) << "zero counters listed without all_counters";
}

TEST_F(MdFeedTest, LoaderRefusals) {
    LOAD_OR_RETURN(p, full_filter());
    auto again = p->attach("lo", XdpMode::Skb);
    ASSERT_FALSE(again.ok());
    EXPECT_NE(again.error().message().find("already loaded"), std::string::npos) << again.error().message();
    auto beyond = p->set_xsk(MD_MAX_QUEUES, 0);
    ASSERT_FALSE(beyond.ok());
    EXPECT_NE(beyond.error().message().find("beyond the map's 64 slots"), std::string::npos)
        << beyond.error().message();
    const int udp = socket(AF_INET, SOCK_DGRAM, 0);
    ASSERT_GE(udp, 0);
    auto not_xsk = p->set_xsk(0, udp);
    close(udp);
    ASSERT_FALSE(not_xsk.ok());
    EXPECT_NE(not_xsk.error().message().find("AF_XDP socket"), std::string::npos) << not_xsk.error().message();

    auto opened = FeedProgram::open(full_filter());
    ASSERT_OK(opened);
    auto hw = opened->attach("lo", XdpMode::Hw);
    ASSERT_FALSE(hw.ok());
    EXPECT_NE(hw.error().message().find("use native (or skb) mode"), std::string::npos) << hw.error().message();
    auto early = opened->set_xsk(0, 3);
    ASSERT_FALSE(early.ok());
    EXPECT_NE(early.error().message().find("not loaded"), std::string::npos);
}

// ---- a real socket, a real attach ---------------------------------------------

std::string unique_name(const char* what) { return std::string("mdt") + std::to_string(getpid()) + what; }

Result<void> send_udp(const std::string& ns, const char* dst, uint16_t port, const std::vector<uint8_t>& payload,
                      int count) {
    return in_netns(ns, [&]() -> Result<void> {
        const int s = socket(AF_INET, SOCK_DGRAM, 0);
        if (s < 0) return make_error(ErrorKind::Io, errno, ns, "udp socket");
        sockaddr_in to{};
        to.sin_family = AF_INET;
        to.sin_port = htons(port);
        inet_pton(AF_INET, dst, &to.sin_addr);
        for (int i = 0; i < count; ++i)
            if (sendto(s, payload.data(), payload.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof(to)) < 0) {
                const int err = errno;
                close(s);
                return make_error(ErrorKind::Io, err, ns, "sendto");
            }
        close(s);
        return {};
    });
}

VethPairSpec veth_spec() {
    VethPairSpec spec;
    spec.ns_a = unique_name("a");
    spec.ns_b = unique_name("b");
    spec.veth_a = "mda";
    spec.veth_b = "mdb";
    spec.mac_a = "02:00:00:00:4d:01";
    spec.mac_b = "02:00:00:00:4d:02";
    spec.addr_a = "10.77.0.1/24";
    spec.addr_b = "10.77.0.2/24";
    spec.static_neighbours = true;
    spec.queues = 1;
    return spec;
}

// BPF_PROG_TEST_RUN with a bound socket in the queue's slot: XDP_REDIRECT.
TEST_F(MdFeedTest, RedirectsWhenTheQueueHasASocket) {
    auto net = NetnsPair::create(veth_spec());
    if (!net) GTEST_SKIP() << "cannot create netns/veth: " << net.error().message();
    LOAD_OR_RETURN(p, full_filter());
    std::unique_ptr<XskSocket> xsk;
    XskOptions xo;
    xo.frames = 64;
    xo.ring_size = 64;
    xo.bind = XskBind::Copy;
    xo.meta = md::xsk_meta_format();
    ASSERT_OK(in_netns(net->ns_b(), [&]() -> Result<void> {
        auto s = XskSocket::create(net->veth_b(), 0, xo);
        if (!s) return s.error();
        xsk = std::move(*s);
        return {};
    }));
    ASSERT_OK(p->set_xsk(0, xsk->fd()));

    auto u = run(*p, udp4("239.1.1.1", 6000).build());
    ASSERT_TRUE(u.ok) << u.error;
    EXPECT_EQ(u.r.action, XDP_REDIRECT) << action_name(u.r.action);
    EXPECT_EQ(at(u.delta, MD_CNT_REDIRECT_UDP), 1u) << describe(u.delta);
    EXPECT_EQ(at(u.delta, MD_CNT_VERDICT_REDIRECT), 1u);
    EXPECT_EQ(at(u.delta, MD_CNT_MATCH_GROUP), 1u);
    ASSERT_TRUE(u.r.meta.has_value());
    EXPECT_EQ(u.r.meta->match, MD_MATCH_GROUP);

    auto t = run(*p, tcp4("10.0.0.1", 9000, "10.0.0.50", 40000).build());
    ASSERT_TRUE(t.ok) << t.error;
    EXPECT_EQ(t.r.action, XDP_REDIRECT);
    EXPECT_EQ(at(t.delta, MD_CNT_REDIRECT_TCP), 1u) << describe(t.delta);

    auto n = run(*p, udp4("10.0.0.2", 5002).build());
    ASSERT_TRUE(n.ok) << n.error;
    EXPECT_EQ(n.r.action, XDP_PASS);
    EXPECT_EQ(at(n.delta, MD_CNT_PASS_NOT_FEED), 1u);

    ASSERT_OK(p->clear_xsk(0));
    auto gone = run(*p, udp4("10.0.0.2", 5000).build());
    ASSERT_TRUE(gone.ok) << gone.error;
    EXPECT_EQ(gone.r.action, XDP_PASS);
    EXPECT_EQ(at(gone.delta, MD_CNT_PASS_NO_SOCKET), 1u) << describe(gone.delta);
}

// Attach through libxdp on a veth end in a namespace, receive feed packets
// on an AF_XDP socket with md_meta in front, see status, detach. Both modes.
TEST_F(MdFeedTest, AttachedOnVethDeliversFeedWithMetadata) {
    for (XdpMode mode : {XdpMode::Native, XdpMode::Skb}) {
        SCOPED_TRACE(std::string("mode ") + xdp_mode_name(mode));
        auto net = NetnsPair::create(veth_spec());
        if (!net) GTEST_SKIP() << "cannot create netns/veth: " << net.error().message();
        FeedFilter f;
        f.udp_ports = {5000};
        auto opened = FeedProgram::open(f);
        ASSERT_OK(opened);
        FeedProgram prog = std::move(*opened);
        std::unique_ptr<XskSocket> xsk;
        AttachResult attached;
        ASSERT_OK(in_netns(net->ns_b(), [&]() -> Result<void> {
            auto a = prog.attach(net->veth_b(), mode);
            if (!a) return a.error();
            attached = *a;
            XskOptions xo;
            xo.frames = 256;
            xo.ring_size = 256;
            xo.bind = XskBind::Copy;
            xo.meta = md::xsk_meta_format();
            auto s = XskSocket::create(net->veth_b(), 0, xo);
            if (!s) return s.error();
            xsk = std::move(*s);
            return prog.set_xsk(0, xsk->fd());
        }));
        std::printf("[          ] %s: attached prog id %u, %s, %s\n", xdp_mode_name(mode), attached.prog_id,
                    xdp_mode_name(attached.mode), attached.multiprog ? "libxdp dispatcher" : "single program");
        EXPECT_NE(attached.prog_id, 0u);

        std::vector<uint8_t> payload(48);
        for (size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<uint8_t>(0x30 + i);
        const uint64_t t0 = mono_ns();
        ASSERT_OK(send_udp(net->ns_a(), "10.77.0.2", 5000, payload, 3));
        ASSERT_OK(send_udp(net->ns_a(), "10.77.0.2", 5002, payload, 2));

        int got = 0, with_meta = 0;
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
        while (got < 3 && std::chrono::steady_clock::now() < deadline) {
            xsk->wakeup_if_needed();
            got += static_cast<int>(xsk->receive(16, [&](const XskSocket::Frame& fr) {
                auto m = md::frame_meta(fr);
                if (!m) return;
                ++with_meta;
                EXPECT_EQ(m->match, MD_MATCH_UDP_PORT);
                EXPECT_EQ(m->rule, 1u);
                EXPECT_EQ(m->port, 5000);
                EXPECT_EQ(m->family, 4);
                EXPECT_EQ(m->payload_off, 14u + 20u + 8u);
                EXPECT_EQ(m->payload_len, payload.size());
                EXPECT_GE(m->rx_ns, t0);
                EXPECT_LE(m->rx_ns, mono_ns());
                ASSERT_GE(fr.data.size(), m->payload_off + payload.size());
                EXPECT_TRUE(std::equal(payload.begin(), payload.end(), fr.data.begin() + m->payload_off));
            }));
            if (got < 3) std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
        EXPECT_EQ(got, 3) << "feed packets received on the AF_XDP socket";
        EXPECT_EQ(with_meta, got) << "frames without md_meta";

        auto c = prog.counters();
        ASSERT_OK(c);
        expect_invariants(*c);
        EXPECT_EQ(at(*c, MD_CNT_REDIRECT_UDP), 3u) << describe(*c);
        EXPECT_GE(at(*c, MD_CNT_PASS_NOT_FEED), 2u) << describe(*c);
        EXPECT_EQ(at(*c, MD_CNT_META_FAIL), 0u);

        ASSERT_OK(in_netns(net->ns_b(), [&]() -> Result<void> {
            auto st = xdp_status(net->veth_b(), {md::program_kind()});
            if (!st) return st.error();
            EXPECT_EQ(st->size(), 1u);
            bool found = false;
            for (const auto& iface : *st)
                for (const auto& ps : iface.programs)
                    if (ps.application == "mdfeed") {
                        found = true;
                        EXPECT_NE(ps.details.find("udp ports: 5000"), std::string::npos) << ps.details;
                        EXPECT_NE(ps.details.find("redirect_udp"), std::string::npos) << ps.details;
                    }
            EXPECT_TRUE(found) << "status does not list the feed filter";
            DetachOptions d;
            d.kinds = {md::program_kind()};
            auto n = detach(net->veth_b(), d);
            if (!n) return n.error();
            EXPECT_EQ(*n, 1);
            auto after = xdp_status(net->veth_b(), {md::program_kind()});
            if (!after) return after.error();
            for (const auto& iface : *after) EXPECT_TRUE(iface.programs.empty()) << "still attached";
            return {};
        }));
        xsk.reset();
    }
}

// ---- parsers (no privilege needed) ---------------------------------------------

TEST(MdFeedFilter, ParsesGoodStrings) {
    auto port = md::parse_udp_port(" 5000 ");
    ASSERT_OK(port);
    EXPECT_EQ(*port, 5000);
    auto ports = md::parse_udp_ports("5000, 5001,6000-6002");
    ASSERT_OK(ports);
    EXPECT_EQ(*ports, (std::vector<uint16_t>{5000, 5001, 6000, 6001, 6002}));

    struct G {
        const char* text;
        uint8_t family;
        uint16_t port;
        const char* shown;
    };
    for (const G& g : {G{"239.1.1.1:5000", 4, 5000, "239.1.1.1:5000"}, G{"239.1.1.1", 4, 0, "239.1.1.1:*"},
                       G{"239.1.1.1:*", 4, 0, "239.1.1.1:*"}, G{"224.0.0.251:5353", 4, 5353, "224.0.0.251:5353"},
                       G{"[ff15::1]:5000", 6, 5000, "[ff15::1]:5000"}, G{"[ff15::1]", 6, 0, "[ff15::1]:*"},
                       G{"ff15::1", 6, 0, "[ff15::1]:*"},
                       // without brackets the last group is part of the address
                       G{"ff15::1:5000", 6, 0, "[ff15::1:5000]:*"}}) {
        SCOPED_TRACE(g.text);
        auto r = md::parse_group(g.text);
        ASSERT_OK(r);
        EXPECT_EQ(r->family, g.family);
        EXPECT_EQ(r->port, g.port);
        EXPECT_EQ(md::to_string(*r), g.shown);
        auto back = md::parse_group(md::to_string(*r));  // the shown form parses back
        ASSERT_OK(back);
        EXPECT_EQ(back->addr, r->addr);
        EXPECT_EQ(back->port, r->port);
    }
    auto g = md::parse_group("239.1.2.3:6000");
    ASSERT_OK(g);
    EXPECT_EQ(g->addr[0], 239);
    EXPECT_EQ(g->addr[3], 3);
    EXPECT_EQ(g->addr[4], 0);

    for (const G& s : {G{"10.0.0.1:9000", 4, 9000, "10.0.0.1:9000"}, G{"10.0.0.1", 4, 0, "10.0.0.1:*"},
                       G{"[2001:db8::1]:9000", 6, 9000, "[2001:db8::1]:9000"},
                       G{"2001:db8::1", 6, 0, "[2001:db8::1]:*"}}) {
        SCOPED_TRACE(s.text);
        auto r = md::parse_tcp_server(s.text);
        ASSERT_OK(r);
        EXPECT_EQ(r->family, s.family);
        EXPECT_EQ(r->port, s.port);
        EXPECT_EQ(md::to_string(*r), s.shown);
    }
    auto groups = md::parse_groups("239.1.1.1:5000,[ff15::1]:5000");
    ASSERT_OK(groups);
    EXPECT_EQ(groups->size(), 2u);
    auto servers = md::parse_tcp_servers("10.0.0.1:9000, [2001:db8::1]:9000");
    ASSERT_OK(servers);
    EXPECT_EQ(servers->size(), 2u);
}

TEST(MdFeedFilter, RefusesBadStringsWithClearMessages) {
    auto msg = [](const auto& r) { return r.ok() ? std::string("(accepted)") : r.error().message(); };
    struct Bad {
        const char* text;
        const char* says;
    };
    for (const Bad& b : {Bad{"0", "0: parse UDP port: not a port number 1..65535"}, Bad{"65536", "not a port number"},
                         Bad{"abc", "not a port number"}, Bad{"", "not a port number"}, Bad{"50a", "not a port"}}) {
        SCOPED_TRACE(b.text);
        auto r = md::parse_udp_port(b.text);
        EXPECT_FALSE(r.ok());
        EXPECT_NE(msg(r).find(b.says), std::string::npos) << msg(r);
    }
    for (const Bad& b : {Bad{"6010-6000", "6010-6000: parse UDP port range: not a range LO-HI"},
                         Bad{"5000,x", "x: parse UDP port"}, Bad{",", "empty port list"}}) {
        SCOPED_TRACE(b.text);
        auto r = md::parse_udp_ports(b.text);
        EXPECT_FALSE(r.ok());
        EXPECT_NE(msg(r).find(b.says), std::string::npos) << msg(r);
    }
    EXPECT_EQ(msg(md::parse_group("10.0.0.1:5000")),
              "10.0.0.1:5000: parse multicast group: not a multicast address (224.0.0.0/4 or ff00::/8); "
              "hint: UDP to a unicast address is selected by its destination port alone");
    EXPECT_EQ(msg(md::parse_group("239.1.1.1:0")),
              "239.1.1.1:0: parse multicast group: port '0' is not a number 1..65535; "
              "hint: leave the port out (or write *) for any port");
    for (const Bad& b : {Bad{"239.1.1.1:70000", "port '70000' is not a number 1..65535"},
                         Bad{"239.1.1.1:", "port '' is not a number"},
                         Bad{"239.1.1:5000", "'239.1.1' is not an IPv4 address"},
                         Bad{"239.1.1.256", "is not an IPv4 address"},
                         Bad{"[ff15::1:5000", "missing ']' after the IPv6 address"},
                         Bad{"[ff15::1]5000", "expected ':PORT' after ']'"},
                         Bad{"[239.1.1.1]:5000", "'239.1.1.1' is not an IPv6 address"},
                         Bad{"ff15::g", "not an IPv6 address; hint: an IPv6 address with a port is written in brackets"},
                         Bad{"[2001:db8::1]:5000", "not a multicast address"}, Bad{"", "empty"},
                         Bad{"feed.example.com:5000", "is not an IPv4 address"}}) {
        SCOPED_TRACE(b.text);
        auto r = md::parse_group(b.text);
        EXPECT_FALSE(r.ok());
        EXPECT_NE(msg(r).find(b.says), std::string::npos) << msg(r);
        EXPECT_NE(msg(r).find("parse multicast group"), std::string::npos) << msg(r);
    }
    for (const Bad& b : {Bad{"239.1.1.1:9000", "a multicast address cannot be a TCP server"},
                         Bad{"[ff02::1]:9000", "a multicast address cannot be a TCP server"},
                         Bad{"0.0.0.0:9000", "the unspecified address matches no server"},
                         Bad{"[::]:9000", "the unspecified address matches no server"},
                         Bad{"10.0.0.1:x", "port 'x' is not a number"},
                         Bad{"10.0.0.1:9000:1", "not an IPv6 address"}}) {
        SCOPED_TRACE(b.text);
        auto r = md::parse_tcp_server(b.text);
        EXPECT_FALSE(r.ok());
        EXPECT_NE(msg(r).find(b.says), std::string::npos) << msg(r);
        EXPECT_NE(msg(r).find("parse TCP server"), std::string::npos) << msg(r);
    }
    EXPECT_NE(msg(md::parse_groups("239.1.1.1:5000,10.0.0.1")).find("10.0.0.1: parse multicast group"),
              std::string::npos);
    EXPECT_NE(msg(md::parse_tcp_servers(" , ")).find("empty server list"), std::string::npos);
}

TEST(MdFeedFilter, ValidatesTheFilter) {
    auto msg = [](const Result<void>& r) { return r.ok() ? std::string("(accepted)") : r.error().message(); };
    EXPECT_OK(full_filter().validate());
    FeedFilter empty;
    EXPECT_EQ(msg(empty.validate()), "feed filter: check feed filter: selects nothing; hint: give at least one UDP "
                                     "port, multicast group or TCP server");
    auto load_empty = FeedProgram::load(empty);  // validated before the kernel is asked
    ASSERT_FALSE(load_empty.ok());
    EXPECT_NE(load_empty.error().message().find("selects nothing"), std::string::npos);
    FeedFilter both;
    both.udp_ports = {5000};
    both.tcp_both_directions = true;
    EXPECT_NE(msg(both.validate()).find("given without a TCP server"), std::string::npos);
    FeedFilter many;
    for (unsigned p = 1; p <= MD_MAX_UDP_PORTS + 1; ++p) many.udp_ports.push_back(static_cast<uint16_t>(p));
    EXPECT_NE(msg(many.validate()).find("at most 1024"), std::string::npos);
    FeedFilter zero;
    zero.udp_ports = {0};
    EXPECT_NE(msg(zero.validate()).find("ports are 1..65535"), std::string::npos);
    FeedFilter unicast;
    unicast.groups = {md::McastGroup{4, {10, 0, 0, 1}, 5000}};
    EXPECT_EQ(msg(unicast.validate()),
              "10.0.0.1:5000: check feed filter: not a multicast address (224.0.0.0/4 or ff00::/8)");
    FeedFilter fam;
    fam.tcp_servers = {md::TcpServer{5, {10, 0, 0, 1}, 1}};
    EXPECT_NE(msg(fam.validate()).find("family must be 4 or 6"), std::string::npos);

    const md_feed_config c = md::make_config(full_filter(true));
    EXPECT_EQ(c.match_udp_ports, 1);
    EXPECT_EQ(c.match_groups, 1);
    EXPECT_EQ(c.match_tcp, 1);
    EXPECT_EQ(c.tcp_to_server, 1);
    const md_feed_config g = md::make_config(filters().at("groups-only"));
    EXPECT_EQ(g.match_udp_ports, 0);
    EXPECT_EQ(g.match_groups, 1);
    EXPECT_EQ(g.match_tcp, 0);
    EXPECT_EQ(g.tcp_to_server, 0);
}

TEST(MdFeedFilter, CounterNamesAndMetadataFormat) {
    std::set<std::string> names;
    for (int i = 0; i < MD_CNT_MAX; ++i) {
        EXPECT_NE(std::string(md::counter_name(i)), "unknown") << i;
        EXPECT_NE(std::string(md::counter_doc(i)), "") << i;
        names.insert(md::counter_name(i));
    }
    EXPECT_EQ(names.size(), static_cast<size_t>(MD_CNT_MAX)) << "counter names repeat";
    EXPECT_STREQ(md::counter_name(MD_CNT_RX), "rx");
    EXPECT_STREQ(md::counter_name(MD_CNT_PASS_FRAGMENT), "pass_fragment");
    EXPECT_STREQ(md::counter_name(MD_CNT_MAX), "unknown");
    EXPECT_STREQ(md::counter_name(-1), "unknown");

    const XskMetaFormat f = md::xsk_meta_format();
    EXPECT_EQ(f.size, 32u);
    EXPECT_EQ(f.magic, MD_META_MAGIC);
    EXPECT_EQ(f.magic_offset, 28u);

    md_meta m{};
    m.magic = MD_META_MAGIC;
    m.version = MD_META_VERSION;
    m.rule = 7;
    std::vector<uint8_t> area(40, 0x55);  // something else, then md_meta next to the packet
    std::memcpy(area.data() + 8, &m, sizeof(m));
    auto got = md::parse_meta(area);
    ASSERT_TRUE(got.has_value());
    EXPECT_EQ(got->rule, 7u);
    EXPECT_FALSE(md::parse_meta(std::span<const uint8_t>(area).subspan(9)).has_value()) << "too short";
    md_meta bad = m;
    bad.magic ^= 1;
    EXPECT_FALSE(md::parse_meta({reinterpret_cast<const uint8_t*>(&bad), sizeof(bad)}).has_value());
    bad = m;
    bad.version = MD_META_VERSION + 1;
    EXPECT_FALSE(md::parse_meta({reinterpret_cast<const uint8_t*>(&bad), sizeof(bad)}).has_value());
    XskSocket::Frame fr;
    fr.meta = {reinterpret_cast<const uint8_t*>(&m), sizeof(m)};
    EXPECT_TRUE(md::frame_meta(fr).has_value());
    fr.meta = {};
    EXPECT_FALSE(md::frame_meta(fr).has_value());
    EXPECT_STREQ(md::match_name(MD_MATCH_GROUP), "group");
    EXPECT_STREQ(md::match_name(MD_MATCH_TCP_TO_SERVER), "tcp-to-server");
}

}  // namespace
}  // namespace etcpipe::test
