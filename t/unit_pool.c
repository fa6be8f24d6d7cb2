/* SPDX-License-Identifier: MIT */
/* Unit tests for dns/pool.c: reserved addresses, stability, the file. */
#include "config.h"

#include <sys/stat.h>
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dns.h"
#include "log.h"
#include "tap.h"

static char tmpdir[] = "/tmp/sluice-pool.XXXXXX";

static struct cidr
range(const char *s)
{
	struct cidr c;
	const char *why;

	if (addr_parse_cidr(s, &c, &why) == -1) {
		fprintf(stderr, "bad range %s: %s\n", s, why);
		exit(1);
	}
	return c;
}

static const char *
ip(const struct cidr *c)
{
	static char buf[4][INET6_ADDRSTRLEN];
	static int i;

	i = (i + 1) % 4;
	inet_ntop(c->family, c->addr, buf[i], sizeof(buf[i]));
	return buf[i];
}

/* The address pool_get gives name, as text, or "-1". */
static const char *
get(struct pool *p, const char *name)
{
	struct cidr c;

	if (pool_get(p, name, &c) == -1)
		return "-1";
	return ip(&c);
}

static char *
slurp(const char *path)
{
	FILE *fp = fopen(path, "r");
	char *buf = calloc(1, 1 << 20);
	size_t n;

	if (fp == NULL || buf == NULL) {
		free(buf);
		if (fp != NULL)
			fclose(fp);
		return NULL;
	}
	n = fread(buf, 1, (1 << 20) - 1, fp);
	buf[n] = '\0';
	fclose(fp);
	return buf;
}

static void
spew(const char *path, const char *text)
{
	FILE *fp = fopen(path, "w");

	if (fp == NULL || fputs(text, fp) == EOF || fclose(fp) == EOF) {
		perror(path);
		exit(1);
	}
}

static void
test_linklocal_order(void)
{
	struct cidr r = range("169.254.0.0/16"), c;
	struct pool *p = pool_new(&r, NULL, NULL, NULL);
	char name[64];
	int i;

	ok(p != NULL, "pool over 169.254.0.0/16");
	/* 169.254.0.0/24 is reserved, and so is 169.254.1.0. */
	is_str(get(p, "a.test"), "169.254.1.1", "first address is 169.254.1.1");
	is_str(get(p, "b.test"), "169.254.1.2", "second is 169.254.1.2");
	is_str(get(p, "a.test"), "169.254.1.1", "a name keeps its address");
	c = range("169.254.1.2");
	is_str(pool_name_of(p, &c), "b.test", "pool_name_of finds the name");
	c = range("169.254.1.3");
	ok(pool_name_of(p, &c) == NULL, "an unallocated address has no name");
	c = range("10.0.0.1");
	ok(pool_name_of(p, &c) == NULL, "an address outside has no name");
	c = range("fd00::1");
	ok(pool_name_of(p, &c) == NULL, "so has one of the other family");
	for (i = 3; i <= 254; i++) {
		snprintf(name, sizeof(name), "n%d.test", i);
		pool_get(p, name, &c);
	}
	is_str(ip(&c), "169.254.1.254", "the 254th is 169.254.1.254");
	is_str(get(p, "next.test"), "169.254.2.1",
	    "then .255 and .0 are skipped: 169.254.2.1");
	errno = 0;
	is_str(get(p, "*.wild.test"), "-1", "a wildcard gets no address");
	is_int(errno, EINVAL, "EINVAL");
	is_str(get(p, "Upper.test"), "-1", "nor does an uppercase name");
	is_str(get(p, "a b"), "-1", "nor a name with a blank");
	pool_free(p);
}

/* Every usable address once, none reserved, then exhaustion. */
static void
test_linklocal_full(void)
{
	struct cidr r = range("169.254.0.0/16"), c;
	struct pool *p = pool_new(&r, NULL, NULL, NULL);
	char name[64];
	int i, n = 0, bad = 0, meta = 0;

	for (i = 0; i < 70000; i++) {
		snprintf(name, sizeof(name), "h%d.test", i);
		if (pool_get(p, name, &c) == -1)
			break;
		n++;
		if (c.addr[3] == 0 || c.addr[3] == 255 || c.addr[2] == 0 ||
		    c.addr[2] == 255)
			bad++;
		if (c.addr[2] == 169 && c.addr[3] == 254)
			meta++;
	}
	/* 254 /24s of 254 addresses, without 169.254.169.254. */
	is_int(n, 254 * 254 - 1, "169.254.0.0/16 has 64515 usable addresses");
	is_int(bad, 0, "none in the first or last /24, none .0 or .255");
	is_int(meta, 0, "169.254.169.254 is never handed out");
	is_int(errno, ENOSPC, "exhaustion: -1 with ENOSPC");
	c = range("169.254.100.100");
	is_str(pool_name_of(p, &c), "h25245.test",
	    "the names are found by address in a full pool");
	pool_free(p);
}

