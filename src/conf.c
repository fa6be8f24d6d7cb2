/* SPDX-License-Identifier: MIT */
/* Configuration: the schema of sluice.yaml, its checks, and struct config. */
#include "config.h"

#include <sys/socket.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice.h"
#include "conf_yaml.h"

#define NAME_MAX_LEN	64	/* service names, identity names */

/* ---- identity ---- */

static void
h_identity(struct cparse *p, yaml_node_t *n, const struct key *k, void *obj)
{
	static const struct key keys[] = {
		{ "cert", conf_h_path, offsetof(struct config, id_cert), 0, 0,
		    K_REQUIRED },
		{ "key", conf_h_path, offsetof(struct config, id_key), 0, 0,
		    K_REQUIRED },
		{ "ca", conf_h_path, offsetof(struct config, id_ca), 0, 0,
		    K_REQUIRED },
		{ NULL, NULL, 0, 0, 0, 0 }
	};

	if (conf_walk(p, n, keys, p->conf) != -1)
		p->conf->has_identity = 1;
}

/* ---- intercept ---- */

static void
h_backend(struct cparse *p, yaml_node_t *n, const struct key *k, void *obj)
{
	static const char *const names[] = { "auto", "nftables", "iptables",
	    NULL };
	static const enum nf_backend_kind kinds[] = { NF_BACKEND_AUTO,
	    NF_BACKEND_NFTABLES, NF_BACKEND_IPTABLES };
	int i;

	if ((i = conf_enum(p, n, names)) != -1)
		p->conf->backend = kinds[i];
}

static void
h_mark(struct cparse *p, yaml_node_t *n, const struct key *k, void *obj)
{
	uint64_t v;

	if (conf_uint(p, n, 1, UINT32_MAX, 1, &v) == -1)
		return;
	*FIELD(obj, k, uint32_t) = (uint32_t)v;
	if (k->off == offsetof(struct config, mark))
		p->mark = n;
	else
		p->bypass_mark = n;
}

static void
h_route_table(struct cparse *p, yaml_node_t *n, const struct key *k,
    void *obj)
{
	char shown[SHOW_BUFSZ];
	uint64_t v;

	if (conf_uint(p, n, 1, UINT32_MAX, 0, &v) == -1)
		return;
	/* default, main and local belong to the kernel (0 is unspec). */
	if (v >= 253 && v <= 255) {
		conf_err(p, n, "%s: table %s is reserved for the kernel's "
		    "default, main and local tables", p->path,
		    conf_show(n, shown));
		return;
	}
	p->conf->route_table = (uint32_t)v;
}

/* Sluice's own sockets carry bypass-mark; it must not look intercepted. */
static void
check_marks(struct cparse *p)
{
	struct config *c = p->conf;
	yaml_node_t *n;

	if ((c->mark & c->bypass_mark) == 0)
		return;
	n = p->bypass_mark != NULL ? p->bypass_mark : p->mark;
	if (n == NULL)
		return;
	conf_err(p, n, "intercept.bypass-mark 0x%x shares bits with "
	    "intercept.mark 0x%x", c->bypass_mark, c->mark);
}

static void
h_intercept(struct cparse *p, yaml_node_t *n, const struct key *k,
    void *obj)
{
	static const struct key keys[] = {
		{ "backend", h_backend, 0, 0, 0, 0 },
		{ "listen", conf_h_endpoint, offsetof(struct config, listen),
		    0, 0, K_PORT0 },
		{ "mark", h_mark, offsetof(struct config, mark), 0, 0, 0 },
		{ "bypass-mark", h_mark, offsetof(struct config, bypass_mark),
		    0, 0, 0 },
		{ "route-table", h_route_table, 0, 0, 0, 0 },
		{ "udp-idle-timeout", conf_h_uint,
		    offsetof(struct config, udp_idle_timeout), 1, 86400, 0 },
		{ "udp-max-flows", conf_h_uint,
		    offsetof(struct config, udp_max_flows), 1, 1048576, 0 },
		{ "connect-timeout", conf_h_uint,
		    offsetof(struct config, connect_timeout), 1, 300, 0 },
		{ "idle-timeout", conf_h_uint,
		    offsetof(struct config, idle_timeout), 0, 604800, 0 },
		{ NULL, NULL, 0, 0, 0, 0 }
	};

	if (conf_walk(p, n, keys, p->conf) != -1)
		check_marks(p);
}

