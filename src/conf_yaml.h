/* SPDX-License-Identifier: MIT */
/* The YAML layer under conf.c: positions, collected errors, typed values. */
#ifndef SLUICE_CONF_YAML_H
#define SLUICE_CONF_YAML_H

#include <stdint.h>
#include <stdio.h>
#include <yaml.h>

#include "sluice.h"

#define SHOW_MAX	64	/* bytes of a bad value quoted back */
#define SHOW_BUFSZ	(SHOW_MAX * 4 + 8)

#define K_REQUIRED	0x1
#define K_PORT0		0x2	/* endpoint may have port 0 */

struct cparse;

/* One key of a mapping: its handler stores the value at obj + off. */
struct key {
	const char	*name;
	void		(*fn)(struct cparse *, yaml_node_t *,
			    const struct key *, void *);
	size_t		 off;
	uint64_t	 min, max;
	int		 flags;
};

#define FIELD(obj, k, type)	((type *)(void *)((char *)(obj) + (k)->off))

struct conf_err {
	size_t		 line, col, seq;
	char		*msg;
};

/*
 * Where each service's parts were, for checks that need the whole file.
 * Sections are found by their key, which is where a reader looks.
 */
struct svc_nodes {
	yaml_node_t	*map, *name, *intercept, *forward, *tunnel, *host;
	yaml_node_t	*allowed;
};

/* One load: the input, the config being filled, and the errors so far. */
struct cparse {
	const char	*name;
	const char	*text;
	size_t		 len;
	FILE		*errfp;
	void		(*root)(struct cparse *, yaml_node_t *);
	yaml_document_t	*doc;
	struct config	*conf;
	struct service	*svc;		/* being parsed */
	struct svc_nodes *nodes;	/* by service id - 1 */
	size_t		 nodes_cap;
	yaml_node_t	*mark, *bypass_mark;
	yaml_node_t	*key;		/* of the value being handled */
	/* "dns.ttl", "services[web].intercept.ports": the value at hand */
	char		 path[128];
	size_t		 visits;
	int		 overflow;
	int		 nomem;
	size_t		 nerrors;
	struct conf_err	*errs;
	size_t		 nerrs, errs_cap;
};

struct list {
	yaml_node_t		*node;
	yaml_node_item_t	*items;
	size_t			 n;
};

/* Parses p->text and calls p->root on the document's root, if any. */
void	conf_yaml_parse(struct cparse *);
/* The whole file, malloc'd; NULL with errno, or with *why if too big. */
char	*conf_read_file(const char *path, size_t *len, const char **why);

/* Errors are kept, sorted by position and printed by conf_err_flush. */
void	conf_err_at(struct cparse *, size_t line, size_t col,
	    const char *, ...) __attribute__((format(printf, 4, 5)));
void	conf_err(struct cparse *, const yaml_node_t *, const char *, ...)
	    __attribute__((format(printf, 3, 4)));
void	conf_err_flush(struct cparse *);
void	conf_nomem(struct cparse *);
void	*conf_calloc(struct cparse *, size_t, size_t);
char	*conf_strdup(struct cparse *, const char *);
/* "PATH: expected EXPECT, got WHAT (WHY)" */
void	conf_bad_value(struct cparse *, const yaml_node_t *,
	    const char *expect, const char *why);

yaml_node_t	*conf_node(struct cparse *, int index);
/* The key of the value at hand, else n: where section errors point. */
yaml_node_t	*conf_here(const struct cparse *, yaml_node_t *n);
const char	*conf_show(const yaml_node_t *, char *buf);	/* SHOW_BUFSZ */
const char	*conf_describe(const yaml_node_t *, char *buf);	/* + 2 */
int		 conf_is_null(const yaml_node_t *);
const char	*conf_scalar(struct cparse *, const yaml_node_t *,
		    const char *expect);

/* Null is an empty list; -1 (reported) for anything else not a list. */
int		 conf_list_open(struct cparse *, yaml_node_t *, struct list *);
int		 conf_list_nonempty(struct cparse *, yaml_node_t *,
		    struct list *);
/* Item i, or NULL when the walk must stop. */
yaml_node_t	*conf_list_item(struct cparse *, const struct list *, size_t);
/*
 * Parses a list into a new array of elsize-byte slots: item() fills the
 * next slot from one node and returns 0, or reports and returns -1. An
 * empty list is an error if nonempty, else leaves *arr NULL.
 */
typedef int	(*conf_item_fn)(struct cparse *, yaml_node_t *, void *slot);
void		 conf_list_parse(struct cparse *, yaml_node_t *, int nonempty,
		    void **arr, size_t *count, size_t elsize, conf_item_fn);

/*
 * Hands each key's value to its handler, with p->path naming it, and
 * reports unknown, repeated and missing required keys. Returns the keys
 * seen as a bit per table index, or -1 (reported) if not a mapping.
 */
int	conf_walk(struct cparse *, yaml_node_t *, const struct key *,
	    void *obj);

int	conf_uint(struct cparse *, const yaml_node_t *, uint64_t min,
	    uint64_t max, int hex, uint64_t *);
/* Index of the value in the NULL-terminated names, or -1 (reported). */
int	conf_enum(struct cparse *, const yaml_node_t *, const char *const *);
int	conf_endpoint(struct cparse *, const yaml_node_t *, int allow_zero,
	    const char *expect, struct endpoint *);
int	conf_cidr(struct cparse *, const yaml_node_t *, const char *expect,
	    struct cidr *);
/* A list of CIDRs; *out holds only the good ones. */
void	conf_cidr_list(struct cparse *, yaml_node_t *, struct cidr **out,
	    size_t *nout);

/* Handlers for key tables: unsigned in min..max, int, char *, endpoint. */
void	conf_h_uint(struct cparse *, yaml_node_t *, const struct key *,
	    void *);
void	conf_h_bool(struct cparse *, yaml_node_t *, const struct key *,
	    void *);
void	conf_h_path(struct cparse *, yaml_node_t *, const struct key *,
	    void *);
void	conf_h_endpoint(struct cparse *, yaml_node_t *, const struct key *,
	    void *);

#endif /* SLUICE_CONF_YAML_H */
