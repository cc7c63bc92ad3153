// `etcpipe version` (and `etcpipe -V`).
#pragma once

#include "cli/command.hpp"

namespace etcpipe::cli {

[[nodiscard]] Entry version_command();

// Prints etcpipe's, libbpf's and libxdp's versions; the exit code.
int print_version();

}  // namespace etcpipe::cli
