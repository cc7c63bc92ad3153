// UDP sockets for request/reply tools (the ANOVA client and server, the
// latency benchmarks): bound and connected sockets on IPv4/IPv6 literals,
// and poll() timeouts against a steady clock.
#pragma once

#include <sys/socket.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <span>
#include <string>

#include "common/fd.hpp"
#include "common/result.hpp"

namespace etcpipe {

// "host:port", or "[host]:port" for IPv6.
[[nodiscard]] std::string endpoint(const std::string& host, uint16_t port);

// A UDP socket bound to host:port (IPv4 or IPv6 literal), SO_REUSEADDR.
[[nodiscard]] Result<UniqueFd> bind_udp(const std::string& host, uint16_t port);

// A UDP socket connected to host:port: only its datagrams arrive, ICMP
// errors are reported. udp_checksum false: IPv4 datagrams go without a UDP
// checksum (SO_NO_CHECK), which XDP_TX on a local veth needs: a locally
// sent datagram carries only a partial checksum (CHECKSUM_PARTIAL), which
// XDP_TX sends back unfinished, and the reply is dropped as corrupt.
[[nodiscard]] Result<UniqueFd> connect_udp(const std::string& host, uint16_t port,
                                           bool udp_checksum);

// A server's inner loop: receives what is queued on fd without blocking,
// until EAGAIN or done(), handing each datagram (in buf) and its sender to
// on_datagram. Errors other than EINTR name `where`.
using OnDatagram =
    std::function<void(std::span<uint8_t> datagram, const sockaddr_storage& peer, socklen_t len)>;
[[nodiscard]] Result<void> drain_udp(int fd, std::span<uint8_t> buf, const std::string& where,
                                     const std::function<bool()>& done,
                                     const OnDatagram& on_datagram);

using Clock = std::chrono::steady_clock;

// Milliseconds until t for poll(), rounded up; 0 once it passed.
[[nodiscard]] int ms_until(Clock::time_point t);

}  // namespace etcpipe
