/* SPDX-License-Identifier: MIT */
/* Relay, pipe pool and listener over real loopback sockets, without root. */
#include "config.h"

#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "sluice.h"
#include "log.h"
#include "tap.h"

#define MiB		(1024 * 1024)
#define IOBUF		(256 * 1024)

static struct event_base *base;
static struct pipe_pool *pool;
static unsigned char iobuf[IOBUF];

/* ---- time ---- */

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double
cpu_seconds(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
	    ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
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
	uint64_t w = mix64(seed ^ (pos / 8));
	size_t i;

	for (i = 0; i < len; i++, pos++) {
		if (pos % 8 == 0)
			w = mix64(seed ^ (pos / 8));
		buf[i] = w >> (8 * (pos % 8));
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

/* ---- a test endpoint: sends one stream, receives and checks another ---- */

struct peer {
	int		 fd;
	struct event	 rev, wev;
	uint64_t	 tx_seed, tx_total, tx_done;
	int		 tx_after_eof;	/* answer only after EOF */
	int		 tx_shut;	/* shutdown(SHUT_WR) was sent */
	int		 tx_blocked;	/* send() said EAGAIN */
	int		 tx_err;
	uint64_t	 rx_seed, rx_done;
	long long	 rx_bad;	/* first wrong offset, -1 */
	int		 rx_eof, rx_err, rx_paused;
	uint64_t	 reset_after;	/* reset once this much arrived */
	double		 reset_at;
};

static void
peer_stop(struct peer *p)
{
	event_del(&p->rev);
	event_del(&p->wev);
}

static void
peer_reset(struct peer *p)
{
	peer_stop(p);
	sock_close_reset(p->fd);
	p->fd = -1;
	p->reset_at = now();
}

static void
peer_tx_end(struct peer *p)
{
	event_del(&p->wev);
	if (!p->tx_shut && shutdown(p->fd, SHUT_WR) == -1)
		p->tx_err = errno;
	p->tx_shut = 1;
}

static void
peer_write(evutil_socket_t fd, short what, void *arg)
{
	struct peer *p = arg;
	size_t len;
	ssize_t n;

	while (p->tx_done < p->tx_total) {
		len = p->tx_total - p->tx_done;
		if (len > IOBUF)
			len = IOBUF;
		stream_fill(iobuf, p->tx_seed, p->tx_done, len);
		n = send(p->fd, iobuf, len, MSG_NOSIGNAL);
		if (n == -1 && errno == EAGAIN) {
			p->tx_blocked++;
			return;
		}
		if (n == -1) {
			p->tx_err = errno;
			peer_stop(p);
			return;
		}
		p->tx_done += n;
	}
	peer_tx_end(p);
}

static int
peer_got(struct peer *p, size_t n)
{
	long long bad;

	if (p->rx_bad == -1 &&
	    (bad = stream_check(iobuf, p->rx_seed, p->rx_done, n)) != -1)
		p->rx_bad = bad;
	p->rx_done += n;
	if (p->reset_after && p->rx_done >= p->reset_after) {
		peer_reset(p);
		return -1;
	}
	return 0;
}

static void
peer_read(evutil_socket_t fd, short what, void *arg)
{
	struct peer *p = arg;
	ssize_t n;
	int i;

	for (i = 0; i < 16; i++) {
		n = recv(p->fd, iobuf, IOBUF, 0);
		if (n > 0) {
			if (peer_got(p, n) == -1)
				return;
			continue;
		}
		if (n == -1 && errno == EAGAIN)
			return;
		event_del(&p->rev);
		if (n == 0) {
			p->rx_eof = 1;
			if (p->tx_after_eof)
				event_add(&p->wev, NULL);
		} else
			p->rx_err = errno;
		return;
	}
}

static void
peer_start(struct peer *p)
{
	event_assign(&p->rev, base, p->fd, EV_READ | EV_PERSIST, peer_read, p);
	event_assign(&p->wev, base, p->fd, EV_WRITE | EV_PERSIST, peer_write,
	    p);
	if (!p->rx_paused)
		event_add(&p->rev, NULL);
	if (!p->tx_after_eof)
		event_add(&p->wev, NULL);
}

static void
peer_resume(struct peer *p)
{
	p->rx_paused = 0;
	event_add(&p->rev, NULL);
}

/* ---- sockets ---- */

/* A connected loopback pair: *c dialled, *s accepted, both nonblocking. */
static int
tcp_pair(int *c, int *s)
{
	struct sockaddr_in sin;
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	int l;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((l = sock_listen((struct sockaddr *)&sin, SOCK_STREAM, 0,
	    &ss)) == -1)
		return -1;
	*c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (*c == -1 || connect(*c, (struct sockaddr *)&ss, len) == -1 ||
	    sock_nonblock(*c) == -1)
		return -1;
	while ((*s = accept4(l, NULL, NULL, SOCK_NONBLOCK)) == -1 &&
	    errno == EAGAIN)
		usleep(1000);
	close(l);
	return *s == -1 ? -1 : 0;
}

static void
set_bufs(int fd, int size)
{
	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
}

/* ---- a relay between two pairs: client <-> ra | relay | rb <-> server ---- */

struct rig {
	int		 ra, rb;
	struct peer	 c, s;
	struct relay	*r;
	int		 ndone;
	double		 done_at;
	int		 free_in_done;
	uint64_t	 ab, ba;	/* relay_bytes at done */
	int		 err, side;
};

static void
rig_done(struct relay *r, void *arg)
{
	struct rig *g = arg;

	g->ndone++;
	g->done_at = now();
	relay_bytes(r, &g->ab, &g->ba);
	g->err = relay_error(r, &g->side);
	if (g->free_in_done) {
		relay_free(r);
		g->r = NULL;
	}
}

/* Keeps the fd that rig_open() gave the peer. */
static void
peer_init(struct peer *p, uint64_t tx_seed, uint64_t tx_total,
    uint64_t rx_seed)
{
	int fd = p->fd;

	memset(p, 0, sizeof(*p));
	p->fd = fd;
	p->tx_seed = tx_seed;
	p->tx_total = tx_total;
	p->rx_seed = rx_seed;
	p->rx_bad = -1;
}

static int
rig_open(struct rig *g)
{
	memset(g, 0, sizeof(*g));
	g->c.fd = g->s.fd = g->ra = g->rb = -1;
	g->c.rx_bad = g->s.rx_bad = -1;
	return tcp_pair(&g->c.fd, &g->ra) == -1 ||
	    tcp_pair(&g->rb, &g->s.fd) == -1 ? -1 : 0;
}

static int
rig_start(struct rig *g)
{
	peer_start(&g->c);
	peer_start(&g->s);
	g->r = relay_new(base, pool, g->ra, g->rb, rig_done, g);
	return g->r == NULL ? -1 : 0;
}

static void
rig_close(struct rig *g)
{
	relay_free(g->r);
	g->r = NULL;
	if (g->c.fd != -1) {
		peer_stop(&g->c);
		close(g->c.fd);
	}
	if (g->s.fd != -1) {
		peer_stop(&g->s);
		close(g->s.fd);
	}
	close(g->ra);
	close(g->rb);
}

static int
peer_finished(const struct peer *p)
{
	return p->fd == -1 || ((p->rx_eof || p->rx_err) &&
	    (p->tx_shut || p->tx_err));
}

static int
rig_finished(void *arg)
{
	struct rig *g = arg;

	return g->ndone && peer_finished(&g->c) && peer_finished(&g->s);
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
	struct timeval tv = { 0, 20000 };
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

/* Moves streams of the given sizes each way and checks all of it. */
static void
test_stream(const char *name, uint64_t up, uint64_t down)
{
	struct rig g;
	double t0;

	if (!ok(rig_open(&g) == 0, "%s: sockets", name))
		return;
	peer_init(&g.c, 11, up, 22);
	peer_init(&g.s, 22, down, 11);
	t0 = now();
	ok(rig_start(&g) == 0, "%s: relay_new", name);
	ok(run_until(rig_finished, &g, 20), "%s: finished", name);
	is_int(g.s.rx_done, up, "%s: server got %llu bytes", name,
	    (unsigned long long)up);
	is_int(g.c.rx_done, down, "%s: client got %llu bytes", name,
	    (unsigned long long)down);
	ok(g.s.rx_bad == -1 && g.c.rx_bad == -1, "%s: bytes intact "
	    "(first bad offsets %lld, %lld)", name, g.s.rx_bad, g.c.rx_bad);
	ok(g.s.rx_eof && g.c.rx_eof, "%s: both ends saw EOF", name);
	ok(g.err == 0 && g.ab == up && g.ba == down,
	    "%s: relay_bytes %llu/%llu, error %d", name,
	    (unsigned long long)g.ab, (unsigned long long)g.ba, g.err);
	if (up + down >= MiB)
		printf("# %s: %.0f MiB/s (bounded by the test's own checks)\n",
		    name, (up + down) / (double)MiB / (now() - t0));
	run_until(never, NULL, 0.05);
	is_int(g.ndone, 1, "%s: done still fired once", name);
	rig_close(&g);
	is_int(pipe_pool_busy(pool), 0, "%s: no pipe in use after", name);
}

/*
 * A request, then half-close; the answer comes only after that EOF. A
 * short request is copied and a long one spliced, and so is the answer:
 * the EOF must get through either way.
 */
static void
test_half_close(const char *name, uint64_t up, uint64_t down)
{
	struct rig g;
	size_t early = up < 1000 ? up : 1000;

	if (!ok(rig_open(&g) == 0, "%s: sockets", name))
		return;
	peer_init(&g.c, 31, up, 32);
	peer_init(&g.s, 32, down, 31);
	g.s.tx_after_eof = 1;
	/* Sent before the relay exists: the first read must not wait. */
	stream_fill(iobuf, 31, 0, early);
	ok(send(g.c.fd, iobuf, early, 0) == (ssize_t)early,
	    "%s: early request", name);
	g.c.tx_done = early;
	peer_start(&g.c);
	peer_start(&g.s);
	g.r = relay_new(base, pool, g.ra, g.rb, rig_done, &g);
	ok(run_until(rig_finished, &g, 10), "%s: finished", name);
	ok(g.s.rx_done == up && g.s.rx_eof && g.s.rx_bad == -1,
	    "%s: server read the request and EOF", name);
	ok(g.c.rx_done == down && g.c.rx_eof && g.c.rx_bad == -1,
	    "%s: client got the answer, then EOF (%llu)", name,
	    (unsigned long long)g.c.rx_done);
	ok(g.ndone == 1 && g.err == 0 && g.ab == up && g.ba == down,
	    "%s: done once, bytes %llu/%llu", name,
	    (unsigned long long)g.ab, (unsigned long long)g.ba);
	rig_close(&g);
}

/*
 * Short exchanges are copied and never take a pipe; a direction whose
 * read fills the copy buffer (16 KiB) splices from then on. A fresh pool
 * shows which happened: a pipe once used stays in it, idle.
 */
static void
test_copy_or_splice(void)
{
	static const struct {
		const char	*name;
		uint64_t	 up, down;
		int		 spliced;
	} t[] = {
		{ "copy: request and answer", 300, 2000, 0 },
		{ "copy: 16 KiB less one", 16383, 16383, 0 },
		{ "copy: 16 KiB", 16384, 1, -1 },
		{ "copy: 16 KiB and one", 16385, 16385, -1 },
		{ "copy: then splice", 4 * MiB, 3 * MiB + 7, 1 },
	};
	struct pipe_pool *saved = pool;
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		pool = pipe_pool_new(4);
		test_stream(t[i].name, t[i].up, t[i].down);
		/* -1: a read may catch all or part of it; either is right. */
		if (t[i].spliced != -1)
			ok((pipe_pool_idle(pool) > 0) == t[i].spliced,
			    "%s: %s", t[i].name, t[i].spliced ?
			    "spliced through a pipe" : "no pipe taken");
		pipe_pool_free(pool);
	}
	pool = saved;
}

static int	peer_failed(void *);

/*
 * The upstream's last bytes and its FIN arrive together while the relay
 * waits: both must reach the client (the copy passes the EOF on with
 * them), and the relay must still wait for the client's own EOF.
 */
static void
test_data_and_fin(void)
{
	struct rig g;

	if (!ok(rig_open(&g) == 0, "data and FIN: sockets"))
		return;
	peer_init(&g.c, 61, 0, 62);
	peer_init(&g.s, 62, 300, 61);
	g.c.tx_after_eof = 1;
	g.s.rx_paused = 1;
	peer_start(&g.c);
	g.r = relay_new(base, pool, g.ra, g.rb, rig_done, &g);
	run_until(never, NULL, 0.05);
	stream_fill(iobuf, 62, 0, 300);
	ok(send(g.s.fd, iobuf, 300, 0) == 300 &&
	    shutdown(g.s.fd, SHUT_WR) == 0, "data and FIN: sent at once");
	g.s.tx_done = 300;
	g.s.tx_shut = 1;
	g.s.tx_after_eof = 1;
	peer_start(&g.s);
	run_until(peer_failed, &g.c, 5);
	ok(g.c.rx_done == 300 && g.c.rx_eof && g.c.rx_bad == -1 &&
	    g.ndone == 0, "data and FIN: the client got both (%llu bytes), "
	    "the relay waits for its EOF", (unsigned long long)g.c.rx_done);
	/* The client has answered EOF by now; the server reads it. */
	peer_resume(&g.s);
	ok(run_until(rig_finished, &g, 5) && g.ndone == 1 && g.err == 0 &&
	    g.ab == 0 && g.ba == 300 && g.s.rx_eof,
	    "data and FIN: both ways closed cleanly");
	rig_close(&g);
}

/*
 * A copied request that the upstream cannot take at once: the rest is
 * held, src is not read meanwhile, and it all arrives once dst drains.
 */
static void
test_copy_held(void)
{
	const size_t len = 12000;	/* under the copy buffer */
	struct rig g;
	uint64_t total, ab;

	if (!ok(rig_open(&g) == 0, "copy held: sockets"))
		return;
	set_bufs(g.rb, 4096);
	set_bufs(g.s.fd, 2048);
	peer_init(&g.c, 71, 3 * len, 72);
	peer_init(&g.s, 72, 0, 71);
	g.s.rx_paused = 1;
	g.s.tx_after_eof = 1;
	g.c.tx_after_eof = 1;	/* sends below, by hand */
	peer_start(&g.c);
	peer_start(&g.s);
	g.r = relay_new(base, pool, g.ra, g.rb, rig_done, &g);
	for (total = 0; total < 3 * len; total += len) {
		stream_fill(iobuf, 71, total, len);
		if (send(g.c.fd, iobuf, len, 0) != (ssize_t)len)
			break;
		run_until(never, NULL, 0.05);
	}
	ok(total == 3 * len, "copy held: client sent %llu bytes",
	    (unsigned long long)total);
	relay_bytes(g.r, &ab, NULL);
	ok(ab < total && g.ndone == 0,
	    "copy held: the upstream took only %llu", (unsigned long long)ab);
	g.c.tx_done = total;
	peer_tx_end(&g.c);
	peer_resume(&g.s);
	run_until(rig_finished, &g, 5);
	ok(rig_finished(&g) && g.s.rx_done == total && g.s.rx_bad == -1 &&
	    g.s.rx_eof && g.ab == total && g.err == 0,
	    "copy held: all %llu bytes and EOF arrived",
	    (unsigned long long)g.s.rx_done);
	rig_close(&g);
}

/* Nothing ever written; both sides close; done must still come. */
static void
test_empty(void)
{
	struct rig g;

	if (!ok(rig_open(&g) == 0, "empty: sockets"))
		return;
	peer_init(&g.c, 1, 0, 2);
	peer_init(&g.s, 2, 0, 1);
	rig_start(&g);
	ok(run_until(rig_finished, &g, 5) && g.ndone == 1 && g.err == 0 &&
	    g.ab == 0 && g.ba == 0, "empty: finished cleanly");
	rig_close(&g);
}

static int
rig_done_fired(void *arg)
{
	return ((struct rig *)arg)->ndone > 0;
}

/*
 * One side resets (SO_LINGER 0): done must fire promptly with the error
 * and the side that failed. which: 0 client, 1 server; busy: mid-stream.
 */
static void
test_reset(const char *name, int which, int busy)
{
	struct rig g;
	struct peer *victim;

	if (!ok(rig_open(&g) == 0, "%s: sockets", name))
		return;
	peer_init(&g.c, 41, busy && which ? 32 * MiB : 0, 42);
	peer_init(&g.s, 42, busy && !which ? 32 * MiB : 0, 41);
	/* Idle ends keep their side open: only the reset may end the relay. */
	g.c.tx_after_eof = g.c.tx_total == 0;
	g.s.tx_after_eof = g.s.tx_total == 0;
	victim = which ? &g.s : &g.c;
	if (busy)
		victim->reset_after = 1 * MiB;
	rig_start(&g);
	if (!busy) {
		run_until(never, NULL, 0.05);
		ok(g.ndone == 0, "%s: idle relay stays up", name);
		peer_reset(victim);
	}
	ok(run_until(rig_done_fired, &g, 5), "%s: done fired", name);
	ok(victim->reset_at > 0 && g.done_at - victim->reset_at < 0.5,
	    "%s: within %.3f s of the reset", name,
	    g.done_at - victim->reset_at);
	ok(g.err != 0 && g.side == which, "%s: error %s on side %d", name,
	    strerror(g.err), g.side);
	run_until(never, NULL, 0.05);
	is_int(g.ndone, 1, "%s: done fired once", name);
	rig_close(&g);
	is_int(pipe_pool_busy(pool), 0, "%s: pipes released", name);
}

/*
 * The client stops reading: the relay must stop reading the server, so
 * that the server's send() blocks with a bounded amount in flight, and
 * carry on intact when the client reads again.
 */
static void
test_backpressure(void)
{
	const uint64_t total = 24 * MiB;
	struct rig g;
	uint64_t sent;
	int i;

	if (!ok(rig_open(&g) == 0, "back-pressure: sockets"))
		return;
	/* Fixed buffers: autotuning could otherwise swallow megabytes. */
	set_bufs(g.c.fd, 128 * 1024);
	set_bufs(g.ra, 128 * 1024);
	set_bufs(g.rb, 128 * 1024);
	set_bufs(g.s.fd, 128 * 1024);
	peer_init(&g.c, 51, 0, 52);
	peer_init(&g.s, 52, total, 51);
	g.c.rx_paused = 1;
	rig_start(&g);
	run_until(never, NULL, 0.3);
	sent = g.s.tx_done;
	ok(g.s.tx_blocked > 0 && sent < total,
	    "back-pressure: the server's send blocks (%llu bytes out)",
	    (unsigned long long)sent);
	for (i = 0; i < 3; i++)
		run_until(never, NULL, 0.05);
	/* The kernel may still open its windows a little (delayed ACKs,
	 * buffer autotuning), but nothing like a relay that reads on. */
	ok(g.s.tx_done - sent <= 512 * 1024,
	    "back-pressure: and stays blocked (then %llu more)",
	    (unsigned long long)(g.s.tx_done - sent));
	ok(sent < 8 * MiB, "back-pressure: in flight is bounded (%llu)",
	    (unsigned long long)sent);
	ok(pipe_pool_busy(pool) <= 1, "back-pressure: %zu pipe in use",
	    pipe_pool_busy(pool));
	peer_resume(&g.c);
	ok(run_until(rig_finished, &g, 10), "back-pressure: resumes");
	ok(g.c.rx_done == total && g.c.rx_bad == -1 && g.ndone == 1 &&
	    g.ba == total, "back-pressure: all %llu bytes intact",
	    (unsigned long long)g.c.rx_done);
	rig_close(&g);
}

static int
rigs_finished(void *arg)
{
	struct rig *g = arg;
	int i;

	for (i = 0; i < 8; i++)
		if (!rig_finished(&g[i]))
			return 0;
	return 1;
}

/*
 * Many relays at once share the pool; done frees its relay (as a flow
 * does). Afterwards every pipe is back and the pool keeps at most its
 * max_idle.
 */
static void
test_pool(void)
{
	struct pipe_pool *saved = pool;
	struct rig g[8];
	int i, bad = 0;

	pool = pipe_pool_new(4);
	for (i = 0; i < 8; i++) {
		if (rig_open(&g[i]) == -1) {
			ok(0, "pool: sockets");
			return;
		}
		peer_init(&g[i].c, 60 + i, 1 * MiB + i, 70 + i);
		peer_init(&g[i].s, 70 + i, 2 * MiB - i, 60 + i);
		g[i].free_in_done = 1;
		rig_start(&g[i]);
	}
	ok(run_until(rigs_finished, g, 10), "pool: 8 relays finished");
	for (i = 0; i < 8; i++)
		bad += g[i].ndone != 1 || g[i].c.rx_bad != -1 ||
		    g[i].s.rx_bad != -1 ||
		    g[i].c.rx_done != (uint64_t)(2 * MiB - i) ||
		    g[i].s.rx_done != (uint64_t)(1 * MiB + i) || g[i].r != NULL;
	is_int(bad, 0, "pool: all streams intact, relays freed in done");
	is_int(pipe_pool_busy(pool), 0, "pool: no pipe in use");
	ok(pipe_pool_idle(pool) >= 1 && pipe_pool_idle(pool) <= 4,
	    "pool: %zu idle pipes kept (max 4)", pipe_pool_idle(pool));
	for (i = 0; i < 8; i++)
		rig_close(&g[i]);
	pipe_pool_free(pool);
	pool = saved;
}

/* Fills the fd table (RLIMIT_NOFILE lowered to just above what is open). */
static struct rlimit nofile_saved;

static void
fd_table_fill(int *fill, int *nfill)
{
	struct rlimit low;
	int fd;

	getrlimit(RLIMIT_NOFILE, &nofile_saved);
	fd = dup(0);
	close(fd);
	low = nofile_saved;
	low.rlim_cur = fd + 16;
	setrlimit(RLIMIT_NOFILE, &low);
	*nfill = 0;
	while (*nfill < 64 && (fd = dup(0)) != -1)
		fill[(*nfill)++] = fd;
}

static void
fd_table_free(int *fill, int nfill)
{
	int i;

	for (i = 0; i < nfill; i++)
		close(fill[i]);
	setrlimit(RLIMIT_NOFILE, &nofile_saved);
}

/* ---- listener ---- */

struct accepted {
	int	fds[8];
	int	n;
	struct sockaddr_storage peer;
};

static int
on_accept(int fd, const struct sockaddr *peer, void *arg)
{
	struct accepted *a = arg;

	if (a->n < 8) {
		a->fds[a->n++] = fd;
		memcpy(&a->peer, peer, addr_len(peer));
	} else
		close(fd);
	return 0;
}

static int
accepted_n(void *arg)
{
	return ((struct accepted *)arg)->n >= 3;
}

static int
dial(const struct sockaddr *to)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd != -1 && connect(fd, to, addr_len(to)) == -1) {
		close(fd);
		return -1;
	}
	return fd;
}

