#include "common/udp_socket.hpp"

#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>

namespace etcpipe {

namespace {

struct SockAddr {
    sockaddr_storage ss{};
    socklen_t len = 0;
    int family = AF_INET;
};

Result<SockAddr> resolve(const std::string& host, uint16_t port, bool passive) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_DGRAM;
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
    addrinfo* res = nullptr;
    const std::string service = std::to_string(port);
    int rc = getaddrinfo(host.c_str(), service.c_str(), &hints, &res);
    if (rc != 0 || !res)
        return Error{ErrorKind::Usage, 0, host, "parse address", gai_strerror(rc),
                     "give an IPv4 or IPv6 literal such as 127.0.0.1 or ::1"};
    SockAddr a;
    std::memcpy(&a.ss, res->ai_addr, res->ai_addrlen);
    a.len = res->ai_addrlen;
    a.family = res->ai_family;
    freeaddrinfo(res);
    return a;
}

}  // namespace

std::string endpoint(const std::string& host, uint16_t port) {
    return host.find(':') != std::string::npos ? "[" + host + "]:" + std::to_string(port)
                                               : host + ":" + std::to_string(port);
}

Result<UniqueFd> bind_udp(const std::string& host, uint16_t port) {
    auto addr = resolve(host, port, true);
    if (!addr) return addr.error();
    const std::string where = endpoint(host, port);
    UniqueFd fd(::socket(addr->family, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (fd.get() < 0) return make_error(ErrorKind::Io, errno, where, "create UDP socket");
    int one = 1;
    (void)setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr->ss), addr->len) < 0)
        return make_error(ErrorKind::Io, errno, where, "bind", {},
                          errno == EADDRINUSE ? "another server uses this port; pick --port"
                                              : "");
    return fd;
}

Result<UniqueFd> connect_udp(const std::string& host, uint16_t port, bool udp_checksum) {
    auto addr = resolve(host, port, false);
    if (!addr) return addr.error();
    const std::string where = endpoint(host, port);
    UniqueFd fd(::socket(addr->family, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (fd.get() < 0) return make_error(ErrorKind::Io, errno, where, "create UDP socket");
    if (!udp_checksum && addr->family == AF_INET) {
        int one = 1;
        if (::setsockopt(fd.get(), SOL_SOCKET, SO_NO_CHECK, &one, sizeof one) < 0)
            return make_error(ErrorKind::Io, errno, where, "set SO_NO_CHECK");
    }
    if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr->ss), addr->len) < 0)
        return make_error(ErrorKind::Io, errno, where, "connect UDP socket");
    return fd;
}

Result<void> drain_udp(int fd, std::span<uint8_t> buf, const std::string& where,
                       const std::function<bool()>& done, const OnDatagram& on_datagram) {
    while (!done()) {
        sockaddr_storage peer{};
        socklen_t plen = sizeof peer;
        ssize_t len = ::recvfrom(fd, buf.data(), buf.size(), MSG_DONTWAIT,
                                 reinterpret_cast<sockaddr*>(&peer), &plen);
        if (len < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            return make_error(ErrorKind::Io, errno, where, "recvfrom");
        }
        on_datagram(buf.first(static_cast<size_t>(len)), peer, plen);
    }
    return {};
}

int ms_until(Clock::time_point t) {
    auto d = std::chrono::duration_cast<std::chrono::microseconds>(t - Clock::now()).count();
    if (d <= 0) return 0;
    return static_cast<int>(std::min<int64_t>((d + 999) / 1000, 1000000));
}

}  // namespace etcpipe
