/* SPDX-License-Identifier: MIT */
/* The tproxy mode: transparent listeners, interception, the nameserver. */
#include "config.h"

#include <sys/socket.h>
#include <sys/syscall.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <linux/capability.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sluice.h"
#include "dns.h"
#include "log.h"
#include "nf.h"
#include "tunnel.h"

/* CAP_NET_ADMIN in the effective set: what rules, routes and TPROXY need. */
int
tproxy_privileged(void)
{
	struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct data[2];

	memset(data, 0, sizeof(data));
	if (syscall(SYS_capget, &hdr, data) == -1)
		return geteuid() == 0;
	return (data[CAP_NET_ADMIN / 32].effective &
	    (1U << (CAP_NET_ADMIN % 32))) != 0;
}

int
tproxy_accept(int fd, const struct sockaddr *peer, void *arg)
{
	struct sluice *sl = arg;
	struct sockaddr_storage orig;
	socklen_t len = sizeof(orig);
	const struct service *svc;
	char a[ADDR_STRLEN], b[ADDR_STRLEN];

	/* A transparent socket's local address is the original destination. */
	if (getsockname(fd, (struct sockaddr *)&orig, &len) == -1) {
		log_warn("%s: getsockname", __func__);
		sock_close_reset(fd);
		return 0;
	}
	sl->stats.accepted++;
	svc = svc_match(sl->conf, PROTO_TCP, (struct sockaddr *)&orig, peer);
	if (svc == NULL)	/* an address the nameserver handed out? */
		svc = intercept_match(sl->icpt, sl->conf, PROTO_TCP,
		    (struct sockaddr *)&orig, peer);
	if (svc == NULL) {
		sl->stats.unmatched++;
		log_debug("tcp %s -> %s: no service matches, reset",
		    addr_str(peer, a, sizeof(a)),
		    addr_str((struct sockaddr *)&orig, b, sizeof(b)));
		sock_close_reset(fd);
		return 0;
	}
	return flow_start(sl, fd, svc, peer, (struct sockaddr *)&orig) ==
	    NULL ? -1 : 0;
}

static void
tproxy_params(struct sluice *sl, struct nf_params *p)
{
	memset(p, 0, sizeof(*p));
	p->mark = sl->conf->mark;
	p->bypass_mark = sl->conf->bypass_mark;
	if (sl->tcp4 != NULL)
		memcpy(&p->tcp4, listener_addr(sl->tcp4), sizeof(p->tcp4));
	if (sl->tcp6 != NULL)
		memcpy(&p->tcp6, listener_addr(sl->tcp6), sizeof(p->tcp6));
	if (udp_listener_addr(sl->udp, AF_INET) != NULL)
		memcpy(&p->udp4, udp_listener_addr(sl->udp, AF_INET),
		    sizeof(p->udp4));
	if (udp_listener_addr(sl->udp, AF_INET6) != NULL)
		memcpy(&p->udp6, udp_listener_addr(sl->udp, AF_INET6),
		    sizeof(p->udp6));
}

/* Replaces the kernel's rules with conf's; the old ones stay on failure. */
static int
tproxy_install(struct sluice *sl, const struct config *conf)
{
	struct nf_params params;
	struct nf_rule *rules = NULL;
	struct nf_extra *extra = NULL;
	size_t n = 0, nextra = 0;
	int rc;

	if (intercept_extras(sl->icpt, conf, &extra, &nextra) == -1 ||
	    nf_rules_build(conf, extra, nextra, &rules, &n) == -1) {
		log_warnx("cannot build interception rules");
		free(extra);
		return -1;
	}
	tproxy_params(sl, &params);
	params.mark = conf->mark;
	params.bypass_mark = conf->bypass_mark;
	rc = sl->nf->apply(&params, rules, n);
	free(rules);
	free(extra);
	if (rc == 0 && nextra == 0)
		log_info("interception: %zu rules via %s", n, sl->nf->name);
	else if (rc == 0)
		log_debug("interception: %zu rules via %s (%zu addresses of "
		    "names)", n, sl->nf->name, nextra);
	return rc;
}

/*
 * Where family's transparent listeners go: intercept.listen for its own
 * family, loopback with the same port (0: any free one) for the other.
 * -1 when IPv6 cannot be used here (*why says why).
 */
static int
tproxy_listen_addr(const struct config *conf, int family,
    struct sockaddr_storage *ss, const char **why)
{
	const struct sockaddr *cfg = (const struct sockaddr *)&conf->listen.ss;
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

