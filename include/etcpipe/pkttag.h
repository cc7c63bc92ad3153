/* The per-packet traffic tagger (bpf/pkttag.bpf.c, bpf/pkttag_meta.bpf.c):
 * its inputs, tag values and metadata layout, shared with the loader
 * (loader/pkttag/), the integer reference and scripts/train_pkttag.py.
 * Valid C and C++. The network's parameters and class names are in the
 * generated include/etcpipe/pkttag_model.h.
 *
 * Tag: 0 = no tag (not IPv4/IPv6, a non-first IPv4 fragment, a TCP/UDP
 * header cut short, a frame cut short); else class index + 1
 * (1..PKTTAG_CLASSES <= 63). xdp_pkttag writes it into the DSCP (the upper
 * six bits of the IPv4 TOS / IPv6 traffic class; ECN is kept, the IPv4
 * header checksum is updated incrementally, RFC 1624); xdp_pkttag_meta
 * leaves the frame as it is and puts struct pkttag_meta in the XDP metadata
 * area in front of it (not offloadable: the NFP has no data_meta). Both
 * return XDP_PASS for every packet. */
#ifndef ETCPIPE_PKTTAG_H
#define ETCPIPE_PKTTAG_H

#include <linux/types.h>

#define PKTTAG_PROG_NAME      "xdp_pkttag"
#define PKTTAG_META_PROG_NAME "xdp_pkttag_meta"
#define PKTTAG_NONE           0
#define PKTTAG_MAX_TAG        63           /* six DSCP bits */
#define PKTTAG_META_MAGIC     0x67617470U  /* "ptag" as little-endian bytes */

/* What xdp_pkttag_meta puts in front of a tagged frame (little-endian). */
struct pkttag_meta {
	__u32 magic;  /* PKTTAG_META_MAGIC */
	__u32 tag;    /* 1..PKTTAG_CLASSES */
};

/* The network's inputs, each an integer 0..15, from the one packet alone.
 * L = IPv4 total length / IPv6 payload length + 40; P = the IP payload
 * length per the IP header (IPv6: no extension headers are walked; a next
 * header other than TCP/UDP is "other"). TCP/UDP: lo/hi = the lower/higher
 * of the two ports; the L4 payload starts after the TCP header (data
 * offset) or the UDP header; for other protocols it is the IP payload and
 * the ports and flags are 0. b0..b3: the first four L4 payload bytes when
 * the L4 payload (per the IP length) has at least four and the frame holds
 * them, else all four 0. */
enum pkttag_feature {
	PKTTAG_X_TCP = 0,      /* 15 if TCP, else 0 */
	PKTTAG_X_UDP,          /* 15 if UDP */
	PKTTAG_X_IPV6,         /* 15 if IPv6 */
	PKTTAG_X_OTHER,        /* 15 if neither TCP nor UDP */
	PKTTAG_X_LO_PORT_N3,   /* lo >> 12 */
	PKTTAG_X_LO_PORT_N2,   /* (lo >> 8) & 15 */
	PKTTAG_X_LO_PORT_N1,   /* (lo >> 4) & 15 */
	PKTTAG_X_LO_PORT_N0,   /* lo & 15 */
	PKTTAG_X_HI_PORT_N3,   /* hi >> 12 */
	PKTTAG_X_LEN_128,      /* min(L >> 7, 15) */
	PKTTAG_X_LEN_8,        /* min(L >> 3, 15) */
	PKTTAG_X_TCP_FLAGS_LO, /* TCP flags & 15: FIN SYN RST PSH */
	PKTTAG_X_TCP_FLAGS_HI, /* TCP flags >> 4: ACK URG ECE CWR */
	PKTTAG_X_PAYLOAD_LEN,  /* min(L4 payload length, 15) */
	PKTTAG_X_B0_HI,        /* b0 >> 4, then b0 & 15, b1 >> 4, ... b3 & 15 */
	PKTTAG_X_B0_LO,
	PKTTAG_X_B1_HI,
	PKTTAG_X_B1_LO,
	PKTTAG_X_B2_HI,
	PKTTAG_X_B2_LO,
	PKTTAG_X_B3_HI,
	PKTTAG_X_B3_LO,
	PKTTAG_FEATURES        /* 22 */
};
#define PKTTAG_X_MAX 15

#endif /* ETCPIPE_PKTTAG_H */
