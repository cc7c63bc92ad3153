#include "common/udp_frame.hpp"

#include <netinet/in.h>

#include <cstring>

namespace etcpipe {
namespace {

uint32_t sum16(const uint8_t* p, size_t n, uint32_t sum) {
    for (size_t i = 0; i < n; i += 2) sum += uint32_t{p[i]} << 8 | (i + 1 < n ? p[i + 1] : 0u);
    return sum;
}

uint16_t fold(uint32_t sum) {
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    return static_cast<uint16_t>(sum);
}

}  // namespace

std::vector<uint8_t> build_udp_frame(std::span<const uint8_t> payload, uint16_t dst_port,
                                     uint16_t src_port) {
    const size_t ip_len = 20 + 8 + payload.size();
    std::vector<uint8_t> f(14 + ip_len, 0);
    const uint8_t dmac[6] = {0x02, 0x78, 0, 0, 0, 0x02}, smac[6] = {0x02, 0x78, 0, 0, 0, 0x01};
    std::memcpy(f.data(), dmac, 6);
    std::memcpy(f.data() + 6, smac, 6);
    f[12] = 0x08, f[13] = 0x00;
    uint8_t* ip = f.data() + 14;
    ip[0] = 0x45;
    ip[2] = static_cast<uint8_t>(ip_len >> 8), ip[3] = static_cast<uint8_t>(ip_len);
    ip[6] = 0x40;  // DF
    ip[8] = 64, ip[9] = IPPROTO_UDP;
    const uint8_t src[4] = {10, 78, 0, 1}, dst[4] = {10, 78, 0, 2};
    std::memcpy(ip + 12, src, 4);
    std::memcpy(ip + 16, dst, 4);
    uint32_t sum = 0;
    for (int i = 0; i < 20; i += 2) sum += uint32_t{ip[i]} << 8 | ip[i + 1];
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    uint16_t csum = static_cast<uint16_t>(~sum);
    ip[10] = static_cast<uint8_t>(csum >> 8), ip[11] = static_cast<uint8_t>(csum);
    uint8_t* udp = ip + 20;
    const size_t udp_len = 8 + payload.size();
    udp[0] = static_cast<uint8_t>(src_port >> 8), udp[1] = static_cast<uint8_t>(src_port);
    udp[2] = static_cast<uint8_t>(dst_port >> 8), udp[3] = static_cast<uint8_t>(dst_port);
    udp[4] = static_cast<uint8_t>(udp_len >> 8), udp[5] = static_cast<uint8_t>(udp_len);
    if (!payload.empty()) std::memcpy(udp + 8, payload.data(), payload.size());
    // UDP checksum over the pseudo-header and the datagram.
    sum = 0;
    for (int i = 12; i < 20; i += 2) sum += uint32_t{ip[i]} << 8 | ip[i + 1];
    sum += IPPROTO_UDP + static_cast<uint32_t>(udp_len);
    for (size_t i = 0; i < udp_len; i += 2)
        sum += uint32_t{udp[i]} << 8 | (i + 1 < udp_len ? udp[i + 1] : 0u);
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    csum = static_cast<uint16_t>(~sum);
    if (csum == 0) csum = 0xffff;
    udp[6] = static_cast<uint8_t>(csum >> 8), udp[7] = static_cast<uint8_t>(csum);
    return f;
}

bool udp_frame_checksums_ok(std::span<const uint8_t> f) {
    if (f.size() < 14 + 20 + 8 || f[12] != 0x08 || f[13] != 0x00 || (f[14] & 0x0f) != 5) return false;
    const uint8_t* ip = f.data() + 14;
    if (fold(sum16(ip, 20, 0)) != 0xffff) return false;
    const uint8_t* udp = ip + 20;
    const size_t udp_len = size_t{udp[4]} << 8 | udp[5];
    if (udp_len < 8 || 14 + 20 + udp_len > f.size()) return false;
    if (udp[6] == 0 && udp[7] == 0) return true;
    uint32_t sum = sum16(ip + 12, 8, 0) + IPPROTO_UDP + static_cast<uint32_t>(udp_len);
    return fold(sum16(udp, udp_len, sum)) == 0xffff;
}

}  // namespace etcpipe
