/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * Everything the kernel side shares with user space: records, enums, counters and config.
 *
 * Python never keeps a hand copy of these enums: it reads them from the BTF of the built
 * object (kubepulse.kernel.libbpf.Btf). The records' numpy mirrors (MIRRORS in
 * kubepulse.probes.tcp_conn, .dns and .drops) are checked field by field against their BTF
 * by tests/unit/probes/test_layout.py and tests/unit/probes/test_layout_dns_drops.py.
 */
#ifndef KUBEPULSE_EVENTS_H
#define KUBEPULSE_EVENTS_H

#define KP_COMM_LEN 16

/* How a connection ended. Exactly one per close record. */
enum kp_outcome {
	KP_OUTCOME_NONE = 0, /* syn_retransmit warnings: the connection is still open */
	KP_OUTCOME_ESTABLISHED_CLOSED = 1,
	KP_OUTCOME_REFUSED = 2,
	KP_OUTCOME_TIMEOUT = 3,
	KP_OUTCOME_UNREACHABLE = 4,
	KP_OUTCOME_RESET_SENT = 5,
	KP_OUTCOME_RESET_RECEIVED = 6,
	KP_OUTCOME_LOCAL_ERROR = 7,
	KP_OUTCOME_ABORTED_OTHER = 8,
};

enum kp_kind {
	KP_KIND_CLOSE = 1,          /* the connection ended; outcome says how */
	KP_KIND_SYN_RETRANSMIT = 2, /* first SYN retransmit: the peer has not answered in ~1 s */
	KP_KIND_LOCAL_ERROR = 3,    /* connect() failed before any packet left this host */
};

enum kp_direction {
	KP_DIRECTION_UNKNOWN = 0, /* opened before the agent started */
	KP_DIRECTION_OUTBOUND = 1,
	KP_DIRECTION_INBOUND = 2,
};

enum kp_flag {
	KP_FLAG_TRACKED = 1,     /* seen from its first state change, so start/pid are real */
	KP_FLAG_RST_RX = 2,      /* tcp_receive_reset fired on this socket */
	KP_FLAG_RST_TX = 4,      /* tcp_send_reset fired on this socket */
	KP_FLAG_ESTABLISHED = 8, /* it reached ESTABLISHED */
	KP_FLAG_FIN_RX = 16,     /* the peer's FIN arrived */
};

/* Per-CPU counters (index into the kp_counters map). */
enum kp_counter {
	KP_COUNTER_RINGBUF_FULL = 0,    /* records lost in the kernel: ring buffer reserve failed */
	KP_COUNTER_UNTRACKED_CLOSE = 1, /* closes of sockets not in kp_socks (pre-existing/evicted) */
	KP_COUNTER_RETRANSMITS = 2,     /* tcp_retransmit_skb hits */
	KP_COUNTER_SYN_RETRANSMITS = 3,
	KP_COUNTER_RESETS_RX = 4,
	KP_COUNTER_RESETS_TX = 5,
	KP_COUNTER_RECORDS = 6,         /* records submitted to the ring buffer */
	KP_COUNTER_CONNECT_PENDING_LOST = 7, /* local connect failure whose errno never came */
	KP_COUNTER_MAX = 8,
};

/* One record per connection (kind CLOSE / LOCAL_ERROR) or early warning (SYN_RETRANSMIT).
 * A single fixed size, so that a batch in the ring buffer is a strided array. */
