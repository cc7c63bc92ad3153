#include "common/capture_loop.hpp"

#include <string>
#include <vector>

namespace etcpipe {

namespace {
constexpr size_t kEthHdr = 14;
}

CaptureLoopStats for_each_ethernet_frame(pcap::Reader& reader,
                                         const std::function<bool(const EthernetFrame&)>& visit,
                                         const CaptureLoopOptions& o) {
    CaptureLoopStats st;
    std::vector<uint8_t> scratch;
    pcap::Frame frame;
    EthernetFrame eth;
    eth.frame = &frame;
    uint32_t first_linktype = 0;
    std::string first_reason;
    while (!o.max_frames || st.frames < o.max_frames) {
        auto more = reader.next(frame);
        if (!more) {
            st.capture_error = more.error();
            break;
        }
        if (!*more) break;
        ++st.frames;
        auto bytes = pcap::to_ethernet(frame, scratch);
        if (!bytes) {
            if (st.not_ethernet++ == 0) {
                first_linktype = frame.linktype;
                first_reason = bytes.error().message();
                if (o.on_first_not_ethernet) o.on_first_not_ethernet(frame, bytes.error());
            }
            continue;
        }
        if (bytes->size() < kEthHdr) {
            ++st.too_short;
            continue;
        }
        if (frame.ts_ns) eth.ts_ns = frame.ts_ns;
        eth.bytes = *bytes;
        if (!visit(eth)) {
            st.stopped = true;
            break;
        }
    }
    // Not one frame usable (an unsupported link type, typically): an error,
    // so no command reports "0 flows" with exit 0 for a capture it could not read.
    if (!st.capture_error && !st.stopped && st.frames > 0 && st.not_ethernet == st.frames)
        st.capture_error = Error{ErrorKind::Data, 0, reader.path(), "read capture",
                                 "none of its " + std::to_string(st.frames) +
                                     " frames can be read as Ethernet (link type " +
                                     std::to_string(first_linktype) + " " +
                                     pcap::linktype_name(first_linktype) + "; first: " +
                                     first_reason + ")",
                                 "supported link types: ETHERNET, NULL, LOOP, RAW, IPV4, IPV6, "
                                 "LINUX_SLL, LINUX_SLL2, PPP, C_HDLC"};
    return st;
}

}  // namespace etcpipe
