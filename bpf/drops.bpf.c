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
	__u64 now = bpf_ktime_get_ns();

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
	__u32 len = BPF_CORE_READ(skb, len);

	struct kp_drop_value *v = bpf_map_lookup_elem(&kp_drops, &k);
	if (v) {
		__sync_fetch_and_add(&v->packets, 1);
		__sync_fetch_and_add(&v->bytes, len);
		v->last_ns = now;
		return 0;
	}
	struct kp_drop_value nv = {.packets = 1, .bytes = len, .first_ns = now, .last_ns = now};
	if (bpf_map_update_elem(&kp_drops, &k, &nv, BPF_NOEXIST) == 0) {
		count(KP_DROP_COUNTER_NEW_KEYS);
		return 0;
	}
	/* Another CPU inserted the same key in between. */
	v = bpf_map_lookup_elem(&kp_drops, &k);
	if (v) {
		__sync_fetch_and_add(&v->packets, 1);
		__sync_fetch_and_add(&v->bytes, len);
		v->last_ns = now;
	}
	return 0;
}
