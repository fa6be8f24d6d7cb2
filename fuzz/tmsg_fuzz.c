/* SPDX-License-Identifier: MIT */
/* libFuzzer harness for the tunnel's opening message and reply parsers. */
#include "config.h"

#include <sys/socket.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tunnel.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static void
check(int cond)
{
	if (!cond)
		abort();
}

/* What the parser said agrees with what the bytes allow. */
static void
check_rc(const uint8_t *data, size_t len, ssize_t rc, const char *why)
{
	size_t want;

	check(rc >= -1 && (rc <= 0 || ((size_t)rc <= len && rc <= TMSG_MAX)));
	if (rc == -1)
		check(why != NULL && why[0] != '\0');
	if (rc != 0)
		return;
	/* "Need more" only while the header or the declared body is short. */
	if (len >= TMSG_HDR) {
		want = TMSG_HDR + ((size_t)data[4] << 8 | data[5]);
		check(want <= TMSG_MAX && len < want);
	}
}

static void
check_text(const char *s, size_t min, int lo)
{
	size_t i, n = strlen(s);

	check(n >= min && n <= 255);
	for (i = 0; i < n; i++)
		check((unsigned char)s[i] >= lo && (unsigned char)s[i] <= 0x7e);
}

static void
fuzz_open(const uint8_t *data, size_t len)
{
	static uint8_t out[TMSG_MAX];
	struct tmsg_open m, again;
	const char *why = NULL;
	ssize_t rc, n;
	int status = -1;

	rc = tmsg_open_parse(data, len, &m, &status, &why);
	check_rc(data, len, rc, why);
	if (rc == -1)
		check(status == TMSG_BAD_REQUEST || status == TMSG_UNSUPPORTED);
	if (rc <= 0)
		return;
	check(m.proto == IPPROTO_TCP || m.proto == IPPROTO_UDP);
	check_text(m.service, 1, 0x21);
	check(m.dst.ss_family == AF_INET || m.dst.ss_family == AF_INET6);
	check(m.src.ss_family == AF_INET || m.src.ss_family == AF_INET6);

	/* One encoding per message: the same bytes, then the same struct. */
	n = tmsg_open_encode(&m, out, sizeof(out));
	check(n == rc && memcmp(out, data, (size_t)n) == 0);
	check(tmsg_open_parse(out, (size_t)n, &again, &status, &why) == n);
	check(memcmp(&again, &m, sizeof(m)) == 0);
	check(tmsg_open_encode(&m, out, (size_t)n - 1) == -1);
	check(tmsg_open_parse(data, (size_t)rc - 1, &again, &status,
	    &why) == 0);
}

static void
fuzz_reply(const uint8_t *data, size_t len)
{
	static uint8_t out[TMSG_MAX];
	struct tmsg_reply m, again;
	const char *why = NULL;
	ssize_t rc, n;

	rc = tmsg_reply_parse(data, len, &m, &why);
	check_rc(data, len, rc, why);
	if (rc <= 0)
		return;
	check_text(m.reason, 0, 0x20);

	n = tmsg_reply_encode(&m, out, sizeof(out));
	check(n == rc && memcmp(out, data, (size_t)n) == 0);
	check(tmsg_reply_parse(out, (size_t)n, &again, &why) == n);
	check(memcmp(&again, &m, sizeof(m)) == 0);
	check(tmsg_reply_encode(&m, out, (size_t)n - 1) == -1);
	check(tmsg_reply_parse(data, (size_t)rc - 1, &again, &why) == 0);
	check(tmsg_status_str(m.status) != NULL);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	fuzz_open(data, len);
	fuzz_reply(data, len);
	return 0;
}
