// SPDX-License-Identifier: GPL-2.0
/* NFP offload: NOT offloadable, by design (host-only: it exists to feed
 * AF_XDP). `etcpipe check --target nfp mdfeed.bpf.o` (2560-instruction
 * budget): "verdict: NOT offloadable (82 violations, 38 unprovable)", exit 1;
 * xdp_mdfeed and its twin xdp_mdfeed_sb get the same findings.
 *   Passes: the three filter maps (hash; keys 2 and 20 B, values 4 B), their
 *     lookups (aligned stack keys), no atomics or tail calls, and the size:
 *     865 BPF ≈ 2169 NFP instructions of 2560.
 *   Refused, inherent to the job: bpf_redirect_map (the NFP cannot redirect;
 *     verdicts 0-3 only, so the return code is "unprovable" too), the XSKMAP
 *     md_xsks, ctx->rx_queue_index, bpf_xdp_adjust_meta and ctx->data_meta
 *     (md_meta), bpf_ktime_get_ns (rx_ns).
 *   Refused, would need a rewrite for an offload variant: md_counters is a
 *     per-CPU array of 224 B (limit 56 B; plain stores and variable-offset
 *     increments: public firmware is lookup-only), and cfg in .rodata (no
 *     global data on the NFP).
 *   Unprovable: packet reads past the NFP's 1888 B window, at the offsets
 *     that IPv4 options, IPv6 extension headers and TCP options make
 *     variable. */

/* Market-data feed filter: selects the feed traffic of an interface and hands
 * it to AF_XDP; everything else passes to the stack untouched.
 *
 * Feed traffic is, per the load-time config (struct md_feed_config):
 *   - UDP to a multicast group of MD_MAP_GROUPS (an entry may name a port;
 *     port 0 = any), looked up first;
 *   - UDP by destination port (MD_MAP_UDP_PORTS), whatever the address;
 *   - mirrored TCP whose source is a server of MD_MAP_TCP_SERVERS (data from
 *     the exchange) and, with cfg.tcp_to_server, also TCP to such a server.
 * IPv4 and IPv6 (extension headers walked), up to two VLAN tags, through the
 * cursor parsers of parsing.h. A feed packet gets struct md_meta in front of
 * it (receive time, what matched, where its payload starts), then is
 * redirected to the AF_XDP socket of its RX queue (XSKMAP by
 * ctx->rx_queue_index); a queue without a socket passes it, counted.
 *
 * Fragments: the first fragment of a datagram is matched like any packet;
 * later ones carry no L4 header and pass (PASS_FRAGMENT). Lengths come from
 * the IP header, so a multi-buffer frame (xdp.frags) whose linear part ends
 * inside the payload still matches.
 *
 * Every packet ends at `out:`, which counts the verdict; every early exit
 * names its outcome counter. */
#include "etcpipe/mdfeed.h"
#include "parsing.h"
#include <xdp/xdp_helpers.h>

char LICENSE[] SEC("license") = "GPL";

/* Load-time configuration; the loader overwrites it before load, so the
 * verifier removes the match kinds that are off. */
const volatile struct md_feed_config cfg = {
	.match_udp_ports = 0,
	.match_groups = 0,
	.match_tcp = 0,
	.tcp_to_server = 0,
};

/* Outcome, verdict and match counters, one struct per CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct md_counters);
} md_counters SEC(".maps");

/* AF_XDP sockets by RX queue index: the redirect target of feed packets. */
struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, MD_MAX_QUEUES);
	__type(key, __u32);
	__type(value, __u32);
} md_xsks SEC(".maps");

/* Filter maps: load-time configuration, filled by the loader before the
 * program exists (so it never runs against a half-filled filter) and never
 * pinned (a stale pin cannot override them). */

