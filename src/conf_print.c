/* SPDX-License-Identifier: MIT */
/* The configuration summary that `sluice check` prints. */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice.h"

/* Columns wider than this are not padded: one long row must not stretch all. */
#define COL_MAX		48

/* The columns of one service's line, each formatted on its own. */
struct row {
	char	*protos, *addrs, *ports, *from, *fwd, *host;
};

static const char *
backend_name(enum nf_backend_kind b)
{
	switch (b) {
	case NF_BACKEND_NFTABLES:
		return "nftables";
	case NF_BACKEND_IPTABLES:
		return "iptables";
	default:
		return "auto";
	}
}

/* A loaded config always has names; one built by hand may not. */
static const char *
name_of(const struct service *s)
{
	return s->name != NULL ? s->name : "?";
}

static const char *
plural(uint64_t n, const char *one, const char *many)
{
	return n == 1 ? one : many;
}

static int
popcount(int v)
{
	int n = 0;

	for (; v != 0; v &= v - 1)
		n++;
	return n;
}

/* What the backends install for it: one rule per combination. */
static uint64_t
svc_rules(const struct service *s)
{
	uint64_t ncidr = 0;
	size_t i;

	if (!s->has_intercept)
		return 0;
	for (i = 0; i < s->naddrs; i++)
		if (!s->addrs[i].is_name)
			ncidr++;
	return ncidr * (uint64_t)popcount(s->protocols) * s->nports *
	    (s->nsources > 0 ? s->nsources : 1);
}

/* A host prefix prints as the bare address, as it is usually written. */
static void
put_cidr(FILE *fp, const struct cidr *c)
{
	char buf[INET6_ADDRSTRLEN + 8], *slash;

	cidr_str(c, buf, sizeof(buf));
	if ((slash = strchr(buf, '/')) != NULL &&
	    c->prefixlen == (c->family == AF_INET ? 32 : 128))
		*slash = '\0';
	fputs(buf, fp);
}

static void
put_cidrs(FILE *fp, const struct cidr *v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (i > 0)
			fputc(',', fp);
		put_cidr(fp, &v[i]);
	}
}

static void
put_endpoint(FILE *fp, const struct endpoint *ep)
{
	char buf[ADDR_STRLEN];

	fputs(addr_str((const struct sockaddr *)&ep->ss, buf, sizeof(buf)),
	    fp);
}

static void
fmt_intercept(const struct service *s, FILE *fp[4])
{
	size_t i;

	fprintf(fp[0], "%s%s%s", s->protocols & PROTO_TCP ? "tcp" : "",
	    s->protocols == (PROTO_TCP | PROTO_UDP) ? "," : "",
	    s->protocols & PROTO_UDP ? "udp" : "");
	for (i = 0; i < s->naddrs; i++) {
		if (i > 0)
			fputc(' ', fp[1]);
		if (!s->addrs[i].is_name)
			put_cidr(fp[1], &s->addrs[i].cidr);
		else
			fprintf(fp[1], "%s%s", s->addrs[i].wildcard ? "*." :
			    "", s->addrs[i].name);
	}
	fputs("ports ", fp[2]);
	for (i = 0; i < s->nports; i++) {
		fprintf(fp[2], i > 0 ? ",%u" : "%u", s->ports[i].lo);
		if (s->ports[i].hi != s->ports[i].lo)
			fprintf(fp[2], "-%u", s->ports[i].hi);
	}
	if (s->nsources > 0) {
		fputs("from ", fp[3]);
		put_cidrs(fp[3], s->sources, s->nsources);
	}
}

static void
fmt_forward(const struct service *s, FILE *fp)
{
	size_t i;

	switch (s->fwd) {
	case FWD_DIRECT:
		fputs("-> direct ", fp);
		put_endpoint(fp, &s->direct);
		break;
	case FWD_ORIGINAL:
		fputs("-> direct original", fp);
		break;
	case FWD_TUNNEL:
		fputs("-> tunnel ", fp);
		for (i = 0; i < s->ntunnel; i++) {
			if (i > 0)
				fputs(", ", fp);
			put_endpoint(fp, &s->tunnel[i]);
		}
		break;
	default:
		break;
	}
}

static void
fmt_host(const struct service *s, FILE *fp)
{
	size_t i;

	if (!s->has_host)
		return;
	fputs("host ", fp);
	if (s->host_original) {
		fputs("original within ", fp);
		put_cidrs(fp, s->allowed, s->nallowed);
	} else
		put_endpoint(fp, &s->host_address);
	fputs(" allow ", fp);
	for (i = 0; i < s->nallow; i++)
		fprintf(fp, i > 0 ? ",%s" : "%s", s->allow[i]);
}

static void
row_free(struct row *r)
{
	free(r->protos);
	free(r->addrs);
	free(r->ports);
	free(r->from);
	free(r->fwd);
	free(r->host);
	memset(r, 0, sizeof(*r));
}

