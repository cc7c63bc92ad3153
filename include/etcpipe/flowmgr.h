/* FlowManager kernel/user ABI: the one declaration of every struct, enum and
 * map name shared by bpf/flowmgr.bpf.c and the loader. Valid C and C++.
 * Changing a layout here changes the ABI: bump ETC_META_VERSION. */
#ifndef ETCPIPE_FLOWMGR_H
#define ETCPIPE_FLOWMGR_H

#include <linux/types.h>

/* Map names as the loader looks them up (pinned by name under the pin root). */
#define ETC_MAP_FLOWS      "etc_flows"   /* IPv6 flows (struct etc_flow_key) */
#define ETC_MAP_FLOWS4     "etc_flows4"  /* IPv4 flows (struct etc_flow_key4) */
#define ETC_MAP_COUNTERS   "etc_counters"
#define ETC_MAP_XSKS       "etc_xsks"
#define ETC_MAP_RINGBUF    "etc_ringbuf"
#define ETC_MAP_PORTS      "etc_ports"
#define ETC_MAP_CIDRS      "etc_cidrs"
#define ETC_MAP_RUN_STATS  "etc_run_stats"
#define ETC_PROG_FLOWMGR   "xdp_flowmgr"
#define ETC_PROG_FLOWMGR_SB "xdp_flowmgr_sb" /* section "xdp" twin for `ip link` */

#define ETC_DEFAULT_MAX_PKTS   10
#define ETC_DEFAULT_FLOWS      65536
#define ETC_DEFAULT_IDLE_SEC   60
#define ETC_MAX_VLAN_DEPTH     2
#define ETC_MAX_IPV6_EXT       6     /* extension headers walked before giving up */
#define ETC_SNAP_MAX           2048  /* largest ring-buffer copy per packet (inline) */
#define ETC_DEFAULT_SNAP       1514

/* Bidirectional flow key. Endpoint "a" is the smaller (address, port) in
 * canonical order, so both directions of a conversation share one key.
 * IPv4 addresses occupy the first 4 bytes of addr_*; the rest is zero. */
struct etc_flow_key {
	/* 4-aligned (the struct's own alignment; offsets and size unchanged):
	 * the program copies and compares the addresses as words, not bytes */
	__u8  addr_a[16] __attribute__((aligned(4)));
	__u8  addr_b[16] __attribute__((aligned(4)));
	__u16 port_a;     /* host byte order; 0 for protocols without ports */
	__u16 port_b;
	__u16 vlan[ETC_MAX_VLAN_DEPTH]; /* VIDs outer→inner; 0 = untagged */
	__u8  proto;      /* IP protocol number */
	__u8  family;     /* 4 or 6 */
	__u16 pad;
};

/* Per-flow state in the LRU flow table. Updated with atomics: several CPUs
 * may see packets of one flow when RSS spreads directions over queues. */
struct etc_flow_value {
	__u64 flow_id;     /* unique per flow since load; 0 is never used */
	__u64 first_ns;    /* first packet (replay: capture time; live: the
			    * kernel's jiffies in ns, a tick's resolution, its
			    * own epoch: only for idle expiry and durations) */
	__u64 last_ns;
	__u64 bytes;       /* sum of original frame lengths */
	__u32 packets;     /* every packet of the flow seen by the program */
	__u32 payload_pkts;/* packets that counted toward selection; with
			    * packets one aligned u64 the program adds to
			    * atomically (keep them adjacent, at offset 32) */
	__u32 selected;    /* packets selected (≤ max_pkts) */
	__u8  first_dir;   /* canonical direction of the flow's first packet */
	__u8  pad[3];
};

#ifdef __cplusplus
#define ETC_STATIC_ASSERT static_assert
#else
#define ETC_STATIC_ASSERT _Static_assert
#endif
ETC_STATIC_ASSERT(__builtin_offsetof(struct etc_flow_value, packets) % 8 == 0 &&
		  __builtin_offsetof(struct etc_flow_value, payload_pkts) ==
			  __builtin_offsetof(struct etc_flow_value, packets) + 4,
		  "packets and payload_pkts form one aligned u64");
ETC_STATIC_ASSERT(sizeof(struct etc_flow_key) == 44, "the flow key's layout is the map's and the datasets'");

