/* SPDX-License-Identifier: MIT */
/* Unit tests for src/addr.c: endpoints, CIDRs, port ranges, hostnames. */
#include "config.h"

#include <arpa/inet.h>
#include <string.h>

#include "sluice.h"
#include "tap.h"

/* Parses an endpoint and prints it back; NULL with *why on failure. */
static const char *
endpoint_rt(const char *s, int allow_zero, const char **why)
{
	static char buf[ADDR_STRLEN];
	struct sockaddr_storage ss;
	socklen_t len = 0;

	*why = NULL;
	if (addr_parse_endpoint(s, &ss, &len, allow_zero, why) == -1)
		return NULL;
	if (len != addr_len((struct sockaddr *)&ss))
		return "bad length";
	return addr_str((struct sockaddr *)&ss, buf, sizeof(buf));
}

static const char *
cidr_rt(const char *s, const char **why)
{
	static char buf[INET6_ADDRSTRLEN + 8];
	struct cidr c;

	*why = NULL;
	if (addr_parse_cidr(s, &c, why) == -1)
		return NULL;
	return cidr_str(&c, buf, sizeof(buf));
}

static void
test_endpoints(void)
{
	static const struct { const char *in, *out; int zero; } good[] = {
		{ "1.2.3.4:80", "1.2.3.4:80", 0 },
		{ "127.0.0.1:0", "127.0.0.1:0", 1 },
		{ "0.0.0.0:65535", "0.0.0.0:65535", 0 },
		{ "[fd00::1]:80", "[fd00::1]:80", 0 },
		{ "[::]:4433", "[::]:4433", 0 },
		{ "[::ffff:10.0.0.1]:53", "[::ffff:10.0.0.1]:53", 0 },
		{ "10.0.0.1:080", "10.0.0.1:80", 0 },
	};
	static const struct { const char *in, *why; int zero; } bad[] = {
		{ "", "empty address", 0 },
		{ "1.2.3.4", "missing port", 0 },
		{ "1.2.3.4:", "missing port", 0 },
		{ "1.2.3.4:0", "port out of range 1..65535", 0 },
		{ "1.2.3.4:65536", "port out of range 0..65535", 1 },
		{ "1.2.3.4:99999999999", "port out of range 1..65535", 0 },
		{ "1.2.3.4:-1", "port out of range 1..65535", 0 },
		{ "1.2.3.4:+80", "port out of range 1..65535", 0 },
		{ "1.2.3.4:8 0", "port out of range 1..65535", 0 },
		{ "1.2.3:80", "bad ipv4 address", 0 },
		{ "1.2.3.256:80", "bad ipv4 address", 0 },
		{ "01.2.3.4:80", "bad ipv4 address", 0 },
		{ "host.example:80", "bad ipv4 address", 0 },
		{ "fd00::1:80", "ipv6 address needs brackets", 0 },
		{ "[fd00::1]", "missing port", 0 },
		{ "[fd00::1]80", "missing port", 0 },
		{ "[fd00::1:80", "missing ']'", 0 },
		{ "[1.2.3.4]:80", "bad ipv6 address", 0 },
		{ "[fe80::1%eth0]:80", "bad ipv6 address", 0 },
		{ "[]:80", "bad ipv6 address", 0 },
	};
	const char *got, *why;
	size_t i;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		got = endpoint_rt(good[i].in, good[i].zero, &why);
		is_str(got, good[i].out, "endpoint '%s' round trip",
		    good[i].in);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		got = endpoint_rt(bad[i].in, bad[i].zero, &why);
		ok(got == NULL, "endpoint '%s' rejected", bad[i].in);
		is_str(why, bad[i].why, "endpoint '%s': why", bad[i].in);
	}
	ok(addr_parse_endpoint(NULL, NULL, NULL, 0, NULL) == -1,
	    "NULL endpoint with NULL why");
}

