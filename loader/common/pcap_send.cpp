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
    std::vector<uint8_t> scratch;
    uint32_t in_burst = 0;
    for (uint32_t loop = 0; loop < std::max<uint32_t>(o.loops, 1); ++loop) {
        auto reader = pcap::Reader::open(capture);
        if (!reader) return reader.error();
        pcap::Frame frame;
        for (;;) {
            if (o.max_frames && st.frames >= o.max_frames) break;
            auto more = reader->next(frame);
            if (!more) return more.error();
            if (!*more) break;
            ++st.frames;
            auto eth = pcap::to_ethernet(frame, scratch);
            if (!eth) {
                ++st.not_ethernet;
                continue;
            }
            if (eth->size() < ETH_HLEN) {
                ++st.too_short;
                continue;
            }
            // VLAN tags may add up to 8 bytes beyond the MTU.
            if (eth->size() > mtu + ETH_HLEN + 8) {
                ++st.too_big;
                continue;
            }
            std::memcpy(to.sll_addr, eth->data(), ETH_ALEN);
            if (sendto(sock.get(), eth->data(), eth->size(), 0, reinterpret_cast<sockaddr*>(&to),
                       sizeof to) < 0)
                ++st.send_errors;
            else
                ++st.sent;
            if (o.pause_us && ++in_burst >= o.burst) {
                in_burst = 0;
                std::this_thread::sleep_for(std::chrono::microseconds(o.pause_us));
            }
            if (std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() > o.max_seconds) {
                st.timed_out = true;
                break;
            }
        }
        if (st.timed_out || (o.max_frames && st.frames >= o.max_frames)) break;
    }
    st.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return st;
}

}  // namespace etcpipe
