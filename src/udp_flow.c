/* SPDX-License-Identifier: MIT */
/*
 * The UDP flow table: flows keyed by (client, original destination) in a
 * seeded hash table with an age list, the transparent reply sockets they
 * share per destination, and direct forwarding through a connected socket
 * per flow.
 */
#include "config.h"

#include <sys/socket.h>
#include <netinet/in.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sluice.h"
#include "log.h"
#include "tunnel.h"
#include "udp.h"

void
udp_addr_set(union udp_addr *u, const struct sockaddr *sa)
{
	socklen_t len = addr_len(sa);

	memset(u, 0, sizeof(*u));
	if (len > 0 && len <= sizeof(*u))
		memcpy(u, sa, len);
}

int
udp_addr_eq(const union udp_addr *a, const union udp_addr *b)
{
	if (a->sa.sa_family != b->sa.sa_family)
		return 0;
	if (a->sa.sa_family == AF_INET)
		return a->sin.sin_port == b->sin.sin_port &&
		    a->sin.sin_addr.s_addr == b->sin.sin_addr.s_addr;
	return a->sin6.sin6_port == b->sin6.sin6_port &&
	    memcmp(&a->sin6.sin6_addr, &b->sin6.sin6_addr, 16) == 0 &&
	    a->sin6.sin6_scope_id == b->sin6.sin6_scope_id;
}

/* Seeded, so that clients cannot aim their ports at one bucket. */
static uint32_t
udp_hash_addr(uint32_t h, const union udp_addr *a)
{
	const uint8_t *p;
	size_t i, n;

	if (a->sa.sa_family == AF_INET) {
		p = (const uint8_t *)&a->sin.sin_addr;
		n = 4;
		h = (h ^ a->sin.sin_port) * 0x9e3779b1U;
	} else {
		p = (const uint8_t *)&a->sin6.sin6_addr;
		n = 16;
		h = (h ^ a->sin6.sin6_port) * 0x9e3779b1U;
	}
	for (i = 0; i < n; i++)
		h = (h ^ p[i]) * 0x01000193U;
	return h ^ (h >> 15);
}

static size_t
udp_bucket(const struct udp *u, const union udp_addr *client,
    const union udp_addr *orig)
{
	uint32_t h = udp_hash_addr(u->seed, client);

	if (orig != NULL)
		h = udp_hash_addr(h, orig);
	return h & (u->nbuckets - 1);
}

/* ---- reply sockets ---- */

/* A socket that sends from addr, which need not be local (TPROXY). */
static int
udp_reply_socket(const struct udp *u, const union udp_addr *addr)
{
	int fd, one = 1, saved;

	fd = socket(addr->sa.sa_family, SOCK_DGRAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0);
	if (fd == -1)
		return -1;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ==
	    -1 || sock_transparent(fd, addr->sa.sa_family) == -1 ||
	    (addr->sa.sa_family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6,
	    IPV6_V6ONLY, &one, sizeof(one)) == -1) ||
	    sock_set_mark(fd, u->sl->conf->bypass_mark) == -1 ||
	    bind(fd, &addr->sa, addr_len(&addr->sa)) == -1) {
		saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	return fd;
}

static struct udp_reply *
udp_reply_get(struct udp *u, const union udp_addr *addr)
{
	struct udp_reply *r;
	size_t b = udp_bucket(u, addr, NULL);

	for (r = u->replies[b]; r != NULL; r = r->next)
		if (udp_addr_eq(&r->addr, addr)) {
			r->refs++;
			return r;
		}
	if ((r = calloc(1, sizeof(*r))) == NULL)
		return NULL;
	r->addr = *addr;
	if ((r->fd = udp_reply_socket(u, addr)) == -1) {
		free(r);
		return NULL;
	}
	r->refs = 1;
	r->next = u->replies[b];
	u->replies[b] = r;
	return r;
}

static void
udp_reply_put(struct udp *u, struct udp_reply *r)
{
	struct udp_reply **pp;

	if (r == NULL || --r->refs > 0)
		return;
	for (pp = &u->replies[udp_bucket(u, &r->addr, NULL)]; *pp != NULL;
	    pp = &(*pp)->next)
		if (*pp == r) {
			*pp = r->next;
			break;
		}
	close(r->fd);
	free(r);
}

/* ---- flows ---- */

struct udp_flow *
udp_flow_lookup(const struct udp *u, const union udp_addr *client,
    const union udp_addr *orig, size_t *bucket)
{
	struct udp_flow *f;

	*bucket = udp_bucket(u, client, orig);
	for (f = u->table[*bucket]; f != NULL; f = f->next)
		if (udp_addr_eq(&f->client, client) &&
		    udp_addr_eq(&f->orig, orig))
			return f;
	return NULL;
}

