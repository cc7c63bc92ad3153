#include "common/kernel_config.hpp"

#include <sys/utsname.h>
#include <zlib.h>

#include <charconv>
#include <map>
#include <mutex>

namespace etcpipe {

namespace {

// name=value lines of the first configuration that opens (gzopen reads
// plain text too).
std::map<std::string, std::string> read_config() {
    std::map<std::string, std::string> values;
    std::string boot;
    if (utsname u{}; uname(&u) == 0) boot = std::string("/boot/config-") + u.release;
    gzFile f = nullptr;
    for (const std::string& path : {boot, std::string("/proc/config.gz")})
        if (!path.empty() && (f = gzopen(path.c_str(), "rb")) != nullptr) break;
    if (!f) return values;
    char line[4096];
    while (gzgets(f, line, sizeof line)) {
        std::string s(line);
        while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
        if (s.rfind("CONFIG_", 0) != 0) continue;
        const auto eq = s.find('=');
        if (eq != std::string::npos) values.emplace(s.substr(0, eq), s.substr(eq + 1));
    }
    gzclose(f);
    return values;
}

}  // namespace

std::optional<uint64_t> kernel_config_number(const std::string& name) {
    static std::once_flag once;
    static std::map<std::string, std::string> config;
    std::call_once(once, [] { config = read_config(); });
    const auto it = config.find(name);
    if (it == config.end()) return std::nullopt;
    uint64_t v = 0;
    const std::string& t = it->second;
    const auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
    if (ec != std::errc() || end != t.data() + t.size()) return std::nullopt;
    return v;
}

uint64_t kernel_ns_per_tick() {
    const auto hz = kernel_config_number("CONFIG_HZ");
    return hz && *hz > 0 && *hz <= 100000 ? 1000000000ull / *hz : 0;
}

}  // namespace etcpipe
