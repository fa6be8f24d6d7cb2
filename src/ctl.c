/* SPDX-License-Identifier: MIT */
/* Control socket in the state dir: `sluice dump` asks, the daemon answers. */
#include "config.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "sluice.h"
#include "log.h"
#include "nf.h"

#define CTL_MAX_REQUEST	256	/* a command line; anything longer is hostile */
#define CTL_TIMEOUT	5	/* seconds a client may take */

#define CTL_PAUSE_MS	250	/* accept back-off when out of descriptors */

struct ctl {
	struct sluice	*sl;
	int		 fd;
	struct event	*ev;
	struct event	*pause;		/* re-enables ev */
	char		 path[sizeof(((struct sockaddr_un *)0)->sun_path)];
};

static int
ctl_path(struct sockaddr_un *sun, const char *dir)
{
	int n;

	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	n = snprintf(sun->sun_path, sizeof(sun->sun_path), "%s/%s", dir,
	    SLUICE_CTL_SOCKET);
	if (n < 0 || (size_t)n >= sizeof(sun->sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

static void
ctl_conn_close(struct bufferevent *bev, void *arg)
{
	bufferevent_free(bev);
}

static void
ctl_conn_event(struct bufferevent *bev, short what, void *arg)
{
	bufferevent_free(bev);
}

/* Replies with the whole dump, then closes once the reply is written. */
static void
ctl_reply_dump(struct ctl *ctl, struct bufferevent *bev)
{
	char *text = NULL;
	size_t len = 0;
	FILE *fp;

	fp = open_memstream(&text, &len);
	if (fp == NULL) {
		log_warn("%s: open_memstream", __func__);
		bufferevent_free(bev);
		return;
	}
	sluice_dump(ctl->sl, fp);
	fclose(fp);
	bufferevent_write(bev, text, len);
	free(text);
	bufferevent_setcb(bev, NULL, ctl_conn_close, ctl_conn_event, ctl);
	bufferevent_disable(bev, EV_READ);
}

static void
ctl_conn_read(struct bufferevent *bev, void *arg)
{
	struct ctl *ctl = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	char *line;
	size_t n;

	line = evbuffer_readln(in, &n, EVBUFFER_EOL_LF);
	if (line == NULL) {
		if (evbuffer_get_length(in) > CTL_MAX_REQUEST) {
			log_warnx("control: request too long, closing");
			bufferevent_free(bev);
		}
		return;
	}
	if (strcmp(line, "dump") == 0)
		ctl_reply_dump(ctl, bev);
	else {
		log_warnx("control: unknown request '%.32s'", line);
		bufferevent_write(bev, "error: unknown request\n", 23);
		bufferevent_setcb(bev, NULL, ctl_conn_close, ctl_conn_event,
		    ctl);
	}
	free(line);
}

static void
ctl_resume(evutil_socket_t fd, short what, void *arg)
{
	struct ctl *ctl = arg;

	event_add(ctl->ev, NULL);
}

/* The request stays queued; level-triggered accept would spin on EMFILE. */
static void
ctl_pause(struct ctl *ctl)
{
	struct timeval tv = { 0, CTL_PAUSE_MS * 1000 };

	log_debug("control: out of file descriptors, pausing for %d ms",
	    CTL_PAUSE_MS);
	event_del(ctl->ev);
	evtimer_add(ctl->pause, &tv);
}

static void
ctl_accept(evutil_socket_t lfd, short what, void *arg)
{
	struct ctl *ctl = arg;
	struct bufferevent *bev;
	struct timeval tv = { CTL_TIMEOUT, 0 };
	int fd;

	fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd == -1) {
		if (fd_exhausted(errno))
			ctl_pause(ctl);
		else if (errno != EAGAIN && errno != EINTR &&
		    errno != ECONNABORTED)
			log_warn("control: accept");
		return;
	}
	bev = bufferevent_socket_new(ctl->sl->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL) {
		close(fd);
		return;
	}
	bufferevent_setcb(bev, ctl_conn_read, NULL, ctl_conn_event, ctl);
	bufferevent_set_timeouts(bev, &tv, &tv);
	bufferevent_enable(bev, EV_READ);
}

/* The socket is 0600: a dump shows every flow, so it is root's to read. */
int
ctl_listen(struct sluice *sl)
{
	struct sockaddr_un sun;
	struct ctl *ctl;
	mode_t old;

	if (ctl_path(&sun, sl->state_dir) == -1)
		return -1;
	if ((ctl = calloc(1, sizeof(*ctl))) == NULL)
		return -1;
	ctl->sl = sl;
	strcpy(ctl->path, sun.sun_path);
	ctl->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (ctl->fd == -1)
		goto fail;
	unlink(ctl->path);	/* stale from a crash: we hold the pid lock */
	old = umask(0077);
	if (bind(ctl->fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		umask(old);
		goto fail;
	}
	umask(old);
	if (listen(ctl->fd, 16) == -1)
		goto fail;
	ctl->ev = event_new(sl->base, ctl->fd, EV_READ | EV_PERSIST,
	    ctl_accept, ctl);
	ctl->pause = evtimer_new(sl->base, ctl_resume, ctl);
	if (ctl->ev == NULL || ctl->pause == NULL ||
	    event_add(ctl->ev, NULL) == -1)
		goto fail;
	sl->ctl = ctl;
	return 0;
fail:
	log_warn("control: %s", ctl->path);
	if (ctl->fd != -1)
		close(ctl->fd);
	if (ctl->ev != NULL)
		event_free(ctl->ev);
	if (ctl->pause != NULL)
		event_free(ctl->pause);
	free(ctl);
	return -1;
}

void
ctl_close(struct sluice *sl)
{
	struct ctl *ctl = sl->ctl;

	if (ctl == NULL)
		return;
	event_free(ctl->ev);
	event_free(ctl->pause);
	close(ctl->fd);
	unlink(ctl->path);
	free(ctl);
	sl->ctl = NULL;
}

/* The client side of `sluice dump`: prints the reply to out. */
int
ctl_dump_client(const char *state_dir, FILE *out)
{
	struct sockaddr_un sun;
	struct timeval tv = { CTL_TIMEOUT, 0 };
	char buf[8192];
	ssize_t n;
	int fd;

	if (ctl_path(&sun, state_dir) == -1)
		return -1;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1 ||
	    write(fd, "dump\n", 5) != 5)
		goto fail;
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		fwrite(buf, 1, n, out);
	if (n == -1)
		goto fail;
	close(fd);
	return 0;
fail:
	{
		int saved = errno;

		close(fd);
		errno = saved;
	}
	return -1;
}
