/* SPDX-License-Identifier: MIT */
/* TLS contexts for the tunnel: TLS 1.3, certificates both ways, sluice/1. */
#include "config.h"

#include <sys/stat.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "sluice.h"
#include "tunnel.h"

/*
 * Leaf, one intermediate, and the anchor: `sluice pki` makes no
 * intermediates, and a short chain bounds the work a peer can cause.
 */
#define TLS_VERIFY_DEPTH	2
#define TLS_TICKETS		2	/* per handshake, for the tunneller */
#define TLS_CN_SHOWN		80	/* of a refused peer's CN, in logs */

/* ALPN wire format: a length byte, then the name. */
static const unsigned char mtls_alpn_wire[] = "\x08" MTLS_ALPN;

/* Resumed sessions must come from our own contexts; any constant does. */
static const unsigned char mtls_sid_ctx[] = "sluice";

static int
mtls_fail(char *err, size_t errlen, const char *what, const char *path)
{
	char why[256];

	mtls_error(0, why, sizeof(why));
	snprintf(err, errlen, "%s: %s: %s", path, what, why);
	return -1;
}

int
mtls_key_file_check(const char *path, char *why, size_t len)
{
	struct stat st;

	if (stat(path, &st) == -1) {
		snprintf(why, len, "%s", strerror(errno));
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(why, len, "not a regular file");
		errno = EINVAL;
		return -1;
	}
	if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		snprintf(why, len, "%s by group or others (mode %04o); chmod "
		    "600 it", st.st_mode & (S_IRGRP | S_IROTH) ? "readable" :
		    "accessible", (unsigned)(st.st_mode & 07777));
		errno = EPERM;
		return -1;
	}
	return 0;
}

/* A daemon has nobody to ask: an encrypted key is an error. */
static int
mtls_no_passphrase(char *buf, int size, int rwflag, void *arg)
{
	return -1;
}

/*
 * The ALPN callback runs only when the client offered ALPN at all, so a
 * client that offers none is stopped here, before any certificate work.
 */
static int
mtls_hello_cb(SSL *ssl, int *alert, void *arg)
{
	const unsigned char *ext;
	size_t len;

	if (SSL_client_hello_get0_ext(ssl,
	    TLSEXT_TYPE_application_layer_protocol_negotiation, &ext,
	    &len) == 1)
		return SSL_CLIENT_HELLO_SUCCESS;
	ERR_raise_data(ERR_LIB_SSL, SSL_R_NO_APPLICATION_PROTOCOL,
	    "the client offered none, %s is required", MTLS_ALPN);
	*alert = SSL_AD_NO_APPLICATION_PROTOCOL;
	return SSL_CLIENT_HELLO_ERROR;
}

/* OpenSSL has checked that the list is well formed. */
static int
mtls_alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
    const unsigned char *in, unsigned int inlen, void *arg)
{
	const size_t want = sizeof(mtls_alpn_wire) - 2;
	unsigned int n;

	while (inlen > 0) {
		n = in[0];
		if (n + 1 > inlen)
			break;
		if (n == want && memcmp(in + 1, MTLS_ALPN, n) == 0) {
			*out = in + 1;
			*outlen = (unsigned char)n;
			return SSL_TLSEXT_ERR_OK;
		}
		in += n + 1;
		inlen -= n + 1;
	}
	return SSL_TLSEXT_ERR_ALERT_FATAL;
}

int
mtls_alpn_ok(SSL *ssl)
{
	const unsigned char *p;
	unsigned int n;

	SSL_get0_alpn_selected(ssl, &p, &n);
	return n == sizeof(mtls_alpn_wire) - 2 && memcmp(p, MTLS_ALPN, n) == 0;
}

/*
 * The server hands out tickets so that a tunneller reconnecting after a
 * failover resumes instead of signing again. The client keeps no internal
 * cache: it could not tell which host a session belongs to, so the caller
 * collects sessions with SSL_CTX_sess_set_new_cb and picks one per host.
 */
