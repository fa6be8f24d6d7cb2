/* SPDX-License-Identifier: MIT */
/* iptables backend: TPROXY and mark rules in mangle chains via libiptc. */
#include "config.h"

#include <sys/file.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libiptc/libiptc.h>
#include <libiptc/libip6tc.h>
#include <linux/netfilter/xt_TPROXY.h>
#include <linux/netfilter/xt_comment.h>
#include <linux/netfilter/xt_mark.h>
#include <linux/netfilter/xt_tcpudp.h>

#include "log.h"
#include "nf.h"

#define IPT_TABLE	"mangle"
#define IPT_LOCK	"/run/xtables.lock"	/* iptables(8)'s default */
#define IPT_LOCK_TRIES	50			/* of 100 ms each */
#define IPT_BLOB_MAX	1024

/* What dump and the jump finder need from an entry of either family. */
struct ipt_view {
	uint16_t		 proto;
	struct cidr		 dst, src;
	const unsigned char	*matches, *target;
	uint64_t		 pcnt, bcnt;
};

/*
 * libiptc and libip6tc are the same code compiled twice with different
 * entry types; this table lets the rest of the file be written once.
 */
struct ipt_fam {
	int		 family;
	const char	*name;
	const char	*names_file;	/* tables instantiated in this netns */
	struct xtc_handle *(*init)(const char *);
	void		 (*free)(struct xtc_handle *);
	int		 (*commit)(struct xtc_handle *);
	const char	*(*strerror)(int);
	int		 (*is_chain)(const char *, struct xtc_handle *const);
	int		 (*create_chain)(const char *, struct xtc_handle *);
	int		 (*flush_chain)(const char *, struct xtc_handle *);
	int		 (*delete_chain)(const char *, struct xtc_handle *);
	int		 (*delete_num)(const char *, unsigned int,
			    struct xtc_handle *);
	int		 (*insert)(const char *, const void *, unsigned int,
			    struct xtc_handle *);
	int		 (*append)(const char *, const void *,
			    struct xtc_handle *);
	const void	*(*first)(const char *, struct xtc_handle *);
	const void	*(*next)(const void *, struct xtc_handle *);
	const char	*(*target)(const void *, struct xtc_handle *);
	size_t		 hdrlen;
	void		 (*fill)(void *, const struct nf_rule *);
	void		 (*set_offsets)(void *, uint16_t, uint16_t);
	void		 (*view)(const void *, struct ipt_view *);
};

/* One entry being built: header, matches, target, in kernel layout. */
struct ipt_blob {
	size_t		len;
	size_t		target_off;
	union {
		struct ipt_entry	e4;
		struct ip6t_entry	e6;
		unsigned char		b[IPT_BLOB_MAX];
	} u;
};

/* ---- addresses ---- */

static void
ipt_mask(uint8_t *addr, uint8_t *mask, const struct cidr *c, size_t len)
{
	size_t i;
	unsigned bits = c->prefixlen;

	for (i = 0; i < len; i++) {
		if (bits >= 8)
			mask[i] = 0xff;
		else
			mask[i] = (uint8_t)(0xff00 >> bits);
		bits = bits >= 8 ? bits - 8 : 0;
		addr[i] = c->addr[i] & mask[i];
	}
}

/* The inverse of ipt_mask; a zero mask means "any" (family 0). */
static void
ipt_unmask(struct cidr *c, int family, const void *addr, const void *mask,
    size_t len)
{
	const uint8_t *m = mask;
	size_t i;
	unsigned bits = 0;

	memset(c, 0, sizeof(*c));
	for (i = 0; i < len; i++)
		bits += (unsigned)__builtin_popcount(m[i]);
	if (bits == 0)
		return;
	c->family = family;
	c->prefixlen = (uint8_t)bits;
	memcpy(c->addr, addr, len);
}

static const char *
ipt_proto_str(uint16_t proto)
{
	switch (proto) {
	case IPPROTO_TCP:
		return "tcp";
	case IPPROTO_UDP:
		return "udp";
	case 0:
		return "all";
	default:
		return "?";
	}
}

