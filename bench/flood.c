// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * flood: a bounded, paced UDP flood for bench/dns_flood.py and bench/drop_storm.py.
 *
 * --threads T sender threads, each with --sockets K connected UDP sockets to --dst:--port,
 * sending batches of up to BATCH datagrams with sendmmsg(), paced to --rate datagrams/s in
 * total (0: as fast as the machine allows). Stops at --duration seconds or --count datagrams,
 * whichever comes first; SIGINT/SIGTERM stop it early and it still prints its counts.
 *
 *   payload (default)  --size zero bytes; with --sport S the sockets are bound to source
 *                      ports S .. S+T*K-1, so the receiver sees exactly T*K distinct tuples
 *   --dport-span N     send to ports --port .. --port+N-1 in turn (unconnected sockets,
 *                      sendmmsg with one address per datagram): N distinct tuples per socket
 *   --dns NAME         a DNS query (A/IN, RD) for NAME; each socket numbers its queries with
 *                      its own transaction id counter, so (socket, port, txid) never repeats
 *                      within 65,536 queries of one socket. One receiver thread per sender
 *                      reads the answers (recvmmsg) and counts them by rcode, until every
 *                      query is answered or --drain seconds after the last send.
 *
 * Prints one JSON object on stdout: sent, send errors by errno, the send phase's length and
 * rate, and in --dns mode the answers by rcode.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 32
#define MAX_THREADS 16
#define MAX_SOCKETS 64 /* per thread */
#define MAX_ERRNO 256
#define MAX_PAYLOAD 512
#define MAX_DURATION_S 300.0
#define MAX_DRAIN_S 10.0

static struct {
	const char *dst, *dns_name;
	int port, sport, threads, sockets, size, dport_span;
	double rate, duration_s, drain_s;
	long long count;
} opt = { .port = 0, .threads = 1, .sockets = 8, .size = 18, .rate = 0, .duration_s = 5,
	  .drain_s = 1.0, .count = 1000000, .dport_span = 1 };

static struct sockaddr_in dst_addr;

static unsigned char payload[MAX_PAYLOAD];
static size_t payload_len;
static atomic_llong tickets; /* datagrams handed out to senders, against --count */
static atomic_llong sent;
static atomic_llong answers, not_answer;
static atomic_llong rcodes[16];
static atomic_llong send_errors[MAX_ERRNO];
static atomic_int senders_left;
static volatile sig_atomic_t stop_signal;
static double t_start, deadline;
static _Atomic double t_end_send; /* when the last sender stopped */

struct worker {
	int fds[MAX_SOCKETS];
	uint16_t txid[MAX_SOCKETS];
	pthread_t send_tid, recv_tid;
};

static struct worker workers[MAX_THREADS];

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void on_signal(int sig)
{
	(void)sig;
	stop_signal = 1;
}

/* A standard query: header (id, RD, one question), the name as labels, type A, class IN. */
static int build_dns_query(const char *name)
{
	unsigned char *p = payload;
	const unsigned char hdr[12] = { 0, 0, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0 };

	memcpy(p, hdr, sizeof(hdr));
	p += sizeof(hdr);
	const char *s = name;
	while (*s) {
		const char *dot = strchr(s, '.');
		size_t n = dot ? (size_t)(dot - s) : strlen(s);
		if (n == 0 || n > 63 || (size_t)(p - payload) + n + 6 > MAX_PAYLOAD - 4)
			return -1;
		*p++ = (unsigned char)n;
		memcpy(p, s, n);
		p += n;
		s += n + (dot ? 1 : 0);
	}
	*p++ = 0;
	*p++ = 0; *p++ = 1; /* type A */
	*p++ = 0; *p++ = 1; /* class IN */
	payload_len = (size_t)(p - payload);
	return 0;
}

