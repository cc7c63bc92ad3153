// `etcpipe replay --prog pkttag`: captures through the per-packet tagger.
#pragma once

#include <string>
#include <vector>

namespace etcpipe::cli {

struct PkttagReplayArgs {
    std::vector<std::string> captures;  // resolved files
    std::string json_path = "-";        // '' = none
    std::string variant = "meta";       // meta | dscp
    bool table = false, quiet = false, features = false, flows_only = false;
    unsigned vote = 10;                 // first N tagged packets of a flow vote
    uint64_t max_frames = 0;
};

// Runs every frame of every capture through xdp_pkttag(_meta) with
// BPF_PROG_TEST_RUN, compares each tag with pkttag::reference and prints
// per-packet and per-flow JSON lines (or a flow table) and a summary.
[[nodiscard]] int run_pkttag_replay(const PkttagReplayArgs& a);

}  // namespace etcpipe::cli
