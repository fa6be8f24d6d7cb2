/* SPDX-License-Identifier: MIT */
/* Nameserver thread: wire format, name table, address pool, resolver setup. */
#ifndef SLUICE_DNS_H
#define SLUICE_DNS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "sluice.h"

#define DNS_NAME_MAX	255		/* wire length, RFC 1035 */
#define DNS_TEXT_MAX	254		/* presentation, no trailing dot */
#define DNS_UDP_MIN	512
#define DNS_UDP_MAX	4096		/* our EDNS0 buffer size */
#define DNS_TCP_MAX	65535

/* RR types and classes we handle by name. */
#define DNS_T_A		1
#define DNS_T_NS	2
#define DNS_T_CNAME	5
#define DNS_T_SOA	6
#define DNS_T_AAAA	28
#define DNS_T_OPT	41
#define DNS_T_ANY	255
#define DNS_C_IN	1

#define DNS_R_NOERROR	0
#define DNS_R_FORMERR	1
#define DNS_R_SERVFAIL	2
#define DNS_R_NXDOMAIN	3
#define DNS_R_NOTIMP	4
#define DNS_R_REFUSED	5
/* Extended (EDNS0) rcode: the upper 8 bits travel in the OPT record. */
#define DNS_R_BADVERS	16

/* ---- wire.c: bounds-checked cursor over untrusted bytes ---- */

#define DNS_HDR_LEN	12
#define DNS_PTR_MAX	16		/* compression pointers per name */
#define DNS_LABEL_MAX	63

/* Header flags (the second 16-bit word). */
#define DNS_F_QR	0x8000
#define DNS_F_AA	0x0400
#define DNS_F_TC	0x0200
#define DNS_F_RD	0x0100
#define DNS_F_RA	0x0080
#define DNS_F_CD	0x0010
#define DNS_OPCODE(f)	(((f) >> 11) & 0xf)
#define DNS_RCODE(f)	((f) & 0xf)
#define DNS_OPT_DO	0x8000		/* in the OPT record's TTL */

/*
 * A reader with a sticky error: once a read runs past the end or a name is
 * malformed, err is set and every later read returns zeroes, so callers
 * check once at the end (OpenSMTPD unpack_dns.c, unbound sldns_buffer).
 */
struct wire {
	const uint8_t	*buf;
	size_t		 len, off;
	int		 err;
};

void	wire_init(struct wire *, const uint8_t *, size_t);
uint8_t	wire_u8(struct wire *);
uint16_t wire_u16(struct wire *);
uint32_t wire_u32(struct wire *);
void	wire_skip(struct wire *, size_t);
/*
 * Reads a possibly compressed name into text form ("www.example.com",
 * lowercased, "" for the root). Pointers must point backwards, at most
 * 16 of them; total wire length at most 255; labels of letters, digits,
 * '-' and '_' only (anything else makes the name unusable for us: err).
 * "Backwards" means before the start of the labels being read, and past
 * the header: each pointer lands strictly earlier than the previous one,
 * so no loop can be built. Returns 0, or -1 with err set.
 */
int	wire_name(struct wire *, char out[DNS_TEXT_MAX + 1]);

/* A writer into a caller's buffer; err is sticky on overflow. */
struct wbuf {
	uint8_t		*buf;
	size_t		 cap, len;
	int		 err;
};

void	wbuf_init(struct wbuf *, uint8_t *, size_t cap);
void	wbuf_u8(struct wbuf *, uint8_t);
void	wbuf_u16(struct wbuf *, uint16_t);
void	wbuf_u32(struct wbuf *, uint32_t);
void	wbuf_bytes(struct wbuf *, const void *, size_t);
/*
 * Writes a text name in uncompressed wire form ("" or "." is the root; one
 * trailing dot is accepted). An empty or overlong label, or a name over
 * 255 bytes, sets err.
 */
void	wbuf_name(struct wbuf *, const char *);

