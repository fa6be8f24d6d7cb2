/* SPDX-License-Identifier: MIT */
/* relay_tls over real loopback sockets and TLS 1.3, without root. */
#include "config.h"

#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/event_struct.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "sluice.h"
#include "tunnel.h"
#include "log.h"
#include "tap.h"

#define MiB		(1024 * 1024)
#define IOBUF		(256 * 1024)
#define RECORD		16384		/* a TLS record's plaintext */
/* The relay's chunks on the TLS side (RT_HDR, RT_CHUNK_MAX in relay_tls.c). */
#define CHUNK_HDR	4
#define CHUNK_MAX	65532
#define TXBUF		(128 * 1024)	/* a TLS peer's framed chunks */
#define BOTH_SHUT	(RELAY_AB_SHUT | RELAY_BA_SHUT)

static struct event_base *base;
static SSL_CTX *cctx, *sctx;
static unsigned char iobuf[IOBUF];
static int in_new;		/* within relay_tls_new() */

/* ---- time ---- */

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- a pseudo-random stream that can be checked at any offset ---- */

static uint64_t
mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static void
stream_fill(unsigned char *buf, uint64_t seed, uint64_t pos, size_t len)
{
	unsigned char word[8];
	uint64_t w;
	size_t i = 0, k;

	/* Whole words where it can: 20 MiB each way adds up under ASan. */
	while (i < len) {
		w = mix64(seed ^ (pos / 8));
		for (k = 0; k < 8; k++)
			word[k] = w >> (8 * k);
		k = 8 - pos % 8;
		if (k > len - i)
			k = len - i;
		memcpy(buf + i, word + pos % 8, k);
		i += k;
		pos += k;
	}
}

/* Returns the offset of the first wrong byte, or -1. */
static long long
stream_check(const unsigned char *buf, uint64_t seed, uint64_t pos,
    size_t len)
{
	unsigned char want[4096];
	size_t off, n, i;

	for (off = 0; off < len; off += n) {
		n = len - off < sizeof(want) ? len - off : sizeof(want);
		stream_fill(want, seed, pos + off, n);
		if (memcmp(want, buf + off, n) == 0)
			continue;
		for (i = 0; want[i] == buf[off + i]; i++)
			;
		return pos + off + i;
	}
	return -1;
}

/*
 * ---- a test endpoint on either kind of socket ----
 *
 * It sends one stream and receives and checks another. On a plain socket
 * (ssl NULL) the end of its stream is shutdown(SHUT_WR). On TLS it speaks
 * the relay's chunks: a 4-byte big-endian length and that many bytes, an
 * empty chunk for the end; what it receives ends with the relay's empty
 * chunk (a close_notify before it, or a chunk over CHUNK_MAX, is rx_err).
 * It reads chunks exactly, as the relay does, and sends them in varied
 * sizes (or tx_chunk each), packed so that headers fall anywhere in its
 * records, a header split across two of them too.
 */
struct peer {
	int		 fd;
	SSL		*ssl;
	struct event	 rev, wev;
	unsigned	 armed;		/* 1 rev, 2 wev */
	uint64_t	 tx_seed, tx_total, tx_done;	/* TLS: framed */
	int		 tx_after_eof;	/* answer only after EOF */
	int		 tx_hold;	/* send nothing until released */
	int		 tx_shut;	/* our end of stream went out */
	int		 tx_blocked;	/* a write would have blocked */
	int		 tx_err;
	uint8_t		*txbuf;		/* TLS: chunks framed, to send */
	size_t		 txoff, txlen;
	int		 tx_fin;	/* TLS: the empty chunk is in txbuf */
	uint32_t	 tx_chunk;	/* TLS: payload per chunk; 0 varied */
	unsigned	 tx_nchunks;
	uint64_t	 rx_seed, rx_done;
	long long	 rx_bad;	/* first wrong offset, -1 */
	int		 rx_eof, rx_err, rx_paused;
	uint8_t		 rx_hdr[CHUNK_HDR];	/* TLS: a header being read */
	size_t		 rx_nhdr;
	uint32_t	 rx_left;	/* TLS: bytes left in this chunk */
	unsigned	 rx_chunks;
	uint32_t	 rx_bad_len;	/* TLS: a chunk over CHUNK_MAX */
	uint64_t	 vanish_after;	/* close without a word after this */
	double		 vanish_at;
	int		 vanish_reset;	/* ... with a RST (SO_LINGER 0) */
};

static void peer_pump(evutil_socket_t, short, void *);

static uint32_t
be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | p[3];
}

static void
put_be32(uint8_t *p, uint32_t v)
{
	p[0] = v >> 24;
	p[1] = v >> 16;
	p[2] = v >> 8;
	p[3] = v;
}

/* Keeps the fd and ssl that rig_open() gave the peer. */
static void
peer_init(struct peer *p, uint64_t tx_seed, uint64_t tx_total,
    uint64_t rx_seed)
{
	int fd = p->fd;
	SSL *ssl = p->ssl;

	free(p->txbuf);
	memset(p, 0, sizeof(*p));
	p->fd = fd;
	p->ssl = ssl;
	p->tx_seed = tx_seed;
	p->tx_total = tx_total;
	p->rx_seed = rx_seed;
	p->rx_bad = -1;
}

static void
peer_free(struct peer *p)
{
	free(p->txbuf);
	p->txbuf = NULL;
}

/* The next chunk's payload: a quarter full, tiny, small, large. */
static uint32_t
peer_chunk_size(struct peer *p)
{
	uint64_t x;

	if (p->tx_chunk != 0)
		return p->tx_chunk;
	x = mix64(p->tx_seed * 1000003 + p->tx_nchunks++);
	switch (x & 3) {
	case 0:
		return CHUNK_MAX;
	case 1:
		return 1 + (x >> 8) % 16;
	case 2:
		return 1 + (x >> 8) % RECORD;
	default:
		return RECORD + 1 + (x >> 8) % (CHUNK_MAX - RECORD);
	}
}

/* TLS: frames what is left of the stream into txbuf while it fits. */
static void
peer_frame(struct peer *p)
{
	uint64_t size;

	if (p->txbuf == NULL && (p->txbuf = malloc(TXBUF)) == NULL)
		abort();
	while (p->tx_done < p->tx_total && TXBUF - p->txlen > CHUNK_HDR) {
		size = peer_chunk_size(p);
		if (size > p->tx_total - p->tx_done)
			size = p->tx_total - p->tx_done;
		if (size > TXBUF - p->txlen - CHUNK_HDR)
			size = TXBUF - p->txlen - CHUNK_HDR;
		put_be32(p->txbuf + p->txlen, size);
		stream_fill(p->txbuf + p->txlen + CHUNK_HDR, p->tx_seed,
		    p->tx_done, size);
		p->txlen += CHUNK_HDR + size;
		p->tx_done += size;
	}
	if (p->tx_done == p->tx_total && TXBUF - p->txlen >= CHUNK_HDR) {
		put_be32(p->txbuf + p->txlen, 0);
		p->txlen += CHUNK_HDR;
		p->tx_fin = 1;
	}
}

static void
peer_arm(struct peer *p, unsigned want)
{
	if ((want & 1) && !(p->armed & 1))
		event_add(&p->rev, NULL);
	else if (!(want & 1) && (p->armed & 1))
		event_del(&p->rev);
	if ((want & 2) && !(p->armed & 2))
		event_add(&p->wev, NULL);
	else if (!(want & 2) && (p->armed & 2))
		event_del(&p->wev);
	p->armed = want;
}

static void
peer_start(struct peer *p)
{
	event_assign(&p->rev, base, p->fd, EV_READ | EV_PERSIST, peer_pump, p);
	event_assign(&p->wev, base, p->fd, EV_WRITE | EV_PERSIST, peer_pump,
	    p);
	p->armed = 0;
	peer_pump(p->fd, 0, p);
}

static void
peer_stop(struct peer *p)
{
	if (event_initialized(&p->rev))
		peer_arm(p, 0);
}

/* Gone without close_notify or FIN: a plain close, or a reset. */
static void
peer_vanish(struct peer *p, int reset)
{
	peer_stop(p);
	if (reset)
		sock_close_reset(p->fd);
	else
		close(p->fd);
	p->fd = -1;
	p->vanish_at = now();
}

/*
 * A call that moved nothing: 0 when it would block (*want gets what to
 * wait for; dir is 1 for a read, 2 for a write), -1 when that way has
 * ended (*err: 0 for EOF, else an errno). On TLS a close_notify is never
 * a clean end: ECONNRESET.
 */
static int
peer_io_result(struct peer *p, int n, unsigned dir, unsigned *want,
    int *err)
{
	int e;

	if (p->ssl == NULL) {
		if (n == -1 && errno == EAGAIN) {
			*want |= dir;
			return 0;
		}
		*err = n == 0 ? 0 : errno;
		return -1;
	}
	e = SSL_get_error(p->ssl, n);
	ERR_clear_error();
	if (e == SSL_ERROR_WANT_READ)
		*want |= 1;
	else if (e == SSL_ERROR_WANT_WRITE)
		*want |= 2;
	else {
		*err = e == SSL_ERROR_ZERO_RETURN ? ECONNRESET :
		    e == SSL_ERROR_SYSCALL && errno != 0 ? errno : EPROTO;
		return -1;
	}
	return 0;
}

/* Payload received: checked against the stream. */
static void
peer_got(struct peer *p, const unsigned char *buf, size_t n)
{
	long long bad;

	if (p->rx_bad == -1 && (bad = stream_check(buf, p->rx_seed,
	    p->rx_done, n)) != -1)
		p->rx_bad = bad;
	p->rx_done += n;
}

static void
peer_rx(struct peer *p, unsigned *want)
{
	size_t len;
	int n, err;

	while (!p->rx_paused && !p->rx_eof && !p->rx_err) {
		if (p->ssl == NULL) {
			n = recv(p->fd, iobuf, IOBUF, 0);
			if (n > 0)
				peer_got(p, iobuf, n);
		} else if (p->rx_left == 0) {
			n = SSL_read(p->ssl, p->rx_hdr + p->rx_nhdr,
			    CHUNK_HDR - p->rx_nhdr);
			if (n > 0 && (p->rx_nhdr += n) == CHUNK_HDR) {
				p->rx_nhdr = 0;
				p->rx_left = be32(p->rx_hdr);
				if (p->rx_left == 0)
					p->rx_eof = 1;
				else if (p->rx_left > CHUNK_MAX) {
					p->rx_bad_len = p->rx_left;
					p->rx_err = EMSGSIZE;
				} else
					p->rx_chunks++;
			}
		} else {
			len = p->rx_left < IOBUF ? p->rx_left : IOBUF;
			n = SSL_read(p->ssl, iobuf, len);
			if (n > 0) {
				peer_got(p, iobuf, n);
				p->rx_left -= n;
			}
		}
		if (n > 0) {
			if (p->vanish_after && p->rx_done >= p->vanish_after)
				return;
			continue;
		}
		if (peer_io_result(p, n, 1, want, &err) == 0)
			return;
		if (err == 0)
			p->rx_eof = 1;
		else
			p->rx_err = err;
	}
}

/*
 * Plain: a buffer at a time. TLS: the chunks framed in txbuf, a record at
 * a time, so that a retry after WANT_WRITE is the same bytes at the same
 * length, as OpenSSL requires; the end is the empty chunk going out.
 */
static void
peer_tx(struct peer *p, unsigned *want)
{
	size_t len;
	int n, err;

	if (p->tx_hold || (p->tx_after_eof && !p->rx_eof) || p->tx_shut ||
	    p->tx_err)
		return;
	for (;;) {
		if (p->ssl == NULL) {
			if (p->tx_done == p->tx_total) {
				if (shutdown(p->fd, SHUT_WR) == -1)
					p->tx_err = errno;
				p->tx_shut = 1;
				return;
			}
			len = p->tx_total - p->tx_done;
			if (len > IOBUF)
				len = IOBUF;
			stream_fill(iobuf, p->tx_seed, p->tx_done, len);
			n = send(p->fd, iobuf, len, MSG_NOSIGNAL);
			if (n > 0) {
				p->tx_done += n;
				continue;
			}
		} else {
			if (p->txoff == p->txlen) {
				p->txoff = p->txlen = 0;
				if (p->tx_fin) {
					p->tx_shut = 1;
					return;
				}
				peer_frame(p);
			}
			len = p->txlen - p->txoff;
			if (len > RECORD)
				len = RECORD;
			n = SSL_write(p->ssl, p->txbuf + p->txoff, len);
			if (n > 0) {
				p->txoff += n;
				continue;
			}
		}
		if (peer_io_result(p, n, 2, want, &err) == -1) {
			p->tx_err = err ? err : EIO;
			return;
		}
		p->tx_blocked++;
		return;
	}
}

static void
peer_pump(evutil_socket_t fd, short what, void *arg)
{
	struct peer *p = arg;
	unsigned want = 0;

	if (p->fd == -1)
		return;
	peer_rx(p, &want);
	if (p->vanish_after && p->rx_done >= p->vanish_after) {
		peer_vanish(p, p->vanish_reset);
		return;
	}
	/* After rx: an answer after EOF may have become due just now. */
	peer_tx(p, &want);
	peer_arm(p, want);
}

static void
peer_resume(struct peer *p)
{
	p->rx_paused = 0;
	p->tx_hold = 0;
	peer_pump(p->fd, 0, p);
}

static int
peer_finished(const struct peer *p)
{
	return p->fd == -1 || ((p->rx_eof || p->rx_err) &&
	    (p->tx_shut || p->tx_err));
}

static int
peer_got_eof(void *arg)
{
	struct peer *p = arg;

	return p->rx_eof || p->rx_err;
}

static uint64_t rx_target;

/* The peer has rx_target bytes, or what it receives has ended. */
static int
peer_has(void *arg)
{
	struct peer *p = arg;

	return p->rx_done >= rx_target || p->rx_eof || p->rx_err;
}

/* ---- sockets ---- */

/*
 * A connected loopback pair: *c dialled, *s accepted, both nonblocking
 * and TCP_NODELAY, as sluice's sockets are.
 */
