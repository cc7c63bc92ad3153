/* SPDX-License-Identifier: GPL-2.0 */
/* Branch-free integer helpers for the in-NIC networks (nicnn, pkttag).
 * Why branch-free: with a branch per max, ReLU or argmax step the verifier
 * walks 2^n paths (E2BIG), and the NFP runs straight-line code best. Why
 * assembly: clang otherwise sees the compare in a sign mask and turns the
 * select it feeds back into a branch. (Linux 6.18's verifier also forks on
 * a [-1, 0] mask ANDed with a value it knows exactly: keep such values
 * unknown to it, e.g. behind opaque32.) */
#ifndef ETCPIPE_BPF_BRANCHLESS_H
#define ETCPIPE_BPF_BRANCHLESS_H

#include <linux/types.h>
#include <bpf/bpf_helpers.h>

/* An opaque copy of v: clang can no longer fold it (into a store-immediate,
 * BPF_ST, which the NFP JIT rejects, or into a compare). */
static __always_inline __u32 opaque32(__u32 v)
{
	asm volatile("" : "+r"(v));
	return v;
}

/* all ones if a < b, else 0 (|a - b| < 2^31): the sign of a - b */
static __always_inline __u32 lt_mask(__s32 a, __s32 b)
{
	__u32 m;

	asm volatile("%[m] = %[a]\n\t"
		     "%[m] -= %[b]\n\t"
		     "%[m] s>>= 31"
		     : [m] "=&w"(m)
		     : [a] "w"(a), [b] "w"(b));
	return m;
}

/* max(a, b) for |a - b| < 2^31: a - ((a - b) & (a < b ? ~0 : 0)), six
 * instructions (the xor-select form takes seven) */
static __always_inline __u32 max_u32(__u32 a, __u32 b)
{
	__u32 d, m;

	asm volatile("%[d] = %[a]\n\t"
		     "%[d] -= %[b]\n\t"
		     "%[m] = %[d]\n\t"
		     "%[m] s>>= 31\n\t"
		     "%[d] &= %[m]\n\t"
		     "%[a] -= %[d]"
		     : [a] "+w"(a), [d] "=&w"(d), [m] "=&w"(m)
		     : [b] "w"(b));
	return a;
}

/* min(v, 15) for v < 2^31 */
static __always_inline __u32 min15(__u32 v)
{
	return v ^ ((v ^ 15) & lt_mask(15, (__s32)v));
}

/* max(x, 0): x with its bits cleared where x's sign mask is set */
static __always_inline __s32 relu(__s32 x)
{
	__u32 m;

	asm volatile("%[m] = %[x]\n\t"
		     "%[m] s>>= 31\n\t"
		     "%[m] &= %[x]\n\t"
		     "%[x] ^= %[m]"
		     : [x] "+w"(x), [m] "=&w"(m));
	return x;
}

/* A compiler barrier over the memory at p: values stored there before it
 * are read from memory after it. Stages of a network kept apart by it are
 * neither interleaved nor hold every intermediate live at once (clang
 * would spill most of them, and a spill costs on the NFP what the work
 * does). */
#define STAGE_BARRIER(p) asm volatile("" : : "r"(p) : "memory")

#endif /* ETCPIPE_BPF_BRANCHLESS_H */
