#include "cli/flowmgr_args.hpp"

#include <map>

#include "cli/cli_common.hpp"

namespace etcpipe::cli {

Result<FlowMgrOptions> FlowMgrArgs::to_options() const {
    FlowMgrOptions o;
    o.max_pkts = packets;
    o.flows = flows;
    o.idle_timeout_s = idle;
    o.snap_len = snap;
    if (ringbuf_kib > kMaxRingbufBytes / 1024)
        return Error{ErrorKind::Usage, 0, "--ringbuf-kib", "check options",
                     std::to_string(ringbuf_kib) + " KiB is above the maximum of " +
                         std::to_string(kMaxRingbufBytes >> 10) + " KiB",
                     {}};
    o.ringbuf_bytes = static_cast<decltype(o.ringbuf_bytes)>(ringbuf_kib * 1024u);
    o.delivery = delivery;
    o.unselected_drop = drop_unselected;
    o.count_all = count_all;
    o.meta_all = meta_all;
    o.pin_path = pin_path;
    if (!protocols.empty()) {
        auto p = parse_protocols(protocols);
        if (!p) return p.error();
        o.protocols = *p;
    }
    if (!ports.empty()) {
        auto p = parse_ports(ports);
        if (!p) return p.error();
        o.ports = *p;
    }
    for (const auto& a : allow) {
        auto c = parse_cidr(a);
        if (!c) return c.error();
        o.allow.push_back(*c);
    }
    for (const auto& d : deny) {
        auto c = parse_cidr(d);
        if (!c) return c.error();
        o.deny.push_back(*c);
    }
    if (auto v = o.validate(); !v) return v.error();
    return o;
}

void add_flowmgr_options(CLI::App* cmd, FlowMgrArgs& a) {
    const std::string g = "FlowManager";
    add_option(cmd, "-N,--packets", a.packets,
                    "packets selected per flow: the first N that carry L4 payload")
        ->capture_default_str()->group(g);
    add_option(cmd, "--flows", a.flows, "entries of each flow table, IPv4 and IPv6 (LRU: the least recent is evicted)")
        ->capture_default_str()->group(g);
    add_option(cmd, "--idle-timeout", a.idle, "seconds of silence after which a flow starts afresh")
        ->capture_default_str()->group(g);
    cmd->add_flag("--count-all", a.count_all,
                  "select the first N packets of a flow, payload or not (pure ACKs too)")
        ->group(g);
    const std::map<std::string, etc_delivery> deliveries{{"tap", ETC_DELIVERY_TAP},
                                                         {"inline", ETC_DELIVERY_INLINE}};
    add_option(cmd, "--delivery", a.delivery,
                    "tap: selected packets to AF_XDP (XSKMAP); inline: copy their first "
                    "--snap bytes to a ring buffer and pass every packet")
        ->transform(CLI::CheckedTransformer(deliveries, CLI::ignore_case))
        ->group(g);
    cmd->add_flag("--meta-all", a.meta_all,
                  "write the etc_meta metadata in front of every tracked packet, not only the "
                  "selected ones (for a program after this one that reads it)")
        ->group(g);
    cmd->add_flag("--drop-unselected", a.drop_unselected,
                  "tap: drop packets that are not selected (default: pass them to the stack)")
        ->group(g);
    add_option(cmd, "--snap", a.snap, "inline: bytes copied per selected packet (1..2048)")
        ->capture_default_str()->group(g);
    add_option(cmd, "--ringbuf-kib", a.ringbuf_kib, "inline: ring buffer size in KiB (power of 2)")
        ->capture_default_str()->group(g);
    add_option(cmd, "--protocols", a.protocols,
                    "only these IP protocols, e.g. tcp,udp,47 (default: all)")
        ->group(g);
    add_option(cmd, "--ports", a.ports, "only flows with one of these ports, e.g. 443,8000-8100")
        ->group(g);
    add_option(cmd, "--allow", a.allow,
                    "only flows with an address in this CIDR (repeatable), e.g. 10.0.0.0/8")
        ->group(g);
    add_option(cmd, "--deny", a.deny, "ignore flows with an address in this CIDR (repeatable)")
        ->group(g);
}

}  // namespace etcpipe::cli
