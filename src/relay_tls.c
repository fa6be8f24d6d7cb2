/* SPDX-License-Identifier: MIT */
/*
 * Relays a plain socket over TLS in chunks, both ways: a TCP socket with
 * half-close, or a datagram socket one datagram per chunk.
 */
#include "config.h"

#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>
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
#include "tunnel.h"

/*
 * Per direction, bytes in flight sit in one buffer, allocated only while
 * there are some: an idle flow holds none (OpenSSL's own buffers go too,
 * SSL_MODE_RELEASE_BUFFERS). A direction that has filled one (a bulk
 * transfer) gets larger ones from then on: fewer, larger writes and
 * fewer wakeups of the far end, 256 KiB being sixteen full TLS records.
 * Requests and replies keep to the small ones.
 */
#define RT_BUF_SMALL	(64 * 1024)
#define RT_BUF_BULK	(256 * 1024)
/*
 * On the TLS side a flow is a series of chunks, each a 4-byte big-endian
 * length and that many bytes; an empty chunk ends the direction. A flow
 * that ends this way in both directions leaves the connection in step
 * for the next flow (tunnel.c and host.c reuse it). The longest chunk is
 * part of the protocol, not of our buffer's size.
 */
#define RT_HDR		RELAY_TLS_HDR
#define RT_CHUNK_MAX	(64 * 1024 - RT_HDR)
/* Bytes of the flow read before the relay began, at most. */
#define RT_PRE_MAX	(64 * 1024)
/* A TLS record's payload, at most: more than this takes several. */
#define RT_RECORD	(16 * 1024)
/*
 * Datagram mode: a chunk is one datagram and its length is the datagram's
 * plus one, so that an empty datagram is not the end; the empty chunk
 * ends the flow both ways. 65531 bytes is more than UDP carries (65527,
 * over IPv6).
 */
#define RT_DGRAM_MAX	(RT_CHUNK_MAX - 1)
/* Steps per wakeup, so that one busy flow cannot starve the others. */
#define RT_ROUNDS	16

enum { EV_FD_RD, EV_FD_WR, EV_T_RD, EV_T_WR, EV_COUNT };

struct rt_dir {
	uint8_t		*buf;
	size_t		 off, len;	/* bytes buf[off..len) to pass on */
	uint64_t	 bytes;		/* passed on */
	int		 eof;		/* source ended */
	int		 shut;		/* end passed on */
	/*
	 * What the direction waits on, kept until the poller says so: a
	 * call that just found its socket empty (or full) is not made
	 * again for nothing.
	 */
	int		 want;		/* SSL_ERROR_WANT_* of its TLS call */
	int		 fd_wait;	/* its plain-socket call saw EAGAIN */
	int		 fin;		/* up: the empty chunk is queued */
	int		 drain;		/* up: end once fd has nothing more */
	uint8_t		 hdr[RT_HDR];	/* down: a chunk header being read */
	size_t		 nhdr;
	uint32_t	 chunk;		/* down: bytes left in this chunk */
	int		 held;		/* down, datagrams: a whole one in buf */
	size_t		 cap;		/* of buf */
	int		 bulk;		/* has filled a buffer */
	uint64_t	 dgrams;	/* datagrams passed on */
};

struct relay_tls {
	int		 fd, tfd;
	int		 dgram;		/* fd is a datagram socket */
	int		 fd_closed;	/* the poller saw fd's FIN */
	SSL		*ssl;
	struct rt_dir	 up;		/* fd -> ssl */
	struct rt_dir	 down;		/* ssl -> fd */
	uint64_t	 dropped;	/* datagrams lost, either way */
	uint8_t		*pre;		/* TLS-side bytes read before us */
	size_t		 npre, pre_off;
	struct event	 ev[EV_COUNT];
	unsigned	 armed;		/* 1 << EV_* */
	struct event	 again;		/* more to do after the others */
	struct event	 idle_ev;
	unsigned	 idle;
	struct timeval	 last;		/* a byte moved */
	struct event_base *base;
	relay_tls_done_cb done;
	void		*arg;
	int		 finished;
	int		 err, err_side;
	char		 detail[160];
};

