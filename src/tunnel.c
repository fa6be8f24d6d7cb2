/* SPDX-License-Identifier: MIT */
/*
 * The tunneller's side of the tunnel: TLS connections to sluice hosts, a
 * small pool of them ready per host, failover in order with back-off, and
 * the opening exchange that hands a connection to a flow.
 */
#include "config.h"

#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/event_struct.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "sluice.h"
#include "log.h"
#include "tunnel.h"

/*
 * Connections kept ready per host once it has carried a flow: a flow
 * then waits only for its opening exchange, not for TCP and TLS set-up.
 * They are retired before the host would time them out (HOST_WAIT_OPEN).
 */
#define POOL_SIZE		4
#define POOL_MAX_AGE		45	/* seconds */
#define BACKOFF_MIN		1	/* seconds a failed host is skipped */
#define BACKOFF_MAX		30
/* Dead hosts under live flows are noticed within about a minute. */
#define KEEPALIVE_IDLE		30
#define KEEPALIVE_INTVL		10
#define KEEPALIVE_CNT		3
/* Ready connections kept per host, fresh or given back by flows. */
#define POOL_MAX_IDLE		64

struct thost {
	TAILQ_ENTRY(thost)	 entry;
	struct tunnel		*t;
	struct sockaddr_storage	 addr;
	char			 name[ADDR_STRLEN];
	int64_t			 down_until;	/* backing off until (ms) */
	unsigned		 backoff;	/* seconds, next time */
	char			 last_error[128];
	SSL_SESSION		*session;	/* the newest ticket */
	int			 used;		/* has carried a flow */
	unsigned		 nidle, nwarming;
	uint64_t		 connects, failures, flows, refused;
	uint64_t		 resumed, reused;
};

enum tconn_state { TC_CONNECT, TC_HANDSHAKE, TC_IDLE, TC_OPEN_SEND,
	TC_OPEN_RECV };

struct tconn {
	TAILQ_ENTRY(tconn)	 entry;		/* tunnel's list */
	struct thost		*h;
	struct tunnel_req	*req;		/* NULL: a pool connection */
	enum tconn_state	 state;
	int			 fd;
	SSL			*ssl;
	struct event		 ev;
	time_t			 born;
	int			 warming;	/* a pool connection, not ready */
	int			 pooled;	/* was ready in the pool */
	struct timeval		 deadline;	/* of the current stage */
	uint8_t			*out;		/* the opening, first bytes */
	size_t			 nout;
	uint8_t			*in;		/* the reply, and what follows */
	size_t			 nin;
};

struct tunnel_req {
	struct tunnel		*t;
	const struct service	*svc;
	struct tmsg_open	 msg;
	size_t			 nfirst;
	size_t			 next;		/* svc->tunnel index to try */
	int			 pooled_retry;	/* a stale pool conn failed */
	struct tconn		*c;
	tunnel_cb		 cb;
	void			*arg;
	const char		*why;		/* for tunnel_open's caller */
	char			 whybuf[192];
	uint8_t			 first[];	/* nfirst bytes */
};

struct tunnel {
	struct sluice		*sl;
	SSL_CTX			*ctx;
	TAILQ_HEAD(, thost)	 hosts;
	TAILQ_HEAD(, tconn)	 conns;
	size_t			 nconns;
};

static void	tconn_event(evutil_socket_t, short, void *);
static void	tconn_free(struct tconn *, int reset);
static int	req_try(struct tunnel_req *);
static void	req_fail(struct tunnel_req *, int status, const char *why);
static void	thost_refill(struct thost *);

static time_t
now_sec(const struct tunnel *t)
{
	struct timeval tv;

	event_base_gettimeofday_cached(t->sl->base, &tv);
	return tv.tv_sec;
}