/* The IPv4 table's key: the same fields without the 24 bytes of zeros an
 * IPv4 flow has in etc_flow_key. The kernel hashes and compares every key
 * byte on each lookup; 20 bytes instead of 44 cut that work by half (jhash:
 * one mixing round instead of three), about a sixth of the program's time
 * per packet. Everywhere outside the map the key is etc_flow_key. */
struct etc_flow_key4 {
	__u32 addr_a;     /* as in the packet (network order) */
	__u32 addr_b;
	__u16 port_a;
	__u16 port_b;
	__u16 vlan[ETC_MAX_VLAN_DEPTH];
	__u8  proto;
	__u8  pad[3];
};
ETC_STATIC_ASSERT(sizeof(struct etc_flow_key4) == 20, "the IPv4 table's key");

static inline void etc_flow_key4_from(struct etc_flow_key4 *k4, const struct etc_flow_key *k)
{
	int i;

	__builtin_memcpy(&k4->addr_a, k->addr_a, 4);
	__builtin_memcpy(&k4->addr_b, k->addr_b, 4);
	k4->port_a = k->port_a;
	k4->port_b = k->port_b;
	for (i = 0; i < ETC_MAX_VLAN_DEPTH; i++)
		k4->vlan[i] = k->vlan[i];
	k4->proto = k->proto;
	k4->pad[0] = k4->pad[1] = k4->pad[2] = 0;
}

static inline void etc_flow_key_from4(struct etc_flow_key *k, const struct etc_flow_key4 *k4)
{
	int i;

	__builtin_memset(k->addr_a, 0, sizeof(k->addr_a));
	__builtin_memset(k->addr_b, 0, sizeof(k->addr_b));
	__builtin_memcpy(k->addr_a, &k4->addr_a, 4);
	__builtin_memcpy(k->addr_b, &k4->addr_b, 4);
	k->port_a = k4->port_a;
	k->port_b = k4->port_b;
	for (i = 0; i < ETC_MAX_VLAN_DEPTH; i++)
		k->vlan[i] = k4->vlan[i];
	k->proto = k4->proto;
	k->family = 4;
	k->pad = 0;
}

/* XDP metadata area (bpf_xdp_adjust_meta), written in front of every packet
 * the FlowManager selects (of every packet it tracks with cfg.meta_all, and
 * of every replayed one). AF_XDP readers find it at data - sizeof(meta).
 * The replayer also sends one in (magic ETC_META_MAGIC_REPLAY) to supply the
 * capture timestamp, so expiry follows capture time, not wall time. */
#define ETC_META_MAGIC         0x45544331u /* "ETC1" written by the program */
#define ETC_META_MAGIC_REPLAY  0x45544352u /* "ETCR" supplied by the replayer */

enum etc_meta_flags {
	ETC_META_DIR_REPLY = 1 << 0, /* opposite direction to the flow's first packet */
	ETC_META_SELECTED  = 1 << 1, /* one of the first N payload packets */
	ETC_META_NEW_FLOW  = 1 << 2, /* this packet created the flow entry */
	ETC_META_PAYLOAD   = 1 << 3, /* counted toward selection */
};

struct etc_meta {
	__u64 flow_id;
	__u64 ts_ns;      /* CLOCK_MONOTONIC (bpf_ktime_get_ns) on selected packets;
			   * on the others (cfg.meta_all) its coarse version
			   * (resolution: a tick); replay: the capture time */
	__u32 orig_len;   /* frame length as received */
	__u16 index;      /* index among the flow's selected packets, 0..N-1 */
	__u16 flags;      /* enum etc_meta_flags */
	__u32 pkt_index;  /* index among all the flow's packets (wraps at 2^32) */
	__u32 magic;
};

/* Inline delivery: one ring-buffer record per selected packet. */
struct etc_ring_hdr {
	struct etc_meta meta;
	__u32 cap_len;    /* bytes of data[] that hold the packet's first bytes */
	__u32 pad;
};

struct etc_ring_rec {
	struct etc_ring_hdr hdr;
	__u8 data[ETC_SNAP_MAX];
};

enum etc_delivery {
	ETC_DELIVERY_TAP    = 0, /* selected → XSKMAP redirect; others per unselected_action */
	ETC_DELIVERY_INLINE = 1, /* selected copied to the ring buffer; all packets pass */
};

/* Load-time configuration, placed in .rodata as `const volatile` and set
 * by the loader before load, so the verifier prunes disabled branches. */
