#include "mdfeed/decode.hpp"

#include <cstring>

#include "common/capture_loop.hpp"
#include "common/pcap.hpp"
#include "mdfeed/records_out.hpp"

namespace etcpipe::md {

bool looks_like_capture(std::span<const uint8_t> head) {
    if (head.size() < 4) return false;
    uint32_t m;
    std::memcpy(&m, head.data(), 4);
    for (uint32_t magic : {0xa1b2c3d4u, 0xd4c3b2a1u, 0xa1b23c4du, 0x4d3cb2a1u, 0x0a0d0d0au})
        if (m == magic) return true;
    return false;
}

namespace {

Result<void> decode_capture(pcap::detail::FileBytes bytes, const std::string& path,
                            FeedDecoder& feed) {
    auto reader = pcap::Reader::open(std::move(bytes), path);
    if (!reader) return reader.error();
    const CaptureLoopStats st = for_each_ethernet_frame(*reader, [&](const EthernetFrame& f) {
        feed.frame(f.bytes, f.ts_ns);
        feed.advance_time(f.ts_ns);
        return true;
    });
    if (st.capture_error) return *st.capture_error;
    return {};
}

}  // namespace

Result<DecodeSummary> run_decode(const DecodeOptions& o) {
    auto templates = fast::TemplateSet::load(o.templates);
    if (!templates) return templates.error();
    auto out = OutputFile::open(o.output);
    if (!out) return out.error();
    JsonSinkOptions so;
    so.with_ts = o.with_ts;
    JsonRecordSink sink(*out, so);
    DecodeSummary sum;
    for (const std::string& path : o.inputs) {
        auto bytes = pcap::detail::FileBytes::load(path, /*captures_only=*/false);
        if (!bytes) return bytes.error();
        // Each input on its own: streams and dictionaries never span files.
        FeedOptions fo = o.feed;
        const bool capture = looks_like_capture(bytes->bytes());
        if (!capture && !o.feed.framing_given) {
            // A file that starts with a STEP header is STEP; others raw FAST.
            const auto b = bytes->bytes();
            const bool step = b.size() >= kStepBeginString.size() &&
                              std::memcmp(b.data(), kStepBeginString.data(), kStepBeginString.size()) == 0;
            fo.tcp_framing = step ? Framing::Step : Framing::Raw;
        }
        FeedDecoder feed(*templates, fo, sink);
        if (capture) {
            if (auto r = decode_capture(std::move(*bytes), path, feed); !r) return r.error();
        } else {
            feed.name_stream(path, "");
            feed.stream_bytes(bytes->bytes());
        }
        feed.finish();
        if (!o.quiet) {
            std::fprintf(stderr, "md decode: %s: %llu records\n", path.c_str(),
                         static_cast<unsigned long long>(feed.counters().records));
            print_counters(stderr, feed.counters(), feed.reassembly(), feed.udp_sequence(),
                           o.all_counters);
        }
        if (auto r = out->flush(); !r) return r.error();
    }
    sum.records = sink.records();
    sum.problems = sink.problems();
    return sum;
}

}  // namespace etcpipe::md
