/* SPDX-License-Identifier: MIT */
/* One intercepted TCP connection: dial the upstream, relay, account, close. */
#include "config.h"

#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "sluice.h"
#include "log.h"
#include "tunnel.h"

#define FLOW_CONNECT_TIMEOUT	10	/* seconds, if the config has 0 */

/* Big enough for either family; a sockaddr_storage per address is waste. */
union flow_addr {
	struct sockaddr		sa;
	struct sockaddr_in	sin;
	struct sockaddr_in6	sin6;
};

struct flow {
	TAILQ_ENTRY(flow)	 entry;
	struct sluice		*sl;
	struct config		*conf;	/* referenced: svc is in it */
	const struct service	*svc;
	uint64_t		 id;
	union flow_addr		 client, orig, upstream;
	struct timespec		 start;
	int			 cfd, ufd;
	int			 clean;	/* both directions saw EOF */
	struct relay		*relay;	/* NULL while connecting */
	struct event		 dial;	/* EV_WRITE, connect timeout */
	/* forward: tunnel; ufd is then the tunnel connection's socket. */
	struct tunnel_req	*treq;	/* while the tunnel opens */
	SSL			*ssl;
	struct relay_tls	*trelay;
	size_t			 first_up;	/* sent with the opening */
};

/* Both endpoints and the upstream, for messages. */
struct flow_names {
	char	client[ADDR_STRLEN], orig[ADDR_STRLEN];
	char	upstream[ADDR_STRLEN];
};

static void
flow_names(const struct flow *f, struct flow_names *n)
{
	addr_str(&f->client.sa, n->client, sizeof(n->client));
	addr_str(&f->orig.sa, n->orig, sizeof(n->orig));
	addr_str(&f->upstream.sa, n->upstream, sizeof(n->upstream));
}

static void
flow_addr_set(union flow_addr *u, const struct sockaddr *sa)
{
	socklen_t len = addr_len(sa);

	memset(u, 0, sizeof(*u));
	if (len > 0 && len <= sizeof(*u))
		memcpy(u, sa, len);
}

static int	flow_refuse(struct flow *, const char *);

static double
flow_age(const struct flow *f)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - f->start.tv_sec) +
	    (now.tv_nsec - f->start.tv_nsec) / 1e9;
}

/*
 * Frees the flow; the client gets a reset at once rather than wait for a
 * timeout of its own. Returns -1 for the caller's convenience.
 */
static int
flow_dial_failed(struct flow *f, const char *what, const char *why)
{
	struct flow_names n;
	int saved = errno;

	flow_names(f, &n);
	/* A tunnel that never opened has no upstream: the reason says who. */
	if (f->upstream.sa.sa_family == AF_UNSPEC)
		log_warnx("flow %llu %s: %s -> %s: %s: %s",
		    (unsigned long long)f->id, f->svc->name, n.client, n.orig,
		    what, why);
	else
		log_warnx("flow %llu %s: %s -> %s: upstream %s: %s: %s",
		    (unsigned long long)f->id, f->svc->name, n.client, n.orig,
		    n.upstream, what, why);
	f->sl->stats.dial_failed++;
	flow_free(f);
	errno = saved;
	return -1;
}

/*
 * A busy gateway must not log every flow at the default level: a clean end
 * or a peer's reset is debug; only our own failure (no pipe) is a warning.
 */
static void	flow_log(int warn, const char *, ...)
		    __attribute__((format(printf, 2, 3)));

static void
flow_log(int warn, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (warn)
		log_warnx("%s", msg);
	else
		log_debug("%s", msg);
}

static void
flow_relay_done(struct relay *r, void *arg)
{
	struct flow *f = arg;
	struct flow_names n;
	uint64_t up, down;
	char how[96];
	int err, side, warn;

	err = relay_error(r, &side);
	f->clean = err == 0;
	warn = err != 0 && side == -1;
	if (log_enabled(warn ? LOG_LVL_WARN : LOG_LVL_DEBUG)) {
		if (err == 0)
			snprintf(how, sizeof(how), "closed");
		else
			snprintf(how, sizeof(how), "reset: %s: %s",
			    side == 0 ? "client" : side == 1 ? "upstream" :
			    "relay", strerror(err));
		relay_bytes(r, &up, &down);
		flow_names(f, &n);
		flow_log(warn, "flow %llu %s: %s -> %s %s: up %llu down %llu "
		    "bytes in %.2f s", (unsigned long long)f->id, f->svc->name,
		    n.client, n.orig, how, (unsigned long long)up,
		    (unsigned long long)down, flow_age(f));
	}
	flow_free(f);
}