/* UDP destination ports (host order) → rule. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MD_MAX_UDP_PORTS);
	__type(key, __u16);
	__type(value, struct md_rule);
} md_udp_ports SEC(".maps");

/* Multicast groups (family, group, port or 0) → rule. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MD_MAX_GROUPS);
	__type(key, struct md_endpoint_key);
	__type(value, struct md_rule);
} md_groups SEC(".maps");

/* TCP servers (family, address, port or 0) → rule. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MD_MAX_TCP_SERVERS);
	__type(key, struct md_endpoint_key);
	__type(value, struct md_rule);
} md_tcp_servers SEC(".maps");

_Static_assert(PARSE_MAX_VLAN_DEPTH == MD_MAX_VLAN_DEPTH, "md_meta holds every parsed VLAN tag");
_Static_assert(MD_CNT_PARSE_LAST - MD_CNT_PARSE_FIRST == PARSE_ERR_LAST - PARSE_ERR_TRUNC_ETH,
	       "the parse counters follow enum parse_err one for one");
_Static_assert(MD_CNT_PASS_FRAGMENT - MD_CNT_PARSE_FIRST == PARSE_ERR_FRAGMENT - PARSE_ERR_TRUNC_ETH,
	       "PASS_FRAGMENT is the counter of PARSE_ERR_FRAGMENT");
_Static_assert(sizeof(struct md_meta) == 32, "32 bytes of XDP metadata: what every kernel accepts");

struct parsed_pkt {
	struct md_endpoint_key src, dst; /* addresses and L4 ports */
	__u16 vlan[MD_MAX_VLAN_DEPTH];
	__u16 payload_off;
	__u16 payload_len;
	__u8  proto;
	__u8  multicast;
	__u8  vlan_tags;
};

/* The counter of a parser's failure (err: a negated enum parse_err). */
static __always_inline int parse_counter(int err)
{
	return MD_CNT_PARSE_FIRST + (-err - PARSE_ERR_TRUNC_ETH);
}

/* Counts an outcome returned by a helper; the bound check is what the
 * verifier needs to see. */
static __always_inline void count(struct md_counters *c, int counter)
{
	if ((unsigned int)counter < MD_CNT_MAX)
		c->cnt[counter]++;
}

/* VLAN tags in front of the EtherType parse_ethhdr_vlan accepted (0..2),
 * read again from the packet: the payload offset is then a sum of header
 * lengths (VID 0 priority tags count too, which vids[] cannot tell). */
static __always_inline __u8 vlan_tags(void *data, void *data_end)
{
	struct ethhdr *eth = data;
	struct vlan_hdr *vlh = (void *)(eth + 1);

	if ((void *)(eth + 1) > data_end || !proto_is_vlan(eth->h_proto))
		return 0;
	if ((void *)(vlh + 1) > data_end || !proto_is_vlan(vlh->h_vlan_encapsulated_proto))
		return 1;
	return 2;
}

/* Parses up to L4. Returns 0 or the outcome counter (a parse failure). */
static __always_inline int parse_packet(struct xdp_md *ctx, struct parsed_pkt *p)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct hdr_cursor nh = { .pos = data };
	struct l3_info l3 = {};
	struct iphdr *iph;
	struct ipv6hdr *ip6h;
	struct tcphdr *tcph;
	struct udphdr *udph;
	__u32 l3_len;
	int eth_type, proto, len;

	eth_type = parse_ethhdr_vlan(&nh, data_end, p->vlan);
	if (eth_type < 0)
		return parse_counter(eth_type);
	p->vlan_tags = vlan_tags(data, data_end);
	if (eth_type == bpf_htons(ETH_P_IP)) {
		proto = parse_ipv4(&nh, data_end, &iph, &l3);
		if (proto < 0)
			return parse_counter(proto);
		__builtin_memcpy(p->src.addr, &iph->saddr, 4);
		__builtin_memcpy(p->dst.addr, &iph->daddr, 4);
		p->multicast = (bpf_ntohl(iph->daddr) >> 28) == 0xe; /* 224.0.0.0/4 */
		l3_len = iph->ihl * 4;
	} else if (eth_type == bpf_htons(ETH_P_IPV6)) {
		proto = parse_ipv6(&nh, data_end, &ip6h, &l3);
		if (proto < 0)
			return parse_counter(proto);
		__builtin_memcpy(p->src.addr, &ip6h->saddr, 16);
		__builtin_memcpy(p->dst.addr, &ip6h->daddr, 16);
		p->multicast = ip6h->daddr.in6_u.u6_addr8[0] == 0xff; /* ff00::/8 */
		/* fixed header + the extension headers parse_ipv6 walked */
		l3_len = sizeof(*ip6h) + bpf_ntohs(ip6h->payload_len) - l3.payload_len;
	} else {
		return MD_CNT_PARSE_NOT_IP;
	}
	p->src.family = l3.family;
	p->dst.family = l3.family;
	p->proto = l3.proto;

	if (l3.proto == IPPROTO_TCP) {
		len = parse_tcphdr(&nh, data_end, &tcph);
		if (len < 0)
			return parse_counter(len);
		if ((__u32)len > l3.payload_len)
			return MD_CNT_PARSE_BAD_TCP;
		p->src.port = bpf_ntohs(tcph->source);
		p->dst.port = bpf_ntohs(tcph->dest);
	} else if (l3.proto == IPPROTO_UDP) {
		len = parse_udphdr(&nh, data_end, &udph);
		if (len < 0)
			return parse_counter(len);
		if (l3.payload_len < sizeof(*udph))
			return MD_CNT_PARSE_TRUNC_UDP;
		p->src.port = bpf_ntohs(udph->source);
		p->dst.port = bpf_ntohs(udph->dest);
	} else {
		return 0; /* parsed; not feed (no ports to match) */
	}
	p->payload_off = sizeof(struct ethhdr) + p->vlan_tags * sizeof(struct vlan_hdr) + l3_len + len;
	p->payload_len = l3.payload_len - len;
	return 0;
}

