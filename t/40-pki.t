#!/bin/bash
# SPDX-License-Identifier: MIT
# `sluice pki init|issue` as a user meets it: files, modes, what openssl
# makes of the certificates, refusals. No root or namespaces needed.
. "${TOP_SRCDIR:-$(dirname "$0")/..}/t/lib.sh"

[ -x "$SLUICE" ] || skip_all "sluice not built at $SLUICE"
require_cmd openssl
plan 37

dir="$T_TMP/pki"
now=$(date +%s)

# enddate FILE: the certificate's notAfter in seconds since the epoch.
enddate() {
	date -d "$(openssl x509 -noout -enddate -in "$1" | cut -d= -f2)" +%s
}

# near GOT WANT SLACK DESCRIPTION
near() {
	if [ $(( $1 - $2 )) -le "$3" ] && [ $(( $2 - $1 )) -le "$3" ]; then
		ok 0 "$4"
	else
		ok 1 "$4"
		diag "got:  $(date -u -d "@$1")" "want: $(date -u -d "@$2")"
	fi
}

out=$("$SLUICE" pki init "$dir" 2>&1); rc=$?
is "$rc" 0 "pki init exits 0"
like "$out" "^wrote $dir/ca.crt and $dir/ca.key \(CN=sluice CA pki, valid until [0-9-]+ [0-9:]+ UTC\)$" \
	"and says what it wrote"
is "$(stat -c %a "$dir")" 700 "the directory is created 0700"
is "$(stat -c %a "$dir/ca.key")" 600 "ca.key is 0600"
ca_ext=$(openssl x509 -noout -in "$dir/ca.crt" -ext basicConstraints,keyUsage 2>&1)
like "$ca_ext" "critical" "the CA's extensions are critical"
like "$ca_ext" "CA:TRUE" "the CA is a CA"
like "$ca_ext" "Certificate Sign, CRL Sign" "and signs certificates and CRLs"
near "$(enddate "$dir/ca.crt")" $((now + 3650 * 86400)) 300 \
	"the CA is valid for 3650 days by default"

out=$("$SLUICE" pki issue "$dir" gw-1 2>&1); rc=$?
is "$rc" 0 "pki issue exits 0"
like "$out" "^wrote $dir/gw-1.crt and $dir/gw-1.key \(CN=gw-1, valid until " \
	"and says what it wrote"
is "$(stat -c %a "$dir/gw-1.key")" 600 "gw-1.key is 0600"
is "$(openssl verify -CAfile "$dir/ca.crt" "$dir/gw-1.crt" 2>&1)" \
	"$dir/gw-1.crt: OK" "openssl verify accepts gw-1.crt"
like "$(openssl x509 -noout -subject -in "$dir/gw-1.crt")" \
	"^subject= ?CN ?= ?gw-1$" "its subject is CN=gw-1"
ext=$(openssl x509 -noout -in "$dir/gw-1.crt" \
	-ext extendedKeyUsage,basicConstraints,keyUsage 2>&1)
like "$ext" "TLS Web Server Authentication, TLS Web Client Authentication" \
	"an identity serves as server and client"
like "$ext" "CA:FALSE" "an identity is no CA"
like "$ext" "Digital Signature" "and signs handshakes"
like "$(openssl pkey -noout -text -in "$dir/gw-1.key" 2>&1)" "prime256v1|P-256" \
	"keys are EC P-256"
near "$(enddate "$dir/gw-1.crt")" $((now + 365 * 86400)) 300 \
	"an identity is valid for 365 days by default"

out=$("$SLUICE" pki issue "$dir" short --days 30 2>&1); rc=$?
is "$rc" 0 "pki issue --days 30"
near "$(enddate "$dir/short.crt")" $((now + 30 * 86400)) 300 \
	"sets the end date 30 days ahead"
out=$("$SLUICE" --days 0 pki issue "$dir" old 2>&1); rc=$?
is "$rc" 0 "pki issue --days 0"
like "$(openssl verify -attime $(($(date +%s) + 5)) -CAfile "$dir/ca.crt" \
	"$dir/old.crt" 2>&1)" "certificate has expired" \
	"makes a certificate that expires at once"

sums=$(sha256sum "$dir"/ca.*)
err=$("$SLUICE" pki init "$dir" 2>&1); rc=$?
is "$rc" 1 "a second pki init exits 1"
like "$err" "$dir/ca.crt: already exists" "and names the file"
same_state "$sums" "$(sha256sum "$dir"/ca.*)" "and leaves the CA byte for byte"
err=$("$SLUICE" pki issue "$dir" gw-1 2>&1); rc=$?
is "$rc" 1 "issuing an existing name exits 1"

err=$("$SLUICE" pki issue "$dir" ../evil 2>&1); rc=$?
is "$rc" 64 "a name with '/' is a usage error"
like "$err" "not a valid identity name" "and says why"
err=$("$SLUICE" pki issue "$dir" .hidden 2>&1); rc=$?
is "$rc" 64 "a name starting with '.' is a usage error"

mkdir "$T_TMP/empty"
err=$("$SLUICE" pki issue "$T_TMP/empty" gw-1 2>&1); rc=$?
is "$rc" 1 "pki issue without a CA exits 1"
like "$err" "$T_TMP/empty/ca.key: " "and names ca.key"

chmod 644 "$dir/ca.key"
err=$("$SLUICE" pki issue "$dir" gw-2 2>&1); rc=$?
is "$rc" 1 "a CA key readable by others is refused"
like "$err" "ca.key: readable by group or others \(mode 0644\); chmod 600 it" \
	"and says what to do"
chmod 600 "$dir/ca.key"

err=$("$SLUICE" --days 30 version 2>&1); rc=$?
is "$rc" 64 "--days with another command is a usage error"
err=$("$SLUICE" --days 36501 pki init "$T_TMP/big" 2>&1); rc=$?
is "$rc" 64 "--days beyond 36500 is a usage error"
err=$("$SLUICE" pki issue "$dir" 2>&1); rc=$?
is "$rc" 64 "pki issue without a name is a usage error"
err=$("$SLUICE" pki frob "$dir" 2>&1); rc=$?
is "$rc" 64 "an unknown pki command is a usage error"

done_testing
