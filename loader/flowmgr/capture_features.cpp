#include "flowmgr/capture_features.hpp"

#include <vector>

namespace etcpipe {

Result<FeedStats> feed_capture(pcap::Reader& reader, features::Extractor& ex, const FeedOptions& o) {
    FeedStats st;
    features::Batch batch;
    std::vector<uint8_t> scratch;
    pcap::Frame frame;
    uint64_t last_ts = 1;
    auto flush = [&]() -> Result<void> {
        if (batch.size() == 0) return {};
        auto r = ex.push(batch);
        batch.clear();
        batch.first_index = st.fed;
        return r;
    };
    for (;;) {
        auto more = reader.next(frame);
        if (!more) {
            st.capture_error = more.error();
            break;
        }
        if (!*more) break;
        ++st.frames;
        auto eth = pcap::to_ethernet(frame, scratch);
        if (!eth || eth->size() < 14) continue;
        if (frame.ts_ns) last_ts = frame.ts_ns;
        if (o.keep) {
            auto k = o.keep(*eth, last_ts);
            if (!k) return k.error();
            if (!*k) continue;
        }
        batch.add(*eth, last_ts);
        ++st.fed;
        if (batch.size() >= o.batch) {
            if (auto r = flush(); !r) return r.error();
            if (o.progress) o.progress(st.frames);
        }
    }
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
