/* SPDX-License-Identifier: MIT */
/* `sluice pki init|issue`: a private CA and the identities it signs. */
#include "config.h"

#include <sys/stat.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "sluice.h"
#include "tunnel.h"

#define PKI_MAX_DAYS	36500
#define PKI_NAME_MAX	64	/* ub-common-name, and conf.c's identity limit */
#define PKI_SKEW	3600	/* notBefore this far back: clocks differ */

/* A certificate and its key, created together and removed together. */
struct pki_pair {
	char	crt[PATH_MAX], key[PATH_MAX];
	int	crt_fd, key_fd;
};

/* What a certificate says about itself. */
struct pki_subject {
	const char	*cn;
	int		 ca;
	unsigned	 days;
	time_t		 now;
};

static const char *
ossl_why(char *buf, size_t len)
{
	return mtls_error(0, buf, len);
}

/* The name becomes a file name: no '/', no leading '.', nothing odd. */
static int
pki_valid_name(const char *name)
{
	size_t i;

	if (name[0] == '\0' || name[0] == '.' || strcmp(name, "ca") == 0)
		return 0;
	for (i = 0; name[i] != '\0'; i++)
		if (strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
		    "0123456789._-", name[i]) == NULL)
			return 0;
	return i <= PKI_NAME_MAX;
}

static int
pki_path(char *buf, size_t len, const char *dir, const char *name,
    const char *ext)
{
	int n = snprintf(buf, len, "%s/%s.%s", dir, name, ext);

	if (n < 0 || (size_t)n >= len) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

static int
pki_mkdir(const char *dir, FILE *errfp)
{
	struct stat st;

	if (mkdir(dir, 0700) == 0)
		return 0;
	if (errno == EEXIST && stat(dir, &st) == 0 && S_ISDIR(st.st_mode))
		return 0;
	if (errno == EEXIST)
		errno = ENOTDIR;
	fprintf(errfp, "sluice: %s: cannot create directory: %s\n", dir,
	    strerror(errno));
	return -1;
}

static int
create_excl(const char *path, mode_t mode, FILE *errfp)
{
	int fd;

	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
	    mode);
	if (fd == -1 && errno == EEXIST)
		fprintf(errfp, "sluice: %s: already exists; not overwriting "
		    "it\n", path);
	else if (fd == -1)
		fprintf(errfp, "sluice: %s: %s\n", path, strerror(errno));
	return fd;
}

/*
 * Both files are created before anything is generated, so that an
 * existing one stops us early and a failure leaves neither behind.
 */
static int
pair_open(struct pki_pair *pp, const char *dir, const char *name,
    FILE *errfp)
{
	pp->crt_fd = pp->key_fd = -1;
	if (pki_path(pp->crt, sizeof(pp->crt), dir, name, "crt") == -1 ||
	    pki_path(pp->key, sizeof(pp->key), dir, name, "key") == -1) {
		fprintf(errfp, "sluice: %s/%s: %s\n", dir, name,
		    strerror(errno));
		return -1;
	}
	if ((pp->crt_fd = create_excl(pp->crt, 0644, errfp)) == -1)
		return -1;
	if ((pp->key_fd = create_excl(pp->key, 0600, errfp)) == -1) {
		close(pp->crt_fd);
		unlink(pp->crt);
		pp->crt_fd = -1;
		return -1;
	}
	return 0;
}

/* Undoes pair_open, whatever was written since: both files were ours. */
static void
pair_abort(struct pki_pair *pp)
{
	if (pp->crt_fd != -1)
		close(pp->crt_fd);
	if (pp->key_fd != -1)
		close(pp->key_fd);
	pp->crt_fd = pp->key_fd = -1;
	unlink(pp->crt);
	unlink(pp->key);
}

/* Writes all of mem to fd and makes it durable; the fd is closed. */
static int
write_bio(int fd, BIO *mem)
{
	char *p;
	long n;
	ssize_t w;
	int rc = -1;

	n = BIO_get_mem_data(mem, &p);
	while (n > 0) {
		if ((w = write(fd, p, (size_t)n)) == -1) {
			if (errno == EINTR)
				continue;
			goto out;
		}
		p += w;
		n -= w;
	}
	if (fsync(fd) == 0)
		rc = 0;
out:
	if (close(fd) == -1)
		rc = -1;
	return rc;
}