struct kp_conn_event {
	__u64 ts_ns;              /* CLOCK_MONOTONIC */
	__u64 start_ns;           /* first SYN (outbound) or SYN_RECV (inbound); 0 if untracked */
	__u64 connect_latency_ns; /* SYN_SENT -> ESTABLISHED, active opens only */
	__u64 duration_ns;        /* start -> this record; 0 if untracked */
	__u64 cgroup_id;          /* cgroup v2 id of the socket's cgroup */
	__u64 bytes_sent;         /* data bytes the peer acked (bytes_acked less SYN and FIN) */
	__u64 bytes_received;     /* data bytes received (bytes_received less the peer's FIN) */
	__u32 tgid;
	__u32 netns_ino;
	__u32 srtt_established_us;
	__u32 srtt_closed_us;
	__u32 retransmits;        /* tcp_sock.total_retrans at close */
	__u32 segs_out;
	__u32 segs_in;
	__u16 syn_retransmits;
	__u16 error;              /* errno: sk_err, or connect()'s return for local errors */
	__u16 sport;              /* host byte order */
	__u16 dport;              /* host byte order */
	__u8 family;              /* 4 or 6; v4-mapped IPv6 is reported as 4 */
	__u8 kind;                /* enum kp_kind */
	__u8 outcome;             /* enum kp_outcome */
	__u8 direction;           /* enum kp_direction */
	__u8 state_before;        /* TCP state the socket left */
	__u8 flags;               /* enum kp_flag bits */
	__u8 pad[2];
	__u8 saddr[16];           /* IPv4 in the first 4 bytes */
	__u8 daddr[16];
	char comm[KP_COMM_LEN];
	__u32 reserved; /* explicit tail padding: no implicit holes in shared structs */
};

/* What the kernel keeps per live socket (LRU: bounded; an eviction only costs the pid/start of
 * that one record, which is then marked untracked and counted). User space reads this map in
 * batches for live gauges: established connections per edge, retransmits on open ones. */
struct kp_sock {
	__u64 start_ns;
	__u64 established_ns;
	__u64 cgroup_id;
	__u32 tgid;
	__u32 netns_ino;
	__u32 srtt_established_us;
	__u32 retransmits;     /* tcp_retransmit_skb hits while open */
	__u16 syn_retransmits;
	__u16 sport;
	__u16 dport;
	__u8 family;
	__u8 direction;
	__u8 state;            /* current TCP state */
	__u8 flags;
	__u8 pad[2];
	__u8 saddr[16];
	__u8 daddr[16];
	char comm[KP_COMM_LEN];
	__u32 reserved;
};

/* Enums only used as constants are not emitted into BTF; one read-only global of this type
 * anchors them there, so user space can read their names from the object (no hand copy). */
struct kp_btf_anchor {
	enum kp_outcome outcome;
	enum kp_kind kind;
	enum kp_direction direction;
	enum kp_flag flag;
	enum kp_counter counter;
};

/* Read-only config, set by the loader before load. */
struct kp_tcp_config {
	__u32 wakeup_bytes; /* wake the reader only once this much is queued (it also polls) */
	__u32 pad;
};

/* ---- dns: one record per DNS query (bpf/dns.bpf.c) ---------------------------------------- */

#define KP_DNS_NAME_LEN 256 /* the longest legal name in wire format is 255 bytes */

enum kp_dns_kind {
	KP_DNS_KIND_ANSWER = 1,  /* a response matched its query */
	KP_DNS_KIND_TIMEOUT = 2, /* no response before the deadline (made by user space's sweep) */
};

enum kp_dns_flag {
	KP_DNS_FLAG_TCP = 1,       /* DNS over TCP (the message after the 2-byte length) */
	KP_DNS_FLAG_TRUNCATED = 2, /* the answer had TC set: the client will retry over TCP */
};

/* Per-CPU counters (index into the kp_dns_counters map). */
enum kp_dns_counter {
	KP_DNS_COUNTER_RINGBUF_FULL = 0, /* records lost in the kernel: ring buffer reserve failed */
	KP_DNS_COUNTER_QUERIES = 1,      /* well-formed queries seen leaving a socket */
	KP_DNS_COUNTER_ANSWERS = 2,      /* responses matched to a pending query */
	KP_DNS_COUNTER_MALFORMED = 3,    /* port-53 packets that are not valid DNS: skipped */
	KP_DNS_COUNTER_UNMATCHED = 4,    /* responses with no pending query (late, or evicted) */
	KP_DNS_COUNTER_RETRIES = 5,      /* a query whose key was already pending (resend) */
	KP_DNS_COUNTER_NOT_QUERY = 6,    /* opcode other than QUERY (NOTIFY, UPDATE): ignored */
	KP_DNS_COUNTER_RECORDS = 7,      /* records submitted to the ring buffer */
	KP_DNS_COUNTER_MAX = 8,
};

