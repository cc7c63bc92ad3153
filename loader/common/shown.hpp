// How a bad value from the user or a file is quoted in an error message.
#pragma once

#include <string>
#include <string_view>

namespace etcpipe {

// The first 40 characters of it, so a 10 MB argument or line is not echoed.
inline std::string shown(std::string_view s) {
    if (s.size() <= 40) return "'" + std::string(s) + "'";
    return "'" + std::string(s.substr(0, 40)) + "...' (" + std::to_string(s.size()) + " characters)";
}

}  // namespace etcpipe
