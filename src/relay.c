/* SPDX-License-Identifier: MIT */
/*
 * Relays a pair of TCP sockets: short exchanges by recv/send through the
 * stack, bulk transfers with splice(2) through pooled pipes.
 */
#include "config.h"

#include <sys/socket.h>
#include <sys/syscall.h>
#include <linux/capability.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "sluice.h"
#include "log.h"

/*
 * The pipe is the only buffer between the two sockets, so its size bounds
 * the bytes in flight per direction and how much one splice pair moves.
 * Measured on loopback, 1 MiB pipes cost the least CPU per byte (64 KiB
 * ones about 60% more). Pipes are held only while bytes are in flight.
 */
#ifndef RELAY_PIPE_SIZE
#define RELAY_PIPE_SIZE		(1024 * 1024)
#endif
#define PIPE_DEF_PAGES		16	/* what pipe2() gives */
/* Read+write rounds per wakeup, so that one fast flow cannot starve others. */
#ifndef RELAY_ROUNDS
#define RELAY_ROUNDS		4
#endif
/*
 * A read shorter than this most likely emptied the socket: stop there and
 * let level-triggered readiness say otherwise, rather than spend a splice
 * on the EAGAIN that almost always follows.
 */
#ifndef RELAY_SHORT_READ
#define RELAY_SHORT_READ	(RELAY_PIPE_SIZE / 4)
#endif
#define RELAY_READ_MAX		(1 << 30)	/* all that fits */
/*
 * A direction starts by copying through a buffer of this size on the
 * stack: a request or a reply of a few KiB costs two cheap syscalls and no
 * pipe. Only once a read fills the buffer does it switch to splice, for
 * good: then the bytes are many and copying them would cost more.
 */
#ifndef RELAY_COPY_SIZE
#define RELAY_COPY_SIZE		(16 * 1024)
#endif

#define SPLICE_FLAGS		(SPLICE_F_MOVE | SPLICE_F_NONBLOCK)
#define AGAIN			(-2)	/* src is empty; half_copy: splice now */

struct rpipe {
	int		 rd, wr;	/* -1: none */
	unsigned	 pages;		/* capacity */
	int		 small;		/* not grown: over budget */
};

struct pipe_pool {
	size_t		 max_idle;
	size_t		 nidle;
	size_t		 busy;
	size_t		 pages;		/* capacity of our pipes */
	size_t		 budget;	/* pages we may own; 0 no limit */
	long		 pagesize;
	struct rpipe	*idle;
};

/* One direction: src -> pipe -> dst. */
struct half {
	struct relay	*r;
	int		 src, dst;
	struct rpipe	 pipe;		/* while bytes are in flight */
	size_t		 inpipe;	/* bytes in the pipe */
	unsigned char	*held;		/* copied bytes dst did not take */
	size_t		 heldoff, heldlen;
	uint64_t	 bytes;		/* bytes written to dst */
	unsigned	 flags;
#define H_RD		0x01		/* rd is pending */
#define H_WR		0x02		/* wr is pending */
#define H_EOF		0x04		/* src said EOF */
#define H_SHUT		0x08		/* EOF passed on to dst */
#define H_BULK		0x10		/* splicing, no longer copying */
	struct event	 rd;		/* EV_READ on src */
	struct event	 wr;		/* EV_WRITE on dst */
};

struct relay {
	struct pipe_pool *pool;
	relay_done_cb	 done;
	void		*arg;
	int		 finished;
	int		 err;		/* errno that ended it, or 0 */
	int		 err_side;	/* 0 a, 1 b, -1 neither (local) */
	struct half	 h[2];		/* a -> b, b -> a */
};

/* ---- pipe pool ---- */

static int
cap_effective(int cap)
{
	struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3,
	    0 };
	struct __user_cap_data_struct data[2];

	memset(data, 0, sizeof(data));
	if (syscall(SYS_capget, &hdr, data) == -1)
		return 0;
	return (data[cap / 32].effective & (1U << (cap % 32))) != 0;
}

/*
 * Without CAP_SYS_RESOURCE the kernel charges pipe capacity to the user,
 * and past pipe-user-pages-soft it hands out 2-page pipes and refuses to
 * grow any: keep well under that (half of it; the user has other pipes).
 */
static size_t
pipe_budget(void)
{
	unsigned long soft = 16384;
	FILE *fp;

	if (cap_effective(CAP_SYS_RESOURCE) || cap_effective(CAP_SYS_ADMIN))
		return 0;
	if ((fp = fopen("/proc/sys/fs/pipe-user-pages-soft", "r")) != NULL) {
		if (fscanf(fp, "%lu", &soft) != 1)
			soft = 16384;
		fclose(fp);
	}
	return soft == 0 ? 0 : soft / 2;
}