/* ---- dns ---- */

static void
h_ip_range(struct cparse *p, yaml_node_t *n, const struct key *k, void *obj)
{
	char shown[SHOW_BUFSZ];
	struct cidr c;
	int max;

	if (conf_cidr(p, n, "a CIDR", &c) == -1)
		return;
	max = c.family == AF_INET ? 30 : 126;
	if (c.prefixlen > max) {
		conf_err(p, n, "%s: %s is too small for an address pool "
		    "(at most /%d)", p->path, conf_show(n, shown), max);
		return;
	}
	p->conf->dns_range = c;
}

static void
h_hostnames(struct cparse *p, yaml_node_t *n, const struct key *k,
    void *obj)
{
	static const char *const names[] = { "pool", "real", NULL };
	int i;

	if ((i = conf_enum(p, n, names)) != -1)
		p->conf->dns_hostnames = i == 0 ? DNS_HOSTNAMES_POOL :
		    DNS_HOSTNAMES_REAL;
}

static void
h_unknown(struct cparse *p, yaml_node_t *n, const struct key *k, void *obj)
{
	static const char *const names[] = { "refused", "nxdomain", NULL };
	int i;

	if ((i = conf_enum(p, n, names)) != -1)
		p->conf->dns_unknown = i == 0 ? DNS_UNKNOWN_REFUSED :
		    DNS_UNKNOWN_NXDOMAIN;
}

static void
set_port53(struct endpoint *ep, const struct cidr *c)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)&ep->ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ep->ss;

	memset(&ep->ss, 0, sizeof(ep->ss));
	if (c->family == AF_INET) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons(53);
		memcpy(&sin->sin_addr, c->addr, 4);
		ep->len = sizeof(*sin);
	} else {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(53);
		memcpy(&sin6->sin6_addr, c->addr, 16);
		ep->len = sizeof(*sin6);
	}
}

/*
 * "1.1.1.1", "1.1.1.1:5353", "2606:4700::1111", "[2606:4700::1111]" and
 * "[2606:4700::1111]:53": the port defaults to 53.
 */
static int
upstream_item(struct cparse *p, yaml_node_t *n, void *slot)
{
	struct endpoint *ep = slot;
	const char *expect = "ADDR or ADDR:PORT", *s, *why;
	const char *why_ip = "bad ip address";
	char ip[INET6_ADDRSTRLEN + 2];
	size_t len;
	struct cidr c;

	if ((s = conf_scalar(p, n, expect)) == NULL)
		return -1;
	if (addr_parse_endpoint(s, &ep->ss, &ep->len, 0, &why) == 0)
		return 0;
	len = strlen(s);
	if (s[0] == '[' && s[len - 1] == ']' && len < sizeof(ip))
		snprintf(ip, sizeof(ip), "%.*s", (int)len - 2, s + 1);
	else
		snprintf(ip, sizeof(ip), "%s", len < sizeof(ip) ? s : "");
	if (strchr(ip, '/') == NULL && addr_parse_cidr(ip, &c, &why_ip) == 0) {
		set_port53(ep, &c);
		return 0;
	}
	/* "host:port" went wrong in the port; anything else in the address. */
	if (strstr(s, "]:") == NULL && strchr(s, ':') != strrchr(s, ':'))
		why = why_ip;
	else if (strchr(s, ':') == NULL)
		why = "bad ip address";
	conf_bad_value(p, n, expect, why);
	return -1;
}

static void
h_upstream(struct cparse *p, yaml_node_t *n, const struct key *k,
    void *obj)
{
	struct config *c = p->conf;

	conf_list_parse(p, n, 0, (void **)&c->dns_upstream,
	    &c->ndns_upstream, sizeof(*c->dns_upstream), upstream_item);
}

static void
h_resolver(struct cparse *p, yaml_node_t *n, const struct key *k,
    void *obj)
{
	static const char *const names[] = { "auto", "systemd-resolved",
	    "resolv.conf", "none", NULL };
	const char *expect = "auto, systemd-resolved, resolv.conf, none or "
	    "file:/PATH", *s;
	int i;

	if ((s = conf_scalar(p, n, expect)) == NULL)
		return;
	for (i = 0; names[i] != NULL; i++)
		if (strcmp(s, names[i]) == 0)
			break;
	if (names[i] == NULL && strncmp(s, "file:", 5) != 0) {
		conf_bad_value(p, n, expect, NULL);
		return;
	}
	if (names[i] == NULL && s[5] != '/') {
		conf_bad_value(p, n, expect, "file: needs an absolute path");
		return;
	}
	free(p->conf->dns_resolver);
	p->conf->dns_resolver = conf_strdup(p, s);
}