/* Back-off in whole seconds from now would end up to a second early. */
static int64_t
now_ms(const struct tunnel *t)
{
	struct timeval tv;

	event_base_gettimeofday_cached(t->sl->base, &tv);
	return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

/* ---- hosts ---- */

static struct thost *
thost_get(struct tunnel *t, const struct endpoint *ep)
{
	struct thost *h;

	TAILQ_FOREACH(h, &t->hosts, entry)
		if (memcmp(&h->addr, &ep->ss, ep->len) == 0)
			return h;
	if ((h = calloc(1, sizeof(*h))) == NULL)
		return NULL;
	h->t = t;
	memcpy(&h->addr, &ep->ss, ep->len);
	addr_str((struct sockaddr *)&h->addr, h->name, sizeof(h->name));
	h->backoff = BACKOFF_MIN;
	TAILQ_INSERT_TAIL(&t->hosts, h, entry);
	return h;
}

static int
thost_down(const struct thost *h)
{
	return h->down_until > now_ms(h->t);
}

/* A host that failed is skipped for a while, longer each time. */
static void
thost_failed(struct thost *h, const char *why)
{
	h->failures++;
	snprintf(h->last_error, sizeof(h->last_error), "%s", why);
	if (!thost_down(h))
		log_warnx("tunnel %s: %s; skipped for %u s", h->name, why,
		    h->backoff);
	h->down_until = now_ms(h->t) + (int64_t)h->backoff * 1000;
	h->backoff = h->backoff * 2 > BACKOFF_MAX ? BACKOFF_MAX :
	    h->backoff * 2;
}

static void
thost_ok(struct thost *h)
{
	if (h->down_until != 0)
		log_info("tunnel %s: reachable again", h->name);
	h->down_until = 0;
	h->backoff = BACKOFF_MIN;
	h->last_error[0] = '\0';
}

/* ---- connections ---- */

static unsigned
tconn_timeout(const struct tconn *c)
{
	const struct config *conf = c->h->t->sl->conf;

	return conf->connect_timeout ? conf->connect_timeout : 10;
}

/* Waits for what on c->fd until the stage's deadline. */
static int
tconn_wait(struct tconn *c, short what)
{
	struct timeval now, left;
	int same;

	/* Already waiting for what: only the deadline moves (no epoll_ctl). */
	same = event_initialized(&c->ev) && event_get_events(&c->ev) == what &&
	    event_pending(&c->ev, what, NULL);
	if (event_initialized(&c->ev) && !same)
		event_del(&c->ev);
	event_base_gettimeofday_cached(c->h->t->sl->base, &now);
	if (c->state == TC_IDLE) {
		left.tv_sec = POOL_MAX_AGE - (now.tv_sec - c->born);
		left.tv_usec = 0;
		if (left.tv_sec <= 0)
			left.tv_sec = 1;
	} else {
		timersub(&c->deadline, &now, &left);
		if (left.tv_sec < 0)
			left.tv_sec = left.tv_usec = 0;
	}
	if (!same && event_assign(&c->ev, c->h->t->sl->base, c->fd, what,
	    tconn_event, c) == -1)
		return -1;
	return event_add(&c->ev, &left) == -1 ? -1 : 0;
}

static void
tconn_stage(struct tconn *c, enum tconn_state state)
{
	c->state = state;
	event_base_gettimeofday_cached(c->h->t->sl->base, &c->deadline);
	c->deadline.tv_sec += tconn_timeout(c);
}

static int
tconn_sockopts(struct tconn *c)
{
	struct sluice *sl = c->h->t->sl;
	int one = 1, idle = KEEPALIVE_IDLE, intvl = KEEPALIVE_INTVL;
	int cnt = KEEPALIVE_CNT;

	/* Intercepting ourselves would loop; without rules it is moot. */
	if (sock_set_mark(c->fd, sl->conf->bypass_mark) == -1 &&
	    sl->nf != NULL)
		return -1;
	(void)setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	(void)setsockopt(c->fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	(void)setsockopt(c->fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle,
	    sizeof(idle));
	(void)setsockopt(c->fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl,
	    sizeof(intvl));
	(void)setsockopt(c->fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
	return 0;
}

/* Starts a TCP connection to h; the TLS handshake follows. */
static struct tconn *
tconn_new(struct thost *h, struct tunnel_req *req, const char **why)
{
	struct tunnel *t = h->t;
	const struct sockaddr *sa = (const struct sockaddr *)&h->addr;
	struct tconn *c;

	if ((c = calloc(1, sizeof(*c))) == NULL) {
		*why = "out of memory";
		return NULL;
	}
	c->h = h;
	c->req = req;
	c->fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0);
	c->born = now_sec(t);
	TAILQ_INSERT_TAIL(&t->conns, c, entry);
	t->nconns++;
	h->connects++;
	if (req == NULL) {
		c->warming = 1;
		h->nwarming++;
	}
	tconn_stage(c, TC_CONNECT);
	if (c->fd == -1 || tconn_sockopts(c) == -1)
		goto fail;
	if (connect(c->fd, sa, addr_len(sa)) == -1 && errno != EINPROGRESS)
		goto fail;
	if (tconn_wait(c, EV_WRITE) == -1)
		goto fail;
	return c;
fail:
	*why = strerror(errno);
	tconn_free(c, 1);
	return NULL;
}

static void
tconn_free(struct tconn *c, int reset)
{
	struct tunnel *t = c->h->t;

	if (event_initialized(&c->ev))
		event_del(&c->ev);
	if (c->state == TC_IDLE)
		c->h->nidle--;
	else if (c->warming)
		c->h->nwarming--;
	if (c->ssl != NULL)
		SSL_free(c->ssl);
	if (reset)
		sock_close_reset(c->fd);
	else if (c->fd != -1)
		close(c->fd);
	free(c->in);
	free(c->out);
	TAILQ_REMOVE(&t->conns, c, entry);
	t->nconns--;
	free(c);
}

/* The connection failed before it carried anything. */
static void
tconn_failed(struct tconn *c, int host_fault, const char *why)
{
	struct tunnel_req *req = c->req;
	struct thost *h = c->h;
	int pooled = c->pooled;
	char whybuf[160];

	snprintf(whybuf, sizeof(whybuf), "%s", why);
	if (host_fault)
		thost_failed(h, whybuf);
	if (req != NULL)
		req->c = NULL;
	c->req = NULL;
	tconn_free(c, 1);
	if (req == NULL)
		return;
	/* A pool connection may have gone stale at the host: once more. */
	if (pooled && !host_fault && !req->pooled_retry) {
		req->pooled_retry = 1;
	} else if (!host_fault) {
		req_fail(req, -1, whybuf);
		return;
	} else
		req->next++;
	if (req_try(req) == -1)
		req_fail(req, -1, req->why);
}

static void
thost_session_set(struct thost *h, SSL_SESSION *sess)
{
	if (h->session != NULL)
		SSL_SESSION_free(h->session);
	h->session = sess;
}

/*
 * The host's session tickets, kept to resume the next connection. Ones
 * that arrive after a flow took the connection are not needed.
 */
static int
tconn_new_session(SSL *ssl, SSL_SESSION *sess)
{
	struct tconn *c = SSL_get_app_data(ssl);

	if (c == NULL)
		return 0;
	thost_session_set(c->h, sess);
	return 1;	/* we keep the reference */
}

static int
tconn_tls_start(struct tconn *c)
{
	if ((c->ssl = SSL_new(c->h->t->ctx)) == NULL ||
	    SSL_set_fd(c->ssl, c->fd) != 1)
		return -1;
	SSL_set_app_data(c->ssl, c);
	SSL_set_connect_state(c->ssl);
	/*
	 * The newest ticket, shared by the connections a burst opens: the
	 * host accepts a ticket more than once, and keeping one per
	 * connection left most of a burst without any (measured: 18 of 65
	 * resumed, against 63 of 65 shared).
	 */
	if (c->h->session != NULL)
		SSL_set_session(c->ssl, c->h->session);
	tconn_stage(c, TC_HANDSHAKE);
	return 0;
}

static void	tconn_send_open(struct tconn *);
static void	tconn_idle(struct tconn *);

static void
tconn_handshake(struct tconn *c)
{
	char err[128];
	int rc, e;

	ERR_clear_error();
	if ((rc = SSL_do_handshake(c->ssl)) != 1) {
		e = SSL_get_error(c->ssl, rc);
		if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
			if (tconn_wait(c, e == SSL_ERROR_WANT_READ ?
			    EV_READ : EV_WRITE) == -1)
				tconn_failed(c, 0, "cannot add event");
			return;
		}
		tconn_failed(c, 1, mtls_error(e, err, sizeof(err)));
		return;
	}
	if (!mtls_alpn_ok(c->ssl)) {
		tconn_failed(c, 1, "the host did not agree to ALPN sluice/1");
		return;
	}
	if (SSL_session_reused(c->ssl))
		c->h->resumed++;
	thost_ok(c->h);
	if (c->req == NULL) {
		c->h->nwarming--;
		c->warming = 0;
		tconn_idle(c);
	} else
		tconn_send_open(c);
}

static void
tconn_connected(struct tconn *c)
{
	socklen_t len = sizeof(int);
	int err = 0;

	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1)
		err = errno;
	if (err != 0) {
		tconn_failed(c, 1, strerror(err));
		return;
	}
	if (tconn_tls_start(c) == -1) {
		tconn_failed(c, 0, "cannot start TLS");
		return;
	}
	tconn_handshake(c);
}

