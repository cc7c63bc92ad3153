#include "mdfeed/sockets.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <ctime>

namespace etcpipe::md {
namespace {

Error usage(const std::string& s, const std::string& why) {
    return Error{ErrorKind::Usage, 0, s, "parse endpoint", why,
                 "write ADDR:PORT, [IPV6]:PORT or PORT, e.g. 10.79.0.2:5000"};
}

Result<uint16_t> parse_port(const std::string& all, std::string_view p) {
    unsigned v = 0;
    auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), v);
    if (ec != std::errc{} || end != p.data() + p.size() || v == 0 || v > 65535)
        return usage(all, "port '" + std::string(p) + "' is not 1..65535");
    return static_cast<uint16_t>(v);
}

Result<void> set_int(int fd, int level, int opt, int v, const char* what) {
    if (setsockopt(fd, level, opt, &v, sizeof(v)))
        return make_error(ErrorKind::Io, errno, what, "setsockopt");
    return {};
}

bool is_multicast(const sockaddr_storage& a) {
    if (a.ss_family == AF_INET)
        return IN_MULTICAST(ntohl(reinterpret_cast<const sockaddr_in&>(a).sin_addr.s_addr));
    return IN6_IS_ADDR_MULTICAST(&reinterpret_cast<const sockaddr_in6&>(a).sin6_addr);
}

}  // namespace

Result<Endpoint> parse_endpoint(const std::string& s, bool port_only_ok) {
    Endpoint e;
    e.text = s;
    std::string host;
    std::string_view port;
    if (!s.empty() && s[0] == '[') {
        const auto close = s.find(']');
        if (close == std::string::npos || close + 1 >= s.size() || s[close + 1] != ':')
            return usage(s, "an IPv6 endpoint is [ADDR]:PORT");
        host = s.substr(1, close - 1);
        port = std::string_view(s).substr(close + 2);
    } else if (const auto colon = s.rfind(':'); colon != std::string::npos) {
        host = s.substr(0, colon);
        port = std::string_view(s).substr(colon + 1);
    } else {
        if (!port_only_ok) return usage(s, "an address is needed here");
        port = s;
    }
    auto p = parse_port(s, port);
    if (!p) return p.error();
    auto* v4 = reinterpret_cast<sockaddr_in*>(&e.addr);
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&e.addr);
    if (host.empty()) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(*p);
        e.len = sizeof(sockaddr_in);
    } else if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(*p);
        e.len = sizeof(sockaddr_in);
    } else if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(*p);
        e.len = sizeof(sockaddr_in6);
    } else {
        return usage(s, "'" + host + "' is not an IPv4 or IPv6 address");
    }
    return e;
}

Result<UniqueFd> udp_sender(const Endpoint& to) {
    UniqueFd fd(::socket(to.addr.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (fd.get() < 0) return make_error(ErrorKind::Io, errno, to.text, "open UDP socket");
    if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&to.addr), to.len))
        return make_error(ErrorKind::Io, errno, to.text, "connect UDP socket");
    return fd;
}

Result<UniqueFd> udp_receiver(const Endpoint& at, const UdpReceiveOptions& o) {
    UniqueFd fd(::socket(at.addr.ss_family, SOCK_DGRAM | SOCK_CLOEXEC | (o.busy_poll ? SOCK_NONBLOCK : 0), 0));
    if (fd.get() < 0) return make_error(ErrorKind::Io, errno, at.text, "open UDP socket");
    if (auto r = set_int(fd.get(), SOL_SOCKET, SO_REUSEADDR, 1, "SO_REUSEADDR"); !r) return r.error();
    if (auto r = set_int(fd.get(), SOL_SOCKET, SO_RCVBUF, o.rcvbuf, "SO_RCVBUF"); !r) return r.error();
    if (o.busy_poll)
        if (auto r = set_int(fd.get(), SOL_SOCKET, SO_BUSY_POLL, 50, "SO_BUSY_POLL"); !r)
            return r.error();
    if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&at.addr), at.len))
        return make_error(ErrorKind::Io, errno, at.text, "bind UDP socket", {},
                          "is another receiver bound to this port?");
    if (is_multicast(at.addr) && at.addr.ss_family == AF_INET) {
        ip_mreqn m{};
        m.imr_multiaddr = reinterpret_cast<const sockaddr_in&>(at.addr).sin_addr;
        if (setsockopt(fd.get(), IPPROTO_IP, IP_ADD_MEMBERSHIP, &m, sizeof(m)))
            return make_error(ErrorKind::Io, errno, at.text, "join multicast group");
    }
    return fd;
}

Result<UniqueFd> tcp_listener(const Endpoint& at) {
    UniqueFd fd(::socket(at.addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (fd.get() < 0) return make_error(ErrorKind::Io, errno, at.text, "open TCP socket");
    if (auto r = set_int(fd.get(), SOL_SOCKET, SO_REUSEADDR, 1, "SO_REUSEADDR"); !r) return r.error();
    if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&at.addr), at.len))
        return make_error(ErrorKind::Io, errno, at.text, "bind TCP socket");
    if (::listen(fd.get(), 16)) return make_error(ErrorKind::Io, errno, at.text, "listen");
    return fd;
}

Result<UniqueFd> tcp_accept(int listen_fd, int timeout_ms) {
    pollfd p{listen_fd, POLLIN, 0};
    int n;
    do n = ::poll(&p, 1, timeout_ms);
    while (n < 0 && errno == EINTR);
    if (n == 0) return make_error(ErrorKind::Io, ETIMEDOUT, "tcp", "wait for a connection", {},
                                  "no receiver connected in time");
    if (n < 0) return make_error(ErrorKind::Io, errno, "tcp", "poll listener");
    UniqueFd fd(::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC));
    if (fd.get() < 0) return make_error(ErrorKind::Io, errno, "tcp", "accept");
    if (auto r = set_int(fd.get(), IPPROTO_TCP, TCP_NODELAY, 1, "TCP_NODELAY"); !r) return r.error();
    return fd;
}

Result<UniqueFd> tcp_connect(const Endpoint& to, int timeout_ms) {
    const uint64_t deadline = monotonic_ns() + static_cast<uint64_t>(timeout_ms) * 1'000'000ull;
    for (;;) {
        UniqueFd fd(::socket(to.addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
        if (fd.get() < 0) return make_error(ErrorKind::Io, errno, to.text, "open TCP socket");
        if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&to.addr), to.len) == 0) {
            if (auto r = set_int(fd.get(), IPPROTO_TCP, TCP_NODELAY, 1, "TCP_NODELAY"); !r)
                return r.error();
            return fd;
        }
        const int err = errno;
        if (err != ECONNREFUSED || monotonic_ns() >= deadline)
            return make_error(ErrorKind::Io, err, to.text, "connect", {},
                              err == ECONNREFUSED ? "is the sender listening (md send --tcp)?" : "");
        ::usleep(20'000);
    }
}

Result<void> send_all(int fd, std::span<const uint8_t> bytes) {
    size_t off = 0;
    while (off < bytes.size()) {
        const ssize_t n = ::send(fd, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) continue;
            return make_error(ErrorKind::Io, errno, "tcp", "send");
        }
        off += static_cast<size_t>(n);
    }
    return {};
}

uint64_t monotonic_ns() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<uint64_t>(ts.tv_nsec);
}

uint64_t realtime_ns() {
    timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<uint64_t>(ts.tv_nsec);
}

}  // namespace etcpipe::md
