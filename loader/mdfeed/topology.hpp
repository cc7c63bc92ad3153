// The private network the market-data tests, `md bench` and the demo run on:
// an exchange host and a member host joined by a veth pair, and a monitor
// host whose veth receives a copy of every frame on the member's link, in
// both directions, made by tc mirred, as a switch SPAN port copies a port to
// the monitor port. All of it is removed by the destructor.
//
//   exchange ns [veth_x 10.79.N.1] ==== [veth_m 10.79.N.2] member ns
//                                          | tc ingress+egress mirred
//                                       [mirror_tx] ==== [mirror_rx] monitor ns
#pragma once

#include <string>

#include "common/netns.hpp"
#include "common/result.hpp"

namespace etcpipe::md {

struct TopologyOptions {
    std::string tag;      // unique suffix for names (≤ 7 characters), e.g. the pid
    unsigned subnet = 79; // addresses 10.<subnet>.0.1 / .2
    bool mirror = true;   // also the monitor namespace and the mirred copy
};

class Topology {
  public:
    [[nodiscard]] static Result<Topology> create(const TopologyOptions& o);

    Topology(Topology&&) noexcept = default;
    Topology& operator=(Topology&&) noexcept = default;
    ~Topology();

    [[nodiscard]] const std::string& exchange_ns() const { return link_.ns_a(); }
    [[nodiscard]] const std::string& member_ns() const { return link_.ns_b(); }
    [[nodiscard]] const std::string& monitor_ns() const { return monitor_.name(); }
    [[nodiscard]] const std::string& exchange_veth() const { return link_.veth_a(); }
    [[nodiscard]] const std::string& member_veth() const { return link_.veth_b(); }
    [[nodiscard]] const std::string& mirror_tx() const { return mirror_tx_; }  // in member ns
    [[nodiscard]] const std::string& mirror_rx() const { return mirror_rx_; }  // in monitor ns
    [[nodiscard]] const std::string& exchange_addr() const { return exchange_addr_; }
    [[nodiscard]] const std::string& member_addr() const { return member_addr_; }

  private:
    Topology() = default;
    [[nodiscard]] Result<void> add_mirror();

    NetnsPair link_;
    ScopedNetns monitor_;  // declared after link_: deleted first, its veth end with it
    std::string mirror_tx_, mirror_rx_;
    std::string exchange_addr_, member_addr_;
};

}  // namespace etcpipe::md