void
udp_flow_unlink(struct udp_flow *f)
{
	struct udp *u = f->udp;
	struct udp_flow **pp;

	for (pp = &u->table[udp_bucket(u, &f->client, &f->orig)];
	    *pp != NULL; pp = &(*pp)->next)
		if (*pp == f) {
			*pp = f->next;
			break;
		}
	TAILQ_REMOVE(&u->flows, f, lru);
	u->nflows--;
}

void
udp_flow_log_end(const struct udp_flow *f, const char *why)
{
	char c[ADDR_STRLEN], o[ADDR_STRLEN];

	log_debug("flow %llu %s: udp %s -> %s: %s, %llu/%llu datagrams "
	    "%llu/%llu bytes up/down, %llu dropped", (unsigned long long)f->id,
	    f->svc->name, addr_str(&f->client.sa, c, sizeof(c)),
	    addr_str(&f->orig.sa, o, sizeof(o)), why,
	    (unsigned long long)f->dg_up, (unsigned long long)f->dg_down,
	    (unsigned long long)f->bytes_up, (unsigned long long)f->bytes_down,
	    (unsigned long long)f->dropped);
}

void
udp_flow_free(struct udp_flow *f)
{
	struct udp *u = f->udp;

	if (f->ending) {
		TAILQ_REMOVE(&u->ending, f, lru);
		u->nending--;
	}
	if (event_initialized(&f->ev))
		event_del(&f->ev);
	if (f->fd != -1)
		close(f->fd);
	udp_tunnel_close(f);
	udp_reply_put(u, f->reply);
	u->sl->stats.bytes_up += f->bytes_up;
	u->sl->stats.bytes_down += f->bytes_down;
	conf_unref(f->conf);
	free(f);
}

/* Out of the table: later datagrams of its client start a new flow. */
void
udp_flow_end(struct udp_flow *f, const char *why)
{
	udp_flow_unlink(f);
	if (f->svc->fwd == FWD_TUNNEL) {
		udp_flow_log_end(f, why);
		udp_tunnel_end(f);
		return;
	}
	udp_flow_log_end(f, why);
	udp_flow_free(f);
}

void
udp_flow_touch(struct udp_flow *f, time_t now)
{
	struct udp *u = f->udp;

	f->last = now;
	/* An ending flow is on the ending list, which keeps no order. */
	if (!f->ending && TAILQ_NEXT(f, lru) != NULL) {
		TAILQ_REMOVE(&u->flows, f, lru);
		TAILQ_INSERT_TAIL(&u->flows, f, lru);
	}
}

static void
udp_evict_oldest(struct udp *u, const char *why)
{
	struct udp_flow *f;

	if ((f = TAILQ_FIRST(&u->flows)) == NULL)
		return;
	u->st.evicted++;
	if (udp_may_warn(u))
		log_warnx("udp: %s (%zu flows): the oldest makes way", why,
		    u->nflows);
	udp_flow_end(f, "evicted for a new flow");
}

/* Replies from the upstream (or the tunnel's socketpair): to the client. */
static void
udp_upstream_read(evutil_socket_t fd, short what, void *arg)
{
	struct udp_flow *f = arg;
	struct udp *u = f->udp;
	uint64_t bytes = 0;
	int n, sent, i, rounds;

	for (rounds = 0; rounds < UDP_ROUNDS; rounds++) {
		if ((n = udp_batch_recv(u, fd, 0)) == -1) {
			/* ICMP for an earlier datagram: the next may pass. */
			if (errno == ECONNREFUSED)
				continue;
			break;
		}
		if (n == 0)
			break;
		for (i = 0; i < n; i++)
			bytes += u->msgs[i].msg_len;
		sent = udp_batch_send(u, f->reply->fd, 0, n, &f->client);
		for (i = sent; i < n; i++)
			bytes -= u->msgs[i].msg_len;
		f->dg_down += sent;
		f->bytes_down += bytes;
		f->dropped += n - sent;
		u->st.dgrams_out += sent;
		u->st.dropped += n - sent;
		bytes = 0;
		udp_flow_touch(f, udp_now());
		if (n < UDP_BATCH)
			break;
	}
}