static int
flow_open(struct flow *f)
{
	struct flow_names n;

	f->relay = relay_new(f->sl->base, f->sl->pipes, f->cfd, f->ufd,
	    flow_relay_done, f);
	if (f->relay == NULL)
		return flow_dial_failed(f, "relay", strerror(errno));
	if (log_enabled(LOG_LVL_DEBUG)) {
		flow_names(f, &n);
		log_debug("flow %llu %s: %s -> %s: open via %s",
		    (unsigned long long)f->id, f->svc->name, n.client, n.orig,
		    n.upstream);
	}
	return 0;
}

static unsigned
flow_connect_timeout(const struct flow *f)
{
	return f->conf->connect_timeout ? f->conf->connect_timeout :
	    FLOW_CONNECT_TIMEOUT;
}

/*
 * The dial event waits for readable too: a failed connect is both, a
 * completed one only writable (unless the upstream spoke at once), so
 * the common case needs no getsockopt(SO_ERROR).
 */
static void
flow_connected(evutil_socket_t fd, short what, void *arg)
{
	struct flow *f = arg;
	socklen_t len = sizeof(int);
	char why[64];
	int err = 0;

	if (what & EV_TIMEOUT) {
		snprintf(why, sizeof(why), "no answer in %u s",
		    flow_connect_timeout(f));
		flow_dial_failed(f, "connect", why);
		return;
	}
	if ((what & (EV_READ | EV_CLOSED)) &&
	    getsockopt(f->ufd, SOL_SOCKET, SO_ERROR, &err, &len) == -1)
		err = errno;
	if (err != 0) {
		flow_dial_failed(f, "connect", strerror(err));
		return;
	}
	/*
	 * The relay's read event on ufd joins the dial's registration
	 * before the dial leaves it: one epoll change instead of two.
	 */
	if (flow_open(f) == 0)
		event_del(&f->dial);
}

