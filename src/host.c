/* SPDX-License-Identifier: MIT */
/*
 * The host mode: accept tunnel connections, check the tunneller's identity
 * and request against the service's host section, dial only what that
 * allows, and relay. A host never dials anything else: no open proxy.
 */
#include "config.h"

#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/event_struct.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "sluice.h"
#include "log.h"
#include "tunnel.h"

#define HOST_HANDSHAKE_TIME	10	/* seconds for a TLS handshake */
/* Tunnellers keep connections ready for up to 45 s (tunnel.c). */
#define HOST_WAIT_OPEN		60
#define HOST_IN_BUF		TMSG_MAX	/* the opening message, exactly */
#define HOST_REFUSALS		8	/* recent ones shown by dump */

enum hstate { HF_HANDSHAKE, HF_OPEN, HF_DIAL, HF_REPLY, HF_RELAY,
	HF_REFUSE };

union host_addr {
	struct sockaddr		sa;
	struct sockaddr_in	sin;
	struct sockaddr_in6	sin6;
};

struct hflow {
	TAILQ_ENTRY(hflow)	 entry;
	struct host		*host;
	struct config		*conf;		/* referenced: svc is in it */
	const struct service	*svc;
	uint64_t		 id;
	enum hstate		 state;
	int			 tfd, ufd;
	SSL			*ssl;
	char			 identity[256];
	union host_addr		 peer, upstream;
	struct tmsg_open	 msg;
	uint8_t			*in;		/* the opening message */
	size_t			 nin;
	uint8_t			 out[TMSG_MAX];	/* the reply */
	size_t			 nout;
	struct event		 ev;
	struct timeval		 deadline;
	struct relay_tls	*relay;
	struct timespec		 start;
	int			 clean;
};

struct host {
	struct sluice		*sl;
	SSL_CTX			*ctx;
	struct listener		*listener;
	TAILQ_HEAD(, hflow)	 flows;
	size_t			 nflows;
	uint64_t		 next_id;
	uint64_t		 accepted, tls_failed, refused, dial_failed;
	uint64_t		 opened, opened_udp, paused;
	char			 refusals[HOST_REFUSALS][512];
	unsigned		 nrefusals;
};

static void	hflow_event(evutil_socket_t, short, void *);
static void	hflow_free(struct hflow *);

static const char *
hflow_peer(const struct hflow *f, char *buf, size_t len)
{
	return addr_str(&f->peer.sa, buf, len);
}

static int
hflow_wait(struct hflow *f, short what)
{
	struct timeval now, left;

	if (event_initialized(&f->ev))
		event_del(&f->ev);
	event_base_gettimeofday_cached(f->host->sl->base, &now);
	timersub(&f->deadline, &now, &left);
	if (left.tv_sec < 0)
		left.tv_sec = left.tv_usec = 0;
	if (event_assign(&f->ev, f->host->sl->base, what & EV_WRITE &&
	    f->state == HF_DIAL ? f->ufd : f->tfd, what, hflow_event, f) == -1 ||
	    event_add(&f->ev, &left) == -1) {
		log_warnx("host flow %llu: cannot add event",
		    (unsigned long long)f->id);
		hflow_free(f);
		return -1;
	}
	return 0;
}

/* Waits on the TLS socket for what the last SSL call (error e) wants. */
static int
hflow_want(struct hflow *f, int e)
{
	return hflow_wait(f, e == SSL_ERROR_WANT_WRITE ? EV_WRITE : EV_READ);
}

static void
hflow_stage(struct hflow *f, enum hstate state, unsigned seconds)
{
	f->state = state;
	event_base_gettimeofday_cached(f->host->sl->base, &f->deadline);
	f->deadline.tv_sec += seconds;
}

static int
hflow_udp(const struct hflow *f)
{
	return f->msg.proto == IPPROTO_UDP;
}

static double
hflow_age(const struct hflow *f)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - f->start.tv_sec) +
	    (now.tv_nsec - f->start.tv_nsec) / 1e9;
}

/* ---- refusing ---- */

static void
host_note_refusal(struct host *h, const char *what)
{
	snprintf(h->refusals[h->nrefusals % HOST_REFUSALS],
	    sizeof(h->refusals[0]), "%s", what);
	h->nrefusals++;
}