static int
tcp_pair(int *c, int *s)
{
	struct sockaddr_in sin;
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	int l, one = 1;

	*c = *s = -1;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((l = sock_listen((struct sockaddr *)&sin, SOCK_STREAM, 0,
	    &ss)) == -1)
		return -1;
	*c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (*c == -1 || connect(*c, (struct sockaddr *)&ss, len) == -1 ||
	    sock_nonblock(*c) == -1) {
		close(l);
		return -1;
	}
	while ((*s = accept4(l, NULL, NULL, SOCK_NONBLOCK)) == -1 &&
	    errno == EAGAIN)
		usleep(1000);
	close(l);
	if (*s == -1)
		return -1;
	setsockopt(*c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(*s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return 0;
}

static void
set_bufs(int fd, int size)
{
	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
}

static int
hs_step(SSL *ssl, int server, int *state)
{
	int r, e;

	if (*state != 0)
		return 0;
	r = server ? SSL_accept(ssl) : SSL_connect(ssl);
	if (r == 1) {
		*state = 1;
		return 1;
	}
	e = SSL_get_error(ssl, r);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
		return 0;
	*state = -1;
	return 0;
}

/* A TLS connection over loopback TCP, its handshake done both ways. */
static int
tls_pair(SSL **c, SSL **s)
{
	struct pollfd pfd[2];
	int cfd, sfd, cok = 0, sok = 0, i;

	*c = *s = NULL;
	if (tcp_pair(&cfd, &sfd) == -1)
		return -1;
	*c = SSL_new(cctx);
	*s = SSL_new(sctx);
	if (*c == NULL || *s == NULL) {
		close(cfd);
		close(sfd);
		return -1;
	}
	SSL_set_fd(*c, cfd);
	SSL_set_fd(*s, sfd);
	pfd[0].fd = cfd;
	pfd[1].fd = sfd;
	pfd[0].events = pfd[1].events = POLLIN;
	for (i = 0; i < 200 && (cok == 0 || sok == 0); i++) {
		if (!hs_step(*c, 0, &cok) && !hs_step(*s, 1, &sok))
			poll(pfd, 2, 10);
	}
	return cok == 1 && sok == 1 ? 0 : -1;
}

static void
tls_free(SSL **ssl, int close_fd)
{
	if (*ssl == NULL)
		return;
	if (close_fd)
		close(SSL_get_fd(*ssl));
	SSL_free(*ssl);
	*ssl = NULL;
}

/* ---- relays and what their done callback saw ---- */

struct slot {
	struct relay_tls *r;
	int		 ndone, in_new;	/* times done ran; of them inside new */
	double		 done_at;
	uint64_t	 up, down;	/* relay_tls_bytes at done */
	uint64_t	 dup, ddown, dropped;	/* relay_tls_dgrams at done */
	int		 state, err, side;
	char		 detail[160];
	int		 free_in_done;
	void		(*on_done)(struct slot *, void *);	/* then this */
	void		*on_done_arg;
};

static void
slot_done(struct relay_tls *r, void *arg)
{
	struct slot *s = arg;
	const char *detail;

	s->ndone++;
	s->in_new += in_new;
	s->done_at = now();
	relay_tls_bytes(r, &s->up, &s->down);
	relay_tls_dgrams(r, &s->dup, &s->ddown, &s->dropped);
	s->state = relay_tls_state(r);
	s->err = relay_tls_error(r, &s->side, &detail);
	snprintf(s->detail, sizeof(s->detail), "%s", detail ? detail : "");
	if (s->on_done != NULL)
		s->on_done(s, s->on_done_arg);
	if (s->free_in_done) {
		relay_tls_free(r);
		s->r = NULL;
	}
}

static int
slot_new(struct slot *s, int fd, SSL *ssl, const uint8_t *pre, size_t npre,
    unsigned idle)
{
	in_new = 1;
	s->r = relay_tls_new(base, fd, ssl, pre, npre, idle, slot_done, s);
	in_new = 0;
	return s->r == NULL ? -1 : 0;
}

static int
slot_new_dgram(struct slot *s, int fd, SSL *ssl, unsigned idle)
{
	in_new = 1;
	s->r = relay_tls_new_dgram(base, fd, ssl, idle, slot_done, s);
	in_new = 0;
	return s->r == NULL ? -1 : 0;
}

/*
 * One relay:   c <-> ra | relay a on tc | ~TLS~ ts <-> t (this test).
 * A chain:     c <-> ra | relay a on tc | ~TLS~ ts | relay b | rb <-> s.
 * With flip, relay a holds the server's end of the TLS connection.
 */
struct rig {
	int		 chain, flip;
	int		 ra, rb;
	SSL		*tc, *ts;
	struct peer	 c, t, s;
	struct slot	 a, b;
};

static int
rig_open(struct rig *g, int chain, int flip)
{
	memset(g, 0, sizeof(*g));
	g->chain = chain;
	g->flip = flip;
	g->ra = g->rb = g->c.fd = g->t.fd = g->s.fd = -1;
	g->c.rx_bad = g->t.rx_bad = g->s.rx_bad = -1;
	if (tcp_pair(&g->c.fd, &g->ra) == -1 || tls_pair(&g->tc, &g->ts) == -1)
		return -1;
	if (flip) {
		SSL *x = g->tc;

		g->tc = g->ts;
		g->ts = x;
	}
	if (chain)
		return tcp_pair(&g->rb, &g->s.fd);
	g->t.ssl = g->ts;
	g->t.fd = SSL_get_fd(g->ts);
	return 0;
}

/* The far end of relay a: the test's TLS peer or, in a chain, s. */
static struct peer *
rig_far(struct rig *g)
{
	return g->chain ? &g->s : &g->t;
}

static int
rig_start_pre(struct rig *g, const uint8_t *pre, size_t npre,
    unsigned idle)
{
	peer_start(&g->c);
	peer_start(rig_far(g));
	if (slot_new(&g->a, g->ra, g->tc, pre, npre, idle) == -1)
		return -1;
	if (g->chain && slot_new(&g->b, g->rb, g->ts, NULL, 0, idle) == -1)
		return -1;
	return 0;
}

static int
rig_start(struct rig *g)
{
	return rig_start_pre(g, NULL, 0, 0);
}

/* One relay, its TLS peer driven by hand (the chunk_* helpers). */
static int
rig_start_hand(struct rig *g)
{
	peer_start(&g->c);
	return slot_new(&g->a, g->ra, g->tc, NULL, 0, 0);
}

static void
rig_close(struct rig *g)
{
	relay_tls_free(g->a.r);
	relay_tls_free(g->b.r);
	g->a.r = g->b.r = NULL;
	peer_stop(&g->c);
	peer_stop(&g->t);
	peer_stop(&g->s);
	peer_free(&g->c);
	peer_free(&g->t);
	peer_free(&g->s);
	if (g->c.fd != -1)
		close(g->c.fd);
	if (g->s.fd != -1)
		close(g->s.fd);
	if (g->ra != -1)
		close(g->ra);
	if (g->rb != -1)
		close(g->rb);
	/* The test's TLS peer may have closed its socket already. */
	tls_free(&g->tc, 1);
	tls_free(&g->ts, g->t.vanish_at == 0);
}

static int
rig_finished(void *arg)
{
	struct rig *g = arg;

	return g->a.ndone && (!g->chain || g->b.ndone) &&
	    peer_finished(&g->c) && peer_finished(rig_far(g));
}

/* A rig whose TLS peer the test drives by hand. */
static int
rig_hand_finished(void *arg)
{
	struct rig *g = arg;

	return g->a.ndone && peer_finished(&g->c);
}

static int
rig_done_fired(void *arg)
{
	struct rig *g = arg;

	return g->a.ndone > 0;
}

static void
tick_cb(evutil_socket_t fd, short what, void *arg)
{
}

/* Runs the loop until cond or the deadline; returns cond's last value. */
static int
run_until(int (*cond)(void *), void *arg, double seconds)
{
	double end = now() + seconds;
	struct timeval tv = { 0, 10000 };
	struct event *tick;
	int done;

	tick = event_new(base, -1, EV_PERSIST, tick_cb, NULL);
	event_add(tick, &tv);
	while (!(done = cond != NULL && cond(arg)) && now() < end)
		event_base_loop(base, EVLOOP_ONCE);
	event_free(tick);
	return done;
}

static int
never(void *arg)
{
	return 0;
}

/* ---- the far TLS end by hand ---- */

static int tls_last;		/* the helpers' last SSL_get_error() */

/*
 * All of len bytes written or read, the loop run meanwhile (the relay is
 * on it too) and 5 s at most: 0, or -1 with tls_last.
 */
static int
tls_io(SSL *ssl, int wr, void *buf, size_t len)
{
	double end = now() + 5;
	size_t off = 0;
	int n;

	tls_last = 0;
	while (off < len) {
		n = wr ? SSL_write(ssl, (uint8_t *)buf + off, len - off) :
		    SSL_read(ssl, (uint8_t *)buf + off, len - off);
		if (n > 0) {
			off += n;
			continue;
		}
		tls_last = SSL_get_error(ssl, n);
		ERR_clear_error();
		if ((tls_last != SSL_ERROR_WANT_READ &&
		    tls_last != SSL_ERROR_WANT_WRITE) || now() > end)
			return -1;
		run_until(never, NULL, 0.002);
	}
	return 0;
}

/* Raw bytes on the TLS side: one record when they fit in one. */
static int
tls_put(SSL *ssl, const void *buf, size_t len)
{
	return tls_io(ssl, 1, (void *)buf, len);
}

/* A header declaring len, then n bytes of stream seed from pos. */
static size_t
chunk_frame(uint8_t *out, uint32_t len, uint64_t seed, uint64_t pos,
    size_t n)
{
	put_be32(out, len);
	stream_fill(out + CHUNK_HDR, seed, pos, n);
	return CHUNK_HDR + n;
}

/* A chunk of n bytes of stream seed from pos, in one SSL_write. */
static int
chunk_put(SSL *ssl, uint64_t seed, uint64_t pos, size_t n)
{
	static uint8_t buf[CHUNK_HDR + CHUNK_MAX];

	return tls_put(ssl, buf, chunk_frame(buf, n, seed, pos, n));
}

/* The empty chunk: the end of this direction. */
static int
chunk_end(SSL *ssl)
{
	static const uint8_t zero[CHUNK_HDR];

	return tls_put(ssl, zero, sizeof(zero));
}

/*
 * The next chunk, read exactly: its length (0: the empty chunk), the
 * payload in buf; -1 on a TLS error (tls_last) or a length over max.
 */
static long
chunk_get(SSL *ssl, uint8_t *buf, size_t max)
{
	uint8_t hdr[CHUNK_HDR];
	uint32_t len;

	if (tls_io(ssl, 0, hdr, sizeof(hdr)) == -1)
		return -1;
	if ((len = be32(hdr)) > max)
		return -1;
	if (len > 0 && tls_io(ssl, 0, buf, len) == -1)
		return -1;
	return len;
}

/*
 * Chunks up to and with the empty one: their payload is stream seed from
 * 0, *n bytes of it in *nchunks chunks. 0 if intact and ended, else -1.
 */
static int
chunks_get_all(SSL *ssl, uint64_t seed, uint64_t *n, unsigned *nchunks)
{
	static uint8_t buf[CHUNK_MAX];
	long len;

	*n = 0;
	*nchunks = 0;
	while ((len = chunk_get(ssl, buf, CHUNK_MAX)) > 0) {
		if (stream_check(buf, seed, *n, len) != -1)
			return -1;
		*n += len;
		++*nchunks;
	}
	return len == 0 ? 0 : -1;
}

/*
 * Nothing more comes from the other end: no byte, no close_notify (the
 * relay never calls SSL_shutdown), no error, nothing buffered. Reads a
 * byte if there is one: for the end of a test.
 */
static int
tls_quiet(SSL *ssl)
{
	uint8_t b;
	int n, e;

	n = SSL_read(ssl, &b, 1);
	e = SSL_get_error(ssl, n);
	ERR_clear_error();
	return n <= 0 && e == SSL_ERROR_WANT_READ && SSL_pending(ssl) == 0 &&
	    SSL_get_shutdown(ssl) == 0;
}

/*
 * The next flow on the same TLS connection: the relays freed, new plain
 * sockets, fresh slots and plain peers (the test's TLS peer stays).
 */
static int
rig_replug(struct rig *g)
{
	relay_tls_free(g->a.r);
	relay_tls_free(g->b.r);
	memset(&g->a, 0, sizeof(g->a));
	memset(&g->b, 0, sizeof(g->b));
	peer_stop(&g->c);
	peer_stop(&g->s);
	peer_free(&g->c);
	peer_free(&g->s);
	if (g->c.fd != -1)
		close(g->c.fd);
	if (g->s.fd != -1)
		close(g->s.fd);
	if (g->ra != -1)
		close(g->ra);
	if (g->rb != -1)
		close(g->rb);
	memset(&g->c, 0, sizeof(g->c));
	memset(&g->s, 0, sizeof(g->s));
	g->ra = g->rb = g->c.fd = g->s.fd = -1;
	if (tcp_pair(&g->c.fd, &g->ra) == -1)
		return -1;
	return g->chain ? tcp_pair(&g->rb, &g->s.fd) : 0;
}

/* ---- streams ---- */

static const char *
rig_kind(const struct rig *g)
{
	return g->chain ? "chain" : g->flip ? "relay on the server end" :
	    "relay on the client end";
}

/* Moves streams of the given sizes each way and checks all of it. */
static void
test_stream(const char *name, int chain, int flip, uint64_t up,
    uint64_t down)
{
	struct rig g;
	struct peer *far;
	double t0;

	if (!ok(rig_open(&g, chain, flip) == 0, "%s: sockets and handshake",
	    name)) {
		rig_close(&g);
		return;
	}
	far = rig_far(&g);
	peer_init(&g.c, 11, up, 22);
	peer_init(far, 22, down, 11);
	t0 = now();
	ok(rig_start(&g) == 0, "%s: relay_tls_new, %s", name, rig_kind(&g));
	ok(run_until(rig_finished, &g, 20), "%s: finished", name);
	ok(far->rx_done == up && g.c.rx_done == down, "%s: far end got "
	    "%llu of %llu bytes, client %llu of %llu", name,
	    (unsigned long long)far->rx_done, (unsigned long long)up,
	    (unsigned long long)g.c.rx_done, (unsigned long long)down);
	ok(far->rx_bad == -1 && g.c.rx_bad == -1, "%s: bytes intact "
	    "(first bad offsets %lld, %lld)", name, far->rx_bad, g.c.rx_bad);
	ok(far->rx_eof && g.c.rx_eof && far->tx_err == 0 &&
	    g.c.tx_err == 0, "%s: both ends saw a clean end (%d %d)", name,
	    far->rx_err, g.c.rx_err);
	ok(g.a.err == 0 && g.a.up == up && g.a.down == down &&
	    g.a.state == BOTH_SHUT, "%s: relay a: bytes %llu/%llu, state %d, "
	    "error %d %s", name, (unsigned long long)g.a.up,
	    (unsigned long long)g.a.down, g.a.state, g.a.err, g.a.detail);
	if (chain)
		ok(g.b.err == 0 && g.b.up == down && g.b.down == up &&
		    g.b.state == BOTH_SHUT, "%s: relay b: bytes %llu/%llu, "
		    "state %d, error %d %s", name,
		    (unsigned long long)g.b.up, (unsigned long long)g.b.down,
		    g.b.state, g.b.err, g.b.detail);
	if (up + down >= 8 * MiB)
		printf("# %s: %.0f MiB/s\n", name,
		    (up + down) / (double)MiB / (now() - t0));
	run_until(never, NULL, 0.01);
	ok(g.a.ndone == 1 && g.b.ndone == chain && g.a.in_new == 0 &&
	    g.b.in_new == 0, "%s: done once each, never within "
	    "relay_tls_new", name);
	ok(far->rx_bad_len == 0 && g.c.rx_bad_len == 0, "%s: no chunk over "
	    "the maximum", name);
	ok(tls_quiet(g.tc) && tls_quiet(g.ts), "%s: the TLS connection is "
	    "left in step: nothing more either way, no close_notify", name);
	rig_close(&g);
}

static void
test_streams(void)
{
	static const struct {
		const char	*name;
		uint64_t	 up, down;
	} t[] = {
		{ "small", 5, 17 },
		{ "one byte up", 1, 0 },
		{ "one byte down", 0, 1 },
		{ "one record", RECORD, RECORD },
		{ "a record and one", RECORD + 1, RECORD - 1 },
		{ "64 KiB", 65536, 65536 },
		{ "nothing", 0, 0 },
	};
	char name[96];
	size_t i;
	int k;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		for (k = 0; k < 3; k++) {
			snprintf(name, sizeof(name), "%s (%s)", t[i].name,
			    k == 0 ? "one relay" : k == 1 ? "flipped" :
			    "chain");
			test_stream(name, k == 2, k == 1, t[i].up, t[i].down);
		}
	test_stream("20 MiB each way", 0, 0, 20 * MiB, 20 * MiB);
	test_stream("20 MiB each way (chain)", 1, 0, 20 * MiB, 20 * MiB);
}

/*
 * The TLS peer asks for a key update mid-stream (a long-lived tunnel
 * would): the relay's SSL_read answers with its own, in both roles.
 */
static void
test_key_update(int flip)
{
	const char *name = flip ? "key update (relay on the server end)" :
	    "key update";
	struct rig g;

	if (!ok(rig_open(&g, 0, flip) == 0, "%s: sockets", name)) {
		rig_close(&g);
		return;
	}
	peer_init(&g.c, 35, 3 * MiB, 36);
	peer_init(&g.t, 36, 3 * MiB, 35);
	g.t.tx_hold = 1;
	rig_start(&g);
	run_until(never, NULL, 0.01);
	ok(SSL_key_update(g.ts, SSL_KEY_UPDATE_REQUESTED) == 1,
	    "%s: requested", name);
	peer_resume(&g.t);
	ok(run_until(rig_finished, &g, 10), "%s: finished", name);
	ok(g.c.rx_done == 3 * MiB && g.t.rx_done == 3 * MiB &&
	    g.c.rx_bad == -1 && g.t.rx_bad == -1 && g.a.err == 0,
	    "%s: bytes intact, clean (%d %s)", name, g.a.err, g.a.detail);
	rig_close(&g);
}

/* ---- bytes before the relay ---- */

/*
 * pre: TLS-side bytes the opening exchange read before the relay began,
 * framed chunks cut anywhere (within a header, within a payload, or the
 * whole flow with its empty chunk). The relay takes them first, then the
 * rest of the TLS peer's chunks (sent before it existed, so a first read
 * could take them). npre 0: all that the peer framed.
 */
static void
test_pre(const char *name, uint64_t total, uint32_t chunk, size_t npre)
{
	static uint8_t pre[65536];
	struct rig g;

	if (!ok(rig_open(&g, 0, 0) == 0, "%s: sockets", name)) {
		rig_close(&g);
		return;
	}
	peer_init(&g.c, 34, 0, 33);
	peer_init(&g.t, 33, total, 34);
	g.t.tx_chunk = chunk;
	g.c.tx_after_eof = 1;
	peer_frame(&g.t);
	if (npre == 0)
		npre = g.t.txlen;
	if (!ok(npre <= g.t.txlen && npre <= sizeof(pre), "%s: %zu of %zu "
	    "framed bytes before the relay%s", name, npre, g.t.txlen,
	    npre == g.t.txlen && g.t.tx_fin ? ", the empty chunk too" : "")) {
		rig_close(&g);
		return;
	}
	memcpy(pre, g.t.txbuf, npre);
	g.t.txoff = npre;
	peer_start(&g.t);
	peer_start(&g.c);
	ok(slot_new(&g.a, g.ra, g.tc, pre, npre, 0) == 0, "%s: relay_tls_new "
	    "with %zu bytes", name, npre);
	ok(run_until(rig_finished, &g, 10), "%s: finished", name);
	ok(g.c.rx_done == total && g.c.rx_bad == -1 && g.c.rx_eof,
	    "%s: the client got pre's payload, then the rest (%llu bytes, "
	    "first bad %lld)", name, (unsigned long long)g.c.rx_done,
	    g.c.rx_bad);
	ok(g.a.ndone == 1 && g.a.err == 0 && g.a.down == total &&
	    g.a.up == 0, "%s: done, clean, down %llu (%d %s)", name,
	    (unsigned long long)g.a.down, g.a.err, g.a.detail);
	ok(tls_quiet(g.tc), "%s: nothing left on the TLS side", name);
	rig_close(&g);
}

static void
test_pres(void)
{
	static uint8_t big[65537];
	struct rig g;

	test_pre("pre within the first chunk", 300000, 5000, 1000);
	test_pre("pre of whole chunks", 300000, 1000, 3 * 1004);
	test_pre("pre ends within a header", 300000, 1000, 1004 + 2);
	test_pre("pre ends after a header", 300000, 1000, 1004 + 4);
	test_pre("pre is a header alone", 300000, 1000, 4);
	test_pre("pre is the whole flow", 3, 0, 0);
	test_pre("pre is the empty chunk alone", 0, 0, 0);
	test_pre("pre of varied chunks", 2 * MiB, 0, 50000);
	test_pre("pre fills the buffer", 1 * MiB, 40000, 65536);
	if (rig_open(&g, 0, 0) == 0) {
		int rc = slot_new(&g.a, g.ra, g.tc, big, sizeof(big), 0);

		ok(rc == -1 && errno == EINVAL, "pre of 64 KiB and one: "
		    "refused (%s)", strerror(errno));
	}
	rig_close(&g);
}

/* ---- half-close ---- */

/*
 * The client sends its request and shuts its write side: the far end
 * reads the request and then the end of the stream, while its answer
 * still comes back. The relays say which way has ended.
 */
static void
test_half_close(const char *name, int chain, uint64_t up, uint64_t down)
{
	struct rig g;
	struct peer *far;

	if (!ok(rig_open(&g, chain, 0) == 0, "%s: sockets", name)) {
		rig_close(&g);
		return;
	}
	far = rig_far(&g);
	peer_init(&g.c, 41, up, 42);
	peer_init(far, 42, down, 41);
	far->tx_after_eof = 1;
	far->tx_hold = 1;
	ok(rig_start(&g) == 0, "%s: relay_tls_new", name);
	ok(run_until(peer_got_eof, far, 5) && far->rx_eof &&
	    far->rx_done == up && far->rx_bad == -1, "%s: the far end read "
	    "the request, then %s", name, chain ? "EOF" :
	    "the empty chunk");
	run_until(never, NULL, 0.02);
	is_int(relay_tls_state(g.a.r), RELAY_AB_SHUT,
	    "%s: relay a: RELAY_AB_SHUT only", name);
	if (chain)
		is_int(relay_tls_state(g.b.r), RELAY_BA_SHUT,
		    "%s: relay b: RELAY_BA_SHUT only", name);
	ok(g.a.ndone == 0 && g.b.ndone == 0, "%s: no done yet", name);
	peer_resume(far);
	ok(run_until(rig_finished, &g, 10), "%s: finished", name);
	ok(g.c.rx_done == down && g.c.rx_bad == -1 && g.c.rx_eof,
	    "%s: the answer came back whole after the half-close (%llu)",
	    name, (unsigned long long)g.c.rx_done);
	ok(g.a.ndone == 1 && g.a.err == 0 && g.a.state == BOTH_SHUT &&
	    g.a.up == up && g.a.down == down, "%s: relay a done, clean (%d "
	    "%s)", name, g.a.err, g.a.detail);
	if (chain)
		ok(g.b.ndone == 1 && g.b.err == 0 && g.b.state == BOTH_SHUT &&
		    g.b.up == down && g.b.down == up,
		    "%s: relay b done, clean (%d %s)", name, g.b.err,
		    g.b.detail);
	run_until(never, NULL, 0.02);
	ok(g.a.ndone == 1 && g.b.ndone == chain, "%s: done once", name);
	rig_close(&g);
}

/* The other way: the far end finishes first, the client answers after. */
static void
test_half_close_far(const char *name, int chain)
{
	struct rig g;
	struct peer *far;

	if (!ok(rig_open(&g, chain, 0) == 0, "%s: sockets", name)) {
		rig_close(&g);
		return;
	}
	far = rig_far(&g);
	peer_init(&g.c, 43, 2 * MiB, 44);
	peer_init(far, 44, 5000, 43);
	g.c.tx_after_eof = 1;
	g.c.tx_hold = 1;
	ok(rig_start(&g) == 0, "%s: relay_tls_new", name);
	ok(run_until(peer_got_eof, &g.c, 5) && g.c.rx_eof &&
	    g.c.rx_done == 5000, "%s: the client read it all, then EOF", name);
	run_until(never, NULL, 0.02);
	is_int(relay_tls_state(g.a.r), RELAY_BA_SHUT,
	    "%s: relay a: RELAY_BA_SHUT only", name);
	peer_resume(&g.c);
	ok(run_until(rig_finished, &g, 10) && far->rx_done == 2 * MiB &&
	    far->rx_bad == -1 && far->rx_eof, "%s: the client's answer "
	    "arrived, then the end", name);
	ok(g.a.ndone == 1 && g.a.err == 0 && g.a.state == BOTH_SHUT &&
	    (!chain || (g.b.ndone == 1 && g.b.err == 0)),
	    "%s: done, clean", name);
	rig_close(&g);
}

/*
 * Both ends finished before the relay began: it could end in its first
 * step, yet done must wait until relay_tls_new() has returned.
 */
static void
test_done_deferred(void)
{
	struct rig g;
	int rc;

	if (!ok(rig_open(&g, 0, 0) == 0, "deferred: sockets")) {
		rig_close(&g);
		return;
	}
	peer_init(&g.c, 45, 10, 46);
	peer_init(&g.t, 46, 20, 45);
	g.c.rx_paused = g.t.rx_paused = 1;
	peer_start(&g.c);
	peer_start(&g.t);
	ok(g.c.tx_shut && g.t.tx_shut, "deferred: both ends sent all and "
	    "their end");
	usleep(20000);
	rc = slot_new(&g.a, g.ra, g.tc, NULL, 0, 0);
	ok(rc == 0 && g.a.ndone == 0, "deferred: relay_tls_new returned, "
	    "done not yet run");
	peer_resume(&g.c);
	peer_resume(&g.t);
	ok(run_until(rig_finished, &g, 5) && g.a.ndone == 1 &&
	    g.a.in_new == 0 && g.a.err == 0 && g.c.rx_done == 20 &&
	    g.t.rx_done == 10, "deferred: then done, clean, bytes through");
	rig_close(&g);
}

/* ---- back-pressure ---- */

/*
 * A reader that stops: the relay stops reading its source (unread bytes
 * wait in that socket) and the sender's writes block. All the sender got
 * rid of sits in socket buffers or in the relays, so a small bound on it
 * bounds the relays' memory too. It all arrives once the reader goes on.
 * The kernel may still take a little more later (a zero-window probe
 * finds room after it compacted a receive queue), so blocked means
 * bounded here, not frozen to the byte.
 */
static void
test_backpressure(const char *name, int chain, int upward)
{
	const uint64_t total = 12 * MiB;
	struct rig g;
	struct peer *src, *dst;
	uint64_t sent;
	int i, unread = 0, source;

	if (!ok(rig_open(&g, chain, 0) == 0, "%s: sockets", name)) {
		rig_close(&g);
		return;
	}
	/* Fixed buffers: autotuning could otherwise swallow megabytes. */
	set_bufs(g.c.fd, 128 * 1024);
	set_bufs(g.ra, 128 * 1024);
	set_bufs(SSL_get_fd(g.tc), 128 * 1024);
	set_bufs(SSL_get_fd(g.ts), 128 * 1024);
	if (chain) {
		set_bufs(g.rb, 128 * 1024);
		set_bufs(g.s.fd, 128 * 1024);
	}
	src = upward ? &g.c : rig_far(&g);
	dst = upward ? rig_far(&g) : &g.c;
	peer_init(src, 51, total, 52);
	peer_init(dst, 52, 0, 51);
	dst->rx_paused = 1;
	rig_start(&g);
	run_until(never, NULL, 0.2);
	sent = src->tx_done;
	ok(src->tx_blocked > 0 && sent < total,
	    "%s: the sender's writes block (%llu bytes out)", name,
	    (unsigned long long)sent);
	source = upward ? g.ra : SSL_get_fd(g.tc);
	ioctl(source, FIONREAD, &unread);
	ok(unread > 0, "%s: relay a leaves its source unread (%d bytes)",
	    name, unread);
	for (i = 0; i < 2; i++)
		run_until(never, NULL, 0.05);
	ok(src->tx_done - sent < 512 * 1024, "%s: and it stays blocked "
	    "(%llu more)", name, (unsigned long long)(src->tx_done - sent));
	ok(src->tx_done < 8 * MiB, "%s: in flight is bounded (%llu)", name,
	    (unsigned long long)src->tx_done);
	peer_resume(dst);
	ok(run_until(rig_finished, &g, 10), "%s: resumes", name);
	ok(dst->rx_done == total && dst->rx_bad == -1 && g.a.ndone == 1 &&
	    g.a.err == 0 && (upward ? g.a.up : g.a.down) == total,
	    "%s: all %llu bytes intact", name,
	    (unsigned long long)dst->rx_done);
	rig_close(&g);
}

/* ---- failures ---- */

/*
 * The TLS peer goes without close_notify: with a FIN (close(2)) or a
 * RST (SO_LINGER 0, or close(2) with unread data), idle or mid-stream.
 */
static void
test_tls_gone(const char *name, int busy, int reset)
{
	struct rig g;
	double t;

	if (!ok(rig_open(&g, 0, 0) == 0, "%s: sockets", name)) {
		rig_close(&g);
		return;
	}
	peer_init(&g.c, 61, busy ? 32 * MiB : 0, 62);
	peer_init(&g.t, 62, 0, 61);
	g.c.tx_after_eof = !busy;
	g.t.tx_after_eof = 1;
	if (busy) {
		g.t.vanish_after = 1 * MiB;
		g.t.vanish_reset = reset;
	}
	rig_start(&g);
	if (!busy) {
		run_until(never, NULL, 0.05);
		ok(g.a.ndone == 0, "%s: an idle relay stays up", name);
		peer_vanish(&g.t, reset);
	}
	ok(run_until(rig_done_fired, &g, 5), "%s: done ran", name);
	t = g.a.done_at - g.t.vanish_at;
	ok(g.t.vanish_at > 0 && t < 0.5, "%s: %.3f s after", name, t);
	ok(g.a.side == 1 && g.a.err == ECONNRESET, "%s: side %d, %s", name,
	    g.a.side, strerror(g.a.err));
	/* A reset says no more than ECONNRESET does. */
	if (!reset)
		is_str(g.a.detail, "closed without close_notify",
		    "%s: detail", name);
	run_until(never, NULL, 0.02);
	is_int(g.a.ndone, 1, "%s: done once", name);
	rig_close(&g);
}

/* The plain peer resets: side 0. */
static void
test_plain_reset(const char *name, int busy)
{
	struct rig g;

	if (!ok(rig_open(&g, 0, 0) == 0, "%s: sockets", name)) {
		rig_close(&g);
		return;
	}
	peer_init(&g.c, 63, 0, 64);
	peer_init(&g.t, 64, busy ? 32 * MiB : 0, 63);
	g.c.tx_after_eof = 1;
	g.t.tx_after_eof = !busy;
	if (busy) {
		g.c.vanish_after = 1 * MiB;
		g.c.vanish_reset = 1;
	}
	rig_start(&g);
	if (!busy) {
		run_until(never, NULL, 0.05);
		ok(g.a.ndone == 0, "%s: an idle relay stays up", name);
		peer_vanish(&g.c, 1);
	}
	ok(run_until(rig_done_fired, &g, 5), "%s: done ran", name);
	ok(g.c.vanish_at > 0 && g.a.done_at - g.c.vanish_at < 0.5,
	    "%s: %.3f s after", name, g.a.done_at - g.c.vanish_at);
	ok(g.a.side == 0 && g.a.err != 0, "%s: side %d, %s", name, g.a.side,
	    strerror(g.a.err));
	run_until(never, NULL, 0.02);
	is_int(g.a.ndone, 1, "%s: done once", name);
	rig_close(&g);
}

/* Bytes that are no TLS record: EPROTO from the TLS side, with a reason. */
static void
test_tls_garbage(void)
{
	static const char junk[] = "GET / HTTP/1.0\r\n\r\n";
	struct rig g;

	if (!ok(rig_open(&g, 0, 0) == 0, "garbage: sockets")) {
		rig_close(&g);
		return;
	}
	peer_init(&g.c, 65, 0, 66);
	peer_init(&g.t, 66, 0, 65);
	g.c.tx_after_eof = g.t.tx_after_eof = 1;
	rig_start(&g);
	run_until(never, NULL, 0.02);
	ok(write(g.t.fd, junk, sizeof(junk) - 1) == sizeof(junk) - 1,
	    "garbage: written under TLS");
	run_until(rig_done_fired, &g, 2);
	ok(g.a.ndone == 1 && g.a.side == 1 && g.a.err == EPROTO &&
	    g.a.detail[0] != '\0',
	    "garbage: side %d, %s: %s", g.a.side, strerror(g.a.err),
	    g.a.detail);
	rig_close(&g);
}

/* ---- idle timeout ---- */

/*
 * idle 1: a quiet relay ends after a second with ETIMEDOUT; a busy one
 * moves a byte 0.75 s apart, stays up, and ends a second after its last.
 * The first byte goes 0.1 s before the wall clock's next second, the
 * first check (+1.0 s) comes after that second began and before the
 * next byte: a timer that counted whole seconds would end the flow
 * then, though it moved a byte less than a second ago. Both run beside
 * the other tests, whose loops drive them, to save their 2-3 seconds.
 */
static struct {
	struct rig	 quiet, busy;
	struct event	 ev;		/* the busy one's next byte */
	double		 t0, at[2], last;
	int		 n, up_at_last;	/* bytes sent; still up at the last */
	int		 open;
} idl;

/* A byte one way or the other, by hand. */
static void
idle_nudge(evutil_socket_t fd, short what, void *arg)
{
	struct timeval tv;
	double wait;
	unsigned char b = idl.n;
	uint8_t chunk[CHUNK_HDR + 1] = { 0, 0, 0, 1, b };	/* b, framed */

	if (idl.busy.a.ndone)
		return;
	if (idl.n % 2 == 0)
		send(idl.busy.c.fd, &b, 1, 0);
	else
		SSL_write(idl.busy.ts, chunk, sizeof(chunk));
	idl.last = now();
	if (++idl.n == 2) {
		idl.up_at_last = 1;
		return;
	}
	wait = idl.t0 + idl.at[idl.n] - now();
	tv.tv_sec = 0;
	tv.tv_usec = wait > 0 ? wait * 1e6 : 0;
	evtimer_add(&idl.ev, &tv);
}

static void
test_idle_start(void)
{
	struct timeval tv;

	/* Both, so that rig_close() may close both. */
	idl.open = rig_open(&idl.quiet, 0, 0) == 0;
	idl.open = rig_open(&idl.busy, 0, 0) == 0 && idl.open;
	if (!ok(idl.open, "idle: sockets")) {
		rig_close(&idl.quiet);
		rig_close(&idl.busy);
		return;
	}
	peer_init(&idl.quiet.c, 0, 0, 0);
	peer_init(&idl.quiet.t, 0, 0, 0);
	idl.quiet.c.tx_hold = idl.quiet.t.tx_hold = 1;
	peer_init(&idl.busy.c, 0, 0, 0);
	peer_init(&idl.busy.t, 0, 0, 0);
	idl.busy.c.tx_hold = idl.busy.t.tx_hold = 1;
	/* Their bytes are nudges, not a checked stream. */
	idl.busy.c.rx_paused = idl.busy.t.rx_paused = 1;
	gettimeofday(&tv, NULL);
	if (tv.tv_usec > 550000) {
		usleep(1050000 - tv.tv_usec);
		gettimeofday(&tv, NULL);
	}
	idl.t0 = now();
	idl.at[0] = (900000 - tv.tv_usec) / 1e6;	/* 0.35 to 0.9 */
	idl.at[1] = idl.at[0] + 0.75;
	ok(rig_start_pre(&idl.quiet, NULL, 0, 1) == 0 &&
	    rig_start_pre(&idl.busy, NULL, 0, 1) == 0, "idle: two relays, "
	    "idle 1");
	evtimer_assign(&idl.ev, base, idle_nudge, NULL);
	tv.tv_sec = 0;
	tv.tv_usec = idl.at[0] * 1e6;
	evtimer_add(&idl.ev, &tv);
}

static int
idle_both_done(void *arg)
{
	return idl.quiet.a.ndone && idl.busy.a.ndone;
}

static void
test_idle_end(void)
{
	struct slot *q = &idl.quiet.a, *b = &idl.busy.a;

	if (!idl.open)
		return;
	run_until(idle_both_done, NULL, idl.t0 + 4 - now());
	ok(q->ndone == 1 && q->done_at - idl.t0 > 0.9 &&
	    q->done_at - idl.t0 < 2.2, "idle: the quiet relay ended after "
	    "%.2f s", q->done_at - idl.t0);
	ok(q->err == ETIMEDOUT && q->side == -1, "idle: ETIMEDOUT, side %d",
	    q->side);
	is_str(q->detail, "idle for 1 s", "idle: detail");
	if (!ok(idl.up_at_last, "idle: a byte 0.75 s apart keeps the other "
	    "up"))
		printf("#   it ended %.2f s after the start, %.2f s after its "
		    "last byte\n", b->done_at - idl.t0, b->done_at - idl.last);
	ok(b->ndone == 1 && b->err == ETIMEDOUT &&
	    b->done_at - idl.last > 0.9 && b->done_at - idl.last < 2.2,
	    "idle: and it ended %.2f s after its last byte",
	    b->done_at - idl.last);
	ok(b->up + b->down == (uint64_t)idl.n && idl.n == 2,
	    "idle: %d bytes counted", idl.n);
	event_del(&idl.ev);
	rig_close(&idl.quiet);
	rig_close(&idl.busy);
}

/* ---- freeing ---- */

/* relay_tls_free on live relays, mid-stream and before the first step. */
static void
test_free_live(void)
{
	struct rig g;
	uint64_t up = 0, down = 0;

	if (ok(rig_open(&g, 1, 0) == 0, "free: sockets")) {
		peer_init(&g.c, 71, 64 * MiB, 72);
		peer_init(&g.s, 72, 64 * MiB, 71);
		rig_start(&g);
		run_until(never, NULL, 0.1);
		relay_tls_bytes(g.a.r, &up, &down);
		ok(up > 0 && down > 0 && g.a.ndone == 0 && g.b.ndone == 0,
		    "free: a busy chain (%llu bytes up, %llu down so far)",
		    (unsigned long long)up, (unsigned long long)down);
		relay_tls_free(g.a.r);
		relay_tls_free(g.b.r);
		g.a.r = g.b.r = NULL;
		run_until(never, NULL, 0.1);
		ok(g.a.ndone == 0 && g.b.ndone == 0,
		    "free: no done after relay_tls_free");
	}
	rig_close(&g);

	if (ok(rig_open(&g, 0, 0) == 0, "free: sockets")) {
		peer_init(&g.c, 73, 1000, 74);
		peer_init(&g.t, 74, 1000, 73);
		rig_start(&g);
		relay_tls_free(g.a.r);
		g.a.r = NULL;
		run_until(never, NULL, 0.05);
		ok(g.a.ndone == 0 && g.t.rx_done == 0,
		    "free: before its first step, nothing happens");
	}
	rig_close(&g);

	if (ok(rig_open(&g, 1, 0) == 0, "free in done: sockets")) {
		peer_init(&g.c, 75, 3 * MiB, 76);
		peer_init(&g.s, 76, 2 * MiB, 75);
		g.a.free_in_done = g.b.free_in_done = 1;
		rig_start(&g);
		ok(run_until(rig_finished, &g, 10) && g.a.ndone == 1 &&
		    g.b.ndone == 1 && g.a.r == NULL && g.b.r == NULL &&
		    g.s.rx_done == 3 * MiB && g.c.rx_done == 2 * MiB,
		    "free in done: both relays freed themselves");
		run_until(never, NULL, 0.02);
	}
	rig_close(&g);
}

/* ---- one TLS connection, flow after flow ---- */

/*
 * A chain's flow ends cleanly both ways; the next flow's first chunk
 * follows relay a's empty chunk at once (written from a's done, while
 * relay b has yet to read that empty chunk), as a tunneller that reuses
 * the connection sends its next request. Relay b must stop at the empty
 * chunk, and a second pair of relays on the same two SSL objects carries
 * the next flow, and another after it.
 */
#define REUSE_NEXT	1000		/* the next flow's first chunk */

static struct {
	int		 rc;		/* its SSL_write */
	int		 b_running;	/* relay b had not ended then */
} reuse;

static void
reuse_send_next(struct slot *s, void *arg)
{
	struct rig *g = arg;
	static uint8_t buf[CHUNK_HDR + REUSE_NEXT];

	reuse.b_running = g->b.ndone == 0;
	reuse.rc = SSL_write(g->tc, buf,
	    chunk_frame(buf, REUSE_NEXT, 83, 0, REUSE_NEXT));
	ERR_clear_error();
}

static void
test_reuse_chain(void)
{
	static const struct {
		uint64_t	 up, down;
		int		 far_first;	/* s ends first, else c */
	} flow[] = {
		{ 2 * MiB, 500000, 0 },
		{ 0, 0, 1 },
		{ 70000, 1, 0 },
	};
	struct rig g;
	size_t i;
	char name[64];

	if (!ok(rig_open(&g, 1, 0) == 0, "reuse: sockets")) {
		rig_close(&g);
		return;
	}
	/* Flow 1: s answers and ends first, then c; a ends before b. */
	peer_init(&g.c, 81, 300000, 82);
	peer_init(&g.s, 82, 1 * MiB, 81);
	g.c.tx_after_eof = 1;
	g.a.on_done = reuse_send_next;
	g.a.on_done_arg = &g;
	ok(rig_start(&g) == 0 && run_until(rig_finished, &g, 10),
	    "reuse, flow 1: finished");
	ok(g.s.rx_done == 300000 && g.s.rx_bad == -1 && g.s.rx_eof &&
	    g.c.rx_done == 1 * MiB && g.c.rx_bad == -1 && g.c.rx_eof,
	    "reuse, flow 1: bytes intact both ways (%llu, %llu)",
	    (unsigned long long)g.s.rx_done, (unsigned long long)g.c.rx_done);
	ok(g.a.err == 0 && g.b.err == 0 && g.a.state == BOTH_SHUT &&
	    g.b.state == BOTH_SHUT, "reuse, flow 1: both relays clean (%d %s; "
	    "%d %s)", g.a.err, g.a.detail, g.b.err, g.b.detail);
	ok(reuse.rc == CHUNK_HDR + REUSE_NEXT && reuse.b_running,
	    "reuse: the next flow's first chunk went out as relay a ended, "
	    "relay b still up");
	ok(g.b.down == 300000, "reuse, flow 1: relay b took none of it "
	    "(down %llu)", (unsigned long long)g.b.down);
	ok(SSL_get_shutdown(g.tc) == 0 && SSL_get_shutdown(g.ts) == 0,
	    "reuse, flow 1: no close_notify either way");

	for (i = 0; i < sizeof(flow) / sizeof(flow[0]); i++) {
		snprintf(name, sizeof(name), "reuse, flow %zu", i + 2);
		if (!ok(rig_replug(&g) == 0, "%s: new plain sockets", name))
			break;
		peer_init(&g.c, 84 + i, flow[i].up, 94 + i);
		peer_init(&g.s, 94 + i, flow[i].down, 84 + i);
		if (i == 0) {
			/* Its first chunk is on its way already. */
			g.c.tx_seed = 83;
			g.c.tx_total += REUSE_NEXT;
			g.c.tx_done = REUSE_NEXT;
			g.s.rx_seed = 83;
		}
		if (flow[i].far_first)
			g.c.tx_after_eof = 1;
		else
			g.s.tx_after_eof = 1;
		ok(rig_start(&g) == 0 && run_until(rig_finished, &g, 10),
		    "%s: new relays on the same SSL objects, finished", name);
		ok(g.s.rx_done == g.c.tx_total && g.s.rx_bad == -1 &&
		    g.s.rx_eof && g.c.rx_done == flow[i].down &&
		    g.c.rx_bad == -1 && g.c.rx_eof, "%s: bytes intact both "
		    "ways (%llu of %llu, %llu of %llu)", name,
		    (unsigned long long)g.s.rx_done,
		    (unsigned long long)g.c.tx_total,
		    (unsigned long long)g.c.rx_done,
		    (unsigned long long)flow[i].down);
		ok(g.a.ndone == 1 && g.b.ndone == 1 && g.a.err == 0 &&
		    g.b.err == 0 && g.a.up == flow[i].up &&
		    g.b.down == g.c.tx_total && g.a.down == flow[i].down &&
		    g.b.up == flow[i].down, "%s: both relays clean, bytes "
		    "%llu/%llu and %llu/%llu (%d %s; %d %s)", name,
		    (unsigned long long)g.a.up, (unsigned long long)g.a.down,
		    (unsigned long long)g.b.up, (unsigned long long)g.b.down,
		    g.a.err, g.a.detail, g.b.err, g.b.detail);
	}
	run_until(never, NULL, 0.01);
	ok(tls_quiet(g.tc) && tls_quiet(g.ts), "reuse: the connection ends "
	    "in step");
	rig_close(&g);
}

/*
 * By hand, in one record: a chunk, the empty chunk and the next flow's
 * first chunk. The relay passes the first on, ends that way, and leaves
 * the rest in the connection for the next relay.
 */
static void
test_reuse_hand(void)
{
	static uint8_t rec[2 * CHUNK_HDR + 3000 + CHUNK_HDR + 200];
	struct rig g;
	uint64_t up = 0, down = 0, n = 0;
	unsigned nchunks = 0;
	size_t len;
	int pending, rc;

	if (!ok(rig_open(&g, 0, 0) == 0, "reuse by hand: sockets")) {
		rig_close(&g);
		return;
	}
	peer_init(&g.c, 91, 5000, 92);
	g.c.tx_hold = 1;
	len = chunk_frame(rec, 3000, 92, 0, 3000);
	put_be32(rec + len, 0);
	len += CHUNK_HDR;
	len += chunk_frame(rec + len, 200, 93, 0, 200);
	ok(rig_start_hand(&g) == 0 && tls_put(g.ts, rec, len) == 0,
	    "reuse by hand: a chunk, the end and the next flow's chunk in "
	    "one record (%zu bytes)", len);
	rc = run_until(peer_got_eof, &g.c, 5);
	ok(rc && g.c.rx_eof &&
	    g.c.rx_done == 3000 && g.c.rx_bad == -1, "reuse by hand: the "
	    "client got 3000 bytes, then EOF (%llu)",
	    (unsigned long long)g.c.rx_done);
	relay_tls_bytes(g.a.r, &up, &down);
	ok(relay_tls_state(g.a.r) == RELAY_BA_SHUT && down == 3000 &&
	    g.a.ndone == 0, "reuse by hand: down ended at 3000 bytes, the "
	    "relay still up (state %d, %llu)", relay_tls_state(g.a.r),
	    (unsigned long long)down);
	peer_resume(&g.c);
	rc = chunks_get_all(g.ts, 91, &n, &nchunks);
	ok(rc == 0 && n == 5000,
	    "reuse by hand: the client's 5000 bytes, then the relay's empty "
	    "chunk (%llu bytes in %u chunks)", (unsigned long long)n,
	    nchunks);
	rc = run_until(rig_done_fired, &g, 5);
	ok(rc && g.a.err == 0 &&
	    g.a.state == BOTH_SHUT && g.a.up == 5000 && g.a.down == 3000,
	    "reuse by hand: done, clean (%d %s)", g.a.err, g.a.detail);
	pending = SSL_pending(g.tc);
	ok(SSL_get_shutdown(g.tc) == 0 && SSL_get_shutdown(g.ts) == 0,
	    "reuse by hand: no close_notify (%d bytes pending)", pending);

	/* The next flow: its first chunk waits in the connection. */
	if (!ok(rig_replug(&g) == 0, "reuse by hand: new client sockets")) {
		rig_close(&g);
		return;
	}
	peer_init(&g.c, 94, 7000, 93);
	ok(rig_start_hand(&g) == 0 && chunk_put(g.ts, 93, 200, 1000) == 0 &&
	    chunk_end(g.ts) == 0, "reuse by hand: a second relay on the "
	    "same SSL; 1000 more bytes and the end");
	rc = chunks_get_all(g.ts, 94, &n, &nchunks);
	ok(rc == 0 && n == 7000,
	    "reuse by hand: the new client's 7000 bytes and the end (%llu)",
	    (unsigned long long)n);
	rc = run_until(rig_hand_finished, &g, 5);
	ok(rc && g.c.rx_done == 1200 &&
	    g.c.rx_bad == -1 && g.c.rx_eof, "reuse by hand: the new client "
	    "got the 200 bytes the first relay left, then the rest (%llu, "
	    "first bad %lld)", (unsigned long long)g.c.rx_done, g.c.rx_bad);
	ok(g.a.ndone == 1 && g.a.err == 0 && g.a.up == 7000 &&
	    g.a.down == 1200, "reuse by hand: done, clean, %llu/%llu (%d %s)",
	    (unsigned long long)g.a.up, (unsigned long long)g.a.down, g.a.err,
	    g.a.detail);
	ok(tls_quiet(g.tc) && tls_quiet(g.ts), "reuse by hand: in step");
	rig_close(&g);
}

/*
 * A client's last bytes and its FIN, both in when the relay wakes: the
 * end chunk leaves with the bytes, in the same TLS record (one write,
 * one wakeup of the far end). SSL_read() gives one record at a time.
 */
static void
test_end_with_last(void)
{
	static const uint8_t want[] = { 0, 0, 0, 5, 'h', 'e', 'l', 'l', 'o',
	    0, 0, 0, 0 };
	uint8_t got[64];
	struct rig g;
	int n;

	if (!ok(rig_open(&g, 0, 0) == 0, "end with the last bytes: sockets")) {
		rig_close(&g);
		return;
	}
	peer_init(&g.c, 97, 0, 98);
	g.c.tx_hold = 1;
	ok(rig_start_hand(&g) == 0, "end with the last bytes: relay up");
	run_until(never, NULL, 0.1);
	ok(write(g.c.fd, "hello", 5) == 5 && shutdown(g.c.fd, SHUT_WR) == 0,
	    "end with the last bytes: the client sends 5 bytes and its FIN");
	run_until(never, NULL, 0.1);
	n = SSL_read(g.ts, got, sizeof(got));
	ok(n == (int)sizeof(want) && memcmp(got, want, sizeof(want)) == 0,
	    "end with the last bytes: one record holds the chunk and the "
	    "empty chunk (%d bytes)", n);
	ERR_clear_error();
	rig_close(&g);
}

/* ---- chunks by hand ---- */

/*
 * A length over RT_CHUNK_MAX is refused before anything is read into a
 * buffer: EPROTO from the TLS side, and not a byte of it reaches fd, nor
 * an EOF.
 */
static void
test_chunk_too_long(uint32_t len)
{
	static uint8_t buf[CHUNK_HDR + 64];
	char name[64];
	struct rig g;
	int rc;

	snprintf(name, sizeof(name), "chunk length %#x", (unsigned)len);
	if (!ok(rig_open(&g, 0, 0) == 0, "%s: sockets", name)) {
		rig_close(&g);
		return;
	}
	peer_init(&g.c, 101, 10, 102);
	g.c.tx_hold = 1;
	ok(rig_start_hand(&g) == 0 && tls_put(g.ts, buf,
	    chunk_frame(buf, len, 102, 0, 64)) == 0, "%s: sent, with 64 "
	    "bytes", name);
	rc = run_until(rig_done_fired, &g, 5);
	ok(rc && g.a.ndone == 1 &&
	    g.a.side == 1 && g.a.err == EPROTO, "%s: side %d, %s", name,
	    g.a.side, strerror(g.a.err));
	is_str(g.a.detail, "chunk longer than the maximum", "%s: detail",
	    name);
	run_until(never, NULL, 0.02);
	ok(g.c.rx_done == 0 && !g.c.rx_eof && g.a.down == 0,
	    "%s: nothing written to fd (%llu bytes, eof %d)", name,
	    (unsigned long long)g.c.rx_done, g.c.rx_eof);
	is_int(g.a.ndone, 1, "%s: done once", name);
	rig_close(&g);
}

/* The longest chunk, sent as one SSL_write (five records): it passes. */
static void
test_chunk_max(void)
{
	struct rig g;
	uint64_t n = 0;
	unsigned nchunks = 0;
	int rc;

	if (!ok(rig_open(&g, 0, 0) == 0, "longest chunk: sockets")) {
		rig_close(&g);
		return;
	}
	peer_init(&g.c, 103, 0, 104);
	ok(rig_start_hand(&g) == 0 &&
	    chunk_put(g.ts, 104, 0, CHUNK_MAX) == 0 &&
	    chunk_put(g.ts, 104, CHUNK_MAX, 1) == 0 && chunk_end(g.ts) == 0,
	    "longest chunk: %d bytes, one more, the end", CHUNK_MAX);
	ok(chunks_get_all(g.ts, 103, &n, &nchunks) == 0 && n == 0 &&
	    nchunks == 0, "longest chunk: the relay's empty chunk");
	rc = run_until(rig_hand_finished, &g, 5);
	ok(rc && g.c.rx_done == CHUNK_MAX + 1 && g.c.rx_bad == -1 &&
	    g.c.rx_eof && g.a.err == 0 && g.a.down == CHUNK_MAX + 1,
	    "longest chunk: through, clean (%llu; %d %s)",
	    (unsigned long long)g.c.rx_done, g.a.err, g.a.detail);
	rig_close(&g);
}

/*
 * Headers split across TLS records, the relay reading each part as it
 * comes: a data header split after byte split, its payload in two
 * records, then the empty chunk in two halves. Nothing passes before a
 * header is whole; the direction ends only with the empty chunk's last
 * byte.
 */
static void
test_chunk_split(int split)
{
	static uint8_t buf[CHUNK_HDR + 3000];
	char name[64];
	struct rig g;
	uint64_t n = 0;
	unsigned nchunks = 0;
	int rc;

	snprintf(name, sizeof(name), "header split %d + %d", split,
	    CHUNK_HDR - split);
	if (!ok(rig_open(&g, 0, 0) == 0, "%s: sockets", name)) {
		rig_close(&g);
		return;
	}
	peer_init(&g.c, 105, 10, 106);
	g.c.tx_hold = 1;
	chunk_frame(buf, 3000, 106, 0, 3000);
	ok(rig_start_hand(&g) == 0 && tls_put(g.ts, buf, split) == 0,
	    "%s: the first %d byte(s)", name, split);
	run_until(never, NULL, 0.03);
	ok(g.a.ndone == 0 && g.c.rx_done == 0, "%s: the relay waits", name);
	ok(tls_put(g.ts, buf + split, CHUNK_HDR - split) == 0,
	    "%s: the rest of the header", name);
	run_until(never, NULL, 0.03);
	ok(g.a.ndone == 0 && g.c.rx_done == 0, "%s: still nothing to pass "
	    "on", name);
	rx_target = 1000;
	rc = tls_put(g.ts, buf + CHUNK_HDR, 1000) == 0 &&
	    run_until(peer_has, &g.c, 5);
	ok(rc && g.c.rx_done == 1000,
	    "%s: the first 1000 bytes pass (%llu)", name,
	    (unsigned long long)g.c.rx_done);
	rx_target = 3000;
	rc = tls_put(g.ts, buf + CHUNK_HDR + 1000, 2000) == 0 &&
	    tls_put(g.ts, "\0\0", 2) == 0 && run_until(peer_has, &g.c, 5);
	ok(rc && g.c.rx_done == 3000 &&
	    g.c.rx_bad == -1, "%s: then the other 2000 (%llu)", name,
	    (unsigned long long)g.c.rx_done);
	run_until(never, NULL, 0.03);
	ok(g.a.ndone == 0 && !g.c.rx_eof && relay_tls_state(g.a.r) == 0,
	    "%s: half an empty chunk ends nothing", name);
	ok(tls_put(g.ts, "\0\0", 2) == 0 && run_until(peer_got_eof, &g.c, 5) &&
	    g.c.rx_eof && relay_tls_state(g.a.r) == RELAY_BA_SHUT,
	    "%s: its other half does", name);
	peer_resume(&g.c);
	ok(chunks_get_all(g.ts, 105, &n, &nchunks) == 0 && n == 10,
	    "%s: the client's 10 bytes came back framed", name);
	rc = run_until(rig_done_fired, &g, 5);
	ok(rc && g.a.err == 0 &&
	    g.a.up == 10 && g.a.down == 3000, "%s: done, clean, 10/3000 "
	    "(%d %s)", name, g.a.err, g.a.detail);
	rig_close(&g);
}

/*
 * A close_notify before the peer's empty chunk ends the flow as an
 * error (a tunnel cut mid-flow), wherever it falls: while idle, between
 * chunks, within a header or a payload, or after the relay's own end.
 * The client sees no EOF: its stream may be cut short. After the empty
 * chunk it belongs to whatever comes next: the flow ends clean.
 */
enum cn_at { CN_IDLE, CN_BETWEEN, CN_IN_HDR, CN_IN_CHUNK, CN_AFTER_UP,
	CN_AFTER_END };

static void
test_close_notify(enum cn_at at)
{
	static const char *names[] = { "idle", "between chunks",
	    "within a header", "within a chunk", "after the relay's end",
	    "after the empty chunk" };
	static uint8_t buf[CHUNK_HDR + 1000];
	char name[96];
	struct rig g;
	uint64_t n = 0;
	unsigned nchunks = 0;
	int rc = 0;

	snprintf(name, sizeof(name), "close_notify %s", names[at]);
	if (!ok(rig_open(&g, 0, 0) == 0, "%s: sockets", name)) {
		rig_close(&g);
		return;
	}
	peer_init(&g.c, 107, 100, 108);
	g.c.tx_hold = at != CN_AFTER_UP;
	rig_start_hand(&g);
	switch (at) {
	case CN_IDLE:
		break;
	case CN_BETWEEN:
		rc = chunk_put(g.ts, 108, 0, 500);
		break;
	case CN_IN_HDR:
		rc = chunk_put(g.ts, 108, 0, 500) |
		    tls_put(g.ts, "\0\0", 2);
		break;
	case CN_IN_CHUNK:
		rc = tls_put(g.ts, buf, chunk_frame(buf, 1000, 108, 0, 500));
		break;
	case CN_AFTER_UP:
		rc = chunks_get_all(g.ts, 107, &n, &nchunks);
		break;
	case CN_AFTER_END:
		rc = chunk_put(g.ts, 108, 0, 500) | chunk_end(g.ts);
		break;
	}
	run_until(never, NULL, 0.03);
	ok(rc == 0 && g.a.ndone == 0, "%s: the relay is up", name);
	if (at == CN_AFTER_UP)
		ok(n == 100 && relay_tls_state(g.a.r) == RELAY_AB_SHUT,
		    "%s: its end came (%llu bytes)", name,
		    (unsigned long long)n);
	ok(SSL_shutdown(g.ts) >= 0, "%s: sent", name);
	if (at == CN_AFTER_END) {
		ok(run_until(peer_got_eof, &g.c, 5) && g.c.rx_done == 500 &&
		    g.c.rx_eof, "%s: the client got 500 bytes, then EOF",
		    name);
		run_until(never, NULL, 0.03);
		ok(g.a.ndone == 0, "%s: the relay stays up", name);
		peer_resume(&g.c);
		ok(chunks_get_all(g.ts, 107, &n, &nchunks) == 0 && n == 100,
		    "%s: the client's 100 bytes, then the end", name);
		rc = run_until(rig_done_fired, &g, 5);
		ok(rc && g.a.err == 0 &&
		    g.a.state == BOTH_SHUT, "%s: done, clean (%d %s)", name,
		    g.a.err, g.a.detail);
		rig_close(&g);
		return;
	}
	rc = run_until(rig_done_fired, &g, 5);
	ok(rc && g.a.side == 1 &&
	    g.a.err == ECONNRESET, "%s: side %d, %s", name, g.a.side,
	    strerror(g.a.err));
	is_str(g.a.detail, "tunnel closed mid-flow", "%s: detail", name);
	run_until(never, NULL, 0.03);
	ok(!g.c.rx_eof && g.c.rx_done <= 500 && g.c.rx_bad == -1,
	    "%s: the client saw no EOF (%llu bytes)", name,
	    (unsigned long long)g.c.rx_done);
	is_int(g.a.ndone, 1, "%s: done once", name);
	rig_close(&g);
}

static void
test_chunks(void)
{
	enum cn_at at;
	int split;

	test_chunk_too_long(0x7fffffff);
	test_chunk_too_long(CHUNK_MAX + 1);
	test_chunk_too_long(0xffffffff);
	test_chunk_max();
	for (split = 1; split < CHUNK_HDR; split++)
		test_chunk_split(split);
	for (at = CN_IDLE; at <= CN_AFTER_END; at++)
		test_close_notify(at);
}

/* ---- datagrams ---- */

#define DGRAM_MAX	65531		/* RT_DGRAM_MAX: a chunk of CHUNK_MAX */
#define UDP_MAX		65507		/* the largest UDP payload over IPv4 */
#define DGRAM_BIG	70000		/* more than a chunk holds */
#define DRX_MAX		2048		/* sizes a test end records */

enum dkind { DK_UNIX, DK_UDP };

/*
 * The test's end of a datagram socket. Datagram k of a series with seed
 * s is bytes of stream dseed(s, k) from 0; what an end receives must be
 * the next of the series it expects (rx_seed), whole: one datagram each.
 */
struct dend {
	int		 fd;
	struct event	 ev;
	int		 started, paused;
	uint64_t	 rx_seed;
	unsigned	 nrx;
	unsigned	 bad;		/* 1 + the first wrong one; 0 */
	size_t		 len[DRX_MAX];	/* the sizes received */
	uint64_t	 bytes;
	unsigned	 tx_blocked;	/* sends that found fd full */
};

static uint64_t
dseed(uint64_t seed, unsigned k)
{
	return mix64(seed) + k;
}

static void
dend_read(evutil_socket_t fd, short what, void *arg)
{
	struct dend *e = arg;
	ssize_t n;

	while (!e->paused) {
		/* MSG_TRUNC: a datagram cut short would show its real size. */
		if ((n = recv(e->fd, iobuf, IOBUF, MSG_TRUNC)) == -1)
			return;
		if (e->bad == 0 && (n > IOBUF || stream_check(iobuf,
		    dseed(e->rx_seed, e->nrx), 0, n) != -1))
			e->bad = e->nrx + 1;
		if (e->nrx < DRX_MAX)
			e->len[e->nrx] = n;
		e->nrx++;
		e->bytes += n;
	}
}

static void
dend_start(struct dend *e)
{
	if (e->fd == -1)
		return;
	event_assign(&e->ev, base, e->fd, EV_READ | EV_PERSIST, dend_read, e);
	e->started = 1;
	if (!e->paused)
		event_add(&e->ev, NULL);
}

static void
dend_stop(struct dend *e)
{
	if (e->started)
		event_del(&e->ev);
	e->started = 0;
}

static void
dend_resume(struct dend *e)
{
	e->paused = 0;
	event_add(&e->ev, NULL);
	dend_read(e->fd, EV_READ, e);
}

/* Datagram k of series seed, len bytes; waits while fd is full (5 s). */
static int
dsend(struct dend *e, uint64_t seed, unsigned k, size_t len)
{
	static uint8_t buf[DGRAM_BIG];
	double end = now() + 5;
	ssize_t n;

	stream_fill(buf, dseed(seed, k), 0, len);
	while ((n = send(e->fd, buf, len, 0)) == -1 && errno == EAGAIN &&
	    now() < end) {
		e->tx_blocked++;
		run_until(never, NULL, 0.002);
	}
	return n == (ssize_t)len ? 0 : -1;
}

/* The sizes e received are want[0..n) and no more; "" or what differs. */
static const char *
dend_sizes(const struct dend *e, const size_t *want, unsigned n)
{
	static char why[128];
	unsigned k;

	if (e->nrx != n) {
		snprintf(why, sizeof(why), "%u datagrams, not %u", e->nrx, n);
		return why;
	}
	for (k = 0; k < n && k < DRX_MAX; k++)
		if (e->len[k] != want[k]) {
			snprintf(why, sizeof(why), "datagram %u: %zu bytes, "
			    "not %zu", k, e->len[k], want[k]);
			return why;
		}
	return "";
}

static unsigned drx_target;

static int
dend_has(void *arg)
{
	struct dend *e = arg;

	return e->nrx >= drx_target;
}

/* A UDP socket on 127.0.0.1, an ephemeral port (*sin), 1 MiB to read. */
static int
udp_bound(struct sockaddr_in *sin)
{
	socklen_t len = sizeof(*sin);
	int fd, size = 1 << 20;

	memset(sin, 0, sizeof(*sin));
	sin->sin_family = AF_INET;
	sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
	if (bind(fd, (struct sockaddr *)sin, sizeof(*sin)) == -1 ||
	    getsockname(fd, (struct sockaddr *)sin, &len) == -1) {
		close(fd);
		return -1;
	}
	return fd;
}

/*
 * A datagram pair, nonblocking: *x the test's end, *y the relay's. UDP:
 * two sockets connected to each other, as the host's is to its server.
 */
static int
dgram_pair(enum dkind kind, int *x, int *y)
{
	struct sockaddr_in sx, sy;
	int sv[2];

	if (kind == DK_UNIX) {
		if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK |
		    SOCK_CLOEXEC, 0, sv) == -1)
			return -1;
		*x = sv[0];
		*y = sv[1];
		return 0;
	}
	*x = udp_bound(&sx);
	*y = udp_bound(&sy);
	if (*x == -1 || *y == -1 ||
	    connect(*x, (struct sockaddr *)&sy, sizeof(sy)) == -1 ||
	    connect(*y, (struct sockaddr *)&sx, sizeof(sx)) == -1)
		return -1;
	return 0;
}

