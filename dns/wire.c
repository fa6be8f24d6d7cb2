/* SPDX-License-Identifier: MIT */
/* DNS wire format: a bounds-checked reader and writer, queries and replies. */
#include "config.h"

#include <sys/socket.h>
#include <string.h>

#include "dns.h"

#define OPT_LEN		11	/* root name, type, class, ttl, rdlen */
#define RR_FIXED	10	/* type, class, ttl, rdlen */
#define PTR_QNAME	(0xc000 | DNS_HDR_LEN)	/* the question's name */

/* ---- reader ---- */

void
wire_init(struct wire *w, const uint8_t *buf, size_t len)
{
	w->buf = buf;
	w->len = len;
	w->off = 0;
	w->err = 0;
}

/* Whether n more bytes can be read; sets the sticky error if not. */
static int
wire_need(struct wire *w, size_t n)
{
	if (w->err || w->len - w->off < n) {
		w->err = 1;
		return 0;
	}
	return 1;
}

uint8_t
wire_u8(struct wire *w)
{
	if (!wire_need(w, 1))
		return 0;
	return w->buf[w->off++];
}

uint16_t
wire_u16(struct wire *w)
{
	uint16_t v;

	if (!wire_need(w, 2))
		return 0;
	v = (uint16_t)(w->buf[w->off] << 8 | w->buf[w->off + 1]);
	w->off += 2;
	return v;
}

uint32_t
wire_u32(struct wire *w)
{
	uint32_t v;

	if (!wire_need(w, 4))
		return 0;
	v = (uint32_t)w->buf[w->off] << 24 | (uint32_t)w->buf[w->off + 1] << 16 |
	    (uint32_t)w->buf[w->off + 2] << 8 | w->buf[w->off + 3];
	w->off += 4;
	return v;
}

void
wire_skip(struct wire *w, size_t n)
{
	if (wire_need(w, n))
		w->off += n;
}

static int
label_byte(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || c == '-' || c == '_';
}

/*
 * Appends the label of len bytes at p to out (n bytes so far). The wire
 * length check in name_read() keeps n + 1 + len within DNS_TEXT_MAX.
 */
static int
name_label(char *out, size_t *n, const uint8_t *p, size_t len, int lower)
{
	size_t i;
	int c;

	if (*n > 0)
		out[(*n)++] = '.';
	for (i = 0; i < len; i++) {
		c = p[i];
		if (!label_byte(c))
			return -1;
		if (lower && c >= 'A' && c <= 'Z')
			c += 'a' - 'A';
		out[(*n)++] = (char)c;
	}
	return 0;
}

/*
 * wire_name(), optionally keeping the case. limit is where the labels
 * being read start: a pointer must land before it (and past the header),
 * and then becomes the new limit, so pointers strictly decrease.
 */
static int
name_read(struct wire *w, char *out, int lower)
{
	size_t pos, limit, resume = 0, wirelen = 0, n = 0, target;
	int ptrs = 0;
	uint8_t c;

	out[0] = '\0';
	if (w->err)
		return -1;
	pos = limit = w->off;
	for (;;) {
		if (pos >= w->len)
			goto bad;
		c = w->buf[pos];
		if ((c & 0xc0) == 0xc0) {
			if (w->len - pos < 2)
				goto bad;
			target = (size_t)(c & 0x3f) << 8 | w->buf[pos + 1];
			if (target >= limit || target < DNS_HDR_LEN ||
			    ++ptrs > DNS_PTR_MAX)
				goto bad;
			if (resume == 0)
				resume = pos + 2;
			pos = limit = target;
			continue;
		}
		if (c > DNS_LABEL_MAX)		/* 0x40 and 0x80: reserved */
			goto bad;
		wirelen += 1 + (size_t)c;
		if (wirelen > DNS_NAME_MAX)
			goto bad;
		pos++;
		if (c == 0)
			break;
		if (w->len - pos < c ||
		    name_label(out, &n, w->buf + pos, c, lower) == -1)
			goto bad;
		pos += c;
	}
	out[n] = '\0';
	w->off = resume != 0 ? resume : pos;
	return 0;
bad:
	out[0] = '\0';
	w->err = 1;
	return -1;
}

