/* SPDX-License-Identifier: MIT */
/* The nameserver's life and the main thread's side of it: start, messages, stop. */
#include "config.h"

#include <sys/random.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ares.h>
#include <event2/event.h>

#include "dns.h"
#include "log.h"

#define SELF_TEST_ACK_MS	2000	/* the thread takes note of a test name */

struct dns_server {
	/* The main thread's: */
	struct event_base	*main_base;
	struct config		*conf;		/* its reference, for services */
	dns_intercept_cb	 cb;
	void			*cb_arg;
	struct dns_chan		*chan;
	struct endpoint		 bound;
	uint32_t		 seq;
	uint32_t		 acked;		/* last TEST the thread confirmed */
	struct dns_msg		 acks[DNS_CHAN_BATCH];	/* until the commit */
	size_t			 nacks;
	int			 dirty;		/* cb calls since the commit */
	/* Handed to the thread at start, back at stop: */
	struct dns_thread	*thread;
	pthread_t		 tid;
	int			 running;
	int			 ares;		/* ares_library_init() done */
	/* Shared, atomics only: */
	struct dns_stats	 stats;
};

static const char *const stat_names[DNS_ST_MAX] = {
	[DNS_ST_UDP] = "queries-udp",
	[DNS_ST_TCP] = "queries-tcp",
	[DNS_ST_ANSWERED] = "answered",
	[DNS_ST_NODATA] = "nodata",
	[DNS_ST_FORWARDED] = "forwarded",
	[DNS_ST_UPSTREAM_FAILED] = "upstream-failed",
	[DNS_ST_REFUSED] = "refused",
	[DNS_ST_NXDOMAIN] = "nxdomain",
	[DNS_ST_SERVFAIL] = "servfail",
	[DNS_ST_MALFORMED] = "malformed",
	[DNS_ST_NOTIMP] = "notimp",
	[DNS_ST_TRUNCATED] = "truncated",
	[DNS_ST_TCP_CONNS] = "tcp-connections",
	[DNS_ST_TCP_EVICTED] = "tcp-evicted",
	[DNS_ST_OVERLOAD] = "overload",
	[DNS_ST_INTERCEPTS] = "intercepts-asked",
	[DNS_ST_SELF_TEST] = "self-test",
};

const char *
dns_stat_name(int i)
{
	return i >= 0 && i < DNS_ST_MAX && stat_names[i] != NULL ?
	    stat_names[i] : "?";
}

/* ---- the main thread's side of the channel ---- */

/*
 * Ends a batch: the callback installs what it deferred, and only then do
 * the ACKs go; if it cannot, every intercept of the batch failed.
 */
static void
main_commit(void *arg)
{
	struct dns_server *s = arg;
	size_t i;
	int ok = 1;

	if (s->dirty && s->cb(s->cb_arg, 1, NULL, NULL, NULL, 0) == -1)
		ok = 0;
	s->dirty = 0;
	for (i = 0; i < s->nacks; i++) {
		if (!ok)
			s->acks[i].ok = 0;
		if (dns_chan_send(s->chan, &s->acks[i]) == -1)
			log_warn("dns: cannot answer the resolver thread");
	}
	s->nacks = 0;
}

static void
main_intercept(struct dns_server *s, const struct dns_msg *m)
{
	const struct service *svc;
	struct dns_msg *ack;
	char a[INET6_ADDRSTRLEN];

	if (s->nacks == DNS_CHAN_BATCH)
		main_commit(s);		/* cannot happen: batches are smaller */
	svc = conf_service_by_name(s->conf, m->service);
	ack = &s->acks[s->nacks++];
	*ack = *m;
	ack->type = DNS_MSG_ACK;
	ack->ok = svc != NULL && s->cb(s->cb_arg, 1, m->name, svc, &m->addr,
	    m->pool) == 0;
	s->dirty = 1;
	if (svc == NULL)
		log_warnx("dns: %s: service %s is not configured (any more)",
		    m->name, m->service);
	else
		log_debug("dns: %s (%s) intercepted at %s%s%s", m->name,
		    svc->name, inet_ntop(m->addr.family, m->addr.addr, a,
		    sizeof(a)), m->pool ? " (pool)" : "",
		    ack->ok ? "" : ": failed");
}