static void
test_listener(void)
{
	struct sockaddr_in sin;
	struct listener *l;
	struct accepted a;
	struct sockaddr_in local;
	socklen_t len = sizeof(local);
	int c[3], i, nodelay = 0, fl;

	memset(&a, 0, sizeof(a));
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	l = listener_new(base, (struct sockaddr *)&sin, 0, on_accept, &a,
	    NULL);
	if (!ok(l != NULL, "listener: on 127.0.0.1:0"))
		return;
	ok(addr_port(listener_addr(l)) != 0, "listener: bound to port %u",
	    addr_port(listener_addr(l)));
	for (i = 0; i < 3; i++)
		c[i] = dial(listener_addr(l));
	ok(run_until(accepted_n, &a, 2) && a.n == 3, "listener: accepted 3");
	getsockname(c[2], (struct sockaddr *)&local, &len);
	ok(a.peer.ss_family == AF_INET && addr_port((struct sockaddr *)
	    &a.peer) == ntohs(local.sin_port), "listener: peer address");
	fl = fcntl(a.fds[0], F_GETFL);
	ok(fl != -1 && (fl & O_NONBLOCK), "listener: accepted nonblocking");
	len = sizeof(nodelay);
	getsockopt(a.fds[0], IPPROTO_TCP, TCP_NODELAY, &nodelay, &len);
	ok(nodelay, "listener: accepted sockets inherit TCP_NODELAY");
	for (i = 0; i < 3; i++) {
		close(c[i]);
		close(a.fds[i]);
	}
	listener_free(l);
}

