/* SPDX-License-Identifier: MIT */
/* The tproxy mode: transparent listeners, kernel interception, dispatch. */
#include "config.h"

#include <sys/socket.h>
#include <sys/syscall.h>
#include <linux/capability.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sluice.h"
#include "log.h"
#include "nf.h"

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
}

/* Hostnames need the nameserver, which this build does not have yet. */
static void
tproxy_warn_names(const struct config *conf)
{
	const struct service *svc;
	size_t i;

	TAILQ_FOREACH(svc, &conf->services, entry)
		for (i = 0; i < svc->naddrs; i++)
			if (svc->addrs[i].is_name)
				log_warnx("service %s: hostname %s%s is not "
				    "intercepted: the nameserver is not "
				    "available in this version", svc->name,
				    svc->addrs[i].wildcard ? "*." : "",
				    svc->addrs[i].name);
}

/* Replaces the kernel's rules with conf's; the old ones stay on failure. */
static int
tproxy_install(struct sluice *sl, const struct config *conf)
{
	struct nf_params params;
	struct nf_rule *rules = NULL;
	size_t n = 0;
	int rc;

	if (nf_rules_build(conf, NULL, 0, &rules, &n) == -1) {
		log_warnx("cannot build interception rules");
		return -1;
	}
	tproxy_params(sl, &params);
	params.mark = conf->mark;
	params.bypass_mark = conf->bypass_mark;
	rc = sl->nf->apply(&params, rules, n);
	free(rules);
	if (rc == 0)
		log_info("interception: %zu rules via %s", n, sl->nf->name);
	return rc;
}

static int
tproxy_listen(struct sluice *sl)
{
	char buf[ADDR_STRLEN];

	sl->tcp4 = listener_new(sl->base,
	    (struct sockaddr *)&sl->conf->listen.ss, 1, tproxy_accept, sl,
	    &sl->stats.accept_paused);
	if (sl->tcp4 == NULL) {
		log_warn("transparent listener %s", addr_str(
		    (struct sockaddr *)&sl->conf->listen.ss, buf, sizeof(buf)));
		return errno == EPERM ? EX_NOPERM : EXIT_FAIL;
	}
	log_info("transparent listener on tcp %s",
	    addr_str(listener_addr(sl->tcp4), buf, sizeof(buf)));
	return 0;
}

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
	if ((rc = tproxy_listen(sl)) != 0)
		return rc;
	tproxy_warn_names(conf);
	if (tproxy_install(sl, conf) == -1 ||
	    rt_setup(conf->mark, conf->route_table) == -1) {
		log_warnx("cannot install interception (is the kernel's TPROXY "
		    "support available?)");
		return EX_UNAVAILABLE;
	}
	return 0;
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

static int
tproxy_reload(struct sluice *sl, struct config *conf)
{
	struct config *old = sl->conf;
	size_t n;

	tproxy_keep_fixed(old, conf);
	if (tproxy_install(sl, conf) == -1) {
		log_warnx("reload: keeping the running configuration");
		conf_unref(conf);
		return -1;
	}
	tproxy_warn_names(conf);
	sl->conf = conf;
	conf_unref(old);
	if ((n = flow_close_orphans(sl)) > 0)
		log_info("reload: %zu flows of removed services reset", n);
	return 0;
}

static void
tproxy_stop(struct sluice *sl)
{
	flow_free_all(sl);
	if (sl->tcp4 != NULL)
		listener_free(sl->tcp4);
	if (sl->tcp6 != NULL)
		listener_free(sl->tcp6);
	sl->tcp4 = sl->tcp6 = NULL;
	if (sl->nf != NULL) {
		nf_cleanup_all(sl->conf->route_table);
		log_info("interception rules, routes and policy rules removed");
	}
}

const struct mode mode_tproxy = {
	.name = "tproxy",
	.start = tproxy_start,
	.reload = tproxy_reload,
	.stop = tproxy_stop,
};
