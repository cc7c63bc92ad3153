// AF_XDP receive sockets: one socket per RX queue, each with its own UMEM
// (a queue's frames never wait on another queue's), built on libxdp's xsk
// API with program loading inhibited — the application's XSKMAP is the only
// redirect target. Frames are copied out and handed back to the fill ring in
// the same call, so no frame is ever leaked. The metadata an XDP program puts
// in front of a packet is the application's: it names its size and magic.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <type_traits>

#include "common/result.hpp"

struct xdp_statistics;

namespace etcpipe {

enum class XskBind { Auto, ZeroCopy, Copy };

// The metadata the XDP program writes just in front of each packet
// (bpf_xdp_adjust_meta). A 32-bit magic at a fixed offset tells it from
// whatever else the headroom holds.
struct XskMetaFormat {
    uint32_t size = 0;          // bytes; 0: the program writes none
    uint32_t magic = 0;
    uint32_t magic_offset = 0;  // byte offset of the magic within the metadata
};

struct XskOptions {
    uint32_t frames = 4096;      // UMEM frames per socket (8 MiB at 2048 B)
    uint32_t frame_size = 2048;  // bytes per frame (2048 or 4096)
    uint32_t ring_size = 4096;   // RX and fill ring descriptors (power of two, ≤ frames)
    XskBind bind = XskBind::Auto;
    XskMetaFormat meta;
};

struct XskStats {
    uint64_t rx_dropped = 0;
    uint64_t rx_ring_full = 0;
    uint64_t fill_ring_empty = 0;
    uint64_t invalid_descs = 0;
};

class XskSocket {
  public:
    ~XskSocket();
    XskSocket(const XskSocket&) = delete;
    XskSocket& operator=(const XskSocket&) = delete;

    // Creates the UMEM and the socket bound to (iface, queue) and fills the
    // fill ring. Zero-copy is tried first with XskBind::Auto.
    [[nodiscard]] static Result<std::unique_ptr<XskSocket>> create(const std::string& iface,
                                                                   uint32_t queue,
                                                                   const XskOptions& opts);
    [[nodiscard]] int fd() const;
    [[nodiscard]] uint32_t queue() const { return queue_; }
    [[nodiscard]] bool zero_copy() const { return zero_copy_; }
    [[nodiscard]] uint64_t received() const { return received_; }  // frames read so far

    // A received frame: its bytes and the metadata in front of them (empty
    // when it does not fit the headroom or its magic does not match).
    struct Frame {
        std::span<const uint8_t> data;
        std::span<const uint8_t> meta;

        // The metadata as the application's struct (nullptr when absent or
        // of another size); it points into the UMEM, valid during visit().
        template <class T>
        [[nodiscard]] const T* meta_as() const {
            static_assert(std::is_trivially_copyable_v<T>);
            return meta.size() == sizeof(T) ? reinterpret_cast<const T*>(meta.data()) : nullptr;
        }
    };
    // Reads up to `max` frames, calls visit(frame) for each, then returns
    // their UMEM frames to the fill ring. Returns the number read.
    template <class Visit>
    size_t receive(size_t max, Visit&& visit) {
        size_t n = 0;
        while (n < max) {
            Frame f;
            if (!next(f)) break;
            visit(f);
            ++n;
            ++received_;
        }
        release();
        return n;
    }

    // Kernel counters (XDP_STATISTICS getsockopt).
    [[nodiscard]] Result<XskStats> stats() const;
    // Kicks the kernel when the fill ring asks for a wakeup (need_wakeup).
    void wakeup_if_needed();

  private:
    XskSocket() = default;
    bool next(Frame& f);
    void release();

    struct Impl;
    std::unique_ptr<Impl> impl_;
    uint32_t queue_ = 0;
    bool zero_copy_ = false;
    uint64_t received_ = 0;
};

// Number of RX queues of an interface (ETHTOOL_GCHANNELS; 1 when the driver
// does not say).
[[nodiscard]] uint32_t rx_queue_count(const std::string& iface);

}  // namespace etcpipe