static int
rt_fail(struct relay_tls *r, int err, int side, const char *detail)
{
	r->err = err ? err : EIO;
	r->err_side = side;
	snprintf(r->detail, sizeof(r->detail), "%s", detail ? detail : "");
	return -1;
}

/*
 * An SSL call failed with e: the peer went away, spoke bad TLS, or the
 * socket failed. Peers that close without close_notify are reported as
 * resets: the stream may have been cut short.
 */
static int
rt_tls_fail(struct relay_tls *r, int e)
{
	unsigned long code = ERR_peek_error();
	char text[128];

	if (code == 0)
		return rt_fail(r, errno ? errno : ECONNRESET, 1,
		    errno ? "" : "closed without close_notify");
	if (ERR_GET_REASON(code) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
		ERR_clear_error();
		return rt_fail(r, ECONNRESET, 1,
		    "closed without close_notify");
	}
	ERR_error_string_n(code, text, sizeof(text));
	ERR_clear_error();
	return rt_fail(r, EPROTO, 1, text);
}

/*
 * Buffers go back to small free lists, one per size, rather than to
 * malloc: a busy flow empties its buffers at every pause, and returning
 * them to the heap each time made glibc trim and grow it thousands of
 * times a second. The event loop is single-threaded.
 */
static struct rt_free {
	uint8_t		*list[32];
	size_t		 n, max;
} rt_free[2] = { { .max = 32 }, { .max = 4 } };	/* small, bulk */

static int
rt_buf(struct relay_tls *r, struct rt_dir *d)
{
	struct rt_free *f = &rt_free[d->bulk];

	if (d->buf != NULL)
		return 0;
	d->cap = d->bulk ? RT_BUF_BULK : RT_BUF_SMALL;
	if (f->n > 0)
		d->buf = f->list[--f->n];
	else if ((d->buf = malloc(d->cap)) == NULL)
		return rt_fail(r, ENOMEM, -1, "");
	return 0;
}

static void
rt_buf_put(struct rt_dir *d)
{
	struct rt_free *f = &rt_free[d->cap == RT_BUF_BULK];

	if (d->buf == NULL)
		return;
	if (f->n < f->max)
		f->list[f->n++] = d->buf;
	else
		free(d->buf);
	d->buf = NULL;
}

/* An idle direction gives its buffer back. */
static void
rt_trim(struct rt_dir *d)
{
	if (d->off == d->len) {
		d->off = d->len = 0;
		rt_buf_put(d);
	}
}

static void
rt_moved(struct relay_tls *r, struct rt_dir *d, size_t n, int count)
{
	d->off += n;
	if (count)
		d->bytes += n;
	if (d->off == d->len)
		d->off = d->len = 0;
	if (r->idle)
		event_base_gettimeofday_cached(r->base, &r->last);
}

static void
rt_hdr_put(uint8_t *p, uint32_t len)
{
	p[0] = (uint8_t)(len >> 24);
	p[1] = (uint8_t)(len >> 16);
	p[2] = (uint8_t)(len >> 8);
	p[3] = (uint8_t)len;
}

size_t
relay_tls_chunk(uint8_t *out, const void *data, size_t n)
{
	rt_hdr_put(out, n);
	memcpy(out + RT_HDR, data, n);
	return RT_HDR + n;
}