static void	hflow_send_reply(struct hflow *);

/*
 * Tells the tunneller why (so it resets its client at once), logs who
 * was refused what, and closes.
 */
static void
hflow_refuse(struct hflow *f, int status, const char *why)
{
	struct tmsg_reply rep;
	char peer[ADDR_STRLEN], dst[ADDR_STRLEN], line[512];
	ssize_t n;

	memset(&rep, 0, sizeof(rep));
	rep.status = status;
	snprintf(rep.reason, sizeof(rep.reason), "%s", why);
	/* Names are bounded by the protocol; a cut line is still useful. */
	if (snprintf(line, sizeof(line), "%s from %s for %s -> %s%s: %s: %s",
	    f->identity[0] ? f->identity : "?", hflow_peer(f, peer,
	    sizeof(peer)), f->msg.service[0] ? f->msg.service : "?",
	    hflow_udp(f) ? "udp " : "",
	    f->msg.dst.ss_family ? addr_str((struct sockaddr *)&f->msg.dst,
	    dst, sizeof(dst)) : "?", tmsg_status_str(status), why) < 0)
		line[0] = '\0';
	log_warnx("host flow %llu: refused %s", (unsigned long long)f->id,
	    line);
	host_note_refusal(f->host, line);
	if (status == TMSG_DIAL_FAILED)
		f->host->dial_failed++;
	else
		f->host->refused++;
	if ((n = tmsg_reply_encode(&rep, f->out, sizeof(f->out))) <= 0) {
		hflow_free(f);
		return;
	}
	f->nout = n;
	hflow_stage(f, HF_REFUSE, HOST_HANDSHAKE_TIME);
	hflow_send_reply(f);
}

/* ---- relaying ---- */

static void	hflow_read_open(struct hflow *);

/*
 * The flow ended cleanly both ways, so the connection is in step: it
 * waits for the tunneller's next opening message, under the config in
 * use by then.
 */
static void
hflow_next(struct hflow *f)
{
	relay_tls_free(f->relay);
	f->relay = NULL;
	if (f->ufd != -1)
		close(f->ufd);
	f->ufd = -1;
	f->svc = NULL;
	f->clean = 0;
	memset(&f->msg, 0, sizeof(f->msg));
	memset(&f->upstream, 0, sizeof(f->upstream));
	f->nin = 0;
	conf_unref(f->conf);
	f->conf = conf_ref(f->host->sl->conf);
	f->id = ++f->host->next_id;
	clock_gettime(CLOCK_MONOTONIC, &f->start);
	hflow_stage(f, HF_OPEN, HOST_WAIT_OPEN);
	hflow_read_open(f);
}

/* The datagram counts of a UDP flow for logs and dump, or "". */
static const char *
hflow_dgrams(const struct hflow *f, const struct relay_tls *r, char *buf,
    size_t len)
{
	uint64_t up, down, dropped;

	if (!hflow_udp(f) || r == NULL)
		return "";
	relay_tls_dgrams(r, &up, &down, &dropped);
	snprintf(buf, len, " (datagrams: %llu to the server, %llu to the "
	    "tunnel, %llu dropped)", (unsigned long long)down,
	    (unsigned long long)up, (unsigned long long)dropped);
	return buf;
}

static void
hflow_relay_done(struct relay_tls *r, void *arg)
{
	struct hflow *f = arg;
	uint64_t up, down;
	const char *detail;
	char dg[96];
	int err, side;

	err = relay_tls_error(r, &side, &detail);
	f->clean = err == 0;
	if (log_enabled(LOG_LVL_DEBUG)) {
		relay_tls_bytes(r, &up, &down);
		log_debug("host flow %llu %s: %s%s%s%s%s%s: to tunnel %llu, "
		    "to server %llu bytes%s in %.2f s",
		    (unsigned long long)f->id, f->svc->name,
		    hflow_udp(f) ? "udp " : "",
		    err == 0 ? "closed" : "reset: ",
		    err == 0 ? "" : side == 0 ? "server: " : side == 1 ?
		    "tunnel: " : "", err == 0 ? "" : strerror(err),
		    *detail ? ": " : "", detail, (unsigned long long)up,
		    (unsigned long long)down, hflow_dgrams(f, r, dg, sizeof(dg)),
		    hflow_age(f));
	}
	if (f->clean)
		hflow_next(f);
	else
		hflow_free(f);
}

