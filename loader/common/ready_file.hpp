// The "ready file" of long-running commands (run, md listen, md recv): once
// attached and able to receive, the command writes its pid to the file, so a
// script or test starts its traffic only then.
#pragma once

#include <string>

#include "common/result.hpp"

namespace etcpipe {

// Writes "<pid>\n" to path; any failure (no such directory, full disk) is an error.
[[nodiscard]] Result<void> write_ready_file(const std::string& path);

}  // namespace etcpipe
