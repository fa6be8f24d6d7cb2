/* SPDX-License-Identifier: MIT */
/* The run mode: tproxy and host in one process, sharing one event loop. */
#include "config.h"

#include "sluice.h"
#include "log.h"

static int
run_start(struct sluice *sl)
{
	int rc;

	if ((rc = mode_tproxy.start(sl)) != 0)
		return rc;
	return host_start(sl);
}

/* tproxy decides whether the new config is taken; the host follows. */
static int
run_reload(struct sluice *sl, struct config *conf)
{
	if (mode_tproxy.reload(sl, conf) == -1)
		return -1;
	if (host_reload(sl) == -1)
		log_warnx("reload: the host keeps its previous identity");
	return 0;
}

static void
run_stop(struct sluice *sl)
{
	host_stop(sl);
	mode_tproxy.stop(sl);
}

const struct mode mode_run = {
	.name = "run",
	.start = run_start,
	.reload = run_reload,
	.stop = run_stop,
};
