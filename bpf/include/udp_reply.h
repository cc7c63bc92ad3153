/* SPDX-License-Identifier: GPL-2.0 */
/* Request/response over UDP in XDP, NFP-offloadable (no loops, no helpers):
 * the plain IPv6 header of a request, the header swaps that turn a request
 * into its reply, and RFC 1624 checksum updates. Used by the in-NIC
 * programs that answer a request in place (nicnn). */
#ifndef ETCPIPE_BPF_UDP_REPLY_H
#define ETCPIPE_BPF_UDP_REPLY_H

#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
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

/* A request: headers of a plain UDP datagram and its payload. */
struct udp_request {
	struct ethhdr *eth;
	struct iphdr *iph;    /* NULL for IPv6 */
	struct ipv6hdr *ip6h; /* NULL for IPv4 */
	struct udphdr *udph;
	void *payload;        /* at least `need` bytes, bounds-checked */
};

#define UDP_REQ_IPV4_MF 0x2000 /* "more fragments" in frag_off */

/* Parses Ethernet (VLANs too), IPv4 or plain IPv6, and UDP to `port` with
 * a payload of at least `need` bytes inside the datagram and the frame.
 * allow_ipv6 (a constant) 0: IPv4 only, and no IPv6 code in the program.
 * Returns 0 and fills r for such a request, -1 for anything else: a first
 * fragment (MF), IPv6 with a zero UDP checksum (RFC 8200 §8.1 forbids it,
 * and no reply could carry a valid one without summing the payload), a
 * UDP length beyond the IP payload. */
static __always_inline int parse_udp_request(void *data, void *data_end, __u16 port, __u32 need,
					     const int allow_ipv6, struct udp_request *r)
{
	struct hdr_cursor nh = { .pos = data };
	struct l3_info l3;
	__u16 vids[PARSE_MAX_VLAN_DEPTH];
	__u32 l3_len, udp_len;
	int proto;

	r->eth = data;
	r->iph = NULL;
	r->ip6h = NULL;
	proto = parse_ethhdr_vlan(&nh, data_end, vids);
	if (proto == bpf_htons(ETH_P_IP)) {
		if (parse_ipv4(&nh, data_end, &r->iph, &l3) != IPPROTO_UDP)
			return -1;
		if (r->iph->frag_off & bpf_htons(UDP_REQ_IPV4_MF))
			return -1;
		l3_len = l3.payload_len;
	} else if (allow_ipv6 && proto == bpf_htons(ETH_P_IPV6)) {
		if (parse_ipv6_plain(&nh, data_end, &r->ip6h) != IPPROTO_UDP)
			return -1;
		l3_len = bpf_ntohs(r->ip6h->payload_len);
	} else {
		return -1;
	}
	if (parse_udphdr(&nh, data_end, &r->udph) < 0 || r->udph->dest != bpf_htons(port))
		return -1;
	if (r->ip6h && !r->udph->check)
		return -1;
	udp_len = bpf_ntohs(r->udph->len);
	if (udp_len < sizeof(struct udphdr) + need || udp_len > l3_len)
		return -1;
	r->payload = nh.pos;
	if (r->payload + need > data_end)
		return -1;
	return 0;
}

/* Turns the request into its reply: MACs, addresses and ports swapped.
 * Neither the IPv4 header checksum nor the UDP checksum (its
 * pseudo-header) changes: ones' complement sums are order-free. */
static __always_inline void udp_request_swap(struct udp_request *r)
{
	swap_macs(r->eth);
	if (r->ip6h)
		swap_ipv6_addrs(r->ip6h);
	else if (r->iph)
		SWAP(r->iph->saddr, r->iph->daddr);
	SWAP(r->udph->source, r->udph->dest);
}

/* Folds a ones' complement sum of 16-bit words (held in up to 32 bits plus
 * carries) to 16 bits. */
static __always_inline __u32 csum_fold32(__u32 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	return (sum & 0xffff) + (sum >> 16);
}

/* RFC 1624 eqn. 3 for payload words that were all zero and now sum to
 * `new_` (a ones' complement sum of the same 16-bit words as loaded: byte
 * order does not matter, RFC 1071). A result of 0 is sent as 0xffff, as
 * for any UDP checksum. */
static __always_inline void udp_csum_add(struct udphdr *udph, __u32 new_)
{
	__u32 sum = (~(__u32)udph->check & 0xffff) + new_;

	sum = ~csum_fold32(sum) & 0xffff;
	if (!sum)
		sum = 0xffff;
	udph->check = sum;
}

#endif /* ETCPIPE_BPF_UDP_REPLY_H */
