#!/bin/bash
# SPDX-License-Identifier: MIT
# Out of file descriptors: sluice, limited to about 64, is sent 100
# connections that stay open. It pauses accepting and says so, does not
# spin, counts the pauses, serves again once they are released, and still
# stops cleanly.
. "${TOP_SRCDIR:-$(dirname "$0")/..}/t/lib.sh"

require_netns
require_cmd curl nginx getconf prlimit
plan 24

ns_new c	# client, sluice and the upstream
ns_new s	# the real server at 10.9.0.5 (never reached here)
ns_link c 10.9.0.1/24 s 10.9.0.5/24
http_server c 127.0.0.1 8080 UPSTREAM

conf="$T_TMP/sluice.yaml"
write_conf "$conf" <<'EOF2'
intercept:
  backend: iptables
services:
  - name: web
    intercept: { protocols: [tcp], addresses: [10.9.0.5], ports: [80] }
    forward: { direct: 127.0.0.1:8080 }
EOF2

hz=$(getconf CLK_TCK)
limit=$((hz * 3 / 10))	# "does not spin": under 0.3 s of CPU per second
# ticks: CPU time (user + system) sluice has used, in clock ticks.
ticks() { sed 's/^.*) //' "/proc/$SL_PID/stat" | awk '{ print $12 + $13 }'; }
# busy: ticks sluice uses in one second of wall time.
busy() {
	t0=$(ticks); sleep 1; t1=$(ticks)
	echo $((t1 - t0))
}
secs() { awk "BEGIN { printf \"%.2f\", $1 / $hz }"; }
# idle DESCRIPTION: sluice uses less than 0.3 s of CPU in 1 s.
idle() {
	b=$(busy)
	ok $([ "$b" -lt "$limit" ] && echo 0 || echo 1) \
		"$1 ($(secs "$b") s CPU in 1 s)"
}
# at_most N COUNT DESCRIPTION, at_least N COUNT DESCRIPTION
at_most() {
	ok $([ "$2" -le "$1" ] && echo 0 || echo 1) "$3"
}
at_least() {
	ok $([ "$2" -ge "$1" ] && echo 0 || echo 1) "$3"
}
# since N REGEX: lines of the log after line N that match.
since() { tail -n +$(($1 + 1)) "$SL_LOG" | grep -cE -- "$2"; }
lines() { wc -l < "$SL_LOG"; }

# fd_limit PARITY: lowers sluice's descriptor limit to 64 or 65 so that
# the number of free descriptors is even or odd. An idle flow holds two
# (client and upstream): with an even number the last free one goes to an
# upstream socket and then accept(2) fails; with an odd number accept(2)
# gets the last one and the upstream socket(2) fails. Both happen in the
# field; fixing the parity makes each case repeatable.
fd_limit() {
	for l in 64 65; do
		used=$(ls "/proc/$SL_PID/fd" | awk -v l=$l '$1 < l' | wc -l)
		[ $(((l - used) % 2)) -eq "$1" ] && break
	done
	prlimit --pid "$SL_PID" --nofile=$l:
}

# hold: 100 connections that stay open, in the background (HOLDER). The
# kernel completes them in the listen queue whether or not sluice accepts.
hold() {
	rm -f "$T_TMP/held"
	bg_ns c bash -c "for i in \$(seq 100); do
			exec {fd}<>/dev/tcp/10.9.0.5/80 || exit 1
		done
		echo held > '$T_TMP/held'; exec sleep 300"
	HOLDER=$LAST_PID
	wait_log "$T_TMP/held" held 20
}

# served N: N concurrent requests, and how many got the upstream's page.
served() {
	pids=""
	for i in $(seq "$1"); do
		nsx c curl -sS --max-time 10 -o "$T_TMP/par.$i" \
			http://10.9.0.5/ 2>/dev/null &
		pids="$pids $!"
	done
	for p in $pids; do
		wait "$p"
	done
	n=0
	for i in $(seq "$1"); do
		[ "$(cat "$T_TMP/par.$i" 2>/dev/null)" = UPSTREAM ] && n=$((n + 1))
		rm -f "$T_TMP/par.$i"
	done
	echo "$n"
}

before=$(settled_state c)
sluice_start c "$conf"
ok $? "sluice tproxy starts"

# ---- accept(2) runs out ----

fd_limit 0
like "$(grep 'open files' "/proc/$SL_PID/limits")" "open files +6[45] " \
	"sluice's descriptor limit is lowered to about 64"
hold
ok $? "100 connections to the intercepted port are open"
wait_log "$SL_LOG" "pausing accept" 10
like "$(cat "$SL_LOG")" "WARN listener 127\.0\.0\.1:[0-9]+: out of file descriptors, pausing accept for [0-9]+ ms" \
	"the log says the listener is out of file descriptors and pausing accept"
sleep 1.5	# the back-off grows to its longest
idle "sluice does not spin while out of file descriptors"
at_most 20 "$(grep -c 'pausing accept' "$SL_LOG")" \
	"the back-off keeps the log short ($(grep -c 'pausing accept' "$SL_LOG") pauses logged)"
like "$(grep 'pausing accept' "$SL_LOG" | tail -1)" "pausing accept for 1000 ms" \
	"the pause grows to a second"
kill -0 "$SL_PID" 2>/dev/null
ok $? "sluice is still running"

# An operator asks for a dump, which needs a descriptor for the control
# connection: it may wait until one is free, but must not make sluice spin.
bg sh -c "timeout 30 ip netns exec '$NS_c' '$SLUICE' --state-dir '$SL_STATE' dump > '$T_TMP/dump' 2>&1"
dumper=$LAST_PID
sleep 0.3
idle "a dump requested while out of descriptors does not make sluice spin"
n=$(grep -c 'control: accept' "$SL_LOG")
at_most 20 "$n" "nor flood the log ($n control accept errors logged)"

# Released: the flows end, accept resumes, and the dump gets its answer.
kill "$HOLDER"
wait "$dumper"
is "$?" 0 "the dump is answered once descriptors are free"
like "$(cat "$T_TMP/dump")" "accept-paused [1-9]" "and counts the pauses (accept-paused > 0)"
is "$(served 5)" 5 "after the release, 5 concurrent connections are served"
is "$(nsx c curl -sS --max-time 5 http://10.9.0.5/ 2>&1)" UPSTREAM \
	"and a curl gets the upstream's answer"
idle "sluice is idle again"

# ---- the upstream socket(2) runs out ----

mark=$(lines)
fd_limit 1
hold
ok $? "100 connections are open again, with an odd number of free descriptors"
sleep 2.5
idle "sluice does not spin"
n=$(since "$mark" 'pausing accept')
at_least 1 "$n" "the log says it is pausing accept ($n times)"
n=$(since "$mark" 'upstream 127\.0\.0\.1:8080: socket: Too many open files')
at_most 20 "$n" "queued clients are not reset one after another ($n reset)"
kill -0 "$SL_PID" 2>/dev/null
ok $? "sluice is still running"
kill "$HOLDER"
sleep 0.5
is "$(served 5)" 5 "after the release, 5 concurrent connections are served"
is "$(nsx c curl -sS --max-time 5 http://10.9.0.5/ 2>&1)" UPSTREAM \
	"and a curl gets the upstream's answer"

sluice_stop TERM
is "$SL_STATUS" 0 "SIGTERM stops sluice with status 0"
same_state "$before" "$(settled_state c)" "rules, policy rules and routes are as before"

done_testing
