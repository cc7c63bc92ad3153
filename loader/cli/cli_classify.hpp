// `etcpipe classify CAPTURE --model M`: capture → per-flow features → ONNX
// model on the CPU or GPU → one JSON line per flow (class, probabilities,
// 5-tuple).
#pragma once

#include <CLI/CLI.hpp>
#include <optional>
#include <string>

#include "gpu/features.hpp"

namespace etcpipe::cli {

struct ClassifyCommand {
    CLI::App* cmd = nullptr;
    std::string capture, model, output = "-";
    Device device = Device::Auto;
    unsigned threads = 0;
    size_t batch = 1024;          // flows per inference call
    size_t packet_batch = 65536;  // packets per extractor batch
    bool quiet = false;
};

void add_classify_command(CLI::App& app, ClassifyCommand& c);
[[nodiscard]] std::optional<int> run_classify_command(const ClassifyCommand& c);

}  // namespace etcpipe::cli