static void *sender(void *arg)
{
	struct worker *w = arg;
	unsigned char bufs[BATCH][MAX_PAYLOAD];
	struct iovec iov[BATCH];
	struct mmsghdr msgs[BATCH];
	struct sockaddr_in names[BATCH];
	double rate = opt.rate / opt.threads; /* this thread's share */
	long long mine = 0;
	unsigned long long seq = 0; /* --dport-span: which port the next datagram goes to */
	int next = 0;
	long pause_ns = rate > 0 ? (long)(BATCH / 2 / rate * 1e9) : 0;

	pause_ns = pause_ns < 50000 ? 50000 : pause_ns > 1000000 ? 1000000 : pause_ns;

	memset(msgs, 0, sizeof(msgs));
	for (int i = 0; i < BATCH; i++) {
		memcpy(bufs[i], payload, payload_len);
		iov[i].iov_base = bufs[i];
		iov[i].iov_len = payload_len;
		msgs[i].msg_hdr.msg_iov = &iov[i];
		msgs[i].msg_hdr.msg_iovlen = 1;
		if (opt.dport_span > 1) {
			names[i] = dst_addr;
			msgs[i].msg_hdr.msg_name = &names[i];
			msgs[i].msg_hdr.msg_namelen = sizeof(names[i]);
		}
	}
	for (;;) {
		double now = now_s();
		if (stop_signal || now >= deadline)
			break;
		long long want = BATCH;
		if (rate > 0) {
			long long due = (long long)((now - t_start) * rate) - mine;
			if (due <= 0) {
				/* Sleep until about half a batch is due (50 us .. 1 ms). */
				struct timespec ts = { 0, pause_ns };
				nanosleep(&ts, NULL);
				continue;
			}
			want = due < BATCH ? due : BATCH;
		}
		long long t = atomic_fetch_add(&tickets, want);
		if (t >= opt.count)
			break;
		if (t + want > opt.count)
			want = opt.count - t;
		int s = next++ % opt.sockets;
		if (opt.dns_name) {
			for (int i = 0; i < want; i++) {
				uint16_t id = w->txid[s]++;
				bufs[i][0] = id >> 8;
				bufs[i][1] = id & 0xff;
			}
		}
		if (opt.dport_span > 1) {
			for (int i = 0; i < want; i++)
				names[i].sin_port =
					htons((uint16_t)(opt.port + (seq + i) % opt.dport_span));
		}
		int n = sendmmsg(w->fds[s], msgs, (unsigned)want, 0);
		if (n < 0) {
			atomic_fetch_add(&send_errors[errno < MAX_ERRNO ? errno : 0], 1);
			n = 0;
		} else if (n < want) {
			/* The rest of the batch was not sent: count it once as "short". */
			atomic_fetch_add(&send_errors[0], 1);
		}
		if (opt.dns_name && n < want)
			w->txid[s] -= (uint16_t)(want - n); /* those ids were never used */
		mine += n;
		seq += n;
		atomic_fetch_add(&sent, n);
		if (n < want)
			atomic_fetch_sub(&tickets, want - n);
	}
	atomic_store(&t_end_send, now_s()); /* before senders_left: receivers read it after */
	atomic_fetch_sub(&senders_left, 1);
	return NULL;
}

static void *receiver(void *arg)
{
	struct worker *w = arg;
	unsigned char bufs[BATCH][MAX_PAYLOAD];
	struct iovec iov[BATCH];
	struct mmsghdr msgs[BATCH];
	struct pollfd pfd[MAX_SOCKETS];

	for (int i = 0; i < opt.sockets; i++)
		pfd[i] = (struct pollfd){ .fd = w->fds[i], .events = POLLIN };
	for (;;) {
		if (atomic_load(&senders_left) == 0) {
			if (stop_signal || now_s() >= atomic_load(&t_end_send) + opt.drain_s ||
			    atomic_load(&answers) + atomic_load(&not_answer) >= atomic_load(&sent))
				return NULL;
		}
		if (poll(pfd, (nfds_t)opt.sockets, 20) <= 0)
			continue;
		for (int s = 0; s < opt.sockets; s++) {
			if (!(pfd[s].revents & POLLIN))
				continue;
			for (int i = 0; i < BATCH; i++) {
				iov[i].iov_base = bufs[i];
				iov[i].iov_len = MAX_PAYLOAD;
				memset(&msgs[i].msg_hdr, 0, sizeof(msgs[i].msg_hdr));
				msgs[i].msg_hdr.msg_iov = &iov[i];
				msgs[i].msg_hdr.msg_iovlen = 1;
			}
			int n = recvmmsg(w->fds[s], msgs, BATCH, MSG_DONTWAIT, NULL);
			for (int i = 0; i < n; i++) {
				const unsigned char *b = bufs[i];
				if (msgs[i].msg_len >= 12 && (b[2] & 0x80)) {
					atomic_fetch_add(&answers, 1);
					atomic_fetch_add(&rcodes[b[3] & 0xf], 1);
				} else {
					atomic_fetch_add(&not_answer, 1);
				}
			}
		}
	}
}