/* The chunks queued up: on to TLS. */
static int
rt_up_send(struct relay_tls *r, struct rt_dir *d)
{
	int rc, on = 1, off = 0, cork = d->len - d->off > RT_RECORD;

	/*
	 * SSL_write() writes each record on its own: corked, they leave
	 * in full-sized segments, and the far end wakes once, not per
	 * record.
	 */
	if (cork)
		(void)setsockopt(r->tfd, IPPROTO_TCP, TCP_CORK, &on,
		    sizeof(on));
	rc = SSL_write(r->ssl, d->buf + d->off, d->len - d->off);
	if (cork)
		(void)setsockopt(r->tfd, IPPROTO_TCP, TCP_CORK, &off,
		    sizeof(off));
	/* The payload was counted when read: headers are not. */
	if (rc > 0) {
		d->want = 0;
		if (r->down.want == SSL_ERROR_WANT_WRITE)
			r->down.want = 0;
		rt_moved(r, d, rc, 0);
		if (d->len == 0 && d->fin)
			d->shut = 1;
		return 1;
	}
	d->want = SSL_get_error(r->ssl, rc);
	if (d->want == SSL_ERROR_WANT_READ || d->want == SSL_ERROR_WANT_WRITE)
		return 0;
	return rt_tls_fail(r, d->want);
}

/* fd has nothing for now: wait, or end after relay_tls_end(). */
static int
rt_up_again(struct rt_dir *d)
{
	if (d->drain) {
		d->eof = 1;
		return 1;
	}
	d->fd_wait = 1;
	return 0;
}

/*
 * A stream: what each read(2) gives is a chunk, as many as the buffer
 * holds, and EOF the end. A short read most likely emptied fd: the
 * poller says when there is more, rather than an EAGAIN read. But when
 * the poller saw fd's FIN, reading on finds the EOF, and the end chunk
 * leaves with the last bytes, in one record.
 */
static int
rt_up_read(struct relay_tls *r, struct rt_dir *d)
{
	size_t want;
	ssize_t n;

	/* Room is kept for the end chunk after the last one. */
	while (d->cap - d->len > 3 * RT_HDR) {
		want = d->cap - d->len - 2 * RT_HDR;
		if (want > RT_CHUNK_MAX)
			want = RT_CHUNK_MAX;
		do {
			n = read(r->fd, d->buf + d->len + RT_HDR, want);
		} while (n == -1 && errno == EINTR);
		if (n == 0) {
			d->eof = 1;
			break;
		}
		if (n == -1 && errno != EAGAIN)
			return rt_fail(r, errno, 0, "");
		if (n == -1 && d->len == 0)
			return rt_up_again(d);
		if (n == -1) {
			d->fd_wait = 1;
			break;
		}
		rt_hdr_put(d->buf + d->len, n);
		d->len += RT_HDR + n;
		d->bytes += n;
		if ((size_t)n < want && !r->fd_closed) {
			d->fd_wait = !d->drain;
			break;
		}
	}
	if (d->cap - d->len <= 3 * RT_HDR)
		d->bulk = 1;
	if (d->eof && d->len > 0) {
		memset(d->buf + d->len, 0, RT_HDR);
		d->len += RT_HDR;
		d->fin = 1;
	}
	return 1;
}

/*
 * Errors a connected datagram socket reports for an ICMP message about
 * an earlier datagram (Linux keeps the last hard one): a datagram lost,
 * not the end of the flow.
 */
static int
rt_dgram_soft(int err)
{
	switch (err) {
	case ECONNREFUSED:
	case EHOSTUNREACH:
	case ENETUNREACH:
	case EHOSTDOWN:
	case ENONET:
	case ENOPROTOOPT:
	case EPROTO:
		return 1;
	}
	return 0;
}

/*
 * One datagram from fd, appended to the buffer as a chunk (an empty
 * datagram too): 1, or 0 when none waits (errno EAGAIN), or -1.
 */