/* A ready connection waits in the pool; the host must stay silent. */
static void
tconn_idle(struct tconn *c)
{
	c->state = TC_IDLE;
	c->h->nidle++;
	if (tconn_wait(c, EV_READ) == -1)
		tconn_free(c, 1);
}

/*
 * The host spoke while idle: session tickets (consumed here) are fine,
 * anything else (close, data) retires the connection.
 */
static void
tconn_idle_read(struct tconn *c, short what)
{
	uint8_t b;
	int rc, e;

	if (what & EV_TIMEOUT) {
		tconn_free(c, 0);
		return;
	}
	ERR_clear_error();
	rc = SSL_read(c->ssl, &b, 1);
	e = SSL_get_error(c->ssl, rc);
	if (rc <= 0 && e == SSL_ERROR_WANT_READ) {
		if (tconn_wait(c, EV_READ) == -1)
			tconn_free(c, 1);
		return;
	}
	ERR_clear_error();
	log_debug("tunnel %s: pooled connection closed by the host",
	    c->h->name);
	tconn_free(c, 1);
}

/* ---- the opening exchange ---- */

static void	tconn_recv_reply(struct tconn *);

/*
 * The opening, then the flow's first bytes as its first chunk: one TLS
 * record, and the host has the request when it has dialled. Every
 * attempt (another host, a fresh connection) sends them again.
 */
