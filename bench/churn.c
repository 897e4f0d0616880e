// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * churn: open and close TCP connections on loopback as fast as the machine allows.
 *
 * One process: an in-process server (a listening socket on 127.0.0.1 and --servers threads
 * blocked in accept()) and --threads client threads. Each connection:
 *
 *   client: connect, write REQ_BYTES, read REPLY_BYTES, read until EOF, close
 *   server: accept, read REQ_BYTES, write REPLY_BYTES, close
 *
 * The server closes first, so every connection ends normally on both sides (server
 * FIN_WAIT2 -> CLOSE, client LAST_ACK -> CLOSE: "established_closed" twice) and TIME_WAIT lands
 * on the server's side. The client's ephemeral port is free again as soon as its socket
 * closes, so the client never runs out of ports and nothing (no SO_LINGER, no RST) changes how
 * connections end. docs/benchmarks.md ("Workload") measures this choice against
 * --client-closes-first. The TIME_WAIT table must hold ~60 s of connections, or overflowed
 * FIN_WAIT2 sockets answer the client's FIN with an RST: bench/tcp_overhead.py raises
 * net.ipv4.tcp_max_tw_buckets for its run.
 *
 * Bounded by --duration seconds and/or --count connection attempts (whichever comes first).
 * Prints one JSON object on stdout: attempts, completed connections (established and closed
 * normally), failures by errno and by step, connections per second.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define REQ_BYTES 16
#define REPLY_BYTES 16
#define MAX_ERRNO 256
#define MAX_THREADS 256

enum step { STEP_SOCKET, STEP_CONNECT, STEP_WRITE, STEP_READ, STEP_EOF, STEP_MAX };
static const char *step_name[STEP_MAX] = { "socket", "connect", "write", "read", "eof" };

static struct {
	int threads, servers, close_order_client_first;
	double duration_s;
	long long count;
	int port;
} opt = { .threads = 4, .servers = 2, .duration_s = 5.0, .count = 0, .port = 0 };

static int listen_fd;
static struct sockaddr_in dst;
static atomic_llong tickets;   /* connection attempts handed out */
static atomic_llong completed; /* client side: established, reply read, EOF seen, closed */
static atomic_llong served;    /* server side: accepted, request read, reply written, closed */
static atomic_llong accept_errors;
static atomic_llong failed[STEP_MAX][MAX_ERRNO];
static atomic_bool stop;
static double deadline;

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static bool io_full(int fd, char *buf, size_t n, bool writing)
{
	size_t done = 0;

	while (done < n) {
		ssize_t r = writing ? write(fd, buf + done, n - done) : read(fd, buf + done, n - done);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			if (r == 0)
				errno = EPIPE;
			return false;
		}
		done += r;
	}
	return true;
}

static void fail(enum step s, int err)
{
	atomic_fetch_add(&failed[s][err < MAX_ERRNO ? err : 0], 1);
}

static void *server(void *arg)
{
	char buf[REQ_BYTES];
	(void)arg;

	for (;;) {
		int fd = accept(listen_fd, NULL, NULL);
		if (fd < 0) {
			if (atomic_load(&stop) && (errno == EINVAL || errno == EBADF))
				return NULL; /* the listener was shut down */
			if (errno != EINTR && errno != ECONNABORTED)
				atomic_fetch_add(&accept_errors, 1);
			if (atomic_load(&stop))
				return NULL;
			continue;
		}
		memset(buf, 's', sizeof(buf));
		if (io_full(fd, buf, REQ_BYTES, false) && io_full(fd, buf, REPLY_BYTES, true)) {
			if (opt.close_order_client_first) {
				/* Wait for the client's FIN, then close (TIME_WAIT on the client). */
				char c;
				while (read(fd, &c, 1) > 0)
					;
			}
			atomic_fetch_add(&served, 1);
		}
		close(fd);
	}
}

static void *client(void *arg)
{
	(void)arg;
	char buf[REPLY_BYTES + 1];
	unsigned n = 0;

	memset(buf, 'c', sizeof(buf));
	for (;;) {
		if (atomic_load_explicit(&stop, memory_order_relaxed))
			return NULL;
		long long t = atomic_fetch_add(&tickets, 1);
		if (opt.count && t >= opt.count)
			return NULL;
		if ((n++ & 255) == 0 && now_s() >= deadline) {
			atomic_store(&stop, true);
			atomic_fetch_sub(&tickets, 1); /* not attempted */
			return NULL;
		}
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		if (fd < 0) {
			fail(STEP_SOCKET, errno);
			continue;
		}
		if (connect(fd, (const struct sockaddr *)&dst, sizeof(dst)) < 0) {
			fail(STEP_CONNECT, errno);
			close(fd);
			continue;
		}
		if (!io_full(fd, buf, REQ_BYTES, true)) {
			fail(STEP_WRITE, errno);
			close(fd);
			continue;
		}
		if (!io_full(fd, buf, REPLY_BYTES, false)) {
			fail(STEP_READ, errno);
			close(fd);
			continue;
		}
		if (!opt.close_order_client_first) {
			ssize_t r;
			while ((r = read(fd, buf, sizeof(buf))) < 0 && errno == EINTR)
				;
			if (r != 0) { /* anything but a clean EOF */
				fail(STEP_EOF, r < 0 ? errno : EPROTO);
				close(fd);
				continue;
			}
		}
		close(fd);
		atomic_fetch_add(&completed, 1);
	}
}

