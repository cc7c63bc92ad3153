// Network namespaces and veth pairs for tools and tests that need a private
// two-host network: named namespaces (`ip netns`), a veth pair between them,
// and running code inside one (setns is per thread, so on a thread of its
// own). Everything created is removed by destructors, also after a failed
// step, so no run leaves a namespace behind.
#pragma once

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "common/result.hpp"

namespace etcpipe {

// Runs argv (no shell); stdout and stderr are captured into the error.
[[nodiscard]] Result<void> run_command(const std::vector<std::string>& argv);

[[nodiscard]] bool netns_exists(const std::string& name);

// IPv6 off in namespace `name`, for the links created afterwards too (no
// ND/MLD traffic on them).
[[nodiscard]] Result<void> disable_ipv6(const std::string& name);

// Moves the calling thread into the named namespace (/run/netns/NAME).
[[nodiscard]] Result<void> enter_netns(const std::string& name);

// Runs fn() on a fresh thread that entered namespace `name`, so the caller's
// thread keeps its own namespace.
[[nodiscard]] Result<void> in_netns(const std::string& name,
                                    const std::function<Result<void>()>& fn);

// A named network namespace (`ip netns add`), deleted by the destructor.
class ScopedNetns {
  public:
    ScopedNetns() = default;
    explicit ScopedNetns(std::string name) : name_(std::move(name)) {}
    ~ScopedNetns();
    ScopedNetns(ScopedNetns&& o) noexcept : name_(std::exchange(o.name_, {})) {}
    ScopedNetns& operator=(ScopedNetns&&) noexcept;
    ScopedNetns(const ScopedNetns&) = delete;
    ScopedNetns& operator=(const ScopedNetns&) = delete;

    // Creates it with loopback up; fails (EEXIST) when it exists already.
    [[nodiscard]] static Result<ScopedNetns> create(const std::string& name);
    [[nodiscard]] const std::string& name() const { return name_; }
    void reset();

  private:
    std::string name_;
};

// Two namespaces joined by a veth pair: veth_a in ns_a, its peer veth_b in
// ns_b. IPv6 is off in both before the links exist and both links are up,
// so the only traffic on the pair is what the caller sends.
struct VethPairSpec {
    std::string ns_a, ns_b;          // created here; an existing one is an error
    std::string veth_a, veth_b;
    std::string mac_a, mac_b;        // empty: the kernel picks
    std::string addr_a, addr_b;      // IPv4 with prefix, "10.78.0.1/24"; empty: none
    bool static_neighbours = false;  // permanent ARP entries: needs MACs and addresses
    unsigned queues = 0;             // RX and TX queues per end; 0: veth's default
};

class NetnsPair {
  public:
    NetnsPair() = default;
    ~NetnsPair() = default;  // b_, a_ deleted in reverse order; the veth goes with them
    NetnsPair(NetnsPair&&) noexcept = default;
    NetnsPair& operator=(NetnsPair&&) noexcept = default;

    // Fails (and removes what it made) when any step fails.
    [[nodiscard]] static Result<NetnsPair> create(const VethPairSpec& spec);

    // Deletes the veth pair and adds it again with `queues` queues per end
    // (addresses, neighbours and link state as at create()).
    [[nodiscard]] Result<void> recreate_veth(unsigned queues);

    [[nodiscard]] const std::string& ns_a() const { return a_.name(); }
    [[nodiscard]] const std::string& ns_b() const { return b_.name(); }
    [[nodiscard]] const std::string& veth_a() const { return spec_.veth_a; }
    [[nodiscard]] const std::string& veth_b() const { return spec_.veth_b; }

  private:
    [[nodiscard]] Result<void> add_veth();

    ScopedNetns a_, b_;
    VethPairSpec spec_;
};

}  // namespace etcpipe