/* One record per query. Answers come from the kernel; timeouts are built by user space from
 * the same struct, taken out of kp_dns_pending once the deadline passed. Fixed size, so a
 * batch in the ring buffer is a strided array. */
struct kp_dns_event {
	__u64 ts_ns;       /* CLOCK_MONOTONIC: the answer, or when the timeout was declared */
	__u64 query_ts_ns; /* the query left the client's socket */
	__u64 latency_ns;  /* answer - query; 0 for timeouts */
	__u64 cgroup_id;   /* cgroup v2 id of the client's socket */
	__u64 sock_cookie; /* the client socket (unique across network namespaces) */
	__u32 netns_ino;   /* network namespace of the process that sent the query */
	__u32 tgid;        /* that process (0 if sent from softirq, e.g. a TCP retransmit) */
	__u16 client_port; /* host byte order */
	__u16 server_port;
	__u16 txid;
	__u16 qtype;
	__u16 qclass;
	__u16 name_len;    /* bytes of qname used, wire format, including the root label */
	__u8 family;       /* 4 or 6 */
	__u8 kind;         /* enum kp_dns_kind */
	__u8 rcode;        /* header RCODE of the answer (0 for timeouts) */
	__u8 flags;        /* enum kp_dns_flag bits */
	__u16 answers;     /* ANCOUNT of the answer */
	__u16 pad;
	__u8 client_addr[16]; /* IPv4 in the first 4 bytes */
	__u8 server_addr[16];
	char comm[KP_COMM_LEN];
	__u8 qname[KP_DNS_NAME_LEN]; /* wire format, validated by the kernel, zero after name_len */
	__u32 reserved;
};

/* What matches a response to its query: the socket (hence the network namespace and the
 * client address and port), the server, and the transaction id. */
struct kp_dns_key {
	__u64 sock_cookie;
	__u8 server_addr[16];
	__u16 server_port;
	__u16 client_port;
	__u16 txid;
	__u16 pad;
};

struct kp_dns_btf_anchor {
	enum kp_dns_kind kind;
	enum kp_dns_flag flag;
	enum kp_dns_counter counter;
};

/* ---- drops: kernel packet drops, counted in the kernel (bpf/drops.bpf.c) ------------------- */

enum kp_drop_counter {
	KP_DROP_COUNTER_DROPS = 0,     /* every skb:kfree_skb hit */
	KP_DROP_COUNTER_NEW_KEYS = 1,  /* entries created in kp_drops (LRU churn shows here) */
	KP_DROP_COUNTER_NO_HEADER = 2, /* drops without a readable IPv4/IPv6 header */
	KP_DROP_COUNTER_LISTEN_FULL = 3, /* SYNs that reached a listener with a full accept queue */
	KP_DROP_COUNTER_MAX = 4,
};

/* Aggregation key. Addresses and ports are zero where the headers do not allow them. */
struct kp_drop_key {
	__u32 netns_ino; /* the device's namespace, else the socket's; 0 if neither */
	__u32 reason;    /* enum skb_drop_reason of the running kernel (names from its BTF) */
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport;     /* host byte order; TCP and UDP only */
	__u16 dport;
	__u16 ethertype; /* skb->protocol, host byte order */
	__u8 family;     /* 4, 6, or 0 */
	__u8 protocol;   /* IP protocol (6 TCP, 17 UDP, 1 ICMP, ...) */
};

/* Cumulative per key: user space diffs successive snapshots. */
struct kp_drop_value {
	__u64 packets;
	__u64 bytes;
	__u64 first_ns;
	__u64 last_ns;
};

struct kp_drop_btf_anchor {
	enum kp_drop_counter counter;
};

/* Read-only config of dns.bpf.c, set by the loader before load. */
struct kp_dns_config {
	__u32 wakeup_bytes; /* wake the reader only once this much is queued (it also polls) */
	__u32 pad;
};

#endif
