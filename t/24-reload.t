#!/bin/bash
# SPDX-License-Identifier: MIT
# Reloading the configuration: SIGHUP takes a new service into use, a
# broken file keeps the running configuration, --refresh notices an edit
# without a signal, a flow open across a reload completes intact, and
# SIGUSR1 writes the dump of what is in use.
. "${TOP_SRCDIR:-$(dirname "$0")/..}/t/lib.sh"

require_netns
require_cmd curl nginx socat sha256sum
plan 32

ns_new c	# client, sluice and the upstreams
ns_new s	# the real server at 10.9.0.5
ns_link c 10.9.0.1/24 s 10.9.0.5/24
http_server s 10.9.0.5 80 REAL80
http_server s 10.9.0.5 81 REAL81
http_server c 127.0.0.1 8080 UPSTREAM-ALPHA
http_server c 127.0.0.1 8081 UPSTREAM-BETA
# The upload service's upstream answers with the hash of what it was sent,
# after the client's EOF.
printf '#!/bin/sh\nsha256sum | cut -c1-64\n' > "$T_TMP/hash"; chmod +x "$T_TMP/hash"
bg_ns c socat TCP-LISTEN:9000,bind=127.0.0.1,reuseaddr,fork EXEC:"$T_TMP/hash"
wait_port c 127.0.0.1 9000
head -c $((4 * 1024 * 1024)) /dev/urandom > "$T_TMP/part1"
head -c $((4 * 1024 * 1024)) /dev/urandom > "$T_TMP/part2"
want=$(cat "$T_TMP/part1" "$T_TMP/part2" | sha256sum | cut -d' ' -f1)

alpha='  - name: alpha
    intercept: { protocols: [tcp], addresses: [10.9.0.5], ports: [80] }
    forward: { direct: 127.0.0.1:8080 }'
beta='  - name: beta
    intercept: { protocols: [tcp], addresses: [10.9.0.5], ports: [81] }
    forward: { direct: 127.0.0.1:8081 }'
upload='  - name: upload
    intercept: { protocols: [tcp], addresses: [10.9.0.5], ports: [90] }
    forward: { direct: 127.0.0.1:9000 }'
conf="$T_TMP/sluice.yaml"
# conf SERVICES...: the test's configuration with upload and those services.
conf() {
	printf 'intercept:\n  backend: iptables\nservices:\n%s\n' "$upload" > "$conf.new"
	printf '%s\n' "$@" >> "$conf.new"
	mv "$conf.new" "$conf"	# as an editor saves: never half-written
}
rules() { nsx c iptables-legacy -t mangle -S; }
get() {	# get PORT: the body curl gets from 10.9.0.5:PORT
	nsx c curl -sS --max-time 5 "http://10.9.0.5:$1/" 2>&1
}
# wait_reloads N: until the log shows N finished reloads (5 s at most).
wait_reloads() {
	i=0
	while [ "$(grep -c 'reload: ' "$SL_LOG")" -lt "$1" ] && [ $i -lt 100 ]; do
		i=$((i + 1))
		sleep 0.05
	done
	[ "$(grep -c 'reload: ' "$SL_LOG")" -ge "$1" ] ||
		{ diag "fewer than $1 reloads in $SL_LOG"; return 1; }
}

# ---- SIGHUP, with --refresh off so that only the signal can reload ----

conf "$alpha"
before=$(settled_state c)
sluice_start c "$conf" --refresh 0
ok $? "sluice tproxy starts with one service"
is "$(get 80)" UPSTREAM-ALPHA "alpha's port reaches its upstream"
is "$(get 81)" REAL81 "beta's port is not intercepted yet"

# An upload in flight across the reloads: the first half goes before them,
# the second after, through the same connection (its writer waits for the
# file "go" in between).
bg_ns c sh -c "{ cat '$T_TMP/part1'; i=0
	while [ ! -e '$T_TMP/go' ] && [ \$i -lt 600 ]; do sleep 0.1; i=\$((i + 1)); done
	cat '$T_TMP/part2'; } | socat -t 30 -T 30 - TCP:10.9.0.5:90 >'$T_TMP/got'"
up_pid=$LAST_PID
i=0
until nsx c "$SLUICE" --state-dir "$SL_STATE" dump 2>/dev/null |
	grep -q "upload: .* up 4194304 down 0 bytes"; do
	i=$((i + 1))
	[ $i -lt 100 ] || { diag "the upload's first half did not pass"; break; }
	sleep 0.05
