// SPDX-License-Identifier: GPL-2.0
/* FlowManager: tracks flows by bidirectional 5-tuple + VLAN and selects the
 * first N packets of each flow that carry L4 payload (SPEC §3).
 *
 * Selected packets get struct etc_meta in the XDP metadata area and are
 * either redirected to an AF_XDP socket (tap) or copied to a ring buffer
 * while the original passes (inline). Everything else is passed (or, in tap
 * mode, dropped on request). Every packet ends at `out:`, which counts the
 * verdict; every early exit names its reason. */
#include "etcpipe/flowmgr.h"
#include "parsing.h"
#include <xdp/xdp_helpers.h>

char LICENSE[] SEC("license") = "GPL";

/* Load-time configuration; the loader overwrites it before load. */
const volatile struct etc_flowmgr_config cfg = {
	.idle_timeout_ns = ETC_DEFAULT_IDLE_SEC * 1000000000ULL,
	.proto_allow = { ~0ULL, ~0ULL, ~0ULL, ~0ULL },
	.max_pkts = ETC_DEFAULT_MAX_PKTS,
	.snap_len = ETC_DEFAULT_SNAP,
	.delivery = ETC_DELIVERY_TAP,
};

/* Flow tables, one per address family: LRU so that a full table evicts the
 * stalest flow rather than refusing new ones. IPv4 flows get the 20-byte key
 * (every lookup hashes the whole key). max_entries is set by the loader. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, ETC_DEFAULT_FLOWS);
	__type(key, struct etc_flow_key4);
	__type(value, struct etc_flow_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} etc_flows4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, ETC_DEFAULT_FLOWS);
	__type(key, struct etc_flow_key);
	__type(value, struct etc_flow_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} etc_flows SEC(".maps");

/* Verdict and reason counters, one struct per CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct etc_counters);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} etc_counters SEC(".maps");

/* AF_XDP sockets by RX queue index (tap delivery). */
struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} etc_xsks SEC(".maps");

/* `etcpipe run` publishes its user-space counters here (see the header). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct etc_run_stats);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} etc_run_stats SEC(".maps");

/* Selected packets' first bytes with metadata (inline delivery). */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 22);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} etc_ringbuf SEC(".maps");

/* Port set (host order port → 1) consulted when cfg.port_filter is set.
 * Filter maps are load-time configuration: the loader fills them before the
 * program exists and never pins them, so a stale pin cannot override them. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u16);
	__type(value, __u8);
} etc_ports SEC(".maps");

/* CIDR allow/deny rules (enum etc_cidr_action), longest prefix wins. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 1024);
	__type(key, struct etc_cidr_key);
	__type(value, __u8);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} etc_cidrs SEC(".maps");

/* Source of flow ids; only touched when a flow is created. */
__u64 etc_next_flow_id = 0;

struct parsed_pkt {
	struct etc_flow_key key;  /* canonical */
	__u32 payload_len;        /* L4 payload bytes per the headers */
	__u64 ip_end;             /* offset of the IP packet's end per its headers */
	__u8 canon_dir;           /* 1 when the packet's source is endpoint b */
};

/* The flow table's clock, in ns: idle expiry counts seconds, so a tick is
 * enough. bpf_jiffies64 is inlined by the verifier (one load), several ns a
 * packet cheaper than the bpf_ktime_get_coarse_ns helper; its epoch is the
 * kernel's jiffies, not CLOCK_MONOTONIC's, which only the table sees. The
 * loader sets ns_per_tick from the kernel's CONFIG_HZ; 0 (unknown, or an
 * object loaded by another tool) keeps the coarse clock. */
static __always_inline __u64 table_clock_ns(void)
{
	if (cfg.ns_per_tick)
		return bpf_jiffies64() * cfg.ns_per_tick;
	return bpf_ktime_get_coarse_ns();
}

/* As 32-bit words: the key's addresses are 4-aligned, and x86 loads from
 * the (2-aligned) IP header unaligned at no cost; a memcpy here became byte
 * loads and stores, 8 instructions per word. */
static __always_inline void copy_addr(__u8 dst[16], const void *src, int len)
{
	const __u32 *s = src;
	__u32 *d = (__u32 *)dst;

	d[0] = s[0];
	if (len == 16) {
		d[1] = s[1];
		d[2] = s[2];
		d[3] = s[3];
	}
}

