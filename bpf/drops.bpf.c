// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * drops: every packet the kernel drops, counted in the kernel by
 * (netns, reason, protocol, addresses, ports).
 *
 *   skb:kfree_skb   fires for every freed skb that was *dropped* (consume_skb has its own
 *                   tracepoint since 5.x, and SKB_CONSUMED goes there since 6.3), with the
 *                   kernel's enum skb_drop_reason.
 *
 * A drop storm costs one hash lookup and two atomic adds per packet (one map insert the first
 * time a key is seen), and no ring record: user space reads the map as a snapshot and diffs
 * cumulative counts. The map is an LRU, so a storm of distinct keys evicts old keys instead of
 * failing; kp_drop_counters[new_keys] shows that churn.
 *
 *   cgroup_skb/ingress  on the cgroup v2 root (kp_listen_full): a SYN reaching a TCP listener
 *                   whose accept queue is already full. The kernel
 *                   turns such a SYN away with consume_skb (tcp_conn_request: "goto drop" after
 *                   sk_acceptq_is_full), so kfree_skb never sees the commonest listen overflow
 *                   of all; this program counts it under SKB_DROP_REASON_TCP_LISTEN_OVERFLOW,
 *                   with the packet's addresses, in the same map. Ingress cgroup programs run
 *                   just before the listener's own processing (tcp_filter), with the
 *                   listener as skb->sk, so the queue it reads is the one the kernel checks.
 *                   It only observes: it always lets the packet through. (The handshake's
 *                   last ACK at a full queue is a kfree_skb with that reason already, so it
 *                   is left to the tracepoint and never counted twice.)
 *
 * Headers are read where the skb's offsets allow: the network header for IPv4/IPv6, and TCP
 * or UDP ports from the transport header (or right after a plain IPv4/IPv6 header when the
 * transport offset is not set yet). Anything else is counted under its reason with zero
 * addresses.
 */
#include "kubepulse/kernel_types.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "kubepulse/events.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

const volatile struct kp_drop_btf_anchor kp_btf_anchor = {};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct kp_drop_key);
	__type(value, struct kp_drop_value);
} kp_drops SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, KP_DROP_COUNTER_MAX);
	__type(key, __u32);
	__type(value, __u64);
} kp_drop_counters SEC(".maps");

static __always_inline void count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&kp_drop_counters, &idx);
	if (v)
		*v += 1;
}

/* One more packet under k: one lookup and two atomic adds, one insert the first time. */
static __always_inline void add_drop(const struct kp_drop_key *k, __u32 len)
{
	__u64 now = bpf_ktime_get_ns();
	struct kp_drop_value *v = bpf_map_lookup_elem(&kp_drops, k);

	if (!v) {
		struct kp_drop_value nv = {.packets = 1, .bytes = len, .first_ns = now,
					   .last_ns = now};

		if (bpf_map_update_elem(&kp_drops, k, &nv, BPF_NOEXIST) == 0) {
			count(KP_DROP_COUNTER_NEW_KEYS);
			return;
		}
		/* Another CPU inserted the same key in between. */
		v = bpf_map_lookup_elem(&kp_drops, k);
		if (!v)
			return;
	}
	__sync_fetch_and_add(&v->packets, 1);
	__sync_fetch_and_add(&v->bytes, len);
	v->last_ns = now;
}

static __always_inline __u32 net_inum(const struct net *net)
{
	return net ? BPF_CORE_READ(net, ns.inum) : 0;
}

/* The device's namespace (where the packet was), else the socket's. */
static __always_inline __u32 skb_netns(const struct sk_buff *skb, const void *rx_sk)
{
	const struct net_device *dev = BPF_CORE_READ(skb, dev);

	if (dev)
		return net_inum(BPF_CORE_READ(dev, nd_net.net));
	const struct sock *sk = BPF_CORE_READ(skb, sk);
	if (!sk)
		sk = rx_sk;
	if (sk)
		return net_inum(BPF_CORE_READ(sk, __sk_common.skc_net.net));
	return 0;
}

static __always_inline bool read_headers(const struct sk_buff *skb, struct kp_drop_key *k)
{
	unsigned char *head = BPF_CORE_READ(skb, head);
	__u16 nh = BPF_CORE_READ(skb, network_header);
	__u16 th = BPF_CORE_READ(skb, transport_header);
	__u32 l4 = 0;
	__u8 b[40];

	if (!head || nh == (__u16)~0U)
		return false;
	if (k->ethertype == ETH_P_IP) {
		if (bpf_probe_read_kernel(b, 20, head + nh) || (b[0] >> 4) != 4)
			return false;
		k->family = 4;
		k->protocol = b[9];
		__builtin_memcpy(k->saddr, &b[12], 4);
		__builtin_memcpy(k->daddr, &b[16], 4);
		if ((((__u16)b[6] << 8) | b[7]) & 0x1fff) /* a non-first fragment: no ports */
			return true;
		l4 = nh + (b[0] & 0xf) * 4;
	} else if (k->ethertype == ETH_P_IPV6) {
		if (bpf_probe_read_kernel(b, 40, head + nh) || (b[0] >> 4) != 6)
			return false;
		k->family = 6;
		k->protocol = b[6];
		__builtin_memcpy(k->saddr, &b[8], 16);
		__builtin_memcpy(k->daddr, &b[24], 16);
		l4 = nh + 40;
	} else {
		return false;
	}
	/* The transport offset, when set past the network header, is authoritative (IPv6
	 * extension headers); before the IP layer set it, it equals nh or is unset. */
	if (th != (__u16)~0U && th > nh)
		l4 = th;
	if (k->protocol == IPPROTO_TCP || k->protocol == IPPROTO_UDP) {
		__u16 ports[2];

		if (!bpf_probe_read_kernel(ports, 4, head + l4)) {
			k->sport = bpf_ntohs(ports[0]);
			k->dport = bpf_ntohs(ports[1]);
		}
	}
	return true;
}