static int
accepted_one(void *arg)
{
	return ((struct accepted *)arg)->n >= 1;
}

/*
 * With the fd table full, accept fails with EMFILE: the listener must
 * pause (counted), not spin, and accept the waiting connection once fds
 * are free again.
 */
static void
test_fd_exhaustion(void)
{
	struct sockaddr_in sin;
	struct listener *l;
	struct accepted a;
	uint64_t paused = 0;
	int c, fill[64], nfill = 0, i, fd;
	double cpu, t;

	memset(&a, 0, sizeof(a));
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	l = listener_new(base, (struct sockaddr *)&sin, 0, on_accept, &a,
	    &paused);
	c = dial(listener_addr(l));
	if (!ok(l != NULL && c != -1, "emfile: listener and a client"))
		return;
	fd_table_fill(fill, &nfill);
	fd = dup(0);
	ok(fd == -1 && errno == EMFILE, "emfile: fd table full (%d filled)",
	    nfill);
	cpu = cpu_seconds();
	t = now();
	run_until(never, NULL, 0.3);
	cpu = cpu_seconds() - cpu;
	t = now() - t;
	ok(paused >= 2 && paused <= 8, "emfile: accept paused %llu times",
	    (unsigned long long)paused);
	ok(a.n == 0, "emfile: nothing accepted meanwhile");
	ok(cpu < 0.5 * t, "emfile: no spinning (%.3f s CPU in %.3f s)", cpu,
	    t);
	fd_table_free(fill, nfill);
	t = now();
	run_until(accepted_one, &a, 3);
	t = now() - t;
	ok(a.n == 1, "emfile: accepts again after %.3f s", t);
	for (i = 0; i < a.n; i++)
		close(a.fds[i]);
	close(c);
	listener_free(l);
}

