/* SPDX-License-Identifier: MIT */
/* Unit tests for pki_init/pki_issue and the tunnel's TLS contexts. */
#include "config.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "sluice.h"
#include "tunnel.h"
#include "tap.h"

static char top[64];		/* the mkdtemp directory */
static char ca1[128], ca2[128];	/* two CAs' directories */

/* ---- helpers ---- */

/*
 * pki_* print what they wrote to stdout, which is TAP's; errors come back
 * in *err (caller frees).
 */
static int
run_pki(const char *dir, const char *name, unsigned days, char **err)
{
	size_t len = 0;
	FILE *errfp;
	int rc, out;

	*err = NULL;
	if ((errfp = open_memstream(err, &len)) == NULL)
		return -1;
	fflush(stdout);
	out = dup(STDOUT_FILENO);
	freopen("/dev/null", "w", stdout);
	rc = name == NULL ? pki_init(dir, days, errfp) :
	    pki_issue(dir, name, days, errfp);
	fflush(stdout);
	dup2(out, STDOUT_FILENO);
	close(out);
	fclose(errfp);
	if (len > 0 && (*err)[len - 1] == '\n')
		(*err)[len - 1] = '\0';
	return rc;
}

static int
pki(const char *dir, const char *name, unsigned days)
{
	char *err;
	int rc = run_pki(dir, name, days, &err);

	if (rc != 0)
		printf("# %s\n", err);
	free(err);
	return rc;
}

static const char *
path(const char *dir, const char *file)
{
	static char buf[4][256];
	static int i;

	i = (i + 1) % 4;
	snprintf(buf[i], sizeof(buf[i]), "%s/%s", dir, file);
	return buf[i];
}

static int
mode_of(const char *p)
{
	struct stat st;

	return stat(p, &st) == -1 ? -1 : (int)(st.st_mode & 07777);
}

/* The whole file (caller frees), to show that a refusal changed nothing. */
static char *
slurp(const char *p)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *in, *out;
	int c;

	if ((in = fopen(p, "r")) == NULL)
		return strdup("(missing)");
	out = open_memstream(&buf, &len);
	while ((c = getc(in)) != EOF)
		putc(c, out);
	fclose(in);
	fclose(out);
	return buf;
}

static X509 *
load_cert(const char *p)
{
	X509 *x = NULL;
	FILE *fp;

	if ((fp = fopen(p, "r")) != NULL) {
		x = PEM_read_X509(fp, NULL, NULL, NULL);
		fclose(fp);
	}
	return x;
}

/* A config with only an identity, as `host` or a tunneller would load. */
static struct config *
conf_with(const char *cert, const char *key, const char *ca)
{
	char text[1024];
	struct config *c;
	char *err = NULL;
	size_t len = 0;
	FILE *errfp;

	snprintf(text, sizeof(text), "identity:\n  cert: %s\n  key: %s\n"
	    "  ca: %s\n", cert, key, ca);
	errfp = open_memstream(&err, &len);
	c = conf_load_string("t.yaml", text, strlen(text), errfp);
	fclose(errfp);
	if (c == NULL)
		printf("# %s", err);
	free(err);
	return c;
}

/* A context for identity NAME of CA directory dir, trusting CA trust. */
static SSL_CTX *
ctx_for(const char *dir, const char *name, const char *trust, int server)
{
	char crt[128], key[128], err[512];
	struct config *c;
	SSL_CTX *ctx;

	snprintf(crt, sizeof(crt), "%s/%s.crt", dir, name);
	snprintf(key, sizeof(key), "%s/%s.key", dir, name);
	if ((c = conf_with(crt, key, path(trust, "ca.crt"))) == NULL)
		return NULL;
	if ((ctx = mtls_ctx_new(c, server, err, sizeof(err))) == NULL)
		printf("# mtls_ctx_new: %s\n", err);
	conf_free(c);
	return ctx;
}

/* ---- a handshake over a socket pair ---- */

struct hs {
	SSL	*c, *s;
	int	 cok, sok;		/* 1 done, -1 failed, 0 going */
	char	 cerr[256], serr[256];
};

static void
hs_step(SSL *ssl, int server, int *state, char *err, size_t errlen)
{
	int r, e;

	if (*state != 0)
		return;
	r = server ? SSL_accept(ssl) : SSL_connect(ssl);
	if (r == 1) {
		*state = 1;
		return;
	}
	e = SSL_get_error(ssl, r);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
		return;
	*state = -1;
	mtls_error(e, err, errlen);
}