/* The rule of (addr, port), else of (addr, any port); 0 when neither. */
static __always_inline __u32 lookup_endpoint(void *map, const struct md_endpoint_key *k)
{
	struct md_endpoint_key any = *k;
	struct md_rule *r = bpf_map_lookup_elem(map, k);

	if (r)
		return r->id;
	if (!k->port)
		return 0;
	any.port = 0;
	r = bpf_map_lookup_elem(map, &any);
	return r ? r->id : 0;
}

/* Fills m->match, m->rule and m->port; leaves m->match MD_MATCH_NONE for
 * traffic that is not feed. */
static __always_inline void match_packet(const struct parsed_pkt *p, struct md_meta *m)
{
	if (p->proto == IPPROTO_UDP) {
		if (cfg.match_groups && p->multicast) {
			m->rule = lookup_endpoint(&md_groups, &p->dst);
			if (m->rule) {
				m->match = MD_MATCH_GROUP;
				m->port = p->dst.port;
				return;
			}
		}
		if (cfg.match_udp_ports) {
			__u16 port = p->dst.port;
			struct md_rule *r = bpf_map_lookup_elem(&md_udp_ports, &port);

			if (r) {
				m->rule = r->id;
				m->match = MD_MATCH_UDP_PORT;
				m->port = port;
			}
		}
		return;
	}
	if (p->proto == IPPROTO_TCP && cfg.match_tcp) {
		m->rule = lookup_endpoint(&md_tcp_servers, &p->src);
		if (m->rule) {
			m->match = MD_MATCH_TCP_FROM_SERVER;
			m->port = p->src.port;
			return;
		}
		if (cfg.tcp_to_server) {
			m->rule = lookup_endpoint(&md_tcp_servers, &p->dst);
			if (m->rule) {
				m->match = MD_MATCH_TCP_TO_SERVER;
				m->port = p->dst.port;
			}
		}
	}
}

/* Makes the metadata area exactly one md_meta in front of the packet (an
 * earlier program's metadata is replaced) and writes m there. */
static __always_inline int write_meta(struct xdp_md *ctx, const struct md_meta *m)
{
	void *data = (void *)(long)ctx->data;
	void *meta = (void *)(long)ctx->data_meta;

	if (meta + sizeof(*m) != data) {
		/* new data_meta = data_meta + delta = data - sizeof(*m) */
		if (bpf_xdp_adjust_meta(ctx, (int)(data - meta) - (int)sizeof(*m)))
			return -1;
		data = (void *)(long)ctx->data;
		meta = (void *)(long)ctx->data_meta;
	}
	if (meta + sizeof(*m) > data) /* the verifier learns the bound here */
		return -1;
	__builtin_memcpy(meta, m, sizeof(*m));
	return 0;
}