static void
test_small(void)
{
	struct cidr r = range("10.0.0.0/30");
	struct pool *p = pool_new(&r, NULL, NULL, NULL);

	is_str(get(p, "a.test"), "10.0.0.1", "/30: first is .1");
	is_str(get(p, "b.test"), "10.0.0.2", "/30: second is .2");
	is_str(get(p, "c.test"), "-1", "/30: exhausted after two");
	is_str(get(p, "a.test"), "10.0.0.1", "an exhausted pool still answers "
	    "for its names");
	pool_free(p);

	r = range("10.0.0.0/31");
	p = pool_new(&r, NULL, NULL, NULL);
	is_str(get(p, "a.test"), "10.0.0.0", "/31: both addresses usable");
	is_str(get(p, "b.test"), "10.0.0.1", "/31: the second");
	is_str(get(p, "c.test"), "-1", "/31: then exhausted");
	pool_free(p);

	r = range("10.1.2.0/32");
	p = pool_new(&r, NULL, NULL, NULL);
	is_str(get(p, "a.test"), "10.1.2.0", "/32: its one address");
	is_str(get(p, "b.test"), "-1", "/32: then exhausted");
	pool_free(p);

	r = range("169.254.169.252/30");
	p = pool_new(&r, NULL, NULL, NULL);
	is_str(get(p, "a.test"), "169.254.169.253", "metadata /30: .253");
	is_str(get(p, "b.test"), "-1", "and not .254");
	pool_free(p);
}

struct inuse {
	const char	*addrs[4];
	int		 calls;
	int		 all;
};

static int
fake_in_use(const struct cidr *c, void *arg)
{
	struct inuse *u = arg;
	int i;

	u->calls++;
	if (u->all)
		return 1;
	for (i = 0; i < 4 && u->addrs[i] != NULL; i++)
		if (strcmp(ip(c), u->addrs[i]) == 0)
			return 1;
	return 0;
}

static void
test_in_use(void)
{
	struct inuse u = { { "169.254.1.1", "169.254.1.3" }, 0, 0 };
	struct cidr r = range("169.254.0.0/16");
	struct pool *p = pool_new(&r, NULL, fake_in_use, &u);

	is_str(get(p, "a.test"), "169.254.1.2", "an address in use is skipped");
	is_str(get(p, "b.test"), "169.254.1.4", "and the next one too");
	ok(u.calls == 4, "in_use asked once per free candidate (%d)", u.calls);
	u.calls = 0;
	get(p, "a.test");
	is_int(u.calls, 0, "not asked again for an allocated name");
	pool_free(p);

	/* A /8 where everything is taken: the scan stops at 65536. */
	r = range("10.0.0.0/8");
	u.all = 1;
	u.calls = 0;
	p = pool_new(&r, NULL, fake_in_use, &u);
	is_str(get(p, "a.test"), "-1", "a huge range all in use: -1");
	/* 65536 candidates, of which 512 are .0 or .255 and not asked. */
	is_int(u.calls, 65536 - 512, "after at most 65536 candidates");
	u.all = 0;
	u.addrs[0] = NULL;
	is_str(get(p, "a.test"), "10.1.0.1",
	    "the next allocation continues where the last gave up");
	pool_free(p);

	ok(pool_in_use_host(&(struct cidr){ .family = AF_INET,
	    .addr = { 127, 0, 0, 1 }, .prefixlen = 32 }, NULL),
	    "pool_in_use_host: 127.0.0.1 is on this host");
	ok(!pool_in_use_host(&(struct cidr){ .family = AF_INET,
	    .addr = { 192, 0, 2, 123 }, .prefixlen = 32 }, NULL),
	    "pool_in_use_host: 192.0.2.123 is not");
	ok(!pool_in_use_host(&(struct cidr){ .family = AF_INET,
	    .addr = { 192, 0, 2, 124 }, .prefixlen = 32 }, NULL),
	    "and the cached answer agrees");
}

static int
keep_ac(const char *name, void *arg)
{
	(void)arg;
	return strcmp(name, "a.test") == 0 || strcmp(name, "c.test") == 0;
}