static int
ctx_protocol(SSL_CTX *ctx, int server, char *err, size_t errlen)
{
	if (!SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION))
		return mtls_fail(err, errlen, "TLS 1.3", "context");
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
	    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_default_passwd_cb(ctx, mtls_no_passphrase);
	/*
	 * AES-128-GCM first: with AES-NI it costs about a third less CPU per
	 * byte than AES-256, which is what a relay on a shared CPU spends.
	 * Read-ahead lets one read(2) take several records.
	 */
	if (!SSL_CTX_set_ciphersuites(ctx, "TLS_AES_128_GCM_SHA256:"
	    "TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"))
		return mtls_fail(err, errlen, "cipher suites", "context");
	SSL_CTX_set_read_ahead(ctx, 1);
	SSL_CTX_set_default_read_buffer_len(ctx, 64 * 1024);
	if (server) {
		SSL_CTX_set_client_hello_cb(ctx, mtls_hello_cb, NULL);
		SSL_CTX_set_alpn_select_cb(ctx, mtls_alpn_select, NULL);
		if (!SSL_CTX_set_num_tickets(ctx, TLS_TICKETS) ||
		    !SSL_CTX_set_session_id_context(ctx, mtls_sid_ctx,
		    sizeof(mtls_sid_ctx) - 1))
			return mtls_fail(err, errlen, "session tickets",
			    "context");
	} else {
		/* Unlike everything else here, 0 is success. */
		if (SSL_CTX_set_alpn_protos(ctx, mtls_alpn_wire,
		    sizeof(mtls_alpn_wire) - 1) != 0)
			return mtls_fail(err, errlen, "ALPN", "context");
		SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT |
		    SSL_SESS_CACHE_NO_INTERNAL_STORE);
	}
	return 0;
}

/* The key's mode is checked before OpenSSL reads a byte of it. */
static int
ctx_identity(SSL_CTX *ctx, const struct config *conf, char *err,
    size_t errlen)
{
	char why[256];

	if (mtls_key_file_check(conf->id_key, why, sizeof(why)) == -1) {
		snprintf(err, errlen, "%s: %s", conf->id_key, why);
		return -1;
	}
	if (SSL_CTX_use_certificate_chain_file(ctx, conf->id_cert) != 1)
		return mtls_fail(err, errlen, "cannot load the certificate",
		    conf->id_cert);
	if (SSL_CTX_use_PrivateKey_file(ctx, conf->id_key,
	    SSL_FILETYPE_PEM) != 1) {
		if (ERR_GET_REASON(ERR_peek_error()) ==
		    X509_R_KEY_VALUES_MISMATCH) {
			snprintf(err, errlen, "%s: does not match %s",
			    conf->id_key, conf->id_cert);
			return -1;
		}
		return mtls_fail(err, errlen, "cannot load the key",
		    conf->id_key);
	}
	if (SSL_CTX_check_private_key(ctx) != 1)
		return mtls_fail(err, errlen, "does not match the key",
		    conf->id_cert);
	return 0;
}

/*
 * A host's log should say which certificate failed and why; OpenSSL's
 * server side says only "certificate verify failed". The peer's CN is
 * untrusted bytes: only printable ASCII reaches the log.
 */
static int
mtls_verify_cb(int ok, X509_STORE_CTX *x)
{
	char cn[TLS_CN_SHOWN] = "?";
	X509 *cert;
	size_t i;

	if (ok)
		return 1;
	if ((cert = X509_STORE_CTX_get_current_cert(x)) != NULL)
		X509_NAME_get_text_by_NID(X509_get_subject_name(cert),
		    NID_commonName, cn, sizeof(cn));
	for (i = 0; cn[i] != '\0'; i++)
		if (cn[i] < ' ' || cn[i] > '~')
			cn[i] = '?';
	ERR_raise_data(ERR_LIB_SSL, SSL_R_CERTIFICATE_VERIFY_FAILED,
	    "%s: CN=%s", X509_verify_cert_error_string(
	    X509_STORE_CTX_get_error(x)), cn);
	return 0;
}

/*
 * identity.ca is the only trust anchor: the system's store is never
 * loaded, so no public CA can vouch for a tunneller or a host.
 */
static int
ctx_trust(SSL_CTX *ctx, const struct config *conf, int server, char *err,
    size_t errlen)
{
	STACK_OF(X509_NAME) *names;

	if (SSL_CTX_load_verify_file(ctx, conf->id_ca) != 1)
		return mtls_fail(err, errlen, "cannot load the CA",
		    conf->id_ca);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER |
	    SSL_VERIFY_FAIL_IF_NO_PEER_CERT, mtls_verify_cb);
	SSL_CTX_set_verify_depth(ctx, TLS_VERIFY_DEPTH);
	if (server) {
		/* Tells the client which CA to pick a certificate for. */
		if ((names = SSL_load_client_CA_file(conf->id_ca)) == NULL)
			return mtls_fail(err, errlen, "no CA names",
			    conf->id_ca);
		SSL_CTX_set_client_CA_list(ctx, names);
	}
	return 0;
}

