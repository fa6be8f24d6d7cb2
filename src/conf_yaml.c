/* SPDX-License-Identifier: MIT */
/* The YAML layer of the configuration: libyaml, positions, errors, values. */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#include "sluice.h"
#include "conf_yaml.h"

#define CONF_MAX_BYTES	(16 * 1024 * 1024)
/* Aliases can make a small file expand to a huge tree; this caps it. */
#define CONF_MAX_NODES	(1 << 20)
/* libyaml slows down with the square of nesting and of anchors. */
#define CONF_MAX_DEPTH	64
#define CONF_MAX_ANCHORS	1024

/* ---- error collection ---- */

/*
 * Errors are collected and sorted by position so that checks run after
 * the walk (tunnel without identity, duplicate names) still come out in
 * file order.
 */
static void
err_add(struct cparse *p, size_t line, size_t col, const char *msg)
{
	struct conf_err *e;
	size_t cap;

	p->nerrors++;
	if (p->nerrs == p->errs_cap) {
		cap = p->errs_cap ? p->errs_cap * 2 : 16;
		e = reallocarray(p->errs, cap, sizeof(*e));
		if (e == NULL) {
			p->nomem = 1;
			return;
		}
		p->errs = e;
		p->errs_cap = cap;
	}
	e = &p->errs[p->nerrs];
	if ((e->msg = strdup(msg)) == NULL) {
		p->nomem = 1;
		return;
	}
	e->line = line;
	e->col = col;
	e->seq = p->nerrs++;
}

static void
verr_at(struct cparse *p, size_t line, size_t col, const char *fmt,
    va_list ap)
{
	char msg[1024];

	if (p->overflow)
		return;		/* what follows the cut-off is noise */
	vsnprintf(msg, sizeof(msg), fmt, ap);
	err_add(p, line, col, msg);
}

void
conf_err_at(struct cparse *p, size_t line, size_t col, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	verr_at(p, line, col, fmt, ap);
	va_end(ap);
}

/* libyaml counts lines and columns from 0; editors count from 1. */
void
conf_err(struct cparse *p, const yaml_node_t *n, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	verr_at(p, n->start_mark.line + 1, n->start_mark.column + 1, fmt, ap);
	va_end(ap);
}

