#!/bin/bash
# SPDX-License-Identifier: MIT
# Flows through the TLS tunnel, end to end: a tunneller (`sluice tproxy`)
# intercepts a client's flows and carries them to a `sluice host`, which
# dials the server; the host namespace does not route, so the server is
# reached only through the host's own dials. HTTP, redis, 50 parallel
# 10 MiB downloads, a half-closed upload, `host.address: original`, the
# dumps of both sides, and a clean stop.
. "${TOP_SRCDIR:-$(dirname "$0")/..}/t/lib.sh"
. "${TOP_SRCDIR:-$(dirname "$0")/..}/t/tunnel-lib.sh"

require_netns
require_cmd curl nginx socat sha256sum redis-server redis-benchmark
plan 44

ns_new c	# the client and the tunneller
ns_new h	# the host
ns_new s	# the servers at 10.9.0.5
ns_link c 10.10.0.1/24 h 10.10.0.2/24
ns_link h 10.9.0.1/24 s 10.9.0.5/24
nsx c ip route add 10.9.0.0/24 via 10.10.0.2
nsx h sysctl -qw net.ipv4.ip_forward=0

http_server s 10.9.0.5 80 REAL80
http_server s 10.9.0.5 81 REAL81
big="$T_TMP/nginx-s-80/www/big"
head -c $((10 * 1024 * 1024)) /dev/urandom > "$big"
want=$(sha256sum < "$big" | cut -d' ' -f1)
# The sink hashes what it is sent and answers only after the client's
# EOF has come through the tunnel: that needs the half-close.
printf '#!/bin/sh\nsha256sum | cut -c1-64\n' > "$T_TMP/hash"
chmod +x "$T_TMP/hash"
bg_ns s socat TCP-LISTEN:9000,bind=10.9.0.5,reuseaddr,fork EXEC:"$T_TMP/hash"
wait_port s 10.9.0.5 9000
mkdir -p "$T_TMP/redis"
bg_ns s redis-server --bind 10.9.0.5 --port 6379 --protected-mode no \
	--save '' --appendonly no --dir "$T_TMP/redis" \
	--logfile "$T_TMP/redis/log" --daemonize no
wait_port s 10.9.0.5 6379

pki="$T_TMP/pki"
pki_make "$pki" gw-1 host-1
ok $? "sluice pki makes a CA and the identities"

services='services:
  - name: web
    intercept: { protocols: [tcp], addresses: [10.9.0.5], ports: [80] }
    forward: { tunnel: [10.10.0.2:4433] }
    host: { address: 10.9.0.5:80, allow: [gw-1] }
  - name: redis
    intercept: { protocols: [tcp], addresses: [10.9.0.5], ports: [6379] }
    forward: { tunnel: [10.10.0.2:4433] }
    host: { address: 10.9.0.5:6379, allow: ["gw-*"] }
  - name: sink
    intercept: { protocols: [tcp], addresses: [10.9.0.5], ports: [90] }
    forward: { tunnel: [10.10.0.2:4433] }
    host: { address: 10.9.0.5:9000, allow: [gw-1] }
  - name: orig
    intercept: { protocols: [tcp], addresses: [10.9.0.5], ports: [81] }
    forward: { tunnel: [10.10.0.2:4433] }
    host: { address: original, allowed-addresses: [10.9.0.0/24], allow: [gw-1] }'
{
	identity_yaml "$pki" gw-1
	printf 'intercept:\n  backend: iptables\n%s\n' "$services"
} > "$T_TMP/c.yaml"
{
	identity_yaml "$pki" host-1
	printf 'host:\n  listen: 10.10.0.2:4433\n%s\n' "$services"
} > "$T_TMP/h.yaml"

