// The kernel socket ends of the market-data path: the feed sender's UDP and
// TCP sockets, and the kernel receivers `md bench` measures AF_XDP against
// (a blocking UDP socket, a busy-polling one, a TCP client connection).
#pragma once

#include <netinet/in.h>

#include <cstdint>
#include <span>
#include <string>

#include "common/fd.hpp"
#include "common/result.hpp"

namespace etcpipe::md {

struct Endpoint {
    sockaddr_storage addr{};
    socklen_t len = 0;
    std::string text;  // as given, for messages
};

// "ADDR:PORT", "[V6ADDR]:PORT" or "PORT" (any address, for binds).
[[nodiscard]] Result<Endpoint> parse_endpoint(const std::string& s, bool port_only_ok = false);

// A UDP socket connect()ed to `to` (optionally bound to port `from_port`).
[[nodiscard]] Result<UniqueFd> udp_sender(const Endpoint& to);

struct UdpReceiveOptions {
    bool busy_poll = false;    // non-blocking spin with SO_BUSY_POLL (50 µs)
    int rcvbuf = 4 << 20;      // SO_RCVBUF bytes
};
// A UDP socket bound to `at` (a multicast group address is joined).
[[nodiscard]] Result<UniqueFd> udp_receiver(const Endpoint& at, const UdpReceiveOptions& o);

// A listening TCP socket (SO_REUSEADDR).
[[nodiscard]] Result<UniqueFd> tcp_listener(const Endpoint& at);
// Accepts one connection within timeout_ms (TCP_NODELAY set).
[[nodiscard]] Result<UniqueFd> tcp_accept(int listen_fd, int timeout_ms);
// Connects within timeout_ms, retrying while the peer is not listening yet.
[[nodiscard]] Result<UniqueFd> tcp_connect(const Endpoint& to, int timeout_ms);

// Writes all of `bytes` (a stream socket); EPIPE/ECONNRESET are errors.
[[nodiscard]] Result<void> send_all(int fd, std::span<const uint8_t> bytes);

// CLOCK_MONOTONIC in ns: the clock of the send stamp and of bpf_ktime_get_ns().
[[nodiscard]] uint64_t monotonic_ns();
// CLOCK_REALTIME in ns: the "ts" of live records (captures carry their own).
[[nodiscard]] uint64_t realtime_ns();

}  // namespace etcpipe::md
