/* SPDX-License-Identifier: MIT */
/*
 * The tunnel between a tunneller and a sluice host: identities (pki.c),
 * TLS contexts (mtls.c), the opening message (tunnel_msg.c), the relay of a
 * plain socket over TLS (relay_tls.c), the tunneller's side (tunnel.c) and
 * the host's (host.c).
 */
#ifndef SLUICE_TUNNEL_H
#define SLUICE_TUNNEL_H

#include <sys/socket.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include <openssl/ssl.h>

struct config;
struct event_base;

/* ---- identities (pki.c): `sluice pki init|issue` ---- */

#define PKI_CA_DAYS		3650
#define PKI_IDENTITY_DAYS	365
/*
 * DIR/ca.crt and DIR/ca.key (0600); DIR is created (0700) if missing.
 * Existing files are never overwritten. Returns an exit code (0, 1, 64)
 * after printing what went wrong to errfp.
 */
int	pki_init(const char *dir, unsigned days, FILE *errfp);
/* DIR/NAME.crt and DIR/NAME.key (0600), CN=NAME, signed by DIR/ca.*. */
int	pki_issue(const char *dir, const char *name, unsigned days,
	    FILE *errfp);

/* ---- TLS (mtls.c) ---- */

#define MTLS_ALPN	"sluice/1"
/*
 * A context for the tunneller (server 0) or the host (server 1) from the
 * config's identity: TLS 1.3 only, our certificate and key, peers verified
 * against identity.ca (both directions), ALPN sluice/1. A key file that
 * group or others may read is refused. NULL with a message in err.
 */
SSL_CTX	*mtls_ctx_new(const struct config *, int server, char *err,
	    size_t errlen);
/* 0 if path is a regular file only its owner may read, else -1 and why. */
int	 mtls_key_file_check(const char *path, char *why, size_t len);
/* The verified peer certificate's CN into buf; -1 if none. */
int	 mtls_peer_name(SSL *, char *buf, size_t len);
/*
 * 1 if the handshake agreed on sluice/1. The host refuses clients that do
 * not offer it, but TLS lets a server ignore ALPN, so the tunneller must
 * check this once its handshake completes and drop the connection if 0.
 * Client contexts keep no session cache of their own: collect sessions
 * with SSL_CTX_sess_set_new_cb and SSL_set_session one per host.
 */
int	 mtls_alpn_ok(SSL *);
/* The first OpenSSL error (or errno) as text, for logs; clears the queue. */
const char *mtls_error(int ssl_err, char *buf, size_t len);

/* ---- opening message (tunnel_msg.c) ---- */

/*
 * Every message: "SL", version (1), type, body length (u16 big endian,
 * at most TMSG_MAX_BODY), body. Integers big endian.
 *   open  body: protocol (6 tcp, 17 udp), service name (u8 length, 1..255
 *               bytes, printable ASCII), destination, source; an address
 *               is family (4 or 6), 4 or 16 bytes, port (u16).
 *   reply body: status (TMSG_*), reason (u8 length, 0..255 printable).
 * A body must be exactly as long as its contents.
 */
#define TMSG_VERSION	1
#define TMSG_HDR	6
#define TMSG_MAX_BODY	512
#define TMSG_MAX	(TMSG_HDR + TMSG_MAX_BODY)
#define TMSG_OPEN	1
#define TMSG_REPLY	2

enum tmsg_status {
	TMSG_OK = 0,
	TMSG_NO_SERVICE = 1,	/* the host does not host this service */
	TMSG_DENIED = 2,	/* identity not in the service's allow list */
	TMSG_ADDR_DENIED = 3,	/* original destination not allowed */
	TMSG_DIAL_FAILED = 4,	/* the server could not be reached */
	TMSG_UNSUPPORTED = 5,	/* version, protocol or type unknown */
	TMSG_BAD_REQUEST = 6,	/* malformed opening message */
	TMSG_BUSY = 7,		/* the host is out of resources */
};

