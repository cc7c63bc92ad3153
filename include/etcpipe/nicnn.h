/* In-NIC integer networks: wire format of the digit CNN (bpf/nicnn.bpf.c),
 * shared with the loader, the references and the tools (the per-packet
 * traffic tagger, bpf/pkttag.bpf.c, has its own: etcpipe/pkttag.h). Valid C and C++.
 * Multi-byte fields are little-endian, as the ANOVA messages. */
#ifndef ETCPIPE_NICNN_H
#define ETCPIPE_NICNN_H

#include <linux/types.h>

/* ---- nicnn: the seed's 8x8 digit CNN ------------------------------------ */
#define NICNN_MAGIC        0x6E6E63696E637465ULL /* "etcnicnn" */
#define NICNN_PORT         9878          /* UDP destination port of requests (IPv4) */
#define NICNN_PIXELS       64            /* 8x8, row-major */
#define NICNN_PIXEL_MAX    15            /* 4-bit pixels: higher bits are ignored */
#define NICNN_CLASSES      10
#define NICNN_PROG_NAME    "xdp_nicnn"

enum nicnn_tag {
	NICNN_TAG_REQUEST    = 0, /* request: the program classifies */
	NICNN_TAG_CLASSIFIED = 1, /* verdict written */
};

enum nicnn_flags {
	NICNN_F_REPLY = 1, /* request: send the verdict back (XDP_TX), else XDP_PASS */
};

struct nicnn_result {
	__u32 cls;                   /* argmax of score (first of equals) */
	__s32 score[NICNN_CLASSES];  /* integer logits */
	__u16 shift[NICNN_CLASSES];  /* base-2 softmax: probability 2^-shift, shift = min((max - score) >> T, 15) */
};

/* A request is exactly this UDP payload (longer payloads are accepted; the
 * bytes after it are left alone), with `result` all zero: the program
 * writes it and updates the UDP checksum from those zeros (a request with
 * anything else there passes untouched). */
struct nicnn_msg {
	__u64 magic;
	__u32 tag;                   /* enum nicnn_tag */
	__u32 flags;                 /* enum nicnn_flags */
	__u8  pixel[NICNN_PIXELS];   /* low 4 bits used */
	struct nicnn_result result;
};

#endif /* ETCPIPE_NICNN_H */
