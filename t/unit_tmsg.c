/* SPDX-License-Identifier: MIT */
/* Unit tests for src/tunnel_msg.c: the opening message and its reply. */
#include "config.h"

#include <sys/socket.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tunnel.h"
#include "tap.h"

#define B(s)	s, sizeof(s) - 1
/* Bodies in pieces: protocol and name, then addresses (octal, no hex runs). */
#define WEB	"\6\3web"
#define DST4	"\4\12\0\0\1\0\120"		/* 10.0.0.1:80 */
#define SRC4	"\4\300\250\1\2\25\263"		/* 192.168.1.2:5555 */
/* [2001:db8::1]:443 */
#define DST6	"\6\40\1\15\270\0\0\0\0\0\0\0\0\0\0\0\1\1\273"

static struct sockaddr_storage
sa(const char *addr, uint16_t port)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, addr, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
	} else if (inet_pton(AF_INET6, addr, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
	} else
		abort();
	return ss;
}

static struct tmsg_open
mkopen(uint8_t proto, const char *service, const char *dst, uint16_t dport,
    const char *src, uint16_t sport)
{
	struct tmsg_open m;

	memset(&m, 0, sizeof(m));
	m.proto = proto;
	strcpy(m.service, service);
	m.dst = sa(dst, dport);
	m.src = sa(src, sport);
	return m;
}

/* A message from raw parts; declared < 0: the body's own length. */
static size_t
mkraw(uint8_t *out, uint8_t version, uint8_t type, const char *body,
    size_t len, int declared)
{
	size_t n = declared < 0 ? len : (size_t)declared;

	out[0] = 'S';
	out[1] = 'L';
	out[2] = version;
	out[3] = type;
	out[4] = (uint8_t)(n >> 8);
	out[5] = (uint8_t)n;
	memcpy(out + TMSG_HDR, body, len);
	return TMSG_HDR + len;
}

static char *
repeat(char *buf, int c, size_t n)
{
	memset(buf, c, n);
	buf[n] = '\0';
	return buf;
}

/* Every shorter prefix of a good message asks for more. */
static void
check_prefixes(const uint8_t *buf, size_t n, int open, const char *what)
{
	struct tmsg_open o;
	struct tmsg_reply r;
	const char *why;
	size_t i;
	int status, bad = 0;

	for (i = 0; i < n; i++)
		if ((open ? tmsg_open_parse(buf, i, &o, &status, &why) :
		    tmsg_reply_parse(buf, i, &r, &why)) != 0)
			bad++;
	ok(bad == 0, "%s: all %zu prefixes need more", what, n);
}

static void
open_roundtrip(const struct tmsg_open *m, const char *what)
{
	uint8_t buf[TMSG_MAX * 2 + 16];
	struct tmsg_open got, next;
	const char *why = NULL;
	ssize_t n, n2;
	int status = -1;

	n = tmsg_open_encode(m, buf, TMSG_MAX);
	if (!ok(n > TMSG_HDR && n <= TMSG_MAX, "%s: encoded (%zd bytes)",
	    what, n))
		return;
	is_int((size_t)buf[4] << 8 | buf[5], n - TMSG_HDR,
	    "%s: body length in the header", what);
	is_int(tmsg_open_parse(buf, (size_t)n, &got, &status, &why), n,
	    "%s: parsed", what);
	ok(memcmp(&got, m, sizeof(got)) == 0, "%s: same message back", what);
	ok(why == NULL && status == -1, "%s: why and status untouched",
	    what);
	check_prefixes(buf, (size_t)n, 1, what);

	/* Pipelined: a second message and a stray byte behind the first. */
	next = mkopen(IPPROTO_UDP, "next", "192.0.2.9", 53, "::1", 9);
	n2 = tmsg_open_encode(&next, buf + n, sizeof(buf) - (size_t)n - 1);
	buf[n + n2] = 'S';
	is_int(tmsg_open_parse(buf, (size_t)(n + n2 + 1), &got, &status,
	    &why), n, "%s: followed by more, its own length", what);
	ok(memcmp(&got, m, sizeof(got)) == 0, "%s: and itself", what);
	is_int(tmsg_open_parse(buf + n, (size_t)n2 + 1, &got, &status, &why),
	    n2, "%s: then the next one", what);
	ok(memcmp(&got, &next, sizeof(got)) == 0, "%s: whole", what);
}