/*
 * A chain:   c ~ ra | relay a on tc | ~TLS~ ts | relay b | rb ~ s.
 * By hand:   c ~ ra | relay a on tc | ~TLS~ ts (the chunk helpers).
 */
struct drig {
	int		 chain;
	int		 ra, rb;	/* the relays' ends */
	SSL		*tc, *ts;
	struct dend	 c, s;		/* the test's ends */
	struct slot	 a, b;
};

static int
drig_plug(struct drig *g, enum dkind ka, enum dkind kb)
{
	if (dgram_pair(ka, &g->c.fd, &g->ra) == -1)
		return -1;
	return g->chain ? dgram_pair(kb, &g->s.fd, &g->rb) : 0;
}

static int
drig_open(struct drig *g, int chain, enum dkind ka, enum dkind kb)
{
	memset(g, 0, sizeof(*g));
	g->chain = chain;
	g->ra = g->rb = g->c.fd = g->s.fd = -1;
	if (tls_pair(&g->tc, &g->ts) == -1)
		return -1;
	return drig_plug(g, ka, kb);
}

static int
drig_start(struct drig *g)
{
	dend_start(&g->c);
	dend_start(&g->s);
	if (slot_new_dgram(&g->a, g->ra, g->tc, 0) == -1)
		return -1;
	if (g->chain && slot_new_dgram(&g->b, g->rb, g->ts, 0) == -1)
		return -1;
	return 0;
}

