// NFP fixture: breaks "stack-variable-offset" only (a stack array indexed by a
// packet byte). The kernel verifier caps the frame at 512 B anyway, so the
// stack-size rule is not exercised by a fixture.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int nfp_stack(struct xdp_md *ctx)
{
    __u8 *p = (void *)(long)ctx->data;
    if ((void *)(p + 1) > (void *)(long)ctx->data_end) return XDP_DROP;
    volatile __u8 table[16];
    for (int i = 0; i < 16; i++) table[i] = p[0];
    return table[p[0] & 15] ? XDP_PASS : XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";
