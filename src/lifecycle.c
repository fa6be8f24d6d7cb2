/* SPDX-License-Identifier: MIT */
/* A daemon's life: state dir, pid lock, signals, reload, the event loop. */
#include "config.h"

#include <sys/file.h>
#include <sys/stat.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "sluice.h"
#include "log.h"

/* Creates dir (and missing parents) with mode 0755; 0 or -1 with errno. */
int
state_dir_prepare(const char *dir)
{
	char path[PATH_MAX];
	struct stat st;
	char *p;

	if (strlen(dir) >= sizeof(path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(path, dir);
	for (p = path + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(path, 0755) == -1 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	if (mkdir(path, 0755) == -1 && errno != EEXIST)
		return -1;
	if (stat(path, &st) == -1)
		return -1;
	if (!S_ISDIR(st.st_mode)) {
		errno = ENOTDIR;
		return -1;
	}
	/* A directory someone else planted (in /tmp) would be theirs to
	 * control: our socket and lock must live in our own. */
	if (st.st_uid != geteuid()) {
		errno = EPERM;
		return -1;
	}
	return 0;
}

/*
 * fsync of the directory holding path, so that a rename into it is
 * durable (state files, resolver backups).
 */
void
sync_parent_dir(const char *path)
{
	char buf[PATH_MAX];
	int fd;

	if (strlen(path) >= sizeof(buf))
		return;
	strcpy(buf, path);
	if ((fd = open(dirname(buf), O_RDONLY | O_DIRECTORY | O_CLOEXEC)) ==
	    -1)
		return;
	(void)fsync(fd);
	close(fd);
}

static int
pid_path(char *buf, size_t len, const char *dir)
{
	int n = snprintf(buf, len, "%s/%s", dir, SLUICE_PID_FILE);

	if (n < 0 || (size_t)n >= len) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

static pid_t
pid_read(int fd)
{
	char buf[32];
	ssize_t n;

	n = pread(fd, buf, sizeof(buf) - 1, 0);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	return (pid_t)strtol(buf, NULL, 10);
}

/*
 * flock(2) rather than a pid check: the lock dies with the process, so a
 * crash never leaves a stale lock that blocks the next start.
 */
int
pidlock_acquire(const char *dir, pid_t *holder)
{
	char path[PATH_MAX], buf[32];
	int fd, n;

	*holder = 0;
	if (pid_path(path, sizeof(path), dir) == -1)
		return -1;
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd == -1)
		return -1;
	if (flock(fd, LOCK_EX | LOCK_NB) == -1) {
		int saved = errno;

		*holder = pid_read(fd);
		close(fd);
		errno = saved;
		return -1;
	}
	n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) == -1 || pwrite(fd, buf, n, 0) != n) {
		int saved = errno;

		close(fd);
		errno = saved;
		return -1;
	}
	return fd;
}

void
pidlock_release(int fd, const char *dir)
{
	char path[PATH_MAX];

	if (fd == -1)
		return;
	if (pid_path(path, sizeof(path), dir) == 0)
		unlink(path);
	close(fd);
}

/* ---- the common part of every daemon mode ---- */

static void
conf_stamp(struct sluice *sl)
{
	struct stat st;

	if (stat(sl->conf->path, &st) == 0) {
		sl->conf_mtime = st.st_mtim;
		sl->conf_size = st.st_size;
	}
}

static void
daemon_reload(struct sluice *sl, const struct mode *mode, const char *why)
{
	struct config *conf;

	log_info("reloading %s (%s)", sl->opts->config, why);
	conf = cli_load_config(sl->opts, stderr);
	if (conf == NULL) {
		log_warnx("reload: %s has errors, keeping the running "
		    "configuration", sl->opts->config);
		conf_stamp(sl);		/* do not retry until it changes again */
		return;
	}
	if (mode->reload(sl, conf) == 0)
		log_info("reload: %zu services in use", sl->conf->nservices);
	conf_stamp(sl);
}

/* SIGUSR1: /tmp/sluice-dump.PID.txt, never following a planted link. */
static void
daemon_dump_file(struct sluice *sl)
{
	char path[64];
	FILE *fp;
	int fd;

	snprintf(path, sizeof(path), "/tmp/sluice-dump.%ld.txt",
	    (long)getpid());
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC,
	    0600);
	if (fd == -1 || (fp = fdopen(fd, "w")) == NULL) {
		log_warn("dump: %s", path);
		if (fd != -1)
			close(fd);
		return;
	}
	sluice_dump(sl, fp);
	fclose(fp);
	log_info("dump written to %s", path);
}

struct daemon_ctx {
	struct sluice		*sl;
	const struct mode	*mode;
};

static void
daemon_signal(evutil_socket_t sig, short what, void *arg)
{
	struct daemon_ctx *dc = arg;

	switch (sig) {
	case SIGTERM:
	case SIGINT:
		log_info("%s received, stopping", strsignal(sig));
		event_base_loopexit(dc->sl->base, NULL);
		break;
	case SIGHUP:
		daemon_reload(dc->sl, dc->mode, "SIGHUP");
		break;
	case SIGUSR1:
		daemon_dump_file(dc->sl);
		break;
	}
}

