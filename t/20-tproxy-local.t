#!/bin/bash
# SPDX-License-Identifier: MIT
# A local client's TCP flows: the listed port of a real address reaches the
# configured upstream, another port of the same address reaches the real
# host, `direct: original` reaches the real server without looping, an
# unreachable upstream resets the client, and a clean stop restores the
# kernel state exactly.
. "${TOP_SRCDIR:-$(dirname "$0")/..}/t/lib.sh"

require_netns
require_cmd curl nginx socat
plan 19

ns_new c	# client, sluice and the configured upstream
ns_new s	# the real server at 10.9.0.5
ns_link c 10.9.0.1/24 s 10.9.0.5/24
http_server s 10.9.0.5 80 REAL80
http_server s 10.9.0.5 81 REAL81
http_server s 10.9.0.5 82 REAL82
http_server c 127.0.0.1 8080 UPSTREAM

conf="$T_TMP/sluice.yaml"
write_conf "$conf" <<'EOF2'
intercept:
  backend: iptables
services:
  - name: web
    intercept: { protocols: [tcp], addresses: [10.9.0.5], ports: [80] }
    forward: { direct: 127.0.0.1:8080 }
  - name: orig
    intercept: { protocols: [tcp], addresses: [10.9.0.5/32], ports: [82] }
    forward: { direct: original }
  - name: dead
    intercept: { protocols: [tcp], addresses: [10.9.0.5], ports: [83] }
    forward: { direct: 127.0.0.1:9 }
EOF2

before=$(settled_state c)
sluice_start c "$conf"
ok $? "sluice tproxy starts"

rules=$(nsx c iptables-legacy-save -t mangle)
like "$rules" "-A PREROUTING -j NF-INTERCEPT" "PREROUTING jumps to NF-INTERCEPT"
like "$rules" "-A NF-INTERCEPT -d 10.9.0.5/32 -p tcp -m tcp --dport 80 -m comment --comment web -j TPROXY --on-port [0-9]+ --on-ip 127.0.0.1 --tproxy-mark 0x1/0x1" \
	"a TPROXY rule for web, named in its comment"
like "$(nsx c ip rule)" "9100:.*fwmark 0x1/0x1 lookup 100" "policy rule for the tproxy mark"

body=$(nsx c curl -sS --max-time 5 http://10.9.0.5/ 2>&1)
is "$body" UPSTREAM "the intercepted port reaches the configured upstream"
body=$(nsx c curl -sS --max-time 5 http://10.9.0.5:81/ 2>&1)
is "$body" REAL81 "another port of the same address reaches the real host"
body=$(nsx c curl -sS --max-time 5 http://10.9.0.5:82/ 2>&1)
is "$body" REAL82 "direct: original reaches the real server without looping"

start=$(date +%s%N)
nsx c curl -sS --max-time 5 http://10.9.0.5:83/ >/dev/null 2>"$T_TMP/err"; rc=$?
ms=$(( ($(date +%s%N) - start) / 1000000 ))
# The reset can reach curl while it connects (7) or reads (56); either
# way it is a reset, not a timeout (28) or an empty reply (52).
like "$rc" "^(7|56)$" "an unreachable upstream resets the client"
ok $([ "$ms" -lt 2000 ] && echo 0 || echo 1) "and at once (${ms} ms)"
like "$(cat "$SL_LOG")" "flow [0-9]+ dead: .*10\.9\.0\.5:83.*127\.0\.0\.1:9" \
	"the failed dial is logged with the flow id, service and endpoints"

# A live flow in the dump: a connection that stays open for a while.
bg_ns c bash -c 'exec 3<>/dev/tcp/10.9.0.5/80; printf "GET / HTTP/1.1\r\nHost: x\r\n\r\n" >&3; sleep 3' 
sleep 0.5
dump=$(nsx c "$SLUICE" --state-dir "$SL_STATE" dump 2>&1); rc=$?
is "$rc" 0 "sluice dump answers"
like "$dump" "web" "dump lists the services"
like "$dump" "NF-INTERCEPT" "dump lists the interception rules"
like "$dump" "flows \(1\)" "dump shows the live flow"
like "$dump" "accepted [1-9]" "dump shows counters"

out=$(nsx c "$SLUICE" -c "$conf" --state-dir "$SL_STATE" tproxy 2>&1); rc=$?
is "$rc" 1 "a second instance on the same state dir is refused"
like "$out" "another sluice \(pid $SL_PID\) is running" "and says which one runs"

sluice_stop TERM
is "$SL_STATUS" 0 "SIGTERM stops sluice with status 0"
same_state "$before" "$(settled_state c)" "after the stop, rules, policy rules and routes are as before"

done_testing
