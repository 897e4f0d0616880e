// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * tcp_conn: one classified record per TCP connection, from tracepoints only.
 *
 *   sock:inet_sock_set_state   lifecycle; the transition to CLOSE makes the record
 *   tcp:tcp_retransmit_skb     retransmit counts; the first SYN retransmit warns early
 *   tcp:tcp_receive_reset      marks sockets the peer reset
 *   tcp:tcp_send_reset         marks sockets we reset
 *   syscalls:sys_{enter,exit}_connect   connect() failures that never left the host
 *
 * Classification at CLOSE (see docs/probes.md for the kernel paths behind each rule):
 *   from SYN_SENT: reset received / ECONNREFUSED -> refused; ETIMEDOUT -> timeout;
 *     EHOSTUNREACH, ENETUNREACH, ... -> unreachable; no error but unanswered SYN
 *     retransmits (the application gave up) -> timeout; no SYN ever sent -> local_error
 *     (finished at connect()'s exit with its errno).
 *   reset received -> reset_received.
 *   from ESTABLISHED, CLOSE_WAIT, SYN_RECV with no error: the kernel is about to send an RST
 *     (tcp_disconnect / close with unread data set CLOSE before sending it) -> reset_sent.
 *   from FIN_WAIT1, FIN_WAIT2, CLOSING, LAST_ACK with no error -> established_closed.
 *   anything else -> aborted_other, with the errno kept in the record.
 */
#include "kubepulse/kernel_types.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>
#include "kubepulse/events.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

const volatile struct kp_btf_anchor kp_btf_anchor = {};

const volatile struct kp_tcp_config kp_cfg = {
	.wakeup_bytes = 256 * 1024,
};

/* Sizes are defaults; the loader sets them from the agent's config before load. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 * 1024 * 1024);
} kp_conn_rb SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_COMMON_LRU);
	__type(key, __u64); /* struct sock * */
	__type(value, struct kp_sock);
} kp_socks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, KP_COUNTER_MAX);
	__type(key, __u32);
	__type(value, __u64);
} kp_counters SEC(".maps");

/* connect() in flight, by thread: its fd and user sockaddr pointer. */
struct kp_connect_args {
	__u64 uaddr;
	__u32 fd;
	__u32 saw_syn_sent; /* the state machine saw this connect's socket: it reports it */
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, __u64); /* pid_tgid */
	__type(value, struct kp_connect_args);
} kp_connects SEC(".maps");

/* A connect() that failed inside the host (SYN_SENT -> CLOSE before any SYN): the record waits
 * here for connect()'s exit, which supplies the errno. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64); /* pid_tgid */
	__type(value, struct kp_conn_event);
} kp_pending SEC(".maps");

/* Scratch space: kp_conn_event is too big for the 512-byte stack next to kp_sock. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct kp_sock);
} kp_scratch SEC(".maps");

static __always_inline void count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&kp_counters, &idx);
	if (v)
		*v += 1;
}

static __always_inline __u32 sk_netns(const struct sock *sk)
{
	return BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
}

static __always_inline __u64 sk_cgroup_id(const struct sock *sk)
{
	if (!bpf_core_field_exists(struct sock_cgroup_data, cgroup))
		return 0; /* before 5.15 the field was a tagged union; not worth a shim at 5.8+ */
	return BPF_CORE_READ(sk, sk_cgrp_data.cgroup, kn, id);
}

static __always_inline __u32 tcp_srtt_us(const struct sock *sk)
{
	return BPF_CORE_READ((const struct tcp_sock *)sk, srtt_us) >> 3;
}

