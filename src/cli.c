/* SPDX-License-Identifier: MIT */
/* Command-line options: parsing, help text, and overrides of the config. */
#include "config.h"

#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sluice.h"
#include "log.h"

/* Keep in step with the SYNOPSIS of man/sluice.8. */
static const char usage_text[] =
"usage: sluice [-c FILE] [-v N] [--state-dir DIR] [--refresh N] COMMAND [ARGS]\n"
"\n"
"options:\n"
"  -c, --config FILE    configuration (default " SLUICE_DEFAULT_CONFIG ")\n"
"  -v, --verbose N      log level: 0 fatal ... 3 info (default) ... 5 trace\n"
"      --state-dir DIR  control socket, pid lock, address allocations\n"
"                       (default " SLUICE_DEFAULT_STATEDIR "; created if missing)\n"
"      --refresh N      re-read the configuration every N seconds if it\n"
"                       changed (default 10, 0 = off)\n"
"  -h, --help           print this help\n"
"\n"
"commands:\n"
"  tproxy               intercept transparently and serve DNS (root or CAP_NET_ADMIN)\n"
"      --backend auto|nftables|iptables\n"
"      --dns-listen ADDR:PORT  --dns-ip-range CIDR  --dns-upstream ADDR (repeatable)\n"
"      --resolver auto|systemd-resolved|resolv.conf|file:PATH|none  --no-self-test\n"
"  proxy SERVICE:PORT...  listen on 127.0.0.1:PORT (or --bind ADDR) and forward each\n"
"                       connection as if it had been intercepted for SERVICE\n"
"  host                 accept tunnel connections and dial the hosted services\n"
"  run                  tproxy and host in one process\n"
"  check                validate the configuration, print a summary, exit 0 or 78\n"
"  dump                 print the running daemon's state\n"
"  cleanup              remove every rule, route, policy rule and resolver edit\n"
"                       that a previous run left\n"
"  pki init DIR         create a CA: DIR/ca.crt, DIR/ca.key\n"
"  pki issue DIR NAME   issue an identity signed by that CA: DIR/NAME.crt, DIR/NAME.key\n"
"      --days N         validity in days (0 to 36500; default 3650 for the CA,\n"
"                       365 for an identity)\n"
"  version              print the version\n";

enum {
	OPT_STATE_DIR = 256, OPT_REFRESH, OPT_BACKEND, OPT_DNS_LISTEN,
	OPT_DNS_IP_RANGE, OPT_DNS_UPSTREAM, OPT_RESOLVER, OPT_NO_SELF_TEST,
	OPT_BIND,
	OPT_DAYS,
};

static const struct option long_options[] = {
	{ "config",	  required_argument, NULL, 'c' },
	{ "verbose",	  required_argument, NULL, 'v' },
	{ "help",	  no_argument,	     NULL, 'h' },
	{ "state-dir",	  required_argument, NULL, OPT_STATE_DIR },
	{ "refresh",	  required_argument, NULL, OPT_REFRESH },
	{ "backend",	  required_argument, NULL, OPT_BACKEND },
	{ "dns-listen",	  required_argument, NULL, OPT_DNS_LISTEN },
	{ "dns-ip-range", required_argument, NULL, OPT_DNS_IP_RANGE },
	{ "dns-upstream", required_argument, NULL, OPT_DNS_UPSTREAM },
	{ "resolver",	  required_argument, NULL, OPT_RESOLVER },
	{ "no-self-test", no_argument,	     NULL, OPT_NO_SELF_TEST },
	{ "bind",	  required_argument, NULL, OPT_BIND },
	{ "days",	  required_argument, NULL, OPT_DAYS },
	{ NULL, 0, NULL, 0 }
};

void
cli_usage(FILE *fp)
{
	fputs(usage_text, fp);
}

static int
cli_error(const char *fmt, const char *arg)
{
	fprintf(stderr, "sluice: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\nTry 'sluice --help'.\n");
	return -1;
}

static int
parse_uint(const char *s, long max, int *out)
{
	char *end;
	long v;

	v = strtol(s, &end, 10);
	if (*s == '\0' || *end != '\0' || v < 0 || v > max)
		return -1;
	*out = (int)v;
	return 0;
}

