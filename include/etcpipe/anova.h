/* ANOVA state split: wire format and configuration shared by the XDP
 * programs (bpf/anova.bpf.c for u32, bpf/anova_f64.bpf.c for f64, both from
 * bpf/anova_prog.h) and the loader/tools. Valid C and C++. Everything on the wire is
 * little-endian (the seed's code sends host-order x86 values). */
#ifndef ETCPIPE_ANOVA_H
#define ETCPIPE_ANOVA_H

#include <linux/types.h>

#define ANOVA_MAGIC        0x216C7174786A7A21ULL
#define ANOVA_SAMPLES      16
#define ANOVA_HALF         8            /* window 1 = x0..x7, window 2 = x8..x15 */
#define ANOVA_DEFAULT_PORT 9877
#define ANOVA_MAP_CONFIG   "anova_cfg"  /* one-entry ARRAY, key 0 (NFP: lookup only) */
#define ANOVA_PROG_NAME    "xdp_anova"  /* the XDP function's name in both anova objects */

enum anova_tag {
	ANOVA_TAG_DECIDE   = 0, /* request: the program decides */
	ANOVA_TAG_SPLIT    = 1, /* verdict: change of state between x7 and x8 */
	ANOVA_TAG_NO_SPLIT = 2,
	ANOVA_TAG_INVALID  = 3, /* verdict: a sample could not be represented */
};

enum anova_encoding {
	ANOVA_ENC_U32 = 0, /* unsigned fixed point, cfg.frac_bits fractional bits */
	ANOVA_ENC_F64 = 1, /* IEEE-754 double, converted to fixed point in XDP */
};

enum anova_reply {
	ANOVA_REPLY_PASS = 0, /* verdict written in place, XDP_PASS */
	ANOVA_REPLY_TX   = 1, /* verdict written, sent back (XDP_TX), headers swapped */
};

struct anova_hdr {
	__u64 magic;
	__u64 tag;
};

struct anova_msg_u32 {
	struct anova_hdr hdr;
	__u32 x[ANOVA_SAMPLES];
};

struct anova_msg_f64 {
	struct anova_hdr hdr;
	__u64 x[ANOVA_SAMPLES]; /* IEEE-754 bit patterns */
};

/* Value of the one-entry ANOVA_MAP_CONFIG array (≤ 56 B for NFP). */
struct anova_config {
	__u64 eps;        /* ε in fixed point */
	__u64 eps2;       /* ε² in fixed point (as the seed: 2684191 for ε = 1638, 14 bits) */
	__u16 port;       /* UDP destination port that carries requests */
	__u8  reply;      /* enum anova_reply */
	__u8  encoding;   /* enum anova_encoding */
	__u8  frac_bits;  /* fixed-point fractional bits: 14 (seed code) or 10 (seed report) */
	__u8  pad[3];
};

#endif /* ETCPIPE_ANOVA_H */
