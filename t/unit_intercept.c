/* SPDX-License-Identifier: MIT */
/* Unit tests for src/intercept.c: the table of addresses handed out for names. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "sluice.h"
#include "nf.h"
#include "tap.h"

static const char conf_text[] =
    "services:\n"
    "  - name: web\n"
    "    intercept: { protocols: [tcp], addresses: [web.test, \"*.docs.test\"],"
    " ports: [80], sources: [10.8.0.0/16] }\n"
    "    forward: { direct: 127.0.0.1:8080 }\n"
    "  - name: api\n"
    "    intercept: { protocols: [tcp], addresses: [api.test], ports: [443] }\n"
    "    forward: { direct: 127.0.0.1:8443 }\n";

static struct cidr
host(const char *s)
{
	struct cidr c;
	const char *why;

	if (addr_parse_cidr(s, &c, &why) == -1)
		abort();
	return c;
}

static const struct sockaddr *
ep(struct sockaddr_storage *ss, const char *s)
{
	socklen_t len;
	const char *why;

	if (addr_parse_endpoint(s, ss, &len, 0, &why) == -1)
		abort();
	return (const struct sockaddr *)ss;
}

static int undone;

static void
undo(const struct cidr *c, int pool)
{
	undone++;
}

static void
count(void *arg, const char *name, const struct cidr *c)
{
	++*(int *)arg;
}

int
main(void)
{
	struct sockaddr_storage d, s;
	struct intercepts *ic;
	struct config *conf;
	struct service *svc;
	struct nf_extra *x;
	struct cidr p1 = host("169.254.1.1"), p2 = host("169.254.1.2");
	struct cidr real = host("10.9.0.5");
	size_t n;
	int listed = 0;

	plan(22);
	conf = conf_load_string("t", conf_text, sizeof(conf_text) - 1, stderr);
	if (conf == NULL || (ic = intercept_new()) == NULL)
		return 1;

	is_int(intercept_add(ic, "web.test", "web", &p1, 1, 0), 1, "added");
	is_int(intercept_add(ic, "web.test", "web", &p1, 1, 0), 0,
	    "adding it again changes nothing");
	is_int(intercept_add(ic, "a.docs.test", "web", &p2, 1, 0), 1,
	    "a wildcard name");
	is_int(intercept_add(ic, "api.test", "api", &real, 0, 0), 1,
	    "a real address");
	is_int(intercept_add(ic, "web.test", "web", &real, 0, 0), 1,
	    "the same real address for another name");
	is_int(intercept_add(ic, "self.test", "", &p2, 0, 1), 1,
	    "a listed-only name");
	is_int(intercept_count(ic), 5, "five entries");

	svc = intercept_match(ic, conf, PROTO_TCP, ep(&d, "169.254.1.1:80"),
	    ep(&s, "10.8.0.9:5000"));
	is_str(svc != NULL ? svc->name : NULL, "web", "a pool address matches");
	ok(intercept_match(ic, conf, PROTO_TCP, ep(&d, "169.254.1.1:81"),
	    ep(&s, "10.8.0.9:5000")) == NULL, "not on another port");
	ok(intercept_match(ic, conf, PROTO_TCP, ep(&d, "169.254.1.1:80"),
	    ep(&s, "10.7.0.9:5000")) == NULL, "nor from another source");
	ok(intercept_match(ic, conf, PROTO_UDP, ep(&d, "169.254.1.1:80"),
	    ep(&s, "10.8.0.9:5000")) == NULL, "nor for another protocol");
	svc = intercept_match(ic, conf, PROTO_TCP, ep(&d, "10.9.0.5:443"),
	    ep(&s, "10.7.0.9:5000"));
	is_str(svc != NULL ? svc->name : NULL, "api",
	    "a shared real address: the service that takes the port");
	svc = intercept_match(ic, conf, PROTO_TCP, ep(&d, "10.9.0.5:80"),
	    ep(&s, "10.8.0.9:5000"));
	is_str(svc != NULL ? svc->name : NULL, "web", "and the other's port");
	ok(intercept_match(ic, conf, PROTO_TCP, ep(&d, "169.254.1.2:80"),
	    ep(&s, "10.8.0.9:5000")) != NULL,
	    "a listed-only name does not hide an intercepted one");

	ok(intercept_extras(ic, conf, &x, &n) == 0 && n == 4,
	    "extras: one per (service, address), listed names left out");
	free(x);

	intercept_settle(ic);
	is_int(intercept_add(ic, "new.docs.test", "web", &p1, 1, 0), 1,
	    "a batch adds a name");
	is_int(intercept_add(ic, "api.test", "web", &real, 0, 0), 1,
	    "and moves another");
	intercept_rollback(ic, undo);
	is_int(undone, 1, "a rollback undoes the new name's route");
	is_int(intercept_count(ic), 5, "and removes it");
	svc = intercept_match(ic, conf, PROTO_TCP, ep(&d, "10.9.0.5:443"),
	    ep(&s, "10.7.0.9:5000"));
	is_str(svc != NULL ? svc->name : NULL, "api",
	    "and gives the moved one its service back");

	is_int(intercept_del(ic, "self.test", &p2), 2, "deleting a listed name");
	intercept_foreach(ic, count, &listed);
	is_int(listed, 4, "foreach sees the rest");

	intercept_free(ic);
	conf_free(conf);
	return done_testing();
}