static int
parse_backend(const char *s, int *out)
{
	if (strcmp(s, "auto") == 0)
		*out = NF_BACKEND_AUTO;
	else if (strcmp(s, "nftables") == 0)
		*out = NF_BACKEND_NFTABLES;
	else if (strcmp(s, "iptables") == 0)
		*out = NF_BACKEND_IPTABLES;
	else
		return -1;
	return 0;
}

static int
valid_resolver(const char *s)
{
	return strcmp(s, "auto") == 0 || strcmp(s, "systemd-resolved") == 0 ||
	    strcmp(s, "resolv.conf") == 0 || strcmp(s, "none") == 0 ||
	    (strncmp(s, "file:", 5) == 0 && s[5] != '\0');
}

/* An upstream is ADDR or ADDR:PORT (port 53 by default). */
static int
parse_upstream(const char *s, struct endpoint *ep)
{
	struct sockaddr_storage ss;
	socklen_t len;
	const char *why;
	struct cidr c;

	if (addr_parse_endpoint(s, &ep->ss, &ep->len, 0, &why) == 0)
		return 0;
	if (addr_parse_cidr(s, &c, &why) == -1 ||
	    c.prefixlen != (c.family == AF_INET ? 32 : 128))
		return -1;
	memset(&ss, 0, sizeof(ss));
	if (c.family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

		sin->sin_family = AF_INET;
		memcpy(&sin->sin_addr, c.addr, 4);
		sin->sin_port = htons(53);
		len = sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

		sin6->sin6_family = AF_INET6;
		memcpy(&sin6->sin6_addr, c.addr, 16);
		sin6->sin6_port = htons(53);
		len = sizeof(*sin6);
	}
	ep->ss = ss;
	ep->len = len;
	return 0;
}

static int
cli_option(int ch, const char *arg, struct cli_opts *o)
{
	struct endpoint ep;
	struct cidr c;
	const char *why;

	switch (ch) {
	case 'c':
		o->config = arg;
		return 0;
	case 'v':
		if (parse_uint(arg, LOG_LVL_TRACE, &o->verbose) == -1)
			return cli_error("-v takes a level from 0 to 5, not "
			    "'%s'", arg);
		return 0;
	case OPT_STATE_DIR:
		o->state_dir = arg;
		return 0;
	case OPT_REFRESH:
		if (parse_uint(arg, 86400, &o->refresh) == -1)
			return cli_error("--refresh takes seconds (0 to 86400),"
			    " not '%s'", arg);
		return 0;
	case OPT_BACKEND:
		if (parse_backend(arg, &o->backend) == -1)
			return cli_error("--backend takes auto, nftables or "
			    "iptables, not '%s'", arg);
		return 0;
	case OPT_DNS_LISTEN:
		if (addr_parse_endpoint(arg, &ep.ss, &ep.len, 0, &why) == -1)
			return cli_error("--dns-listen takes ADDR:PORT, not "
			    "'%s'", arg);
		o->dns_listen = arg;
		return 0;
	case OPT_DNS_IP_RANGE:
		if (addr_parse_cidr(arg, &c, &why) == -1)
			return cli_error("--dns-ip-range takes a CIDR, not "
			    "'%s'", arg);
		o->dns_ip_range = arg;
		return 0;
	case OPT_DNS_UPSTREAM:
		if (parse_upstream(arg, &ep) == -1)
			return cli_error("--dns-upstream takes ADDR or "
			    "ADDR:PORT, not '%s'", arg);
		if (o->ndns_upstream == CLI_MAX_UPSTREAM)
			return cli_error("--dns-upstream: at most 8, '%s' is "
			    "one too many", arg);
		o->dns_upstream[o->ndns_upstream++] = arg;
		return 0;
	case OPT_RESOLVER:
		if (!valid_resolver(arg))
			return cli_error("--resolver takes auto, "
			    "systemd-resolved, resolv.conf, file:PATH or none, "
			    "not '%s'", arg);
		o->resolver = arg;
		return 0;
	case OPT_NO_SELF_TEST:
		o->no_self_test = 1;
		return 0;
	case OPT_BIND:
		o->bind = arg;
		return 0;
	case OPT_DAYS:
		if (parse_uint(arg, 36500, &o->days) == -1)
			return cli_error("--days takes a number of days (0 to "
			    "36500), not '%s'", arg);
		return 0;
	}
	return -1;
}