/* A parsed query: header, one question, and its EDNS0 OPT if any. */
struct dns_query {
	uint16_t	id;
	uint16_t	flags;		/* as received */
	char		qname[DNS_TEXT_MAX + 1];	/* lowercased */
	uint16_t	qtype, qclass;
	int		edns;		/* an OPT record was present */
	uint16_t	edns_udp;	/* its payload size (>= 512) */
	uint8_t		edns_version;
	int		edns_do;	/* DO bit */
	size_t		question_len;	/* bytes of header + question */
	/* qname as received: resolvers that randomise case (0x20) want it. */
	char		qname_echo[DNS_TEXT_MAX + 1];
};

/*
 * Parses a query. Returns 0, or a response code (FORMERR, NOTIMP) for a
 * query that deserves an error reply, or -1 for bytes that deserve no
 * reply at all (a response, too short for a header). q->id is set
 * whenever a header was read, so errors can be answered.
 * DNS_R_BADVERS: the query is well formed but asks for an EDNS version
 * above 0; q is complete, answer it with dns_build_response() and
 * rcode DNS_R_BADVERS (or dns_build_error()).
 * A query with zero or several questions, TC set, answer or authority
 * records, more than one additional record or one that is not an OPT,
 * or trailing bytes is a FORMERR; so is a qname with bytes other than
 * letters, digits, '-' and '_' (no service can have such a name).
 */
int	dns_parse_query(const uint8_t *, size_t, struct dns_query *);
/* The UDP reply size q allows: 512, or its EDNS size up to DNS_UDP_MAX. */
size_t	dns_udp_limit(const struct dns_query *);

/* An answer's records: addresses of one family for q->qname. */
struct dns_answer {
	int		 rcode;
	int		 aa;		/* authoritative: a service name */
	int		 ra;		/* recursion available */
	const struct cidr *addrs;	/* host addresses, one family */
	size_t		 naddrs;
	uint32_t	 ttl;
};

/*
 * Builds the response to q into out (at most maxlen bytes, which is the
 * client's UDP limit or DNS_TCP_MAX). Echoes the question and an OPT
 * record when the query had one. If the answer does not fit, returns a
 * truncated response with TC set and no answers. Returns its length, or
 * 0 if not even that fits (maxlen below header + question + OPT).
 * Answer owner names point at the question (offset 12); RD and CD are
 * copied from the query. An rcode above 15 needs EDNS: without an OPT in
 * the query it is sent as SERVFAIL. NODATA is NOERROR with no addresses.
 */
size_t	dns_build_response(const struct dns_query *, const struct dns_answer *,
	    uint8_t *out, size_t maxlen);
/*
 * A bare error response (FORMERR, NOTIMP, SERVFAIL...) echoing the id,
 * the opcode, RD and the question if it can be read (else the header
 * only). A query that dns_parse_query() accepts (or answers BADVERS)
 * gets its OPT record too. Returns the length, or 0 when no reply must be
 * sent: fewer than 12 bytes, or QR set (never answer a response).
 */
size_t	dns_build_error(const uint8_t *query, size_t qlen, int rcode,
	    uint8_t *out, size_t maxlen);

/* ---- names.c: which service a hostname belongs to ---- */

struct dns_names;

/*
 * Built from the config's services (hostname and *.wildcard addresses).
 * Exact names win over wildcards; of wildcards the longest suffix wins; of
 * equals the first service in config order. "*.docs.test" matches
 * "a.docs.test" and "a.b.docs.test" but not "docs.test". Case-insensitive.
 */
struct dns_names *dns_names_new(const struct config *);
void		  dns_names_free(struct dns_names *);
/*
 * The service for name, or NULL; *wildcard (may be NULL) says how it
 * matched. name is in wire_name()'s text form: no trailing dot ("a.test."
 * matches nothing: strip it first); any case. The table is immutable
 * once built, so lookups from another thread need no lock; services are
 * the config's, which must outlive the table.
 */
const struct service *dns_names_lookup(const struct dns_names *,
		    const char *name, int *wildcard);
/* Distinct names: exact ones plus wildcard suffixes. */
size_t		  dns_names_count(const struct dns_names *);

/* ---- pool.c: addresses handed out for names ---- */

struct pool;

