/* SPDX-License-Identifier: MIT */
/* The main thread's table of addresses intercepted for names (pool and real). */
#include "config.h"

#include <sys/queue.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "sluice.h"
#include "nf.h"

#define ICPT_BUCKETS	1024

/*
 * One address intercepted for one name. Services are kept by name, not
 * pointer: a reload replaces the config they live in.
 */
struct icpt {
	TAILQ_ENTRY(icpt)	 entry;		/* in order of installation */
	struct icpt		*next;		/* hash chain, by address */
	char			 name[256];
	char			 service[65];
	struct cidr		 addr;
	int			 pool;
	int			 listed;	/* self-test: hosts file only */
	int			 fresh;		/* ICPT_NEW, ICPT_MOVED: uncommitted */
	char			 was[65];	/* ICPT_MOVED: the service before */
};

enum { ICPT_SETTLED, ICPT_NEW, ICPT_MOVED };

struct intercepts {
	TAILQ_HEAD(, icpt)	 all;
	size_t			 n;
	struct icpt		*buckets[ICPT_BUCKETS];
};

static size_t
icpt_hash(const struct cidr *c)
{
	size_t i, len = c->family == AF_INET ? 4 : 16;
	uint32_t h = 2166136261u;

	for (i = 0; i < len; i++)
		h = (h ^ c->addr[i]) * 16777619u;
	return h % ICPT_BUCKETS;
}

static int
icpt_same_addr(const struct cidr *a, const struct cidr *b)
{
	return a->family == b->family && memcmp(a->addr, b->addr,
	    a->family == AF_INET ? 4 : 16) == 0;
}

struct intercepts *
intercept_new(void)
{
	struct intercepts *ic;

	if ((ic = calloc(1, sizeof(*ic))) == NULL)
		return NULL;
	TAILQ_INIT(&ic->all);
	return ic;
}

void
intercept_free(struct intercepts *ic)
{
	struct icpt *e;

	if (ic == NULL)
		return;
	while ((e = TAILQ_FIRST(&ic->all)) != NULL) {
		TAILQ_REMOVE(&ic->all, e, entry);
		free(e);
	}
	free(ic);
}

static struct icpt *
icpt_find(const struct intercepts *ic, const char *name,
    const struct cidr *addr)
{
	struct icpt *e;

	for (e = ic->buckets[icpt_hash(addr)]; e != NULL; e = e->next)
		if (icpt_same_addr(&e->addr, addr) &&
		    strcmp(e->name, name) == 0)
			return e;
	return NULL;
}

int
intercept_add(struct intercepts *ic, const char *name, const char *service,
    const struct cidr *addr, int pool, int listed)
{
	struct icpt *e;
	size_t h;

	if (strlen(name) >= sizeof(e->name) ||
	    strlen(service) >= sizeof(e->service))
		return -1;
	if ((e = icpt_find(ic, name, addr)) != NULL) {
		if (strcmp(e->service, service) == 0 && e->pool == pool &&
		    e->listed == listed)
			return 0;
		if (e->fresh == ICPT_SETTLED) {
			strcpy(e->was, e->service);
			e->fresh = ICPT_MOVED;
		}
		strcpy(e->service, service);
		e->pool = pool;
		e->listed = listed;
		return 1;
	}
	if ((e = calloc(1, sizeof(*e))) == NULL)
		return -1;
	strcpy(e->name, name);
	strcpy(e->service, service);
	e->addr = *addr;
	e->pool = pool;
	e->listed = listed;
	e->fresh = ICPT_NEW;
	h = icpt_hash(addr);
	e->next = ic->buckets[h];
	ic->buckets[h] = e;
	TAILQ_INSERT_TAIL(&ic->all, e, entry);
	ic->n++;
	return 1;
}

int
intercept_del(struct intercepts *ic, const char *name, const struct cidr *addr)
{
	struct icpt **pp, *e;
	int listed;

	for (pp = &ic->buckets[icpt_hash(addr)]; (e = *pp) != NULL;
	    pp = &e->next) {
		if (!icpt_same_addr(&e->addr, addr) ||
		    strcmp(e->name, name) != 0)
			continue;
		*pp = e->next;
		TAILQ_REMOVE(&ic->all, e, entry);
		ic->n--;
		listed = e->listed;
		free(e);
		return listed ? 2 : 1;
	}
	return 0;
}

