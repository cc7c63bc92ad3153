#include "common/capabilities.hpp"

#include <cstdint>
#include <cstdlib>
#include <fstream>

namespace etcpipe {
namespace {

const char* cap_name(Cap c) {
    switch (c) {
        case Cap::NetAdmin: return "CAP_NET_ADMIN";
        case Cap::NetRaw: return "CAP_NET_RAW";
        case Cap::SysAdmin: return "CAP_SYS_ADMIN";
        case Cap::Perfmon: return "CAP_PERFMON";
        case Cap::Bpf: return "CAP_BPF";
    }
    return "?";
}

// The effective set from /proc/self/status (CapEff, hex); all bits when unreadable.
uint64_t effective() {
    std::ifstream in("/proc/self/status");
    std::string line;
    while (std::getline(in, line))
        if (line.rfind("CapEff:", 0) == 0) return std::strtoull(line.c_str() + 7, nullptr, 16);
    return ~uint64_t{0};
}

}  // namespace

Result<void> require_capabilities(const std::string& command, std::initializer_list<Cap> caps) {
    const uint64_t eff = effective();
    auto has = [eff](Cap c) { return (eff >> static_cast<int>(c)) & 1; };
    std::string missing;
    for (Cap c : caps) {
        const bool implied = (c == Cap::Bpf || c == Cap::Perfmon) && has(Cap::SysAdmin);
        if (!has(c) && !implied) missing += (missing.empty() ? "" : ", ") + std::string(cap_name(c));
    }
    if (missing.empty()) return {};
    std::string all;
    for (Cap c : caps) all += (all.empty() ? "" : ", ") + std::string(cap_name(c));
    return Error{ErrorKind::Usage, 0, command, "check capabilities", "missing " + missing,
                 "it needs " + all + " (run as root, or grant them: setpriv/capsh, systemd "
                 "AmbientCapabilities=)"};
}

}  // namespace etcpipe