/*
 * A pool over range (dns.ip-range), persisted in path (the state dir's
 * "pool" file; NULL: not persisted). Reserved: the network and broadcast
 * addresses (not of a /31 or /32), x.x.x.0 and x.x.x.255 in ranges of a
 * /24 or more, 169.254.169.254, 169.254.0.0/24 and 169.254.255.0/24; for
 * v6 the network address and the RFC 2526 anycast top 128. So the first
 * of 169.254.0.0/16 is 169.254.1.1. Allocation is next fit (after the
 * last one, wrapping), at most 65536 candidates per call. in_use(addr,
 * arg) is asked before handing an address out, so that addresses on the
 * host are skipped (NULL: none are); loaded ones it claims are dropped.
 * The pool is not thread-safe: one thread uses it.
 */
typedef int	(*pool_in_use_cb)(const struct cidr *, void *arg);
struct pool	*pool_new(const struct cidr *range, const char *path,
		    pool_in_use_cb in_use, void *arg);
void		 pool_free(struct pool *);
/*
 * The address for name: the one it had (this run or a previous one, from
 * the file) or a new one. 0, or -1 when the pool is exhausted.
 */
int		 pool_get(struct pool *, const char *name, struct cidr *out);
/* The name that holds addr, or NULL. */
const char	*pool_name_of(const struct pool *, const struct cidr *addr);
/*
 * Releases every allocation whose name keep(name, arg) rejects (a name no
 * longer configured). Returns how many were released.
 */
size_t		 pool_retain(struct pool *, int (*keep)(const char *, void *),
		    void *arg);
/*
 * Writes the allocations to the file (atomically: temp file + rename).
 * A no-op when nothing changed since the last load or save.
 */
int		 pool_save(struct pool *);
void		 pool_dump(const struct pool *, FILE *);
/*
 * An in_use callback: is addr on one of the host's interfaces? Uses a
 * per-thread snapshot (getifaddrs) at most a second old; arg is unused.
 */
int		 pool_in_use_host(const struct cidr *addr, void *arg);

/* ---- server.c: the nameserver thread ---- */

struct dns_server;

/*
 * Called in the main thread (never in the resolver thread) before an
 * answer carrying addr for name leaves: install the interception of addr
 * for svc (pool: also a "local" route). Returns 0, or -1 (the query then
 * gets SERVFAIL). add 0: the name was released, remove it.
 * Changes come in batches: the callback may defer the rules until a call
 * with name NULL ends the batch, which must install them (and return 0)
 * or undo the batch's additions (-1, and they all get SERVFAIL); no
 * answer leaves before that. svc NULL with add 1: a name to list (hosts
 * file) but not intercept, the self-test's.
 */
typedef int	(*dns_intercept_cb)(void *arg, int add, const char *name,
		    const struct service *svc, const struct cidr *addr,
		    int pool);

/*
 * The address families whose flows can be intercepted (a transparent
 * listener of that family is up): only their addresses are handed out.
 */
#define DNS_FAMILY(af)	((af) == AF_INET ? 0x1u : (af) == AF_INET6 ? 0x2u : 0u)

/*
 * Binds UDP and TCP on conf->dns_listen (in the caller's thread, so that
 * errors are reported at once), loads the pool from state_dir, and starts
 * the resolver thread with its own event base. NULL on failure (logged).
 * main_base is the main thread's loop, where cb runs. families: a set of
 * DNS_FAMILY() bits.
 */
struct dns_server *dns_server_start(struct event_base *main_base,
		    struct config *conf, const char *state_dir,
		    unsigned families, dns_intercept_cb cb, void *arg);
/* Hands a new configuration (a reference is taken) to the thread. */
void		 dns_server_reload(struct dns_server *, struct config *);
/* Stops and joins the thread, closes sockets, saves the pool. */
void		 dns_server_stop(struct dns_server *);
/*
 * Self-test: adds a test name, resolves it through the system resolver
 * (getaddrinfo) and removes it. 0 on success; on failure logs what to fix.
 */
int		 dns_server_self_test(struct dns_server *);
void		 dns_server_dump(struct dns_server *, FILE *);

/* ---- resolv.c: making the system resolver ask us ---- */