/* Addresses from the tracepoint, v4-mapped IPv6 folded to IPv4. */
static __always_inline void copy_tuple(struct kp_sock *s,
				       const struct trace_event_raw_inet_sock_set_state *ctx)
{
	__u16 family = ctx->family;

	s->sport = ctx->sport;
	s->dport = ctx->dport;
	if (family == AF_INET) {
		s->family = 4;
		__builtin_memcpy(s->saddr, ctx->saddr, 4);
		__builtin_memcpy(s->daddr, ctx->daddr, 4);
		return;
	}
	s->family = 6;
	bpf_probe_read_kernel(s->saddr, 16, ctx->saddr_v6);
	bpf_probe_read_kernel(s->daddr, 16, ctx->daddr_v6);
	const __u32 *sa = (const __u32 *)s->saddr;
	const __u32 *da = (const __u32 *)s->daddr;
	/* ::ffff:a.b.c.d on both ends: a dual-stack socket speaking IPv4. 0xffff0000 is the
	 * third word in network byte order as read on a little-endian host. */
	if (sa[0] == 0 && sa[1] == 0 && sa[2] == bpf_htonl(0xffff) && da[0] == 0 && da[1] == 0 &&
	    da[2] == bpf_htonl(0xffff)) {
		s->family = 4;
		__builtin_memcpy(s->saddr, &sa[3], 4);
		__builtin_memcpy(s->daddr, &da[3], 4);
		__builtin_memset(s->saddr + 4, 0, 12);
		__builtin_memset(s->daddr + 4, 0, 12);
	}
}

static __always_inline void take_owner(struct kp_sock *s)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();

	s->tgid = pid_tgid >> 32;
	bpf_get_current_comm(s->comm, sizeof(s->comm));
}

static __always_inline __u64 submit_flags(void)
{
	return bpf_ringbuf_query(&kp_conn_rb, BPF_RB_AVAIL_DATA) >= kp_cfg.wakeup_bytes
		       ? BPF_RB_FORCE_WAKEUP
		       : BPF_RB_NO_WAKEUP;
}

static __always_inline void fill_from_sock(struct kp_conn_event *e, const struct kp_sock *s)
{
	e->start_ns = s->start_ns;
	e->cgroup_id = s->cgroup_id;
	e->tgid = s->tgid;
	e->netns_ino = s->netns_ino;
	e->srtt_established_us = s->srtt_established_us;
	e->syn_retransmits = s->syn_retransmits;
	e->sport = s->sport;
	e->dport = s->dport;
	e->family = s->family;
	e->direction = s->direction;
	e->flags = s->flags;
	__builtin_memcpy(e->saddr, s->saddr, 16);
	__builtin_memcpy(e->daddr, s->daddr, 16);
	__builtin_memcpy(e->comm, s->comm, KP_COMM_LEN);
}

static __always_inline bool is_unreachable(int err)
{
	return err == EHOSTUNREACH || err == ENETUNREACH || err == EHOSTDOWN || err == ENETDOWN;
}

static __always_inline __u8 classify(const struct kp_sock *s, int oldstate, int err,
				     __u32 segs_out)
{
	bool rst_rx = s->flags & KP_FLAG_RST_RX;

	if (oldstate == TCP_SYN_SENT) {
		if (rst_rx || err == ECONNREFUSED)
			return KP_OUTCOME_REFUSED;
		if (err == ETIMEDOUT)
			return KP_OUTCOME_TIMEOUT;
		if (is_unreachable(err))
			return KP_OUTCOME_UNREACHABLE;
		if (segs_out == 0)
			return KP_OUTCOME_LOCAL_ERROR;
		if (err == 0 && s->syn_retransmits > 0)
			return KP_OUTCOME_TIMEOUT; /* the application's own connect timeout fired */
		return KP_OUTCOME_ABORTED_OTHER;
	}
	if (rst_rx)
		return KP_OUTCOME_RESET_RECEIVED;
	if (is_unreachable(err))
		return KP_OUTCOME_UNREACHABLE;
	if (err == 0) {
		if (oldstate == TCP_ESTABLISHED || oldstate == TCP_CLOSE_WAIT ||
		    oldstate == TCP_SYN_RECV)
			return KP_OUTCOME_RESET_SENT;
		if (oldstate == TCP_FIN_WAIT1 || oldstate == TCP_FIN_WAIT2 ||
		    oldstate == TCP_CLOSING || oldstate == TCP_LAST_ACK)
			return KP_OUTCOME_ESTABLISHED_CLOSED;
	}
	if (s->flags & KP_FLAG_RST_TX)
		return KP_OUTCOME_RESET_SENT;
	return KP_OUTCOME_ABORTED_OTHER;
}