struct etc_flowmgr_config {
	__u64 idle_timeout_ns;   /* a flow idle this long starts afresh */
	__u64 ns_per_tick;       /* 1e9 / CONFIG_HZ: the flow table counts jiffies
				  * (0: the coarse clock, e.g. HZ unknown) */
	__u64 proto_allow[4];    /* bitmap of allowed IP protocols (bit n = proto n) */
	__u32 max_pkts;          /* N: packets selected per flow */
	__u32 snap_len;          /* L: bytes copied per packet in inline mode */
	__u8  delivery;          /* enum etc_delivery */
	__u8  unselected_drop;   /* tap mode: drop (1) or pass (0) unselected packets */
	__u8  count_all;         /* select the first N packets, payload or not */
	__u8  port_filter;       /* 1: only flows with a port in ETC_MAP_PORTS */
	__u8  cidr_allow;        /* 1: ETC_MAP_CIDRS holds allow entries (allow-list active) */
	__u8  cidr_deny;         /* 1: ETC_MAP_CIDRS holds deny entries */
	__u8  bench_stage;       /* enum etc_bench_stage: 0 in every real use */
	__u8  ring_no_wakeup;    /* inline: submit without waking the reader (a
				  * replay drains after every run; a live reader
				  * that sleeps in epoll needs the wakeups) */
	__u8  meta_all;          /* etc_meta on every tracked packet, not only the
				  * selected ones (replayed frames always get it) */
};

/* For `make bench` only: the program returns XDP_PASS after this stage, so
 * the cost of each stage can be measured. Load-time constant: at 0 the
 * verifier removes the checks, the production program pays nothing. */
enum etc_bench_stage {
	ETC_BENCH_FULL = 0,
	ETC_BENCH_PARSE = 1,   /* parse up to L4 and build the canonical key */
	ETC_BENCH_LOOKUP = 2,  /* ... and look the flow up (no update) */
	ETC_BENCH_COUNT = 3,   /* ... find or create it and count the packet */
	ETC_BENCH_META = 4,    /* ... and write the metadata */
};

/* LPM trie key for CIDR rules: family byte then address, so one trie holds
 * IPv4 and IPv6 rules. prefixlen counts the family byte (8 + CIDR length). */
struct etc_cidr_key {
	__u32 prefixlen;
	__u8  family;     /* 4 or 6 */
	__u8  addr[16];
};

enum etc_cidr_action {
	ETC_CIDR_ALLOW = 1,
	ETC_CIDR_DENY  = 2,
};

/* Per-CPU counters, one slot each. The ABI is this list: new entries go at
 * the end before ETC_CNT_MAX. Invariants the tests check:
 *   RX = SELECTED + NOT_SELECTED + FILTERED + Σ parse failures (PARSE_*)
 *   RX = VERDICT_PASS + VERDICT_DROP + VERDICT_REDIRECT + VERDICT_ABORTED
 * "Not selected" is split by reason (NO_PAYLOAD, BEYOND_N). */
