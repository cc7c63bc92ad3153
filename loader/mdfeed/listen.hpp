// `etcpipe md listen IFACE`: the live receive path. mdfeed.bpf.o is attached
// to IFACE (libxdp), selecting the feed (UDP ports / multicast groups,
// mirrored TCP by server) into one AF_XDP socket per RX queue; the frames go
// through the same FeedDecoder as `md decode`, records out as JSON Lines.
// Process-owned: detached on exit, on signals and, through the guardian, on
// SIGKILL.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "common/result.hpp"
#include "common/xdp_attach.hpp"
#include "mdfeed/feed.hpp"

namespace etcpipe::md {

struct ListenOptions {
    std::string iface;
    std::string templates;
    std::vector<std::string> udp;          // "PORT", "GROUP:PORT", "GROUP"
    std::vector<std::string> tcp_servers;  // "ADDR:PORT"
    bool tcp_both_directions = false;
    std::string output = "-";
    bool with_ts = true;
    XdpMode mode = XdpMode::Native;
    bool busy_poll = true;        // spin on the rings (false: poll() and sleep)
    double seconds = 0;           // stop after this long (0: until Ctrl-C)
    uint64_t count = 0;           // stop after this many records (0: no limit)
    bool stats = false;           // a counter line on stderr every second
    std::string ready_file;       // written once attached and ready
    FeedOptions feed;
    bool latency = false;
    // For md bench and tests: records go to `sink` instead of the output, the
    // run also stops when *stop becomes true, on_ready runs once receiving.
    RecordSink* sink = nullptr;
    bool guardian = true;  // false: no forked guardian (threads running; namespaces cleaned up anyway)
    const std::atomic<bool>* stop = nullptr;
    std::function<void()> on_ready;         // one-way latency of SendTimeNs on stderr at the end
    bool all_counters = false;
};

struct LatencyStats;

struct ListenSummary {
    uint64_t frames = 0, records = 0, problems = 0;
};

[[nodiscard]] Result<ListenSummary> run_listen(const ListenOptions& o);

}  // namespace etcpipe::md
