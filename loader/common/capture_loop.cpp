#include "common/capture_loop.hpp"

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
            if (st.not_ethernet++ == 0 && o.on_first_not_ethernet) o.on_first_not_ethernet(frame, bytes.error());
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
    return st;
}

}  // namespace etcpipe
