/* SPDX-License-Identifier: MIT */
/* Forwarding to dns.upstream with c-ares, driven by the thread's event loop. */
#include "config.h"

#include <sys/queue.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <ares.h>
#include <event2/event.h>

#include "dns.h"
#include "log.h"

/*
 * c-ares tries the servers in order, each up to UPSTREAM_TRIES times, and
 * moves on after a timeout or a SERVFAIL/REFUSED/NOTIMP answer: that is
 * the failover between upstreams. A UDP answer over 512 bytes is fetched
 * again over TCP (no ARES_FLAG_EDNS: c-ares would strip an OPT it did not
 * write).
 */
#define UPSTREAM_TIMEOUT_MS	1500
#define UPSTREAM_TRIES		2

/* One c-ares socket and the event that watches it. */
struct up_sock {
	LIST_ENTRY(up_sock)	 entry;
	ares_socket_t		 fd;
	struct event		*ev;
};

struct upstream {
	struct event_base	*base;
	ares_channel		 channel;
	uint32_t		 mark;
	struct event		*timer;
	LIST_HEAD(, up_sock)	 socks;
};

struct up_query {
	upstream_cb	 cb;
	void		*arg;
};

static void	up_arm_timer(struct upstream *);

static void
up_io(evutil_socket_t fd, short what, void *arg)
{
	struct upstream *up = arg;

	ares_process_fd(up->channel,
	    (what & EV_READ) ? (ares_socket_t)fd : ARES_SOCKET_BAD,
	    (what & EV_WRITE) ? (ares_socket_t)fd : ARES_SOCKET_BAD);
	up_arm_timer(up);
}

static void
up_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct upstream *up = arg;

	ares_process_fd(up->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	up_arm_timer(up);
}

static void
up_arm_timer(struct upstream *up)
{
	struct timeval max = { 1, 0 }, tv, *tvp;

	tvp = ares_timeout(up->channel, &max, &tv);
	if (tvp == NULL) {
		event_del(up->timer);
		return;
	}
	event_add(up->timer, tvp);
}

static struct up_sock *
up_sock_find(struct upstream *up, ares_socket_t fd)
{
	struct up_sock *s;

	LIST_FOREACH(s, &up->socks, entry)
		if (s->fd == fd)
			return s;
	return NULL;
}

static void
up_sock_free(struct up_sock *s)
{
	LIST_REMOVE(s, entry);
	event_free(s->ev);
	free(s);
}

/* c-ares says which of its sockets to watch for what. */
static void
up_sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
	struct upstream *up = data;
	struct up_sock *s = up_sock_find(up, fd);
	short what = (readable ? EV_READ : 0) | (writable ? EV_WRITE : 0);

	if (what == 0) {
		if (s != NULL)
			up_sock_free(s);
		return;
	}
	if (s == NULL) {
		if ((s = calloc(1, sizeof(*s))) == NULL) {
			log_warn("%s", __func__);
			return;
		}
		s->fd = fd;
		LIST_INSERT_HEAD(&up->socks, s, entry);
	} else
		event_free(s->ev);
	s->ev = event_new(up->base, fd, what | EV_PERSIST, up_io, up);
	if (s->ev == NULL || event_add(s->ev, NULL) == -1) {
		log_warnx("%s: cannot watch a c-ares socket", __func__);
		if (s->ev != NULL)
			event_free(s->ev);
		LIST_REMOVE(s, entry);
		free(s);
	}
}

/* Before connect: our queries must never be intercepted themselves. */
static int
up_sock_create(ares_socket_t fd, int type, void *data)
{
	struct upstream *up = data;

	if (sock_set_mark(fd, up->mark) == -1) {
		log_warn("%s: SO_MARK 0x%x", __func__, up->mark);
		return -1;
	}
	return 0;
}

int
upstream_servers(struct upstream *up, const struct config *conf)
{
	struct ares_addr_port_node *nodes;
	const struct sockaddr *sa;
	size_t i;
	int rc;

	if (conf->ndns_upstream == 0)
		return 0;
	if ((nodes = calloc(conf->ndns_upstream, sizeof(*nodes))) == NULL)
		return -1;
	for (i = 0; i < conf->ndns_upstream; i++) {
		sa = (const struct sockaddr *)&conf->dns_upstream[i].ss;
		nodes[i].next = i + 1 < conf->ndns_upstream ? &nodes[i + 1] :
		    NULL;
		nodes[i].family = sa->sa_family;
		if (sa->sa_family == AF_INET)
			memcpy(&nodes[i].addr.addr4,
			    &((const struct sockaddr_in *)sa)->sin_addr, 4);
		else
			memcpy(&nodes[i].addr.addr6,
			    &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
		nodes[i].udp_port = nodes[i].tcp_port = addr_port(sa);
	}
	rc = ares_set_servers_ports(up->channel, nodes);
	free(nodes);
	if (rc != ARES_SUCCESS) {
		log_warnx("%s: %s", __func__, ares_strerror(rc));
		return -1;
	}
	up->mark = conf->bypass_mark;
	return 0;
}

struct upstream *
upstream_new(struct event_base *base, const struct config *conf)
{
	struct ares_options opts;
	struct upstream *up;
	int rc;

	if ((up = calloc(1, sizeof(*up))) == NULL)
		return NULL;
	up->base = base;
	up->mark = conf->bypass_mark;
	LIST_INIT(&up->socks);
	if ((up->timer = evtimer_new(base, up_timeout, up)) == NULL)
		goto fail;
	memset(&opts, 0, sizeof(opts));
	opts.flags = ARES_FLAG_NOSEARCH | ARES_FLAG_NOALIASES;
	opts.timeout = UPSTREAM_TIMEOUT_MS;
	opts.tries = UPSTREAM_TRIES;
	opts.sock_state_cb = up_sock_state;
	opts.sock_state_cb_data = up;
	rc = ares_init_options(&up->channel, &opts, ARES_OPT_FLAGS |
	    ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_SOCK_STATE_CB);
	if (rc != ARES_SUCCESS) {
		log_warnx("%s: c-ares: %s", __func__, ares_strerror(rc));
		up->channel = NULL;
		goto fail;
	}
	ares_set_socket_callback(up->channel, up_sock_create, up);
	if (upstream_servers(up, conf) == -1)
		goto fail;
	return up;
fail:
	upstream_free(up);
	return NULL;
}

static void
up_done(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct up_query *uq = arg;

	if (status == ARES_SUCCESS && abuf != NULL && alen >= DNS_HDR_LEN)
		uq->cb(uq->arg, 0, abuf, (size_t)alen);
	else {
		log_debug("upstream: %s", ares_strerror(status));
		uq->cb(uq->arg, -1, NULL, 0);
	}
	free(uq);
}

void
upstream_send(struct upstream *up, const uint8_t *q, size_t len,
    upstream_cb cb, void *arg)
{
	struct up_query *uq;

	if ((uq = malloc(sizeof(*uq))) == NULL) {
		cb(arg, -1, NULL, 0);
		return;
	}
	uq->cb = cb;
	uq->arg = arg;
	ares_send(up->channel, q, (int)len, up_done, uq);
	up_arm_timer(up);
}

void
upstream_free(struct upstream *up)
{
	struct up_sock *s;

	if (up == NULL)
		return;
	/* Ends every query with ARES_EDESTRUCTION: their callbacks run. */
	if (up->channel != NULL)
		ares_destroy(up->channel);
	while ((s = LIST_FIRST(&up->socks)) != NULL)
		up_sock_free(s);
	if (up->timer != NULL)
		event_free(up->timer);
	free(up);
}