done

conf "$alpha" "$beta"
kill -HUP "$SL_PID"
wait_reloads 1
ok $? "SIGHUP reloads the configuration"
like "$(grep 'reloading ' "$SL_LOG")" "reloading $conf \(SIGHUP\)" \
	"the log says what was reloaded and why"
like "$(cat "$SL_LOG")" "reload: 3 services in use" "the log counts the services in use"
is "$(get 81)" UPSTREAM-BETA "after SIGHUP the new service's port reaches its upstream"
is "$(get 80)" UPSTREAM-ALPHA "and the old service still works"
like "$(rules)" "-A NF-INTERCEPT -d 10\.9\.0\.5/32 -p tcp -m tcp --dport 81 -m comment --comment beta -j TPROXY" \
	"iptables shows the new service's rule"

# A broken file: the errors are logged and nothing changes.
good_rules=$(rules)
printf 'intercept:\n  backend: iptables\nservices:\n  - name: gamma\n    intercept: { protocols: [tcp], adresses: [10.9.0.5], ports: [82] }\n' > "$conf.new"
mv "$conf.new" "$conf"
kill -HUP "$SL_PID"
wait_log "$SL_LOG" "WARN reload: .* has errors, keeping the running configuration" 5
ok $? "a broken file: the log says it has errors and the running configuration is kept"
like "$(cat "$SL_LOG")" "$conf:5:[0-9]+: unknown key 'adresses'" \
	"the log names each error with file:line:column"
same_state "$good_rules" "$(rules)" "the interception rules are unchanged"
is "$(get 81)" UPSTREAM-BETA "the new service still works"
is "$(get 80)" UPSTREAM-ALPHA "and so does the first one"
kill -0 "$SL_PID" 2>/dev/null
ok $? "sluice is still running"

like "$(nsx c "$SLUICE" --state-dir "$SL_STATE" dump 2>&1)" \
	"flow [0-9]+ upload: 10\.9\.0\.1:[0-9]+ -> 10\.9\.0\.5:90 via 127\.0\.0\.1:9000" \
	"the upload's flow is still open after the reloads"
touch "$T_TMP/go"
wait "$up_pid"
is "$?" 0 "the upload open across the reloads ends without error"
is "$(cat "$T_TMP/got")" "$want" "and its 8 MiB, sent before and after, arrive intact"

sluice_stop TERM
is "$SL_STATUS" 0 "SIGTERM stops sluice"

# ---- --refresh: an edit is picked up without a signal ----

conf "$alpha" "$beta"
sluice_start c "$conf" --refresh 1
ok $? "sluice restarts with two services and --refresh 1"
is "$(get 81)" UPSTREAM-BETA "beta's port reaches its upstream"
# A flow of beta that is open when beta goes away: its rules go with it,
# so sluice ends it openly instead of leaving it half-routed.
bg_ns c bash -c 'exec 3<>/dev/tcp/10.9.0.5/81; sleep 20'
sleep 0.3
conf "$alpha"
wait_log "$SL_LOG" "reloading $conf \(file changed\)" 5
ok $? "the edited file is reloaded without a signal"
wait_reloads 1
like "$(cat "$SL_LOG")" "reload: 1 flows of removed services reset" \
	"the open flow of the removed service is reset, and the log says so"
unlike "$(rules)" "comment beta" "the removed service's rule is gone"
like "$(rules)" "--dport 80 -m comment --comment alpha -j TPROXY" "the remaining one's is still there"
is "$(get 81)" REAL81 "the removed service's port is no longer intercepted"
is "$(get 80)" UPSTREAM-ALPHA "the remaining service still works"

# ---- SIGUSR1: the dump of the configuration in use ----

dumpfile="/tmp/sluice-dump.$SL_PID.txt"
trap 'rm -f "$dumpfile"; t_cleanup' EXIT
rm -f "$dumpfile"
kill -USR1 "$SL_PID"
wait_log "$SL_LOG" "dump written to $dumpfile" 5
ok $? "SIGUSR1: the log says the dump was written to $dumpfile"
dump=$(cat "$dumpfile" 2>&1)
like "$dump" "alpha" "the dump lists the service in use"
unlike "$dump" "beta" "and not the one removed"
rm -f "$dumpfile"

sluice_stop TERM
is "$SL_STATUS" 0 "SIGTERM stops sluice"
same_state "$before" "$(settled_state c)" "rules, policy rules and routes are as before"

done_testing
