// NFP fixture: breaks "map-type" only (an LRU hash map is not offloadable).
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

/* an LRU hash map is not offloadable */
struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, 16);
    __type(key, __u32);
    __type(value, __u32);
} nfp_map_type_map SEC(".maps");

SEC("xdp")
int nfp_map_type(struct xdp_md *ctx)
{
    __u32 key = 0;
    __u32 *v = bpf_map_lookup_elem(&nfp_map_type_map, &key);
    return v ? XDP_DROP : XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
