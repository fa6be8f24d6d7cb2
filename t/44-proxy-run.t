#!/bin/bash
# SPDX-License-Identifier: MIT
# The other modes of the tunnel. `sluice proxy` and `sluice host` run as
# an unprivileged user: the proxy's ports forward through the tunnel and
# straight to a `direct:` upstream, --bind moves them. `sluice run` is
# tproxy and host in one process: a client's flows are intercepted by one
# `run` and hosted by another, and a `run` also hosts the flows it
# intercepts itself; its own dials are never intercepted again.
. "${TOP_SRCDIR:-$(dirname "$0")/..}/t/lib.sh"
. "${TOP_SRCDIR:-$(dirname "$0")/..}/t/tunnel-lib.sh"

require_netns
require_cmd curl nginx setpriv
id nobody >/dev/null 2>&1 || skip_all "needs user nobody"
nogroup=$(id -gn nobody)
plan 51

ns_new c	# the client: proxy, later a tunneller
ns_new h	# the host
ns_new s	# the server at 10.9.0.5
ns_link c 10.10.0.1/24 h 10.10.0.2/24
ns_link h 10.9.0.1/24 s 10.9.0.5/24
nsx c ip route add 10.9.0.0/24 via 10.10.0.2
nsx h sysctl -qw net.ipv4.ip_forward=0

http_server_logged s 10.9.0.5 80 REAL80
http_server c 127.0.0.1 8081 DIRECT

# Identities that user nobody can read, and state dirs it owns.
pki="$T_TMP/pki"
pki_make "$pki" gw-1 host-1
ok $? "sluice pki makes a CA and the identities"
ids="$T_TMP/ids"
install -d -o nobody -g "$nogroup" -m 700 "$ids"
for n in gw-1 host-1; do
	install -o nobody -g "$nogroup" -m 644 "$pki/$n.crt" "$ids/"
	install -o nobody -g "$nogroup" -m 600 "$pki/$n.key" "$ids/"
done
install -o nobody -g "$nogroup" -m 644 "$pki/ca.crt" "$ids/"
for tag in P H; do
	install -d -o nobody -g "$nogroup" -m 700 "$T_TMP/state-$tag"
done

{
	identity_yaml "$ids" gw-1
	cat <<'EOF2'
intercept:
  idle-timeout: 2
services:
  - name: web
    forward: { tunnel: [10.10.0.2:4433] }
  - name: local
    forward: { direct: 127.0.0.1:8081 }
EOF2
} > "$T_TMP/p.yaml"
{
	identity_yaml "$ids" host-1
	cat <<'EOF2'
host:
  listen: 10.10.0.2:4433
services:
  - name: web
    host: { address: 10.9.0.5:80, allow: [gw-1] }
EOF2
} > "$T_TMP/h.yaml"

SL_AS="setpriv --reuid=nobody --regid=$nogroup --clear-groups"
daemon_start H h "$T_TMP/h.yaml" host
ok $? "sluice host starts as nobody"
daemon_start P c "$T_TMP/p.yaml" proxy web:8080 local:8090
ok $? "sluice proxy starts as nobody"
SL_AS=
is "$(ps -o user= -p "$H_PID") $(ps -o user= -p "$P_PID")" "nobody nobody" \
	"both run as nobody"
is "$(awk '/^CapEff/ { print $2 }' "/proc/$P_PID/status")" 0000000000000000 \
	"the proxy has no capabilities"
like "$(cat "$P_LOG")" "proxy: web on 127\.0\.0\.1:8080" "the proxy says where web listens"
like "$(cat "$P_LOG")" "proxy: local on 127\.0\.0\.1:8090" "and where local listens"

timed_curl c http://127.0.0.1:8080/
is "$CURL_OUT" REAL80 "the proxy's port for web reaches the server through the tunnel"
like "$(cat "$H_LOG")" "host flow [0-9]+ web: gw-1 from 10\.10\.0\.1:[0-9]+: open to 10\.9\.0\.5:80" \
	"the unprivileged host carried it for gw-1"