static ssize_t
tconn_encode_open(struct tconn *c)
{
	const struct tunnel_req *req = c->req;
	ssize_t n;

	/* Sized to fit: a pooled connection holds no buffer while idle. */
	if (c->out == NULL && (c->out = malloc(TMSG_MAX + RELAY_TLS_HDR +
	    req->nfirst)) == NULL)
		return -1;
	if ((n = tmsg_open_encode(&req->msg, c->out, TMSG_MAX)) <= 0)
		return -1;
	if (req->nfirst > 0)
		n += relay_tls_chunk(c->out + n, req->first, req->nfirst);
	return n;
}

/*
 * Writes the opening (encoded on the first try, the same bytes on every
 * retry, as OpenSSL wants): 1 when it has gone, 0 when the socket must
 * be waited on (*what), -1 when the connection failed (*why).
 */
static int
tconn_write_open(struct tconn *c, short *what, const char **why)
{
	ssize_t n;
	int rc, e;

	if (c->nout == 0) {
		if ((n = tconn_encode_open(c)) <= 0) {
			*why = "opening message does not encode";
			return -1;
		}
		c->nout = n;
	}
	ERR_clear_error();
	if ((rc = SSL_write(c->ssl, c->out, c->nout)) > 0)
		return 1;
	e = SSL_get_error(c->ssl, rc);
	ERR_clear_error();
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
		*what = e == SSL_ERROR_WANT_READ ? EV_READ : EV_WRITE;
		return 0;
	}
	*why = "the host closed the connection";
	return -1;
}

static void
tconn_send_open(struct tconn *c)
{
	const char *why = "cannot wait for the socket";
	short what;
	int rc;

	if (c->nout == 0)
		tconn_stage(c, TC_OPEN_SEND);
	if ((rc = tconn_write_open(c, &what, &why)) == 1) {
		c->state = TC_OPEN_RECV;
		tconn_recv_reply(c);
	} else if (rc == -1 || tconn_wait(c, what) == -1)
		tconn_failed(c, 0, why);
}

/*
 * A pooled connection is writable: the opening goes at once, a trip
 * through the poller saved, and only the answer is waited for (never
 * read within tunnel_open(), whose caller must have the request first).
 * Anything but a whole write is left to tconn_send_open() from the loop,
 * which retries it with the same bytes or fails the connection.
 */
static int
tconn_open_pooled(struct tconn *c)
{
	const char *why;
	short what = EV_WRITE;

	tconn_stage(c, TC_OPEN_SEND);
	if (tconn_write_open(c, &what, &why) == 1) {
		c->state = TC_OPEN_RECV;
		what = EV_READ;
	}
	return tconn_wait(c, what);
}

