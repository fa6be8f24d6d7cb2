/* SPDX-License-Identifier: MIT */
/* Unit tests for dns/names.c: exact and wildcard service hostnames. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "dns.h"
#include "tap.h"

static const char conf_text[] =
    "services:\n"
    "  - name: web\n"
    "    intercept:\n"
    "      protocols: [tcp]\n"
    "      addresses: [web.corp.test, \"*.docs.corp.test\", 10.9.0.0/24]\n"
    "      ports: [80]\n"
    "    forward: { direct: 127.0.0.1:8080 }\n"
    "  - name: wiki\n"		/* its duplicates lose to web */
    "    intercept:\n"
    "      protocols: [tcp]\n"
    "      addresses: [Wiki.Corp.Test, \"*.corp.test\", web.corp.test,\n"
    "          \"*.DOCS.corp.test\"]\n"
    "      ports: [80]\n"
    "    forward: { direct: 127.0.0.1:8081 }\n"
    "  - name: deep\n"
    "    intercept:\n"
    "      protocols: [tcp]\n"
    "      addresses: [\"*.a.docs.corp.test\", x.y.docs.corp.test]\n"
    "      ports: [443]\n"
    "    forward: { direct: 127.0.0.1:8443 }\n"
    "  - name: apex\n"
    "    intercept:\n"
    "      protocols: [tcp]\n"
    "      addresses: [docs.corp.test.]\n"
    "      ports: [80]\n"
    "    forward: { direct: 127.0.0.1:8082 }\n"
    "  - name: tld\n"
    "    intercept:\n"
    "      protocols: [tcp, udp]\n"
    "      addresses: [\"*.test\", _srv._tcp.host.example]\n"
    "      ports: [53]\n"
    "    forward: { direct: original }\n"
    "  - name: cidr-only\n"
    "    intercept:\n"
    "      protocols: [tcp]\n"
    "      addresses: [10.8.0.0/16]\n"
    "      ports: [22]\n"
    "    forward: { direct: original }\n";

static struct config *
load(const char *text)
{
	return conf_load_string("names.yaml", text, strlen(text), stderr);
}

/* "name" or "name*" (wildcard match) of the service for q, or "-". */
static const char *
lookup(const struct dns_names *d, const char *q)
{
	static char buf[128];
	const struct service *s;
	int wild = -1;

	if ((s = dns_names_lookup(d, q, &wild)) == NULL)
		return wild == 0 ? "-" : "(wildcard not reset)";
	snprintf(buf, sizeof(buf), "%s%s", s->name, wild ? "*" : "");
	return buf;
}

static void
test_lookup(void)
{
	static const struct { const char *q, *want; } t[] = {
		{ "web.corp.test", "web" },
		{ "WEB.Corp.TEST", "web" },		/* any case */
		{ "wiki.corp.test", "wiki" },		/* configured mixed */
		{ "a.docs.corp.test", "web*" },
		{ "A.b.c.Docs.corp.test", "web*" },	/* any depth */
		{ "b.a.docs.corp.test", "deep*" },	/* longest suffix */
		{ "c.b.a.docs.corp.test", "deep*" },
		{ "x.y.docs.corp.test", "deep" },	/* exact beats wild */
		{ "z.x.y.docs.corp.test", "web*" },	/* no wild at x.y */
		{ "docs.corp.test", "apex" },		/* exact apex */
		{ "other.corp.test", "wiki*" },
		{ "corp.test", "tld*" },
		{ "test", "-" },			/* not its own apex */
		{ "_srv._tcp.host.example", "tld" },
		{ "host.example", "-" },
		{ "example", "-" },
		{ "web.corp.test.", "-" },		/* caller strips dots */
		{ ".web.corp.test", "-" },
		{ "a..docs.corp.test", "-" },
		{ "", "-" },
		{ ".", "-" },
		{ "web.corp.tes", "-" },
		{ "eb.corp.test", "wiki*" },
		{ "web.corp.testx", "-" },
		{ "xtest", "-" },
	};
	struct config *c;
	struct dns_names *d;
	size_t i;

	c = load(conf_text);
	if (!ok(c != NULL, "test configuration loads"))
		return;
	d = dns_names_new(c);
	ok(d != NULL, "table built");
	/*
	 * Exact: web.corp.test, wiki.corp.test, x.y.docs.corp.test,
	 * docs.corp.test, _srv._tcp.host.example; wildcard suffixes:
	 * docs.corp.test, corp.test, a.docs.corp.test, test. The duplicates
	 * in wiki count once.
	 */
	is_int(dns_names_count(d), 9, "distinct names counted once");
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		is_str(lookup(d, t[i].q), t[i].want, "lookup '%s'", t[i].q);
	ok(dns_names_lookup(d, "web.corp.test", NULL) != NULL,
	    "wildcard out-parameter may be NULL");
	ok(dns_names_lookup(d, "web.corp.test", NULL) ==
	    conf_service_by_name(c, "web"), "the config's own service");
	dns_names_free(d);
	conf_free(c);
}

