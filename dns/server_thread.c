/* SPDX-License-Identifier: MIT */
/* The resolver thread: queries in, answers out, intercepts asked of main. */
#include "config.h"

#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <netinet/in.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <ares.h>
#include <event2/event.h>

#include "dns.h"
#include "log.h"

/*
 * Bounds: queries parked at once (waiting for an upstream or for the main
 * thread to install an intercept), how long an intercept may take before
 * the query gets SERVFAIL, names given addresses in one run (a flood of
 * random names under a wildcard must not grow the rules without end),
 * upstream addresses kept per name with hostnames: real.
 */
#define PENDING_MAX	1024
#define PENDING_SEC	5
#define NAMES_MAX	8192
#define REAL_MAX	8
#define NAME_BUCKETS	1024
/*
 * New names per second a client can make the thread hand out (a token
 * bucket): each costs the main thread a rule set, so a stream of random
 * names under a wildcard is slowed to this pace rather than let it eat
 * the main thread.
 */
#define NEW_RATE	50
#define NEW_BURST	500
#define UDP_BATCH	64
#define WARN_EVERY	60

#define DNS_C_ANY	255

enum na_state { NA_NEW, NA_ASKED, NA_OK, NA_FAILED };

/* One address of a name, and whether the main thread intercepts it. */
struct name_addr {
	struct cidr	 addr;
	int		 pool;
	int		 state;		/* enum na_state */
	int		 current;	/* in the last upstream answer */
	uint32_t	 seq;		/* of the INTERCEPT asked */
	time_t		 asked, used;
};

/* A name that has (or had) addresses this run. */
struct name_ent {
	LIST_ENTRY(name_ent)	 hash;
	TAILQ_ENTRY(name_ent)	 all;
	char			 name[DNS_TEXT_MAX + 1];
	char			 service[DNS_SVC_MAX + 1];
	struct name_addr	 addrs[REAL_MAX + 1];
	size_t			 naddrs;
	time_t			 looked[2];	/* upstream asked: A, AAAA */
};
LIST_HEAD(name_bucket, name_ent);

/* Where a reply goes: a UDP peer (from the address it asked), or TCP. */
struct reply_to {
	struct dns_tcp_conn	*conn;
	struct sockaddr_storage	 peer;
	socklen_t		 peerlen;
	int			 has_dst;
	union {
		struct in_pktinfo	v4;
		struct in6_pktinfo	v6;
	}			 dst;
};

/* A query that waits: for an upstream, or for intercepts. */
struct pending {
	TAILQ_ENTRY(pending)	 entry;
	struct dns_thread	*t;
	int			 upstream;	/* c-ares holds it */
	int			 family;	/* hostnames: real, the lookup's */
	struct dns_query	 q;
	struct reply_to		 to;
	struct cidr		 addrs[REAL_MAX + 1];
	size_t			 naddrs;
	struct event		*timer;
};

struct dns_thread {
	struct event_base	*base;
	struct config		*conf;
	unsigned		 families;	/* DNS_FAMILY() bits */
	struct dns_names	*names;
	struct pool		*pool;
	struct dns_stats	*stats;
	int			 udp_fd;
	struct event		*udp_ev;
	struct dns_tcp		*tcp;
	struct dns_chan		*chan;
	struct upstream		*up;
	struct name_bucket	 buckets[NAME_BUCKETS];
	TAILQ_HEAD(, name_ent)	 ents;
	size_t			 nents;
	TAILQ_HEAD(, pending)	 pendings;
	size_t			 npending;
	uint32_t		 seq;
	int			 stopping;
	char			 test_name[DNS_TEXT_MAX + 1];
	struct cidr		 test_addr;
	time_t			 warned_at[4];
	double			 tokens;	/* new names allowed now */
	struct timespec		 tokens_at;
	uint8_t			 out[DNS_TCP_MAX];
};

enum { WARN_OVERLOAD, WARN_POOL, WARN_NAMES, WARN_CHAN };
enum { NEW_ANY, NEW_LIMITED };

static void	pending_check(struct pending *);

static time_t
now_sec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

/* Hostile traffic must not turn into a log flood: one line a minute. */
static void	warn_limited(struct dns_thread *, int, const char *, ...)
		    __attribute__((format(printf, 3, 4)));

static void
warn_limited(struct dns_thread *t, int kind, const char *fmt, ...)
{
	char msg[256];
	va_list ap;
	time_t now = now_sec();

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (t->warned_at[kind] != 0 && now - t->warned_at[kind] < WARN_EVERY) {
		log_debug("dns: %s", msg);
		return;
	}
	t->warned_at[kind] = now;
	log_warnx("dns: %s (repeats are logged at debug level for a "
	    "minute)", msg);
}

static int
cidr_same(const struct cidr *a, const struct cidr *b)
{
	return a->family == b->family && memcmp(a->addr, b->addr,
	    a->family == AF_INET ? 4 : 16) == 0;
}

/* ---- replies ---- */

