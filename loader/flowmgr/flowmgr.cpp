#include "flowmgr/flowmgr.hpp"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>

#include <charconv>
#include <unistd.h>

#include <cstring>
#include <functional>
#include <type_traits>
#include <vector>

#include "etcpipe/flowmgr.h"
#include "common/fd.hpp"
#include "common/kernel_config.hpp"
#include "common/xdp_attach.hpp"
#include "flowmgr.skel.h"
#include "common/skeleton.hpp"

namespace etcpipe {
namespace {

constexpr const char* kWhat = "flowmgr.bpf.o";

bool parse_uint(std::string_view s, unsigned long max, unsigned long& out) {
    if (s.empty()) return false;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return ec == std::errc() && p == s.data() + s.size() && out <= max;
}

std::vector<std::string_view> split_list(std::string_view text) {
    std::vector<std::string_view> parts;
    size_t start = 0;
    while (start <= text.size()) {
        size_t comma = text.find(',', start);
        if (comma == std::string_view::npos) comma = text.size();
        std::string_view part = text.substr(start, comma - start);
        while (!part.empty() && part.front() == ' ') part.remove_prefix(1);
        while (!part.empty() && part.back() == ' ') part.remove_suffix(1);
        if (!part.empty()) parts.push_back(part);
        start = comma + 1;
    }
    return parts;
}

Error usage(std::string subject, std::string detail, std::string hint = {}) {
    return Error{ErrorKind::Usage, 0, std::move(subject), "parse option", std::move(detail),
                 std::move(hint)};
}

}  // namespace

Result<Cidr> parse_cidr(const std::string& text) {
    Cidr c;
    std::string addr = text;
    unsigned long prefix = 0;
    bool has_prefix = false;
    if (auto slash = text.find('/'); slash != std::string::npos) {
        addr = text.substr(0, slash);
        has_prefix = true;
        if (!parse_uint(std::string_view(text).substr(slash + 1), 128, prefix))
            return usage(text, "prefix length is not a number 0..128");
    }
    if (inet_pton(AF_INET, addr.c_str(), c.addr.data()) == 1) {
        c.family = 4;
        if (!has_prefix) prefix = 32;
        if (prefix > 32) return usage(text, "IPv4 prefix length exceeds 32");
    } else if (inet_pton(AF_INET6, addr.c_str(), c.addr.data()) == 1) {
        c.family = 6;
        if (!has_prefix) prefix = 128;
    } else {
        return usage(text, "not an IPv4 or IPv6 address", "write e.g. 10.0.0.0/8 or 2001:db8::/32");
    }
    c.prefix = static_cast<uint8_t>(prefix);
    return c;
}

Result<std::vector<uint8_t>> parse_protocols(const std::string& text) {
    static constexpr std::pair<const char*, uint8_t> kNames[] = {
        {"icmp", 1}, {"igmp", 2}, {"tcp", 6}, {"udp", 17}, {"gre", 47}, {"esp", 50},
        {"ah", 51}, {"icmpv6", 58}, {"icmp6", 58}, {"sctp", 132}, {"udplite", 136}};
    std::vector<uint8_t> out;
    for (auto part : split_list(text)) {
        bool found = false;
        for (auto& [name, num] : kNames) {
            if (part == name) {
                out.push_back(num);
                found = true;
            }
        }
        unsigned long n = 0;
        if (!found && parse_uint(part, 255, n)) {
            out.push_back(static_cast<uint8_t>(n));
            found = true;
        }
        if (!found)
            return usage(std::string(part), "unknown IP protocol",
                         "use tcp, udp, icmp, icmpv6, gre, esp, ah, sctp or a number 0..255");
    }
    if (out.empty()) return usage(text, "empty protocol list");
    return out;
}

Result<std::vector<uint16_t>> parse_ports(const std::string& text) {
    std::vector<uint16_t> out;
    for (auto part : split_list(text)) {
        unsigned long lo = 0, hi = 0;
        auto dash = part.find('-');
        bool ok = dash == std::string_view::npos
                      ? (parse_uint(part, 65535, lo) && ((hi = lo), true))
                      : (parse_uint(part.substr(0, dash), 65535, lo) &&
                         parse_uint(part.substr(dash + 1), 65535, hi) && lo <= hi);
        if (!ok) return usage(std::string(part), "not a port or port range (0..65535, lo-hi)");
        for (unsigned long p = lo; p <= hi; ++p) out.push_back(static_cast<uint16_t>(p));
    }
    if (out.empty()) return usage(text, "empty port list");
    return out;
}

Result<void> FlowMgrOptions::validate() const {
    if (max_pkts == 0 || max_pkts > 0xfffe)
        return usage("--packets", "N must be 1..65534");
    if (flows == 0) return usage("--flows", "the flow table needs at least one entry");
    if (snap_len == 0 || snap_len > ETC_SNAP_MAX)
        return usage("--snap", "L must be 1.." + std::to_string(ETC_SNAP_MAX));
    if (ringbuf_bytes < 4096 || ringbuf_bytes > kMaxRingbufBytes || (ringbuf_bytes & (ringbuf_bytes - 1)))
        return usage("--ringbuf-kib", "the ring buffer must be a power of two from 4 to " +
                                          std::to_string(kMaxRingbufBytes >> 10) + " KiB (got " +
                                          std::to_string(ringbuf_bytes) + " bytes)");
    if (ports.size() > 1024) return usage("--ports", "at most 1024 ports");
    if (allow.size() + deny.size() > 1024) return usage("--allow/--deny", "at most 1024 CIDR rules");
    return {};
}

// ---- counters --------------------------------------------------------------

const char* counter_name(int c) {
    switch (c) {
#define X(e, n, d) \
    case e: return n;
#include "counters.def"
#undef X
    }
    return "unknown";
}

const char* counter_doc(int c) {
    switch (c) {
#define X(e, n, d) \
    case e: return d;
#include "counters.def"
#undef X
    }
    return "";
}

Result<Counters> read_counters(int map_fd) {
    int ncpu = libbpf_num_possible_cpus();
    if (ncpu <= 0) return make_error(ErrorKind::Bpf, ncpu, "cpus", "count possible CPUs");
    std::vector<etc_counters> per_cpu(static_cast<size_t>(ncpu));
    uint32_t key = 0;
    if (bpf_map_lookup_elem(map_fd, &key, per_cpu.data()))
        return make_error(ErrorKind::Bpf, errno, ETC_MAP_COUNTERS, "read counters map");
    Counters sum{};
    for (const auto& slot : per_cpu)
        for (size_t i = 0; i < sum.size(); ++i) sum[i] += slot.cnt[i];
    return sum;
}

// ---- FlowManager -----------------------------------------------------------

struct FlowManager::Impl {
    FlowMgrOptions opts;
    Skeleton<flowmgr_bpf> skel;
    ring_buffer* ring = nullptr;
    RingVisitor ring_visit;
    TestRunBuffers bufs;
    bool flows_empty = false;  // take_flows() emptied the table and no run came since

