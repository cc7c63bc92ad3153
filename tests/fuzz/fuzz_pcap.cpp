// libFuzzer target: arbitrary bytes as a capture file → pcap::Reader (classic
// pcap and pcapng, both byte orders) → every frame through to_ethernet().
// Nothing may crash, read out of bounds, or overflow (UBSan: the timestamp
// arithmetic); errors are fine.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "common/pcap.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace etcpipe;
    // Reader::open takes a path (it mmaps regular files): a per-process file.
    static const std::string path = "/tmp/etcpipe-fuzz-pcap-" + std::to_string(getpid());
    std::FILE* f = std::fopen(path.c_str(), "wb");
    if (!f) return 0;
    if (size) std::fwrite(data, 1, size, f);
    std::fclose(f);
    auto r = pcap::Reader::open(path);
    if (!r) return 0;
    pcap::Frame frame;
    std::vector<uint8_t> scratch;
    uint64_t sum = 0;
    for (int i = 0; i < 100000; ++i) {
        auto more = r->next(frame);
        if (!more || !*more) break;
        auto eth = pcap::to_ethernet(frame, scratch);
        if (eth && !eth->empty()) sum += (*eth)[eth->size() - 1];
        sum += frame.ts_ns;
    }
    return sum == 1 ? 1 : 0;  // keep the loop's reads
}