/*
 * Both sides step until each has finished or failed. In TLS 1.3 the
 * client finishes first, so a server that refuses the client's
 * certificate is seen by the client only on its next read: read once.
 */
static int
hs_run(struct hs *h, SSL_CTX *cctx, SSL_CTX *sctx, SSL_SESSION *resume)
{
	int fds[2], i;
	char b;

	memset(h, 0, sizeof(*h));
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, fds) == -1)
		return -1;
	fcntl(fds[0], F_SETFL, O_NONBLOCK);
	fcntl(fds[1], F_SETFL, O_NONBLOCK);
	h->c = SSL_new(cctx);
	h->s = SSL_new(sctx);
	SSL_set_fd(h->c, fds[0]);
	SSL_set_fd(h->s, fds[1]);
	if (resume != NULL)
		SSL_set_session(h->c, resume);
	for (i = 0; i < 100 && (h->cok == 0 || h->sok == 0); i++) {
		hs_step(h->c, 0, &h->cok, h->cerr, sizeof(h->cerr));
		hs_step(h->s, 1, &h->sok, h->serr, sizeof(h->serr));
	}
	if (h->cok == 1 && h->sok == -1 && SSL_read(h->c, &b, 1) <= 0) {
		h->cok = -1;
		mtls_error(SSL_ERROR_SSL, h->cerr, sizeof(h->cerr));
	}
	return 0;
}

static void
hs_free(struct hs *h)
{
	int i;

	for (i = 0; i < 2; i++) {
		SSL *ssl = i ? h->s : h->c;

		if (ssl == NULL)
			continue;
		close(SSL_get_fd(ssl));
		SSL_free(ssl);
	}
	h->c = h->s = NULL;
}

/* SSL_read that waits a little for data a nonblocking peer has sent. */
static int
hs_read(SSL *ssl, char *buf, int len, int *err)
{
	int i, r = -1;

	for (i = 0; i < 100; i++) {
		if ((r = SSL_read(ssl, buf, len)) > 0)
			return r;
		*err = SSL_get_error(ssl, r);
		if (*err != SSL_ERROR_WANT_READ)
			return r;
		usleep(1000);
	}
	return r;
}

static int
ping(struct hs *h)
{
	char buf[16];
	int e;

	if (SSL_write(h->c, "ping", 4) != 4 ||
	    hs_read(h->s, buf, sizeof(buf), &e) != 4 ||
	    memcmp(buf, "ping", 4) != 0 ||
	    SSL_write(h->s, "pong", 4) != 4 ||
	    hs_read(h->c, buf, sizeof(buf), &e) != 4 ||
	    memcmp(buf, "pong", 4) != 0)
		return -1;
	return 0;
}

/* ---- tests ---- */