/* The batch's changes are installed: they stay. */
void
intercept_settle(struct intercepts *ic)
{
	struct icpt *e;

	TAILQ_FOREACH(e, &ic->all, entry)
		e->fresh = ICPT_SETTLED;
}

/*
 * The batch's changes could not be installed: new entries go (undo is
 * told of each, to remove its route), moved ones get their service back.
 */
void
intercept_rollback(struct intercepts *ic, void (*undo)(const struct cidr *,
    int pool))
{
	struct icpt *e, *next;

	for (e = TAILQ_FIRST(&ic->all); e != NULL; e = next) {
		next = TAILQ_NEXT(e, entry);
		if (e->fresh == ICPT_MOVED)
			strcpy(e->service, e->was);
		else if (e->fresh == ICPT_NEW) {
			undo(&e->addr, e->pool);
			intercept_del(ic, e->name, &e->addr);
			continue;
		}
		e->fresh = ICPT_SETTLED;
	}
}

/*
 * The service a flow to a name's address belongs to. Several names may
 * share a real address: the first whose service takes this port and
 * client wins, as svc_match() does for configured addresses.
 */
struct service *
intercept_match(const struct intercepts *ic, const struct config *conf,
    int proto, const struct sockaddr *dst, const struct sockaddr *src)
{
	struct service *svc;
	struct icpt *e;
	struct cidr c;

	if (ic == NULL || dst == NULL)
		return NULL;
	cidr_from_sockaddr(&c, dst);
	for (e = ic->buckets[icpt_hash(&c)]; e != NULL; e = e->next) {
		if (e->listed || !icpt_same_addr(&e->addr, &c))
			continue;
		svc = conf_service_by_name(conf, e->service);
		if (svc != NULL && svc->has_intercept &&
		    (svc->protocols & proto) &&
		    svc_port_match(svc, addr_port(dst)) &&
		    svc_source_match(svc, src))
			return svc;
	}
	return NULL;
}

/*
 * Another name has e's address for the same service (real addresses can
 * be shared): of those, only the one at the lowest address in memory
 * counts, which costs one hash chain rather than the whole table.
 */
static int
icpt_dup(const struct intercepts *ic, const struct icpt *e)
{
	const struct icpt *o;

	for (o = ic->buckets[icpt_hash(&e->addr)]; o != NULL; o = o->next)
		if (o != e && !o->listed && o < e &&
		    icpt_same_addr(&o->addr, &e->addr) &&
		    strcmp(o->service, e->service) == 0)
			return 1;
	return 0;
}

/* Each (service, address) once, services as conf has them. */
int
intercept_extras(const struct intercepts *ic, const struct config *conf,
    struct nf_extra **out, size_t *nout)
{
	struct nf_extra *v;
	const struct service *svc;
	struct icpt *e;
	size_t n = 0;

	*out = NULL;
	*nout = 0;
	if (ic == NULL || ic->n == 0)
		return 0;
	if ((v = calloc(ic->n, sizeof(*v))) == NULL)
		return -1;
	TAILQ_FOREACH(e, &ic->all, entry) {
		if (e->listed || icpt_dup(ic, e) ||
		    (svc = conf_service_by_name(conf, e->service)) == NULL)
			continue;
		v[n].svc = svc;
		v[n].addr = e->addr;
		n++;
	}
	*out = v;
	*nout = n;
	return 0;
}

void
intercept_foreach(const struct intercepts *ic, void (*cb)(void *,
    const char *, const struct cidr *), void *arg)
{
	struct icpt *e;

	if (ic == NULL)
		return;
	TAILQ_FOREACH(e, &ic->all, entry)
		cb(arg, e->name, &e->addr);
}

size_t
intercept_count(const struct intercepts *ic)
{
	return ic != NULL ? ic->n : 0;
}

void
intercept_dump(const struct intercepts *ic, FILE *fp)
{
	char buf[INET6_ADDRSTRLEN];
	struct icpt *e;

	fprintf(fp, "\nnames (%zu):\n", intercept_count(ic));
	if (ic == NULL)
		return;
	TAILQ_FOREACH(e, &ic->all, entry)
		fprintf(fp, "  %s %s %s (%s)\n", e->name,
		    inet_ntop(e->addr.family, e->addr.addr, buf, sizeof(buf)),
		    e->listed ? "-" : e->service, e->listed ? "self-test" :
		    e->pool ? "pool" : "real");
}
