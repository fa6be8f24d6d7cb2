/* SPDX-License-Identifier: MIT */
/*
 * The proxy mode: plain listeners on local ports, each forwarding its
 * connections as if they had been intercepted for one service. No rules,
 * no privileges.
 */
#include "config.h"

#include <sys/socket.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sluice.h"
#include "log.h"
#include "tunnel.h"

#define PROXY_MAX	64	/* SERVICE:PORT arguments */

struct proxy_port {
	struct sluice	*sl;
	char		*service;	/* looked up per connection: reloads */
	struct listener	*listener;
};

static struct proxy_port proxy_ports[PROXY_MAX];
static size_t nproxy_ports;

static int
proxy_accept(int fd, const struct sockaddr *peer, void *arg)
{
	struct proxy_port *pp = arg;
	struct sluice *sl = pp->sl;
	const struct service *svc;
	struct sockaddr_storage local;
	socklen_t len = sizeof(local);

	sl->stats.accepted++;
	svc = conf_service_by_name(sl->conf, pp->service);
	if (svc == NULL || getsockname(fd, (struct sockaddr *)&local,
	    &len) == -1) {
		if (svc == NULL)
			log_warnx("proxy: service %s is no longer configured; "
			    "connection reset", pp->service);
		sl->stats.unmatched++;
		sock_close_reset(fd);
		return 0;
	}
	/* The listener's own address stands in for the destination. */
	return flow_start(sl, fd, svc, peer, (struct sockaddr *)&local) ==
	    NULL && fd_exhausted(errno) ? -1 : 0;
}

/* "[v6]" or "v6" or "v4", with the port: an endpoint to listen on. */
static int
proxy_endpoint(const char *bind, const char *port, struct endpoint *ep,
    const char **why)
{
	char buf[128];
	int v6 = strchr(bind, ':') != NULL && bind[0] != '[';

	snprintf(buf, sizeof(buf), "%s%s%s:%s", v6 ? "[" : "", bind,
	    v6 ? "]" : "", port);
	return addr_parse_endpoint(buf, &ep->ss, &ep->len, 0, why);
}

/* SERVICE:PORT, checked against the config; prints why not. */
static int
proxy_arg(struct sluice *sl, const char *arg, struct endpoint *ep,
    char **service)
{
	const char *colon = strrchr(arg, ':'), *why;
	const char *bind = sl->opts->bind ? sl->opts->bind : "127.0.0.1";
	const struct service *svc;

	if (colon == NULL || colon == arg || colon[1] == '\0') {
		log_warnx("proxy: '%s': expected SERVICE:PORT", arg);
		return -1;
	}
	if ((*service = strndup(arg, colon - arg)) == NULL)
		fatalx("out of memory");
	if ((svc = conf_service_by_name(sl->conf, *service)) == NULL) {
		log_warnx("proxy: '%s': no service %s in %s", arg, *service,
		    sl->conf->path);
		return -1;
	}
	if (svc->fwd == FWD_ORIGINAL) {
		log_warnx("proxy: '%s': service %s forwards to the original "
		    "destination, which proxy mode does not have", arg,
		    *service);
		return -1;
	}
	if (proxy_endpoint(bind, colon + 1, ep, &why) == -1) {
		log_warnx("proxy: '%s' (--bind %s): %s", arg, bind, why);
		return -1;
	}
	return 0;
}

static int
proxy_listen(struct sluice *sl, const char *arg)
{
	struct proxy_port *pp = &proxy_ports[nproxy_ports];
	struct endpoint ep;
	char a[ADDR_STRLEN];

	if (nproxy_ports == PROXY_MAX) {
		log_warnx("proxy: more than %d ports", PROXY_MAX);
		return EX_USAGE;
	}
	pp->sl = sl;
	nproxy_ports++;
	if (proxy_arg(sl, arg, &ep, &pp->service) == -1)
		return EX_USAGE;
	pp->listener = listener_new(sl->base, (struct sockaddr *)&ep.ss, 0,
	    proxy_accept, pp, &sl->stats.accept_paused);
	if (pp->listener == NULL) {
		log_warn("proxy: cannot listen on %s",
		    addr_str((struct sockaddr *)&ep.ss, a, sizeof(a)));
		return EX_UNAVAILABLE;
	}
	log_info("proxy: %s on %s", pp->service,
	    addr_str(listener_addr(pp->listener), a, sizeof(a)));
	return 0;
}

static int
proxy_start(struct sluice *sl)
{
	int i, rc;

	if (tunnel_apply(sl, sl->conf) == -1)
		return EX_CONFIG;
	for (i = 0; i < sl->opts->nargs; i++)
		if ((rc = proxy_listen(sl, sl->opts->args[i])) != 0)
			return rc;
	return 0;
}

static int
proxy_reload(struct sluice *sl, struct config *conf)
{
	struct config *old = sl->conf;
	size_t i, n;

	if (tunnel_apply(sl, conf) == -1) {
		log_warnx("reload: keeping the running configuration");
		conf_unref(conf);
		return -1;
	}
	sl->conf = conf;
	conf_unref(old);
	for (i = 0; i < nproxy_ports; i++)
		if (conf_service_by_name(conf, proxy_ports[i].service) == NULL)
			log_warnx("reload: service %s is gone; its port "
			    "resets connections", proxy_ports[i].service);
	if ((n = flow_close_orphans(sl)) > 0)
		log_info("reload: %zu flows of removed services reset", n);
	return 0;
}

static void
proxy_stop(struct sluice *sl)
{
	size_t i;

	flow_free_all(sl);
	tunnel_free(sl->tunnel);
	sl->tunnel = NULL;
	for (i = 0; i < nproxy_ports; i++) {
		if (proxy_ports[i].listener != NULL)
			listener_free(proxy_ports[i].listener);
		free(proxy_ports[i].service);
	}
	memset(proxy_ports, 0, sizeof(proxy_ports));
	nproxy_ports = 0;
}

const struct mode mode_proxy = {
	.name = "proxy",
	.start = proxy_start,
	.reload = proxy_reload,
	.stop = proxy_stop,
};
