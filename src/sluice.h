/* SPDX-License-Identifier: MIT */
/* sluice: core types shared by the daemon's modules (config, services, flows). */
#ifndef SLUICE_H
#define SLUICE_H

#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stddef.h>
#include <sysexits.h>

/* Exit codes of DESIGN.md; EX_* come from <sysexits.h>. */
#define EXIT_OK		0
#define EXIT_FAIL	1
/* EX_USAGE 64, EX_UNAVAILABLE 69, EX_NOPERM 77, EX_CONFIG 78 */

#define SLUICE_DEFAULT_CONFIG	SYSCONFDIR "/sluice/sluice.yaml"
#define SLUICE_DEFAULT_STATEDIR	"/run/sluice"
#define SLUICE_CTL_SOCKET	"sluice.sock"
#define SLUICE_PID_FILE		"sluice.pid"

/* Everything sluice puts in the kernel carries one of these tags. */
#define SLUICE_RTPROT		83	/* route and rule protocol ("S") */
#define SLUICE_RULE_PRIO	9100	/* policy rule priority */

#define PROTO_TCP	0x1
#define PROTO_UDP	0x2

/* ---- addresses (src/addr.c): pure parsing and formatting ---- */

/* An address with a prefix length; family AF_INET or AF_INET6. */
struct cidr {
	int		family;
	uint8_t		addr[16];	/* network byte order, v4 in first 4 */
	uint8_t		prefixlen;
};

struct port_range {
	uint16_t	lo, hi;		/* inclusive */
};

/* "1.2.3.4:80", "[fd00::1]:80"; port 0 allowed iff allow_zero. */
int	addr_parse_endpoint(const char *, struct sockaddr_storage *,
	    socklen_t *, int allow_zero, const char **why);
/* "10.0.0.0/8", "fd00::/64", "10.1.2.3" (host prefix). */
int	addr_parse_cidr(const char *, struct cidr *, const char **why);
/* "80", "8000-8100" */
int	addr_parse_port_range(const char *, struct port_range *,
	    const char **why);
/* A DNS hostname or "*.suffix"; lowercases into out (>= 256 bytes). */
int	addr_parse_hostname(const char *, char *out, int *wildcard,
	    const char **why);
int	cidr_contains(const struct cidr *, const struct sockaddr *);
void	cidr_from_sockaddr(struct cidr *, const struct sockaddr *);
/* Writes "1.2.3.4:80" or "[::1]:80"; returns buf. */
#define ADDR_STRLEN	(INET6_ADDRSTRLEN + 8)
const char *addr_str(const struct sockaddr *, char *buf, size_t len);
const char *cidr_str(const struct cidr *, char *buf, size_t len);
socklen_t addr_len(const struct sockaddr *);
uint16_t addr_port(const struct sockaddr *);

/* ---- configuration (src/conf.c) ---- */

enum nf_backend_kind { NF_BACKEND_AUTO, NF_BACKEND_NFTABLES,
	NF_BACKEND_IPTABLES };
enum fwd_kind { FWD_NONE, FWD_DIRECT, FWD_ORIGINAL, FWD_TUNNEL };
enum dns_hostnames { DNS_HOSTNAMES_POOL, DNS_HOSTNAMES_REAL };
enum dns_unknown { DNS_UNKNOWN_REFUSED, DNS_UNKNOWN_NXDOMAIN };

/* One entry of a service's intercept.addresses. */
struct svc_addr {
	int		is_name;	/* hostname (or wildcard) vs. CIDR */
	int		wildcard;	/* "*.suffix": name holds "suffix" */
	char		name[256];	/* lowercased, no trailing dot */
	struct cidr	cidr;
};

struct endpoint {
	struct sockaddr_storage	ss;
	socklen_t		len;
};

struct service {
	TAILQ_ENTRY(service) entry;
	unsigned	 id;		/* 1-based, in config order */
	char		*name;
	int		 line;		/* where it was defined */

	int		 has_intercept;
	int		 protocols;	/* PROTO_* */
	struct svc_addr	*addrs;
	size_t		 naddrs;
	struct port_range *ports;
	size_t		 nports;
	struct cidr	*sources;	/* empty: every client */
	size_t		 nsources;

	enum fwd_kind	 fwd;
	struct endpoint	 direct;	/* FWD_DIRECT */
	struct endpoint	*tunnel;	/* FWD_TUNNEL, failover in order */
	size_t		 ntunnel;

	int		 has_host;
	int		 host_original;	/* host.address: original */
	struct endpoint	 host_address;
	struct cidr	*allowed;	/* host.allowed-addresses */
	size_t		 nallowed;
	char		**allow;	/* identity names and globs */
	size_t		 nallow;
};
TAILQ_HEAD(service_list, service);