	if (family == AF_INET6 && !rt_family_ok(AF_INET6, why))
		return -1;
	if (cfg->sa_family == family) {
		memcpy(ss, &conf->listen.ss, sizeof(*ss));
		return 0;
	}
	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET) {
		sin->sin_family = AF_INET;
		sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		sin->sin_port = htons(addr_port(cfg));
	} else {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_addr = in6addr_loopback;
		sin6->sin6_port = htons(addr_port(cfg));
	}
	return 0;
}

/* The transparent TCP listener for family's flows, or NULL. */
static struct listener *
tproxy_tcp_listener(const struct sluice *sl, int family)
{
	if (family == AF_INET)
		return sl->tcp4;
	if (family == AF_INET6)
		return sl->tcp6;
	return NULL;
}

/*
 * One listener per family. Without IPv6 (not in the kernel, or disabled
 * on lo) sluice goes on with IPv4 alone, and the rules of IPv6 services
 * are left out for want of a listener.
 */
static int
tproxy_listen_family(struct sluice *sl, int family)
{
	struct sockaddr_storage ss;
	struct listener **lp = family == AF_INET ? &sl->tcp4 : &sl->tcp6;
	const char *why;
	char buf[ADDR_STRLEN];

	if (tproxy_listen_addr(sl->conf, family, &ss, &why) == -1) {
		if (sl->conf->listen.ss.ss_family == family)
			log_warnx("intercept.listen: %s; intercepting ipv4 "
			    "only", why);
		else
			log_info("%s: intercepting ipv4 only", why);
		return 0;
	}
	*lp = listener_new(sl->base, (struct sockaddr *)&ss, 1,
	    tproxy_accept, sl, &sl->stats.accept_paused);
	if (*lp == NULL && family != sl->conf->listen.ss.ss_family &&
	    (errno == EAFNOSUPPORT || errno == EADDRNOTAVAIL)) {
		why = strerror(errno);
		log_info("transparent listener %s: %s; intercepting %s only",
		    addr_str((struct sockaddr *)&ss, buf, sizeof(buf)), why,
		    family == AF_INET6 ? "ipv4" : "ipv6");
		return 0;
	}
	if (*lp == NULL) {
		log_warn("transparent listener %s", addr_str(
		    (struct sockaddr *)&ss, buf, sizeof(buf)));
		return errno == EPERM ? EX_NOPERM : EXIT_FAIL;
	}
	log_info("transparent listener on tcp %s",
	    addr_str(listener_addr(*lp), buf, sizeof(buf)));
	return 0;
}

static int
tproxy_listen(struct sluice *sl)
{
	int rc;

	if ((rc = tproxy_listen_family(sl, AF_INET)) != 0 ||
	    (rc = tproxy_listen_family(sl, AF_INET6)) != 0)
		return rc;
	if (sl->tcp4 == NULL && sl->tcp6 == NULL) {
		log_warnx("no transparent listener could be opened");
		return EX_UNAVAILABLE;
	}
	return 0;
}

/* ---- the nameserver ---- */

/* The nameserver runs when some service intercepts a host name. */
static int
tproxy_has_names(const struct config *conf)
{
	const struct service *svc;
	size_t i;

	TAILQ_FOREACH(svc, &conf->services, entry)
		for (i = 0; svc->has_intercept && i < svc->naddrs; i++)
			if (svc->addrs[i].is_name)
				return 1;
	return 0;
}

struct hosts_vec {
	struct resolv_entry	*v;
	size_t			 n, cap;
};

static void
tproxy_hosts_add(void *arg, const char *name, const struct cidr *addr)
{
	struct hosts_vec *h = arg;

	if (h->n < h->cap) {
		h->v[h->n].name = name;
		h->v[h->n].addr = *addr;
		h->n++;
	}
}

/*
 * A hosts file cannot ask: it lists every name that has an address. Before
 * the resolver setup (force), the names are handed over in case it picks
 * a hosts file.
 */
static void
tproxy_hosts_publish(struct sluice *sl, int force)
{
	struct hosts_vec h;

	if (!force && (!sl->resolv_active || sl->resolv_kind != RESOLV_HOSTS))
		return;
	h.n = 0;
	h.cap = intercept_count(sl->icpt);
	if ((h.v = calloc(h.cap + 1, sizeof(*h.v))) == NULL) {
		log_warn("dns: hosts file");
		return;
	}
	intercept_foreach(sl->icpt, tproxy_hosts_add, &h);
	if (resolv_update_hosts(h.v, h.n) == -1)
		log_warnx("dns: cannot update the hosts file block");
	free(h.v);
}