enum resolv_kind { RESOLV_NONE, RESOLV_SYSTEMD, RESOLV_CONF, RESOLV_HOSTS };

/*
 * Points the system resolver at our nameserver: mode is dns.resolver
 * ("auto", "systemd-resolved", "resolv.conf", "file:PATH", "none"). For
 * hosts files, names/addrs are written in a marked block. What was changed
 * is recorded in the state dir so that resolv_cleanup() can undo it after
 * a crash. Paths come from SLUICE_RESOLV_CONF / SLUICE_HOSTS in the
 * environment when set (tests), else /etc/resolv.conf and /etc/hosts.
 * Returns the kind used, or -1.
 */
struct resolv_entry {
	const char	*name;
	struct cidr	 addr;
};
int	resolv_setup(const char *mode, const struct endpoint *ns,
	    const char *state_dir);
/*
 * The names for the hosts-file block (exact names only; wildcards are
 * skipped). May be called before resolv_setup, which then writes them at
 * once; with RESOLV_HOSTS active, rewrites the block if it changed.
 */
int	resolv_update_hosts(const struct resolv_entry *, size_t n);
/*
 * The service domains ("corp.test", lowercase, no "*.") that
 * systemd-resolved should send to us (routing domains "~corp.test"). Like
 * resolv_update_hosts: before resolv_setup, or to change them later (a
 * reload). None: resolved asks us beside its other servers for any name.
 */
int	resolv_update_domains(const char *const *domains, size_t n);
/*
 * Undoes resolv_setup byte for byte (a file edited by someone else since:
 * only our block is removed) and forgets the names and domains. The
 * resolv_* functions keep this process's setup in static state: call
 * them from one thread.
 */
int	resolv_restore(const char *state_dir);
/*
 * After a crash: undoes whatever the state dir says was changed. With no
 * record there (the state dir went with /run at a reboot), removes our
 * marked blocks from resolv.conf and the hosts file and our resolved
 * drop-in wherever they are found. resolv_setup calls it first.
 */
int	resolv_cleanup(const char *state_dir);
const char *resolv_kind_name(int kind);

/*
 * ---- server internals: server.c (main thread's side), server_thread.c
 * (the resolver thread), server_tcp.c, chan.c, upstream.c ----
 */

#define DNS_SVC_MAX	64		/* service names (conf.c) */
/*
 * The self-test's names live under this domain, which the resolver setup
 * routes to us too (systemd-resolved asks us only for routed domains).
 */
#define DNS_SELF_TEST_DOMAIN	"self-test.sluice.test"

/* Counters the resolver thread bumps and `sluice dump` reads. */
enum dns_stat {
	DNS_ST_UDP, DNS_ST_TCP, DNS_ST_ANSWERED, DNS_ST_NODATA,
	DNS_ST_FORWARDED, DNS_ST_UPSTREAM_FAILED, DNS_ST_REFUSED,
	DNS_ST_NXDOMAIN, DNS_ST_SERVFAIL, DNS_ST_MALFORMED, DNS_ST_NOTIMP,
	DNS_ST_TRUNCATED, DNS_ST_TCP_CONNS, DNS_ST_TCP_EVICTED,
	DNS_ST_OVERLOAD, DNS_ST_INTERCEPTS, DNS_ST_SELF_TEST,
	DNS_ST_MAX
};
/* Relaxed atomics: a dump may be a count behind, never torn. */
struct dns_stats {
	_Atomic uint64_t n[DNS_ST_MAX];
};
#define dns_stat_inc(st, i) \
	atomic_fetch_add_explicit(&(st)->n[(i)], 1, memory_order_relaxed)
#define dns_stat_get(st, i) \
	atomic_load_explicit(&(st)->n[(i)], memory_order_relaxed)
const char	*dns_stat_name(int);

/*
 * chan.c: the threads' only link, one end of a SOCK_SEQPACKET pair each.
 * Messages are fixed-size and validated on receipt like any input.
 */