static void
main_msg(const struct dns_msg *m, void *arg)
{
	struct dns_server *s = arg;

	if (m == NULL) {
		if (s->running)
			log_warnx("dns: the resolver thread has gone");
		return;
	}
	switch (m->type) {
	case DNS_MSG_INTERCEPT:
		main_intercept(s, m);
		break;
	case DNS_MSG_REMOVE:
		log_debug("dns: %s released", m->name);
		s->cb(s->cb_arg, 0, m->name, NULL, &m->addr, m->pool);
		s->dirty = 1;
		break;
	case DNS_MSG_ACK:
		s->acked = m->seq;
		break;
	default:
		log_warnx("dns: unexpected message %u from the resolver thread",
		    m->type);
	}
}

/* ---- start ---- */

static int
dns_bind(const struct config *conf, int type, struct sockaddr_storage *bound)
{
	const struct sockaddr *sa = (const struct sockaddr *)&conf->dns_listen.ss;
	char buf[ADDR_STRLEN];
	int fd, one = 1;

	if ((fd = sock_listen(sa, type, 0, bound)) == -1) {
		log_warn("dns: %s %s", type == SOCK_STREAM ? "tcp" : "udp",
		    addr_str(sa, buf, sizeof(buf)));
		return -1;
	}
	/* Replies leave from the address the query came to (0.0.0.0:53). */
	if (type == SOCK_DGRAM && (sa->sa_family == AF_INET ?
	    setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof(one)) :
	    setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one,
	    sizeof(one))) == -1) {
		log_warn("dns: udp: packet info");
		close(fd);
		return -1;
	}
	return fd;
}

static struct pool *
dns_pool(const struct config *conf, const char *state_dir)
{
	char path[PATH_MAX], buf[INET6_ADDRSTRLEN + 8];
	struct pool *pool;

	if ((size_t)snprintf(path, sizeof(path), "%s/pool", state_dir) >=
	    sizeof(path)) {
		log_warnx("dns: state dir %s: name too long", state_dir);
		return NULL;
	}
	if ((pool = pool_new(&conf->dns_range, path, pool_in_use_host,
	    NULL)) == NULL)
		log_warn("dns: address pool %s in %s",
		    cidr_str(&conf->dns_range, buf, sizeof(buf)), path);
	return pool;
}

/* Before the thread runs: one batch for every exact name's address. */
static void
dns_preinstall_one(void *arg, const char *name, const char *service,
    const struct cidr *addr)
{
	struct dns_server *s = arg;
	const struct service *svc = conf_service_by_name(s->conf, service);

	if (svc == NULL || s->cb(s->cb_arg, 1, name, svc, addr, 1) == -1)
		log_warnx("dns: %s: cannot intercept its address yet; the "
		    "first query tries again", name);
	s->dirty = 1;
}

static size_t
dns_preinstall(struct dns_server *s)
{
	size_t n;

	n = dns_thread_names(s->thread, dns_preinstall_one, s);
	if (s->dirty && s->cb(s->cb_arg, 1, NULL, NULL, NULL, 0) == -1)
		log_warnx("dns: the exact names' addresses cannot be "
		    "intercepted yet; their first queries try again");
	s->dirty = 0;
	return n;
}

/* The resolver thread takes no signals: they are the main loop's. */
static void *
dns_thread_main(void *arg)
{
	dns_thread_run(arg);
	return NULL;
}

static int
dns_spawn(struct dns_server *s)
{
	sigset_t all, old;
	int rc;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	rc = pthread_create(&s->tid, NULL, dns_thread_main, s->thread);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		errno = rc;
		log_warn("dns: cannot start the resolver thread");
		return -1;
	}
	s->running = 1;
	return 0;
}

static int
dns_open(struct dns_server *s, struct config *conf, const char *state_dir,
    int *udp, int *tcp, int sv[2])
{
	struct sockaddr_storage ss;
	char buf[ADDR_STRLEN];

	if ((*udp = dns_bind(conf, SOCK_DGRAM, &ss)) == -1)
		return -1;
	s->bound.ss = ss;
	s->bound.len = addr_len((struct sockaddr *)&ss);
	if ((*tcp = dns_bind(conf, SOCK_STREAM, NULL)) == -1)
		return -1;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0, sv) == -1) {
		log_warn("dns: socketpair");
		return -1;
	}
	log_info("dns: listening on udp and tcp %s", addr_str(
	    (struct sockaddr *)&s->bound.ss, buf, sizeof(buf)));
	return 0;
}

