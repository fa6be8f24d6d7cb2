/* SPDX-License-Identifier: MIT */
/* DNS over TCP (RFC 7766): framing, pipelining, idle timeout, bounds. */
#include "config.h"

#include <sys/queue.h>
#include <sys/socket.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "dns.h"
#include "log.h"

/*
 * Bounds that keep a hostile client from holding the server: connections
 * at once (the least recently active idle one makes room for a new one),
 * queries in flight per connection (reading pauses), reply bytes waiting
 * to be read by the client (reading pauses), and an idle timeout that
 * only a complete query restarts, so a trickle of bytes (slowloris) does
 * not keep a connection open.
 */
#define TCP_CONNS_MAX		128
#define TCP_PIPELINE_MAX	32
#define TCP_OUT_MAX		(256 * 1024)
#define TCP_IDLE_SEC		10

struct dns_tcp_conn {
	TAILQ_ENTRY(dns_tcp_conn) entry;	/* by last activity, oldest first */
	struct dns_tcp		*tcp;
	struct bufferevent	*bev;		/* NULL once closed */
	struct event		*idle;
	unsigned		 inflight;	/* queries without a reply yet */
	int			 eof;		/* the client finished sending */
	int			 reading;	/* in tcp_read(): do not free */
};
TAILQ_HEAD(tcp_conns, dns_tcp_conn);

struct dns_tcp {
	struct event_base	*base;
	int			 fd;
	struct event		*ev;
	dns_tcp_query_cb	 cb;
	void			*arg;
	struct dns_stats	*stats;
	struct tcp_conns	 conns;		/* open */
	struct tcp_conns	 closed;	/* waiting for replies owed */
	size_t			 nconns;
};

static void	tcp_read(struct bufferevent *, void *);

/* The struct lives on while the thread owes it replies. */
static void
tcp_conn_close(struct dns_tcp_conn *c)
{
	struct dns_tcp *tcp = c->tcp;

	if (c->bev != NULL) {
		bufferevent_free(c->bev);
		c->bev = NULL;
		event_del(c->idle);
		TAILQ_REMOVE(&tcp->conns, c, entry);
		tcp->nconns--;
		if (c->inflight > 0) {
			TAILQ_INSERT_TAIL(&tcp->closed, c, entry);
			return;
		}
	} else if (c->inflight > 0)
		return;
	else
		TAILQ_REMOVE(&tcp->closed, c, entry);
	event_free(c->idle);
	free(c);
}

static void
tcp_idle_arm(struct dns_tcp_conn *c)
{
	struct timeval tv = { TCP_IDLE_SEC, 0 };

	event_add(c->idle, &tv);
}

/* RFC 7766 6.2.3: idle means no query outstanding, so wait for those. */
static void
tcp_idle(evutil_socket_t fd, short what, void *arg)
{
	struct dns_tcp_conn *c = arg;

	if (c->inflight > 0) {
		tcp_idle_arm(c);
		return;
	}
	log_debug("dns tcp: idle connection closed");
	tcp_conn_close(c);
}

/* Reading pauses while the client has enough in flight or unread. */
static void
tcp_flow(struct dns_tcp_conn *c)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);

	if (c->eof || c->inflight >= TCP_PIPELINE_MAX ||
	    evbuffer_get_length(out) >= TCP_OUT_MAX)
		bufferevent_disable(c->bev, EV_READ);
	else
		bufferevent_enable(c->bev, EV_READ);
}

/* A whole message waits in the input. */
static int
tcp_has_message(struct dns_tcp_conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	uint8_t hdr[2];
	size_t len = evbuffer_get_length(in);

	if (len < 2)
		return 0;
	evbuffer_copyout(in, hdr, 2);
	return len >= 2 + ((size_t)hdr[0] << 8 | hdr[1]);
}

/* After the last reply to a client that has finished, close. */
static int
tcp_maybe_done(struct dns_tcp_conn *c)
{
	if (!c->reading && c->eof && c->inflight == 0 &&
	    evbuffer_get_length(bufferevent_get_output(c->bev)) == 0 &&
	    !tcp_has_message(c)) {
		tcp_conn_close(c);
		return 1;
	}
	return 0;
}

static void
tcp_written(struct bufferevent *bev, void *arg)
{
	struct dns_tcp_conn *c = arg;

	if (tcp_has_message(c))
		tcp_read(bev, c);
	else if (!tcp_maybe_done(c))
		tcp_flow(c);
}

static void
tcp_event(struct bufferevent *bev, short what, void *arg)
{
	struct dns_tcp_conn *c = arg;

	if ((what & BEV_EVENT_EOF) && !(what & BEV_EVENT_ERROR)) {
		/* A partial message can never complete now. */
		c->eof = 1;
		if (!tcp_maybe_done(c))
			tcp_flow(c);
		return;
	}
	tcp_conn_close(c);
}

/*
 * Takes each complete message; a zero length is a broken stream. The
 * callback may reply at once, so the connection must not be freed under
 * this loop (c->reading).
 */
