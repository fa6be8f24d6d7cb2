/* SPDX-License-Identifier: MIT */
/* Test tool: installs, lists or removes interception rules, no daemon. */
#include "config.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "nf.h"

#define TOOL_MARK	0x1
#define TOOL_BYPASS	0x2
#define TOOL_TABLE	100

static void
usage(void)
{
	fprintf(stderr,
	    "usage: nf_tool [-v] apply PORT RULE...\n"
	    "       nf_tool [-v] local add|del CIDR\n"
	    "       nf_tool [-v] rules CONFIG [SERVICE=CIDR...]\n"
	    "       nf_tool [-v] flush | dump\n"
	    "RULE:  SERVICE:tcp|udp:CIDR:PORT[-PORT][:src=CIDR]\n"
	    "       (IPv6 CIDRs in brackets: web:tcp:[fd00::/64]:80)\n");
	exit(64);
}

/* Splits off the next ':'-separated field; "[...]" may contain ':'. */
static char *
field(char **sp)
{
	char *s = *sp, *end;

	if (s == NULL)
		return NULL;
	if (*s == '[' && (end = strchr(s, ']')) != NULL) {
		*end = '\0';
		s++;
		end++;
	} else
		end = s + strcspn(s, ":");
	if (*end == ':')
		*end++ = '\0';
	*sp = *end != '\0' ? end : NULL;
	return s;
}

/*
 * Parses with the configuration's own address parsers. The rule keeps
 * pointers into arg, which must outlive it.
 */
static int
parse_rule(char *arg, struct nf_rule *r, const char **why)
{
	char *rest = arg, *name, *proto, *dst, *ports, *src;
	struct port_range pr;

	memset(r, 0, sizeof(*r));
	*why = "expected SERVICE:PROTO:CIDR:PORTS[:src=CIDR]";
	name = field(&rest);
	proto = field(&rest);
	dst = field(&rest);
	ports = field(&rest);
	src = field(&rest);
	if (name == NULL || proto == NULL || dst == NULL || ports == NULL ||
	    rest != NULL || (src != NULL && strncmp(src, "src=", 4) != 0))
		return -1;
	r->comment = name;
	if (strcmp(proto, "tcp") == 0)
		r->proto = IPPROTO_TCP;
	else if (strcmp(proto, "udp") == 0)
		r->proto = IPPROTO_UDP;
	else {
		*why = "protocol is not tcp or udp";
		return -1;
	}
	if (addr_parse_cidr(dst, &r->dst, why) == -1 ||
	    addr_parse_port_range(ports, &pr, why) == -1 ||
	    (src != NULL && addr_parse_cidr(src + 4, &r->src, why) == -1))
		return -1;
	r->family = r->dst.family;
	r->port_lo = pr.lo;
	r->port_hi = pr.hi;
	return 0;
}

/* Every listener on loopback at port, as if the daemon had bound them. */
static void
params_init(struct nf_params *p, uint16_t port)
{
	memset(p, 0, sizeof(*p));
	p->mark = TOOL_MARK;
	p->bypass_mark = TOOL_BYPASS;
	p->tcp4.sin_family = AF_INET;
	p->tcp4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	p->tcp4.sin_port = htons(port);
	p->udp4 = p->tcp4;
	p->tcp6.sin6_family = AF_INET6;
	p->tcp6.sin6_addr = in6addr_loopback;
	p->tcp6.sin6_port = htons(port);
	p->udp6 = p->tcp6;
}

static int
cmd_apply(int argc, char **argv)
{
	const struct nf_ops *ops;
	struct nf_params params;
	struct nf_rule *rules;
	unsigned long port;
	const char *why;
	char *end, shown[256];
	int i, rv = 1;

	if (argc < 1)
		usage();
	port = strtoul(argv[0], &end, 10);
	if (*argv[0] == '\0' || *end != '\0' || port == 0 || port > 65535) {
		fprintf(stderr, "nf_tool: bad port: %s\n", argv[0]);
		return 64;
	}
	params_init(&params, (uint16_t)port);
	if ((rules = calloc((size_t)argc, sizeof(*rules))) == NULL) {
		perror("nf_tool");
		return 1;
	}
	for (i = 1; i < argc; i++) {
		/* parse_rule cuts argv[i] into fields. */
		snprintf(shown, sizeof(shown), "%s", argv[i]);
		if (parse_rule(argv[i], &rules[i - 1], &why) == -1) {
			fprintf(stderr, "nf_tool: bad rule %s: %s\n", shown,
			    why);
			rv = 64;
			goto done;
		}
	}
	if ((ops = nf_select(NF_BACKEND_IPTABLES)) == NULL ||
	    ops->apply(&params, rules, (size_t)argc - 1) == -1 ||
	    rt_setup(TOOL_MARK, TOOL_TABLE) == -1) {
		fprintf(stderr, "nf_tool: apply failed\n");
		goto done;
	}
	rv = 0;
 done:
	free(rules);
	return rv;
}