struct pipe_pool *
pipe_pool_new(size_t max_idle)
{
	struct pipe_pool *pp;

	if ((pp = calloc(1, sizeof(*pp))) == NULL)
		return NULL;
	pp->max_idle = max_idle;
	pp->budget = pipe_budget();
	if ((pp->pagesize = sysconf(_SC_PAGESIZE)) <= 0)
		pp->pagesize = 4096;
	if (max_idle > 0 &&
	    (pp->idle = calloc(max_idle, sizeof(*pp->idle))) == NULL) {
		free(pp);
		return NULL;
	}
	return pp;
}

static void
pipe_close(struct pipe_pool *pp, struct rpipe *p)
{
	close(p->rd);
	close(p->wr);
	pp->pages -= p->pages;
	p->rd = p->wr = -1;
}

void
pipe_pool_free(struct pipe_pool *pp)
{
	size_t i;

	if (pp == NULL)
		return;
	for (i = 0; i < pp->nidle; i++)
		pipe_close(pp, &pp->idle[i]);
	free(pp->idle);
	free(pp);
}

size_t
pipe_pool_idle(const struct pipe_pool *pp)
{
	return pp->nidle;
}

size_t
pipe_pool_busy(const struct pipe_pool *pp)
{
	return pp->busy;
}

/* A new pipe, grown to RELAY_PIPE_SIZE if the budget allows. */
static int
pipe_create(struct pipe_pool *pp, struct rpipe *p)
{
	size_t want = RELAY_PIPE_SIZE / pp->pagesize;
	int fds[2], n;

	if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) == -1)
		return -1;
	p->rd = fds[0];
	p->wr = fds[1];
	p->pages = PIPE_DEF_PAGES;
	p->small = pp->budget != 0 && pp->pages + want > pp->budget;
	/* Refused (pipe-max-size): the default pipe still works. */
	if (!p->small &&
	    (n = fcntl(p->wr, F_SETPIPE_SZ, RELAY_PIPE_SIZE)) > 0)
		p->pages = n / pp->pagesize;
	pp->pages += p->pages;
	return 0;
}

static int
pipe_get(struct pipe_pool *pp, struct rpipe *p)
{
	if (pp->nidle > 0)
		*p = pp->idle[--pp->nidle];
	else if (pipe_create(pp, p) == -1)
		return -1;
	pp->busy++;
	return 0;
}

/*
 * A pipe that still holds bytes from a dead flow is closed, never reused.
 * Small pipes made under budget pressure are not kept either.
 */
static void
pipe_put(struct pipe_pool *pp, struct rpipe *p, size_t inpipe)
{
	if (p->rd == -1)
		return;
	pp->busy--;
	if (inpipe == 0 && pp->nidle < pp->max_idle && !p->small) {
		pp->idle[pp->nidle++] = *p;
		p->rd = p->wr = -1;
	} else
		pipe_close(pp, p);
}

/* ---- one direction ---- */

/*
 * Arms exactly the events in want (H_RD, H_WR or 0), touching only those
 * that change. -1 if the poller refused (the flow would hang otherwise).
 */
static int
half_wait(struct half *h, unsigned want)
{
	int rc = 0;

	if ((want & H_RD) && !(h->flags & H_RD))
		rc |= event_add(&h->rd, NULL);
	else if (!(want & H_RD) && (h->flags & H_RD))
		event_del(&h->rd);
	if ((want & H_WR) && !(h->flags & H_WR))
		rc |= event_add(&h->wr, NULL);
	else if (!(want & H_WR) && (h->flags & H_WR))
		event_del(&h->wr);
	h->flags = (h->flags & ~(H_RD | H_WR)) | want;
	if (rc != 0) {
		h->r->err = errno ? errno : ENOMEM;
		h->r->err_side = -1;
		return -1;
	}
	return 0;
}

static int
half_index(const struct half *h)
{
	return h == &h->r->h[0] ? 0 : 1;
}

static int
half_error(struct half *h, int on_dst)
{
	struct relay *r = h->r;

	r->err = errno ? errno : EIO;
	r->err_side = half_index(h) ^ on_dst;
	return -1;
}

/* Moves the pipe to dst: 1 when it emptied, 0 when dst is full, -1. */
static int
half_write(struct half *h)
{
	ssize_t n;

	for (;;) {
		n = splice(h->pipe.rd, NULL, h->dst, NULL, h->inpipe,
		    SPLICE_FLAGS);
		if (n > 0)
			break;
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN)
			return 0;
		if (n == 0)
			errno = EIO;	/* the pipe lost bytes we counted */
		return half_error(h, 1);
	}
	h->inpipe -= n;
	h->bytes += n;
	/* A short write means the socket buffer is full: save the EAGAIN. */
	return h->inpipe == 0;
}

