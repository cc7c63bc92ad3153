// A capture into a feature extractor: the one loop behind `etcpipe features`,
// `etcpipe classify`, the inference tests and the inference benchmark.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>

#include "gpu/features.hpp"
#include "common/pcap.hpp"
#include "common/result.hpp"

namespace etcpipe {

struct FeedOptions {
    size_t batch = 1u << 16;  // packets per Extractor::push
    // and at most about this many bytes: a batch's buffer stays one size
    // from capture to capture (faulted in once), whatever the frames' sizes
    size_t batch_bytes = size_t{16} << 20;
    // Decides per frame whether the extractor sees it (e.g. the FlowManager's
    // selection); absent: every frame. An error stops the feeding.
    std::function<Result<bool>(std::span<const uint8_t> frame, uint64_t ts_ns)> keep;
    // Called after every batch with the frames read so far.
    std::function<void(uint64_t frames)> progress;
    // Where the batches are built; absent: a buffer of this call's own. A
    // worker that feeds capture after capture passes its own, so the
    // buffer's pages, faulted in once, serve every capture.
    features::Batch* buffers = nullptr;
};

struct FeedStats {
    uint64_t frames = 0;  // read from the capture
    uint64_t fed = 0;     // given to the extractor
    // A corrupt or truncated capture: the frames before the damage were fed.
    std::optional<Error> capture_error;
};

// Feeds every frame of `reader` (as Ethernet, see pcap::to_ethernet; frames
// shorter than 14 bytes or not convertible are skipped) with its timestamp
// (a frame without one takes the previous one) to `ex`, in arrival order. The
// caller calls ex.finish().
[[nodiscard]] Result<FeedStats> feed_capture(pcap::Reader& reader, features::Extractor& ex,
                                             const FeedOptions& opts = {});

// The whole capture at `path` through a fresh CPU extractor: its Output.
[[nodiscard]] Result<features::Output> extract_capture(const std::string& path,
                                                       const std::vector<features::Feature>& spec,
                                                       unsigned threads = 0);

}  // namespace etcpipe