static void
test_persist(void)
{
	struct cidr r = range("169.254.0.0/16"), c;
	char path[256], *text;
	struct pool *p;

	snprintf(path, sizeof(path), "%s/pool", tmpdir);
	p = pool_new(&r, path, NULL, NULL);
	ok(p != NULL, "pool with a file that does not exist yet");
	get(p, "c.test");
	get(p, "a.test");
	get(p, "b.test");
	is_int(pool_save(p), 0, "pool_save");
	text = slurp(path);
	is_str(text, "# sluice address pool 169.254.0.0/16: NAME ADDRESS per "
	    "line\nc.test 169.254.1.1\na.test 169.254.1.2\n"
	    "b.test 169.254.1.3\n", "the file lists NAME ADDRESS by address");
	free(text);
	pool_free(p);

	p = pool_new(&r, path, NULL, NULL);
	is_str(get(p, "b.test"), "169.254.1.3", "after a restart b keeps its "
	    "address");
	is_str(get(p, "a.test"), "169.254.1.2", "and a too");
	is_str(get(p, "d.test"), "169.254.1.4", "a new name comes after them");
	is_int(pool_retain(p, keep_ac, NULL), 2, "retain releases b and d");
	c = range("169.254.1.3");
	ok(pool_name_of(p, &c) == NULL, "b's address is free");
	is_str(get(p, "a.test"), "169.254.1.2", "a is kept");
	is_str(get(p, "e.test"), "169.254.1.5", "next fit: a released address "
	    "is not handed out again at once");
	is_int(pool_save(p), 0, "saved");
	pool_free(p);

	text = slurp(path);
	is_str(text, "# sluice address pool 169.254.0.0/16: NAME ADDRESS per "
	    "line\nc.test 169.254.1.1\na.test 169.254.1.2\n"
	    "e.test 169.254.1.5\n", "the file no longer has b and d");
	free(text);

	/* An address that is now on the host is dropped at load. */
	{
		struct inuse u = { { "169.254.1.2" }, 0, 0 };

		p = pool_new(&r, path, fake_in_use, &u);
		is_str(get(p, "c.test"), "169.254.1.1", "c keeps its address");
		is_str(get(p, "a.test"), "169.254.1.6", "a's address is now in "
		    "use on the host: a gets a new one");
		pool_free(p);
	}

	snprintf(path, sizeof(path), "%s/nodir/pool", tmpdir);
	p = pool_new(&r, path, NULL, NULL);
	get(p, "a.test");
	is_int(pool_save(p), -1, "saving into a missing directory fails");
	pool_free(p);

	p = pool_new(&r, NULL, NULL, NULL);
	get(p, "a.test");
	is_int(pool_save(p), 0, "saving a pool without a file is a no-op");
	pool_free(p);
}

static void
test_malformed(void)
{
	struct inuse u = { { "169.254.1.9" }, 0, 0 };
	struct cidr r = range("169.254.0.0/16");
	char path[256], logpath[256], *log;
	struct pool *p;
	int saved;

	snprintf(path, sizeof(path), "%s/bad", tmpdir);
	snprintf(logpath, sizeof(logpath), "%s/log", tmpdir);
	spew(path,
	    "# a comment\n"			/* 1 */
	    "\n"				/* 2 */
	    "good.test 169.254.1.5\n"		/* 3 */
	    "onlyname\n"			/* 4 */
	    "bad name 169.254.1.6\n"		/* 5 */
	    "UPPER.test 169.254.1.7\n"		/* 6 */
	    "x.test 10.0.0.1\n"			/* 7 */
	    "y.test 169.254.169.254\n"		/* 8 */
	    "good.test 169.254.1.8\n"		/* 9 */
	    "z.test 169.254.1.5\n"		/* 10 */
	    "w.test notanip\n"			/* 11 */
	    "in.use.test 169.254.1.9\n"		/* 12 */
	    "v.test 169.254.1.10/32\n"		/* 13 */
	    "*.wild.test 169.254.1.11\n"	/* 14 */
	    "  spaced.test\t169.254.1.12  \n"	/* 15 */
	    "last.test 169.254.1.13");		/* 16, no newline */
	fflush(stderr);
	saved = dup(2);
	if (freopen(logpath, "w", stderr) == NULL)
		exit(1);
	p = pool_new(&r, path, fake_in_use, &u);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	ok(p != NULL, "a file with bad lines still loads");
	is_str(get(p, "good.test"), "169.254.1.5", "the good line is kept");
	is_str(get(p, "spaced.test"), "169.254.1.12", "blanks around fields are "
	    "fine");
	is_str(get(p, "last.test"), "169.254.1.13", "so is a last line without "
	    "newline");
	is_str(get(p, "new.test"), "169.254.1.14", "a new name comes after the "
	    "highest loaded address");
	log = slurp(logpath);
	ok(log != NULL && strstr(log, "/bad:4: expected NAME ADDRESS") &&
	    strstr(log, "/bad:5: expected NAME ADDRESS") &&
	    strstr(log, "/bad:6: not a lowercase hostname") &&
	    strstr(log, "/bad:7: address outside the range") &&
	    strstr(log, "/bad:8: reserved address") &&
	    strstr(log, "/bad:9: name listed twice") &&
	    strstr(log, "/bad:10: address listed twice"),
	    "warnings name file:line and why (4-10)");
	ok(log != NULL && strstr(log, "/bad:11: bad address") &&
	    strstr(log, "/bad:12: address now in use on this host") &&
	    strstr(log, "/bad:13: bad address") &&
	    !strstr(log, "/bad:14:") && strstr(log, ": 1 more lines ignored"),
	    "then only counted (14 is the 11th bad line)");
	if (log != NULL && !strstr(log, "/bad:13"))
		printf("# log: %s\n", log);
	free(log);
	is_int(pool_save(p), 0, "the next save drops the bad lines");
	pool_free(p);
	log = slurp(path);
	ok(log != NULL && strstr(log, "UPPER") == NULL &&
	    strstr(log, "good.test 169.254.1.5\n") != NULL,
	    "the file is rewritten clean");
	free(log);
}

