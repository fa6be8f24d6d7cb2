/* SPDX-License-Identifier: MIT */
/* Unit tests for the configuration loader: schema, defaults, every error. */
#include "config.h"

#include <sys/stat.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sluice.h"
#include "tap.h"

/* Loads text as "t.yaml"; returns what was printed to errfp (caller frees). */
static char *
load(const char *text, size_t len, struct config **cp)
{
	struct config *c;
	char *out = NULL;
	size_t outlen = 0;
	FILE *fp;

	if (cp != NULL)
		*cp = NULL;
	if ((fp = open_memstream(&out, &outlen)) == NULL)
		return NULL;
	c = conf_load_string("t.yaml", text, len, fp);
	fclose(fp);
	if (cp != NULL)
		*cp = c;
	else
		conf_free(c);
	return out;
}

/* Errors of a document that must fail; "(loaded)" if it did not. */
static char *
errors_of(const char *text)
{
	struct config *c;
	char *out;

	out = load(text, strlen(text), &c);
	if (c != NULL) {
		conf_free(c);
		free(out);
		return strdup("(loaded)");
	}
	return out;
}

static const char *
ep(const struct endpoint *e)
{
	static char buf[4][ADDR_STRLEN];
	static int i;

	i = (i + 1) % 4;
	return addr_str((const struct sockaddr *)&e->ss, buf[i],
	    sizeof(buf[i]));
}

static const char *
cidr(const struct cidr *c)
{
	static char buf[4][INET6_ADDRSTRLEN + 8];
	static int i;

	i = (i + 1) % 4;
	return cidr_str(c, buf[i], sizeof(buf[i]));
}

static const char full_text[] =
    "identity:\n"
    "  cert: /etc/sluice/pki/gw-1.crt\n"
    "  key:  /etc/sluice/pki/gw-1.key\n"
    "  ca:   /etc/sluice/pki/ca.crt\n"
    "intercept:\n"
    "  backend: nftables\n"
    "  listen: \"[::1]:0\"\n"
    "  mark: 0x10\n"
    "  bypass-mark: 0x20\n"
    "  route-table: 0x200\n"
    "  udp-idle-timeout: 45\n"
    "  udp-max-flows: 100\n"
    "  connect-timeout: 9\n"
    "  idle-timeout: 0\n"
    "dns:\n"
    "  listen: 127.0.0.53:5353\n"
    "  ip-range: 100.64.0.0/10\n"
    "  hostnames: real\n"
    "  upstream: [1.1.1.1, \"[2606:4700::1111]:5353\", \"2620:fe::fe\"]\n"
    "  unknown: nxdomain\n"
    "  ttl: 300\n"
    "  resolver: file:/etc/hosts\n"
    "  self-test: no\n"
    "host:\n"
    "  listen: 0.0.0.0:4434\n"
    "  idle-timeout: 120\n"
    "services:\n"
    "  - name: wiki\n"
    "    intercept:\n"
    "      protocols: [tcp]\n"
    "      addresses: [Wiki.Corp.Test, \"*.docs.corp.test\", 10.9.0.0/24,"
    " \"fd00:9::/64\"]\n"
    "      ports: [80, \"8000-8100\"]\n"
    "      sources: [10.8.0.0/16]\n"
    "    forward:\n"
    "      direct: 127.0.0.1:8080\n"
    "    host:\n"
    "      address: 127.0.0.1:8080\n"
    "      allow: [gw-1, \"laptop-*\"]\n"
    "\n"
    "  - name: db.main_1\n"
    "    intercept: {protocols: [udp, tcp], addresses: [10.1.0.5],"
    " ports: [5432]}\n"
    "    forward:\n"
    "      tunnel: [10.0.0.2:4433, \"[fd00::2]:4433\"]\n"
    "  - name: api\n"
    "    host:\n"
    "      address: original\n"
    "      allowed-addresses: [10.9.0.0/24, \"fd00:9::/64\"]\n"
    "      allow: [\"*\"]\n"
    "  - name: orig\n"
    "    intercept:\n"
    "      protocols: [udp]\n"
    "      addresses: [192.0.2.0/24]\n"
    "      ports: [1-65535]\n"
    "    forward: {direct: original}\n";

static void
check_full_globals(const struct config *c)
{
	is_str(c->path, "t.yaml", "path");
	is_int(c->has_identity, 1, "has_identity");
	is_str(c->id_cert, "/etc/sluice/pki/gw-1.crt", "identity.cert");
	is_str(c->id_key, "/etc/sluice/pki/gw-1.key", "identity.key");
	is_str(c->id_ca, "/etc/sluice/pki/ca.crt", "identity.ca");
	is_int(c->backend, NF_BACKEND_NFTABLES, "intercept.backend");
	is_str(ep(&c->listen), "[::1]:0", "intercept.listen");
	is_int(c->listen.len, sizeof(struct sockaddr_in6), "listen length");
	is_int(c->mark, 0x10, "intercept.mark");
	is_int(c->bypass_mark, 0x20, "intercept.bypass-mark");
	is_int(c->route_table, 512, "intercept.route-table in hex");
	is_int(c->udp_idle_timeout, 45, "intercept.udp-idle-timeout");
	is_int(c->udp_max_flows, 100, "intercept.udp-max-flows");
	is_int(c->connect_timeout, 9, "intercept.connect-timeout");
	is_int(c->idle_timeout, 0, "intercept.idle-timeout 0: never");
	is_str(ep(&c->dns_listen), "127.0.0.53:5353", "dns.listen");
	is_str(cidr(&c->dns_range), "100.64.0.0/10", "dns.ip-range");
	is_int(c->dns_hostnames, DNS_HOSTNAMES_REAL, "dns.hostnames");
	is_int(c->ndns_upstream, 3, "dns.upstream count");
	if (c->ndns_upstream == 3) {
		is_str(ep(&c->dns_upstream[0]), "1.1.1.1:53",
		    "upstream default port");
		is_str(ep(&c->dns_upstream[1]), "[2606:4700::1111]:5353",
		    "upstream v6 with port");
		is_str(ep(&c->dns_upstream[2]), "[2620:fe::fe]:53",
		    "upstream bare v6");
	}
	is_int(c->dns_unknown, DNS_UNKNOWN_NXDOMAIN, "dns.unknown");
	is_int(c->dns_ttl, 300, "dns.ttl");
	is_str(c->dns_resolver, "file:/etc/hosts", "dns.resolver");
	is_int(c->dns_self_test, 0, "dns.self-test no");
	is_int(c->has_host, 1, "has_host");
	is_str(ep(&c->host_listen), "0.0.0.0:4434", "host.listen");
	is_int(c->host_idle_timeout, 120, "host.idle-timeout");
	is_int(c->nservices, 4, "four services");
}