static void
udp_send(struct dns_thread *t, const struct reply_to *to, const uint8_t *buf,
    size_t len)
{
	union {
		struct cmsghdr	hdr;
		uint8_t		buf[CMSG_SPACE(sizeof(struct in6_pktinfo))];
	} ctl;
	struct iovec iov = { (void *)buf, len };
	struct msghdr mh;
	struct cmsghdr *cm;

	memset(&mh, 0, sizeof(mh));
	mh.msg_name = (void *)&to->peer;
	mh.msg_namelen = to->peerlen;
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	if (to->has_dst) {
		memset(&ctl, 0, sizeof(ctl));
		mh.msg_control = ctl.buf;
		cm = (struct cmsghdr *)ctl.buf;
		if (to->peer.ss_family == AF_INET) {
			struct in_pktinfo pi = to->dst.v4;

			pi.ipi_ifindex = 0;	/* route by source address */
			mh.msg_controllen = CMSG_SPACE(sizeof(pi));
			cm->cmsg_level = IPPROTO_IP;
			cm->cmsg_type = IP_PKTINFO;
			cm->cmsg_len = CMSG_LEN(sizeof(pi));
			memcpy(CMSG_DATA(cm), &pi, sizeof(pi));
		} else {
			mh.msg_controllen = CMSG_SPACE(sizeof(to->dst.v6));
			cm->cmsg_level = IPPROTO_IPV6;
			cm->cmsg_type = IPV6_PKTINFO;
			cm->cmsg_len = CMSG_LEN(sizeof(to->dst.v6));
			memcpy(CMSG_DATA(cm), &to->dst.v6, sizeof(to->dst.v6));
		}
	}
	if (sendmsg(t->udp_fd, &mh, MSG_DONTWAIT) == -1)
		log_debug("dns udp: send: %s", strerror(errno));
}

/* Every TCP query gets exactly one call, len 0 for no reply. */
static void
reply(struct dns_thread *t, const struct reply_to *to, const uint8_t *buf,
    size_t len)
{
	if (to->conn != NULL)
		dns_tcp_reply(to->conn, buf, len);
	else if (len > 0)
		udp_send(t, to, buf, len);
}

static size_t
reply_limit(const struct dns_query *q, const struct reply_to *to)
{
	return to->conn != NULL ? DNS_TCP_MAX : dns_udp_limit(q);
}

static void
respond(struct dns_thread *t, const struct dns_query *q,
    const struct reply_to *to, const struct dns_answer *a)
{
	size_t len;

	len = dns_build_response(q, a, t->out, reply_limit(q, to));
	if (len > 2 && (t->out[2] & (DNS_F_TC >> 8)))
		dns_stat_inc(t->stats, DNS_ST_TRUNCATED);
	reply(t, to, t->out, len);
}

static int
ra(const struct dns_thread *t)
{
	return t->conf->ndns_upstream > 0;
}

static void
respond_rcode(struct dns_thread *t, const struct dns_query *q,
    const struct reply_to *to, int rcode, int aa)
{
	struct dns_answer a;

	memset(&a, 0, sizeof(a));
	a.rcode = rcode;
	a.aa = aa;
	a.ra = ra(t);
	switch (rcode) {
	case DNS_R_NOERROR:
		dns_stat_inc(t->stats, DNS_ST_NODATA);
		break;
	case DNS_R_SERVFAIL:
		dns_stat_inc(t->stats, DNS_ST_SERVFAIL);
		break;
	case DNS_R_REFUSED:
		dns_stat_inc(t->stats, DNS_ST_REFUSED);
		break;
	case DNS_R_NXDOMAIN:
		dns_stat_inc(t->stats, DNS_ST_NXDOMAIN);
		break;
	}
	a.ttl = t->conf->dns_ttl;
	respond(t, q, to, &a);
}

static void
respond_addrs(struct dns_thread *t, const struct dns_query *q,
    const struct reply_to *to, const struct cidr *addrs, size_t n)
{
	struct dns_answer a;

	memset(&a, 0, sizeof(a));
	a.aa = 1;
	a.ra = ra(t);
	a.addrs = addrs;
	a.naddrs = n;
	a.ttl = t->conf->dns_ttl;
	dns_stat_inc(t->stats, DNS_ST_ANSWERED);
	respond(t, q, to, &a);
}

/* Names no service claims: the system resolver can try its next server. */
static void
respond_unknown(struct dns_thread *t, const struct dns_query *q,
    const struct reply_to *to)
{
	respond_rcode(t, q, to, t->conf->dns_unknown == DNS_UNKNOWN_NXDOMAIN ?
	    DNS_R_NXDOMAIN : DNS_R_REFUSED, 0);
}

/* ---- the name table ---- */

static uint32_t
name_hash(const char *s)
{
	uint32_t h = 2166136261u;

	while (*s != '\0')
		h = (h ^ (unsigned char)*s++) * 16777619u;
	return h;
}

static struct name_ent *
name_find(struct dns_thread *t, const char *name)
{
	struct name_ent *e;

	LIST_FOREACH(e, &t->buckets[name_hash(name) % NAME_BUCKETS], hash)
		if (strcmp(e->name, name) == 0)
			return e;
	return NULL;
}

static int
name_token(struct dns_thread *t)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	t->tokens += ((now.tv_sec - t->tokens_at.tv_sec) +
	    (now.tv_nsec - t->tokens_at.tv_nsec) / 1e9) * NEW_RATE;
	if (t->tokens > NEW_BURST)
		t->tokens = NEW_BURST;
	t->tokens_at = now;
	if (t->tokens < 1)
		return 0;
	t->tokens -= 1;
	return 1;
}

/*
 * The entry for name, made for service if new; NULL at NAMES_MAX, or
 * when new names come faster than NEW_RATE (limit NEW_LIMITED).
 */
static struct name_ent *
name_get(struct dns_thread *t, const char *name, const char *service,
    int limit)
{
	struct name_ent *e;
	size_t i;

	if ((e = name_find(t, name)) != NULL) {
		if (strcmp(e->service, service) != 0) {
			/* The name moved to another service (reload). */
			snprintf(e->service, sizeof(e->service), "%s", service);
			for (i = 0; i < e->naddrs; i++)
				e->addrs[i].state = NA_NEW;
		}
		return e;
	}
	if (t->nents >= NAMES_MAX) {
		warn_limited(t, WARN_NAMES, "%zu names have addresses, the "
		    "most this server hands out in one run; %s is refused",
		    t->nents, name);
		return NULL;
	}
	if (limit == NEW_LIMITED && !name_token(t)) {
		warn_limited(t, WARN_NAMES, "new names come faster than %d a "
		    "second; %s gets SERVFAIL", NEW_RATE, name);
		return NULL;
	}
	if ((e = calloc(1, sizeof(*e))) == NULL)
		return NULL;
	snprintf(e->name, sizeof(e->name), "%s", name);
	snprintf(e->service, sizeof(e->service), "%s", service);
	LIST_INSERT_HEAD(&t->buckets[name_hash(name) % NAME_BUCKETS], e, hash);
	TAILQ_INSERT_TAIL(&t->ents, e, all);
	t->nents++;
	return e;
}