/* A connected socket of its own, marked so that it is not intercepted. */
static int
udp_direct_socket(struct udp_flow *f, const struct sockaddr *dst)
{
	int fd, saved;

	fd = socket(dst->sa_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	if (fd == -1)
		return -1;
	if (sock_set_mark(fd, f->conf->bypass_mark) == -1 ||
	    connect(fd, dst, addr_len(dst)) == -1) {
		saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	return fd;
}

static int
udp_direct_open(struct udp_flow *f, const struct sockaddr *dst)
{
	udp_addr_set(&f->upstream, dst);
	f->fd = udp_direct_socket(f, dst);
	return f->fd == -1 ? -1 : 0;
}

static const struct service *
udp_service(struct udp *u, const union udp_addr *client,
    const union udp_addr *orig)
{
	struct sluice *sl = u->sl;
	const struct service *svc;

	svc = svc_match(sl->conf, PROTO_UDP, &orig->sa, &client->sa);
	if (svc == NULL && sl->icpt != NULL)
		svc = intercept_match(sl->icpt, sl->conf, PROTO_UDP,
		    &orig->sa, &client->sa);
	return svc;
}

static int
udp_forward_open(struct udp_flow *f)
{
	switch (f->svc->fwd) {
	case FWD_DIRECT:
		return udp_direct_open(f,
		    (const struct sockaddr *)&f->svc->direct.ss);
	case FWD_ORIGINAL:
		return udp_direct_open(f, &f->orig.sa);
	case FWD_TUNNEL:
		return udp_tunnel_open(f);
	default:
		return -1;
	}
}

static void
udp_flow_insert(struct udp_flow *f, size_t bucket)
{
	struct udp *u = f->udp;

	f->next = u->table[bucket];
	u->table[bucket] = f;
	TAILQ_INSERT_TAIL(&u->flows, f, lru);
	u->nflows++;
	u->st.flows++;
}

/*
 * The flow's reply socket and its way forward. On failure nothing is held,
 * errno says why and *what names what failed, or is NULL when the tunnel
 * has logged it.
 */
static int
udp_flow_open(struct udp_flow *f, const char **what)
{
	struct udp *u = f->udp;
	int saved;

	*what = "reply socket";
	if ((f->reply = udp_reply_get(u, &f->orig)) == NULL)
		return -1;
	if (udp_forward_open(f) == 0)
		return 0;
	saved = errno;
	/* A tunnel that got its socketpair logged why it could not open. */
	*what = f->svc->fwd != FWD_TUNNEL ? "upstream socket" :
	    f->fd == -1 ? "socketpair" : NULL;
	udp_reply_put(u, f->reply);
	f->reply = NULL;
	if (f->fd != -1)
		close(f->fd);
	if (f->tfd != -1)
		close(f->tfd);
	f->fd = f->tfd = -1;
	errno = saved;
	return -1;
}

/* Out of descriptors: an old flow gives its sockets up, once. */
static int
udp_flow_open_retry(struct udp_flow *f)
{
	struct udp *u = f->udp;
	char c[ADDR_STRLEN], o[ADDR_STRLEN];
	const char *what;

	if (udp_flow_open(f, &what) == 0)
		return 0;
	if (fd_exhausted(errno) && u->nflows > 0) {
		udp_evict_oldest(u, "out of file descriptors");
		if (udp_flow_open(f, &what) == 0)
			return 0;
	}
	if (what != NULL && udp_may_warn(u))
		log_warn("flow %llu %s: udp %s -> %s: %s",
		    (unsigned long long)f->id, f->svc->name,
		    addr_str(&f->client.sa, c, sizeof(c)),
		    addr_str(&f->orig.sa, o, sizeof(o)), what);
	return -1;
}

static void
udp_flow_log_start(const struct udp_flow *f)
{
	char c[ADDR_STRLEN], o[ADDR_STRLEN], d[ADDR_STRLEN];

	if (!log_enabled(LOG_LVL_DEBUG))
		return;
	log_debug("flow %llu %s: udp %s -> %s: %s%s",
	    (unsigned long long)f->id, f->svc->name,
	    addr_str(&f->client.sa, c, sizeof(c)),
	    addr_str(&f->orig.sa, o, sizeof(o)),
	    f->svc->fwd == FWD_TUNNEL ? "via tunnel" : "direct ",
	    f->svc->fwd == FWD_TUNNEL ? "" :
	    addr_str(&f->upstream.sa, d, sizeof(d)));
}

struct udp_flow *
udp_flow_new(struct udp *u, const union udp_addr *client,
    const union udp_addr *orig, size_t bucket)
{
	const struct service *svc;
	struct udp_flow *f;
	char c[ADDR_STRLEN], o[ADDR_STRLEN];

	if ((svc = udp_service(u, client, orig)) == NULL) {
		u->st.unmatched++;
		log_debug("udp %s -> %s: no service matches, dropped",
		    addr_str(&client->sa, c, sizeof(c)),
		    addr_str(&orig->sa, o, sizeof(o)));
		return NULL;
	}
	if (u->nflows >= u->sl->conf->udp_max_flows)
		udp_evict_oldest(u, "intercept.udp-max-flows reached");
	if ((f = calloc(1, sizeof(*f))) == NULL)
		return NULL;
	f->udp = u;
	f->fd = f->tfd = -1;
	f->id = ++u->sl->next_flow_id;
	f->conf = conf_ref(u->sl->conf);
	f->svc = svc;
	f->client = *client;
	f->orig = *orig;
	f->last = udp_now();
	if (udp_flow_open_retry(f) == -1)
		goto fail;
	event_assign(&f->ev, u->sl->base, f->fd, EV_READ | EV_PERSIST,
	    udp_upstream_read, f);
	if (event_add(&f->ev, NULL) == -1)
		goto fail;
	udp_flow_insert(f, bucket);
	udp_flow_log_start(f);
	return f;
 fail:
	u->st.failed++;
	udp_flow_free(f);
	return NULL;
}