static void
check_wiki(const struct service *s)
{
	is_int(s->id, 1, "wiki id");
	is_int(s->line, 28, "wiki line");
	is_int(s->has_intercept, 1, "wiki has intercept");
	is_int(s->protocols, PROTO_TCP, "wiki protocols");
	is_int(s->naddrs, 4, "wiki addresses");
	if (s->naddrs == 4) {
		ok(s->addrs[0].is_name && !s->addrs[0].wildcard &&
		    strcmp(s->addrs[0].name, "wiki.corp.test") == 0,
		    "hostname, lowercased");
		ok(s->addrs[1].is_name && s->addrs[1].wildcard &&
		    strcmp(s->addrs[1].name, "docs.corp.test") == 0,
		    "wildcard keeps its suffix");
		ok(!s->addrs[2].is_name &&
		    strcmp(cidr(&s->addrs[2].cidr), "10.9.0.0/24") == 0,
		    "v4 CIDR");
		ok(!s->addrs[3].is_name &&
		    strcmp(cidr(&s->addrs[3].cidr), "fd00:9::/64") == 0,
		    "v6 CIDR");
	}
	ok(s->nports == 2 && s->ports[0].lo == 80 && s->ports[0].hi == 80 &&
	    s->ports[1].lo == 8000 && s->ports[1].hi == 8100,
	    "wiki ports from a YAML int and a range");
	ok(s->nsources == 1 && strcmp(cidr(&s->sources[0]),
	    "10.8.0.0/16") == 0, "wiki sources");
	is_int(s->fwd, FWD_DIRECT, "wiki forward direct");
	is_str(ep(&s->direct), "127.0.0.1:8080", "wiki direct address");
	is_int(s->has_host, 1, "wiki has host");
	is_int(s->host_original, 0, "wiki host address is fixed");
	is_str(ep(&s->host_address), "127.0.0.1:8080", "wiki host address");
	ok(s->nallow == 2 && strcmp(s->allow[0], "gw-1") == 0 &&
	    strcmp(s->allow[1], "laptop-*") == 0, "wiki allow list");
	is_int(s->nallowed, 0, "wiki has no allowed-addresses");
}

static void
check_others(const struct config *c)
{
	const struct service *s;

	s = conf_service_by_name(c, "db.main_1");
	if (!ok(s != NULL, "db.main_1 found"))
		return;
	is_int(s->id, 2, "db id");
	is_int(s->line, 40, "db line");
	is_int(s->protocols, PROTO_TCP | PROTO_UDP, "db protocols");
	is_int(s->fwd, FWD_TUNNEL, "db tunnel");
	ok(s->ntunnel == 2 && strcmp(ep(&s->tunnel[0]), "10.0.0.2:4433") ==
	    0 && strcmp(ep(&s->tunnel[1]), "[fd00::2]:4433") == 0,
	    "db tunnel hosts in order");
	is_int(s->has_host, 0, "db has no host");
	is_int(s->nsources, 0, "db sources empty");

	s = conf_service_by_name(c, "api");
	if (!ok(s != NULL, "api found"))
		return;
	is_int(s->has_intercept, 0, "api has no intercept");
	is_int(s->fwd, FWD_NONE, "api forwards nothing");
	is_int(s->host_original, 1, "api host original");
	ok(s->nallowed == 2 && strcmp(cidr(&s->allowed[1]),
	    "fd00:9::/64") == 0, "api allowed-addresses");
	ok(s->nallow == 1 && strcmp(s->allow[0], "*") == 0, "api allow *");

	s = conf_service_by_name(c, "orig");
	if (!ok(s != NULL, "orig found"))
		return;
	is_int(s->id, 4, "orig id");
	is_int(s->fwd, FWD_ORIGINAL, "orig forward direct original");
	ok(s->nports == 1 && s->ports[0].lo == 1 && s->ports[0].hi == 65535,
	    "orig all ports");
	ok(conf_service_by_name(c, "nope") == NULL, "unknown name: NULL");
	ok(conf_service_by_name(c, "WIKI") == NULL, "names are exact");
}

static void
test_full(void)
{
	struct config *c;
	char *err;

	err = load(full_text, strlen(full_text), &c);
	is_str(err, "", "full configuration: no errors");
	free(err);
	if (!ok(c != NULL, "full configuration loads"))
		return;
	check_full_globals(c);
	check_wiki(TAILQ_FIRST(&c->services));
	check_others(c);
	conf_free(c);
}

static void
check_defaults(const struct config *c, const char *what)
{
	is_int(c->has_identity, 0, "%s: no identity", what);
	ok(c->id_cert == NULL && c->id_key == NULL && c->id_ca == NULL,
	    "%s: no identity files", what);
	is_int(c->backend, NF_BACKEND_AUTO, "%s: backend auto", what);
	is_str(ep(&c->listen), "127.0.0.1:0", "%s: intercept.listen", what);
	is_int(c->mark, 0x1, "%s: mark", what);
	is_int(c->bypass_mark, 0x2, "%s: bypass-mark", what);
	is_int(c->route_table, 100, "%s: route-table", what);
	is_int(c->udp_idle_timeout, 30, "%s: udp-idle-timeout", what);
	is_int(c->udp_max_flows, 8192, "%s: udp-max-flows", what);
	is_int(c->connect_timeout, 5, "%s: connect-timeout", what);
	is_str(ep(&c->dns_listen), "127.0.0.1:53", "%s: dns.listen", what);
	is_str(cidr(&c->dns_range), "169.254.0.0/16", "%s: ip-range", what);
	is_int(c->dns_hostnames, DNS_HOSTNAMES_POOL, "%s: hostnames", what);
	is_int(c->ndns_upstream, 0, "%s: no upstream", what);
	is_int(c->dns_unknown, DNS_UNKNOWN_REFUSED, "%s: unknown", what);
	is_int(c->dns_ttl, 60, "%s: ttl", what);
	is_str(c->dns_resolver, "auto", "%s: resolver", what);
	is_int(c->dns_self_test, 1, "%s: self-test", what);
	is_int(c->has_host, 0, "%s: no host section", what);
	is_str(ep(&c->host_listen), "0.0.0.0:4433", "%s: host.listen", what);
	is_int(c->host_idle_timeout, 3600, "%s: host.idle-timeout", what);
	is_int(c->idle_timeout, 3600, "%s: intercept.idle-timeout", what);
	is_int(c->nservices, 0, "%s: no services", what);
	ok(TAILQ_EMPTY(&c->services), "%s: empty service list", what);
}