struct config {
	char		*path;
	atomic_uint	 refs;		/* flows, the resolver thread, + 1 if live */

	int		 has_identity;
	char		*id_cert, *id_key, *id_ca;

	enum nf_backend_kind backend;
	struct endpoint	 listen;	/* intercept.listen */
	uint32_t	 mark;		/* intercept.mark */
	uint32_t	 bypass_mark;	/* intercept.bypass-mark */
	uint32_t	 route_table;
	unsigned	 udp_idle_timeout;
	unsigned	 udp_max_flows;		/* the oldest makes way */
	unsigned	 connect_timeout;	/* intercept.connect-timeout */
	unsigned	 idle_timeout;		/* tunnelled flows, 0 = none */

	struct endpoint	 dns_listen;
	struct cidr	 dns_range;
	enum dns_hostnames dns_hostnames;
	struct endpoint	*dns_upstream;
	size_t		 ndns_upstream;
	enum dns_unknown dns_unknown;
	unsigned	 dns_ttl;
	char		*dns_resolver;	/* auto, systemd-resolved, ... */
	int		 dns_self_test;

	int		 has_host;
	struct endpoint	 host_listen;
	unsigned	 host_idle_timeout;

	struct service_list services;
	size_t		 nservices;
};

/*
 * Loads and validates a configuration file. On error, prints every problem
 * as "file:line:col: message" to errfp and returns NULL. The caller owns
 * the result and releases it with conf_free().
 */
struct config	*conf_load(const char *path, FILE *errfp);
/* Same, from a string; name is used in messages. */
struct config	*conf_load_string(const char *name, const char *text,
		    size_t len, FILE *errfp);
void		 conf_free(struct config *);
/* Reload keeps an old config alive until its last flow ends. */
struct config	*conf_ref(struct config *);
void		 conf_unref(struct config *);
/* The summary that `sluice check` prints. */
void		 conf_print_summary(const struct config *, FILE *);
struct service	*conf_service_by_name(const struct config *, const char *);

/* ---- service matching (src/svc.c) ---- */

/*
 * The service whose intercept covers (proto, dst) from src, or NULL.
 * Only CIDR addresses are matched here; names are the resolver's.
 */
struct service	*svc_match(const struct config *, int proto,
		    const struct sockaddr *dst, const struct sockaddr *src);
int		 svc_port_match(const struct service *, uint16_t port);
int		 svc_source_match(const struct service *,
		    const struct sockaddr *src);
/* Glob match for allow lists ("laptop-*"). */
int		 svc_name_glob(const char *pattern, const char *name);

/* ---- sockets (src/sockopt.c) ---- */

int	sock_nonblock(int fd);
int	sock_set_mark(int fd, uint32_t mark);	/* SO_MARK; 0 is a no-op */
/* IP_TRANSPARENT or IPV6_TRANSPARENT: bind and send from any address. */
int	sock_transparent(int fd, int family);
/* Closes with SO_LINGER {1, 0} so the peer sees a reset at once. */
void	sock_close_reset(int fd);
/*
 * connect(2) on a nonblocking socket: 1 connected, 0 in progress (TCP
 * only), -1 with errno.
 */
int	sock_connect(int fd, const struct sockaddr *dst);
/*
 * A listening socket on addr (SOCK_STREAM or SOCK_DGRAM), nonblocking,
 * SO_REUSEADDR, IP_TRANSPARENT/IPV6_TRANSPARENT if transparent. Returns the
 * fd or -1 with errno; the bound address (port 0 resolved) in *bound.
 */
int	sock_listen(const struct sockaddr *addr, int type, int transparent,
	    struct sockaddr_storage *bound);

/* ---- the running daemon ---- */

/* Command-line settings that override the configuration file. */
#define CLI_MAX_UPSTREAM	8
struct cli_opts {
	const char	*config;
	const char	*state_dir;
	int		 verbose;
	int		 refresh;
	int		 backend;	/* enum nf_backend_kind, -1 = unset */
	const char	*dns_listen;
	const char	*dns_ip_range;
	const char	*dns_upstream[CLI_MAX_UPSTREAM];
	size_t		 ndns_upstream;
	const char	*resolver;
	int		 no_self_test;
	const char	*bind;		/* proxy --bind */
	int		 days;		/* pki --days, -1 = unset */
	char		**args;		/* the command's arguments (proxy) */
	int		 nargs;
};
/* Loads the config and applies the overrides; NULL after printing errors. */
struct config	*cli_load_config(const struct cli_opts *, FILE *errfp);
/*
 * Parses argv (global and command options in any order) into opts and
 * returns the index of the command word, or -1 after printing a usage
 * error. *help is set for -h/--help.
 */
