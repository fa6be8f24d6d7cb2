/* SPDX-License-Identifier: MIT */
/* Hostile and pipelined DNS clients for the nameserver tests (t/32-*.t). */
#include <sys/socket.h>
#include <sys/time.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/*
 * dns_tool garbage ADDR PORT COUNT SEED   random and mutated UDP datagrams
 * dns_tool tcpjunk ADDR PORT COUNT SEED   broken TCP streams, then close
 * dns_tool hold ADDR PORT COUNT SECONDS   connections sending one byte, held
 * dns_tool pipeline ADDR PORT NAME COUNT  COUNT queries in one TCP write;
 *                                         prints how many were answered
 * Traffic goes only to ADDR, which the tests keep in their own namespace.
 */

static struct sockaddr_in dst;

static void
usage(void)
{
	fprintf(stderr, "usage: dns_tool garbage|tcpjunk|hold|pipeline "
	    "ADDR PORT ARGS...\n");
	exit(64);
}

/* A well-formed query for name/type with id, EDNS if udp is non-zero. */
static size_t
query(uint8_t *b, uint16_t id, const char *name, uint16_t type,
    uint16_t udp)
{
	size_t n = 12, l;
	const char *p = name, *dot;

	memset(b, 0, 12);
	b[0] = id >> 8;
	b[1] = id;
	b[2] = 0x01;			/* RD */
	b[5] = 1;
	b[11] = udp ? 1 : 0;
	while (*p != '\0') {
		dot = strchr(p, '.');
		l = dot != NULL ? (size_t)(dot - p) : strlen(p);
		b[n++] = (uint8_t)l;
		memcpy(b + n, p, l);
		n += l;
		p += l + (dot != NULL);
	}
	b[n++] = 0;
	b[n++] = type >> 8;
	b[n++] = type;
	b[n++] = 0;
	b[n++] = 1;
	if (udp) {
		memset(b + n, 0, 11);
		b[n + 2] = 41;
		b[n + 3] = udp >> 8;
		b[n + 4] = udp;
		n += 11;
	}
	return n;
}

/* One hostile datagram: random, or a valid query bent in some way. */
static size_t
garbage(uint8_t *b, size_t cap)
{
	size_t n, i;

	switch (rand() % 8) {
	case 0:					/* pure noise */
		n = (size_t)rand() % 600;
		for (i = 0; i < n; i++)
			b[i] = (uint8_t)rand();
		return n;
	case 1:					/* too short */
		n = (size_t)rand() % 12;
		for (i = 0; i < n; i++)
			b[i] = (uint8_t)rand();
		return n;
	case 2:					/* a compression loop */
		n = query(b, (uint16_t)rand(), "loop.test", 1, 0);
		b[12] = 0xc0;
		b[13] = 12;
		return n;
	case 3:					/* a forward pointer */
		n = query(b, (uint16_t)rand(), "fwd.test", 1, 0);
		b[12] = 0xc0;
		b[13] = (uint8_t)(n - 1);
		return n;
	case 4:					/* counts that lie */
		n = query(b, (uint16_t)rand(), "count.test", 1, 512);
		b[4 + 2 * (rand() % 4)] = (uint8_t)rand();
		b[5 + 2 * (rand() % 4)] = (uint8_t)rand();
		return n;
	case 5:					/* truncated anywhere */
		n = query(b, (uint16_t)rand(), "cut.example.test", 28, 4096);
		return (size_t)rand() % n;
	case 6:					/* a response, or an odd opcode */
		n = query(b, (uint16_t)rand(), "resp.test", 1, 0);
		b[2] |= (uint8_t)(rand() % 2 ? 0x80 : 0x78);
		return n;
	default:				/* bit flips */
		n = query(b, (uint16_t)rand(), "web.corp.test", 1, 1232);
		for (i = 0; i < 1 + (size_t)rand() % 4; i++)
			b[(size_t)rand() % n] ^= (uint8_t)(1 << (rand() % 8));
		if (rand() % 4 == 0 && n + 8 <= cap) {
			for (i = 0; i < 8; i++)
				b[n + i] = (uint8_t)rand();
			n += 8;		/* trailing bytes */
		}
		return n;
	}
}

static int
cmd_garbage(int count)
{
	uint8_t b[1024], junk[4096];
	int fd, i, sent = 0;

	if ((fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0)) == -1)
		return 1;
	for (i = 0; i < count; i++) {
		size_t n = garbage(b, sizeof(b));

		if (sendto(fd, b, n, 0, (struct sockaddr *)&dst,
		    sizeof(dst)) != -1)
			sent++;
		else if (errno == EAGAIN)
			usleep(1000);
		while (recv(fd, junk, sizeof(junk), 0) > 0)
			;		/* replies: not the point */
		if (i % 200 == 199)
			usleep(2000);	/* stay under the socket buffers */
	}
	close(fd);
	printf("sent %d\n", sent);
	return 0;
}

