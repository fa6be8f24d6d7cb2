/* SPDX-License-Identifier: MIT */
/* The link between the main and resolver threads: fixed-size messages. */
#include "config.h"

#include <sys/queue.h>
#include <sys/socket.h>
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "dns.h"
#include "log.h"

/*
 * A socket buffer holds a few hundred messages; beyond that they wait
 * here. The bound keeps a stalled peer from eating memory: the resolver
 * thread never has more than DNS_PENDING_MAX intercepts in flight anyway.
 */
#define CHAN_QUEUE_MAX	4096

struct chan_item {
	STAILQ_ENTRY(chan_item)	 entry;
	struct dns_msg		 msg;
};

struct dns_chan {
	int			 fd;
	struct event		*rev, *wev;
	dns_chan_cb		 cb;
	dns_chan_flush_cb	 flush;
	void			*arg;
	STAILQ_HEAD(, chan_item) queue;
	size_t			 queued;
};

static int
chan_addr_ok(const struct cidr *c)
{
	return (c->family == AF_INET && c->prefixlen == 32) ||
	    (c->family == AF_INET6 && c->prefixlen == 128);
}

/* Another thread of ours wrote it, but a bug must not become a crash. */
static int
chan_valid(const struct dns_msg *m)
{
	if (memchr(m->name, '\0', sizeof(m->name)) == NULL ||
	    memchr(m->service, '\0', sizeof(m->service)) == NULL)
		return 0;
	switch (m->type) {
	case DNS_MSG_INTERCEPT:
		if (m->service[0] == '\0')
			return 0;
		/* FALLTHROUGH */
	case DNS_MSG_REMOVE:
	case DNS_MSG_ACK:
	case DNS_MSG_TEST:
		return m->name[0] != '\0' && chan_addr_ok(&m->addr) &&
		    m->conf == NULL;
	case DNS_MSG_RELOAD:
		return m->conf != NULL;
	case DNS_MSG_STOP:
		return m->conf == NULL;
	}
	return 0;
}

/* 1: more may follow, 0: nothing now, -1: the other end is gone. */
static int
chan_read_one(struct dns_chan *ch)
{
	struct dns_msg m;
	ssize_t n;

	n = recv(ch->fd, &m, sizeof(m), MSG_DONTWAIT | MSG_TRUNC);
	if (n == -1) {
		if (errno == EAGAIN || errno == EINTR)
			return 0;
		log_warn("%s: recv", __func__);
		return -1;
	}
	if (n == 0)
		return -1;
	if ((size_t)n != sizeof(m) || !chan_valid(&m)) {
		log_warnx("%s: dropped an invalid message (%zd bytes, type "
		    "%u)", __func__, n, (size_t)n >= sizeof(m.type) ?
		    m.type : 0);
		return 1;
	}
	ch->cb(&m, ch->arg);
	return 1;
}

/* Up to DNS_CHAN_BATCH messages, then flush; 0, or -1 at EOF. */
static int
chan_read_batch(struct dns_chan *ch)
{
	int i, rc = 0;

	for (i = 0; i < DNS_CHAN_BATCH; i++)
		if ((rc = chan_read_one(ch)) != 1)
			break;
	if (i > 0 && ch->flush != NULL)
		ch->flush(ch->arg);
	return rc == -1 ? -1 : 0;
}

static void
chan_read(evutil_socket_t fd, short what, void *arg)
{
	struct dns_chan *ch = arg;

	if (chan_read_batch(ch) == -1) {
		event_del(ch->rev);
		ch->cb(NULL, ch->arg);	/* may free ch */
	}
}

/* 0 when the queue is empty, 1 when the socket is full, -1 on error. */
static int
chan_flush(struct dns_chan *ch)
{
	struct chan_item *it;

	while ((it = STAILQ_FIRST(&ch->queue)) != NULL) {
		if (send(ch->fd, &it->msg, sizeof(it->msg),
		    MSG_DONTWAIT | MSG_NOSIGNAL) == -1) {
			if (errno == EAGAIN || errno == EINTR)
				return 1;
			return -1;
		}
		STAILQ_REMOVE_HEAD(&ch->queue, entry);
		ch->queued--;
		free(it);
	}
	return 0;
}

