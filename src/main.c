/* SPDX-License-Identifier: MIT */
/* sluice: entry point; the command table below is the program's map. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sluice.h"
#include "dns.h"
#include "log.h"
#include "nf.h"
#include "tunnel.h"

static int cmd_tproxy(struct cli_opts *, int, char **);
static int cmd_proxy(struct cli_opts *, int, char **);
static int cmd_host(struct cli_opts *, int, char **);
static int cmd_run(struct cli_opts *, int, char **);
static int cmd_check(struct cli_opts *, int, char **);
static int cmd_dump(struct cli_opts *, int, char **);
static int cmd_cleanup(struct cli_opts *, int, char **);
static int cmd_version(struct cli_opts *, int, char **);
static int cmd_pki(struct cli_opts *, int, char **);
static int usage_error(const char *, const char *);

/* What each command does, and which options it accepts besides globals. */
#define TAKES_TPROXY	0x1	/* --backend, --dns-*, --resolver, ... */
#define TAKES_BIND	0x2
#define TAKES_DAYS	0x4	/* pki --days */

static const struct command {
	const char	*name;
	int		(*run)(struct cli_opts *, int argc, char **argv);
	int		 min_args, max_args;
	unsigned	 takes;
} commands[] = {
	{ "tproxy",	cmd_tproxy,	 0, 0,  TAKES_TPROXY },
	{ "proxy",	cmd_proxy,	 1, -1, TAKES_BIND },
	{ "host",	cmd_host,	 0, 0,  0 },
	{ "run",	cmd_run,	 0, 0,  TAKES_TPROXY },
	{ "check",	cmd_check,	 0, 0,  0 },
	{ "dump",	cmd_dump,	 0, 0,  0 },
	{ "cleanup",	cmd_cleanup,	 0, 0,  0 },
	{ "pki",	cmd_pki,	 2, 3,  TAKES_DAYS },
	{ "version",	cmd_version,	 0, 0,  0 },
};

static int
cmd_tproxy(struct cli_opts *o, int argc, char **argv)
{
	if (!tproxy_privileged()) {
		log_warnx("tproxy needs root or CAP_NET_ADMIN");
		return EX_NOPERM;
	}
	return daemon_main(&mode_tproxy, o);
}

/* No privileges: plain listeners, and dials that need no mark. */
static int
cmd_proxy(struct cli_opts *o, int argc, char **argv)
{
	o->args = argv + 1;
	o->nargs = argc - 1;
	return daemon_main(&mode_proxy, o);
}

static int
cmd_host(struct cli_opts *o, int argc, char **argv)
{
	return daemon_main(&mode_host, o);
}

static int
cmd_run(struct cli_opts *o, int argc, char **argv)
{
	if (!tproxy_privileged()) {
		log_warnx("run needs root or CAP_NET_ADMIN (it intercepts)");
		return EX_NOPERM;
	}
	return daemon_main(&mode_run, o);
}

static int
cmd_check(struct cli_opts *o, int argc, char **argv)
{
	struct config *conf;

	if ((conf = cli_load_config(o, stderr)) == NULL)
		return EX_CONFIG;
	printf("%s: ok\n", conf->path);
	conf_print_summary(conf, stdout);
	conf_free(conf);
	return 0;
}

static int
cmd_dump(struct cli_opts *o, int argc, char **argv)
{
	if (ctl_dump_client(o->state_dir, stdout) == -1) {
		fprintf(stderr, "sluice: no running daemon answered on %s/%s: "
		    "%s\n", o->state_dir, SLUICE_CTL_SOCKET, strerror(errno));
		return EX_UNAVAILABLE;
	}
	return 0;
}

/*
 * Cleanup needs only the route table from the config, so a broken or
 * missing config falls back to the default rather than leaving state.
 */
