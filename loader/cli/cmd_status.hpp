// `etcpipe status [IFACE]`: the XDP programs of every interface, with the
// FlowManager's and the ANOVA program's own state.
#pragma once

#include <vector>

#include "cli/command.hpp"
#include "common/xdp_attach.hpp"

namespace etcpipe::cli {

[[nodiscard]] Entry status_command();

// The programs status and unload call ours: every application's ProgramKind.
[[nodiscard]] std::vector<ProgramKind> etcpipe_program_kinds();

// Prints xdp_status()'s result; each program's own lines come from its kind.
void print_status(const std::vector<InterfaceStatus>& all);

}  // namespace etcpipe::cli
