// libFuzzer target: frames → parse_frame → TCP reassembly / UDP → STEP and
// block deframing → FAST decoding (md::FeedDecoder), on arbitrary input.
// The input is a list of operations, each a raw frame or a TCP segment whose
// valid Ethernet/IPv4/TCP headers this target writes (so the reassembler and
// the deframers are reached without guessing checksums-free headers):
//   op 0: [len:2][frame bytes]
//   op 1: [conn:1][seq delta:2][flags:1][len:1][payload]
//   op 2: advance time by [ms:1]
// Nothing may crash or read out of bounds; the counters must stay consistent.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <vector>

#include "mdfeed/feed.hpp"

namespace {

using namespace etcpipe;

struct NullSink : md::RecordSink {
    void on_record(const fast::MessageView&, const md::RecordContext&) override {}
    void on_problem(const md::RecordContext&, const std::string&) override {}
};

const fast::TemplateSet& templates() {
    static std::optional<fast::TemplateSet> set = [] {
        auto s = fast::TemplateSet::load("testdata/mdfeed/sse.xml");
        if (!s) std::abort();
        return std::optional<fast::TemplateSet>(std::move(*s));
    }();
    return *set;
}

std::vector<uint8_t> tcp_frame(uint8_t conn, uint32_t seq, uint8_t flags,
                               std::span<const uint8_t> payload) {
    std::vector<uint8_t> f(14 + 20 + 20 + payload.size(), 0);
    f[12] = 0x08;  // IPv4
    uint8_t* ip = f.data() + 14;
    ip[0] = 0x45;
    const uint16_t tot = static_cast<uint16_t>(40 + payload.size());
    ip[2] = static_cast<uint8_t>(tot >> 8);
    ip[3] = static_cast<uint8_t>(tot);
    ip[8] = 64;
    ip[9] = 6;
    const uint8_t src[4] = {10, 0, 0, static_cast<uint8_t>(1 + (conn & 3))};
    const uint8_t dst[4] = {10, 0, 1, 1};
    std::memcpy(ip + 12, src, 4);
    std::memcpy(ip + 16, dst, 4);
    uint8_t* tcp = ip + 20;
    tcp[0] = 0x23;  // 9000
    tcp[1] = 0x28;
    tcp[2] = 0x9c;
    tcp[3] = static_cast<uint8_t>(0x40 + (conn >> 2));
    for (int i = 0; i < 4; ++i) tcp[4 + i] = static_cast<uint8_t>(seq >> (24 - 8 * i));
    tcp[12] = 0x50;
    tcp[13] = flags;
    if (!payload.empty()) std::memcpy(tcp + 20, payload.data(), payload.size());
    return f;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 2) return 0;
    md::FeedOptions fo;
    static const md::Framing kFramings[] = {md::Framing::Step, md::Framing::Raw,
                                            md::Framing::Len32Le, md::Framing::Block};
    fo.tcp_framing = kFramings[data[0] & 3];
    fo.reset_per_block = data[0] & 4;
    fo.udp_seq_preamble = data[0] & 8;
    fo.reassembly.buffer_bytes = (data[0] & 16) ? 2048 : 8192;  // small: fast runs
    fo.reassembly.max_connections = (data[0] & 32) ? 2 : 8;
    fo.reassembly.gap_timeout_ns = 3'000'000;
    NullSink sink;
    md::FeedDecoder feed(templates(), fo, sink);
    uint32_t seq[8] = {1000, 2000, 3000, 0xfffffff0u, 5000, 6000, 7000, 8000};
    uint64_t now = 1'000'000'000;
    size_t i = 1;
    while (i < size) {
        const uint8_t op = data[i++] % 3;
        if (op == 0 && i + 2 <= size) {
            size_t len = static_cast<size_t>(data[i]) << 8 | data[i + 1];
            i += 2;
            len = std::min(len, size - i);
            feed.frame({data + i, len}, now);
            i += len;
        } else if (op == 1 && i + 5 <= size) {
            const uint8_t conn = data[i] & 7;
            const int16_t delta = static_cast<int16_t>(data[i + 1] << 8 | data[i + 2]);
            const uint8_t flags = data[i + 3];
            size_t len = std::min<size_t>(data[i + 4], size - i - 5);
            i += 5;
            const std::vector<uint8_t> f = tcp_frame(conn, seq[conn] + static_cast<uint32_t>(delta), flags, {data + i, len});
            if (delta >= 0) seq[conn] += static_cast<uint32_t>(delta);
            feed.frame(f, now);
            i += len;
        } else if (op == 2 && i < size) {
            now += static_cast<uint64_t>(data[i++]) * 1'000'000;
            feed.advance_time(now);
        } else {
            break;
        }
    }
    feed.finish();
    const md::ReassemblyCounters& r = feed.reassembly();
    if (r.bytes_delivered > r.bytes_accepted) std::abort();
    return 0;
}
