#!/bin/bash
# SPDX-License-Identifier: MIT
# What a sluice host refuses, as the client, the server and the logs see
# it: an identity not in the service's allow list, an identity from
# another CA, an expired certificate, an original destination outside
# allowed-addresses, a server that refuses the host's dial. Each refusal
# resets the client at once, nothing
# reaches a server, and the host's log says who was refused and why. A
# key file that others may read stops the host at start.
. "${TOP_SRCDIR:-$(dirname "$0")/..}/t/lib.sh"
. "${TOP_SRCDIR:-$(dirname "$0")/..}/t/tunnel-lib.sh"

require_netns
require_cmd curl nginx socat
plan 66

ns_new c	# the client and the tunneller
ns_new h	# the host
ns_new s	# the servers at 10.9.0.5 and 10.9.0.7
ns_link c 10.10.0.1/24 h 10.10.0.2/24
ns_link h 10.9.0.1/24 s 10.9.0.5/24
nsx s ip addr add 10.9.0.7/24 dev vsh
nsx c ip route add 10.9.0.0/24 via 10.10.0.2
nsx h sysctl -qw net.ipv4.ip_forward=0

http_server_logged s 10.9.0.5 80 REAL80
http_server_logged s 10.9.0.5 81 REAL81
# Outside allowed-addresses: a sink that records every connection.
bg_ns s socat TCP-LISTEN:81,bind=10.9.0.7,reuseaddr,fork \
	SYSTEM:"echo hit >> $T_TMP/hits-7"