struct dns_server *
dns_server_start(struct event_base *main_base, struct config *conf,
    const char *state_dir, unsigned families, dns_intercept_cb cb, void *arg)
{
	struct dns_server *s;
	struct pool *pool = NULL;
	char a[INET6_ADDRSTRLEN + 8];
	int udp = -1, tcp = -1, sv[2] = { -1, -1 };
	size_t n;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		return NULL;
	s->main_base = main_base;
	s->cb = cb;
	s->cb_arg = arg;
	s->conf = conf_ref(conf);
	if ((families & DNS_FAMILY(conf->dns_range.family)) == 0)
		log_warnx("dns: ip-range %s: no transparent listener of its "
		    "family: service names get no addresses", cidr_str(
		    &conf->dns_range, a, sizeof(a)));
	if (ares_library_init(ARES_LIB_INIT_ALL) != ARES_SUCCESS)
		goto fail;
	s->ares = 1;
	if (dns_open(s, conf, state_dir, &udp, &tcp, sv) == -1 ||
	    (pool = dns_pool(conf, state_dir)) == NULL)
		goto fail;
	s->thread = dns_thread_new(conf_ref(conf), pool, families, udp, tcp,
	    sv[1], &s->stats);
	udp = tcp = sv[1] = -1;			/* the thread's now */
	if (s->thread == NULL) {
		conf_unref(conf);
		goto fail;
	}
	pool = NULL;
	if ((s->chan = dns_chan_new(main_base, sv[0], main_msg, main_commit,
	    s)) == NULL)
		goto fail;
	sv[0] = -1;
	n = dns_preinstall(s);
	if (dns_spawn(s) == -1)
		goto fail;
	log_info("dns: %zu exact names have pool addresses; upstream %s, "
	    "hostnames %s", n, conf->ndns_upstream > 0 ? "on" : "off",
	    conf->dns_hostnames == DNS_HOSTNAMES_REAL ? "real" : "pool");
	return s;
fail:
	if (udp != -1)
		close(udp);
	if (tcp != -1)
		close(tcp);
	if (sv[0] != -1)
		close(sv[0]);
	if (sv[1] != -1)
		close(sv[1]);
	pool_free(pool);
	dns_server_stop(s);
	return NULL;
}

/* ---- reload, stop ---- */

void
dns_server_reload(struct dns_server *s, struct config *conf)
{
	struct dns_msg m;

	conf_unref(s->conf);
	s->conf = conf_ref(conf);
	memset(&m, 0, sizeof(m));
	m.type = DNS_MSG_RELOAD;
	m.conf = conf_ref(conf);
	if (dns_chan_send(s->chan, &m) == -1) {
		log_warn("dns: reload: cannot tell the resolver thread");
		conf_unref(conf);
	}
}

/*
 * The thread stops when it reads EOF, after the messages already sent;
 * nothing it sends afterwards matters, so none is read.
 */
void
dns_server_stop(struct dns_server *s)
{
	if (s == NULL)
		return;
	if (s->running) {
		dns_chan_shutdown(s->chan);
		s->running = 0;
		pthread_join(s->tid, NULL);
	}
	dns_thread_free(s->thread);	/* saves the pool */
	dns_chan_free(s->chan);
	if (s->ares)
		ares_library_cleanup();
	conf_unref(s->conf);
	free(s);
}

/* ---- self-test ---- */

/* Tells the thread about the test name and waits until it has taken it. */
static int
self_test_set(struct dns_server *s, const char *name,
    const struct cidr *addr, int add)
{
	struct dns_msg m;
	int i;

	memset(&m, 0, sizeof(m));
	m.type = DNS_MSG_TEST;
	m.seq = ++s->seq;
	m.ok = add;
	m.addr = *addr;
	snprintf(m.name, sizeof(m.name), "%s", name);
	if (dns_chan_send(s->chan, &m) == -1)
		return -1;
	for (i = 0; i < SELF_TEST_ACK_MS / 100 && s->acked != m.seq; i++)
		if (dns_chan_poll(s->chan, 100) == -1)
			return -1;
	return s->acked == m.seq ? 0 : -1;
}

/* A name nobody else has, and an address from TEST-NET-2 (RFC 5737). */
static void
self_test_name(char *name, size_t len, struct cidr *addr)
{
	uint8_t r[5];
	size_t i;

	if (getrandom(r, sizeof(r), 0) != sizeof(r))
		for (i = 0; i < sizeof(r); i++)
			r[i] = (uint8_t)(rand() >> 3);
	snprintf(name, len, "sluice-%02x%02x%02x%02x." DNS_SELF_TEST_DOMAIN,
	    r[0], r[1], r[2], r[3]);
	memset(addr, 0, sizeof(*addr));
	addr->family = AF_INET;
	addr->prefixlen = 32;
	addr->addr[0] = 198;
	addr->addr[1] = 51;
	addr->addr[2] = 100;
	addr->addr[3] = (uint8_t)(1 + r[4] % 254);
}