/* ---- flows: dial, relay, failure, accounting ---- */

static struct sluice sl;

struct upstream {
	int	lfd;
	int	fd;
	struct sockaddr_storage addr;
};

static int
upstream_open(struct upstream *u)
{
	struct sockaddr_in sin;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	u->fd = -1;
	u->lfd = sock_listen((struct sockaddr *)&sin, SOCK_STREAM, 0, &u->addr);
	return u->lfd;
}

static int
upstream_accepted(void *arg)
{
	struct upstream *u = arg;

	if (u->fd == -1)
		u->fd = accept4(u->lfd, NULL, NULL, SOCK_NONBLOCK);
	return u->fd != -1;
}

/* A client connection as the tproxy listener would hand it over. */
static int
client_pair(int *c, int *cfd, struct sockaddr_storage *peer)
{
	socklen_t len = sizeof(*peer);

	if (tcp_pair(c, cfd) == -1)
		return -1;
	return getpeername(*cfd, (struct sockaddr *)peer, &len);
}

static void
fake_dst(struct sockaddr_in *sin, const char *ip, uint16_t port)
{
	memset(sin, 0, sizeof(*sin));
	sin->sin_family = AF_INET;
	inet_pton(AF_INET, ip, &sin->sin_addr);
	sin->sin_port = htons(port);
}