static void
h_dns(struct cparse *p, yaml_node_t *n, const struct key *k, void *obj)
{
	static const struct key keys[] = {
		{ "listen", conf_h_endpoint,
		    offsetof(struct config, dns_listen), 0, 0, 0 },
		{ "ip-range", h_ip_range, 0, 0, 0, 0 },
		{ "hostnames", h_hostnames, 0, 0, 0, 0 },
		{ "upstream", h_upstream, 0, 0, 0, 0 },
		{ "unknown", h_unknown, 0, 0, 0, 0 },
		{ "ttl", conf_h_uint, offsetof(struct config, dns_ttl),
		    0, 86400, 0 },
		{ "resolver", h_resolver, 0, 0, 0, 0 },
		{ "self-test", conf_h_bool,
		    offsetof(struct config, dns_self_test), 0, 0, 0 },
		{ NULL, NULL, 0, 0, 0, 0 }
	};

	conf_walk(p, n, keys, p->conf);
}

/* ---- host ---- */

static void
h_host(struct cparse *p, yaml_node_t *n, const struct key *k, void *obj)
{
	static const struct key keys[] = {
		{ "listen", conf_h_endpoint,
		    offsetof(struct config, host_listen), 0, 0, 0 },
		{ "idle-timeout", conf_h_uint,
		    offsetof(struct config, host_idle_timeout), 0, 604800,
		    0 },
		{ NULL, NULL, 0, 0, 0, 0 }
	};

	if (conf_walk(p, n, keys, p->conf) != -1)
		p->conf->has_host = 1;
}

/* ---- services: intercept ---- */

static struct svc_nodes *
svc_nodes(struct cparse *p)
{
	return &p->nodes[p->svc->id - 1];
}

static void
h_protocols(struct cparse *p, yaml_node_t *n, const struct key *k,
    void *obj)
{
	static const char *const names[] = { "tcp", "udp", NULL };
	struct service *s = obj;
	struct list l;
	yaml_node_t *it;
	size_t i;
	int v;

	if (conf_list_nonempty(p, n, &l) == -1)
		return;
	for (i = 0; i < l.n && (it = conf_list_item(p, &l, i)) != NULL; i++)
		if ((v = conf_enum(p, it, names)) != -1)
			s->protocols |= v == 0 ? PROTO_TCP : PROTO_UDP;
}

/* Anything with ':' or only digits, dots and '/' is meant as an address. */
static int
looks_numeric(const char *s)
{
	if (strchr(s, ':') != NULL)
		return 1;
	return s[strspn(s, "0123456789./")] == '\0';
}

static int
parse_svc_addr(struct cparse *p, yaml_node_t *n, void *slot)
{
	struct svc_addr *a = slot;
	const char *expect = "a hostname, *.domain or CIDR", *s, *why;

	if ((s = conf_scalar(p, n, expect)) == NULL)
		return -1;
	if (looks_numeric(s)) {
		if (addr_parse_cidr(s, &a->cidr, &why) == 0)
			return 0;
	} else if (addr_parse_hostname(s, a->name, &a->wildcard, &why) == 0) {
		a->is_name = 1;
		return 0;
	}
	conf_bad_value(p, n, expect, why);
	return -1;
}

static void
h_addresses(struct cparse *p, yaml_node_t *n, const struct key *k,
    void *obj)
{
	struct service *s = obj;

	conf_list_parse(p, n, 1, (void **)&s->addrs, &s->naddrs,
	    sizeof(*s->addrs), parse_svc_addr);
}

static int
port_item(struct cparse *p, yaml_node_t *n, void *slot)
{
	const char *expect = "PORT or LO-HI", *v, *why;

	if ((v = conf_scalar(p, n, expect)) == NULL)
		return -1;
	if (addr_parse_port_range(v, slot, &why) == -1) {
		conf_bad_value(p, n, expect, why);
		return -1;
	}
	return 0;
}

static void
h_ports(struct cparse *p, yaml_node_t *n, const struct key *k, void *obj)
{
	struct service *s = obj;

	conf_list_parse(p, n, 1, (void **)&s->ports, &s->nports,
	    sizeof(*s->ports), port_item);
}

