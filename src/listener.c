/* SPDX-License-Identifier: MIT */
/* A TCP listener that accepts in batches and backs off when out of fds. */
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

#include "sluice.h"
#include "log.h"

/* Bounded so that one busy listener cannot starve the flows. */
#define ACCEPT_BATCH		32
#define BACKOFF_MIN_MS		10
#define BACKOFF_MAX_MS		1000

struct listener {
	int			 fd;
	struct sockaddr_storage	 addr;
	listener_cb		 cb;
	void			*arg;
	uint64_t		*paused;
	unsigned		 backoff_ms;
	struct event		 ev;	/* EV_READ|EV_PERSIST on fd */
	struct event		 timer;	/* re-arms ev after back-off */
};

/*
 * Stops accepting for a while. The pending connection stays in the
 * backlog, and level-triggered readiness brings us back to it when the
 * timer re-arms the event; retrying at once would only spin.
 */
static void
listener_pause(struct listener *l, int err)
{
	struct timeval tv;
	char buf[ADDR_STRLEN];

	event_del(&l->ev);
	tv.tv_sec = l->backoff_ms / 1000;
	tv.tv_usec = (l->backoff_ms % 1000) * 1000;
	evtimer_add(&l->timer, &tv);
	if (l->paused != NULL)
		++*l->paused;
	log_warnx("listener %s: %s, pausing accept for %u ms",
	    addr_str((struct sockaddr *)&l->addr, buf, sizeof(buf)),
	    err == EMFILE || err == ENFILE ? "out of file descriptors" :
	    err == ENOBUFS || err == ENOMEM ? "out of memory" : strerror(err),
	    l->backoff_ms);
	l->backoff_ms *= 2;
	if (l->backoff_ms > BACKOFF_MAX_MS)
		l->backoff_ms = BACKOFF_MAX_MS;
}

static void
listener_resume(evutil_socket_t fd, short what, void *arg)
{
	struct listener *l = arg;

	event_add(&l->ev, NULL);
}

int
fd_exhausted(int err)
{
	return err == EMFILE || err == ENFILE || err == ENOBUFS ||
	    err == ENOMEM;
}

/* Errors that concern one connection only: move on to the next. */
static int
accept_transient(int err)
{
	switch (err) {
	case EINTR:
	case ECONNABORTED:
	case EPROTO:
	case EPERM:		/* a firewall said no to this one */
	case ENETDOWN:
	case ENOPROTOOPT:
	case EHOSTDOWN:
	case ENONET:
	case EHOSTUNREACH:
	case EOPNOTSUPP:
	case ENETUNREACH:
		return 1;
	default:
		return 0;
	}
}

static void
listener_accept(evutil_socket_t lfd, short what, void *arg)
{
	struct listener *l = arg;
	struct sockaddr_storage peer;
	socklen_t len;
	int fd, n;

	for (n = 0; n < ACCEPT_BATCH; n++) {
		len = sizeof(peer);
		fd = accept4(l->fd, (struct sockaddr *)&peer, &len,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd == -1) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			if (accept_transient(errno))
				continue;
			/* Out of fds or memory, or something unexpected. */
			listener_pause(l, errno);
			return;
		}
		/*
		 * A flow needs more descriptors than the accepted one: when
		 * it cannot get them, pause as if accept had failed, rather
		 * than reset every queued client one after another.
		 */
		if (l->cb(fd, (struct sockaddr *)&peer, l->arg) == -1 &&
		    fd_exhausted(errno)) {
			listener_pause(l, errno);
			return;
		}
		l->backoff_ms = BACKOFF_MIN_MS;
	}
}

struct listener *
listener_new(struct event_base *base, const struct sockaddr *addr,
    int transparent, listener_cb cb, void *arg, uint64_t *paused_counter)
{
	struct listener *l;
	int one = 1, zero = 0, saved;

	if ((l = calloc(1, sizeof(*l))) == NULL)
		return NULL;
	l->cb = cb;
	l->arg = arg;
	l->paused = paused_counter;
	l->backoff_ms = BACKOFF_MIN_MS;
	if ((l->fd = sock_listen(addr, SOCK_STREAM, transparent,
	    &l->addr)) == -1)
		goto fail;
	/*
	 * Accepted sockets inherit TCP_NODELAY: small requests and replies
	 * are not held back by Nagle, at no cost per connection.
	 */
	if (setsockopt(l->fd, IPPROTO_TCP, TCP_NODELAY, &one,
	    sizeof(one)) == -1)
		goto fail;
	/*
	 * And delayed ACKs from their first byte on (the kernel otherwise
	 * acknowledges the first segments at once): a request's ACK then
	 * rides on the answer instead of costing both ends a packet. Best
	 * effort; the cost is only the saving missed.
	 */
	(void)setsockopt(l->fd, IPPROTO_TCP, TCP_QUICKACK, &zero,
	    sizeof(zero));
	if (event_assign(&l->ev, base, l->fd, EV_READ | EV_PERSIST,
	    listener_accept, l) == -1 ||
	    evtimer_assign(&l->timer, base, listener_resume, l) == -1 ||
	    event_add(&l->ev, NULL) == -1) {
		errno = ENOMEM;
		goto fail;
	}
	return l;
fail:
	saved = errno;
	if (l->fd != -1)
		close(l->fd);
	free(l);
	errno = saved;
	return NULL;
}

const struct sockaddr *
listener_addr(const struct listener *l)
{
	return (const struct sockaddr *)&l->addr;
}

void
listener_free(struct listener *l)
{
	if (l == NULL)
		return;
	event_del(&l->ev);
	event_del(&l->timer);
	close(l->fd);
	free(l);
}