static void
test_open_roundtrips(void)
{
	char name[256];
	struct tmsg_open m;

	m = mkopen(IPPROTO_TCP, "web", "10.0.0.1", 80, "192.168.1.2", 5555);
	open_roundtrip(&m, "v4 tcp");
	m = mkopen(IPPROTO_UDP, "dns", "10.0.0.1", 53, "10.9.8.7", 40000);
	open_roundtrip(&m, "v4 udp");
	m = mkopen(IPPROTO_TCP, "db", "2001:db8::1", 5432, "fd00::2", 1);
	open_roundtrip(&m, "v6 tcp");
	m = mkopen(IPPROTO_UDP, "q", "2001:db8::53", 65535, "::", 0);
	open_roundtrip(&m, "v6 udp, 1-byte name, source port 0");
	m = mkopen(IPPROTO_TCP, repeat(name, '~', 255), "2001:db8::1", 1,
	    "10.0.0.2", 2);
	open_roundtrip(&m, "v6 destination, v4 source, 255-byte name");
	m = mkopen(IPPROTO_UDP, repeat(name, '!', 255), "10.0.0.1", 443,
	    "2001:db8::ffff", 65535);
	open_roundtrip(&m, "v4 destination, v6 source, 255-byte name");
}

/* The exact bytes, so that both ends agree on more than a round trip. */
static void
test_open_bytes(void)
{
	static const char want[] = "SL\1\1\0\23" WEB DST4 SRC4;
	uint8_t buf[TMSG_MAX];
	struct tmsg_open m, got;
	struct sockaddr_in *sin = (struct sockaddr_in *)&got.dst;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&got.dst;
	const char *why;
	ssize_t n;
	int status;

	m = mkopen(IPPROTO_TCP, "web", "10.0.0.1", 80, "192.168.1.2", 5555);
	n = tmsg_open_encode(&m, buf, sizeof(buf));
	is_int(n, sizeof(want) - 1, "v4 open: length");
	ok(n == sizeof(want) - 1 && memcmp(buf, want, (size_t)n) == 0,
	    "v4 open: exact bytes, big endian");
	is_int(tmsg_open_parse((const uint8_t *)want, sizeof(want) - 1, &got,
	    &status, &why), sizeof(want) - 1, "v4 open: hand-made bytes parse");
	ok(got.proto == IPPROTO_TCP && strcmp(got.service, "web") == 0,
	    "v4 open: protocol and service");
	ok(sin->sin_family == AF_INET && sin->sin_port == htons(80) &&
	    sin->sin_addr.s_addr == htonl(0x0a000001),
	    "v4 open: destination in network byte order");

	n = mkraw(buf, 1, TMSG_OPEN, B("\21\1u" DST6 SRC4), -1);
	is_int(tmsg_open_parse(buf, (size_t)n, &got, &status, &why), n,
	    "v6 open: hand-made bytes parse");
	ok(got.proto == IPPROTO_UDP && strcmp(got.service, "u") == 0 &&
	    sin6->sin6_family == AF_INET6 && sin6->sin6_port == htons(443) &&
	    sin6->sin6_addr.s6_addr[0] == 0x20 &&
	    sin6->sin6_addr.s6_addr[15] == 1 && sin6->sin6_flowinfo == 0 &&
	    sin6->sin6_scope_id == 0, "v6 open: fields");
}

struct bad {
	const char	*what;
	uint8_t		 version, type;
	const char	*body;
	size_t		 len;
	int		 declared;	/* body length in the header; -1: len */
	const char	*why;
	int		 status;
};

#define BAD	TMSG_BAD_REQUEST
#define UNSUP	TMSG_UNSUPPORTED
#define SHORT	"body shorter than its contents"