static void
h_sources(struct cparse *p, yaml_node_t *n, const struct key *k, void *obj)
{
	struct service *s = obj;

	conf_cidr_list(p, n, &s->sources, &s->nsources);
}

static void
h_svc_intercept(struct cparse *p, yaml_node_t *n, const struct key *k,
    void *obj)
{
	static const struct key keys[] = {
		{ "protocols", h_protocols, 0, 0, 0, K_REQUIRED },
		{ "addresses", h_addresses, 0, 0, 0, K_REQUIRED },
		{ "ports", h_ports, 0, 0, 0, K_REQUIRED },
		{ "sources", h_sources, 0, 0, 0, 0 },
		{ NULL, NULL, 0, 0, 0, 0 }
	};
	struct service *s = obj;

	svc_nodes(p)->intercept = conf_here(p, n);
	if (conf_walk(p, n, keys, s) != -1)
		s->has_intercept = 1;
}

/* ---- services: forward ---- */

static void
h_direct(struct cparse *p, yaml_node_t *n, const struct key *k, void *obj)
{
	struct service *s = obj;

	if (n->type == YAML_SCALAR_NODE &&
	    strcmp((const char *)n->data.scalar.value, "original") == 0)
		s->fwd = FWD_ORIGINAL;
	else if (conf_endpoint(p, n, 0, "ADDR:PORT or original",
	    &s->direct) == 0)
		s->fwd = FWD_DIRECT;
}

static int
tunnel_item(struct cparse *p, yaml_node_t *n, void *slot)
{
	return conf_endpoint(p, n, 0, "ADDR:PORT", slot);
}

static void
h_tunnel(struct cparse *p, yaml_node_t *n, const struct key *k, void *obj)
{
	struct service *s = obj;

	svc_nodes(p)->tunnel = n;
	conf_list_parse(p, n, 1, (void **)&s->tunnel, &s->ntunnel,
	    sizeof(*s->tunnel), tunnel_item);
	if (s->tunnel != NULL)
		s->fwd = FWD_TUNNEL;
}

static void
h_svc_forward(struct cparse *p, yaml_node_t *n, const struct key *k,
    void *obj)
{
	static const struct key keys[] = {
		{ "direct", h_direct, 0, 0, 0, 0 },
		{ "tunnel", h_tunnel, 0, 0, 0, 0 },
		{ NULL, NULL, 0, 0, 0, 0 }
	};
	yaml_node_t *at = conf_here(p, n);
	int seen;

	svc_nodes(p)->forward = at;
	if ((seen = conf_walk(p, n, keys, obj)) == -1)
		return;
	if (seen == 0)
		conf_err(p, at, "%s: needs direct or tunnel", p->path);
	else if (seen == 3)
		conf_err(p, at, "%s: takes one of direct or tunnel, not both",
		    p->path);
}

/* ---- services: host ---- */

static void
h_host_address(struct cparse *p, yaml_node_t *n, const struct key *k,
    void *obj)
{
	struct service *s = obj;

	if (n->type == YAML_SCALAR_NODE &&
	    strcmp((const char *)n->data.scalar.value, "original") == 0)
		s->host_original = 1;
	else
		conf_endpoint(p, n, 0, "ADDR:PORT or original",
		    &s->host_address);
}

static void
h_allowed(struct cparse *p, yaml_node_t *n, const struct key *k, void *obj)
{
	struct service *s = obj;

	svc_nodes(p)->allowed = n;
	conf_cidr_list(p, n, &s->allowed, &s->nallowed);
}

/* Certificate CNs: printable, no blanks, as `sluice pki issue` makes them. */
static int
valid_identity(const char *s)
{
	size_t i;

	for (i = 0; s[i] != '\0'; i++)
		if (s[i] <= ' ' || s[i] == 0x7f)
			return 0;
	return i > 0 && i <= NAME_MAX_LEN;
}

static int
allow_item(struct cparse *p, yaml_node_t *n, void *slot)
{
	const char *expect = "an identity name or glob", *v;
	char **name = slot;

	if ((v = conf_scalar(p, n, expect)) == NULL)
		return -1;
	if (!valid_identity(v)) {
		conf_bad_value(p, n, expect, "1 to 64 printable characters, "
		    "no blanks");
		return -1;
	}
	return (*name = conf_strdup(p, v)) != NULL ? 0 : -1;
}

