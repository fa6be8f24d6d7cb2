/* SPDX-License-Identifier: MIT */
/* Unit tests for dns/wire.c: the cursor, queries, and replies read back. */
#include "config.h"

#include <sys/socket.h>
#include <arpa/inet.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dns.h"
#include "tap.h"

#define MAX_RR	128

/* A response as read back through the wire reader. */
struct rr {
	char		name[DNS_TEXT_MAX + 1];
	uint16_t	type, class, rdlen;
	uint32_t	ttl;
	uint8_t		rdata[16];
	size_t		off;		/* where the record starts */
};

struct msg {
	uint16_t	id, flags, qd, an, ns, ar;
	char		qname[DNS_TEXT_MAX + 1];
	uint16_t	qtype, qclass;
	struct rr	rr[MAX_RR];	/* answers, then additional */
	size_t		nrr;
};

/* Parses a whole response; -1 unless every byte is accounted for. */
static int
parse_msg(const uint8_t *buf, size_t len, struct msg *m)
{
	struct wire w;
	struct rr *r;
	size_t i;

	memset(m, 0, sizeof(*m));
	wire_init(&w, buf, len);
	m->id = wire_u16(&w);
	m->flags = wire_u16(&w);
	m->qd = wire_u16(&w);
	m->an = wire_u16(&w);
	m->ns = wire_u16(&w);
	m->ar = wire_u16(&w);
	if (m->qd > 1 || (size_t)m->an + m->ns + m->ar > MAX_RR)
		return -1;
	if (m->qd == 1) {
		wire_name(&w, m->qname);
		m->qtype = wire_u16(&w);
		m->qclass = wire_u16(&w);
	}
	for (i = 0; i < (size_t)m->an + m->ns + m->ar && !w.err; i++) {
		r = &m->rr[m->nrr++];
		r->off = w.off;
		wire_name(&w, r->name);
		r->type = wire_u16(&w);
		r->class = wire_u16(&w);
		r->ttl = wire_u32(&w);
		r->rdlen = wire_u16(&w);
		if (r->rdlen <= sizeof(r->rdata) && w.len - w.off >= r->rdlen)
			memcpy(r->rdata, w.buf + w.off, r->rdlen);
		wire_skip(&w, r->rdlen);
	}
	return w.err || w.off != len ? -1 : 0;
}

/* A query for name; udp 0: no OPT record. */
static size_t
mkquery(uint8_t *buf, size_t cap, uint16_t id, uint16_t flags,
    const char *name, uint16_t qtype, uint16_t udp, uint8_t version, int dobit)
{
	struct wbuf b;

	wbuf_init(&b, buf, cap);
	wbuf_u16(&b, id);
	wbuf_u16(&b, flags);
	wbuf_u16(&b, 1);
	wbuf_u16(&b, 0);
	wbuf_u16(&b, 0);
	wbuf_u16(&b, udp ? 1 : 0);
	wbuf_name(&b, name);
	wbuf_u16(&b, qtype);
	wbuf_u16(&b, DNS_C_IN);
	if (udp) {
		wbuf_u8(&b, 0);
		wbuf_u16(&b, DNS_T_OPT);
		wbuf_u16(&b, udp);
		wbuf_u32(&b, (uint32_t)version << 16 | (dobit ? DNS_OPT_DO : 0));
		wbuf_u16(&b, 0);
	}
	return b.err ? 0 : b.len;
}

static struct cidr
v4(const char *s)
{
	struct cidr c;

	memset(&c, 0, sizeof(c));
	c.family = AF_INET;
	c.prefixlen = 32;
	inet_pton(AF_INET, s, c.addr);
	return c;
}

static struct cidr
v6(const char *s)
{
	struct cidr c;

	memset(&c, 0, sizeof(c));
	c.family = AF_INET6;
	c.prefixlen = 128;
	inet_pton(AF_INET6, s, c.addr);
	return c;
}

static void
test_reader(void)
{
	static const uint8_t b[] = { 0x01, 0x02, 0x03, 0x04, 0x05, 0x06,
	    0x07, 0x08, 0x09 };
	struct wire w;
	struct wbuf o;
	uint8_t out[8];

	wire_init(&w, b, sizeof(b));
	is_int(wire_u8(&w), 0x01, "u8");
	is_int(wire_u16(&w), 0x0203, "u16 big-endian");
	is_int(wire_u32(&w), 0x04050607, "u32 big-endian");
	wire_skip(&w, 1);
	ok(!w.err && w.off == 8, "skip within bounds");
	is_int(wire_u16(&w), 0, "u16 past the end reads 0");
	ok(w.err, "and sets err");
	is_int(wire_u8(&w), 0, "err is sticky: u8 reads 0");
	is_int(w.off, 8, "offset unchanged after the error");
	wire_init(&w, b, sizeof(b));
	wire_skip(&w, 10);
	ok(w.err && w.off == 0, "skip past the end sets err");

	wbuf_init(&o, out, sizeof(out));
	wbuf_u32(&o, 0x01020304);
	wbuf_u16(&o, 0x0506);
	wbuf_u8(&o, 7);
	ok(!o.err && o.len == 7 && memcmp(out, b, 7) == 0, "writer");
	wbuf_u16(&o, 0xffff);
	ok(o.err && o.len == 7, "writer overflow is sticky, nothing written");
	wbuf_u8(&o, 1);
	ok(o.err && o.len == 7, "writer stays failed");
}