/* "demo tcp 10.9.0.5/32 dport 80", for error messages. */
static const char *
ipt_rule_str(const struct nf_rule *r, char *buf, size_t len)
{
	char dst[ADDR_STRLEN];

	snprintf(buf, len, "%s %s %s dport %u-%u", r->comment ?
	    r->comment : "-", ipt_proto_str(r->proto),
	    cidr_str(&r->dst, dst, sizeof(dst)), r->port_lo, r->port_hi);
	return buf;
}

/* ---- IPv4 ---- */

static int
ipt4_insert(const char *chain, const void *e, unsigned int n,
    struct xtc_handle *h)
{
	return iptc_insert_entry(chain, e, n, h);
}

static int
ipt4_append(const char *chain, const void *e, struct xtc_handle *h)
{
	return iptc_append_entry(chain, e, h);
}

static const void *
ipt4_first(const char *chain, struct xtc_handle *h)
{
	return iptc_first_rule(chain, h);
}

static const void *
ipt4_next(const void *e, struct xtc_handle *h)
{
	return iptc_next_rule(e, h);
}

static const char *
ipt4_target(const void *e, struct xtc_handle *h)
{
	return iptc_get_target(e, h);
}

static void
ipt4_fill(void *p, const struct nf_rule *r)
{
	struct ipt_entry *e = p;

	e->ip.proto = r->proto;
	ipt_mask((uint8_t *)&e->ip.dst, (uint8_t *)&e->ip.dmsk, &r->dst, 4);
	if (r->src.family != 0)
		ipt_mask((uint8_t *)&e->ip.src, (uint8_t *)&e->ip.smsk,
		    &r->src, 4);
}

static void
ipt4_set_offsets(void *p, uint16_t target, uint16_t next)
{
	struct ipt_entry *e = p;

	e->target_offset = target;
	e->next_offset = next;
}

static void
ipt4_view(const void *p, struct ipt_view *v)
{
	const struct ipt_entry *e = p;

	v->proto = e->ip.proto;
	ipt_unmask(&v->dst, AF_INET, &e->ip.dst, &e->ip.dmsk, 4);
	ipt_unmask(&v->src, AF_INET, &e->ip.src, &e->ip.smsk, 4);
	v->matches = e->elems;
	v->target = (const unsigned char *)e + e->target_offset;
	v->pcnt = e->counters.pcnt;
	v->bcnt = e->counters.bcnt;
}

static const struct ipt_fam ipt_fam4 = {
	.family = AF_INET,
	.name = "ipv4",
	.names_file = "/proc/net/ip_tables_names",
	.init = iptc_init,
	.free = iptc_free,
	.commit = iptc_commit,
	.strerror = iptc_strerror,
	.is_chain = iptc_is_chain,
	.create_chain = iptc_create_chain,
	.flush_chain = iptc_flush_entries,
	.delete_chain = iptc_delete_chain,
	.delete_num = iptc_delete_num_entry,
	.insert = ipt4_insert,
	.append = ipt4_append,
	.first = ipt4_first,
	.next = ipt4_next,
	.target = ipt4_target,
	.hdrlen = sizeof(struct ipt_entry),
	.fill = ipt4_fill,
	.set_offsets = ipt4_set_offsets,
	.view = ipt4_view,
};

/* ---- IPv6 ---- */

static int
ipt6_insert(const char *chain, const void *e, unsigned int n,
    struct xtc_handle *h)
{
	return ip6tc_insert_entry(chain, e, n, h);
}

static int
ipt6_append(const char *chain, const void *e, struct xtc_handle *h)
{
	return ip6tc_append_entry(chain, e, h);
}

static const void *
ipt6_first(const char *chain, struct xtc_handle *h)
{
	return ip6tc_first_rule(chain, h);
}

static const void *
ipt6_next(const void *e, struct xtc_handle *h)
{
	return ip6tc_next_rule(e, h);
}

static const char *
ipt6_target(const void *e, struct xtc_handle *h)
{
	return ip6tc_get_target(e, h);
}

static void
ipt6_fill(void *p, const struct nf_rule *r)
{
	struct ip6t_entry *e = p;

	/* Unlike IPv4, the kernel only looks at proto with this flag. */
	e->ipv6.proto = r->proto;
	e->ipv6.flags |= IP6T_F_PROTO;
	ipt_mask((uint8_t *)&e->ipv6.dst, (uint8_t *)&e->ipv6.dmsk, &r->dst,
	    16);
	if (r->src.family != 0)
		ipt_mask((uint8_t *)&e->ipv6.src, (uint8_t *)&e->ipv6.smsk,
		    &r->src, 16);
}

