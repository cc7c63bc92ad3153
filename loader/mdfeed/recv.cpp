#include "mdfeed/recv.hpp"

#include <arpa/inet.h>
#include <sys/socket.h>

#include <cerrno>
#include <ctime>
#include <optional>
#include <vector>

#include "common/ready_file.hpp"
#include "common/signals.hpp"
#include "mdfeed/latency.hpp"
#include "mdfeed/records_out.hpp"
#include "mdfeed/sockets.hpp"

namespace etcpipe::md {
namespace {

std::string sockaddr_text(const sockaddr_storage& a) {
    char buf[INET6_ADDRSTRLEN] = "?";
    if (a.ss_family == AF_INET6) {
        const auto& s6 = reinterpret_cast<const sockaddr_in6&>(a);
        inet_ntop(AF_INET6, &s6.sin6_addr, buf, sizeof(buf));
        return "[" + std::string(buf) + "]:" + std::to_string(ntohs(s6.sin6_port));
    }
    const auto& s4 = reinterpret_cast<const sockaddr_in&>(a);
    inet_ntop(AF_INET, &s4.sin_addr, buf, sizeof(buf));
    return std::string(buf) + ":" + std::to_string(ntohs(s4.sin_port));
}

std::string local_text(int fd) {
    sockaddr_storage a{};
    socklen_t len = sizeof(a);
    getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    return sockaddr_text(a);
}

// Blocking reads wake at least every 100 ms, so the stop flag and the
// deadline are seen.
Result<void> set_receive_timeout(int fd) {
    timeval tv{0, 100'000};
    if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)))
        return make_error(ErrorKind::Io, errno, "socket", "set SO_RCVTIMEO");
    return {};
}

}  // namespace

Result<RecvSummary> run_recv(const RecvOptions& o) {
    auto templates = fast::TemplateSet::load(o.templates);
    if (!templates) return templates.error();
    auto ep = parse_endpoint(o.endpoint, o.mode != RecvMode::TcpClient);
    if (!ep) return ep.error();
    auto route = RecordRoute::open(*templates, o.output, o.with_ts, o.latency, o.sink);
    if (!route) return route.error();
    RecordSink& sink = (*route)->sink();

    UniqueFd fd;
    if (o.mode == RecvMode::TcpClient) {
        auto c = tcp_connect(*ep, o.connect_timeout_ms);
        if (!c) return c.error();
        fd = std::move(*c);
    } else {
        UdpReceiveOptions uo;
        uo.busy_poll = o.mode == RecvMode::UdpBusyPoll;
        auto u = udp_receiver(*ep, uo);
        if (!u) return u.error();
        fd = std::move(*u);
    }
    const bool spin = o.mode == RecvMode::UdpBusyPoll;
    if (!spin)
        if (auto r = set_receive_timeout(fd.get()); !r) return r.error();
    install_stop_handlers();
    if (!o.ready_file.empty())
        if (auto r = write_ready_file(o.ready_file); !r) return r.error();
    if (o.on_ready) o.on_ready();

    FeedOptions fo = o.feed;
    FeedDecoder feed(*templates, fo, sink);
    RecvSummary sum;
    const uint64_t deadline =
        o.seconds > 0 ? monotonic_ns() + static_cast<uint64_t>(o.seconds * 1e9) : 0;
    std::vector<uint8_t> buf(1 << 16);
    const std::string local = local_text(fd.get());
    std::string peer;
    if (o.mode == RecvMode::TcpClient) feed.name_stream(o.endpoint, local);
    auto records = [&] { return feed.counters().records; };
    while (!stop_flag().load(std::memory_order_relaxed)) {
        if (o.count && records() >= o.count) break;
        if (o.stop && o.stop->load(std::memory_order_relaxed)) break;
        if (deadline && monotonic_ns() >= deadline) break;
        sockaddr_storage from{};
        socklen_t flen = sizeof(from);
        const int flags = spin ? MSG_DONTWAIT : 0;
        const ssize_t n = o.mode == RecvMode::TcpClient
                              ? ::recv(fd.get(), buf.data(), buf.size(), flags)
                              : ::recvfrom(fd.get(), buf.data(), buf.size(), flags,
                                           reinterpret_cast<sockaddr*>(&from), &flen);
        const uint64_t rx = monotonic_ns();
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) continue;
            return make_error(ErrorKind::Io, errno, o.endpoint, "receive");
        }
        if (n == 0 && o.mode == RecvMode::TcpClient) break;  // the exchange closed
        ++sum.messages;
        const std::span<const uint8_t> bytes(buf.data(), static_cast<size_t>(n));
        if (o.mode == RecvMode::TcpClient) {
            feed.stream_bytes(bytes, realtime_ns(), rx);
        } else {
            if (peer.empty()) peer = sockaddr_text(from);
            feed.datagram(bytes, peer, local, realtime_ns(), rx);
        }
    }
    feed.finish();
    if (auto r = (*route)->finish(); !r) return r.error();
    sum.records = feed.counters().records;
    sum.problems = (*route)->problems();
    if (!o.sink && !o.quiet) print_counters(stderr, feed.counters(), feed.reassembly(), feed.udp_sequence());
    return sum;
}

}  // namespace etcpipe::md
