// SPDX-License-Identifier: GPL-2.0
/* xdp_anova for the u32 fixed-point encoding (ANOVA_ENC_U32): the ANOVA
 * state split of bpf/anova_prog.h, offloadable to an NFP. The double
 * encoding is bpf/anova_f64.bpf.c; the loader picks the object. */
#include "anova_prog.h"

SEC("xdp")
int xdp_anova(struct xdp_md *ctx)
{
	return anova_xdp(ctx, ANOVA_ENC_U32);
}

char LICENSE[] SEC("license") = "GPL";
