// Shared by the CLI's command files: exit codes and the one way an error is
// printed.
#pragma once

#include "common/log.hpp"
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

}  // namespace etcpipe::cli