static void
h_allow(struct cparse *p, yaml_node_t *n, const struct key *k, void *obj)
{
	struct service *s = obj;

	conf_list_parse(p, n, 1, (void **)&s->allow, &s->nallow,
	    sizeof(*s->allow), allow_item);
}

static int
empty_list(const yaml_node_t *n)
{
	return conf_is_null(n) || (n->type == YAML_SEQUENCE_NODE &&
	    n->data.sequence.items.top == n->data.sequence.items.start);
}

/* "original" is bounded by allowed-addresses, so it must not be empty. */
static void
check_svc_host(struct cparse *p, yaml_node_t *n, struct service *s)
{
	yaml_node_t *allowed = svc_nodes(p)->allowed;

	if (s->host_original && allowed == NULL)
		conf_err(p, conf_here(p, n), "missing %s.allowed-addresses "
		    "(address original needs it)", p->path);
	else if (s->host_original && empty_list(allowed))
		conf_err(p, allowed, "%s.allowed-addresses: must not be "
		    "empty with address original", p->path);
	else if (!s->host_original && s->host_address.len != 0 &&
	    allowed != NULL)
		conf_err(p, allowed, "%s.allowed-addresses: only used with "
		    "address original", p->path);
}

static void
h_svc_host(struct cparse *p, yaml_node_t *n, const struct key *k, void *obj)
{
	static const struct key keys[] = {
		{ "address", h_host_address, 0, 0, 0, K_REQUIRED },
		{ "allowed-addresses", h_allowed, 0, 0, 0, 0 },
		{ "allow", h_allow, 0, 0, 0, K_REQUIRED },
		{ NULL, NULL, 0, 0, 0, 0 }
	};
	struct service *s = obj;

	svc_nodes(p)->host = conf_here(p, n);
	if (conf_walk(p, n, keys, s) == -1)
		return;
	s->has_host = 1;
	check_svc_host(p, n, s);
}

/* ---- services ---- */

static void
h_ignore(struct cparse *p, yaml_node_t *n, const struct key *k, void *obj)
{
}

static int
valid_svc_name(const char *s)
{
	size_t len = strlen(s);

	return len >= 1 && len <= NAME_MAX_LEN && strspn(s,
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	    "0123456789._-") == len;
}

/* Read ahead of the other keys so that their messages can name it. */
static void
svc_name(struct cparse *p, yaml_node_t *map, struct service *s)
{
	const char *expect = "a name of 1 to 64 letters, digits, '.', '_' "
	    "or '-'", *v;
	yaml_node_pair_t *pair;
	yaml_node_t *k, *n;

	for (pair = map->data.mapping.pairs.start;
	    pair < map->data.mapping.pairs.top; pair++) {
		k = conf_node(p, pair->key);
		if (k == NULL || k->type != YAML_SCALAR_NODE ||
		    k->data.scalar.length != 4 ||
		    memcmp(k->data.scalar.value, "name", 4) != 0 ||
		    (n = conf_node(p, pair->value)) == NULL)
			continue;
		snprintf(p->path, sizeof(p->path), "services[#%u].name", s->id);
		p->nodes[s->id - 1].name = n;
		if ((v = conf_scalar(p, n, expect)) == NULL)
			return;
		if (!valid_svc_name(v))
			conf_bad_value(p, n, expect, NULL);
		else
			s->name = conf_strdup(p, v);
		return;
	}
}

static void
check_service(struct cparse *p, struct service *s)
{
	struct svc_nodes *sn = svc_nodes(p);

	if (sn->intercept == NULL && sn->forward == NULL && sn->host == NULL)
		conf_err(p, sn->map, "%s: needs an intercept, forward or "
		    "host section", p->path);
	if (sn->intercept != NULL && sn->forward == NULL)
		conf_err(p, sn->intercept, "%s.intercept: needs a forward "
		    "section", p->path);
	/* A forward alone serves `sluice proxy`, which has no original. */
	if (sn->forward != NULL && sn->intercept == NULL &&
	    s->fwd == FWD_ORIGINAL)
		conf_err(p, sn->forward, "%s.forward: original needs an "
		    "intercept section", p->path);
}

