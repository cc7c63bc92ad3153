// NFP fixture: breaks "tail-call" (bpf_tail_call). The PROG_ARRAY it needs
// also breaks "map-type": a tail call cannot be written without one.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

/* Programs to jump to. */
struct {
    __uint(type, BPF_MAP_TYPE_PROG_ARRAY);
    __uint(max_entries, 4);
    __type(key, __u32);
    __type(value, __u32);
} nfp_jmp SEC(".maps");

SEC("xdp")
int nfp_tail_call(struct xdp_md *ctx)
{
    bpf_tail_call(ctx, &nfp_jmp, 0);
    return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