static __always_inline void on_close(const struct sock *sk, __u64 key, struct kp_sock *s,
				     int oldstate, __u64 now)
{
	const struct tcp_sock *tp = (const struct tcp_sock *)sk;
	int err = BPF_CORE_READ(sk, sk_err);
	__u32 segs_out = BPF_CORE_READ(tp, segs_out);
	__u8 outcome = classify(s, oldstate, err, segs_out);
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct kp_conn_event *e;

	if (!(s->flags & KP_FLAG_TRACKED))
		count(KP_COUNTER_UNTRACKED_CLOSE);
	if (outcome == KP_OUTCOME_LOCAL_ERROR) {
		/* Still inside connect(): let its exit add the errno. */
		if (bpf_map_lookup_elem(&kp_connects, &pid_tgid)) {
			struct kp_conn_event pending = {};

			fill_from_sock(&pending, s);
			pending.ts_ns = now;
			pending.kind = KP_KIND_LOCAL_ERROR;
			pending.outcome = KP_OUTCOME_LOCAL_ERROR;
			pending.state_before = oldstate;
			bpf_map_update_elem(&kp_pending, &pid_tgid, &pending, BPF_ANY);
			bpf_map_delete_elem(&kp_socks, &key);
			return;
		}
	}

	e = bpf_ringbuf_reserve(&kp_conn_rb, sizeof(*e), 0);
	if (!e) {
		count(KP_COUNTER_RINGBUF_FULL);
		bpf_map_delete_elem(&kp_socks, &key);
		return;
	}
	__builtin_memset(e, 0, sizeof(*e));
	fill_from_sock(e, s);
	e->ts_ns = now;
	e->kind = outcome == KP_OUTCOME_LOCAL_ERROR ? KP_KIND_LOCAL_ERROR : KP_KIND_CLOSE;
	e->outcome = outcome;
	e->state_before = oldstate;
	e->error = err > 0 ? err : 0;
	if (s->start_ns)
		e->duration_ns = now - s->start_ns;
	if (s->established_ns && s->direction == KP_DIRECTION_OUTBOUND && s->start_ns)
		e->connect_latency_ns = s->established_ns - s->start_ns;
	e->srtt_closed_us = tcp_srtt_us(sk);
	e->retransmits = BPF_CORE_READ(tp, total_retrans);
	e->segs_out = segs_out;
	e->segs_in = BPF_CORE_READ(tp, segs_in);
	if (bpf_core_field_exists(tp->bytes_acked)) {
		/* Both count sequence space: our SYN is in bytes_acked for active opens (the
		 * SYN-ACK of a passive open is not), our FIN once acked, and the peer's FIN in
		 * bytes_received. Report data bytes. */
		__u64 acked = BPF_CORE_READ(tp, bytes_acked);
		__u64 rcvd = BPF_CORE_READ(tp, bytes_received);
		bool fin_rx = (s->flags & KP_FLAG_FIN_RX) || oldstate == TCP_LAST_ACK ||
			      oldstate == TCP_CLOSING ||
			      (oldstate == TCP_FIN_WAIT2 && outcome == KP_OUTCOME_ESTABLISHED_CLOSED);
		if ((s->flags & KP_FLAG_ESTABLISHED) && s->direction == KP_DIRECTION_OUTBOUND &&
		    acked)
			acked -= 1;
		if (outcome == KP_OUTCOME_ESTABLISHED_CLOSED && acked)
			acked -= 1;
		if (fin_rx && rcvd)
			rcvd -= 1;
		e->bytes_sent = acked;
		e->bytes_received = rcvd;
	}
	count(KP_COUNTER_RECORDS);
	bpf_ringbuf_submit(e, submit_flags());
	bpf_map_delete_elem(&kp_socks, &key);
}

