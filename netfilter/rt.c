/* SPDX-License-Identifier: MIT */
/* Policy rules and local routes through rtnetlink (libnl-route). */
#include "config.h"

#include <sys/socket.h>
#include <net/if.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <linux/fib_rules.h>
#include <linux/rtnetlink.h>
#include <netlink/netlink.h>
#include <netlink/addr.h>
#include <netlink/cache.h>
#include <netlink/route/nexthop.h>
#include <netlink/route/route.h>
#include <netlink/route/rule.h>

#include "log.h"
#include "nf.h"

static const int rt_families[] = { AF_INET, AF_INET6 };

/* State for the cache walks of cleanup and dump. */
struct rt_walk {
	struct nl_sock	*sk;
	uint32_t	 table;
	FILE		*fp;
	unsigned	 n;
	int		 rv;
};

static const char *
rt_fam_str(int family)
{
	return family == AF_INET6 ? "ipv6" : "ipv4";
}

/*
 * Whether family can carry our routes: IPv6 may be missing from the
 * kernel, or disabled on lo by sysctl (the kernel then refuses routes
 * via lo with EACCES). *why says which.
 */
int
rt_family_ok(int family, const char **why)
{
	char buf[8] = "";
	FILE *fp;

	if (family != AF_INET6)
		return 1;
	if (access("/proc/sys/net/ipv6", F_OK) == -1) {
		*why = "ipv6 is not available here";
		return 0;
	}
	if ((fp = fopen("/proc/sys/net/ipv6/conf/lo/disable_ipv6", "r")) !=
	    NULL) {
		if (fgets(buf, sizeof(buf), fp) == NULL)
			buf[0] = '\0';
		fclose(fp);
	}
	if (buf[0] == '1') {
		*why = "ipv6 is disabled on lo";
		return 0;
	}
	return 1;
}

static struct nl_sock *
rt_open(void)
{
	struct nl_sock *sk;
	int err;

	if ((sk = nl_socket_alloc()) == NULL) {
		log_warnx("%s: cannot allocate a netlink socket", __func__);
		return NULL;
	}
	if ((err = nl_connect(sk, NETLINK_ROUTE)) < 0) {
		log_warnx("%s: connect to rtnetlink: %s", __func__,
		    nl_geterror(err));
		nl_socket_free(sk);
		return NULL;
	}
	return sk;
}

/* "10.9.0.0/24", or "default" for a zero-length prefix. */
static const char *
rt_addr_str(struct nl_addr *a, char *buf, size_t len)
{
	if (a == NULL || nl_addr_get_prefixlen(a) == 0)
		snprintf(buf, len, "default");
	else
		nl_addr2str(a, buf, len);
	return buf;
}

/* ---- rules ---- */

static int
rt_rule_add(struct nl_sock *sk, int family, uint32_t mark, uint32_t table)
{
	struct rtnl_rule *rule;
	int err;

	if ((rule = rtnl_rule_alloc()) == NULL) {
		log_warnx("%s: out of memory", __func__);
		return -1;
	}
	rtnl_rule_set_family(rule, family);
	rtnl_rule_set_prio(rule, SLUICE_RULE_PRIO);
	rtnl_rule_set_mark(rule, mark);
	rtnl_rule_set_mask(rule, mark);
	rtnl_rule_set_table(rule, table);
	rtnl_rule_set_action(rule, FR_ACT_TO_TBL);
	rtnl_rule_set_protocol(rule, SLUICE_RTPROT);
	/* Without EXCL the kernel happily adds an identical second rule. */
	err = rtnl_rule_add(sk, rule, NLM_F_EXCL);
	rtnl_rule_put(rule);
	if (err < 0 && err != -NLE_EXIST) {
		log_warnx("%s: %s: add rule fwmark 0x%x/0x%x lookup %u: %s",
		    __func__, rt_fam_str(family), mark, mark, table,
		    nl_geterror(err));
		return -1;
	}
	return 0;
}

static int
rt_rule_ours(struct rtnl_rule *rule, uint32_t table)
{
	uint8_t proto;

	if (rtnl_rule_get_protocol(rule, &proto) == 0 &&
	    proto == SLUICE_RTPROT)
		return 1;
	return rtnl_rule_get_prio(rule) == SLUICE_RULE_PRIO &&
	    rtnl_rule_get_table(rule) == table;
}

