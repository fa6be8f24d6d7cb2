#!/bin/bash
# SPDX-License-Identifier: MIT
# Tunnel hosts fail over in order: a host that refuses connections, or
# never answers, is skipped (and backed off, as the dump shows) and flows
# go through the next one. When the live host stops, running and new
# client connections are reset at once rather than left hanging, and once
# it is back new flows go through again.
. "${TOP_SRCDIR:-$(dirname "$0")/..}/t/lib.sh"
. "${TOP_SRCDIR:-$(dirname "$0")/..}/t/tunnel-lib.sh"

require_netns
require_cmd curl nginx iptables-legacy
plan 43

ns_new c	# the client and the tunneller
ns_new h	# the host: 10.10.0.2 live, .3 refuses, .4 drops
ns_new s	# the server at 10.9.0.5
ns_link c 10.10.0.1/24 h 10.10.0.2/24
nsx h ip addr add 10.10.0.3/24 dev vhc
nsx h ip addr add 10.10.0.4/24 dev vhc
nsx h iptables-legacy -A INPUT -d 10.10.0.4 -p tcp --dport 4433 -j DROP
ns_link h 10.9.0.1/24 s 10.9.0.5/24
nsx c ip route add 10.9.0.0/24 via 10.10.0.2
nsx h sysctl -qw net.ipv4.ip_forward=0

# /slow/ trickles from the server's side, so that the client reads all
# there is as it comes and a reset reaches it at once.
http_server_logged s 10.9.0.5 80 REAL80 'location /slow/ { limit_rate 1m; }'
mkdir "$T_TMP/nginx-s-80/www/slow"
head -c $((10 * 1024 * 1024)) /dev/urandom > "$T_TMP/nginx-s-80/www/slow/big"

pki="$T_TMP/pki"
pki_make "$pki" gw-1 host-1
ok $? "sluice pki makes a CA and the identities"

services='services:
  - name: web
    intercept: { protocols: [tcp], addresses: [10.9.0.5], ports: [80] }
    forward: { tunnel: [10.10.0.3:4433, 10.10.0.2:4433] }
    host: { address: 10.9.0.5:80, allow: [gw-1] }
  - name: slow
    intercept: { protocols: [tcp], addresses: [10.9.0.5], ports: [82] }
    forward: { tunnel: [10.10.0.4:4433, 10.10.0.2:4433] }
    host: { address: 10.9.0.5:80, allow: [gw-1] }'
{
	identity_yaml "$pki" gw-1
	printf 'intercept:\n  backend: iptables\n  connect-timeout: 1\n%s\n' \
		"$services"
} > "$T_TMP/c.yaml"
{
	identity_yaml "$pki" host-1
	printf 'host:\n  listen: 10.10.0.2:4433\n  idle-timeout: 2\n%s\n' \
		"$services"
} > "$T_TMP/h.yaml"

daemon_start H h "$T_TMP/h.yaml" host
ok $? "sluice host starts on 10.10.0.2"
daemon_start C c "$T_TMP/c.yaml" tproxy
ok $? "sluice tproxy starts"

# The first host refuses: the flow goes through the second.
timed_curl c http://10.9.0.5/
is "$CURL_OUT" REAL80 "with the first host refusing, the flow goes through the second"
below "$CURL_MS" 1000 "without delay (${CURL_MS} ms)"
like "$(log_of C)" "tunnel 10\.10\.0\.3:4433: Connection refused; skipped for 1 s" \
	"the tunneller logs the dead host and its back-off"
# Past the back-off it is tried again, fails again, and waits longer.
sleep 1.2
timed_curl c http://10.9.0.5/
is "$CURL_OUT" REAL80 "a flow after the back-off goes through too"
like "$(log_of C)" "tunnel 10\.10\.0\.3:4433: Connection refused; skipped for 2 s" \
	"the back-off doubles"
d=$(dump_of C c)
like "$d" "  10\.10\.0\.3:4433: down, .* [1-9][0-9]* failures, 0 flows, 0 refused, retry in [12] s: Connection refused" \
	"dump: the dead host is down, with its failures, retry time and error"
like "$d" "  10\.10\.0\.2:4433: up, .* 0 failures, 2 flows" \
	"dump: the live host is up and carried both flows"

# A host that drops packets costs intercept.connect-timeout once.
timed_curl c http://10.9.0.5:82/
is "$CURL_OUT" REAL80 "with the first host silent, the flow goes through the second"
at_least "$CURL_MS" 900 "after the connect timeout (${CURL_MS} ms)"
below "$CURL_MS" 3000 "of 1 s"
like "$(dump_of C c)" "  10\.10\.0\.4:4433: down, .*retry in [0-9]+ s: no answer in 1 s" \
	"dump: the silent host is down, no answer in 1 s"
