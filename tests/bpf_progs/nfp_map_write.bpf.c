// NFP fixture: breaks "map-write" only (stores into a looked-up map value:
// public NFP firmware has lookup-only maps in the datapath).
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

/* Last first byte seen. */
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u32);
} nfp_last SEC(".maps");

SEC("xdp")
int nfp_map_write(struct xdp_md *ctx)
{
    __u8 *p = (void *)(long)ctx->data;
    if ((void *)(p + 1) > (void *)(long)ctx->data_end) return XDP_DROP;
    __u32 key = 0;
    __u32 *v = bpf_map_lookup_elem(&nfp_last, &key);
    if (v) *v = p[0];
    return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