static void
rt_rule_del_cb(struct nl_object *obj, void *arg)
{
	struct rtnl_rule *rule = (struct rtnl_rule *)obj;
	struct rt_walk *w = arg;
	int err;

	if (!rt_rule_ours(rule, w->table))
		return;
	err = rtnl_rule_delete(w->sk, rule, 0);
	if (err < 0 && err != -NLE_OBJ_NOTFOUND) {
		log_warnx("%s: %s: delete rule %u lookup %u: %s", __func__,
		    rt_fam_str(rtnl_rule_get_family(rule)),
		    rtnl_rule_get_prio(rule), rtnl_rule_get_table(rule),
		    nl_geterror(err));
		w->rv = -1;
		return;
	}
	w->n++;
}

static void
rt_rule_print_cb(struct nl_object *obj, void *arg)
{
	struct rtnl_rule *rule = (struct rtnl_rule *)obj;
	struct rt_walk *w = arg;
	uint8_t proto = 0;

	if (!rt_rule_ours(rule, w->table))
		return;
	rtnl_rule_get_protocol(rule, &proto);
	fprintf(w->fp, "rule   %s  %u: fwmark 0x%x/0x%x lookup %u proto %u\n",
	    rt_fam_str(rtnl_rule_get_family(rule)), rtnl_rule_get_prio(rule),
	    rtnl_rule_get_mark(rule), rtnl_rule_get_mask(rule),
	    rtnl_rule_get_table(rule), proto);
}

static int
rt_rules_walk(struct rt_walk *w, void (*cb)(struct nl_object *, void *))
{
	struct nl_cache *cache;
	int err;

	if ((err = rtnl_rule_alloc_cache(w->sk, AF_UNSPEC, &cache)) < 0) {
		log_warnx("%s: list policy rules: %s", __func__,
		    nl_geterror(err));
		return -1;
	}
	nl_cache_foreach(cache, cb, w);
	nl_cache_free(cache);
	return 0;
}

/* ---- routes ---- */

/* "local DST dev lo table TABLE proto sluice scope host"; NULL: default. */
static struct rtnl_route *
rt_local_route(int family, uint32_t table, const struct cidr *dst)
{
	static const uint8_t any[16];
	struct rtnl_route *route;
	struct rtnl_nexthop *nh;
	struct nl_addr *a;
	unsigned lo;

	if ((lo = if_nametoindex("lo")) == 0) {
		log_warn("%s: interface lo", __func__);
		return NULL;
	}
	a = nl_addr_build(family, dst != NULL ? dst->addr : any,
	    family == AF_INET ? 4 : 16);
	route = rtnl_route_alloc();
	nh = rtnl_route_nh_alloc();
	if (a == NULL || route == NULL || nh == NULL) {
		log_warnx("%s: out of memory", __func__);
		nl_addr_put(a);
		rtnl_route_put(route);
		rtnl_route_nh_free(nh);
		return NULL;
	}
	nl_addr_set_prefixlen(a, dst != NULL ? dst->prefixlen : 0);
	rtnl_route_set_family(route, (uint8_t)family);
	rtnl_route_set_table(route, table);
	rtnl_route_set_type(route, RTN_LOCAL);
	rtnl_route_set_scope(route, RT_SCOPE_HOST);
	rtnl_route_set_protocol(route, SLUICE_RTPROT);
	rtnl_route_set_dst(route, a);
	nl_addr_put(a);
	rtnl_route_nh_set_ifindex(nh, (int)lo);
	rtnl_route_add_nexthop(route, nh);
	return route;
}

static void
rt_route_desc(struct rtnl_route *route, char *buf, size_t len)
{
	char dst[INET6_ADDRSTRLEN + 8];

	snprintf(buf, len, "%s local %s table %u",
	    rt_fam_str(rtnl_route_get_family(route)),
	    rt_addr_str(rtnl_route_get_dst(route), dst, sizeof(dst)),
	    rtnl_route_get_table(route));
}

static int
rt_route_change(struct nl_sock *sk, int family, uint32_t table,
    const struct cidr *dst, int add)
{
	struct rtnl_route *route;
	char desc[128];
	int err;

	if ((route = rt_local_route(family, table, dst)) == NULL)
		return -1;
	if (add)
		err = rtnl_route_add(sk, route, NLM_F_EXCL);
	else
		err = rtnl_route_delete(sk, route, 0);
	rt_route_desc(route, desc, sizeof(desc));
	rtnl_route_put(route);
	if (err == -NLE_EXIST || err == -NLE_OBJ_NOTFOUND) {
		log_debug("%s: %s: %s", __func__, desc, nl_geterror(err));
		err = 0;
	}
	if (err < 0) {
		log_warnx("%s: %s route %s: %s", __func__, add ? "add" :
		    "delete", desc, nl_geterror(err));
		return -1;
	}
	return 0;
}