/* 0 if getaddrinfo gave addr for name; else *why says what it gave. */
static int
self_test_lookup(const char *name, const struct cidr *addr, char *why,
    size_t len)
{
	struct addrinfo hints, *res, *ai;
	struct cidr got;
	char a[INET6_ADDRSTRLEN + 8], b[INET6_ADDRSTRLEN + 8];
	int rc;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_INET;
	hints.ai_socktype = SOCK_STREAM;
	if ((rc = getaddrinfo(name, NULL, &hints, &res)) != 0) {
		snprintf(why, len, "%s", rc == EAI_SYSTEM ? strerror(errno) :
		    gai_strerror(rc));
		return -1;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		cidr_from_sockaddr(&got, ai->ai_addr);
		if (memcmp(got.addr, addr->addr, 4) == 0) {
			freeaddrinfo(res);
			return 0;
		}
	}
	snprintf(why, len, "it resolved to %s, not to %s",
	    inet_ntop(AF_INET, got.addr, a, sizeof(a)),
	    inet_ntop(AF_INET, addr->addr, b, sizeof(b)));
	freeaddrinfo(res);
	return -1;
}

int
dns_server_self_test(struct dns_server *s)
{
	char name[DNS_TEXT_MAX + 1], why[128], a[INET6_ADDRSTRLEN + 8];
	struct cidr addr;
	uint64_t seen;
	int rc;

	self_test_name(name, sizeof(name), &addr);
	if (self_test_set(s, name, &addr, 1) == -1) {
		log_warnx("dns: self-test: the resolver thread does not "
		    "answer");
		return -1;
	}
	/* Not intercepted: the callback only lists it (hosts file). */
	s->cb(s->cb_arg, 1, name, NULL, &addr, 0);
	s->cb(s->cb_arg, 1, NULL, NULL, NULL, 0);
	seen = dns_stat_get(&s->stats, DNS_ST_SELF_TEST);
	rc = self_test_lookup(name, &addr, why, sizeof(why));
	seen = dns_stat_get(&s->stats, DNS_ST_SELF_TEST) - seen;
	s->cb(s->cb_arg, 0, name, NULL, &addr, 0);
	s->cb(s->cb_arg, 1, NULL, NULL, NULL, 0);
	(void)self_test_set(s, name, &addr, 0);
	inet_ntop(AF_INET, addr.addr, a, sizeof(a));
	if (rc == 0) {
		log_info("dns: self-test passed: %s resolved to %s through "
		    "the system resolver%s", name, a, seen > 0 ? "" :
		    " (from the hosts file)");
		return 0;
	}
	log_warnx("dns: self-test failed: looking up %s through the system "
	    "resolver: %s", name, why);
	if (seen > 0)
		log_warnx("dns: the system resolver asked this nameserver but "
		    "did not use its answer (look at /etc/nsswitch.conf and "
		    "any caching resolver in between)");
	else
		log_warnx("dns: the system resolver never asked this "
		    "nameserver (listening on %s)", addr_str((struct sockaddr *)
		    &s->bound.ss, a, sizeof(a)));
	return -1;
}

/* ---- dump ---- */

void
dns_server_dump(struct dns_server *s, FILE *fp)
{
	const struct config *c = s->conf;
	char buf[ADDR_STRLEN];
	size_t i;

	fprintf(fp, "\ndns:\n  listening on udp and tcp %s\n", addr_str(
	    (struct sockaddr *)&s->bound.ss, buf, sizeof(buf)));
	fprintf(fp, "  ip-range %s, hostnames %s, ttl %u, unknown %s\n",
	    cidr_str(&c->dns_range, buf, sizeof(buf)),
	    c->dns_hostnames == DNS_HOSTNAMES_REAL ? "real" : "pool",
	    c->dns_ttl, c->dns_unknown == DNS_UNKNOWN_NXDOMAIN ? "nxdomain" :
	    "refused");
	fprintf(fp, "  upstream");
	if (c->ndns_upstream == 0)
		fprintf(fp, " none (recursion not available)");
	for (i = 0; i < c->ndns_upstream; i++)
		fprintf(fp, " %s", addr_str((const struct sockaddr *)
		    &c->dns_upstream[i].ss, buf, sizeof(buf)));
	fprintf(fp, "\n  counters:");
	for (i = 0; i < DNS_ST_MAX; i++)
		fprintf(fp, "%s%s %llu", i % 4 == 0 ? "\n    " : ", ",
		    dns_stat_name((int)i),
		    (unsigned long long)dns_stat_get(&s->stats, i));
	fprintf(fp, "\n");
}
