/* SPDX-License-Identifier: MIT */
/*
 * UDP clients and an echo server for the UDP tests.
 *
 *   udp_tool echo ADDR PORT [TAG]
 *	echoes every datagram back to its sender, prefixed with TAG if set;
 *	runs until killed.
 *   udp_tool flows N ADDR PORT SIZE [TAG]
 *	N clients, each with a connected socket of its own (so that a reply
 *	from any other address than ADDR:PORT is never seen), send one
 *	datagram of SIZE bytes with contents of their own and wait up to 3 s
 *	for it back (after TAG); prints "N ok" and exits 0 if every one came
 *	back whole, else says which did not and exits 1.
 */
#include <sys/socket.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_DGRAM	65536
#define MAX_FLOWS	1024

static int
parse_addr(const char *host, const char *port, struct sockaddr_storage *ss,
    socklen_t *len)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons(atoi(port));
		*len = sizeof(*sin);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(atoi(port));
		*len = sizeof(*sin6);
		return 0;
	}
	fprintf(stderr, "udp_tool: bad address %s\n", host);
	return -1;
}

static int
echo(int argc, char **argv)
{
	struct sockaddr_storage ss, peer;
	socklen_t len, plen;
	static unsigned char buf[MAX_DGRAM + 256];
	const char *tag = argc > 4 ? argv[4] : "";
	size_t tlen = strlen(tag);
	ssize_t n;
	int fd, one = 1;

	if (parse_addr(argv[2], argv[3], &ss, &len) == -1)
		return 2;
	if ((fd = socket(ss.ss_family, SOCK_DGRAM, 0)) == -1 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ==
	    -1 || bind(fd, (struct sockaddr *)&ss, len) == -1) {
		perror("udp_tool echo");
		return 2;
	}
	memcpy(buf, tag, tlen);
	for (;;) {
		plen = sizeof(peer);
		n = recvfrom(fd, buf + tlen, MAX_DGRAM, 0,
		    (struct sockaddr *)&peer, &plen);
		if (n == -1)
			continue;
		(void)sendto(fd, buf, tlen + n, 0, (struct sockaddr *)&peer,
		    plen);
	}
}

/* Each client's datagram: its index and a pattern, so mixups show. */
static void
fill(unsigned char *buf, size_t size, int i)
{
	size_t k;

	for (k = 0; k < size; k++)
		buf[k] = (unsigned char)(i * 31 + k * 7);
}

static int
flows(int argc, char **argv)
{
	struct sockaddr_storage ss;
	socklen_t len;
	static unsigned char want[MAX_DGRAM + 256], got[MAX_DGRAM + 512];
	static int fds[MAX_FLOWS];
	struct pollfd pfd;
	int n = atoi(argv[2]), i, good = 0, rc;
	size_t size = strtoul(argv[5], NULL, 10);
	const char *tag = argc > 6 ? argv[6] : "";
	size_t tlen = strlen(tag);
	ssize_t r;

	if (n < 1 || n > MAX_FLOWS || size > MAX_DGRAM - 100 ||
	    parse_addr(argv[3], argv[4], &ss, &len) == -1)
		return 2;
	for (i = 0; i < n; i++) {
		if ((fds[i] = socket(ss.ss_family, SOCK_DGRAM, 0)) == -1 ||
		    connect(fds[i], (struct sockaddr *)&ss, len) == -1) {
			perror("udp_tool flows");
			return 2;
		}
		fill(want, size, i);
		if (send(fds[i], want, size, 0) != (ssize_t)size) {
			fprintf(stderr, "flow %d: send: %s\n", i,
			    strerror(errno));
			return 1;
		}
	}
	for (i = 0; i < n; i++) {
		pfd.fd = fds[i];
		pfd.events = POLLIN;
		rc = poll(&pfd, 1, 3000);
		if (rc != 1) {
			fprintf(stderr, "flow %d: no reply\n", i);
			continue;
		}
		r = recv(fds[i], got, sizeof(got), 0);
		memcpy(want, tag, tlen);
		fill(want + tlen, size, i);
		if (r != (ssize_t)(tlen + size) ||
		    memcmp(got, want, tlen + size) != 0) {
			fprintf(stderr, "flow %d: reply of %zd bytes, want "
			    "%zu%s\n", i, r, tlen + size,
			    r > 0 ? " (or different bytes)" : "");
			continue;
		}
		good++;
	}
	printf("%d ok\n", good);
	return good == n ? 0 : 1;
}

int
main(int argc, char **argv)
{
	if (argc >= 4 && strcmp(argv[1], "echo") == 0)
		return echo(argc, argv);
	if (argc >= 6 && strcmp(argv[1], "flows") == 0)
		return flows(argc, argv);
	fprintf(stderr, "usage: udp_tool echo ADDR PORT [TAG]\n"
	    "       udp_tool flows N ADDR PORT SIZE [TAG]\n");
	return 2;
}