SEC("tracepoint/skb/kfree_skb")
int kp_drop(struct trace_event_raw_kfree_skb *ctx)
{
	const struct sk_buff *skb = ctx->skbaddr;
	const void *rx_sk = 0;
	struct kp_drop_key k = {};

	count(KP_DROP_COUNTER_DROPS);
	if (bpf_core_field_exists(ctx->rx_sk))
		rx_sk = ctx->rx_sk;
	k.reason = ctx->reason;
	k.ethertype = ctx->protocol; /* the tracepoint stores ntohs(skb->protocol) */
	k.netns_ino = skb_netns(skb, rx_sk);
	if (!read_headers(skb, &k)) {
		__builtin_memset(k.saddr, 0, 16);
		__builtin_memset(k.daddr, 0, 16);
		k.family = k.protocol = 0;
		k.sport = k.dport = 0;
		count(KP_DROP_COUNTER_NO_HEADER);
	}
	add_drop(&k, BPF_CORE_READ(skb, len));
	return 0;
}

#define TCP_FLAG_SYN 0x02
#define TCP_FLAG_ACK 0x10

/* Fill the key's addresses and ports from the packet (cgroup_skb data starts at the IP
 * header); 0 unless it is a TCP segment whose flags are in *flags. */
static __always_inline int skb_tcp_tuple(struct __sk_buff *skb, struct kp_drop_key *k,
					 __u8 *flags)
{
	__u8 vhl = 0;
	__u32 l4;

	if (bpf_skb_load_bytes(skb, 0, &vhl, 1))
		return 0;
	if ((vhl >> 4) == 4) {
		if (bpf_skb_load_bytes(skb, 9, &k->protocol, 1) ||
		    bpf_skb_load_bytes(skb, 12, k->saddr, 4) ||
		    bpf_skb_load_bytes(skb, 16, k->daddr, 4))
			return 0;
		k->family = 4;
		k->ethertype = ETH_P_IP;
		l4 = (vhl & 0xf) * 4;
	} else if ((vhl >> 4) == 6) {
		if (bpf_skb_load_bytes(skb, 6, &k->protocol, 1) ||
		    bpf_skb_load_bytes(skb, 8, k->saddr, 16) ||
		    bpf_skb_load_bytes(skb, 24, k->daddr, 16))
			return 0;
		k->family = 6;
		k->ethertype = ETH_P_IPV6;
		l4 = 40;
	} else {
		return 0;
	}
	__u16 ports[2];
	if (k->protocol != IPPROTO_TCP || bpf_skb_load_bytes(skb, l4, ports, 4) ||
	    bpf_skb_load_bytes(skb, l4 + 13, flags, 1))
		return 0;
	k->sport = bpf_ntohs(ports[0]);
	k->dport = bpf_ntohs(ports[1]);
	return 1;
}

SEC("cgroup_skb/ingress")
int kp_listen_full(struct __sk_buff *skb)
{
	struct bpf_sock *bsk = skb->sk;
	struct kp_drop_key k = {};
	__u8 flags = 0;

	if (!bsk || !bpf_core_enum_value_exists(enum skb_drop_reason___kp_set,
						SKB_DROP_REASON_TCP_LISTEN_OVERFLOW))
		return 1;
	const struct sock *sk = (const struct sock *)bpf_skc_to_tcp_sock(bsk);
	if (!sk || BPF_CORE_READ(sk, __sk_common.skc_state) != TCP_LISTEN)
		return 1;
	/* sk_acceptq_is_full(): more waiting than the backlog allows. */
	if (BPF_CORE_READ(sk, sk_ack_backlog) <= BPF_CORE_READ(sk, sk_max_ack_backlog))
		return 1;
	if (!skb_tcp_tuple(skb, &k, &flags) || (flags & (TCP_FLAG_SYN | TCP_FLAG_ACK)) != TCP_FLAG_SYN)
		return 1;
	count(KP_DROP_COUNTER_LISTEN_FULL);
	k.reason = bpf_core_enum_value(enum skb_drop_reason___kp_set,
				       SKB_DROP_REASON_TCP_LISTEN_OVERFLOW);
	k.netns_ino = net_inum(BPF_CORE_READ(sk, __sk_common.skc_net.net));
	add_drop(&k, skb->len);
	return 1;
}