int
wire_name(struct wire *w, char out[DNS_TEXT_MAX + 1])
{
	return name_read(w, out, 1);
}

/* ---- writer ---- */

void
wbuf_init(struct wbuf *b, uint8_t *buf, size_t cap)
{
	b->buf = buf;
	b->cap = cap;
	b->len = 0;
	b->err = 0;
}

static int
wbuf_room(struct wbuf *b, size_t n)
{
	if (b->err || b->cap - b->len < n) {
		b->err = 1;
		return 0;
	}
	return 1;
}

void
wbuf_u8(struct wbuf *b, uint8_t v)
{
	if (wbuf_room(b, 1))
		b->buf[b->len++] = v;
}

void
wbuf_u16(struct wbuf *b, uint16_t v)
{
	if (!wbuf_room(b, 2))
		return;
	b->buf[b->len++] = (uint8_t)(v >> 8);
	b->buf[b->len++] = (uint8_t)v;
}

void
wbuf_u32(struct wbuf *b, uint32_t v)
{
	wbuf_u16(b, (uint16_t)(v >> 16));
	wbuf_u16(b, (uint16_t)v);
}

void
wbuf_bytes(struct wbuf *b, const void *p, size_t n)
{
	if (n > 0 && wbuf_room(b, n)) {
		memcpy(b->buf + b->len, p, n);
		b->len += n;
	}
}

/* Wire length of a text name, or 0 if it cannot be written. */
static size_t
name_wire_len(const char *s)
{
	size_t total = 1, len;
	const char *dot;

	if (s[0] == '.' && s[1] == '\0')
		return 1;
	while (*s != '\0') {
		dot = strchr(s, '.');
		len = dot != NULL ? (size_t)(dot - s) : strlen(s);
		if (len == 0 || len > DNS_LABEL_MAX)
			return 0;
		total += 1 + len;
		if (total > DNS_NAME_MAX)
			return 0;
		s += len + (dot != NULL);
	}
	return total;
}

void
wbuf_name(struct wbuf *b, const char *s)
{
	const char *dot;
	size_t len;

	if (name_wire_len(s) == 0) {
		b->err = 1;
		return;
	}
	for (; *s != '\0' && strcmp(s, ".") != 0; s += len + (dot != NULL)) {
		dot = strchr(s, '.');
		len = dot != NULL ? (size_t)(dot - s) : strlen(s);
		wbuf_u8(b, (uint8_t)len);
		wbuf_bytes(b, s, len);
	}
	wbuf_u8(b, 0);
}

/* ---- queries ---- */

/* The options of an OPT record: each must fit its rdata exactly. */
static void
opt_options(struct wire *w, size_t rdlen)
{
	size_t end, olen;

	if (!wire_need(w, rdlen))
		return;
	end = w->off + rdlen;
	while (!w->err && w->off < end) {
		(void)wire_u16(w);		/* option code */
		olen = wire_u16(w);
		if (w->off > end || end - w->off < olen)
			w->err = 1;
		else
			wire_skip(w, olen);
	}
}

/* The one additional record a query may carry: an EDNS0 OPT. */
static int
parse_opt(struct wire *w, struct dns_query *q)
{
	uint32_t ttl;
	uint16_t type, udp;

	if (wire_u8(w) != 0)		/* root name only, uncompressed */
		return DNS_R_FORMERR;
	type = wire_u16(w);
	udp = wire_u16(w);
	ttl = wire_u32(w);
	opt_options(w, wire_u16(w));
	if (w->err || type != DNS_T_OPT)
		return DNS_R_FORMERR;
	q->edns = 1;
	q->edns_udp = udp < DNS_UDP_MIN ? DNS_UDP_MIN : udp;
	q->edns_version = (uint8_t)(ttl >> 16);
	q->edns_do = (ttl & DNS_OPT_DO) != 0;
	return 0;
}