static int open_socket(int index)
{
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (fd < 0)
		return -1;
	struct timeval tv = { 0, 100000 }; /* a blocked send gives up after 100 ms */
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (opt.sport) {
		int one = 1;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		struct sockaddr_in src = { .sin_family = AF_INET,
					   .sin_port = htons((uint16_t)(opt.sport + index)) };
		if (bind(fd, (struct sockaddr *)&src, sizeof(src)) < 0) {
			close(fd);
			return -1;
		}
	}
	if (opt.dport_span == 1 &&
	    connect(fd, (struct sockaddr *)&dst_addr, sizeof(dst_addr)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static void usage(const char *argv0)
{
	fprintf(stderr,
		"usage: %s --dst IPV4 --port P [--rate PPS] [--duration S] [--count N]\n"
		"          [--threads T] [--sockets K] [--sport S] [--dport-span N] [--size B]\n"
		"          [--dns NAME [--drain S]]\n"
		"Send a paced, bounded UDP flood; print JSON.\n"
		"  --rate PPS      datagrams per second in total (default 0: as fast as possible)\n"
		"  --duration S    stop sending after S seconds (default 5, at most 300)\n"
		"  --count N       stop after N datagrams (default 1000000)\n"
		"  --threads T     sender threads (default 1, at most %d)\n"
		"  --sockets K     connected sockets per thread (default 8, at most %d)\n"
		"  --sport S       bind the sockets to source ports S, S+1, ... (default: ephemeral)\n"
		"  --dport-span N  send to ports P .. P+N-1 in turn (default 1; not with --dns)\n"
		"  --size B        payload bytes, without --dns (default 18)\n"
		"  --dns NAME      send DNS queries for NAME and count the answers\n"
		"  --drain S       --dns: wait up to S s after the last send for answers (default 1)\n"
		"example: %s --dst 10.250.1.2 --port 53 --dns q.flood.kpb --rate 25000 --duration 10\n",
		argv0, MAX_THREADS, MAX_SOCKETS, argv0);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "dst", required_argument, 0, 'a' },	    { "port", required_argument, 0, 'p' },
		{ "rate", required_argument, 0, 'r' },	    { "duration", required_argument, 0, 'd' },
		{ "count", required_argument, 0, 'n' },	    { "threads", required_argument, 0, 't' },
		{ "sockets", required_argument, 0, 'k' },   { "sport", required_argument, 0, 's' },
		{ "size", required_argument, 0, 'b' },	    { "dns", required_argument, 0, 'q' },
		{ "drain", required_argument, 0, 'w' },	    { "dport-span", required_argument, 0, 'x' },
		{ "help", no_argument, 0, 'h' },
		{ 0, 0, 0, 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "a:p:r:d:n:t:k:s:b:q:w:x:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'a': opt.dst = optarg; break;
		case 'p': opt.port = atoi(optarg); break;
		case 'r': opt.rate = atof(optarg); break;
		case 'd': opt.duration_s = atof(optarg); break;
		case 'n': opt.count = atoll(optarg); break;
		case 't': opt.threads = atoi(optarg); break;
		case 'k': opt.sockets = atoi(optarg); break;
		case 's': opt.sport = atoi(optarg); break;
		case 'b': opt.size = atoi(optarg); break;
		case 'q': opt.dns_name = optarg; break;
		case 'w': opt.drain_s = atof(optarg); break;
		case 'x': opt.dport_span = atoi(optarg); break;
		case 'h': usage(argv[0]); return 0;
		default: usage(argv[0]); return 2;
		}
	}
	if (!opt.dst || opt.port < 1 || opt.port > 65535 || opt.threads < 1 ||
	    opt.threads > MAX_THREADS || opt.sockets < 1 || opt.sockets > MAX_SOCKETS ||
	    opt.duration_s <= 0 || opt.duration_s > MAX_DURATION_S || opt.count < 1 ||
	    opt.rate < 0 || opt.size < 1 || opt.size > MAX_PAYLOAD || opt.drain_s < 0 ||
	    opt.drain_s > MAX_DRAIN_S || opt.dport_span < 1 ||
	    opt.port + opt.dport_span > 65536 || (opt.dns_name && opt.dport_span > 1) ||
	    (opt.sport && opt.sport + opt.threads * opt.sockets > 65536)) {
		fprintf(stderr, "flood: bad arguments (need --dst, --port, a duration in (0, 300] "
				"s and a count; see --help)\n");
		return 2;
	}
	if (opt.dns_name) {
		if (build_dns_query(opt.dns_name) < 0) {
			fprintf(stderr, "flood: --dns %s is not a valid name\n", opt.dns_name);
			return 2;
		}
	} else {
		payload_len = (size_t)opt.size;
	}
	dst_addr = (struct sockaddr_in){ .sin_family = AF_INET,
					 .sin_port = htons((uint16_t)opt.port) };
	if (inet_pton(AF_INET, opt.dst, &dst_addr.sin_addr) != 1) {
		fprintf(stderr, "flood: --dst %s is not an IPv4 address\n", opt.dst);
		return 2;
	}
	struct sigaction sa = { .sa_handler = on_signal };
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	srandom((unsigned)getpid());
	for (int t = 0; t < opt.threads; t++) {
		for (int s = 0; s < opt.sockets; s++) {
			workers[t].fds[s] = open_socket(t * opt.sockets + s);
			if (workers[t].fds[s] < 0) {
				perror("flood: socket/bind/connect");
				return 1;
			}
			workers[t].txid[s] = (uint16_t)random();
		}
	}
	atomic_store(&senders_left, opt.threads);
	t_start = now_s();
	atomic_store(&t_end_send, t_start);
	deadline = t_start + opt.duration_s;
	for (int t = 0; t < opt.threads; t++) {
		pthread_create(&workers[t].send_tid, NULL, sender, &workers[t]);
		if (opt.dns_name)
			pthread_create(&workers[t].recv_tid, NULL, receiver, &workers[t]);
	}
	for (int t = 0; t < opt.threads; t++) {
		pthread_join(workers[t].send_tid, NULL);
		if (opt.dns_name)
			pthread_join(workers[t].recv_tid, NULL);
	}
	double send_s = atomic_load(&t_end_send) - t_start;
	double total_s = now_s() - t_start;

	printf("{\"mode\": \"%s\", \"threads\": %d, \"sockets_per_thread\": %d, "
	       "\"rate_target\": %.0f, \"duration_s\": %.3f, \"count\": %lld, "
	       "\"dport_span\": %d, \"payload_bytes\": %zu, \"interrupted\": %s, \"sent\": %lld, \"send_s\": %.4f, "
	       "\"sent_per_s\": %.1f, \"total_s\": %.4f, \"send_errors\": {",
	       opt.dns_name ? "dns" : "udp", opt.threads, opt.sockets, opt.rate, opt.duration_s,
	       opt.count, opt.dport_span, payload_len, stop_signal ? "true" : "false", atomic_load(&sent), send_s,
	       send_s > 0 ? atomic_load(&sent) / send_s : 0.0, total_s);
	const char *sep = "";
	for (int e = 0; e < MAX_ERRNO; e++) {
		long long n = atomic_load(&send_errors[e]);
		if (n) {
			printf("%s\"%s\": %lld", sep, e ? strerrorname_np(e) : "short", n);
			sep = ", ";
		}
	}
	printf("}");
	if (opt.dns_name) {
		printf(", \"answers\": %lld, \"not_answer\": %lld, \"answers_per_s\": %.1f, "
		       "\"rcodes\": {",
		       atomic_load(&answers), atomic_load(&not_answer),
		       send_s > 0 ? atomic_load(&answers) / send_s : 0.0);
		sep = "";
		for (int r = 0; r < 16; r++) {
			long long n = atomic_load(&rcodes[r]);
			if (n) {
				printf("%s\"%d\": %lld", sep, r, n);
				sep = ", ";
			}
		}
		printf("}");
	}
	printf("}\n");
	return 0;
}
