/* SPDX-License-Identifier: MIT */
/* Socket helpers: nonblocking, marks, abortive close, listening sockets. */
#include "config.h"

#include <sys/socket.h>
#include <netinet/in.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "sluice.h"

int
sock_nonblock(int fd)
{
	int fl;

	if ((fl = fcntl(fd, F_GETFL)) == -1)
		return -1;
	if (fl & O_NONBLOCK)
		return 0;
	return fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

int
sock_set_mark(int fd, uint32_t mark)
{
	if (mark == 0)
		return 0;
	return setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof(mark));
}

void
sock_close_reset(int fd)
{
	struct linger l = { 1, 0 };
	int saved = errno;

	if (fd == -1)
		return;
	/* Best effort: a socket that never connected just closes. */
	(void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
	close(fd);
	errno = saved;
}

int
sock_transparent(int fd, int family)
{
	int one = 1;

	if (family == AF_INET6)
		return setsockopt(fd, IPPROTO_IPV6, IPV6_TRANSPARENT, &one,
		    sizeof(one));
	return setsockopt(fd, IPPROTO_IP, IP_TRANSPARENT, &one, sizeof(one));
}

/* SO_REUSEADDR, IPV6_V6ONLY and, if asked, the transparent option. */
static int
sock_listen_opts(int fd, int family, int transparent)
{
	int one = 1;

	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1)
		return -1;
	/* The v4 and v6 listeners are separate sockets; keep them apart. */
	if (family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY,
	    &one, sizeof(one)) == -1)
		return -1;
	if (transparent && sock_transparent(fd, family) == -1)
		return -1;
	return 0;
}

int
sock_listen(const struct sockaddr *addr, int type, int transparent,
    struct sockaddr_storage *bound)
{
	socklen_t len;
	int fd, saved;

	if (addr->sa_family != AF_INET && addr->sa_family != AF_INET6) {
		errno = EAFNOSUPPORT;
		return -1;
	}
	fd = socket(addr->sa_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return -1;
	len = addr->sa_family == AF_INET ? sizeof(struct sockaddr_in) :
	    sizeof(struct sockaddr_in6);
	if (sock_listen_opts(fd, addr->sa_family, transparent) == -1 ||
	    bind(fd, addr, len) == -1)
		goto fail;
	if (type == SOCK_STREAM && listen(fd, SOMAXCONN) == -1)
		goto fail;
	if (bound != NULL) {
		len = sizeof(*bound);
		memset(bound, 0, sizeof(*bound));
		if (getsockname(fd, (struct sockaddr *)bound, &len) == -1)
			goto fail;
	}
	return fd;
fail:
	saved = errno;
	close(fd);
	errno = saved;
	return -1;
}

int
sock_connect(int fd, const struct sockaddr *dst)
{
	if (connect(fd, dst, addr_len(dst)) == 0)
		return 1;
	if (errno != EINPROGRESS)
		return -1;
	/*
	 * A nearby server (loopback, this machine, a container) has usually
	 * answered by the time connect() returns: asking again is cheaper
	 * than a round through the poller, and a refusal shows here too.
	 */
	if (connect(fd, dst, addr_len(dst)) == 0 || errno == EISCONN)
		return 1;
	return errno == EALREADY || errno == EINPROGRESS ? 0 : -1;
}
