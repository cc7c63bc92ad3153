// Shared by the CLI's command files: exit codes and the one way an error is
// printed.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

#include "common/log.hpp"
#include "gpu/features.hpp"
#include "common/result.hpp"

namespace etcpipe::cli {

// Exit codes, documented in README.md and --help.
enum Exit : int { kOk = 0, kGeneral = 1, kUsage = 2, kBpf = 3, kIo = 4, kData = 5 };

[[nodiscard]] inline int exit_code(const Error& e) {
    switch (e.kind) {
        case ErrorKind::Usage: return kUsage;
        case ErrorKind::Bpf: return kBpf;
        case ErrorKind::Io: return kIo;
        case ErrorKind::Data: return kData;
    }
    return kGeneral;
}

inline int fail(const Error& e) {
    ETC_ERR("%s", e.message().c_str());
    return exit_code(e);
}

// --device gpu|cpu|auto, parsed into `device` as it is read.
inline CLI::Option* add_device_option(CLI::App* cmd, Device& device, const std::string& help) {
    return cmd
        ->add_option_function<std::string>(
            "--device", [&device](const std::string& s) { device = parse_device(s).value(); }, help)
        ->check(CLI::IsMember({"gpu", "cpu", "auto"}))
        ->default_str(device_name(device));
}

}  // namespace etcpipe::cli