static int
no_flows(void *arg)
{
	return sl.nflows == 0;
}

static int
peer_failed(void *arg)
{
	struct peer *p = arg;

	return p->rx_err != 0 || p->rx_eof;
}

static char *
dump_flows(void)
{
	static char text[1024];
	FILE *fp = fmemopen(text, sizeof(text), "w");

	text[0] = '\0';
	if (fp != NULL) {
		flow_dump_all(&sl, fp);
		fclose(fp);
	}
	return text;
}

static struct service *
flow_service(uint16_t port)
{
	char yaml[512];
	struct config *conf;

	snprintf(yaml, sizeof(yaml),
	    "intercept:\n  connect-timeout: 1\n"
	    "services:\n"
	    "  - name: demo\n"
	    "    intercept: {protocols: [tcp], addresses: [10.9.0.0/24], "
	    "ports: [80]}\n"
	    "    forward: {direct: \"127.0.0.1:%u\"}\n", port);
	conf = conf_load_string("unit_relay", yaml, strlen(yaml), stdout);
	if (conf == NULL)
		return NULL;
	conf->refs = 1;
	/* Marks are beside the point here, and need privilege. */
	conf->bypass_mark = 0;
	sl.conf = conf;
	return TAILQ_FIRST(&conf->services);
}

/* Through a flow to a direct upstream, both ways, then a clean close. */
static void
test_flow_direct(struct service *svc, struct upstream *u)
{
	struct sockaddr_storage peer;
	struct sockaddr_in dst;
	struct peer c, s;
	struct flow *f;
	int cfd;
	char *text;

	memset(&c, 0, sizeof(c));
	memset(&s, 0, sizeof(s));
	if (!ok(client_pair(&c.fd, &cfd, &peer) == 0, "flow: client"))
		return;
	fake_dst(&dst, "10.9.0.5", 80);
	f = flow_start(&sl, cfd, svc, (struct sockaddr *)&peer,
	    (struct sockaddr *)&dst);
	ok(f != NULL && sl.nflows == 1, "flow: started");
	text = dump_flows();
	/* A loopback upstream may have answered within flow_start(). */
	ok(strstr(text, "flow 1 demo: 127.0.0.1:") != NULL &&
	    strstr(text, "-> 10.9.0.5:80 via 127.0.0.1:") != NULL &&
	    (strstr(text, "connecting") != NULL ||
	    strstr(text, ", open,") != NULL), "flow: dump after the dial");
	ok(run_until(upstream_accepted, u, 2), "flow: upstream dialled");
	s.fd = u->fd;
	peer_init(&c, 81, 1 * MiB, 82);
	peer_init(&s, 82, 3 * MiB, 81);
	s.tx_after_eof = 1;
	c.rx_paused = 1;
	peer_start(&c);
	peer_start(&s);
	ok(run_until(peer_failed, &s, 5) && s.rx_eof, "flow: request "
	    "and EOF reach the upstream");
	text = dump_flows();
	ok(strstr(text, "half-closed, up 1048576 down") != NULL,
	    "flow: dump shows the half-close");
	printf("# %s", text);
	peer_resume(&c);
	ok(run_until(no_flows, NULL, 5), "flow: ended");
	run_until(peer_failed, &c, 2);
	ok(c.rx_done == 3 * MiB && c.rx_eof && c.rx_bad == -1 &&
	    s.rx_done == 1 * MiB && s.rx_bad == -1, "flow: bytes intact");
	ok(sl.stats.bytes_up == 1 * MiB && sl.stats.bytes_down == 3 * MiB &&
	    sl.stats.dial_failed == 0, "flow: counters up %llu down %llu",
	    (unsigned long long)sl.stats.bytes_up,
	    (unsigned long long)sl.stats.bytes_down);
	peer_stop(&c);
	peer_stop(&s);
	close(c.fd);
	close(s.fd);
	u->fd = -1;
}

