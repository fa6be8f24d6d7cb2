#!/bin/bash
# SPDX-License-Identifier: MIT
# sluice tproxy under valgrind, through a working life: flows that succeed,
# UDP flows (one still live at the stop), one whose upstream is down, a 10 MiB transfer, a dump, a reload, SIGUSR1
# and a clean stop. Valgrind must find no memory errors, no leaks and no
# descriptor left open.
. "${TOP_SRCDIR:-$(dirname "$0")/..}/t/lib.sh"

require_netns
require_cmd valgrind curl nginx sha256sum
# ASan and valgrind cannot share a process; ask configure, else the binary.
case ${SLUICE_SANITIZED:-} in
yes) skip_all "sluice is built with sanitizers (--enable-sanitizers)" ;;
no) ;;
*) grep -q __asan_init "$SLUICE" 2>/dev/null &&
	skip_all "sluice is built with AddressSanitizer" ;;
esac
plan 15

ns_new c	# client, sluice and the upstream
ns_new s	# the real server at 10.9.0.5 (never reached here)
ns_link c 10.9.0.1/24 s 10.9.0.5/24
d="$T_TMP/nginx-c-8080"; mkdir -p "$d/www"
head -c $((10 * 1024 * 1024)) /dev/urandom > "$d/www/big"
want=$(sha256sum < "$d/www/big" | cut -d' ' -f1)
http_server c 127.0.0.1 8080 UPSTREAM
TOOL="${TOP_BUILDDIR:-$(pwd)}/t/udp_tool"
bg_ns c "$TOOL" echo 127.0.0.1 7007 UP-

conf="$T_TMP/sluice.yaml"
write_conf "$conf" <<'EOF2'
intercept:
  backend: iptables
services:
  - name: web
    intercept: { protocols: [tcp], addresses: [10.9.0.5], ports: [80] }
    forward: { direct: 127.0.0.1:8080 }
  - name: dead
    intercept: { protocols: [tcp], addresses: [10.9.0.5], ports: [83] }
    forward: { direct: 127.0.0.1:9 }
  - name: echo
    intercept: { protocols: [udp], addresses: [10.9.0.5], ports: [7] }
    forward: { direct: 127.0.0.1:7007 }
EOF2

# Like sluice_start, with valgrind in front and its slower start-up.
vg_log="$T_TMP/valgrind.log"
SL_STATE="$T_TMP/state-c"
SL_LOG="$T_TMP/sluice-c.log"
before=$(settled_state c)
bg_ns c valgrind --log-file="$vg_log" --leak-check=full \
	--show-leak-kinds=definite,indirect,possible \
	--errors-for-leak-kinds=definite,indirect,possible \
	--error-exitcode=99 --track-fds=yes --num-callers=30 \
	"$SLUICE" -v 4 -c "$conf" --state-dir "$SL_STATE" tproxy 2>"$SL_LOG"
SL_PID=$LAST_PID
wait_log "$SL_LOG" 'tproxy: running' 60
ok $? "sluice tproxy starts under valgrind"
dumpfile="/tmp/sluice-dump.$SL_PID.txt"
trap 'rm -f "$dumpfile"; t_cleanup' EXIT

is "$(nsx c curl -sS --max-time 30 http://10.9.0.5/ 2>&1)" UPSTREAM \
	"a flow reaches the upstream"
nsx c curl -sS --max-time 30 http://10.9.0.5:83/ >/dev/null 2>&1
like "$?" "^(7|56)$" "a flow whose upstream is down is reset"
wait_log "$SL_LOG" "flow [0-9]+ dead: .*127\.0\.0\.1:9" 30
ok $? "and its failed dial is logged"
got=$(nsx c curl -sS --max-time 120 http://10.9.0.5/big | sha256sum | cut -d' ' -f1)
is "$got" "$want" "a 10 MiB transfer arrives intact"
is "$(nsx c "$TOOL" flows 20 10.9.0.5 7 1000 UP- 2>&1)" "20 ok" \
	"udp flows reach their upstream (and stay until the stop)"
# A client that leaves without a word, in the middle of a transfer.
nsx c curl -sS --max-time 30 --limit-rate 100k -o /dev/null http://10.9.0.5/big \
	2>/dev/null &
cut_pid=$!
sleep 2
kill "$cut_pid"
wait "$cut_pid" 2>/dev/null

# An open flow across the reload and the dumps, still open at the stop.
bg_ns c bash -c 'exec 3<>/dev/tcp/10.9.0.5/80; sleep 300'
wait_log "$SL_LOG" "flow [0-9]+ web: .*open via" 30
dump=$(timeout 60 ip netns exec "$NS_c" "$SLUICE" --state-dir "$SL_STATE" dump 2>&1)
like "$dump" "flow [0-9]+ web: " "sluice dump answers and shows the open flow"
printf '  - name: extra\n    intercept: { protocols: [tcp], addresses: [10.9.0.5], ports: [84] }\n    forward: { direct: 127.0.0.1:8080 }\n' >> "$conf"
kill -HUP "$SL_PID"
wait_log "$SL_LOG" "reload: 4 services in use" 60
ok $? "SIGHUP reloads the configuration"
rm -f "$dumpfile"
kill -USR1 "$SL_PID"
wait_log "$SL_LOG" "dump written to $dumpfile" 60
ok $? "SIGUSR1 writes the dump"
rm -f "$dumpfile"
is "$(nsx c curl -sS --max-time 30 http://10.9.0.5:84/ 2>&1)" UPSTREAM \
	"the reloaded configuration is in use"

kill -TERM "$SL_PID"
i=0
while kill -0 "$SL_PID" 2>/dev/null && [ $i -lt 1200 ]; do
	i=$((i + 1))
	sleep 0.05
done
wait "$SL_PID"
is "$?" 0 "SIGTERM: sluice exits 0 and valgrind found no errors or leaks (status 99 if it did)"
same_state "$before" "$(settled_state c)" "rules, policy rules and routes are as before"

vg=$(sed 's/^==[0-9]*== //' "$vg_log")
T_FAILED_BEFORE=$T_FAILED
like "$vg" "ERROR SUMMARY: 0 errors from 0 contexts" \
	"valgrind: no invalid accesses, uses of uninitialised memory or bad frees"
if printf '%s\n' "$vg" | grep -q 'All heap blocks were freed'; then
	ok 0 "valgrind: all heap blocks were freed"
else
	printf '%s\n' "$vg" | grep -q 'definitely lost: 0 bytes' &&
	printf '%s\n' "$vg" | grep -q 'indirectly lost: 0 bytes' &&
	printf '%s\n' "$vg" | grep -q 'possibly lost: 0 bytes'
	ok $? "valgrind: nothing definitely, indirectly or possibly lost"
fi
# Every socket, pipe and file that sluice opened is closed at exit: what
# remains open is inherited (stdio, the test's and valgrind's own).
open=$(printf '%s\n' "$vg" | grep -cE '^Open (file descriptor|[A-Za-z0-9_]+ socket|pipe)')
inherited=$(printf '%s\n' "$vg" | grep -c '<inherited from parent>')
ok $([ "$open" -gt 0 ] && [ "$open" -eq "$inherited" ] && echo 0 || echo 1) \
	"valgrind: no descriptor of sluice's left open at exit ($open open, $inherited inherited)"
[ "$T_FAILED" -eq "$T_FAILED_BEFORE" ] ||
	diag "valgrind report:" "$(printf '%s\n' "$vg" | head -150)"

done_testing
