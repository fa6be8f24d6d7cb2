/* SPDX-License-Identifier: MIT */
/* libFuzzer harness for the DNS wire code (queries from any client). */
#include "config.h"

#include <sys/socket.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dns.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static void
check(int cond)
{
	if (!cond)
		abort();
}

/* A name as wire_name() may return it: short, lowercase, label bytes. */
static void
check_name(const char *s)
{
	size_t i, len = strlen(s);

	check(len <= DNS_TEXT_MAX - 1);
	for (i = 0; i < len; i++)
		check((s[i] >= 'a' && s[i] <= 'z') ||
		    (s[i] >= '0' && s[i] <= '9') || s[i] == '-' ||
		    s[i] == '_' || (s[i] == '.' && i > 0 && i < len - 1 &&
		    s[i + 1] != '.'));
}

/*
 * Reads the input as any message, the way a response would be read, so
 * that compression pointers (never valid in a query) are exercised.
 */
static void
walk_message(const uint8_t *data, size_t len)
{
	char name[DNS_TEXT_MAX + 1];
	struct wire w;
	size_t before;
	int i, n;

	wire_init(&w, data, len);
	wire_skip(&w, 4);
	n = wire_u16(&w);
	n += wire_u16(&w) + wire_u16(&w) + wire_u16(&w);
	for (i = 0; i < n && i < 64 && !w.err; i++) {
		before = w.off;
		if (wire_name(&w, name) == 0) {
			check_name(name);
			check(w.off > before && w.off <= len);
		} else
			check(w.err && name[0] == '\0');
		wire_skip(&w, i == 0 ? 4 : 8);
		wire_skip(&w, i == 0 ? 0 : wire_u16(&w));
	}
}

/* A response read back must agree with the query and the answer. */
static void
check_response(const struct dns_query *q, const struct dns_answer *a,
    const uint8_t *out, size_t len, size_t maxlen)
{
	char name[DNS_TEXT_MAX + 1];
	struct wire w;
	uint16_t flags, qd, an, ns, ar, i;

	check(len >= q->question_len && len <= maxlen);
	wire_init(&w, out, len);
	check(wire_u16(&w) == q->id);
	flags = wire_u16(&w);
	qd = wire_u16(&w);
	an = wire_u16(&w);
	ns = wire_u16(&w);
	ar = wire_u16(&w);
	check((flags & DNS_F_QR) && DNS_OPCODE(flags) == 0);
	check((flags & DNS_F_RD) == (q->flags & DNS_F_RD));
	check(qd == 1 && ns == 0 && ar == (q->edns ? 1 : 0));
	check((flags & DNS_F_TC) ? an == 0 : an == a->naddrs);
	check(wire_name(&w, name) == 0 && strcmp(name, q->qname) == 0);
	check(wire_u16(&w) == q->qtype && wire_u16(&w) == q->qclass);
	for (i = 0; i < an; i++) {
		check(wire_name(&w, name) == 0 && strcmp(name, q->qname) == 0);
		wire_skip(&w, 8);
		wire_skip(&w, wire_u16(&w));
	}
	if (ar == 1) {
		check(wire_name(&w, name) == 0 && name[0] == '\0');
		check(wire_u16(&w) == DNS_T_OPT);
		check(wire_u16(&w) == DNS_UDP_MAX);
		check(wire_u32(&w) >> 24 == (uint32_t)(a->rcode >> 4));
		check(wire_u16(&w) == 0);
	}
	check(!w.err && w.off == len);
}

static void
respond(const struct dns_query *q, int rc, uint8_t *out, size_t maxlen)
{
	static struct cidr addrs[64];
	struct dns_answer a;
	size_t len, i;

	for (i = 0; i < 64; i++) {
		addrs[i].family = q->qtype == DNS_T_AAAA ? AF_INET6 : AF_INET;
		addrs[i].addr[0] = (uint8_t)i;
	}
	memset(&a, 0, sizeof(a));
	a.rcode = rc;
	a.aa = 1;
	a.addrs = addrs;
	a.naddrs = (size_t)(q->id % 64);	/* the input picks */
	a.ttl = 60;
	len = dns_build_response(q, &a, out, maxlen);
	check(len > 0);
	check_response(q, &a, out, len, maxlen);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	static uint8_t out[DNS_TCP_MAX];
	struct dns_query q;
	size_t n;
	int rc;

	walk_message(data, len);
	rc = dns_parse_query(data, len, &q);
	check(rc == -1 || rc == 0 || rc == DNS_R_FORMERR ||
	    rc == DNS_R_NOTIMP || rc == DNS_R_BADVERS);
	n = dns_build_error(data, len, DNS_R_SERVFAIL, out, DNS_UDP_MIN);
	check(rc == -1 ? n == 0 : n >= DNS_HDR_LEN && n <= DNS_UDP_MIN);
	if (n > 0)
		check(out[0] == data[0] && out[1] == data[1] &&
		    (out[2] & 0x80));
	if (rc != 0 && rc != DNS_R_BADVERS)
		return 0;
	check_name(q.qname);
	check(q.question_len <= len && (!q.edns || q.edns_udp >= 512));
	check(strcasecmp(q.qname, q.qname_echo) == 0);
	respond(&q, rc, out, DNS_UDP_MIN);
	respond(&q, rc, out, DNS_TCP_MAX);
	return 0;
}