struct tmsg_open {
	uint8_t			proto;		/* IPPROTO_TCP, IPPROTO_UDP */
	char			service[256];
	struct sockaddr_storage	dst, src;
};

struct tmsg_reply {
	uint8_t			status;		/* enum tmsg_status */
	char			reason[256];
};

/* Bytes written (at most TMSG_MAX), or -1 if it does not fit or is bad. */
ssize_t	tmsg_open_encode(const struct tmsg_open *, uint8_t *buf, size_t len);
ssize_t	tmsg_reply_encode(const struct tmsg_reply *, uint8_t *buf,
	    size_t len);
/*
 * Parse from the start of buf: the message's length when it is complete
 * and good, 0 when more bytes are needed, -1 when it is malformed (*why
 * says how; *status is the reply to send: TMSG_UNSUPPORTED for a newer
 * version or unknown type, else TMSG_BAD_REQUEST).
 */
ssize_t	tmsg_open_parse(const uint8_t *buf, size_t len, struct tmsg_open *,
	    int *status, const char **why);
ssize_t	tmsg_reply_parse(const uint8_t *buf, size_t len, struct tmsg_reply *,
	    const char **why);
const char *tmsg_status_str(int status);
/* How many more bytes the message at buf needs; 0: parse it now. */
size_t	tmsg_need(const uint8_t *buf, size_t len);

/* ---- a plain socket relayed over TLS (relay_tls.c) ---- */

/*
 * Relays the plain socket fd and the TLS connection ssl (handshake done,
 * on its own nonblocking socket) until both directions have ended. On the
 * TLS side bytes travel in chunks (u32 length, bytes); an empty chunk ends
 * a direction, and EOF on fd becomes one, one from the peer becomes
 * shutdown(fd, SHUT_WR). A flow that ends so in both directions ends clean
 * and leaves the connection in step for the next flow: nothing past the
 * peer's empty chunk is read. pre holds TLS-side bytes read before the
 * relay began. A flow that moves no byte for idle seconds (0: never) ends
 * with ETIMEDOUT. done runs once, never from within relay_tls_new(), and
 * may free the relay; neither fd nor ssl is owned.
 */
struct relay_tls;
typedef void	(*relay_tls_done_cb)(struct relay_tls *, void *arg);
/* A chunk's header: its length, u32 big-endian. */
#define RELAY_TLS_HDR	4
/* Frames n bytes of data as one chunk at out: RELAY_TLS_HDR + n bytes. */
size_t		 relay_tls_chunk(uint8_t *out, const void *data, size_t n);
struct relay_tls *relay_tls_new(struct event_base *, int fd, SSL *ssl,
		    const uint8_t *pre, size_t npre, unsigned idle,
		    relay_tls_done_cb, void *arg);
/*
 * The same for a datagram socket fd (a connected UDP socket, an AF_UNIX
 * SOCK_DGRAM socketpair end), without pre. On the TLS side each chunk is
 * one datagram: a u32 big-endian length, the datagram's size + 1, then
 * the datagram. An empty datagram is a chunk of length 1 and no bytes;
 * length 0 ends the flow; over 65532 (a datagram of 65531 bytes, where
 * UDP carries at most 65527) is EPROTO. Up, each recv(2) on fd is one
 * chunk (a datagram too long for one is dropped). Down, each chunk is one
 * send(2): it waits while fd is full, holding back what follows, and any
 * other error drops that datagram. fd has no end of its own:
 * relay_tls_end() ends the flow, and the peer's end chunk ends both
 * directions (no shutdown(2) of fd). Errors that bring ICMP news of an
 * earlier datagram (ECONNREFUSED, EHOSTUNREACH, ...) count as drops and
 * do not end it. A flow ended both ways ends clean and leaves the
 * connection in step, as a stream does.
 */
struct relay_tls *relay_tls_new_dgram(struct event_base *, int fd, SSL *ssl,
		    unsigned idle, relay_tls_done_cb, void *arg);
