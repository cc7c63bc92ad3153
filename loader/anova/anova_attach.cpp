#include "anova/anova_attach.hpp"

#include <bpf/libbpf.h>

#include "anova.skel.h"
#include "common/skeleton.hpp"

namespace etcpipe::anova {

Result<AttachResult> attach(const std::string& iface, XdpMode mode, const ProgramOptions& o) {
    if (auto r = check_params(o.params); !r) return r.error();
    auto skel = Skeleton<anova_bpf>::open("anova.bpf.o");
    if (!skel) return skel.error();
    anova_bpf* s = skel->get();
    const anova_config cfg = make_config(o);
    auto write_config = [&]() -> Result<void> {
        const __u32 key = 0;
        if (bpf_map__update_elem(s->maps.anova_cfg, &key, sizeof(key), &cfg, sizeof(cfg), BPF_ANY))
            return make_error(ErrorKind::Bpf, errno, ANOVA_MAP_CONFIG, "write config");
        return {};
    };
    // The attached program keeps its maps alive after the skeleton is gone.
    return attach_object(iface, mode, s->obj, ANOVA_PROG_NAME, write_config);
}

}  // namespace etcpipe::anova