enum etc_counter {
	ETC_CNT_RX = 0,            /* every packet the program saw */
	ETC_CNT_SELECTED,          /* selected: redirected (tap) or copied (inline) */
	ETC_CNT_NOT_SELECTED,      /* tracked in a flow but not selected */
	ETC_CNT_FILTERED,          /* refused by a load-time filter, not tracked */
	ETC_CNT_VERDICT_PASS,
	ETC_CNT_VERDICT_DROP,
	ETC_CNT_VERDICT_REDIRECT,
	ETC_CNT_VERDICT_ABORTED,
	/* parse failures: passed untouched, not tracked */
	ETC_CNT_PARSE_TRUNC_ETH,       /* shorter than an Ethernet header */
	ETC_CNT_PARSE_TRUNC_VLAN,      /* VLAN tag cut short */
	ETC_CNT_PARSE_VLAN_DEPTH,      /* more than ETC_MAX_VLAN_DEPTH tags */
	ETC_CNT_PARSE_NOT_IP,          /* EtherType is neither IPv4 nor IPv6 */
	ETC_CNT_PARSE_TRUNC_IPV4,      /* IPv4 header (with options) cut short */
	ETC_CNT_PARSE_BAD_IPV4,        /* version ≠ 4, IHL < 5 or total length < IHL */
	ETC_CNT_PARSE_TRUNC_IPV6,      /* IPv6 fixed header cut short */
	ETC_CNT_PARSE_BAD_IPV6,        /* version ≠ 6 */
	ETC_CNT_PARSE_TRUNC_IPV6_EXT,  /* IPv6 extension header cut short */
	ETC_CNT_PARSE_IPV6_EXT_DEPTH,  /* more than ETC_MAX_IPV6_EXT extension headers */
	ETC_CNT_PARSE_FRAGMENT,        /* non-first IP fragment: no L4 header */
	ETC_CNT_PARSE_TRUNC_TCP,       /* TCP header (with options) cut short */
	ETC_CNT_PARSE_BAD_TCP,         /* data offset < 5 or beyond the IP payload */
	ETC_CNT_PARSE_TRUNC_UDP,       /* UDP header cut short */
	/* reasons, counted in addition to the totals above */
	ETC_CNT_SKIP_NO_PAYLOAD,       /* not selected: no L4 payload (pure ACK, bare FIN/RST) */
	ETC_CNT_SKIP_BEYOND_N,         /* not selected: flow already has N */
	ETC_CNT_FILTER_PROTO,          /* filtered: IP protocol not allowed */
	ETC_CNT_FILTER_PORT,           /* filtered: neither port in the port set */
	ETC_CNT_FILTER_CIDR_DENY,      /* filtered: an address matched a deny rule */
	ETC_CNT_FILTER_CIDR_NOT_ALLOWED, /* filtered: no address matched an allow rule */
	ETC_CNT_FLOW_NEW,              /* flow entries created */
	ETC_CNT_FLOW_EXPIRED,          /* idle flows restarted */
	ETC_CNT_FLOW_TABLE_FAIL,       /* flow table insert failed: packet passed untracked as NOT_SELECTED */
	ETC_CNT_XSK_NO_SOCKET,         /* tap: selected but no AF_XDP socket on the queue (passed) */
	ETC_CNT_RINGBUF_FULL,          /* inline: selected but the ring buffer was full */
	ETC_CNT_META_FAIL,             /* metadata area could not be grown (driver lacks support) */
	ETC_CNT_MAX
};

/* The single per-CPU slot of ETC_MAP_COUNTERS: one lookup per packet, then
 * plain increments (the slot is this CPU's alone, so no atomics). */
struct etc_counters {
	__u64 cnt[ETC_CNT_MAX];
};

/* User-space side of `etcpipe run`: written about once per second by the
 * running process into the one-entry ARRAY ETC_MAP_RUN_STATS (bound to the
 * program with BPF_PROG_BIND_MAP), so `etcpipe status` shows them beside the
 * kernel counters. The XDP program never touches it. Invariants:
 *   xsk_rx + ring_rx = accepted + no_meta + beyond_h + pending_full
 *   flows_emitted = flows_complete + flows_partial                      */
struct etc_run_stats {
	__u64 pid;               /* 0: no `etcpipe run` has written here */
	__u64 updated_unix_ns;   /* CLOCK_REALTIME of the last write */
	__u32 sockets;           /* AF_XDP sockets open (tap) */
	__u32 zero_copy;         /* sockets bound in zero-copy mode */
	__u64 xsk_rx;            /* descriptors read from the AF_XDP RX rings */
	__u64 ring_rx;           /* inline: ring-buffer records read */
	/* kernel XDP_STATISTICS summed over the sockets: each is a loss */
	__u64 xsk_rx_dropped;    /* dropped by the socket (e.g. frame too big for UMEM) */
	__u64 xsk_rx_ring_full;  /* RX ring full: user space too slow */
	__u64 xsk_fill_empty;    /* fill ring empty when a packet arrived */
	__u64 xsk_invalid_descs;
	/* host-side flow assembly */
	__u64 accepted;          /* packets taken into a pending flow */
	__u64 no_meta;           /* packets without FlowManager metadata (ignored) */
	__u64 beyond_h;          /* selected index ≥ H (the program's N > H) */
	__u64 pending_full;      /* dropped: the pending-flow table was full */
	__u64 flows_pending;
	__u64 flows_complete;    /* emitted with H packets */
	__u64 flows_partial;     /* emitted with fewer: flow timeout or shutdown */
	__u64 flows_emitted;
	__u64 batches;           /* extractor calls */
	__u64 batch_packets;
	__u64 batch_p50_us;      /* extractor + output time per batch, since start */
	__u64 batch_p99_us;
	__u64 batch_max_us;
};

#endif /* ETCPIPE_FLOWMGR_H */