static const struct bad bad_open[] = {
	{ "version 2", 2, 1, B(WEB DST4 SRC4), -1,
	    "version 2, this host speaks 1", UNSUP },
	{ "version 0", 0, 1, B(WEB DST4 SRC4), -1,
	    "version 0, this host speaks 1", UNSUP },
	{ "version 255", 255, 1, B(WEB DST4 SRC4), -1,
	    "version 255, this host speaks 1", UNSUP },
	{ "a reply", 1, 2, B("\0\0"), -1,
	    "a reply where an open was expected", BAD },
	{ "type 0", 1, 0, B(WEB DST4 SRC4), -1, "unknown message type",
	    UNSUP },
	{ "type 3", 1, 3, B(WEB DST4 SRC4), -1, "unknown message type",
	    UNSUP },
	{ "body length 513", 1, 1, B(WEB DST4 SRC4), 513,
	    "body longer than the maximum", BAD },
	{ "body length 65535", 1, 1, B(WEB DST4 SRC4), 65535,
	    "body longer than the maximum", BAD },
	{ "empty body", 1, 1, B(""), -1, SHORT, BAD },
	{ "protocol 1", 1, 1, B("\1\3web" DST4 SRC4), -1,
	    "unknown protocol", UNSUP },
	{ "protocol 0", 1, 1, B("\0\3web" DST4 SRC4), -1,
	    "unknown protocol", UNSUP },
	{ "protocol 132, else fine", 1, 1, B("\204\3web" DST4 SRC4), -1,
	    "unknown protocol", UNSUP },
	{ "empty service name", 1, 1, B("\6\0" DST4 SRC4), -1,
	    "empty service name", BAD },
	{ "name longer than the body", 1, 1, B("\6\377web" DST4 SRC4), -1,
	    SHORT, BAD },
	{ "name with a space", 1, 1, B("\6\3w b" DST4 SRC4), -1,
	    "service name not printable", BAD },
	{ "name with NUL", 1, 1, B("\6\3w\0b" DST4 SRC4), -1,
	    "service name not printable", BAD },
	{ "name with DEL", 1, 1, B("\6\3w\177b" DST4 SRC4), -1,
	    "service name not printable", BAD },
	{ "name with 0x80", 1, 1, B("\6\3w\200b" DST4 SRC4), -1,
	    "service name not printable", BAD },
	{ "name with newline", 1, 1, B("\6\3we\n" DST4 SRC4), -1,
	    "service name not printable", BAD },
	{ "destination family 5", 1, 1, B(WEB "\5\12\0\0\1\0\120" SRC4), -1,
	    "bad address family", BAD },
	{ "destination family AF_INET6 (10)", 1, 1,
	    B(WEB "\12\12\0\0\1\0\120" SRC4), -1, "bad address family", BAD },
	{ "source family 0", 1, 1, B(WEB DST4 "\0\300\250\1\2\25\263"), -1,
	    "bad address family", BAD },
	{ "destination port 0", 1, 1, B(WEB "\4\12\0\0\1\0\0" SRC4), -1,
	    "destination port 0", BAD },
	{ "v6 destination port 0", 1, 1, B(WEB "\6\40\1\15\270\0\0\0\0\0\0\0"
	    "\0\0\0\0\1\0\0" SRC4), -1, "destination port 0", BAD },
	{ "no source", 1, 1, B(WEB DST4), -1, SHORT, BAD },
	{ "source without its port", 1, 1, B(WEB DST4 "\4\300\250\1\2"), -1,
	    SHORT, BAD },
	{ "v6 family with a v4 address", 1, 1, B(WEB "\6\12\0\0\1\0\120"
	    SRC4), -1, SHORT, BAD },
	{ "one trailing byte", 1, 1, B(WEB DST4 SRC4 "\0"), -1,
	    "trailing bytes in body", BAD },
	{ "a second source", 1, 1, B(WEB DST4 SRC4 SRC4), -1,
	    "trailing bytes in body", BAD },
	{ "body length one short", 1, 1, B(WEB DST4 SRC4), 18, SHORT, BAD },
};

static const struct bad bad_reply[] = {
	{ "version 2", 2, 2, B("\0\0"), -1,
	    "version 2, this host speaks 1", UNSUP },
	{ "an open", 1, 1, B(WEB DST4 SRC4), -1,
	    "an open where a reply was expected", BAD },
	{ "type 7", 1, 7, B("\0\0"), -1, "unknown message type", UNSUP },
	{ "body length 600", 1, 2, B("\0\0"), 600,
	    "body longer than the maximum", BAD },
	{ "empty body", 1, 2, B(""), -1, SHORT, BAD },
	{ "no reason length", 1, 2, B("\4"), -1, SHORT, BAD },
	{ "reason longer than the body", 1, 2, B("\4\5no"), -1, SHORT, BAD },
	{ "reason with a tab", 1, 2, B("\4\3a\tb"), -1,
	    "reason not printable", BAD },
	{ "reason with DEL", 1, 2, B("\4\1\177"), -1,
	    "reason not printable", BAD },
	{ "reason with NUL", 1, 2, B("\4\2a\0"), -1,
	    "reason not printable", BAD },
	{ "trailing byte", 1, 2, B("\4\2no!"), -1,
	    "trailing bytes in body", BAD },
};

