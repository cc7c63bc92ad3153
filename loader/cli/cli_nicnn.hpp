// `etcpipe nicnn classify IMAGES.npy|--digits`: the in-NIC digit CNN
// (bpf/nicnn.bpf.c) run on images through BPF_PROG_TEST_RUN, checked
// against its C++ reference, with accuracy and confusion.
// `etcpipe nicnn bench`: its round-trip latency, XDP_TX reply vs a
// user-space server running the reference (loader/nicnn/latency_bench.hpp).
#pragma once

#include <CLI/CLI.hpp>
#include <optional>
#include <string>

namespace etcpipe::cli {

struct NicnnCommands {
    CLI::App* nicnn = nullptr;
    CLI::App* classify = nullptr;
    CLI::App* bench = nullptr;
    uint64_t bench_images = 100000;
    std::string bench_split = "test";
    std::string images, labels, output, split = "test", digits_path;
    bool digits = false;
    bool reply = false;
};

void add_nicnn_commands(CLI::App& app, NicnnCommands& c);
[[nodiscard]] std::optional<int> run_nicnn_commands(const NicnnCommands& c);

}  // namespace etcpipe::cli
