/* SPDX-License-Identifier: MIT */
/* Address pool: stable name-to-address allocations from dns.ip-range. */
#include "config.h"

#include <sys/stat.h>
#include <sys/types.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dns.h"
#include "log.h"

/*
 * Candidates looked at per allocation at most, so that a query never
 * scans a /8 or a /64: an allocation that gives up continues from where
 * it stopped next time.
 */
#define POOL_SCAN_MAX	65536
/* Offsets are 64-bit; of a larger v6 range only the first 2^62 are used. */
#define POOL_SIZE_MAX	(UINT64_C(1) << 62)
#define POOL_BUCKETS_MIN 64
/* Malformed lines reported one by one at load, then only counted. */
#define POOL_WARN_MAX	10
/* How long pool_in_use_host() trusts its snapshot of host addresses. */
#define HOST_CACHE_NS	1000000000L
#define HOST_CACHE_MAX	256

/*
 * One allocation, on two hash chains (by name and by address). The
 * address is kept as its offset into the range: 8 bytes, not 16.
 */
struct pool_entry {
	struct pool_entry	*next_name, *next_addr;
	uint64_t		 off;
	char			 name[];
};

struct pool {
	struct cidr		 range;
	char			*path;		/* NULL: not persisted */
	pool_in_use_cb		 in_use;
	void			*arg;
	unsigned		 hostbits;
	uint64_t		 size;		/* offsets 0 .. size-1 */
	uint64_t		 next;		/* where the next scan starts */
	struct pool_entry	**by_name, **by_addr;
	size_t			 nbuckets, count;
	int			 dirty;		/* differs from the file */
};

static uint64_t
hash_name(const char *s)
{
	uint64_t h = UINT64_C(14695981039346656037);	/* FNV-1a */

	while (*s != '\0') {
		h ^= (unsigned char)*s++;
		h *= UINT64_C(1099511628211);
	}
	return h;
}

