/* SPDX-License-Identifier: MIT */
/*
 * A UDP flow through the tunnel. The flow's datagrams go into one end of
 * a datagram socketpair (udp.c reads replies from it as from a direct
 * upstream); the other end is relayed over a tunnel connection in
 * datagram mode, one datagram per chunk, and the host keeps a UDP socket
 * per flow. The socketpair also holds the first datagrams while the
 * tunnel opens.
 */
#include "config.h"

#include <sys/socket.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "sluice.h"
#include "log.h"
#include "tunnel.h"
#include "udp.h"

/* What waits in the socketpair while the tunnel opens: bursts fit. */
#define UDP_PAIR_BUF	(1024 * 1024)
/* An ending flow waits this long for the host to end it too. */
#define UDP_LINGER_SEC	5

static void
udp_tunnel_log(const struct udp_flow *f, int warn, const char *what,
    const char *why)
{
	char c[ADDR_STRLEN], o[ADDR_STRLEN];

	if (warn && !udp_may_warn(f->udp))
		warn = 0;
	(warn ? log_warnx : log_debug)("flow %llu %s: udp %s -> %s: %s: %s",
	    (unsigned long long)f->id, f->svc->name,
	    addr_str(&f->client.sa, c, sizeof(c)),
	    addr_str(&f->orig.sa, o, sizeof(o)), what, why);
}

/* Out of udp.c's table (unless it is already ending) and freed. */
static void
udp_tunnel_fail(struct udp_flow *f)
{
	f->udp->st.failed++;
	if (!f->ending)
		udp_flow_unlink(f);
	udp_flow_free(f);
}

static void
udp_tunnel_done(struct relay_tls *r, void *arg)
{
	struct udp_flow *f = arg;
	struct tunnel *t = f->udp->sl->tunnel;
	const char *detail;
	int err, side;

	err = relay_tls_error(r, &side, &detail);
	relay_tls_free(r);
	f->trelay = NULL;
	if (err != 0)
		udp_tunnel_log(f, 0, "tunnel", *detail ? detail : strerror(err));
	if (!f->ending) {
		/* The host ended it, or the connection failed. */
		udp_flow_unlink(f);
		udp_flow_log_end(f, err ? "tunnel ended" : "host ended");
	}
	if (err == 0 && t != NULL)
		tunnel_conn_release(t, f->ssl, &f->upstream.sa);
	else
		tunnel_conn_close(f->ssl, err == 0);
	f->ssl = NULL;
	udp_flow_free(f);
}

static void
udp_tunnel_ready(void *arg, SSL *ssl, const struct sockaddr *host,
    int status, const char *reason)
{
	struct udp_flow *f = arg;
	struct udp *u = f->udp;

	f->treq = NULL;
	if (ssl == NULL) {
		u->sl->stats.dial_failed++;
		udp_tunnel_log(f, 1, "tunnel", reason);
		udp_tunnel_fail(f);
		return;
	}
	f->ssl = ssl;
	memset(&f->upstream, 0, sizeof(f->upstream));
	memcpy(&f->upstream, host, addr_len(host));
	/* Idle flows are ended by udp.c, which sees both directions. */
	f->trelay = relay_tls_new_dgram(u->sl->base, f->tfd, ssl, 0,
	    udp_tunnel_done, f);
	if (f->trelay == NULL) {
		udp_tunnel_log(f, 1, "tunnel", "cannot relay");
		udp_tunnel_fail(f);
		return;
	}
	if (log_enabled(LOG_LVL_DEBUG)) {
		char h[ADDR_STRLEN];

		udp_tunnel_log(f, 0, "open via tunnel",
		    addr_str(host, h, sizeof(h)));
	}
	if (f->ending)
		relay_tls_end(f->trelay);
}

int
udp_tunnel_open(struct udp_flow *f)
{
	struct udp *u = f->udp;
	int sp[2], size = UDP_PAIR_BUF;
	const char *why;

	if (u->sl->tunnel == NULL) {
		udp_tunnel_log(f, 1, "tunnel", "no tunnel (identity missing)");
		return -1;
	}
	/* Its failure is the caller's to log: it may retry. */
	if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
	    sp) == -1)
		return -1;
	f->fd = sp[0];
	f->tfd = sp[1];
	if (setsockopt(f->fd, SOL_SOCKET, SO_SNDBUFFORCE, &size,
	    sizeof(size)) == -1)
		(void)setsockopt(f->fd, SOL_SOCKET, SO_SNDBUF, &size,
		    sizeof(size));
	f->treq = tunnel_open(u->sl->tunnel, f->svc, IPPROTO_UDP,
	    &f->client.sa, &f->orig.sa, NULL, 0, udp_tunnel_ready, f, &why);
	if (f->treq == NULL) {
		u->sl->stats.dial_failed++;
		udp_tunnel_log(f, 1, "tunnel", why);
		return -1;
	}
	return 0;
}

static void
udp_tunnel_linger(evutil_socket_t fd, short what, void *arg)
{
	struct udp_flow *f = arg;

	udp_tunnel_log(f, 0, "tunnel", "the host did not end the flow");
	udp_flow_free(f);
}

void
udp_tunnel_end(struct udp_flow *f)
{
	struct udp *u = f->udp;
	struct timeval tv = { UDP_LINGER_SEC, 0 };

	if (f->trelay == NULL) {
		/* Still opening: nothing to end on the host. */
		udp_flow_free(f);
		return;
	}
	f->ending = 1;
	TAILQ_INSERT_TAIL(&u->ending, f, lru);
	u->nending++;
	evtimer_assign(&f->linger, u->sl->base, udp_tunnel_linger, f);
	evtimer_add(&f->linger, &tv);
	relay_tls_end(f->trelay);
}

void
udp_tunnel_close(struct udp_flow *f)
{
	if (event_initialized(&f->linger))
		event_del(&f->linger);
	tunnel_cancel(f->treq);
	f->treq = NULL;
	if (f->trelay != NULL) {
		relay_tls_free(f->trelay);
		f->trelay = NULL;
	}
	if (f->ssl != NULL) {
		tunnel_conn_close(f->ssl, 0);
		f->ssl = NULL;
	}
	if (f->tfd != -1) {
		close(f->tfd);
		f->tfd = -1;
	}
}
