/* SPDX-License-Identifier: MIT */
/* The tunnel's opening message and its reply: encoders and parsers. */
#include "config.h"

#include <sys/socket.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "tunnel.h"

#define FAMILY_V4	4
#define FAMILY_V6	6

/* ---- reader: a bounds-checked cursor over one body, first error kept ---- */

struct cur {
	const uint8_t	*buf;
	size_t		 len, off;
	const char	*why;		/* the first error; NULL while none */
	int		 status;
};

static void
cur_fail(struct cur *c, int status, const char *why)
{
	if (c->why == NULL) {
		c->why = why;
		c->status = status;
	}
}

/* The next n bytes, or NULL once anything has gone wrong. */
static const uint8_t *
cur_take(struct cur *c, size_t n)
{
	const uint8_t *p;

	if (c->why == NULL && c->len - c->off < n)
		cur_fail(c, TMSG_BAD_REQUEST, "body shorter than its contents");
	if (c->why != NULL)
		return NULL;
	p = c->buf + c->off;
	c->off += n;
	return p;
}

static uint8_t
cur_u8(struct cur *c)
{
	const uint8_t *p = cur_take(c, 1);

	return p != NULL ? p[0] : 0;
}

static uint16_t
cur_u16(struct cur *c)
{
	const uint8_t *p = cur_take(c, 2);

	return p != NULL ? (uint16_t)(p[0] << 8 | p[1]) : 0;
}

/* Bytes lo..0x7e only: names have no spaces, reasons may. */
static int
text_ok(const char *s, size_t n, int lo)
{
	size_t i;

	for (i = 0; i < n; i++)
		if ((unsigned char)s[i] < lo || (unsigned char)s[i] > 0x7e)
			return 0;
	return 1;
}

/* A u8-length string into dst (256 bytes) with its NUL; its length or -1. */
static int
cur_str(struct cur *c, char *dst)
{
	const uint8_t *p;
	size_t n;

	n = cur_u8(c);
	if ((p = cur_take(c, n)) == NULL)
		return -1;
	memcpy(dst, p, n);
	dst[n] = '\0';
	return (int)n;
}

static void
cur_addr(struct cur *c, struct sockaddr_storage *ss)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
	const uint8_t *p;
	uint8_t family;

	memset(ss, 0, sizeof(*ss));
	family = cur_u8(c);
	if (c->why != NULL)
		return;
	switch (family) {
	case FAMILY_V4:
		if ((p = cur_take(c, sizeof(sin->sin_addr))) == NULL)
			return;
		sin->sin_family = AF_INET;
		memcpy(&sin->sin_addr, p, sizeof(sin->sin_addr));
		sin->sin_port = htons(cur_u16(c));
		break;
	case FAMILY_V6:
		if ((p = cur_take(c, sizeof(sin6->sin6_addr))) == NULL)
			return;
		sin6->sin6_family = AF_INET6;
		memcpy(&sin6->sin6_addr, p, sizeof(sin6->sin6_addr));
		sin6->sin6_port = htons(cur_u16(c));
		break;
	default:
		cur_fail(c, TMSG_BAD_REQUEST, "bad address family");
	}
}

/* The port in host order; 0 for a family the message cannot carry. */
static uint16_t
ss_port(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)ss)->sin_port);
	if (ss->ss_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
	return 0;
}

static int
hdr_fail(int *status, int st, const char **why, const char *text)
{
	*status = st;
	*why = text;
	return -1;
}

/*
 * The header as far as buf holds it: 1 with *bodylen when it is whole and
 * good, 0 when incomplete, -1 as soon as a byte present is wrong, so that a
 * peer speaking something else is turned away without waiting for more.
 */