static int
rt_up_recv_one(struct relay_tls *r, struct rt_dir *d)
{
	size_t room = d->cap - d->len - RT_HDR;
	ssize_t n;

	do {
		n = recv(r->fd, d->buf + d->len + RT_HDR, room, MSG_TRUNC);
	} while (n == -1 && errno == EINTR);
	if (n > RT_DGRAM_MAX || (n >= 0 && (size_t)n > room)) {
		/* UDP cannot carry one; AF_UNIX could. Never a bad length. */
		r->dropped++;
		return 1;
	}
	if (n >= 0) {
		rt_hdr_put(d->buf + d->len, n + 1);
		d->len += RT_HDR + n;
		d->bytes += n;
		d->dgrams++;
		return 1;
	}
	if (errno == EAGAIN)
		return 0;
	if (rt_dgram_soft(errno)) {
		r->dropped++;
		return 1;
	}
	return rt_fail(r, errno, 0, "");
}

/*
 * Datagrams: each one chunk. fd has no end of its own: relay_tls_end()
 * or the peer's end chunk ends the flow. The datagrams already waiting
 * go out together, as long as the next fits (FIONREAD gives its size),
 * so that a burst costs a few TLS records and writes, not one each.
 */
static int
rt_up_recv(struct relay_tls *r, struct rt_dir *d)
{
	int rc, next;

	if ((rc = rt_up_recv_one(r, d)) != 1)
		return rc == 0 ? rt_up_again(d) : rc;
	while (d->len + RT_HDR < d->cap) {
		if (ioctl(r->fd, FIONREAD, &next) == -1 || next < 0 ||
		    d->len + RT_HDR + (size_t)next > d->cap)
			break;
		if ((rc = rt_up_recv_one(r, d)) != 1)
			return rc == -1 ? -1 : 1;
	}
	return 1;
}

/* fd -> TLS. Returns 1 after progress, 0 when blocked or done, -1. */
static int
rt_up(struct relay_tls *r)
{
	struct rt_dir *d = &r->up;

	if (d->shut)
		return 0;
	if (d->len > d->off)
		return d->want ? 0 : rt_up_send(r, d);
	if (d->fd_wait && !d->drain && !d->eof)
		return 0;
	d->fd_wait = 0;
	if (rt_buf(r, d) == -1)
		return -1;
	if (d->eof) {
		/* The empty chunk: the end of this direction. */
		memset(d->buf, 0, RT_HDR);
		d->len = RT_HDR;
		d->fin = 1;
		return 1;
	}
	return r->dgram ? rt_up_recv(r, d) : rt_up_read(r, d);
}

/*
 * Reads up to n bytes from the TLS side (first what was read before the
 * relay began): the count, 0 when it must wait (down.want says on what),
 * or -1.
 */
static int
rt_tls_read(struct relay_tls *r, uint8_t *dst, size_t n)
{
	struct rt_dir *d = &r->down;
	int rc;

	if (r->pre_off < r->npre) {
		if (n > r->npre - r->pre_off)
			n = r->npre - r->pre_off;
		memcpy(dst, r->pre + r->pre_off, n);
		r->pre_off += n;
		return n;
	}
	if ((rc = SSL_read(r->ssl, dst, n)) > 0) {
		/* What the socket gave may be what a write waited for. */
		if (r->up.want == SSL_ERROR_WANT_READ)
			r->up.want = 0;
		/*
		 * OpenSSL reads all the socket has (read-ahead): when none of
		 * it is left, the poller says when there is more, rather
		 * than an EAGAIN read. Not in bulk, nor for datagrams (a
		 * flood is not told from a request): there the socket most
		 * likely has more, and a wakeup costs more than a read.
		 */
		d->want = d->bulk || r->dgram || SSL_has_pending(r->ssl) ? 0 :
		    SSL_ERROR_WANT_READ;
		return rc;
	}
	d->want = SSL_get_error(r->ssl, rc);
	if (d->want == SSL_ERROR_WANT_READ || d->want == SSL_ERROR_WANT_WRITE)
		return 0;
	if (d->want == SSL_ERROR_ZERO_RETURN) {
		ERR_clear_error();
		return rt_fail(r, ECONNRESET, 1, "tunnel closed mid-flow");
	}
	return rt_tls_fail(r, d->want);
}

