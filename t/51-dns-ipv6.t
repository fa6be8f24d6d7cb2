#!/bin/bash
# SPDX-License-Identifier: MIT
# The nameserver with an IPv6 pool: AAAA for a service name is a pool
# address, intercepted (ip6tables rule, local route) before the answer
# arrives, and a client reaching it by address or by name through the
# system resolver lands on the upstream; hostnames: real intercepts the
# upstream's IPv6 address on the service's ports only; a stop restores
# resolv.conf and both families' kernel state, and so does `sluice
# cleanup` after SIGKILL.
. "${TOP_SRCDIR:-$(dirname "$0")/..}/t/lib.sh"
. "${TOP_SRCDIR:-$(dirname "$0")/..}/t/dns-lib.sh"

require_netns
require_cmd curl nginx dig dnsmasq ip6tables-legacy-save
plan 28

ns_new c	# client, sluice, its dnsmasq upstream, the configured upstream
ns_new s	# the real server at fd00:9::5
ns_link c 10.9.0.1/24 s 10.9.0.5/24
nsx c ip -6 addr add fd00:9::1/64 dev vcs nodad
nsx s ip -6 addr add fd00:9::5/64 dev vsc nodad
dns_ns_files c 'nameserver 127.0.0.9\n' '127.0.0.1\tlocalhost\n'
cp "$DNS_RESOLV" "$T_TMP/resolv.want"
http_server s '[fd00:9::5]' 80 REAL6-80
http_server s '[fd00:9::5]' 81 REAL6-81
http_server c '[::1]' 8080 UPSTREAM6

dns_upstream c 127.0.0.2 --local=/corp.test/ \
	--host-record=real.corp.test,fd00:9::5
ok $? "a dnsmasq upstream answers on 127.0.0.2"

conf="$T_TMP/sluice.yaml"
write_conf "$conf" <<'EOF2'
intercept:
  backend: iptables
dns:
  listen: 127.0.0.1:53
  ip-range: "fd00:a::/112"
  upstream: [127.0.0.2]
  hostnames: real
  resolver: resolv.conf
services:
  - name: web
    intercept: { protocols: [tcp], addresses: [web.corp.test, "*.docs.corp.test"], ports: [80] }
    forward: { direct: "[::1]:8080" }
  - name: realweb
    intercept: { protocols: [tcp], addresses: [real.corp.test], ports: [80] }
    forward: { direct: "[::1]:8080" }
EOF2

# get URL: the body, or curl's complaint.
get() {
	nsx c curl -sS -g --max-time 5 "$1" 2>&1
}

before=$(settled_state c)
sluice_start c "$conf"
ok $? "sluice tproxy starts with an IPv6 pool"
like "$(cat "$SL_LOG")" "self-test passed" "the self-test passes"

# ---- pool addresses ----
a=$(q c +short web.corp.test AAAA)
like "$a" '^fd00:a::[0-9a-f]+$' "AAAA for a service name: an address of the IPv6 pool"
is "$(status c web.corp.test A)" NOERROR "A for it: NOERROR"
like "$(q c web.corp.test A)" "ANSWER: 0," "with no answer (NODATA): the pool has no IPv4 addresses"
like "$(nsx c ip6tables-legacy-save -t mangle)" \
	"-A NF-INTERCEPT -d $a/128 -p tcp -m tcp --dport 80 -m comment --comment web -j TPROXY --on-port [0-9]+ --on-ip ::1" \
	"its ip6tables TPROXY rule is there when the answer arrives"
like "$(nsx c ip -6 route show table local)" "local $a dev lo proto 83" "and its local route"
is "$(get "http://[$a]/")" UPSTREAM6 "curl to the pool address reaches the upstream"
is "$(get http://web.corp.test/)" UPSTREAM6 "curl to the name, through the system resolver, too"
w=$(q c +short x.docs.corp.test AAAA)
like "$w" '^fd00:a::[0-9a-f]+$' "a wildcard name gets an IPv6 pool address"
ok $([ "$w" != "$a" ] && echo 0 || echo 1) "its own ($w)"
is "$(get http://y.docs.corp.test/)" UPSTREAM6 "curl to a wildcard name reaches the upstream"

# ---- hostnames: real ----
is "$(q c +short real.corp.test AAAA)" fd00:9::5 "hostnames: real answers the upstream's IPv6 address"
like "$(nsx c ip6tables-legacy-save -t mangle)" \
	"-A NF-INTERCEPT -d fd00:9::5/128 -p tcp -m tcp --dport 80 -m comment --comment realweb -j TPROXY" \
	"which is intercepted for the service"
unlike "$(nsx c ip -6 route show table local)" "fd00:9::5" "without a local route: other ports must pass"
is "$(get http://real.corp.test/)" UPSTREAM6 "the service's port of the real address reaches the upstream"
is "$(get http://real.corp.test:81/)" REAL6-81 "another port of it reaches the real server"

dump=$(nsx c "$SLUICE" --state-dir "$SL_STATE" dump 2>&1)
like "$dump" "web\.corp\.test $a web \(pool\)" "dump lists the name with its IPv6 pool address"
like "$dump" "real\.corp\.test fd00:9::5 realweb \(real\)" "and the real one"

sluice_stop TERM
is "$SL_STATUS" 0 "SIGTERM stops sluice with status 0"
if cmp -s "$DNS_RESOLV" "$T_TMP/resolv.want"; then ok 0 "resolv.conf is restored byte for byte"
else ok 1 "resolv.conf is restored byte for byte"; diag "$(cat -A "$DNS_RESOLV")"; fi
same_state "$before" "$(settled_state c)" "IPv4 and IPv6 rules, routes (local ones too) and policy rules are as before"

# ---- a restart keeps the name's address; SIGKILL and cleanup ----
sluice_start c "$conf"
is "$(q c +short web.corp.test AAAA)" "$a" "after a restart, the name keeps its IPv6 address"
sluice_stop KILL
like "$(nsx c ip -6 route show table local)" "local $a dev lo proto 83" \
	"SIGKILL leaves its local route behind"
out=$(nsx c "$SLUICE" -c "$conf" --state-dir "$SL_STATE" cleanup 2>&1); rc=$?
is "$rc" 0 "sluice cleanup succeeds"
if cmp -s "$DNS_RESOLV" "$T_TMP/resolv.want"; then ok 0 "and restores resolv.conf"
else ok 1 "and restores resolv.conf"; diag "$(cat -A "$DNS_RESOLV")"; fi
same_state "$before" "$(settled_state c)" "and both families' kernel state, pool routes included"

done_testing
