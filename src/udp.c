/* SPDX-License-Identifier: MIT */
/*
 * Intercepted UDP: a transparent listener per family receives every
 * intercepted datagram with its original destination; a flow is (client,
 * original destination) and forwards through a connected socket of its
 * own (direct) or the tunnel; replies leave from the original destination
 * through a transparent socket shared by every flow to it.
 */
#include "config.h"

#include <sys/socket.h>
#include <sys/uio.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sluice.h"
#include "log.h"
#include "tunnel.h"
#include "udp.h"

/*
 * Datagrams travel in batches of UDP_BATCH (udp.h), each slot
 * big enough for the largest datagram. The slots are only touched as far
 * as datagrams fill them, so small datagrams cost a page each.
 */
#define UDP_SLOT	65536
#define UDP_CTL		64	/* one IP(V6)_ORIGDSTADDR */
/* Bursts wait in the kernel rather than being dropped there. */
#define UDP_RCVBUF	(4 * 1024 * 1024)
#define UDP_BUCKETS_MIN	1024

time_t
udp_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return ts.tv_sec;
}

/* At most one warning a second: a flood must not flood the log too. */
int
udp_may_warn(struct udp *u)
{
	time_t now = udp_now();

	if (u->warned == now)
		return 0;
	u->warned = now;
	return 1;
}

/* ---- batches ---- */

/* Readies the batch for recvmmsg; names and ctl only for the listener. */
static void
udp_batch_prepare(struct udp *u, int listener)
{
	struct msghdr *h;
	size_t i;

	for (i = 0; i < UDP_BATCH; i++) {
		h = &u->msgs[i].msg_hdr;
		memset(h, 0, sizeof(*h));
		u->iov[i].iov_base = u->bufs + i * UDP_SLOT;
		u->iov[i].iov_len = UDP_SLOT;
		h->msg_iov = &u->iov[i];
		h->msg_iovlen = 1;
		if (listener) {
			h->msg_name = &u->names[i];
			h->msg_namelen = sizeof(u->names[i]);
			h->msg_control = u->ctl + i * UDP_CTL;
			h->msg_controllen = UDP_CTL;
		}
	}
}

/* Datagrams read (0 when none is waiting), or -1 with errno. */
int
udp_batch_recv(struct udp *u, int fd, int listener)
{
	int n;

	udp_batch_prepare(u, listener);
	do {
		n = recvmmsg(fd, u->msgs, UDP_BATCH, MSG_DONTWAIT, NULL);
	} while (n == -1 && errno == EINTR);
	if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return 0;
	return n;
}

/* The original destination that TPROXY kept for a datagram. */
static int
udp_orig_dst(const struct msghdr *h, union udp_addr *orig)
{
	struct cmsghdr *c;

	for (c = CMSG_FIRSTHDR(h); c != NULL;
	    c = CMSG_NXTHDR((struct msghdr *)h, c)) {
		if (c->cmsg_level == SOL_IP && c->cmsg_type == IP_ORIGDSTADDR &&
		    c->cmsg_len >= CMSG_LEN(sizeof(struct sockaddr_in))) {
			memset(orig, 0, sizeof(*orig));
			memcpy(&orig->sin, CMSG_DATA(c), sizeof(orig->sin));
			return 0;
		}
		if (c->cmsg_level == SOL_IPV6 &&
		    c->cmsg_type == IPV6_ORIGDSTADDR &&
		    c->cmsg_len >= CMSG_LEN(sizeof(struct sockaddr_in6))) {
			memset(orig, 0, sizeof(*orig));
			memcpy(&orig->sin6, CMSG_DATA(c), sizeof(orig->sin6));
			return 0;
		}
	}
	return -1;
}

/*
 * Sends n datagrams of the batch, from slot first on, on fd (to, if set,
 * else to fd's peer). Returns how many left; the rest are dropped.
 */