/* A chunk header is complete: its length, or the end of the direction. */
static int
rt_chunk_start(struct relay_tls *r)
{
	struct rt_dir *d = &r->down;
	uint32_t len = (uint32_t)d->hdr[0] << 24 | (uint32_t)d->hdr[1] << 16 |
	    (uint32_t)d->hdr[2] << 8 | d->hdr[3];

	d->nhdr = 0;
	if (len > RT_CHUNK_MAX)
		return rt_fail(r, EPROTO, 1, "chunk longer than the maximum");
	if (len == 0)
		d->eof = 1;
	else if (r->dgram && --len == 0)
		d->held = 1;		/* an empty datagram, whole at once */
	d->chunk = len;
	return 0;
}

/* On with a chunk header: as rt_tls_read(), and -1 for a bad one. */
static int
rt_hdr_read(struct relay_tls *r)
{
	struct rt_dir *d = &r->down;
	int rc;

	rc = rt_tls_read(r, d->hdr + d->nhdr, RT_HDR - d->nhdr);
	if (rc > 0 && (d->nhdr += rc) == RT_HDR && rt_chunk_start(r) == -1)
		return -1;
	return rc;
}

/*
 * TLS -> our buffer: chunk payloads only, read exactly, so that nothing
 * past the flow's end is taken from the connection. Several chunks then
 * leave in one write(2). 1 after progress, else 0, -1.
 */
static int
rt_down_fill(struct relay_tls *r)
{
	struct rt_dir *d = &r->down;
	int rc, moved = 0;
	size_t want;

	while (!d->eof && !d->want) {
		if (d->chunk == 0) {
			if ((rc = rt_hdr_read(r)) <= 0)
				return rc == -1 ? -1 : moved;
			moved = 1;
			continue;
		}
		if (rt_buf(r, d) == -1)
			return -1;
		if (d->len == d->cap) {
			d->bulk = 1;
			break;
		}
		want = d->cap - d->len < d->chunk ? d->cap - d->len : d->chunk;
		if ((rc = rt_tls_read(r, d->buf + d->len, want)) <= 0)
			return rc == -1 ? -1 : moved;
		d->len += rc;
		d->chunk -= rc;
		moved = 1;
	}
	return moved;
}

/*
 * TLS -> our buffer, datagrams: one chunk, exactly, and no further until
 * it has gone. 1 after progress, else 0, -1.
 */
static int
rt_dgram_fill(struct relay_tls *r)
{
	struct rt_dir *d = &r->down;
	int rc, moved = 0;

	while (!d->eof && !d->held && !d->want) {
		if (d->chunk == 0) {
			if ((rc = rt_hdr_read(r)) <= 0)
				return rc == -1 ? -1 : moved;
			moved = 1;
			continue;
		}
		if (rt_buf(r, d) == -1)
			return -1;
		/* d->len + d->chunk is at most RT_DGRAM_MAX. */
		if ((rc = rt_tls_read(r, d->buf + d->len, d->chunk)) <= 0)
			return rc == -1 ? -1 : moved;
		d->len += rc;
		moved = 1;
		if ((d->chunk -= rc) == 0)
			d->held = 1;
	}
	return moved;
}

/*
 * The datagram held, in one send(2). It waits while fd is full; any other
 * failure (ICMP news of an earlier one, EMSGSIZE, a gone AF_UNIX peer)
 * loses this one datagram, not the flow. 1 when it has gone, else 0.
 */
static int
rt_dgram_send(struct relay_tls *r)
{
	struct rt_dir *d = &r->down;
	ssize_t n;

	do {
		n = send(r->fd, d->buf, d->len, MSG_NOSIGNAL);
	} while (n == -1 && errno == EINTR);
	if (n == -1 && errno == EAGAIN) {
		d->fd_wait = 1;
		return 0;
	}
	if (n == -1)
		r->dropped++;
	else
		d->dgrams++;
	d->held = 0;
	rt_moved(r, d, d->len, n != -1);
	return 1;
}