static void
hflow_relay(struct hflow *f)
{
	char peer[ADDR_STRLEN], up[ADDR_STRLEN];

	if (event_initialized(&f->ev))
		event_del(&f->ev);
	f->state = HF_RELAY;
	if (hflow_udp(f))
		f->relay = relay_tls_new_dgram(f->host->sl->base, f->ufd,
		    f->ssl, f->conf->host_idle_timeout, hflow_relay_done, f);
	else
		f->relay = relay_tls_new(f->host->sl->base, f->ufd, f->ssl,
		    NULL, 0, f->conf->host_idle_timeout, hflow_relay_done, f);
	if (f->relay == NULL) {
		log_warn("host flow %llu: relay", (unsigned long long)f->id);
		hflow_free(f);
		return;
	}
	f->host->opened++;
	if (hflow_udp(f))
		f->host->opened_udp++;
	log_debug("host flow %llu %s: %s from %s: %sopen to %s",
	    (unsigned long long)f->id, f->svc->name, f->identity,
	    hflow_peer(f, peer, sizeof(peer)), hflow_udp(f) ? "udp " : "",
	    addr_str(&f->upstream.sa, up, sizeof(up)));
}

static void
hflow_send_reply(struct hflow *f)
{
	int rc, e;

	ERR_clear_error();
	if ((rc = SSL_write(f->ssl, f->out, f->nout)) <= 0) {
		e = SSL_get_error(f->ssl, rc);
		if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
			hflow_want(f, e);
			return;
		}
		ERR_clear_error();
		log_debug("host flow %llu: the tunneller went away",
		    (unsigned long long)f->id);
		hflow_free(f);
		return;
	}
	if (f->state == HF_REPLY) {
		hflow_relay(f);
		return;
	}
	/* Refused: close_notify, then go; the reply has left. */
	(void)SSL_shutdown(f->ssl);
	ERR_clear_error();
	f->clean = 1;
	hflow_free(f);
}

static void
hflow_accept_reply(struct hflow *f)
{
	struct tmsg_reply rep;
	ssize_t n;

	memset(&rep, 0, sizeof(rep));
	rep.status = TMSG_OK;
	if ((n = tmsg_reply_encode(&rep, f->out, sizeof(f->out))) <= 0) {
		hflow_free(f);
		return;
	}
	f->nout = n;
	hflow_stage(f, HF_REPLY, HOST_HANDSHAKE_TIME);
	hflow_send_reply(f);
}

/* ---- dialling ---- */

static void
hflow_dial_result(struct hflow *f, short what)
{
	socklen_t len = sizeof(int);
	char why[64];
	int err = 0;

	if (what & EV_TIMEOUT) {
		snprintf(why, sizeof(why), "no answer in %u s",
		    f->conf->connect_timeout);
		hflow_refuse(f, TMSG_DIAL_FAILED, why);
		return;
	}
	if (getsockopt(f->ufd, SOL_SOCKET, SO_ERROR, &err, &len) == -1)
		err = errno;
	if (err != 0) {
		hflow_refuse(f, TMSG_DIAL_FAILED, strerror(err));
		return;
	}
	hflow_accept_reply(f);
}

/*
 * A UDP socket is connected too, so that only the server's datagrams come
 * back; its connect(2) sends nothing and fails at once or not at all.
 */