int		 cli_parse(int argc, char **argv, struct cli_opts *, int *help);
void		 cli_usage(FILE *);

struct event_base;
struct event;
struct listener;
struct dns_server;
struct flow;
struct pipe_pool;
TAILQ_HEAD(flow_list, flow);

/* Counters shown by `sluice dump`. */
struct counters {
	uint64_t	accepted;	/* connections accepted */
	uint64_t	unmatched;	/* intercepted, but no service matched */
	uint64_t	dial_failed;	/* upstream could not be reached */
	uint64_t	accept_paused;	/* times accept backed off (fd limits) */
	uint64_t	bytes_up, bytes_down;	/* of finished flows */
};

/*
 * intercept.c: the main thread's table of addresses that the nameserver
 * handed out (pool) or passed on (hostnames: real), each with the name
 * and service it was intercepted for. The accept path looks services up
 * here when no configured address matches.
 */
struct intercepts;
struct nf_extra;
struct intercepts *intercept_new(void);
void		 intercept_free(struct intercepts *);
/* 1 if added or changed, 0 if already so, -1 on error. */
int		 intercept_add(struct intercepts *, const char *name,
		    const char *service, const struct cidr *, int pool,
		    int listed);
/* Changes since the last settle or rollback are a batch. */
void		 intercept_settle(struct intercepts *);
void		 intercept_rollback(struct intercepts *,
		    void (*undo)(const struct cidr *, int pool));
/* 1 if it was there, 2 if only listed (never intercepted), else 0. */
int		 intercept_del(struct intercepts *, const char *name,
		    const struct cidr *);
struct service	*intercept_match(const struct intercepts *,
		    const struct config *, int proto,
		    const struct sockaddr *dst, const struct sockaddr *src);
/* nf_rules_build()'s extras for conf; the caller frees *out. */
int		 intercept_extras(const struct intercepts *,
		    const struct config *, struct nf_extra **out, size_t *n);
void		 intercept_foreach(const struct intercepts *, void (*)(void *,
		    const char *name, const struct cidr *), void *);
size_t		 intercept_count(const struct intercepts *);
void		 intercept_dump(const struct intercepts *, FILE *);

struct sluice {
	struct event_base	*base;
	struct config		*conf;
	const struct cli_opts	*opts;
	const char		*state_dir;
	const struct nf_ops	*nf;		/* NULL in unprivileged modes */
	struct listener		*tcp4;		/* transparent TCP listeners */
	struct listener		*tcp6;
	struct udp		*udp;		/* UDP listeners and flows */
	struct flow_list	 flows;
	size_t			 nflows;
	uint64_t		 next_flow_id;
	struct pipe_pool	*pipes;
	struct counters		 stats;
	void			*ctl;		/* control socket (ctl.c) */
	time_t			 started;
	struct event		*sig_ev[5];	/* TERM INT HUP USR1 PIPE */
	struct event		*refresh_ev;
	struct timespec		 conf_mtime;	/* to notice edits */
	off_t			 conf_size;
	int			 exit_code;
	struct dns_server	*dns;		/* NULL: no names to serve */
	struct intercepts	*icpt;		/* addresses handed out */
	struct tunnel		*tunnel;	/* forward: tunnel (tunnel.c) */
	struct host		*host;		/* host and run modes (host.c) */
	int			 dns_dirty;	/* rules to apply at the commit */
	int			 hosts_dirty;	/* hosts-file names changed */
	int			 resolv_active;	/* resolv_setup() done */
	int			 resolv_kind;	/* what it used (enum resolv_kind) */
};

/*
 * listener.c: accept loop with back-off when out of descriptors. The
 * callback owns fd; it returns -1 with errno EMFILE/ENFILE (fd_exhausted)
 * when the connection failed for want of descriptors, and the listener
 * then pauses too.
 */
typedef int	(*listener_cb)(int fd, const struct sockaddr *peer,
		    void *arg);
int		 fd_exhausted(int err);
struct listener	*listener_new(struct event_base *, const struct sockaddr *,
		    int transparent, listener_cb, void *arg,
		    uint64_t *paused_counter);
const struct sockaddr *listener_addr(const struct listener *);
void		 listener_free(struct listener *);

/*
 * flow.c: one intercepted TCP connection, from accept to close. flow_start
 * owns client_fd from the call on: if the flow cannot start, the client is
 * reset, the reason logged, and NULL returned with errno saying why
 * (EMFILE: out of descriptors, so the listener pauses).
 */
