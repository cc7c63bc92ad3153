// NFP fixture: breaks no rule. Parses Ethernet/IPv4, reads a one-entry ARRAY
// config with bpf_map_lookup_elem, multiplies two u32 values and returns
// XDP_PASS or XDP_DROP. `etcpipe check --target nfp` must report it clean.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct nfp_cfg { __u32 scale; __u32 limit; };

/* One-entry configuration, written by user space only. */
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct nfp_cfg);
} nfp_cfg_map SEC(".maps");

SEC("xdp")
int nfp_clean(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > data_end) return XDP_DROP;
    if (eth->h_proto != bpf_htons(ETH_P_IP)) return XDP_PASS;
    struct iphdr *ip = (void *)(eth + 1);
    if ((void *)(ip + 1) > data_end) return XDP_DROP;
    __u32 key = 0;
    struct nfp_cfg *cfg = bpf_map_lookup_elem(&nfp_cfg_map, &key);
    if (!cfg) return XDP_PASS;
    __u64 cost = (__u64)bpf_ntohs(ip->tot_len) * cfg->scale;  /* u32 x u32 */
    return cost > cfg->limit ? XDP_DROP : XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