timed_curl c http://10.9.0.5:82/
below "$CURL_MS" 900 "while it backs off, flows go straight to the live host (${CURL_MS} ms)"

# Stop the host in the middle of a long download.
nsx c curl -sS --max-time 30 -o "$T_TMP/part" \
	http://10.9.0.5/slow/big 2>"$T_TMP/part.err" &
dl=$!
i=0
while [ "$(stat -c %s "$T_TMP/part" 2>/dev/null || echo 0)" -lt 300000 ] &&
	[ $i -lt 100 ]; do
	sleep 0.05
	i=$((i + 1))
done
like "$(dump_of H h)" "host flow [0-9]+ web: gw-1 .* open" "the download runs through the host"
t0=$(now_ms)
daemon_stop H TERM
ok $? "SIGTERM stops the host during the download"
is "$STOP_STATUS" 0 "with status 0"
wait "$dl"
rc=$?
ms=$(since_ms "$t0")
is "$rc" 56 "the running download is reset (curl: $(head -c 80 "$T_TMP/part.err"))"
below "$ms" 2000 "at once, not left hanging (${ms} ms)"
size=$(stat -c %s "$T_TMP/part")
below "$size" $((10 * 1024 * 1024)) "and is incomplete ($size bytes)"

timed_curl c http://10.9.0.5/
like "$CURL_RC" "^(7|56)$" "with no host up, a new connection is reset"
below "$CURL_MS" 2000 "at once (${CURL_MS} ms)"
like "$(log_of C)" "flow [0-9]+ web: .*tunnel: no tunnel host reachable|tunnel 10\.10\.0\.2:4433: Connection refused" \
	"the tunneller logs why"
like "$(dump_of C c)" "  10\.10\.0\.2:4433: down, .*retry in [0-9]+ s: Connection refused" \
	"dump: the stopped host is down"

# retry_curl URL: curl until it gets REAL80 (5 s at most); RETRY_MS.
retry_curl() {
	local t0 i=0 out=""
	t0=$(now_ms)
	while [ $i -lt 25 ]; do
		out=$(nsx c curl -sS --max-time 2 "$1" 2>/dev/null)
		[ "$out" = REAL80 ] && break
		sleep 0.2
		i=$((i + 1))
	done
	RETRY_MS=$(since_ms "$t0")
	[ "$out" = REAL80 ]
}

daemon_start H h "$T_TMP/h.yaml" host
ok $? "the host starts again"
retry_curl http://10.9.0.5/
ok $? "new flows go through again after the back-off (${RETRY_MS} ms)"
below "$RETRY_MS" 4000 "within a few seconds"
like "$(log_of C)" "tunnel 10\.10\.0\.2:4433: reachable again" \
	"the tunneller logs the host's return"
like "$(dump_of C c)" "  10\.10\.0\.2:4433: up, [0-9]+ ready" \
	"dump: the host is up again, with connections ready"

# Stop the host while the tunneller holds only idle, ready connections.
sleep 0.5
like "$(dump_of C c)" "  10\.10\.0\.2:4433: up, [1-9] ready" "the pool holds idle connections"
daemon_stop H TERM
ok $? "SIGTERM stops the idle host"
sleep 0.2
timed_curl c http://10.9.0.5/
like "$CURL_RC" "^(7|56)$" "a new connection is reset, not sent over a dead pooled connection"
below "$CURL_MS" 2000 "at once (${CURL_MS} ms)"
like "$(dump_of C c)" "  10\.10\.0\.2:4433: down, 0 ready" \
	"the pool is emptied"

daemon_start H h "$T_TMP/h.yaml" host
ok $? "the host starts once more"
retry_curl http://10.9.0.5/
ok $? "and new flows go through again (${RETRY_MS} ms)"

# The host ends a flow idle for host.idle-timeout; the client is reset.
t0=$(now_ms)
nsx c timeout 10 bash -c 'exec 3<>/dev/tcp/10.9.0.5/80; cat <&3' \
	2>"$T_TMP/idle.err"
ms=$(since_ms "$t0")
like "$(cat "$T_TMP/idle.err")" "Connection reset by peer" \
	"an idle flow is reset"
ok $([ "$ms" -ge 1800 ] && [ "$ms" -lt 4000 ]; echo $?) \
	"after the host's idle-timeout, 2 s (${ms} ms)"
like "$(log_of H)" "host flow [0-9]+ web: reset: Connection timed out: idle for 2 s" \
	"the host logs why"

daemon_stop C TERM
ok $? "the tunneller stops"
is "$STOP_STATUS" 0 "with status 0"
daemon_stop H TERM
sanitizer_clean "no sanitizer reports in the logs" "$C_LOG" "$H_LOG"

done_testing