timed_curl c http://127.0.0.1:8090/
is "$CURL_OUT" DIRECT "the proxy's port for a direct: service reaches its upstream"
d=$(dump_of P c)
like "$d" "  10\.10\.0\.2:4433: up, .* 1 flows" "the proxy's dump shows the tunnel host up with its flow"
like "$(dump_of H h)" "^host: listening on 10\.10\.0\.2:4433, .*flows 1, refused 0" \
	"the host's dump shows its flow"
timed_curl c http://10.10.0.1:8080/
like "$CURL_RC" "^7$" "without --bind, nothing listens on other addresses"

# A flow idle for intercept.idle-timeout ends: the client is reset.
t0=$(now_ms)
nsx c timeout 10 bash -c 'exec 3<>/dev/tcp/127.0.0.1/8080; cat <&3' \
	2>"$T_TMP/idle.err"
ms=$(since_ms "$t0")
like "$(cat "$T_TMP/idle.err")" "Connection reset by peer" \
	"an idle tunnelled flow is reset"
ok $([ "$ms" -ge 1800 ] && [ "$ms" -lt 4000 ]; echo $?) \
	"after intercept.idle-timeout, 2 s (${ms} ms)"
like "$(cat "$P_LOG")" "flow [0-9]+ web: .* reset: relay: Connection timed out: idle for 2 s" \
	"the proxy logs why"
daemon_stop P TERM
ok $? "SIGTERM stops the proxy"
is "$STOP_STATUS" 0 "with status 0"

SL_AS="setpriv --reuid=nobody --regid=$nogroup --clear-groups"
daemon_start P c "$T_TMP/p.yaml" --bind 10.10.0.1 proxy web:8080
ok $? "sluice proxy --bind 10.10.0.1 starts as nobody"
SL_AS=
like "$(log_of P)" "proxy: web on 10\.10\.0\.1:8080" "and says it listens there"
timed_curl c http://10.10.0.1:8080/
is "$CURL_OUT" REAL80 "the bound address forwards through the tunnel"
timed_curl c http://127.0.0.1:8080/
like "$CURL_RC" "^7$" "and 127.0.0.1 is no longer served"
daemon_stop P TERM
ok $? "the proxy stops"
daemon_stop H TERM
ok $? "SIGTERM stops the host"
is "$STOP_STATUS" 0 "with status 0"

out=$(nsx c setpriv --reuid=nobody --regid="$nogroup" --clear-groups \
	"$SLUICE" -c "$T_TMP/p.yaml" --state-dir "$T_TMP/state-P" run 2>&1)
is "$?" 77 "sluice run as nobody exits 77"
like "$out" "needs root or CAP_NET_ADMIN" "and says why"

# Without --state-dir, a user's daemon lives in its runtime dir; a state
# dir another user owns (here a world-writable one of root's) is refused.
install -d -o nobody -g "$nogroup" -m 700 "$T_TMP/xdg"
SL_XDG="env XDG_RUNTIME_DIR=$T_TMP/xdg"
bg_ns c setpriv --reuid=nobody --regid="$nogroup" --clear-groups $SL_XDG \
	"$SLUICE" -c "$T_TMP/p.yaml" proxy local:8095 2>>"$T_TMP/xdg.log"
X_PID=$LAST_PID
daemon_wait_log "$T_TMP/xdg.log" "proxy: running" 10 "$X_PID"
ok $? "proxy as nobody starts without --state-dir"
out=$(nsx c setpriv --reuid=nobody --regid="$nogroup" --clear-groups \
	$SL_XDG "$SLUICE" dump 2>&1)
like "$out" "state dir $T_TMP/xdg/sluice" \
	"its state dir is \$XDG_RUNTIME_DIR/sluice, where dump finds it"
pid_stop "$X_PID"
install -d -m 1777 "$T_TMP/roots"
out=$(nsx c timeout 5 setpriv --reuid=nobody --regid="$nogroup" \
	--clear-groups "$SLUICE" -c "$T_TMP/p.yaml" --state-dir "$T_TMP/roots" \
	proxy local:8096 2>&1)