/* Writes name and reads it back, or "(err)". */
static const char *
name_rt(const char *name)
{
	static char out[DNS_TEXT_MAX + 1];
	uint8_t buf[512];
	struct wbuf b;
	struct wire w;

	wbuf_init(&b, buf, sizeof(buf));
	wbuf_name(&b, name);
	if (b.err)
		return "(werr)";
	wire_init(&w, buf, b.len);
	if (wire_name(&w, out) == -1 || w.off != b.len)
		return "(err)";
	return out;
}

/* A text name of n labels of len bytes each: "aaa.aaa...". */
static char *
long_name(char *buf, int n, int len)
{
	int i;

	buf[0] = '\0';
	for (i = 0; i < n; i++) {
		if (i > 0)
			strcat(buf, ".");
		memset(buf + strlen(buf), 'a', (size_t)len);
		buf[(i + 1) * len + i] = '\0';
	}
	return buf;
}

static void
test_names(void)
{
	char big[600], want[600];

	is_str(name_rt("www.Example.TEST"), "www.example.test",
	    "name round trip, lowercased");
	is_str(name_rt(""), "", "root");
	is_str(name_rt("."), "", "root as \".\"");
	is_str(name_rt("a.b."), "a.b", "one trailing dot accepted");
	is_str(name_rt("_sip._tcp.x-y.test"), "_sip._tcp.x-y.test",
	    "'_' and '-' allowed");
	is_str(name_rt("a..b"), "(werr)", "writer: empty label");
	is_str(name_rt(".a"), "(werr)", "writer: leading dot");
	is_str(name_rt(long_name(big, 1, 64)), "(werr)",
	    "writer: 64-byte label");
	is_str(name_rt(long_name(big, 1, 63)), long_name(want, 1, 63),
	    "63-byte label");
	/* 3 * 64 + 62 + 1 = 255 bytes on the wire; text 253. */
	long_name(big, 3, 63);
	strcat(big, ".");
	memset(big + strlen(big), 'b', 61);
	big[253] = '\0';
	is_str(name_rt(big), big, "255-byte wire name");
	strcat(big, "b");
	is_str(name_rt(big), "(werr)", "writer: 256-byte wire name");
	is_str(name_rt("a b.test"), "(err)", "reader: space in a label");
	is_str(name_rt("a*.test"), "(err)", "reader: '*' in a label");
}

/* Reads a name at off in buf; "(err)" or the name, and the end offset. */
static const char *
name_at(const uint8_t *buf, size_t len, size_t off, size_t *end)
{
	static char out[DNS_TEXT_MAX + 1];
	struct wire w;

	wire_init(&w, buf, len);
	w.off = off;
	if (wire_name(&w, out) == -1) {
		ok(out[0] == '\0', "failed name leaves out empty");
		return "(err)";
	}
	if (end != NULL)
		*end = w.off;
	return out;
}