/* Fills the pipe from src: bytes read, 0 at EOF, AGAIN, or -1. */
static ssize_t
half_read(struct half *h)
{
	ssize_t n;

	if (h->pipe.rd == -1 && pipe_get(h->r->pool, &h->pipe) == -1) {
		h->r->err = errno;
		h->r->err_side = -1;
		return -1;
	}
	do {
		n = splice(h->src, NULL, h->pipe.wr, NULL, RELAY_READ_MAX,
		    SPLICE_FLAGS);
	} while (n == -1 && errno == EINTR);
	if (n > 0)
		h->inpipe += n;
	else if (n == -1 && errno == EAGAIN)
		return AGAIN;
	else if (n == -1)
		return half_error(h, 0);
	return n;
}

/* Passes EOF on; the direction is finished. */
static int
half_shut(struct half *h)
{
	pipe_put(h->r->pool, &h->pipe, 0);
	half_wait(h, 0);
	h->flags |= H_SHUT;
	if (shutdown(h->dst, SHUT_WR) == -1)
		return half_error(h, 1);
	return 1;
}

/* ---- copying: short exchanges ---- */

/* Sends what dst takes of buf: the bytes sent (0 if none) or -1. */
static ssize_t
half_send(struct half *h, const unsigned char *buf, size_t len, int more)
{
	ssize_t n;

	do {
		n = send(h->dst, buf, len, MSG_NOSIGNAL | (more ? MSG_MORE : 0));
	} while (n == -1 && errno == EINTR);
	if (n == -1 && errno == EAGAIN)
		return 0;
	if (n == -1)
		return half_error(h, 1);
	h->bytes += n;
	return n;
}

/*
 * Sends len bytes of buf to dst: 1 when all went, 0 when dst took only
 * part (the rest is held until dst drains), -1. eof: the FIN follows at
 * once, so the last bytes may wait for it and leave in one segment.
 */
static int
half_put(struct half *h, const unsigned char *buf, size_t len, int eof)
{
	ssize_t n;

	if ((n = half_send(h, buf, len, eof)) == -1)
		return -1;
	if ((size_t)n == len)
		return 1;
	if ((h->held = malloc(len - n)) == NULL) {
		h->r->err = ENOMEM;
		h->r->err_side = -1;
		return -1;
	}
	memcpy(h->held, buf + n, len - n);
	h->heldoff = 0;
	h->heldlen = len - n;
	return 0;
}

/* Sends the bytes dst did not take before: 1 when all went, 0, or -1. */
static int
half_flush(struct half *h)
{
	ssize_t n;

	if ((n = half_send(h, h->held + h->heldoff, h->heldlen - h->heldoff,
	    (h->flags & H_EOF) != 0)) == -1)
		return -1;
	if ((h->heldoff += n) < h->heldlen)
		return 0;
	free(h->held);
	h->held = NULL;
	h->heldoff = h->heldlen = 0;
	return 1;
}

/*
 * Reads src into buf: the bytes read, with *eof set when src said EOF.
 * One read as a rule: a short one most likely emptied src. But when the
 * poller saw src's FIN (closed), a short read did empty it, and reading
 * on costs nothing extra: the EOF is needed anyway, and knowing it before
 * sending lets the FIN travel with the last bytes.
 */
static ssize_t
half_recv(struct half *h, unsigned char *buf, size_t size, int closed,
    int *eof)
{
	size_t off = 0;
	ssize_t n;

	*eof = 0;
	while (off < size) {
		n = recv(h->src, buf + off, size - off, 0);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN)
			break;
		if (n == -1)
			return half_error(h, 0);
		if (n == 0) {
			*eof = 1;
			break;
		}
		off += n;
		if (!closed)
			break;
	}
	return off;
}

/*
 * The copying pump: one buffer per wakeup. Returns 0 (waiting), 1
 * (finished), -1 (error), or AGAIN when a read filled the buffer and the
 * direction now splices.
 */
static int
half_copy(struct half *h, short what)
{
	unsigned char buf[RELAY_COPY_SIZE];
	ssize_t n;
	int eof;

	if ((n = half_recv(h, buf, sizeof(buf), (what & EV_CLOSED) != 0,
	    &eof)) == -1)
		return -1;
	if (eof)
		h->flags |= H_EOF;
	if ((size_t)n == sizeof(buf))
		h->flags |= H_BULK;
	if (n > 0) {
		switch (half_put(h, buf, n, eof)) {
		case -1:
			return -1;
		case 0:
			return half_wait(h, H_WR);
		}
	}
	if (eof)
		return half_shut(h);
	if (h->flags & H_BULK)
		return AGAIN;
	return half_wait(h, H_RD);
}

/* ---- splicing: bulk transfers ---- */

/*
 * Moves what src has to dst until src is empty, dst is full or the round
 * budget is spent. The pipe is always emptied before src is read again,
 * so an EAGAIN from the read means src is empty, never that the pipe is
 * full. Returns 0 (waiting), 1 (finished) or -1 (error).
 */