SEC("tracepoint/sock/inet_sock_set_state")
int kp_tcp_state(struct trace_event_raw_inet_sock_set_state *ctx)
{
	if (ctx->protocol != IPPROTO_TCP)
		return 0;

	const struct sock *sk = ctx->skaddr;
	__u64 key = (__u64)sk;
	int oldstate = ctx->oldstate;
	int newstate = ctx->newstate;
	__u64 now = bpf_ktime_get_ns();
	struct kp_sock *s = bpf_map_lookup_elem(&kp_socks, &key);

	if (!s) {
		__u32 zero = 0;
		bool active = oldstate == TCP_CLOSE && newstate == TCP_SYN_SENT;
		bool passive = newstate == TCP_SYN_RECV;

		/* A passive child is cloned from its listener, so it leaves LISTEN for SYN_RECV. */
		if (newstate == TCP_LISTEN || (oldstate == TCP_LISTEN && !passive) ||
		    (oldstate == TCP_CLOSE && !active))
			return 0; /* listeners and never-connected sockets are not connections */

		s = bpf_map_lookup_elem(&kp_scratch, &zero);
		if (!s)
			return 0;
		__builtin_memset(s, 0, sizeof(*s));
		copy_tuple(s, ctx);
		s->netns_ino = sk_netns(sk);
		s->cgroup_id = sk_cgroup_id(sk);
		if (active) {
			__u64 pid_tgid = bpf_get_current_pid_tgid();
			struct kp_connect_args *ca = bpf_map_lookup_elem(&kp_connects, &pid_tgid);

			if (ca)
				ca->saw_syn_sent = 1;
			s->start_ns = now;
			s->direction = KP_DIRECTION_OUTBOUND;
			s->flags = KP_FLAG_TRACKED;
			take_owner(s); /* connect() runs in the owner's context */
		} else if (passive) {
			s->start_ns = now;
			s->direction = KP_DIRECTION_INBOUND;
			s->flags = KP_FLAG_TRACKED;
		}
		/* Otherwise it opened before we attached, or its slot was evicted: it is reported
		 * untracked (no pid, start or direction) and counted at close. */
		if (newstate == TCP_CLOSE) {
			on_close(sk, key, s, oldstate, now);
			return 0;
		}
		s->state = newstate;
		bpf_map_update_elem(&kp_socks, &key, s, BPF_ANY);
		return 0;
	}

	s->state = newstate;
	if (newstate == TCP_CLOSE_WAIT || newstate == TCP_CLOSING)
		s->flags |= KP_FLAG_FIN_RX;
	/* The tuple is complete only once the kernel picked the source port. */
	if (oldstate == TCP_SYN_SENT || oldstate == TCP_SYN_RECV)
		copy_tuple(s, ctx);

	if (newstate == TCP_ESTABLISHED) {
		s->established_ns = now;
		s->flags |= KP_FLAG_ESTABLISHED;
		s->srtt_established_us = tcp_srtt_us(sk);
		return 0;
	}
	/* Inbound sockets are accepted in softirq context; the owner shows itself when it
	 * closes or aborts the socket, which only a system call does. */
	if (s->tgid == 0 && (newstate == TCP_FIN_WAIT1 || newstate == TCP_LAST_ACK ||
			     (newstate == TCP_CLOSE && oldstate == TCP_ESTABLISHED &&
			      !(s->flags & KP_FLAG_RST_RX) && BPF_CORE_READ(sk, sk_err) == 0)))
		take_owner(s);
	if (newstate == TCP_CLOSE)
		on_close(sk, key, s, oldstate, now);
	return 0;
}

static __always_inline void on_retransmit(const void *skaddr, int state)
{
	__u64 key = (__u64)skaddr;
	struct kp_sock *s;

	count(KP_COUNTER_RETRANSMITS);
	s = bpf_map_lookup_elem(&kp_socks, &key);
	if (!s)
		return;
	s->retransmits += 1;
	if (state != TCP_SYN_SENT)
		return;
	count(KP_COUNTER_SYN_RETRANSMITS);
	s->syn_retransmits += 1;
	if (s->syn_retransmits != 1)
		return;

	/* The peer has not answered our SYN for one RTO (1 s by default): say so now rather
	 * than after the ~2 minutes of default retries. */
	struct kp_conn_event *e = bpf_ringbuf_reserve(&kp_conn_rb, sizeof(*e), 0);
	if (!e) {
		count(KP_COUNTER_RINGBUF_FULL);
		return;
	}
	__builtin_memset(e, 0, sizeof(*e));
	fill_from_sock(e, s);
	__u64 now = bpf_ktime_get_ns();
	e->ts_ns = now;
	e->kind = KP_KIND_SYN_RETRANSMIT;
	e->outcome = KP_OUTCOME_NONE;
	e->state_before = TCP_SYN_SENT;
	e->duration_ns = now - s->start_ns;
	e->retransmits = s->retransmits;
	if (e->sport == 0) /* the tuple was copied at SYN_SENT, before the port was bound */
		e->sport = BPF_CORE_READ((const struct sock *)skaddr, __sk_common.skc_num);
	count(KP_COUNTER_RECORDS);
	bpf_ringbuf_submit(e, submit_flags());
}