static void
ipt6_set_offsets(void *p, uint16_t target, uint16_t next)
{
	struct ip6t_entry *e = p;

	e->target_offset = target;
	e->next_offset = next;
}

static void
ipt6_view(const void *p, struct ipt_view *v)
{
	const struct ip6t_entry *e = p;

	v->proto = e->ipv6.proto;
	ipt_unmask(&v->dst, AF_INET6, &e->ipv6.dst, &e->ipv6.dmsk, 16);
	ipt_unmask(&v->src, AF_INET6, &e->ipv6.src, &e->ipv6.smsk, 16);
	v->matches = e->elems;
	v->target = (const unsigned char *)e + e->target_offset;
	v->pcnt = e->counters.pcnt;
	v->bcnt = e->counters.bcnt;
}

static const struct ipt_fam ipt_fam6 = {
	.family = AF_INET6,
	.name = "ipv6",
	.names_file = "/proc/net/ip6_tables_names",
	.init = ip6tc_init,
	.free = ip6tc_free,
	.commit = ip6tc_commit,
	.strerror = ip6tc_strerror,
	.is_chain = ip6tc_is_chain,
	.create_chain = ip6tc_create_chain,
	.flush_chain = ip6tc_flush_entries,
	.delete_chain = ip6tc_delete_chain,
	.delete_num = ip6tc_delete_num_entry,
	.insert = ipt6_insert,
	.append = ipt6_append,
	.first = ipt6_first,
	.next = ipt6_next,
	.target = ipt6_target,
	.hdrlen = sizeof(struct ip6t_entry),
	.fill = ipt6_fill,
	.set_offsets = ipt6_set_offsets,
	.view = ipt6_view,
};

static const struct ipt_fam *const ipt_fams[] = { &ipt_fam4, &ipt_fam6 };

/* ---- building entries ---- */

static void
blob_init(struct ipt_blob *bl, const struct ipt_fam *f,
    const struct nf_rule *r)
{
	memset(bl, 0, sizeof(*bl));
	bl->len = f->hdrlen;
	if (r != NULL)
		f->fill(bl->u.b, r);
}

/* Reserves room for a match or target of datalen bytes after its header. */
static unsigned char *
blob_reserve(struct ipt_blob *bl, size_t hdrlen, size_t datalen,
    size_t *size)
{
	unsigned char *p = bl->u.b + bl->len;

	*size = XT_ALIGN(hdrlen) + XT_ALIGN(datalen);
	if (bl->len + *size > sizeof(bl->u.b))
		fatalx("%s: entry larger than %d bytes", __func__,
		    IPT_BLOB_MAX);
	bl->len += *size;
	return p;
}

static void *
blob_match(struct ipt_blob *bl, const char *name, uint8_t rev,
    size_t datalen)
{
	struct xt_entry_match *m;
	size_t size;

	m = (struct xt_entry_match *)blob_reserve(bl, sizeof(*m), datalen,
	    &size);
	m->u.user.match_size = (uint16_t)size;
	snprintf(m->u.user.name, sizeof(m->u.user.name), "%s", name);
	m->u.user.revision = rev;
	return m->data;
}

/* A target ends the entry; name may be a chain or "RETURN". */
static void *
blob_target(struct ipt_blob *bl, const struct ipt_fam *f, const char *name,
    uint8_t rev, size_t datalen)
{
	struct xt_entry_target *t;
	size_t size;

	bl->target_off = bl->len;
	t = (struct xt_entry_target *)blob_reserve(bl, sizeof(*t), datalen,
	    &size);
	t->u.user.target_size = (uint16_t)size;
	snprintf(t->u.user.name, sizeof(t->u.user.name), "%s", name);
	t->u.user.revision = rev;
	f->set_offsets(bl->u.b, (uint16_t)bl->target_off, (uint16_t)bl->len);
	return t->data;
}

/* libiptc insists that jumps and verdicts have the standard size. */
static void
blob_jump(struct ipt_blob *bl, const struct ipt_fam *f, const char *to)
{
	blob_target(bl, f, to, 0, sizeof(struct xt_standard_target) -
	    sizeof(struct xt_entry_target));
}

