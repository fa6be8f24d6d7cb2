/* SPDX-License-Identifier: MIT */
/* libFuzzer harness for the configuration loader (YAML from an operator). */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "sluice.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static FILE *devnull;

/*
 * The input is handed over as is, without a terminating NUL, as
 * conf_read_file() does: a read past len is a bug that ASan reports.
 * An accepted configuration is also printed, as `sluice check` would.
 */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	struct config *c;

	if (devnull == NULL && (devnull = fopen("/dev/null", "w")) == NULL)
		return 0;
	c = conf_load_string("fuzz.yaml", (const char *)data, len, devnull);
	if (c != NULL) {
		conf_print_summary(c, devnull);
		conf_free(c);
	}
	return 0;
}
