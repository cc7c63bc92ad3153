// `etcpipe features CAPTURE... -o DIR`: per-flow tensors (.npy) and a flows
// index (CSV, with each flow's capture) from one or many captures, on the
// GPU or the CPU, as one dataset.
#pragma once

#include <CLI/CLI.hpp>
#include <optional>
#include <string>
#include <vector>

#include "gpu/features.hpp"

namespace etcpipe::cli {

struct FeaturesCommand {
    CLI::App* cmd = nullptr;
    std::vector<std::string> inputs;  // captures and directories
    std::string out_dir, spec = "payload:10x1000,sizes:10,iat:10";
    Device device = Device::Auto;
    std::string select = "extractor";
    unsigned jobs = 0;     // captures at once (0: the cores)
    unsigned threads = 0;  // per capture (0: the cores shared among the jobs)
    size_t batch = 65536;
    bool quiet = false;
};

void add_features_command(CLI::App& app, FeaturesCommand& c);
[[nodiscard]] std::optional<int> run_features_command(const FeaturesCommand& c);

}  // namespace etcpipe::cli
