#include "common/packet_capture.hpp"

#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>

namespace etcpipe {

Result<PacketCapture> PacketCapture::open(const std::string& iface) {
    const unsigned ifindex = if_nametoindex(iface.c_str());
    if (ifindex == 0)
        return make_error(ErrorKind::Io, ENODEV, iface, "open packet capture", {},
                          "no such interface in this network namespace");
    PacketCapture c;
    c.iface_ = iface;
    c.fd_ = UniqueFd(::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL)));
    if (c.fd_.get() < 0)
        return make_error(ErrorKind::Io, errno, iface, "open AF_PACKET socket", {},
                          "needs root (CAP_NET_RAW)");
    const int on = 1;
    if (setsockopt(c.fd_.get(), SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof(on)))
        return make_error(ErrorKind::Io, errno, iface, "enable SO_TIMESTAMPNS");
    sockaddr_ll sll{};
    sll.sll_family = AF_PACKET;
    sll.sll_protocol = htons(ETH_P_ALL);
    sll.sll_ifindex = static_cast<int>(ifindex);
    if (bind(c.fd_.get(), reinterpret_cast<const sockaddr*>(&sll), sizeof(sll)))
        return make_error(ErrorKind::Io, errno, iface, "bind AF_PACKET socket");
    c.buf_.resize(65536);
    return c;
}

Result<size_t> PacketCapture::poll(int timeout_ms,
                                   const std::function<void(const CapturedFrame&)>& visit) {
    pollfd p{fd_.get(), POLLIN, 0};
    const int n = ::poll(&p, 1, timeout_ms);
    if (n < 0 && errno != EINTR) return make_error(ErrorKind::Io, errno, iface_, "poll capture");
    if (n <= 0) return size_t{0};
    size_t got = 0;
    for (;;) {
        sockaddr_ll from{};
        iovec iov{buf_.data(), buf_.size()};
        alignas(cmsghdr) char control[CMSG_SPACE(sizeof(timespec))];
        msghdr msg{};
        msg.msg_name = &from;
        msg.msg_namelen = sizeof(from);
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control;
        msg.msg_controllen = sizeof(control);
        const ssize_t len = recvmsg(fd_.get(), &msg, MSG_DONTWAIT);
        if (len < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) break;
            return make_error(ErrorKind::Io, errno, iface_, "read capture socket");
        }
        CapturedFrame f;
        f.bytes = {buf_.data(), static_cast<size_t>(len)};
        f.outgoing = from.sll_pkttype == PACKET_OUTGOING;
        for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
            if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
                timespec ts;
                __builtin_memcpy(&ts, CMSG_DATA(c), sizeof(ts));
                f.ts_ns = static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ull +
                          static_cast<uint64_t>(ts.tv_nsec);
            }
        visit(f);
        ++got;
    }
    return got;
}

}  // namespace etcpipe
