// NFP fixture: breaks "sign-extend" only. clang 14 has no -mcpu=v4, so the
// instruction is spelled out: 0xbf = BPF_ALU64|BPF_MOV|BPF_X with off 8,
// i.e. movsx r2 = (s8)r2.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int nfp_sign_extend(struct xdp_md *ctx)
{
    asm volatile(".quad 0x00000000000822bf" ::: "r2");
    return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
