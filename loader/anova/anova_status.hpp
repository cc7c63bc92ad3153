// What `etcpipe status` / `unload` know of the ANOVA program: its name and
// its config map, printed as `etcpipe load --prog anova` set it.
#pragma once

#include "common/xdp_attach.hpp"

namespace etcpipe::anova {

[[nodiscard]] ProgramKind program_kind();

}  // namespace etcpipe::anova
