/* SPDX-License-Identifier: MIT */
/* The name table: which service a queried hostname belongs to. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "dns.h"

/*
 * Two open-addressing tables (linear probing, at most half full): exact
 * names, and the suffixes of "*.suffix" wildcards. Keys are hashed from
 * their last byte to their first, so that one right-to-left pass over a
 * query name yields the hash of every label suffix: a lookup costs one
 * pass and a probe per label. Keys live in one block owned by the table.
 */
struct name_slot {
	const char		*key;	/* NULL: empty */
	size_t			 len;
	uint32_t		 hash;
	const struct service	*svc;
};

struct name_table {
	struct name_slot	*slots;
	size_t			 mask;	/* slots - 1, a power of two minus 1 */
};

struct dns_names {
	struct name_table	 exact, wild;
	char			*keys;
	size_t			 count;
};

#define FNV_BASIS	2166136261u
#define FNV_PRIME	16777619u
#define LABELS_MAX	128	/* a 255-byte wire name has at most 127 */

static uint32_t
hash_step(uint32_t h, unsigned char c)
{
	return (h ^ c) * FNV_PRIME;
}

/* The hash of s[0..len), taken from the end, as lookup computes it. */
static uint32_t
hash_key(const char *s, size_t len)
{
	uint32_t h = FNV_BASIS;

	while (len > 0)
		h = hash_step(h, (unsigned char)s[--len]);
	return h;
}

static int
table_init(struct name_table *t, size_t n)
{
	size_t cap = 8;

	while (cap < 2 * n)
		cap *= 2;
	if ((t->slots = calloc(cap, sizeof(*t->slots))) == NULL)
		return -1;
	t->mask = cap - 1;
	return 0;
}

static const struct name_slot *
table_find(const struct name_table *t, const char *key, size_t len,
    uint32_t hash)
{
	const struct name_slot *s;
	size_t i;

	for (i = hash & t->mask; ; i = (i + 1) & t->mask) {
		s = &t->slots[i];
		if (s->key == NULL)
			return NULL;
		if (s->hash == hash && s->len == len &&
		    memcmp(s->key, key, len) == 0)
			return s;
	}
}

/* Adds key unless present (the first service wins). 1 if added. */
static int
table_add(struct name_table *t, const char *key, const struct service *svc)
{
	struct name_slot *s;
	size_t len = strlen(key), i;
	uint32_t hash = hash_key(key, len);

	if (table_find(t, key, len, hash) != NULL)
		return 0;
	for (i = hash & t->mask; t->slots[i].key != NULL;
	    i = (i + 1) & t->mask)
		;
	s = &t->slots[i];
	s->key = key;
	s->len = len;
	s->hash = hash;
	s->svc = svc;
	return 1;
}

/* Counts names per table and the bytes their keys need. */
static size_t
names_size(const struct config *conf, size_t *nexact, size_t *nwild)
{
	const struct service *svc;
	size_t i, bytes = 0;

	*nexact = *nwild = 0;
	TAILQ_FOREACH(svc, &conf->services, entry)
		for (i = 0; i < svc->naddrs; i++) {
			if (!svc->addrs[i].is_name)
				continue;
			if (svc->addrs[i].wildcard)
				(*nwild)++;
			else
				(*nexact)++;
			bytes += strnlen(svc->addrs[i].name,
			    sizeof(svc->addrs[i].name) - 1) + 1;
		}
	return bytes;
}

/* Copies a name into the key block, lowercased; returns the copy. */
static char *
key_copy(char **next, const char *name, size_t max)
{
	char *k = *next;
	size_t i, len = strnlen(name, max);

	for (i = 0; i < len; i++)
		k[i] = (char)(name[i] >= 'A' && name[i] <= 'Z' ?
		    name[i] + 'a' - 'A' : name[i]);
	k[len] = '\0';
	*next = k + len + 1;
	return k;
}

static void
names_fill(struct dns_names *d, const struct config *conf)
{
	const struct service *svc;
	const struct svc_addr *a;
	char *next = d->keys, *k;
	size_t i;

	TAILQ_FOREACH(svc, &conf->services, entry)
		for (i = 0; i < svc->naddrs; i++) {
			a = &svc->addrs[i];
			if (!a->is_name)
				continue;
			k = key_copy(&next, a->name, sizeof(a->name) - 1);
			d->count += table_add(a->wildcard ? &d->wild :
			    &d->exact, k, svc);
		}
}

struct dns_names *
dns_names_new(const struct config *conf)
{
	struct dns_names *d;
	size_t nexact, nwild, bytes;

	if (conf == NULL || (d = calloc(1, sizeof(*d))) == NULL)
		return NULL;
	bytes = names_size(conf, &nexact, &nwild);
	if ((d->keys = malloc(bytes + 1)) == NULL ||
	    table_init(&d->exact, nexact) == -1 ||
	    table_init(&d->wild, nwild) == -1) {
		dns_names_free(d);
		return NULL;
	}
	names_fill(d, conf);
	return d;
}

void
dns_names_free(struct dns_names *d)
{
	if (d == NULL)
		return;
	free(d->exact.slots);
	free(d->wild.slots);
	free(d->keys);
	free(d);
}

size_t
dns_names_count(const struct dns_names *d)
{
	return d->count;
}

/*
 * Lowercases name into buf and records, right to left, the hash of every
 * suffix that starts a label. Returns the number of labels, or -1.
 */
static int
name_suffixes(const char *name, char *buf, size_t *len,
    size_t start[LABELS_MAX], uint32_t hash[LABELS_MAX])
{
	uint32_t h = FNV_BASIS;
	size_t i, n;
	int nl = 0;
	char c;

	if ((n = strnlen(name, DNS_TEXT_MAX + 1)) > DNS_TEXT_MAX || n == 0)
		return -1;
	for (i = n; i > 0; i--) {
		c = name[i - 1];
		if (c == '.' && (i == 1 || i == n || name[i] == '.'))
			return -1;	/* empty label, trailing dot */
		buf[i - 1] = c >= 'A' && c <= 'Z' ? (char)(c + 'a' - 'A') : c;
		h = hash_step(h, (unsigned char)buf[i - 1]);
		if (i == 1 || name[i - 2] == '.') {
			if (nl == LABELS_MAX)
				return -1;
			start[nl] = i - 1;
			hash[nl++] = h;
		}
	}
	buf[n] = '\0';
	*len = n;
	return nl;
}

const struct service *
dns_names_lookup(const struct dns_names *d, const char *name, int *wildcard)
{
	const struct name_slot *s;
	char buf[DNS_TEXT_MAX + 1];
	size_t start[LABELS_MAX], len;
	uint32_t hash[LABELS_MAX];
	int nl, i;

	if (wildcard != NULL)
		*wildcard = 0;
	if ((nl = name_suffixes(name, buf, &len, start, hash)) <= 0)
		return NULL;
	/* The last entry is the whole name; the ones before, shorter. */
	if ((s = table_find(&d->exact, buf, len, hash[nl - 1])) != NULL)
		return s->svc;
	for (i = nl - 2; i >= 0; i--) {
		s = table_find(&d->wild, buf + start[i], len - start[i],
		    hash[i]);
		if (s != NULL) {
			if (wildcard != NULL)
				*wildcard = 1;
			return s->svc;
		}
	}
	return NULL;
}
