/* SPDX-License-Identifier: MIT */
/* Service matching: which service an intercepted flow belongs to. */
#include "config.h"

#include <sys/socket.h>
#include <stddef.h>

#include "sluice.h"

int
svc_port_match(const struct service *s, uint16_t port)
{
	size_t i;

	for (i = 0; i < s->nports; i++)
		if (port >= s->ports[i].lo && port <= s->ports[i].hi)
			return 1;
	return 0;
}

int
svc_source_match(const struct service *s, const struct sockaddr *src)
{
	size_t i;

	if (s->nsources == 0)
		return 1;
	for (i = 0; i < s->nsources; i++)
		if (cidr_contains(&s->sources[i], src))
			return 1;
	return 0;
}

static int
svc_addr_match(const struct service *s, const struct sockaddr *dst)
{
	size_t i;

	for (i = 0; i < s->naddrs; i++)
		if (!s->addrs[i].is_name &&
		    cidr_contains(&s->addrs[i].cidr, dst))
			return 1;
	return 0;
}

/*
 * Config order decides overlaps, as with firewall rules: the rules the
 * backends install follow the same order.
 */
struct service *
svc_match(const struct config *conf, int proto, const struct sockaddr *dst,
    const struct sockaddr *src)
{
	struct service *s;

	if (conf == NULL || dst == NULL)
		return NULL;
	TAILQ_FOREACH(s, &conf->services, entry) {
		if (!s->has_intercept || !(s->protocols & proto))
			continue;
		if (svc_addr_match(s, dst) && svc_port_match(s,
		    addr_port(dst)) && svc_source_match(s, src))
			return s;
	}
	return NULL;
}

/*
 * Backtracks only to the last '*', so the cost stays linear in practice
 * and a hostile pattern cannot blow up.
 */
int
svc_name_glob(const char *pat, const char *name)
{
	const char *star = NULL, *resume = NULL;

	while (*name != '\0') {
		if (*pat == '*') {
			star = pat++;
			resume = name;
		} else if (*pat == '?' || *pat == *name) {
			pat++;
			name++;
		} else if (star != NULL) {
			pat = star + 1;
			name = ++resume;
		} else
			return 0;
	}
	while (*pat == '*')
		pat++;
	return *pat == '\0';
}
