// NFP fixture: breaks "opcode-mod" only (the NFP has no modulo instruction).
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int nfp_mod(struct xdp_md *ctx)
{
    __u8 *p = (void *)(long)ctx->data;
    if ((void *)(p + 2) > (void *)(long)ctx->data_end) return XDP_DROP;
    __u32 a = p[0], b = p[1] | 1;
    /* clang 14 has no BPF_MOD (it lowers `a % b` to a - (a / b) * b, which
     * breaks "div" instead), so spell BPF_ALU64|BPF_MOD|BPF_X r2 %= r3 out. */
    __u64 r;
    asm volatile("r2 = %1\n r3 = %2\n .quad 0x000000000000329f\n %0 = r2"
                 : "=r"(r) : "r"(a), "r"(b) : "r2", "r3");
    return r ? XDP_PASS : XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";