/* The relays freed and the plain sockets closed; TLS stays as it is. */
static void
drig_unplug(struct drig *g)
{
	relay_tls_free(g->a.r);
	relay_tls_free(g->b.r);
	dend_stop(&g->c);
	dend_stop(&g->s);
	if (g->c.fd != -1)
		close(g->c.fd);
	if (g->s.fd != -1)
		close(g->s.fd);
	if (g->ra != -1)
		close(g->ra);
	if (g->rb != -1)
		close(g->rb);
	memset(&g->a, 0, sizeof(g->a));
	memset(&g->b, 0, sizeof(g->b));
	memset(&g->c, 0, sizeof(g->c));
	memset(&g->s, 0, sizeof(g->s));
	g->ra = g->rb = g->c.fd = g->s.fd = -1;
}

static void
drig_close(struct drig *g)
{
	drig_unplug(g);
	tls_free(&g->tc, 1);
	tls_free(&g->ts, 1);
}

static int
drig_done(void *arg)
{
	struct drig *g = arg;

	return g->a.ndone && (!g->chain || g->b.ndone);
}

static int
drig_a_dropped(void *arg)
{
	struct drig *g = arg;
	uint64_t dropped = 0;

	if (g->a.r != NULL && g->a.ndone == 0)
		relay_tls_dgrams(g->a.r, NULL, NULL, &dropped);
	return dropped > 0 || g->a.ndone;
}