/*
 * The key goes through secure memory, which is wiped when freed, rather
 * than through stdio buffers that would leave copies on the heap.
 */
static int
pair_write(struct pki_pair *pp, X509 *crt, EVP_PKEY *key, FILE *errfp)
{
	char why[256];
	BIO *cmem, *kmem;
	int rc = -1;

	cmem = BIO_new(BIO_s_mem());
	kmem = BIO_new(BIO_s_secmem());
	if (cmem == NULL || kmem == NULL || !PEM_write_bio_X509(cmem, crt) ||
	    !PEM_write_bio_PrivateKey(kmem, key, NULL, NULL, 0, NULL, NULL)) {
		fprintf(errfp, "sluice: %s: cannot encode: %s\n", pp->crt,
		    ossl_why(why, sizeof(why)));
		goto out;
	}
	if (write_bio(pp->key_fd, kmem) == -1) {
		pp->key_fd = -1;
		fprintf(errfp, "sluice: %s: %s\n", pp->key, strerror(errno));
		goto out;
	}
	pp->key_fd = -1;
	if (write_bio(pp->crt_fd, cmem) == -1) {
		pp->crt_fd = -1;
		fprintf(errfp, "sluice: %s: %s\n", pp->crt, strerror(errno));
		goto out;
	}
	pp->crt_fd = -1;
	sync_parent_dir(pp->crt);
	rc = 0;
out:
	BIO_free(cmem);
	BIO_free(kmem);
	return rc;
}

/* 128 random bits; the top one cleared so the integer is positive. */
static int
set_serial(X509 *x)
{
	unsigned char r[16];
	BIGNUM *bn;
	int rc = -1;

	if (RAND_bytes(r, sizeof(r)) != 1)
		return -1;
	r[0] &= 0x7f;
	if ((bn = BN_bin2bn(r, sizeof(r), NULL)) != NULL &&
	    BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL)
		rc = 0;
	BN_free(bn);
	return rc;
}

static int
add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX v3;
	X509_EXTENSION *ext;
	int rc;

	X509V3_set_ctx(&v3, issuer, x, NULL, NULL, 0);
	if ((ext = X509V3_EXT_nconf_nid(NULL, &v3, nid, value)) == NULL)
		return -1;
	rc = X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	return rc == 1 ? 0 : -1;
}

/*
 * An identity serves as a tunneller (client) and as a host (server), so
 * it carries both purposes; the CA signs nothing but certificates.
 */
static int
add_exts(X509 *x, X509 *issuer, int ca)
{
	if (ca)
		return add_ext(x, x, NID_basic_constraints,
		    "critical,CA:TRUE") == -1 ||
		    add_ext(x, x, NID_key_usage,
		    "critical,keyCertSign,cRLSign") == -1 ||
		    add_ext(x, x, NID_subject_key_identifier, "hash") == -1 ?
		    -1 : 0;
	return add_ext(x, issuer, NID_basic_constraints,
	    "critical,CA:FALSE") == -1 ||
	    add_ext(x, issuer, NID_key_usage,
	    "critical,digitalSignature") == -1 ||
	    add_ext(x, issuer, NID_ext_key_usage,
	    "serverAuth,clientAuth") == -1 ||
	    add_ext(x, issuer, NID_subject_key_identifier, "hash") == -1 ||
	    add_ext(x, issuer, NID_authority_key_identifier,
	    "keyid:always") == -1 ? -1 : 0;
}

static int
set_names(X509 *x, const char *cn, X509 *issuer)
{
	X509_NAME *name;
	int rc = -1;

	if ((name = X509_NAME_new()) == NULL)
		return -1;
	if (X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_UTF8,
	    (const unsigned char *)cn, -1, -1, 0) &&
	    X509_set_subject_name(x, name) &&
	    X509_set_issuer_name(x, issuer != NULL ?
	    X509_get_subject_name(issuer) : name))
		rc = 0;
	X509_NAME_free(name);
	return rc;
}