/*
 * TLS -> fd, datagrams. The peer's end chunk ends both directions: a
 * datagram socket has no half-close to pass on.
 */
static int
rt_down_dgram(struct relay_tls *r)
{
	struct rt_dir *d = &r->down;
	int moved;

	if ((moved = d->want ? 0 : rt_dgram_fill(r)) == -1)
		return -1;
	if (d->held)
		return d->fd_wait ? moved : rt_dgram_send(r) | moved;
	if (d->eof) {
		d->shut = 1;
		r->up.eof = 1;
		return 1;
	}
	return moved;
}

/* TLS -> fd. Returns 1 after progress, 0 when blocked or done, -1. */
static int
rt_down(struct relay_tls *r)
{
	struct rt_dir *d = &r->down;
	size_t left;
	ssize_t n;
	int moved;

	if (d->shut)
		return 0;
	if (r->dgram)
		return rt_down_dgram(r);
	if ((moved = d->want ? 0 : rt_down_fill(r)) == -1)
		return -1;
	if (d->len > d->off) {
		if (d->fd_wait)
			return moved;
		left = d->len - d->off;
		do {
			n = write(r->fd, d->buf + d->off, left);
		} while (n == -1 && errno == EINTR);
		if (n > 0) {
			/* A short write found fd full: wait for room. */
			d->fd_wait = (size_t)n < left;
			rt_moved(r, d, n, 1);
			return 1;
		}
		if (n == -1 && errno == EAGAIN) {
			d->fd_wait = 1;
			return moved;
		}
		return rt_fail(r, n == 0 ? EIO : errno, 0, "");
	}
	if (d->eof) {
		d->shut = 1;
		if (shutdown(r->fd, SHUT_WR) == -1)
			return rt_fail(r, errno, 0, "");
		return 1;
	}
	return moved;
}

/* Arms exactly the events the two directions wait on. */
static int
rt_arm(struct relay_tls *r)
{
	unsigned want = 0, i;
	int rc = 0;

	if (r->up.fd_wait)
		want |= 1U << EV_FD_RD;
	if (r->down.fd_wait)
		want |= 1U << EV_FD_WR;
	if (r->up.want == SSL_ERROR_WANT_READ ||
	    r->down.want == SSL_ERROR_WANT_READ)
		want |= 1U << EV_T_RD;
	if (r->up.want == SSL_ERROR_WANT_WRITE ||
	    r->down.want == SSL_ERROR_WANT_WRITE)
		want |= 1U << EV_T_WR;
	for (i = 0; i < EV_COUNT; i++) {
		if ((want & (1U << i)) && !(r->armed & (1U << i)))
			rc |= event_add(&r->ev[i], NULL);
		else if (!(want & (1U << i)) && (r->armed & (1U << i)))
			event_del(&r->ev[i]);
	}
	r->armed = want;
	return rc == 0 ? 0 : rt_fail(r, ENOMEM, -1, "cannot add event");
}

static void
rt_end(struct relay_tls *r)
{
	unsigned i;

	for (i = 0; i < EV_COUNT; i++)
		event_del(&r->ev[i]);
	r->armed = 0;
	event_del(&r->again);
	if (event_initialized(&r->idle_ev))
		event_del(&r->idle_ev);
	r->finished = 1;
	ERR_clear_error();
	/* Last: done may free the relay. */
	r->done(r, r->arg);
}

static void
rt_pump(struct relay_tls *r)
{
	int up, down, rounds;

	ERR_clear_error();	/* SSL_get_error() reads the queue */
	for (rounds = 0; rounds < RT_ROUNDS; rounds++) {
		if ((up = rt_up(r)) == -1 || (down = rt_down(r)) == -1) {
			rt_end(r);
			return;
		}
		if (r->up.shut && r->down.shut) {
			rt_end(r);
			return;
		}
		if (!up && !down)
			break;
	}
	/* More to do: after the others. Not an fd event: rt_arm() may
	 * delete those, and that would cancel the activation. */
	if (rounds == RT_ROUNDS)
		event_active(&r->again, 0, 1);
	rt_trim(&r->up);
	rt_trim(&r->down);
	if (rt_arm(r) == -1)
		rt_end(r);
}