static void
test_compression(void)
{
	uint8_t buf[512];
	size_t end, i, off;

	memset(buf, 0, sizeof(buf));
	/* 12: "www.example.test"; 30: "mail" + ptr(16); 37: "x" + ptr(30) */
	memcpy(buf + 12, "\3www\7example\4test\0", 18);
	memcpy(buf + 30, "\4mail\xc0\x10", 7);
	memcpy(buf + 37, "\1X\xc0\x1e", 4);
	is_str(name_at(buf, 41, 12, &end), "www.example.test", "plain name");
	is_int(end, 30, "offset after a plain name");
	is_str(name_at(buf, 41, 30, &end), "mail.example.test",
	    "pointer into an earlier name");
	is_int(end, 37, "offset after the pointer");
	is_str(name_at(buf, 41, 37, &end), "x.mail.example.test",
	    "chained pointers, lowercased");
	is_int(end, 41, "offset after the first pointer of a chain");
	is_str(name_at(buf, 40, 37, NULL), "(err)", "pointer cut short");

	memcpy(buf + 41, "\xc0\x2b", 2);	/* at 41, pointing to 43 */
	memcpy(buf + 43, "\1a\0", 3);
	is_str(name_at(buf, 46, 41, NULL), "(err)", "forward pointer");
	memcpy(buf + 41, "\xc0\x29", 2);
	is_str(name_at(buf, 46, 41, NULL), "(err)", "self pointer");
	memcpy(buf + 41, "\1a\xc0\x29", 4);
	is_str(name_at(buf, 46, 41, NULL), "(err)",
	    "pointer to the name's own start");
	/* 50 points to 60, 60 points to 50: each looks backwards from one. */
	memcpy(buf + 50, "\xc0\x3c", 2);
	memcpy(buf + 60, "\xc0\x32", 2);
	is_str(name_at(buf, 62, 60, NULL), "(err)", "pointer loop");
	memcpy(buf + 50, "\1a\xc0\x3c", 4);
	is_str(name_at(buf, 62, 60, NULL), "(err)",
	    "pointer loop through a label");
	memcpy(buf + 41, "\xc0\x05", 2);
	is_str(name_at(buf, 46, 41, NULL), "(err)", "pointer into the header");
	buf[41] = 0x40;
	is_str(name_at(buf, 46, 41, NULL), "(err)", "label type 0x40");
	memset(buf + 42, 'a', 64);
	buf[42 + 64] = 0;
	is_str(name_at(buf, 42 + 65, 41, NULL), "(err)",
	    "64-byte label with all its bytes");
	buf[41] = 63;
	buf[41 + 64] = 0;
	is_int(strlen(name_at(buf, 41 + 65, 41, NULL)), 63,
	    "63-byte label with all its bytes");
	buf[41] = 0x80;
	is_str(name_at(buf, 46, 41, NULL), "(err)", "label type 0x80");
	memcpy(buf + 41, "\3a.b\0", 5);
	is_str(name_at(buf, 46, 41, NULL), "(err)", "'.' inside a label");
	memcpy(buf + 41, "\3a\0b\0", 5);
	is_str(name_at(buf, 46, 41, NULL), "(err)", "NUL inside a label");
	memcpy(buf + 41, "\3abc", 4);
	is_str(name_at(buf, 45, 41, NULL), "(err)", "no terminating label");
	is_str(name_at(buf, 43, 41, NULL), "(err)", "label cut short");

	/* A chain: 12 "a", then 2-byte pointers each to the one before. */
	memset(buf, 0, sizeof(buf));
	memcpy(buf + 12, "\1a\0", 3);
	for (i = 0, off = 15; i < DNS_PTR_MAX + 1; i++, off += 2) {
		buf[off] = 0xc0;
		buf[off + 1] = (uint8_t)(i == 0 ? 12 : off - 2);
	}
	is_str(name_at(buf, off, 15 + 2 * (DNS_PTR_MAX - 1), NULL), "a",
	    "16 pointers");
	is_str(name_at(buf, off, 15 + 2 * DNS_PTR_MAX, NULL), "(err)",
	    "17 pointers");

	/* Pointers cannot make a name longer than 255 bytes either. */
	memset(buf, 0, sizeof(buf));
	for (i = 0, off = 12; i < 4; i++) {
		buf[off] = 63;
		memset(buf + off + 1, 'a', 63);
		off += 64;
	}
	buf[off++] = 0;
	is_str(name_at(buf, off, 12, NULL), "(err)", "257-byte name");
	buf[12 + 3 * 64] = 62;		/* 63 + 1 + 62 + 1 + 62 + 1... */
	buf[12 + 3 * 64 + 63] = 0;
	is_str(name_at(buf, off, 12, NULL), "(err)", "256-byte name");
	buf[12 + 3 * 64] = 61;
	buf[12 + 3 * 64 + 62] = 0;
	is_int(strlen(name_at(buf, off, 12, NULL)), 253, "255-byte name");
	buf[12 + 3 * 64] = 63;
	buf[12 + 3 * 64 + 62] = 'a';
	buf[12 + 3 * 64 + 63] = 'a';
	is_str(name_at(buf, off, 12 + 64, NULL), long_name((char[300]){0}, 3,
	    63), "193-byte name");
	buf[off] = 63;			/* one more label, then into the 4 */
	memset(buf + off + 1, 'b', 63);
	buf[off + 64] = 0xc0;
	buf[off + 65] = 12 + 64;
	is_str(name_at(buf, off + 66, off, NULL), "(err)",
	    "pointer making a 257-byte name");
	buf[off + 65] = 12 + 64 * 3;
	is_int(strlen(name_at(buf, off + 66, off, NULL)), 127,
	    "pointer making a 129-byte name");
}

static void
test_query(void)
{
	struct dns_query q;
	uint8_t buf[512];
	size_t len;

	len = mkquery(buf, sizeof(buf), 0x1234, DNS_F_RD, "WWW.Example.test",
	    DNS_T_A, 0, 0, 0);
	is_int(dns_parse_query(buf, len, &q), 0, "plain query parses");
	is_int(q.id, 0x1234, "id");
	is_int(q.flags, DNS_F_RD, "flags as received");
	is_str(q.qname, "www.example.test", "qname lowercased");
	is_str(q.qname_echo, "WWW.Example.test", "qname as received");
	is_int(q.qtype, DNS_T_A, "qtype");
	is_int(q.qclass, DNS_C_IN, "qclass");
	is_int(q.edns, 0, "no edns");
	is_int(q.question_len, len, "question_len covers header + question");
	is_int(dns_udp_limit(&q), 512, "udp limit without edns");

	len = mkquery(buf, sizeof(buf), 7, 0, "a.test", DNS_T_AAAA, 4096, 0,
	    1);
	is_int(dns_parse_query(buf, len, &q), 0, "edns query parses");
	ok(q.edns && q.edns_udp == 4096 && q.edns_version == 0 && q.edns_do,
	    "edns fields");
	is_int(q.question_len, len - 11, "question_len excludes the OPT");
	is_int(dns_udp_limit(&q), 4096, "udp limit 4096");
	len = mkquery(buf, sizeof(buf), 7, 0, "a.test", DNS_T_A, 1232, 0, 0);
	dns_parse_query(buf, len, &q);
	ok(dns_udp_limit(&q) == 1232 && !q.edns_do, "udp limit 1232, no DO");
	len = mkquery(buf, sizeof(buf), 7, 0, "a.test", DNS_T_A, 100, 0, 0);
	dns_parse_query(buf, len, &q);
	ok(q.edns_udp == 512 && dns_udp_limit(&q) == 512,
	    "edns size below 512 counts as 512");
	len = mkquery(buf, sizeof(buf), 7, 0, "a.test", DNS_T_A, 65000, 0, 0);
	dns_parse_query(buf, len, &q);
	ok(q.edns_udp == 65000 && dns_udp_limit(&q) == DNS_UDP_MAX,
	    "edns size capped at ours");
	len = mkquery(buf, sizeof(buf), 7, 0, "", DNS_T_NS, 0, 0, 0);
	ok(dns_parse_query(buf, len, &q) == 0 && q.qname[0] == '\0',
	    "root query");
}