int
udp_batch_send(struct udp *u, int fd, size_t first, size_t n,
    const union udp_addr *to)
{
	struct mmsghdr out[UDP_BATCH];
	size_t i;
	int sent, total = 0, retried = 0;

	memset(out, 0, n * sizeof(out[0]));
	for (i = 0; i < n; i++) {
		u->iov[first + i].iov_len = u->msgs[first + i].msg_len;
		out[i].msg_hdr.msg_iov = &u->iov[first + i];
		out[i].msg_hdr.msg_iovlen = 1;
		if (to != NULL) {
			out[i].msg_hdr.msg_name = (void *)&to->sa;
			out[i].msg_hdr.msg_namelen = addr_len(&to->sa);
		}
	}
	while ((size_t)total < n) {
		sent = sendmmsg(fd, out + total, n - total, MSG_DONTWAIT);
		if (sent > 0) {
			total += sent;
			continue;
		}
		/* An ICMP error of an earlier datagram is reported once. */
		if (sent == -1 && (errno == EINTR || (errno == ECONNREFUSED &&
		    !retried++)))
			continue;
		break;
	}
	return total;
}

/* Datagrams from one client to one destination, first..first+n. */
static void
udp_from_client(struct udp *u, size_t first, size_t n,
    const union udp_addr *orig, time_t now)
{
	const union udp_addr *client = &u->names[first];
	struct udp_flow *f;
	size_t bucket, i;
	uint64_t bytes = 0;
	int sent;

	u->st.dgrams_in += n;
	if ((f = udp_flow_lookup(u, client, orig, &bucket)) == NULL &&
	    (f = udp_flow_new(u, client, orig, bucket)) == NULL) {
		u->st.dropped += n;
		return;
	}
	sent = udp_batch_send(u, f->fd, first, n, NULL);
	for (i = 0; i < (size_t)sent; i++)
		bytes += u->msgs[first + i].msg_len;
	f->dg_up += sent;
	f->bytes_up += bytes;
	f->dropped += n - sent;
	u->st.dropped += n - sent;
	udp_flow_touch(f, now);
}

/* How many datagrams from first on share a client and destination. */
static size_t
udp_run_length(struct udp *u, size_t first, size_t n,
    const union udp_addr *orig)
{
	union udp_addr o;
	size_t i;

	for (i = first + 1; i < n; i++) {
		if (!udp_addr_eq(&u->names[i], &u->names[first]) ||
		    udp_orig_dst(&u->msgs[i].msg_hdr, &o) == -1 ||
		    !udp_addr_eq(&o, orig))
			break;
	}
	return i - first;
}

static void
udp_batch_dispatch(struct udp *u, size_t n)
{
	union udp_addr orig;
	time_t now = udp_now();
	size_t i, run;

	for (i = 0; i < n; i += run) {
		run = 1;
		if (u->msgs[i].msg_hdr.msg_flags & (MSG_TRUNC | MSG_CTRUNC) ||
		    udp_orig_dst(&u->msgs[i].msg_hdr, &orig) == -1) {
			u->st.dgrams_in++;
			u->st.dropped++;
			continue;
		}
		run = udp_run_length(u, i, n, &orig);
		udp_from_client(u, i, run, &orig, now);
	}
}

static void
udp_listener_read(evutil_socket_t fd, short what, void *arg)
{
	struct udp *u = arg;
	int n, rounds;

	for (rounds = 0; rounds < UDP_ROUNDS; rounds++) {
		if ((n = udp_batch_recv(u, fd, 1)) <= 0) {
			if (n == -1 && udp_may_warn(u))
				log_warn("udp listener");
			break;
		}
		udp_batch_dispatch(u, n);
		if (n < UDP_BATCH)
			break;
	}
}

/* Once a second: flows without a datagram for udp-idle-timeout end. */
static void
udp_expire(evutil_socket_t fd, short what, void *arg)
{
	struct udp *u = arg;
	struct udp_flow *f;
	time_t now = udp_now();
	unsigned idle = u->sl->conf->udp_idle_timeout;

	while ((f = TAILQ_FIRST(&u->flows)) != NULL &&
	    now - f->last >= (time_t)idle) {
		u->st.expired++;
		udp_flow_end(f, "idle");
	}
}

/* ---- listeners ---- */

