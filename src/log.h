/* SPDX-License-Identifier: MIT */
/* Logging: OpenBSD-style API with levels 0 (fatal) to 5 (trace). */
#ifndef SLUICE_LOG_H
#define SLUICE_LOG_H

#include <stdarg.h>

#define LOG_LVL_FATAL	0
#define LOG_LVL_WARN	2
#define LOG_LVL_INFO	3
#define LOG_LVL_DEBUG	4
#define LOG_LVL_TRACE	5

extern int log_level;

void	log_init(int level);
void	log_warn(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_warnx(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_info(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_debug(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_trace(const char *, ...) __attribute__((format(printf, 1, 2)));
void	fatal(const char *, ...) __attribute__((format(printf, 1, 2),
	    noreturn));
void	fatalx(const char *, ...) __attribute__((format(printf, 1, 2),
	    noreturn));
/* Like fatal/fatalx but with an explicit exit code. */
void	fatalx_code(int code, const char *, ...)
	    __attribute__((format(printf, 2, 3), noreturn));

#define log_enabled(lvl)	(log_level >= (lvl))

#endif /* SLUICE_LOG_H */