wait_port s 10.9.0.7 81
# wait_port's own probe is a hit too: wait for it, then start afresh.
i=0
while [ ! -e "$T_TMP/hits-7" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
sleep 0.2
rm -f "$T_TMP/hits-7"

pki="$T_TMP/pki"
other="$T_TMP/other-pki"
pki_make "$pki" gw-1 gw-2 host-1 &&
	"$SLUICE" pki issue "$pki" gw-old --days 0 >/dev/null &&
	pki_make "$other" gw-1
ok $? "sluice pki makes two CAs and the identities"

services='services:
  - name: web
    intercept: { protocols: [tcp], addresses: [10.9.0.5], ports: [80] }
    forward: { tunnel: [10.10.0.2:4433] }
    host: { address: 10.9.0.5:80, allow: [gw-1, gw-old] }
  - name: orig
    intercept: { protocols: [tcp], addresses: [10.9.0.0/24], ports: [81] }
    forward: { tunnel: [10.10.0.2:4433] }
    host: { address: original, allowed-addresses: [10.9.0.5/32], allow: [gw-1] }
  - name: nobody
    intercept: { protocols: [tcp], addresses: [10.9.0.5], ports: [82] }
    forward: { tunnel: [10.10.0.2:4433] }
    host: { address: 10.9.0.5:82, allow: [gw-1] }'
# tconf NAME CERTDIR: the tunneller's config with identity NAME from
# CERTDIR, trusting the host's CA.
tconf() {
	{
		printf 'identity:\n  cert: %s/%s.crt\n  key: %s/%s.key\n  ca: %s/ca.crt\n' \
			"$2" "$1" "$2" "$1" "$pki"
		printf 'intercept:\n  backend: iptables\n%s\n' "$services"
	} > "$T_TMP/c-$1.yaml"
	echo "$T_TMP/c-$1.yaml"
}
{
	identity_yaml "$pki" host-1
	printf 'host:\n  listen: 10.10.0.2:4433\n%s\n' "$services"
} > "$T_TMP/h.yaml"

daemon_start H h "$T_TMP/h.yaml" host
ok $? "sluice host starts"

# The allowed identity reaches both servers: the set-up works.
daemon_start C c "$(tconf gw-1 "$pki")" tproxy
ok $? "a tunneller with identity gw-1 starts"
timed_curl c http://10.9.0.5/
is "$CURL_OUT" REAL80 "gw-1 is allowed and reaches the server"
timed_curl c http://10.9.0.5:81/
is "$CURL_OUT" REAL81 "an original destination within allowed-addresses is dialled"
seen80=$(requests_seen s 80)
is "$seen80" 1 "the server logged the request"

# refused CASE: the client's curl is reset at once.
refused() {
	timed_curl c "$1"
	like "$CURL_RC" "^(7|56)$" "$2: the client's connection is reset"
	[ "$CURL_RC" = 7 ] || [ "$CURL_RC" = 56 ] || diag "curl: $CURL_OUT"
	below "$CURL_MS" 2000 "$2: at once (${CURL_MS} ms)"
}

# Outside allowed-addresses, with the allowed identity still running.
refused http://10.9.0.7:81/ "original outside allowed-addresses"
sleep 0.3	# a dial would have reached the sink by now
ok $([ ! -e "$T_TMP/hits-7" ]; echo $?) "nothing was dialled at 10.9.0.7"
like "$(cat "$H_LOG")" "host flow [0-9]+: refused gw-1 from 10\.10\.0\.1:[0-9]+ for orig -> 10\.9\.0\.7:81: destination not allowed: not within allowed-addresses" \
	"the host logs identity, service, destination and reason"
like "$(log_of C)" "flow [0-9]+ orig: 10\.10\.0\.1:[0-9]+ -> 10\.9\.0\.7:81: .*refused by 10\.10\.0\.2:4433: destination not allowed" \
	"the tunneller logs the host's refusal"
hd=$(dump_of H h)
like "$hd" "refused 1, dial failed 0" "the host's dump counts the refusal and no dial"
like "$hd" "host refusals \(latest 1\):
  gw-1 from 10\.10\.0\.1:[0-9]+ for orig -> 10\.9\.0\.7:81: destination not allowed" \
	"and lists it"
daemon_stop C TERM
ok $? "the tunneller stops"

# An identity of the right CA that the service does not allow.
daemon_start C c "$(tconf gw-2 "$pki")" tproxy
ok $? "a tunneller with identity gw-2 starts"
refused http://10.9.0.5/ "identity not in allow"
is "$(requests_seen s 80)" "$seen80" "nothing reached the server"
like "$(cat "$H_LOG")" "host flow [0-9]+: refused gw-2 from 10\.10\.0\.1:[0-9]+ for web -> 10\.9\.0\.5:80: identity not allowed: identity not in allow" \
	"the host logs the identity and why it was refused"
like "$(log_of C)" "flow [0-9]+ web: .*refused by 10\.10\.0\.2:4433: identity not allowed" \
	"the tunneller logs the refusal"
daemon_stop C TERM
ok $? "the tunneller stops"

# A reload to another identity: connections the old one made and keeps
# ready must not carry the new flows.
cp "$(tconf gw-1 "$pki")" "$T_TMP/c-reload.yaml"
daemon_start C c "$T_TMP/c-reload.yaml" tproxy
ok $? "a tunneller with identity gw-1 starts"
timed_curl c http://10.9.0.5/
is "$CURL_OUT" REAL80 "gw-1's flow goes through"
seen80=$(requests_seen s 80)
sleep 0.3
like "$(dump_of C c)" "  10\.10\.0\.2:4433: up, [1-9] ready" \
	"and leaves connections ready"
# A flow open across the reload ends cleanly afterwards: its connection
# (gw-1's) must not go back to the pool for gw-2's flows.
mkfifo "$T_TMP/held"
exec 7<>"$T_TMP/held"	# read-write: opening it never blocks
# (Redirections inside: a background job's stdin is /dev/null; and fd 7
# closed in socat, so that closing ours ends the flow at once.)
bg_ns c sh -c 'exec socat -t 5 - TCP:10.9.0.5:80 < "$1" > "$2" 7>&-' _ \
	"$T_TMP/held" "$T_TMP/held.out"
sleep 0.3
cp "$(tconf gw-2 "$pki")" "$T_TMP/c-reload.yaml"
kill -HUP "$C_PID"
daemon_wait_log "$C_LOG" "reload: [0-9]+ services in use" 5 "$C_PID"
ok $? "SIGHUP reloads the configuration with identity gw-2"
printf 'GET / HTTP/1.0\r\n\r\n' >&7
exec 7>&-
i=0
while ! grep -q REAL80 "$T_TMP/held.out" 2>/dev/null && [ $i -lt 60 ]; do
	i=$((i + 1)); sleep 0.05
done
like "$(cat "$T_TMP/held.out")" "REAL80" \
	"a flow open across the reload still completes"
seen80=$(requests_seen s 80)
sleep 0.3
refused http://10.9.0.5/ "after the reload, gw-2"
is "$(requests_seen s 80)" "$seen80" "nothing reached the server"
like "$(tail -5 "$H_LOG")" "refused gw-2 from .* identity not allowed" \
	"the host saw gw-2, not gw-1"
daemon_stop C TERM
ok $? "the tunneller stops"

# The allowed name, but issued by another CA.
daemon_start C c "$(tconf gw-1 "$other")" tproxy
ok $? "a tunneller with gw-1 from another CA starts"
refused http://10.9.0.5/ "identity from another CA"
is "$(requests_seen s 80)" "$seen80" "nothing reached the server"
like "$(cat "$H_LOG")" "host flow [0-9]+: handshake with 10\.10\.0\.1:[0-9]+ failed: certificate verify failed \(unable to get local issuer certificate: CN=gw-1\)" \
	"the host logs the TLS verify error and the name"
# Usually the host's alert; if its reset overtakes our opening message,
# only that the host closed.
like "$(log_of C)" "flow [0-9]+ web: .*tunnel: (tlsv1 alert unknown ca|the host closed the connection)" \
	"the tunneller logs why the flow failed"
daemon_stop C TERM
ok $? "the tunneller stops"

# An expired certificate (--days 0 ends now; a second later it is past).
sleep 2
daemon_start C c "$(tconf gw-old "$pki")" tproxy
ok $? "a tunneller with an expired certificate starts"
refused http://10.9.0.5/ "expired certificate"
is "$(requests_seen s 80)" "$seen80" "nothing reached the server"
like "$(cat "$H_LOG")" "host flow [0-9]+: handshake with 10\.10\.0\.1:[0-9]+ failed: certificate verify failed \(certificate has expired: CN=gw-old\)" \
	"the host logs the TLS verify error and the name"
like "$(log_of C)" "flow [0-9]+ web: .*tunnel: (sslv3 alert certificate expired|the host closed the connection)" \
	"the tunneller logs why the flow failed"
daemon_stop C TERM
ok $? "the tunneller stops"

hd=$(dump_of H h)
like "$hd" "tls failed 2, flows 4, refused 3, dial failed 0" \
	"the host's dump counts two handshake failures, three refusals, four flows"
like "$hd" "host refusals \(latest 5\):" "and lists the five refusals"
like "$hd" "certificate has expired: CN=gw-old" "with the TLS errors"

# Nothing listens on 10.9.0.5:82: the host's dial is refused, and so is
# the flow, at once.
daemon_start C c "$(tconf gw-1 "$pki")" tproxy
ok $? "a tunneller with identity gw-1 starts again"
refused http://10.9.0.5:82/ "a server that refuses the host's dial"
like "$(cat "$H_LOG")" "host flow [0-9]+: refused gw-1 from 10\.10\.0\.1:[0-9]+ for nobody -> 10\.9\.0\.5:82: server unreachable: Connection refused" \
	"the host logs the failed dial"
like "$(log_of C)" "flow [0-9]+ nobody: 10\.10\.0\.1:[0-9]+ -> 10\.9\.0\.5:82: .*refused by 10\.10\.0\.2:4433: server unreachable: Connection refused" \
	"the tunneller logs the host's reason"
like "$(dump_of H h)" "dial failed 1" "the host's dump counts the failed dial"
daemon_stop C TERM
ok $? "the tunneller stops"
daemon_stop H TERM
ok $? "the host stops"
is "$STOP_STATUS" 0 "with status 0"
is "$(requests_seen s 80)" "$seen80" "in all, the server saw only the allowed request"

# A key file that others may read: the host refuses to start.
cp -p "$pki/host-1.crt" "$pki/host-1.key" "$pki/ca.crt" "$T_TMP/"
chmod 0644 "$T_TMP/host-1.key"
{
	identity_yaml "$T_TMP" host-1
	printf 'host:\n  listen: 10.10.0.2:4434\n%s\n' "$services"
} > "$T_TMP/h-bad.yaml"
t0=$(now_ms)
out=$(nsx h timeout 10 "$SLUICE" -c "$T_TMP/h-bad.yaml" \
	--state-dir "$T_TMP/state-bad" host 2>&1); rc=$?
is "$rc" 78 "sluice host with a key readable by others exits 78"
below "$(since_ms "$t0")" 3000 "at start, not after a timeout"
like "$out" "$T_TMP/host-1\.key: readable by group or others \(mode 0644\); chmod 600 it" \
	"and names the key file and what to do"
nsx h bash -c 'exec 3<>/dev/tcp/10.10.0.2/4434' 2>/dev/null
ok $([ $? -ne 0 ]; echo $?) "and leaves nothing listening"

# The tunneller refuses its own unreadable-by-others rule just the same.
cp -p "$pki/gw-1.crt" "$pki/gw-1.key" "$T_TMP/"
chmod 0640 "$T_TMP/gw-1.key"
tc=$(tconf gw-1 "$T_TMP")
before=$(settled_state c)
out=$(nsx c timeout 10 "$SLUICE" -c "$tc" --state-dir "$T_TMP/state-bad-c" \
	tproxy 2>&1); rc=$?
is "$rc" 78 "sluice tproxy with a key readable by its group exits 78"
like "$out" "$T_TMP/gw-1\.key: readable by group or others \(mode 0640\)" \
	"and names the key file"
same_state "$before" "$(settled_state c)" "and leaves no rule behind"

sanitizer_clean "no sanitizer reports in the logs" "$C_LOG" "$H_LOG"

done_testing