/* A wait the poller ended: the call waiting on it is made again. */
static void
rt_ready(struct relay_tls *r, evutil_socket_t fd, short what)
{
	if (fd == r->fd) {
		if (what & EV_READ)
			r->up.fd_wait = 0;
		if (what & EV_CLOSED)
			r->fd_closed = 1;
		if (what & EV_WRITE)
			r->down.fd_wait = 0;
	} else if (fd == r->tfd) {
		if ((what & EV_READ) && r->up.want == SSL_ERROR_WANT_READ)
			r->up.want = 0;
		if ((what & EV_READ) && r->down.want == SSL_ERROR_WANT_READ)
			r->down.want = 0;
		if ((what & EV_WRITE) && r->up.want == SSL_ERROR_WANT_WRITE)
			r->up.want = 0;
		if ((what & EV_WRITE) && r->down.want == SSL_ERROR_WANT_WRITE)
			r->down.want = 0;
	}
}

static void
rt_event(evutil_socket_t fd, short what, void *arg)
{
	struct relay_tls *r = arg;

	if (r->finished)
		return;
	rt_ready(r, fd, what);
	rt_pump(r);
}

static void
rt_idle(evutil_socket_t fd, short what, void *arg)
{
	struct relay_tls *r = arg;
	struct timeval now, quiet, limit = { r->idle, 0 }, left;
	char why[64];

	if (r->finished)
		return;
	/* To the microsecond: whole seconds cut a flow up to 1 s short. */
	event_base_gettimeofday_cached(r->base, &now);
	timersub(&now, &r->last, &quiet);
	if (timercmp(&quiet, &limit, <)) {
		timersub(&limit, &quiet, &left);
		event_add(&r->idle_ev, &left);
		return;
	}
	snprintf(why, sizeof(why), "idle for %u s", r->idle);
	rt_fail(r, ETIMEDOUT, -1, why);
	rt_end(r);
}

static int
rt_events(struct relay_tls *r, struct event_base *base, int dgram)
{
	struct timeval tv = { r->idle, 0 };

	/* EV_CLOSED: the poller tells when fd's FIN is already in. */
	if (event_assign(&r->ev[EV_FD_RD], base, r->fd, EV_READ | EV_PERSIST |
	    (dgram ? 0 : EV_CLOSED), rt_event, r) == -1 ||
	    event_assign(&r->ev[EV_FD_WR], base, r->fd, EV_WRITE | EV_PERSIST,
	    rt_event, r) == -1 ||
	    event_assign(&r->ev[EV_T_RD], base, r->tfd, EV_READ | EV_PERSIST,
	    rt_event, r) == -1 ||
	    event_assign(&r->ev[EV_T_WR], base, r->tfd, EV_WRITE | EV_PERSIST,
	    rt_event, r) == -1 ||
	    event_assign(&r->again, base, -1, 0, rt_event, r) == -1)
		return -1;
	if (r->idle == 0)
		return 0;
	event_base_gettimeofday_cached(base, &r->last);
	if (event_assign(&r->idle_ev, base, -1, 0, rt_idle, r) == -1 ||
	    event_add(&r->idle_ev, &tv) == -1)
		return -1;
	return 0;
}

