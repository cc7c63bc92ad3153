// Output streams end through here, so a write that failed (a full disk,
// /dev/full, a closed pipe) is an I/O error naming the file, never exit 0
// with the output lost: stdio reports a failed write only at the flush.
#pragma once

#include <cstdio>
#include <string>

#include "common/result.hpp"

namespace etcpipe {

// Flushes `f` and checks its error flag; closes it unless it is stdout/stderr.
// `name` is the file as the user gave it ("stdout" for '-').
[[nodiscard]] Result<void> finish_output(std::FILE* f, const std::string& name);

// The last check of stdout before the process exits (main calls it).
[[nodiscard]] Result<void> finish_stdout();

}  // namespace etcpipe
