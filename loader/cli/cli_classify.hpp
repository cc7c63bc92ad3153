// `etcpipe classify CAPTURE... --model M`: captures → per-flow features →
// ONNX model on the CPU or GPU → one JSON line per flow (capture, 5-tuple,
// class, probabilities), many captures in one process.
#pragma once

#include <CLI/CLI.hpp>
#include <optional>
#include <string>
#include <vector>

#include "gpu/features.hpp"

namespace etcpipe::cli {

struct ClassifyCommand {
    CLI::App* cmd = nullptr;
    std::vector<std::string> inputs;  // captures and directories
    std::string model, output = "-";
    Device device = Device::Auto;
    unsigned jobs = 0;     // captures at once (0: the cores)
    unsigned threads = 0;  // per capture (0: the cores shared among the jobs)
    size_t batch = 1024;          // flows per inference call
    size_t packet_batch = 65536;  // packets per extractor batch
    bool quiet = false;
    double min_prob = 0;   // below it a flow is labelled "unknown"
    bool explain = false;  // say what each flow fed the model
};

void add_classify_command(CLI::App& app, ClassifyCommand& c);
[[nodiscard]] std::optional<int> run_classify_command(const ClassifyCommand& c);

}  // namespace etcpipe::cli
