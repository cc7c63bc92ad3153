// NFP fixture: breaks "map-size" only (a 128-byte map value).
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct nfp_big { __u8 bytes[128]; };

/* a 128-byte map value */
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 16);
    __type(key, __u32);
    __type(value, struct nfp_big);
} nfp_map_size_map SEC(".maps");

SEC("xdp")
int nfp_map_size(struct xdp_md *ctx)
{
    __u32 key = 0;
    struct nfp_big *v = bpf_map_lookup_elem(&nfp_map_size_map, &key);
    return v ? XDP_DROP : XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
