// Where the build under test lives: $ETCPIPE_BUILD (as `make test` sets it),
// default "build".
#pragma once

#include <cstdlib>
#include <string>

namespace etcpipe::testing {

inline std::string build_dir() {
    const char* b = std::getenv("ETCPIPE_BUILD");
    return b && *b ? b : "build";
}

inline std::string etcpipe_bin() { return build_dir() + "/etcpipe"; }

}  // namespace etcpipe::testing
