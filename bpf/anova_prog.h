/* SPDX-License-Identifier: GPL-2.0 */
/* ANOVA state split in XDP (SPEC §6), written to be offloadable to a
 * Netronome NFP: the program decides, for a 16-sample window carried in a UDP
 * payload (include/etcpipe/anova.h), whether the state changes between x7
 * and x8, and writes the verdict into the packet's tag.
 *
 * The code shared by the two programs, one per sample encoding, each built
 * from its own object with this rule specialised at compile time:
 *   bpf/anova.bpf.c      ANOVA_ENC_U32 (u32 fixed point on the wire)
 *   bpf/anova_f64.bpf.c  ANOVA_ENC_F64 (IEEE-754 doubles, converted here)
 * Both XDP functions are named xdp_anova (ANOVA_PROG_NAME) and read the same
 * config map; the loader picks the object for cfg.encoding, and a program
 * passes every packet when the map names the other encoding.
 *
 * NFP rules this file keeps (checked by `etcpipe check --target nfp`):
 * - no global data: configuration comes from the one-entry ARRAY anova_cfg,
 *   looked up only (public NFP firmware has no datapath map writes), so the
 *   usual const volatile .rodata config (STYLE §9.5) and per-CPU verdict
 *   counters (§9.3) are not available here;
 * - everything unrolled, no helper but bpf_map_lookup_elem, no mod/div;
 * - every multiply operand is provably ≤ 2^32 − 1 (a u32 packet load, a
 *   32-bit ALU result or a value masked with 0xffffffff);
 * - no store-immediate (BPF_ST): constants that are stored go through
 *   opaque() so clang keeps them in a register;
 * - code size: the NFP code store holds 2560 instructions, and the u32
 *   program is kept ≤ 75 % of it by `etcpipe check`'s estimate
 *   (tests/unit/test_nfp_check.cpp): 32-bit ALU and jmp32 wherever the
 *   values fit (one NFP instruction per op instead of two, and a jump
 *   compares one word instead of two), few live values (register spills
 *   cost NFP instructions), 64-bit ops only for the sums that need them.
 *
 * Anything that is not a well-formed request passes untouched. */
#ifndef ETCPIPE_BPF_ANOVA_PROG_H
#define ETCPIPE_BPF_ANOVA_PROG_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "etcpipe/anova.h"
#include "parsing.h"
#include "udp_reply.h"

/* The rule's configuration (struct anova_config), written by the loader. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct anova_config);
} anova_cfg SEC(".maps");

#define U32_MAX_ 0xffffffffULL
#define F64_EXP_MASK  0x7ffU

/* An opaque copy of v: clang can no longer fold it into a store-immediate
 * (BPF_ST, which the NFP JIT rejects) nor drop a following mask it thinks
 * redundant (the NFP checker needs the mask to see a 32-bit bound). */
static __always_inline __u64 opaque(__u64 v)
{
	asm volatile("" : "+r"(v));
	return v;
}

/* opaque() for 32-bit values, without volatile: clang may still move it. */
static __always_inline __u32 opaque32(__u32 v)
{
	asm("" : "+r"(v));
	return v;
}

/* IEEE-754 double (bit pattern) to unsigned fixed point with f fractional
 * bits, truncated toward zero, integer ops only; g = 1075 − f, computed once
 * per request. Returns the value; ORs 1 into *bad for NaN, ±Inf, negative
 * values (−0.0 is 0) and values ≥ 2^(32−f); subnormals give 0. f ≤ 32
 * (checked by the caller).
 *
 * Branch-free on purpose: with a branch per case, sixteen samples give the
 * verifier 4^16 paths it cannot prune (it gives up at 1M instructions), and
 * the NFP runs straight-line code best. The opaque() calls stop clang from
 * turning the arithmetic back into compares and branches.
 *
 * value = mant · 2^(exp − 1075) and fixed = value · 2^f, so with t = exp + f:
 * fixed < 2^32 iff t < 1055; then the right shift 1075 − t is ≥ 21, and it
 * leaves something only if t ≥ 1012 (0, subnormals and tiny values: 0).
 * With s = 1075 − t = g − exp (signed, −1004..1075): t ≥ 1055 iff s − 21 < 0
 * and t ≥ 1012 iff s − 64 < 0, read from the sign bit. */