/* Whatever makes a dial fail, the client must see a reset at once. */
static void
test_flow_fails(const char *name, struct service *svc,
    const struct sockaddr *orig, double within, int emfile)
{
	int fill[64], nfill = 0;
	struct sockaddr_storage peer;
	struct peer c;
	uint64_t failed = sl.stats.dial_failed;
	double t;
	int cfd;

	memset(&c, 0, sizeof(c));
	if (!ok(client_pair(&c.fd, &cfd, &peer) == 0, "%s: client", name))
		return;
	peer_init(&c, 0, 0, 0);
	c.tx_after_eof = 1;
	peer_start(&c);
	t = now();
	if (emfile)
		fd_table_fill(fill, &nfill);
	flow_start(&sl, cfd, svc, (struct sockaddr *)&peer, orig);
	if (emfile)
		fd_table_free(fill, nfill);
	/* Until the dial fails (at once or later), the flow is dialling. */
	ok(sl.nflows == 0 || strstr(dump_flows(), "connecting") != NULL,
	    "%s: dump shows the flow connecting", name);
	run_until(peer_failed, &c, within + 2);
	t = now() - t;
	ok(c.rx_err == ECONNRESET, "%s: client reset (%s)", name,
	    c.rx_err ? strerror(c.rx_err) : c.rx_eof ? "EOF" : "nothing");
	ok(t < within + 0.5, "%s: after %.2f s", name, t);
	ok(sl.stats.dial_failed == failed + 1 && sl.nflows == 0,
	    "%s: dial-failed counted, flow gone", name);
	peer_stop(&c);
	close(c.fd);
}