/* Pool addresses: "local CIDR dev lo table local proto sluice". */
static int
cmd_local(int argc, char **argv)
{
	const char *why;
	struct cidr c;
	int rv;

	if (argc != 2 || (strcmp(argv[0], "add") != 0 &&
	    strcmp(argv[0], "del") != 0))
		usage();
	if (addr_parse_cidr(argv[1], &c, &why) == -1) {
		fprintf(stderr, "nf_tool: bad address %s: %s\n", argv[1], why);
		return 64;
	}
	if (strcmp(argv[0], "add") == 0)
		rv = rt_local_add(&c);
	else
		rv = rt_local_del(&c);
	if (rv == -1) {
		fprintf(stderr, "nf_tool: local %s failed\n", argv[0]);
		return 1;
	}
	return 0;
}

static void
print_rule(const struct nf_rule *r)
{
	char dst[ADDR_STRLEN], src[ADDR_STRLEN];

	printf("%s %s %s dport %u-%u", r->comment,
	    r->proto == IPPROTO_TCP ? "tcp" : "udp",
	    cidr_str(&r->dst, dst, sizeof(dst)), r->port_lo, r->port_hi);
	if (r->src.family != 0)
		printf(" from %s", cidr_str(&r->src, src, sizeof(src)));
	printf("\n");
}

/* SERVICE=CIDR: an address the resolver handed out for SERVICE. */
static int
parse_extra(const struct config *conf, char *arg, struct nf_extra *x)
{
	const char *why = "expected SERVICE=CIDR";
	char *eq;

	if ((eq = strchr(arg, '=')) != NULL) {
		*eq = '\0';
		x->svc = conf_service_by_name(conf, arg);
		*eq = '=';
		why = "no such service";
	}
	if (eq == NULL || x->svc == NULL ||
	    addr_parse_cidr(eq + 1, &x->addr, &why) == -1) {
		fprintf(stderr, "nf_tool: bad extra address %s: %s\n", arg, why);
		return -1;
	}
	return 0;
}

/* How the configuration's intercepts (and extras) expand into rules. */
static int
cmd_rules(int argc, char **argv)
{
	struct config *conf;
	struct nf_extra *extra;
	struct nf_rule *rules = NULL;
	size_t i, n;
	int rv = 1;

	if (argc < 1)
		usage();
	if ((conf = conf_load(argv[0], stderr)) == NULL)
		return 78;
	if ((extra = calloc((size_t)argc, sizeof(*extra))) == NULL) {
		perror("nf_tool");
		goto done;
	}
	for (i = 1; i < (size_t)argc; i++) {
		if (parse_extra(conf, argv[i], &extra[i - 1]) == -1) {
			rv = 64;
			goto done;
		}
	}
	if (nf_rules_build(conf, extra, (size_t)argc - 1, &rules, &n) == -1)
		goto done;
	for (i = 0; i < n; i++)
		print_rule(&rules[i]);
	rv = 0;
 done:
	free(rules);
	free(extra);
	conf_free(conf);
	return rv;
}

int
main(int argc, char **argv)
{
	int level = LOG_LVL_INFO;

	if (argc > 1 && strcmp(argv[1], "-v") == 0) {
		level = LOG_LVL_DEBUG;
		argc--;
		argv++;
	}
	log_init(level);
	if (argc < 2)
		usage();
	if (strcmp(argv[1], "apply") == 0)
		return cmd_apply(argc - 2, argv + 2);
	if (strcmp(argv[1], "local") == 0)
		return cmd_local(argc - 2, argv + 2);
	if (strcmp(argv[1], "rules") == 0)
		return cmd_rules(argc - 2, argv + 2);
	if (argc != 2)
		usage();
	if (strcmp(argv[1], "flush") == 0) {
		if (nf_cleanup_all(TOOL_TABLE) == -1) {
			fprintf(stderr, "nf_tool: flush failed\n");
			return 1;
		}
		return 0;
	}
	if (strcmp(argv[1], "dump") == 0) {
		nf_ipt_ops.dump(stdout);
		rt_dump(stdout);
		return 0;
	}
	usage();
}
