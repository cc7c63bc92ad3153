/* Cursor-based packet parsers for XDP programs.
 *
 * Contract (as xdp-tools' parsing_helpers.h): each parser takes the cursor
 * and data_end, bounds-checks the header it reads (`hdr + 1 > data_end`),
 * advances the cursor past it and returns a value >= 0 (the next protocol or
 * the header length) or a negative enum parse_err value naming why it could
 * not parse. Parsers never write to the packet. Each program maps parse_err
 * to its own counters; nothing here knows an application. */
#ifndef ETCPIPE_BPF_PARSING_H
#define ETCPIPE_BPF_PARSING_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

/* Why a parser gave up (returned negated). The order is part of the
 * contract: programs map it onto a contiguous run of their counters. */
enum parse_err {
	PARSE_ERR_TRUNC_ETH = 1,    /* shorter than an Ethernet header */
	PARSE_ERR_TRUNC_VLAN,       /* VLAN tag cut short */
	PARSE_ERR_VLAN_DEPTH,       /* more than PARSE_MAX_VLAN_DEPTH tags */
	PARSE_ERR_NOT_IP,           /* EtherType is neither IPv4 nor IPv6 */
	PARSE_ERR_TRUNC_IPV4,       /* IPv4 header (with options) cut short */
	PARSE_ERR_BAD_IPV4,         /* version != 4, IHL < 5 or total length < IHL */
	PARSE_ERR_TRUNC_IPV6,       /* IPv6 fixed header cut short */
	PARSE_ERR_BAD_IPV6,         /* version != 6 */
	PARSE_ERR_TRUNC_IPV6_EXT,   /* IPv6 extension header cut short */
	PARSE_ERR_IPV6_EXT_DEPTH,   /* more than PARSE_MAX_IPV6_EXT extension headers */
	PARSE_ERR_FRAGMENT,         /* non-first IP fragment: no L4 header */
	PARSE_ERR_TRUNC_TCP,        /* TCP header (with options) cut short */
	PARSE_ERR_BAD_TCP,          /* data offset < 5 or beyond the IP payload */
	PARSE_ERR_TRUNC_UDP,        /* UDP header cut short */
	PARSE_ERR_LAST = PARSE_ERR_TRUNC_UDP,
};

#define PARSE_MAX_VLAN_DEPTH 2  /* 802.1Q / 802.1ad tags walked */
#define PARSE_MAX_IPV6_EXT   6  /* extension headers walked before giving up */

struct hdr_cursor {
	void *pos;
};

/* linux/if_vlan.h is not uapi. */
struct vlan_hdr {
	__be16 h_vlan_TCI;
	__be16 h_vlan_encapsulated_proto;
};

/* IPv6 extension header common prefix (RFC 8200 §4). */
struct ipv6_ext_hdr {
	__u8 nexthdr;
	__u8 hdrlen;
};

struct ipv6_frag_ext {
	__u8   nexthdr;
	__u8   reserved;
	__be16 frag_off; /* offset in 8-byte units << 3 | flags */
	__be32 identification;
};

#ifndef ETC_IPPROTO_MH
#define ETC_IPPROTO_MH 135
#endif

static __always_inline int proto_is_vlan(__u16 h_proto)
{
	return h_proto == bpf_htons(ETH_P_8021Q) || h_proto == bpf_htons(ETH_P_8021AD);
}

/* Parses Ethernet and up to PARSE_MAX_VLAN_DEPTH tags. Returns the EtherType
 * (network order) and fills vids[] outer→inner. */
static __always_inline int parse_ethhdr_vlan(struct hdr_cursor *nh, void *data_end,
					     __u16 vids[PARSE_MAX_VLAN_DEPTH])
{
	struct ethhdr *eth = nh->pos;
	__u16 h_proto;

	if ((void *)(eth + 1) > data_end)
		return -PARSE_ERR_TRUNC_ETH;
	nh->pos = eth + 1;
	h_proto = eth->h_proto;

#pragma unroll
	for (int i = 0; i < PARSE_MAX_VLAN_DEPTH; i++) {
		struct vlan_hdr *vlh = nh->pos;

		if (!proto_is_vlan(h_proto))
			return h_proto;
		if ((void *)(vlh + 1) > data_end)
			return -PARSE_ERR_TRUNC_VLAN;
		vids[i] = bpf_ntohs(vlh->h_vlan_TCI) & 0x0fff;
		h_proto = vlh->h_vlan_encapsulated_proto;
		nh->pos = vlh + 1;
	}
	if (proto_is_vlan(h_proto))
		return -PARSE_ERR_VLAN_DEPTH;
	return h_proto;
}

/* L3 summary handed to the L4 parsers. */
struct l3_info {
	__u32 payload_len; /* IP payload length per the IP header(s), after extensions */
	__u8  proto;       /* L4 protocol */
	__u8  family;
};

