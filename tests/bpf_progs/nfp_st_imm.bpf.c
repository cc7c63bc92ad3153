// NFP fixture: breaks "st-imm" only. clang 14 never emits BPF_ST (its
// disassembler does not even know it), so the instruction is spelled out:
// 0x62 = BPF_ST|BPF_MEM|BPF_W, dst r10, off -8, imm 5: *(u32 *)(r10 - 8) = 5.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int nfp_st_imm(struct xdp_md *ctx)
{
    asm volatile(".quad 0x00000005fff80a62" ::: "memory");
    return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