static void
test_malformed(void)
{
	uint8_t buf[TMSG_MAX + 64];
	struct tmsg_open o;
	struct tmsg_reply r;
	const struct bad *t;
	const char *why;
	size_t i, n;
	int status;

	for (i = 0; i < sizeof(bad_open) / sizeof(bad_open[0]); i++) {
		t = &bad_open[i];
		n = mkraw(buf, t->version, t->type, t->body, t->len,
		    t->declared);
		why = NULL;
		status = -1;
		is_int(tmsg_open_parse(buf, n, &o, &status, &why), -1,
		    "open, %s: refused", t->what);
		is_str(why, t->why, "open, %s: why", t->what);
		is_int(status, t->status, "open, %s: status", t->what);
	}
	for (i = 0; i < sizeof(bad_reply) / sizeof(bad_reply[0]); i++) {
		t = &bad_reply[i];
		n = mkraw(buf, t->version, t->type, t->body, t->len,
		    t->declared);
		why = NULL;
		is_int(tmsg_reply_parse(buf, n, &r, &why), -1,
		    "reply, %s: refused", t->what);
		is_str(why, t->why, "reply, %s: why", t->what);
	}

	/* A wrong header byte is refused as soon as it arrives. */
	why = NULL;
	is_int(tmsg_open_parse((const uint8_t *)"X", 1, &o, &status, &why),
	    -1, "bad first byte alone: refused");
	is_str(why, "bad magic", "bad first byte alone: why");
	is_int(status, BAD, "bad first byte alone: status");
	is_int(tmsg_open_parse((const uint8_t *)"SM\1\1\0\0", 6, &o, &status,
	    &why), -1, "bad second byte: refused");
	is_str(why, "bad magic", "bad second byte: why");
	is_int(tmsg_reply_parse((const uint8_t *)"GET / HTTP/1.1\r\n", 16, &r,
	    &why), -1, "HTTP request as a reply: refused");
	is_str(why, "bad magic", "HTTP request as a reply: why");
	is_int(tmsg_open_parse((const uint8_t *)"SL\2", 3, &o, &status,
	    &why), -1, "newer version in a 3-byte prefix: refused");
	is_int(status, UNSUP, "newer version in a 3-byte prefix: status");
	is_int(tmsg_open_parse((const uint8_t *)"SL\1\1\2", 5, &o, &status,
	    &why), 0, "5 bytes of header: need more");
	is_int(tmsg_open_parse((const uint8_t *)"", 0, &o, &status, &why), 0,
	    "nothing: need more");
	n = mkraw(buf, 1, 1, B(WEB DST4 SRC4), 512);
	is_int(tmsg_open_parse(buf, n, &o, &status, &why), 0,
	    "body length 512, 19 bytes of it: need more");
}

static void
test_open_encode_refuses(void)
{
	uint8_t buf[TMSG_MAX];
	struct tmsg_open m, good;
	ssize_t n;
	size_t i;
	int bad = 0;

	good = mkopen(IPPROTO_TCP, "web", "2001:db8::1", 443, "10.0.0.2", 9);
	m = good;
	m.service[0] = '\0';
	is_int(tmsg_open_encode(&m, buf, sizeof(buf)), -1, "empty name");
	memset(m.service, 'a', sizeof(m.service));
	is_int(tmsg_open_encode(&m, buf, sizeof(buf)), -1,
	    "256-byte name without NUL");
	strcpy(m.service, "we b");
	is_int(tmsg_open_encode(&m, buf, sizeof(buf)), -1, "name with space");
	strcpy(m.service, "w\xe9");
	is_int(tmsg_open_encode(&m, buf, sizeof(buf)), -1, "name with 0xe9");
	m = good;
	m.proto = IPPROTO_ICMP;
	is_int(tmsg_open_encode(&m, buf, sizeof(buf)), -1, "protocol icmp");
	m = good;
	m.dst = sa("2001:db8::1", 0);
	is_int(tmsg_open_encode(&m, buf, sizeof(buf)), -1,
	    "destination port 0");
	m = good;
	m.dst.ss_family = AF_UNSPEC;
	is_int(tmsg_open_encode(&m, buf, sizeof(buf)), -1,
	    "destination AF_UNSPEC");
	m = good;
	m.src.ss_family = AF_UNIX;
	is_int(tmsg_open_encode(&m, buf, sizeof(buf)), -1, "source AF_UNIX");

	n = tmsg_open_encode(&good, buf, sizeof(buf));
	ok(n > 0, "good message: %zd bytes", n);
	is_int(tmsg_open_encode(&good, buf, (size_t)n), n,
	    "fits a buffer of exactly its length");
	for (i = 0; i < (size_t)n; i++)
		if (tmsg_open_encode(&good, buf, i) != -1)
			bad++;
	ok(bad == 0, "every smaller buffer (0..%zd bytes): -1", n - 1);
}