static void
test_v6(void)
{
	struct cidr r = range("fd00:5::/112"), c;
	char path[256], *text;
	struct pool *p;

	snprintf(path, sizeof(path), "%s/pool6", tmpdir);
	p = pool_new(&r, path, NULL, NULL);
	is_str(get(p, "a.test"), "fd00:5::1", "v6: the network address (the "
	    "subnet-router anycast) is skipped");
	is_str(get(p, "b.test"), "fd00:5::2", "v6: then sequential");
	c = range("fd00:5::2");
	is_str(pool_name_of(p, &c), "b.test", "v6: pool_name_of");
	pool_save(p);
	pool_free(p);
	text = slurp(path);
	is_str(text, "# sluice address pool fd00:5::/112: NAME ADDRESS per "
	    "line\na.test fd00:5::1\nb.test fd00:5::2\n", "v6: the file");
	free(text);
	p = pool_new(&r, path, NULL, NULL);
	is_str(get(p, "b.test"), "fd00:5::2", "v6: stable across a restart");
	pool_free(p);

	r = range("fd00::/32");
	p = pool_new(&r, NULL, NULL, NULL);
	is_str(get(p, "a.test"), "fd00::1", "a /32 of v6 works");
	c = range("fd00:0:ffff::1");
	ok(pool_name_of(p, &c) == NULL, "an address beyond the first 2^62 is "
	    "never ours");
	pool_free(p);

	r = range("fd00::/120");
	p = pool_new(&r, NULL, NULL, NULL);
	is_str(get(p, "a.test"), "fd00::1", "v6 /120: starts at ::1");
	{
		int i, n = 1;
		char name[32];

		for (i = 0; i < 300; i++) {
			snprintf(name, sizeof(name), "n%d.test", i);
			if (pool_get(p, name, &c) == -1)
				break;
			n++;
		}
		is_int(n, 127, "v6 /120: ::1 to ::7f; the top 128 are RFC 2526 "
		    "anycast");
	}
	pool_free(p);

	r = range("fd00::/127");
	p = pool_new(&r, NULL, NULL, NULL);
	is_str(get(p, "a.test"), "fd00::", "v6 /127: both usable (RFC 6164)");
	is_str(get(p, "b.test"), "fd00::1", "v6 /127: the second");
	is_str(get(p, "c.test"), "-1", "v6 /127: then exhausted");
	pool_free(p);
}

static void
test_dump(void)
{
	struct cidr r = range("10.9.0.0/24");
	struct pool *p = pool_new(&r, NULL, NULL, NULL);
	char *buf = NULL;
	size_t len = 0;
	FILE *fp = open_memstream(&buf, &len);

	get(p, "b.test");
	get(p, "a.test");
	pool_dump(p, fp);
	fclose(fp);
	is_str(buf, "pool 10.9.0.0/24: 2 names, next 10.9.0.3, file (none) "
	    "(unsaved)\n  10.9.0.1 b.test\n  10.9.0.2 a.test\n",
	    "pool_dump lists the allocations by address");
	free(buf);
	pool_free(p);
}

int
main(void)
{
	char cmd[300];
	int rc;

	log_init(getenv("TEST_VERBOSE") ? LOG_LVL_DEBUG : LOG_LVL_WARN);
	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	test_linklocal_order();
	test_linklocal_full();
	test_small();
	test_in_use();
	test_persist();
	test_malformed();
	test_v6();
	test_dump();
	rc = done_testing();
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		rc = 1;
	return rc;
}
