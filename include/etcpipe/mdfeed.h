/* Market-data feed filter kernel/user ABI: the one declaration of every
 * struct, enum and map name shared by bpf/mdfeed.bpf.c and the loader
 * (loader/mdfeed/). Valid C and C++.
 *
 * The program selects the feed traffic of an interface (UDP by destination
 * port, UDP to multicast groups, mirrored TCP of configured exchange
 * servers), writes struct md_meta in front of each selected packet and
 * redirects it to the AF_XDP socket of its RX queue. Everything else passes.
 *
 * Changing a layout here changes the ABI: bump MD_META_VERSION for
 * struct md_meta; counters are only ever appended. */
#ifndef ETCPIPE_MDFEED_H
#define ETCPIPE_MDFEED_H

#include <linux/types.h>

/* Program and map names as the loader and `etcpipe status` look them up
 * (kernel object names: at most 15 characters). No map is pinned: the
 * process that attaches the program owns it and its sockets. */
#define MD_PROG_FEED        "xdp_mdfeed"
#define MD_PROG_FEED_SB     "xdp_mdfeed_sb"   /* section "xdp" twin for `ip link` */
#define MD_MAP_COUNTERS     "md_counters"
#define MD_MAP_XSKS         "md_xsks"
#define MD_MAP_UDP_PORTS    "md_udp_ports"
#define MD_MAP_GROUPS       "md_groups"
#define MD_MAP_TCP_SERVERS  "md_tcp_servers"

#define MD_MAX_QUEUES       64    /* XSKMAP slots: RX queues 0..63 */
#define MD_MAX_UDP_PORTS    1024
#define MD_MAX_GROUPS       1024
#define MD_MAX_TCP_SERVERS  256
#define MD_MAX_VLAN_DEPTH   2

/* ---- filter maps -----------------------------------------------------------
 * Filled by the loader before the program is loaded and never changed
 * afterwards. Each value is the rule id that md_meta.rule reports: the
 * 1-based position of the entry in its list of the loader's FeedFilter. */

/* MD_MAP_UDP_PORTS: key = UDP destination port (__u16, host order). */

/* MD_MAP_GROUPS and MD_MAP_TCP_SERVERS: an address and a port.
 * IPv4 addresses occupy addr[0..3], the rest is zero. port is in host
 * order; 0 means any port (a group or server given without a port). */
struct md_endpoint_key {
	__u8  family;     /* 4 or 6 */
	__u8  pad;
	__u16 port;
	__u8  addr[16];   /* network order */
};

struct md_rule {
	__u32 id;         /* 1-based position in the loader's list */
};

/* ---- metadata --------------------------------------------------------------
 * Written with bpf_xdp_adjust_meta just in front of every selected packet
 * (also when the packet then passes for want of a socket). An AF_XDP reader
 * finds it at data - sizeof(struct md_meta); magic and version tell it from
 * stale headroom. 32 bytes: the limit many kernels put on XDP metadata
 * (6.18 accepted more in our tests; 32 is safe everywhere). */
#define MD_META_MAGIC    0x4d444631u  /* "MDF1" */
#define MD_META_VERSION  1

enum md_match {
	MD_MATCH_NONE            = 0,
	MD_MATCH_UDP_PORT        = 1, /* UDP destination port in MD_MAP_UDP_PORTS */
	MD_MATCH_GROUP           = 2, /* UDP to a multicast group in MD_MAP_GROUPS */
	MD_MATCH_TCP_FROM_SERVER = 3, /* TCP whose source is a server (exchange → us) */
	MD_MATCH_TCP_TO_SERVER   = 4, /* TCP to a server (us → exchange; config flag) */
};

enum md_meta_flags {
	MD_META_MULTICAST = 1 << 0, /* destination address is multicast */
	MD_META_VLAN      = 1 << 1, /* the frame carries at least one VLAN tag */
};

struct md_meta {
	__u64 rx_ns;        /* bpf_ktime_get_ns() (CLOCK_MONOTONIC) when the program started */
	__u32 rule;         /* id of the filter entry that matched (struct md_rule) */
	__u16 payload_off;  /* bytes from the frame start to the L4 payload */
	__u16 payload_len;  /* L4 payload bytes per the IP header (may exceed the frame) */
	__u16 port;         /* UDP: destination port; TCP: the server's port (host order) */
	__u8  match;        /* enum md_match */
	__u8  family;       /* 4 or 6 */
	__u16 vlan[MD_MAX_VLAN_DEPTH]; /* VIDs outer→inner; 0 = untagged or VID 0 (MD_META_VLAN tells) */
	__u16 version;      /* MD_META_VERSION */
	__u16 flags;        /* enum md_meta_flags */
	__u32 magic;        /* MD_META_MAGIC; last, so it sits next to the packet */
};

/* ---- load-time configuration -----------------------------------------------
 * Placed in .rodata as `const volatile` and set by the loader before load,
 * so the verifier prunes the disabled match kinds. */
