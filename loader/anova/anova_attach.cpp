#include "anova/anova_attach.hpp"

#include <bpf/libbpf.h>

#include "anova/anova_object.hpp"

namespace etcpipe::anova {

Result<AttachResult> attach(const std::string& iface, XdpMode mode, const ProgramOptions& o) {
    if (auto r = check_params(o.params); !r) return r.error();
    // The object for the configured encoding (both name their program xdp_anova).
    auto obj = Object::open(o.encoding);
    if (!obj) return obj.error();
    const anova_config cfg = make_config(o);
    auto write_config = [&]() -> Result<void> {
        const __u32 key = 0;
        if (bpf_map__update_elem(obj->config_map(), &key, sizeof(key), &cfg, sizeof(cfg), BPF_ANY))
            return make_error(ErrorKind::Bpf, errno, ANOVA_MAP_CONFIG, "write config");
        return {};
    };
    // The attached program keeps its maps alive after the skeleton is gone.
    return attach_object(iface, mode, obj->obj(), ANOVA_PROG_NAME, write_config);
}

}  // namespace etcpipe::anova
