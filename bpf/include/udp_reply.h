/* SPDX-License-Identifier: GPL-2.0 */
/* Request/response over UDP in XDP, NFP-offloadable (no loops, no helpers):
 * the plain IPv6 header of a request, the header swaps that turn a request
 * into its reply, and RFC 1624 checksum updates. Used by the in-NIC
 * programs that answer a request in place (nicnn). */
#ifndef ETCPIPE_BPF_UDP_REPLY_H
#define ETCPIPE_BPF_UDP_REPLY_H

#include <linux/if_ether.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>

#include "parsing.h"

/* IPv6 without extension headers: the requests we answer are plain UDP. */
static __always_inline int parse_ipv6_plain(struct hdr_cursor *nh, void *data_end,
					    struct ipv6hdr **ip6hdr)
{
	struct ipv6hdr *ip6h = nh->pos;

	if ((void *)(ip6h + 1) > data_end || ip6h->version != 6)
		return -1;
	nh->pos = ip6h + 1;
	*ip6hdr = ip6h;
	return ip6h->nexthdr;
}

/* Swaps two 16- or 32-bit packet words. Written out per word rather than
 * looped: clang kept a loop over the MAC words despite #pragma unroll, and
 * the NFP must see none. */
#define SWAP(a, b)                       \
	do {                             \
		__typeof__(a) t_ = (a);  \
		(a) = (b);               \
		(b) = t_;                \
	} while (0)

/* 4 + 2 bytes each: four packet loads and four stores instead of six of
 * each (a packet access is the NFP's most expensive instruction) */
static __always_inline void swap_macs(struct ethhdr *eth)
{
	__u32 *d4 = (__u32 *)eth->h_dest, *s4 = (__u32 *)eth->h_source;
	__u16 *d2 = (__u16 *)(eth->h_dest + 4), *s2 = (__u16 *)(eth->h_source + 4);

	SWAP(*d4, *s4);
	SWAP(*d2, *s2);
}

static __always_inline void swap_ipv6_addrs(struct ipv6hdr *ip6h)
{
	__u32 *s = ip6h->saddr.in6_u.u6_addr32, *d = ip6h->daddr.in6_u.u6_addr32;

	SWAP(s[0], d[0]);
	SWAP(s[1], d[1]);
	SWAP(s[2], d[2]);
	SWAP(s[3], d[3]);
}

/* Folds a ones' complement sum of 16-bit words (held in up to 32 bits plus
 * carries) to 16 bits. */
static __always_inline __u32 csum_fold32(__u32 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	return (sum & 0xffff) + (sum >> 16);
}

/* RFC 1624 eqn. 3 over many words: the payload words that summed to `old`
 * now sum to `new` (both ones' complement sums of the same 16-bit words as
 * loaded: byte order does not matter, RFC 1071). A result of 0 is sent as
 * 0xffff, as for any UDP checksum. */
static __always_inline void udp_csum_replace(struct udphdr *udph, __u32 old, __u32 new_)
{
	__u32 sum = (~(__u32)udph->check & 0xffff) + (~old & 0xffff) + new_;

	sum = ~csum_fold32(sum) & 0xffff;
	if (!sum)
		sum = 0xffff;
	udph->check = sum;
}

#endif /* ETCPIPE_BPF_UDP_REPLY_H */