/* Hands the connection to the flow: the tconn goes, fd and SSL stay. */
static void
tconn_accepted(struct tconn *c)
{
	struct tunnel_req *req = c->req;
	struct thost *h = c->h;
	SSL *ssl = c->ssl;

	h->flows++;
	h->used = 1;
	SSL_set_app_data(ssl, NULL);
	c->ssl = NULL;
	c->fd = -1;
	req->c = NULL;
	c->req = NULL;
	req->cb(req->arg, ssl, (struct sockaddr *)&h->addr, TMSG_OK,
	    "accepted");
	tconn_free(c, 0);
	free(req);
	thost_refill(h);
}

static void
tconn_reply(struct tconn *c, const struct tmsg_reply *rep)
{
	struct tunnel_req *req = c->req;
	char why[300];

	if (rep->status == TMSG_OK) {
		tconn_accepted(c);
		return;
	}
	c->h->refused++;
	c->h->used = 1;
	/* A long reason may be cut: the log line stays bounded. */
	if (snprintf(why, sizeof(why), "refused by %s: %s%s%s", c->h->name,
	    tmsg_status_str(rep->status), rep->reason[0] ? ": " : "",
	    rep->reason) < 0)
		why[0] = '\0';
	req->c = NULL;
	c->req = NULL;
	tconn_free(c, 0);
	req_fail(req, rep->status, why);
}

static void
tconn_recv_reply(struct tconn *c)
{
	struct tmsg_reply rep;
	const char *why;
	char ebuf[128];
	size_t need;
	ssize_t n;
	int rc, e;

	if (c->in == NULL && (c->in = malloc(TMSG_MAX)) == NULL) {
		tconn_failed(c, 0, "out of memory");
		return;
	}
	for (;;) {
		/* Exactly the reply: what follows is the flow's (relay_tls). */
		if ((need = tmsg_need(c->in, c->nin)) == 0) {
			if ((n = tmsg_reply_parse(c->in, c->nin, &rep,
			    &why)) > 0)
				tconn_reply(c, &rep);
			else
				tconn_failed(c, 1, n == -1 ? why :
				    "reply cut short");
			return;
		}
		ERR_clear_error();
		rc = SSL_read(c->ssl, c->in + c->nin, need);
		if (rc > 0) {
			c->nin += rc;
			continue;
		}
		e = SSL_get_error(c->ssl, rc);
		if ((e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) &&
		    tconn_wait(c, e == SSL_ERROR_WANT_READ ? EV_READ :
		    EV_WRITE) == 0)
			return;
		/* A host that rejects our certificate says so in an alert. */
		if (e == SSL_ERROR_ZERO_RETURN || ERR_peek_error() == 0)
			snprintf(ebuf, sizeof(ebuf), "the host closed the "
			    "connection");
		else
			mtls_error(e, ebuf, sizeof(ebuf));
		ERR_clear_error();
		tconn_failed(c, 0, ebuf);
		return;
	}
}

static void
tconn_event(evutil_socket_t fd, short what, void *arg)
{
	struct tconn *c = arg;
	char why[64];

	if ((what & EV_TIMEOUT) && c->state != TC_IDLE) {
		snprintf(why, sizeof(why), "no answer in %u s",
		    tconn_timeout(c));
		tconn_failed(c, 1, why);
		return;
	}
	switch (c->state) {
	case TC_CONNECT:
		tconn_connected(c);
		break;
	case TC_HANDSHAKE:
		tconn_handshake(c);
		break;
	case TC_IDLE:
		tconn_idle_read(c, what);
		break;
	case TC_OPEN_SEND:
		tconn_send_open(c);
		break;
	case TC_OPEN_RECV:
		tconn_recv_reply(c);
		break;
	}
}

/* Keeps POOL_SIZE connections ready for a host in use. */
static void
thost_refill(struct thost *h)
{
	const char *why;

	while (h->used && !thost_down(h) && h->nidle + h->nwarming < POOL_SIZE)
		if (tconn_new(h, NULL, &why) == NULL)
			break;
}