static struct service *
svc_new(struct cparse *p, yaml_node_t *n)
{
	struct svc_nodes *sn;
	struct service *s;
	size_t cap;

	if (p->conf->nservices == p->nodes_cap) {
		cap = p->nodes_cap ? p->nodes_cap * 2 : 8;
		if ((sn = reallocarray(p->nodes, cap, sizeof(*sn))) == NULL) {
			conf_nomem(p);
			return NULL;
		}
		p->nodes = sn;
		p->nodes_cap = cap;
	}
	if ((s = conf_calloc(p, 1, sizeof(*s))) == NULL)
		return NULL;
	s->id = (unsigned)++p->conf->nservices;
	s->line = (int)n->start_mark.line + 1;
	TAILQ_INSERT_TAIL(&p->conf->services, s, entry);
	sn = &p->nodes[s->id - 1];
	memset(sn, 0, sizeof(*sn));
	sn->map = n;
	return s;
}

/* "services[web]", or by position until it has a valid name. */
static void
svc_path(struct cparse *p, const struct service *s, const char *rest)
{
	if (s->name != NULL)
		snprintf(p->path, sizeof(p->path), "services[%s]%s", s->name,
		    rest);
	else
		snprintf(p->path, sizeof(p->path), "services[#%u]%s", s->id,
		    rest);
}

static void
parse_service(struct cparse *p, yaml_node_t *n)
{
	static const struct key keys[] = {
		{ "name", h_ignore, 0, 0, 0, K_REQUIRED },
		{ "intercept", h_svc_intercept, 0, 0, 0, 0 },
		{ "forward", h_svc_forward, 0, 0, 0, 0 },
		{ "host", h_svc_host, 0, 0, 0, 0 },
		{ NULL, NULL, 0, 0, 0, 0 }
	};
	struct service *s;

	if (n->type != YAML_MAPPING_NODE) {
		conf_bad_value(p, n, "a mapping for each service", NULL);
		return;
	}
	if ((s = svc_new(p, n)) == NULL)
		return;
	p->svc = s;
	p->key = NULL;
	svc_name(p, n, s);
	svc_path(p, s, "");
	conf_walk(p, n, keys, s);
	check_service(p, s);
	p->svc = NULL;
	snprintf(p->path, sizeof(p->path), "services");
}

static void
h_services(struct cparse *p, yaml_node_t *n, const struct key *k,
    void *obj)
{
	struct list l;
	yaml_node_t *it;
	size_t i;

	if (conf_list_open(p, n, &l) == -1)
		return;
	for (i = 0; i < l.n && (it = conf_list_item(p, &l, i)) != NULL; i++)
		parse_service(p, it);
}

/* ---- checks across the whole file ---- */

static int
svc_name_cmp(const void *a, const void *b)
{
	const struct service *x = *(struct service *const *)a;
	const struct service *y = *(struct service *const *)b;
	int c;

	if ((c = strcmp(x->name, y->name)) != 0)
		return c;
	return x->id < y->id ? -1 : 1;
}

/* Sorted rather than compared pairwise: configs may hold thousands. */
static void
check_duplicate_names(struct cparse *p)
{
	struct service **v, *s;
	size_t n = 0, i;

	if (p->conf->nservices < 2 ||
	    (v = conf_calloc(p, p->conf->nservices, sizeof(*v))) == NULL)
		return;
	TAILQ_FOREACH(s, &p->conf->services, entry)
		if (s->name != NULL)
			v[n++] = s;
	qsort(v, n, sizeof(*v), svc_name_cmp);
	for (i = 1; i < n; i++) {
		if (strcmp(v[i]->name, v[i - 1]->name) != 0)
			continue;
		/* v[i - 1] is the first of a run: sorted by id within it. */
		s = v[i - 1];
		while (i < n && strcmp(v[i]->name, s->name) == 0) {
			conf_err(p, p->nodes[v[i]->id - 1].name,
			    "duplicate service name '%s' (first at line %d)",
			    s->name, s->line);
			i++;
		}
	}
	free(v);
}

static void
check_tunnels(struct cparse *p)
{
	struct service *s;
	yaml_node_t *n;

	if (p->conf->has_identity)
		return;
	TAILQ_FOREACH(s, &p->conf->services, entry) {
		if ((n = p->nodes[s->id - 1].tunnel) == NULL)
			continue;
		svc_path(p, s, ".forward.tunnel");
		conf_err(p, n, "%s: needs an identity section (cert, key, ca)",
		    p->path);
	}
}