static void
blob_ports(struct ipt_blob *bl, const struct nf_rule *r)
{
	struct xt_tcp *tcp;
	struct xt_udp *udp;

	if (r->proto == IPPROTO_TCP) {
		tcp = blob_match(bl, "tcp", 0, sizeof(*tcp));
		tcp->spts[1] = 0xffff;
		tcp->dpts[0] = r->port_lo;
		tcp->dpts[1] = r->port_hi;
	} else {
		udp = blob_match(bl, "udp", 0, sizeof(*udp));
		udp->spts[1] = 0xffff;
		udp->dpts[0] = r->port_lo;
		udp->dpts[1] = r->port_hi;
	}
}

/* Protocol, ports and the service name: what both chains match on. */
static void
blob_rule_matches(struct ipt_blob *bl, const struct ipt_fam *f,
    const struct nf_rule *r)
{
	struct xt_comment_info *c;

	blob_init(bl, f, r);
	blob_ports(bl, r);
	if (r->comment != NULL && *r->comment != '\0') {
		c = blob_match(bl, "comment", 0, sizeof(*c));
		snprintf(c->comment, sizeof(c->comment), "%s", r->comment);
	}
}

static void
blob_tproxy(struct ipt_blob *bl, const struct ipt_fam *f,
    const struct nf_rule *r, const struct sockaddr *to, uint32_t mark)
{
	const struct sockaddr_in *sin = (const struct sockaddr_in *)to;
	const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)to;
	struct xt_tproxy_target_info_v1 *t;

	blob_rule_matches(bl, f, r);
	t = blob_target(bl, f, "TPROXY", 1, sizeof(*t));
	t->mark_mask = mark;
	t->mark_value = mark;
	if (to->sa_family == AF_INET) {
		t->laddr.in = sin->sin_addr;
		t->lport = sin->sin_port;
	} else {
		t->laddr.in6 = sin6->sin6_addr;
		t->lport = sin6->sin6_port;
	}
}

static void
blob_setmark(struct ipt_blob *bl, const struct ipt_fam *f,
    const struct nf_rule *r, uint32_t mark)
{
	struct xt_mark_tginfo2 *t;

	blob_rule_matches(bl, f, r);
	t = blob_target(bl, f, "MARK", 2, sizeof(*t));
	t->mark = mark;
	t->mask = mark;
}

static void
blob_bypass(struct ipt_blob *bl, const struct ipt_fam *f, uint32_t bypass)
{
	struct xt_mark_mtinfo1 *m;

	blob_init(bl, f, NULL);
	m = blob_match(bl, "mark", 1, sizeof(*m));
	m->mark = bypass;
	m->mask = bypass;
	blob_jump(bl, f, IPTC_LABEL_RETURN);
}

/* ---- the xtables lock ---- */

/*
 * iptables(8) serialises table replacements with this lock. Without it a
 * concurrent iptables command could make our commit fail with EAGAIN.
 * Returns 0 with *fd -1 if the lock file cannot be used at all.
 */
static int
ipt_lock(int *fd)
{
	struct timespec pause = { 0, 100 * 1000 * 1000 };
	const char *path;
	int i;

	if ((path = getenv("XTABLES_LOCKFILE")) == NULL || *path == '\0')
		path = IPT_LOCK;
	if ((*fd = open(path, O_CREAT | O_RDWR | O_CLOEXEC, 0600)) == -1) {
		log_debug("%s: %s: %s; going on without it", __func__, path,
		    strerror(errno));
		return 0;
	}
	for (i = 0; i < IPT_LOCK_TRIES; i++) {
		if (flock(*fd, LOCK_EX | LOCK_NB) == 0)
			return 0;
		if (errno != EWOULDBLOCK && errno != EINTR)
			break;
		nanosleep(&pause, NULL);
	}
	if (errno == EWOULDBLOCK)
		log_warnx("%s: %s: another program holds the xtables lock",
		    __func__, path);
	else
		log_warn("%s: %s: cannot take the xtables lock", __func__,
		    path);
	close(*fd);
	*fd = -1;
	return -1;
}

static void
ipt_unlock(int fd)
{
	if (fd != -1)
		close(fd);
}

/* ---- chains ---- */