static int
udp_listener_socket(const union udp_addr *want, union udp_addr *bound)
{
	struct sockaddr_storage ss;
	int fd, one = 1, size = UDP_RCVBUF;

	if ((fd = sock_listen(&want->sa, SOCK_DGRAM, 1, &ss)) == -1)
		return -1;
	if ((want->sa.sa_family == AF_INET && setsockopt(fd, SOL_IP,
	    IP_RECVORIGDSTADDR, &one, sizeof(one)) == -1) ||
	    (want->sa.sa_family == AF_INET6 && setsockopt(fd, SOL_IPV6,
	    IPV6_RECVORIGDSTADDR, &one, sizeof(one)) == -1)) {
		close(fd);
		return -1;
	}
	/* Root may go past net.core.rmem_max; others get what they can. */
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size,
	    sizeof(size)) == -1)
		(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size,
		    sizeof(size));
	udp_addr_set(bound, (struct sockaddr *)&ss);
	return fd;
}

/* On the TCP listener's address and port if it is free, else any port. */
static int
udp_listen(struct udp *u, struct udp_listener *l, const struct sockaddr *tcp)
{
	union udp_addr want;
	char buf[ADDR_STRLEN];

	udp_addr_set(&want, tcp);
	if ((l->fd = udp_listener_socket(&want, &l->addr)) == -1 &&
	    errno == EADDRINUSE) {
		if (want.sa.sa_family == AF_INET)
			want.sin.sin_port = 0;
		else
			want.sin6.sin6_port = 0;
		l->fd = udp_listener_socket(&want, &l->addr);
	}
	if (l->fd == -1) {
		log_warn("transparent udp listener %s",
		    addr_str(&want.sa, buf, sizeof(buf)));
		return -1;
	}
	event_assign(&l->ev, u->sl->base, l->fd, EV_READ | EV_PERSIST,
	    udp_listener_read, u);
	if (event_add(&l->ev, NULL) == -1)
		return -1;
	log_info("transparent listener on udp %s",
	    addr_str(&l->addr.sa, buf, sizeof(buf)));
	return 0;
}

static int
udp_alloc(struct udp *u, size_t max_flows)
{
	u->nbuckets = UDP_BUCKETS_MIN;
	while (u->nbuckets < max_flows && u->nbuckets < (1U << 20))
		u->nbuckets <<= 1;
	u->table = calloc(u->nbuckets, sizeof(*u->table));
	u->replies = calloc(u->nbuckets, sizeof(*u->replies));
	u->msgs = calloc(UDP_BATCH, sizeof(*u->msgs));
	u->iov = calloc(UDP_BATCH, sizeof(*u->iov));
	u->names = calloc(UDP_BATCH, sizeof(*u->names));
	u->ctl = calloc(UDP_BATCH, UDP_CTL);
	u->bufs = malloc((size_t)UDP_BATCH * UDP_SLOT);
	if (u->table == NULL || u->replies == NULL || u->msgs == NULL ||
	    u->iov == NULL || u->names == NULL || u->ctl == NULL ||
	    u->bufs == NULL)
		return -1;
	return 0;
}

static void
udp_free(struct udp *u)
{
	size_t i;

	for (i = 0; i < 2; i++) {
		if (u->lis[i].fd == -1)
			continue;
		event_del(&u->lis[i].ev);
		close(u->lis[i].fd);
	}
	if (event_initialized(&u->expire))
		event_del(&u->expire);
	free(u->table);
	free(u->replies);
	free(u->msgs);
	free(u->iov);
	free(u->names);
	free(u->ctl);
	free(u->bufs);
	free(u);
}

int
udp_start(struct sluice *sl)
{
	struct timeval second = { 1, 0 };
	struct listener *tcp[2] = { sl->tcp4, sl->tcp6 };
	struct udp *u;
	size_t i;

	if ((u = calloc(1, sizeof(*u))) == NULL)
		return EXIT_FAIL;
	u->sl = sl;
	u->lis[0].fd = u->lis[1].fd = -1;
	TAILQ_INIT(&u->flows);
	TAILQ_INIT(&u->ending);
	u->seed = arc4random();
	if (udp_alloc(u, sl->conf->udp_max_flows) == -1) {
		log_warn("udp");
		udp_free(u);
		return EXIT_FAIL;
	}
	for (i = 0; i < 2; i++) {
		if (tcp[i] != NULL &&
		    udp_listen(u, &u->lis[i], listener_addr(tcp[i])) == -1) {
			udp_free(u);
			return errno == EPERM ? EX_NOPERM : EXIT_FAIL;
		}
	}
	event_assign(&u->expire, sl->base, -1, EV_PERSIST, udp_expire, u);
	event_add(&u->expire, &second);
	sl->udp = u;
	return 0;
}