static int
half_splice(struct half *h)
{
	ssize_t n = RELAY_READ_MAX;
	int rounds;

	for (rounds = 0;; rounds++) {
		if (h->inpipe > 0) {
			switch (half_write(h)) {
			case -1:
				return -1;
			case 0:
				/* Back-pressure: src waits until dst drains. */
				return half_wait(h, H_WR);
			}
		}
		if (h->flags & H_EOF)
			return half_shut(h);
		if (rounds == RELAY_ROUNDS || n < RELAY_SHORT_READ)
			break;
		if ((n = half_read(h)) == 0)
			h->flags |= H_EOF;
		else if (n == AGAIN)
			break;
		else if (n == -1)
			return -1;
	}
	/* Nothing in flight: an idle direction holds no pipe. */
	pipe_put(h->r->pool, &h->pipe, 0);
	return half_wait(h, H_RD);
}

/*
 * Bytes a copy left behind go first, whichever way the direction moves
 * now. Returns 0 (waiting), 1 (finished) or -1 (error).
 */
static int
half_pump(struct half *h, short what)
{
	int rc;

	if (h->held != NULL) {
		switch (half_flush(h)) {
		case -1:
			return -1;
		case 0:
			return half_wait(h, H_WR);
		}
	}
	if (h->flags & H_EOF)
		return half_shut(h);
	if (!(h->flags & H_BULK) && (rc = half_copy(h, what)) != AGAIN)
		return rc;
	return half_splice(h);
}

/* ---- the relay ---- */

static void
relay_end(struct relay *r)
{
	half_wait(&r->h[0], 0);
	half_wait(&r->h[1], 0);
	r->finished = 1;
	/* Last: done may free the relay. */
	r->done(r, r->arg);
}

static void
relay_event(evutil_socket_t fd, short what, void *arg)
{
	struct half *h = arg;
	struct relay *r = h->r;

	if (r->finished)
		return;
	if (half_pump(h, what) == -1 ||
	    ((r->h[0].flags & H_SHUT) && (r->h[1].flags & H_SHUT)))
		relay_end(r);
}

static int
half_init(struct relay *r, struct half *h, struct event_base *base, int src,
    int dst)
{
	h->r = r;
	h->src = src;
	h->dst = dst;
	h->pipe.rd = h->pipe.wr = -1;
	/* EV_CLOSED: the poller tells when src's FIN is already in. */
	if (event_assign(&h->rd, base, src, EV_READ | EV_CLOSED | EV_PERSIST,
	    relay_event, h) == -1 ||
	    event_assign(&h->wr, base, dst, EV_WRITE | EV_PERSIST, relay_event,
	    h) == -1)
		return -1;
	return 0;
}

struct relay *
relay_new(struct event_base *base, struct pipe_pool *pool, int a, int b,
    relay_done_cb done, void *arg)
{
	struct relay *r;

	if ((r = calloc(1, sizeof(*r))) == NULL)
		return NULL;
	r->pool = pool;
	r->done = done;
	r->arg = arg;
	if (half_init(r, &r->h[0], base, a, b) == -1 ||
	    half_init(r, &r->h[1], base, b, a) == -1) {
		free(r);
		errno = ENOMEM;
		return NULL;
	}
	if (half_wait(&r->h[0], H_RD) == -1 ||
	    half_wait(&r->h[1], H_RD) == -1) {
		relay_free(r);
		errno = ENOMEM;
		return NULL;
	}
	/*
	 * Bytes may already be waiting (a request sent while we dialled):
	 * try both directions in this loop iteration instead of after the
	 * next poll. Deferred, so done never runs before we return.
	 */
	event_active(&r->h[0].rd, EV_READ, 1);
	event_active(&r->h[1].rd, EV_READ, 1);
	return r;
}

void
relay_bytes(const struct relay *r, uint64_t *a_to_b, uint64_t *b_to_a)
{
	if (a_to_b != NULL)
		*a_to_b = r->h[0].bytes;
	if (b_to_a != NULL)
		*b_to_a = r->h[1].bytes;
}

int
relay_state(const struct relay *r)
{
	return ((r->h[0].flags & H_SHUT) ? RELAY_AB_SHUT : 0) |
	    ((r->h[1].flags & H_SHUT) ? RELAY_BA_SHUT : 0);
}

int
relay_error(const struct relay *r, int *side)
{
	if (side != NULL)
		*side = r->err_side;
	return r->err;
}

void
relay_free(struct relay *r)
{
	int i;

	if (r == NULL)
		return;
	for (i = 0; i < 2; i++) {
		event_del(&r->h[i].rd);
		event_del(&r->h[i].wr);
		pipe_put(r->pool, &r->h[i].pipe, r->h[i].inpipe);
		free(r->h[i].held);
	}
	free(r);
}
