// NFP fixture: breaks "return-code" only (returns XDP_REDIRECT, 4).
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int nfp_return_code(struct xdp_md *ctx)
{
    return XDP_REDIRECT;
}

char LICENSE[] SEC("license") = "GPL";