static void
name_free(struct dns_thread *t, struct name_ent *e)
{
	LIST_REMOVE(e, hash);
	TAILQ_REMOVE(&t->ents, e, all);
	t->nents--;
	free(e);
}

static struct name_addr *
name_addr_find(struct name_ent *e, const struct cidr *a)
{
	size_t i;

	for (i = 0; i < e->naddrs; i++)
		if (cidr_same(&e->addrs[i].addr, a))
			return &e->addrs[i];
	return NULL;
}

/* The pool address of e, allocated (and saved) if it has none. */
static struct name_addr *
name_pool_addr(struct dns_thread *t, struct name_ent *e)
{
	struct name_addr *na;
	struct cidr c;
	size_t i;

	for (i = 0; i < e->naddrs; i++)
		if (e->addrs[i].pool)
			return &e->addrs[i];
	if (e->naddrs == REAL_MAX + 1)
		return NULL;	/* cannot happen: one slot is the pool's */
	if (pool_get(t->pool, e->name, &c) == -1) {
		warn_limited(t, WARN_POOL, "no address left in dns.ip-range "
		    "for %s", e->name);
		return NULL;
	}
	/* Saved before the answer: a restart hands out the same address. */
	pool_save(t->pool);
	na = &e->addrs[e->naddrs++];
	memset(na, 0, sizeof(*na));
	na->addr = c;
	na->pool = 1;
	return na;
}

static void
send_remove(struct dns_thread *t, const struct name_ent *e,
    const struct name_addr *na)
{
	struct dns_msg m;

	memset(&m, 0, sizeof(m));
	m.type = DNS_MSG_REMOVE;
	m.pool = na->pool;
	m.addr = na->addr;
	snprintf(m.name, sizeof(m.name), "%s", e->name);
	snprintf(m.service, sizeof(m.service), "%s", e->service);
	if (dns_chan_send(t->chan, &m) == -1)
		warn_limited(t, WARN_CHAN, "cannot tell the main thread to "
		    "release %s: %s", e->name, strerror(errno));
}

/* Asks the main thread to intercept na; 0, or -1 if it cannot be told. */
static int
send_intercept(struct dns_thread *t, struct name_ent *e, struct name_addr *na)
{
	struct dns_msg m;

	memset(&m, 0, sizeof(m));
	m.type = DNS_MSG_INTERCEPT;
	m.seq = ++t->seq;
	m.pool = na->pool;
	m.addr = na->addr;
	snprintf(m.name, sizeof(m.name), "%s", e->name);
	snprintf(m.service, sizeof(m.service), "%s", e->service);
	if (dns_chan_send(t->chan, &m) == -1) {
		warn_limited(t, WARN_CHAN, "cannot ask the main thread to "
		    "intercept %s: %s", e->name, strerror(errno));
		return -1;
	}
	dns_stat_inc(t->stats, DNS_ST_INTERCEPTS);
	na->state = NA_ASKED;
	na->seq = m.seq;
	na->asked = now_sec();
	return 0;
}

/* ---- parked queries ---- */

static void
pending_free(struct pending *p)
{
	struct dns_thread *t = p->t;

	TAILQ_REMOVE(&t->pendings, p, entry);
	t->npending--;
	if (p->timer != NULL)
		event_free(p->timer);
	free(p);
}

/* Ends p with rcode (0: no reply at all, e.g. at stop). */
static void
pending_fail(struct pending *p, int rcode)
{
	if (rcode != 0)
		respond_rcode(p->t, &p->q, &p->to, rcode, 0);
	else
		reply(p->t, &p->to, NULL, 0);
	pending_free(p);
}

static void
pending_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct pending *p = arg;

	warn_limited(p->t, WARN_OVERLOAD, "%s: the interception was not "
	    "confirmed within %d s, answering SERVFAIL", p->q.qname,
	    PENDING_SEC);
	pending_fail(p, DNS_R_SERVFAIL);
}

static struct pending *
pending_new(struct dns_thread *t, const struct dns_query *q,
    const struct reply_to *to)
{
	struct pending *p;

	if (t->npending >= PENDING_MAX || (p = calloc(1, sizeof(*p))) ==
	    NULL) {
		dns_stat_inc(t->stats, DNS_ST_OVERLOAD);
		warn_limited(t, WARN_OVERLOAD, "%zu queries waiting already; "
		    "%s gets SERVFAIL", t->npending, q->qname);
		respond_rcode(t, q, to, DNS_R_SERVFAIL, 0);
		return NULL;
	}
	p->t = t;
	p->q = *q;
	p->to = *to;
	TAILQ_INSERT_TAIL(&t->pendings, p, entry);
	t->npending++;
	return p;
}

/*
 * Answers p with its addresses once the main thread has confirmed every
 * intercept; asks for those not asked yet. Frees p when done.
 */
