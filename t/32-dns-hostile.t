#!/bin/bash
# SPDX-License-Identifier: MIT
# Nothing a hostile client sends stops the nameserver: thousands of random
# and mangled datagrams, broken TCP streams, more connections than it
# keeps, connections that trickle bytes; it goes on answering over UDP and
# TCP, answers hundreds of pipelined queries on one connection, closes idle
# connections, counts what it dropped, and stops cleanly.
. "${TOP_SRCDIR:-$(dirname "$0")/..}/t/lib.sh"
. "${TOP_SRCDIR:-$(dirname "$0")/..}/t/dns-lib.sh"

require_netns
require_cmd dig socat
TOOL="${TOP_BUILDDIR:-$(pwd)}/t/dns_tool"
[ -x "$TOOL" ] || skip_all "needs t/dns_tool (make check builds it)"
plan 17

ns_new c
dns_ns_files c 'nameserver 127.0.0.9\n' '127.0.0.1 localhost\n'
conf="$T_TMP/sluice.yaml"
write_conf "$conf" <<'EOF2'
intercept:
  backend: iptables
dns:
  resolver: resolv.conf
services:
  - name: web
    intercept: { protocols: [tcp], addresses: [web.corp.test, "*.docs.corp.test"], ports: [80] }
    forward: { direct: 127.0.0.1:8080 }
EOF2

before=$(settled_state c)
sluice_start c "$conf"
ok $? "sluice starts"
a=$(q c +short web.corp.test)
like "$a" '^169\.254\.' "it answers ($a)"

out=$(nsx c "$TOOL" garbage 127.0.0.1 53 5000 1)
like "$out" "sent [0-9]+" "5000 random and mangled datagrams are sent"
ok $(kill -0 "$SL_PID" 2>/dev/null && echo 0 || echo 1) "sluice is still running"
is "$(q c +short web.corp.test)" "$a" "and answers over UDP"

out=$(nsx c "$TOOL" tcpjunk 127.0.0.1 53 500 2)
like "$out" "broken [0-9]+" "500 broken TCP streams are sent"
is "$(q c +short +tcp web.corp.test)" "$a" "it still answers over TCP"

out=$(nsx c "$TOOL" pipeline 127.0.0.1 53 web.corp.test 500)
is "$out" "answered 500" "500 queries pipelined on one connection are all answered"

# More connections than it keeps, each trickling one byte: the idle ones
# make room for a real client.
bg_ns c "$TOOL" hold 127.0.0.1 53 200 4 >/dev/null
sleep 1
is "$(q c +short +tcp web.corp.test)" "$a" "with 200 connections held open, a new client is answered"

# An idle connection is closed (10 s) rather than held for ever.
start=$(date +%s)
nsx c timeout 20 socat -u TCP:127.0.0.1:53 /dev/null 2>/dev/null; rc=$?
secs=$(( $(date +%s) - start ))
ok $([ "$rc" -eq 0 ] && [ "$secs" -ge 8 ] && [ "$secs" -le 15 ] && echo 0 || echo 1) \
	"an idle connection is closed by the server (after $secs s)"

dump=$(nsx c "$SLUICE" --state-dir "$SL_STATE" dump 2>&1)
like "$dump" "malformed [1-9]" "dump counts the malformed queries"
like "$dump" "tcp-evicted [1-9]" "and the connections it made room by closing"
unlike "$(cat "$SL_LOG")" "WARN.*malformed" "malformed queries are not logged as warnings"
n=$(wc -l < "$SL_LOG")
ok $([ "$n" -lt 400 ] && echo 0 || echo 1) "the log stays short ($n lines at -v 4)"

sluice_stop TERM
is "$SL_STATUS" 0 "SIGTERM stops sluice with status 0"
unlike "$(cat "$SL_LOG")" "AddressSanitizer|runtime error" "no sanitizer reports"
same_state "$before" "$(settled_state c)" "the kernel state is as before"

done_testing
