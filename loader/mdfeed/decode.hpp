// `etcpipe md decode`: captures (pcap/pcapng, recognised by their magic) and
// raw byte files to JSON Lines records. UDP datagrams are decoded one by one;
// TCP connections are reassembled as a mirror port sees them.
#pragma once

#include <string>
#include <vector>

#include "common/result.hpp"
#include "mdfeed/feed.hpp"

namespace etcpipe::md {

struct DecodeOptions {
    std::vector<std::string> inputs;
    std::string templates;
    std::string output = "-";
    FeedOptions feed;
    bool with_ts = true;
    bool quiet = false;        // no counters on stderr
    bool all_counters = false; // zero counters too
};

struct DecodeSummary {
    uint64_t records = 0;
    uint64_t problems = 0;     // decode errors, STEP errors, gaps, truncated ends…
};

// Problems in the data do not stop decoding: they are counted, printed, and
// make the summary's `problems` non-zero (the CLI exits 5 then).
[[nodiscard]] Result<DecodeSummary> run_decode(const DecodeOptions& o);

// True when the first bytes are a pcap or pcapng magic number.
[[nodiscard]] bool looks_like_capture(std::span<const uint8_t> head);

}  // namespace etcpipe::md
