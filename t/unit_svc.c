/* SPDX-License-Identifier: MIT */
/* Unit tests for src/svc.c: service matching and allow-list globs. */
#include "config.h"

#include <string.h>

#include "sluice.h"
#include "tap.h"

static const char conf_text[] =
    "services:\n"
    "  - name: web\n"
    "    intercept:\n"
    "      protocols: [tcp]\n"
    "      addresses: [web.corp.test, 10.9.0.0/24, \"fd00:9::/64\"]\n"
    "      ports: [80, \"8000-8100\"]\n"
    "    forward: { direct: 127.0.0.1:8080 }\n"
    "  - name: web-lan\n"		/* shadowed by web for port 80 */
    "    intercept:\n"
    "      protocols: [tcp, udp]\n"
    "      addresses: [10.9.0.0/16]\n"
    "      ports: [80, 53]\n"
    "      sources: [10.8.0.0/16, \"fd00:8::/64\"]\n"
    "    forward: { direct: original }\n"
    "  - name: dns\n"
    "    intercept:\n"
    "      protocols: [udp]\n"
    "      addresses: [10.9.0.53]\n"
    "      ports: [53]\n"
    "    forward: { direct: 127.0.0.1:5353 }\n"
    "  - name: hosted\n"		/* no intercept: never matched */
    "    host: { address: 10.9.0.7:80, allow: [gw-1] }\n"
    "  - name: six\n"		/* sources of both families */
    "    intercept:\n"
    "      protocols: [tcp]\n"
    "      addresses: [\"fd00:9::/64\", 10.9.0.0/24]\n"
    "      ports: [8443]\n"
    "      sources: [\"fd00:8::/64\", 10.8.0.0/16, \"fd00:7::1\"]\n"
    "    forward: { direct: \"[::1]:8443\" }\n";

static struct sockaddr_storage ss_dst, ss_src;

static const struct sockaddr *
sa(struct sockaddr_storage *ss, const char *s)
{
	socklen_t len;

	if (s == NULL)
		return NULL;
	if (addr_parse_endpoint(s, ss, &len, 1, NULL) == -1)
		printf("# bad endpoint in test: %s\n", s);
	return (const struct sockaddr *)ss;
}

/* Name of the service matched, or "-" for none. */
static const char *
match(const struct config *c, int proto, const char *dst, const char *src)
{
	struct service *s;

	s = svc_match(c, proto, sa(&ss_dst, dst), sa(&ss_src, src));
	return s != NULL ? s->name : "-";
}

static void
test_match(const struct config *c)
{
	is_str(match(c, PROTO_TCP, "10.9.0.5:80", "10.1.0.1:4000"), "web",
	    "tcp to CIDR and port");
	is_str(match(c, PROTO_TCP, "10.9.0.5:8050", "10.1.0.1:4000"), "web",
	    "port inside a range");
	is_str(match(c, PROTO_TCP, "10.9.0.5:8000", NULL), "web",
	    "range low end");
	is_str(match(c, PROTO_TCP, "10.9.0.5:8100", NULL), "web",
	    "range high end");
	is_str(match(c, PROTO_TCP, "10.9.0.5:8101", NULL), "-",
	    "past the range");
	is_str(match(c, PROTO_TCP, "10.9.0.5:7999", NULL), "-",
	    "before the range");
	is_str(match(c, PROTO_TCP, "[fd00:9::5]:80", "[fd00:8::1]:1"), "web",
	    "v6 CIDR");
	is_str(match(c, PROTO_TCP, "[::ffff:10.9.0.5]:80", NULL), "web",
	    "v4-mapped destination");
	is_str(match(c, PROTO_TCP, "10.9.1.5:80", "10.1.0.1:4000"), "-",
	    "second service needs its source");
	is_str(match(c, PROTO_TCP, "10.9.1.5:80", "10.8.3.3:4000"), "web-lan",
	    "second service with an allowed source");
	is_str(match(c, PROTO_TCP, "10.9.1.5:80", NULL), "-",
	    "no source, sources required");
	is_str(match(c, PROTO_UDP, "10.9.0.5:80", "10.8.3.3:4000"), "web-lan",
	    "udp skips the tcp-only first service");
	is_str(match(c, PROTO_TCP, "10.9.0.5:80", "10.8.3.3:4000"), "web",
	    "first match wins over a later overlap");
	is_str(match(c, PROTO_UDP, "10.9.0.53:53", "10.1.0.1:1"), "dns",
	    "third service");
	is_str(match(c, PROTO_UDP, "10.9.0.53:53", "10.8.0.1:1"), "web-lan",
	    "earlier overlapping service wins");
	is_str(match(c, PROTO_TCP, "10.9.0.53:53", "10.1.0.1:1"), "-",
	    "protocol not intercepted");
	is_str(match(c, PROTO_TCP, "10.9.0.7:80", "10.1.0.1:1"), "web",
	    "hosted-only address is matched only by CIDR services");
	is_str(match(c, PROTO_TCP, "192.0.2.1:80", "10.8.0.1:1"), "-",
	    "unrelated address");
	is_str(match(c, PROTO_TCP | PROTO_UDP, "10.9.0.53:53", "10.1.0.1:1"),
	    "dns", "protocol mask");
	ok(svc_match(c, PROTO_TCP, NULL, NULL) == NULL, "NULL destination");
	ok(svc_match(NULL, PROTO_TCP, sa(&ss_dst, "10.9.0.5:80"), NULL) ==
	    NULL, "NULL config");
}