static void usage(const char *argv0)
{
	fprintf(stderr,
		"usage: %s [--duration S] [--count N] [--threads T] [--servers S] [--port P]\n"
		"          [--client-closes-first]\n"
		"Open and close TCP connections on 127.0.0.1 as fast as possible; print JSON.\n"
		"  --duration S   stop after S seconds (default 5; 0 = only --count)\n"
		"  --count N      stop after N connection attempts (default 0 = only --duration)\n"
		"  --threads T    client threads (default 4)\n"
		"  --servers S    server threads blocked in accept() (default 2)\n"
		"  --port P       listen on this port (default 0: an ephemeral port)\n"
		"  --client-closes-first   the client closes first (TIME_WAIT on the client side)\n"
		"example: %s --duration 10 --threads 4\n",
		argv0, argv0);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "duration", required_argument, 0, 'd' }, { "count", required_argument, 0, 'n' },
		{ "threads", required_argument, 0, 't' },  { "servers", required_argument, 0, 's' },
		{ "port", required_argument, 0, 'p' },
		{ "client-closes-first", no_argument, 0, 'c' }, { "help", no_argument, 0, 'h' },
		{ 0, 0, 0, 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "d:n:t:s:p:ch", longopts, NULL)) != -1) {
		switch (c) {
		case 'd': opt.duration_s = atof(optarg); break;
		case 'n': opt.count = atoll(optarg); break;
		case 't': opt.threads = atoi(optarg); break;
		case 's': opt.servers = atoi(optarg); break;
		case 'p': opt.port = atoi(optarg); break;
		case 'c': opt.close_order_client_first = 1; break;
		case 'h': usage(argv[0]); return 0;
		default: usage(argv[0]); return 2;
		}
	}
	if (opt.threads < 1 || opt.threads > MAX_THREADS || opt.servers < 1 ||
	    opt.servers > MAX_THREADS ||
	    (opt.duration_s <= 0 && opt.count <= 0) || opt.duration_s > 600) {
		fprintf(stderr, "churn: bad arguments (need 1..256 threads and a "
				"duration <= 600 s or a count)\n");
		return 2;
	}

	listen_fd = socket(AF_INET, SOCK_STREAM, 0);
	int one = 1;
	setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(opt.port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	if (bind(listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(listen_fd, 4096) < 0) {
		perror("churn: bind/listen on 127.0.0.1");
		return 1;
	}
	socklen_t len = sizeof(sa);
	getsockname(listen_fd, (struct sockaddr *)&sa, &len);
	int port = ntohs(sa.sin_port);
	dst = sa;
	fprintf(stderr, "churn: listening on 127.0.0.1:%d, %d client threads, %d server threads\n",
		port, opt.threads, opt.servers);

	pthread_t srv[MAX_THREADS], cli[MAX_THREADS];
	for (int i = 0; i < opt.servers; i++)
		pthread_create(&srv[i], NULL, server, NULL);
	double t0 = now_s();
	deadline = opt.duration_s > 0 ? t0 + opt.duration_s : t0 + 600;
	for (long i = 0; i < opt.threads; i++)
		pthread_create(&cli[i], NULL, client, (void *)i);
	for (int i = 0; i < opt.threads; i++)
		pthread_join(cli[i], NULL);
	double elapsed = now_s() - t0;
	atomic_store(&stop, true);
	/* Every client finished its last connection, so the server has nothing half-done:
	 * wake the acceptors and let them go. */
	shutdown(listen_fd, SHUT_RDWR);
	for (int i = 0; i < opt.servers; i++)
		pthread_join(srv[i], NULL);
	close(listen_fd);

	long long attempts = atomic_load(&tickets);
	if (opt.count && attempts > opt.count)
		attempts = opt.count;
	long long nfail = 0;
	printf("{\"port\": %d, \"threads\": %d, \"servers\": %d, \"close_first\": \"%s\", "
	       "\"elapsed_s\": %.6f, \"attempts\": %lld, \"completed\": %lld, \"served\": %lld, "
	       "\"accept_errors\": %lld, \"failed\": {",
	       port, opt.threads, opt.servers, opt.close_order_client_first ? "client" : "server",
	       elapsed, attempts, (long long)atomic_load(&completed),
	       (long long)atomic_load(&served), (long long)atomic_load(&accept_errors));
	const char *sep = "";
	for (int s = 0; s < STEP_MAX; s++)
		for (int e = 0; e < MAX_ERRNO; e++) {
			long long n = atomic_load(&failed[s][e]);
			if (!n)
				continue;
			const char *name = strerrorname_np(e);
			printf("%s\"%s:%s\": %lld", sep, step_name[s], name ? name : "?", n);
			sep = ", ";
			nfail += n;
		}
	printf("}, \"failed_total\": %lld, \"conn_per_s\": %.1f}\n", nfail,
	       atomic_load(&completed) / elapsed);
	return 0;
}
