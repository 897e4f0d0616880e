// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * dns: one record per DNS query, matched to its answer in the kernel.
 *
 *   cgroup_skb/egress   on the cgroup v2 root: queries leaving a client socket (dport 53)
 *   cgroup_skb/ingress  on the cgroup v2 root: answers reaching it (sport 53)
 *
 * Attached to the root cgroup, the programs run for every socket of every process on the
 * node, in every network namespace, including pods created after the agent started: no
 * per-veth attach and no netlink watch (docs/probes.md has the comparison with TC).
 *
 * The client's view only: a query is taken where it leaves the client's socket and its
 * answer where it reaches that socket, so a resolver on the same node (whose sockets also
 * run these programs) is not counted twice, and the latency is what the application saw.
 *
 * A query is kept in kp_dns_pending (LRU) under (socket cookie, server, server port, client
 * port, txid). The socket cookie is unique across network namespaces, so it stands for the
 * (netns, client address) of the key. The answer claims the entry by deleting it; the
 * user-space sweep claims expired ones the same way, so each query yields exactly one record:
 * an answer or a timeout.
 *
 * Parsing is bounded: the header, then at most 128 labels within 255 bytes of question name.
 * Anything that does not parse as a DNS message is skipped and counted (malformed); a
 * question name with a compression pointer, a label over 63 bytes, or no room for its
 * type and class is malformed. TCP: only a message that starts a segment (after its 2-byte
 * length) is parsed; pipelined messages later in a segment are not seen.
 */
#include "kubepulse/kernel_types.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "kubepulse/events.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

const volatile struct kp_dns_btf_anchor kp_btf_anchor = {};

const volatile struct kp_dns_config kp_cfg = {
	.wakeup_bytes = 256 * 1024,
};

#define DNS_PORT 53
#define DNS_HDR_LEN 12
#define QBUF_LEN (KP_DNS_NAME_LEN + 8) /* the name, its type and class, and slack */

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 * 1024 * 1024);
} kp_dns_rb SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct kp_dns_key);
	__type(value, struct kp_dns_event);
} kp_dns_pending SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, KP_DNS_COUNTER_MAX);
	__type(key, __u32);
	__type(value, __u64);
} kp_dns_counters SEC(".maps");

/* Scratch: the event (376 bytes) and the question buffer do not fit the 512-byte stack. */
struct kp_dns_scratch {
	struct kp_dns_event e;
	__u8 q[QBUF_LEN];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct kp_dns_scratch);
} kp_dns_scratch SEC(".maps");

static __always_inline void count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&kp_dns_counters, &idx);
	if (v)
		*v += 1;
}

/* Where the DNS message is, and who talks to whom. */
struct pkt {
	__u32 dns_off;
	__u16 sport;
	__u16 dport;
	__u8 family;
	__u8 tcp;
	__u8 saddr[16];
	__u8 daddr[16];
};

/* 1: a port-53 packet with a DNS payload to look at; 0: not ours (the fast path). */
static __always_inline int parse_l3l4(struct __sk_buff *skb, struct pkt *p, bool egress)
{
	__u8 vhl = 0, proto = 0;
	__u32 l4;

	if (bpf_skb_load_bytes(skb, 0, &vhl, 1))
		return 0;
	if ((vhl >> 4) == 4) {
		__u16 frag = 0;

		if (bpf_skb_load_bytes(skb, 9, &proto, 1) ||
		    bpf_skb_load_bytes(skb, 6, &frag, 2))
			return 0;
		if (bpf_ntohs(frag) & 0x3fff) /* MF or a fragment offset: no L4 header here */
			return 0;
		l4 = (vhl & 0xf) * 4;
		p->family = 4;
		if (bpf_skb_load_bytes(skb, 12, p->saddr, 4) ||
		    bpf_skb_load_bytes(skb, 16, p->daddr, 4))
			return 0;
	} else if ((vhl >> 4) == 6) {
		/* No extension-header walk: DNS does not use them. */
		if (bpf_skb_load_bytes(skb, 6, &proto, 1))
			return 0;
		l4 = 40;
		p->family = 6;
		if (bpf_skb_load_bytes(skb, 8, p->saddr, 16) ||
		    bpf_skb_load_bytes(skb, 24, p->daddr, 16))
			return 0;
	} else {
		return 0;
	}
	if (proto != IPPROTO_UDP && proto != IPPROTO_TCP)
		return 0;
	__u16 ports[2];
	if (bpf_skb_load_bytes(skb, l4, ports, 4))
		return 0;
	p->sport = bpf_ntohs(ports[0]);
	p->dport = bpf_ntohs(ports[1]);
	if (egress ? p->dport != DNS_PORT : p->sport != DNS_PORT)
		return 0;
	if (proto == IPPROTO_UDP) {
		p->tcp = 0;
		p->dns_off = l4 + 8;
		return 1;
	}
	__u8 doff = 0;
	if (bpf_skb_load_bytes(skb, l4 + 12, &doff, 1))
		return 0;
	p->tcp = 1;
	p->dns_off = l4 + (doff >> 4) * 4 + 2;
	/* A segment without payload (SYN, a bare ACK, FIN) is not a message: not malformed. */
	if (skb->len <= p->dns_off - 2)
		return 0;
	return 1;
}