/* By hand: datagram k of series seed as a chunk (length n + 1). */
static int
dchunk_put(SSL *ssl, uint64_t seed, unsigned k, size_t n)
{
	static uint8_t buf[CHUNK_HDR + DGRAM_MAX];

	put_be32(buf, n + 1);
	stream_fill(buf + CHUNK_HDR, dseed(seed, k), 0, n);
	return tls_put(ssl, buf, CHUNK_HDR + n);
}

/*
 * By hand, the next chunk read exactly: 1 and its datagram (*n bytes in
 * buf), 0 for the end, -1 (a TLS error, a length over CHUNK_MAX). *raw:
 * its length field.
 */
static int
dchunk_get(SSL *ssl, uint8_t *buf, size_t *n, uint32_t *raw)
{
	uint8_t hdr[CHUNK_HDR];

	*n = 0;
	if (tls_io(ssl, 0, hdr, sizeof(hdr)) == -1)
		return -1;
	if ((*raw = be32(hdr)) == 0)
		return 0;
	if (*raw > CHUNK_MAX)
		return -1;
	*n = *raw - 1;
	return *n == 0 || tls_io(ssl, 0, buf, *n) == 0 ? 1 : -1;
}

/* By hand: the next chunk is datagram k of seed, n bytes, length n + 1. */
static int
dchunk_is(SSL *ssl, uint64_t seed, unsigned k, size_t n)
{
	static uint8_t buf[CHUNK_MAX];
	uint32_t raw;
	size_t got;

	return dchunk_get(ssl, buf, &got, &raw) == 1 && got == n &&
	    raw == n + 1 && stream_check(buf, dseed(seed, k), 0, n) == -1;
}