static void
test_defaults(void)
{
	static const char *const texts[] = {
		"", "# nothing but a comment\n", "~\n", "---\n",
		"services:\n", "services: []\n", "intercept: {}\ndns:\n",
	};
	struct config *c;
	char *err, what[32];
	size_t i;

	for (i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		err = load(texts[i], strlen(texts[i]), &c);
		if (!ok(c != NULL && err != NULL && *err == '\0',
		    "defaults #%zu load", i)) {
			printf("#   %s", err ? err : "(null)\n");
			free(err);
			conf_free(c);
			continue;
		}
		snprintf(what, sizeof(what), "defaults #%zu", i);
		check_defaults(c, what);
		free(err);
		conf_free(c);
	}
	err = load("host:\n", 6, &c);
	ok(c != NULL && c->has_host, "an empty host section enables host");
	free(err);
	conf_free(c);
	err = load("dns: {self-test: YES, ttl: 0}\n", 30, &c);
	ok(c != NULL && c->dns_self_test == 1 && c->dns_ttl == 0,
	    "bool YES, ttl 0");
	free(err);
	conf_free(c);
}

struct err_case {
	const char	*name, *text, *want;
};

/* One class of error each: exact message and position. */
static const struct err_case err_cases[] = {
	{ "unknown top key",
	    "intercept: {}\n"
	    "foo: 1\n",
	    "t.yaml:2:1: unknown key 'foo' at top level\n" },
	{ "unknown intercept key",
	    "intercept:\n"
	    "  mark: 1\n"
	    "  foo: 2\n",
	    "t.yaml:3:3: unknown key 'foo' in intercept\n" },
	{ "unknown service key",
	    "services:\n"
	    "  - name: a\n"
	    "    host: {address: 1.2.3.4:5, allow: [x]}\n"
	    "    colour: red\n",
	    "t.yaml:4:5: unknown key 'colour' in services[a]\n" },
	{ "unknown service intercept key",
	    "services:\n"
	    "  - name: a\n"
	    "    intercept: {protocols: [tcp], addresses: [1.2.3.4], ports: "
	    "[1], prot: 1}\n"
	    "    forward: {direct: original}\n",
	    "t.yaml:3:69: unknown key 'prot' in services[a].intercept\n" },
	{ "section not a mapping",
	    "intercept: [1]\n"
	    "dns: yes\n",
	    "t.yaml:1:12: intercept: expected a mapping, got a list\n"
	    "t.yaml:2:6: dns: expected a mapping, got 'yes'\n" },
	{ "list expected",
	    "services:\n"
	    "  name: a\n",
	    "t.yaml:2:3: services: expected a list, got a mapping\n" },
	{ "scalar expected",
	    "intercept:\n"
	    "  mark: [1]\n",
	    "t.yaml:2:9: intercept.mark: expected an integer, got a list\n" },
	{ "duplicate key",
	    "dns:\n"
	    "  ttl: 1\n"
	    "  ttl: 2\n",
	    "t.yaml:3:3: duplicate key 'ttl' in dns\n" },
	{ "duplicate top key",
	    "dns: {}\n"
	    "dns: {}\n",
	    "t.yaml:2:1: duplicate key 'dns' at top level\n" },
	{ "duplicate service key",
	    "services:\n"
	    "  - name: a\n"
	    "    name: b\n"
	    "    host: {address: 1.2.3.4:5, allow: [x]}\n",
	    "t.yaml:3:5: duplicate key 'name' in services[a]\n" },
	{ "non-scalar key",
	    "? [a]\n"
	    ": 1\n",
	    "t.yaml:1:3: expected a key name at top level, got a list\n" },
	{ "mark zero",
	    "intercept: {mark: 0}\n",
	    "t.yaml:1:19: intercept.mark: 0 out of range 0x1..0xffffffff\n" },
	{ "mark too big",
	    "intercept: {mark: 0x100000000}\n",
	    "t.yaml:1:19: intercept.mark: 0x100000000 out of range "
	    "0x1..0xffffffff\n" },
	{ "bypass overlaps",
	    "intercept: {mark: 0x3}\n",
	    "t.yaml:1:19: intercept.bypass-mark 0x2 shares bits with "
	    "intercept.mark 0x3\n" },
	{ "bypass zero",
	    "intercept: {bypass-mark: 0}\n",
	    "t.yaml:1:26: intercept.bypass-mark: 0 out of range "
	    "0x1..0xffffffff\n" },
	{ "route table reserved",
	    "intercept: {route-table: 253}\n",
	    "t.yaml:1:26: intercept.route-table: table 253 is reserved for the "
	    "kernel's default, main and local tables\n" },
	{ "route table zero",
	    "intercept: {route-table: 0}\n",
	    "t.yaml:1:26: intercept.route-table: 0 out of range "
	    "1..4294967295\n" },
	{ "ttl range",
	    "dns: {ttl: 86401}\n",
	    "t.yaml:1:12: dns.ttl: 86401 out of range 0..86400\n" },
	{ "udp idle range",
	    "intercept: {udp-idle-timeout: 0}\n",
	    "t.yaml:1:31: intercept.udp-idle-timeout: 0 out of range "
	    "1..86400\n" },
	{ "udp max flows range",
	    "intercept: {udp-max-flows: 0}\n",
	    "t.yaml:1:28: intercept.udp-max-flows: 0 out of range "
	    "1..1048576\n" },
	{ "connect timeout range",
	    "intercept: {connect-timeout: 301}\n",
	    "t.yaml:1:30: intercept.connect-timeout: 301 out of range "
	    "1..300\n" },
	{ "negative",
	    "dns: {ttl: -1}\n",
	    "t.yaml:1:12: dns.ttl: -1 out of range 0..86400\n" },
	{ "not a number",
	    "dns: {ttl: 1m}\n",
	    "t.yaml:1:12: dns.ttl: expected an integer, got '1m'\n" },
	{ "bad backend",
	    "intercept: {backend: pf}\n",
	    "t.yaml:1:22: intercept.backend: expected auto, nftables or "
	    "iptables, got 'pf'\n" },
	{ "bad listen",
	    "intercept: {listen: localhost:80}\n",
	    "t.yaml:1:21: intercept.listen: expected ADDR:PORT, got "
	    "'localhost:80' (bad ipv4 address)\n" },
	{ "listen needs port",
	    "dns: {listen: 127.0.0.1}\n",
	    "t.yaml:1:15: dns.listen: expected ADDR:PORT, got '127.0.0.1' "
	    "(missing port)\n" },
	{ "dns listen port 0",
	    "dns: {listen: \"127.0.0.1:0\"}\n",
	    "t.yaml:1:15: dns.listen: expected ADDR:PORT, got '127.0.0.1:0' "
	    "(port out of range 1..65535)\n" },
	{ "ip-range host bits",
	    "dns: {ip-range: 10.0.0.1/8}\n",
	    "t.yaml:1:17: dns.ip-range: expected a CIDR, got '10.0.0.1/8' "
	    "(host bits set after the prefix length)\n" },
	{ "ip-range too small",
	    "dns: {ip-range: 10.0.0.0/31}\n",
	    "t.yaml:1:17: dns.ip-range: 10.0.0.0/31 is too small for an "
	    "address pool (at most /30)\n" },
	{ "bad upstream",
	    "dns: {upstream: [\"1.1.1.1:53\", \"dns.google\", \"[::1]\"]}\n",
	    "t.yaml:1:32: dns.upstream: expected ADDR or ADDR:PORT, got "
	    "'dns.google' (bad ip address)\n" },
	{ "bad resolver",
	    "dns: {resolver: dnsmasq}\n",
	    "t.yaml:1:17: dns.resolver: expected auto, systemd-resolved, "
	    "resolv.conf, none or file:/PATH, got 'dnsmasq'\n" },
	{ "resolver relative file",
	    "dns: {resolver: \"file:hosts\"}\n",
	    "t.yaml:1:17: dns.resolver: expected auto, systemd-resolved, "
	    "resolv.conf, none or file:/PATH, got 'file:hosts' (file: needs an "
	    "absolute path)\n" },
	{ "bad bool",
	    "dns: {self-test: maybe}\n",
	    "t.yaml:1:18: dns.self-test: expected true, false, yes or no, got "
	    "'maybe'\n" },
	{ "bad hostnames",
	    "dns: {hostnames: fake}\n",
	    "t.yaml:1:18: dns.hostnames: expected pool or real, got 'fake'\n" },
	{ "bad unknown",
	    "dns: {unknown: servfail}\n",
	    "t.yaml:1:16: dns.unknown: expected refused or nxdomain, got "
	    "'servfail'\n" },
	{ "identity incomplete",
	    "identity:\n"
	    "  cert: a.crt\n",
	    "t.yaml:1:1: missing identity.key\n"
	    "t.yaml:1:1: missing identity.ca\n" },
	{ "identity empty path",
	    "identity: {cert: \"\", key: k, ca: c}\n",
	    "t.yaml:1:18: identity.cert: must not be empty\n" },
	{ "service needs name",
	    "services:\n"
	    "  - host: {address: 1.2.3.4:5, allow: [x]}\n",
	    "t.yaml:2:5: missing services[#1].name\n" },
	{ "bad service name",
	    "services:\n"
	    "  - name: \"web server\"\n"
	    "    host: {address: 1.2.3.4:5, allow: [x]}\n",
	    "t.yaml:2:11: services[#1].name: expected a name of 1 to 64 "
	    "letters, digits, '.', '_' or '-', got 'web server'\n" },
	{ "long service name",
	    "services:\n"
	    "  - name: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "aaaaaaaaa\n"
	    "    host: {address: 1.2.3.4:5, allow: [x]}\n",
	    "t.yaml:2:11: services[#1].name: expected a name of 1 to 64 "
	    "letters, digits, '.', '_' or '-', got "
	    "'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa."
	    "..'\n" },
	{ "duplicate service",
	    "services:\n"
	    "  - name: a\n"
	    "    host: {address: 1.2.3.4:5, allow: [x]}\n"
	    "  - name: b\n"
	    "    host: {address: 1.2.3.4:5, allow: [x]}\n"
	    "  - name: a\n"
	    "    host: {address: 1.2.3.4:6, allow: [x]}\n",
	    "t.yaml:6:11: duplicate service name 'a' (first at line 2)\n" },
	{ "service needs a section",
	    "services:\n"
	    "  - name: a\n",
	    "t.yaml:2:5: services[a]: needs an intercept, forward or host "
	    "section\n" },
	{ "service item not mapping",
	    "services:\n"
	    "  - a\n",
	    "t.yaml:2:5: services: expected a mapping for each service, got "
	    "'a'\n" },
	{ "intercept required keys",
	    "services:\n"
	    "  - name: a\n"
	    "    intercept:\n"
	    "      sources: []\n"
	    "    forward: {direct: original}\n",
	    "t.yaml:3:5: missing services[a].intercept.protocols\n"
	    "t.yaml:3:5: missing services[a].intercept.addresses\n"
	    "t.yaml:3:5: missing services[a].intercept.ports\n" },
	{ "empty lists",
	    "services:\n"
	    "  - name: a\n"
	    "    intercept: {protocols: [], addresses: [], ports: ~}\n"
	    "    forward: {direct: original}\n",
	    "t.yaml:3:28: services[a].intercept.protocols: must not be empty\n"
	    "t.yaml:3:43: services[a].intercept.addresses: must not be empty\n"
	    "t.yaml:3:54: services[a].intercept.ports: must not be empty\n" },
	{ "bad protocol",
	    "services:\n"
	    "  - name: a\n"
	    "    intercept: {protocols: [tcp, sctp], addresses: [1.2.3.4], "
	    "ports: [1]}\n"
	    "    forward: {direct: original}\n",
	    "t.yaml:3:34: services[a].intercept.protocols: expected tcp or "
	    "udp, got 'sctp'\n" },
	{ "bad addresses",
	    "services:\n"
	    "  - name: a\n"
	    "    intercept:\n"
	    "      protocols: [tcp]\n"
	    "      addresses: [\"wiki..test\", 10.0.0.1/8, \"*.*.x\", "
	    "\"fd00::/129\", \"-a.test\"]\n"
	    "      ports: [80]\n"
	    "    forward: {direct: original}\n",
	    "t.yaml:5:19: services[a].intercept.addresses: expected a "
	    "hostname, *.domain or CIDR, got 'wiki..test' (empty label)\n"
	    "t.yaml:5:33: services[a].intercept.addresses: expected a "
	    "hostname, *.domain or CIDR, got '10.0.0.1/8' (host bits set after "
	    "the prefix length)\n"
	    "t.yaml:5:45: services[a].intercept.addresses: expected a "
	    "hostname, *.domain or CIDR, got '*.*.x' ('*' only allowed as "
	    "\"*.\" prefix)\n"
	    "t.yaml:5:54: services[a].intercept.addresses: expected a "
	    "hostname, *.domain or CIDR, got 'fd00::/129' (prefix length out "
	    "of range 0..128)\n"
	    "t.yaml:5:68: services[a].intercept.addresses: expected a "
	    "hostname, *.domain or CIDR, got '-a.test' (label starts or ends "
	    "with '-')\n" },
	{ "bad ports",
	    "services:\n"
	    "  - name: a\n"
	    "    intercept: {protocols: [tcp], addresses: [1.2.3.4], ports: "
	    "[0, 65536, \"90-80\", http, {a: 1}]}\n"
	    "    forward: {direct: original}\n",
	    "t.yaml:3:65: services[a].intercept.ports: expected PORT or LO-HI, "
	    "got '0' (port out of range 1..65535)\n"
	    "t.yaml:3:68: services[a].intercept.ports: expected PORT or LO-HI, "
	    "got '65536' (port out of range 1..65535)\n"
	    "t.yaml:3:75: services[a].intercept.ports: expected PORT or LO-HI, "
	    "got '90-80' (port range runs backwards)\n"
	    "t.yaml:3:84: services[a].intercept.ports: expected PORT or LO-HI, "
	    "got 'http' (port out of range 1..65535)\n"
	    "t.yaml:3:90: services[a].intercept.ports: expected PORT or LO-HI, "
	    "got a mapping\n" },
	{ "bad sources",
	    "services:\n"
	    "  - name: a\n"
	    "    intercept: {protocols: [tcp], addresses: [1.2.3.4], ports: "
	    "[1], sources: [lan]}\n"
	    "    forward: {direct: original}\n",
	    "t.yaml:3:79: services[a].intercept.sources: expected a CIDR or IP "
	    "address, got 'lan' (bad ip address)\n" },
	{ "intercept without forward",
	    "services:\n"
	    "  - name: a\n"
	    "    intercept: {protocols: [tcp], addresses: [1.2.3.4], ports: "
	    "[1]}\n",
	    "t.yaml:3:5: services[a].intercept: needs a forward section\n" },
	{ "forward original without intercept",
	    "services:\n"
	    "  - name: a\n"
	    "    forward: {direct: original}\n"
	    "    host: {address: 1.2.3.4:5, allow: [x]}\n",
	    "t.yaml:3:5: services[a].forward: original needs an intercept "
	    "section\n" },
	{ "forward both",
	    "services:\n"
	    "  - name: a\n"
	    "    intercept: {protocols: [tcp], addresses: [1.2.3.4], ports: "
	    "[1]}\n"
	    "    forward:\n"
	    "      direct: original\n"
	    "      tunnel: [1.2.3.4:1]\n"
	    "identity: {cert: c, key: k, ca: a}\n",
	    "t.yaml:4:5: services[a].forward: takes one of direct or tunnel, "
	    "not both\n" },
	{ "forward neither",
	    "services:\n"
	    "  - name: a\n"
	    "    intercept: {protocols: [tcp], addresses: [1.2.3.4], ports: "
	    "[1]}\n"
	    "    forward: {}\n",
	    "t.yaml:4:5: services[a].forward: needs direct or tunnel\n" },
	{ "bad direct",
	    "services:\n"
	    "  - name: a\n"
	    "    intercept: {protocols: [tcp], addresses: [1.2.3.4], ports: "
	    "[1]}\n"
	    "    forward: {direct: upstream:80}\n",
	    "t.yaml:4:23: services[a].forward.direct: expected ADDR:PORT or "
	    "original, got 'upstream:80' (bad ipv4 address)\n" },
	{ "tunnel without identity",
	    "services:\n"
	    "  - name: a\n"
	    "    intercept: {protocols: [tcp], addresses: [1.2.3.4], ports: "
	    "[1]}\n"
	    "    forward: {tunnel: [10.0.0.2:4433]}\n",
	    "t.yaml:4:23: services[a].forward.tunnel: needs an identity "
	    "section (cert, key, ca)\n" },
	{ "tunnel empty and bad",
	    "identity: {cert: c, key: k, ca: a}\n"
	    "services:\n"
	    "  - name: a\n"
	    "    intercept: {protocols: [tcp], addresses: [1.2.3.4], ports: "
	    "[1]}\n"
	    "    forward: {tunnel: []}\n"
	    "  - name: b\n"
	    "    intercept: {protocols: [tcp], addresses: [1.2.3.4], ports: "
	    "[1]}\n"
	    "    forward: {tunnel: [\"10.0.0.2\"]}\n",
	    "t.yaml:5:23: services[a].forward.tunnel: must not be empty\n"
	    "t.yaml:8:24: services[b].forward.tunnel: expected ADDR:PORT, got "
	    "'10.0.0.2' (missing port)\n" },
	{ "host needs address and allow",
	    "services:\n"
	    "  - name: a\n"
	    "    host: {}\n",
	    "t.yaml:3:5: missing services[a].host.address\n"
	    "t.yaml:3:5: missing services[a].host.allow\n" },
	{ "host original needs allowed",
	    "services:\n"
	    "  - name: a\n"
	    "    host: {address: original, allow: [gw]}\n",
	    "t.yaml:3:5: missing services[a].host.allowed-addresses (address "
	    "original needs it)\n" },
	{ "host original empty allowed",
	    "services:\n"
	    "  - name: a\n"
	    "    host: {address: original, allowed-addresses: [], allow: "
	    "[gw]}\n",
	    "t.yaml:3:50: services[a].host.allowed-addresses: must not be "
	    "empty with address original\n" },
	{ "host allowed without original",
	    "services:\n"
	    "  - name: a\n"
	    "    host: {address: 1.2.3.4:5, allowed-addresses: [10.0.0.0/8], "
	    "allow: [gw]}\n",
	    "t.yaml:3:51: services[a].host.allowed-addresses: only used with "
	    "address original\n" },
	{ "host bad allow",
	    "services:\n"
	    "  - name: a\n"
	    "    host: {address: 1.2.3.4:0, allow: [\"gw 1\", [x]]}\n",
	    "t.yaml:3:21: services[a].host.address: expected ADDR:PORT or "
	    "original, got '1.2.3.4:0' (port out of range 1..65535)\n"
	    "t.yaml:3:40: services[a].host.allow: expected an identity name or "
	    "glob, got 'gw 1' (1 to 64 printable characters, no blanks)\n"
	    "t.yaml:3:48: services[a].host.allow: expected an identity name or "
	    "glob, got a list\n" },
	{ "host allow empty",
	    "services:\n"
	    "  - name: a\n"
	    "    host: {address: 1.2.3.4:5, allow: []}\n",
	    "t.yaml:3:39: services[a].host.allow: must not be empty\n" },
	{ "syntax error",
	    "intercept:\n"
	    "  mark: 1\n"
	    " backend: auto\n",
	    "t.yaml:3:2: did not find expected key (while parsing a block "
	    "mapping at line 1, column 1)\n" },
	{ "unclosed flow",
	    "dns: {ttl: 5\n",
	    "t.yaml:2:1: did not find expected ',' or '}' (while parsing a "
	    "flow mapping at line 1, column 6)\n" },
	{ "tab",
	    "dns:\n"
	    "\tttl: 5\n",
	    "t.yaml:2:1: tab character: YAML is indented with spaces\n" },
	{ "undefined alias",
	    "dns: *nope\n",
	    "t.yaml:1:6: found undefined alias\n" },
	{ "two documents",
	    "dns: {}\n"
	    "---\n"
	    "intercept: {}\n",
	    "t.yaml:3:1: only one YAML document is allowed\n" },
	{ "bad utf8",
	    "dns: {resolver: \"\xff\"}\n",
	    "t.yaml:1:18: invalid leading UTF-8 octet (0xff)\n" },
	{ "top not mapping",
	    "- a\n"
	    "- b\n",
	    "t.yaml:1:1: expected a mapping at top level, got a list\n" },
	{ "top scalar",
	    "hello\n",
	    "t.yaml:1:1: expected a mapping at top level, got 'hello'\n" },
	{ "nul in value",
	    "identity: {cert: \"a\\0b\", key: k, ca: c}\n",
	    "t.yaml:1:18: identity.cert: expected a file name, got 'a\\x00b' "
	    "(contains a NUL byte)\n" },
	{ "long bad value is cut",
	    "dns: {resolver: "
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx}\n",
	    "t.yaml:1:17: dns.resolver: expected auto, systemd-resolved, "
	    "resolv.conf, none or file:/PATH, got "
	    "'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx."
	    "..'\n" },
	{ "control chars shown escaped",
	    "dns: {resolver: \"a\\tb\\u001b\"}\n",
	    "t.yaml:1:17: dns.resolver: expected auto, systemd-resolved, "
	    "resolv.conf, none or file:/PATH, got 'a\\x09b\\x1b'\n" },
};