/* A listener whose accept queue is full drops SYNs: connect hangs. */
static int
blackhole(struct sockaddr_storage *addr, int fds[3])
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(*addr);
	int i;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fds[0] = socket(AF_INET, SOCK_STREAM, 0);
	if (bind(fds[0], (struct sockaddr *)&sin, sizeof(sin)) == -1 ||
	    listen(fds[0], 0) == -1 ||
	    getsockname(fds[0], (struct sockaddr *)addr, &len) == -1)
		return -1;
	for (i = 1; i < 3; i++) {
		fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
		connect(fds[i], (struct sockaddr *)addr, len);
	}
	usleep(50000);
	return 0;
}

static void
test_flow_errors(struct service *svc, struct upstream *u)
{
	struct sockaddr_storage hole;
	struct sockaddr_in dst;
	enum fwd_kind fwd = svc->fwd;
	int fds[3] = { -1, -1, -1 }, i;

	fake_dst(&dst, "10.9.0.5", 80);
	/* Nobody listens on the upstream port any more. */
	close(u->lfd);
	test_flow_fails("flow refused", svc, (struct sockaddr *)&dst, 0.5, 0);

	svc->fwd = FWD_TUNNEL;
	test_flow_fails("flow tunnel", svc, (struct sockaddr *)&dst, 0.5, 0);

	svc->fwd = FWD_ORIGINAL;
	if (blackhole(&hole, fds) == 0)
		test_flow_fails("flow timeout", svc, (struct sockaddr *)&hole,
		    1.0, 0);
	for (i = 0; i < 3; i++)
		if (fds[i] != -1)
			close(fds[i]);

	/* No fd left for the upstream socket. */
	svc->fwd = FWD_DIRECT;
	test_flow_fails("flow emfile", svc, (struct sockaddr *)&dst, 0.5, 1);
	svc->fwd = fwd;
}

