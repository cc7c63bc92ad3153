#include "anova/anova_status.hpp"

#include <bpf/bpf.h>

#include <optional>
#include <string>

#include "common/log.hpp"
#include "common/prog_maps.hpp"
#include "etcpipe/anova.h"

namespace etcpipe::anova {
namespace {

std::optional<anova_config> read_config(int prog_fd) {
    std::optional<anova_config> cfg;
    auto r = for_each_program_map(prog_fd, [&](int fd, const bpf_map_info& mi) {
        if (std::string(mi.name) != ANOVA_MAP_CONFIG || mi.value_size != sizeof(anova_config)) return;
        anova_config c{};
        uint32_t zero = 0;
        if (bpf_map_lookup_elem(fd, &zero, &c) == 0) cfg = c;
    });
    if (!r) ETC_WARN("ANOVA: read program info: %s", r.error().message().c_str());
    return cfg;
}

void describe(int prog_fd, bool /*all_counters*/, std::FILE* out) {
    const auto a = read_config(prog_fd);
    if (!a) return;
    std::fprintf(out, "    config: udp/%u  reply=%s  encoding=%s  frac_bits=%u  eps=%llu  eps2=%llu\n",
                 a->port, a->reply == ANOVA_REPLY_TX ? "tx" : "pass",
                 a->encoding == ANOVA_ENC_F64 ? "f64" : "u32", a->frac_bits,
                 static_cast<unsigned long long>(a->eps), static_cast<unsigned long long>(a->eps2));
}

}  // namespace

ProgramKind program_kind() {
    ProgramKind k;
    k.application = "ANOVA";
    k.prog_names = {ANOVA_PROG_NAME};
    k.describe = describe;
    return k;
}

}  // namespace etcpipe::anova
