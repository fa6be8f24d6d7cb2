/* SPDX-License-Identifier: MIT */
/* nftables backend (table inet sluice); a placeholder until it is written. */
#include "config.h"

#include <stdio.h>

#include "log.h"
#include "nf.h"

static int
nft_probe(void)
{
	log_debug("%s: nftables backend not implemented yet", __func__);
	return -1;
}

static int
nft_apply(const struct nf_params *p, const struct nf_rule *rules, size_t n)
{
	log_warnx("%s: nftables backend not implemented yet", __func__);
	return -1;
}

/* Nothing can have been installed by a backend that installs nothing. */
static int
nft_flush(void)
{
	return 0;
}

static void
nft_dump(FILE *fp)
{
}

const struct nf_ops nf_nft_ops = {
	.name = "nftables",
	.probe = nft_probe,
	.apply = nft_apply,
	.flush = nft_flush,
	.dump = nft_dump,
};