static void
pending_check(struct pending *p)
{
	struct dns_thread *t = p->t;
	struct name_ent *e = name_find(t, p->q.qname);
	struct name_addr *na = NULL;
	struct timeval tv = { PENDING_SEC, 0 };
	size_t i, waiting = 0;
	time_t now = now_sec();

	for (i = 0; e != NULL && i < p->naddrs; i++) {
		if ((na = name_addr_find(e, &p->addrs[i])) == NULL)
			break;
		if (na->state == NA_ASKED && now - na->asked > PENDING_SEC)
			na->state = NA_NEW;	/* lost: ask again */
		if (na->state == NA_NEW && send_intercept(t, e, na) == -1)
			break;
		if (na->state == NA_FAILED)
			break;
		if (na->state == NA_ASKED)
			waiting++;
		na->used = now;
	}
	if (e == NULL || i < p->naddrs) {
		if (e != NULL && na != NULL && na->state == NA_FAILED)
			na->state = NA_NEW;	/* the next query tries again */
		pending_fail(p, DNS_R_SERVFAIL);
		return;
	}
	if (waiting == 0) {
		respond_addrs(t, &p->q, &p->to, p->addrs, p->naddrs);
		pending_free(p);
		return;
	}
	if (p->timer == NULL &&
	    ((p->timer = evtimer_new(t->base, pending_timeout, p)) == NULL ||
	    evtimer_add(p->timer, &tv) == -1)) {
		pending_fail(p, DNS_R_SERVFAIL);
		return;
	}
}

/* Answers with addrs of e at once if they are intercepted, else parks. */
static void
answer_addrs(struct dns_thread *t, const struct dns_query *q,
    const struct reply_to *to, struct name_ent *e, const struct cidr *addrs,
    size_t n)
{
	struct name_addr *na;
	struct pending *p;
	size_t i;

	for (i = 0; i < n; i++) {
		na = name_addr_find(e, &addrs[i]);
		if (na == NULL || na->state != NA_OK)
			break;
	}
	if (i == n) {
		for (i = 0; i < n; i++)
			name_addr_find(e, &addrs[i])->used = now_sec();
		respond_addrs(t, q, to, addrs, n);
		return;
	}
	if ((p = pending_new(t, q, to)) == NULL)
		return;
	memcpy(p->addrs, addrs, n * sizeof(*addrs));
	p->naddrs = n;
	pending_check(p);
}

/* ---- answers for service names ---- */

/* The family qtype asks for; 0: a type we have no records of. */
static int
qtype_family(const struct dns_thread *t, uint16_t qtype)
{
	switch (qtype) {
	case DNS_T_A:
		return AF_INET;
	case DNS_T_AAAA:
		return AF_INET6;
	case DNS_T_ANY:
		return t->conf->dns_range.family;
	}
	return 0;
}

/*
 * Only addresses of a family with a transparent listener can be diverted
 * to it: handing out others would let clients past the interception.
 */
static int
family_interceptable(const struct dns_thread *t, int family)
{
	return (t->families & DNS_FAMILY(family)) != 0;
}

static void
answer_pool(struct dns_thread *t, const struct dns_query *q,
    const struct reply_to *to, struct name_ent *e, int family)
{
	struct name_addr *na;

	if (family != t->conf->dns_range.family) {
		respond_rcode(t, q, to, DNS_R_NOERROR, 1);
		return;
	}
	if ((na = name_pool_addr(t, e)) == NULL) {
		respond_rcode(t, q, to, DNS_R_SERVFAIL, 0);
		return;
	}
	answer_addrs(t, q, to, e, &na->addr, 1);
}

/* Builds a plain query for name/qtype for an upstream; its length or 0. */
static size_t
upstream_query(const struct dns_query *q, const char *name, uint16_t qtype,
    int edns, uint8_t *buf, size_t cap)
{
	struct wbuf b;

	wbuf_init(&b, buf, cap);
	wbuf_u16(&b, 0);		/* c-ares sets its own id */
	wbuf_u16(&b, DNS_F_RD | (q->flags & DNS_F_CD));
	wbuf_u16(&b, 1);
	wbuf_u16(&b, 0);
	wbuf_u16(&b, 0);
	wbuf_u16(&b, edns ? 1 : 0);
	wbuf_name(&b, name);
	wbuf_u16(&b, qtype);
	wbuf_u16(&b, q->qclass);
	if (edns) {
		wbuf_u8(&b, 0);
		wbuf_u16(&b, DNS_T_OPT);
		wbuf_u16(&b, DNS_UDP_MAX);
		wbuf_u32(&b, q->edns_do ? DNS_OPT_DO : 0);
		wbuf_u16(&b, 0);
	}
	return b.err ? 0 : b.len;
}

/* The upstream's addresses of family for the name, CNAMEs followed. */
static size_t
real_parse(const uint8_t *abuf, size_t alen, int family, struct cidr *out,
    size_t max)
{
	struct ares_addrttl a4[REAL_MAX];
	struct ares_addr6ttl a6[REAL_MAX];
	int n = REAL_MAX, i, rc;

	if (family == AF_INET)
		rc = ares_parse_a_reply(abuf, (int)alen, NULL, a4, &n);
	else
		rc = ares_parse_aaaa_reply(abuf, (int)alen, NULL, a6, &n);
	if (rc != ARES_SUCCESS)
		return 0;
	for (i = 0; i < n && (size_t)i < max; i++) {
		memset(&out[i], 0, sizeof(out[i]));
		out[i].family = family;
		out[i].prefixlen = family == AF_INET ? 32 : 128;
		if (family == AF_INET)
			memcpy(out[i].addr, &a4[i].ipaddr, 4);
		else
			memcpy(out[i].addr, &a6[i].ip6addr, 16);
	}
	return (size_t)i;
}

static size_t
real_count(const struct name_ent *e)
{
	size_t i, n = 0;

	for (i = 0; i < e->naddrs; i++)
		if (!e->addrs[i].pool)
			n++;
	return n;
}

/*
 * Room for a new upstream address: a slot, or one whose address has not
 * been in an answer for two TTLs (clients no longer hold it).
 */