static struct tconn *
thost_take_idle(struct thost *h, struct tunnel_req *req)
{
	struct tconn *c;

	TAILQ_FOREACH(c, &h->t->conns, entry)
		if (c->h == h && c->state == TC_IDLE)
			break;
	if (c == NULL)
		return NULL;
	h->nidle--;
	c->state = TC_OPEN_SEND;	/* no longer idle */
	c->pooled = 1;
	c->req = req;
	return c;
}

/* ---- requests ---- */

static void
req_fail(struct tunnel_req *req, int status, const char *why)
{
	req->cb(req->arg, NULL, NULL, status, why);
	free(req);
}

/*
 * Starts req on the first host from req->next on that is not backing
 * off: a pooled connection if one is ready, else a new one. -1 (with
 * req->why) when no host is left.
 */
static int
req_try(struct tunnel_req *req)
{
	const struct service *svc = req->svc;
	struct thost *h;
	struct tconn *c;
	const char *why;

	for (; req->next < svc->ntunnel; req->next++) {
		if ((h = thost_get(req->t, &svc->tunnel[req->next])) == NULL)
			continue;
		if (thost_down(h))
			continue;
		if (!req->pooled_retry &&
		    (c = thost_take_idle(h, req)) != NULL) {
			req->c = c;
			if (tconn_open_pooled(c) == -1) {
				tconn_free(c, 1);
				req->c = NULL;
				continue;
			}
			return 0;
		}
		if ((c = tconn_new(h, req, &why)) != NULL) {
			req->c = c;
			return 0;
		}
		thost_failed(h, why);
	}
	snprintf(req->whybuf, sizeof(req->whybuf), "no tunnel host "
	    "reachable (%zu configured, all backing off)", svc->ntunnel);
	req->why = req->whybuf;
	return -1;
}

struct tunnel_req *
tunnel_open(struct tunnel *t, const struct service *svc, int proto,
    const struct sockaddr *src, const struct sockaddr *dst, const void *first,
    size_t nfirst, tunnel_cb cb, void *arg, const char **why)
{
	static char whybuf[192];
	struct tunnel_req *req;

	if (nfirst > TUNNEL_FIRST_MAX || (nfirst > 0 && proto != IPPROTO_TCP)) {
		*why = "first bytes not for an opening";
		return NULL;
	}
	if ((req = calloc(1, sizeof(*req) + nfirst)) == NULL) {
		*why = "out of memory";
		return NULL;
	}
	req->t = t;
	req->svc = svc;
	req->cb = cb;
	req->arg = arg;
	req->msg.proto = proto;
	snprintf(req->msg.service, sizeof(req->msg.service), "%s", svc->name);
	memcpy(&req->msg.src, src, addr_len(src));
	memcpy(&req->msg.dst, dst, addr_len(dst));
	if (nfirst > 0)
		memcpy(req->first, first, nfirst);
	req->nfirst = nfirst;
	if (req_try(req) == -1) {
		snprintf(whybuf, sizeof(whybuf), "%s", req->why);
		*why = whybuf;
		free(req);
		return NULL;
	}
	return req;
}

void
tunnel_cancel(struct tunnel_req *req)
{
	if (req == NULL)
		return;
	if (req->c != NULL) {
		req->c->req = NULL;
		tconn_free(req->c, 1);
	}
	free(req);
}

/*
 * A flow ended cleanly both ways, so its connection is in step for the
 * next one: back into the host's pool, unless the pool is full or the
 * host is backing off.
 */
void
tunnel_conn_release(struct tunnel *t, SSL *ssl, const struct sockaddr *host)
{
	struct endpoint ep;
	struct thost *h;
	struct tconn *c;

	memset(&ep, 0, sizeof(ep));
	ep.len = addr_len(host);
	memcpy(&ep.ss, host, ep.len);
	/* One made before a reload speaks for the old identity: retire it. */
	if (SSL_get_SSL_CTX(ssl) != t->ctx ||
	    (h = thost_get(t, &ep)) == NULL || h->nidle >= POOL_MAX_IDLE ||
	    thost_down(h) || (c = calloc(1, sizeof(*c))) == NULL) {
		tunnel_conn_close(ssl, 1);
		return;
	}
	c->h = h;
	c->fd = SSL_get_fd(ssl);
	c->ssl = ssl;
	c->born = now_sec(t);
	SSL_set_app_data(ssl, c);
	TAILQ_INSERT_TAIL(&t->conns, c, entry);
	t->nconns++;
	h->reused++;
	tconn_idle(c);
}