static int
err_cmp(const void *a, const void *b)
{
	const struct conf_err *x = a, *y = b;

	if (x->line != y->line)
		return x->line < y->line ? -1 : 1;
	if (x->col != y->col)
		return x->col < y->col ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

void
conf_err_flush(struct cparse *p)
{
	struct conf_err *e;
	size_t i;

	if (p->nerrs > 1)
		qsort(p->errs, p->nerrs, sizeof(*p->errs), err_cmp);
	for (i = 0; i < p->nerrs; i++) {
		e = &p->errs[i];
		if (p->errfp != NULL && e->line == 0)
			fprintf(p->errfp, "%s: %s\n", p->name, e->msg);
		else if (p->errfp != NULL)
			fprintf(p->errfp, "%s:%zu:%zu: %s\n", p->name,
			    e->line, e->col, e->msg);
		free(e->msg);
	}
	if (p->nomem && p->errfp != NULL)
		fprintf(p->errfp, "%s: out of memory\n", p->name);
	free(p->errs);
	p->errs = NULL;
	p->nerrs = p->errs_cap = 0;
}

/* Out of memory fails the load like any error, reported once at the end. */
void
conf_nomem(struct cparse *p)
{
	p->nomem = 1;
	p->nerrors++;
}

void *
conf_calloc(struct cparse *p, size_t n, size_t size)
{
	void *v;

	if ((v = calloc(n ? n : 1, size)) == NULL)
		conf_nomem(p);
	return v;
}

char *
conf_strdup(struct cparse *p, const char *s)
{
	char *d;

	if ((d = strdup(s)) == NULL)
		conf_nomem(p);
	return d;
}

/* ---- nodes ---- */

/* Quotes a user's value back: control bytes escaped, long values cut. */
const char *
conf_show(const yaml_node_t *n, char *buf)
{
	const unsigned char *s = n->data.scalar.value;
	size_t len = n->data.scalar.length, i, o = 0;

	if (len > SHOW_MAX) {
		len = SHOW_MAX;
		while (len > 0 && (s[len] & 0xc0) == 0x80)
			len--;	/* do not split a UTF-8 sequence */
	}
	for (i = 0; i < len; i++) {
		if (s[i] < 0x20 || s[i] == 0x7f)
			o += (size_t)snprintf(buf + o, SHOW_BUFSZ - o,
			    "\\x%02x", s[i]);
		else
			buf[o++] = (char)s[i];
	}
	if (len < n->data.scalar.length) {
		memcpy(buf + o, "...", 3);
		o += 3;
	}
	buf[o] = '\0';
	return buf;
}

/* "a list", "'foo'": what the user wrote instead of what was expected. */
const char *
conf_describe(const yaml_node_t *n, char *buf)
{
	char shown[SHOW_BUFSZ];

	switch (n->type) {
	case YAML_MAPPING_NODE:
		return "a mapping";
	case YAML_SEQUENCE_NODE:
		return "a list";
	case YAML_SCALAR_NODE:
		if (n->data.scalar.length == 0)
			return "nothing";
		snprintf(buf, SHOW_BUFSZ + 2, "'%s'", conf_show(n, shown));
		return buf;
	default:
		return "an empty node";
	}
}

void
conf_bad_value(struct cparse *p, const yaml_node_t *n, const char *expect,
    const char *why)
{
	char buf[SHOW_BUFSZ + 2];

	if (why != NULL)
		conf_err(p, n, "%s: expected %s, got %s (%s)", p->path, expect,
		    conf_describe(n, buf), why);
	else
		conf_err(p, n, "%s: expected %s, got %s", p->path, expect,
		    conf_describe(n, buf));
}

/* A plain empty value, "~" or "null": an absent section or list. */
int
conf_is_null(const yaml_node_t *n)
{
	const char *v = (const char *)n->data.scalar.value;

	if (n->type != YAML_SCALAR_NODE ||
	    n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return 0;
	return n->data.scalar.length == 0 || strcmp(v, "~") == 0 ||
	    strcmp(v, "null") == 0 || strcmp(v, "Null") == 0 ||
	    strcmp(v, "NULL") == 0;
}

/* The text, or NULL after saying what was expected instead. */
const char *
conf_scalar(struct cparse *p, const yaml_node_t *n, const char *expect)
{
	const char *v;

	if (n->type != YAML_SCALAR_NODE) {
		conf_bad_value(p, n, expect, NULL);
		return NULL;
	}
	v = (const char *)n->data.scalar.value;
	if (strlen(v) != n->data.scalar.length) {
		conf_bad_value(p, n, expect, "contains a NUL byte");
		return NULL;
	}
	return v;
}

/* Counts a node against CONF_MAX_NODES; 0 once the walk must stop. */
static int
visit(struct cparse *p, const yaml_node_t *n)
{
	if (p->overflow)
		return 0;
	if (++p->visits <= CONF_MAX_NODES)
		return 1;
	conf_err(p, n, "too many nodes (more than %d after expanding aliases)",
	    CONF_MAX_NODES);
	p->overflow = 1;
	return 0;
}

yaml_node_t *
conf_node(struct cparse *p, int index)
{
	return yaml_document_get_node(p->doc, index);
}

/* ---- lists ---- */

int
conf_list_open(struct cparse *p, yaml_node_t *n, struct list *l)
{
	memset(l, 0, sizeof(*l));
	l->node = n;
	if (conf_is_null(n))
		return 0;
	if (n->type != YAML_SEQUENCE_NODE) {
		conf_bad_value(p, n, "a list", NULL);
		return -1;
	}
	l->items = n->data.sequence.items.start;
	l->n = (size_t)(n->data.sequence.items.top - l->items);
	return 0;
}

int
conf_list_nonempty(struct cparse *p, yaml_node_t *n, struct list *l)
{
	if (conf_list_open(p, n, l) == -1)
		return -1;
	if (l->n == 0) {
		conf_err(p, n, "%s: must not be empty", p->path);
		return -1;
	}
	return 0;
}

yaml_node_t *
conf_list_item(struct cparse *p, const struct list *l, size_t i)
{
	yaml_node_t *n;

	if ((n = conf_node(p, l->items[i])) == NULL || !visit(p, n))
		return NULL;
	return n;
}

/* ---- mappings ---- */

/* Points at "intercept:" rather than at the first line inside it. */
yaml_node_t *
conf_here(const struct cparse *p, yaml_node_t *n)
{
	return p->key != NULL ? p->key : n;
}

static void
set_path(struct cparse *p, const char *parent, const char *key)
{
	if (parent[0] == '\0')
		snprintf(p->path, sizeof(p->path), "%s", key);
	else
		snprintf(p->path, sizeof(p->path), "%s.%s", parent, key);
}

static const char *
where(const char *section, char *buf, size_t len)
{
	if (section[0] != '\0')
		snprintf(buf, len, " in %s", section);
	else
		snprintf(buf, len, " at top level");
	return buf;
}

/* The table index of key node k, or -1 after reporting it. */
static int
key_lookup(struct cparse *p, const yaml_node_t *k, const char *section,
    const struct key *keys)
{
	char shown[SHOW_BUFSZ], in[sizeof(p->path) + 8];
	int i;

	if (k->type != YAML_SCALAR_NODE) {
		conf_err(p, k, "expected a key name%s, got %s",
		    where(section, in, sizeof(in)),
		    k->type == YAML_MAPPING_NODE ? "a mapping" : "a list");
		return -1;
	}
	for (i = 0; keys[i].name != NULL; i++)
		if (strlen(keys[i].name) == k->data.scalar.length &&
		    memcmp(keys[i].name, k->data.scalar.value,
		    k->data.scalar.length) == 0)
			return i;
	conf_err(p, k, "unknown key '%s'%s", conf_show(k, shown),
	    where(section, in, sizeof(in)));
	return -1;
}

static void
check_required(struct cparse *p, const yaml_node_t *map,
    const char *section, const struct key *keys, unsigned seen)
{
	int i;

	for (i = 0; keys[i].name != NULL; i++) {
		if (!(keys[i].flags & K_REQUIRED) || (seen & (1u << i)))
			continue;
		set_path(p, section, keys[i].name);
		conf_err(p, map, "missing %s", p->path);
	}
}

/*
 * Hands each key's value to its handler, with p->path naming it, then
 * reports the required keys that were missing. Returns the keys seen, one
 * bit per table index, or -1 (reported) if map is not a mapping; null is
 * an empty mapping.
 */
int
conf_walk(struct cparse *p, yaml_node_t *map, const struct key *keys,
    void *obj)
{
	char section[sizeof(p->path)], in[sizeof(p->path) + 8];
	yaml_node_pair_t *pair = NULL, *top = NULL;
	yaml_node_t *k, *v, *at = conf_here(p, map), *outer = p->key;
	unsigned seen = 0;
	int i;

	if (map->type == YAML_MAPPING_NODE) {
		pair = map->data.mapping.pairs.start;
		top = map->data.mapping.pairs.top;
	} else if (!conf_is_null(map)) {
		conf_bad_value(p, map, "a mapping", NULL);
		return -1;
	}
	memcpy(section, p->path, sizeof(section));
	for (; pair < top; pair++) {
		if ((k = conf_node(p, pair->key)) == NULL ||
		    (v = conf_node(p, pair->value)) == NULL || !visit(p, k))
			break;
		if ((i = key_lookup(p, k, section, keys)) == -1)
			continue;
		if (seen & (1u << i)) {
			conf_err(p, k, "duplicate key '%s'%s", keys[i].name,
			    where(section, in, sizeof(in)));
			continue;
		}
		seen |= 1u << i;
		set_path(p, section, keys[i].name);
		p->key = k;
		keys[i].fn(p, v, &keys[i], obj);
		p->key = outer;
		memcpy(p->path, section, sizeof(section));
	}
	if (!p->overflow)
		check_required(p, at, section, keys, seen);
	memcpy(p->path, section, sizeof(section));
	return (int)seen;
}

/* ---- scalar values ---- */

/* Decimal or 0x hex; saturates so that huge values read as out of range. */
static int
parse_number(const char *s, uint64_t *out)
{
	uint64_t v = 0, d;
	int base = 10;

	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		base = 16;
		s += 2;
	}
	if (*s == '\0')
		return -1;
	for (; *s != '\0'; s++) {
		if (*s >= '0' && *s <= '9')
			d = (uint64_t)(*s - '0');
		else if (base == 16 && *s >= 'a' && *s <= 'f')
			d = (uint64_t)(*s - 'a' + 10);
		else if (base == 16 && *s >= 'A' && *s <= 'F')
			d = (uint64_t)(*s - 'A' + 10);
		else
			return -1;
		v = v > (UINT64_MAX - d) / (uint64_t)base ? UINT64_MAX :
		    v * (uint64_t)base + d;
	}
	*out = v;
	return 0;
}

int
conf_uint(struct cparse *p, const yaml_node_t *n, uint64_t min,
    uint64_t max, int hex, uint64_t *out)
{
	char shown[SHOW_BUFSZ];
	const char *s;
	uint64_t v;
	int neg;

	if ((s = conf_scalar(p, n, "an integer")) == NULL)
		return -1;
	neg = s[0] == '-';
	if (parse_number(s + neg, &v) == -1) {
		conf_bad_value(p, n, "an integer", NULL);
		return -1;
	}
	if (neg || v < min || v > max) {
		conf_err(p, n, hex ? "%s: %s out of range 0x%llx..0x%llx" :
		    "%s: %s out of range %llu..%llu", p->path,
		    conf_show(n, shown),
		    (unsigned long long)min, (unsigned long long)max);
		return -1;
	}
	*out = v;
	return 0;
}

int
conf_enum(struct cparse *p, const yaml_node_t *n,
    const char *const *names)
{
	char expect[256];
	const char *s;
	size_t o = 0;
	int i;

	for (i = 0; names[i] != NULL; i++)
		o += (size_t)snprintf(expect + o, sizeof(expect) - o, "%s%s",
		    i == 0 ? "" : names[i + 1] == NULL ? " or " : ", ",
		    names[i]);
	if ((s = conf_scalar(p, n, expect)) == NULL)
		return -1;
	for (i = 0; names[i] != NULL; i++)
		if (strcmp(s, names[i]) == 0)
			return i;
	conf_bad_value(p, n, expect, NULL);
	return -1;
}

void
conf_h_uint(struct cparse *p, yaml_node_t *n, const struct key *k, void *obj)
{
	uint64_t v;

	if (conf_uint(p, n, k->min, k->max, 0, &v) == 0)
		*FIELD(obj, k, unsigned) = (unsigned)v;
}

void
conf_h_bool(struct cparse *p, yaml_node_t *n, const struct key *k, void *obj)
{
	static const char *const names[] = { "true", "false", "yes", "no",
	    NULL };
	const char *s;
	int i;

	if ((s = conf_scalar(p, n, "true or false")) == NULL)
		return;
	for (i = 0; names[i] != NULL; i++)
		if (strcasecmp(s, names[i]) == 0) {
			*FIELD(obj, k, int) = i % 2 == 0;
			return;
		}
	conf_bad_value(p, n, "true, false, yes or no", NULL);
}

void
conf_h_path(struct cparse *p, yaml_node_t *n, const struct key *k, void *obj)
{
	char **dst = FIELD(obj, k, char *);
	const char *s;

	if ((s = conf_scalar(p, n, "a file name")) == NULL)
		return;
	if (*s == '\0') {
		conf_err(p, n, "%s: must not be empty", p->path);
		return;
	}
	free(*dst);
	*dst = conf_strdup(p, s);
}

int
conf_endpoint(struct cparse *p, const yaml_node_t *n, int allow_zero,
    const char *expect, struct endpoint *ep)
{
	const char *s, *why;

	if ((s = conf_scalar(p, n, expect)) == NULL)
		return -1;
	if (addr_parse_endpoint(s, &ep->ss, &ep->len, allow_zero, &why) ==
	    -1) {
		conf_bad_value(p, n, expect, why);
		return -1;
	}
	return 0;
}

void
conf_h_endpoint(struct cparse *p, yaml_node_t *n, const struct key *k,
    void *obj)
{
	conf_endpoint(p, n, k->flags & K_PORT0, "ADDR:PORT",
	    FIELD(obj, k, struct endpoint));
}

int
conf_cidr(struct cparse *p, const yaml_node_t *n, const char *expect,
    struct cidr *c)
{
	const char *s, *why;

	if ((s = conf_scalar(p, n, expect)) == NULL)
		return -1;
	if (addr_parse_cidr(s, c, &why) == -1) {
		conf_bad_value(p, n, expect, why);
		return -1;
	}
	return 0;
}

void
conf_list_parse(struct cparse *p, yaml_node_t *n, int nonempty, void **arr,
    size_t *count, size_t elsize, conf_item_fn item)
{
	struct list l;
	yaml_node_t *it;
	char *slots;
	size_t i;

	if (nonempty ? conf_list_nonempty(p, n, &l) == -1 :
	    conf_list_open(p, n, &l) == -1 || l.n == 0)
		return;
	if ((slots = conf_calloc(p, l.n, elsize)) == NULL)
		return;
	*arr = slots;
	for (i = 0; i < l.n && (it = conf_list_item(p, &l, i)) != NULL; i++)
		if (item(p, it, slots + *count * elsize) == 0)
			(*count)++;
}

static int
cidr_item(struct cparse *p, yaml_node_t *n, void *slot)
{
	return conf_cidr(p, n, "a CIDR or IP address", slot);
}

void
conf_cidr_list(struct cparse *p, yaml_node_t *n, struct cidr **out,
    size_t *nout)
{
	conf_list_parse(p, n, 0, (void **)out, nout, sizeof(**out),
	    cidr_item);
}

/* ---- libyaml ---- */

/* Reader errors carry a byte offset rather than a mark. */
static void
offset_pos(const struct cparse *p, size_t off, size_t *line, size_t *col)
{
	size_t i;

	*line = *col = 1;
	for (i = 0; i < off && i < p->len; i++) {
		if (p->text[i] == '\n') {
			(*line)++;
			*col = 1;
		} else if (((unsigned char)p->text[i] & 0xc0) != 0x80)
			(*col)++;
	}
}

/* The byte a mark points at, or -1 past the end. */
static int
mark_byte(const struct cparse *p, const yaml_mark_t *m)
{
	size_t i = 0, line = 0, col = 0;

	for (; i < p->len && line < m->line; i++)
		if (p->text[i] == '\n')
			line++;
	for (; i < p->len && col < m->column; i++)
		if (i + 1 == p->len ||
		    ((unsigned char)p->text[i + 1] & 0xc0) != 0x80)
			col++;
	return i < p->len ? (unsigned char)p->text[i] : -1;
}

static void
yaml_problem(struct cparse *p, const yaml_parser_t *yp)
{
	const char *problem = yp->problem ? yp->problem : "syntax error";
	size_t line, col;

	/* The most common mistake, and libyaml's words do not say it. */
	if (yp->error == YAML_SCANNER_ERROR &&
	    mark_byte(p, &yp->problem_mark) == '\t') {
		conf_err_at(p, yp->problem_mark.line + 1,
		    yp->problem_mark.column + 1, "tab character: YAML is "
		    "indented with spaces");
		return;
	}

	switch (yp->error) {
	case YAML_MEMORY_ERROR:
		conf_nomem(p);
		break;
	case YAML_READER_ERROR:
		offset_pos(p, yp->problem_offset, &line, &col);
		if (yp->problem_value != -1)
			conf_err_at(p, line, col, "%s (0x%x)", problem,
			    (unsigned)yp->problem_value);
		else
			conf_err_at(p, line, col, "%s", problem);
		break;
	default:
		if (yp->context != NULL)
			conf_err_at(p, yp->problem_mark.line + 1,
			    yp->problem_mark.column + 1,
			    "%s (%s at line %zu, column %zu)", problem,
			    yp->context, yp->context_mark.line + 1,
			    yp->context_mark.column + 1);
		else
			conf_err_at(p, yp->problem_mark.line + 1,
			    yp->problem_mark.column + 1, "%s", problem);
		break;
	}
}

static int
event_anchored(const yaml_event_t *ev)
{
	switch (ev->type) {
	case YAML_SCALAR_EVENT:
		return ev->data.scalar.anchor != NULL;
	case YAML_SEQUENCE_START_EVENT:
		return ev->data.sequence_start.anchor != NULL;
	case YAML_MAPPING_START_EVENT:
		return ev->data.mapping_start.anchor != NULL;
	default:
		return 0;
	}
}

/* Returns 1 to go on, 0 at the end, -1 (reported) over a limit. */
static int
event_check(struct cparse *p, const yaml_event_t *ev, int *depth,
    int *anchors)
{
	const yaml_mark_t *m = &ev->start_mark;

	if (event_anchored(ev) && ++*anchors > CONF_MAX_ANCHORS) {
		conf_err_at(p, m->line + 1, m->column + 1,
		    "more than %d anchors", CONF_MAX_ANCHORS);
		return -1;
	}
	switch (ev->type) {
	case YAML_SEQUENCE_START_EVENT:
	case YAML_MAPPING_START_EVENT:
		if (++*depth <= CONF_MAX_DEPTH)
			return 1;
		conf_err_at(p, m->line + 1, m->column + 1,
		    "nested deeper than %d levels", CONF_MAX_DEPTH);
		return -1;
	case YAML_SEQUENCE_END_EVENT:
	case YAML_MAPPING_END_EVENT:
		--*depth;
		return 1;
	case YAML_STREAM_END_EVENT:
		return 0;
	default:
		return 1;
	}
}

/*
 * A first pass over the events stops hostile nesting and anchors before
 * the loader spends quadratic time on them, and finds syntax errors.
 */
static int
check_events(struct cparse *p)
{
	yaml_parser_t yp;
	yaml_event_t ev;
	int depth = 0, anchors = 0, rc = 1;

	if (!yaml_parser_initialize(&yp)) {
		conf_nomem(p);
		return -1;
	}
	yaml_parser_set_input_string(&yp, (const unsigned char *)p->text,
	    p->len);
	while (rc == 1) {
		if (!yaml_parser_parse(&yp, &ev)) {
			yaml_problem(p, &yp);
			rc = -1;
			break;
		}
		rc = event_check(p, &ev, &depth, &anchors);
		yaml_event_delete(&ev);
	}
	yaml_parser_delete(&yp);
	return rc;
}

/* A second document would be silently ignored: say so instead. */
static void
check_single_document(struct cparse *p, yaml_parser_t *yp)
{
	yaml_document_t doc;
	yaml_node_t *root;

	if (!yaml_parser_load(yp, &doc)) {
		yaml_problem(p, yp);
		return;
	}
	if ((root = yaml_document_get_root_node(&doc)) != NULL)
		conf_err(p, root, "only one YAML document is allowed");
	yaml_document_delete(&doc);
}

void
conf_yaml_parse(struct cparse *p)
{
	yaml_parser_t yp;
	yaml_document_t doc;
	yaml_node_t *root;

	if (check_events(p) == -1)
		return;
	if (!yaml_parser_initialize(&yp)) {
		conf_nomem(p);
		return;
	}
	yaml_parser_set_input_string(&yp, (const unsigned char *)p->text,
	    p->len);
	if (!yaml_parser_load(&yp, &doc)) {
		yaml_problem(p, &yp);
	} else {
		p->doc = &doc;
		if ((root = yaml_document_get_root_node(&doc)) != NULL)
			p->root(p, root);
		p->doc = NULL;
		yaml_document_delete(&doc);
		check_single_document(p, &yp);
	}
	yaml_parser_delete(&yp);
}

/* Whole, so that libyaml works on a string that errors can index. */
char *
conf_read_file(const char *path, size_t *lenp, const char **why)
{
	char *buf = NULL, *nbuf;
	size_t len = 0, cap = 0, n;
	FILE *fp;

	*why = NULL;
	if ((fp = fopen(path, "r")) == NULL)
		return NULL;
	for (;;) {
		if (len == cap) {
			if (cap > CONF_MAX_BYTES) {
				*why = "larger than 16 MiB";
				goto fail;
			}
			/* One byte past the limit tells "at" from "over". */
			cap = cap ? cap * 2 : 8192;
			if (cap > CONF_MAX_BYTES + 1)
				cap = CONF_MAX_BYTES + 1;
			if ((nbuf = realloc(buf, cap)) == NULL)
				goto fail;
			buf = nbuf;
		}
		n = fread(buf + len, 1, cap - len, fp);
		len += n;
		if (n == 0)
			break;
	}
	if (ferror(fp))
		goto fail;
	fclose(fp);
	*lenp = len;
	return buf;
fail:
	n = (size_t)errno;
	fclose(fp);
	free(buf);
	errno = (int)n;
	return NULL;
}