out=$(nsx c curl -sS --max-time 2 http://10.9.0.5/ 2>&1)
unlike "$out" REAL80 "without sluice the client cannot reach the server (the host does not route)"

before=$(settled_state c)
daemon_start H h "$T_TMP/h.yaml" host
ok $? "sluice host starts"
daemon_start C c "$T_TMP/c.yaml" tproxy
ok $? "sluice tproxy starts"

body=$(nsx c curl -sS --max-time 5 http://10.9.0.5/ 2>&1)
is "$body" REAL80 "curl through the tunnel gets the server's page"
like "$(cat "$H_LOG")" "host flow [0-9]+ web: gw-1 from 10\.10\.0\.1:[0-9]+: open to 10\.9\.0\.5:80" \
	"the host logs the flow with the tunneller's identity"

body=$(nsx c curl -sS --max-time 5 http://10.9.0.5:81/ 2>&1)
is "$body" REAL81 "host.address original reaches the original destination within allowed-addresses"
like "$(cat "$H_LOG")" "host flow [0-9]+ orig: gw-1 from .*: open to 10\.9\.0\.5:81" \
	"and the host dialled that destination"

# redis-benchmark -q prints one line per test, progress overwritten by \r.
out=$(nsx c timeout 40 redis-benchmark -h 10.9.0.5 -p 6379 -q -n 2000 -c 10 \
	-t set,get 2>&1); rc=$?
res=$(printf '%s\n' "$out" | tr '\r' '\n' | grep -E 'requests per second')
is "$rc" 0 "redis-benchmark through the tunnel completes"
unlike "$out" "[Ee]rror|ERR|refused|reset" "with no errors"
like "$res" "SET: [0-9.]+ requests per second" "SET is measured"
like "$res" "GET: [0-9.]+ requests per second" "GET is measured"
rps=$(printf '%s\n' "$res" | sed -n 's/^.*: \([0-9]*\)\(\.[0-9]*\)\{0,1\} requests per second.*/\1/p' |
	sort -n | head -1)
at_least "$rps" 200 "and both at a sane rate (at least 200 requests per second)"
diag "redis-benchmark: $(printf '%s' "$res" | tr '\n' ' ')"
is "$(nsx s redis-cli -h 10.9.0.5 dbsize 2>&1)" 1 \
	"the server holds the benchmark's key"

# 50 parallel downloads of 10 MiB each.
mkdir "$T_TMP/dl"
pids=""
t0=$(now_ms)
for i in $(seq 1 50); do
	nsx c curl -sS --max-time 50 -o "$T_TMP/dl/$i" http://10.9.0.5/big \
		2>"$T_TMP/dl/$i.err" &
	pids="$pids $!"
done
fails=0
for p in $pids; do
	wait "$p" || fails=$((fails + 1))
done
diag "50 x 10 MiB in $(since_ms "$t0") ms"
is "$fails" 0 "50 parallel 10 MiB downloads through the tunnel all succeed"
good=$(cd "$T_TMP/dl" && for i in $(seq 1 50); do sha256sum < "$i"; done |
	grep -c "^$want ")
is "$good" 50 "and all 50 arrive intact (sha256)"
[ "$fails" -eq 0 ] || cat "$T_TMP"/dl/*.err | sort | uniq -c | head -5 |
	while IFS= read -r l; do diag "$l"; done
rm -rf "$T_TMP/dl"

got=$(nsx c socat -t 30 -T 30 - TCP:10.9.0.5:90 < "$big" 2>&1)
is "$got" "$want" "a 10 MiB upload arrives intact, and after the client's half-close the response comes back"
got=$(printf 'hello' | nsx c socat -t 10 - TCP:10.9.0.5:90 2>&1)
is "$got" "$(printf 'hello' | sha256sum | cut -c1-64)" \
	"a small request with half-close gets its response"

# The client's first bytes go with the opening when they are in before the
# tunneller accepts (it is stopped meanwhile, so they are), and through the
# relay when they come later; either way the flow counts them.
first_flow() {	# LABEL LINES-BEFORE: the id of the sink flow opened since
	tail -n +"$(($2 + 1))" "$C_LOG" |
		sed -n "s/.*flow \([0-9]*\) sink: .*open via tunnel .*, \([0-9]*\) bytes with the opening.*/\1 \2/p" |
		head -1
}
hello=$(printf 'hello' | sha256sum | cut -c1-64)
from=$(wc -l < "$C_LOG")
kill -STOP "$C_PID"
printf 'hello' | nsx c socat -t 10 - TCP:10.9.0.5:90 > "$T_TMP/first" 2>&1 &
fp=$!
sleep 0.5
kill -CONT "$C_PID"
wait "$fp"
is "$(cat "$T_TMP/first")" "$hello" \
	"a request in before the tunneller accepts gets its response"
read -r id nfirst <<< "$(first_flow early "$from")"
is "$nfirst" 5 "its 5 bytes went with the opening"
daemon_wait_log "$C_LOG" "flow $id sink: .* closed: up 5 down 65 bytes" 5 "$C_PID"
ok $? "and the flow counts them: up 5 down 65 bytes"
from=$(wc -l < "$C_LOG")
got=$( (sleep 0.5; printf 'hello') | nsx c socat -t 10 - TCP:10.9.0.5:90 2>&1)
is "$got" "$hello" "a request sent after the tunnel opened gets its response"
read -r id nfirst <<< "$(first_flow late "$from")"
is "$nfirst" 0 "nothing went with the opening"
daemon_wait_log "$C_LOG" "flow $id sink: .* closed: up 5 down 65 bytes" 5 "$C_PID"
ok $? "and the flow counts the 5 bytes all the same"

# A flow that stays open while the dumps are taken.
bg_ns c bash -c 'exec 3<>/dev/tcp/10.9.0.5/80; sleep 4'
sleep 0.5
cd_=$(dump_of C c); rc=$?
is "$rc" 0 "sluice dump answers on the tunneller"
like "$cd_" "tunnel hosts:" "the tunneller's dump has a tunnel hosts section"
line=$(printf '%s\n' "$cd_" | grep -E '^  10\.10\.0\.2:4433: ')
like "$line" "^  10\.10\.0\.2:4433: up, [0-9]+ ready" "which shows the host up"
n=$(printf '%s' "$line" | sed -n 's/.* \([0-9]*\) flows.*/\1/p')
at_least "$n" 60 "and counts its flows (at least 60 so far)"
like "$cd_" "flow [0-9]+ web: 10\.10\.0\.1:[0-9]+ -> 10\.9\.0\.5:80 via tunnel 10\.10\.0\.2:4433, open" \
	"the open flow is listed as going through the tunnel"
like "$cd_" "flows \(1\)" "and every earlier flow has ended"
like "$cd_" "  service web: 1 flows" "flows are counted per service"
reused=$(printf '%s' "$line" | sed -n 's/.* \([0-9]*\) reused,.*/\1/p')
tls=$(printf '%s' "$line" | sed -n 's/.* \([0-9]*\) tls connections.*/\1/p')
at_least "$reused" 1 "connections of finished flows carry later ones ($reused reused)"
below "$tls" "$n" "so the flows took fewer TLS connections ($tls for $n flows)"
hd=$(dump_of H h); rc=$?
is "$rc" 0 "sluice dump answers on the host"
hline=$(printf '%s\n' "$hd" | grep -E '^host: ')
like "$hline" "^host: listening on 10\.10\.0\.2:4433, .*tls failed 0, flows [0-9]+, refused 0, dial failed 0" \
	"the host's dump shows its listener and no failures"
n=$(printf '%s' "$hline" | sed -n 's/.* flows \([0-9]*\),.*/\1/p')
at_least "$n" 60 "and counts the flows it carried"
like "$hd" "host flow [0-9]+ web: gw-1 from 10\.10\.0\.1:[0-9]+ -> 10\.9\.0\.5:80, open" \
	"and lists the open flow with the tunneller's identity"
unlike "$hd" "host refusals" "the host refused nothing"

daemon_stop C TERM
ok $? "SIGTERM stops the tunneller"
is "$STOP_STATUS" 0 "with status 0"
same_state "$before" "$(settled_state c)" \
	"after the stop, the client's rules, policy rules and routes are as before"
daemon_stop H TERM
ok $? "SIGTERM stops the host"
is "$STOP_STATUS" 0 "with status 0"
sanitizer_clean "no sanitizer reports in the logs" "$C_LOG" "$H_LOG"

done_testing