static void
tcp_read(struct bufferevent *bev, void *arg)
{
	struct dns_tcp_conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	uint8_t buf[2 + DNS_TCP_MAX];
	size_t len;

	c->reading = 1;
	while (c->inflight < TCP_PIPELINE_MAX && evbuffer_get_length(in) >= 2) {
		evbuffer_copyout(in, buf, 2);
		len = (size_t)buf[0] << 8 | buf[1];
		if (len == 0) {
			dns_stat_inc(c->tcp->stats, DNS_ST_MALFORMED);
			log_debug("dns tcp: zero-length message, closing");
			c->reading = 0;
			tcp_conn_close(c);
			return;
		}
		if (evbuffer_get_length(in) < 2 + len)
			break;
		evbuffer_remove(in, buf, 2 + len);
		c->inflight++;
		TAILQ_REMOVE(&c->tcp->conns, c, entry);
		TAILQ_INSERT_TAIL(&c->tcp->conns, c, entry);
		tcp_idle_arm(c);
		dns_stat_inc(c->tcp->stats, DNS_ST_TCP);
		c->tcp->cb(c->tcp->arg, c, buf + 2, len);
	}
	c->reading = 0;
	if (!tcp_maybe_done(c))
		tcp_flow(c);
}

void
dns_tcp_reply(struct dns_tcp_conn *c, const uint8_t *buf, size_t len)
{
	uint8_t hdr[2];

	if (c->inflight > 0)
		c->inflight--;
	if (c->bev == NULL) {
		if (c->inflight == 0)
			tcp_conn_close(c);
		return;
	}
	if (len > 0 && len <= DNS_TCP_MAX) {
		hdr[0] = (uint8_t)(len >> 8);
		hdr[1] = (uint8_t)len;
		bufferevent_write(c->bev, hdr, 2);
		bufferevent_write(c->bev, buf, len);
		tcp_idle_arm(c);
	}
	if (c->reading)
		return;		/* tcp_read() looks again when done */
	if (tcp_has_message(c) && c->inflight < TCP_PIPELINE_MAX)
		tcp_read(c->bev, c);
	else if (!tcp_maybe_done(c))
		tcp_flow(c);
}

/* Full: the least recently active connection with nothing owed goes. */
static int
tcp_make_room(struct dns_tcp *tcp)
{
	struct dns_tcp_conn *c;

	if (tcp->nconns < TCP_CONNS_MAX)
		return 0;
	TAILQ_FOREACH(c, &tcp->conns, entry) {
		if (c->inflight == 0) {
			dns_stat_inc(tcp->stats, DNS_ST_TCP_EVICTED);
			tcp_conn_close(c);
			return 0;
		}
	}
	return -1;
}

static void
tcp_accept_one(struct dns_tcp *tcp, int fd)
{
	struct dns_tcp_conn *c;

	if (tcp_make_room(tcp) == -1 || (c = calloc(1, sizeof(*c))) == NULL) {
		dns_stat_inc(tcp->stats, DNS_ST_OVERLOAD);
		close(fd);
		return;
	}
	c->tcp = tcp;
	c->bev = bufferevent_socket_new(tcp->base, fd, BEV_OPT_CLOSE_ON_FREE);
	c->idle = evtimer_new(tcp->base, tcp_idle, c);
	if (c->bev == NULL || c->idle == NULL) {
		if (c->bev != NULL)
			bufferevent_free(c->bev);
		else
			close(fd);
		if (c->idle != NULL)
			event_free(c->idle);
		free(c);
		return;
	}
	TAILQ_INSERT_TAIL(&tcp->conns, c, entry);
	tcp->nconns++;
	dns_stat_inc(tcp->stats, DNS_ST_TCP_CONNS);
	bufferevent_setcb(c->bev, tcp_read, tcp_written, tcp_event, c);
	/* One message and its length prefix at most waits in the input. */
	bufferevent_setwatermark(c->bev, EV_READ, 0, 2 + DNS_TCP_MAX);
	bufferevent_enable(c->bev, EV_READ);
	tcp_idle_arm(c);
}

static void
tcp_accept(evutil_socket_t lfd, short what, void *arg)
{
	struct dns_tcp *tcp = arg;
	int fd, i;

	for (i = 0; i < 16; i++) {
		fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd == -1) {
			if (errno != EAGAIN && errno != EINTR &&
			    errno != ECONNABORTED)
				log_warn("dns tcp: accept");
			return;
		}
		tcp_accept_one(tcp, fd);
	}
}

struct dns_tcp *
dns_tcp_new(struct event_base *base, int fd, dns_tcp_query_cb cb, void *arg,
    struct dns_stats *stats)
{
	struct dns_tcp *tcp;

	if ((tcp = calloc(1, sizeof(*tcp))) == NULL)
		return NULL;
	tcp->base = base;
	tcp->fd = fd;
	tcp->cb = cb;
	tcp->arg = arg;
	tcp->stats = stats;
	TAILQ_INIT(&tcp->conns);
	TAILQ_INIT(&tcp->closed);
	tcp->ev = event_new(base, fd, EV_READ | EV_PERSIST, tcp_accept, tcp);
	if (tcp->ev == NULL || event_add(tcp->ev, NULL) == -1) {
		if (tcp->ev != NULL)
			event_free(tcp->ev);
		free(tcp);
		return NULL;
	}
	return tcp;
}

void
dns_tcp_free(struct dns_tcp *tcp)
{
	struct dns_tcp_conn *c;

	if (tcp == NULL)
		return;
	while ((c = TAILQ_FIRST(&tcp->conns)) != NULL) {
		c->inflight = 0;
		tcp_conn_close(c);
	}
	while ((c = TAILQ_FIRST(&tcp->closed)) != NULL) {
		c->inflight = 0;
		tcp_conn_close(c);
	}
	event_free(tcp->ev);
	close(tcp->fd);
	free(tcp);
}