/*
 * Ends the up direction as EOF on fd would: what fd holds already goes
 * on, then the end chunk, then nothing more is read. The relay runs on
 * until the peer's end chunk (what comes down before it is passed on, or
 * dropped if fd's peer has gone), then done runs, never from within this.
 * In either mode; a no-op once done ran.
 */
void		 relay_tls_end(struct relay_tls *);
/*
 * n bytes of fd went to the peer before the relay began (tunnel_open());
 * emptied: fd had no more then, so the relay waits for the poller before
 * reading it again.
 */
void		 relay_tls_sent(struct relay_tls *, uint64_t n, int emptied);
/* Bytes fd -> TLS (up) and TLS -> fd (down) so far: payload only. */
void		 relay_tls_bytes(const struct relay_tls *, uint64_t *up,
		    uint64_t *down);
/*
 * Datagrams passed on up and down so far, and those lost either way: a
 * send(2) failed, one was too long for a chunk, or ICMP reported one.
 */
void		 relay_tls_dgrams(const struct relay_tls *, uint64_t *up,
		    uint64_t *down, uint64_t *dropped);
/* RELAY_AB_SHUT (up) and RELAY_BA_SHUT (down) as in sluice.h. */
int		 relay_tls_state(const struct relay_tls *);
/*
 * The errno that ended it, 0 if clean; *side: 0 the plain socket, 1 the
 * TLS peer (EPROTO: a TLS error or a chunk over the maximum; ECONNRESET:
 * the connection went, or was closed before the flow's end), -1 neither
 * (memory, idle timeout). *detail: text for logs, or "".
 */
int		 relay_tls_error(const struct relay_tls *, int *side,
		    const char **detail);
void		 relay_tls_free(struct relay_tls *);

/* ---- the tunneller's side (tunnel.c) ---- */

struct sluice;
struct service;
struct tunnel;
struct tunnel_req;
/*
 * A flow's first bytes, at most this many, go in the opening's record as
 * its first chunk, before the answer: the host reads exactly the opening,
 * and a refusal closes the connection, so a refused flow's bytes are never
 * taken for anything.
 */
#define TUNNEL_FIRST_MAX	4096
/*
 * The end of a tunnel_open(): on acceptance ssl is the tunnel connection
 * (the callee owns it and its socket from then on: tunnel_conn_close(),
 * tunnel_conn_release()) with nothing the host sent for the flow read
 * yet, host the host's address; on refusal or failure ssl is NULL and
 * status (enum tmsg_status, or -1 when no host could be reached) and
 * reason say why.
 */
typedef void	(*tunnel_cb)(void *arg, SSL *ssl,
		    const struct sockaddr *host, int status, const char *reason);
/*
 * Creates sl->tunnel when conf has a service that forwards through a
 * tunnel, or renews its identity after a reload (for new connections);
 * -1 after logging why (an unusable identity).
 */
int		 tunnel_apply(struct sluice *, const struct config *);
void		 tunnel_free(struct tunnel *);
/*
 * Opens a tunnelled flow for svc from src to dst over the first of the
 * service's hosts that is not backing off, sending the nfirst bytes of
 * first (TCP only, at most TUNNEL_FIRST_MAX) with the opening. cb runs
 * once, later, unless the request is cancelled; NULL (and *why) when it
 * failed at once.
 */
struct tunnel_req *tunnel_open(struct tunnel *, const struct service *,
		    int proto, const struct sockaddr *src,
		    const struct sockaddr *dst, const void *first,
		    size_t nfirst, tunnel_cb, void *arg, const char **why);
void		 tunnel_cancel(struct tunnel_req *);
/* Closes a connection tunnel_cb handed over; a reset unless clean. */
void		 tunnel_conn_close(SSL *, int clean);
/*
 * Gives back a connection whose relay ended cleanly in both directions
 * (relay_tls_error() 0): it carries the host's next flow.
 */
void		 tunnel_conn_release(struct tunnel *, SSL *,
		    const struct sockaddr *host);
void		 tunnel_dump(const struct tunnel *, FILE *);

#endif /* SLUICE_TUNNEL_H */