static void
hflow_dial(struct hflow *f, const struct sockaddr *dst)
{
	struct sluice *sl = f->host->sl;
	int one = 1, udp = hflow_udp(f), rc;

	memcpy(&f->upstream, dst, addr_len(dst));
	f->ufd = socket(dst->sa_family, (udp ? SOCK_DGRAM : SOCK_STREAM) |
	    SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (f->ufd == -1) {
		hflow_refuse(f, fd_exhausted(errno) ? TMSG_BUSY :
		    TMSG_DIAL_FAILED, strerror(errno));
		return;
	}
	/* In `run`, our own interception must not catch the dial. */
	if (sock_set_mark(f->ufd, f->conf->bypass_mark) == -1 &&
	    sl->nf != NULL) {
		hflow_refuse(f, TMSG_DIAL_FAILED, strerror(errno));
		return;
	}
	if (!udp)
		(void)setsockopt(f->ufd, IPPROTO_TCP, TCP_NODELAY, &one,
		    sizeof(one));
	hflow_stage(f, HF_DIAL, f->conf->connect_timeout);
	if ((rc = sock_connect(f->ufd, dst)) == 1)
		hflow_accept_reply(f);
	else if (rc == -1)
		hflow_refuse(f, TMSG_DIAL_FAILED, strerror(errno));
	else
		hflow_wait(f, EV_WRITE);
}

/* ---- the request ---- */

static int
host_allows(const struct service *svc, const char *identity)
{
	size_t i;

	for (i = 0; i < svc->nallow; i++)
		if (svc_name_glob(svc->allow[i], identity))
			return 1;
	return 0;
}

static int
host_dst_allowed(const struct service *svc, const struct sockaddr *dst)
{
	size_t i;

	for (i = 0; i < svc->nallowed; i++)
		if (cidr_contains(&svc->allowed[i], dst))
			return 1;
	return 0;
}

/* Checks the request against the service's host section, then dials. */
static void
hflow_request(struct hflow *f)
{
	const struct service *svc;
	const struct sockaddr *dst = (const struct sockaddr *)&f->msg.dst;

	svc = conf_service_by_name(f->conf, f->msg.service);
	if (svc == NULL || !svc->has_host) {
		hflow_refuse(f, TMSG_NO_SERVICE, "not hosted here");
		return;
	}
	f->svc = svc;
	if (!host_allows(svc, f->identity)) {
		hflow_refuse(f, TMSG_DENIED, "identity not in allow");
		return;
	}
	if (f->msg.proto != IPPROTO_TCP && f->msg.proto != IPPROTO_UDP) {
		hflow_refuse(f, TMSG_UNSUPPORTED, "only tcp and udp are hosted");
		return;
	}
	if (!svc->host_original) {
		hflow_dial(f, (const struct sockaddr *)&svc->host_address.ss);
		return;
	}
	if (!host_dst_allowed(svc, dst)) {
		hflow_refuse(f, TMSG_ADDR_DENIED,
		    "not within allowed-addresses");
		return;
	}
	hflow_dial(f, dst);
}

static void
hflow_read_open(struct hflow *f)
{
	const char *why;
	size_t need;
	ssize_t n;
	int rc, e, status;

	for (;;) {
		/* Exactly the message: the flow's bytes are relay_tls's. */
		if ((need = tmsg_need(f->in, f->nin)) == 0) {
			n = tmsg_open_parse(f->in, f->nin, &f->msg, &status,
			    &why);
			if (n > 0) {
				hflow_request(f);
				return;
			}
			memset(&f->msg, 0, sizeof(f->msg));
			hflow_refuse(f, n == -1 ? status : TMSG_BAD_REQUEST,
			    n == -1 ? why : "message cut short");
			return;
		}
		ERR_clear_error();
		rc = SSL_read(f->ssl, f->in + f->nin, need);
		if (rc > 0) {
			f->nin += rc;
			continue;
		}
		e = SSL_get_error(f->ssl, rc);
		if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
			hflow_want(f, e);
			return;
		}
		/* A pool connection the tunneller retired: not news. */
		ERR_clear_error();
		log_debug("host flow %llu: closed before a request",
		    (unsigned long long)f->id);
		f->clean = e == SSL_ERROR_ZERO_RETURN;
		hflow_free(f);
		return;
	}
}

static void
hflow_handshake(struct hflow *f)
{
	char err[160], peer[ADDR_STRLEN];
	int rc, e;

	ERR_clear_error();
	if ((rc = SSL_do_handshake(f->ssl)) != 1) {
		e = SSL_get_error(f->ssl, rc);
		if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
			hflow_want(f, e);
			return;
		}
		f->host->tls_failed++;
		mtls_error(e, err, sizeof(err));
		log_warnx("host flow %llu: handshake with %s failed: %s",
		    (unsigned long long)f->id, hflow_peer(f, peer,
		    sizeof(peer)), err);
		snprintf(f->identity, sizeof(f->identity), "?");
		host_note_refusal(f->host, err);
		hflow_free(f);
		return;
	}
	if (mtls_peer_name(f->ssl, f->identity, sizeof(f->identity)) == -1) {
		log_warnx("host flow %llu: %s: certificate without a name",
		    (unsigned long long)f->id, hflow_peer(f, peer,
		    sizeof(peer)));
		hflow_free(f);
		return;
	}
	if ((f->in = malloc(HOST_IN_BUF)) == NULL) {
		hflow_free(f);
		return;
	}
	hflow_stage(f, HF_OPEN, HOST_WAIT_OPEN);
	hflow_read_open(f);
}

