// SIGINT/SIGTERM as a flag that long-running loops poll (run, serve,
// bench). One flag per process: the handlers only store to it.
#pragma once

#include <atomic>

namespace etcpipe {

// The process-wide stop flag; set by SIGINT and SIGTERM once
// install_stop_handlers() ran.
[[nodiscard]] std::atomic<bool>& stop_flag();

// Installs the handlers without SA_RESTART, so a blocking poll() returns
// EINTR and the loop sees the flag. Idempotent.
void install_stop_handlers();

}  // namespace etcpipe