/* Expected return of dns_parse_query for hand-made bytes. */
struct bad {
	const char	*what;
	const char	*bytes;
	size_t		 len;
	int		 rc;
};

#define B(s)	s, sizeof(s) - 1
#define HDR(flags, qd, an, ns, ar) "\x12\x34" flags qd an ns ar
#define Q_A	"\1a\4test\0\0\1\0\1"
#define OPT	"\0\0\x29\x10\0\0\0\0\0\0\0"
#define L16	"abcdefghijklmnop"

static void
test_malformed(void)
{
	static const struct bad t[] = {
		{ "empty", B(""), -1 },
		{ "11-byte header", B("\x12\x34\1\0\0\1\0\0\0\0\0"), -1 },
		{ "header only", B(HDR("\1\0", "\0\1", "\0\0", "\0\0",
		    "\0\0")), DNS_R_FORMERR },
		{ "valid", B(HDR("\1\0", "\0\1", "\0\0", "\0\0", "\0\0") Q_A),
		    0 },
		{ "QR set", B(HDR("\x81\0", "\0\1", "\0\0", "\0\0", "\0\0")
		    Q_A), -1 },
		{ "QR set, short", B(HDR("\x80\0", "\0\0", "\0\0", "\0\0",
		    "\0\0")), -1 },
		{ "opcode 2 (status)", B(HDR("\x10\0", "\0\1", "\0\0", "\0\0",
		    "\0\0") Q_A), DNS_R_NOTIMP },
		{ "opcode 5 (update), no question", B(HDR("\x28\0", "\0\0",
		    "\0\0", "\0\0", "\0\0")), DNS_R_NOTIMP },
		{ "TC set", B(HDR("\x03\0", "\0\1", "\0\0", "\0\0", "\0\0")
		    Q_A), DNS_R_FORMERR },
		{ "qdcount 0", B(HDR("\1\0", "\0\0", "\0\0", "\0\0", "\0\0")),
		    DNS_R_FORMERR },
		{ "qdcount 2", B(HDR("\1\0", "\0\2", "\0\0", "\0\0", "\0\0")
		    Q_A Q_A), DNS_R_FORMERR },
		{ "truncated name", B(HDR("\1\0", "\0\1", "\0\0", "\0\0",
		    "\0\0") "\1a\4te"), DNS_R_FORMERR },
		{ "name without root label", B(HDR("\1\0", "\0\1", "\0\0",
		    "\0\0", "\0\0") "\1a\4test"), DNS_R_FORMERR },
		{ "truncated qtype", B(HDR("\1\0", "\0\1", "\0\0", "\0\0",
		    "\0\0") "\1a\4test\0\0"), DNS_R_FORMERR },
		{ "truncated qclass", B(HDR("\1\0", "\0\1", "\0\0", "\0\0",
		    "\0\0") "\1a\4test\0\0\1\0"), DNS_R_FORMERR },
		{ "self pointer", B(HDR("\1\0", "\0\1", "\0\0", "\0\0", "\0\0")
		    "\xc0\x0c\0\1\0\1"), DNS_R_FORMERR },
		{ "forward pointer", B(HDR("\1\0", "\0\1", "\0\0", "\0\0",
		    "\0\0") "\xc0\x12\0\1\0\1\1a\0"), DNS_R_FORMERR },
		{ "pointer to header", B(HDR("\1\0", "\0\1", "\0\0", "\0\0",
		    "\0\0") "\xc0\x02\0\1\0\1"), DNS_R_FORMERR },
		{ "label type 0x40", B(HDR("\1\0", "\0\1", "\0\0", "\0\0",
		    "\0\0") "\x41" "a\0\0\1\0\1"), DNS_R_FORMERR },
		{ "label type 0x80", B(HDR("\1\0", "\0\1", "\0\0", "\0\0",
		    "\0\0") "\x81" "a\0\0\1\0\1"), DNS_R_FORMERR },
		{ "space in qname", B(HDR("\1\0", "\0\1", "\0\0", "\0\0",
		    "\0\0") "\3a b\0\0\1\0\1"), DNS_R_FORMERR },
		{ "trailing byte", B(HDR("\1\0", "\0\1", "\0\0", "\0\0", "\0\0")
		    Q_A "\0"), DNS_R_FORMERR },
		{ "ancount 1", B(HDR("\1\0", "\0\1", "\0\1", "\0\0", "\0\0")
		    Q_A "\xc0\x0c\0\1\0\1\0\0\0\0\0\4\1\2\3\4"), DNS_R_FORMERR },
		{ "nscount 1", B(HDR("\1\0", "\0\1", "\0\0", "\0\1", "\0\0")
		    Q_A OPT), DNS_R_FORMERR },
		{ "ancount 1, no record", B(HDR("\1\0", "\0\1", "\0\1",
		    "\0\0", "\0\0") Q_A), DNS_R_FORMERR },
		{ "nscount 1, no record", B(HDR("\1\0", "\0\1", "\0\0",
		    "\0\1", "\0\0") Q_A), DNS_R_FORMERR },
		{ "64-byte label", B(HDR("\1\0", "\0\1", "\0\0", "\0\0",
		    "\0\0") "\x40" L16 L16 L16 L16 "\0\0\1\0\1"), DNS_R_FORMERR },
		{ "63-byte label", B(HDR("\1\0", "\0\1", "\0\0", "\0\0",
		    "\0\0") "\x3f" L16 L16 L16 "abcdefghijklmno" "\0\0\1\0\1"),
		    0 },
		{ "edns", B(HDR("\1\0", "\0\1", "\0\0", "\0\0", "\0\1") Q_A
		    OPT), 0 },
		{ "arcount 1, record missing", B(HDR("\1\0", "\0\1", "\0\0",
		    "\0\0", "\0\1") Q_A), DNS_R_FORMERR },
		{ "two OPTs", B(HDR("\1\0", "\0\1", "\0\0", "\0\0", "\0\2") Q_A
		    OPT OPT), DNS_R_FORMERR },
		{ "OPT with a name", B(HDR("\1\0", "\0\1", "\0\0", "\0\0",
		    "\0\1") Q_A "\1a\0\0\x29\x10\0\0\0\0\0\0\0"),
		    DNS_R_FORMERR },
		{ "OPT named by a pointer", B(HDR("\1\0", "\0\1", "\0\0",
		    "\0\0", "\0\1") Q_A "\xc0\x11\0\x29\x10\0\0\0\0\0\0\0"),
		    DNS_R_FORMERR },
		{ "A record as additional", B(HDR("\1\0", "\0\1", "\0\0",
		    "\0\0", "\0\1") Q_A "\0\0\1\0\1\0\0\0\0\0\4\1\2\3\4"),
		    DNS_R_FORMERR },
		{ "OPT truncated", B(HDR("\1\0", "\0\1", "\0\0", "\0\0", "\0\1")
		    Q_A "\0\0\x29\x10\0\0\0\0"), DNS_R_FORMERR },
		{ "OPT rdata past the end", B(HDR("\1\0", "\0\1", "\0\0",
		    "\0\0", "\0\1") Q_A "\0\0\x29\x10\0\0\0\0\0\0\4\0\12"),
		    DNS_R_FORMERR },
		{ "OPT with a cookie option", B(HDR("\1\0", "\0\1", "\0\0",
		    "\0\0", "\0\1") Q_A "\0\0\x29\x10\0\0\0\0\0\0\14\0\12\0\10"
		    "ABCDEFGH"), 0 },
		{ "OPT option longer than rdata", B(HDR("\1\0", "\0\1", "\0\0",
		    "\0\0", "\0\1") Q_A "\0\0\x29\x10\0\0\0\0\0\0\6\0\12\0\10"
		    "AB" "CDEFGH"), DNS_R_FORMERR },
		{ "OPT option header cut", B(HDR("\1\0", "\0\1", "\0\0",
		    "\0\0", "\0\1") Q_A "\0\0\x29\x10\0\0\0\0\0\0\2\0\12\0\0"),
		    DNS_R_FORMERR },
		{ "OPT then trailing byte", B(HDR("\1\0", "\0\1", "\0\0",
		    "\0\0", "\0\1") Q_A OPT "x"), DNS_R_FORMERR },
		{ "EDNS version 1", B(HDR("\1\0", "\0\1", "\0\0", "\0\0",
		    "\0\1") Q_A "\0\0\x29\x10\0\0\1\0\0\0\0"), DNS_R_BADVERS },
		{ "EDNS version 1, malformed after", B(HDR("\1\0", "\0\1",
		    "\0\0", "\0\0", "\0\1") Q_A "\0\0\x29\x10\0\0\1\0\0\0\0z"),
		    DNS_R_FORMERR },
	};
	struct dns_query q;
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		is_int(dns_parse_query((const uint8_t *)t[i].bytes, t[i].len,
		    &q), t[i].rc, "query: %s", t[i].what);
	dns_parse_query((const uint8_t *)t[6].bytes, t[6].len, &q);
	is_int(q.id, 0x1234, "id known for a NOTIMP reply");
}

