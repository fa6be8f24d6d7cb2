/* SPDX-License-Identifier: MIT */
/* Parsing and formatting of endpoints, CIDRs, port ranges and hostnames. */
#include "config.h"

#include <sys/socket.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "sluice.h"

#define HOSTNAME_MAX	253
#define LABEL_MAX	63

/* Longest text form of an address we will look at, plus slack. */
#define ADDR_TEXT_MAX	(INET6_ADDRSTRLEN + 1)

static int
fail(const char **why, const char *reason)
{
	if (why != NULL)
		*why = reason;
	return -1;
}

/*
 * Decimal digits only: strtoul would take signs, spaces and hex, which
 * are never meant in a port or a prefix length.
 */
static int
parse_decimal(const char *s, size_t len, unsigned long max,
    unsigned long *out)
{
	unsigned long v = 0;
	size_t i;

	if (len == 0 || len > 10)
		return -1;
	for (i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (unsigned long)(s[i] - '0');
		if (v > max)
			return -1;
	}
	*out = v;
	return 0;
}

static int
parse_port(const char *s, size_t len, int allow_zero, uint16_t *port,
    const char **why)
{
	unsigned long v;

	if (len == 0)
		return fail(why, "missing port");
	if (parse_decimal(s, len, 65535, &v) == -1 || (v == 0 && !allow_zero))
		return fail(why, allow_zero ? "port out of range 0..65535" :
		    "port out of range 1..65535");
	*port = (uint16_t)v;
	return 0;
}

/* inet_pton on a counted string; family 0 means "whichever fits". */
static int
parse_ip(const char *s, size_t len, int family, uint8_t addr[16],
    int *outfam)
{
	char buf[ADDR_TEXT_MAX];

	if (len == 0 || len >= sizeof(buf))
		return -1;
	memcpy(buf, s, len);
	buf[len] = '\0';
	if (family != AF_INET6 && inet_pton(AF_INET, buf, addr) == 1) {
		*outfam = AF_INET;
		return 0;
	}
	if (family != AF_INET && inet_pton(AF_INET6, buf, addr) == 1) {
		*outfam = AF_INET6;
		return 0;
	}
	return -1;
}

static void
make_sockaddr(struct sockaddr_storage *ss, socklen_t *sslen, int family,
    const uint8_t addr[16], uint16_t port)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		memcpy(&sin->sin_addr, addr, 4);
		*sslen = sizeof(*sin);
	} else {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		memcpy(&sin6->sin6_addr, addr, 16);
		*sslen = sizeof(*sin6);
	}
}

int
addr_parse_endpoint(const char *s, struct sockaddr_storage *ss,
    socklen_t *sslen, int allow_zero, const char **why)
{
	const char *host, *colon, *port;
	size_t hostlen;
	uint8_t addr[16];
	uint16_t portnum;
	int family, want;

	if (s == NULL || *s == '\0')
		return fail(why, "empty address");
	if (*s == '[') {
		host = s + 1;
		if ((colon = strchr(host, ']')) == NULL)
			return fail(why, "missing ']'");
		hostlen = (size_t)(colon - host);
		if (colon[1] != ':')
			return fail(why, "missing port");
		port = colon + 2;
		want = AF_INET6;
	} else {
		host = s;
		if ((colon = strrchr(s, ':')) == NULL)
			return fail(why, "missing port");
		if (memchr(s, ':', (size_t)(colon - s)) != NULL)
			return fail(why, "ipv6 address needs brackets");
		hostlen = (size_t)(colon - host);
		port = colon + 1;
		want = AF_INET;
	}
	if (parse_ip(host, hostlen, want, addr, &family) == -1)
		return fail(why, want == AF_INET6 ? "bad ipv6 address" :
		    "bad ipv4 address");
	if (parse_port(port, strlen(port), allow_zero, &portnum, why) == -1)
		return -1;
	make_sockaddr(ss, sslen, family, addr, portnum);
	return 0;
}