static void
reply_roundtrip(uint8_t status, const char *reason, const char *what)
{
	uint8_t buf[TMSG_MAX + 8];
	struct tmsg_reply m, got;
	const char *why = NULL;
	ssize_t n;
	size_t i;
	int bad = 0;

	memset(&m, 0, sizeof(m));
	m.status = status;
	strcpy(m.reason, reason);
	n = tmsg_reply_encode(&m, buf, TMSG_MAX);
	is_int(n, TMSG_HDR + 2 + strlen(reason), "%s: encoded", what);
	if (n < 0)
		return;
	is_int(tmsg_reply_parse(buf, (size_t)n, &got, &why), n,
	    "%s: parsed", what);
	ok(memcmp(&got, &m, sizeof(got)) == 0 && why == NULL,
	    "%s: same reply back", what);
	check_prefixes(buf, (size_t)n, 0, what);
	memcpy(buf + n, "SL\1", 3);
	is_int(tmsg_reply_parse(buf, (size_t)n + 3, &got, &why), n,
	    "%s: followed by more, its own length", what);
	for (i = 0; i < (size_t)n; i++)
		if (tmsg_reply_encode(&m, buf, i) != -1)
			bad++;
	ok(bad == 0, "%s: every smaller buffer: -1", what);
}

static void
test_reply(void)
{
	static const char want[] = "SL\1\2\0\11\2\7no such";
	uint8_t buf[TMSG_MAX];
	char reason[256];
	struct tmsg_reply m;

	reply_roundtrip(TMSG_OK, "", "ok, empty reason");
	reply_roundtrip(TMSG_DIAL_FAILED, "connect 10.0.0.1:80: Connection "
	    "refused", "dial failed with a reason");
	reply_roundtrip(TMSG_BUSY, repeat(reason, ' ', 255),
	    "busy, 255 spaces");
	reply_roundtrip(200, repeat(reason, '~', 255),
	    "status 200, 255-byte reason");

	memset(&m, 0, sizeof(m));
	m.status = TMSG_DENIED;
	strcpy(m.reason, "no such");
	ok(tmsg_reply_encode(&m, buf, sizeof(buf)) == sizeof(want) - 1 &&
	    memcmp(buf, want, sizeof(want) - 1) == 0, "reply: exact bytes");
	strcpy(m.reason, "two\nlines");
	is_int(tmsg_reply_encode(&m, buf, sizeof(buf)), -1,
	    "reason with newline refused");
	memset(m.reason, 'x', sizeof(m.reason));
	is_int(tmsg_reply_encode(&m, buf, sizeof(buf)), -1,
	    "256-byte reason without NUL refused");
}

static void
test_status_str(void)
{
	is_str(tmsg_status_str(TMSG_OK), "accepted", "status 0");
	is_str(tmsg_status_str(TMSG_NO_SERVICE),
	    "no such service on this host", "status 1");
	is_str(tmsg_status_str(TMSG_DENIED), "identity not allowed",
	    "status 2");
	is_str(tmsg_status_str(TMSG_ADDR_DENIED), "destination not allowed",
	    "status 3");
	is_str(tmsg_status_str(TMSG_DIAL_FAILED), "server unreachable",
	    "status 4");
	is_str(tmsg_status_str(TMSG_UNSUPPORTED), "unsupported", "status 5");
	is_str(tmsg_status_str(TMSG_BAD_REQUEST), "bad request", "status 6");
	is_str(tmsg_status_str(TMSG_BUSY), "host busy", "status 7");
	is_str(tmsg_status_str(8), "unknown status", "status 8");
	is_str(tmsg_status_str(255), "unknown status", "status 255");
	is_str(tmsg_status_str(-1), "unknown status", "status -1");
}

/*
 * tmsg_need: how many more bytes to read so as to take exactly the
 * message, never a byte of what follows it.
 */
