// SPDX-License-Identifier: GPL-2.0
/* xdp_pkttag_meta: the per-packet traffic tagger of bpf/pkttag_prog.h with
 * the tag put in the XDP metadata area in front of the frame (struct
 * pkttag_meta, include/etcpipe/pkttag.h) for an AF_XDP reader or a TC
 * program behind it; the frame itself is not changed. Not offloadable:
 * bpf_xdp_adjust_meta and ctx->data_meta do not exist on the NFP (the
 * DSCP variant bpf/pkttag.bpf.c is). Untagged packets get no metadata.
 * Every packet passes (XDP_PASS). */
#include "pkttag_prog.h"

SEC("xdp")
int xdp_pkttag_meta(struct xdp_md *ctx)
{
	struct pkttag_where where = { 0 };
	__u32 tag = pkttag_classify(ctx, &where);
	struct pkttag_meta *m;
	void *data;

	if (!tag)
		return XDP_PASS;
	if (bpf_xdp_adjust_meta(ctx, -(int)sizeof(*m)))
		return XDP_PASS;
	data = (void *)(long)ctx->data;
	m = (void *)(long)ctx->data_meta;
	if ((void *)(m + 1) > data)
		return XDP_PASS;
	m->magic = opaque32(PKTTAG_META_MAGIC);
	m->tag = tag;
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