static void
test_pki(void)
{
	char *before_crt, *before_key, *err;
	char name65[66];

	is_int(pki(ca1, NULL, PKI_CA_DAYS), 0, "pki_init makes a CA");
	is_int(mode_of(ca1), 0700, "and creates its directory 0700");
	is_int(mode_of(path(ca1, "ca.key")), 0600, "ca.key is 0600");
	ok(mode_of(path(ca1, "ca.crt")) != -1, "ca.crt is there");
	is_int(pki(ca1, "gw-1", PKI_IDENTITY_DAYS), 0, "pki_issue gw-1");
	is_int(pki(ca1, "host-1", PKI_IDENTITY_DAYS), 0, "pki_issue host-1");
	is_int(mode_of(path(ca1, "gw-1.key")), 0600, "gw-1.key is 0600");
	ok(mode_of(path(ca1, "gw-1.crt")) != -1, "gw-1.crt is there");

	before_crt = slurp(path(ca1, "ca.crt"));
	before_key = slurp(path(ca1, "ca.key"));
	is_int(run_pki(ca1, NULL, PKI_CA_DAYS, &err), 1,
	    "a second pki_init fails");
	ok(strstr(err, "ca.crt: already exists") != NULL,
	    "and names the file: %s", err);
	free(err);
	{
		char *after_crt = slurp(path(ca1, "ca.crt"));
		char *after_key = slurp(path(ca1, "ca.key"));

		ok(strcmp(before_crt, after_crt) == 0 &&
		    strcmp(before_key, after_key) == 0,
		    "and leaves the CA as it was");
		free(after_crt);
		free(after_key);
	}
	free(before_crt);
	free(before_key);

	is_int(run_pki(ca1, "gw-1", 365, &err), 1,
	    "issuing gw-1 twice fails");
	ok(strstr(err, "gw-1.crt: already exists") != NULL,
	    "and names the file: %s", err);
	free(err);

	memset(name65, 'x', 65);
	name65[65] = '\0';
	is_int(run_pki(ca1, "", 365, &err), 64, "an empty name is refused");
	free(err);
	is_int(run_pki(ca1, ".hidden", 365, &err), 64,
	    "a name starting with '.' is refused");
	free(err);
	is_int(run_pki(ca1, "../x", 365, &err), 64,
	    "a name with '/' is refused");
	free(err);
	is_int(run_pki(ca1, "a b", 365, &err), 64,
	    "a name with a blank is refused");
	ok(strstr(err, "not a valid identity name") != NULL,
	    "and says why: %s", err);
	free(err);
	is_int(run_pki(ca1, name65, 365, &err), 64,
	    "a name of 65 characters is refused");
	free(err);
	is_int(run_pki(ca1, "ca", 365, &err), 64,
	    "the CA's own name is refused");
	free(err);
	name65[64] = '\0';
	is_int(pki(ca1, name65, 365), 0, "a name of 64 characters is fine");
	is_int(run_pki(ca1, "x", 36501, &err), 64,
	    "more than 36500 days is refused");
	free(err);

	is_int(run_pki(top, "gw-1", 365, &err), 1,
	    "issuing without a CA fails");
	ok(strstr(err, "ca.key") != NULL, "and names ca.key: %s", err);
	free(err);
}

static void
test_certs(void)
{
	X509 *ca, *id, *old;
	BIGNUM *serial;
	char cn[80];
	time_t later;

	ca = load_cert(path(ca1, "ca.crt"));
	id = load_cert(path(ca1, "gw-1.crt"));
	ok(ca != NULL && X509_check_ca(ca) > 0, "ca.crt is a CA");
	X509_NAME_get_text_by_NID(X509_get_subject_name(ca), NID_commonName,
	    cn, sizeof(cn));
	is_str(cn, "sluice CA ca1", "the CA is named after its directory");
	ok(id != NULL && X509_check_ca(id) == 0, "gw-1.crt is no CA");
	X509_NAME_get_text_by_NID(X509_get_subject_name(id), NID_commonName,
	    cn, sizeof(cn));
	is_str(cn, "gw-1", "gw-1.crt has CN=gw-1");
	ok(X509_check_purpose(id, X509_PURPOSE_SSL_CLIENT, 0) == 1 &&
	    X509_check_purpose(id, X509_PURPOSE_SSL_SERVER, 0) == 1,
	    "an identity may be a client and a server");
	ok(X509_check_issued(ca, id) == X509_V_OK, "the CA issued gw-1");
	serial = ASN1_INTEGER_to_BN(X509_get0_serialNumber(id), NULL);
	ok(serial != NULL && BN_num_bits(serial) > 64,
	    "the serial is random and long");
	BN_free(serial);
	X509_free(id);

	is_int(pki(ca1, "old", 0), 0, "an identity valid for 0 days");
	old = load_cert(path(ca1, "old.crt"));
	later = time(NULL) + 2;
	ok(old != NULL && X509_cmp_time(X509_get0_notAfter(old), &later) < 0,
	    "has expired a second or two later");
	later = time(NULL) - 1800;
	ok(old != NULL && X509_cmp_time(X509_get0_notBefore(old), &later) < 0,
	    "and was valid from before now (clock skew)");
	X509_free(old);
	X509_free(ca);
}