static __always_inline __u32 f64_to_fixed(const __u32 *w, __u32 g, __u32 *bad)
{
	/* the high word holds sign and exponent: 32-bit ops (1 NFP insn each) */
	__u32 lo = w[0], hi = w[1];
	__u32 sign = hi >> 31;
	__u32 mag = (hi << 1) | lo;                      /* 0 only for ±0.0 */
	__u32 s = g - ((hi >> 20) & F64_EXP_MASK);       /* 1075 − t, −1004..1075 */
	__u32 nonzero = (mag | opaque32(0 - mag)) >> 31; /* mag != 0 */
	__u32 big = opaque32(s - 21) >> 31;              /* t ≥ 1055: Inf, NaN too */
	__u32 keep = (__s32)opaque32(s - 64) >> 31;      /* all ones iff t ≥ 1012 */
	__u64 mant = (__u64)((hi & 0xfffff) | 0x100000) << 32 | lo;
	__u32 v;

	v = mant >> (s & 63);    /* & 63: a defined shift when bad */
	v &= keep;
	v &= opaque32(sign - 1); /* negative: 0 (−0.0) or bad */
	*bad |= (sign & nonzero) | big;
	return v;
}

/* Sample i of the request at p, as fixed point; enc is a compile-time
 * constant, so each program keeps one of the two reads. Samples are read
 * from the packet where they are used rather than held in an array: sixteen
 * live values would be spilled, and a multiply operand reloaded from the
 * stack is harder to bound for the NFP checker. */
static __always_inline __u32 anova_sample(void *p, const int i, const int enc, __u32 g,
					  __u32 *bad)
{
	if (enc == ANOVA_ENC_F64)
		return f64_to_fixed((const __u32 *)&((struct anova_msg_f64 *)p)->x[i], g, bad);
	return ((struct anova_msg_u32 *)p)->x[i];
}

/* anova_sample() in the rule's loops. For doubles through opaque(): a
 * volatile asm per sample keeps the samples' conversions in order, one at a
 * time, instead of interleaved by clang with more live values (spills). */
static __always_inline __u32 anova_read(void *p, const int i, const int enc, __u32 g,
					__u32 *bad)
{
	__u32 v = anova_sample(p, i, enc, g, bad);

	return enc == ANOVA_ENC_F64 ? (__u32)opaque(v) : v;
}

/* The rule (SPEC §6) on the request at p: window 1 = x0..x7 gives mean and
 * variance, window 2 = x8..x15 the Chebyshev count. 64-bit arithmetic wraps
 * exactly as the C++ reference (decide_u32) does; what fits in 32 bits is
 * computed in 32 bits (mean, |x − mean|, the compare with ε, the count). */
static __always_inline __u32 anova_decide(void *p, const int enc, __u32 g,
					  const struct anova_config *cfg)
{
	__u64 s1 = 0, s2 = 0, var, lhs = 0, eps2;
	__u32 mean, eps, bad = 0;

#pragma unroll
	for (int i = 0; i < ANOVA_HALF; i++) {
		/* a u32: v ≤ 2^32 − 1 is obvious for the multiply */
		__u64 v = anova_read(p, i, enc, g, &bad);

		s1 += v;
		s2 = opaque(s2 + v * v); /* multiply next to its operand */
	}
	/* s1 ≤ 8·(2^32 − 1), so the mean fits in 32 bits */
	mean = s1 >> 3;
	/* opaque: squared here, next to the 32-bit move, not after a spill */
	var = (s2 >> 3) - opaque((__u64)mean * mean);
	/* read only now, so they do not occupy registers in the loop above;
	 * the caller checked both are ≤ 2^32 − 1 */
	eps = cfg->eps;
	eps2 = opaque(cfg->eps2) & U32_MAX_;

	/* tot·ε² accumulated by addition: no multiply left to prove */
#pragma unroll
	for (int i = ANOVA_HALF; i < ANOVA_SAMPLES; i++) {
		__u32 v = anova_read(p, i, enc, g, &bad);
		__u32 d = v > mean ? v - mean : mean - v;

		if (d >= eps)
			lhs += eps2;
	}
	if (enc == ANOVA_ENC_F64 && bad)
		return ANOVA_TAG_INVALID;
	return lhs > (var << 3) ? ANOVA_TAG_SPLIT : ANOVA_TAG_NO_SPLIT;
}

