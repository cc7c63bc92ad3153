// SPDX-License-Identifier: GPL-2.0
/* The trivial baseline for benchmarks: pass every packet untouched. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

SEC("xdp.frags") /* same frame sizes as the FlowManager */
int xdp_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}