/* Orders endpoints (address, then port) so both directions share a key. */
static __always_inline __u8 canonicalise(struct etc_flow_key *k)
{
	__u32 *a = (__u32 *)k->addr_a, *b = (__u32 *)k->addr_b;
	int cmp = 0;

#pragma unroll
	for (int i = 0; i < 4; i++) {
		if (cmp == 0 && a[i] != b[i])
			cmp = bpf_ntohl(a[i]) < bpf_ntohl(b[i]) ? -1 : 1;
	}
	if (cmp == 0 && k->port_a != k->port_b)
		cmp = k->port_a < k->port_b ? -1 : 1;
	if (cmp <= 0)
		return 0;

	__u16 p = k->port_a;

	/* word by word: a memcpy of the swap became 32 byte stores */
#pragma unroll
	for (int i = 0; i < 4; i++) {
		__u32 t = a[i];

		a[i] = b[i];
		b[i] = t;
	}
	k->port_a = k->port_b;
	k->port_b = p;
	return 1;
}

/* Returns 0 when allowed, else the filter counter that refused it. */
static __always_inline int cidr_verdict(const struct etc_flow_key *k)
{
	struct etc_cidr_key lk = { .family = k->family };
	__u8 *act_a, *act_b;

	lk.prefixlen = 8 + (k->family == 4 ? 32 : 128);
	__builtin_memcpy(lk.addr, k->addr_a, 16);
	act_a = bpf_map_lookup_elem(&etc_cidrs, &lk);
	__builtin_memcpy(lk.addr, k->addr_b, 16);
	act_b = bpf_map_lookup_elem(&etc_cidrs, &lk);

	if (cfg.cidr_deny && ((act_a && *act_a == ETC_CIDR_DENY) ||
			      (act_b && *act_b == ETC_CIDR_DENY)))
		return ETC_CNT_FILTER_CIDR_DENY;
	if (cfg.cidr_allow && !((act_a && *act_a == ETC_CIDR_ALLOW) ||
				(act_b && *act_b == ETC_CIDR_ALLOW)))
		return ETC_CNT_FILTER_CIDR_NOT_ALLOWED;
	return 0;
}

static __always_inline int filter_verdict(const struct etc_flow_key *k)
{
	__u8 proto = k->proto;

	if (!(cfg.proto_allow[(proto >> 6) & 3] & (1ULL << (proto & 63))))
		return ETC_CNT_FILTER_PROTO;
	if (cfg.port_filter) {
		__u16 pa = k->port_a, pb = k->port_b;

		if (!bpf_map_lookup_elem(&etc_ports, &pa) && !bpf_map_lookup_elem(&etc_ports, &pb))
			return ETC_CNT_FILTER_PORT;
	}
	if (cfg.cidr_allow || cfg.cidr_deny)
		return cidr_verdict(k);
	return 0;
}

_Static_assert(PARSE_MAX_VLAN_DEPTH == ETC_MAX_VLAN_DEPTH, "key holds every parsed VLAN tag");
_Static_assert(ETC_CNT_PARSE_TRUNC_UDP - ETC_CNT_PARSE_TRUNC_ETH == PARSE_ERR_LAST - PARSE_ERR_TRUNC_ETH,
	       "the parse counters follow enum parse_err one for one");

/* Counts a reason returned by a helper; the bound check is what the verifier
 * needs to see (a mask would allow indices past the array). */
static __always_inline void count_reason(struct etc_counters *c, int reason)
{
	if ((unsigned int)reason < ETC_CNT_MAX)
		c->cnt[reason]++;
}

/* The counter of a parser's failure (err: a negated enum parse_err). */
static __always_inline int parse_counter(int err)
{
	return ETC_CNT_PARSE_TRUNC_ETH + (-err - PARSE_ERR_TRUNC_ETH);
}

