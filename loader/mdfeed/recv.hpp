// `etcpipe md recv`: the kernel socket path with the same decoder — a UDP
// socket (blocking, or a non-blocking busy-polling spin) or a TCP client
// connection to the exchange (`md send --transport tcp`). It is the baseline
// `md bench` measures AF_XDP against, and the member host of the mirror
// setups (its connection is what the mirror port copies).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <functional>
#include <string>

#include "common/result.hpp"
#include "mdfeed/feed.hpp"

namespace etcpipe::md {

enum class RecvMode { UdpBlocking, UdpBusyPoll, TcpClient };

struct RecvOptions {
    RecvMode mode = RecvMode::UdpBlocking;
    std::string endpoint;     // UDP: bind ADDR:PORT or PORT; TCP: the exchange's ADDR:PORT
    std::string templates;
    std::string output = "-";
    bool with_ts = true;
    FeedOptions feed;
    uint64_t count = 0;       // stop after this many records (0: no limit)
    double seconds = 0;       // stop after this long (0: until Ctrl-C or the peer closes)
    int connect_timeout_ms = 10000;
    std::string ready_file;   // written once bound/connected
    bool latency = false;
    bool quiet = false;       // no counters on stderr
    // For md bench and tests: records go to `sink` instead of the output, the
    // run also stops when *stop becomes true, on_ready runs once receiving.
    RecordSink* sink = nullptr;
    const std::atomic<bool>* stop = nullptr;
    std::function<void()> on_ready;
};

struct RecvSummary {
    uint64_t messages = 0, records = 0, problems = 0;
};

[[nodiscard]] Result<RecvSummary> run_recv(const RecvOptions& o);

// The receive loop alone, for `md bench`: every record goes to sink, bytes
// are stamped with the time they left the socket.
struct RecvLoop {
    RecvMode mode = RecvMode::UdpBlocking;
    int fd = -1;
    uint64_t max_records = 0;
    uint64_t deadline_ns = 0;  // CLOCK_MONOTONIC
};

}  // namespace etcpipe::md