static int
tproxy_release(struct sluice *sl, const char *name, const struct cidr *addr,
    int pool)
{
	int rc;

	if ((rc = intercept_del(sl->icpt, name, addr)) == 0)
		return 0;
	if (rc == 1 && pool)
		(void)rt_local_del(addr);
	if (rc == 1)
		sl->dns_dirty = 1;
	sl->hosts_dirty = 1;
	return 0;
}

static void
tproxy_undo(const struct cidr *addr, int pool)
{
	if (pool)
		(void)rt_local_del(addr);
}

/* The end of a batch: one rule set for all of its changes. */
static int
tproxy_commit(struct sluice *sl)
{
	int rc = 0;

	if (sl->dns_dirty && tproxy_install(sl, sl->conf) == -1) {
		log_warnx("dns: interception of new names failed; their "
		    "queries get SERVFAIL");
		intercept_rollback(sl->icpt, tproxy_undo);
		(void)tproxy_install(sl, sl->conf);
		rc = -1;
	} else
		intercept_settle(sl->icpt);
	sl->dns_dirty = 0;
	if (sl->hosts_dirty)
		tproxy_hosts_publish(sl, 0);
	sl->hosts_dirty = 0;
	return rc;
}

/*
 * dns_intercept_cb: the resolver thread waits for this before an answer
 * carrying addr leaves. Pool addresses get their local route at once; the
 * rules of a whole batch are applied by the commit (name NULL), so that a
 * burst of new names costs one rule set, not one each. svc NULL is the
 * self-test's name, listed (hosts file) but not intercepted.
 */
static int
tproxy_intercept(void *arg, int add, const char *name,
    const struct service *svc, const struct cidr *addr, int pool)
{
	struct sluice *sl = arg;
	char buf[INET6_ADDRSTRLEN];
	int rc;

	if (name == NULL)
		return tproxy_commit(sl);
	if (!add)
		return tproxy_release(sl, name, addr, pool);
	if (svc != NULL && tproxy_tcp_listener(sl, addr->family) == NULL) {
		log_warnx("dns: %s: no transparent listener for %s", name,
		    inet_ntop(addr->family, addr->addr, buf, sizeof(buf)));
		return -1;
	}
	rc = intercept_add(sl->icpt, name, svc != NULL ? svc->name : "", addr,
	    pool, svc == NULL);
	if (rc <= 0)
		return rc;
	if (svc != NULL && pool && rt_local_add(addr) == -1) {
		intercept_del(sl->icpt, name, addr);
		return -1;
	}
	if (svc != NULL)
		sl->dns_dirty = 1;
	sl->hosts_dirty = 1;
	return 0;
}

/* Where the system resolver should ask: loopback for a wildcard listen. */
static void
tproxy_ns(const struct config *conf, struct endpoint *ns)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)&ns->ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ns->ss;

	*ns = conf->dns_listen;
	if (ns->ss.ss_family == AF_INET &&
	    sin->sin_addr.s_addr == htonl(INADDR_ANY))
		sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	else if (ns->ss.ss_family == AF_INET6 &&
	    IN6_IS_ADDR_UNSPECIFIED(&sin6->sin6_addr))
		sin6->sin6_addr = in6addr_loopback;
}

static void
tproxy_self_test_advice(struct sluice *sl, const struct endpoint *ns)
{
	char buf[ADDR_STRLEN];

	addr_str((const struct sockaddr *)&ns->ss, buf, sizeof(buf));
	switch (sl->resolv_kind) {
	case RESOLV_CONF:
		log_warnx("dns: to fix: /etc/resolv.conf must list %s first "
		    "and keep it (NetworkManager or resolvconf may rewrite "
		    "it), or choose another --resolver", buf);
		break;
	case RESOLV_SYSTEMD:
		log_warnx("dns: to fix: `resolvectl status` must show %s as "
		    "a DNS server for the service names, and /etc/resolv.conf "
		    "must point at systemd-resolved", buf);
		break;
	case RESOLV_HOSTS:
		log_warnx("dns: to fix: the \"hosts:\" line of "
		    "/etc/nsswitch.conf must list \"files\", and "
		    "dns.resolver must name the hosts file it reads");
		break;
	default:
		log_warnx("dns: to fix: dns.resolver is none, so point the "
		    "system resolver at %s yourself", buf);
	}
	log_warnx("dns: or start with --no-self-test (or dns.self-test: "
	    "false) to run anyway");
}