static const size_t dgram_sizes[] = { 0, 1, 1400, 61440, UDP_MAX };
#define NSIZES	(sizeof(dgram_sizes) / sizeof(dgram_sizes[0]))

/*
 * Each size both ways at once through a chain: whole, in order, one
 * datagram each. Then relay_tls_end() on one relay ends both, clean.
 */
static void
test_dgram_sizes(const char *name, enum dkind ka, enum dkind kb, int end_b)
{
	struct drig g;
	uint64_t sum = 0;
	unsigned k;
	int rc = 0;

	if (!ok(drig_open(&g, 1, ka, kb) == 0, "%s: sockets", name)) {
		drig_close(&g);
		return;
	}
	g.c.rx_seed = 202;
	g.s.rx_seed = 201;
	ok(drig_start(&g) == 0, "%s: relay_tls_new_dgram twice", name);
	for (k = 0; k < NSIZES; k++) {
		rc |= dsend(&g.c, 201, k, dgram_sizes[k]);
		rc |= dsend(&g.s, 202, k, dgram_sizes[k]);
		sum += dgram_sizes[k];
	}
	ok(rc == 0, "%s: sizes 0, 1, 1400, 61440, %d sent both ways", name,
	    UDP_MAX);
	drx_target = NSIZES;
	rc = run_until(dend_has, &g.s, 5) && run_until(dend_has, &g.c, 5);
	ok(rc, "%s: arrived (%u up, %u down)", name, g.s.nrx, g.c.nrx);
	run_until(never, NULL, 0.05);
	is_str(dend_sizes(&g.s, dgram_sizes, NSIZES), "",
	    "%s: up: one datagram each, whole, in order", name);
	is_str(dend_sizes(&g.c, dgram_sizes, NSIZES), "",
	    "%s: down: one datagram each, whole, in order", name);
	ok(g.s.bad == 0 && g.c.bad == 0, "%s: their bytes intact (first bad "
	    "%u, %u)", name, g.s.bad, g.c.bad);
	ok(g.a.ndone == 0 && g.b.ndone == 0, "%s: the relays stay up", name);
	relay_tls_end(end_b ? g.b.r : g.a.r);
	ok(g.a.ndone == 0 && g.b.ndone == 0, "%s: relay_tls_end returns "
	    "before done", name);
	ok(run_until(drig_done, &g, 5), "%s: relay_tls_end on relay %s ends "
	    "both", name, end_b ? "b" : "a");
	ok(g.a.err == 0 && g.b.err == 0 && g.a.state == BOTH_SHUT &&
	    g.b.state == BOTH_SHUT, "%s: both clean (%d %s; %d %s)", name,
	    g.a.err, g.a.detail, g.b.err, g.b.detail);
	ok(g.a.dup == NSIZES && g.a.ddown == NSIZES && g.a.dropped == 0 &&
	    g.b.dup == NSIZES && g.b.ddown == NSIZES && g.b.dropped == 0,
	    "%s: datagrams a %llu/%llu/%llu, b %llu/%llu/%llu", name,
	    (unsigned long long)g.a.dup, (unsigned long long)g.a.ddown,
	    (unsigned long long)g.a.dropped, (unsigned long long)g.b.dup,
	    (unsigned long long)g.b.ddown, (unsigned long long)g.b.dropped);
	ok(g.a.up == sum && g.a.down == sum && g.b.up == sum &&
	    g.b.down == sum, "%s: payload bytes %llu each way", name,
	    (unsigned long long)sum);
	relay_tls_end(g.a.r);
	relay_tls_end(g.b.r);
	run_until(never, NULL, 0.02);
	ok(g.a.ndone == 1 && g.b.ndone == 1 && g.a.in_new == 0 &&
	    g.b.in_new == 0, "%s: done once each, never within new; "
	    "relay_tls_end after done does nothing", name);
	ok(tls_quiet(g.tc) && tls_quiet(g.ts), "%s: the TLS connection is "
	    "left in step", name);
	drig_close(&g);
}

static size_t
dburst_size(unsigned k)
{
	return mix64(k) % 301;
}

/*
 * 1000 small datagrams each way in a burst, over socketpairs: while the
 * client does not read, relay a holds back what it cannot send, and none
 * is lost; all arrive once it reads.
 */
