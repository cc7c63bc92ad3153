// NFP fixture: breaks "packet-offset" only (reads byte 2000 of the packet).
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int nfp_packet_offset(struct xdp_md *ctx)
{
    __u8 *p = (void *)(long)ctx->data;
    if ((void *)(p + 2001) > (void *)(long)ctx->data_end) return XDP_DROP;
    return p[2000] ? XDP_PASS : XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";
