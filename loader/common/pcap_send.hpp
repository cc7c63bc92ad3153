// Sending a capture's frames out of an interface with an AF_PACKET socket,
// bounded in count and time and paced in bursts — the traffic source of the
// live-pipeline tests, the benchmark and `etcpipe send`. Frames that are not
// Ethernet get the same synthetic Ethernet header as replay gives them.
#pragma once

#include <cstdint>
#include <string>

#include "common/result.hpp"

namespace etcpipe {

struct SendOptions {
    uint32_t burst = 32;         // frames sent back to back…
    uint32_t pause_us = 200;     // …then this pause (0: none; lets the receiver keep up)
    uint64_t max_frames = 0;     // 0: the whole capture
    double max_seconds = 60;     // stop sending after this long
    uint32_t loops = 1;          // send the capture this many times
};

struct SendStats {
    uint64_t frames = 0;     // read from the capture
    uint64_t sent = 0;
    uint64_t too_short = 0;  // < 14 bytes: not sendable
    uint64_t too_big = 0;    // above the interface MTU + Ethernet header
    uint64_t not_ethernet = 0;
    uint64_t send_errors = 0;
    double seconds = 0;
    bool timed_out = false;
};

[[nodiscard]] Result<SendStats> send_capture(const std::string& capture, const std::string& iface,
                                             const SendOptions& opts);

}  // namespace etcpipe
