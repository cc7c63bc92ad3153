// SPDX-License-Identifier: GPL-2.0
/* xdp_anova for the IEEE-754 double encoding (ANOVA_ENC_F64): the ANOVA
 * state split of bpf/anova_prog.h with the samples converted to
 * fixed point in XDP, offloadable to an NFP. The u32 encoding is
 * bpf/anova.bpf.c; the loader picks the object. */
#include "anova_prog.h"

SEC("xdp")
int xdp_anova(struct xdp_md *ctx)
{
	return anova_xdp(ctx, ANOVA_ENC_F64);
}

char LICENSE[] SEC("license") = "GPL";