/* The header's verdict: -1 (no reply), an rcode, or 0 to go on. */
static int
parse_header(struct wire *w, struct dns_query *q, uint16_t count[4])
{
	int i;

	if (w->len < DNS_HDR_LEN)
		return -1;
	q->id = wire_u16(w);
	q->flags = wire_u16(w);
	for (i = 0; i < 4; i++)
		count[i] = wire_u16(w);
	if (q->flags & DNS_F_QR)
		return -1;
	if (DNS_OPCODE(q->flags) != 0)
		return DNS_R_NOTIMP;
	if (count[0] != 1 || (q->flags & DNS_F_TC))
		return DNS_R_FORMERR;
	return 0;
}

int
dns_parse_query(const uint8_t *buf, size_t len, struct dns_query *q)
{
	struct wire w;
	uint16_t count[4];		/* qd, an, ns, ar */
	size_t i;
	int rc;

	memset(q, 0, sizeof(*q));
	wire_init(&w, buf, len);
	if ((rc = parse_header(&w, q, count)) != 0)
		return rc;
	if (name_read(&w, q->qname_echo, 0) == -1)
		return DNS_R_FORMERR;
	for (i = 0; q->qname_echo[i] != '\0'; i++)
		q->qname[i] = (char)(q->qname_echo[i] >= 'A' &&
		    q->qname_echo[i] <= 'Z' ? q->qname_echo[i] + 'a' - 'A' :
		    q->qname_echo[i]);
	q->qtype = wire_u16(&w);
	q->qclass = wire_u16(&w);
	if (w.err)
		return DNS_R_FORMERR;
	q->question_len = w.off;
	if (count[1] != 0 || count[2] != 0 || count[3] > 1)
		return DNS_R_FORMERR;
	if (count[3] == 1 && (rc = parse_opt(&w, q)) != 0)
		return rc;
	if (w.off != w.len)
		return DNS_R_FORMERR;
	if (q->edns && q->edns_version > 0)
		return DNS_R_BADVERS;
	return 0;
}

size_t
dns_udp_limit(const struct dns_query *q)
{
	if (!q->edns || q->edns_udp <= DNS_UDP_MIN)
		return DNS_UDP_MIN;
	return q->edns_udp < DNS_UDP_MAX ? q->edns_udp : DNS_UDP_MAX;
}

/* ---- responses ---- */

static void
put_header(struct wbuf *b, uint16_t id, uint16_t flags, uint16_t qd,
    uint16_t an, uint16_t ar)
{
	wbuf_u16(b, id);
	wbuf_u16(b, flags);
	wbuf_u16(b, qd);
	wbuf_u16(b, an);
	wbuf_u16(b, 0);			/* nscount */
	wbuf_u16(b, ar);
}

/* Our OPT: our buffer size, version 0, the upper bits of the rcode. */
static void
put_opt(struct wbuf *b, int rcode)
{
	wbuf_u8(b, 0);
	wbuf_u16(b, DNS_T_OPT);
	wbuf_u16(b, DNS_UDP_MAX);
	wbuf_u32(b, (uint32_t)((rcode >> 4) & 0xff) << 24);
	wbuf_u16(b, 0);
}

static int
addr_rdlen(const struct cidr *c)
{
	if (c->family == AF_INET)
		return 4;
	if (c->family == AF_INET6)
		return 16;
	return 0;
}

/* Answers that fit in room bytes: all of them, or none (-1). */
static int
count_answers(const struct dns_answer *a, size_t room, uint16_t *n)
{
	size_t i, need = 0;

	*n = 0;
	for (i = 0; i < a->naddrs; i++) {
		if (addr_rdlen(&a->addrs[i]) == 0)
			continue;
		need += 2 + RR_FIXED + (size_t)addr_rdlen(&a->addrs[i]);
		if (need > room || *n == UINT16_MAX)
			return -1;
		(*n)++;
	}
	return 0;
}

