#include "mdfeed/topology.hpp"

#include <utility>
#include <vector>

namespace etcpipe::md {

Result<Topology> Topology::create(const TopologyOptions& o) {
    if (o.tag.empty() || o.tag.size() > 7)
        return Error{ErrorKind::Usage, 0, o.tag, "create market-data topology",
                     "the name tag must be 1..7 characters", ""};
    Topology t;
    const std::string net = "10." + std::to_string(o.subnet) + ".0.";
    t.exchange_addr_ = net + "1";
    t.member_addr_ = net + "2";
    VethPairSpec spec;
    spec.ns_a = "mdx" + o.tag;
    spec.ns_b = "mdm" + o.tag;
    spec.veth_a = "mdvx" + o.tag;
    spec.veth_b = "mdvm" + o.tag;
    spec.mac_a = "02:79:00:00:00:01";
    spec.mac_b = "02:79:00:00:00:02";
    spec.addr_a = t.exchange_addr_ + "/24";
    spec.addr_b = t.member_addr_ + "/24";
    spec.static_neighbours = true;
    auto link = NetnsPair::create(spec);
    if (!link) return link.error();
    t.link_ = std::move(*link);
    if (!o.mirror) return t;
    auto mon = ScopedNetns::create("mdo" + o.tag);
    if (!mon) return mon.error();
    t.monitor_ = std::move(*mon);
    t.mirror_tx_ = "mdsx" + o.tag;
    t.mirror_rx_ = "mdsr" + o.tag;
    if (auto r = disable_ipv6(t.monitor_ns()); !r) return r.error();
    if (auto r = t.add_mirror(); !r) return r.error();
    return t;
}

// The monitor link and the two mirred filters (u32 match-all: the kernels
// we run on may lack cls_matchall).
Result<void> Topology::add_mirror() {
    const std::string& m = member_ns();
    const std::vector<std::vector<std::string>> steps = {
        {"ip", "-n", m, "link", "add", mirror_tx_, "type", "veth", "peer", "name", mirror_rx_,
         "netns", monitor_ns()},
        {"ip", "-n", m, "link", "set", mirror_tx_, "up"},
        {"ip", "-n", monitor_ns(), "link", "set", mirror_rx_, "promisc", "on", "up"},
        {"tc", "-n", m, "qdisc", "add", "dev", member_veth(), "clsact"},
        {"tc", "-n", m, "filter", "add", "dev", member_veth(), "ingress", "protocol", "all", "u32",
         "match", "u32", "0", "0", "action", "mirred", "egress", "mirror", "dev", mirror_tx_},
        {"tc", "-n", m, "filter", "add", "dev", member_veth(), "egress", "protocol", "all", "u32",
         "match", "u32", "0", "0", "action", "mirred", "egress", "mirror", "dev", mirror_tx_},
    };
    for (const auto& s : steps)
        if (auto r = run_command(s); !r) return r;
    return {};
}

Topology::~Topology() = default;

}  // namespace etcpipe::md