static void
daemon_refresh(evutil_socket_t fd, short what, void *arg)
{
	struct daemon_ctx *dc = arg;
	struct sluice *sl = dc->sl;
	struct stat st;

	if (stat(sl->opts->config, &st) == -1)
		return;		/* an editor mid-rename; look again later */
	if (st.st_size == sl->conf_size &&
	    st.st_mtim.tv_sec == sl->conf_mtime.tv_sec &&
	    st.st_mtim.tv_nsec == sl->conf_mtime.tv_nsec)
		return;
	daemon_reload(sl, dc->mode, "file changed");
}

static int
daemon_events(struct sluice *sl, struct daemon_ctx *dc)
{
	static const int sigs[] = { SIGTERM, SIGINT, SIGHUP, SIGUSR1 };
	struct timeval tv = { sl->opts->refresh, 0 };
	size_t i;

	signal(SIGPIPE, SIG_IGN);
	for (i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		sl->sig_ev[i] = evsignal_new(sl->base, sigs[i], daemon_signal,
		    dc);
		if (sl->sig_ev[i] == NULL || evsignal_add(sl->sig_ev[i], NULL))
			return -1;
	}
	if (sl->opts->refresh > 0) {
		sl->refresh_ev = event_new(sl->base, -1, EV_PERSIST,
		    daemon_refresh, dc);
		if (sl->refresh_ev == NULL ||
		    event_add(sl->refresh_ev, &tv) == -1)
			return -1;
	}
	return 0;
}

static void
daemon_free_events(struct sluice *sl)
{
	size_t i;

	for (i = 0; i < sizeof(sl->sig_ev) / sizeof(sl->sig_ev[0]); i++)
		if (sl->sig_ev[i] != NULL)
			event_free(sl->sig_ev[i]);
	if (sl->refresh_ev != NULL)
		event_free(sl->refresh_ev);
}

static int
daemon_lock(struct sluice *sl, int *lockfd)
{
	pid_t holder;

	if (state_dir_prepare(sl->state_dir) == -1) {
		if (errno == EPERM)
			log_warnx("state dir %s belongs to another user; "
			    "refusing it", sl->state_dir);
		else
			log_warn("state dir %s", sl->state_dir);
		return EXIT_FAIL;
	}
	*lockfd = pidlock_acquire(sl->state_dir, &holder);
	if (*lockfd != -1)
		return 0;
	if (errno == EWOULDBLOCK)
		log_warnx("another sluice (pid %ld) is running with state dir "
		    "%s", (long)holder, sl->state_dir);
	else
		log_warn("pid lock in %s", sl->state_dir);
	return EXIT_FAIL;
}

static int
daemon_serve(struct sluice *sl, const struct mode *mode)
{
	struct daemon_ctx dc = { sl, mode };

	if (ctl_listen(sl) == -1 || daemon_events(sl, &dc) == -1)
		return EXIT_FAIL;
	log_info("%s: running (pid %ld, config %s)", mode->name,
	    (long)getpid(), sl->conf->path);
	if (event_base_dispatch(sl->base) == -1) {
		log_warnx("event loop failed");
		return EXIT_FAIL;
	}
	return sl->exit_code;
}

/*
 * The main loop's event base. With the changelist, adds and deletes of
 * one fd within a loop iteration reach epoll as one change or none: a
 * flow's socket moves between the tunnel's pool, the relay and back
 * within one callback, and each move cost two epoll_ctl calls. It is
 * unsafe only with dup()ed descriptors, and sluice makes none.
 */
static struct event_base *
daemon_event_base(void)
{
	struct event_config *cfg;
	struct event_base *base;

	if ((cfg = event_config_new()) == NULL)
		return NULL;
	(void)event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
	base = event_base_new_with_config(cfg);
	event_config_free(cfg);
	return base;
}

int
daemon_main(const struct mode *mode, const struct cli_opts *opts)
{
	struct sluice sl;
	int lockfd = -1, rc;

	memset(&sl, 0, sizeof(sl));
	sl.opts = opts;
	sl.state_dir = opts->state_dir;
	sl.started = time(NULL);
	TAILQ_INIT(&sl.flows);
	if ((sl.conf = cli_load_config(opts, stderr)) == NULL)
		return EX_CONFIG;
	conf_stamp(&sl);
	if ((rc = daemon_lock(&sl, &lockfd)) != 0)
		goto out;
	if ((sl.base = daemon_event_base()) == NULL ||
	    (sl.pipes = pipe_pool_new(64)) == NULL)
		fatalx("out of memory");
	if ((rc = mode->start(&sl)) == 0)
		rc = daemon_serve(&sl, mode);
	mode->stop(&sl);
	log_info("%s: stopped", mode->name);
out:
	ctl_close(&sl);
	daemon_free_events(&sl);
	if (sl.pipes != NULL)
		pipe_pool_free(sl.pipes);
	if (sl.base != NULL)
		event_base_free(sl.base);
	pidlock_release(lockfd, sl.state_dir);
	conf_unref(sl.conf);
	return rc;
}