static void
test_errors(void)
{
	size_t i;
	char *got;

	for (i = 0; i < sizeof(err_cases) / sizeof(err_cases[0]); i++) {
		got = errors_of(err_cases[i].text);
		is_str(got, err_cases[i].want, "%s", err_cases[i].name);
		free(got);
	}
}

static void
test_multi(void)
{
	static const char text[] =
	    "services:\n"
	    "  - name: a\n"
	    "    intercept: {protocols: [tcp], addresses: [1.2.3.4],"
	    " ports: [1]}\n"
	    "    forward: {tunnel: [10.0.0.2:4433]}\n"
	    "  - name: a\n"
	    "    host: {address: original, allow: [x]}\n"
	    "intercept:\n"
	    "  mark: 0\n"
	    "  foo: 1\n"
	    "dns:\n"
	    "  ttl: 100000\n"
	    "  resolver: bogus\n";
	static const char want[] =
	    "t.yaml:4:23: services[a].forward.tunnel: needs an identity "
	    "section (cert, key, ca)\n"
	    "t.yaml:5:11: duplicate service name 'a' (first at line 2)\n"
	    "t.yaml:6:5: missing services[a].host.allowed-addresses "
	    "(address original needs it)\n"
	    "t.yaml:8:9: intercept.mark: 0 out of range 0x1..0xffffffff\n"
	    "t.yaml:9:3: unknown key 'foo' in intercept\n"
	    "t.yaml:11:8: dns.ttl: 100000 out of range 0..86400\n"
	    "t.yaml:12:13: dns.resolver: expected auto, systemd-resolved, "
	    "resolv.conf, none or file:/PATH, got 'bogus'\n";
	char *got;

	got = errors_of(text);
	is_str(got, want, "every error in one pass, in file order");
	free(got);
}

