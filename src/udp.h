/* SPDX-License-Identifier: MIT */
/*
 * Intercepted UDP flows, inside the tproxy mode: udp.c receives every
 * intercepted datagram in batches and hands it to its flow; udp_flow.c
 * keeps the flow table and the reply sockets and forwards directly;
 * udp_tunnel.c carries a flow through the tunnel.
 */
#ifndef SLUICE_UDP_H
#define SLUICE_UDP_H

#include <sys/queue.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <stdint.h>
#include <time.h>

#include <event2/event.h>
#include <event2/event_struct.h>
#include <openssl/ssl.h>

#include "sluice.h"

/* Datagrams move in batches (recvmmsg, sendmmsg), a few per wakeup. */
#define UDP_BATCH	16
#define UDP_ROUNDS	8

union udp_addr {
	struct sockaddr		sa;
	struct sockaddr_in	sin;
	struct sockaddr_in6	sin6;
};

/*
 * Replies leave from the original destination: one transparent socket
 * bound to it serves every flow to that destination.
 */
struct udp_reply {
	struct udp_reply	*next;		/* hash chain */
	union udp_addr		 addr;
	int			 fd;
	unsigned		 refs;		/* flows using it */
};

struct udp_flow {
	TAILQ_ENTRY(udp_flow)	 lru;		/* oldest datagram first */
	struct udp_flow		*next;		/* hash chain */
	struct udp		*udp;
	uint64_t		 id;
	struct config		*conf;		/* referenced: svc is in it */
	const struct service	*svc;
	union udp_addr		 client, orig;
	union udp_addr		 upstream;	/* direct, or the tunnel host */
	struct udp_reply	*reply;
	int			 fd;		/* upstream, or our socketpair end */
	struct event		 ev;		/* EV_READ on fd: replies */
	time_t			 last;		/* a datagram, either way */
	uint64_t		 dg_up, dg_down, bytes_up, bytes_down;
	uint64_t		 dropped;
	/* forward: tunnel */
	int			 tfd;		/* the relay's socketpair end */
	struct tunnel_req	*treq;
	SSL			*ssl;
	struct relay_tls	*trelay;
	struct event		 linger;	/* an ending flow's deadline */
	int			 ending;	/* out of the table, relay ends */
};
TAILQ_HEAD(udp_flow_list, udp_flow);

struct udp_listener {
	int			 fd;
	union udp_addr		 addr;
	struct event		 ev;
};

struct udp_stats {
	uint64_t	dgrams_in, dgrams_out;	/* from clients, to clients */
	uint64_t	unmatched;		/* no service for them */
	uint64_t	dropped;		/* could not be passed on */
	uint64_t	flows, expired, evicted, failed;
};

struct udp {
	struct sluice		*sl;
	struct udp_listener	 lis[2];	/* v4, v6; fd -1 if none */
	struct udp_flow		**table;
	struct udp_reply	**replies;
	size_t			 nbuckets;	/* a power of two */
	uint32_t		 seed;
	struct udp_flow_list	 flows;		/* in the table, by age */
	struct udp_flow_list	 ending;	/* waiting for their relay */
	size_t			 nflows, nending;
	struct event		 expire;
	struct mmsghdr		*msgs;		/* a batch of datagrams */
	struct iovec		*iov;
	uint8_t			*bufs;
	union udp_addr		*names;
	uint8_t			*ctl;
	struct udp_stats	 st;
	time_t			 warned;	/* rate limit for warnings */
};

/* udp.c */
time_t	udp_now(void);
/* 1 at most once a second: a flood must not flood the log too. */
int	udp_may_warn(struct udp *);
/*
 * Reads up to a batch of datagrams from fd into u's slots (with sender
 * and original destination for the listener): how many, 0 when none
 * waits, or -1 with errno.
 */
int	udp_batch_recv(struct udp *, int fd, int listener);
/*
 * Sends slots first..first+n on fd (to to, if set, else to fd's peer):
 * how many left; the rest are dropped.
 */
int	udp_batch_send(struct udp *, int fd, size_t first, size_t n,
	    const union udp_addr *to);

/* udp_flow.c */
void	udp_addr_set(union udp_addr *, const struct sockaddr *);
int	udp_addr_eq(const union udp_addr *, const union udp_addr *);
/* The flow of (client, orig), or NULL; *bucket is where it goes. */
struct udp_flow *udp_flow_lookup(const struct udp *,
	    const union udp_addr *client, const union udp_addr *orig,
	    size_t *bucket);
/*
 * A new flow for the service that covers (client, orig), in the table;
 * NULL when none does or it cannot be forwarded (said in the log).
 */
struct udp_flow *udp_flow_new(struct udp *, const union udp_addr *client,
	    const union udp_addr *orig, size_t bucket);
/* A datagram went either way: the flow is the youngest. */
void	udp_flow_touch(struct udp_flow *, time_t now);
/* Out of the table: later datagrams of its client start a new flow. */
void	udp_flow_end(struct udp_flow *, const char *why);
/* Takes the flow out of the table and the age list. */
void	udp_flow_unlink(struct udp_flow *);
/* Frees an ending or failed flow (the tunnel connection handled first). */
void	udp_flow_free(struct udp_flow *);
void	udp_flow_log_end(const struct udp_flow *, const char *why);

/* udp_tunnel.c */
/*
 * Opens the tunnel for a new flow: 0, or -1 with f->fd -1 when its
 * socketpair failed (errno says why), else after logging why.
 */
int	udp_tunnel_open(struct udp_flow *);
/* The flow leaves the table: ends its relay (or frees it at once). */
void	udp_tunnel_end(struct udp_flow *);
void	udp_tunnel_close(struct udp_flow *);

#endif /* SLUICE_UDP_H */