static void
test_ctx_errors(void)
{
	char err[512], why[256];
	struct config *c;

	c = conf_load_string("t.yaml", "{}", 2, stderr);
	ok(c != NULL && mtls_ctx_new(c, 1, err, sizeof(err)) == NULL,
	    "no identity, no context");
	is_str(err, "no identity: section in t.yaml", "and says so");
	conf_free(c);

	is_int(pki(ca1, "loose", 365), 0, "issue an identity");
	chmod(path(ca1, "loose.key"), 0644);
	c = conf_with(path(ca1, "loose.crt"), path(ca1, "loose.key"),
	    path(ca1, "ca.crt"));
	ok(mtls_ctx_new(c, 0, err, sizeof(err)) == NULL,
	    "a key of mode 0644 is refused");
	snprintf(why, sizeof(why), "%s: readable by group or others (mode "
	    "0644); chmod 600 it", path(ca1, "loose.key"));
	is_str(err, why, "with a message that says what to do");
	conf_free(c);
	ok(mtls_key_file_check(ca1, why, sizeof(why)) == -1 &&
	    strcmp(why, "not a regular file") == 0,
	    "a directory is no key file");

	c = conf_with(path(ca1, "nothere.crt"), path(ca1, "gw-1.key"),
	    path(ca1, "ca.crt"));
	snprintf(why, sizeof(why), "%s: cannot load the certificate: No "
	    "such file or directory", path(ca1, "nothere.crt"));
	ok(mtls_ctx_new(c, 0, err, sizeof(err)) == NULL &&
	    strcmp(err, why) == 0,
	    "a missing certificate is named: %s", err);
	conf_free(c);

	c = conf_with(path(ca1, "gw-1.crt"), path(ca1, "host-1.key"),
	    path(ca1, "ca.crt"));
	snprintf(why, sizeof(why), "%s: does not match %s",
	    path(ca1, "host-1.key"), path(ca1, "gw-1.crt"));
	ok(mtls_ctx_new(c, 1, err, sizeof(err)) == NULL &&
	    strcmp(err, why) == 0,
	    "a key of another identity is refused: %s", err);
	conf_free(c);

	c = conf_with(path(ca1, "gw-1.crt"), path(ca1, "gw-1.key"),
	    path(ca1, "gw-1.key"));
	ok(mtls_ctx_new(c, 1, err, sizeof(err)) == NULL &&
	    strstr(err, "gw-1.key: cannot load the CA") != NULL,
	    "a CA file without certificates is refused: %s", err);
	conf_free(c);
}

static void
test_handshake(SSL_CTX *cctx, SSL_CTX *sctx)
{
	const unsigned char *alpn;
	unsigned int alpnlen;
	SSL_SESSION *sess;
	char name[80];
	struct hs h;

	hs_run(&h, cctx, sctx, NULL);
	ok(h.cok == 1 && h.sok == 1, "the handshake succeeds (%s%s)",
	    h.cerr, h.serr);
	is_str(SSL_get_version(h.c), "TLSv1.3", "with TLS 1.3");
	SSL_get0_alpn_selected(h.s, &alpn, &alpnlen);
	ok(alpnlen == 8 && memcmp(alpn, "sluice/1", 8) == 0,
	    "the server agreed on ALPN sluice/1");
	ok(mtls_alpn_ok(h.c), "and so did the client");
	ok(mtls_peer_name(h.c, name, sizeof(name)) == 0 &&
	    strcmp(name, "host-1") == 0, "the client sees CN host-1");
	ok(mtls_peer_name(h.s, name, sizeof(name)) == 0 &&
	    strcmp(name, "gw-1") == 0, "the server sees CN gw-1");
	ok(mtls_peer_name(h.s, name, 4) == -1, "a CN too long for buf: -1");
	ok(ping(&h) == 0, "data flows both ways");
	/* Freed without close_notify, OpenSSL would spoil the session. */
	sess = SSL_get1_session(h.c);
	SSL_shutdown(h.c);
	hs_free(&h);

	ok(sess != NULL && SSL_SESSION_is_resumable(sess),
	    "the server gave the client a ticket");
	hs_run(&h, cctx, sctx, sess);
	ok(h.cok == 1 && h.sok == 1 && SSL_session_reused(h.c),
	    "a second handshake resumes the session");
	ok(mtls_peer_name(h.s, name, sizeof(name)) == 0 &&
	    strcmp(name, "gw-1") == 0, "and the server still sees gw-1");
	ok(mtls_peer_name(h.c, name, sizeof(name)) == 0 &&
	    strcmp(name, "host-1") == 0, "and the client host-1");
	hs_free(&h);
	SSL_SESSION_free(sess);
}

