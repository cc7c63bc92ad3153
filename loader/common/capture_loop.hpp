// The one loop over a capture's frames as Ethernet, shared by replay,
// feature extraction and `etcpipe send`: reads each frame, converts its link
// layer (pcap::to_ethernet), skips what cannot be an Ethernet frame, and
// hands the rest on with a usable timestamp.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>

#include "common/pcap.hpp"
#include "common/result.hpp"

namespace etcpipe {

struct EthernetFrame {
    std::span<const uint8_t> bytes;  // from the destination MAC on
    uint64_t ts_ns = 1;              // capture time; a frame without one keeps the previous one's
    const pcap::Frame* frame = nullptr;  // as read (index, original length)
};

struct CaptureLoopOptions {
    uint64_t max_frames = 0;  // stop after reading this many (0: all)
    // Called for the first frame whose link layer cannot become Ethernet
    // (the rest are only counted).
    std::function<void(const pcap::Frame&, const Error&)> on_first_not_ethernet;
};

struct CaptureLoopStats {
    uint64_t frames = 0;        // read from the capture
    uint64_t not_ethernet = 0;  // link layer not convertible
    uint64_t too_short = 0;     // shorter than an Ethernet header (BPF_PROG_TEST_RUN refuses them)
    bool stopped = false;       // the visitor asked to stop
    // A corrupt or truncated capture: the frames before the damage were handed on.
    std::optional<Error> capture_error;
};

// Calls visit(frame) for each Ethernet frame of `reader`, in capture order,
// until the end, max_frames, a capture error (in the stats), or visit
// returning false.
CaptureLoopStats for_each_ethernet_frame(pcap::Reader& reader,
                                         const std::function<bool(const EthernetFrame&)>& visit,
                                         const CaptureLoopOptions& opts = {});

}  // namespace etcpipe