static int
hdr_parse(const uint8_t *buf, size_t len, int type, size_t *bodylen,
    int *status, const char **why)
{
	/* Only ever the latest error of this thread: callers log it at once. */
	static _Thread_local char version[48];

	if ((len > 0 && buf[0] != 'S') || (len > 1 && buf[1] != 'L'))
		return hdr_fail(status, TMSG_BAD_REQUEST, why, "bad magic");
	if (len > 2 && buf[2] != TMSG_VERSION) {
		snprintf(version, sizeof(version),
		    "version %u, this host speaks %d", buf[2], TMSG_VERSION);
		return hdr_fail(status, TMSG_UNSUPPORTED, why, version);
	}
	if (len > 3 && buf[3] != type) {
		if (buf[3] != TMSG_OPEN && buf[3] != TMSG_REPLY)
			return hdr_fail(status, TMSG_UNSUPPORTED, why,
			    "unknown message type");
		return hdr_fail(status, TMSG_BAD_REQUEST, why,
		    type == TMSG_OPEN ? "a reply where an open was expected" :
		    "an open where a reply was expected");
	}
	if (len < TMSG_HDR)
		return 0;
	*bodylen = (size_t)buf[4] << 8 | buf[5];
	if (*bodylen > TMSG_MAX_BODY)
		return hdr_fail(status, TMSG_BAD_REQUEST, why,
		    "body longer than the maximum");
	return 1;
}

/*
 * Sets up c over the body once the whole message is in buf; the return
 * value of the parser if it cannot go on (0 or -1), else 1.
 */
static ssize_t
body_start(struct cur *c, const uint8_t *buf, size_t len, int type,
    int *status, const char **why)
{
	size_t bodylen = 0;
	int rc;

	memset(c, 0, sizeof(*c));
	if ((rc = hdr_parse(buf, len, type, &bodylen, status, why)) != 1)
		return rc;
	if (len - TMSG_HDR < bodylen)
		return 0;
	c->buf = buf + TMSG_HDR;
	c->len = bodylen;
	return 1;
}

/* The message's length, or -1 with the first error. */
static ssize_t
body_end(struct cur *c, int *status, const char **why)
{
	if (c->off != c->len)
		cur_fail(c, TMSG_BAD_REQUEST, "trailing bytes in body");
	if (c->why != NULL) {
		*status = c->status;
		*why = c->why;
		return -1;
	}
	return (ssize_t)(TMSG_HDR + c->len);
}

ssize_t
tmsg_open_parse(const uint8_t *buf, size_t len, struct tmsg_open *m,
    int *status, const char **why)
{
	struct cur c;
	ssize_t rc;
	int n;

	memset(m, 0, sizeof(*m));
	if ((rc = body_start(&c, buf, len, TMSG_OPEN, status, why)) != 1)
		return rc;
	m->proto = cur_u8(&c);
	if (m->proto != IPPROTO_TCP && m->proto != IPPROTO_UDP)
		cur_fail(&c, TMSG_UNSUPPORTED, "unknown protocol");
	n = cur_str(&c, m->service);
	if (n == 0)
		cur_fail(&c, TMSG_BAD_REQUEST, "empty service name");
	else if (n > 0 && !text_ok(m->service, (size_t)n, 0x21))
		cur_fail(&c, TMSG_BAD_REQUEST, "service name not printable");
	cur_addr(&c, &m->dst);
	if (ss_port(&m->dst) == 0)
		cur_fail(&c, TMSG_BAD_REQUEST, "destination port 0");
	cur_addr(&c, &m->src);
	return body_end(&c, status, why);
}

ssize_t
tmsg_reply_parse(const uint8_t *buf, size_t len, struct tmsg_reply *m,
    const char **why)
{
	struct cur c;
	ssize_t rc;
	int n, status;

	memset(m, 0, sizeof(*m));
	if ((rc = body_start(&c, buf, len, TMSG_REPLY, &status, why)) != 1)
		return rc;
	m->status = cur_u8(&c);
	n = cur_str(&c, m->reason);
	if (n > 0 && !text_ok(m->reason, (size_t)n, 0x20))
		cur_fail(&c, TMSG_BAD_REQUEST, "reason not printable");
	return body_end(&c, &status, why);
}

/* ---- writer: the same checks, then bytes or -1 ---- */

struct wr {
	uint8_t		*buf;
	size_t		 len, off;
	int		 err;
};

static void
wr_bytes(struct wr *w, const void *p, size_t n)
{
	if (w->err || w->len - w->off < n) {
		w->err = 1;
		return;
	}
	memcpy(w->buf + w->off, p, n);
	w->off += n;
}

static void
wr_u8(struct wr *w, uint8_t v)
{
	wr_bytes(w, &v, 1);
}