/* Options of the upstream socket; 0, or -1 after flow_dial_failed(). */
static int
flow_sockopts(struct flow *f)
{
	int one = 1;

	/*
	 * Our own dial must not be intercepted again. Without interception
	 * in this process (proxy, host) the mark is only a courtesy, and an
	 * unprivileged user may not set it.
	 */
	if (sock_set_mark(f->ufd, f->conf->bypass_mark) == -1 &&
	    f->sl->nf != NULL)
		return flow_dial_failed(f, "mark", strerror(errno));
	/* Short requests must not wait for Nagle (the client side inherits
	 * TCP_NODELAY from the listener). */
	(void)setsockopt(f->ufd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return 0;
}

/*
 * Starts a nonblocking connect; the rest happens in callbacks. Returns 0,
 * or -1 when the flow failed and is gone.
 */
static int
flow_dial(struct flow *f, const struct sockaddr *dst)
{
	struct timeval tv = { flow_connect_timeout(f), 0 };

	flow_addr_set(&f->upstream, dst);
	f->ufd = socket(dst->sa_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0);
	/* EMFILE too: this flow fails, the listener backs off on its own. */
	if (f->ufd == -1)
		return flow_dial_failed(f, "socket", strerror(errno));
	if (flow_sockopts(f) == -1)
		return -1;
	switch (sock_connect(f->ufd, dst)) {
	case 1:
		return flow_open(f);
	case -1:
		return flow_dial_failed(f, "connect", strerror(errno));
	}
	/* Registered as the relay will want ufd (see flow_connected). */
	if (event_assign(&f->dial, f->sl->base, f->ufd, EV_READ | EV_WRITE |
	    EV_CLOSED | EV_PERSIST, flow_connected, f) == -1 ||
	    event_add(&f->dial, &tv) == -1)
		return flow_dial_failed(f, "connect", "cannot add event");
	return 0;
}

/* ---- forward: tunnel ---- */

static void
flow_tunnel_done(struct relay_tls *r, void *arg)
{
	struct flow *f = arg;
	struct flow_names n;
	uint64_t up, down;
	const char *detail;
	char how[200];
	int err, side;

	err = relay_tls_error(r, &side, &detail);
	f->clean = err == 0;
	if (log_enabled(LOG_LVL_DEBUG)) {
		if (err == 0)
			snprintf(how, sizeof(how), "closed");
		else
			snprintf(how, sizeof(how), "reset: %s: %s%s%s",
			    side == 0 ? "client" : side == 1 ? "tunnel" :
			    "relay", strerror(err), *detail ? ": " : "",
			    detail);
		relay_tls_bytes(r, &up, &down);
		flow_names(f, &n);
		log_debug("flow %llu %s: %s -> %s %s: up %llu down %llu bytes "
		    "in %.2f s", (unsigned long long)f->id, f->svc->name,
		    n.client, n.orig, how, (unsigned long long)up,
		    (unsigned long long)down, flow_age(f));
	}
	flow_free(f);
}

static void
flow_tunnel_ready(void *arg, SSL *ssl, const struct sockaddr *host,
    int status, const char *reason)
{
	struct flow *f = arg;
	struct flow_names n;

	f->treq = NULL;
	if (ssl == NULL) {
		flow_dial_failed(f, "tunnel", reason);
		return;
	}
	f->ssl = ssl;
	f->ufd = SSL_get_fd(ssl);
	flow_addr_set(&f->upstream, host);
	f->trelay = relay_tls_new(f->sl->base, f->cfd, ssl, NULL, 0,
	    f->conf->idle_timeout, flow_tunnel_done, f);
	if (f->trelay == NULL) {
		flow_dial_failed(f, "relay", strerror(errno));
		return;
	}
	relay_tls_sent(f->trelay, f->first_up, f->first_up < TUNNEL_FIRST_MAX);
	if (log_enabled(LOG_LVL_DEBUG)) {
		flow_names(f, &n);
		log_debug("flow %llu %s: %s -> %s: open via tunnel %s, %zu "
		    "bytes with the opening", (unsigned long long)f->id,
		    f->svc->name, n.client, n.orig, n.upstream, f->first_up);
	}
}

/*
 * What the client has sent already (a request, as a rule: clients speak
 * first) goes with the opening, saving the host a wakeup and the tunnel a
 * record. A client gone already ends the flow here: its reset, read now,
 * would otherwise look like a clean end to the relay.
 */
static int
flow_tunnel(struct flow *f)
{
	uint8_t first[TUNNEL_FIRST_MAX];
	struct flow_names n;
	const char *why;
	ssize_t got;

	if (f->sl->tunnel == NULL)
		return flow_refuse(f, "no tunnel (identity missing)");
	do {
		got = recv(f->cfd, first, sizeof(first), 0);
	} while (got == -1 && errno == EINTR);
	if (got == -1 && errno != EAGAIN) {
		flow_names(f, &n);
		flow_log(0, "flow %llu %s: %s -> %s: reset: client: %s",
		    (unsigned long long)f->id, f->svc->name, n.client, n.orig,
		    strerror(errno));
		flow_free(f);
		errno = ECONNRESET;	/* not a shortage: the listener goes on */
		return -1;
	}
	f->first_up = got > 0 ? (size_t)got : 0;
	f->treq = tunnel_open(f->sl->tunnel, f->svc, IPPROTO_TCP,
	    &f->client.sa, &f->orig.sa, first, f->first_up, flow_tunnel_ready,
	    f, &why);
	if (f->treq == NULL)
		return flow_dial_failed(f, "tunnel", why);
	return 0;
}

static struct flow *
flow_new(struct sluice *sl, int client_fd, const struct service *svc,
    const struct sockaddr *client, const struct sockaddr *orig_dst)
{
	struct flow *f;

	if ((f = calloc(1, sizeof(*f))) == NULL)
		return NULL;
	f->sl = sl;
	f->conf = conf_ref(sl->conf);
	f->svc = svc;
	f->id = ++sl->next_flow_id;
	flow_addr_set(&f->client, client);
	flow_addr_set(&f->orig, orig_dst);
	clock_gettime(CLOCK_MONOTONIC, &f->start);
	f->cfd = client_fd;
	f->ufd = -1;
	TAILQ_INSERT_TAIL(&sl->flows, f, entry);
	sl->nflows++;
	return f;
}

/* A flow that cannot be forwarded at all: reset the client. */
static int
flow_refuse(struct flow *f, const char *why)
{
	struct flow_names n;

	flow_names(f, &n);
	log_warnx("flow %llu %s: %s -> %s: %s", (unsigned long long)f->id,
	    f->svc->name, n.client, n.orig, why);
	f->sl->stats.dial_failed++;
	flow_free(f);
	errno = ECONNREFUSED;	/* not a shortage: the listener goes on */
	return -1;
}

struct flow *
flow_start(struct sluice *sl, int client_fd, const struct service *svc,
    const struct sockaddr *client, const struct sockaddr *orig_dst)
{
	struct flow *f;
	char a[ADDR_STRLEN], b[ADDR_STRLEN];
	int rc;

	if ((f = flow_new(sl, client_fd, svc, client, orig_dst)) == NULL) {
		log_warn("flow %s: %s -> %s: cannot start", svc->name,
		    addr_str(client, a, sizeof(a)),
		    addr_str(orig_dst, b, sizeof(b)));
		sl->stats.dial_failed++;
		sock_close_reset(client_fd);
		return NULL;
	}
	switch (svc->fwd) {
	case FWD_DIRECT:
		rc = flow_dial(f, (const struct sockaddr *)&svc->direct.ss);
		break;
	case FWD_ORIGINAL:
		rc = flow_dial(f, orig_dst);
		break;
	case FWD_TUNNEL:
		rc = flow_tunnel(f);
		break;
	default:
		rc = flow_refuse(f, "the service has no forward");
		break;
	}
	return rc == -1 ? NULL : f;
}

void
flow_free(struct flow *f)
{
	struct sluice *sl;
	uint64_t up, down;

	if (f == NULL)
		return;
	sl = f->sl;
	if (f->relay != NULL) {
		relay_bytes(f->relay, &up, &down);
		sl->stats.bytes_up += up;
		sl->stats.bytes_down += down;
		relay_free(f->relay);
	}
	if (f->trelay != NULL) {
		relay_tls_bytes(f->trelay, &up, &down);
		sl->stats.bytes_up += up;
		sl->stats.bytes_down += down;
		relay_tls_free(f->trelay);
	}
	tunnel_cancel(f->treq);
	/* A clean end leaves the tunnel connection fit for the next flow. */
	if (f->ssl != NULL && f->clean && sl->tunnel != NULL)
		tunnel_conn_release(sl->tunnel, f->ssl, &f->upstream.sa);
	else if (f->ssl != NULL)
		tunnel_conn_close(f->ssl, f->clean);
	if (f->ssl != NULL)
		f->ufd = -1;
	if (event_initialized(&f->dial))
		event_del(&f->dial);
	/* Anything but a clean end must look like a failure to both peers. */
	if (f->clean) {
		close(f->cfd);
		if (f->ufd != -1)
			close(f->ufd);
	} else {
		sock_close_reset(f->cfd);
		sock_close_reset(f->ufd);
	}
	TAILQ_REMOVE(&sl->flows, f, entry);
	sl->nflows--;
	conf_unref(f->conf);
	free(f);
}

void
flow_free_all(struct sluice *sl)
{
	struct flow *f;

	while ((f = TAILQ_FIRST(&sl->flows)) != NULL)
		flow_free(f);
}

/*
 * After a reload: a flow whose service is gone has lost its rules, so the
 * client's next packets would go to the real server. End it openly.
 */
size_t
flow_close_orphans(struct sluice *sl)
{
	struct flow *f, *next;
	size_t n = 0;

	for (f = TAILQ_FIRST(&sl->flows); f != NULL; f = next) {
		next = TAILQ_NEXT(f, entry);
		if (conf_service_by_name(sl->conf, f->svc->name) != NULL)
			continue;
		log_debug("flow %llu %s: service removed, reset",
		    (unsigned long long)f->id, f->svc->name);
		flow_free(f);
		n++;
	}
	return n;
}

static const char *
flow_state(const struct flow *f)
{
	if (f->trelay != NULL)
		return relay_tls_state(f->trelay) == 0 ? "open" :
		    "half-closed";
	if (f->relay == NULL)
		return "connecting";
	return relay_state(f->relay) == 0 ? "open" : "half-closed";
}

void
flow_dump(const struct flow *f, FILE *fp)
{
	struct flow_names n;
	uint64_t up = 0, down = 0;

	if (f->relay != NULL)
		relay_bytes(f->relay, &up, &down);
	if (f->trelay != NULL)
		relay_tls_bytes(f->trelay, &up, &down);
	flow_names(f, &n);
	fprintf(fp, "  flow %llu %s: %s -> %s via %s%s, %s, up %llu down %llu "
	    "bytes, age %.0f s\n", (unsigned long long)f->id, f->svc->name,
	    n.client, n.orig, f->svc->fwd == FWD_TUNNEL ? "tunnel " : "",
	    f->svc->fwd == FWD_TUNNEL && f->ssl == NULL ? "-" : n.upstream,
	    flow_state(f),
	    (unsigned long long)up, (unsigned long long)down, flow_age(f));
}

/* Per service first (a busy gateway's list is long), then each flow. */
void
flow_dump_all(struct sluice *sl, FILE *fp)
{
	const struct service *svc;
	const struct flow *f;
	size_t n;

	TAILQ_FOREACH(svc, &sl->conf->services, entry) {
		n = 0;
		TAILQ_FOREACH(f, &sl->flows, entry)
			if (strcmp(f->svc->name, svc->name) == 0)
				n++;
		if (n > 0)
			fprintf(fp, "  service %s: %zu flows\n", svc->name, n);
	}
	TAILQ_FOREACH(f, &sl->flows, entry)
		flow_dump(f, fp);
}