static void
test_cidrs(void)
{
	static const struct { const char *in, *out; } good[] = {
		{ "10.0.0.0/8", "10.0.0.0/8" },
		{ "10.1.2.3", "10.1.2.3/32" },
		{ "0.0.0.0/0", "0.0.0.0/0" },
		{ "10.9.0.0/24", "10.9.0.0/24" },
		{ "10.9.0.128/25", "10.9.0.128/25" },
		{ "fd00::/64", "fd00::/64" },
		{ "fd00:9::1", "fd00:9::1/128" },
		{ "::/0", "::/0" },
		{ "2001:db8::/127", "2001:db8::/127" },
		{ "10.0.0.0/08", "10.0.0.0/8" },
	};
	static const struct { const char *in, *why; } bad[] = {
		{ "", "empty address" },
		{ "/8", "bad ip address" },
		{ "10.0.0/8", "bad ip address" },
		{ "10.0.0.0/", "missing prefix length" },
		{ "10.0.0.0/33", "prefix length out of range 0..32" },
		{ "10.0.0.0/-1", "prefix length out of range 0..32" },
		{ "10.0.0.0/8/8", "prefix length out of range 0..32" },
		{ "fd00::/129", "prefix length out of range 0..128" },
		{ "10.0.0.1/8", "host bits set after the prefix length" },
		{ "10.9.0.5/24", "host bits set after the prefix length" },
		{ "10.9.0.129/25", "host bits set after the prefix length" },
		{ "fd00::1/64", "host bits set after the prefix length" },
		{ "fd00:0:0:0:8000::/64", "host bits set after the prefix "
		    "length" },
		{ "[fd00::]/64", "bad ip address" },
		{ "wiki.corp.test", "bad ip address" },
	};
	const char *got, *why;
	size_t i;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		got = cidr_rt(good[i].in, &why);
		is_str(got, good[i].out, "cidr '%s' round trip", good[i].in);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		got = cidr_rt(bad[i].in, &why);
		ok(got == NULL, "cidr '%s' rejected", bad[i].in);
		is_str(why, bad[i].why, "cidr '%s': why", bad[i].in);
	}
}

static int
contains(const char *cidr, const char *endpoint)
{
	struct sockaddr_storage ss;
	socklen_t len;
	struct cidr c;

	if (addr_parse_cidr(cidr, &c, NULL) == -1 ||
	    addr_parse_endpoint(endpoint, &ss, &len, 1, NULL) == -1)
		return -1;
	return cidr_contains(&c, (struct sockaddr *)&ss);
}