/* Builds a response with the given addresses and reads it back. */
static size_t
respond(const uint8_t *query, size_t qlen, const struct cidr *addrs,
    size_t n, int aa, uint8_t *out, size_t maxlen, struct msg *m)
{
	struct dns_query q;
	struct dns_answer a;
	size_t len;
	int rc;

	rc = dns_parse_query(query, qlen, &q);
	memset(&a, 0, sizeof(a));
	a.rcode = rc == DNS_R_BADVERS ? rc : DNS_R_NOERROR;
	a.aa = aa;
	a.addrs = addrs;
	a.naddrs = n;
	a.ttl = 60;
	len = dns_build_response(&q, &a, out, maxlen);
	if (parse_msg(out, len, m) == -1)
		printf("# response does not parse back\n");
	return len;
}

static void
test_answers(void)
{
	struct cidr a4[2], a6[1];
	struct dns_query q;
	struct dns_answer a;
	uint8_t query[512], out[512];
	size_t qlen, len;
	struct msg m;

	a4[0] = v4("169.254.1.1");
	a4[1] = v4("169.254.1.2");
	a6[0] = v6("fd00::53");
	qlen = mkquery(query, sizeof(query), 0xbeef, DNS_F_RD | DNS_F_CD,
	    "Web.Corp.test", DNS_T_A, 0, 0, 0);
	len = respond(query, qlen, a4, 2, 1, out, sizeof(out), &m);
	is_int(len, qlen + 2 * 16, "A response length");
	is_int(m.id, 0xbeef, "id echoed");
	is_int(m.flags, DNS_F_QR | DNS_F_AA | DNS_F_RD | DNS_F_CD,
	    "QR, AA; RD and CD copied; no RA; NOERROR");
	ok(m.qd == 1 && m.an == 2 && m.ns == 0 && m.ar == 0, "counts");
	ok(memcmp(out + DNS_HDR_LEN, query + DNS_HDR_LEN,
	    qlen - DNS_HDR_LEN) == 0, "question echoed byte for byte (case)");
	ok(m.qtype == DNS_T_A && m.qclass == DNS_C_IN, "question type, class");
	ok(out[qlen] == 0xc0 && out[qlen + 1] == 12, "owner is a pointer to 12");
	is_str(m.rr[0].name, "web.corp.test", "answer name via pointer");
	ok(m.rr[0].type == DNS_T_A && m.rr[0].class == DNS_C_IN &&
	    m.rr[0].ttl == 60 && m.rr[0].rdlen == 4, "A record fields");
	ok(memcmp(m.rr[0].rdata, a4[0].addr, 4) == 0 &&
	    memcmp(m.rr[1].rdata, a4[1].addr, 4) == 0, "A addresses in order");

	qlen = mkquery(query, sizeof(query), 2, 0, "v6.test", DNS_T_AAAA,
	    1232, 0, 1);
	len = respond(query, qlen, a6, 1, 1, out, sizeof(out), &m);
	is_int(len, qlen + 28, "AAAA response length (with OPT)");
	ok(m.an == 1 && m.ar == 1 && m.nrr == 2, "one answer, one OPT");
	ok(m.rr[0].type == DNS_T_AAAA && m.rr[0].rdlen == 16 &&
	    memcmp(m.rr[0].rdata, a6[0].addr, 16) == 0, "AAAA record");
	is_str(m.rr[0].name, "v6.test", "AAAA name via pointer");
	ok(m.rr[1].name[0] == '\0' && m.rr[1].type == DNS_T_OPT &&
	    m.rr[1].class == DNS_UDP_MAX && m.rr[1].ttl == 0 &&
	    m.rr[1].rdlen == 0, "OPT: our size, version 0, no DO, no options");
	is_int(m.flags, DNS_F_QR | DNS_F_AA, "no RD when the query had none");

	len = respond(query, qlen, NULL, 0, 1, out, sizeof(out), &m);
	ok(len == qlen && m.an == 0 && m.ar == 1 &&
	    m.flags == (DNS_F_QR | DNS_F_AA), "NODATA: NOERROR, AA, no answers");

	/* A query made up by the caller (a self-test): qname only. */
	memset(&q, 0, sizeof(q));
	q.id = 77;
	strcpy(q.qname, "self.test");
	q.qtype = DNS_T_A;
	q.qclass = DNS_C_IN;
	memset(&a, 0, sizeof(a));
	a.addrs = a4;
	a.naddrs = 1;
	len = dns_build_response(&q, &a, out, sizeof(out));
	ok(parse_msg(out, len, &m) == 0 && m.id == 77 && m.an == 1 &&
	    strcmp(m.qname, "self.test") == 0 &&
	    strcmp(m.rr[0].name, "self.test") == 0,
	    "made-up query without qname_echo: qname used");
}

