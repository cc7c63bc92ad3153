#include "flowmgr/capture_features.hpp"

#include <algorithm>
#include <optional>
#include <vector>

#include "common/capture_loop.hpp"

namespace etcpipe {

Result<FeedStats> feed_capture(pcap::Reader& reader, features::Extractor& ex, const FeedOptions& o) {
    FeedStats st;
    features::Batch own;
    features::Batch& batch = o.buffers ? *o.buffers : own;
    batch.clear();
    batch.first_index = 0;
    // Room for a whole batch at once (no capture needs more than its size)
    // instead of doubling: each step was a fresh mapping, faulted in again.
    batch.bytes.reserve(std::min<size_t>(reader.size_bytes(), o.batch_bytes + (size_t{1} << 18)));
    const size_t most_frames = std::min<size_t>(o.batch, reader.size_bytes() / 16 + 1);
    batch.offsets.reserve(most_frames + 1);
    batch.ts_ns.reserve(most_frames);
    std::optional<Error> failed;  // from keep() or the extractor: stops the feeding
    auto flush = [&]() -> Result<void> {
        if (batch.size() == 0) return {};
        auto r = ex.push(batch);
        batch.clear();
        batch.first_index = st.fed;
        return r;
    };
    auto loop = for_each_ethernet_frame(reader, [&](const EthernetFrame& f) {
        if (o.keep) {
            auto k = o.keep(f.bytes, f.ts_ns);
            if (!k) return failed = k.error(), false;
            if (!*k) return true;
        }
        batch.add(f.bytes, f.ts_ns);
        ++st.fed;
        if (batch.size() >= o.batch || batch.bytes.size() >= o.batch_bytes) {
            if (auto r = flush(); !r) return failed = r.error(), false;
            if (o.progress) o.progress(f.frame->index + 1);
        }
        return true;
    });
    if (failed) return *failed;
    st.frames = loop.frames;
    st.capture_error = loop.capture_error;
    if (auto r = flush(); !r) return r.error();
    return st;
}

Result<features::Output> extract_capture(const std::string& path,
                                         const std::vector<features::Feature>& spec, unsigned threads) {
    auto reader = pcap::Reader::open(path);
    if (!reader) return reader.error();
    features::CpuOptions co;
    co.threads = threads;
    auto ex = features::make_cpu_extractor(spec, co);
    auto fed = feed_capture(*reader, *ex);
    if (!fed) return fed.error();
    if (fed->capture_error) return *fed->capture_error;
    return ex->finish();
}

}  // namespace etcpipe
