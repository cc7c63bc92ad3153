// An Ethernet/IPv4/UDP frame around a payload, with valid IPv4 and UDP
// checksums: the requests the in-NIC programs (ANOVA, nicnn) answer, run
// through BPF_PROG_TEST_RUN by the tools, tests and benchmarks.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace etcpipe {

// 02:78:00:00:00:01 10.78.0.1:src_port → 02:78:00:00:00:02 10.78.0.2:dst_port.
[[nodiscard]] std::vector<uint8_t> build_udp_frame(std::span<const uint8_t> payload,
                                                   uint16_t dst_port, uint16_t src_port = 40000);

// Whether the IPv4 header and UDP checksums of such a frame (no VLAN, IPv4
// without options) are valid; a UDP checksum of 0 counts as valid (none).
[[nodiscard]] bool udp_frame_checksums_ok(std::span<const uint8_t> frame);

}  // namespace etcpipe
