#!/bin/bash
# SPDX-License-Identifier: MIT
# Intercepted UDP through the TLS tunnel: a tunneller (`sluice tproxy`)
# carries a client's datagrams to a `sluice host`, which keeps a UDP
# socket per flow to the server; the host namespace does not route, so
# the servers are reached only through the host. dig to an intercepted DNS
# server; 40 flows over IPv4 and IPv6 each answered from the original
# address; a 60 KiB datagram whole both ways; an identity not allowed is
# refused; idle flows end on both sides and their connections carry later
# flows; a clean stop.
. "${TOP_SRCDIR:-$(dirname "$0")/..}/t/lib.sh"
. "${TOP_SRCDIR:-$(dirname "$0")/..}/t/tunnel-lib.sh"
. "${TOP_SRCDIR:-$(dirname "$0")/..}/t/dns-lib.sh"

require_netns
require_cmd dig dnsmasq
TOOL="${TOP_BUILDDIR:-$(pwd)}/t/udp_tool"
[ -x "$TOOL" ] || skip_all "needs t/udp_tool (make check builds it)"
[ -e /proc/sys/net/ipv6 ] || skip_all "needs IPv6"
plan 25

ns_new c	# the client and the tunneller
ns_new h	# the host
ns_new s	# the servers at 10.9.0.5 and fd00:9::5
ns_link c 10.10.0.1/24 h 10.10.0.2/24
ns_link h 10.9.0.1/24 s 10.9.0.5/24
ip -n "$NS_c" -6 addr add fd00:10::1/64 dev vch nodad
ip -n "$NS_h" -6 addr add fd00:10::2/64 dev vhc nodad
ip -n "$NS_h" -6 addr add fd00:9::1/64 dev vhs nodad
ip -n "$NS_s" -6 addr add fd00:9::5/64 dev vsh nodad
nsx c ip route add 10.9.0.0/24 via 10.10.0.2
nsx c ip -6 route add fd00:9::/64 via fd00:10::2
nsx h sysctl -qw net.ipv4.ip_forward=0 net.ipv6.conf.all.forwarding=0

dns_upstream s 10.9.0.5 --address=/svc.test/10.1.1.1
ok $? "the DNS server answers on 10.9.0.5"
bg_ns s "$TOOL" echo 10.9.0.5 7 REAL7-
bg_ns s "$TOOL" echo fd00:9::5 7 REAL7-
bg_ns s "$TOOL" echo 10.9.0.5 9 REAL9-

pki="$T_TMP/pki"
pki_make "$pki" gw-1 host-1
ok $? "sluice pki makes a CA and the identities"

services='services:
  - name: dns
    intercept: { protocols: [udp], addresses: [10.9.0.5], ports: [53] }
    forward: { tunnel: [10.10.0.2:4433] }
    host: { address: 10.9.0.5:53, allow: [gw-1] }
  - name: echo
    intercept: { protocols: [udp], addresses: [10.9.0.5, "fd00:9::5"], ports: [7] }
    forward: { tunnel: [10.10.0.2:4433] }
    host: { address: original, allowed-addresses: [10.9.0.0/24, "fd00:9::/64"], allow: [gw-1] }
  - name: closed
    intercept: { protocols: [udp], addresses: [10.9.0.5], ports: [9] }
    forward: { tunnel: [10.10.0.2:4433] }
    host: { address: 10.9.0.5:9, allow: [someone-else] }'
{
	identity_yaml "$pki" gw-1
	printf 'intercept:\n  backend: iptables\n  udp-idle-timeout: 2\n%s\n' "$services"
} > "$T_TMP/c.yaml"
{
	identity_yaml "$pki" host-1
	printf 'host:\n  listen: 10.10.0.2:4433\n%s\n' "$services"
} > "$T_TMP/h.yaml"

out=$(nsx c dig +short +time=1 +tries=1 @10.9.0.5 a.svc.test 2>&1)
unlike "$out" "10.1.1.1" "without sluice the client cannot reach the server (the host does not route)"