static void
test_truncation(void)
{
	struct cidr a[40], b[60];
	uint8_t query[512], out[DNS_TCP_MAX];
	struct dns_query q;
	size_t qlen, len, i;
	char s[64];
	struct msg m;

	for (i = 0; i < 40; i++) {
		snprintf(s, sizeof(s), "10.0.0.%zu", i + 1);
		a[i] = v4(s);
	}
	for (i = 0; i < 60; i++) {
		snprintf(s, sizeof(s), "fd00::%zx", i + 1);
		b[i] = v6(s);
	}
	qlen = mkquery(query, sizeof(query), 9, DNS_F_RD, "many.test",
	    DNS_T_A, 0, 0, 0);
	dns_parse_query(query, qlen, &q);
	len = respond(query, qlen, a, 40, 1, out, dns_udp_limit(&q), &m);
	ok(len == qlen && (m.flags & DNS_F_TC) && m.an == 0 && m.qd == 1,
	    "40 A records do not fit 512: TC, question, no answers");
	len = respond(query, qlen, a, 40, 1, out, DNS_TCP_MAX, &m);
	ok(!(m.flags & DNS_F_TC) && m.an == 40 && len == qlen + 40 * 16,
	    "the same over TCP: all 40");
	len = respond(query, qlen, a, 30, 1, out, 512, &m);
	ok(!(m.flags & DNS_F_TC) && m.an == 30 && len == 507,
	    "30 A records: 507 bytes fit in 512");
	len = respond(query, qlen, a, 31, 1, out, 512, &m);
	ok((m.flags & DNS_F_TC) && m.an == 0, "31 (523 bytes) do not");

	qlen = mkquery(query, sizeof(query), 9, 0, "many.test", DNS_T_A,
	    4096, 0, 0);
	dns_parse_query(query, qlen, &q);
	len = respond(query, qlen, a, 40, 1, out, dns_udp_limit(&q), &m);
	ok(!(m.flags & DNS_F_TC) && m.an == 40 && m.ar == 1,
	    "40 A records fit EDNS 4096");

	qlen = mkquery(query, sizeof(query), 9, 0, "many.test", DNS_T_AAAA,
	    1232, 0, 0);
	dns_parse_query(query, qlen, &q);
	len = respond(query, qlen, b, 60, 1, out, dns_udp_limit(&q), &m);
	ok((m.flags & DNS_F_TC) && m.an == 0 && m.ar == 1 &&
	    m.rr[0].type == DNS_T_OPT && len <= 1232,
	    "60 AAAA do not fit EDNS 1232: TC, OPT kept");
	len = respond(query, qlen, b, 40, 1, out, dns_udp_limit(&q), &m);
	ok(!(m.flags & DNS_F_TC) && m.an == 40 && len <= 1232,
	    "40 AAAA fit EDNS 1232");
	ok(dns_build_response(&q, &(struct dns_answer){ .aa = 1 }, out,
	    qlen - 1) == 0, "no room even for the question: 0");
}