struct flow	*flow_start(struct sluice *, int client_fd,
		    const struct service *, const struct sockaddr *client,
		    const struct sockaddr *orig_dst);
void		 flow_free(struct flow *);
/* At stop: ends every flow (clients see a reset). */
void		 flow_free_all(struct sluice *);
/* After a reload: resets flows whose service is gone; returns how many. */
size_t		 flow_close_orphans(struct sluice *);
void		 flow_dump(const struct flow *, FILE *);
/* flow_dump() for every live flow (dump.c cannot see struct flow). */
void		 flow_dump_all(struct sluice *, FILE *);

/* relay.c: two sockets relayed, copying short exchanges, splicing bulk. */
struct relay;
typedef void	(*relay_done_cb)(struct relay *, void *arg);
/* Keeps up to max_idle empty pipes; pipes in use belong to relays. */
struct pipe_pool *pipe_pool_new(size_t max_idle);
void		 pipe_pool_free(struct pipe_pool *);
size_t		 pipe_pool_idle(const struct pipe_pool *);	/* pooled */
size_t		 pipe_pool_busy(const struct pipe_pool *);	/* in relays */
/*
 * Relays between a and b (connected, nonblocking; SIGPIPE ignored) until
 * both directions have seen EOF (each EOF is passed on as shutdown(SHUT_WR))
 * or an error; then calls done, once and never from within relay_new();
 * done may call relay_free(). The relay does not own the fds; counters are
 * read with relay_bytes().
 */
struct relay	*relay_new(struct event_base *, struct pipe_pool *, int a,
		    int b, relay_done_cb, void *arg);
void		 relay_bytes(const struct relay *, uint64_t *a_to_b,
		    uint64_t *b_to_a);
/* Directions that have finished: EOF seen and passed on. */
#define RELAY_AB_SHUT	0x1
#define RELAY_BA_SHUT	0x2
int		 relay_state(const struct relay *);
/*
 * The errno that ended the relay, or 0 if it ended cleanly; *side says
 * whose socket failed: 0 a, 1 b, -1 neither (no pipe or memory).
 */
int		 relay_error(const struct relay *, int *side);
void		 relay_free(struct relay *);

/*
 * udp.c: intercepted UDP flows. udp_start opens a transparent UDP listener
 * beside each TCP listener (same address and, if free, port); 0 or an
 * exit code.
 */
struct udp;
int		 udp_start(struct sluice *);
void		 udp_stop(struct sluice *);
/* After a reload: ends flows whose service is gone; returns how many. */
size_t		 udp_close_orphans(struct sluice *);
/* The listener of family, or NULL. */
const struct sockaddr *udp_listener_addr(const struct udp *, int family);
void		 udp_dump(const struct udp *, FILE *);

/*
 * A daemon mode (tproxy, host, run, proxy): lifecycle.c runs the common
 * part (pid lock, control socket, signals, reload, event loop) and calls
 * these around it. start and reload return 0 or an exit code.
 */
struct mode {
	const char	*name;
	int		 (*start)(struct sluice *);
	/* Takes the new config into use or keeps the old one (and says so). */
	int		 (*reload)(struct sluice *, struct config *);
	void		 (*stop)(struct sluice *);
};
extern const struct mode mode_tproxy;
extern const struct mode mode_host;
extern const struct mode mode_proxy;
extern const struct mode mode_run;
int	daemon_main(const struct mode *, const struct cli_opts *);

/* tproxy.c: CAP_NET_ADMIN in the effective set? */
int	tproxy_privileged(void);
/* tproxy.c: called by the listener for each intercepted connection. */
int	tproxy_accept(int fd, const struct sockaddr *peer, void *arg);

/* host.c: the host's listener and flows, also used by `run`. */
struct host;
int	host_start(struct sluice *);
/* After sl->conf changed: the new identity for new connections. */
int	host_reload(struct sluice *);
void	host_stop(struct sluice *);
void	host_dump(const struct host *, FILE *);

/* ctl.c: control socket in the state dir, and the `dump` client. */
int	ctl_listen(struct sluice *);
void	ctl_close(struct sluice *);
int	ctl_dump_client(const char *state_dir, FILE *out);
void	sluice_dump(struct sluice *, FILE *);

/* lifecycle.c: state dir, pid lock; daemon_main above. */
int	state_dir_prepare(const char *dir);
void	sync_parent_dir(const char *path);
/* Returns a locked fd, or -1 (errno EWOULDBLOCK: another instance). */
int	pidlock_acquire(const char *dir, pid_t *holder);
void	pidlock_release(int fd, const char *dir);

#endif /* SLUICE_H */
