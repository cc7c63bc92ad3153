// printf-style formatting into a std::string, for the tools' text and SVG.
#pragma once

#include <string>

namespace etcpipe {

[[nodiscard]] std::string fmt(const char* f, ...) __attribute__((format(printf, 1, 2)));

}  // namespace etcpipe