before=$(settled_state c)
daemon_start H h "$T_TMP/h.yaml" host
ok $? "sluice host starts"
daemon_start C c "$T_TMP/c.yaml" tproxy
ok $? "sluice tproxy starts"

is "$(nsx c dig +short +time=2 +tries=1 @10.9.0.5 a.svc.test 2>&1)" 10.1.1.1 \
	"dig through the tunnel gets the server's answer"
like "$(cat "$H_LOG")" "host flow [0-9]+ dns: gw-1 from 10\.10\.0\.1:[0-9]+: udp open to 10\.9\.0\.5:53" \
	"the host logs the udp flow with the identity"

out=$(nsx c "$TOOL" flows 20 10.9.0.5 7 100 REAL7- 2>&1)
is "$out" "20 ok" "20 IPv4 flows through the tunnel: each reply from the original address"
out=$(nsx c "$TOOL" flows 20 fd00:9::5 7 100 REAL7- 2>&1)
is "$out" "20 ok" "20 IPv6 flows through the tunnel, the same"
out=$(nsx c "$TOOL" flows 1 10.9.0.5 7 61440 REAL7- 2>&1)
is "$out" "1 ok" "a 60 KiB datagram arrives whole, and its reply too"
out=$(nsx c "$TOOL" flows 1 fd00:9::5 7 61440 REAL7- 2>&1)
is "$out" "1 ok" "over IPv6 as well"

cd_=$(dump_of C c)
like "$cd_" "flow [0-9]+ echo: udp \[fd00:10::1\]:[0-9]+ -> \[fd00:9::5\]:7 via tunnel 10\.10\.0\.2:4433, open, datagrams up 1 down 1" \
	"the tunneller's dump lists a v6 flow through the tunnel"
hd=$(dump_of H h)
like "$hd" "host flow [0-9]+ echo: gw-1 from 10\.10\.0\.1:[0-9]+ -> udp \[fd00:9::5\]:7, open" \
	"the host's dump lists it too"

out=$(nsx c "$TOOL" flows 1 10.9.0.5 9 10 REAL9- 2>&1)
is "$(printf '%s\n' "$out" | tail -1)" "0 ok" "a service whose allow list lacks the identity gets no datagram through"
like "$(cat "$H_LOG")" "refused gw-1 from 10\.10\.0\.1:[0-9]+ for closed -> udp 10\.9\.0\.5:9: .*identity not in allow" "the host logs the refusal"
like "$(cat "$C_LOG")" "flow [0-9]+ closed: udp 10\.10\.0\.1:[0-9]+ -> 10\.9\.0\.5:9: tunnel: .*identity not in allow" \
	"and the tunneller logs the reason"

# Idle flows end on both sides; the connections go back to the pool.
sleep 3.5
cd_=$(dump_of C c)
like "$cd_" "udp flows \(0, 0 ending\)" "idle flows end on the tunneller"
hd=$(dump_of H h)
unlike "$hd" "host flow [0-9]+ echo" "and on the host"
tls_conns() {
	dump_of C c | grep -E '^  10\.10\.0\.2:4433: ' |
		sed -n "s/.* \([0-9]*\) $1.*/\1/p"
}
at_least "$(tls_conns 'reused,')" 40 "their connections go back to the pool ($(tls_conns 'reused,') given back)"
tls0=$(tls_conns 'tls connections')
out=$(nsx c "$TOOL" flows 20 10.9.0.5 7 100 REAL7- 2>&1)
is "$out" "20 ok" "20 more flows"
tls1=$(tls_conns 'tls connections')
below "$((tls1 - tls0))" 5 "ride on those connections ($((tls1 - tls0)) new TLS connections)"

daemon_stop C
is "$STOP_STATUS" 0 "the tunneller stops with status 0"
daemon_stop H
is "$STOP_STATUS" 0 "the host stops with status 0"
same_state "$before" "$(settled_state c)" \
	"the tunneller's v4 and v6 kernel state is as before start"
sanitizer_clean "no sanitizer reports" "$C_LOG" "$H_LOG"

done_testing