/* Ends an open flow from outside, as the daemon does when it stops. */
static void
test_flow_free_all(struct service *svc)
{
	struct upstream u;
	struct sockaddr_storage peer;
	struct sockaddr_in dst;
	struct peer c;
	int cfd;

	memset(&c, 0, sizeof(c));
	if (!ok(upstream_open(&u) != -1 && client_pair(&c.fd, &cfd,
	    &peer) == 0, "flow stop: sockets"))
		return;
	memcpy(&svc->direct.ss, &u.addr, sizeof(u.addr));
	fake_dst(&dst, "10.9.0.6", 80);
	flow_start(&sl, cfd, svc, (struct sockaddr *)&peer,
	    (struct sockaddr *)&dst);
	run_until(upstream_accepted, &u, 2);
	peer_init(&c, 0, 0, 0);
	c.tx_after_eof = 1;
	peer_start(&c);
	run_until(never, NULL, 0.05);
	ok(sl.nflows == 1 && strstr(dump_flows(), ", open,") != NULL,
	    "flow stop: flow open");
	flow_free_all(&sl);
	ok(sl.nflows == 0 && TAILQ_EMPTY(&sl.flows), "flow stop: all freed");
	ok(run_until(peer_failed, &c, 1) && c.rx_err == ECONNRESET,
	    "flow stop: the client sees a reset");
	peer_stop(&c);
	close(c.fd);
	close(u.fd);
	close(u.lfd);
}

static void
test_flows(void)
{
	struct upstream u;
	struct service *svc;

	memset(&sl, 0, sizeof(sl));
	sl.base = base;
	sl.pipes = pool;
	TAILQ_INIT(&sl.flows);
	if (!ok(upstream_open(&u) != -1, "flow: upstream listener"))
		return;
	svc = flow_service(addr_port((struct sockaddr *)&u.addr));
	if (!ok(svc != NULL, "flow: configuration"))
		return;
	test_flow_direct(svc, &u);
	test_flow_errors(svc, &u);
	test_flow_free_all(svc);
	is_int(sl.conf->refs, 1, "flow: config references all returned");
	conf_unref(sl.conf);
}

/* ---- sock_listen ---- */

static void
test_sock_listen(void)
{
	struct sockaddr_in sin;
	struct sockaddr_in6 sin6;
	struct sockaddr_storage ss;
	socklen_t len;
	int fd, v = 0;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = sock_listen((struct sockaddr *)&sin, SOCK_DGRAM, 0, &ss);
	ok(fd != -1 && ss.ss_family == AF_INET &&
	    addr_port((struct sockaddr *)&ss) != 0,
	    "sock_listen: udp 127.0.0.1:0 bound to a port");
	close(fd);

	memset(&sin6, 0, sizeof(sin6));
	sin6.sin6_family = AF_INET6;
	sin6.sin6_addr = in6addr_loopback;
	fd = sock_listen((struct sockaddr *)&sin6, SOCK_STREAM, 0, &ss);
	if (fd == -1) {
		ok(1, "sock_listen: # SKIP no IPv6 loopback");
	} else {
		len = sizeof(v);
		getsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v, &len);
		ok(v == 1, "sock_listen: tcp [::1]:0 is v6-only");
		close(fd);
	}

	if (geteuid() != 0) {
		errno = 0;
		fd = sock_listen((struct sockaddr *)&sin, SOCK_STREAM, 1, &ss);
		ok(fd == -1 && errno == EPERM,
		    "sock_listen: transparent needs privilege (%s)",
		    strerror(errno));
		if (fd != -1)
			close(fd);
	} else {
		fd = sock_listen((struct sockaddr *)&sin, SOCK_STREAM, 1, &ss);
		ok(fd != -1, "sock_listen: transparent as root");
		if (fd != -1)
			close(fd);
	}
	sin.sin_family = AF_UNIX;
	ok(sock_listen((struct sockaddr *)&sin, SOCK_STREAM, 0, &ss) == -1 &&
	    errno == EAFNOSUPPORT, "sock_listen: only inet families");
}

int
main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	/* TEST_VERBOSE=1 shows the flows' debug lines. */
	log_init(getenv("TEST_VERBOSE") != NULL ? LOG_LVL_DEBUG :
	    LOG_LVL_WARN);
	base = event_base_new();
	pool = pipe_pool_new(16);
	if (base == NULL || pool == NULL) {
		printf("1..0 # SKIP no event base or pipe pool\n");
		return 0;
	}

	test_sock_listen();
	test_stream("client to server", 32 * MiB, 0);
	test_stream("server to client", 0, 32 * MiB);
	test_stream("both ways", 32 * MiB, 32 * MiB);
	test_stream("small", 1, 17);
	test_empty();
	test_half_close("half-close", 1000, 4 * MiB);
	test_half_close("half-close, spliced request", 2 * MiB, 500);
	test_copy_or_splice();
	test_data_and_fin();
	test_copy_held();
	test_reset("client resets while idle", 0, 0);
	test_reset("server resets while idle", 1, 0);
	test_reset("client resets mid-stream", 0, 1);
	test_reset("server resets mid-stream", 1, 1);
	test_backpressure();
	test_pool();
	ok(pipe_pool_idle(pool) >= 1, "pool: %zu pipes idle after all relays",
	    pipe_pool_idle(pool));
	test_listener();
	test_fd_exhaustion();
	test_flows();

	pipe_pool_free(pool);
	event_base_free(base);
	return done_testing();
}