static void
rt_route_del_cb(struct nl_object *obj, void *arg)
{
	struct rtnl_route *route = (struct rtnl_route *)obj;
	struct rt_walk *w = arg;
	char desc[128];
	int err;

	if (rtnl_route_get_protocol(route) != SLUICE_RTPROT)
		return;
	err = rtnl_route_delete(w->sk, route, 0);
	if (err < 0 && err != -NLE_OBJ_NOTFOUND) {
		rt_route_desc(route, desc, sizeof(desc));
		log_warnx("%s: delete route %s: %s", __func__, desc,
		    nl_geterror(err));
		w->rv = -1;
		return;
	}
	w->n++;
}

static void
rt_route_print_cb(struct nl_object *obj, void *arg)
{
	struct rtnl_route *route = (struct rtnl_route *)obj;
	struct rtnl_nexthop *nh;
	struct rt_walk *w = arg;
	char desc[128], ifname[IF_NAMESIZE] = "?";

	if (rtnl_route_get_protocol(route) != SLUICE_RTPROT)
		return;
	if ((nh = rtnl_route_nexthop_n(route, 0)) != NULL &&
	    if_indextoname((unsigned)rtnl_route_nh_get_ifindex(nh),
	    ifname) == NULL)
		snprintf(ifname, sizeof(ifname), "?");
	rt_route_desc(route, desc, sizeof(desc));
	fprintf(w->fp, "route  %s dev %s proto %u\n", desc, ifname,
	    rtnl_route_get_protocol(route));
}

static int
rt_routes_walk(struct rt_walk *w, void (*cb)(struct nl_object *, void *))
{
	struct nl_cache *cache;
	int err;

	/* Dumps every table of both families. */
	if ((err = rtnl_route_alloc_cache(w->sk, AF_UNSPEC, 0, &cache)) < 0) {
		log_warnx("%s: list routes: %s", __func__, nl_geterror(err));
		return -1;
	}
	nl_cache_foreach(cache, cb, w);
	nl_cache_free(cache);
	return 0;
}

/* ---- interface ---- */

int
rt_setup(uint32_t mark, uint32_t table)
{
	struct nl_sock *sk;
	const char *why;
	size_t i;
	int rv = 0, fam;

	if ((sk = rt_open()) == NULL)
		return -1;
	for (i = 0; i < sizeof(rt_families) / sizeof(rt_families[0]); i++) {
		fam = rt_families[i];
		if (!rt_family_ok(fam, &why)) {
			log_debug("%s: %s, skipping it", __func__, why);
			continue;
		}
		if (rt_rule_add(sk, fam, mark, table) == -1 ||
		    rt_route_change(sk, fam, table, NULL, 1) == -1)
			rv = -1;
	}
	nl_socket_free(sk);
	return rv;
}

/* Routes each pool address the resolver hands out to this host. */
int
rt_local_add(const struct cidr *c)
{
	const char *why;
	struct nl_sock *sk;
	int rv;

	if (!rt_family_ok(c->family, &why)) {
		log_warnx("%s: cannot route a pool address: %s", __func__, why);
		return -1;
	}
	if ((sk = rt_open()) == NULL)
		return -1;
	rv = rt_route_change(sk, c->family, RT_TABLE_LOCAL, c, 1);
	nl_socket_free(sk);
	return rv;
}

int
rt_local_del(const struct cidr *c)
{
	struct nl_sock *sk;
	int rv;

	if ((sk = rt_open()) == NULL)
		return -1;
	rv = rt_route_change(sk, c->family, RT_TABLE_LOCAL, c, 0);
	nl_socket_free(sk);
	return rv;
}

/* Routes go by protocol alone: a crash may have left another table. */
int
rt_cleanup(uint32_t table)
{
	struct rt_walk w;

	memset(&w, 0, sizeof(w));
	w.table = table;
	if ((w.sk = rt_open()) == NULL)
		return -1;
	if (rt_rules_walk(&w, rt_rule_del_cb) == -1 ||
	    rt_routes_walk(&w, rt_route_del_cb) == -1)
		w.rv = -1;
	nl_socket_free(w.sk);
	log_debug("%s: removed %u rules and routes", __func__, w.n);
	return w.rv;
}

/* Shows the rules and routes that carry our protocol tag. */
void
rt_dump(FILE *fp)
{
	struct rt_walk w;

	memset(&w, 0, sizeof(w));
	w.fp = fp;
	w.table = (uint32_t)-1;
	if ((w.sk = rt_open()) == NULL)
		return;
	rt_rules_walk(&w, rt_rule_print_cb);
	rt_routes_walk(&w, rt_route_print_cb);
	nl_socket_free(w.sk);
}