/* IPv4 with options. Non-first fragments are reported, not parsed further. */
static __always_inline int parse_ipv4(struct hdr_cursor *nh, void *data_end,
				      struct iphdr **iphdr, struct l3_info *l3)
{
	struct iphdr *iph = nh->pos;
	__u32 hdrsize, tot_len;

	if ((void *)(iph + 1) > data_end)
		return -PARSE_ERR_TRUNC_IPV4;
	if (iph->version != 4 || iph->ihl < 5)
		return -PARSE_ERR_BAD_IPV4;
	hdrsize = iph->ihl * 4;
	if (nh->pos + hdrsize > data_end)
		return -PARSE_ERR_TRUNC_IPV4;
	tot_len = bpf_ntohs(iph->tot_len);
	if (tot_len < hdrsize)
		return -PARSE_ERR_BAD_IPV4;
	if (iph->frag_off & bpf_htons(0x1fff))
		return -PARSE_ERR_FRAGMENT;
	nh->pos += hdrsize;
	*iphdr = iph;
	l3->payload_len = tot_len - hdrsize;
	l3->proto = iph->protocol;
	l3->family = 4;
	return iph->protocol;
}

static __always_inline int ipv6_is_ext(__u8 nexthdr)
{
	return nexthdr == IPPROTO_HOPOPTS || nexthdr == IPPROTO_ROUTING ||
	       nexthdr == IPPROTO_DSTOPTS || nexthdr == IPPROTO_FRAGMENT ||
	       nexthdr == IPPROTO_AH || nexthdr == ETC_IPPROTO_MH;
}

/* IPv6 and its extension headers (hop-by-hop, routing, destination options,
 * fragment, AH, mobility), at most PARSE_MAX_IPV6_EXT of them. */
static __always_inline int parse_ipv6(struct hdr_cursor *nh, void *data_end,
				      struct ipv6hdr **ip6hdr, struct l3_info *l3)
{
	struct ipv6hdr *ip6h = nh->pos;
	__u32 payload_len, consumed = 0;
	__u8 nexthdr;

	if ((void *)(ip6h + 1) > data_end)
		return -PARSE_ERR_TRUNC_IPV6;
	if (ip6h->version != 6)
		return -PARSE_ERR_BAD_IPV6;
	nh->pos = ip6h + 1;
	*ip6hdr = ip6h;
	payload_len = bpf_ntohs(ip6h->payload_len);
	nexthdr = ip6h->nexthdr;

#pragma unroll
	for (int i = 0; i < PARSE_MAX_IPV6_EXT; i++) {
		struct ipv6_ext_hdr *ext = nh->pos;
		__u32 len;

		if (!ipv6_is_ext(nexthdr))
			break;
		if ((void *)(ext + 1) > data_end)
			return -PARSE_ERR_TRUNC_IPV6_EXT;
		if (nexthdr == IPPROTO_FRAGMENT) {
			struct ipv6_frag_ext *fh = nh->pos;

			if ((void *)(fh + 1) > data_end)
				return -PARSE_ERR_TRUNC_IPV6_EXT;
			if (fh->frag_off & bpf_htons(0xfff8))
				return -PARSE_ERR_FRAGMENT;
			len = 8;
		} else if (nexthdr == IPPROTO_AH) {
			len = (ext->hdrlen + 2) * 4;
		} else {
			len = (ext->hdrlen + 1) * 8;
		}
		if (nh->pos + len > data_end)
			return -PARSE_ERR_TRUNC_IPV6_EXT;
		nexthdr = ext->nexthdr;
		nh->pos += len;
		consumed += len;
	}
	if (ipv6_is_ext(nexthdr))
		return -PARSE_ERR_IPV6_EXT_DEPTH;
	if (consumed > payload_len)
		return -PARSE_ERR_BAD_IPV6;
	l3->payload_len = payload_len - consumed;
	l3->proto = nexthdr;
	l3->family = 6;
	return nexthdr;
}

/* TCP with options: returns the header length. */
static __always_inline int parse_tcphdr(struct hdr_cursor *nh, void *data_end,
					struct tcphdr **tcphdr)
{
	struct tcphdr *h = nh->pos;
	__u32 len;

	if ((void *)(h + 1) > data_end)
		return -PARSE_ERR_TRUNC_TCP;
	len = h->doff * 4;
	if (len < sizeof(*h))
		return -PARSE_ERR_BAD_TCP;
	if (nh->pos + len > data_end)
		return -PARSE_ERR_TRUNC_TCP;
	nh->pos += len;
	*tcphdr = h;
	return len;
}

static __always_inline int parse_udphdr(struct hdr_cursor *nh, void *data_end,
					struct udphdr **udphdr)
{
	struct udphdr *h = nh->pos;

	if ((void *)(h + 1) > data_end)
		return -PARSE_ERR_TRUNC_UDP;
	nh->pos = h + 1;
	*udphdr = h;
	return sizeof(*h);
}

#endif /* ETCPIPE_BPF_PARSING_H */