is "$?" 1 "a state dir owned by another user is refused (exit 1)"
like "$out" "state dir $T_TMP/roots belongs to another user; refusing it" \
	"and says so"

# sluice run on both sides, one configuration for the whole deployment.
# The host side intercepts the server's address too: its own dials must
# bypass that, or they would loop back into its tunnel.
services='services:
  - name: web
    intercept: { protocols: [tcp], addresses: [10.9.0.5], ports: [80] }
    forward: { tunnel: [10.10.0.2:4433] }
    host: { address: 10.9.0.5:80, allow: [gw-1, host-1] }'
{
	identity_yaml "$pki" gw-1
	printf 'intercept:\n  backend: iptables\nhost:\n  listen: 10.10.0.1:4433\n%s\n' \
		"$services"
} > "$T_TMP/rc.yaml"
{
	identity_yaml "$pki" host-1
	printf 'intercept:\n  backend: iptables\nhost:\n  listen: 10.10.0.2:4433\n%s\n' \
		"$services"
} > "$T_TMP/rh.yaml"
before_c=$(settled_state c)
before_h=$(settled_state h)
seen=$(requests_seen s 80)
daemon_start RH h "$T_TMP/rh.yaml" run
ok $? "sluice run starts on the host side"
daemon_start RC c "$T_TMP/rc.yaml" run
ok $? "sluice run starts on the client side"
like "$(cat "$RC_LOG")" "host: listening on 10\.10\.0\.1:4433" "run listens as a host"
like "$(nsx c iptables-legacy-save -t mangle)" "-A NF-INTERCEPT -d 10\.9\.0\.5/32 -p tcp .*--comment web -j TPROXY" \
	"and intercepts as tproxy does"

timed_curl c http://10.9.0.5/
is "$CURL_OUT" REAL80 "a client's flow is intercepted by one run and hosted by the other"
like "$(cat "$RH_LOG")" "host flow [0-9]+ web: gw-1 from 10\.10\.0\.1:[0-9]+: open to 10\.9\.0\.5:80" \
	"the host side's run carried it for gw-1"

timed_curl h http://10.9.0.5/
is "$CURL_OUT" REAL80 "on the host side, one run intercepts a flow and hosts it itself"
like "$(cat "$RH_LOG")" "flow [0-9]+ web: 10\.9\.0\.1:[0-9]+ -> 10\.9\.0\.5:80: open via tunnel 10\.10\.0\.2:4433" \
	"its tproxy side sent it through the tunnel"
like "$(cat "$RH_LOG")" "host flow [0-9]+ web: host-1 from 10\.10\.0\.2:[0-9]+: open to 10\.9\.0\.5:80" \
	"and its host side carried it for host-1"
is "$(($(requests_seen s 80) - seen))" 2 "the server saw the two requests, once each: no loop"
like "$(tail -2 "$T_TMP/nginx-s-80/access.log" | cut -d' ' -f1 | sort -u)" "^10\.9\.0\.1$" \
	"both from the host side's address"

d=$(dump_of RH h)
like "$d" "tunnel hosts:
  10\.10\.0\.2:4433: up, .* 1 flows" "the run's dump has its tunnel hosts"
like "$d" "host: listening on 10\.10\.0\.2:4433, .*flows 2, refused 0" \
	"and its host, with both flows"

daemon_stop RC TERM
ok $? "SIGTERM stops the client side's run"
is "$STOP_STATUS" 0 "with status 0"
daemon_stop RH TERM
ok $? "SIGTERM stops the host side's run"
is "$STOP_STATUS" 0 "with status 0"
same_state "$before_c" "$(settled_state c)" "the client side's kernel state is as before"
same_state "$before_h" "$(settled_state h)" "the host side's kernel state is as before"
sanitizer_clean "no sanitizer reports in the logs" "$P_LOG" "$H_LOG" "$RC_LOG" "$RH_LOG"

done_testing
