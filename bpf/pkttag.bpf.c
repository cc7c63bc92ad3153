// SPDX-License-Identifier: GPL-2.0
/* xdp_pkttag: the per-packet traffic tagger of bpf/pkttag_prog.h with the
 * tag written into the DSCP, offloadable to an NFP
 * (`etcpipe check --target nfp bpf/pkttag.bpf.o`). IPv4: the upper six
 * bits of the TOS, the header checksum updated incrementally (RFC 1624,
 * HC' = ~(~HC + ~m + m') over the 16-bit word holding the TOS); IPv6: the
 * upper six bits of the traffic class (no header checksum; TCP/UDP
 * checksums do not cover it). ECN is kept. Untagged packets (tag 0) are
 * left as they are. Every packet passes (XDP_PASS). The metadata variant
 * is bpf/pkttag_meta.bpf.c. */
#include "pkttag_prog.h"

SEC("xdp")
int xdp_pkttag(struct xdp_md *ctx)
{
	struct pkttag_where where = { 0 };
	__u32 tag = pkttag_classify(ctx, &where);
	void *data, *data_end, *l3;

	/* packet pointers read afresh: none stays live across the network */
	STAGE_BARRIER(ctx);
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	/* at most Ethernet + two VLAN tags: the mask bounds it for the verifier */
	l3 = data + (where.l3off & 0x3f);

	if (!tag)
		return XDP_PASS;
	if (!where.is_v6) {
		struct iphdr *iph = l3;
		__u16 *w = l3;
		__u32 old, new_, sum;

		if ((void *)(iph + 1) > data_end)
			return XDP_PASS;
		old = w[0];  /* version/IHL and TOS, as stored */
		/* TOS is the second byte: the high byte of the LE-loaded word */
		new_ = (old & 0x03ff) | (tag << 10);
		sum = (__u16)~iph->check;
		sum += (__u16)~old;
		sum += new_;
		sum = (sum & 0xffff) + (sum >> 16);
		sum = (sum & 0xffff) + (sum >> 16);
		w[0] = opaque32(new_);
		iph->check = opaque32(~sum & 0xffff);
	} else {
		__u8 *p = l3;

		if ((void *)(p + 2) > data_end)
			return XDP_PASS;
		/* version(4) | traffic class(8) | flow label(20): DSCP = the upper
		 * six bits of the traffic class, bits 3..0 of byte 0 and 7..6 of
		 * byte 1 */
		p[0] = opaque32((p[0] & 0xf0) | (tag >> 2));
		p[1] = opaque32((p[1] & 0x3f) | ((tag & 3) << 6));
	}
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