static int
cmd_cleanup(struct cli_opts *o, int argc, char **argv)
{
	struct config *conf;
	uint32_t table = 100;
	pid_t holder;
	int fd, rc;

	if (!tproxy_privileged()) {
		fprintf(stderr, "sluice: cleanup needs root or CAP_NET_ADMIN\n");
		return EX_NOPERM;
	}
	if (access(o->config, F_OK) == 0) {
		if ((conf = cli_load_config(o, stderr)) == NULL)
			return EX_CONFIG;
		table = conf->route_table;
		conf_free(conf);
	}
	fd = pidlock_acquire(o->state_dir, &holder);
	if (fd == -1 && errno == EWOULDBLOCK) {
		fprintf(stderr, "sluice: a sluice (pid %ld) is running with "
		    "state dir %s; stop it first\n", (long)holder,
		    o->state_dir);
		return EXIT_FAIL;
	}
	/* The resolver first: users must get their DNS back whatever else. */
	rc = resolv_cleanup(o->state_dir);
	if (nf_cleanup_all(table) == -1)
		rc = -1;
	pidlock_release(fd, o->state_dir);
	if (rc == -1) {
		fprintf(stderr, "sluice: cleanup was incomplete (see above)\n");
		return EXIT_FAIL;
	}
	printf("removed sluice's interception rules, routes, policy rules "
	    "and resolver changes\n");
	return 0;
}

/* Runs before any config is read: making the identities comes first. */
static int
cmd_pki(struct cli_opts *o, int argc, char **argv)
{
	if (strcmp(argv[1], "init") == 0 && argc == 3)
		return pki_init(argv[2], o->days != -1 ? (unsigned)o->days :
		    PKI_CA_DAYS, stderr);
	if (strcmp(argv[1], "issue") == 0 && argc == 4)
		return pki_issue(argv[2], argv[3], o->days != -1 ?
		    (unsigned)o->days : PKI_IDENTITY_DAYS, stderr);
	if (strcmp(argv[1], "init") == 0 || strcmp(argv[1], "issue") == 0)
		return usage_error("wrong number of arguments for 'pki %s'",
		    argv[1]);
	return usage_error("unknown pki command '%s' (init or issue)",
	    argv[1]);
}

static int
cmd_version(struct cli_opts *o, int argc, char **argv)
{
	printf("sluice %s\n", PACKAGE_VERSION);
	return 0;
}

static const struct command *
command_find(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

/* Options that belong to one command are an error with another. */
static int
command_takes(const struct command *cmd, const struct cli_opts *o)
{
	int tproxy_opts = o->backend != -1 || o->dns_listen != NULL ||
	    o->dns_ip_range != NULL || o->ndns_upstream > 0 ||
	    o->resolver != NULL || o->no_self_test;

	if (tproxy_opts && !(cmd->takes & TAKES_TPROXY))
		return 0;
	if (o->bind != NULL && !(cmd->takes & TAKES_BIND))
		return 0;
	if (o->days != -1 && !(cmd->takes & TAKES_DAYS))
		return 0;
	return 1;
}

static int
usage_error(const char *fmt, const char *arg)
{
	fprintf(stderr, "sluice: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\nTry 'sluice --help'.\n");
	return EX_USAGE;
}

int
main(int argc, char **argv)
{
	const struct command *cmd;
	struct cli_opts opts;
	int first, nargs, help;

	if ((first = cli_parse(argc, argv, &opts, &help)) == -1)
		return EX_USAGE;
	if (help) {
		cli_usage(stdout);
		return 0;
	}
	if (first >= argc)
		return usage_error("%s", "no command given");
	if ((cmd = command_find(argv[first])) == NULL)
		return usage_error("unknown command '%s'", argv[first]);
	nargs = argc - first - 1;
	if (nargs < cmd->min_args ||
	    (cmd->max_args >= 0 && nargs > cmd->max_args))
		return usage_error("wrong number of arguments for '%s'",
		    cmd->name);
	if (!command_takes(cmd, &opts))
		return usage_error("an option given does not apply to '%s'",
		    cmd->name);
	log_init(opts.verbose);
	return cmd->run(&opts, argc - first, argv + first);
}
