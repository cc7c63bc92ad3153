// NFP fixture: breaks "prog-type" only (a socket filter cannot be offloaded).
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("socket")
int nfp_prog_type(struct __sk_buff *skb)
{
    return 0;
}

char LICENSE[] SEC("license") = "GPL";