/* Parses up to L4. Returns 0 or the parse-failure counter. */
static __always_inline int parse_packet(struct xdp_md *ctx, struct parsed_pkt *p)
{
	void *data_end = (void *)(long)ctx->data_end;
	struct hdr_cursor nh = { .pos = (void *)(long)ctx->data };
	struct etc_flow_key *k = &p->key;
	struct l3_info l3 = {};
	struct iphdr *iph;
	struct ipv6hdr *ip6h;
	struct tcphdr *tcph;
	struct udphdr *udph;
	int eth_type, proto, len;

	eth_type = parse_ethhdr_vlan(&nh, data_end, k->vlan);
	if (eth_type < 0)
		return parse_counter(eth_type);
	if (eth_type == bpf_htons(ETH_P_IP)) {
		proto = parse_ipv4(&nh, data_end, &iph, &l3);
		if (proto < 0)
			return parse_counter(proto);
		copy_addr(k->addr_a, &iph->saddr, 4);
		copy_addr(k->addr_b, &iph->daddr, 4);
	} else if (eth_type == bpf_htons(ETH_P_IPV6)) {
		proto = parse_ipv6(&nh, data_end, &ip6h, &l3);
		if (proto < 0)
			return parse_counter(proto);
		copy_addr(k->addr_a, &ip6h->saddr, 16);
		copy_addr(k->addr_b, &ip6h->daddr, 16);
	} else {
		return ETC_CNT_PARSE_NOT_IP;
	}
	k->proto = l3.proto;
	k->family = l3.family;

	if (l3.proto == IPPROTO_TCP) {
		len = parse_tcphdr(&nh, data_end, &tcph);
		if (len < 0)
			return parse_counter(len);
		if ((__u32)len > l3.payload_len)
			return ETC_CNT_PARSE_BAD_TCP;
		k->port_a = bpf_ntohs(tcph->source);
		k->port_b = bpf_ntohs(tcph->dest);
		p->payload_len = l3.payload_len - len;
	} else if (l3.proto == IPPROTO_UDP) {
		len = parse_udphdr(&nh, data_end, &udph);
		if (len < 0)
			return parse_counter(len);
		if (l3.payload_len < sizeof(*udph))
			return ETC_CNT_PARSE_TRUNC_UDP;
		k->port_a = bpf_ntohs(udph->source);
		k->port_b = bpf_ntohs(udph->dest);
		p->payload_len = l3.payload_len - sizeof(*udph);
	} else {
		p->payload_len = l3.payload_len;
	}
	/* the offset first, as its own value: left to clang, the sum became
	 * payload_len - data + pos, which the verifier refuses */
	__u64 l4_off = (__u64)(nh.pos - (void *)(long)ctx->data);

	asm volatile("" : "+r"(l4_off));
	p->ip_end = l4_off + p->payload_len;
	p->canon_dir = canonicalise(k);
	return 0;
}

/* Finds or creates the flow in `table` (one of the two, with its key type);
 * restarts it when idle past the timeout. */
static __always_inline struct etc_flow_value *
flow_get(void *table, const void *k, __u64 now, __u8 canon_dir,
	 struct etc_counters *c, __u16 *flags)
{
	struct etc_flow_value *v = bpf_map_lookup_elem(table, k);

	if (v && !(now > v->last_ns && now - v->last_ns > cfg.idle_timeout_ns))
		return v;

	struct etc_flow_value fresh = {
		.flow_id = __sync_fetch_and_add(&etc_next_flow_id, 1) + 1,
		.first_ns = now,
		.last_ns = now,
		.first_dir = canon_dir,
	};

	if (v) {
		c->cnt[ETC_CNT_FLOW_EXPIRED]++;
		bpf_map_update_elem(table, k, &fresh, BPF_ANY);
	} else if (bpf_map_update_elem(table, k, &fresh, BPF_NOEXIST) == 0) {
		c->cnt[ETC_CNT_FLOW_NEW]++;
	}
	/* On a lost race with another CPU its entry is the one to use. */
	*flags |= ETC_META_NEW_FLOW;
	return bpf_map_lookup_elem(table, k);
}

/* Writes meta in front of the packet, reusing an area the caller supplied. */
static __always_inline int write_meta(struct xdp_md *ctx, const struct etc_meta *m)
{
	void *data = (void *)(long)ctx->data;
	void *meta = (void *)(long)ctx->data_meta;

	if (meta + sizeof(*m) != data) {
		/* Grow (or shrink) the area from its current size, data - meta,
		 * to exactly sizeof(*m): delta is the change of data_meta. */
		if (bpf_xdp_adjust_meta(ctx, (int)(data - meta) - (int)sizeof(*m)))
			return -1;
		data = (void *)(long)ctx->data;
		meta = (void *)(long)ctx->data_meta;
	}
	if (meta + sizeof(*m) > data) /* the verifier learns the bound here */
		return -1;
	/* word by word (a memcpy to the packet became 64 byte loads and
	 * stores); the area is as aligned as the frame, x86 does not care */
	__u32 *d = meta;
	const __u32 *w = (const __u32 *)m;

#pragma unroll
	for (int i = 0; i < (int)(sizeof(*m) / 4); i++)
		d[i] = w[i];
	return 0;
}