/* Fills every column, empty strings where a part is absent; -1 if no memory. */
static int
row_fmt(const struct service *s, struct row *r)
{
	char **out[6] = { &r->protos, &r->addrs, &r->ports, &r->from,
	    &r->fwd, &r->host };
	size_t len[6];
	FILE *fp[6];
	int i, rc = 0;

	memset(r, 0, sizeof(*r));
	for (i = 0; i < 6; i++)
		if ((fp[i] = open_memstream(out[i], &len[i])) == NULL)
			rc = -1;
	if (rc == 0) {
		if (s->has_intercept)
			fmt_intercept(s, fp);
		fmt_forward(s, fp[4]);
		fmt_host(s, fp[5]);
	}
	for (i = 0; i < 6; i++)
		if (fp[i] != NULL && fclose(fp[i]) != 0)
			rc = -1;
	if (rc == -1)
		row_free(r);
	return rc;
}

struct widths {
	int	name, protos, addrs, ports, from;
};

static void
widen(int *w, const char *s)
{
	int len = (int)strlen(s);

	if (len > *w)
		*w = len > COL_MAX ? COL_MAX : len;
}

static void
measure(const struct config *c, struct widths *w)
{
	struct service *s;
	struct row r;

	memset(w, 0, sizeof(*w));
	TAILQ_FOREACH(s, &c->services, entry) {
		widen(&w->name, name_of(s));
		if (!s->has_intercept || row_fmt(s, &r) == -1)
			continue;
		widen(&w->protos, r.protos);
		widen(&w->addrs, r.addrs);
		widen(&w->ports, r.ports);
		widen(&w->from, r.from);
		row_free(&r);
	}
}

static void
print_service(const struct service *s, const struct widths *w, FILE *fp)
{
	struct row r;

	if (row_fmt(s, &r) == -1) {
		fprintf(fp, "  %s  (out of memory)\n", name_of(s));
		return;
	}
	fprintf(fp, "  %-*s", w->name, name_of(s));
	if (s->has_intercept) {
		fprintf(fp, "  %-*s  %-*s  %-*s", w->protos, r.protos,
		    w->addrs, r.addrs, w->ports, r.ports);
		if (w->from > 0)
			fprintf(fp, "  %-*s", w->from, r.from);
		fprintf(fp, "  %s", r.fwd);
	}
	if (s->has_host)
		fprintf(fp, "  %s", r.host);
	fputc('\n', fp);
	row_free(&r);
}

static void
print_intercept(const struct config *c, FILE *fp)
{
	char buf[ADDR_STRLEN];

	fprintf(fp, "intercept  backend %s, listen %s, mark 0x%x, "
	    "bypass-mark 0x%x, route-table %u\n", backend_name(c->backend),
	    addr_str((const struct sockaddr *)&c->listen.ss, buf,
	    sizeof(buf)), c->mark, c->bypass_mark, c->route_table);
	fprintf(fp, "           udp-idle-timeout %us, udp-max-flows %u, "
	    "connect-timeout %us, idle-timeout %us\n", c->udp_idle_timeout,
	    c->udp_max_flows, c->connect_timeout, c->idle_timeout);
}

static void
print_dns(const struct config *c, FILE *fp)
{
	char buf[ADDR_STRLEN];
	size_t i;

	fprintf(fp, "dns        listen %s, ip-range ",
	    addr_str((const struct sockaddr *)&c->dns_listen.ss, buf,
	    sizeof(buf)));
	put_cidr(fp, &c->dns_range);
	fprintf(fp, ", hostnames %s, ttl %us, unknown %s\n",
	    c->dns_hostnames == DNS_HOSTNAMES_REAL ? "real" : "pool",
	    c->dns_ttl,
	    c->dns_unknown == DNS_UNKNOWN_NXDOMAIN ? "nxdomain" : "refused");
	fprintf(fp, "           resolver %s, self-test %s, upstream ",
	    c->dns_resolver, c->dns_self_test ? "on" : "off");
	if (c->ndns_upstream == 0)
		fputs("none", fp);
	for (i = 0; i < c->ndns_upstream; i++) {
		if (i > 0)
			fputs(", ", fp);
		put_endpoint(fp, &c->dns_upstream[i]);
	}
	fputc('\n', fp);
}

void
conf_print_summary(const struct config *c, FILE *fp)
{
	struct service *s;
	struct widths w;
	uint64_t rules = 0, names = 0;
	size_t i;

	TAILQ_FOREACH(s, &c->services, entry) {
		rules += svc_rules(s);
		for (i = 0; s->has_intercept && i < s->naddrs; i++)
			names += s->addrs[i].is_name;
	}
	fprintf(fp, "%zu %s, %llu intercept %s, %llu %s\n", c->nservices,
	    plural(c->nservices, "service", "services"),
	    (unsigned long long)rules, plural(rules, "rule", "rules"),
	    (unsigned long long)names, plural(names, "hostname", "hostnames"));
	print_intercept(c, fp);
	print_dns(c, fp);
	if (c->has_identity)
		fprintf(fp, "identity   cert %s, key %s, ca %s\n", c->id_cert,
		    c->id_key, c->id_ca);
	if (c->has_host) {
		fputs("host       listen ", fp);
		put_endpoint(fp, &c->host_listen);
		fprintf(fp, ", idle-timeout %us\n", c->host_idle_timeout);
	}
	if (c->nservices == 0)
		return;
	fputs("services\n", fp);
	measure(c, &w);
	TAILQ_FOREACH(s, &c->services, entry)
		print_service(s, &w, fp);
}