static void
test_errors(void)
{
	uint8_t query[512], out[512];
	struct dns_query q;
	struct dns_answer a;
	size_t qlen, len;
	struct msg m;

	/* Trailing garbage: FORMERR, question echoed. */
	qlen = mkquery(query, sizeof(query), 0x4242, DNS_F_RD, "Err.test",
	    DNS_T_A, 0, 0, 0);
	query[qlen++] = 0xff;
	is_int(dns_parse_query(query, qlen, &q), DNS_R_FORMERR,
	    "trailing byte: FORMERR");
	len = dns_build_error(query, qlen, DNS_R_FORMERR, out, sizeof(out));
	ok(parse_msg(out, len, &m) == 0 && m.id == 0x4242 &&
	    m.flags == (DNS_F_QR | DNS_F_RD | DNS_R_FORMERR) && m.qd == 1 &&
	    m.an == 0 && m.ar == 0, "FORMERR reply: id, RD, rcode");
	is_str(m.qname, "err.test", "FORMERR reply echoes the question");
	ok(memcmp(out + 12, query + 12, qlen - 13) == 0,
	    "... in its original case");

	/* qdcount 0: header only. */
	memcpy(query, "\xab\xcd\1\0\0\0\0\0\0\0\0\0", 12);
	len = dns_build_error(query, 12, DNS_R_FORMERR, out, sizeof(out));
	ok(len == 12 && parse_msg(out, len, &m) == 0 && m.id == 0xabcd &&
	    m.qd == 0 && m.flags == (DNS_F_QR | DNS_F_RD | DNS_R_FORMERR),
	    "qdcount 0: header-only FORMERR");
	/* An unreadable question: header only. */
	len = dns_build_error((const uint8_t *)"\0\1\0\0\0\1\0\0\0\0\0\0"
	    "\xc0\x0c\0\1\0\1", 18, DNS_R_FORMERR, out, sizeof(out));
	ok(len == 12 && parse_msg(out, len, &m) == 0 && m.qd == 0 &&
	    m.id == 1, "bad qname: header-only FORMERR");
	len = dns_build_error((const uint8_t *)"\0\2\0\0\0\1\0\0\0\0\0\0"
	    "\1a\0\0\1\0", 18, DNS_R_FORMERR, out, sizeof(out));
	ok(len == 12 && parse_msg(out, len, &m) == 0 && m.qd == 0 &&
	    m.id == 2, "question without its class: header-only FORMERR");

	/* Opcode 2: NOTIMP, opcode echoed. */
	qlen = mkquery(query, sizeof(query), 5, 2 << 11, "x.test", DNS_T_A,
	    0, 0, 0);
	is_int(dns_parse_query(query, qlen, &q), DNS_R_NOTIMP, "opcode 2");
	len = dns_build_error(query, qlen, DNS_R_NOTIMP, out, sizeof(out));
	ok(parse_msg(out, len, &m) == 0 && DNS_OPCODE(m.flags) == 2 &&
	    DNS_RCODE(m.flags) == DNS_R_NOTIMP && m.qd == 1 &&
	    (m.flags & DNS_F_QR), "NOTIMP reply echoes opcode and question");

	is_int(dns_build_error(query, 11, DNS_R_FORMERR, out, sizeof(out)), 0,
	    "no reply to 11 bytes");
	is_int(dns_build_error(query, qlen, DNS_R_FORMERR, out, 11), 0,
	    "no reply when 12 bytes do not fit");
	query[2] |= 0x80;
	is_int(dns_build_error(query, qlen, DNS_R_FORMERR, out, sizeof(out)),
	    0, "no reply to a response");

	/* A good EDNS query refused: OPT included. */
	qlen = mkquery(query, sizeof(query), 6, DNS_F_RD, "other.test",
	    DNS_T_A, 1232, 0, 1);
	len = dns_build_error(query, qlen, DNS_R_REFUSED, out, sizeof(out));
	ok(parse_msg(out, len, &m) == 0 && m.ar == 1 && m.an == 0 &&
	    m.rr[0].type == DNS_T_OPT && DNS_RCODE(m.flags) == DNS_R_REFUSED &&
	    !(m.flags & DNS_F_AA), "REFUSED with OPT");
	dns_parse_query(query, qlen, &q);
	memset(&a, 0, sizeof(a));
	a.rcode = DNS_R_NXDOMAIN;
	a.aa = 1;
	a.ra = 1;
	len = dns_build_response(&q, &a, out, sizeof(out));
	ok(parse_msg(out, len, &m) == 0 && m.flags == (DNS_F_QR | DNS_F_AA |
	    DNS_F_RD | DNS_F_RA | DNS_R_NXDOMAIN), "NXDOMAIN with AA and RA");

	/* EDNS version 1: BADVERS = 16, upper bits in the OPT TTL. */
	qlen = mkquery(query, sizeof(query), 8, 0, "v.test", DNS_T_A, 1232,
	    1, 0);
	is_int(dns_parse_query(query, qlen, &q), DNS_R_BADVERS,
	    "EDNS version 1: BADVERS");
	ok(q.edns && q.edns_version == 1 && q.question_len == qlen - 11,
	    "BADVERS query fully parsed");
	len = respond(query, qlen, NULL, 0, 0, out, sizeof(out), &m);
	ok(len > 0 && DNS_RCODE(m.flags) == 0 && m.ar == 1 &&
	    m.rr[0].type == DNS_T_OPT && m.rr[0].ttl == 1u << 24,
	    "BADVERS: rcode 0 in the header, 1 in the OPT, version 0");
	len = dns_build_error(query, qlen, DNS_R_BADVERS, out, sizeof(out));
	ok(parse_msg(out, len, &m) == 0 && m.rr[0].ttl == 1u << 24 &&
	    m.id == 8 && m.qd == 1, "dns_build_error BADVERS likewise");
	qlen = mkquery(query, sizeof(query), 8, 0, "v.test", DNS_T_A, 0, 0,
	    0);
	dns_parse_query(query, qlen, &q);
	a.rcode = DNS_R_BADVERS;
	len = dns_build_response(&q, &a, out, sizeof(out));
	ok(parse_msg(out, len, &m) == 0 && DNS_RCODE(m.flags) ==
	    DNS_R_SERVFAIL && m.ar == 0, "extended rcode without EDNS: SERVFAIL");
}