void
udp_stop(struct sluice *sl)
{
	struct udp *u = sl->udp;
	struct udp_flow *f;

	if (u == NULL)
		return;
	while ((f = TAILQ_FIRST(&u->flows)) != NULL) {
		udp_flow_unlink(f);
		udp_flow_log_end(f, "sluice stops");
		udp_flow_free(f);
	}
	while ((f = TAILQ_FIRST(&u->ending)) != NULL)
		udp_flow_free(f);
	udp_free(u);
	sl->udp = NULL;
}

size_t
udp_close_orphans(struct sluice *sl)
{
	struct udp *u = sl->udp;
	struct udp_flow *f, *next;
	size_t n = 0;

	if (u == NULL)
		return 0;
	for (f = TAILQ_FIRST(&u->flows); f != NULL; f = next) {
		next = TAILQ_NEXT(f, lru);
		if (conf_service_by_name(sl->conf, f->svc->name) == NULL) {
			udp_flow_end(f, "service removed");
			n++;
		}
	}
	return n;
}

const struct sockaddr *
udp_listener_addr(const struct udp *u, int family)
{
	const struct udp_listener *l;

	if (u == NULL)
		return NULL;
	l = &u->lis[family == AF_INET6];
	return l->fd == -1 ? NULL : &l->addr.sa;
}

/* ---- dump ---- */

static void
udp_dump_flow(const struct udp_flow *f, time_t now, FILE *fp)
{
	char c[ADDR_STRLEN], o[ADDR_STRLEN], d[ADDR_STRLEN];

	fprintf(fp, "  flow %llu %s: udp %s -> %s via %s%s, %s, datagrams up "
	    "%llu down %llu, bytes up %llu down %llu, dropped %llu, idle "
	    "%lld s\n", (unsigned long long)f->id, f->svc->name,
	    addr_str(&f->client.sa, c, sizeof(c)),
	    addr_str(&f->orig.sa, o, sizeof(o)),
	    f->svc->fwd == FWD_TUNNEL ? "tunnel " : "",
	    f->upstream.sa.sa_family == AF_UNSPEC ? "-" :
	    addr_str(&f->upstream.sa, d, sizeof(d)),
	    f->ending ? "ending" : f->treq != NULL ? "connecting" : "open",
	    (unsigned long long)f->dg_up, (unsigned long long)f->dg_down,
	    (unsigned long long)f->bytes_up, (unsigned long long)f->bytes_down,
	    (unsigned long long)f->dropped, (long long)(now - f->last));
}

void
udp_dump(const struct udp *u, FILE *fp)
{
	const struct udp_stats *s;
	const struct udp_flow *f;
	time_t now = udp_now();

	if (u == NULL)
		return;
	s = &u->st;
	fprintf(fp, "\nudp flows (%zu, %zu ending):\n", u->nflows,
	    u->nending);
	TAILQ_FOREACH(f, &u->flows, lru)
		udp_dump_flow(f, now, fp);
	TAILQ_FOREACH(f, &u->ending, lru)
		udp_dump_flow(f, now, fp);
	fprintf(fp, "udp counters: datagrams-in %llu datagrams-out %llu "
	    "unmatched %llu dropped %llu flows %llu expired %llu evicted "
	    "%llu failed %llu\n", (unsigned long long)s->dgrams_in,
	    (unsigned long long)s->dgrams_out,
	    (unsigned long long)s->unmatched, (unsigned long long)s->dropped,
	    (unsigned long long)s->flows, (unsigned long long)s->expired,
	    (unsigned long long)s->evicted, (unsigned long long)s->failed);
}
