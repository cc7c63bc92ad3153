#include "anova/anova_attach.hpp"

#include <bpf/libbpf.h>

#include "anova.skel.h"
#include "common/skeleton.hpp"

namespace etcpipe::anova {

anova_config make_config(const ProgramOptions& o) {
    anova_config c{};
    c.eps = o.params.eps;
    c.eps2 = o.params.eps2;
    c.port = o.port;
    c.reply = static_cast<__u8>(o.reply);
    c.encoding = static_cast<__u8>(o.encoding);
    c.frac_bits = static_cast<__u8>(o.params.frac_bits);
    return c;
}

Result<AttachResult> attach(const std::string& iface, XdpMode mode, const ProgramOptions& o) {
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
    return attach_object(iface, mode, s->obj, "xdp_anova", write_config);
}

}  // namespace etcpipe::anova