/*
 * Whether the mangle table exists in this network namespace. Asking
 * libiptc would create it, which would leave an empty table behind in
 * iptables-save after a flush that had nothing to do.
 */
static int
ipt_table_loaded(const struct ipt_fam *f)
{
	char line[64];
	FILE *fp;
	int found = 0;

	if ((fp = fopen(f->names_file, "r")) == NULL)
		return errno == ENOENT ? 0 : 1;
	while (!found && fgets(line, sizeof(line), fp) != NULL)
		found = strcmp(line, IPT_TABLE "\n") == 0;
	fclose(fp);
	return found;
}

static struct xtc_handle *
ipt_open(const struct ipt_fam *f)
{
	struct xtc_handle *h;

	if ((h = f->init(IPT_TABLE)) == NULL)
		log_warnx("%s: %s: cannot read table %s: %s", __func__,
		    f->name, IPT_TABLE, f->strerror(errno));
	return h;
}

/* Index of the first rule of builtin that jumps to chain, or -1. */
static int
ipt_find_jump(const struct ipt_fam *f, struct xtc_handle *h,
    const char *builtin, const char *chain)
{
	const void *e;
	int i = 0;

	for (e = f->first(builtin, h); e != NULL; e = f->next(e, h), i++) {
		if (strcmp(f->target(e, h), chain) == 0)
			return i;
	}
	return -1;
}

static int
ipt_unjump(const struct ipt_fam *f, struct xtc_handle *h,
    const char *builtin, const char *chain)
{
	int i;

	while ((i = ipt_find_jump(f, h, builtin, chain)) != -1) {
		if (!f->delete_num(builtin, (unsigned)i, h)) {
			log_warnx("%s: %s: delete jump %s -> %s: %s", __func__,
			    f->name, builtin, chain, f->strerror(errno));
			return -1;
		}
	}
	return 0;
}

/* Exactly one jump, first in builtin, so no earlier rule can bypass us. */
static int
ipt_jump(const struct ipt_fam *f, struct xtc_handle *h, const char *builtin,
    const char *chain)
{
	struct ipt_blob bl;

	if (ipt_unjump(f, h, builtin, chain) == -1)
		return -1;
	blob_init(&bl, f, NULL);
	blob_jump(&bl, f, chain);
	if (!f->insert(builtin, bl.u.b, 0, h)) {
		log_warnx("%s: %s: insert jump %s -> %s: %s", __func__,
		    f->name, builtin, chain, f->strerror(errno));
		return -1;
	}
	return 0;
}

static int
ipt_chain_empty(const struct ipt_fam *f, struct xtc_handle *h,
    const char *chain)
{
	if (f->is_chain(chain, h)) {
		if (!f->flush_chain(chain, h)) {
			log_warnx("%s: %s: flush chain %s: %s", __func__,
			    f->name, chain, f->strerror(errno));
			return -1;
		}
	} else if (!f->create_chain(chain, h)) {
		log_warnx("%s: %s: create chain %s: %s", __func__, f->name,
		    chain, f->strerror(errno));
		return -1;
	}
	return 0;
}

static int
ipt_chain_remove(const struct ipt_fam *f, struct xtc_handle *h,
    const char *builtin, const char *chain)
{
	if (!f->is_chain(chain, h))
		return 0;
	if (ipt_unjump(f, h, builtin, chain) == -1)
		return -1;
	if (!f->flush_chain(chain, h)) {
		log_warnx("%s: %s: flush chain %s: %s", __func__, f->name,
		    chain, f->strerror(errno));
		return -1;
	}
	if (!f->delete_chain(chain, h)) {
		log_warnx("%s: %s: delete chain %s: %s", __func__, f->name,
		    chain, errno == EMLINK ? "a rule not ours still jumps to it" :
		    f->strerror(errno));
		return -1;
	}
	return 0;
}

static int
ipt_append(const struct ipt_fam *f, struct xtc_handle *h, const char *chain,
    const struct ipt_blob *bl, const struct nf_rule *r)
{
	char desc[128];

	if (f->append(chain, bl->u.b, h))
		return 0;
	log_warnx("%s: %s: append to %s (%s): %s", __func__, f->name, chain,
	    r != NULL ? ipt_rule_str(r, desc, sizeof(desc)) : "bypass",
	    f->strerror(errno));
	return -1;
}

