/* SPDX-License-Identifier: MIT */
/* Logging to stderr with monotonic-since-start timestamps and levels. */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"

int log_level = LOG_LVL_INFO;

static struct timespec log_start;
static const char *const level_names[] = {
	"FATAL", "ERROR", "WARN", "INFO", "DEBUG", "TRACE"
};

void
log_init(int level)
{
	log_level = level;
	clock_gettime(CLOCK_MONOTONIC, &log_start);
}

/* One write per line so that lines from the resolver thread never mix. */
static void
vlog(int level, const char *fmt, va_list ap, int with_errno, int saved)
{
	struct timespec now;
	char msg[1024];
	int n;
	double t;

	if (level > log_level)
		return;
	clock_gettime(CLOCK_MONOTONIC, &now);
	t = (now.tv_sec - log_start.tv_sec) +
	    (now.tv_nsec - log_start.tv_nsec) / 1e9;
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	if (n < 0)
		n = 0;
	if (with_errno && (size_t)n < sizeof(msg))
		snprintf(msg + n, sizeof(msg) - n, ": %s", strerror(saved));
	fprintf(stderr, "[%9.3f] %5s %s\n", t, level_names[level], msg);
	fflush(stderr);
}

#define LOG_BODY(level, with_errno) do {				\
	int saved = errno;						\
	va_list ap;							\
	va_start(ap, fmt);						\
	vlog(level, fmt, ap, with_errno, saved);			\
	va_end(ap);							\
	errno = saved;							\
} while (0)

void log_warn(const char *fmt, ...)  { LOG_BODY(LOG_LVL_WARN, 1); }
void log_warnx(const char *fmt, ...) { LOG_BODY(LOG_LVL_WARN, 0); }
void log_info(const char *fmt, ...)  { LOG_BODY(LOG_LVL_INFO, 0); }
void log_debug(const char *fmt, ...) { LOG_BODY(LOG_LVL_DEBUG, 0); }
void log_trace(const char *fmt, ...) { LOG_BODY(LOG_LVL_TRACE, 0); }

void
fatal(const char *fmt, ...)
{
	LOG_BODY(LOG_LVL_FATAL, 1);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	LOG_BODY(LOG_LVL_FATAL, 0);
	exit(1);
}

void
fatalx_code(int code, const char *fmt, ...)
{
	LOG_BODY(LOG_LVL_FATAL, 0);
	exit(code);
}