/*
 * Users without root run proxy and host too, and cannot create
 * /run/sluice: their default is their runtime dir, as for user services.
 */
static const char *
default_state_dir(void)
{
	static char dir[256];
	const char *xdg = getenv("XDG_RUNTIME_DIR");

	if (geteuid() == 0)
		return SLUICE_DEFAULT_STATEDIR;
	if (xdg != NULL && xdg[0] == '/' && strlen(xdg) < sizeof(dir) - 8)
		snprintf(dir, sizeof(dir), "%s/sluice", xdg);
	else
		snprintf(dir, sizeof(dir), "/tmp/sluice-%lu",
		    (unsigned long)geteuid());
	return dir;
}

int
cli_parse(int argc, char **argv, struct cli_opts *o, int *help)
{
	int ch;

	memset(o, 0, sizeof(*o));
	o->config = SLUICE_DEFAULT_CONFIG;
	o->state_dir = default_state_dir();
	o->verbose = LOG_LVL_INFO;
	o->refresh = 10;
	o->backend = -1;
	o->days = -1;
	*help = 0;
	opterr = 0;
	optind = 1;
	while ((ch = getopt_long(argc, argv, ":c:v:h", long_options,
	    NULL)) != -1) {
		if (ch == 'h') {
			*help = 1;
			continue;
		}
		if (ch == '?')
			return cli_error("unknown option '%s'", argv[optind - 1]);
		if (ch == ':')
			return cli_error("option '%s' needs a value",
			    argv[optind - 1]);
		if (cli_option(ch, optarg, o) == -1)
			return -1;
	}
	return optind;
}

static int
override_endpoint(const char *arg, struct endpoint *ep)
{
	const char *why;

	return addr_parse_endpoint(arg, &ep->ss, &ep->len, 0, &why);
}

/* The values were checked by cli_parse, so these cannot fail. */
static int
cli_override(const struct cli_opts *o, struct config *conf)
{
	const char *why;
	size_t i;

	if (o->backend != -1)
		conf->backend = o->backend;
	if (o->dns_listen != NULL &&
	    override_endpoint(o->dns_listen, &conf->dns_listen) == -1)
		return -1;
	if (o->dns_ip_range != NULL &&
	    addr_parse_cidr(o->dns_ip_range, &conf->dns_range, &why) == -1)
		return -1;
	if (o->ndns_upstream > 0) {
		free(conf->dns_upstream);
		conf->dns_upstream = calloc(o->ndns_upstream,
		    sizeof(*conf->dns_upstream));
		if (conf->dns_upstream == NULL)
			return -1;
		conf->ndns_upstream = o->ndns_upstream;
		for (i = 0; i < o->ndns_upstream; i++)
			if (parse_upstream(o->dns_upstream[i],
			    &conf->dns_upstream[i]) == -1)
				return -1;
	}
	if (o->resolver != NULL) {
		free(conf->dns_resolver);
		if ((conf->dns_resolver = strdup(o->resolver)) == NULL)
			return -1;
	}
	if (o->no_self_test)
		conf->dns_self_test = 0;
	return 0;
}

struct config *
cli_load_config(const struct cli_opts *o, FILE *errfp)
{
	struct config *conf;

	if ((conf = conf_load(o->config, errfp)) == NULL)
		return NULL;
	if (cli_override(o, conf) == -1) {
		fprintf(errfp, "sluice: cannot apply command-line options\n");
		conf_free(conf);
		return NULL;
	}
	conf->refs = 1;
	return conf;
}

/* Atomic: the resolver thread holds references too. */
struct config *
conf_ref(struct config *conf)
{
	atomic_fetch_add_explicit(&conf->refs, 1, memory_order_relaxed);
	return conf;
}

/* acq_rel: whoever frees sees every other thread's last use. */
void
conf_unref(struct config *conf)
{
	if (conf != NULL && atomic_fetch_sub_explicit(&conf->refs, 1,
	    memory_order_acq_rel) == 1)
		conf_free(conf);
}
