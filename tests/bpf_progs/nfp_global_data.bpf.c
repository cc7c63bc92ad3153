// NFP fixture: breaks "global-data" only (a global variable lives in .bss).
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

__u32 nfp_drop_all;  /* global: .bss, not offloadable */

SEC("xdp")
int nfp_global_data(struct xdp_md *ctx)
{
    return nfp_drop_all ? XDP_DROP : XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
