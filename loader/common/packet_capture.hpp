// Capturing the frames an interface sends and receives with an AF_PACKET
// socket (what tcpdump does), for tests and tools that must write down what
// crossed a link. The socket belongs to the network namespace of the thread
// that opens it (open it inside in_netns for another namespace).
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "common/fd.hpp"
#include "common/result.hpp"

namespace etcpipe {

struct CapturedFrame {
    std::span<const uint8_t> bytes;  // from the destination MAC on
    uint64_t ts_ns = 0;              // kernel receive/transmit time, CLOCK_REALTIME
    bool outgoing = false;           // sent by this host (PACKET_OUTGOING)
};

class PacketCapture {
  public:
    // Every frame of `iface` (both directions), full length up to 64 KiB.
    [[nodiscard]] static Result<PacketCapture> open(const std::string& iface);

    // Waits up to timeout_ms for frames and hands each one to visit().
    // Returns how many were read (0 on timeout).
    [[nodiscard]] Result<size_t> poll(int timeout_ms,
                                      const std::function<void(const CapturedFrame&)>& visit);
    [[nodiscard]] const std::string& iface() const { return iface_; }

  private:
    UniqueFd fd_;
    std::string iface_;
    std::vector<uint8_t> buf_;
};

}  // namespace etcpipe
