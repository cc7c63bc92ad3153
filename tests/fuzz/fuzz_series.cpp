// libFuzzer target: arbitrary bytes as a series file → anova::read_series,
// one value per line and as CSV (by header name and by column number).
// Nothing may crash; errors are fine; every value read must be finite.
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "anova/anova.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace etcpipe;
    static const std::string path = "/tmp/etcpipe-fuzz-series-" + std::to_string(getpid());
    std::FILE* f = std::fopen(path.c_str(), "wb");
    if (!f) return 0;
    if (size) std::fwrite(data, 1, size, f);
    std::fclose(f);
    for (const char* column : {"", "2", "close"}) {
        auto s = anova::read_series(path, column);
        if (!s) continue;
        for (double v : *s)
            if (!std::isfinite(v)) std::abort();  // the reader promises finite values
    }
    return 0;
}
