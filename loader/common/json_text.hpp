// JSON Lines pieces shared by the commands that print flows.
#pragma once

#include <cmath>
#include <cstdio>
#include <string>
#include <string_view>

namespace etcpipe::json {

// A JSON string literal: quotes, backslashes and control bytes escaped (a
// class name comes from the model file, so it may hold any of them).
inline std::string string(std::string_view s) {
    std::string o = "\"";
    for (const char ch : s) {
        const auto c = static_cast<unsigned char>(ch);
        if (c == '"' || c == '\\') {
            o += '\\';
            o += ch;
        } else if (c < 0x20) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04x", c);
            o += buf;
        } else {
            o += ch;
        }
    }
    return o + "\"";
}

// A probability as a JSON number; JSON has no NaN or Inf, so those are null
// (the CPU backend refuses them; this keeps any backend's output valid JSON).
inline std::string probability(float p) {
    if (!std::isfinite(p)) return "null";
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.6f", static_cast<double>(p));
    return buf;
}

}  // namespace etcpipe::json