static struct name_addr *
real_slot(struct dns_thread *t, struct name_ent *e)
{
	struct name_addr *na;
	time_t now = now_sec(), stale = 2 * (time_t)t->conf->dns_ttl + 10;
	size_t i;

	if (e->naddrs < REAL_MAX + 1 && real_count(e) < REAL_MAX) {
		na = &e->addrs[e->naddrs++];
		memset(na, 0, sizeof(*na));
		return na;
	}
	for (i = 0; i < e->naddrs; i++) {
		na = &e->addrs[i];
		if (!na->pool && !na->current && now - na->used > stale) {
			if (na->state == NA_OK || na->state == NA_ASKED)
				send_remove(t, e, na);
			memset(na, 0, sizeof(*na));
			return na;
		}
	}
	return NULL;
}

/* Takes the upstream's addresses of p->family into e; how many it kept. */
static size_t
real_take(struct dns_thread *t, struct name_ent *e, struct pending *p,
    const struct cidr *got, size_t ngot)
{
	struct name_addr *na;
	size_t i;

	for (i = 0; i < e->naddrs; i++)
		if (!e->addrs[i].pool && e->addrs[i].addr.family == p->family)
			e->addrs[i].current = 0;
	p->naddrs = 0;
	for (i = 0; i < ngot; i++) {
		if ((na = name_addr_find(e, &got[i])) == NULL) {
			if ((na = real_slot(t, e)) == NULL)
				continue;	/* full of live addresses */
			na->addr = got[i];
		}
		if (na->pool)
			continue;	/* upstream says a pool address */
		na->current = 1;
		p->addrs[p->naddrs++] = got[i];
	}
	e->looked[p->family == AF_INET6] = now_sec();
	return p->naddrs;
}

/* The addresses of e's last upstream answer for family, if still fresh. */
static int
real_cached(struct dns_thread *t, struct name_ent *e, int family,
    struct cidr *out, size_t *n)
{
	time_t at = e->looked[family == AF_INET6];
	size_t i;

	*n = 0;
	if (at == 0 || now_sec() - at >= (time_t)t->conf->dns_ttl)
		return 0;
	for (i = 0; i < e->naddrs; i++)
		if (!e->addrs[i].pool && e->addrs[i].current &&
		    e->addrs[i].addr.family == family)
			out[(*n)++] = e->addrs[i].addr;
	return 1;
}

static void
real_done(void *arg, int status, const uint8_t *abuf, size_t alen)
{
	struct pending *p = arg;
	struct dns_thread *t = p->t;
	struct cidr got[REAL_MAX];
	struct name_ent *e;
	struct name_addr *na;
	size_t n = 0;

	p->upstream = 0;
	if (t->stopping) {
		pending_fail(p, 0);
		return;
	}
	if (status == 0)
		n = real_parse(abuf, alen, p->family, got, REAL_MAX);
	else
		dns_stat_inc(t->stats, DNS_ST_UPSTREAM_FAILED);
	if ((e = name_find(t, p->q.qname)) == NULL) {
		pending_fail(p, DNS_R_SERVFAIL);	/* released meanwhile */
		return;
	}
	if (real_take(t, e, p, got, n) > 0) {
		pending_check(p);
		return;
	}
	/* Nothing upstream: the pool stands in. */
	if (p->family != t->conf->dns_range.family) {
		respond_rcode(t, &p->q, &p->to, DNS_R_NOERROR, 1);
		pending_free(p);
		return;
	}
	if ((na = name_pool_addr(t, e)) == NULL) {
		pending_fail(p, DNS_R_SERVFAIL);
		return;
	}
	p->addrs[0] = na->addr;
	p->naddrs = 1;
	pending_check(p);
}

/* hostnames: real: the upstream's addresses, intercepted for e only. */
static void
answer_real(struct dns_thread *t, const struct dns_query *q,
    const struct reply_to *to, struct name_ent *e, int family)
{
	struct cidr addrs[REAL_MAX];
	struct pending *p;
	uint8_t buf[DNS_HDR_LEN + DNS_NAME_MAX + 4];
	size_t n, len;

	if (real_cached(t, e, family, addrs, &n)) {
		if (n > 0)
			answer_addrs(t, q, to, e, addrs, n);
		else
			answer_pool(t, q, to, e, family);
		return;
	}
	len = upstream_query(q, q->qname, family == AF_INET ? DNS_T_A :
	    DNS_T_AAAA, 0, buf, sizeof(buf));
	if (len == 0 || (p = pending_new(t, q, to)) == NULL) {
		if (len == 0)
			respond_rcode(t, q, to, DNS_R_SERVFAIL, 0);
		return;
	}
	p->family = family;
	p->upstream = 1;
	upstream_send(t->up, buf, len, real_done, p);
}

static void
answer_service(struct dns_thread *t, const struct dns_query *q,
    const struct reply_to *to, const struct service *svc)
{
	struct name_ent *e;
	int family = qtype_family(t, q->qtype);

	if (family == 0 || !family_interceptable(t, family)) {
		respond_rcode(t, q, to, DNS_R_NOERROR, 1);	/* NODATA */
		return;
	}
	if ((e = name_get(t, q->qname, svc->name, NEW_LIMITED)) == NULL) {
		dns_stat_inc(t->stats, DNS_ST_OVERLOAD);
		respond_rcode(t, q, to, DNS_R_SERVFAIL, 0);
		return;
	}
	if (t->conf->dns_hostnames == DNS_HOSTNAMES_REAL && t->up != NULL &&
	    t->conf->ndns_upstream > 0)
		answer_real(t, q, to, e, family);
	else
		answer_pool(t, q, to, e, family);
}

/* ---- other names: the upstreams ---- */

