// NFP fixture: breaks "div" only (divisor is not a verifier-known constant).
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int nfp_div_var(struct xdp_md *ctx)
{
    __u8 *p = (void *)(long)ctx->data;
    if ((void *)(p + 2) > (void *)(long)ctx->data_end) return XDP_DROP;
    __u32 a = p[0], b = p[1] | 1;
    return (a / b) > 2 ? XDP_PASS : XDP_DROP;  /* BPF_DIV by a register */
}

char LICENSE[] SEC("license") = "GPL";