/*
 * TLS 1.3 closes each direction on its own: the tunnel relay sends
 * close_notify for a client's FIN and keeps reading the server's reply.
 */
static void
test_half_close(SSL_CTX *cctx, SSL_CTX *sctx)
{
	char buf[16];
	struct hs h;
	int r, e = 0;

	hs_run(&h, cctx, sctx, NULL);
	ok(ping(&h) == 0, "half-close: connected");
	is_int(SSL_shutdown(h.c), 0, "the client sends close_notify");
	r = hs_read(h.s, buf, sizeof(buf), &e);
	ok(r <= 0 && e == SSL_ERROR_ZERO_RETURN,
	    "the server reads the end of the stream");
	is_int(SSL_write(h.s, "reply", 5), 5, "the server can still write");
	is_int(hs_read(h.c, buf, sizeof(buf), &e), 5,
	    "the client can still read");
	ok(memcmp(buf, "reply", 5) == 0, "what the server wrote");
	is_int(SSL_shutdown(h.s), 1, "the server closes too");
	r = hs_read(h.c, buf, sizeof(buf), &e);
	ok(r <= 0 && e == SSL_ERROR_ZERO_RETURN,
	    "and the client reads the end of the stream");
	hs_free(&h);
}

static void
test_refusals(SSL_CTX *cctx, SSL_CTX *sctx)
{
	SSL_CTX *evil_c, *evil_s, *old_c, *old_s, *plain;
	struct hs h;
	time_t later = time(NULL) + 60;

	is_int(pki(ca2, NULL, PKI_CA_DAYS), 0, "a second CA");
	is_int(pki(ca2, "evil", 365), 0, "and an identity it issues");

	/* Each side trusts ca1, but presents a certificate from ca2. */
	evil_c = ctx_for(ca2, "evil", ca1, 0);
	evil_s = ctx_for(ca2, "evil", ca1, 1);
	ok(evil_c != NULL && evil_s != NULL, "contexts for it");
	hs_run(&h, evil_c, sctx, NULL);
	ok(h.sok == -1 && h.cok == -1, "the server refuses a client from "
	    "another CA (%s)", h.serr);
	hs_free(&h);
	hs_run(&h, cctx, evil_s, NULL);
	ok(h.cok == -1 && h.sok == -1, "the client refuses a server from "
	    "another CA (%s)", h.cerr);
	ok(strstr(h.cerr, "certificate verify failed") != NULL,
	    "mtls_error says why");
	hs_free(&h);

	/* A minute later, which days=0 is expired by. */
	old_c = ctx_for(ca1, "old", ca1, 0);
	old_s = ctx_for(ca1, "old", ca1, 1);
	X509_VERIFY_PARAM_set_time(SSL_CTX_get0_param(cctx), later);
	X509_VERIFY_PARAM_set_time(SSL_CTX_get0_param(sctx), later);
	hs_run(&h, old_c, sctx, NULL);
	ok(h.sok == -1 && h.cok == -1, "the server refuses an expired "
	    "client (%s)", h.serr);
	ok(strstr(h.serr, "certificate has expired: CN=old") != NULL,
	    "and says which expired");
	hs_free(&h);
	hs_run(&h, cctx, old_s, NULL);
	ok(h.cok == -1 && h.sok == -1, "the client refuses an expired "
	    "server (%s)", h.cerr);
	hs_free(&h);
	X509_VERIFY_PARAM_clear_flags(SSL_CTX_get0_param(cctx),
	    X509_V_FLAG_USE_CHECK_TIME);
	X509_VERIFY_PARAM_clear_flags(SSL_CTX_get0_param(sctx),
	    X509_V_FLAG_USE_CHECK_TIME);

	hs_run(&h, cctx, sctx, NULL);
	ok(h.cok == 1 && h.sok == 1, "the real clock again");
	hs_free(&h);

	/* A client that offers no ALPN, or another protocol. */
	plain = SSL_CTX_new(TLS_client_method());
	SSL_CTX_use_certificate_file(plain, path(ca1, "gw-1.crt"),
	    SSL_FILETYPE_PEM);
	SSL_CTX_use_PrivateKey_file(plain, path(ca1, "gw-1.key"),
	    SSL_FILETYPE_PEM);
	hs_run(&h, plain, sctx, NULL);
	ok(h.sok == -1 && h.cok == -1, "a client without ALPN is refused "
	    "(%s; the client: %s)", h.serr, h.cerr);
	ok(strstr(h.serr, "no application protocol") != NULL,
	    "and the server says why");
	hs_free(&h);
	SSL_CTX_set_alpn_protos(plain, (const unsigned char *)"\x08http/1.1",
	    9);
	hs_run(&h, plain, sctx, NULL);
	ok(h.sok == -1 && h.cok == -1, "a client offering only http/1.1 is "
	    "refused (%s)", h.serr);
	hs_free(&h);
	SSL_CTX_free(plain);

	/* A server that ignores ALPN: only mtls_alpn_ok tells. */
	plain = SSL_CTX_new(TLS_server_method());
	SSL_CTX_use_certificate_file(plain, path(ca1, "host-1.crt"),
	    SSL_FILETYPE_PEM);
	SSL_CTX_use_PrivateKey_file(plain, path(ca1, "host-1.key"),
	    SSL_FILETYPE_PEM);
	hs_run(&h, cctx, plain, NULL);
	ok(h.cok == 1 && !mtls_alpn_ok(h.c),
	    "mtls_alpn_ok is 0 when the server ignored ALPN");
	hs_free(&h);
	SSL_CTX_free(plain);

	SSL_CTX_free(evil_c);
	SSL_CTX_free(evil_s);
	SSL_CTX_free(old_c);
	SSL_CTX_free(old_s);
}