/* A relay that has yet to start: NULL with errno. */
static struct relay_tls *
rt_new(struct event_base *base, int fd, int dgram, SSL *ssl, unsigned idle,
    relay_tls_done_cb done, void *arg)
{
	struct relay_tls *r;

	if ((r = calloc(1, sizeof(*r))) == NULL)
		return NULL;
	r->base = base;
	r->fd = fd;
	r->ssl = ssl;
	r->tfd = SSL_get_fd(ssl);
	r->idle = idle;
	r->done = done;
	r->arg = arg;
	r->dgram = dgram;
	/*
	 * OpenSSL read all the socket had when the opening exchange ended:
	 * with nothing left in its buffer, the poller says when there is
	 * more, rather than an EAGAIN read.
	 */
	if (!SSL_has_pending(ssl))
		r->down.want = SSL_ERROR_WANT_READ;
	if (rt_events(r, base, dgram) == -1) {
		relay_tls_free(r);
		errno = ENOMEM;
		return NULL;
	}
	return r;
}

struct relay_tls *
relay_tls_new(struct event_base *base, int fd, SSL *ssl, const uint8_t *pre,
    size_t npre, unsigned idle, relay_tls_done_cb done, void *arg)
{
	struct relay_tls *r;

	if (npre > RT_PRE_MAX) {
		errno = EINVAL;
		return NULL;
	}
	if ((r = rt_new(base, fd, 0, ssl, idle, done, arg)) == NULL)
		return NULL;
	if (npre > 0) {
		if ((r->pre = malloc(npre)) == NULL)
			goto fail;
		memcpy(r->pre, pre, npre);
		r->npre = npre;
		r->down.want = 0;
	}
	/* Deferred, so done never runs before we return. */
	event_active(&r->again, 0, 1);
	return r;
fail:
	relay_tls_free(r);
	errno = ENOMEM;
	return NULL;
}

struct relay_tls *
relay_tls_new_dgram(struct event_base *base, int fd, SSL *ssl,
    unsigned idle, relay_tls_done_cb done, void *arg)
{
	struct relay_tls *r;

	if ((r = rt_new(base, fd, 1, ssl, idle, done, arg)) == NULL)
		return NULL;
	event_active(&r->again, 0, 1);
	return r;
}

/*
 * As EOF on fd would be: after what fd holds already. Deferred, so done
 * never runs from within.
 */
void
relay_tls_end(struct relay_tls *r)
{
	if (r->finished || r->up.eof || r->up.drain)
		return;
	r->up.drain = 1;
	event_active(&r->again, 0, 1);
}

void
relay_tls_sent(struct relay_tls *r, uint64_t n, int emptied)
{
	r->up.bytes += n;
	if (emptied && !r->dgram)
		r->up.fd_wait = 1;
}

void
relay_tls_bytes(const struct relay_tls *r, uint64_t *up, uint64_t *down)
{
	if (up != NULL)
		*up = r->up.bytes;
	if (down != NULL)
		*down = r->down.bytes;
}

void
relay_tls_dgrams(const struct relay_tls *r, uint64_t *up, uint64_t *down,
    uint64_t *dropped)
{
	if (up != NULL)
		*up = r->up.dgrams;
	if (down != NULL)
		*down = r->down.dgrams;
	if (dropped != NULL)
		*dropped = r->dropped;
}

int
relay_tls_state(const struct relay_tls *r)
{
	return (r->up.shut ? RELAY_AB_SHUT : 0) |
	    (r->down.shut ? RELAY_BA_SHUT : 0);
}

int
relay_tls_error(const struct relay_tls *r, int *side, const char **detail)
{
	if (side != NULL)
		*side = r->err_side;
	if (detail != NULL)
		*detail = r->detail;
	return r->err;
}

void
relay_tls_free(struct relay_tls *r)
{
	unsigned i;

	if (r == NULL)
		return;
	for (i = 0; i < EV_COUNT; i++)
		if (event_initialized(&r->ev[i]))
			event_del(&r->ev[i]);
	if (event_initialized(&r->again))
		event_del(&r->again);
	if (event_initialized(&r->idle_ev))
		event_del(&r->idle_ev);
	rt_buf_put(&r->up);
	rt_buf_put(&r->down);
	free(r->pre);
	free(r);
}
