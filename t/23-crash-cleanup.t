#!/bin/bash
# SPDX-License-Identifier: MIT
# After SIGKILL the kernel state is left behind; `sluice cleanup` removes
# exactly it, and so does the next start.
. "${TOP_SRCDIR:-$(dirname "$0")/..}/t/lib.sh"

require_netns
plan 9

ns_new c
ns_new s
ns_link c 10.9.0.1/24 s 10.9.0.5/24
conf="$T_TMP/sluice.yaml"
write_conf "$conf" <<'EOF2'
intercept:
  backend: iptables
  route-table: 123
services:
  - name: web
    intercept: { protocols: [tcp], addresses: [10.9.0.5, 10.9.1.0/24], ports: [80, "8000-8100"] }
    forward: { direct: 127.0.0.1:8080 }
EOF2

before=$(settled_state c)
sluice_start c "$conf"
ok $? "sluice tproxy starts"
sluice_stop KILL
isnt_state=$(kernel_state c)
ok $([ "$isnt_state" != "$before" ] && echo 0 || echo 1) "SIGKILL leaves rules behind"

out=$(nsx c "$SLUICE" -c "$conf" --state-dir "$SL_STATE" cleanup 2>&1); rc=$?
is "$rc" 0 "sluice cleanup succeeds"
same_state "$before" "$(settled_state c)" "and restores the kernel state exactly"
out=$(nsx c "$SLUICE" -c "$conf" --state-dir "$SL_STATE" cleanup 2>&1); rc=$?
is "$rc" 0 "a second cleanup with nothing left is fine"

sluice_start c "$conf"
sluice_stop KILL
sluice_start c "$conf"
ok $? "a start after a crash succeeds"
n=$(nsx c iptables-legacy-save -t mangle | grep -c -- '-A PREROUTING -j NF-INTERCEPT')
is "$n" 1 "and replaces the leftovers instead of adding to them"
sluice_stop TERM
is "$SL_STATUS" 0 "it stops cleanly"
same_state "$before" "$(settled_state c)" "and the kernel state is as before"

done_testing
