// NFP fixture: breaks "helper-firmware" only (bpf_map_update_elem needs
// firmware capabilities the public NFP firmware does not have).
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

/* Last seen first byte; one entry. */
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u32);
} nfp_last SEC(".maps");

SEC("xdp")
int nfp_helper_firmware(struct xdp_md *ctx)
{
    __u32 key = 0, val = 42;
    bpf_map_update_elem(&nfp_last, &key, &val, BPF_ANY);
    return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
