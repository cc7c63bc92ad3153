// NFP fixture: breaks "map-flags" only (a hash map with BPF_F_NO_PREALLOC).
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

/* a hash map with BPF_F_NO_PREALLOC */
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 16);
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __type(key, __u32);
    __type(value, __u32);
} nfp_map_flags_map SEC(".maps");

SEC("xdp")
int nfp_map_flags(struct xdp_md *ctx)
{
    __u32 key = 0;
    __u32 *v = bpf_map_lookup_elem(&nfp_map_flags_map, &key);
    return v ? XDP_DROP : XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