static int
tcp_connect(void)
{
	struct timeval tv = { 5, 0 };
	int fd;

	if ((fd = socket(AF_INET, SOCK_STREAM, 0)) == -1)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&dst, sizeof(dst)) == -1) {
		close(fd);
		return -1;
	}
	return fd;
}

static int
cmd_tcpjunk(int count)
{
	uint8_t b[1200];
	size_t n, i;
	int fd, k, done = 0;

	for (k = 0; k < count; k++) {
		if ((fd = tcp_connect()) == -1)
			continue;
		n = query(b + 2, (uint16_t)k, "web.corp.test", 1, 0);
		b[0] = (uint8_t)(n >> 8);
		b[1] = (uint8_t)n;
		switch (k % 5) {
		case 0:		/* the length prefix only */
			n = 2;
			break;
		case 1:		/* half a message */
			n = 2 + n / 2;
			break;
		case 2:		/* a huge length, a few bytes */
			b[0] = b[1] = 0xff;
			n = 10;
			break;
		case 3:		/* a zero length */
			b[0] = b[1] = 0;
			n = 2;
			break;
		default:	/* noise */
			n = (size_t)rand() % sizeof(b);
			for (i = 0; i < n; i++)
				b[i] = (uint8_t)rand();
		}
		if (write(fd, b, n) == (ssize_t)n)
			done++;
		close(fd);
	}
	printf("broken %d\n", done);
	return 0;
}

static int
cmd_hold(int count, int seconds)
{
	int *fds, i, open = 0;

	if ((fds = calloc((size_t)count, sizeof(*fds))) == NULL)
		return 1;
	for (i = 0; i < count; i++) {
		if ((fds[i] = tcp_connect()) == -1)
			continue;
		if (write(fds[i], "\0", 1) == 1)
			open++;
	}
	printf("holding %d\n", open);
	fflush(stdout);
	sleep((unsigned)seconds);
	for (i = 0; i < count; i++)
		if (fds[i] != -1)
			close(fds[i]);
	free(fds);
	return 0;
}

static int
read_full(int fd, uint8_t *b, size_t n)
{
	ssize_t r;
	size_t got = 0;

	while (got < n) {
		if ((r = read(fd, b + got, n - got)) <= 0)
			return -1;
		got += (size_t)r;
	}
	return 0;
}

/* Every query written at once; answers counted by id, in any order. */
static int
cmd_pipeline(const char *name, int count)
{
	uint8_t *out, b[65536], *seen;
	size_t len = 0, n;
	int fd, i, answered = 0;

	if (count < 1 || count > 65535 ||
	    (out = malloc((size_t)count * 300)) == NULL ||
	    (seen = calloc(65536, 1)) == NULL)
		return 1;
	for (i = 0; i < count; i++) {
		n = query(out + len + 2, (uint16_t)(i + 1), name, 1, 0);
		out[len] = (uint8_t)(n >> 8);
		out[len + 1] = (uint8_t)n;
		len += 2 + n;
	}
	if ((fd = tcp_connect()) == -1 || write(fd, out, len) != (ssize_t)len) {
		free(out);
		free(seen);
		return 1;
	}
	for (i = 0; i < count; i++) {
		if (read_full(fd, b, 2) == -1)
			break;
		n = (size_t)b[0] << 8 | b[1];
		if (n < 12 || read_full(fd, b, n) == -1)
			break;
		if ((b[2] & 0x80) && (b[3] & 0xf) == 0 &&
		    (b[6] << 8 | b[7]) >= 1 && !seen[b[0] << 8 | b[1]]) {
			seen[b[0] << 8 | b[1]] = 1;
			answered++;
		}
	}
	close(fd);
	free(out);
	free(seen);
	printf("answered %d\n", answered);
	return answered == count ? 0 : 1;
}

int
main(int argc, char **argv)
{
	if (argc < 5)
		usage();
	memset(&dst, 0, sizeof(dst));
	dst.sin_family = AF_INET;
	dst.sin_port = htons((uint16_t)atoi(argv[3]));
	if (inet_pton(AF_INET, argv[2], &dst.sin_addr) != 1)
		usage();
	srand(argc > 5 ? (unsigned)atoi(argv[5]) : (unsigned)time(NULL));
	if (strcmp(argv[1], "garbage") == 0)
		return cmd_garbage(atoi(argv[4]));
	if (strcmp(argv[1], "tcpjunk") == 0)
		return cmd_tcpjunk(atoi(argv[4]));
	if (strcmp(argv[1], "hold") == 0 && argc > 5)
		return cmd_hold(atoi(argv[4]), atoi(argv[5]));
	if (strcmp(argv[1], "pipeline") == 0 && argc > 5)
		return cmd_pipeline(argv[4], atoi(argv[5]));
	usage();
	return 64;
}
