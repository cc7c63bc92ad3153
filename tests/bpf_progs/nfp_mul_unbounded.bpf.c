// NFP fixture: breaks "mul-operand-range" only (64-bit packet words multiplied:
// neither operand is provably ≤ 2^32-1).
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int nfp_mul_unbounded(struct xdp_md *ctx)
{
    __u64 *p = (void *)(long)ctx->data;
    if ((void *)(p + 2) > (void *)(long)ctx->data_end) return XDP_DROP;
    __u64 a = p[0], b = p[1];
    return (a * b) > 1000 ? XDP_PASS : XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";