enum dns_msg_type {
	DNS_MSG_INTERCEPT = 1,	/* thread -> main: intercept addr for name */
	DNS_MSG_REMOVE,		/* thread -> main: name released */
	DNS_MSG_ACK,		/* main -> thread (INTERCEPT), thread -> main (TEST) */
	DNS_MSG_RELOAD,		/* main -> thread: conf, a reference passed on */
	DNS_MSG_TEST,		/* main -> thread: answer name (ok 1) or stop (ok 0) */
	DNS_MSG_STOP,		/* main -> thread */
};
struct dns_msg {
	uint32_t	 type;
	uint32_t	 seq;
	int32_t		 ok;
	int32_t		 pool;		/* addr is a pool address */
	struct cidr	 addr;
	char		 service[DNS_SVC_MAX + 1];
	char		 name[DNS_TEXT_MAX + 1];
	struct config	*conf;
};
struct dns_chan;
#define DNS_CHAN_BATCH	256	/* messages read per wake-up, for fairness */
/* cb gets each valid message; NULL when the other end is gone. */
typedef void	(*dns_chan_cb)(const struct dns_msg *, void *arg);
/* After each batch of messages (NULL: not wanted). */
typedef void	(*dns_chan_flush_cb)(void *arg);
struct dns_chan	*dns_chan_new(struct event_base *, int fd, dns_chan_cb,
		    dns_chan_flush_cb, void *arg);
/* Queues when the socket is full; -1 only when the queue is full too. */
int		 dns_chan_send(struct dns_chan *, const struct dns_msg *);
/* Blocks up to ms for messages, dispatching them (main thread, start-up). */
int		 dns_chan_poll(struct dns_chan *, int ms);
/* No more messages: the other end reads EOF after what was sent. */
void		 dns_chan_shutdown(struct dns_chan *);
void		 dns_chan_free(struct dns_chan *);	/* closes fd */

/* upstream.c: forwarding with c-ares, sockets marked with bypass_mark. */
struct upstream;
/* status 0 and the answer, or -1 (timeout, refused, no server left). */
typedef void	(*upstream_cb)(void *arg, int status, const uint8_t *,
		    size_t);
struct upstream	*upstream_new(struct event_base *, const struct config *);
int		 upstream_servers(struct upstream *, const struct config *);
/* query is a complete DNS message; cb is called exactly once. */
void		 upstream_send(struct upstream *, const uint8_t *, size_t,
		    upstream_cb, void *arg);
/* Pending queries' callbacks run first, with status -1. */
void		 upstream_free(struct upstream *);

/* server_tcp.c: RFC 7766 connections on one listening socket. */
struct dns_tcp;
struct dns_tcp_conn;
/* Each complete query; it must get exactly one dns_tcp_reply(). */
typedef void	(*dns_tcp_query_cb)(void *arg, struct dns_tcp_conn *,
		    const uint8_t *, size_t);
struct dns_tcp	*dns_tcp_new(struct event_base *, int fd, dns_tcp_query_cb,
		    void *arg, struct dns_stats *);
/* Queues a reply (len 0: none); the connection may have gone already. */
void		 dns_tcp_reply(struct dns_tcp_conn *, const uint8_t *,
		    size_t);
/* Every query must have had its reply first. */
void		 dns_tcp_free(struct dns_tcp *);

/* server_thread.c: the resolver thread's state and loop. */
struct dns_thread;
/*
 * Owns the fds from the call on; owns the pool and the config reference
 * only on success.
 */
struct dns_thread *dns_thread_new(struct config *, struct pool *,
		    unsigned families, int udp_fd, int tcp_fd, int chan_fd,
		    struct dns_stats *);
/*
 * Calls cb(arg, name, service, addr) for each pool address handed out
 * already (exact names get theirs in dns_thread_new): before the thread
 * runs, so that the main thread can install them in one batch.
 */
size_t		 dns_thread_names(struct dns_thread *, void (*)(void *,
		    const char *, const char *, const struct cidr *), void *);
/* Runs until STOP or until the main thread's end closes. */
void		 dns_thread_run(struct dns_thread *);
/* Saves and frees the pool, closes the sockets, drops the config. */
void		 dns_thread_free(struct dns_thread *);

#endif /* SLUICE_DNS_H */