static uint64_t
hash_off(uint64_t x)
{
	x += UINT64_C(0x9e3779b97f4a7c15);		/* splitmix64 */
	x = (x ^ (x >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	x = (x ^ (x >> 27)) * UINT64_C(0x94d049bb133111eb);
	return x ^ (x >> 31);
}

static uint64_t
be64(const uint8_t *b)
{
	uint64_t v = 0;
	int i;

	for (i = 0; i < 8; i++)
		v = v << 8 | b[i];
	return v;
}

static uint32_t
be32(const uint8_t *b)
{
	return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 |
	    (uint32_t)b[2] << 8 | b[3];
}

/* The address at offset off; off < size, so it only fills host bits. */
static void
addr_at(const struct pool *p, uint64_t off, struct cidr *out)
{
	int i;

	*out = p->range;
	if (p->range.family == AF_INET) {
		out->prefixlen = 32;
		for (i = 3; i >= 0; i--, off >>= 8)
			out->addr[i] |= (uint8_t)off;
	} else {
		out->prefixlen = 128;
		for (i = 15; i >= 8; i--, off >>= 8)
			out->addr[i] |= (uint8_t)off;
	}
}

/* The offset of addr in the range; -1 when it is not in the usable part. */
static int
off_of(const struct pool *p, const struct cidr *a, uint64_t *off)
{
	const uint8_t *net = p->range.addr;
	unsigned full = p->range.prefixlen / 8, rest = p->range.prefixlen % 8;

	if (a->family != p->range.family)
		return -1;
	if (memcmp(a->addr, net, full) != 0 || (rest != 0 &&
	    ((a->addr[full] ^ net[full]) & (0xff00u >> rest)) != 0))
		return -1;
	if (p->range.family == AF_INET)
		*off = be32(a->addr) - be32(net);
	else {
		/* Beyond the first 2^62 of a huge range: not ours. */
		if (memcmp(a->addr, net, 8) != 0)
			return -1;
		*off = be64(a->addr + 8) - be64(net + 8);
	}
	return *off < p->size ? 0 : -1;
}

/*
 * Addresses never handed out. v4: network and broadcast (not for /31 and
 * /32), x.x.x.0 and x.x.x.255 in ranges of a /24 or more (software that
 * still thinks in classful terms chokes on them), 169.254.169.254 (cloud
 * metadata), and 169.254.0.0/24 and 169.254.255.0/24 (RFC 3927 reserves
 * them). v6: the Subnet-Router anycast address (offset 0, not for /127
 * and /128) and the RFC 2526 anycast addresses at the top of the range.
 */
static int
reserved(const struct pool *p, uint64_t off)
{
	uint32_t a;

	if (p->range.family == AF_INET6) {
		if (off == 0 && p->range.prefixlen <= 126)
			return 1;
		/* Only where the top of the range is within our offsets. */
		return p->hostbits >= 8 && p->hostbits < 62 &&
		    off >= p->size - 128;
	}
	if (p->range.prefixlen <= 30 && (off == 0 || off == p->size - 1))
		return 1;
	a = be32(p->range.addr) + (uint32_t)off;
	if (p->range.prefixlen <= 24 && ((a & 0xff) == 0 || (a & 0xff) == 255))
		return 1;
	if (a == 0xa9fea9feu)				/* 169.254.169.254 */
		return 1;
	return (a & 0xffffff00u) == 0xa9fe0000u ||	/* 169.254.0.0/24 */
	    (a & 0xffffff00u) == 0xa9feff00u;		/* 169.254.255.0/24 */
}

static struct pool_entry *
find_name(const struct pool *p, const char *name)
{
	struct pool_entry *e;

	e = p->by_name[hash_name(name) & (p->nbuckets - 1)];
	for (; e != NULL; e = e->next_name)
		if (strcmp(e->name, name) == 0)
			return e;
	return NULL;
}

static struct pool_entry *
find_off(const struct pool *p, uint64_t off)
{
	struct pool_entry *e;

	e = p->by_addr[hash_off(off) & (p->nbuckets - 1)];
	for (; e != NULL; e = e->next_addr)
		if (e->off == off)
			return e;
	return NULL;
}

static void
link_entry(struct pool *p, struct pool_entry *e)
{
	size_t hn = hash_name(e->name) & (p->nbuckets - 1);
	size_t ha = hash_off(e->off) & (p->nbuckets - 1);

	e->next_name = p->by_name[hn];
	p->by_name[hn] = e;
	e->next_addr = p->by_addr[ha];
	p->by_addr[ha] = e;
}

/* Doubles the tables once there are more entries than buckets. */
static int
grow(struct pool *p)
{
	struct pool_entry **on = p->by_name, **oa = p->by_addr, *e, *next;
	size_t n = p->nbuckets, i;

	if (p->count < p->nbuckets)
		return 0;
	p->by_name = calloc(n * 2, sizeof(*p->by_name));
	p->by_addr = calloc(n * 2, sizeof(*p->by_addr));
	if (p->by_name == NULL || p->by_addr == NULL) {
		free(p->by_name);
		free(p->by_addr);
		p->by_name = on;
		p->by_addr = oa;
		return -1;
	}
	p->nbuckets = n * 2;
	for (i = 0; i < n; i++)
		for (e = on[i]; e != NULL; e = next) {
			next = e->next_name;
			link_entry(p, e);
		}
	free(on);
	free(oa);
	return 0;
}

static struct pool_entry *
add_entry(struct pool *p, const char *name, uint64_t off)
{
	struct pool_entry *e;
	size_t len = strlen(name);

	if (grow(p) == -1 || (e = malloc(sizeof(*e) + len + 1)) == NULL)
		return NULL;
	memcpy(e->name, name, len + 1);
	e->off = off;
	link_entry(p, e);
	p->count++;
	p->dirty = 1;
	return e;
}

static void
unlink_entry(struct pool *p, struct pool_entry *e)
{
	struct pool_entry **pp;

	pp = &p->by_name[hash_name(e->name) & (p->nbuckets - 1)];
	while (*pp != e)
		pp = &(*pp)->next_name;
	*pp = e->next_name;
	pp = &p->by_addr[hash_off(e->off) & (p->nbuckets - 1)];
	while (*pp != e)
		pp = &(*pp)->next_addr;
	*pp = e->next_addr;
	p->count--;
	p->dirty = 1;
	free(e);
}

static int
addr_in_use(const struct pool *p, uint64_t off)
{
	struct cidr c;

	if (p->in_use == NULL)
		return 0;
	addr_at(p, off, &c);
	return p->in_use(&c, p->arg) != 0;
}

/* A hostname as the file stores it; wildcards are no allocation's. */
static int
valid_name(const char *name)
{
	char norm[DNS_NAME_MAX + 1];
	const char *why;
	int wild;

	if (strlen(name) > DNS_TEXT_MAX ||
	    addr_parse_hostname(name, norm, &wild, &why) == -1 || wild)
		return 0;
	return strcmp(norm, name) == 0;
}

static const char *
off_str(const struct pool *p, uint64_t off, char *buf, size_t len)
{
	struct cidr c;

	addr_at(p, off, &c);
	if (inet_ntop(c.family, c.addr, buf, (socklen_t)len) == NULL)
		snprintf(buf, len, "?");
	return buf;
}

/* Checks one "NAME ADDRESS" line; why says what is wrong with it. */
static int
parse_line(struct pool *p, char *line, char **name, uint64_t *off,
    const char **why)
{
	char *addr, *extra, *save = NULL;
	struct cidr c;

	*name = strtok_r(line, " \t\r\n", &save);
	addr = strtok_r(NULL, " \t\r\n", &save);
	extra = strtok_r(NULL, " \t\r\n", &save);
	if (*name == NULL || addr == NULL || extra != NULL)
		*why = "expected NAME ADDRESS";
	else if (!valid_name(*name))
		*why = "not a lowercase hostname";
	else if (strchr(addr, '/') != NULL ||
	    addr_parse_cidr(addr, &c, why) == -1)
		*why = "bad address";
	else if (off_of(p, &c, off) == -1)
		*why = "address outside the range";
	else if (reserved(p, *off))
		*why = "reserved address";
	else if (find_name(p, *name) != NULL)
		*why = "name listed twice";
	else if (find_off(p, *off) != NULL)
		*why = "address listed twice";
	else if (addr_in_use(p, *off))
		*why = "address now in use on this host";
	else
		return 0;
	return -1;
}

/*
 * Loads the allocations of an earlier run. Lines that do not fit (this
 * range, a valid name, a free address) are dropped with a warning; the
 * next save then rewrites the file without them.
 */
static int
pool_load(struct pool *p)
{
	FILE *fp;
	char *line = NULL, *name;
	size_t cap = 0, lineno = 0, bad = 0;
	uint64_t off, top = 0;
	const char *why;
	int rc = 0;

	if ((fp = fopen(p->path, "re")) == NULL)
		return errno == ENOENT ? 0 : -1;
	while (getline(&line, &cap, fp) != -1) {
		lineno++;
		if (line[strspn(line, " \t\r\n")] == '\0' ||
		    line[strspn(line, " \t")] == '#')
			continue;
		if (parse_line(p, line, &name, &off, &why) == -1) {
			if (bad++ < POOL_WARN_MAX)
				log_warnx("%s:%zu: %s, line ignored", p->path,
				    lineno, why);
			p->dirty = 1;
			continue;
		}
		if (add_entry(p, name, off) == NULL) {
			rc = -1;
			break;
		}
		if (off + 1 > top)
			top = off + 1;
	}
	if (rc == 0 && ferror(fp))
		rc = -1;
	if (bad > POOL_WARN_MAX)
		log_warnx("%s: %zu more lines ignored", p->path,
		    bad - POOL_WARN_MAX);
	free(line);
	fclose(fp);
	/* Continue after the highest allocation rather than reuse gaps. */
	p->next = top < p->size ? top : 0;
	if (rc == 0 && bad == 0)
		p->dirty = 0;
	return rc;
}

struct pool *
pool_new(const struct cidr *range, const char *path, pool_in_use_cb in_use,
    void *arg)
{
	struct pool *p;
	unsigned maxbits;

	if (range->family != AF_INET && range->family != AF_INET6) {
		errno = EAFNOSUPPORT;
		return NULL;
	}
	maxbits = range->family == AF_INET ? 32 : 128;
	if (range->prefixlen > maxbits) {
		errno = EINVAL;
		return NULL;
	}
	if ((p = calloc(1, sizeof(*p))) == NULL)
		return NULL;
	p->range = *range;
	p->in_use = in_use;
	p->arg = arg;
	p->hostbits = maxbits - range->prefixlen;
	p->size = p->hostbits >= 62 ? POOL_SIZE_MAX :
	    UINT64_C(1) << p->hostbits;
	p->nbuckets = POOL_BUCKETS_MIN;
	p->by_name = calloc(p->nbuckets, sizeof(*p->by_name));
	p->by_addr = calloc(p->nbuckets, sizeof(*p->by_addr));
	if (p->by_name == NULL || p->by_addr == NULL ||
	    (path != NULL && (p->path = strdup(path)) == NULL))
		goto fail;
	if (p->path != NULL && pool_load(p) == -1) {
		log_warn("%s: %s", __func__, p->path);
		goto fail;
	}
	return p;
fail:
	pool_free(p);
	return NULL;
}

void
pool_free(struct pool *p)
{
	struct pool_entry *e, *next;
	size_t i;

	if (p == NULL)
		return;
	for (i = 0; p->by_name != NULL && i < p->nbuckets; i++)
		for (e = p->by_name[i]; e != NULL; e = next) {
			next = e->next_name;
			free(e);
		}
	free(p->by_name);
	free(p->by_addr);
	free(p->path);
	free(p);
}

/*
 * Next fit: scanning goes on from after the last allocation and wraps,
 * so a released address is handed to another name as late as possible
 * (clients may still hold the old answer for a TTL).
 */
static int
find_free(struct pool *p, uint64_t *out)
{
	uint64_t off = p->next, n;

	for (n = 0; n < p->size && n < POOL_SCAN_MAX; n++) {
		if (!reserved(p, off) && find_off(p, off) == NULL &&
		    !addr_in_use(p, off)) {
			*out = off;
			p->next = off + 1 < p->size ? off + 1 : 0;
			return 0;
		}
		off = off + 1 < p->size ? off + 1 : 0;
	}
	p->next = off;
	errno = ENOSPC;
	return -1;
}

int
pool_get(struct pool *p, const char *name, struct cidr *out)
{
	struct pool_entry *e;
	uint64_t off;

	if ((e = find_name(p, name)) != NULL) {
		addr_at(p, e->off, out);
		return 0;
	}
	if (!valid_name(name)) {
		errno = EINVAL;
		return -1;
	}
	if (find_free(p, &off) == -1 || add_entry(p, name, off) == NULL)
		return -1;
	addr_at(p, off, out);
	return 0;
}

const char *
pool_name_of(const struct pool *p, const struct cidr *addr)
{
	struct pool_entry *e;
	uint64_t off;

	if (off_of(p, addr, &off) == -1 || (e = find_off(p, off)) == NULL)
		return NULL;
	return e->name;
}

size_t
pool_retain(struct pool *p, int (*keep)(const char *, void *), void *arg)
{
	struct pool_entry *e, *next;
	size_t i, released = 0;

	for (i = 0; i < p->nbuckets; i++)
		for (e = p->by_name[i]; e != NULL; e = next) {
			next = e->next_name;
			if (keep(e->name, arg))
				continue;
			log_debug("%s: %s released", __func__, e->name);
			unlink_entry(p, e);
			released++;
		}
	return released;
}

static int
cmp_entry(const void *a, const void *b)
{
	const struct pool_entry *x = *(const struct pool_entry *const *)a;
	const struct pool_entry *y = *(const struct pool_entry *const *)b;

	return x->off < y->off ? -1 : x->off > y->off;
}

/* The entries in address order, for the file and the dump; caller frees. */
static struct pool_entry **
sorted(const struct pool *p)
{
	struct pool_entry **v, *e;
	size_t i, n = 0;

	if ((v = calloc(p->count + 1, sizeof(*v))) == NULL)
		return NULL;
	for (i = 0; i < p->nbuckets; i++)
		for (e = p->by_name[i]; e != NULL; e = e->next_name)
			v[n++] = e;
	qsort(v, n, sizeof(*v), cmp_entry);
	return v;
}

static int
write_entries(const struct pool *p, FILE *fp)
{
	struct pool_entry **v;
	char rbuf[INET6_ADDRSTRLEN + 8], abuf[INET6_ADDRSTRLEN];
	size_t i;

	if ((v = sorted(p)) == NULL)
		return -1;
	fprintf(fp, "# sluice address pool %s: NAME ADDRESS per line\n",
	    cidr_str(&p->range, rbuf, sizeof(rbuf)));
	for (i = 0; i < p->count; i++)
		fprintf(fp, "%s %s\n", v[i]->name,
		    off_str(p, v[i]->off, abuf, sizeof(abuf)));
	free(v);
	return 0;
}

int
pool_save(struct pool *p)
{
	char tmp[PATH_MAX];
	FILE *fp = NULL;
	int fd = -1, rc = -1, created = 0;

	if (p->path == NULL || !p->dirty)
		return 0;
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.XXXXXX", p->path) >=
	    sizeof(tmp)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if ((fd = mkostemp(tmp, O_CLOEXEC)) == -1)
		goto done;
	created = 1;
	if (fchmod(fd, 0644) == -1 || (fp = fdopen(fd, "w")) == NULL)
		goto done;
	fd = -1;
	if (write_entries(p, fp) == -1 || fflush(fp) == EOF ||
	    ferror(fp) || fsync(fileno(fp)) == -1)
		goto done;
	if (fclose(fp) == EOF) {
		fp = NULL;
		goto done;
	}
	fp = NULL;
	if (rename(tmp, p->path) == -1)
		goto done;
	sync_parent_dir(p->path);
	p->dirty = 0;
	rc = 0;
done:
	if (rc == -1) {
		log_warn("%s: %s", __func__, p->path);
		if (created)
			(void)unlink(tmp);
	}
	if (fp != NULL)
		fclose(fp);
	if (fd != -1)
		close(fd);
	return rc;
}

void
pool_dump(const struct pool *p, FILE *fp)
{
	struct pool_entry **v;
	char rbuf[INET6_ADDRSTRLEN + 8], abuf[INET6_ADDRSTRLEN];
	size_t i;

	fprintf(fp, "pool %s: %zu names, next %s, file %s%s\n",
	    cidr_str(&p->range, rbuf, sizeof(rbuf)), p->count,
	    off_str(p, p->next, abuf, sizeof(abuf)),
	    p->path != NULL ? p->path : "(none)",
	    p->dirty ? " (unsaved)" : "");
	if ((v = sorted(p)) == NULL)
		return;
	for (i = 0; i < p->count; i++)
		fprintf(fp, "  %s %s\n", off_str(p, v[i]->off, abuf,
		    sizeof(abuf)), v[i]->name);
	free(v);
}

/*
 * A snapshot of the host's interface addresses, per thread, refreshed at
 * most once a second: one allocation may ask about many candidates, and
 * a netlink dump per candidate would be wasteful.
 */
struct host_cache {
	struct timespec	at;
	int		valid, overflow;
	size_t		n;
	struct cidr	addrs[HOST_CACHE_MAX];
};
static _Thread_local struct host_cache host_cache;

static int
ifa_matches(const struct ifaddrs *ifa, const struct cidr *a)
{
	struct cidr c;

	if (ifa->ifa_addr == NULL || ifa->ifa_addr->sa_family != a->family)
		return 0;
	cidr_from_sockaddr(&c, ifa->ifa_addr);
	return memcmp(c.addr, a->addr, a->family == AF_INET ? 4 : 16) == 0;
}

static int
host_refresh(struct host_cache *hc, const struct cidr *a, int *found)
{
	struct ifaddrs *ifas, *ifa;
	int fam;

	if (getifaddrs(&ifas) == -1)
		return -1;
	hc->n = 0;
	hc->overflow = 0;
	*found = 0;
	for (ifa = ifas; ifa != NULL; ifa = ifa->ifa_next) {
		if (ifa_matches(ifa, a))
			*found = 1;
		if (ifa->ifa_addr == NULL)
			continue;
		fam = ifa->ifa_addr->sa_family;
		if (fam != AF_INET && fam != AF_INET6)
			continue;
		if (hc->n == HOST_CACHE_MAX) {
			hc->overflow = 1;
			continue;
		}
		cidr_from_sockaddr(&hc->addrs[hc->n++], ifa->ifa_addr);
	}
	freeifaddrs(ifas);
	clock_gettime(CLOCK_MONOTONIC, &hc->at);
	hc->valid = !hc->overflow;
	return 0;
}

int
pool_in_use_host(const struct cidr *a, void *arg)
{
	struct host_cache *hc = &host_cache;
	struct timespec now;
	size_t i;
	int found;

	clock_gettime(CLOCK_MONOTONIC, &now);
	if (!hc->valid || (now.tv_sec - hc->at.tv_sec) * 1000000000L +
	    (now.tv_nsec - hc->at.tv_nsec) >= HOST_CACHE_NS) {
		/* Cannot tell: better skip an address than clash. */
		if (host_refresh(hc, a, &found) == -1)
			return 1;
		return found;
	}
	for (i = 0; i < hc->n; i++)
		if (hc->addrs[i].family == a->family &&
		    memcmp(hc->addrs[i].addr, a->addr,
		    a->family == AF_INET ? 4 : 16) == 0)
			return 1;
	return 0;
}