/* Issued by issuer (signed with its key), or self-signed if NULL. */
static X509 *
cert_new(const struct pki_subject *sub, EVP_PKEY *key, X509 *issuer,
    EVP_PKEY *signer)
{
	time_t now = sub->now;
	X509 *x;

	if ((x = X509_new()) == NULL)
		return NULL;
	if (!X509_set_version(x, X509_VERSION_3) || set_serial(x) == -1 ||
	    X509_time_adj_ex(X509_getm_notBefore(x), 0, -PKI_SKEW,
	    &now) == NULL ||
	    X509_time_adj_ex(X509_getm_notAfter(x), (int)sub->days, 0,
	    &now) == NULL ||
	    set_names(x, sub->cn, issuer) == -1 || !X509_set_pubkey(x, key) ||
	    add_exts(x, issuer, sub->ca) == -1 ||
	    X509_sign(x, signer != NULL ? signer : key, EVP_sha256()) <= 0) {
		X509_free(x);
		return NULL;
	}
	return x;
}

/* Generates the key and certificate and writes them into pp. */
static int
pair_make(struct pki_pair *pp, const struct pki_subject *sub, X509 *issuer,
    EVP_PKEY *signer, FILE *errfp)
{
	char why[256];
	EVP_PKEY *key;
	X509 *crt = NULL;
	int rc = -1;

	/* P-256: fast handshakes, and every TLS 1.3 peer supports it. */
	if ((key = EVP_EC_gen("P-256")) == NULL ||
	    (crt = cert_new(sub, key, issuer, signer)) == NULL) {
		fprintf(errfp, "sluice: %s: cannot make a %s: %s\n", pp->crt,
		    key == NULL ? "key" : "certificate",
		    ossl_why(why, sizeof(why)));
		goto out;
	}
	rc = pair_write(pp, crt, key, errfp);
out:
	X509_free(crt);
	EVP_PKEY_free(key);
	return rc;
}

static void
report(const struct pki_pair *pp, const struct pki_subject *sub)
{
	char until[64];
	time_t t = sub->now + (time_t)sub->days * 86400;
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL ||
	    strftime(until, sizeof(until), "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
		strcpy(until, "?");
	printf("wrote %s and %s (CN=%s, valid until %s)\n", pp->crt, pp->key,
	    sub->cn, until);
}

/*
 * "sluice CA <dir's name>", or the host's name for "/": something to tell
 * CAs apart by when a peer's issuer is unknown.
 */
static void
ca_name(const char *dir, char *buf, size_t len)
{
	char path[PATH_MAX], host[256];
	const char *base = "";
	size_t i;

	if (realpath(dir, path) != NULL)
		base = strrchr(path, '/') + 1;
	if (*base == '\0') {
		if (gethostname(host, sizeof(host)) == -1)
			strcpy(host, "localhost");
		host[sizeof(host) - 1] = '\0';
		base = host;
	}
	snprintf(buf, len, "sluice CA %s", base);
	/* Plain ASCII, so that truncation cannot split a character. */
	for (i = 0; buf[i] != '\0'; i++)
		if (buf[i] < ' ' || buf[i] > '~')
			buf[i] = '_';
}

static int
days_ok(unsigned days, FILE *errfp)
{
	if (days <= PKI_MAX_DAYS)
		return 1;
	fprintf(errfp, "sluice: %u days: at most %u\n", days, PKI_MAX_DAYS);
	return 0;
}

int
pki_init(const char *dir, unsigned days, FILE *errfp)
{
	char cn[PKI_NAME_MAX + 1];
	struct pki_subject sub = { cn, 1, days, time(NULL) };
	struct pki_pair pp;

	if (!days_ok(days, errfp))
		return EX_USAGE;
	if (pki_mkdir(dir, errfp) == -1 ||
	    pair_open(&pp, dir, "ca", errfp) == -1)
		return EXIT_FAIL;
	ca_name(dir, cn, sizeof(cn));
	if (pair_make(&pp, &sub, NULL, NULL, errfp) == -1) {
		pair_abort(&pp);
		return EXIT_FAIL;
	}
	report(&pp, &sub);
	return 0;
}

static int
no_passphrase(char *buf, int size, int rwflag, void *arg)
{
	return -1;
}

/* Reads a key through wiped memory, as pair_write writes one. */
static EVP_PKEY *
key_read(const char *path)
{
	unsigned char chunk[4096];
	EVP_PKEY *key = NULL;
	BIO *mem = NULL;
	ssize_t n;
	int fd, saved;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return NULL;
	if ((mem = BIO_new(BIO_s_secmem())) == NULL)
		goto out;
	while ((n = read(fd, chunk, sizeof(chunk))) != 0) {
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 || BIO_write(mem, chunk, (int)n) != n)
			goto out;
	}
	key = PEM_read_bio_PrivateKey(mem, NULL, no_passphrase, NULL);
out:
	saved = errno;
	OPENSSL_cleanse(chunk, sizeof(chunk));
	BIO_free(mem);
	close(fd);
	errno = saved;
	return key;
}