static void
test_limits(void)
{
	struct config *c;
	struct dns_names *d;
	char name[400];

	c = load(conf_text);
	if (c == NULL || (d = dns_names_new(c)) == NULL) {
		ok(0, "table for limits");
		conf_free(c);
		return;
	}
	/* 253 characters under *.test: 125 labels "a." and "test". */
	memset(name, 0, sizeof(name));
	for (size_t i = 0; i < 124; i++)
		memcpy(name + 2 * i, "a.", 2);
	strcat(name, "bb.test");
	is_int(strlen(name), 255, "a 255-character name");
	is_str(lookup(d, name), "-", "over DNS_TEXT_MAX: no match");
	memmove(name, name + 2, strlen(name + 2) + 1);
	is_str(lookup(d, name), "tld*", "253 characters, 125 labels: match");
	memset(name, 'a', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	is_str(lookup(d, name), "-", "399 characters: no match");
	dns_names_free(d);
	conf_free(c);
}

static void
test_empty(void)
{
	static const char text[] =
	    "services:\n"
	    "  - name: cidr\n"
	    "    intercept:\n"
	    "      protocols: [tcp]\n"
	    "      addresses: [10.8.0.0/16]\n"
	    "      ports: [22]\n"
	    "    forward: { direct: original }\n";
	struct config *c;
	struct dns_names *d;

	c = load(text);
	d = c != NULL ? dns_names_new(c) : NULL;
	ok(d != NULL, "table without names");
	if (d != NULL) {
		is_int(dns_names_count(d), 0, "no names");
		is_str(lookup(d, "anything.test"), "-", "nothing matches");
	}
	dns_names_free(d);
	dns_names_free(NULL);
	conf_free(c);
}

/* Many services: the tables grow and collide; every name is found. */
static void
test_many(void)
{
	const struct service *s;
	struct config *c;
	struct dns_names *d;
	char *text, q[128], want[32];
	size_t len = 0, cap = 1 << 20, i, bad = 0;
	int wild;
	const int n = 500;

	if ((text = malloc(cap)) == NULL)
		return;
	len += (size_t)snprintf(text, cap, "services:\n");
	for (i = 0; i < (size_t)n; i++)
		len += (size_t)snprintf(text + len, cap - len,
		    "  - name: s%zu\n"
		    "    intercept:\n"
		    "      protocols: [tcp]\n"
		    "      addresses: [h%zu.test, \"*.w%zu.test\", "
		    "\"*.x.h%zu.test\"]\n"
		    "      ports: [80]\n"
		    "    forward: { direct: original }\n", i, i, i, i);
	c = load(text);
	free(text);
	d = c != NULL ? dns_names_new(c) : NULL;
	if (!ok(d != NULL, "%d services load", n)) {
		conf_free(c);
		return;
	}
	is_int(dns_names_count(d), 3 * n, "3 names each");
	for (i = 0; i < (size_t)n; i++) {
		snprintf(want, sizeof(want), "s%zu", i);
		snprintf(q, sizeof(q), "H%zu.test", i);
		s = dns_names_lookup(d, q, &wild);
		bad += s == NULL || strcmp(s->name, want) != 0 || wild;
		snprintf(q, sizeof(q), "a.b.w%zu.test", i);
		s = dns_names_lookup(d, q, &wild);
		bad += s == NULL || strcmp(s->name, want) != 0 || !wild;
		snprintf(q, sizeof(q), "y.x.h%zu.test", i);
		s = dns_names_lookup(d, q, &wild);
		bad += s == NULL || strcmp(s->name, want) != 0 || !wild;
		snprintf(q, sizeof(q), "w%zu.test", i);
		bad += dns_names_lookup(d, q, &wild) != NULL;
		snprintf(q, sizeof(q), "x.h%zu.test", i);
		bad += dns_names_lookup(d, q, &wild) != NULL;
	}
	is_int(bad, 0, "every name of %d services found, apexes not", n);
	dns_names_free(d);
	conf_free(c);
}

int
main(void)
{
	test_lookup();
	test_limits();
	test_empty();
	test_many();
	return done_testing();
}
