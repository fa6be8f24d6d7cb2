/* SPDX-License-Identifier: MIT */
/* Resolver setup: making the system resolver ask sluice, and undoing it. */
#include "config.h"

#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dns.h"
#include "log.h"

/*
 * What resolv_setup() changed is written to STATE_DIR/resolv.state
 * before the change is made, and the original file is copied byte for
 * byte to STATE_DIR/resolv.conf.orig or hosts.orig, so that a stop, a
 * `sluice cleanup` or the next start can undo it after a crash.
 *
 * Test hooks, besides SLUICE_RESOLV_CONF and SLUICE_HOSTS: SLUICE_SYSTEMD_RUN
 * replaces /run/systemd (its resolve/ and system/ say that resolved and
 * systemd run; the drop-in goes to its resolved.conf.d/) and
 * SLUICE_SYSTEMCTL the systemctl command.
 */
#define STATE_FILE	"resolv.state"
#define BEGIN_LINE	"# sluice: begin (removed when sluice stops)"
#define BEGIN_PREFIX	"# sluice: begin"
#define END_LINE	"# sluice: end"
#define DROPIN_DIR	"resolved.conf.d"
#define DROPIN_FILE	"sluice.conf"
#define TEXT_MAX	(16 * 1024 * 1024)	/* larger: not a resolv.conf */
#define CMD_TIMEOUT_MS	10000

extern char **environ;

struct text {
	char	*p;
	size_t	 len, cap;
};

struct host_entry {
	char		*name;
	struct cidr	 addr;
};

/* This process's setup; one thread calls resolv_* (not thread-safe). */
static struct {
	int			 kind;		/* -1: not set up */
	char			 path[PATH_MAX];	/* edited file */
	struct endpoint		 ns;
	struct host_entry	*hosts;		/* resolv_update_hosts() */
	size_t			 nhosts;
	char			**domains;	/* resolv_update_domains() */
	size_t			 ndomains;
} rs = { .kind = -1 };

static const char *const kind_names[] = {
	[RESOLV_NONE] = "none",
	[RESOLV_SYSTEMD] = "systemd-resolved",
	[RESOLV_CONF] = "resolv.conf",
	[RESOLV_HOSTS] = "file",
};

const char *
resolv_kind_name(int kind)
{
	if (kind < 0 || (size_t)kind >= sizeof(kind_names) /
	    sizeof(kind_names[0]))
		return "?";
	return kind_names[kind];
}

static int
kind_by_name(const char *s)
{
	size_t i;

	for (i = 0; i < sizeof(kind_names) / sizeof(kind_names[0]); i++)
		if (strcmp(kind_names[i], s) == 0)
			return (int)i;
	return -1;
}

/* ---- text buffers ---- */

/* Makes room for len more bytes and a terminator. */
static int
text_add_room(struct text *t, size_t len)
{
	size_t cap;
	char *p;

	if (len > TEXT_MAX || t->len > TEXT_MAX - len) {
		errno = EFBIG;
		return -1;
	}
	if (t->len + len + 1 <= t->cap)
		return 0;
	cap = t->cap ? t->cap : 256;
	while (cap < t->len + len + 1)
		cap *= 2;
	if ((p = realloc(t->p, cap)) == NULL)
		return -1;
	t->p = p;
	t->cap = cap;
	return 0;
}

static int
text_add(struct text *t, const void *data, size_t len)
{
	if (text_add_room(t, len) == -1)
		return -1;
	if (len > 0)
		memcpy(t->p + t->len, data, len);
	t->len += len;
	t->p[t->len] = '\0';
	return 0;
}