SEC("tracepoint/tcp/tcp_retransmit_skb")
int kp_tcp_retrans(void *ctx)
{
	/* Read through bpf_core_read: with two candidate layouts the compiler folds the offset
	 * into the context pointer, which the verifier refuses for direct loads. */
	const void *skaddr = 0;
	int state = 0;

	if (bpf_core_type_exists(struct trace_event_raw_tcp_retransmit_skb)) {
		struct trace_event_raw_tcp_retransmit_skb *c = ctx;
		bpf_core_read(&skaddr, sizeof(skaddr), &c->skaddr);
		bpf_core_read(&state, sizeof(state), &c->state);
	} else {
		struct trace_event_raw_tcp_event_sk_skb *c = ctx;
		bpf_core_read(&skaddr, sizeof(skaddr), &c->skaddr);
		bpf_core_read(&state, sizeof(state), &c->state);
	}
	on_retransmit(skaddr, state);
	return 0;
}

static __always_inline void mark(const void *skaddr, __u8 flag)
{
	__u64 key = (__u64)skaddr;
	struct kp_sock *s = bpf_map_lookup_elem(&kp_socks, &key);

	if (s)
		s->flags |= flag;
}

SEC("tracepoint/tcp/tcp_receive_reset")
int kp_tcp_rst_rx(struct trace_event_raw_tcp_event_sk *ctx)
{
	count(KP_COUNTER_RESETS_RX);
	mark(ctx->skaddr, KP_FLAG_RST_RX);
	return 0;
}

SEC("tracepoint/tcp/tcp_send_reset")
int kp_tcp_rst_tx(void *ctx)
{
	const void *skaddr = 0;

	if (bpf_core_type_exists(struct trace_event_raw_tcp_send_reset))
		bpf_core_read(&skaddr, sizeof(skaddr),
			      &((struct trace_event_raw_tcp_send_reset *)ctx)->skaddr);
	else
		bpf_core_read(&skaddr, sizeof(skaddr),
			      &((struct trace_event_raw_tcp_event_sk_skb *)ctx)->skaddr);
	count(KP_COUNTER_RESETS_TX);
	if (skaddr)
		mark(skaddr, KP_FLAG_RST_TX);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_connect")
int kp_connect_in(struct trace_event_raw_sys_enter *ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct kp_connect_args a = {
		.fd = (__u32)ctx->args[0],
		.uaddr = ctx->args[1],
	};
	__u16 family = 0;

	/* Only IP connects can become TCP connections: skip UNIX sockets and the like. */
	bpf_probe_read_user(&family, sizeof(family), (void *)a.uaddr);
	if (family != AF_INET && family != AF_INET6)
		return 0;
	bpf_map_update_elem(&kp_connects, &pid_tgid, &a, BPF_ANY);
	return 0;
}

/* The socket behind a file descriptor of the current task, or NULL. */
static __always_inline const struct sock *fd_to_sock(__u32 fd)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	struct file **fds;
	struct file *file = 0;

	if (!fdt || fd >= BPF_CORE_READ(fdt, max_fds))
		return 0;
	fds = BPF_CORE_READ(fdt, fd);
	bpf_probe_read_kernel(&file, sizeof(file), &fds[fd]);
	if (!file)
		return 0;
	struct socket *sock = BPF_CORE_READ(file, private_data);
	if (!sock)
		return 0;
	/* Any file has private_data; a socket's points back to its file, and its sock to it. */
	if (BPF_CORE_READ(sock, file) != file)
		return 0;
	const struct sock *sk = BPF_CORE_READ(sock, sk);
	if (!sk || BPF_CORE_READ(sk, sk_socket) != sock)
		return 0;
	return sk;
}