static void
chan_write(evutil_socket_t fd, short what, void *arg)
{
	struct dns_chan *ch = arg;
	int rc;

	if ((rc = chan_flush(ch)) == 1)
		return;
	event_del(ch->wev);
	if (rc == -1)
		log_warn("%s: send", __func__);
}

struct dns_chan *
dns_chan_new(struct event_base *base, int fd, dns_chan_cb cb,
    dns_chan_flush_cb flush, void *arg)
{
	struct dns_chan *ch;

	if ((ch = calloc(1, sizeof(*ch))) == NULL)
		return NULL;
	ch->fd = fd;
	ch->cb = cb;
	ch->flush = flush;
	ch->arg = arg;
	STAILQ_INIT(&ch->queue);
	ch->rev = event_new(base, fd, EV_READ | EV_PERSIST, chan_read, ch);
	ch->wev = event_new(base, fd, EV_WRITE | EV_PERSIST, chan_write, ch);
	if (ch->rev == NULL || ch->wev == NULL ||
	    event_add(ch->rev, NULL) == -1) {
		if (ch->rev != NULL)
			event_free(ch->rev);
		if (ch->wev != NULL)
			event_free(ch->wev);
		free(ch);
		return NULL;
	}
	return ch;
}

int
dns_chan_send(struct dns_chan *ch, const struct dns_msg *m)
{
	struct chan_item *it;

	if (ch->queued == 0) {
		if (send(ch->fd, m, sizeof(*m), MSG_DONTWAIT |
		    MSG_NOSIGNAL) == (ssize_t)sizeof(*m))
			return 0;
		if (errno != EAGAIN && errno != EINTR)
			return -1;
	}
	if (ch->queued >= CHAN_QUEUE_MAX) {
		errno = ENOBUFS;
		return -1;
	}
	if ((it = malloc(sizeof(*it))) == NULL)
		return -1;
	it->msg = *m;
	STAILQ_INSERT_TAIL(&ch->queue, it, entry);
	ch->queued++;
	event_add(ch->wev, NULL);
	return 0;
}

static long
chan_ms_since(const struct timespec *t0)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - t0->tv_sec) * 1000 +
	    (now.tv_nsec - t0->tv_nsec) / 1000000;
}

/*
 * For the main thread while its loop is not running (start-up, the
 * self-test): waits for and dispatches messages for up to ms.
 */
int
dns_chan_poll(struct dns_chan *ch, int ms)
{
	struct pollfd pfd;
	struct timespec t0;
	long left;
	int rc;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		if (chan_flush(ch) == -1)
			return -1;
		left = ms - chan_ms_since(&t0);
		if (left < 0)
			left = 0;
		pfd.fd = ch->fd;
		pfd.events = POLLIN | (ch->queued > 0 ? POLLOUT : 0);
		pfd.revents = 0;
		if ((rc = poll(&pfd, 1, (int)left)) == -1 && errno != EINTR)
			return -1;
		if (rc > 0 && (pfd.revents & (POLLIN | POLLHUP | POLLERR)))
			break;
		if (left == 0)
			return 0;
	}
	return chan_read_batch(ch);
}

void
dns_chan_shutdown(struct dns_chan *ch)
{
	(void)chan_flush(ch);
	(void)shutdown(ch->fd, SHUT_WR);
}

void
dns_chan_free(struct dns_chan *ch)
{
	struct chan_item *it;

	if (ch == NULL)
		return;
	while ((it = STAILQ_FIRST(&ch->queue)) != NULL) {
		STAILQ_REMOVE_HEAD(&ch->queue, entry);
		free(it);
	}
	event_free(ch->rev);
	event_free(ch->wev);
	close(ch->fd);
	free(ch);
}