/* Replaces a file's contents, keeping its mode. */
static void
overwrite(const char *dst, const char *text)
{
	FILE *fp;

	if ((fp = fopen(dst, "w")) != NULL) {
		fputs(text, fp);
		fclose(fp);
	}
}

static void
test_bad_ca(void)
{
	char ca3[160], *err, *other;

	snprintf(ca3, sizeof(ca3), "%s/ca3", top);
	is_int(pki(ca3, NULL, 30), 0, "a third CA");
	other = slurp(path(ca2, "ca.key"));
	overwrite(path(ca3, "ca.key"), other);
	free(other);
	is_int(run_pki(ca3, "x", 30, &err), 1,
	    "a CA key of another CA is refused");
	ok(strstr(err, "ca3/ca.crt: does not match the CA key") != NULL,
	    "and named: %s", err);
	free(err);
	overwrite(path(ca3, "ca.key"), "garbage\n");
	is_int(run_pki(ca3, "x", 30, &err), 1, "a garbled CA key is refused");
	ok(strstr(err, "ca3/ca.key: cannot read the CA key: ") != NULL,
	    "and named: %s", err);
	free(err);
	ok(mode_of(path(ca3, "x.crt")) == -1 && mode_of(path(ca3, "x.key")) ==
	    -1, "and nothing is left behind");
	overwrite(path(ca3, "ca.key"), "");
	chmod(path(ca3, "ca.key"), 0640);
	is_int(run_pki(ca3, "x", 30, &err), 1,
	    "a CA key group may read is refused");
	ok(strstr(err, "ca3/ca.key: readable by group or others (mode 0640)")
	    != NULL, "and named: %s", err);
	free(err);
}

static void
test_tls(void)
{
	SSL_CTX *cctx, *sctx;

	cctx = ctx_for(ca1, "gw-1", ca1, 0);
	sctx = ctx_for(ca1, "host-1", ca1, 1);
	if (!ok(cctx != NULL && sctx != NULL, "client and server contexts"))
		return;
	test_handshake(cctx, sctx);
	test_half_close(cctx, sctx);
	test_refusals(cctx, sctx);
	SSL_CTX_free(cctx);
	SSL_CTX_free(sctx);
}

int
main(void)
{
	char cmd[128];
	int rc;

	snprintf(top, sizeof(top), "/tmp/sluice-tls.XXXXXX");
	if (mkdtemp(top) == NULL) {
		printf("1..0 # SKIP mkdtemp: %s\n", strerror(errno));
		return 0;
	}
	snprintf(ca1, sizeof(ca1), "%s/ca1", top);
	snprintf(ca2, sizeof(ca2), "%s/ca2", top);
	test_pki();
	test_certs();
	test_ctx_errors();
	test_tls();
	test_bad_ca();
	rc = done_testing();
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", top);
	if (system(cmd) != 0)
		printf("# could not remove %s\n", top);
	return rc;
}