static int
host_bits_clear(const struct cidr *c)
{
	size_t alen = c->family == AF_INET ? 4 : 16;
	size_t i;
	unsigned bit;

	for (i = 0; i < alen; i++) {
		bit = (unsigned)i * 8;
		if (bit >= c->prefixlen) {
			if (c->addr[i] != 0)
				return 0;
		} else if (bit + 8 > c->prefixlen) {
			if (c->addr[i] & (0xffu >> (c->prefixlen - bit)))
				return 0;
		}
	}
	return 1;
}

int
addr_parse_cidr(const char *s, struct cidr *c, const char **why)
{
	const char *slash;
	size_t alen;
	unsigned long plen;
	int maxlen;

	if (s == NULL || *s == '\0')
		return fail(why, "empty address");
	memset(c, 0, sizeof(*c));
	slash = strchr(s, '/');
	alen = slash != NULL ? (size_t)(slash - s) : strlen(s);
	if (parse_ip(s, alen, 0, c->addr, &c->family) == -1)
		return fail(why, "bad ip address");
	maxlen = c->family == AF_INET ? 32 : 128;
	if (slash == NULL) {
		c->prefixlen = (uint8_t)maxlen;
		return 0;
	}
	if (slash[1] == '\0')
		return fail(why, "missing prefix length");
	if (parse_decimal(slash + 1, strlen(slash + 1), (unsigned long)maxlen,
	    &plen) == -1)
		return fail(why, c->family == AF_INET ?
		    "prefix length out of range 0..32" :
		    "prefix length out of range 0..128");
	c->prefixlen = (uint8_t)plen;
	if (!host_bits_clear(c))
		return fail(why, "host bits set after the prefix length");
	return 0;
}

int
addr_parse_port_range(const char *s, struct port_range *r, const char **why)
{
	const char *dash;
	size_t lolen;

	if (s == NULL || *s == '\0')
		return fail(why, "empty port");
	dash = strchr(s, '-');
	lolen = dash != NULL ? (size_t)(dash - s) : strlen(s);
	if (parse_port(s, lolen, 0, &r->lo, why) == -1)
		return -1;
	if (dash == NULL) {
		r->hi = r->lo;
		return 0;
	}
	if (parse_port(dash + 1, strlen(dash + 1), 0, &r->hi, why) == -1)
		return -1;
	if (r->lo > r->hi)
		return fail(why, "port range runs backwards");
	return 0;
}

/* ASCII only, whatever the locale: names go on the wire as bytes. */
static int
is_digit(int ch)
{
	return ch >= '0' && ch <= '9';
}

static int
to_lower(int ch)
{
	return ch >= 'A' && ch <= 'Z' ? ch - 'A' + 'a' : ch;
}

static int
label_char(int ch)
{
	/* Underscore is not RFC 1035, but SRV-style names use it. */
	return (ch >= 'a' && ch <= 'z') || is_digit(ch) || ch == '-' ||
	    ch == '_';
}

/* Checks one label of len bytes; the name is already ASCII-lowercased. */
static int
check_label(const char *l, size_t len, const char **why)
{
	size_t i;

	if (len == 0)
		return fail(why, "empty label");
	if (len > LABEL_MAX)
		return fail(why, "label longer than 63 characters");
	if (l[0] == '-' || l[len - 1] == '-')
		return fail(why, "label starts or ends with '-'");
	for (i = 0; i < len; i++) {
		if (l[i] == '*')
			return fail(why, "'*' only allowed as \"*.\" prefix");
		if (!label_char((unsigned char)l[i]))
			return fail(why, "invalid character in hostname");
	}
	return 0;
}

static int
all_digits(const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (!is_digit((unsigned char)s[i]))
			return 0;
	return 1;
}

