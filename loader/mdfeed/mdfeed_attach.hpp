// The market-data feed filter (bpf/mdfeed.bpf.c) from user space: the filter
// strings of the command line, the program loaded for BPF_PROG_TEST_RUN or
// attached through libxdp, its AF_XDP sockets, its counters and metadata, and
// what `etcpipe status` / `unload` know of it (its ProgramKind).
//
// Lifetime: FeedProgram owns the skeleton. An attachment outlives it (the
// kernel keeps the program and its maps) until `etcpipe unload` or
// detach(); the sockets in its XSKMAP leave it when they close.
#pragma once

#include <array>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"
#include "common/xdp_attach.hpp"
#include "common/xsk.hpp"
#include "etcpipe/mdfeed.h"

struct bpf_object;

namespace etcpipe::md {

// ---- filters -----------------------------------------------------------------

// A multicast group, optionally with a UDP destination port.
struct McastGroup {
    uint8_t family = 4;              // 4 or 6
    std::array<uint8_t, 16> addr{};  // network order; IPv4 in the first 4 bytes
    uint16_t port = 0;               // 0: any port
};

// An exchange server whose TCP segments are feed data (mirror port).
struct TcpServer {
    uint8_t family = 4;
    std::array<uint8_t, 16> addr{};
    uint16_t port = 0;               // 0: any port
};

// "5000" → 5000 (1..65535).
[[nodiscard]] Result<uint16_t> parse_udp_port(std::string_view text);
// "5000,5001,6000-6010" → the ports, in order.
[[nodiscard]] Result<std::vector<uint16_t>> parse_udp_ports(std::string_view text);
// "239.1.1.1:5000", "239.1.1.1" (any port), "[ff15::1]:5000", "[ff15::1]" or
// "ff15::1" (any port). The address must be multicast (224.0.0.0/4, ff00::/8).
[[nodiscard]] Result<McastGroup> parse_group(std::string_view text);
// "10.0.0.1:9000", "[2001:db8::1]:9000", "10.0.0.1" or "2001:db8::1" (any
// port). Multicast and unspecified addresses are refused.
[[nodiscard]] Result<TcpServer> parse_tcp_server(std::string_view text);
// Comma-separated lists of the above.
[[nodiscard]] Result<std::vector<McastGroup>> parse_groups(std::string_view text);
[[nodiscard]] Result<std::vector<TcpServer>> parse_tcp_servers(std::string_view text);

// "239.1.1.1:5000", "[ff15::1]:*": the form the parsers read (port 0 as *).
[[nodiscard]] std::string to_string(const McastGroup& g);
[[nodiscard]] std::string to_string(const TcpServer& s);

struct FeedFilter {
    std::vector<uint16_t> udp_ports;      // UDP by destination port, any address
    std::vector<McastGroup> groups;       // UDP to these groups (checked before ports)
    std::vector<TcpServer> tcp_servers;   // TCP from these servers
    bool tcp_both_directions = false;     // also TCP to them

    // At least one entry, at most the map sizes, families 4/6, group
    // addresses multicast.
    [[nodiscard]] Result<void> validate() const;
};

// The .rodata config a filter loads with.
[[nodiscard]] md_feed_config make_config(const FeedFilter& filter);

// ---- counters ----------------------------------------------------------------

using Counters = std::array<uint64_t, MD_CNT_MAX>;  // indexed by enum md_counter

[[nodiscard]] const char* counter_name(int counter);  // "rx", "redirect_udp", ...
[[nodiscard]] const char* counter_doc(int counter);
// Sums the per-CPU slots of an MD_MAP_COUNTERS map.
[[nodiscard]] Result<Counters> read_counters(int map_fd);
// "  name  value  doc" lines; zero counters only with all.
void print_counters(std::FILE* out, const Counters& c, bool all, const char* indent = "  ");

// ---- metadata ----------------------------------------------------------------

// For XskOptions::meta: the sockets then hand md_meta over as Frame::meta.
[[nodiscard]] XskMetaFormat xsk_meta_format();
// The md_meta at the end of a metadata area (the bytes just in front of the
// packet), if the magic and version are the program's.
[[nodiscard]] std::optional<md_meta> parse_meta(std::span<const uint8_t> meta_area);
// The md_meta of a received frame (socket created with xsk_meta_format()).
[[nodiscard]] std::optional<md_meta> frame_meta(const XskSocket::Frame& frame);
[[nodiscard]] const char* match_name(uint8_t match);  // enum md_match: "udp-port", ...

// ---- the program ---------------------------------------------------------------

// One frame through the loaded program (BPF_PROG_TEST_RUN).
struct TestRun {
    int action = 0;                // XDP_* verdict
    std::optional<md_meta> meta;   // present when the program wrote its metadata
    size_t meta_len = 0;           // bytes of metadata area after the run
    std::vector<uint8_t> frame;    // the frame after the run
    uint32_t duration_ns = 0;
};

class FeedProgram {
  public:
    FeedProgram();
    ~FeedProgram();
    FeedProgram(FeedProgram&&) noexcept;
    FeedProgram& operator=(FeedProgram&&) noexcept;
    FeedProgram(const FeedProgram&) = delete;
    FeedProgram& operator=(const FeedProgram&) = delete;

    // Opens the embedded object with the filter applied (rodata, filled
    // filter maps); not loaded yet: then load() or attach().
    [[nodiscard]] static Result<FeedProgram> open(const FeedFilter& filter);
    // open() + load(): for BPF_PROG_TEST_RUN, not attached anywhere.
    [[nodiscard]] static Result<FeedProgram> load(const FeedFilter& filter);
    [[nodiscard]] Result<void> load();
    // Lets libxdp load the opened object and attach it to iface (beside
    // other programs through its dispatcher, or alone where the dispatcher
    // cannot load). Persistent: it stays attached after this object is gone.
    // Not after load(), and not for hw mode (the NFP cannot redirect).
    [[nodiscard]] Result<AttachResult> attach(const std::string& iface, XdpMode mode);

    [[nodiscard]] const FeedFilter& filter() const;
    [[nodiscard]] bool loaded() const;  // by load() or attach()
    [[nodiscard]] bpf_object* object() const;
    [[nodiscard]] int prog_fd() const;
    [[nodiscard]] int xsks_map_fd() const;
    [[nodiscard]] int counters_map_fd() const;

    // Puts an AF_XDP socket (XskSocket::fd()) in the XSKMAP slot of RX queue
    // `queue` (< MD_MAX_QUEUES); clear_xsk empties the slot.
    [[nodiscard]] Result<void> set_xsk(uint32_t queue, int xsk_fd);
    [[nodiscard]] Result<void> clear_xsk(uint32_t queue);

    [[nodiscard]] Result<Counters> counters() const;
    [[nodiscard]] Result<void> reset_counters();

    [[nodiscard]] Result<TestRun> test_run(std::span<const uint8_t> frame, uint32_t repeat = 1);

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// Program names, the status printer (config, filters, counters read from
// the program's own maps). No pinned maps.
[[nodiscard]] ProgramKind program_kind();

}  // namespace etcpipe::md