/* RFC 1624 eqn. 3 for the tag word: it was 0 and is now the verdict. The
 * word at UDP offset 16 holds bytes [verdict, 0]; ones' complement sums do
 * not depend on byte order (RFC 1071), so the checksum is updated as loaded
 * (little-endian) with m' = verdict. A result of 0 is sent as 0xffff, as
 * for any UDP checksum. */
static __always_inline void udp_csum_tag(struct udphdr *udph, __u32 verdict)
{
	__u32 sum = (~(__u32)udph->check & 0xffff) + 0xffff + verdict;

	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = ~sum & 0xffff;
	if (!sum)
		sum = 0xffff;
	udph->check = sum;
}

/* The whole program for encoding enc (a compile-time constant): the body of
 * each object's xdp_anova. */
static __always_inline int anova_xdp(struct xdp_md *ctx, const int enc)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct udp_request rq;
	struct udphdr *udph;
	struct anova_hdr *req;
	struct anova_config *cfg;
	__u32 key, verdict, f = 0;
	const __u32 need = enc == ANOVA_ENC_F64 ? sizeof(struct anova_msg_f64)
						: sizeof(struct anova_msg_u32);
	int action = XDP_PASS;

	key = opaque(0); /* stored from a register: no BPF_ST */
	cfg = bpf_map_lookup_elem(&anova_cfg, &key);
	if (!cfg)
		goto out;
	/* values the multiply-free rule and the NFP cannot take, or the other
	 * encoding's configuration: not configured for this program */
	if (cfg->eps > U32_MAX_ || cfg->eps2 > U32_MAX_ || cfg->encoding != enc)
		goto out;

	/* bounds with the encoding's constant size, which the verifier uses
	 * for every later sample load */
	if (parse_udp_request(data, data_end, cfg->port, need, 1, &rq) < 0)
		goto out;
	req = rq.payload;
	if (enc == ANOVA_ENC_F64) {
		f = cfg->frac_bits;
		if (f > 32)
			goto out;
	}
	if (req->magic != ANOVA_MAGIC || req->tag != ANOVA_TAG_DECIDE)
		goto out;

	/* Reply to the sender (the verdict does not change the headers), done
	 * before the rule so that no header pointer stays live through it:
	 * more registers for the samples, fewer spills. Swapping source and
	 * destination changes neither the IPv4 header checksum nor the UDP
	 * checksum (its pseudo-header): ones' complement sums are order-free. */
	if (cfg->reply == ANOVA_REPLY_TX)
		udp_request_swap(&rq);

	verdict = anova_decide(req, enc, 1075 - f, cfg); /* g for f64_to_fixed */
	/* re-derived rather than kept live through the rule */
	udph = (struct udphdr *)((void *)req - sizeof(*udph));
	req->tag = opaque(verdict);
	/* IPv4 may go without a UDP checksum (0): it stays 0 */
	if (udph->check)
		udp_csum_tag(udph, verdict);
	if (cfg->reply == ANOVA_REPLY_TX)
		action = XDP_TX;
out:
	return action;
}

#endif /* ETCPIPE_BPF_ANOVA_PROG_H */