/* ---- rules ---- */

/* The listener for r's family and protocol, or NULL if there is none. */
static const struct sockaddr *
ipt_listener(const struct nf_params *p, const struct nf_rule *r)
{
	const struct sockaddr_in *sin = NULL;
	const struct sockaddr_in6 *sin6 = NULL;

	if (r->family == AF_INET)
		sin = r->proto == IPPROTO_TCP ? &p->tcp4 : &p->udp4;
	else
		sin6 = r->proto == IPPROTO_TCP ? &p->tcp6 : &p->udp6;
	if (sin != NULL && sin->sin_port != 0)
		return (const struct sockaddr *)sin;
	if (sin6 != NULL && sin6->sin6_port != 0)
		return (const struct sockaddr *)sin6;
	return NULL;
}

/* Whether r belongs to family f and can be installed; says why not. */
static int
ipt_rule_usable(const struct ipt_fam *f, const struct nf_params *p,
    const struct nf_rule *r, int quiet)
{
	char desc[128];

	if (r->family != f->family)
		return 0;
	if ((r->proto != IPPROTO_TCP && r->proto != IPPROTO_UDP) ||
	    r->dst.family != r->family ||
	    (r->src.family != 0 && r->src.family != r->family)) {
		if (!quiet)
			log_warnx("%s: %s: skipping malformed rule %s",
			    __func__, f->name,
			    ipt_rule_str(r, desc, sizeof(desc)));
		return 0;
	}
	if (ipt_listener(p, r) == NULL) {
		if (!quiet)
			log_debug("%s: %s: no %s listener, skipping %s",
			    __func__, f->name, ipt_proto_str(r->proto),
			    ipt_rule_str(r, desc, sizeof(desc)));
		return 0;
	}
	return 1;
}

static int
ipt_add_rule(const struct ipt_fam *f, struct xtc_handle *h,
    const struct nf_params *p, const struct nf_rule *r)
{
	struct ipt_blob bl;

	blob_tproxy(&bl, f, r, ipt_listener(p, r), p->mark);
	if (ipt_append(f, h, NF_CHAIN, &bl, r) == -1)
		return -1;
	blob_setmark(&bl, f, r, p->mark);
	return ipt_append(f, h, NF_CHAIN_OUT, &bl, r);
}

/* Chains and rules into the snapshot h; nothing reaches the kernel yet. */
static int
ipt_fill(const struct ipt_fam *f, struct xtc_handle *h,
    const struct nf_params *p, const struct nf_rule *rules, size_t n)
{
	struct ipt_blob bl;
	size_t i;

	if (ipt_chain_empty(f, h, NF_CHAIN) == -1 ||
	    ipt_chain_empty(f, h, NF_CHAIN_OUT) == -1)
		return -1;
	/* A bypass mark of 0 would match every packet. */
	if (p->bypass_mark != 0) {
		blob_bypass(&bl, f, p->bypass_mark);
		if (ipt_append(f, h, NF_CHAIN_OUT, &bl, NULL) == -1)
			return -1;
	}
	for (i = 0; i < n; i++) {
		if (ipt_rule_usable(f, p, &rules[i], 1) &&
		    ipt_add_rule(f, h, p, &rules[i]) == -1)
			return -1;
	}
	if (ipt_jump(f, h, "PREROUTING", NF_CHAIN) == -1 ||
	    ipt_jump(f, h, "OUTPUT", NF_CHAIN_OUT) == -1)
		return -1;
	return 0;
}

static int
ipt_commit(const struct ipt_fam *f, struct xtc_handle *h, const char *what)
{
	if (f->commit(h))
		return 0;
	log_warnx("%s: %s: commit table %s (%s): %s", __func__, f->name,
	    IPT_TABLE, what, f->strerror(errno));
	return -1;
}