    ~Impl() {
        if (ring) ring_buffer__free(ring);
    }
};

FlowManager::FlowManager() = default;
FlowManager::~FlowManager() = default;
FlowManager::FlowManager(FlowManager&&) noexcept = default;
FlowManager& FlowManager::operator=(FlowManager&&) noexcept = default;

namespace {

Result<void> configure_pins(bpf_object* obj, const std::string& pin_path) {
    bpf_map* map;
    bpf_object__for_each_map(map, obj) {
        const char* name = bpf_map__name(map);
        // Only maps declared LIBBPF_PIN_BY_NAME have a default pin path, and
        // it is /sys/fs/bpf/NAME: move it under the user's root, or clear it.
        if (!bpf_map__pin_path(map)) continue;
        std::string path = pin_path.empty() ? std::string() : pin_path + "/" + name;
        int err = bpf_map__set_pin_path(map, pin_path.empty() ? nullptr : path.c_str());
        if (err) return make_error(ErrorKind::Bpf, err, name, "set pin path", path);
    }
    return {};
}

// The filter maps are created and filled here, before the program is loaded
// (by us or by libxdp), and handed to the object with bpf_map__reuse_fd: the
// program never runs against a half-filled filter.
Result<void> prefill_filter_map(bpf_map* map, const std::function<Result<void>(int)>& fill) {
    const char* name = bpf_map__name(map);
    LIBBPF_OPTS(bpf_map_create_opts, copts);
    copts.map_flags = bpf_map__map_flags(map);
    UniqueFd fd(bpf_map_create(bpf_map__type(map), name, bpf_map__key_size(map),
                            bpf_map__value_size(map), bpf_map__max_entries(map), &copts));
    if (fd.get() < 0) return make_error(ErrorKind::Bpf, errno, name, "create filter map");
    if (auto r = fill(fd.get()); !r) return r;
    if (int err = bpf_map__reuse_fd(map, fd.get()))
        return make_error(ErrorKind::Bpf, err, name, "hand filter map to the object");
    return {};
}

Result<void> prefill_filter_maps(flowmgr_bpf* s, const FlowMgrOptions& o) {
    auto fill_ports = [&](int fd) -> Result<void> {
        uint8_t one = 1;
        for (uint16_t port : o.ports)
            if (bpf_map_update_elem(fd, &port, &one, BPF_ANY))
                return make_error(ErrorKind::Bpf, errno, ETC_MAP_PORTS, "add port",
                                  std::to_string(port));
        return {};
    };
    auto fill_cidrs = [&](int fd) -> Result<void> {
        auto add = [&](const Cidr& c, uint8_t action) -> Result<void> {
            etc_cidr_key k{};
            k.prefixlen = 8u + c.prefix;
            k.family = c.family;
            std::memcpy(k.addr, c.addr.data(), sizeof(k.addr));
            if (bpf_map_update_elem(fd, &k, &action, BPF_ANY))
                return make_error(ErrorKind::Bpf, errno, ETC_MAP_CIDRS, "add CIDR rule");
            return {};
        };
        for (const auto& c : o.allow)
            if (auto r = add(c, ETC_CIDR_ALLOW); !r) return r;
        for (const auto& c : o.deny)
            if (auto r = add(c, ETC_CIDR_DENY); !r) return r;
        return {};
    };
    if (!o.ports.empty())
        if (auto r = prefill_filter_map(s->maps.etc_ports, fill_ports); !r) return r;
    if (!o.allow.empty() || !o.deny.empty())
        if (auto r = prefill_filter_map(s->maps.etc_cidrs, fill_cidrs); !r) return r;
    return {};
}

}  // namespace

Result<FlowManager> FlowManager::open(const FlowMgrOptions& o) {
    if (auto v = o.validate(); !v) return v.error();
    auto skel = Skeleton<flowmgr_bpf>::open(kWhat);
    if (!skel) return skel.error();
    flowmgr_bpf* s = skel->get();

    auto& cfg = s->rodata->cfg;
    cfg.idle_timeout_ns = uint64_t{o.idle_timeout_s} * 1000000000ull;
    cfg.ns_per_tick = kernel_ns_per_tick();
    cfg.max_pkts = o.max_pkts;
    cfg.snap_len = o.snap_len;
    cfg.delivery = static_cast<uint8_t>(o.delivery);
    cfg.unselected_drop = o.unselected_drop;
    cfg.count_all = o.count_all;
    cfg.meta_all = o.meta_all;
    if (!o.protocols.empty()) {
        for (auto& w : cfg.proto_allow) w = 0;
        for (uint8_t p : o.protocols) cfg.proto_allow[p >> 6] |= 1ull << (p & 63);
    }
    cfg.port_filter = !o.ports.empty();
    cfg.cidr_allow = !o.allow.empty();
    cfg.cidr_deny = !o.deny.empty();
    cfg.bench_stage = o.bench_stage;
    cfg.ring_no_wakeup = !o.ring_wakeup;

    // The section-"xdp" twin is for `ip link`; loading it too would only
    // double the verification work.
    int err = bpf_program__set_autoload(s->progs.xdp_flowmgr_sb, false);
    if (!err) err = bpf_map__set_max_entries(s->maps.etc_flows4, o.flows);
    if (!err) err = bpf_map__set_max_entries(s->maps.etc_flows, o.flows);
    if (!err) err = bpf_map__set_max_entries(s->maps.etc_ringbuf, o.ringbuf_bytes);
    if (o.percpu_lru)
        for (bpf_map* table : {s->maps.etc_flows4, s->maps.etc_flows})
            if (!err) err = bpf_map__set_map_flags(table, bpf_map__map_flags(table) | BPF_F_NO_COMMON_LRU);
    if (err) return make_error(ErrorKind::Bpf, err, kWhat, "size maps");
    if (!o.pin_path.empty())
        if (auto r = check_pin_dir(o.pin_path); !r) return r.error();
    if (auto r = configure_pins(s->obj, o.pin_path); !r) return r.error();
    if (auto r = prefill_filter_maps(s, o); !r) return r.error();

    FlowManager fm;
    fm.impl_ = std::make_unique<Impl>();
    fm.impl_->opts = o;
    fm.impl_->skel = std::move(skel.value());
    return fm;
}

Result<void> FlowManager::load() { return impl_->skel.load(kWhat); }

Result<FlowManager> FlowManager::load(const FlowMgrOptions& o) {
    auto fm = open(o);
    if (!fm) return fm.error();
    if (auto r = fm->load(); !r) return r.error();
    return fm;
}

const FlowMgrOptions& FlowManager::options() const { return impl_->opts; }
bpf_object* FlowManager::object() const { return impl_->skel->obj; }
bpf_program* FlowManager::program() const { return impl_->skel->progs.xdp_flowmgr; }
int FlowManager::prog_fd() const { return bpf_program__fd(program()); }

int FlowManager::map_fd(const char* name) const {
    bpf_map* m = bpf_object__find_map_by_name(object(), name);
    return m ? bpf_map__fd(m) : -1;
}

Result<TestRunResult> flowmgr_test_run(int prog_fd, std::span<const uint8_t> frame,
                                       uint64_t ts_ns, uint32_t repeat, TestRunBuffers& bufs) {
    etc_meta replay{};
    replay.ts_ns = ts_ns;
    replay.magic = ETC_META_MAGIC_REPLAY;
    const std::span<const uint8_t> replay_bytes(reinterpret_cast<const uint8_t*>(&replay),
                                                ts_ns ? sizeof(replay) : 0);
    // The program leaves the frame as it was and a metadata area it was
    // given at its size (it writes etc_meta in place of the replay header):
    // only that comes back, not a copy of the frame per run.
    auto run = xdp_test_run(prog_fd, frame, replay_bytes, repeat, bufs, TestRunOutput::MetaOnly);
    if (!run) return run.error();
    TestRunResult r;
    r.action = run->action;
    r.duration_ns = run->duration_ns;
    // The program writes its etc_meta just in front of the frame.
    if (run->meta.size() >= sizeof(etc_meta)) {
        etc_meta m;
        std::memcpy(&m, run->meta.data() + run->meta.size() - sizeof(m), sizeof(m));
        if (m.magic == ETC_META_MAGIC) r.meta = m;
    }
    return r;
}

Result<TestRunResult> FlowManager::test_run(std::span<const uint8_t> frame, uint64_t ts_ns,
                                            uint32_t repeat) {
    impl_->flows_empty = false;
    auto r = flowmgr_test_run(prog_fd(), frame, ts_ns, repeat, impl_->bufs);
    if (!r) {
        Error e = r.error();
        e.subject = ETC_PROG_FLOWMGR;
        return e;
    }
    return r;
}

namespace {

// The visitor's key from a table's own key.
etc_flow_key full_key(const etc_flow_key& k) { return k; }
etc_flow_key full_key(const etc_flow_key4& k4) {
    etc_flow_key k;
    etc_flow_key_from4(&k, &k4);
    return k;
}

// Every entry of one flow table (Key: its key type), `visit`ed (when given)
// and, with `and_delete`, removed: BPF_MAP_*_BATCH walks the buckets once in
// the kernel, a chunk of entries per syscall. (Deleting the first key until
// none is left rescans the table from bucket 0 each time: with 2^18
// buckets that was most of a replay over many small captures.) Kernels
// without batch operations: one pass with get_next_key, then the deletes.
template <typename Key>
Result<size_t> walk_table(int fd, bool and_delete, const FlowManager::FlowVisitor* visit) {
    constexpr const char* table = std::is_same_v<Key, etc_flow_key4> ? ETC_MAP_FLOWS4 : ETC_MAP_FLOWS;
    uint32_t chunk = 4096;
    std::vector<Key> keys(chunk);
    std::vector<etc_flow_value> vals(chunk);
    uint64_t in_token = 0, out_token = 0;
    bool first = true;
    size_t n = 0;
    LIBBPF_OPTS(bpf_map_batch_opts, opts);
    for (;;) {
        uint32_t count = chunk;
        const int err = and_delete
                            ? bpf_map_lookup_and_delete_batch(fd, first ? nullptr : &in_token, &out_token,
                                                              keys.data(), vals.data(), &count, &opts)
                            : bpf_map_lookup_batch(fd, first ? nullptr : &in_token, &out_token, keys.data(),
                                                   vals.data(), &count, &opts);
        const int e = err ? errno : 0;
        if (err && e == ENOSPC && count == 0) {  // one bucket holds more than a chunk
            chunk *= 2;
            keys.resize(chunk);
            vals.resize(chunk);
            continue;
        }
        if (err && e != ENOENT) {
            if (first && (e == EINVAL || e == ENOTSUP || e == EOPNOTSUPP || e == 524 /* ENOTSUPP */)) break;
            return make_error(ErrorKind::Bpf, e, table, and_delete ? "empty flow table" : "iterate flow table");
        }
        for (uint32_t i = 0; i < count; ++i)
            if (visit) (*visit)(full_key(keys[i]), vals[i]);
        n += count;
        if (err) return n;  // ENOENT: that was the last chunk
        in_token = out_token;
        first = false;
    }
    // Fallback: one pass over the keys, then the lookups or deletes.
    std::vector<Key> all;
    Key key{}, next{};
    const void* prev = nullptr;
    while (bpf_map_get_next_key(fd, prev, &next) == 0) {
        all.push_back(next);
        key = next;
        prev = &key;
    }
    if (errno != ENOENT) return make_error(ErrorKind::Bpf, errno, table, "iterate flow table");
    n = 0;
    for (const Key& k : all) {
        etc_flow_value v{};
        if (visit && bpf_map_lookup_elem(fd, &k, &v) == 0) (*visit)(full_key(k), v);
        if (and_delete && bpf_map_delete_elem(fd, &k) && errno != ENOENT)
            return make_error(ErrorKind::Bpf, errno, table, "empty flow table");
        ++n;
    }
    return n;
}

// Both tables, IPv4 first.
Result<size_t> walk_flows(const flowmgr_bpf& s, bool and_delete, const FlowManager::FlowVisitor* visit) {
    auto n4 = walk_table<etc_flow_key4>(bpf_map__fd(s.maps.etc_flows4), and_delete, visit);
    if (!n4) return n4.error();
    auto n6 = walk_table<etc_flow_key>(bpf_map__fd(s.maps.etc_flows), and_delete, visit);
    if (!n6) return n6.error();
    return *n4 + *n6;
}

}  // namespace

Result<void> FlowManager::reset() {
    auto& s = *impl_->skel.get();
    if (!impl_->flows_empty)
        if (auto r = walk_flows(s, true, nullptr); !r) return r.error();

    int ncpu = libbpf_num_possible_cpus();
    if (ncpu <= 0) return make_error(ErrorKind::Bpf, ncpu, "cpus", "count possible CPUs");
    const std::vector<etc_counters> zero_counters(static_cast<size_t>(ncpu));
    const etc_run_stats zero_stats{};
    const uint32_t slot = 0;
    if (bpf_map_update_elem(bpf_map__fd(s.maps.etc_counters), &slot, zero_counters.data(), BPF_ANY))
        return make_error(ErrorKind::Bpf, errno, ETC_MAP_COUNTERS, "zero counters");
    if (bpf_map_update_elem(bpf_map__fd(s.maps.etc_run_stats), &slot, &zero_stats, BPF_ANY))
        return make_error(ErrorKind::Bpf, errno, ETC_MAP_RUN_STATS, "zero run stats");

    if (auto r = drain_ring([](const etc_ring_hdr&, std::span<const uint8_t>) {}); !r)
        return r.error();
    // Through the map, not s.bss: when libxdp loaded the object the
    // skeleton's bss pointer is not the kernel's memory.
    const std::vector<uint8_t> zero_bss(bpf_map__value_size(s.maps.bss));
    if (bpf_map_update_elem(bpf_map__fd(s.maps.bss), &slot, zero_bss.data(), BPF_ANY))
        return make_error(ErrorKind::Bpf, errno, "etc_next_flow_id", "restart flow ids");
    return {};
}

Result<Counters> FlowManager::counters() const {
    return read_counters(bpf_map__fd(impl_->skel->maps.etc_counters));
}

Result<size_t> FlowManager::for_each_flow(const FlowVisitor& visit) const {
    return walk_flows(*impl_->skel.get(), false, &visit);
}

Result<size_t> FlowManager::take_flows(const FlowVisitor& visit) {
    auto n = walk_flows(*impl_->skel.get(), true, &visit);
    if (n) impl_->flows_empty = true;
    return n;
}

Result<size_t> FlowManager::take_flows(std::span<const etc_flow_key> keys, const FlowVisitor& visit) {
    const int fd4 = bpf_map__fd(impl_->skel->maps.etc_flows4), fd6 = bpf_map__fd(impl_->skel->maps.etc_flows);
    size_t taken = 0;
    bool keyed = impl_->opts.pin_path.empty();
    for (size_t i = 0; keyed && i < keys.size(); ++i) {
        const etc_flow_key& k = keys[i];
        etc_flow_key4 k4;
        const void* table_key = &k;
        if (k.family == 4) {
            etc_flow_key4_from(&k4, &k);
            table_key = &k4;
        }
        etc_flow_value v{};
        if (bpf_map_lookup_and_delete_elem(k.family == 4 ? fd4 : fd6, table_key, &v) == 0) {
            visit(k, v);
            ++taken;
        } else if (errno != ENOENT) {
            keyed = false;  // a kernel without it for hash maps (< 5.14): the pass does it all
        }
    }
    if (keyed) {
        auto c = counters();
        if (!c) return c.error();
        if (taken == (*c)[ETC_CNT_FLOW_NEW]) {
            impl_->flows_empty = true;
            return taken;
        }
    }
    auto rest = take_flows(visit);
    if (!rest) return rest.error();
    return taken + *rest;
}

Result<int> FlowManager::drain_ring(const RingVisitor& visit, int timeout_ms) {
    auto& im = *impl_;
    im.ring_visit = visit;
    if (!im.ring) {
        auto cb = [](void* ctx, void* data, size_t size) -> int {
            auto* self = static_cast<Impl*>(ctx);
            if (size < sizeof(etc_ring_hdr)) return 0;
            etc_ring_hdr hdr;
            std::memcpy(&hdr, data, sizeof(hdr));
            size_t cap = std::min<size_t>(hdr.cap_len, size - sizeof(hdr));
            self->ring_visit(hdr, {static_cast<const uint8_t*>(data) + sizeof(hdr), cap});
            return 0;
        };
        im.ring = ring_buffer__new(bpf_map__fd(im.skel->maps.etc_ringbuf), cb, &im, nullptr);
        if (!im.ring) return make_error(ErrorKind::Bpf, errno, ETC_MAP_RINGBUF, "open ring buffer");
    }
    int n = timeout_ms ? ring_buffer__poll(im.ring, timeout_ms) : ring_buffer__consume(im.ring);
    if (n < 0 && n != -EINTR)
        return make_error(ErrorKind::Bpf, n, ETC_MAP_RINGBUF, "consume ring buffer");
    return n < 0 ? 0 : n;
}

}  // namespace etcpipe

namespace etcpipe {
namespace {
constexpr int kCountersListed = 0
#define X(e, n, d) +1
#include "counters.def"
#undef X
    ;
static_assert(kCountersListed == ETC_CNT_MAX, "loader/counters.def must list every etc_counter");
}  // namespace
}  // namespace etcpipe