static __always_inline int copy_to_ringbuf(struct xdp_md *ctx, const struct etc_meta *m)
{
	/* Whole frame, fragments included (multi-buffer XDP). 64-bit so the
	 * clamps bound the register passed to bpf_xdp_load_bytes: with __u32
	 * the compares were 32-bit and the verifier refused the program. */
	__u64 pkt_len = bpf_xdp_get_buff_len(ctx);
	__u64 len = pkt_len < cfg.snap_len ? pkt_len : cfg.snap_len;
	struct etc_ring_rec *rec;

	rec = bpf_ringbuf_reserve(&etc_ringbuf, sizeof(*rec), 0);
	if (!rec)
		return -1;
	if (len > ETC_SNAP_MAX)
		len = ETC_SNAP_MAX;
	rec->hdr.meta = *m;
	rec->hdr.cap_len = 0;
	rec->hdr.pad = 0;
	if (len > 0 && bpf_xdp_load_bytes(ctx, 0, rec->data, len) == 0)
		rec->hdr.cap_len = len;
	/* The wakeup is an irq_work (an APIC write): most of a replay's time
	 * when every record paid one, and useless to a reader that polls. */
	bpf_ringbuf_submit(rec, cfg.ring_no_wakeup ? BPF_RB_NO_WAKEUP : 0);
	return 0;
}

/* xdp.frags: frames larger than a page (jumbo MTU, GRO'd captures in
 * replay) arrive as multi-buffer; headers are parsed from the linear part,
 * lengths and ring-buffer copies use the whole buffer. */