static const char *
srcdir(void)
{
	const char *d = getenv("TOP_SRCDIR");

	return d != NULL && *d != '\0' ? d : "..";
}

/* Each file error names the file and says why. */
static void
test_file_errors(void)
{
	char *out = NULL, path[64], want[256];
	size_t outlen = 0;
	FILE *fp;
	int fd;

	fp = open_memstream(&out, &outlen);
	ok(conf_load("/nonexistent/sluice.yaml", fp) == NULL,
	    "missing file fails");
	ok(conf_load("/", fp) == NULL, "directory fails");
	snprintf(path, sizeof(path), "/tmp/unit_conf.XXXXXX");
	if ((fd = mkstemp(path)) != -1) {
		/* Sparse: costs no disk, reads as zeros past the limit. */
		ok(ftruncate(fd, 16 * 1024 * 1024 + 1) == 0, "big file made");
		ok(conf_load(path, fp) == NULL, "oversized file fails");
		close(fd);
		unlink(path);
	}
	fclose(fp);
	snprintf(want, sizeof(want), "/nonexistent/sluice.yaml: cannot read: "
	    "No such file or directory\n/: cannot read: Is a directory\n"
	    "%s: cannot read: larger than 16 MiB\n", path);
	is_str(out, want, "file errors name the file and the reason");
	free(out);
}

