/* SPDX-License-Identifier: MIT */
/* The running daemon's state as text, for `sluice dump` and SIGUSR1. */
#include "config.h"

#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "sluice.h"
#include "dns.h"
#include "nf.h"
#include "tunnel.h"

static void
dump_listeners(struct sluice *sl, FILE *fp)
{
	char buf[ADDR_STRLEN];

	fprintf(fp, "listeners:\n");
	if (sl->tcp4 != NULL)
		fprintf(fp, "  tcp %s (transparent)\n",
		    addr_str(listener_addr(sl->tcp4), buf, sizeof(buf)));
	if (sl->tcp6 != NULL)
		fprintf(fp, "  tcp %s (transparent)\n",
		    addr_str(listener_addr(sl->tcp6), buf, sizeof(buf)));
	if (udp_listener_addr(sl->udp, AF_INET) != NULL)
		fprintf(fp, "  udp %s (transparent)\n", addr_str(
		    udp_listener_addr(sl->udp, AF_INET), buf, sizeof(buf)));
	if (udp_listener_addr(sl->udp, AF_INET6) != NULL)
		fprintf(fp, "  udp %s (transparent)\n", addr_str(
		    udp_listener_addr(sl->udp, AF_INET6), buf, sizeof(buf)));
}

static void
dump_kernel(struct sluice *sl, FILE *fp)
{
	if (sl->nf == NULL)
		return;
	fprintf(fp, "\ninterception (%s):\n", sl->nf->name);
	sl->nf->dump(fp);
	fprintf(fp, "\npolicy routing:\n");
	rt_dump(fp);
}

/* The nameserver's settings and counters, and every name's address. */
static void
dump_dns(struct sluice *sl, FILE *fp)
{
	if (sl->dns == NULL)
		return;
	dns_server_dump(sl->dns, fp);
	if (sl->resolv_active)
		fprintf(fp, "  system resolver: %s\n",
		    resolv_kind_name(sl->resolv_kind));
	intercept_dump(sl->icpt, fp);
}

static void
dump_flows(struct sluice *sl, FILE *fp)
{
	fprintf(fp, "\nflows (%zu):\n", sl->nflows);
	flow_dump_all(sl, fp);
	udp_dump(sl->udp, fp);
}

static void
dump_counters(struct sluice *sl, FILE *fp)
{
	const struct counters *c = &sl->stats;

	fprintf(fp, "\ncounters:\n"
	    "  accepted %llu\n  unmatched %llu\n  dial-failed %llu\n"
	    "  accept-paused %llu\n  bytes-up %llu\n  bytes-down %llu\n",
	    (unsigned long long)c->accepted, (unsigned long long)c->unmatched,
	    (unsigned long long)c->dial_failed,
	    (unsigned long long)c->accept_paused,
	    (unsigned long long)c->bytes_up,
	    (unsigned long long)c->bytes_down);
}

void
sluice_dump(struct sluice *sl, FILE *fp)
{
	fprintf(fp, "sluice %s, pid %ld, up %lld s, state dir %s\n",
	    PACKAGE_VERSION, (long)getpid(),
	    (long long)(time(NULL) - sl->started), sl->state_dir);
	conf_print_summary(sl->conf, fp);
	fprintf(fp, "\n");
	dump_listeners(sl, fp);
	dump_kernel(sl, fp);
	dump_dns(sl, fp);
	if (sl->tunnel != NULL) {
		fprintf(fp, "\n");
		tunnel_dump(sl->tunnel, fp);
	}
	if (sl->host != NULL) {
		fprintf(fp, "\n");
		host_dump(sl->host, fp);
	}
	dump_flows(sl, fp);
	dump_counters(sl, fp);
}