int
addr_parse_hostname(const char *s, char *out, int *wildcard,
    const char **why)
{
	const char *l, *dot;
	size_t len, i;

	if (s == NULL || *s == '\0')
		return fail(why, "empty hostname");
	*wildcard = 0;
	if (s[0] == '*') {
		if (s[1] != '.')
			return fail(why, "'*' only allowed as \"*.\" prefix");
		*wildcard = 1;
		s += 2;
	}
	len = strlen(s);
	if (len > 0 && s[len - 1] == '.')
		len--;		/* the root label */
	if (len == 0)
		return fail(why, "empty hostname");
	if (len > HOSTNAME_MAX - (*wildcard ? 2 : 0))
		return fail(why, "hostname longer than 253 characters");
	for (i = 0; i < len; i++)
		out[i] = (char)to_lower((unsigned char)s[i]);
	out[len] = '\0';
	for (l = out; ; l = dot + 1) {
		dot = memchr(l, '.', (size_t)(out + len - l));
		if (check_label(l, dot ? (size_t)(dot - l) :
		    (size_t)(out + len - l), why) == -1)
			return -1;
		if (dot == NULL)
			break;
	}
	/* "10.0.0.300" must not slip through as a name. */
	if (all_digits(l, (size_t)(out + len - l)))
		return fail(why, "all-numeric top-level label");
	return 0;
}

/* Treats ::ffff:a.b.c.d as a.b.c.d, as dual-stack sockets report it. */
static int
sockaddr_bytes(const struct sockaddr *sa, const uint8_t **bytes)
{
	const struct sockaddr_in6 *sin6;

	*bytes = NULL;
	if (sa->sa_family == AF_INET) {
		*bytes = (const uint8_t *)
		    &((const struct sockaddr_in *)sa)->sin_addr;
		return AF_INET;
	}
	if (sa->sa_family != AF_INET6)
		return -1;
	sin6 = (const struct sockaddr_in6 *)sa;
	if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
		*bytes = sin6->sin6_addr.s6_addr + 12;
		return AF_INET;
	}
	*bytes = sin6->sin6_addr.s6_addr;
	return AF_INET6;
}

int
cidr_contains(const struct cidr *c, const struct sockaddr *sa)
{
	const uint8_t *a;
	unsigned full, rest;

	if (sa == NULL || sockaddr_bytes(sa, &a) != c->family ||
	    c->prefixlen > (c->family == AF_INET ? 32 : 128))
		return 0;
	full = c->prefixlen / 8;
	rest = c->prefixlen % 8;
	if (memcmp(a, c->addr, full) != 0)
		return 0;
	if (rest == 0)
		return 1;
	return ((a[full] ^ c->addr[full]) & (0xff00u >> rest)) == 0;
}

void
cidr_from_sockaddr(struct cidr *c, const struct sockaddr *sa)
{
	const uint8_t *a;

	memset(c, 0, sizeof(*c));
	c->family = sockaddr_bytes(sa, &a);
	if (c->family == -1) {
		c->family = AF_UNSPEC;
		return;
	}
	c->prefixlen = c->family == AF_INET ? 32 : 128;
	memcpy(c->addr, a, c->family == AF_INET ? 4 : 16);
}

const char *
addr_str(const struct sockaddr *sa, char *buf, size_t len)
{
	char ip[INET6_ADDRSTRLEN];
	const void *a;

	if (len == 0)
		return buf;
	if (sa == NULL || (sa->sa_family != AF_INET &&
	    sa->sa_family != AF_INET6)) {
		snprintf(buf, len, "?");
		return buf;
	}
	if (sa->sa_family == AF_INET)
		a = &((const struct sockaddr_in *)sa)->sin_addr;
	else
		a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
	inet_ntop(sa->sa_family, a, ip, sizeof(ip));
	snprintf(buf, len, sa->sa_family == AF_INET ? "%s:%u" : "[%s]:%u",
	    ip, addr_port(sa));
	return buf;
}

const char *
cidr_str(const struct cidr *c, char *buf, size_t len)
{
	char ip[INET6_ADDRSTRLEN];

	if (len == 0)
		return buf;
	if (c->family != AF_INET && c->family != AF_INET6) {
		snprintf(buf, len, "?");
		return buf;
	}
	inet_ntop(c->family, c->addr, ip, sizeof(ip));
	snprintf(buf, len, "%s/%u", ip, c->prefixlen);
	return buf;
}

socklen_t
addr_len(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return sizeof(struct sockaddr_in);
	if (sa->sa_family == AF_INET6)
		return sizeof(struct sockaddr_in6);
	return 0;
}

uint16_t
addr_port(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)sa)->sin_port);
	if (sa->sa_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
	return 0;
}