struct md_feed_config {
	__u8 match_udp_ports;   /* 1: look UDP destination ports up in MD_MAP_UDP_PORTS */
	__u8 match_groups;      /* 1: look multicast destinations up in MD_MAP_GROUPS */
	__u8 match_tcp;         /* 1: look TCP sources up in MD_MAP_TCP_SERVERS */
	__u8 tcp_to_server;     /* 1: also TCP destinations (both directions of the mirror) */
	__u8 pad[4];
};

/* ---- counters --------------------------------------------------------------
 * Per-CPU, one slot each. The ABI is this list: new entries go at the end
 * before MD_CNT_MAX. Every packet ends in exactly one outcome:
 *   RX = REDIRECT_UDP + REDIRECT_TCP + PASS_NOT_FEED + PASS_NO_SOCKET
 *        + Σ parse outcomes (MD_CNT_PARSE_FIRST..MD_CNT_PARSE_LAST, PASS_FRAGMENT included)
 *   RX = VERDICT_PASS + VERDICT_DROP + VERDICT_REDIRECT + VERDICT_ABORTED
 *   VERDICT_REDIRECT = REDIRECT_UDP + REDIRECT_TCP
 * and every feed packet (redirected or not) is counted by what matched:
 *   MATCH_UDP_PORT + MATCH_GROUP + MATCH_TCP_FROM_SERVER + MATCH_TCP_TO_SERVER
 *        = REDIRECT_UDP + REDIRECT_TCP + PASS_NO_SOCKET
 *   META_FAIL ≤ that sum
 * The program never drops or aborts: VERDICT_DROP and VERDICT_ABORTED stay 0. */
enum md_counter {
	MD_CNT_RX = 0,              /* every packet the program saw */
	MD_CNT_REDIRECT_UDP,        /* UDP feed packet redirected to its queue's AF_XDP socket */
	MD_CNT_REDIRECT_TCP,        /* TCP feed segment redirected to its queue's AF_XDP socket */
	MD_CNT_PASS_NOT_FEED,       /* parsed, matched no filter: passed */
	MD_CNT_PASS_NO_SOCKET,      /* feed packet, but no AF_XDP socket on its queue: passed */
	MD_CNT_VERDICT_PASS,
	MD_CNT_VERDICT_DROP,
	MD_CNT_VERDICT_REDIRECT,
	MD_CNT_VERDICT_ABORTED,
	/* parse outcomes, one per enum parse_err (bpf/include/parsing.h) in its
	 * order: the packet cannot be matched and is passed untouched */
	MD_CNT_PARSE_TRUNC_ETH,       /* shorter than an Ethernet header */
	MD_CNT_PARSE_TRUNC_VLAN,      /* VLAN tag cut short */
	MD_CNT_PARSE_VLAN_DEPTH,      /* more than MD_MAX_VLAN_DEPTH tags */
	MD_CNT_PARSE_NOT_IP,          /* EtherType is neither IPv4 nor IPv6 */
	MD_CNT_PARSE_TRUNC_IPV4,      /* IPv4 header (with options) cut short */
	MD_CNT_PARSE_BAD_IPV4,        /* version ≠ 4, IHL < 5 or total length < IHL */
	MD_CNT_PARSE_TRUNC_IPV6,      /* IPv6 fixed header cut short */
	MD_CNT_PARSE_BAD_IPV6,        /* version ≠ 6, or extensions beyond the payload length */
	MD_CNT_PARSE_TRUNC_IPV6_EXT,  /* IPv6 extension header cut short */
	MD_CNT_PARSE_IPV6_EXT_DEPTH,  /* more than 6 IPv6 extension headers */
	MD_CNT_PASS_FRAGMENT,         /* non-first IP fragment: no L4 header to match (not an error) */
	MD_CNT_PARSE_TRUNC_TCP,       /* TCP header (with options) cut short */
	MD_CNT_PARSE_BAD_TCP,         /* data offset < 5 or beyond the IP payload */
	MD_CNT_PARSE_TRUNC_UDP,       /* UDP header cut short, or IP payload shorter than it */
	/* what matched, counted in addition to the outcomes above */
	MD_CNT_MATCH_UDP_PORT,        /* feed: UDP destination port */
	MD_CNT_MATCH_GROUP,           /* feed: UDP to a configured multicast group */
	MD_CNT_MATCH_TCP_FROM_SERVER, /* feed: TCP from a configured server */
	MD_CNT_MATCH_TCP_TO_SERVER,   /* feed: TCP to a configured server */
	MD_CNT_META_FAIL,             /* feed packet sent on without md_meta (metadata area not grown) */
	MD_CNT_MAX
};

#define MD_CNT_PARSE_FIRST MD_CNT_PARSE_TRUNC_ETH
#define MD_CNT_PARSE_LAST  MD_CNT_PARSE_TRUNC_UDP

/* The single per-CPU slot of MD_MAP_COUNTERS: one lookup per packet, then
 * plain increments (the slot is this CPU's alone, so no atomics). */
struct md_counters {
	__u64 cnt[MD_CNT_MAX];
};

#endif /* ETCPIPE_MDFEED_H */