static void
wr_u16(struct wr *w, uint16_t v)
{
	uint8_t b[2] = { (uint8_t)(v >> 8), (uint8_t)v };

	wr_bytes(w, b, sizeof(b));
}

/* The header with a body length filled in by wr_end(). */
static void
wr_start(struct wr *w, uint8_t *buf, size_t len, uint8_t type)
{
	w->buf = buf;
	w->len = len;
	w->off = 0;
	w->err = 0;
	wr_bytes(w, "SL", 2);
	wr_u8(w, TMSG_VERSION);
	wr_u8(w, type);
	wr_u16(w, 0);
}

static ssize_t
wr_end(struct wr *w)
{
	size_t body = w->off - TMSG_HDR;

	if (w->err || body > TMSG_MAX_BODY)
		return -1;
	w->buf[4] = (uint8_t)(body >> 8);
	w->buf[5] = (uint8_t)body;
	return (ssize_t)w->off;
}

static void
wr_addr(struct wr *w, const struct sockaddr_storage *ss)
{
	const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
	const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;

	switch (ss->ss_family) {
	case AF_INET:
		wr_u8(w, FAMILY_V4);
		wr_bytes(w, &sin->sin_addr, sizeof(sin->sin_addr));
		wr_u16(w, ntohs(sin->sin_port));
		break;
	case AF_INET6:
		wr_u8(w, FAMILY_V6);
		wr_bytes(w, &sin6->sin6_addr, sizeof(sin6->sin6_addr));
		wr_u16(w, ntohs(sin6->sin6_port));
		break;
	default:
		w->err = 1;
	}
}

ssize_t
tmsg_open_encode(const struct tmsg_open *m, uint8_t *buf, size_t len)
{
	struct wr w;
	size_t n;

	n = strnlen(m->service, sizeof(m->service));
	if ((m->proto != IPPROTO_TCP && m->proto != IPPROTO_UDP) || n == 0 ||
	    n == sizeof(m->service) || !text_ok(m->service, n, 0x21) ||
	    ss_port(&m->dst) == 0)
		return -1;
	wr_start(&w, buf, len, TMSG_OPEN);
	wr_u8(&w, m->proto);
	wr_u8(&w, (uint8_t)n);
	wr_bytes(&w, m->service, n);
	wr_addr(&w, &m->dst);
	wr_addr(&w, &m->src);
	return wr_end(&w);
}

ssize_t
tmsg_reply_encode(const struct tmsg_reply *m, uint8_t *buf, size_t len)
{
	struct wr w;
	size_t n;

	n = strnlen(m->reason, sizeof(m->reason));
	if (n == sizeof(m->reason) || !text_ok(m->reason, n, 0x20))
		return -1;
	wr_start(&w, buf, len, TMSG_REPLY);
	wr_u8(&w, m->status);
	wr_u8(&w, (uint8_t)n);
	wr_bytes(&w, m->reason, n);
	return wr_end(&w);
}

const char *
tmsg_status_str(int status)
{
	static const char *const text[] = {
		[TMSG_OK] = "accepted",
		[TMSG_NO_SERVICE] = "no such service on this host",
		[TMSG_DENIED] = "identity not allowed",
		[TMSG_ADDR_DENIED] = "destination not allowed",
		[TMSG_DIAL_FAILED] = "server unreachable",
		[TMSG_UNSUPPORTED] = "unsupported",
		[TMSG_BAD_REQUEST] = "bad request",
		[TMSG_BUSY] = "host busy",
	};

	if (status < 0 || (size_t)status >= sizeof(text) / sizeof(text[0]))
		return "unknown status";
	return text[status];
}

/*
 * Bytes still missing before the message at buf is complete: readers take
 * exactly that many from the connection, so that nothing past it (the
 * flow's first bytes, the next request) is read by the wrong party. 0
 * when complete, or when the header declares a body over the maximum (the
 * parser then says why). Only the length is looked at: a bad magic or
 * version is found by the parser once the declared body is in.
 */
size_t
tmsg_need(const uint8_t *buf, size_t len)
{
	size_t total;

	if (len < TMSG_HDR)
		return TMSG_HDR - len;
	total = TMSG_HDR + ((size_t)buf[4] << 8 | buf[5]);
	if (total > TMSG_MAX)
		return 0;
	return len < total ? total - len : 0;
}