void
tunnel_conn_close(SSL *ssl, int clean)
{
	int fd;

	if (ssl == NULL)
		return;
	fd = SSL_get_fd(ssl);
	SSL_free(ssl);
	if (clean)
		close(fd);
	else
		sock_close_reset(fd);
}

/* ---- the tunnel ---- */

static SSL_CTX *
tunnel_ctx(const struct config *conf, char *err, size_t errlen)
{
	SSL_CTX *ctx;

	if ((ctx = mtls_ctx_new(conf, 0, err, errlen)) == NULL)
		return NULL;
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT |
	    SSL_SESS_CACHE_NO_INTERNAL_STORE);
	SSL_CTX_sess_set_new_cb(ctx, tconn_new_session);
	return ctx;
}

static struct tunnel *
tunnel_new(struct sluice *sl, SSL_CTX *ctx)
{
	struct tunnel *t;

	if ((t = calloc(1, sizeof(*t))) == NULL)
		return NULL;
	t->sl = sl;
	t->ctx = ctx;
	TAILQ_INIT(&t->hosts);
	TAILQ_INIT(&t->conns);
	return t;
}

static int
tunnel_uses(const struct config *conf)
{
	const struct service *s;

	TAILQ_FOREACH(s, &conf->services, entry)
		if (s->fwd == FWD_TUNNEL)
			return 1;
	return 0;
}

/* Sessions of the old identity cannot be resumed with the new one. */
static void
tunnel_renew(struct tunnel *t, SSL_CTX *ctx)
{
	struct thost *h;
	struct tconn *c, *next;

	SSL_CTX_free(t->ctx);
	t->ctx = ctx;
	/* Ready connections speak for the old identity: not for new flows. */
	for (c = TAILQ_FIRST(&t->conns); c != NULL; c = next) {
		next = TAILQ_NEXT(c, entry);
		if (c->req == NULL)
			tconn_free(c, 0);
	}
	TAILQ_FOREACH(h, &t->hosts, entry)
		thost_session_set(h, NULL);
}

int
tunnel_apply(struct sluice *sl, const struct config *conf)
{
	char err[256];
	SSL_CTX *ctx;

	if (!tunnel_uses(conf))
		return 0;
	if ((ctx = tunnel_ctx(conf, err, sizeof(err))) == NULL) {
		log_warnx("tunnel: %s", err);
		return -1;
	}
	if (sl->tunnel != NULL) {
		tunnel_renew(sl->tunnel, ctx);
		return 0;
	}
	if ((sl->tunnel = tunnel_new(sl, ctx)) == NULL) {
		SSL_CTX_free(ctx);
		log_warnx("tunnel: out of memory");
		return -1;
	}
	return 0;
}

void
tunnel_free(struct tunnel *t)
{
	struct thost *h;
	struct tconn *c;

	if (t == NULL)
		return;
	while ((c = TAILQ_FIRST(&t->conns)) != NULL) {
		if (c->req != NULL) {
			c->req->c = NULL;
			c->req = NULL;
		}
		tconn_free(c, 1);
	}
	while ((h = TAILQ_FIRST(&t->hosts)) != NULL) {
		TAILQ_REMOVE(&t->hosts, h, entry);
		thost_session_set(h, NULL);
		free(h);
	}
	SSL_CTX_free(t->ctx);
	free(t);
}

void
tunnel_dump(const struct tunnel *t, FILE *fp)
{
	const struct thost *h;
	int64_t now = now_ms(t);

	fprintf(fp, "tunnel hosts:\n");
	TAILQ_FOREACH(h, &t->hosts, entry) {
		fprintf(fp, "  %s: %s, %u ready, %u connecting, %llu tls "
		    "connections (%llu resumed), %llu reused, %llu failures, "
		    "%llu flows, %llu refused", h->name,
		    h->down_until > now ? "down" : "up",
		    h->nidle, h->nwarming, (unsigned long long)h->connects,
		    (unsigned long long)h->resumed,
		    (unsigned long long)h->reused,
		    (unsigned long long)h->failures,
		    (unsigned long long)h->flows,
		    (unsigned long long)h->refused);
		if (h->down_until > now)
			fprintf(fp, ", retry in %lld s: %s",
			    (long long)(h->down_until - now + 999) / 1000,
			    h->last_error);
		fprintf(fp, "\n");
	}
}