static __always_inline bool local_errno(int err)
{
	return err == EADDRNOTAVAIL || err == ENETUNREACH || err == EHOSTUNREACH ||
	       err == EACCES || err == EPERM || err == ENOBUFS || err == EADDRINUSE ||
	       err == EINVAL || err == ENETDOWN;
}

SEC("tracepoint/syscalls/sys_exit_connect")
int kp_connect_out(struct trace_event_raw_sys_exit *ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct kp_connect_args *a = bpf_map_lookup_elem(&kp_connects, &pid_tgid);
	struct kp_conn_event *pending = bpf_map_lookup_elem(&kp_pending, &pid_tgid);
	int err = ctx->ret < 0 ? -ctx->ret : 0;
	struct kp_conn_event *e;

	if (!a) {
		if (pending) {
			count(KP_COUNTER_CONNECT_PENDING_LOST);
			bpf_map_delete_elem(&kp_pending, &pid_tgid);
		}
		return 0;
	}
	struct kp_connect_args args = *a;
	bpf_map_delete_elem(&kp_connects, &pid_tgid);

	if (pending) {
		e = bpf_ringbuf_reserve(&kp_conn_rb, sizeof(*e), 0);
		if (!e) {
			count(KP_COUNTER_RINGBUF_FULL);
		} else {
			bpf_probe_read_kernel(e, sizeof(*e), pending);
			e->error = err;
			e->ts_ns = bpf_ktime_get_ns();
			count(KP_COUNTER_RECORDS);
			bpf_ringbuf_submit(e, submit_flags());
		}
		bpf_map_delete_elem(&kp_pending, &pid_tgid);
		return 0;
	}
	if (args.saw_syn_sent || !local_errno(err))
		return 0;

	/* Failed before the socket ever reached SYN_SENT (no route, bad address, a cgroup hook
	 * said no): the state machine saw nothing, so build the record from the fd and the
	 * user's sockaddr. (segs_out cannot tell: a failed connect() runs tcp_disconnect(),
	 * which zeroes it before the syscall returns.) */
	const struct sock *sk = fd_to_sock(args.fd);
	if (!sk || BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP ||
	    BPF_CORE_READ(sk, sk_type) != SOCK_STREAM)
		return 0;

	__u16 family = 0;
	bpf_probe_read_user(&family, sizeof(family), (void *)args.uaddr);
	if (family != AF_INET && family != AF_INET6)
		return 0;

	e = bpf_ringbuf_reserve(&kp_conn_rb, sizeof(*e), 0);
	if (!e) {
		count(KP_COUNTER_RINGBUF_FULL);
		return 0;
	}
	__builtin_memset(e, 0, sizeof(*e));
	if (family == AF_INET) {
		struct kp_sockaddr_in sin = {};

		bpf_probe_read_user(&sin, sizeof(sin), (void *)args.uaddr);
		e->family = 4;
		e->dport = bpf_ntohs(sin.sin_port);
		__builtin_memcpy(e->daddr, sin.sin_addr, 4);
	} else {
		struct kp_sockaddr_in6 sin6 = {};

		bpf_probe_read_user(&sin6, sizeof(sin6), (void *)args.uaddr);
		e->family = 6;
		e->dport = bpf_ntohs(sin6.sin6_port);
		__builtin_memcpy(e->daddr, sin6.sin6_addr, 16);
	}
	e->sport = BPF_CORE_READ(sk, __sk_common.skc_num);
	e->ts_ns = bpf_ktime_get_ns();
	e->tgid = pid_tgid >> 32;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	e->netns_ino = sk_netns(sk);
	e->cgroup_id = sk_cgroup_id(sk);
	e->kind = KP_KIND_LOCAL_ERROR;
	e->outcome = KP_OUTCOME_LOCAL_ERROR;
	e->direction = KP_DIRECTION_OUTBOUND;
	e->state_before = TCP_CLOSE;
	e->flags = KP_FLAG_TRACKED;
	e->error = err;
	count(KP_COUNTER_RECORDS);
	bpf_ringbuf_submit(e, submit_flags());
	return 0;
}
