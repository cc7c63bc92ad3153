// The captures named on a command line: files as given, directories walked
// recursively (sorted, so the order does not depend on the file system),
// a file inside a directory kept when its first bytes are a pcap/pcapng
// magic (never by name), everything else skipped and counted.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "common/result.hpp"

namespace etcpipe {

struct CaptureInputs {
    std::vector<std::string> captures;  // in command-line order, each directory sorted
    size_t skipped = 0;                 // files in directories that are no capture
    size_t unreadable = 0;              // files in directories that could not be opened
};

// A path that does not exist is an Io error naming it; an explicit file is
// kept whatever it holds (reading it later says what is wrong), so a
// single-capture command keeps its errors.
[[nodiscard]] Result<CaptureInputs> find_captures(const std::vector<std::string>& paths);

}  // namespace etcpipe