static void
test_need(void)
{
	uint8_t buf[2 * TMSG_MAX + 8];
	struct tmsg_open m, got;
	struct tmsg_reply r;
	const char *why = NULL;
	size_t have, need, reads = 0, bad = 0, i;
	ssize_t n, n2;
	int status = -1;

	m = mkopen(IPPROTO_TCP, "web", "10.0.0.1", 80, "192.168.1.2", 5555);
	n = tmsg_open_encode(&m, buf, TMSG_MAX);
	if (!ok(n > TMSG_HDR, "need: an open message (%zd bytes)", n))
		return;
	is_int(tmsg_need(buf, 0), TMSG_HDR, "need: empty buffer: a header");
	is_int(tmsg_need(buf, 1), TMSG_HDR - 1, "need: 1 byte: the rest of "
	    "the header");
	is_int(tmsg_need(buf, TMSG_HDR - 1), 1, "need: 5 bytes: one more");
	is_int(tmsg_need(buf, TMSG_HDR), n - TMSG_HDR, "need: a whole "
	    "header: exactly the body");
	is_int(tmsg_need(buf, TMSG_HDR + 1), n - TMSG_HDR - 1,
	    "need: a header and a byte: the rest of the body");
	is_int(tmsg_need(buf, (size_t)n - 1), 1, "need: all but the last "
	    "byte: one");
	is_int(tmsg_need(buf, (size_t)n), 0, "need: complete: 0");
	for (i = 0; i < (size_t)n; i++)
		if (i + tmsg_need(buf, i) != (i < TMSG_HDR ? TMSG_HDR :
		    (size_t)n))
			bad++;
	ok(bad == 0, "need: every prefix asks for exactly the rest of its "
	    "header, then of the message");

	/* Read as a host does: need's bytes at a time, then parse. */
	n2 = tmsg_open_encode(&m, buf + n, sizeof(buf) - (size_t)n);
	for (have = 0; (need = tmsg_need(buf, have)) > 0 && reads < 100;
	    reads++)
		have += need < 3 ? need : 3;	/* short reads */
	is_int(have, n, "need: reading by it stops at the message's end, "
	    "with another behind it (%zu reads)", reads);
	ok(tmsg_open_parse(buf, have, &got, &status, &why) == n &&
	    memcmp(&got, &m, sizeof(got)) == 0, "need: and it parses");
	is_int(tmsg_need(buf + n, (size_t)n2), 0, "need: the next one "
	    "complete too");

	memset(&r, 0, sizeof(r));
	r.status = TMSG_DENIED;
	strcpy(r.reason, "nope");
	n = tmsg_reply_encode(&r, buf, TMSG_MAX);
	is_int(tmsg_need(buf, TMSG_HDR), n - TMSG_HDR, "need: a reply's "
	    "header: its body");

	/* The header's length alone decides; a bad one is the parser's. */
	mkraw(buf, TMSG_VERSION, TMSG_OPEN, "", 0, TMSG_MAX_BODY);
	is_int(tmsg_need(buf, TMSG_HDR), TMSG_MAX_BODY, "need: a body of "
	    "TMSG_MAX_BODY: all of it");
	mkraw(buf, TMSG_VERSION, TMSG_OPEN, "", 0, 0);
	is_int(tmsg_need(buf, TMSG_HDR), 0, "need: an empty body: 0");
	mkraw(buf, TMSG_VERSION, TMSG_OPEN, "", 0, TMSG_MAX_BODY + 1);
	is_int(tmsg_need(buf, TMSG_HDR), 0, "need: a body over "
	    "TMSG_MAX_BODY: 0, parse now");
	status = -1;
	why = NULL;
	n = tmsg_open_parse(buf, TMSG_HDR, &got, &status, &why);
	ok(n == -1 && status == TMSG_BAD_REQUEST && why != NULL,
	    "need: and the parser refuses it (%s)", why ? why : "?");
	mkraw(buf, TMSG_VERSION, TMSG_OPEN, "", 0, 0xffff);
	is_int(tmsg_need(buf, TMSG_HDR), 0, "need: a body of 65535: 0");
	mkraw(buf, TMSG_VERSION, TMSG_REPLY, "", 0, TMSG_MAX_BODY + 1);
	is_int(tmsg_need(buf, TMSG_HDR + 3), 0, "need: over the maximum, "
	    "more bytes in hand: 0");
}

int
main(void)
{
	test_open_roundtrips();
	test_open_bytes();
	test_malformed();
	test_open_encode_refuses();
	test_reply();
	test_status_str();
	test_need();
	return done_testing();
}