static __always_inline int flowmgr(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	__u32 zero = 0, pkt_len;
	struct etc_counters *c = bpf_map_lookup_elem(&etc_counters, &zero);
	struct parsed_pkt p = {};
	struct etc_flow_key4 key4;
	struct etc_meta m = {};
	struct etc_flow_value *v;
	void *meta_in = (void *)(long)ctx->data_meta;
	__u64 now = 0;
	int action = XDP_PASS, reason, replayed = 0;

	if (!c)
		return XDP_PASS; /* cannot happen: one-slot array */
	c->cnt[ETC_CNT_RX]++;

	/* The replayer supplies the capture timestamp in the metadata area. */
	if (meta_in + sizeof(struct etc_meta) <= data) {
		struct etc_meta *in = meta_in;

		if (in->magic == ETC_META_MAGIC_REPLAY) {
			now = in->ts_ns;
			replayed = 1;
		}
	}
	/* Only selected packets pay for bpf_ktime_get_ns, for the timestamp
	 * their features use; the table runs on ticks. */
	if (!replayed)
		now = table_clock_ns();

	reason = parse_packet(ctx, &p);
	if (reason) {
		count_reason(c, reason);
		goto out;
	}
	/* The frame's whole length: the linear part's when the IP packet ends
	 * in it (fragments could then hold only trailing padding), else the
	 * helper's (a call: ~6 ns a packet that most frames need not pay). */
	pkt_len = (__u32)(ctx->data_end - ctx->data);
	if (p.ip_end > (__u64)pkt_len)
		pkt_len = bpf_xdp_get_buff_len(ctx);
	const int v4 = p.key.family == 4;

	if (v4)
		etc_flow_key4_from(&key4, &p.key);
	if (cfg.bench_stage == ETC_BENCH_PARSE)
		goto out;
	if (cfg.bench_stage == ETC_BENCH_LOOKUP) {
		if (v4 ? bpf_map_lookup_elem(&etc_flows4, &key4) : bpf_map_lookup_elem(&etc_flows, &p.key))
			c->cnt[ETC_CNT_NOT_SELECTED]++;
		goto out;
	}
	reason = filter_verdict(&p.key);
	if (reason) {
		c->cnt[ETC_CNT_FILTERED]++;
		count_reason(c, reason);
		goto out_unselected;
	}

	/* Two call sites, one map each: the verifier inlines a lookup only
	 * where it sees a single map. */
	if (v4)
		v = flow_get(&etc_flows4, &key4, now, p.canon_dir, c, &m.flags);
	else
		v = flow_get(&etc_flows, &p.key, now, p.canon_dir, c, &m.flags);
	if (!v) {
		c->cnt[ETC_CNT_FLOW_TABLE_FAIL]++;
		c->cnt[ETC_CNT_NOT_SELECTED]++;
		goto out_unselected;
	}
	/* Never backwards: a reordered packet must not shorten the idle time. */
	if (now > v->last_ns)
		v->last_ns = now;
	/* packets and payload_pkts are adjacent u32s (low and high half of one
	 * aligned u64, little-endian): one atomic add counts both, and its old
	 * value gives both indices. (A flow would need 2^32 packets for the
	 * low half to carry into the high one.) */
	const int counts = cfg.count_all || p.payload_len > 0;
	__u64 before = __sync_fetch_and_add((__u64 *)&v->packets, 1 + ((__u64)counts << 32));
	const __u32 idx = before >> 32;
	const int selected = counts && idx < cfg.max_pkts;

	__sync_fetch_and_add(&v->bytes, pkt_len);
	if (selected)
		__sync_fetch_and_add(&v->selected, 1);
	if (cfg.bench_stage == ETC_BENCH_COUNT)
		goto out;
	if (!selected) {
		c->cnt[ETC_CNT_NOT_SELECTED]++;
		c->cnt[counts ? ETC_CNT_SKIP_BEYOND_N : ETC_CNT_SKIP_NO_PAYLOAD]++;
		/* Metadata only where someone reads it: the replayer (its flow
		 * records), a program after this one (--meta-all). The stack
		 * ignores it and AF_XDP only gets selected packets. Nothing of
		 * it is assembled before this point: most packets stop here. */
		if (!replayed && !cfg.meta_all)
			goto out_unselected;
	}
	m.flow_id = v->flow_id;
	m.orig_len = pkt_len;
	m.magic = ETC_META_MAGIC;
	m.pkt_index = (__u32)before;
	if (p.canon_dir != v->first_dir)
		m.flags |= ETC_META_DIR_REPLY;
	if (counts)
		m.flags |= ETC_META_PAYLOAD;
	if (selected) {
		m.flags |= ETC_META_SELECTED;
		m.index = idx;
		/* CLOCK_MONOTONIC, for the features' inter-arrival times */
		m.ts_ns = replayed ? now : bpf_ktime_get_ns();
	} else {
		m.index = 0xffff;
		/* CLOCK_MONOTONIC's coarse time, as documented, not the table's */
		m.ts_ns = replayed ? now : bpf_ktime_get_coarse_ns();
	}
	if (write_meta(ctx, &m))
		c->cnt[ETC_CNT_META_FAIL]++;
	if (cfg.bench_stage == ETC_BENCH_META)
		goto out;
	if (!selected)
		goto out_unselected;

	c->cnt[ETC_CNT_SELECTED]++;
	if (cfg.delivery == ETC_DELIVERY_INLINE) {
		if (copy_to_ringbuf(ctx, &m))
			c->cnt[ETC_CNT_RINGBUF_FULL]++;
		goto out;
	}
	/* Tap: the fallback action on a queue without a socket is PASS. */
	action = bpf_redirect_map(&etc_xsks, ctx->rx_queue_index, XDP_PASS);
	if (action != XDP_REDIRECT)
		c->cnt[ETC_CNT_XSK_NO_SOCKET]++;
	goto out;

out_unselected:
	if (cfg.delivery == ETC_DELIVERY_TAP && cfg.unselected_drop)
		action = XDP_DROP;
out:
	switch (action) {
	case XDP_PASS:     c->cnt[ETC_CNT_VERDICT_PASS]++; break;
	case XDP_DROP:     c->cnt[ETC_CNT_VERDICT_DROP]++; break;
	case XDP_REDIRECT: c->cnt[ETC_CNT_VERDICT_REDIRECT]++; break;
	default:           c->cnt[ETC_CNT_VERDICT_ABORTED]++; break;
	}
	return action;
}

SEC("xdp.frags")
int xdp_flowmgr(struct xdp_md *ctx)
{
	return flowmgr(ctx);
}

/* The same program in plain section "xdp", for loaders that find programs by
 * section name: `ip link set dev IFACE xdp obj flowmgr.bpf.o sec xdp`. The
 * etcpipe loader never loads it (autoload off). Single-buffer only: frames
 * beyond one page are not delivered to it by the driver. */
SEC("xdp")
int xdp_flowmgr_sb(struct xdp_md *ctx)
{
	return flowmgr(ctx);
}

/* Coexist with other XDP programs under libxdp's dispatcher. */
struct {
	__uint(priority, 20);
	__uint(XDP_PASS, 1);
} XDP_RUN_CONFIG(xdp_flowmgr);