struct dns_hdr {
	__u16 id;
	__u16 flags;
	__u16 qdcount;
	__u16 ancount;
	__u16 nscount;
	__u16 arcount;
};

static __always_inline void fill_task(struct kp_dns_event *e)
{
	struct task_struct___kp *t = (void *)bpf_get_current_task();

	if (!t)
		return;
	e->tgid = BPF_CORE_READ(t, tgid);
	e->netns_ino = BPF_CORE_READ(t, nsproxy, net_ns, ns.inum);
	BPF_CORE_READ_STR_INTO(&e->comm, t, comm);
}

static __always_inline void on_query(struct __sk_buff *skb, const struct pkt *p)
{
	struct dns_hdr h;
	__u32 zero = 0;

	if (bpf_skb_load_bytes(skb, p->dns_off, &h, sizeof(h))) {
		count(KP_DNS_COUNTER_MALFORMED);
		return;
	}
	__u16 flags = bpf_ntohs(h.flags);
	if (flags & 0x8000) /* QR set on a packet to port 53: a resolver answering, not ours */
		return;
	if ((flags >> 11) & 0xf) {
		count(KP_DNS_COUNTER_NOT_QUERY);
		return;
	}
	if (bpf_ntohs(h.qdcount) != 1) {
		count(KP_DNS_COUNTER_MALFORMED);
		return;
	}

	struct kp_dns_scratch *s = bpf_map_lookup_elem(&kp_dns_scratch, &zero);
	if (!s)
		return;
	__u32 qoff = p->dns_off + DNS_HDR_LEN;
	if (skb->len <= qoff) {
		count(KP_DNS_COUNTER_MALFORMED);
		return;
	}
	__u64 avail = skb->len - qoff;
	if (avail > QBUF_LEN)
		avail = QBUF_LEN;
	if (avail < 5) { /* the root name alone needs 1 byte, then type and class */
		count(KP_DNS_COUNTER_MALFORMED);
		return;
	}
	if (bpf_skb_load_bytes(skb, qoff, s->q, avail)) {
		count(KP_DNS_COUNTER_MALFORMED);
		return;
	}

	/* Walk the labels: at most 128 of them in 255 bytes. The index is masked as well as
	 * checked: the mask is what the verifier can see through the compiler's rewrites. */
	__u64 pos = 0, name_len = 0;
	for (int i = 0; i < 128; i++) {
		if (pos >= avail || pos >= KP_DNS_NAME_LEN - 1)
			break;
		__u8 l = s->q[pos & 0xff];
		if (l == 0) {
			name_len = pos + 1;
			break;
		}
		if (l & 0xc0) /* a compression pointer (or reserved bits) in a question */
			break;
		pos += l + 1;
	}
	if (name_len == 0 || name_len + 4 > avail || name_len > KP_DNS_NAME_LEN - 1) {
		count(KP_DNS_COUNTER_MALFORMED);
		return;
	}

	struct kp_dns_event *e = &s->e;
	__builtin_memset(e, 0, sizeof(*e));
	/* Copy exactly the name so that qname is zero after it. */
	if (bpf_skb_load_bytes(skb, qoff, e->qname, name_len)) {
		count(KP_DNS_COUNTER_MALFORMED);
		return;
	}
	__u64 t = name_len & 0xff; /* <= 255 already; the mask tells the verifier */
	e->qtype = ((__u16)s->q[t] << 8) | s->q[t + 1];
	e->qclass = ((__u16)s->q[t + 2] << 8) | s->q[t + 3];
	e->name_len = name_len;
	e->query_ts_ns = bpf_ktime_get_ns();
	e->cgroup_id = bpf_skb_cgroup_id(skb);
	e->sock_cookie = bpf_get_socket_cookie(skb);
	e->client_port = p->sport;
	e->server_port = p->dport;
	e->txid = bpf_ntohs(h.id);
	e->family = p->family;
	e->flags = p->tcp ? KP_DNS_FLAG_TCP : 0;
	__builtin_memcpy(e->client_addr, p->saddr, 16);
	__builtin_memcpy(e->server_addr, p->daddr, 16);
	fill_task(e);

	struct kp_dns_key k = {};
	k.sock_cookie = e->sock_cookie;
	__builtin_memcpy(k.server_addr, p->daddr, 16);
	k.server_port = p->dport;
	k.client_port = p->sport;
	k.txid = e->txid;
	/* NOEXIST: a resend of the same query keeps the first send's time (what the caller
	 * waited for). */
	if (bpf_map_update_elem(&kp_dns_pending, &k, e, BPF_NOEXIST))
		count(KP_DNS_COUNTER_RETRIES);
	else
		count(KP_DNS_COUNTER_QUERIES);
}

