/* SPDX-License-Identifier: MIT */
/* Backend selection, expansion of the configuration into rules, cleanup. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "nf.h"

struct nf_vec {
	struct nf_rule	*v;
	size_t		 n, cap;
};

static const struct {
	int	bit;
	uint8_t	proto;
} nf_protos[] = {
	{ PROTO_TCP, IPPROTO_TCP },
	{ PROTO_UDP, IPPROTO_UDP },
};

static const struct nf_ops *
nf_try(const struct nf_ops *ops)
{
	if (ops->probe() == 0)
		return ops;
	log_warnx("%s: the %s backend cannot work here (-v 4 says why)",
	    __func__, ops->name);
	return NULL;
}

const struct nf_ops *
nf_select(enum nf_backend_kind kind)
{
	switch (kind) {
	case NF_BACKEND_IPTABLES:
		return nf_try(&nf_ipt_ops);
	case NF_BACKEND_NFTABLES:
		return nf_try(&nf_nft_ops);
	case NF_BACKEND_AUTO:
		if (nf_nft_ops.probe() == 0)
			return &nf_nft_ops;
		if (nf_ipt_ops.probe() == 0)
			return &nf_ipt_ops;
		log_warnx("%s: neither nftables nor iptables can work here "
		    "(-v 4 says why)", __func__);
		return NULL;
	}
	log_warnx("%s: unknown backend %d", __func__, (int)kind);
	return NULL;
}

static int
nf_push(struct nf_vec *vec, const struct nf_rule *r)
{
	struct nf_rule *v;
	size_t cap;

	if (vec->n == vec->cap) {
		cap = vec->cap != 0 ? vec->cap * 2 : 16;
		if ((v = reallocarray(vec->v, cap, sizeof(*v))) == NULL) {
			log_warn("%s: %zu rules", __func__, cap);
			return -1;
		}
		vec->v = v;
		vec->cap = cap;
	}
	vec->v[vec->n++] = *r;
	return 0;
}

/* One rule per source of svc, or one for any source. */
static int
nf_push_sources(struct nf_vec *vec, const struct service *svc,
    struct nf_rule *r)
{
	size_t i;

	if (svc->nsources == 0)
		return nf_push(vec, r);
	for (i = 0; i < svc->nsources; i++) {
		/* A v4 client never reaches a v6 destination, and back. */
		if (svc->sources[i].family != r->family)
			continue;
		r->src = svc->sources[i];
		if (nf_push(vec, r) == -1)
			return -1;
	}
	return 0;
}

/* Every protocol, port range and source of svc, for destination dst. */
static int
nf_expand(struct nf_vec *vec, const struct service *svc,
    const struct cidr *dst)
{
	struct nf_rule r;
	size_t i, j;

	memset(&r, 0, sizeof(r));
	r.comment = svc->name;
	r.family = dst->family;
	r.dst = *dst;
	for (i = 0; i < sizeof(nf_protos) / sizeof(nf_protos[0]); i++) {
		if ((svc->protocols & nf_protos[i].bit) == 0)
			continue;
		r.proto = nf_protos[i].proto;
		for (j = 0; j < svc->nports; j++) {
			r.port_lo = svc->ports[j].lo;
			r.port_hi = svc->ports[j].hi;
			if (nf_push_sources(vec, svc, &r) == -1)
				return -1;
		}
	}
	return 0;
}

static int
nf_expand_service(struct nf_vec *vec, const struct service *svc)
{
	size_t i;

	if (!svc->has_intercept)
		return 0;
	for (i = 0; i < svc->naddrs; i++) {
		if (!svc->addrs[i].is_name &&
		    nf_expand(vec, svc, &svc->addrs[i].cidr) == -1)
			return -1;
	}
	return 0;
}

/* The rules' comments point at the services' names in conf. */
int
nf_rules_build(const struct config *conf, const struct nf_extra *extra,
    size_t nextra, struct nf_rule **out, size_t *nout)
{
	struct nf_vec vec = { NULL, 0, 0 };
	const struct service *svc;
	size_t i;

	*out = NULL;
	*nout = 0;
	TAILQ_FOREACH(svc, &conf->services, entry) {
		if (nf_expand_service(&vec, svc) == -1)
			goto fail;
	}
	for (i = 0; i < nextra; i++) {
		if (extra[i].svc != NULL &&
		    nf_expand(&vec, extra[i].svc, &extra[i].addr) == -1)
			goto fail;
	}
	*out = vec.v;
	*nout = vec.n;
	return 0;
 fail:
	free(vec.v);
	return -1;
}

int
nf_cleanup_all(uint32_t route_table)
{
	int rv = 0;

	if (nf_ipt_ops.flush() == -1)
		rv = -1;
	if (nf_nft_ops.flush() == -1)
		rv = -1;
	if (rt_cleanup(route_table) == -1)
		rv = -1;
	return rv;
}