/* A hosts file lists names; it cannot hold "*.suffix". */
static void
tproxy_warn_wildcards(const struct config *conf)
{
	const struct service *svc;
	size_t i;

	TAILQ_FOREACH(svc, &conf->services, entry)
		for (i = 0; svc->has_intercept && i < svc->naddrs; i++)
			if (svc->addrs[i].is_name && svc->addrs[i].wildcard)
				log_warnx("service %s: *.%s cannot be listed "
				    "in a hosts file; only clients that ask "
				    "this nameserver get its names", svc->name,
				    svc->addrs[i].name);
}

/*
 * The domains systemd-resolved sends to us: each exact name and wildcard
 * suffix (a routing domain covers its subdomains), and the self-test's.
 */
static void
tproxy_domains(const struct config *conf)
{
	const struct service *svc;
	const char **v;
	size_t i, n = 1;

	TAILQ_FOREACH(svc, &conf->services, entry)
		n += svc->naddrs;
	if ((v = calloc(n, sizeof(*v))) == NULL) {
		log_warn("dns: routing domains");
		return;
	}
	n = 0;
	v[n++] = DNS_SELF_TEST_DOMAIN;
	TAILQ_FOREACH(svc, &conf->services, entry)
		for (i = 0; svc->has_intercept && i < svc->naddrs; i++)
			if (svc->addrs[i].is_name)
				v[n++] = svc->addrs[i].name;
	if (resolv_update_domains(v, n) == -1)
		log_warnx("dns: cannot set the routing domains");
	free(v);
}

/* Points the system resolver at the nameserver. */
static int
tproxy_resolver(struct sluice *sl, const struct endpoint *ns)
{
	const struct config *conf = sl->conf;
	int kind;

	tproxy_domains(conf);
	tproxy_hosts_publish(sl, 1);
	if ((kind = resolv_setup(conf->dns_resolver, ns, sl->state_dir)) ==
	    -1) {
		log_warnx("dns: cannot point the system resolver at the "
		    "nameserver (dns.resolver %s)", conf->dns_resolver);
		return -1;
	}
	sl->resolv_active = 1;
	sl->resolv_kind = kind;
	log_info("dns: system resolver: %s", resolv_kind_name(kind));
	if (kind == RESOLV_HOSTS)
		tproxy_warn_wildcards(conf);
	return 0;
}

static int
tproxy_dns_start(struct sluice *sl, int self_test)
{
	struct endpoint ns;
	unsigned families;

	families = (sl->tcp4 != NULL ? DNS_FAMILY(AF_INET) : 0) |
	    (sl->tcp6 != NULL ? DNS_FAMILY(AF_INET6) : 0);
	sl->dns = dns_server_start(sl->base, sl->conf, sl->state_dir,
	    families, tproxy_intercept, sl);
	if (sl->dns == NULL)
		return EX_UNAVAILABLE;
	tproxy_ns(sl->conf, &ns);
	if (tproxy_resolver(sl, &ns) == -1)
		return EX_UNAVAILABLE;
	if (!self_test || !sl->conf->dns_self_test)
		return 0;
	if (dns_server_self_test(sl->dns) == -1) {
		tproxy_self_test_advice(sl, &ns);
		return EX_UNAVAILABLE;
	}
	return 0;
}

/* Users must never be left without DNS: the resolver goes back first. */
static void
tproxy_dns_stop(struct sluice *sl)
{
	if (sl->resolv_active) {
		if (resolv_restore(sl->state_dir) == -1)
			log_warnx("dns: the system resolver configuration "
			    "could not be restored; `sluice cleanup` tries "
			    "again");
		else
			log_info("dns: system resolver configuration "
			    "restored");
		sl->resolv_active = 0;
	}
	if (sl->dns != NULL) {
		dns_server_stop(sl->dns);
		sl->dns = NULL;
	}
}

/* ---- the mode ---- */