static void
forward_done(void *arg, int status, const uint8_t *abuf, size_t alen)
{
	struct pending *p = arg;
	struct dns_thread *t = p->t;
	struct dns_answer a;
	size_t len, max = reply_limit(&p->q, &p->to);

	p->upstream = 0;
	if (t->stopping) {
		pending_fail(p, 0);
		return;
	}
	if (status == -1 || alen > sizeof(t->out)) {
		dns_stat_inc(t->stats, DNS_ST_UPSTREAM_FAILED);
		respond_unknown(t, &p->q, &p->to);
		pending_free(p);
		return;
	}
	if (alen <= max) {
		/* Relayed as is, under the client's id. */
		memcpy(t->out, abuf, alen);
		t->out[0] = (uint8_t)(p->q.id >> 8);
		t->out[1] = (uint8_t)p->q.id;
		reply(t, &p->to, t->out, alen);
	} else {
		/* Too big for the client's UDP: TC, and it asks over TCP. */
		memset(&a, 0, sizeof(a));
		a.rcode = abuf[3] & 0xf;
		a.ra = (abuf[3] & (DNS_F_RA & 0xff)) != 0;
		len = dns_build_response(&p->q, &a, t->out, max);
		if (len > 2)
			t->out[2] |= DNS_F_TC >> 8;
		dns_stat_inc(t->stats, DNS_ST_TRUNCATED);
		reply(t, &p->to, t->out, len);
	}
	pending_free(p);
}

static void
forward(struct dns_thread *t, const struct dns_query *q,
    const struct reply_to *to)
{
	struct pending *p;
	uint8_t buf[DNS_HDR_LEN + DNS_NAME_MAX + 4 + 11];
	size_t len;

	len = upstream_query(q, q->qname_echo, q->qtype, q->edns, buf,
	    sizeof(buf));
	if (len == 0) {
		respond_rcode(t, q, to, DNS_R_SERVFAIL, 0);
		return;
	}
	if ((p = pending_new(t, q, to)) == NULL)
		return;
	p->upstream = 1;
	dns_stat_inc(t->stats, DNS_ST_FORWARDED);
	upstream_send(t->up, buf, len, forward_done, p);
}

/* ---- queries ---- */

static void
answer_test(struct dns_thread *t, const struct dns_query *q,
    const struct reply_to *to)
{
	dns_stat_inc(t->stats, DNS_ST_SELF_TEST);
	if (q->qtype == DNS_T_A || q->qtype == DNS_T_ANY)
		respond_addrs(t, q, to, &t->test_addr, 1);
	else
		respond_rcode(t, q, to, DNS_R_NOERROR, 1);
}

/* What the parser rejected: an error reply if it deserves one. */
static void
query_rejected(struct dns_thread *t, const uint8_t *buf, size_t len,
    const struct reply_to *to, int rc)
{
	size_t n = 0;

	dns_stat_inc(t->stats, rc == DNS_R_NOTIMP ? DNS_ST_NOTIMP :
	    DNS_ST_MALFORMED);
	log_trace("dns: %s query (%zu bytes) from %s", rc == -1 ? "dropped" :
	    rc == DNS_R_NOTIMP ? "unsupported" : "malformed", len,
	    to->conn != NULL ? "tcp" : "udp");
	if (rc != -1)
		n = dns_build_error(buf, len, rc, t->out, to->conn != NULL ?
		    DNS_TCP_MAX : DNS_UDP_MIN);
	reply(t, to, t->out, n);
}

static void
query(struct dns_thread *t, const uint8_t *buf, size_t len,
    const struct reply_to *to)
{
	const struct service *svc;
	struct dns_query q;
	int rc;

	rc = dns_parse_query(buf, len, &q);
	if (rc == DNS_R_BADVERS) {
		respond_rcode(t, &q, to, DNS_R_BADVERS, 0);
		return;
	}
	if (rc != 0) {
		query_rejected(t, buf, len, to, rc);
		return;
	}
	if (q.qtype == DNS_T_OPT || q.qtype == 0)
		respond_rcode(t, &q, to, DNS_R_FORMERR, 0);
	else if (q.qtype >= 251 && q.qtype <= 254) {	/* IXFR .. MAILA */
		dns_stat_inc(t->stats, DNS_ST_NOTIMP);
		respond_rcode(t, &q, to, DNS_R_NOTIMP, 0);
	} else if (q.qclass != DNS_C_IN && q.qclass != DNS_C_ANY)
		respond_rcode(t, &q, to, DNS_R_REFUSED, 0);
	else if (t->test_name[0] != '\0' && strcmp(q.qname, t->test_name) == 0)
		answer_test(t, &q, to);
	else if ((svc = dns_names_lookup(t->names, q.qname, NULL)) != NULL)
		answer_service(t, &q, to, svc);
	else if (t->up != NULL && t->conf->ndns_upstream > 0)
		forward(t, &q, to);
	else
		respond_unknown(t, &q, to);
}

static void
tcp_query(void *arg, struct dns_tcp_conn *conn, const uint8_t *buf,
    size_t len)
{
	struct reply_to to;

	memset(&to, 0, sizeof(to));
	to.conn = conn;
	query(arg, buf, len, &to);
}

static void
udp_dst(struct msghdr *mh, struct reply_to *to)
{
	struct cmsghdr *cm;

	for (cm = CMSG_FIRSTHDR(mh); cm != NULL; cm = CMSG_NXTHDR(mh, cm)) {
		if (cm->cmsg_level == IPPROTO_IP &&
		    cm->cmsg_type == IP_PKTINFO &&
		    cm->cmsg_len >= CMSG_LEN(sizeof(to->dst.v4))) {
			memcpy(&to->dst.v4, CMSG_DATA(cm), sizeof(to->dst.v4));
			to->has_dst = 1;
		} else if (cm->cmsg_level == IPPROTO_IPV6 &&
		    cm->cmsg_type == IPV6_PKTINFO &&
		    cm->cmsg_len >= CMSG_LEN(sizeof(to->dst.v6))) {
			memcpy(&to->dst.v6, CMSG_DATA(cm), sizeof(to->dst.v6));
			to->has_dst = 1;
		}
	}
}

