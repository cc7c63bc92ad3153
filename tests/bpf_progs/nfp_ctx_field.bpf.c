// NFP fixture: breaks "ctx-field" only (reads ctx->ingress_ifindex).
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int nfp_ctx_field(struct xdp_md *ctx)
{
    return ctx->ingress_ifindex == 1 ? XDP_DROP : XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