SSL_CTX *
mtls_ctx_new(const struct config *conf, int server, char *err,
    size_t errlen)
{
	SSL_CTX *ctx;

	ERR_clear_error();
	if (!conf->has_identity) {
		snprintf(err, errlen, "no identity: section in %s",
		    conf->path != NULL ? conf->path : "the configuration");
		return NULL;
	}
	ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
	if (ctx == NULL) {
		mtls_fail(err, errlen, "cannot make a TLS context", "openssl");
		return NULL;
	}
	if (ctx_protocol(ctx, server, err, errlen) == -1 ||
	    ctx_identity(ctx, conf, err, errlen) == -1 ||
	    ctx_trust(ctx, conf, server, err, errlen) == -1) {
		SSL_CTX_free(ctx);
		ERR_clear_error();
		return NULL;
	}
	return ctx;
}

/*
 * Names as `sluice pki issue` makes them and the allow lists accept them:
 * printable, no blanks, no NUL hidden inside.
 */
static int
cn_copy(const ASN1_STRING *s, char *buf, size_t len)
{
	const unsigned char *p = ASN1_STRING_get0_data(s);
	int i, n = ASN1_STRING_length(s);
	int type = ASN1_STRING_type(s);

	if (type != V_ASN1_UTF8STRING && type != V_ASN1_PRINTABLESTRING &&
	    type != V_ASN1_IA5STRING)
		return -1;
	if (n <= 0 || (size_t)n >= len)
		return -1;
	for (i = 0; i < n; i++)
		if (p[i] <= ' ' || p[i] == 0x7f)
			return -1;
	memcpy(buf, p, (size_t)n);
	buf[n] = '\0';
	return 0;
}

/* Exactly one CN: with two, which one the allow list sees is a guess. */
int
mtls_peer_name(SSL *ssl, char *buf, size_t len)
{
	X509 *peer;
	X509_NAME *subj;
	int i;

	if (len == 0)
		return -1;
	buf[0] = '\0';
	if ((peer = SSL_get0_peer_certificate(ssl)) == NULL ||
	    SSL_get_verify_result(ssl) != X509_V_OK)
		return -1;
	subj = X509_get_subject_name(peer);
	if ((i = X509_NAME_get_index_by_NID(subj, NID_commonName, -1)) < 0 ||
	    X509_NAME_get_index_by_NID(subj, NID_commonName, i) >= 0)
		return -1;
	return cn_copy(X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subj, i)),
	    buf, len);
}

static const char *
mtls_error_code(int ssl_err, int saved_errno)
{
	switch (ssl_err) {
	case SSL_ERROR_ZERO_RETURN:
		return "closed by the peer";
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		return "would block";
	case SSL_ERROR_SYSCALL:
		return saved_errno != 0 ? strerror(saved_errno) :
		    "connection closed without close_notify";
	default:
		return saved_errno != 0 ? strerror(saved_errno) :
		    "unknown error";
	}
}

/*
 * The oldest error is the cause; later ones are the callers giving up.
 * Its data often says more ("Verify error:certificate has expired").
 */
const char *
mtls_error(int ssl_err, char *buf, size_t len)
{
	const char *data = NULL, *reason;
	unsigned long e;
	int flags = 0, saved = errno;

	e = ERR_get_error_all(NULL, NULL, NULL, &data, &flags);
	if (e == 0)
		snprintf(buf, len, "%s", mtls_error_code(ssl_err, saved));
	else if (ERR_SYSTEM_ERROR(e))
		/* Its data is "calling fopen(PATH)": callers name the file. */
		snprintf(buf, len, "%s", strerror(ERR_GET_REASON(e)));
	else {
		if ((reason = ERR_reason_error_string(e)) == NULL)
			reason = ERR_lib_error_string(e);
		if (data != NULL && (flags & ERR_TXT_STRING) && *data != '\0')
			snprintf(buf, len, "%s (%s)", reason ? reason :
			    "unknown error", data);
		else
			snprintf(buf, len, "%s", reason ? reason :
			    "unknown error");
	}
	ERR_clear_error();
	errno = saved;
	return buf;
}