static void
udp_read(evutil_socket_t fd, short what, void *arg)
{
	struct dns_thread *t = arg;
	union {
		struct cmsghdr	hdr;
		uint8_t		buf[CMSG_SPACE(sizeof(struct in6_pktinfo)) +
				    CMSG_SPACE(sizeof(struct in_pktinfo))];
	} ctl;
	uint8_t buf[DNS_UDP_MAX];
	struct iovec iov = { buf, sizeof(buf) };
	struct reply_to to;
	struct msghdr mh;
	ssize_t n;
	int i;

	for (i = 0; i < UDP_BATCH; i++) {
		memset(&to, 0, sizeof(to));
		memset(&mh, 0, sizeof(mh));
		mh.msg_name = &to.peer;
		mh.msg_namelen = sizeof(to.peer);
		mh.msg_iov = &iov;
		mh.msg_iovlen = 1;
		mh.msg_control = ctl.buf;
		mh.msg_controllen = sizeof(ctl.buf);
		if ((n = recvmsg(fd, &mh, MSG_DONTWAIT)) == -1) {
			if (errno != EAGAIN && errno != EINTR)
				log_debug("dns udp: recv: %s", strerror(errno));
			return;
		}
		dns_stat_inc(t->stats, DNS_ST_UDP);
		if (mh.msg_flags & MSG_TRUNC) {
			dns_stat_inc(t->stats, DNS_ST_MALFORMED);
			continue;	/* no query is that long */
		}
		to.peerlen = mh.msg_namelen;
		udp_dst(&mh, &to);
		query(t, buf, (size_t)n, &to);
	}
}

/* ---- exact names ---- */

static int
name_is_exact(struct dns_thread *t, const char *name)
{
	int wild = 0;

	return dns_names_lookup(t->names, name, &wild) != NULL && !wild;
}

/* Exact names get their pool addresses at once (stable across restarts). */
static void
names_preallocate(struct dns_thread *t)
{
	const struct service *svc, *owner;
	struct name_ent *e;
	size_t i;

	if (!family_interceptable(t, t->conf->dns_range.family))
		return;		/* they would never be handed out */
	TAILQ_FOREACH(svc, &t->conf->services, entry) {
		for (i = 0; svc->has_intercept && i < svc->naddrs; i++) {
			if (!svc->addrs[i].is_name || svc->addrs[i].wildcard)
				continue;
			owner = dns_names_lookup(t->names, svc->addrs[i].name,
			    NULL);
			if (owner == NULL || (e = name_get(t,
			    svc->addrs[i].name, owner->name, NEW_ANY)) == NULL)
				continue;
			(void)name_pool_addr(t, e);
		}
	}
}

/* ---- messages from the main thread ---- */

static void
msg_ack(struct dns_thread *t, const struct dns_msg *m)
{
	struct name_ent *e = name_find(t, m->name);
	struct name_addr *na;
	struct pending *p, *next;

	if (e == NULL || (na = name_addr_find(e, &m->addr)) == NULL ||
	    na->seq != m->seq || na->state != NA_ASKED)
		return;		/* stale: released or asked again since */
	na->state = m->ok ? NA_OK : NA_FAILED;
	if (!m->ok)
		log_warnx("dns: %s: the interception could not be installed, "
		    "answering SERVFAIL", m->name);
	for (p = TAILQ_FIRST(&t->pendings); p != NULL; p = next) {
		next = TAILQ_NEXT(p, entry);
		if (!p->upstream && strcmp(p->q.qname, m->name) == 0)
			pending_check(p);
	}
}

static void
msg_test(struct dns_thread *t, const struct dns_msg *m)
{
	struct dns_msg ack;

	if (m->ok) {
		snprintf(t->test_name, sizeof(t->test_name), "%s", m->name);
		t->test_addr = m->addr;
	} else
		t->test_name[0] = '\0';
	ack = *m;
	ack.type = DNS_MSG_ACK;
	dns_chan_send(t->chan, &ack);
}

static int
keep_name(const char *name, void *arg)
{
	struct dns_thread *t = arg;

	return dns_names_lookup(t->names, name, NULL) != NULL;
}

/* After a reload: names gone are released, names moved re-intercepted. */
static void
names_revise(struct dns_thread *t)
{
	const struct service *svc;
	struct name_ent *e, *next;
	struct name_addr *na;
	size_t i, j;

	for (e = TAILQ_FIRST(&t->ents); e != NULL; e = next) {
		next = TAILQ_NEXT(e, all);
		svc = dns_names_lookup(t->names, e->name, NULL);
		for (i = j = 0; i < e->naddrs; i++) {
			na = &e->addrs[i];
			if (svc == NULL || (!na->pool &&
			    t->conf->dns_hostnames != DNS_HOSTNAMES_REAL)) {
				send_remove(t, e, na);
				continue;
			}
			e->addrs[j++] = *na;
		}
		e->naddrs = j;
		if (svc == NULL) {
			name_free(t, e);
			continue;
		}
		if (strcmp(svc->name, e->service) != 0) {
			/* Moved to another service: intercepted anew. */
			for (i = 0; i < e->naddrs; i++)
				send_remove(t, e, &e->addrs[i]);
			name_get(t, e->name, svc->name, NEW_ANY);
		}
	}
	if (pool_retain(t->pool, keep_name, t) > 0)
		pool_save(t->pool);
}

/*
 * Exact names not intercepted yet are asked for at once, so that the
 * first query is fast and a hosts file can list them.
 */