static EVP_PKEY *
ca_key_load(const char *path, FILE *errfp)
{
	char why[256];
	EVP_PKEY *key;

	if (mtls_key_file_check(path, why, sizeof(why)) == -1) {
		fprintf(errfp, "sluice: %s: %s%s\n", path, why,
		    errno == ENOENT ? " (make a CA with 'sluice pki init' "
		    "first)" : "");
		return NULL;
	}
	if ((key = key_read(path)) == NULL)
		fprintf(errfp, "sluice: %s: cannot read the CA key: %s\n",
		    path, ossl_why(why, sizeof(why)));
	return key;
}

static X509 *
ca_crt_load(const char *path, EVP_PKEY *key, FILE *errfp)
{
	char why[256];
	X509 *crt = NULL;
	BIO *in;

	if ((in = BIO_new_file(path, "r")) != NULL)
		crt = PEM_read_bio_X509(in, NULL, NULL, NULL);
	BIO_free(in);
	if (crt == NULL) {
		fprintf(errfp, "sluice: %s: cannot read the CA certificate: "
		    "%s\n", path, ossl_why(why, sizeof(why)));
		return NULL;
	}
	if (X509_check_ca(crt) == 0)
		fprintf(errfp, "sluice: %s: not a CA certificate\n", path);
	else if (X509_check_private_key(crt, key) != 1)
		fprintf(errfp, "sluice: %s: does not match the CA key: %s\n",
		    path, ossl_why(why, sizeof(why)));
	else
		return crt;
	X509_free(crt);
	return NULL;
}

int
pki_issue(const char *dir, const char *name, unsigned days, FILE *errfp)
{
	char kpath[PATH_MAX], cpath[PATH_MAX];
	struct pki_subject sub = { name, 0, days, time(NULL) };
	struct pki_pair pp;
	EVP_PKEY *cakey = NULL;
	X509 *ca = NULL;
	int rc = EXIT_FAIL;

	if (!pki_valid_name(name)) {
		fprintf(errfp, "sluice: '%s' is not a valid identity name: "
		    "1 to %d of A-Z a-z 0-9 . _ -, not starting with '.', "
		    "not 'ca'\n", name, PKI_NAME_MAX);
		return EX_USAGE;
	}
	if (!days_ok(days, errfp))
		return EX_USAGE;
	if (pki_path(kpath, sizeof(kpath), dir, "ca", "key") == -1 ||
	    pki_path(cpath, sizeof(cpath), dir, "ca", "crt") == -1) {
		fprintf(errfp, "sluice: %s: %s\n", dir, strerror(errno));
		return EXIT_FAIL;
	}
	if ((cakey = ca_key_load(kpath, errfp)) == NULL ||
	    (ca = ca_crt_load(cpath, cakey, errfp)) == NULL ||
	    pair_open(&pp, dir, name, errfp) == -1)
		goto out;
	if (pair_make(&pp, &sub, ca, cakey, errfp) == -1) {
		pair_abort(&pp);
		goto out;
	}
	report(&pp, &sub);
	rc = 0;
out:
	X509_free(ca);
	EVP_PKEY_free(cakey);
	return rc;
}
