// `etcpipe features CAPTURE -o DIR`: per-flow tensors (.npy) and a flows
// index (CSV) from a capture, on the GPU or the CPU.
#pragma once

#include <CLI/CLI.hpp>
#include <optional>
#include <string>

#include "gpu/features.hpp"

namespace etcpipe::cli {

struct FeaturesCommand {
    CLI::App* cmd = nullptr;
    std::string capture, out_dir, spec = "payload:10x1000,sizes:10,iat:10";
    Device device = Device::Auto;
    std::string select = "extractor";
    unsigned threads = 0;
    size_t batch = 65536;
    bool quiet = false;
};

void add_features_command(CLI::App& app, FeaturesCommand& c);
[[nodiscard]] std::optional<int> run_features_command(const FeaturesCommand& c);

}  // namespace etcpipe::cli
