// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * flows: N TCP connections on loopback, each with its own 4-tuple.
 *
 * Connection i binds its client socket to 127.a.b.c = 127.1.0.0 + i (the whole of 127/8 is
 * local), so no two connections share a 4-tuple: N connections are N distinct flows, which
 * ephemeral ports alone (~28,000 of them) could not give. The server listens on --ports
 * consecutive ports from --base-port; connection i goes to base + i % ports. The client
 * connects and closes at once; epoll threads accept and close.
 *
 * Bounded by --count and --duration (whichever first). Prints one JSON object: attempts,
 * connected, failed, seconds.
 *
 *   cc -O2 -pthread -o flows flows.c && ./flows --count 1000000 --ports 2000
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_THREADS 64

static long long count = 100000;
static int ports = 64, base_port = 30000, threads = 2, servers = 2;
static double duration_s = 120;
static atomic_llong next_conn, connected, failed;
static atomic_int stop;
static int epfd;

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void *server(void *arg)
{
	struct epoll_event ev[64];

	(void)arg;
	while (!atomic_load(&stop)) {
		int n = epoll_wait(epfd, ev, 64, 100);
		for (int i = 0; i < n; i++) {
			int c;
			while ((c = accept4(ev[i].data.fd, NULL, NULL, SOCK_NONBLOCK)) >= 0)
				close(c);
		}
	}
	return NULL;
}

static void *client(void *arg)
{
	double deadline = *(double *)arg;

	for (;;) {
		long long i = atomic_fetch_add(&next_conn, 1);
		if (i >= count || now_s() > deadline)
			return NULL;
		unsigned int host = 0x7f010000u + (unsigned int)i; /* 127.1.0.0 + i */
		struct sockaddr_in src = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(host) };
		struct sockaddr_in dst = { .sin_family = AF_INET,
					   .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
					   .sin_port = htons(base_port + i % ports) };
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		if (fd < 0 || bind(fd, (void *)&src, sizeof(src)) ||
		    connect(fd, (void *)&dst, sizeof(dst)))
			atomic_fetch_add(&failed, 1);
		else
			atomic_fetch_add(&connected, 1);
		if (fd >= 0)
			close(fd);
	}
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "count", required_argument, 0, 'n' },    { "ports", required_argument, 0, 'p' },
		{ "base-port", required_argument, 0, 'b' }, { "threads", required_argument, 0, 't' },
		{ "duration", required_argument, 0, 'd' },  { 0, 0, 0, 0 },
	};
	int o;
	pthread_t srv[MAX_THREADS], cli[MAX_THREADS];

	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 'n': count = atoll(optarg); break;
		case 'p': ports = atoi(optarg); break;
		case 'b': base_port = atoi(optarg); break;
		case 't': threads = atoi(optarg); break;
		case 'd': duration_s = atof(optarg); break;
		default:
			fprintf(stderr, "usage: %s [--count N] [--ports K] [--base-port P] "
					"[--threads T] [--duration S]\n", argv[0]);
			return 2;
		}
	}
	if (threads < 1 || threads > MAX_THREADS || ports < 1 || base_port + ports > 65535 ||
	    count > 0xFEFFFF) {
		fprintf(stderr, "flows: bad arguments\n");
		return 2;
	}
	epfd = epoll_create1(0);
	for (int p = 0; p < ports; p++) {
		int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
		struct sockaddr_in a = { .sin_family = AF_INET,
					 .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
					 .sin_port = htons(base_port + p) };
		struct epoll_event ev = { .events = EPOLLIN, .data.fd = fd };
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, (void *)&a, sizeof(a)) || listen(fd, 4096) ||
		    epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev)) {
			perror("flows: listen");
			return 1;
		}
	}
	double t0 = now_s(), deadline = t0 + duration_s;
	for (int i = 0; i < servers; i++)
		pthread_create(&srv[i], NULL, server, NULL);
	for (int i = 0; i < threads; i++)
		pthread_create(&cli[i], NULL, client, &deadline);
	for (int i = 0; i < threads; i++)
		pthread_join(cli[i], NULL);
	atomic_store(&stop, 1);
	for (int i = 0; i < servers; i++)
		pthread_join(srv[i], NULL);
	long long attempts = atomic_load(&next_conn);
	printf("{\"attempts\": %lld, \"connected\": %lld, \"failed\": %lld, \"seconds\": %.3f}\n",
	       attempts < count ? attempts : count, atomic_load(&connected), atomic_load(&failed),
	       now_s() - t0);
	return 0;
}