static void
test_contains(void)
{
	struct sockaddr_storage ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
	struct cidr c;
	socklen_t len;
	char buf[64];

	is_int(contains("10.9.0.0/24", "10.9.0.5:80"), 1, "in /24");
	is_int(contains("10.9.0.0/24", "10.9.1.5:80"), 0, "outside /24");
	is_int(contains("10.9.0.128/25", "10.9.0.127:1"), 0, "below /25");
	is_int(contains("10.9.0.128/25", "10.9.0.255:1"), 1, "top of /25");
	is_int(contains("10.0.0.0/9", "10.127.255.255:1"), 1, "in /9");
	is_int(contains("10.0.0.0/9", "10.128.0.0:1"), 0, "outside /9");
	is_int(contains("0.0.0.0/0", "192.0.2.1:1"), 1, "/0 holds all v4");
	is_int(contains("0.0.0.0/0", "[::1]:1"), 0, "v4 /0 has no v6");
	is_int(contains("10.1.2.3", "10.1.2.3:9"), 1, "host prefix");
	is_int(contains("10.1.2.3", "10.1.2.4:9"), 0, "host prefix, other");
	is_int(contains("fd00:9::/64", "[fd00:9::77]:80"), 1, "in v6 /64");
	is_int(contains("fd00:9::/64", "[fd00:a::77]:80"), 0, "outside /64");
	is_int(contains("fd00:9::/64", "10.0.0.1:80"), 0, "v6 has no v4");
	is_int(contains("10.9.0.0/24", "[::ffff:10.9.0.7]:80"), 1,
	    "v4-mapped v6 matches a v4 CIDR");
	is_int(contains("::/0", "[::ffff:10.9.0.7]:80"), 0,
	    "v4-mapped is not matched as v6");

	addr_parse_endpoint("[::ffff:192.0.2.7]:5", &ss, &len, 0, NULL);
	cidr_from_sockaddr(&c, (struct sockaddr *)&ss);
	is_str(cidr_str(&c, buf, sizeof(buf)), "192.0.2.7/32",
	    "cidr_from_sockaddr unmaps v4-mapped");
	addr_parse_endpoint("[fd00::5]:5", &ss, &len, 0, NULL);
	cidr_from_sockaddr(&c, (struct sockaddr *)&ss);
	is_str(cidr_str(&c, buf, sizeof(buf)), "fd00::5/128",
	    "cidr_from_sockaddr v6");
	is_int(cidr_contains(&c, (struct sockaddr *)&ss), 1,
	    "a host CIDR contains its own address");
	is_int(addr_port((struct sockaddr *)&ss), 5, "addr_port v6");
	is_int(addr_len((struct sockaddr *)&ss), sizeof(*sin6), "addr_len v6");
	ss.ss_family = AF_UNIX;
	is_int(addr_len((struct sockaddr *)&ss), 0, "addr_len other");
	is_int(addr_port((struct sockaddr *)&ss), 0, "addr_port other");
	is_str(addr_str((struct sockaddr *)&ss, buf, sizeof(buf)), "?",
	    "addr_str other family");
	cidr_from_sockaddr(&c, (struct sockaddr *)&ss);
	is_int(c.family, AF_UNSPEC, "cidr_from_sockaddr other family");
	is_int(cidr_contains(&c, (struct sockaddr *)&ss), 0,
	    "nothing contains another family");
	is_str(cidr_str(&c, buf, sizeof(buf)), "?", "cidr_str unspec");
	is_int(cidr_contains(&c, NULL), 0, "cidr_contains NULL");

	addr_parse_endpoint("[fd00:1234:5678:9abc:def0:1234:5678:9abc]:65535",
	    &ss, &len, 0, NULL);
	addr_str((struct sockaddr *)&ss, buf, 10);
	is_str(buf, "[fd00:123", "addr_str truncates safely");
	addr_str((struct sockaddr *)&ss, buf, sizeof(buf));
	is_str(buf, "[fd00:1234:5678:9abc:def0:1234:5678:9abc]:65535",
	    "longest v6 endpoint fits ADDR_STRLEN");
	ok(strlen(buf) < ADDR_STRLEN, "ADDR_STRLEN is enough");
}

static void
test_ports(void)
{
	static const struct { const char *in; int lo, hi; } good[] = {
		{ "80", 80, 80 }, { "1", 1, 1 }, { "65535", 65535, 65535 },
		{ "8000-8100", 8000, 8100 }, { "1-65535", 1, 65535 },
		{ "443-443", 443, 443 },
	};
	static const struct { const char *in, *why; } bad[] = {
		{ "", "empty port" },
		{ "0", "port out of range 1..65535" },
		{ "65536", "port out of range 1..65535" },
		{ "http", "port out of range 1..65535" },
		{ "0-80", "port out of range 1..65535" },
		{ "80-", "missing port" },
		{ "-80", "missing port" },
		{ "8100-8000", "port range runs backwards" },
		{ "80-90-100", "port out of range 1..65535" },
		{ " 80", "port out of range 1..65535" },
		{ "0x50", "port out of range 1..65535" },
	};
	struct port_range r;
	const char *why;
	size_t i;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		memset(&r, 0, sizeof(r));
		ok(addr_parse_port_range(good[i].in, &r, &why) == 0 &&
		    r.lo == good[i].lo && r.hi == good[i].hi,
		    "ports '%s' = %d-%d", good[i].in, good[i].lo, good[i].hi);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		why = NULL;
		ok(addr_parse_port_range(bad[i].in, &r, &why) == -1,
		    "ports '%s' rejected", bad[i].in);
		is_str(why, bad[i].why, "ports '%s': why", bad[i].in);
	}
}

