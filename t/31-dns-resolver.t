#!/bin/bash
# SPDX-License-Identifier: MIT
# The system resolver and the nameserver's life: resolv.conf and hosts-file
# setups, restored byte for byte after a stop and after SIGKILL + cleanup;
# names keep their addresses across a restart; a reload adds and releases
# names and changes dns.unknown; a failing self-test stops sluice with 69
# and says what to fix, unless --no-self-test; a busy port 53 is reported.
. "${TOP_SRCDIR:-$(dirname "$0")/..}/t/lib.sh"
. "${TOP_SRCDIR:-$(dirname "$0")/..}/t/dns-lib.sh"

require_netns
require_cmd curl nginx dig getent
plan 43

ns_new c
# Odd bytes that a careless rewrite would lose: CRLF, tabs, no final newline.
resolv='search corp.test\r\n\tnameserver 127.0.0.9  \noptions edns0\nnameserver 127.0.0.10'
hosts='127.0.0.1 localhost\n::1 localhost ip6-localhost'
dns_ns_files c "$resolv" "$hosts"
cp "$DNS_RESOLV" "$T_TMP/resolv.want"
cp "$DNS_HOSTS" "$T_TMP/hosts.want"
http_server c 127.0.0.1 8080 UPSTREAM

same_file() {	# same_file FILE WANT DESCRIPTION
	if cmp -s "$1" "$2"; then ok 0 "$3"
	else ok 1 "$3"; diag "got:" "$(cat -A "$1")" "want:" "$(cat -A "$2")"; fi
}

svc_web='  - name: web
    intercept: { protocols: [tcp], addresses: [web.corp.test, "*.docs.corp.test"], ports: [80] }
    forward: { direct: 127.0.0.1:8080 }'
svc_wiki='  - name: wiki
    intercept: { protocols: [tcp], addresses: [wiki.corp.test], ports: [80] }
    forward: { direct: 127.0.0.1:8080 }'
conf="$T_TMP/sluice.yaml"
conf() {	# conf UNKNOWN SERVICES...
	printf 'intercept:\n  backend: iptables\ndns:\n  unknown: %s\nservices:\n' "$1" > "$conf.new"
	shift
	printf '%s\n' "$@" >> "$conf.new"
	mv "$conf.new" "$conf"
}
conf refused "$svc_web"

before=$(settled_state c)

# ---- resolv.conf ----
sluice_start c "$conf" --resolver resolv.conf
ok $? "sluice starts with --resolver resolv.conf"
first=$(grep -v '^#' "$DNS_RESOLV" | grep -m1 nameserver)
is "$first" "nameserver 127.0.0.1" "our nameserver comes first in resolv.conf"
like "$(cat "$SL_LOG")" "self-test passed: sluice-[0-9a-f]+\.self-test\.sluice\.test" \
	"the self-test name resolved through the system resolver"
a=$(nsx c getent hosts web.corp.test | awk '{print $1}')
like "$a" '^169\.254\.' "getent finds a service name through the system resolver"
is "$(nsx c curl -sS --max-time 5 http://web.corp.test/ 2>&1)" UPSTREAM "curl reaches the service by name"
is "$(status c nosuch.example)" REFUSED "an unknown name is REFUSED (no upstream)"
unlike "$(flags c nosuch.example)" "ra" "without upstreams, RA is not set"
like "$(nsx c getent hosts nosuch.example; echo "rc=$?")" "rc=2" \
	"and the system resolver falls through to its next server"

# Reload: a new name, dns.unknown nxdomain.
conf nxdomain "$svc_web" "$svc_wiki"
kill -HUP "$SL_PID"
wait_log "$SL_LOG" "reload: 2 services in use" 5
is "$(status c nosuch.example)" NXDOMAIN "after a reload with unknown: nxdomain, NXDOMAIN"
w=$(q c +short wiki.corp.test)
like "$w" '^169\.254\.' "a name added by a reload resolves ($w)"
like "$(nsx c iptables-legacy-save -t mangle)" "-d $w/32 .*--comment wiki" "and is intercepted"
# Reload: the name goes again.
conf nxdomain "$svc_web"
kill -HUP "$SL_PID"
i=0; while nsx c ip route show table local | grep -q "local $w " && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
unlike "$(nsx c ip route show table local)" "local $w " "a name removed by a reload loses its local route"
unlike "$(nsx c iptables-legacy-save -t mangle)" "-d $w/32 " "and its rules"
is "$(status c wiki.corp.test)" NXDOMAIN "and is no longer answered"