static int
tproxy_start(struct sluice *sl)
{
	const struct config *conf = sl->conf;
	int rc;

	if ((sl->nf = nf_select(conf->backend)) == NULL) {
		log_warnx("no interception backend is available");
		return EX_UNAVAILABLE;
	}
	/* A crash leaves rules behind; they are ours, tagged, so remove them. */
	nf_cleanup_all(conf->route_table);
	if (resolv_cleanup(sl->state_dir) == -1)
		log_warnx("dns: a previous run's resolver changes could not "
		    "be undone");
	if ((sl->icpt = intercept_new()) == NULL)
		fatalx("out of memory");
	if (tunnel_apply(sl, conf) == -1)
		return EX_CONFIG;
	if ((rc = tproxy_listen(sl)) != 0)
		return rc;
	if ((rc = udp_start(sl)) != 0)
		return rc;
	if (tproxy_install(sl, conf) == -1 ||
	    rt_setup(conf->mark, conf->route_table) == -1) {
		log_warnx("cannot install interception (is the kernel's TPROXY "
		    "support available?)");
		return EX_UNAVAILABLE;
	}
	if (!tproxy_has_names(conf)) {
		log_info("dns: no service intercepts a host name; the "
		    "nameserver is off");
		return 0;
	}
	return tproxy_dns_start(sl, 1);
}

/* Settings that the kernel state and listeners were built from. */
static void
tproxy_keep_fixed(const struct config *old, struct config *conf)
{
	if (memcmp(&old->listen, &conf->listen, sizeof(old->listen)) != 0 ||
	    old->mark != conf->mark || old->route_table != conf->route_table ||
	    old->backend != conf->backend) {
		log_warnx("reload: intercept listen, mark, route-table and "
		    "backend changes take effect after a restart");
		conf->listen = old->listen;
		conf->mark = old->mark;
		conf->route_table = old->route_table;
		conf->backend = old->backend;
	}
}

/* The nameserver's socket, pool and resolver edit stay as they are. */
static int
tproxy_keep_dns(const struct config *old, struct config *conf)
{
	char *resolver;

	if (memcmp(&old->dns_listen, &conf->dns_listen,
	    sizeof(old->dns_listen)) == 0 &&
	    memcmp(&old->dns_range, &conf->dns_range,
	    sizeof(old->dns_range)) == 0 &&
	    strcmp(old->dns_resolver, conf->dns_resolver) == 0)
		return 0;
	if ((resolver = strdup(old->dns_resolver)) == NULL)
		return -1;
	log_warnx("reload: dns listen, ip-range and resolver changes take "
	    "effect after a restart");
	conf->dns_listen = old->dns_listen;
	conf->dns_range = old->dns_range;
	free(conf->dns_resolver);
	conf->dns_resolver = resolver;
	return 0;
}

static int
tproxy_reload(struct sluice *sl, struct config *conf)
{
	struct config *old = sl->conf;
	size_t n;

	tproxy_keep_fixed(old, conf);
	if (tproxy_keep_dns(old, conf) == -1 ||
	    tunnel_apply(sl, conf) == -1 ||
	    tproxy_install(sl, conf) == -1) {
		log_warnx("reload: keeping the running configuration");
		conf_unref(conf);
		return -1;
	}
	sl->conf = conf;
	conf_unref(old);
	if ((n = flow_close_orphans(sl)) > 0)
		log_info("reload: %zu flows of removed services reset", n);
	if ((n = udp_close_orphans(sl)) > 0)
		log_info("reload: %zu udp flows of removed services ended", n);
	if (sl->dns != NULL) {
		if (sl->resolv_active)
			tproxy_domains(conf);
		dns_server_reload(sl->dns, conf);
	}
	else if (tproxy_has_names(conf) && tproxy_dns_start(sl, 0) != 0) {
		log_warnx("reload: the nameserver cannot start; host names "
		    "are not intercepted");
		tproxy_dns_stop(sl);
	}
	return 0;
}

static void
tproxy_stop(struct sluice *sl)
{
	tproxy_dns_stop(sl);
	flow_free_all(sl);
	udp_stop(sl);
	tunnel_free(sl->tunnel);
	sl->tunnel = NULL;
	if (sl->tcp4 != NULL)
		listener_free(sl->tcp4);
	if (sl->tcp6 != NULL)
		listener_free(sl->tcp6);
	sl->tcp4 = sl->tcp6 = NULL;
	if (sl->nf != NULL) {
		nf_cleanup_all(sl->conf->route_table);
		log_info("interception rules, routes and policy rules removed");
	}
	intercept_free(sl->icpt);
	sl->icpt = NULL;
}

const struct mode mode_tproxy = {
	.name = "tproxy",
	.start = tproxy_start,
	.reload = tproxy_reload,
	.stop = tproxy_stop,
};