static int
ipt_flush_family(const struct ipt_fam *f)
{
	struct xtc_handle *h;
	int lock, rv = -1;

	if (!ipt_table_loaded(f)) {
		log_debug("%s: %s: no %s table, nothing to remove", __func__,
		    f->name, IPT_TABLE);
		return 0;
	}
	if (ipt_lock(&lock) == -1)
		return -1;
	if ((h = ipt_open(f)) == NULL)
		goto done;
	if (!f->is_chain(NF_CHAIN, h) && !f->is_chain(NF_CHAIN_OUT, h)) {
		rv = 0;
		goto done;
	}
	rv = 0;
	if (ipt_chain_remove(f, h, "PREROUTING", NF_CHAIN) == -1)
		rv = -1;
	if (ipt_chain_remove(f, h, "OUTPUT", NF_CHAIN_OUT) == -1)
		rv = -1;
	/* Even a partial removal is committed: a stop must stop diverting. */
	if (ipt_commit(f, h, "remove chains") == -1)
		rv = -1;
	else
		log_debug("%s: %s: removed %s and %s%s", __func__, f->name,
		    NF_CHAIN, NF_CHAIN_OUT, rv == -1 ? " in part" : "");
 done:
	if (h != NULL)
		f->free(h);
	ipt_unlock(lock);
	return rv;
}

static int
ipt_apply_family(const struct ipt_fam *f, const struct nf_params *p,
    const struct nf_rule *rules, size_t n)
{
	struct xtc_handle *h;
	size_t i, usable = 0;
	int lock, rv = -1;

	for (i = 0; i < n; i++)
		usable += (size_t)ipt_rule_usable(f, p, &rules[i], 0);
	/* Leave a family we have nothing for as it was. */
	if (usable == 0)
		return ipt_flush_family(f);
	if (ipt_lock(&lock) == -1)
		return -1;
	if ((h = ipt_open(f)) == NULL)
		goto done;
	if (ipt_fill(f, h, p, rules, n) == -1 ||
	    ipt_commit(f, h, "install rules") == -1)
		goto done;
	log_debug("%s: %s: %zu rules installed", __func__, f->name, usable);
	rv = 0;
 done:
	if (h != NULL)
		f->free(h);
	ipt_unlock(lock);
	return rv;
}

/* ---- dump ---- */

/* Ports, comment and mark from the matches of an entry we wrote. */
struct ipt_info {
	int		 has_ports;
	uint16_t	 dpts[2];
	const char	*comment;
	int		 has_mark;
	uint32_t	 mark, mask;
};

static void
ipt_read_matches(const struct ipt_view *v, struct ipt_info *in)
{
	const unsigned char *p = v->matches;
	const struct xt_entry_match *m;
	const struct xt_tcp *tcp;
	const struct xt_udp *udp;
	const struct xt_mark_mtinfo1 *mk;

	memset(in, 0, sizeof(*in));
	for (; p < v->target; p += m->u.match_size) {
		m = (const struct xt_entry_match *)p;
		if (m->u.match_size < sizeof(*m))
			break;
		if (strcmp(m->u.user.name, "tcp") == 0) {
			tcp = (const struct xt_tcp *)m->data;
			memcpy(in->dpts, tcp->dpts, sizeof(in->dpts));
			in->has_ports = 1;
		} else if (strcmp(m->u.user.name, "udp") == 0) {
			udp = (const struct xt_udp *)m->data;
			memcpy(in->dpts, udp->dpts, sizeof(in->dpts));
			in->has_ports = 1;
		} else if (strcmp(m->u.user.name, "comment") == 0) {
			in->comment = ((const struct xt_comment_info *)
			    m->data)->comment;
		} else if (strcmp(m->u.user.name, "mark") == 0) {
			mk = (const struct xt_mark_mtinfo1 *)m->data;
			in->has_mark = 1;
			in->mark = mk->mark;
			in->mask = mk->mask;
		}
	}
}

/* "-> 127.0.0.1:41234", "-> mark 0x1/0x1", "-> RETURN". */
static void
ipt_print_target(FILE *fp, const struct ipt_view *v, const char *name)
{
	const struct xt_entry_target *t;
	const struct xt_tproxy_target_info_v1 *tp;
	const struct xt_mark_tginfo2 *mk;
	char a[INET6_ADDRSTRLEN];
	int fam = v->dst.family == AF_INET6 ? AF_INET6 : AF_INET;

	t = (const struct xt_entry_target *)v->target;
	if (strcmp(name, "TPROXY") == 0 && t->u.user.revision == 1) {
		tp = (const struct xt_tproxy_target_info_v1 *)t->data;
		if (inet_ntop(fam, &tp->laddr, a, sizeof(a)) == NULL)
			snprintf(a, sizeof(a), "?");
		fprintf(fp, fam == AF_INET6 ? " -> [%s]:%u" : " -> %s:%u", a,
		    ntohs(tp->lport));
	} else if (strcmp(name, "MARK") == 0 && t->u.user.revision == 2) {
		mk = (const struct xt_mark_tginfo2 *)t->data;
		fprintf(fp, " -> mark 0x%x/0x%x", mk->mark, mk->mask);
	} else
		fprintf(fp, " -> %s", name);
}