sluice_stop TERM
is "$SL_STATUS" 0 "SIGTERM stops sluice with status 0"
same_file "$DNS_RESOLV" "$T_TMP/resolv.want" "resolv.conf is restored byte for byte after a stop"
same_state "$before" "$(settled_state c)" "and the kernel state is as before"

# ---- a restart keeps addresses; a crash is cleaned up ----
sluice_start c "$conf" --resolver resolv.conf
is "$(q c +short web.corp.test)" "$a" "after a restart a name has the same address"
like "$(cat "$SL_STATE/pool")" "web\.corp\.test $a" "kept in the state dir's pool file"
sluice_stop KILL
like "$(cat "$DNS_RESOLV")" "nameserver 127.0.0.1" "SIGKILL leaves the resolv.conf edit behind"
out=$(nsx c "$SLUICE" -c "$conf" --state-dir "$SL_STATE" cleanup 2>&1); rc=$?
is "$rc" 0 "sluice cleanup succeeds"
same_file "$DNS_RESOLV" "$T_TMP/resolv.want" "and restores resolv.conf byte for byte"
same_state "$before" "$(settled_state c)" "and the kernel state, local routes included"
sluice_start c "$conf" --resolver resolv.conf
sluice_stop KILL
sluice_start c "$conf" --resolver resolv.conf
ok $? "a start after a crash succeeds"
n=$(grep -c "# sluice: begin" "$DNS_RESOLV")
is "$n" 1 "and replaces the leftover resolv.conf block"
sluice_stop TERM
same_file "$DNS_RESOLV" "$T_TMP/resolv.want" "which is gone after the stop"

# ---- the hosts file ----
sluice_start c "$conf" --resolver file:/etc/hosts
ok $? "sluice starts with --resolver file:/etc/hosts"
like "$(cat "$DNS_HOSTS")" "$a[[:space:]]+web\.corp\.test" "exact names are written in the hosts file"
like "$(cat "$SL_LOG")" "self-test passed.*from the hosts file" "the self-test passes through it"
like "$(cat "$SL_LOG")" "docs\.corp\.test cannot be listed in a hosts file" "wildcards are said to be left out"
is "$(nsx c getent hosts web.corp.test | awk '{print $1}')" "$a" "getent finds the name there"
sluice_stop TERM
same_file "$DNS_HOSTS" "$T_TMP/hosts.want" "the hosts file is restored byte for byte"
same_file "$DNS_RESOLV" "$T_TMP/resolv.want" "and resolv.conf was not touched"
sluice_start c "$conf" --resolver file:/etc/hosts
sluice_stop KILL
like "$(cat "$DNS_HOSTS")" "web\.corp\.test" "SIGKILL leaves the hosts-file block behind"
nsx c "$SLUICE" -c "$conf" --state-dir "$SL_STATE" cleanup >/dev/null 2>&1
same_file "$DNS_HOSTS" "$T_TMP/hosts.want" "sluice cleanup restores the hosts file byte for byte"

# ---- the self-test ----
out=$(nsx c "$SLUICE" -c "$conf" --state-dir "$SL_STATE" tproxy --resolver none 2>&1); rc=$?
is "$rc" 69 "a failing self-test stops sluice with 69"
like "$out" "self-test failed" "saying so"
like "$out" "never asked this nameserver" "and what went wrong"
like "$out" "to fix: .*point the system resolver at 127\.0\.0\.1:53" "and what to fix"
same_state "$before" "$(settled_state c)" "leaving the kernel state as it was"
sluice_start c "$conf" --resolver none --no-self-test
ok $? "--no-self-test runs anyway"
sluice_stop TERM

# ---- port 53 taken ----
bg_ns c socat UDP-LISTEN:53,bind=127.0.0.1 /dev/null
sleep 0.3
out=$(nsx c "$SLUICE" -c "$conf" --state-dir "$SL_STATE" tproxy --resolver none 2>&1); rc=$?
is "$rc" 69 "a busy port 53 stops sluice with 69"
like "$out" "dns: udp 127\.0\.0\.1:53: Address already in use" "naming the address"

done_testing
