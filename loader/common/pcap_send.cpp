#include "common/pcap_send.hpp"

#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

#include "common/capture_loop.hpp"
#include "common/fd.hpp"
#include "common/pcap.hpp"

namespace etcpipe {

Result<SendStats> send_capture(const std::string& capture, const std::string& iface,
                               const SendOptions& o) {
    const unsigned idx = if_nametoindex(iface.c_str());
    if (!idx) return make_error(ErrorKind::Usage, errno, iface, "look up interface", "see `ip link`");
    UniqueFd sock(socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0));
    if (sock.get() < 0)
        return make_error(ErrorKind::Io, errno, iface, "open AF_PACKET socket", "needs CAP_NET_RAW");
    ifreq ifr{};
    std::strncpy(ifr.ifr_name, iface.c_str(), IFNAMSIZ - 1);
    uint32_t mtu = 1500;
    if (ioctl(sock.get(), SIOCGIFMTU, &ifr) == 0) mtu = static_cast<uint32_t>(ifr.ifr_mtu);
    sockaddr_ll to{};
    to.sll_family = AF_PACKET;
    to.sll_ifindex = static_cast<int>(idx);
    to.sll_halen = ETH_ALEN;

    SendStats st;
    const auto t0 = std::chrono::steady_clock::now();
    uint32_t in_burst = 0;
    auto send_one = [&](const EthernetFrame& f) {
        // VLAN tags may add up to 8 bytes beyond the MTU.
        if (f.bytes.size() > mtu + ETH_HLEN + 8) {
            ++st.too_big;
        } else {
            std::memcpy(to.sll_addr, f.bytes.data(), ETH_ALEN);
            if (sendto(sock.get(), f.bytes.data(), f.bytes.size(), 0, reinterpret_cast<sockaddr*>(&to),
                       sizeof to) < 0)
                ++st.send_errors;
            else
                ++st.sent;
            if (o.pause_us && ++in_burst >= o.burst) {
                in_burst = 0;
                std::this_thread::sleep_for(std::chrono::microseconds(o.pause_us));
            }
        }
        st.timed_out = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() > o.max_seconds;
        return !st.timed_out;
    };
    for (uint32_t loop = 0; loop < std::max<uint32_t>(o.loops, 1); ++loop) {
        auto reader = pcap::Reader::open(capture);
        if (!reader) return reader.error();
        CaptureLoopOptions lo;
        if (o.max_frames) lo.max_frames = o.max_frames - st.frames;
        const auto ls = for_each_ethernet_frame(*reader, send_one, lo);
        st.frames += ls.frames;
        st.not_ethernet += ls.not_ethernet;
        st.too_short += ls.too_short;
        if (ls.capture_error) return *ls.capture_error;
        if (st.timed_out || (o.max_frames && st.frames >= o.max_frames)) break;
    }
    st.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return st;
}

}  // namespace etcpipe
