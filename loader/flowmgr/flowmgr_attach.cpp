#include "flowmgr/flowmgr_attach.hpp"

#include <bpf/bpf.h>
#include <signal.h>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <optional>
#include <vector>

#include "common/log.hpp"
#include "common/prog_maps.hpp"
#include "etcpipe/flowmgr.h"
#include "flowmgr.skel.h"
#include "flowmgr/live.hpp"
#include "flowmgr/replay.hpp"

namespace etcpipe {
namespace {

// What status shows of one FlowManager, read from its own maps (found
// through its map ids, so no pins are needed).
struct FlowMgrState {
    std::optional<Counters> counters;
    std::optional<etc_flowmgr_config> config;
    size_t flows4 = 0, flows = 0;  // IPv4 table, IPv6 table
    uint32_t flow_capacity4 = 0, flow_capacity = 0;
    std::optional<etc_run_stats> run;  // an `etcpipe run` reading it
};

size_t count_keys(int map_fd, uint32_t key_size) {
    std::vector<uint8_t> key(key_size), next(key_size);
    const void* prev = nullptr;
    size_t n = 0;
    while (bpf_map_get_next_key(map_fd, prev, next.data()) == 0) {
        ++n;
        key = next;
        prev = key.data();
    }
    return n;
}

}  // namespace

// The config lives in .rodata (const volatile, set at load time).
std::optional<etc_flowmgr_config> read_rodata_config(int map_fd, const bpf_map_info& mi) {
    constexpr size_t off = offsetof(flowmgr_bpf::flowmgr_bpf__rodata, cfg);
    std::vector<uint8_t> val(mi.value_size);
    uint32_t zero = 0;
    if (val.size() < off + sizeof(etc_flowmgr_config) || bpf_map_lookup_elem(map_fd, &zero, val.data()))
        return std::nullopt;
    etc_flowmgr_config cfg;
    std::memcpy(&cfg, val.data() + off, sizeof(cfg));
    return cfg;
}

namespace {

FlowMgrState read_state(int prog_fd) {
    FlowMgrState st;
    auto r = for_each_program_map(prog_fd, [&](int fd, const bpf_map_info& mi) {
        const std::string name = mi.name;
        if (name == ETC_MAP_COUNTERS) {
            if (auto c = read_counters(fd)) st.counters = *c;
        } else if (name == ETC_MAP_FLOWS4) {
            st.flow_capacity4 = mi.max_entries;
            st.flows4 = count_keys(fd, mi.key_size);
        } else if (name == ETC_MAP_FLOWS) {
            st.flow_capacity = mi.max_entries;
            st.flows = count_keys(fd, mi.key_size);
        } else if (name == ETC_MAP_RUN_STATS && mi.value_size == sizeof(etc_run_stats)) {
            etc_run_stats rs{};
            uint32_t zero = 0;
            if (bpf_map_lookup_elem(fd, &zero, &rs) == 0 && rs.pid != 0) st.run = rs;
        } else if (name.size() > 7 && name.ends_with(".rodata")) {
            st.config = read_rodata_config(fd, mi);
        }
    });
    if (!r) ETC_WARN("FlowManager: read program info: %s", r.error().message().c_str());
    return st;
}

void print_config(std::FILE* out, const etc_flowmgr_config& c) {
    std::fprintf(out, "    config: N=%u  idle=%llus  delivery=%s%s  snap=%u%s\n", c.max_pkts,
                 static_cast<unsigned long long>(c.idle_timeout_ns / 1000000000ull),
                 c.delivery == ETC_DELIVERY_INLINE ? "inline" : "tap",
                 c.delivery == ETC_DELIVERY_TAP
                     ? (c.unselected_drop ? " (drop unselected)" : " (pass unselected)")
                     : "",
                 c.snap_len, c.count_all ? "  count-all" : "");
    int protos = 0;
    for (auto w : c.proto_allow) protos += __builtin_popcountll(w);
    std::fprintf(out, "    filters: protocols=%s ports=%s cidr-allow=%s cidr-deny=%s\n",
                 protos == 256 ? "all" : (std::to_string(protos) + " allowed").c_str(),
                 c.port_filter ? "on" : "off", c.cidr_allow ? "on" : "off", c.cidr_deny ? "on" : "off");
}

void describe_flowmgr(int prog_fd, bool all_counters, std::FILE* out) {
    const FlowMgrState st = read_state(prog_fd);
    if (st.config) print_config(out, *st.config);
    std::fprintf(out, "    flows:  %zu IPv4 in table (capacity %u), %zu IPv6 (capacity %u)\n", st.flows4,
                 st.flow_capacity4, st.flows, st.flow_capacity);
    if (st.counters) {
        const bool any = std::any_of(st.counters->begin(), st.counters->end(),
                                     [](uint64_t v) { return v != 0; });
        std::fprintf(out, "    counters:%s\n", any || all_counters ? "" : " all zero (no packets yet)");
        print_counters(out, *st.counters, all_counters);
    }
    if (st.run) {
        const bool alive = kill(static_cast<pid_t>(st.run->pid), 0) == 0;
        std::fprintf(out, "    etcpipe run: pid %llu (%s)\n", static_cast<unsigned long long>(st.run->pid),
                     alive ? "running" : "exited; last values");
        print_run_stats(out, *st.run, "      ");
    }
}

}  // namespace

Result<AttachResult> attach_flowmgr(const std::string& iface, XdpMode mode, const FlowMgrOptions& opts) {
    if (mode == XdpMode::Hw)
        return Error{ErrorKind::Usage, EOPNOTSUPP, iface, "offload FlowManager",
                     "NFP offload accepts array and hash maps only; the FlowManager needs an LRU "
                     "hash, a per-CPU array, a ring buffer, an XSKMAP and an LPM trie "
                     "(`etcpipe check --target nfp bpf/flowmgr.bpf.o` lists every reason)",
                     "use --mode native (or skb); hw mode is for offload-clean programs such as "
                     "--prog anova"};
    auto fm = FlowManager::open(opts);
    if (!fm) return fm.error();
    // The filter maps were filled before load (FlowManager::open): nothing
    // to do afterwards.
    return attach_object(iface, mode, fm->object(), ETC_PROG_FLOWMGR, {});
}

ProgramKind flowmgr_program_kind() {
    ProgramKind k;
    k.application = "FlowManager";
    k.prog_names = {ETC_PROG_FLOWMGR, ETC_PROG_FLOWMGR_SB};
    // The maps it pins by name (see bpf/flowmgr.bpf.c): removed by `unload -p`.
    k.pinned_maps = {ETC_MAP_FLOWS4, ETC_MAP_FLOWS, ETC_MAP_COUNTERS, ETC_MAP_XSKS, ETC_MAP_RINGBUF, ETC_MAP_RUN_STATS};
    k.describe = describe_flowmgr;
    return k;
}

}  // namespace etcpipe