static void
test_parts(const struct config *c)
{
	struct service *web = conf_service_by_name(c, "web");
	struct service *lan = conf_service_by_name(c, "web-lan");

	if (!ok(web != NULL && lan != NULL, "services found by name"))
		return;
	is_int(svc_port_match(web, 80), 1, "port 80");
	is_int(svc_port_match(web, 81), 0, "port 81");
	is_int(svc_port_match(web, 0), 0, "port 0");
	is_int(svc_port_match(web, 65535), 0, "port 65535");
	is_int(svc_source_match(web, sa(&ss_src, "192.0.2.1:1")), 1,
	    "no sources: everyone");
	is_int(svc_source_match(web, NULL), 1, "no sources: even unknown");
	is_int(svc_source_match(lan, sa(&ss_src, "10.8.255.255:1")), 1,
	    "in sources");
	is_int(svc_source_match(lan, sa(&ss_src, "10.7.255.255:1")), 0,
	    "not in sources");
	is_int(svc_source_match(lan, sa(&ss_src, "[fd00:8::9]:1")), 1,
	    "v6 source");
}

/* sources: of either family; a client matches only its own family's. */
static void
test_sources6(const struct config *c)
{
	struct service *six = conf_service_by_name(c, "six");

	if (!ok(six != NULL, "v6 service found"))
		return;
	is_str(match(c, PROTO_TCP, "[fd00:9::5]:8443", "[fd00:8::1]:1"), "six",
	    "v6 destination, v6 source in a listed /64");
	is_str(match(c, PROTO_TCP, "[fd00:9::5]:8443", "[fd00:7::1]:1"), "six",
	    "v6 destination, listed v6 host");
	is_str(match(c, PROTO_TCP, "[fd00:9::5]:8443", "[fd00:7::2]:1"), "-",
	    "v6 destination, unlisted v6 source");
	is_str(match(c, PROTO_TCP, "[fd00:9::5]:8443", "[fd00:6::1]:1"), "-",
	    "v6 destination, source in no listed prefix");
	is_str(match(c, PROTO_TCP, "10.9.0.5:8443", "10.8.0.1:1"), "six",
	    "v4 destination, v4 source listed beside v6 ones");
	is_str(match(c, PROTO_TCP, "10.9.0.5:8443", "10.7.0.1:1"), "-",
	    "v4 destination, unlisted v4 source");
	is_int(svc_source_match(six, sa(&ss_src, "[fd00:8::ffff]:1")), 1,
	    "v6 source at the end of its /64");
	is_int(svc_source_match(six, sa(&ss_src, "[fd00:8:0:1::]:1")), 0,
	    "v6 source just past its /64");
	is_int(svc_source_match(six, sa(&ss_src, "[::ffff:10.8.0.1]:1")), 1,
	    "a v4-mapped source matches the v4 prefix");
	is_int(svc_source_match(six, sa(&ss_src, "[::ffff:10.7.0.1]:1")), 0,
	    "a v4-mapped source outside it does not");
	is_int(svc_source_match(six, sa(&ss_src, "[::a08:1]:1")), 0,
	    "a v4-compatible address is v6, not 10.8.0.1");
	is_int(svc_source_match(six, NULL), 0, "no source, sources required");
}

static void
test_glob(void)
{
	static const struct { const char *pat, *name; int want; } t[] = {
		{ "gw-1", "gw-1", 1 },
		{ "gw-1", "gw-10", 0 },
		{ "gw-1", "GW-1", 0 },
		{ "laptop-*", "laptop-", 1 },
		{ "laptop-*", "laptop-alice", 1 },
		{ "laptop-*", "laptop", 0 },
		{ "laptop-*", "xlaptop-a", 0 },
		{ "*", "", 1 },
		{ "*", "anything", 1 },
		{ "", "", 1 },
		{ "", "a", 0 },
		{ "a?c", "abc", 1 },
		{ "a?c", "ac", 0 },
		{ "?", "", 0 },
		{ "*-gw", "site-a-gw", 1 },
		{ "*-gw", "site-a-gw2", 0 },
		{ "a*b*c", "aXbYbZc", 1 },
		{ "a*b*c", "aXbYbZ", 0 },
		{ "**x", "yyx", 1 },
		{ "*a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 0 },
		{ "[ab]", "a", 0 },
		{ "[ab]", "[ab]", 1 },
	};
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		is_int(svc_name_glob(t[i].pat, t[i].name), t[i].want,
		    "glob '%s' vs '%s'", t[i].pat, t[i].name);
}

int
main(void)
{
	struct config *c;

	c = conf_load_string("svc.yaml", conf_text, strlen(conf_text),
	    stderr);
	if (!ok(c != NULL, "test configuration loads"))
		return done_testing();
	is_int(c->nservices, 5, "five services");
	test_match(c);
	test_parts(c);
	test_sources6(c);
	test_glob();
	conf_free(c);
	return done_testing();
}