static void
test_dgram_burst(void)
{
	const char *name = "burst of 1000";
	static size_t want[1000];
	uint64_t down = 0, dropped = 0;
	struct drig g;
	unsigned k;
	int rc = 0, size = 16 * 1024;

	if (!ok(drig_open(&g, 1, DK_UNIX, DK_UNIX) == 0, "%s: sockets",
	    name)) {
		drig_close(&g);
		return;
	}
	setsockopt(g.ra, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
	g.c.rx_seed = 302;
	g.s.rx_seed = 301;
	g.c.paused = 1;
	drig_start(&g);
	for (k = 0; k < 1000; k++) {
		want[k] = dburst_size(k);
		rc |= dsend(&g.c, 301, k, want[k]);
		rc |= dsend(&g.s, 302, k, want[k]);
	}
	ok(rc == 0, "%s: sent each way, the client not reading (the senders "
	    "waited %u, %u times)", name, g.c.tx_blocked, g.s.tx_blocked);
	drx_target = 1000;
	rc = run_until(dend_has, &g.s, 10);
	ok(rc, "%s: up: %u arrived", name, g.s.nrx);
	run_until(never, NULL, 0.1);
	if (g.a.r != NULL)
		relay_tls_dgrams(g.a.r, NULL, &down, &dropped);
	ok(g.a.ndone == 0 && g.c.nrx == 0 && down < 1000 && dropped == 0,
	    "%s: down: relay a holds back (%llu sent, %llu dropped)", name,
	    (unsigned long long)down, (unsigned long long)dropped);
	dend_resume(&g.c);
	rc = run_until(dend_has, &g.c, 10);
	ok(rc, "%s: down: then %u arrived", name, g.c.nrx);
	run_until(never, NULL, 0.05);
	is_str(dend_sizes(&g.s, want, 1000), "", "%s: up: whole, in order",
	    name);
	is_str(dend_sizes(&g.c, want, 1000), "", "%s: down: whole, in order",
	    name);
	ok(g.s.bad == 0 && g.c.bad == 0, "%s: bytes intact (first bad %u, "
	    "%u)", name, g.s.bad, g.c.bad);
	relay_tls_end(g.b.r);
	rc = run_until(drig_done, &g, 5);
	ok(rc && g.a.err == 0 && g.b.err == 0, "%s: ended clean (%d %s; %d "
	    "%s)", name, g.a.err, g.a.detail, g.b.err, g.b.detail);
	ok(g.a.dup == 1000 && g.a.ddown == 1000 && g.b.dup == 1000 &&
	    g.b.ddown == 1000 && g.a.dropped == 0 && g.b.dropped == 0,
	    "%s: counted 1000 each way, none dropped (%llu %llu %llu %llu "
	    "%llu %llu)", name, (unsigned long long)g.a.dup,
	    (unsigned long long)g.a.ddown, (unsigned long long)g.b.dup,
	    (unsigned long long)g.b.ddown, (unsigned long long)g.a.dropped,
	    (unsigned long long)g.b.dropped);
	drig_close(&g);
}

/*
 * The relay's chunks read raw: length = size + 1. relay_tls_end() sends
 * what fd holds first, then the end; what comes down still goes to fd.
 */
static void
test_dgram_wire(void)
{
	const char *name = "datagram chunks";
	static const size_t sent[] = { 0, 1, 5, 7, 0 };
	struct drig g;
	unsigned k;
	int rc = 1;

	if (!ok(drig_open(&g, 0, DK_UNIX, 0) == 0, "%s: sockets", name)) {
		drig_close(&g);
		return;
	}
	g.c.rx_seed = 602;
	ok(drig_start(&g) == 0, "%s: relay_tls_new_dgram", name);
	for (k = 0; k < 3; k++)
		rc &= dsend(&g.c, 601, k, sent[k]) == 0;
	for (k = 0; k < 3; k++)
		rc &= dchunk_is(g.ts, 601, k, sent[k]);
	ok(rc, "%s: datagrams of 0, 1, 5 bytes are chunks of length 1, 2, "
	    "6", name);
	rc = dsend(&g.c, 601, 3, sent[3]) == 0 &&
	    dsend(&g.c, 601, 4, sent[4]) == 0;
	relay_tls_end(g.a.r);
	ok(rc && dchunk_is(g.ts, 601, 3, sent[3]) &&
	    dchunk_is(g.ts, 601, 4, sent[4]), "%s: relay_tls_end: the "
	    "datagrams fd held still go", name);
	ok(chunk_get(g.ts, iobuf, CHUNK_MAX) == 0, "%s: then the end chunk",
	    name);
	rc = dsend(&g.c, 601, 5, 10);
	run_until(never, NULL, 0.03);
	ok(rc == 0 && g.a.ndone == 0 &&
	    relay_tls_state(g.a.r) == RELAY_AB_SHUT, "%s: the relay waits "
	    "for the peer's end", name);
	ok(dchunk_put(g.ts, 602, 0, 10) == 0 && dchunk_put(g.ts, 602, 1, 0) ==
	    0, "%s: two datagrams down after it", name);
	drx_target = 2;
	rc = run_until(dend_has, &g.c, 5);
	run_until(never, NULL, 0.02);
	ok(rc && g.c.nrx == 2 && g.c.bad == 0 && g.c.len[0] == 10 &&
	    g.c.len[1] == 0, "%s: they arrive (%u)", name, g.c.nrx);
	rc = chunk_end(g.ts) == 0 && run_until(drig_done, &g, 5);
	ok(rc && g.a.err == 0 && g.a.state == BOTH_SHUT, "%s: the peer's "
	    "end: done, clean (%d %s)", name, g.a.err, g.a.detail);
	ok(g.a.dup == 5 && g.a.ddown == 2 && g.a.up == 13 && g.a.down == 10,
	    "%s: counted %llu/%llu datagrams, %llu/%llu bytes", name,
	    (unsigned long long)g.a.dup, (unsigned long long)g.a.ddown,
	    (unsigned long long)g.a.up, (unsigned long long)g.a.down);
	ok(tls_quiet(g.ts), "%s: the datagram after the end never went", name);
	drig_close(&g);
}

/*
 * By hand, the peer ends first: its datagrams, then its end chunk. The
 * relay passes them on, sends its own end and is done, clean; a datagram
 * socket is not shut down.
 */
static void
test_dgram_peer_end(void)
{
	const char *name = "the peer ends first";
	struct drig g;
	int rc;

	if (!ok(drig_open(&g, 0, DK_UNIX, 0) == 0, "%s: sockets", name)) {
		drig_close(&g);
		return;
	}
	g.c.rx_seed = 702;
	drig_start(&g);
	ok(dchunk_put(g.ts, 702, 0, 300) == 0 && chunk_end(g.ts) == 0,
	    "%s: a datagram and the end", name);
	rc = dchunk_get(g.ts, iobuf, &(size_t){ 0 }, &(uint32_t){ 0 });
	ok(rc == 0, "%s: the relay's end chunk comes back", name);
	rc = run_until(drig_done, &g, 5);
	ok(rc && g.a.err == 0 && g.a.state == BOTH_SHUT && g.c.nrx == 1 &&
	    g.c.len[0] == 300 && g.c.bad == 0, "%s: done, clean, the "
	    "datagram passed on (%d %s)", name, g.a.err, g.a.detail);
	ok(dsend(&g.c, 701, 0, 20) == 0 && send(g.ra, "x", 1, 0) == 1,
	    "%s: fd is not shut down either way", name);
	ok(tls_quiet(g.ts), "%s: in step", name);
	drig_close(&g);
}

/*
 * After relay_tls_end() the tunneller may read its socketpair end no
 * more: the relay holds a datagram it cannot send, until that end is
 * closed; then what still comes down is dropped and the flow ends clean
 * with the peer's end.
 */
static void
test_dgram_gone(void)
{
	const char *name = "fd's peer gone";
	uint64_t down = 0, dropped = 0;
	struct drig g;
	int k, rc = 0, size = 16 * 1024;

	if (!ok(drig_open(&g, 0, DK_UNIX, 0) == 0, "%s: sockets", name)) {
		drig_close(&g);
		return;
	}
	setsockopt(g.ra, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
	g.c.paused = 1;
	drig_start(&g);
	relay_tls_end(g.a.r);
	ok(chunk_get(g.ts, iobuf, CHUNK_MAX) == 0, "%s: relay_tls_end: the "
	    "end chunk", name);
	for (k = 0; k < 200; k++)
		rc |= dchunk_put(g.ts, 851, k, 1000);
	run_until(never, NULL, 0.05);
	relay_tls_dgrams(g.a.r, NULL, &down, &dropped);
	ok(rc == 0 && g.a.ndone == 0 && down < 200 && dropped == 0,
	    "%s: 200 datagrams down, the reader gone quiet: held (%llu sent)",
	    name, (unsigned long long)down);
	dend_stop(&g.c);
	close(g.c.fd);
	g.c.fd = -1;
	rc = chunk_end(g.ts) == 0 && run_until(drig_done, &g, 5);
	ok(rc && g.a.err == 0 && g.a.state == BOTH_SHUT, "%s: closed: the "
	    "relay drains to the peer's end, clean (%d %s)", name, g.a.err,
	    g.a.detail);
	ok(g.a.ddown + g.a.dropped == 200 && g.a.dropped > 0, "%s: %llu "
	    "sent, %llu dropped", name, (unsigned long long)g.a.ddown,
	    (unsigned long long)g.a.dropped);
	ok(tls_quiet(g.ts), "%s: in step", name);
	drig_close(&g);
}

/* A length over CHUNK_MAX: EPROTO, before anything reaches fd. */
static void
test_dgram_too_long(uint32_t len)
{
	static uint8_t buf[CHUNK_HDR + 64];
	char name[64];
	struct drig g;

	int rc;

	snprintf(name, sizeof(name), "datagram chunk length %#x",
	    (unsigned)len);
	if (!ok(drig_open(&g, 0, DK_UNIX, 0) == 0, "%s: sockets", name)) {
		drig_close(&g);
		return;
	}
	drig_start(&g);
	ok(tls_put(g.ts, buf, chunk_frame(buf, len, 801, 0, 64)) == 0,
	    "%s: sent, with 64 bytes", name);
	rc = run_until(drig_done, &g, 5);
	ok(rc && g.a.side == 1 && g.a.err == EPROTO, "%s: side %d, %s", name,
	    g.a.side, strerror(g.a.err));
	is_str(g.a.detail, "chunk longer than the maximum", "%s: detail",
	    name);
	run_until(never, NULL, 0.02);
	ok(g.c.nrx == 0 && g.a.ddown == 0 && g.a.ndone == 1, "%s: nothing "
	    "reached fd, done once", name);
	drig_close(&g);
}

/*
 * The longest datagram, then an empty one and a plain one. Over AF_UNIX
 * all three pass; UDP cannot carry the first (EMSGSIZE): it is dropped
 * and the flow goes on.
 */
static void
test_dgram_max(const char *name, enum dkind kind)
{
	size_t unix_want[] = { DGRAM_MAX, 0, 1400 }, udp_want[] = { 0, 1400 };
	struct drig g;
	int udp = kind == DK_UDP, rc;

	if (!ok(drig_open(&g, 0, kind, 0) == 0, "%s: sockets", name)) {
		drig_close(&g);
		return;
	}
	g.c.rx_seed = 811;
	drig_start(&g);
	rc = dchunk_put(g.ts, udp ? 999 : 811, 0, DGRAM_MAX) |
	    dchunk_put(g.ts, 811, !udp, 0) | dchunk_put(g.ts, 811, 1 + !udp,
	    1400);
	drx_target = udp ? 2 : 3;
	ok(rc == 0 && run_until(dend_has, &g.c, 5), "%s: %d bytes, 0, 1400 "
	    "down", name, DGRAM_MAX);
	run_until(never, NULL, 0.03);
	is_str(dend_sizes(&g.c, udp ? udp_want : unix_want, drx_target), "",
	    "%s: %s", name, udp ? "the first dropped, the others whole" :
	    "each whole");
	ok(g.c.bad == 0 && g.a.ndone == 0, "%s: intact, the relay up", name);
	rc = chunk_end(g.ts) == 0 && chunk_get(g.ts, iobuf, CHUNK_MAX) == 0 &&
	    run_until(drig_done, &g, 5);
	ok(rc && g.a.err == 0, "%s: the end both ways, clean (%d %s)", name,
	    g.a.err, g.a.detail);
	ok(g.a.ddown == drx_target && g.a.dropped == (uint64_t)udp,
	    "%s: %llu passed on, %llu dropped", name,
	    (unsigned long long)g.a.ddown, (unsigned long long)g.a.dropped);
	drig_close(&g);
}

/*
 * Chunk headers split across records, then a payload in two: nothing
 * reaches fd before the datagram is whole, and it leaves as one. Half an
 * end chunk ends nothing.
 */
static void
test_dgram_split(int split)
{
	static uint8_t buf[CHUNK_HDR + 3000];
	char name[64];
	struct drig g;
	int rc;

	snprintf(name, sizeof(name), "datagram header split %d + %d", split,
	    CHUNK_HDR - split);
	if (!ok(drig_open(&g, 0, DK_UNIX, 0) == 0, "%s: sockets", name)) {
		drig_close(&g);
		return;
	}
	g.c.rx_seed = 821;
	drig_start(&g);
	put_be32(buf, 3001);
	stream_fill(buf + CHUNK_HDR, dseed(821, 0), 0, 3000);
	rc = tls_put(g.ts, buf, split);
	run_until(never, NULL, 0.02);
	rc |= tls_put(g.ts, buf + split, CHUNK_HDR - split + 1000);
	run_until(never, NULL, 0.03);
	ok(rc == 0 && g.c.nrx == 0 && g.a.ndone == 0, "%s: the header and "
	    "1000 of 3000 bytes: nothing yet", name);
	drx_target = 1;
	rc = tls_put(g.ts, buf + CHUNK_HDR + 1000, 2000) == 0 &&
	    run_until(dend_has, &g.c, 5);
	run_until(never, NULL, 0.02);
	ok(rc && g.c.nrx == 1 && g.c.len[0] == 3000 && g.c.bad == 0,
	    "%s: the rest: one datagram of 3000 bytes (%u: %zu)", name,
	    g.c.nrx, g.c.len[0]);
	ok(tls_put(g.ts, "\0\0", 2) == 0, "%s: half the end", name);
	run_until(never, NULL, 0.03);
	ok(g.a.ndone == 0 && relay_tls_state(g.a.r) == 0, "%s: ends nothing",
	    name);
	rc = tls_put(g.ts, "\0\0", 2) == 0 &&
	    chunk_get(g.ts, iobuf, CHUNK_MAX) == 0 &&
	    run_until(drig_done, &g, 5);
	ok(rc && g.a.err == 0 && g.a.state == BOTH_SHUT && g.c.nrx == 1,
	    "%s: its other half does, clean (%d %s)", name, g.a.err,
	    g.a.detail);
	drig_close(&g);
}

/* An AF_UNIX datagram longer than a chunk holds is dropped, not cut. */
static void
test_dgram_truncated(void)
{
	const char *name = "datagram over the maximum";
	struct drig g;
	int rc = 0;

	if (!ok(drig_open(&g, 0, DK_UNIX, 0) == 0, "%s: sockets", name)) {
		drig_close(&g);
		return;
	}
	drig_start(&g);
	rc |= dsend(&g.c, 831, 0, DGRAM_BIG);
	rc |= dsend(&g.c, 831, 1, 10);
	rc |= dsend(&g.c, 831, 2, DGRAM_MAX + 1);
	rc |= dsend(&g.c, 831, 3, DGRAM_MAX);
	ok(rc == 0, "%s: %d, 10, %d, %d bytes sent", name, DGRAM_BIG,
	    DGRAM_MAX + 1, DGRAM_MAX);
	ok(dchunk_is(g.ts, 831, 1, 10), "%s: the first chunk is the 10 bytes",
	    name);
	ok(dchunk_is(g.ts, 831, 3, DGRAM_MAX), "%s: the next the %d", name,
	    DGRAM_MAX);
	rc = chunk_end(g.ts) == 0 && chunk_get(g.ts, iobuf, CHUNK_MAX) == 0 &&
	    run_until(drig_done, &g, 5);
	ok(rc && g.a.err == 0, "%s: ends clean (%d %s)", name, g.a.err,
	    g.a.detail);
	ok(g.a.dup == 2 && g.a.dropped == 2 && g.a.up == 10 + DGRAM_MAX,
	    "%s: 2 passed, 2 dropped (%llu, %llu)", name,
	    (unsigned long long)g.a.dup, (unsigned long long)g.a.dropped);
	drig_close(&g);
}

/*
 * The host's UDP socket, connected to a port nobody listens on: ICMP
 * port unreachable comes back as ECONNREFUSED, to recv(2) while the relay
 * reads, to the next send(2) once it has ended its way. Neither ends the
 * flow: a server that comes to that port later gets the next datagram.
 */
static void
test_dgram_refused(void)
{
	const char *name = "ECONNREFUSED";
	struct sockaddr_in srv, mine;
	uint64_t down = 0, dropped = 0, down0, dropped0;
	struct drig g;
	int fd, one = 1, k;

	if (!ok(drig_open(&g, 0, DK_UNIX, 0) == 0, "%s: sockets", name)) {
		drig_close(&g);
		return;
	}
	/* Not the pair: relay a's socket goes to a closed port. */
	close(g.c.fd);
	close(g.ra);
	g.c.fd = -1;
	fd = udp_bound(&srv);
	close(fd);
	g.ra = udp_bound(&mine);
	ok(g.ra != -1 && connect(g.ra, (struct sockaddr *)&srv,
	    sizeof(srv)) == 0, "%s: a UDP socket to a closed port", name);
	drig_start(&g);
	k = dchunk_put(g.ts, 841, 0, 100) == 0 &&
	    run_until(drig_a_dropped, &g, 3);
	relay_tls_dgrams(g.a.r, NULL, &down, &dropped);
	ok(k && g.a.ndone == 0 && down == 1 && dropped == 1, "%s: recv(2): "
	    "counted, the flow goes on (%llu sent, %llu dropped)", name,
	    (unsigned long long)down, (unsigned long long)dropped);
	/* A server there now: the flow still works both ways. */
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&srv, sizeof(srv)) == -1 ||
	    connect(fd, (struct sockaddr *)&mine, sizeof(mine)) == -1) {
		close(fd);
		fd = -1;
	}
	g.c.fd = fd;
	g.c.rx_seed = 841;
	dend_start(&g.c);
	drx_target = 1;
	k = fd != -1 && dchunk_put(g.ts, 841, 0, 200) == 0 &&
	    run_until(dend_has, &g.c, 5);
	ok(k && g.c.len[0] == 200 && g.c.bad == 0, "%s: a server on the port "
	    "then gets the next one", name);
	ok(dsend(&g.c, 842, 0, 300) == 0 && dchunk_is(g.ts, 842, 0, 300),
	    "%s: and its answer goes up", name);
	/* Gone again, and our way ended: the sends hear of it now. */
	dend_stop(&g.c);
	close(g.c.fd);
	g.c.fd = -1;
	relay_tls_end(g.a.r);
	ok(chunk_get(g.ts, iobuf, CHUNK_MAX) == 0, "%s: relay_tls_end: the "
	    "end chunk", name);
	relay_tls_dgrams(g.a.r, NULL, &down0, &dropped0);
	for (k = 0; k < 3; k++) {
		dchunk_put(g.ts, 843, k, 50);
		run_until(never, NULL, 0.03);
	}
	relay_tls_dgrams(g.a.r, NULL, &down, &dropped);
	ok(g.a.ndone == 0 && dropped - dropped0 == 1 &&
	    down - down0 == 2, "%s: send(2): one of three dropped, the flow "
	    "goes on (%llu sent, %llu dropped)", name,
	    (unsigned long long)(down - down0),
	    (unsigned long long)(dropped - dropped0));
	k = chunk_end(g.ts) == 0 && run_until(drig_done, &g, 5);
	ok(k && g.a.err == 0 && g.a.state == BOTH_SHUT, "%s: ends clean (%d "
	    "%s)", name, g.a.err, g.a.detail);
	ok(tls_quiet(g.ts), "%s: in step", name);
	drig_close(&g);
}