static void
load_root(struct cparse *p, yaml_node_t *root)
{
	static const struct key keys[] = {
		{ "identity", h_identity, 0, 0, 0, 0 },
		{ "intercept", h_intercept, 0, 0, 0, 0 },
		{ "dns", h_dns, 0, 0, 0, 0 },
		{ "host", h_host, 0, 0, 0, 0 },
		{ "services", h_services, 0, 0, 0, 0 },
		{ NULL, NULL, 0, 0, 0, 0 }
	};
	char buf[SHOW_BUFSZ + 2];

	if (conf_is_null(root))
		return;		/* empty file: all defaults */
	if (root->type != YAML_MAPPING_NODE) {
		conf_err(p, root, "expected a mapping at top level, got %s",
		    conf_describe(root, buf));
		return;
	}
	conf_walk(p, root, keys, p->conf);
	if (p->overflow)
		return;
	check_duplicate_names(p);
	check_tunnels(p);
}

/* ---- the configuration object ---- */

static struct config *
conf_new(const char *name)
{
	struct config *c;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	TAILQ_INIT(&c->services);
	if ((c->path = strdup(name)) == NULL ||
	    (c->dns_resolver = strdup("auto")) == NULL) {
		conf_free(c);
		return NULL;
	}
	c->backend = NF_BACKEND_AUTO;
	addr_parse_endpoint("127.0.0.1:0", &c->listen.ss, &c->listen.len, 1,
	    NULL);
	c->mark = 0x1;
	c->bypass_mark = 0x2;
	c->route_table = 100;
	c->udp_idle_timeout = 30;
	c->udp_max_flows = 8192;
	c->connect_timeout = 5;
	c->idle_timeout = 3600;
	c->host_idle_timeout = 3600;
	addr_parse_endpoint("127.0.0.1:53", &c->dns_listen.ss,
	    &c->dns_listen.len, 0, NULL);
	addr_parse_cidr("169.254.0.0/16", &c->dns_range, NULL);
	c->dns_hostnames = DNS_HOSTNAMES_POOL;
	c->dns_unknown = DNS_UNKNOWN_REFUSED;
	c->dns_ttl = 60;
	c->dns_self_test = 1;
	addr_parse_endpoint("0.0.0.0:4433", &c->host_listen.ss,
	    &c->host_listen.len, 0, NULL);
	return c;
}

static void
service_free(struct service *s)
{
	size_t i;

	for (i = 0; i < s->nallow; i++)
		free(s->allow[i]);
	free(s->allow);
	free(s->allowed);
	free(s->tunnel);
	free(s->sources);
	free(s->ports);
	free(s->addrs);
	free(s->name);
	free(s);
}

void
conf_free(struct config *c)
{
	struct service *s;

	if (c == NULL)
		return;
	while ((s = TAILQ_FIRST(&c->services)) != NULL) {
		TAILQ_REMOVE(&c->services, s, entry);
		service_free(s);
	}
	free(c->dns_upstream);
	free(c->dns_resolver);
	free(c->id_cert);
	free(c->id_key);
	free(c->id_ca);
	free(c->path);
	free(c);
}

struct service *
conf_service_by_name(const struct config *c, const char *name)
{
	struct service *s;

	TAILQ_FOREACH(s, &c->services, entry)
		if (s->name != NULL && strcmp(s->name, name) == 0)
			return s;
	return NULL;
}

struct config *
conf_load_string(const char *name, const char *text, size_t len,
    FILE *errfp)
{
	struct cparse p;

	memset(&p, 0, sizeof(p));
	p.name = name;
	p.text = text;
	p.len = len;
	p.errfp = errfp;
	p.root = load_root;
	if ((p.conf = conf_new(name)) == NULL) {
		if (errfp != NULL)
			fprintf(errfp, "%s: out of memory\n", name);
		return NULL;
	}
	conf_yaml_parse(&p);
	conf_err_flush(&p);
	free(p.nodes);
	if (p.nerrors > 0) {
		conf_free(p.conf);
		return NULL;
	}
	return p.conf;
}

struct config *
conf_load(const char *path, FILE *errfp)
{
	struct config *c;
	const char *why;
	size_t len = 0;
	char *text;

	if ((text = conf_read_file(path, &len, &why)) == NULL) {
		if (errfp != NULL)
			fprintf(errfp, "%s: cannot read: %s\n", path,
			    why != NULL ? why : strerror(errno));
		return NULL;
	}
	c = conf_load_string(path, text, len, errfp);
	free(text);
	return c;
}