/* xorshift64: deterministic, so a failure can be replayed. */
static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint32_t
rnd(uint32_t n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng % n);
}

/* One mutated input: 1 on an insane result. */
static int
fuzz_one(const uint8_t *in, size_t len, const struct cidr *addrs)
{
	static const int rcs[] = { -1, 0, DNS_R_FORMERR, DNS_R_NOTIMP,
	    DNS_R_BADVERS };
	uint8_t out[DNS_UDP_MIN];
	struct dns_query q;
	struct dns_answer a;
	struct msg m;
	size_t i, n;
	int rc;

	rc = dns_parse_query(in, len, &q);
	for (i = 0; i < 5 && rcs[i] != rc; i++)
		;
	if (i == 5)
		return 1;
	n = dns_build_error(in, len, DNS_R_FORMERR, out, sizeof(out));
	if (rc == -1 ? n != 0 : (n < DNS_HDR_LEN || parse_msg(out, n, &m) ||
	    m.id != q.id))
		return 1;
	if (rc != 0 && rc != DNS_R_BADVERS)
		return 0;
	if (strlen(q.qname) > 253 || q.question_len > len)
		return 1;
	memset(&a, 0, sizeof(a));
	a.rcode = rc;
	a.addrs = addrs;
	a.naddrs = 1 + rnd(40);
	n = dns_build_response(&q, &a, out, sizeof(out));
	if (n == 0 || n > sizeof(out) || parse_msg(out, n, &m) == -1 ||
	    strcmp(m.qname, q.qname) != 0)
		return 1;
	return (m.flags & DNS_F_TC) ? m.an != 0 : m.an != a.naddrs;
}

static void
test_mutations(void)
{
	struct cidr addrs[40];
	uint8_t seeds[3][512], in[600];
	size_t slen[3], len, i, k, nmut, bad = 0, parsed = 0;

	for (i = 0; i < 40; i++)
		addrs[i] = i % 2 ? v4("10.1.2.3") : v6("fd00::1");
	slen[0] = mkquery(seeds[0], 512, 1, DNS_F_RD, "a.b.test", DNS_T_A, 0,
	    0, 0);
	slen[1] = mkquery(seeds[1], 512, 2, 0, "Mixed.Case.test", DNS_T_AAAA,
	    4096, 0, 1);
	slen[2] = mkquery(seeds[2], 512, 3, 0, "x", DNS_T_A, 1232, 1, 0);
	for (i = 0; i < 5000; i++) {
		k = rnd(3);
		len = slen[k];
		memcpy(in, seeds[k], len);
		for (nmut = 1 + rnd(4); nmut > 0; nmut--) {
			switch (rnd(8)) {
			case 0:		/* truncate */
				len = rnd((uint32_t)len + 1);
				break;
			case 1:		/* append */
				if (len < sizeof(in))
					in[len++] = (uint8_t)rnd(256);
				break;
			case 2:		/* flip a bit */
				in[rnd((uint32_t)len)] ^= (uint8_t)(1 <<
				    rnd(8));
				break;
			default:	/* replace a byte */
				in[rnd((uint32_t)len)] = (uint8_t)rnd(256);
			}
			if (len == 0)
				break;
		}
		bad += fuzz_one(in, len, addrs);
		parsed += dns_parse_query(in, len, &(struct dns_query){0}) == 0;
	}
	is_int(bad, 0, "5000 mutated queries: sane results");
	ok(parsed > 100 && parsed < 4900, "... of which some parse (%zu)",
	    parsed);
}

int
main(void)
{
	test_reader();
	test_names();
	test_compression();
	test_query();
	test_malformed();
	test_answers();
	test_truncation();
	test_errors();
	test_mutations();
	return done_testing();
}
