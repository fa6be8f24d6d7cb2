#!/bin/bash
# SPDX-License-Identifier: MIT
# The command line as a user meets it: help, version, usage errors, check.
. "${TOP_SRCDIR:-$(dirname "$0")/..}/t/lib.sh"

[ -x "$SLUICE" ] || skip_all "sluice not built at $SLUICE"
plan 26

out=$("$SLUICE" --help); rc=$?
is "$rc" 0 "--help exits 0"
for c in tproxy proxy host run check dump cleanup "pki init" "pki issue" version; do
	like "$out" "^  $c" "--help lists '$c'"
done

is "$("$SLUICE" version)" "sluice $(sed -n 's/^AC_INIT(\[sluice\], \[\([^]]*\)\].*/\1/p' "$TOP_SRCDIR/configure.ac")" "version prints the package version"

err=$("$SLUICE" frobnicate 2>&1); rc=$?
is "$rc" 64 "an unknown command is a usage error (64)"
like "$err" "unknown command 'frobnicate'" "and says which"

err=$("$SLUICE" -v 9 version 2>&1); rc=$?
is "$rc" 64 "-v out of range is a usage error"

err=$("$SLUICE" --bind 0.0.0.0 check 2>&1); rc=$?
is "$rc" 64 "an option of another command is a usage error"

nohost="$T_TMP/nohost.yaml"
printf 'services:\n  - name: web\n    forward: {direct: 127.0.0.1:8080}\n' \
	> "$nohost"
err=$("$SLUICE" -c "$nohost" --state-dir "$T_TMP/st-h" host 2>&1); rc=$?
is "$rc" 78 "host with no hosted service is a configuration error (78)"
like "$err" "no service in .*nohost.yaml has a host: section" "and says so"
err=$("$SLUICE" -c "$nohost" --state-dir "$T_TMP/st-p" proxy wiki:9999 2>&1)
rc=$?
is "$rc" 64 "proxy for a service that does not exist is a usage error"
like "$err" "'wiki:9999': no service wiki in" "and names it"

conf="$T_TMP/good.yaml"
cat > "$conf" <<'YAML'
services:
  - name: web
    intercept:
      protocols: [tcp]
      addresses: [10.9.0.5]
      ports: [80]
    forward:
      direct: 127.0.0.1:8080
YAML
out=$("$SLUICE" -c "$conf" check 2>&1); rc=$?
is "$rc" 0 "check accepts a good configuration"
like "$out" "web" "check lists the service"

bad="$T_TMP/bad.yaml"
cat > "$bad" <<'YAML'
services:
  - name: web
    intercept:
      protocols: [tcp]
      adresses: [10.9.0.5]
YAML
err=$("$SLUICE" -c "$bad" check 2>&1); rc=$?
is "$rc" 78 "check rejects a bad configuration with 78"
like "$err" "^$bad:5:7: unknown key 'adresses'" "and names file:line:col and the key"

if [ "$(id -u)" -eq 0 ] && command -v setpriv >/dev/null; then
	err=$(setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all \
		"$SLUICE" -c "$conf" --state-dir "$T_TMP/st" tproxy 2>&1); rc=$?
	is "$rc" 77 "tproxy without CAP_NET_ADMIN exits 77"
	like "$err" "needs root or CAP_NET_ADMIN" "and says what it needs"
else
	ok 0 "# SKIP needs root and setpriv to drop privileges"
	ok 0 "# SKIP needs root and setpriv to drop privileges"
fi

done_testing