static void
test_hostnames(void)
{
	static const struct { const char *in, *out; int wild; } good[] = {
		{ "wiki.corp.test", "wiki.corp.test", 0 },
		{ "Wiki.CORP.Test.", "wiki.corp.test", 0 },
		{ "*.docs.corp.test", "docs.corp.test", 1 },
		{ "*.Test", "test", 1 },
		{ "localhost", "localhost", 0 },
		{ "_sip._tcp.example.com", "_sip._tcp.example.com", 0 },
		{ "1password.com", "1password.com", 0 },
		{ "a-b.c-d.e", "a-b.c-d.e", 0 },
		{ "xn--bcher-kva.example", "xn--bcher-kva.example", 0 },
		{ "10.0.0.1x", "10.0.0.1x", 0 },
	};
	static const struct { const char *in, *why; } bad[] = {
		{ "", "empty hostname" },
		{ ".", "empty hostname" },
		{ "*.", "empty hostname" },
		{ "*", "'*' only allowed as \"*.\" prefix" },
		{ "*foo.test", "'*' only allowed as \"*.\" prefix" },
		{ "foo.*.test", "'*' only allowed as \"*.\" prefix" },
		{ "*.*.test", "'*' only allowed as \"*.\" prefix" },
		{ "foo..test", "empty label" },
		{ ".foo.test", "empty label" },
		{ "foo.test..", "empty label" },
		{ "-foo.test", "label starts or ends with '-'" },
		{ "foo-.test", "label starts or ends with '-'" },
		{ "foo bar.test", "invalid character in hostname" },
		{ "foo/24", "invalid character in hostname" },
		{ "b\xc3\xbc" "cher.example", "invalid character in hostname" },
		{ "10.0.0.300", "all-numeric top-level label" },
		{ "1.2.3.4", "all-numeric top-level label" },
	};
	char out[256], longname[300], label[70];
	const char *why;
	int wild;
	size_t i;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		out[0] = '\0';
		wild = -1;
		ok(addr_parse_hostname(good[i].in, out, &wild, &why) == 0,
		    "hostname '%s' accepted", good[i].in);
		is_str(out, good[i].out, "hostname '%s' normalised",
		    good[i].in);
		is_int(wild, good[i].wild, "hostname '%s' wildcard flag",
		    good[i].in);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		why = NULL;
		ok(addr_parse_hostname(bad[i].in, out, &wild, &why) == -1,
		    "hostname '%s' rejected", bad[i].in);
		is_str(why, bad[i].why, "hostname '%s': why", bad[i].in);
	}

	memset(label, 'a', 63);
	label[63] = '\0';
	ok(addr_parse_hostname(label, out, &wild, &why) == 0,
	    "63-character label accepted");
	memset(label, 'a', 64);
	label[64] = '\0';
	ok(addr_parse_hostname(label, out, &wild, &why) == -1,
	    "64-character label rejected");
	is_str(why, "label longer than 63 characters", "64: why");

	/* 4 labels of 63 + 3 dots = 255; trim to exactly 253. */
	snprintf(longname, sizeof(longname), "%.63s.%.63s.%.63s.%.61s",
	    label, label, label, label);
	is_int(strlen(longname), 253, "built a 253-character name");
	ok(addr_parse_hostname(longname, out, &wild, &why) == 0,
	    "253-character name accepted");
	is_int(strlen(out), 253, "and copied whole");
	strcat(longname, ".");
	ok(addr_parse_hostname(longname, out, &wild, &why) == 0,
	    "253 characters plus the root dot accepted");
	snprintf(longname, sizeof(longname), "%.63s.%.63s.%.63s.%.62s",
	    label, label, label, label);
	ok(addr_parse_hostname(longname, out, &wild, &why) == -1,
	    "254-character name rejected");
	is_str(why, "hostname longer than 253 characters", "254: why");
	snprintf(longname, sizeof(longname), "*.%.63s.%.63s.%.63s.%.60s",
	    label, label, label, label);
	ok(addr_parse_hostname(longname, out, &wild, &why) == -1,
	    "wildcard whose matches would pass 253 rejected");
}

int
main(void)
{
	test_endpoints();
	test_cidrs();
	test_contains();
	test_ports();
	test_hostnames();
	return done_testing();
}