static void
ipt_print_entry(FILE *fp, const struct ipt_fam *f, struct xtc_handle *h,
    const char *chain, const void *e)
{
	struct ipt_view v;
	struct ipt_info in;
	char buf[ADDR_STRLEN];

	f->view(e, &v);
	ipt_read_matches(&v, &in);
	fprintf(fp, "%s ", chain);
	if (v.proto != 0)
		fprintf(fp, " %s", ipt_proto_str(v.proto));
	if (v.dst.family != 0)
		fprintf(fp, " %s", cidr_str(&v.dst, buf, sizeof(buf)));
	if (in.has_ports && in.dpts[0] == in.dpts[1])
		fprintf(fp, " dport %u", in.dpts[0]);
	else if (in.has_ports)
		fprintf(fp, " dport %u-%u", in.dpts[0], in.dpts[1]);
	if (v.src.family != 0)
		fprintf(fp, " from %s", cidr_str(&v.src, buf,
		    sizeof(buf)));
	if (in.has_mark)
		fprintf(fp, " mark 0x%x/0x%x", in.mark, in.mask);
	ipt_print_target(fp, &v, f->target(e, h));
	if (in.comment != NULL)
		fprintf(fp, "  [%s]", in.comment);
	fprintf(fp, "  pkts %llu bytes %llu\n", (unsigned long long)v.pcnt,
	    (unsigned long long)v.bcnt);
}

static void
ipt_dump_family(const struct ipt_fam *f, FILE *fp)
{
	static const char *const chains[] = { NF_CHAIN, NF_CHAIN_OUT };
	struct xtc_handle *h;
	const void *e;
	size_t i;

	if (!ipt_table_loaded(f) || (h = ipt_open(f)) == NULL)
		return;
	for (i = 0; i < sizeof(chains) / sizeof(chains[0]); i++) {
		if (!f->is_chain(chains[i], h))
			continue;
		for (e = f->first(chains[i], h); e != NULL; e = f->next(e, h))
			ipt_print_entry(fp, f, h, chains[i], e);
	}
	f->free(h);
}

/* ---- operations ---- */

static int
ipt_probe(void)
{
	struct xtc_handle *h;

	if ((h = iptc_init(IPT_TABLE)) == NULL) {
		log_debug("%s: iptables table %s unusable: %s", __func__,
		    IPT_TABLE, iptc_strerror(errno));
		return -1;
	}
	iptc_free(h);
	return 0;
}

static int
ipt_apply(const struct nf_params *p, const struct nf_rule *rules, size_t n)
{
	size_t i;
	int rv = 0;

	if (p->mark == 0) {
		log_warnx("%s: the interception mark must not be 0", __func__);
		return -1;
	}
	for (i = 0; i < sizeof(ipt_fams) / sizeof(ipt_fams[0]); i++) {
		if (ipt_apply_family(ipt_fams[i], p, rules, n) == -1)
			rv = -1;
	}
	return rv;
}

static int
ipt_flush(void)
{
	size_t i;
	int rv = 0;

	for (i = 0; i < sizeof(ipt_fams) / sizeof(ipt_fams[0]); i++) {
		if (ipt_flush_family(ipt_fams[i]) == -1)
			rv = -1;
	}
	return rv;
}

static void
ipt_dump(FILE *fp)
{
	size_t i;

	for (i = 0; i < sizeof(ipt_fams) / sizeof(ipt_fams[0]); i++)
		ipt_dump_family(ipt_fams[i], fp);
}

const struct nf_ops nf_ipt_ops = {
	.name = "iptables",
	.probe = ipt_probe,
	.apply = ipt_apply,
	.flush = ipt_flush,
	.dump = ipt_dump,
};