static void
test_file_load(void)
{
	char path[] = "/tmp/unit_conf.XXXXXX";
	struct config *c;
	FILE *fp;
	int fd;

	if ((fd = mkstemp(path)) == -1 || (fp = fdopen(fd, "w")) == NULL) {
		ok(0, "temporary file: %s", strerror(errno));
		return;
	}
	fputs(full_text, fp);
	fclose(fp);
	c = conf_load(path, stderr);
	ok(c != NULL && c->nservices == 4, "conf_load reads a file");
	ok(c != NULL && strcmp(c->path, path) == 0, "config keeps its path");
	conf_free(c);
	unlink(path);
}

/*
 * The commented examples must stay valid: uncomment lines whose text
 * after '#' is a YAML key or list item, and load again.
 */
static char *
uncomment(const char *text)
{
	char *out, *o;
	const char *l, *h, *t, *eol;

	if ((out = o = malloc(strlen(text) + 1)) == NULL)
		return NULL;
	for (l = text; *l != '\0'; l = eol) {
		eol = strchr(l, '\n');
		eol = eol != NULL ? eol + 1 : l + strlen(l);
		h = l + strspn(l, " ");
		t = h + 1 + strspn(h + 1, " ");
		if (*h == '#' && (strncmp(t, "- ", 2) == 0 ||
		    (t[strspn(t, "abcdefghijklmnopqrstuvwxyz-")] == ':' &&
		    strspn(t, "abcdefghijklmnopqrstuvwxyz-") > 0))) {
			memcpy(o, l, (size_t)(h - l));
			o += h - l;
			l = h + 1;
		}
		memcpy(o, l, (size_t)(eol - l));
		o += eol - l;
	}
	*o = '\0';
	return out;
}