static void
hflow_event(evutil_socket_t fd, short what, void *arg)
{
	struct hflow *f = arg;

	if ((what & EV_TIMEOUT) && f->state != HF_DIAL) {
		log_debug("host flow %llu: timed out (state %d)",
		    (unsigned long long)f->id, f->state);
		hflow_free(f);
		return;
	}
	switch (f->state) {
	case HF_HANDSHAKE:
		hflow_handshake(f);
		break;
	case HF_OPEN:
		hflow_read_open(f);
		break;
	case HF_DIAL:
		hflow_dial_result(f, what);
		break;
	case HF_REPLY:
	case HF_REFUSE:
		hflow_send_reply(f);
		break;
	case HF_RELAY:
		break;
	}
}

/* ---- flows ---- */

static void
hflow_free(struct hflow *f)
{
	struct host *h = f->host;

	if (f->relay != NULL)
		relay_tls_free(f->relay);
	if (event_initialized(&f->ev))
		event_del(&f->ev);
	if (f->ssl != NULL)
		SSL_free(f->ssl);
	if (f->clean) {
		close(f->tfd);
		if (f->ufd != -1)
			close(f->ufd);
	} else {
		sock_close_reset(f->tfd);
		sock_close_reset(f->ufd);
	}
	free(f->in);
	TAILQ_REMOVE(&h->flows, f, entry);
	h->nflows--;
	conf_unref(f->conf);
	free(f);
}

static int
host_accept(int fd, const struct sockaddr *peer, void *arg)
{
	struct host *h = arg;
	struct hflow *f;
	int one = 1;

	h->accepted++;
	if ((f = calloc(1, sizeof(*f))) == NULL ||
	    (f->ssl = SSL_new(h->ctx)) == NULL || SSL_set_fd(f->ssl, fd) != 1) {
		log_warnx("host: %s: out of memory", __func__);
		if (f != NULL)
			SSL_free(f->ssl);
		free(f);
		sock_close_reset(fd);
		return 0;
	}
	f->host = h;
	f->conf = conf_ref(h->sl->conf);
	f->id = ++h->next_id;
	f->tfd = fd;
	f->ufd = -1;
	memcpy(&f->peer, peer, addr_len(peer));
	clock_gettime(CLOCK_MONOTONIC, &f->start);
	TAILQ_INSERT_TAIL(&h->flows, f, entry);
	h->nflows++;
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	(void)setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	SSL_set_accept_state(f->ssl);
	hflow_stage(f, HF_HANDSHAKE, HOST_HANDSHAKE_TIME);
	hflow_handshake(f);
	return 0;
}

/* ---- the mode ---- */

static int
host_hosts_something(const struct config *conf)
{
	const struct service *s;

	TAILQ_FOREACH(s, &conf->services, entry)
		if (s->has_host)
			return 1;
	return 0;
}

static int
host_ctx(struct host *h, const struct config *conf)
{
	char err[256];
	SSL_CTX *ctx;

	if ((ctx = mtls_ctx_new(conf, 1, err, sizeof(err))) == NULL) {
		log_warnx("host: %s", err);
		return -1;
	}
	SSL_CTX_free(h->ctx);
	h->ctx = ctx;
	return 0;
}

int
host_start(struct sluice *sl)
{
	struct host *h;
	char a[ADDR_STRLEN];

	if (!host_hosts_something(sl->conf)) {
		log_warnx("host: no service in %s has a host: section",
		    sl->conf->path);
		return EX_CONFIG;
	}
	if ((h = calloc(1, sizeof(*h))) == NULL)
		fatalx("out of memory");
	h->sl = sl;
	TAILQ_INIT(&h->flows);
	sl->host = h;
	if (host_ctx(h, sl->conf) == -1)
		return EX_CONFIG;
	h->listener = listener_new(sl->base,
	    (struct sockaddr *)&sl->conf->host_listen.ss, 0, host_accept, h,
	    &h->paused);
	if (h->listener == NULL) {
		log_warn("host: cannot listen on %s", addr_str((struct sockaddr *)
		    &sl->conf->host_listen.ss, a, sizeof(a)));
		return EX_UNAVAILABLE;
	}
	log_info("host: listening on %s", addr_str(listener_addr(h->listener),
	    a, sizeof(a)));
	return 0;
}