static __always_inline int mdfeed(struct xdp_md *ctx)
{
	/* First, so the time is the packet's arrival at XDP, not after parsing. */
	__u64 now = bpf_ktime_get_ns();
	__u32 zero = 0;
	struct md_counters *c = bpf_map_lookup_elem(&md_counters, &zero);
	struct parsed_pkt p = {};
	struct md_meta m = {};
	int action = XDP_PASS, outcome;

	if (!c)
		return XDP_PASS; /* cannot happen: one-slot array */
	c->cnt[MD_CNT_RX]++;

	outcome = parse_packet(ctx, &p);
	if (outcome) {
		count(c, outcome);
		goto out;
	}
	match_packet(&p, &m);
	switch (m.match) {
	case MD_MATCH_UDP_PORT:        c->cnt[MD_CNT_MATCH_UDP_PORT]++; break;
	case MD_MATCH_GROUP:           c->cnt[MD_CNT_MATCH_GROUP]++; break;
	case MD_MATCH_TCP_FROM_SERVER: c->cnt[MD_CNT_MATCH_TCP_FROM_SERVER]++; break;
	case MD_MATCH_TCP_TO_SERVER:   c->cnt[MD_CNT_MATCH_TCP_TO_SERVER]++; break;
	default:
		c->cnt[MD_CNT_PASS_NOT_FEED]++;
		goto out;
	}

	m.rx_ns = now;
	m.payload_off = p.payload_off;
	m.payload_len = p.payload_len;
	m.family = p.dst.family;
	m.vlan[0] = p.vlan[0];
	m.vlan[1] = p.vlan[1];
	m.version = MD_META_VERSION;
	m.flags = (p.multicast ? MD_META_MULTICAST : 0) | (p.vlan_tags ? MD_META_VLAN : 0);
	m.magic = MD_META_MAGIC;
	/* Without the metadata the packet still goes to the socket: feed data
	 * is worth more than its timestamp. */
	if (write_meta(ctx, &m))
		c->cnt[MD_CNT_META_FAIL]++;

	/* The fallback action on a queue without a socket is PASS. */
	action = bpf_redirect_map(&md_xsks, ctx->rx_queue_index, XDP_PASS);
	if (action == XDP_REDIRECT)
		c->cnt[p.proto == IPPROTO_TCP ? MD_CNT_REDIRECT_TCP : MD_CNT_REDIRECT_UDP]++;
	else
		c->cnt[MD_CNT_PASS_NO_SOCKET]++;

out:
	/* Plain increments: the counters are per-CPU and an XDP program runs to
	 * completion on one CPU without being preempted or migrated, so no
	 * other writer can touch this CPU's slot meanwhile; user space sums the
	 * slots. */
	switch (action) {
	case XDP_PASS:     c->cnt[MD_CNT_VERDICT_PASS]++; break;
	case XDP_DROP:     c->cnt[MD_CNT_VERDICT_DROP]++; break;
	case XDP_REDIRECT: c->cnt[MD_CNT_VERDICT_REDIRECT]++; break;
	default:           c->cnt[MD_CNT_VERDICT_ABORTED]++; break;
	}
	return action;
}

/* xdp.frags: accepted on interfaces with an MTU beyond a page, and by
 * libxdp's dispatcher beside multi-buffer programs. Headers are parsed from
 * the linear part. (An AF_XDP socket takes multi-buffer frames only when
 * bound with XDP_USE_SG; feeds fit one buffer.) */
SEC("xdp.frags")
int xdp_mdfeed(struct xdp_md *ctx)
{
	return mdfeed(ctx);
}

/* The same program in plain section "xdp", for loaders that find programs by
 * section name: `ip link set dev IFACE xdp obj mdfeed.bpf.o sec xdp`. The
 * etcpipe loader never loads it (autoload off). With `ip link` the filter
 * maps are empty and the config zero: it passes everything until a loader
 * fills them, so use etcpipe to run it. */
SEC("xdp")
int xdp_mdfeed_sb(struct xdp_md *ctx)
{
	return mdfeed(ctx);
}

/* Coexist with other XDP programs under libxdp's dispatcher: first in the
 * chain (the latency-critical path; FlowManager runs at 20), and on
 * XDP_PASS the next program sees the packet. */
struct {
	__uint(priority, 10);
	__uint(XDP_PASS, 1);
} XDP_RUN_CONFIG(xdp_mdfeed);