static void
test_example(void)
{
	char path[4096], *text, *full, *err;
	struct config *c;
	struct service *s;
	size_t len;
	FILE *fp;

	snprintf(path, sizeof(path), "%s/conf/sluice.yaml", srcdir());
	c = conf_load(path, stderr);
	if (!ok(c != NULL, "example %s loads", path))
		return;
	is_int(c->nservices, 1, "example: one service");
	s = conf_service_by_name(c, "demo");
	ok(s != NULL && s->protocols == PROTO_TCP && s->naddrs == 2 &&
	    !s->addrs[0].is_name && strcmp(cidr(&s->addrs[0].cidr),
	    "10.9.0.5/32") == 0 && s->addrs[1].is_name &&
	    strcmp(s->addrs[1].name, "demo.sluice.test") == 0,
	    "example: demo intercepts 10.9.0.5 and demo.sluice.test");
	ok(s != NULL && s->nports == 1 && s->ports[0].lo == 80 &&
	    s->fwd == FWD_DIRECT && strcmp(ep(&s->direct),
	    "127.0.0.1:8080") == 0, "example: port 80 to 127.0.0.1:8080");
	is_str(ep(&c->dns_listen), "127.0.0.1:53", "example: dns listen");
	is_int(c->has_identity, 0, "example: identity commented out");
	conf_free(c);

	if ((fp = fopen(path, "r")) == NULL)
		return;
	text = calloc(1, 1 << 16);
	len = text != NULL ? fread(text, 1, (1 << 16) - 1, fp) : 0;
	fclose(fp);
	full = len > 0 ? uncomment(text) : NULL;
	free(text);
	if (full == NULL)
		return;
	err = load(full, strlen(full), &c);
	is_str(err, "", "example with its comments undone: no errors");
	ok(c != NULL && c->has_identity && c->has_host && c->nservices > 1,
	    "example with its comments undone: identity, host, services");
	free(err);
	free(full);
	conf_free(c);
}

static void
test_hostile_limits(void)
{
	char *text, *got, *p;
	size_t i, n;

	n = 200;
	text = calloc(1, 16 + 2 * n);
	p = text + sprintf(text, "services: ");
	for (i = 0; i < n; i++)
		*p++ = '[';
	memset(p, ']', n);
	got = errors_of(text);
	is_str(got, "t.yaml:1:74: nested deeper than 64 levels\n",
	    "nesting limit");
	free(got);
	free(text);

	text = calloc(1, 20 * 1100 + 16);
	p = text + sprintf(text, "x: [");
	for (i = 0; i < 1100; i++)
		p += sprintf(p, "&a%zu 1, ", i);
	strcpy(p, "]\n");
	got = errors_of(text);
	ok(got != NULL && strstr(got, ": more than 1024 anchors\n") != NULL,
	    "anchor limit");
	free(got);
	free(text);

	/* 1000 aliases of a service with 1100 addresses: over 1M nodes. */
	text = calloc(1, 12 * 1100 + 4 * 1000 + 256);
	p = text + sprintf(text, "x: &s {name: a, intercept: {protocols: "
	    "[tcp], ports: [1], addresses: [");
	for (i = 0; i < 1100; i++)
		p += sprintf(p, "10.0.0.1,");
	p += sprintf(p, "]}, forward: {direct: original}}\nservices: [");
	for (i = 0; i < 1000; i++)
		p += sprintf(p, "*s,");
	strcpy(p, "]\n");
	got = errors_of(text);
	ok(got != NULL && strstr(got, ": too many nodes (more than 1048576 "
	    "after expanding aliases)\n") != NULL,
	    "alias expansion limit");
	ok(got != NULL && strncmp(got, "t.yaml:1:1: unknown key 'x' at top "
	    "level\nt.yaml:1:", 50) == 0 && strchr(got + 50, '\n') ==
	    strrchr(got, '\n'), "nothing reported after the cut-off");
	free(got);
	free(text);
}

static void
test_hostile_bytes(void)
{
	static const char nul[] = "dns: {}\n\0x: 1\n";
	struct config *c;
	char *buf, *got;
	size_t len;

	got = load(nul, sizeof(nul) - 1, &c);
	is_str(got, "t.yaml:2:1: control characters are not allowed (0x0)\n",
	    "NUL byte in the text");
	free(got);
	ok(c == NULL, "NUL byte fails");

	/* Exact-size copies: ASan catches any read past the end. */
	len = strlen(full_text);
	buf = malloc(len);
	memcpy(buf, full_text, len);
	got = load(buf, len, &c);
	ok(c != NULL && got != NULL && *got == '\0',
	    "unterminated buffer loads");
	free(got);
	conf_free(c);
	memcpy(buf, "dns:\n\t", 6);
	got = load(buf, 6, &c);
	is_str(got, "t.yaml:2:1: tab character: YAML is indented with "
	    "spaces\n", "tab at the very end of an unterminated buffer");
	free(got);
	free(buf);

	ok(conf_load_string("x", "foo: 1\n", 7, NULL) == NULL,
	    "errors without an errfp");
	ok(conf_load("/nonexistent", NULL) == NULL, "no errfp, no file");
}

/* Deterministic, so that a failure can be replayed. */
static uint32_t
rnd(void)
{
	static uint32_t x = 2463534242u;

	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	return x;
}

static void
try_text(const char *text, size_t len, size_t *loaded)
{
	struct config *c;
	char *buf;
	FILE *fp;

	if ((buf = malloc(len ? len : 1)) == NULL)
		return;
	memcpy(buf, text, len);
	if ((c = conf_load_string("f.yaml", buf, len, NULL)) != NULL) {
		(*loaded)++;
		if ((fp = fopen("/dev/null", "w")) != NULL) {
			conf_print_summary(c, fp);
			fclose(fp);
		}
	}
	conf_free(c);
	free(buf);
}

static void
test_mutations(void)
{
	static const char specials[] = ":-[]{},&*!|>'\"%@`#\t\n ~?0x";
	size_t len = strlen(full_text), i, j, n, at, loaded = 0;
	char *buf = malloc(len + 8);

	for (i = 0; i <= len; i++)
		try_text(full_text, i, &loaded);
	ok(loaded > 0, "every prefix of the full config: %zu of %zu load",
	    loaded, len + 1);
	loaded = 0;
	for (i = 0; i < 3000; i++) {
		memcpy(buf, full_text, len);
		n = 1 + rnd() % 4;
		for (j = 0; j < n; j++) {
			at = rnd() % len;
			buf[at] = rnd() % 3 == 0 ? (char)(rnd() & 0xff) :
			    specials[rnd() % (sizeof(specials) - 1)];
		}
		try_text(buf, len, &loaded);
	}
	ok(1, "3000 mutated configs: %zu loaded, none crashed", loaded);
	free(buf);
}