/* sl->conf is the new config already; flows keep the one they began with. */
int
host_reload(struct sluice *sl)
{
	struct host *h = sl->host;

	if (h == NULL)
		return 0;
	if (memcmp(&sl->conf->host_listen.ss, listener_addr(h->listener),
	    sl->conf->host_listen.len) != 0)
		log_warnx("host: a new host.listen takes effect at restart");
	return host_ctx(h, sl->conf);
}

void
host_stop(struct sluice *sl)
{
	struct host *h = sl->host;
	struct hflow *f;

	if (h == NULL)
		return;
	while ((f = TAILQ_FIRST(&h->flows)) != NULL)
		hflow_free(f);
	if (h->listener != NULL)
		listener_free(h->listener);
	SSL_CTX_free(h->ctx);
	free(h);
	sl->host = NULL;
}

static const char *
hflow_state(const struct hflow *f)
{
	switch (f->state) {
	case HF_HANDSHAKE:	return "handshake";
	case HF_OPEN:		return "ready";
	case HF_DIAL:		return "dialling";
	case HF_REPLY:		return "accepting";
	case HF_REFUSE:		return "refusing";
	case HF_RELAY:
		return relay_tls_state(f->relay) == 0 ? "open" : "half-closed";
	}
	return "?";
}

void
host_dump(const struct host *h, FILE *fp)
{
	const struct hflow *f;
	char peer[ADDR_STRLEN], up[ADDR_STRLEN], dg[96];
	uint64_t a = 0, b = 0;
	unsigned i, n;

	fprintf(fp, "host: listening on %s, %zu connections; accepted %llu, "
	    "tls failed %llu, flows %llu, refused %llu, dial failed %llu, "
	    "udp flows %llu\n",
	    addr_str(listener_addr(h->listener), peer, sizeof(peer)),
	    h->nflows, (unsigned long long)h->accepted,
	    (unsigned long long)h->tls_failed, (unsigned long long)h->opened,
	    (unsigned long long)h->refused,
	    (unsigned long long)h->dial_failed,
	    (unsigned long long)h->opened_udp);
	TAILQ_FOREACH(f, &h->flows, entry) {
		a = b = 0;
		if (f->relay != NULL)
			relay_tls_bytes(f->relay, &a, &b);
		fprintf(fp, "  host flow %llu %s: %s from %s -> %s%s, %s, "
		    "to server %llu, to tunnel %llu bytes%s, age %.0f s\n",
		    (unsigned long long)f->id, f->svc ? f->svc->name : "-",
		    f->identity[0] ? f->identity : "-",
		    addr_str(&f->peer.sa, peer, sizeof(peer)),
		    f->ufd != -1 && hflow_udp(f) ? "udp " : "",
		    f->ufd != -1 ? addr_str(&f->upstream.sa, up, sizeof(up)) :
		    "-", hflow_state(f), (unsigned long long)b,
		    (unsigned long long)a, hflow_dgrams(f, f->relay, dg,
		    sizeof(dg)), hflow_age(f));
	}
	n = h->nrefusals < HOST_REFUSALS ? h->nrefusals : HOST_REFUSALS;
	if (n > 0)
		fprintf(fp, "host refusals (latest %u):\n", n);
	for (i = 0; i < n; i++)
		fprintf(fp, "  %s\n",
		    h->refusals[(h->nrefusals - 1 - i) % HOST_REFUSALS]);
}

static int
host_mode_reload(struct sluice *sl, struct config *conf)
{
	struct config *old = sl->conf;

	sl->conf = conf;
	if (host_reload(sl) == -1) {
		log_warnx("reload: keeping the running configuration");
		sl->conf = old;
		conf_unref(conf);
		return -1;
	}
	conf_unref(old);
	return 0;
}

const struct mode mode_host = {
	.name = "host",
	.start = host_start,
	.reload = host_mode_reload,
	.stop = host_stop,
};
