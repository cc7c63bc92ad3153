// NFP fixture: breaks "atomic" only (fetch-and-add whose result is used:
// BPF_ATOMIC with BPF_FETCH; the NFP only has add without fetch).
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

/* One packet counter. */
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u64);
} nfp_count SEC(".maps");

SEC("xdp")
int nfp_atomic_fetch(struct xdp_md *ctx)
{
    __u32 key = 0;
    __u64 *n = bpf_map_lookup_elem(&nfp_count, &key);
    if (!n) return XDP_PASS;
    return (__sync_fetch_and_add(n, 1) & 1) ? XDP_PASS : XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";
