// NFP fixture: breaks "helper" only (bpf_ktime_get_ns is not on the NFP).
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int nfp_helper(struct xdp_md *ctx)
{
    return (bpf_ktime_get_ns() & 1) ? XDP_PASS : XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";