static void
test_summary(void)
{
	static const char text[] =
	    "services:\n"
	    "  - name: wiki\n"
	    "    intercept:\n"
	    "      protocols: [tcp]\n"
	    "      addresses: [wiki.corp.test, \"*.docs.corp.test\","
	    " 10.9.0.0/24]\n"
	    "      ports: [80, \"8000-8100\"]\n"
	    "      sources: [10.8.0.0/16, 10.7.0.1]\n"
	    "    forward: {direct: 127.0.0.1:8080}\n"
	    "    host: {address: 127.0.0.1:8080, allow: [gw-1, laptop-*]}\n"
	    "  - name: db\n"
	    "    intercept: {protocols: [tcp, udp], addresses: [10.1.0.5,"
	    " \"fd00::/64\"], ports: [5432]}\n"
	    "    forward: {tunnel: [10.0.0.2:4433, \"[fd00::2]:4433\"]}\n"
	    "  - name: api\n"
	    "    host: {address: original, allowed-addresses: [10.9.0.0/24],"
	    " allow: [gw-1]}\n"
	    "identity: {cert: /p/gw.crt, key: /p/gw.key, ca: /p/ca.crt}\n"
	    "dns: {upstream: [1.1.1.1, \"[::1]:5353\"], resolver: none}\n"
	    "host: {}\n";
	static const char want[] =
	    "3 services, 8 intercept rules, 2 hostnames\n"
	    "intercept  backend auto, listen 127.0.0.1:0, mark 0x1, "
	    "bypass-mark 0x2, route-table 100\n"
	    "           udp-idle-timeout 30s, udp-max-flows 8192, "
	    "connect-timeout 5s, idle-timeout 3600s\n"
	    "dns        listen 127.0.0.1:53, ip-range 169.254.0.0/16, "
	    "hostnames pool, ttl 60s, unknown refused\n"
	    "           resolver none, self-test on, upstream 1.1.1.1:53, "
	    "[::1]:5353\n"
	    "identity   cert /p/gw.crt, key /p/gw.key, ca /p/ca.crt\n"
	    "host       listen 0.0.0.0:4433, idle-timeout 3600s\n"
	    "services\n"
	    "  wiki  tcp      wiki.corp.test *.docs.corp.test 10.9.0.0/24  "
	    "ports 80,8000-8100  from 10.8.0.0/16,10.7.0.1  "
	    "-> direct 127.0.0.1:8080  host 127.0.0.1:8080 allow "
	    "gw-1,laptop-*\n"
	    "  db    tcp,udp  10.1.0.5 fd00::/64                           "
	    "ports 5432                                     "
	    "-> tunnel 10.0.0.2:4433, [fd00::2]:4433\n"
	    "  api   host original within 10.9.0.0/24 allow gw-1\n";
	struct config *c;
	char *out = NULL, *err;
	size_t outlen = 0;
	FILE *fp;

	err = load(text, strlen(text), &c);
	free(err);
	if (!ok(c != NULL, "summary config loads"))
		return;
	fp = open_memstream(&out, &outlen);
	conf_print_summary(c, fp);
	fclose(fp);
	is_str(out, want, "check summary");
	free(out);
	conf_free(c);

	err = load("", 0, &c);
	fp = open_memstream(&out, &outlen);
	conf_print_summary(c, fp);
	fclose(fp);
	ok(strncmp(out, "0 services, 0 intercept rules, 0 hostnames\n", 43)
	    == 0 && strstr(out, "services\n") == NULL,
	    "empty summary has no services list");
	free(out);
	free(err);
	conf_free(c);
}

/* IPv6 wherever an address goes: "[v6]:port", bare CIDRs, mixed lists. */
static void
test_ipv6(void)
{
	static const char text[] =
	    "identity: {cert: /nx/gw.crt, key: /nx/gw.key, ca: /nx/ca.crt}\n"
	    "intercept: {listen: \"[::1]:15001\"}\n"
	    "dns: {listen: \"[::1]:53\", ip-range: \"fd00:a::/112\"}\n"
	    "host: {listen: \"[::]:4433\"}\n"
	    "services:\n"
	    "  - name: six\n"
	    "    intercept:\n"
	    "      protocols: [tcp]\n"
	    "      addresses: [\"fd00:9::5\", 10.9.0.5]\n"
	    "      ports: [80]\n"
	    "      sources: [\"fd00:8::/64\", 10.8.0.0/16]\n"
	    "    forward: {direct: \"[fd00::1]:80\"}\n"
	    "  - name: tun\n"
	    "    intercept: {protocols: [tcp], addresses: [\"fd00:9::/64\"], "
	    "ports: [81]}\n"
	    "    forward: {tunnel: [\"[fd00::2]:4433\", \"[::1]:4433\"]}\n"
	    "    host: {address: \"[::1]:81\", allow: [gw]}\n";
	struct config *c;
	struct service *s;
	char *out;

	out = load(text, strlen(text), &c);
	free(out);
	if (!ok(c != NULL, "v6: configuration loads"))
		return;
	is_str(ep(&c->listen), "[::1]:15001", "v6: intercept.listen");
	is_str(ep(&c->dns_listen), "[::1]:53", "v6: dns.listen");
	is_str(cidr(&c->dns_range), "fd00:a::/112", "v6: dns.ip-range");
	is_str(ep(&c->host_listen), "[::]:4433", "v6: host.listen");
	if ((s = conf_service_by_name(c, "six")) != NULL) {
		is_str(cidr(&s->addrs[0].cidr), "fd00:9::5/128",
		    "v6: a bare address is a /128");
		is_int(s->nsources, 2, "v6: sources of both families");
		is_str(cidr(&s->sources[0]), "fd00:8::/64", "v6: source");
		is_str(cidr(&s->sources[1]), "10.8.0.0/16",
		    "v6: beside a v4 one");
		is_int(s->fwd, FWD_DIRECT, "v6: forward direct");
		is_str(ep(&s->direct), "[fd00::1]:80", "v6: direct upstream");
	} else
		ok(0, "v6: service six");
	if ((s = conf_service_by_name(c, "tun")) != NULL) {
		is_int(s->ntunnel, 2, "v6: tunnel hosts");
		is_str(ep(&s->tunnel[0]), "[fd00::2]:4433", "v6: tunnel host");
		is_str(ep(&s->tunnel[1]), "[::1]:4433", "v6: second one");
		is_str(ep(&s->host_address), "[::1]:81", "v6: host.address");
	} else
		ok(0, "v6: service tun");
	conf_free(c);
	out = errors_of("intercept: {listen: \"::1:0\"}\n");
	is_str(out, "t.yaml:1:21: intercept.listen: expected ADDR:PORT, got "
	    "'::1:0' (ipv6 address needs brackets)\n",
	    "v6: a bare address with a port is refused");
	free(out);
	out = errors_of("services:\n  - name: x\n    forward: {direct: "
	    "\"[fd00::1]\"}\n");
	is_str(out, "t.yaml:3:23: services[x].forward.direct: expected "
	    "ADDR:PORT or original, got '[fd00::1]' (missing port)\n",
	    "v6: direct without a port");
	free(out);
}

int
main(void)
{
	test_full();
	test_defaults();
	test_errors();
	test_multi();
	test_file_errors();
	test_file_load();
	test_example();
	test_hostile_limits();
	test_hostile_bytes();
	test_mutations();
	test_summary();
	test_ipv6();
	return done_testing();
}
