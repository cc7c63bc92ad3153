#include "mdfeed/mdfeed_attach.hpp"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cinttypes>
#include <cstddef>
#include <cstring>
#include <functional>
#include <iterator>
#include <utility>

#include "common/fd.hpp"
#include "common/log.hpp"
#include "common/prog_maps.hpp"
#include "common/skeleton.hpp"
#include "common/test_run.hpp"
#include "mdfeed.skel.h"

namespace etcpipe::md {
namespace {

constexpr const char* kWhat = "mdfeed.bpf.o";

static_assert(sizeof(md_meta) == 32, "32 bytes of XDP metadata: what every kernel accepts");
static_assert(sizeof(md_endpoint_key) == 20 && sizeof(md_rule) == 4 && sizeof(md_feed_config) == 8,
              "ABI structs as bpf/mdfeed.bpf.c sees them");
static_assert(sizeof(mdfeed_bpf::mdfeed_bpf__rodata) >=
                  offsetof(mdfeed_bpf::mdfeed_bpf__rodata, cfg) + sizeof(md_feed_config),
              "the skeleton's .rodata holds the config");

// ---- text ------------------------------------------------------------------------

Error usage(std::string subject, std::string operation, std::string detail, std::string hint = {}) {
    return Error{ErrorKind::Usage, 0, std::move(subject), std::move(operation), std::move(detail),
                 std::move(hint)};
}

bool parse_uint(std::string_view s, unsigned long max, unsigned long& out) {
    if (s.empty()) return false;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return ec == std::errc() && p == s.data() + s.size() && out <= max;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

std::vector<std::string_view> split_list(std::string_view text) {
    std::vector<std::string_view> parts;
    size_t start = 0;
    while (start <= text.size()) {
        size_t comma = text.find(',', start);
        if (comma == std::string_view::npos) comma = text.size();
        std::string_view part = trim(text.substr(start, comma - start));
        if (!part.empty()) parts.push_back(part);
        start = comma + 1;
    }
    return parts;
}

struct AddrPort {
    uint8_t family = 4;
    std::array<uint8_t, 16> addr{};
    uint16_t port = 0;
};

// "[v6]:port", "[v6]", "v4:port", "v4", "v6"; port "*" = any (0).
Result<AddrPort> parse_addr_port(std::string_view text, const std::string& op, const char* example) {
    const std::string subject(text);
    text = trim(text);
    const std::string form = std::string("write ADDR:PORT, [IPV6]:PORT or ADDR alone (any port), e.g. ") + example;
    if (text.empty()) return usage(subject, op, "empty", form);
    AddrPort ap;
    std::string addr;
    std::string_view port_text;
    bool has_port = false;
    if (text.front() == '[') {
        const size_t close = text.find(']');
        if (close == std::string_view::npos) return usage(subject, op, "missing ']' after the IPv6 address", form);
        addr = std::string(text.substr(1, close - 1));
        std::string_view rest = text.substr(close + 1);
        if (!rest.empty()) {
            if (rest.front() != ':') return usage(subject, op, "expected ':PORT' after ']'", form);
            port_text = rest.substr(1);
            has_port = true;
        }
        if (inet_pton(AF_INET6, addr.c_str(), ap.addr.data()) != 1)
            return usage(subject, op, "'" + addr + "' is not an IPv6 address", form);
        ap.family = 6;
    } else {
        const size_t colons = static_cast<size_t>(std::count(text.begin(), text.end(), ':'));
        if (colons > 1) {  // a bare IPv6 address
            addr = std::string(text);
            if (inet_pton(AF_INET6, addr.c_str(), ap.addr.data()) != 1)
                return usage(subject, op, "not an IPv6 address",
                             "an IPv6 address with a port is written in brackets: [ADDR]:PORT");
            ap.family = 6;
        } else {
            const size_t colon = text.find(':');
            addr = std::string(text.substr(0, colon));
            if (colon != std::string_view::npos) {
                port_text = text.substr(colon + 1);
                has_port = true;
            }
            if (inet_pton(AF_INET, addr.c_str(), ap.addr.data()) != 1)
                return usage(subject, op, "'" + addr + "' is not an IPv4 address", form);
            ap.family = 4;
        }
    }
    if (has_port && port_text != "*") {
        unsigned long port = 0;
        if (!parse_uint(port_text, 65535, port) || port == 0)
            return usage(subject, op, "port '" + std::string(port_text) + "' is not a number 1..65535",
                         "leave the port out (or write *) for any port");
        ap.port = static_cast<uint16_t>(port);
    }
    return ap;
}

bool is_multicast(uint8_t family, const std::array<uint8_t, 16>& a) {
    return family == 4 ? (a[0] & 0xf0) == 0xe0 : a[0] == 0xff;
}

bool is_unspecified(uint8_t family, const std::array<uint8_t, 16>& a) {
    const size_t n = family == 4 ? 4 : 16;
    return std::all_of(a.begin(), a.begin() + static_cast<long>(n), [](uint8_t b) { return b == 0; });
}

std::string addr_port_string(uint8_t family, const std::array<uint8_t, 16>& addr, uint16_t port) {
    char buf[INET6_ADDRSTRLEN] = {};
    inet_ntop(family == 4 ? AF_INET : AF_INET6, addr.data(), buf, sizeof(buf));
    const std::string p = port ? std::to_string(port) : "*";
    return family == 4 ? std::string(buf) + ":" + p : "[" + std::string(buf) + "]:" + p;
}

std::string group_check(const McastGroup& g) {
    if (g.family != 4 && g.family != 6) return "family must be 4 or 6";
    if (!is_multicast(g.family, g.addr))
        return "not a multicast address (224.0.0.0/4 or ff00::/8)";
    return {};
}

std::string server_check(const TcpServer& s) {
    if (s.family != 4 && s.family != 6) return "family must be 4 or 6";
    if (is_multicast(s.family, s.addr)) return "a multicast address cannot be a TCP server";
    if (is_unspecified(s.family, s.addr)) return "the unspecified address matches no server";
    return {};
}

md_endpoint_key endpoint_key(uint8_t family, const std::array<uint8_t, 16>& addr, uint16_t port) {
    md_endpoint_key k{};
    k.family = family;
    k.port = port;
    std::memcpy(k.addr, addr.data(), family == 4 ? 4 : 16);
    return k;
}

// ---- counters --------------------------------------------------------------------

// The one table of counter names, in enum md_counter order (checked below).
struct CounterInfo {
    int id;
    const char* name;
    const char* doc;
};

constexpr CounterInfo kCounters[] = {
    {MD_CNT_RX, "rx", "packets the program saw"},
    {MD_CNT_REDIRECT_UDP, "redirect_udp", "UDP feed packets redirected to an AF_XDP socket"},
    {MD_CNT_REDIRECT_TCP, "redirect_tcp", "TCP feed segments redirected to an AF_XDP socket"},
    {MD_CNT_PASS_NOT_FEED, "pass_not_feed", "parsed, matched no filter: passed"},
    {MD_CNT_PASS_NO_SOCKET, "pass_no_socket", "feed packet, no AF_XDP socket on its queue: passed"},
    {MD_CNT_VERDICT_PASS, "verdict_pass", "XDP_PASS returned"},
    {MD_CNT_VERDICT_DROP, "verdict_drop", "XDP_DROP returned"},
    {MD_CNT_VERDICT_REDIRECT, "verdict_redirect", "XDP_REDIRECT returned"},
    {MD_CNT_VERDICT_ABORTED, "verdict_aborted", "XDP_ABORTED returned"},
    {MD_CNT_PARSE_TRUNC_ETH, "parse_trunc_eth", "shorter than an Ethernet header"},
    {MD_CNT_PARSE_TRUNC_VLAN, "parse_trunc_vlan", "VLAN tag cut short"},
    {MD_CNT_PARSE_VLAN_DEPTH, "parse_vlan_depth", "more than 2 VLAN tags"},
    {MD_CNT_PARSE_NOT_IP, "parse_not_ip", "EtherType neither IPv4 nor IPv6"},
    {MD_CNT_PARSE_TRUNC_IPV4, "parse_trunc_ipv4", "IPv4 header (with options) cut short"},
    {MD_CNT_PARSE_BAD_IPV4, "parse_bad_ipv4", "IPv4 version, IHL or total length invalid"},
    {MD_CNT_PARSE_TRUNC_IPV6, "parse_trunc_ipv6", "IPv6 header cut short"},
    {MD_CNT_PARSE_BAD_IPV6, "parse_bad_ipv6", "IPv6 version invalid or extensions exceed payload length"},
    {MD_CNT_PARSE_TRUNC_IPV6_EXT, "parse_trunc_ipv6_ext", "IPv6 extension header cut short"},
    {MD_CNT_PARSE_IPV6_EXT_DEPTH, "parse_ipv6_ext_depth", "more than 6 IPv6 extension headers"},
    {MD_CNT_PASS_FRAGMENT, "pass_fragment", "non-first IP fragment (no L4 header to match): passed"},
    {MD_CNT_PARSE_TRUNC_TCP, "parse_trunc_tcp", "TCP header (with options) cut short"},
    {MD_CNT_PARSE_BAD_TCP, "parse_bad_tcp", "TCP data offset < 5 or beyond the IP payload"},
    {MD_CNT_PARSE_TRUNC_UDP, "parse_trunc_udp", "UDP header cut short or beyond the IP payload"},
    {MD_CNT_MATCH_UDP_PORT, "match_udp_port", "feed: UDP destination port"},
    {MD_CNT_MATCH_GROUP, "match_group", "feed: UDP to a multicast group"},
    {MD_CNT_MATCH_TCP_FROM_SERVER, "match_tcp_from_server", "feed: TCP from a server"},
    {MD_CNT_MATCH_TCP_TO_SERVER, "match_tcp_to_server", "feed: TCP to a server"},
    {MD_CNT_META_FAIL, "meta_fail", "feed packet sent on without md_meta (metadata area not grown)"},
};

constexpr bool counters_in_order() {
    for (size_t i = 0; i < std::size(kCounters); ++i)
        if (kCounters[i].id != static_cast<int>(i)) return false;
    return true;
}
static_assert(std::size(kCounters) == MD_CNT_MAX, "kCounters must list every md_counter");
static_assert(counters_in_order(), "kCounters must follow enum md_counter's order");

}  // namespace

// ---- filters ---------------------------------------------------------------------

Result<uint16_t> parse_udp_port(std::string_view text) {
    unsigned long port = 0;
    if (!parse_uint(trim(text), 65535, port) || port == 0)
        return usage(std::string(text), "parse UDP port", "not a port number 1..65535",
                     "write e.g. 5000, or a list 5000,5001,6000-6010");
    return static_cast<uint16_t>(port);
}

Result<std::vector<uint16_t>> parse_udp_ports(std::string_view text) {
    std::vector<uint16_t> out;
    for (auto part : split_list(text)) {
        const size_t dash = part.find('-');
        if (dash == std::string_view::npos) {
            auto p = parse_udp_port(part);
            if (!p) return p.error();
            out.push_back(*p);
            continue;
        }
        auto lo = parse_udp_port(part.substr(0, dash));
        auto hi = parse_udp_port(part.substr(dash + 1));
        if (!lo || !hi || *lo > *hi)
            return usage(std::string(part), "parse UDP port range", "not a range LO-HI of ports 1..65535",
                         "write e.g. 6000-6010");
        for (unsigned p = *lo; p <= *hi; ++p) out.push_back(static_cast<uint16_t>(p));
    }
    if (out.empty()) return usage(std::string(text), "parse UDP ports", "empty port list");
    return out;
}

Result<McastGroup> parse_group(std::string_view text) {
    const std::string op = "parse multicast group";
    auto ap = parse_addr_port(text, op, "239.1.1.1:5000 or [ff15::1]:5000");
    if (!ap) return ap.error();
    McastGroup g{ap->family, ap->addr, ap->port};
    if (auto why = group_check(g); !why.empty())
        return usage(std::string(text), op, why,
                     "UDP to a unicast address is selected by its destination port alone");
    return g;
}

Result<TcpServer> parse_tcp_server(std::string_view text) {
    const std::string op = "parse TCP server";
    auto ap = parse_addr_port(text, op, "10.0.0.1:9000 or [2001:db8::1]:9000");
    if (!ap) return ap.error();
    TcpServer s{ap->family, ap->addr, ap->port};
    if (auto why = server_check(s); !why.empty()) return usage(std::string(text), op, why);
    return s;
}

Result<std::vector<McastGroup>> parse_groups(std::string_view text) {
    std::vector<McastGroup> out;
    for (auto part : split_list(text)) {
        auto g = parse_group(part);
        if (!g) return g.error();
        out.push_back(*g);
    }
    if (out.empty()) return usage(std::string(text), "parse multicast groups", "empty group list");
    return out;
}

Result<std::vector<TcpServer>> parse_tcp_servers(std::string_view text) {
    std::vector<TcpServer> out;
    for (auto part : split_list(text)) {
        auto s = parse_tcp_server(part);
        if (!s) return s.error();
        out.push_back(*s);
    }
    if (out.empty()) return usage(std::string(text), "parse TCP servers", "empty server list");
    return out;
}

std::string to_string(const McastGroup& g) { return addr_port_string(g.family, g.addr, g.port); }
std::string to_string(const TcpServer& s) { return addr_port_string(s.family, s.addr, s.port); }

Result<void> FeedFilter::validate() const {
    const std::string op = "check feed filter";
    if (udp_ports.empty() && groups.empty() && tcp_servers.empty())
        return usage("feed filter", op, "selects nothing",
                     "give at least one UDP port, multicast group or TCP server");
    if (udp_ports.size() > MD_MAX_UDP_PORTS)
        return usage("UDP ports", op, "at most " + std::to_string(MD_MAX_UDP_PORTS));
    if (groups.size() > MD_MAX_GROUPS)
        return usage("multicast groups", op, "at most " + std::to_string(MD_MAX_GROUPS));
    if (tcp_servers.size() > MD_MAX_TCP_SERVERS)
        return usage("TCP servers", op, "at most " + std::to_string(MD_MAX_TCP_SERVERS));
    if (tcp_both_directions && tcp_servers.empty())
        return usage("both TCP directions", op, "given without a TCP server");
    for (uint16_t p : udp_ports)
        if (p == 0) return usage("UDP port 0", op, "ports are 1..65535");
    for (const auto& g : groups)
        if (auto why = group_check(g); !why.empty()) return usage(to_string(g), op, why);
    for (const auto& s : tcp_servers)
        if (auto why = server_check(s); !why.empty()) return usage(to_string(s), op, why);
    return {};
}

md_feed_config make_config(const FeedFilter& f) {
    md_feed_config c{};
    c.match_udp_ports = !f.udp_ports.empty();
    c.match_groups = !f.groups.empty();
    c.match_tcp = !f.tcp_servers.empty();
    c.tcp_to_server = f.tcp_both_directions && !f.tcp_servers.empty();
    return c;
}

// ---- counters --------------------------------------------------------------------

const char* counter_name(int c) {
    return c >= 0 && c < MD_CNT_MAX ? kCounters[c].name : "unknown";
}

const char* counter_doc(int c) { return c >= 0 && c < MD_CNT_MAX ? kCounters[c].doc : ""; }

Result<Counters> read_counters(int map_fd) {
    const int ncpu = libbpf_num_possible_cpus();
    if (ncpu <= 0) return make_error(ErrorKind::Bpf, ncpu, "cpus", "count possible CPUs");
    std::vector<md_counters> per_cpu(static_cast<size_t>(ncpu));
    const uint32_t key = 0;
    if (bpf_map_lookup_elem(map_fd, &key, per_cpu.data()))
        return make_error(ErrorKind::Bpf, errno, MD_MAP_COUNTERS, "read counters map");
    Counters sum{};
    for (const auto& slot : per_cpu)
        for (size_t i = 0; i < sum.size(); ++i) sum[i] += slot.cnt[i];
    return sum;
}

void print_counters(std::FILE* out, const Counters& c, bool all, const char* indent) {
    for (int i = 0; i < MD_CNT_MAX; ++i) {
        const uint64_t v = c[static_cast<size_t>(i)];
        if (!all && v == 0) continue;
        std::fprintf(out, "%s%-24s %12" PRIu64 "  %s\n", indent, counter_name(i), v, counter_doc(i));
    }
}

// ---- metadata --------------------------------------------------------------------

XskMetaFormat xsk_meta_format() {
    XskMetaFormat f;
    f.size = sizeof(md_meta);
    f.magic = MD_META_MAGIC;
    f.magic_offset = offsetof(md_meta, magic);
    return f;
}

std::optional<md_meta> parse_meta(std::span<const uint8_t> area) {
    if (area.size() < sizeof(md_meta)) return std::nullopt;
    md_meta m;
    std::memcpy(&m, area.data() + area.size() - sizeof(m), sizeof(m));
    if (m.magic != MD_META_MAGIC || m.version != MD_META_VERSION) return std::nullopt;
    return m;
}

std::optional<md_meta> frame_meta(const XskSocket::Frame& frame) { return parse_meta(frame.meta); }

const char* match_name(uint8_t match) {
    switch (match) {
    case MD_MATCH_NONE: return "none";
    case MD_MATCH_UDP_PORT: return "udp-port";
    case MD_MATCH_GROUP: return "group";
    case MD_MATCH_TCP_FROM_SERVER: return "tcp-from-server";
    case MD_MATCH_TCP_TO_SERVER: return "tcp-to-server";
    }
    return "unknown";
}

// ---- FeedProgram -----------------------------------------------------------------

struct FeedProgram::Impl {
    FeedFilter filter;
    Skeleton<mdfeed_bpf> skel;
    bool loaded = false;
    TestRunBuffers bufs;
};

FeedProgram::FeedProgram() = default;
FeedProgram::~FeedProgram() = default;
FeedProgram::FeedProgram(FeedProgram&&) noexcept = default;
FeedProgram& FeedProgram::operator=(FeedProgram&&) noexcept = default;

namespace {

// The filter maps are created and filled here, before the program is loaded
// (by us or by libxdp), and handed to the object with bpf_map__reuse_fd: the
// program never runs against a half-filled filter.
Result<void> prefill_map(bpf_map* map, const std::function<Result<void>(int)>& fill) {
    const char* name = bpf_map__name(map);
    LIBBPF_OPTS(bpf_map_create_opts, copts);
    copts.map_flags = bpf_map__map_flags(map);
    UniqueFd fd(bpf_map_create(bpf_map__type(map), name, bpf_map__key_size(map),
                               bpf_map__value_size(map), bpf_map__max_entries(map), &copts));
    if (fd.get() < 0)
        return make_error(ErrorKind::Bpf, errno, name, "create filter map", {},
                          errno == EPERM ? "needs CAP_BPF (run as root)" : "");
    if (auto r = fill(fd.get()); !r) return r;
    if (int err = bpf_map__reuse_fd(map, fd.get()))
        return make_error(ErrorKind::Bpf, err, name, "hand filter map to the object");
    return {};
}

// Adds key → rule id; a repeated entry keeps its first id.
Result<void> add_rule(int fd, const void* key, uint32_t id, const char* map, const std::string& what) {
    const md_rule rule{id};
    if (bpf_map_update_elem(fd, key, &rule, BPF_NOEXIST) && errno != EEXIST)
        return make_error(ErrorKind::Bpf, errno, map, "add filter entry", what);
    return {};
}

Result<void> prefill_filter_maps(mdfeed_bpf* s, const FeedFilter& f) {
    if (!f.udp_ports.empty()) {
        auto r = prefill_map(s->maps.md_udp_ports, [&](int fd) -> Result<void> {
            for (size_t i = 0; i < f.udp_ports.size(); ++i) {
                const uint16_t port = f.udp_ports[i];
                if (auto a = add_rule(fd, &port, static_cast<uint32_t>(i + 1), MD_MAP_UDP_PORTS,
                                      "port " + std::to_string(port));
                    !a)
                    return a;
            }
            return {};
        });
        if (!r) return r;
    }
    if (!f.groups.empty()) {
        auto r = prefill_map(s->maps.md_groups, [&](int fd) -> Result<void> {
            for (size_t i = 0; i < f.groups.size(); ++i) {
                const auto& g = f.groups[i];
                const md_endpoint_key k = endpoint_key(g.family, g.addr, g.port);
                if (auto a = add_rule(fd, &k, static_cast<uint32_t>(i + 1), MD_MAP_GROUPS, to_string(g)); !a)
                    return a;
            }
            return {};
        });
        if (!r) return r;
    }
    if (!f.tcp_servers.empty()) {
        auto r = prefill_map(s->maps.md_tcp_servers, [&](int fd) -> Result<void> {
            for (size_t i = 0; i < f.tcp_servers.size(); ++i) {
                const auto& sv = f.tcp_servers[i];
                const md_endpoint_key k = endpoint_key(sv.family, sv.addr, sv.port);
                if (auto a = add_rule(fd, &k, static_cast<uint32_t>(i + 1), MD_MAP_TCP_SERVERS,
                                      to_string(sv));
                    !a)
                    return a;
            }
            return {};
        });
        if (!r) return r;
    }
    return {};
}

}  // namespace

Result<FeedProgram> FeedProgram::open(const FeedFilter& f) {
    if (auto v = f.validate(); !v) return v.error();
    auto skel = Skeleton<mdfeed_bpf>::open(kWhat);
    if (!skel) return skel.error();
    mdfeed_bpf* s = skel->get();
    s->rodata->cfg = make_config(f);
    // The section-"xdp" twin is for `ip link`; loading it too would only
    // double the verification work.
    if (int err = bpf_program__set_autoload(s->progs.xdp_mdfeed_sb, false))
        return make_error(ErrorKind::Bpf, err, kWhat, "disable the section-xdp twin");
    if (auto r = prefill_filter_maps(s, f); !r) return r.error();

    FeedProgram p;
    p.impl_ = std::make_unique<Impl>();
    p.impl_->filter = f;
    p.impl_->skel = std::move(skel.value());
    return p;
}

Result<void> FeedProgram::load() {
    if (impl_->loaded)
        return Error{ErrorKind::Usage, EALREADY, MD_PROG_FEED, "load", "already loaded", {}};
    if (auto r = impl_->skel.load(kWhat); !r) return r;
    impl_->loaded = true;
    return {};
}

Result<FeedProgram> FeedProgram::load(const FeedFilter& f) {
    auto p = open(f);
    if (!p) return p.error();
    if (auto r = p->load(); !r) return r.error();
    return p;
}

Result<AttachResult> FeedProgram::attach(const std::string& iface, XdpMode mode) {
    if (mode == XdpMode::Hw)
        return Error{ErrorKind::Usage, EOPNOTSUPP, iface, "offload the feed filter",
                     "the NFP cannot redirect to AF_XDP, has no XSKMAP or per-CPU maps, and no "
                     "metadata or clock helpers (`etcpipe check --target nfp bpf/mdfeed.bpf.o` "
                     "lists every reason)",
                     "use native (or skb) mode"};
    if (impl_->loaded)
        return Error{ErrorKind::Usage, EALREADY, iface, "attach the feed filter",
                     "this FeedProgram is already loaded (load() or an earlier attach())",
                     "open() a fresh one to attach"};
    // The filter maps were filled before load (open()): nothing to do after.
    auto r = attach_object(iface, mode, impl_->skel->obj, MD_PROG_FEED, {});
    if (r) impl_->loaded = true;
    return r;
}

const FeedFilter& FeedProgram::filter() const { return impl_->filter; }
bool FeedProgram::loaded() const { return impl_->loaded; }
bpf_object* FeedProgram::object() const { return impl_->skel->obj; }
int FeedProgram::prog_fd() const { return bpf_program__fd(impl_->skel->progs.xdp_mdfeed); }
int FeedProgram::xsks_map_fd() const { return bpf_map__fd(impl_->skel->maps.md_xsks); }
int FeedProgram::counters_map_fd() const { return bpf_map__fd(impl_->skel->maps.md_counters); }

Result<void> FeedProgram::set_xsk(uint32_t queue, int xsk_fd) {
    const std::string what = std::string(MD_MAP_XSKS) + "[" + std::to_string(queue) + "]";
    if (!impl_->loaded)
        return Error{ErrorKind::Usage, 0, what, "add AF_XDP socket", "the program is not loaded",
                     "load() or attach() first"};
    if (queue >= MD_MAX_QUEUES)
        return Error{ErrorKind::Usage, EINVAL, what, "add AF_XDP socket",
                     "queue " + std::to_string(queue) + " beyond the map's " +
                         std::to_string(MD_MAX_QUEUES) + " slots",
                     {}};
    if (bpf_map_update_elem(xsks_map_fd(), &queue, &xsk_fd, BPF_ANY)) {
        const int err = errno;
        return make_error(ErrorKind::Bpf, err, what, "add AF_XDP socket", "fd " + std::to_string(xsk_fd),
                          err == EOPNOTSUPP || err == EBADF || err == EINVAL
                              ? "the fd must be an AF_XDP socket bound to a queue (XskSocket::fd())"
                              : "");
    }
    return {};
}

Result<void> FeedProgram::clear_xsk(uint32_t queue) {
    const std::string what = std::string(MD_MAP_XSKS) + "[" + std::to_string(queue) + "]";
    if (!impl_->loaded)
        return Error{ErrorKind::Usage, 0, what, "remove AF_XDP socket", "the program is not loaded", {}};
    if (bpf_map_delete_elem(xsks_map_fd(), &queue) && errno != ENOENT)
        return make_error(ErrorKind::Bpf, errno, what, "remove AF_XDP socket");
    return {};
}

Result<Counters> FeedProgram::counters() const { return read_counters(counters_map_fd()); }

Result<void> FeedProgram::reset_counters() {
    const int ncpu = libbpf_num_possible_cpus();
    if (ncpu <= 0) return make_error(ErrorKind::Bpf, ncpu, "cpus", "count possible CPUs");
    const std::vector<md_counters> zero(static_cast<size_t>(ncpu));
    const uint32_t slot = 0;
    if (bpf_map_update_elem(counters_map_fd(), &slot, zero.data(), BPF_ANY))
        return make_error(ErrorKind::Bpf, errno, MD_MAP_COUNTERS, "zero counters");
    return {};
}

Result<TestRun> FeedProgram::test_run(std::span<const uint8_t> frame, uint32_t repeat) {
    auto run = xdp_test_run(prog_fd(), frame, {}, repeat, impl_->bufs);
    if (!run) {
        Error e = run.error();
        e.subject = MD_PROG_FEED;
        return e;
    }
    TestRun r;
    r.action = run->action;
    r.duration_ns = run->duration_ns;
    r.meta_len = run->meta.size();
    r.meta = parse_meta(run->meta);
    r.frame.assign(run->frame.begin(), run->frame.end());
    return r;
}

// ---- status ----------------------------------------------------------------------

namespace {

struct FeedState {
    std::optional<Counters> counters;
    std::optional<md_feed_config> config;
    std::vector<std::pair<uint32_t, std::string>> ports, groups, servers;  // (rule id, text)
};

// Every (key, rule) of a filter map, as (id, text) sorted by id.
template <class Key, class Text>
std::vector<std::pair<uint32_t, std::string>> read_rules(int fd, const bpf_map_info& mi, Text text) {
    std::vector<std::pair<uint32_t, std::string>> out;
    if (mi.key_size != sizeof(Key) || mi.value_size != sizeof(md_rule)) return out;
    Key key{}, next{};
    const void* prev = nullptr;
    while (bpf_map_get_next_key(fd, prev, &next) == 0) {
        md_rule rule{};
        if (bpf_map_lookup_elem(fd, &next, &rule) == 0) out.emplace_back(rule.id, text(next));
        key = next;
        prev = &key;
    }
    std::sort(out.begin(), out.end());
    return out;
}

std::string endpoint_text(const md_endpoint_key& k) {
    std::array<uint8_t, 16> a{};
    std::memcpy(a.data(), k.addr, sizeof(k.addr));
    return addr_port_string(k.family, a, k.port);
}

std::optional<md_feed_config> read_config(int fd, const bpf_map_info& mi) {
    constexpr size_t off = offsetof(mdfeed_bpf::mdfeed_bpf__rodata, cfg);
    std::vector<uint8_t> val(mi.value_size);
    const uint32_t zero = 0;
    if (val.size() < off + sizeof(md_feed_config) || bpf_map_lookup_elem(fd, &zero, val.data()))
        return std::nullopt;
    md_feed_config c;
    std::memcpy(&c, val.data() + off, sizeof(c));
    return c;
}

FeedState read_state(int prog_fd) {
    FeedState st;
    auto r = for_each_program_map(prog_fd, [&](int fd, const bpf_map_info& mi) {
        const std::string name = mi.name;
        if (name == MD_MAP_COUNTERS && mi.value_size == sizeof(md_counters)) {
            if (auto c = read_counters(fd)) st.counters = *c;
        } else if (name == MD_MAP_UDP_PORTS) {
            st.ports = read_rules<uint16_t>(fd, mi, [](uint16_t p) { return std::to_string(p); });
        } else if (name == MD_MAP_GROUPS) {
            st.groups = read_rules<md_endpoint_key>(fd, mi, endpoint_text);
        } else if (name == MD_MAP_TCP_SERVERS) {
            st.servers = read_rules<md_endpoint_key>(fd, mi, endpoint_text);
        } else if (name.size() > 7 && name.ends_with(".rodata")) {
            st.config = read_config(fd, mi);
        }
    });
    if (!r) ETC_WARN("mdfeed: read program info: %s", r.error().message().c_str());
    return st;
}

void print_rules(std::FILE* out, const char* what, const std::vector<std::pair<uint32_t, std::string>>& rules) {
    if (rules.empty()) return;
    constexpr size_t kShown = 16;
    std::fprintf(out, "    %s:", what);
    for (size_t i = 0; i < rules.size() && i < kShown; ++i) std::fprintf(out, " %s", rules[i].second.c_str());
    if (rules.size() > kShown) std::fprintf(out, " ... (%zu in all)", rules.size());
    std::fprintf(out, "\n");
}

void describe(int prog_fd, bool all_counters, std::FILE* out) {
    const FeedState st = read_state(prog_fd);
    if (st.config) {
        const auto& c = *st.config;
        std::fprintf(out, "    config: udp-ports=%s groups=%s tcp=%s\n", c.match_udp_ports ? "on" : "off",
                     c.match_groups ? "on" : "off",
                     !c.match_tcp ? "off" : c.tcp_to_server ? "from+to server" : "from server");
    }
    print_rules(out, "udp ports", st.ports);
    print_rules(out, "multicast groups", st.groups);
    print_rules(out, "tcp servers", st.servers);
    if (st.counters) {
        const bool any = std::any_of(st.counters->begin(), st.counters->end(), [](uint64_t v) { return v != 0; });
        std::fprintf(out, "    counters:%s\n", any || all_counters ? "" : " all zero (no packets yet)");
        print_counters(out, *st.counters, all_counters, "      ");
    }
}

}  // namespace

ProgramKind program_kind() {
    ProgramKind k;
    k.application = "mdfeed";
    k.prog_names = {MD_PROG_FEED, MD_PROG_FEED_SB};
    k.pinned_maps = {};  // nothing pinned: the attaching process owns the maps
    k.describe = describe;
    return k;
}

}  // namespace etcpipe::md