static void
names_announce(struct dns_thread *t)
{
	struct name_ent *e;
	size_t i;

	TAILQ_FOREACH(e, &t->ents, all)
		for (i = 0; i < e->naddrs; i++)
			if (e->addrs[i].pool && e->addrs[i].state == NA_NEW &&
			    name_is_exact(t, e->name))
				(void)send_intercept(t, e, &e->addrs[i]);
}

static void
msg_reload(struct dns_thread *t, struct config *conf)
{
	struct dns_names *names;
	struct config *old = t->conf;
	struct pending *p, *next;

	if ((names = dns_names_new(conf)) == NULL) {
		log_warnx("dns: reload: out of memory, keeping the names");
		conf_unref(conf);
		return;
	}
	dns_names_free(t->names);
	t->names = names;
	t->conf = conf;
	if (conf->ndns_upstream > 0 && t->up == NULL &&
	    (t->up = upstream_new(t->base, conf)) == NULL)
		log_warnx("dns: reload: cannot set up the upstreams");
	else if (t->up != NULL && upstream_servers(t->up, conf) == -1)
		log_warnx("dns: reload: cannot change the upstreams");
	names_revise(t);
	names_preallocate(t);
	names_announce(t);
	for (p = TAILQ_FIRST(&t->pendings); p != NULL; p = next) {
		next = TAILQ_NEXT(p, entry);
		if (!p->upstream)
			pending_check(p);
	}
	conf_unref(old);
	log_debug("dns: reloaded: %zu names", dns_names_count(names));
}

static void
thread_msg(const struct dns_msg *m, void *arg)
{
	struct dns_thread *t = arg;

	if (m == NULL) {
		event_base_loopbreak(t->base);	/* the main thread is gone */
		return;
	}
	switch (m->type) {
	case DNS_MSG_ACK:
		msg_ack(t, m);
		break;
	case DNS_MSG_RELOAD:
		msg_reload(t, m->conf);
		break;
	case DNS_MSG_TEST:
		msg_test(t, m);
		break;
	case DNS_MSG_STOP:
		event_base_loopbreak(t->base);
		break;
	default:
		log_warnx("dns: unexpected message %u from the main thread",
		    m->type);
		if (m->type == DNS_MSG_RELOAD)
			conf_unref(m->conf);
	}
}

/* ---- life ---- */

struct dns_thread *
dns_thread_new(struct config *conf, struct pool *pool, unsigned families,
    int udp_fd, int tcp_fd, int chan_fd, struct dns_stats *stats)
{
	struct dns_thread *t;
	size_t i;

	if ((t = calloc(1, sizeof(*t))) == NULL)
		return NULL;
	t->conf = conf;
	t->families = families;
	t->pool = pool;
	t->stats = stats;
	t->udp_fd = udp_fd;
	for (i = 0; i < NAME_BUCKETS; i++)
		LIST_INIT(&t->buckets[i]);
	TAILQ_INIT(&t->ents);
	TAILQ_INIT(&t->pendings);
	t->tokens = NEW_BURST;
	clock_gettime(CLOCK_MONOTONIC, &t->tokens_at);
	if ((t->base = event_base_new()) == NULL ||
	    (t->names = dns_names_new(conf)) == NULL ||
	    (t->chan = dns_chan_new(t->base, chan_fd, thread_msg, NULL, t)) ==
	    NULL)
		goto fail;
	chan_fd = -1;
	if ((t->tcp = dns_tcp_new(t->base, tcp_fd, tcp_query, t, stats)) ==
	    NULL)
		goto fail;
	tcp_fd = -1;
	t->udp_ev = event_new(t->base, udp_fd, EV_READ | EV_PERSIST, udp_read,
	    t);
	if (t->udp_ev == NULL || event_add(t->udp_ev, NULL) == -1)
		goto fail;
	if (conf->ndns_upstream > 0 &&
	    (t->up = upstream_new(t->base, conf)) == NULL)
		goto fail;
	if (pool_retain(pool, keep_name, t) > 0)
		pool_save(pool);
	names_preallocate(t);
	return t;
fail:
	log_warnx("dns: cannot set up the resolver thread");
	if (chan_fd != -1)
		close(chan_fd);
	if (tcp_fd != -1)
		close(tcp_fd);
	t->pool = NULL;		/* the caller's still */
	t->conf = NULL;
	dns_thread_free(t);
	return NULL;
}

size_t
dns_thread_names(struct dns_thread *t, void (*cb)(void *, const char *,
    const char *, const struct cidr *), void *arg)
{
	struct name_ent *e;
	size_t i, n = 0;

	TAILQ_FOREACH(e, &t->ents, all)
		for (i = 0; i < e->naddrs; i++)
			if (e->addrs[i].pool) {
				cb(arg, e->name, e->service, &e->addrs[i].addr);
				n++;
			}
	return n;
}

void
dns_thread_run(struct dns_thread *t)
{
	event_base_dispatch(t->base);
}

void
dns_thread_free(struct dns_thread *t)
{
	struct pending *p;
	struct name_ent *e;

	if (t == NULL)
		return;
	t->stopping = 1;
	upstream_free(t->up);		/* its pending queries end first */
	while ((p = TAILQ_FIRST(&t->pendings)) != NULL)
		pending_fail(p, 0);
	dns_tcp_free(t->tcp);
	dns_chan_free(t->chan);
	if (t->udp_ev != NULL)
		event_free(t->udp_ev);
	if (t->udp_fd != -1)
		close(t->udp_fd);
	while ((e = TAILQ_FIRST(&t->ents)) != NULL)
		name_free(t, e);
	dns_names_free(t->names);
	if (t->pool != NULL) {
		pool_save(t->pool);
		pool_free(t->pool);
	}
	conf_unref(t->conf);
	if (t->base != NULL)
		event_base_free(t->base);
	free(t);
}