/*
 * One TLS connection: datagram flows ended by relay a, by relay b, by
 * both at once, then a stream flow, each on new plain sockets.
 */
static void
test_dgram_reuse(void)
{
	static const size_t sizes[] = { 100, 0, 2000 };
	struct drig g;
	struct rig sg;
	char name[64];
	unsigned k;
	int flow, rc;

	if (!ok(drig_open(&g, 1, DK_UNIX, DK_UDP) == 0, "reuse: sockets")) {
		drig_close(&g);
		return;
	}
	for (flow = 0; flow < 3; flow++) {
		snprintf(name, sizeof(name), "reuse, datagram flow %d",
		    flow + 1);
		if (flow > 0 && !ok(drig_plug(&g, DK_UNIX, DK_UDP) == 0,
		    "%s: new plain sockets", name))
			break;
		g.c.rx_seed = 902 + 10 * flow;
		g.s.rx_seed = 901 + 10 * flow;
		rc = drig_start(&g) == 0;
		for (k = 0; k < 3; k++)
			rc &= dsend(&g.c, 901 + 10 * flow, k, sizes[k]) == 0 &&
			    dsend(&g.s, 902 + 10 * flow, k, sizes[k]) == 0;
		drx_target = 3;
		ok(rc && run_until(dend_has, &g.c, 5) &&
		    run_until(dend_has, &g.s, 5), "%s: 3 datagrams each way",
		    name);
		if (flow != 1)
			relay_tls_end(g.a.r);
		if (flow != 0)
			relay_tls_end(g.b.r);
		rc = run_until(drig_done, &g, 5);
		ok(rc && g.a.err == 0 && g.b.err == 0 &&
		    g.a.state == BOTH_SHUT && g.b.state == BOTH_SHUT,
		    "%s: ended by %s: both clean (%d %s; %d %s)",
		    name, flow == 0 ? "a" : flow == 1 ? "b" : "both", g.a.err,
		    g.a.detail, g.b.err, g.b.detail);
		ok(!strcmp(dend_sizes(&g.c, sizes, 3), "") &&
		    !strcmp(dend_sizes(&g.s, sizes, 3), "") && g.c.bad == 0 &&
		    g.s.bad == 0 && g.a.dup == 3 && g.b.dup == 3,
		    "%s: whole and in order, nothing from the flow before",
		    name);
		drig_unplug(&g);
	}
	/* A stream after them: the rig's chain on the same SSL objects. */
	memset(&sg, 0, sizeof(sg));
	sg.chain = 1;
	sg.tc = g.tc;
	sg.ts = g.ts;
	sg.t.fd = -1;
	rc = tcp_pair(&sg.c.fd, &sg.ra) == 0 && tcp_pair(&sg.rb, &sg.s.fd) == 0;
	peer_init(&sg.c, 931, 300000, 932);
	peer_init(&sg.s, 932, 200000, 931);
	ok(rc && rig_start(&sg) == 0 && run_until(rig_finished, &sg, 10) &&
	    sg.s.rx_done == 300000 && sg.c.rx_done == 200000 &&
	    sg.s.rx_bad == -1 && sg.c.rx_bad == -1 && sg.a.err == 0 &&
	    sg.b.err == 0, "reuse: then a stream flow, intact, clean");
	sg.tc = sg.ts = NULL;
	rig_close(&sg);
	run_until(never, NULL, 0.01);
	ok(tls_quiet(g.tc) && tls_quiet(g.ts), "reuse: the connection ends "
	    "in step");
	drig_close(&g);
}

/*
 * relay_tls_end() on a stream: what fd holds goes first, then the empty
 * chunk, and nothing written to fd after it; the other way runs on.
 */
static void
test_end_stream(void)
{
	const char *name = "relay_tls_end on a stream";
	uint64_t n = 0;
	unsigned nchunks = 0;
	struct rig g;
	int rc;

	if (!ok(rig_open(&g, 0, 0) == 0, "%s: sockets", name)) {
		rig_close(&g);
		return;
	}
	peer_init(&g.c, 0, 0, 942);
	g.c.tx_hold = 1;	/* no shutdown(2): the end is ours */
	rig_start_hand(&g);
	stream_fill(iobuf, 941, 0, 1000);
	rc = write(g.c.fd, iobuf, 1000) == 1000;
	run_until(never, NULL, 0.01);
	relay_tls_end(g.a.r);
	rc = rc && chunks_get_all(g.ts, 941, &n, &nchunks) == 0;
	ok(rc && n == 1000, "%s: the 1000 bytes, then the empty chunk (%llu)",
	    name, (unsigned long long)n);
	stream_fill(iobuf, 941, 1000, 1000);
	rc = write(g.c.fd, iobuf, 500) == 500;
	run_until(never, NULL, 0.03);
	ok(rc && g.a.ndone == 0 && relay_tls_state(g.a.r) == RELAY_AB_SHUT,
	    "%s: the relay runs on, up ended", name);
	ok(chunk_put(g.ts, 942, 0, 700) == 0 && chunk_end(g.ts) == 0 &&
	    run_until(peer_got_eof, &g.c, 5) && g.c.rx_done == 700 &&
	    g.c.rx_bad == -1 && g.c.rx_eof, "%s: down: 700 bytes, then EOF",
	    name);
	rc = run_until(rig_done_fired, &g, 5);
	ok(rc && g.a.err == 0 && g.a.up == 1000 && g.a.down == 700 &&
	    g.a.state == BOTH_SHUT, "%s: done, clean (%d %s)", name, g.a.err,
	    g.a.detail);
	ok(tls_quiet(g.ts), "%s: nothing written after the end went", name);
	rig_close(&g);
}

/*
 * The peer's end came first, so relay_tls_end() finishes the flow: done
 * runs after it has returned, not within.
 */
static void
test_end_last(void)
{
	const char *name = "relay_tls_end after the peer's end";
	struct rig g;
	int rc, within;

	if (!ok(rig_open(&g, 0, 0) == 0, "%s: sockets", name)) {
		rig_close(&g);
		return;
	}
	peer_init(&g.c, 0, 0, 952);
	g.c.tx_hold = 1;
	rig_start_hand(&g);
	rc = chunk_put(g.ts, 952, 0, 10) == 0 && chunk_end(g.ts) == 0 &&
	    run_until(peer_got_eof, &g.c, 5);
	ok(rc && g.c.rx_done == 10 && relay_tls_state(g.a.r) == RELAY_BA_SHUT,
	    "%s: down ended", name);
	relay_tls_end(g.a.r);
	within = g.a.ndone;
	rc = run_until(rig_done_fired, &g, 5);
	ok(rc && within == 0 && g.a.ndone == 1 && g.a.err == 0 &&
	    g.a.state == BOTH_SHUT, "%s: done, later, clean (%d %s)", name,
	    g.a.err, g.a.detail);
	ok(chunk_get(g.ts, iobuf, CHUNK_MAX) == 0, "%s: the end chunk", name);
	rig_close(&g);
}

static void
test_dgrams(void)
{
	int split;

	test_dgram_sizes("datagram sizes (unix, udp)", DK_UNIX, DK_UDP, 0);
	test_dgram_sizes("datagram sizes (udp, unix; b ends)", DK_UDP,
	    DK_UNIX, 1);
	test_dgram_burst();
	test_dgram_wire();
	test_dgram_peer_end();
	test_dgram_gone();
	test_dgram_too_long(CHUNK_MAX + 1);
	test_dgram_too_long(0xffffffff);
	test_dgram_max("longest datagram (unix)", DK_UNIX);
	test_dgram_max("longest datagram (udp)", DK_UDP);
	for (split = 1; split < CHUNK_HDR; split++)
		test_dgram_split(split);
	test_dgram_truncated();
	test_dgram_refused();
	test_dgram_reuse();
	test_end_stream();
	test_end_last();
}

/* ---- set-up: a CA and two identities ---- */

static char top[64];

/* pki_* print what they wrote to stdout, which is TAP's. */
static int
pki_quiet(const char *dir, const char *name)
{
	int rc, out;

	fflush(stdout);
	out = dup(STDOUT_FILENO);
	if (freopen("/dev/null", "w", stdout) == NULL)
		return -1;
	rc = name == NULL ? pki_init(dir, PKI_CA_DAYS, stderr) :
	    pki_issue(dir, name, PKI_IDENTITY_DAYS, stderr);
	fflush(stdout);
	dup2(out, STDOUT_FILENO);
	close(out);
	return rc;
}

static SSL_CTX *
ctx_for(const char *name, int server)
{
	char text[1024], err[512];
	struct config *c;
	SSL_CTX *ctx;

	snprintf(text, sizeof(text), "identity:\n  cert: %s/%s.crt\n"
	    "  key: %s/%s.key\n  ca: %s/ca.crt\n", top, name, top, name, top);
	if ((c = conf_load_string("t.yaml", text, strlen(text),
	    stdout)) == NULL)
		return NULL;
	if ((ctx = mtls_ctx_new(c, server, err, sizeof(err))) == NULL)
		printf("# mtls_ctx_new: %s\n", err);
	conf_free(c);
	return ctx;
}

static int
setup(void)
{
	snprintf(top, sizeof(top), "/tmp/sluice-rtls.XXXXXX");
	if (mkdtemp(top) == NULL)
		return -1;
	if (pki_quiet(top, NULL) != 0 || pki_quiet(top, "gw-1") != 0 ||
	    pki_quiet(top, "host-1") != 0)
		return -1;
	cctx = ctx_for("gw-1", 0);
	sctx = ctx_for("host-1", 1);
	return cctx != NULL && sctx != NULL ? 0 : -1;
}

int
main(void)
{
	char cmd[128];
	double t0 = now();
	int rc;

	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	log_init(getenv("TEST_VERBOSE") != NULL ? LOG_LVL_DEBUG :
	    LOG_LVL_WARN);
	base = event_base_new();
	if (base == NULL || setup() == -1) {
		printf("1..0 # SKIP no event base, CA or TLS contexts\n");
		return 0;
	}
	/* Again: pki_quiet()'s freopen() made stdout fully buffered. */
	setvbuf(stdout, NULL, _IOLBF, 0);

	test_idle_start();
	test_streams();
	test_key_update(0);
	test_key_update(1);
	test_pres();
	test_half_close("half-close", 0, 1000, 4 * MiB);
	test_half_close("half-close (chain)", 1, 1000, 4 * MiB);
	test_half_close("half-close, long request (chain)", 1, 3 * MiB, 1);
	test_half_close_far("far end first", 0);
	test_half_close_far("far end first (chain)", 1);
	test_done_deferred();
	test_backpressure("back-pressure down", 0, 0);
	test_backpressure("back-pressure up", 0, 1);
	test_backpressure("back-pressure down (chain)", 1, 0);
	test_backpressure("back-pressure up (chain)", 1, 1);
	test_tls_gone("TLS peer closes while idle", 0, 0);
	test_tls_gone("TLS peer resets while idle", 0, 1);
	test_tls_gone("TLS peer resets mid-stream", 1, 1);
	test_plain_reset("client resets while idle", 0);
	test_plain_reset("client resets mid-stream", 1);
	test_tls_garbage();
	test_free_live();
	test_reuse_chain();
	test_reuse_hand();
	test_end_with_last();
	test_chunks();
	test_dgrams();
	test_idle_end();

	SSL_CTX_free(cctx);
	SSL_CTX_free(sctx);
	event_base_free(base);
	rc = done_testing();
	printf("# %.1f s\n", now() - t0);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", top);
	if (system(cmd) != 0)
		printf("# could not remove %s\n", top);
	return rc;
}