static int
text_printf(struct text *t, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int
text_printf(struct text *t, const char *fmt, ...)
{
	va_list ap;
	size_t len = t->len;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -1;
	/* Room for n bytes; text_add() keeps the terminator after them. */
	if (text_add(t, NULL, 0) == -1 || text_add_room(t, (size_t)n) == -1)
		return -1;
	va_start(ap, fmt);
	vsnprintf(t->p + len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	t->len = len + (size_t)n;
	return 0;
}

static void
text_free(struct text *t)
{
	free(t->p);
	memset(t, 0, sizeof(*t));
}

static int
text_eq(const struct text *a, const struct text *b)
{
	return a->len == b->len && (a->len == 0 ||
	    memcmp(a->p, b->p, a->len) == 0);
}

static int
ends_in_newline(const struct text *t)
{
	return t->len > 0 && t->p[t->len - 1] == '\n';
}

/* Reads a regular file whole (following symlinks); st may be NULL. */
static int
read_text(const char *path, struct text *t, struct stat *st)
{
	struct stat sb;
	char buf[8192];
	ssize_t n;
	int fd, saved;

	memset(t, 0, sizeof(*t));
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return -1;
	if (fstat(fd, &sb) == -1)
		goto fail;
	if (!S_ISREG(sb.st_mode)) {
		errno = EINVAL;
		goto fail;
	}
	if (text_add(t, "", 0) == -1)
		goto fail;
	while ((n = read(fd, buf, sizeof(buf))) != 0) {
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 || text_add(t, buf, (size_t)n) == -1)
			goto fail;
	}
	close(fd);
	if (st != NULL)
		*st = sb;
	return 0;
fail:
	saved = errno;
	close(fd);
	text_free(t);
	errno = saved;
	return -1;
}

/* ---- marked blocks ---- */

/* Line [off, *eol) and the length of its content without the newline. */
static size_t
line_at(const struct text *t, size_t off, size_t *eol)
{
	const char *nl = memchr(t->p + off, '\n', t->len - off);

	*eol = nl != NULL ? (size_t)(nl - t->p) + 1 : t->len;
	return (nl != NULL ? (size_t)(nl - t->p) : t->len) - off;
}

/*
 * The first complete block at or after from: [*start, *end), both marker
 * lines and their newlines included. A begin without an end is not ours
 * to touch.
 */
static int
find_block(const struct text *t, size_t from, size_t *start, size_t *end)
{
	size_t off = from, eol, n, b = SIZE_MAX;
	const char *l;

	for (; off < t->len; off = eol) {
		n = line_at(t, off, &eol);
		l = t->p + off;
		if (b == SIZE_MAX) {
			if (n >= strlen(BEGIN_PREFIX) &&
			    memcmp(l, BEGIN_PREFIX, strlen(BEGIN_PREFIX)) == 0)
				b = off;
		} else if (n == strlen(END_LINE) &&
		    memcmp(l, END_LINE, n) == 0) {
			*start = b;
			*end = eol;
			return 1;
		}
	}
	return 0;
}

/* in without any of our blocks; *found counts them. */
static int
strip_blocks(const struct text *in, struct text *out, size_t *found)
{
	size_t pos = 0, start, end;

	memset(out, 0, sizeof(*out));
	*found = 0;
	if (text_add(out, "", 0) == -1)
		return -1;
	while (find_block(in, pos, &start, &end)) {
		if (text_add(out, in->p + pos, start - pos) == -1)
			goto fail;
		pos = end;
		(*found)++;
	}
	if (text_add(out, in->p + pos, in->len - pos) == -1)
		goto fail;
	return 0;
fail:
	text_free(out);
	return -1;
}

/*
 * base with block in place of its first block of ours, or appended at the
 * end (after a newline if base lacks its last one).
 */
static int
put_block(const struct text *base, const struct text *block,
    struct text *out)
{
	size_t start, end;

	memset(out, 0, sizeof(*out));
	if (!find_block(base, 0, &start, &end)) {
		start = end = base->len;
		if (text_add(out, base->p, base->len) == -1 ||
		    (base->len > 0 && !ends_in_newline(base) &&
		    text_add(out, "\n", 1) == -1))
			goto fail;
	} else if (text_add(out, base->p, start) == -1)
		goto fail;
	if (text_add(out, block->p, block->len) == -1 ||
	    text_add(out, base->p + end, base->len - end) == -1)
		goto fail;
	return 0;
fail:
	text_free(out);
	return -1;
}

/* ---- writing files ---- */

static int
write_all(int fd, const char *p, size_t len)
{
	ssize_t n;

	while (len > 0) {
		if ((n = write(fd, p, len)) == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/*
 * Rewrites the file where it is. Written first and truncated after, so
 * the file is never empty on the way; used where rename cannot work.
 */
static int
write_in_place(const char *path, const struct text *t)
{
	int fd, saved;

	if ((fd = open(path, O_WRONLY | O_CLOEXEC)) == -1)
		return -1;
	if (write_all(fd, t->p, t->len) == -1 ||
	    ftruncate(fd, (off_t)t->len) == -1 || fsync(fd) == -1) {
		saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	return close(fd);
}

/*
 * Replaces path by t atomically: a temporary file in the same directory,
 * fsync, rename. A file that is a mount point (a bind mount, as
 * /etc/resolv.conf in most containers) cannot be renamed over: EBUSY, or
 * EXDEV across file systems; in a read-only directory no temporary file
 * can be made. Then, if in_place, the file is rewritten in place. like
 * gives mode and owner (NULL: 0644). A symlink is followed, never
 * replaced: its target is written.
 */
static int
write_file(const char *path, const struct text *t, const struct stat *like,
    int in_place)
{
	char tmp[PATH_MAX], dir[PATH_MAX], base[PATH_MAX], real[PATH_MAX];
	struct stat sb;
	int fd, saved;

	if (lstat(path, &sb) == 0 && S_ISLNK(sb.st_mode)) {
		if (realpath(path, real) == NULL)
			return -1;
		path = real;
	}
	if (strlen(path) >= sizeof(dir)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(dir, path);
	strcpy(base, path);
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s/.%s.sluice-XXXXXX",
	    dirname(dir), basename(base)) >= sizeof(tmp)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if ((fd = mkostemp(tmp, O_CLOEXEC)) == -1) {
		/* A read-only /etc with a writable bind-mounted file, say. */
		if (in_place)
			return write_in_place(path, t);
		return -1;
	}
	if (like != NULL && fchown(fd, like->st_uid, like->st_gid) == -1)
		log_debug("%s: %s: keeping our owner: %s", __func__, tmp,
		    strerror(errno));
	if (fchmod(fd, like != NULL ? like->st_mode & 07777 : 0644) == -1 ||
	    write_all(fd, t->p, t->len) == -1 || fsync(fd) == -1)
		goto fail;
	if (close(fd) == -1) {
		fd = -1;
		goto fail;
	}
	fd = -1;
	if (rename(tmp, path) == -1) {
		if (!in_place || (errno != EBUSY && errno != EXDEV))
			goto fail;
		log_debug("%s: %s is a mount point: writing it in place",
		    __func__, path);
		(void)unlink(tmp);
		return write_in_place(path, t);
	}
	sync_parent_dir(path);
	return 0;
fail:
	saved = errno;
	if (fd != -1)
		close(fd);
	(void)unlink(tmp);
	errno = saved;
	return -1;
}

static int
state_path(char *buf, size_t len, const char *dir, const char *name)
{
	if ((size_t)snprintf(buf, len, "%s/%s", dir, name) >= len) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

/* ---- the state file: "kind K", "path P", "backup NAME" ---- */

struct state {
	int	kind;
	char	path[PATH_MAX];
	char	backup[NAME_MAX + 1];	/* in the state dir; "" for none */
};

static int
state_write(const char *dir, const struct state *s)
{
	char path[PATH_MAX];
	struct text t = { 0 };
	int rc = -1;

	if (state_path(path, sizeof(path), dir, STATE_FILE) == -1)
		return -1;
	if (text_printf(&t, "# sluice resolver setup, undone when sluice "
	    "stops or by `sluice cleanup`\nkind %s\npath %s\n",
	    resolv_kind_name(s->kind), s->path) == -1 ||
	    (s->backup[0] != '\0' &&
	    text_printf(&t, "backup %s\n", s->backup) == -1))
		goto done;
	rc = write_file(path, &t, NULL, 0);
done:
	text_free(&t);
	return rc;
}

static int
state_field(struct state *s, const char *key, const char *val)
{
	if (strcmp(key, "kind") == 0)
		return (s->kind = kind_by_name(val)) == -1 ? -1 : 0;
	if (strcmp(key, "path") == 0) {
		if (val[0] != '/' || strlen(val) >= sizeof(s->path))
			return -1;
		strcpy(s->path, val);
	} else if (strcmp(key, "backup") == 0) {
		if (strchr(val, '/') != NULL || val[0] == '.' ||
		    strlen(val) >= sizeof(s->backup))
			return -1;
		strcpy(s->backup, val);
	}
	return 0;
}

/* 1 with *s filled, 0 when there is no state file, -1 on errors. */
static int
state_read(const char *dir, struct state *s)
{
	char path[PATH_MAX], *line, *next, *sp;
	struct text t;

	memset(s, 0, sizeof(*s));
	s->kind = -1;
	if (state_path(path, sizeof(path), dir, STATE_FILE) == -1)
		return -1;
	if (read_text(path, &t, NULL) == -1)
		return errno == ENOENT ? 0 : -1;
	for (line = t.p; line != NULL && *line != '\0'; line = next) {
		if ((next = strchr(line, '\n')) != NULL)
			*next++ = '\0';
		if (line[0] == '#' || (sp = strchr(line, ' ')) == NULL)
			continue;
		*sp = '\0';
		if (state_field(s, line, sp + 1) == -1) {
			log_warnx("%s: bad %s line", path, line);
			text_free(&t);
			errno = EINVAL;
			return -1;
		}
	}
	text_free(&t);
	if (s->kind == -1 || (s->kind != RESOLV_NONE && s->path[0] == '\0')) {
		log_warnx("%s: incomplete", path);
		errno = EINVAL;
		return -1;
	}
	return 1;
}

static void
state_remove(const char *dir, const struct state *s)
{
	char path[PATH_MAX];

	if (s->backup[0] != '\0' &&
	    state_path(path, sizeof(path), dir, s->backup) == 0)
		(void)unlink(path);
	if (state_path(path, sizeof(path), dir, STATE_FILE) == 0)
		(void)unlink(path);
}

/* ---- paths and addresses ---- */

static const char *
env_path(const char *var, const char *def)
{
	const char *s = getenv(var);

	return s != NULL && s[0] != '\0' ? s : def;
}

static const char *
resolv_conf_path(void)
{
	return env_path("SLUICE_RESOLV_CONF", "/etc/resolv.conf");
}

static const char *
hosts_path(void)
{
	return env_path("SLUICE_HOSTS", "/etc/hosts");
}

static const char *
systemd_run(void)
{
	return env_path("SLUICE_SYSTEMD_RUN", "/run/systemd");
}

/* The nameserver's address; a wildcard listener is asked on loopback. */
static const char *
ns_ip(const struct endpoint *ns, char *buf, size_t len)
{
	struct cidr c;

	cidr_from_sockaddr(&c, (const struct sockaddr *)&ns->ss);
	if (c.family == AF_INET && memcmp(c.addr, "\0\0\0\0", 4) == 0)
		c.addr[0] = 127, c.addr[3] = 1;
	else if (c.family == AF_INET6 &&
	    memcmp(c.addr, &in6addr_any, 16) == 0)
		c.addr[15] = 1;
	else if (c.family != AF_INET && c.family != AF_INET6)
		return NULL;
	return inet_ntop(c.family, c.addr, buf, (socklen_t)len);
}

/* ---- resolv.conf ---- */

static int
fail_why(char *why, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int
fail_why(char *why, size_t len, const char *fmt, ...)
{
	va_list ap;
	int saved = errno;

	va_start(ap, fmt);
	vsnprintf(why, len, fmt, ap);
	va_end(ap);
	errno = saved;
	return -1;
}

/*
 * Makes the edit described by st: backup and state first, so a crash at
 * any point leaves enough behind to undo it; both go if the edit fails.
 */
static int
edit_file(const char *state_dir, struct state *st, const struct text *orig,
    const struct text *edited, const struct stat *sb, char *why, size_t wlen)
{
	char bpath[PATH_MAX];

	if (state_path(bpath, sizeof(bpath), state_dir, st->backup) == -1 ||
	    write_file(bpath, orig, NULL, 0) == -1 ||
	    state_write(state_dir, st) == -1) {
		fail_why(why, wlen, "state dir %s: %s", state_dir,
		    strerror(errno));
		state_remove(state_dir, st);
		return -1;
	}
	if (write_file(st->path, edited, sb, 1) == -1) {
		fail_why(why, wlen, "cannot write %s: %s", st->path,
		    strerror(errno));
		state_remove(state_dir, st);
		return -1;
	}
	return 0;
}

/*
 * A symlinked /etc/resolv.conf belongs to a manager (systemd-resolved's
 * stub, resolvconf, NetworkManager) that rewrites its target whenever it
 * likes: auto leaves it alone and moves on. Asked for explicitly, we edit
 * the target and say that it may not last; replacing the link itself
 * would break the manager for good.
 */
static int
conf_target(const char *path, int explicit, char *out, char *why,
    size_t wlen)
{
	struct stat sb;

	if (lstat(path, &sb) == -1)
		return fail_why(why, wlen, "%s: %s", path, strerror(errno));
	if (!S_ISLNK(sb.st_mode)) {
		if (strlen(path) >= PATH_MAX)
			return fail_why(why, wlen, "%s: %s", path,
			    strerror(ENAMETOOLONG));
		strcpy(out, path);
		return 0;
	}
	if (!explicit)
		return fail_why(why, wlen, "%s is a symlink, owned by a "
		    "resolver manager", path);
	if (realpath(path, out) == NULL)
		return fail_why(why, wlen, "%s: %s", path, strerror(errno));
	log_warnx("resolver: %s is a symlink: editing %s, which its manager "
	    "may rewrite", path, out);
	return 0;
}

static int
setup_conf(const struct endpoint *ns, const char *state_dir, int explicit,
    char *why, size_t wlen)
{
	struct state st = { .kind = RESOLV_CONF, .backup = "resolv.conf.orig" };
	struct text cur = { 0 }, orig = { 0 }, edited = { 0 };
	struct stat sb;
	char ip[INET6_ADDRSTRLEN];
	size_t stale;
	int rc = -1;

	if (addr_port((const struct sockaddr *)&ns->ss) != 53)
		return fail_why(why, wlen, "resolv.conf cannot name a port: "
		    "dns.listen must use port 53, not %u",
		    addr_port((const struct sockaddr *)&ns->ss));
	if (ns_ip(ns, ip, sizeof(ip)) == NULL)
		return fail_why(why, wlen, "bad dns.listen address");
	if (conf_target(resolv_conf_path(), explicit, st.path, why, wlen) ==
	    -1)
		return -1;
	if (read_text(st.path, &cur, &sb) == -1)
		return fail_why(why, wlen, "%s: %s", st.path, strerror(errno));
	if (strip_blocks(&cur, &orig, &stale) == -1 ||
	    text_printf(&edited, "%s\nnameserver %s\n%s\n", BEGIN_LINE, ip,
	    END_LINE) == -1 || text_add(&edited, orig.p, orig.len) == -1) {
		fail_why(why, wlen, "%s", strerror(errno));
		goto done;
	}
	if (stale > 0)
		log_warnx("resolver: %s: removed a stale sluice block",
		    st.path);
	if (edit_file(state_dir, &st, &orig, &edited, &sb, why, wlen) == -1)
		goto done;
	strcpy(rs.path, st.path);
	rc = 0;
done:
	text_free(&cur);
	text_free(&orig);
	text_free(&edited);
	return rc;
}

/*
 * Whether stripped is orig as sluice left it: equal, or with the newline
 * that put_block() added before the block to a file that lacked one.
 */
static int
unchanged(const struct text *stripped, const struct text *orig)
{
	if (text_eq(stripped, orig))
		return 1;
	return !ends_in_newline(orig) && stripped->len == orig->len + 1 &&
	    ends_in_newline(stripped) &&
	    (orig->len == 0 || memcmp(stripped->p, orig->p, orig->len) == 0);
}

/*
 * Puts back what was there before sluice: byte for byte if nobody touched
 * the file since, else only sluice's block goes (their edit stays).
 * orig NULL: the backup is lost, only the block can go.
 */
static int
restore_text(const char *path, const struct text *orig)
{
	struct text cur, stripped;
	struct stat sb;
	size_t found;
	int rc = -1;

	if (read_text(path, &cur, &sb) == -1) {
		if (errno != ENOENT)
			return -1;
		log_warnx("resolver: %s is gone, nothing to restore", path);
		return 0;
	}
	if (strip_blocks(&cur, &stripped, &found) == -1) {
		text_free(&cur);
		return -1;
	}
	if (found == 0 && orig != NULL && cur.len == 0 && orig->len > 0) {
		/* Emptied: a torn in-place write; the backup is good. */
		if ((rc = write_file(path, orig, &sb, 1)) == 0)
			log_warnx("resolver: %s was empty: restored it from "
			    "the backup", path);
	} else if (found == 0) {
		log_warnx("resolver: %s has no sluice block any more "
		    "(rewritten by someone else?): left as it is", path);
		rc = 0;
	} else if (orig != NULL && unchanged(&stripped, orig)) {
		if ((rc = write_file(path, orig, &sb, 1)) == 0)
			log_info("resolver: %s restored", path);
	} else if ((rc = write_file(path, &stripped, &sb, 1)) == 0) {
		if (orig != NULL)
			log_warnx("resolver: %s was changed since sluice "
			    "edited it: removed only sluice's block", path);
		else
			log_warnx("resolver: %s: removed a stale sluice "
			    "block", path);
	}
	text_free(&cur);
	text_free(&stripped);
	return rc;
}

/* ---- hosts file ---- */

static int
hosts_block(struct text *t)
{
	char ip[INET6_ADDRSTRLEN];
	size_t i;

	memset(t, 0, sizeof(*t));
	if (text_printf(t, "%s\n", BEGIN_LINE) == -1)
		goto fail;
	for (i = 0; i < rs.nhosts; i++) {
		inet_ntop(rs.hosts[i].addr.family, rs.hosts[i].addr.addr, ip,
		    sizeof(ip));
		if (text_printf(t, "%s %s\n", ip, rs.hosts[i].name) == -1)
			goto fail;
	}
	if (text_printf(t, "%s\n", END_LINE) == -1)
		goto fail;
	return 0;
fail:
	text_free(t);
	return -1;
}

/* "file:PATH"; SLUICE_HOSTS stands in for /etc/hosts. */
static const char *
hosts_mode_path(const char *mode)
{
	const char *p = mode + strlen("file:");

	return strcmp(p, "/etc/hosts") == 0 ? hosts_path() : p;
}

static int
setup_hosts(const char *path, const char *state_dir, char *why,
    size_t wlen)
{
	struct state st = { .kind = RESOLV_HOSTS, .backup = "hosts.orig" };
	struct text cur = { 0 }, orig = { 0 }, block = { 0 }, edited = { 0 };
	struct stat sb;
	size_t stale;
	int rc = -1;

	if (path[0] != '/' || strlen(path) >= sizeof(st.path))
		return fail_why(why, wlen, "%s: not an absolute path", path);
	strcpy(st.path, path);
	if (read_text(path, &cur, &sb) == -1)
		return fail_why(why, wlen, "%s: %s", path, strerror(errno));
	if (strip_blocks(&cur, &orig, &stale) == -1 ||
	    hosts_block(&block) == -1 ||
	    put_block(&orig, &block, &edited) == -1) {
		fail_why(why, wlen, "%s", strerror(errno));
		goto done;
	}
	if (stale > 0)
		log_warnx("resolver: %s: removed a stale sluice block", path);
	if (edit_file(state_dir, &st, &orig, &edited, &sb, why, wlen) == -1)
		goto done;
	strcpy(rs.path, path);
	rc = 0;
done:
	text_free(&cur);
	text_free(&orig);
	text_free(&block);
	text_free(&edited);
	return rc;
}

/* Rewrites our block in the hosts file, unless it already says that. */
static int
hosts_rewrite(void)
{
	struct text cur, block, edited = { 0 };
	struct stat sb;
	size_t start, end;
	int rc = -1;

	if (read_text(rs.path, &cur, &sb) == -1) {
		log_warn("resolver: %s", rs.path);
		return -1;
	}
	if (hosts_block(&block) == -1)
		goto done;
	if (find_block(&cur, 0, &start, &end) && end - start == block.len &&
	    memcmp(cur.p + start, block.p, block.len) == 0) {
		rc = 0;
		goto done;
	}
	if (!find_block(&cur, 0, &start, &end))
		log_warnx("resolver: %s lost its sluice block: adding it "
		    "again", rs.path);
	if (put_block(&cur, &block, &edited) == -1 ||
	    write_file(rs.path, &edited, &sb, 1) == -1)
		log_warn("resolver: %s", rs.path);
	else
		rc = 0;
done:
	text_free(&cur);
	text_free(&block);
	text_free(&edited);
	return rc;
}

static void
hosts_clear(void)
{
	size_t i;

	for (i = 0; i < rs.nhosts; i++)
		free(rs.hosts[i].name);
	free(rs.hosts);
	rs.hosts = NULL;
	rs.nhosts = 0;
}

/* Exact hostnames only: hosts files know no wildcards. */
static int
hosts_name_ok(const char *name)
{
	char norm[DNS_NAME_MAX + 1];
	const char *why;
	int wild;

	return strlen(name) <= DNS_TEXT_MAX &&
	    addr_parse_hostname(name, norm, &wild, &why) == 0 && !wild;
}

int
resolv_update_hosts(const struct resolv_entry *e, size_t n)
{
	struct host_entry *v;
	size_t i, k = 0;

	if ((v = calloc(n + 1, sizeof(*v))) == NULL)
		return -1;
	for (i = 0; i < n; i++) {
		if (!hosts_name_ok(e[i].name) || (e[i].addr.family !=
		    AF_INET && e[i].addr.family != AF_INET6)) {
			log_warnx("%s: %s: not an exact hostname and address, "
			    "skipped", __func__, e[i].name);
			continue;
		}
		if ((v[k].name = strdup(e[i].name)) == NULL) {
			while (k > 0)
				free(v[--k].name);
			free(v);
			return -1;
		}
		v[k++].addr = e[i].addr;
	}
	hosts_clear();
	rs.hosts = v;
	rs.nhosts = k;
	return rs.kind == RESOLV_HOSTS ? hosts_rewrite() : 0;
}

/* ---- systemd-resolved ---- */

static int
is_dir(const char *path)
{
	struct stat sb;

	return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

/*
 * Runs argv with a time limit; 0 if it exited 0. posix_spawn rather than
 * fork, as other threads run; the child gets default signal handling and
 * an empty mask whatever this thread has.
 */
static int
run_cmd(char *const argv[])
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	struct timespec tick = { 0, 10 * 1000 * 1000 };
	sigset_t none, def;
	pid_t pid, r;
	int status, err, ms = 0;

	sigemptyset(&none);
	sigemptyset(&def);
	sigaddset(&def, SIGPIPE);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawnattr_init(&attr);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &def);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK |
	    POSIX_SPAWN_SETSIGDEF);
	err = posix_spawnp(&pid, argv[0], &fa, &attr, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	if (err != 0) {
		errno = err;
		log_warn("resolver: %s", argv[0]);
		return -1;
	}
	while ((r = waitpid(pid, &status, WNOHANG)) != pid) {
		if (r == -1 && errno != EINTR) {
			log_warn("resolver: %s: waitpid", argv[0]);
			return -1;
		}
		if (ms >= CMD_TIMEOUT_MS) {
			kill(pid, SIGKILL);
			(void)waitpid(pid, &status, 0);
			log_warnx("resolver: %s %s: no answer after %d s, "
			    "killed", argv[0], argv[1], CMD_TIMEOUT_MS / 1000);
			return -1;
		}
		nanosleep(&tick, NULL);
		ms += 10;
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	log_warnx("resolver: %s %s %s: %s %d", argv[0], argv[1], argv[2],
	    WIFEXITED(status) ? "exit status" : "killed by signal",
	    WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
	return -1;
}

/* Makes resolved reread its configuration (a restart if it cannot). */
static int
resolved_reload(void)
{
	char *argv[] = {
		(char *)env_path("SLUICE_SYSTEMCTL", "systemctl"),
		(char *)"try-reload-or-restart",
		(char *)"systemd-resolved.service", NULL
	};

	return run_cmd(argv);
}

/* Is word one of the blank-separated words of line [l, l + n)? */
static int
has_word(const char *l, size_t n, const char *word)
{
	size_t wl = strlen(word), i = 0, j;

	while (i < n) {
		while (i < n && (l[i] == ' ' || l[i] == '\t'))
			i++;
		for (j = i; j < n && l[j] != ' ' && l[j] != '\t'; j++)
			;
		if (j - i == wl && memcmp(l + i, word, wl) == 0)
			return 1;
		i = j;
	}
	return 0;
}

/* A line "KEY ... WORD ...", where KEY is the first word, in path? */
static int
file_has(const char *path, const char *key, const char *word)
{
	struct text t;
	size_t off, eol, n, kl = strlen(key);
	int yes = 0;

	if (read_text(path, &t, NULL) == -1)
		return 0;
	for (off = 0; off < t.len && !yes; off = eol) {
		n = line_at(&t, off, &eol);
		yes = n > kl && memcmp(t.p + off, key, kl) == 0 &&
		    (t.p[off + kl] == ' ' || t.p[off + kl] == '\t') &&
		    has_word(t.p + off + kl, n - kl, word);
	}
	text_free(&t);
	return yes;
}

/* Does glibc ask resolved: its stub in resolv.conf, or nss-resolve? */
static int
resolved_in_path(void)
{
	return file_has(resolv_conf_path(), "nameserver", "127.0.0.53") ||
	    file_has(resolv_conf_path(), "nameserver", "127.0.0.54") ||
	    file_has("/etc/nsswitch.conf", "hosts:", "resolve");
}

static int
dropin_text(struct text *t)
{
	char ip[INET6_ADDRSTRLEN], addr[ADDR_STRLEN];
	size_t i;

	memset(t, 0, sizeof(*t));
	if (ns_ip(&rs.ns, ip, sizeof(ip)) == NULL) {
		errno = EINVAL;
		return -1;
	}
	/* ADDR:PORT needs systemd 246; plain ADDR works with any. */
	if (addr_port((const struct sockaddr *)&rs.ns.ss) == 53)
		snprintf(addr, sizeof(addr), "%s", ip);
	else
		snprintf(addr, sizeof(addr), strchr(ip, ':') ? "[%s]:%u" :
		    "%s:%u", ip, addr_port((const struct sockaddr *)&rs.ns.ss));
	if (text_printf(t, "# Written by sluice, removed when it stops or by "
	    "`sluice cleanup`.\n[Resolve]\nDNS=%s\n", addr) == -1)
		goto fail;
	if (rs.ndomains > 0 && text_add(t, "Domains=", 8) == -1)
		goto fail;
	for (i = 0; i < rs.ndomains; i++)
		if (text_printf(t, "%s~%s", i ? " " : "", rs.domains[i]) == -1)
			goto fail;
	if (rs.ndomains > 0 && text_add(t, "\n", 1) == -1)
		goto fail;
	return 0;
fail:
	text_free(t);
	return -1;
}

/* Writes the drop-in; *changed says whether resolved must reread it. */
static int
dropin_write(const char *path, int *changed)
{
	struct text t, cur;
	int rc = 0;

	if (dropin_text(&t) == -1)
		return -1;
	*changed = 1;
	if (read_text(path, &cur, NULL) == 0) {
		*changed = !text_eq(&t, &cur);
		text_free(&cur);
	}
	if (*changed)
		rc = write_file(path, &t, NULL, 0);
	text_free(&t);
	return rc;
}

/*
 * systemd-resolved will not take per-link DNS settings for the loopback
 * interface ("Link lo is loopback device"), and a link of our own would
 * need carrier and a routable address before resolved used it. Instead a
 * drop-in in /run/systemd/resolved.conf.d adds us as a global server with
 * routing domains "~suffix" for the service names (no domains: we join
 * the default route beside the existing servers, whose answers still win
 * for names we refuse). Being under /run, it cannot outlive a reboot.
 */
static int
setup_systemd(const char *state_dir, int explicit, char *why, size_t wlen)
{
	struct state st = { .kind = RESOLV_SYSTEMD };
	char dir[PATH_MAX], probe[PATH_MAX];
	int changed;

	if (state_path(probe, sizeof(probe), systemd_run(), "resolve") == -1 ||
	    !is_dir(probe))
		return fail_why(why, wlen, "not running (no %s)", probe);
	if (state_path(probe, sizeof(probe), systemd_run(), "system") == -1 ||
	    !is_dir(probe))
		return fail_why(why, wlen, "systemd is not PID 1");
	if (!resolved_in_path()) {
		if (!explicit)
			return fail_why(why, wlen, "running, but %s does not "
			    "point at its stub", resolv_conf_path());
		log_warnx("resolver: %s does not point at systemd-resolved's "
		    "stub", resolv_conf_path());
	}
	if (state_path(dir, sizeof(dir), systemd_run(), DROPIN_DIR) == -1 ||
	    state_path(st.path, sizeof(st.path), dir, DROPIN_FILE) == -1)
		return fail_why(why, wlen, "%s", strerror(errno));
	if (mkdir(dir, 0755) == -1 && errno != EEXIST)
		return fail_why(why, wlen, "%s: %s", dir, strerror(errno));
	if (state_write(state_dir, &st) == -1 ||
	    dropin_write(st.path, &changed) == -1) {
		fail_why(why, wlen, "%s: %s", st.path, strerror(errno));
		goto fail;
	}
	if (resolved_reload() == -1) {
		fail_why(why, wlen, "reloading it failed");
		goto fail;
	}
	strcpy(rs.path, st.path);
	return 0;
fail:
	(void)unlink(st.path);
	state_remove(state_dir, &st);
	return -1;
}

static int
restore_systemd(const char *path)
{
	if (unlink(path) == -1) {
		if (errno != ENOENT)
			return -1;
		return 0;	/* gone: nothing for resolved to forget */
	}
	if (resolved_reload() == -1)
		return -1;
	log_info("resolver: %s removed, systemd-resolved reloaded", path);
	return 0;
}

static int
domain_ok(const char *d)
{
	char norm[DNS_NAME_MAX + 1];
	const char *why;
	int wild;

	return addr_parse_hostname(d, norm, &wild, &why) == 0 && !wild &&
	    strcmp(norm, d) == 0;
}

static void
domains_clear(void)
{
	size_t i;

	for (i = 0; i < rs.ndomains; i++)
		free(rs.domains[i]);
	free(rs.domains);
	rs.domains = NULL;
	rs.ndomains = 0;
}

int
resolv_update_domains(const char *const *d, size_t n)
{
	char **v;
	size_t i, k = 0;
	int changed;

	if ((v = calloc(n + 1, sizeof(*v))) == NULL)
		return -1;
	for (i = 0; i < n; i++) {
		if (!domain_ok(d[i])) {
			log_warnx("%s: %s: not a lowercase domain, skipped",
			    __func__, d[i]);
			continue;
		}
		if ((v[k] = strdup(d[i])) == NULL) {
			while (k > 0)
				free(v[--k]);
			free(v);
			return -1;
		}
		k++;
	}
	domains_clear();
	rs.domains = v;
	rs.ndomains = k;
	if (rs.kind != RESOLV_SYSTEMD)
		return 0;
	if (dropin_write(rs.path, &changed) == -1) {
		log_warn("resolver: %s", rs.path);
		return -1;
	}
	return changed ? resolved_reload() : 0;
}

/* ---- setup and undo ---- */

/* Undoes one recorded setup; 0 when it is undone (or was nothing). */
static int
undo(const char *state_dir, const struct state *st)
{
	struct text orig;
	char bpath[PATH_MAX];
	int rc, have = 0;

	switch (st->kind) {
	case RESOLV_SYSTEMD:
		return restore_systemd(st->path);
	case RESOLV_CONF:
	case RESOLV_HOSTS:
		if (st->backup[0] != '\0' && state_path(bpath, sizeof(bpath),
		    state_dir, st->backup) == 0) {
			if (read_text(bpath, &orig, NULL) == 0)
				have = 1;
			else
				log_warn("resolver: backup %s, removing only "
				    "sluice's block", bpath);
		}
		rc = restore_text(st->path, have ? &orig : NULL);
		if (have)
			text_free(&orig);
		return rc;
	default:
		return 0;
	}
}

static int
restore_from(const char *state_dir)
{
	struct state st;
	int r;

	if ((r = state_read(state_dir, &st)) <= 0)
		return r;
	if (undo(state_dir, &st) == -1) {
		log_warn("resolver: undoing %s in %s", resolv_kind_name(st.kind),
		    st.path);
		return -1;
	}
	state_remove(state_dir, &st);
	return 1;
}

/* Forgets this process's setup and its names and domains. */
static void
forget(void)
{
	rs.kind = -1;
	rs.path[0] = '\0';
	hosts_clear();
	domains_clear();
}

int
resolv_restore(const char *state_dir)
{
	if (restore_from(state_dir) == -1)
		return -1;
	forget();
	return 0;
}

/* Removes a block with no state to explain it (the state dir was lost). */
static void
sweep_file(const char *path)
{
	if (restore_text(path, NULL) == -1)
		log_warn("resolver: %s", path);
}

static int
has_block(const char *path)
{
	struct text t;
	size_t s, e;
	int yes;

	if (read_text(path, &t, NULL) == -1)
		return 0;
	yes = find_block(&t, 0, &s, &e);
	text_free(&t);
	return yes;
}

/*
 * After a crash: undoes what the state dir records. With no record (lost
 * with /run at a reboot) sluice's marked blocks and drop-in are still
 * recognisable, and are removed wherever the default paths show them.
 */
int
resolv_cleanup(const char *state_dir)
{
	char dropin[PATH_MAX], dir[PATH_MAX];
	int r;

	if ((r = restore_from(state_dir)) == -1)
		return -1;
	rs.kind = -1;
	rs.path[0] = '\0';
	if (r == 1)
		return 0;
	if (has_block(resolv_conf_path()))
		sweep_file(resolv_conf_path());
	if (has_block(hosts_path()))
		sweep_file(hosts_path());
	if (state_path(dir, sizeof(dir), systemd_run(), DROPIN_DIR) == 0 &&
	    state_path(dropin, sizeof(dropin), dir, DROPIN_FILE) == 0 &&
	    access(dropin, F_OK) == 0 && restore_systemd(dropin) == -1)
		return -1;
	return 0;
}

static int
setup_one(int kind, const char *mode, const char *state_dir, int explicit,
    char *why, size_t wlen)
{
	switch (kind) {
	case RESOLV_SYSTEMD:
		return setup_systemd(state_dir, explicit, why, wlen);
	case RESOLV_CONF:
		return setup_conf(&rs.ns, state_dir, explicit, why, wlen);
	case RESOLV_HOSTS:
		return setup_hosts(mode != NULL ? hosts_mode_path(mode) :
		    hosts_path(), state_dir, why, wlen);
	default:
		return 0;
	}
}

/* auto: the first that works, saying why the others were passed over. */
static int
setup_auto(const char *state_dir)
{
	static const int order[] = { RESOLV_SYSTEMD, RESOLV_CONF,
	    RESOLV_HOSTS };
	char why[512];
	size_t i;

	for (i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
		why[0] = '\0';
		if (setup_one(order[i], NULL, state_dir, 0, why,
		    sizeof(why)) == 0) {
			log_info("resolver: using %s (%s)",
			    resolv_kind_name(order[i]), rs.path);
			return order[i];
		}
		log_info("resolver: %s not used: %s",
		    resolv_kind_name(order[i]), why);
	}
	log_warnx("resolver: no way to make the system resolver ask sluice");
	return -1;
}

static int
mode_kind(const char *mode)
{
	if (strcmp(mode, "systemd-resolved") == 0)
		return RESOLV_SYSTEMD;
	if (strcmp(mode, "resolv.conf") == 0)
		return RESOLV_CONF;
	if (strncmp(mode, "file:", 5) == 0 && mode[5] != '\0')
		return RESOLV_HOSTS;
	if (strcmp(mode, "none") == 0)
		return RESOLV_NONE;
	return -1;
}

int
resolv_setup(const char *mode, const struct endpoint *ns,
    const char *state_dir)
{
	char why[512];
	int kind;

	if (strcmp(mode, "auto") != 0 && mode_kind(mode) == -1) {
		log_warnx("resolver: bad mode %s", mode);
		errno = EINVAL;
		return -1;
	}
	/* Whatever an earlier run left behind goes first. */
	if (rs.kind != -1 || resolv_cleanup(state_dir) == -1) {
		log_warnx("resolver: %s", rs.kind != -1 ? "already set up" :
		    "cannot undo an earlier run's changes");
		errno = EBUSY;
		return -1;
	}
	rs.ns = *ns;
	if (strcmp(mode, "auto") == 0)
		return rs.kind = setup_auto(state_dir);
	kind = mode_kind(mode);
	if (setup_one(kind, mode, state_dir, 1, why, sizeof(why)) == -1) {
		log_warnx("resolver: %s: %s", resolv_kind_name(kind), why);
		return -1;
	}
	if (kind != RESOLV_NONE)
		log_info("resolver: using %s (%s)", resolv_kind_name(kind),
		    rs.path);
	return rs.kind = kind;
}