static __always_inline void on_answer(struct __sk_buff *skb, const struct pkt *p)
{
	struct dns_hdr h;

	if (bpf_skb_load_bytes(skb, p->dns_off, &h, sizeof(h))) {
		count(KP_DNS_COUNTER_MALFORMED);
		return;
	}
	__u16 flags = bpf_ntohs(h.flags);
	if (!(flags & 0x8000)) /* a query arriving from port 53 (resolver to resolver) */
		return;

	struct kp_dns_key k = {};
	k.sock_cookie = bpf_get_socket_cookie(skb);
	__builtin_memcpy(k.server_addr, p->saddr, 16);
	k.server_port = p->sport;
	k.client_port = p->dport;
	k.txid = bpf_ntohs(h.id);

	struct kp_dns_event *q = bpf_map_lookup_elem(&kp_dns_pending, &k);
	if (!q) {
		count(KP_DNS_COUNTER_UNMATCHED);
		return;
	}
	struct kp_dns_event *e = bpf_ringbuf_reserve(&kp_dns_rb, sizeof(*e), 0);
	if (!e) {
		/* Still claim the entry, or the sweep would report this answered query as a
		 * timeout. */
		bpf_map_delete_elem(&kp_dns_pending, &k);
		count(KP_DNS_COUNTER_RINGBUF_FULL);
		return;
	}
	__builtin_memcpy(e, q, sizeof(*e));
	/* Claim: whoever deletes the entry (this answer, or the user-space sweep after the
	 * deadline) reports it; the other one reports nothing. */
	if (bpf_map_delete_elem(&kp_dns_pending, &k)) {
		bpf_ringbuf_discard(e, BPF_RB_NO_WAKEUP);
		count(KP_DNS_COUNTER_UNMATCHED);
		return;
	}
	__u64 now = bpf_ktime_get_ns();
	e->ts_ns = now;
	e->latency_ns = now > e->query_ts_ns ? now - e->query_ts_ns : 1;
	e->kind = KP_DNS_KIND_ANSWER;
	e->rcode = flags & 0xf;
	if (flags & 0x0200)
		e->flags |= KP_DNS_FLAG_TRUNCATED;
	e->answers = bpf_ntohs(h.ancount);
	count(KP_DNS_COUNTER_ANSWERS);
	count(KP_DNS_COUNTER_RECORDS);
	bpf_ringbuf_submit(e, bpf_ringbuf_query(&kp_dns_rb, BPF_RB_AVAIL_DATA) >= kp_cfg.wakeup_bytes
				      ? BPF_RB_FORCE_WAKEUP
				      : BPF_RB_NO_WAKEUP);
}

SEC("cgroup_skb/egress")
int kp_dns_egress(struct __sk_buff *skb)
{
	struct pkt p = {};

	if (parse_l3l4(skb, &p, true))
		on_query(skb, &p);
	return 1; /* observe only: always let the packet through */
}

SEC("cgroup_skb/ingress")
int kp_dns_ingress(struct __sk_buff *skb)
{
	struct pkt p = {};

	if (parse_l3l4(skb, &p, false))
		on_answer(skb, &p);
	return 1;
}