static void
put_answers(struct wbuf *b, const struct dns_answer *a)
{
	size_t i;
	int rdlen;

	for (i = 0; i < a->naddrs; i++) {
		if ((rdlen = addr_rdlen(&a->addrs[i])) == 0)
			continue;
		wbuf_u16(b, PTR_QNAME);
		wbuf_u16(b, rdlen == 4 ? DNS_T_A : DNS_T_AAAA);
		wbuf_u16(b, DNS_C_IN);
		wbuf_u32(b, a->ttl);
		wbuf_u16(b, (uint16_t)rdlen);
		wbuf_bytes(b, a->addrs[i].addr, (size_t)rdlen);
	}
}

static uint16_t
response_flags(const struct dns_query *q, const struct dns_answer *a,
    int rcode)
{
	uint16_t f = DNS_F_QR;

	f |= q->flags & (DNS_F_RD | DNS_F_CD);
	if (a->aa)
		f |= DNS_F_AA;
	if (a->ra)
		f |= DNS_F_RA;
	return f | (uint16_t)(rcode & 0xf);
}

size_t
dns_build_response(const struct dns_query *q, const struct dns_answer *a,
    uint8_t *out, size_t maxlen)
{
	struct wbuf b;
	const char *qname;
	size_t fixed;
	uint16_t flags, n;
	int rcode = a->rcode;

	/* A query made up by the caller may have no echo form. */
	qname = q->qname_echo[0] != '\0' ? q->qname_echo : q->qname;
	if (rcode < 0 || rcode > 0xfff || (rcode > 0xf && !q->edns))
		rcode = DNS_R_SERVFAIL;
	fixed = DNS_HDR_LEN + name_wire_len(qname) + 4 +
	    (q->edns ? OPT_LEN : 0);
	if (name_wire_len(qname) == 0 || fixed > maxlen)
		return 0;
	flags = response_flags(q, a, rcode);
	if (count_answers(a, maxlen - fixed, &n) == -1) {
		flags |= DNS_F_TC;
		n = 0;
	}
	wbuf_init(&b, out, maxlen);
	put_header(&b, q->id, flags, 1, n, q->edns ? 1 : 0);
	wbuf_name(&b, qname);
	wbuf_u16(&b, q->qtype);
	wbuf_u16(&b, q->qclass);
	if (n > 0)
		put_answers(&b, a);
	if (q->edns)
		put_opt(&b, rcode);
	return b.err ? 0 : b.len;
}

/* A header-only error, or one echoing a question that can be read. */
static size_t
build_bare_error(const uint8_t *query, size_t qlen, int rcode, uint8_t *out,
    size_t maxlen)
{
	struct wire w;
	struct wbuf b;
	char name[DNS_TEXT_MAX + 1];
	uint16_t id, flags, qd, qtype, qclass;
	int echo;

	wire_init(&w, query, qlen);
	id = wire_u16(&w);
	flags = wire_u16(&w);
	qd = wire_u16(&w);
	wire_skip(&w, 6);
	echo = qd == 1 && name_read(&w, name, 0) == 0;
	qtype = wire_u16(&w);
	qclass = wire_u16(&w);
	echo = echo && !w.err;

	flags = (uint16_t)(DNS_F_QR | (flags & (0xf << 11)) |
	    (flags & (DNS_F_RD | DNS_F_CD)) | (rcode & 0xf));
	wbuf_init(&b, out, maxlen);
	put_header(&b, id, flags, echo ? 1 : 0, 0, 0);
	if (echo) {
		wbuf_name(&b, name);
		wbuf_u16(&b, qtype);
		wbuf_u16(&b, qclass);
	}
	return b.err ? 0 : b.len;
}

size_t
dns_build_error(const uint8_t *query, size_t qlen, int rcode, uint8_t *out,
    size_t maxlen)
{
	struct dns_query q;
	struct dns_answer a;
	int rc;

	rc = dns_parse_query(query, qlen, &q);
	if (rc == -1)
		return 0;
	if (rc == 0 || rc == DNS_R_BADVERS) {
		memset(&a, 0, sizeof(a));
		a.rcode = rcode;
		return dns_build_response(&q, &a, out, maxlen);
	}
	if (rcode < 0 || rcode > 0xf)
		rcode = DNS_R_SERVFAIL;
	return build_bare_error(query, qlen, rcode, out, maxlen);
}
