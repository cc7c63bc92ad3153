// The FlowManager's commands: load (also `--prog anova`), unload, replay,
// run (the live pipeline) and send (traffic for it).
#pragma once

#include "cli/command.hpp"

namespace etcpipe::cli {

[[nodiscard]] Entry load_command();
[[nodiscard]] Entry unload_command();
[[nodiscard]] Entry replay_command();
[[nodiscard]] Entry run_command();
[[nodiscard]] Entry send_command();

}  // namespace etcpipe::cli
