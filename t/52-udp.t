#!/bin/bash
# SPDX-License-Identifier: MIT
# Intercepted UDP, forwarded directly: dig to an intercepted DNS server
# gets the configured upstream's answer (and over TCP the real one); 40
# flows over IPv4 and IPv6 each get their reply from the original address
# (connected client sockets see nothing else), and so do a LAN client's
# through the gateway; a service named by a host name gets its pool
# address intercepted for UDP; another port of the same address is
# untouched; a 60 KiB datagram arrives whole both ways; idle flows
# expire; the flow cap, and running out of descriptors, end the oldest
# flows; `dump` shows the flows; a clean stop restores the v4 and v6
# kernel state exactly.
. "${TOP_SRCDIR:-$(dirname "$0")/..}/t/lib.sh"
. "${TOP_SRCDIR:-$(dirname "$0")/..}/t/dns-lib.sh"

require_netns
require_cmd dig dnsmasq prlimit
TOOL="${TOP_BUILDDIR:-$(pwd)}/t/udp_tool"
[ -x "$TOOL" ] || skip_all "needs t/udp_tool (make check builds it)"
[ -e /proc/sys/net/ipv6 ] || skip_all "needs IPv6"
plan 34

ns_new c	# client, sluice and the configured upstream
ns_new s	# the real servers at 10.9.0.5 and fd00:9::5
ns_link c 10.9.0.1/24 s 10.9.0.5/24
ip -n "$NS_c" -6 addr add fd00:9::1/64 dev vcs nodad
ip -n "$NS_s" -6 addr add fd00:9::5/64 dev vsc nodad
ns_new g	# a LAN client routed through c, the gateway
ns_link g 10.8.0.2/24 c 10.8.0.1/24
ip -n "$NS_g" -6 addr add fd00:8::2/64 dev vgc nodad
ip -n "$NS_c" -6 addr add fd00:8::1/64 dev vcg nodad
nsx g ip route add default via 10.8.0.1
nsx g ip -6 route add default via fd00:8::1
nsx c sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1

dns_upstream s 10.9.0.5 --address=/svc.test/10.1.1.1
ok $? "the real DNS server answers on 10.9.0.5"
dns_upstream c 127.0.0.1 --address=/svc.test/10.7.7.7
ok $? "the configured upstream answers on 127.0.0.1"
bg_ns s "$TOOL" echo 10.9.0.5 7 REAL7-
bg_ns s "$TOOL" echo fd00:9::5 7 REAL7-
bg_ns s "$TOOL" echo 10.9.0.5 8 REAL8-
bg_ns c "$TOOL" echo 127.0.0.1 7007 UP-

conf="$T_TMP/sluice.yaml"
write_conf "$conf" <<'EOF2'
intercept:
  backend: iptables
  udp-idle-timeout: 2
  udp-max-flows: 50
services:
  - name: dns
    intercept: { protocols: [udp], addresses: [10.9.0.5], ports: [53] }
    forward: { direct: 127.0.0.1:53 }
  - name: echo
    intercept: { protocols: [udp], addresses: [10.9.0.5, "fd00:9::5"], ports: [7] }
    forward: { direct: original }
  - name: up
    intercept: { protocols: [udp], addresses: [10.9.0.6], ports: [7] }
    forward: { direct: 127.0.0.1:7007 }
  - name: named
    intercept: { protocols: [udp], addresses: [echo.svc.test], ports: [7] }
    forward: { direct: 127.0.0.1:7007 }
dns:
  listen: 127.0.0.2:53
  resolver: none
  self-test: false
EOF2
ip -n "$NS_s" addr add 10.9.0.6/24 dev vsc

before=$(settled_state c)
sluice_start c "$conf"
ok $? "sluice tproxy starts"
like "$(cat "$SL_LOG")" "transparent listener on udp 127\.0\.0\.1:[0-9]+" \
	"a transparent UDP listener on loopback"
like "$(nsx c iptables-legacy-save -t mangle)" \
	"-A NF-INTERCEPT -d 10.9.0.5/32 -p udp -m udp --dport 53 -m comment --comment dns -j TPROXY --on-port [0-9]+ --on-ip 127.0.0.1" \
	"a TPROXY rule for the udp service"
like "$(nsx c ip6tables-legacy-save -t mangle)" \
	"-A NF-INTERCEPT -d fd00:9::5/128 -p udp -m udp --dport 7 -m comment --comment echo -j TPROXY --on-port [0-9]+ --on-ip ::1" \
	"and an IPv6 one"

is "$(nsx c dig +short +time=2 +tries=1 @10.9.0.5 a.svc.test)" 10.7.7.7 \
	"dig over UDP gets the configured upstream's answer"
is "$(nsx c dig +short +tcp +time=2 +tries=1 @10.9.0.5 a.svc.test)" 10.1.1.1 \
	"over TCP (not intercepted) the real server's"

out=$(nsx c "$TOOL" flows 20 10.9.0.5 7 100 REAL7- 2>&1)
is "$out" "20 ok" "20 IPv4 flows: each reply comes from the original address"
out=$(nsx c "$TOOL" flows 20 fd00:9::5 7 100 REAL7- 2>&1)
is "$out" "20 ok" "20 IPv6 flows: each reply comes from the original address"
out=$(nsx c "$TOOL" flows 2 10.9.0.6 7 100 UP- 2>&1)
is "$out" "2 ok" "a fixed upstream answers for the original address"
pool=$(nsx c dig +short +time=2 +tries=1 @127.0.0.2 echo.svc.test 2>&1)
like "$pool" "^169\.254\.[0-9]+\.[0-9]+$" "the nameserver hands out a pool address for a udp service's name"
out=$(nsx c "$TOOL" flows 3 "$pool" 7 100 UP- 2>&1)
is "$out" "3 ok" "udp flows to that address are intercepted, replies from it"

dump=$(nsx c "$SLUICE" --state-dir "$SL_STATE" dump 2>&1)
like "$dump" "udp 127\.0\.0\.1:[0-9]+ \(transparent\)" "dump lists the udp listener"
like "$dump" "udp flows \((4[0-9]|5[0-9])," "dump shows the live udp flows"
like "$dump" "flow [0-9]+ echo: udp \[fd00:9::1\]:[0-9]+ -> \[fd00:9::5\]:7 via \[fd00:9::5\]:7, open, datagrams up 1 down 1" \
	"a v6 flow with its datagram counts"

dgrams_in() {
	nsx c "$SLUICE" --state-dir "$SL_STATE" dump | grep -o 'datagrams-in [0-9]*'
}
n0=$(dgrams_in)
out=$(nsx c "$TOOL" flows 3 10.9.0.5 8 100 REAL8- 2>&1)
is "$out" "3 ok" "another port of the same address reaches the real server"
is "$(dgrams_in)" "$n0" "and its datagrams never reach sluice"

out=$(nsx c "$TOOL" flows 1 10.9.0.5 7 61440 REAL7- 2>&1)
is "$out" "1 ok" "a 60 KiB datagram arrives whole, and its reply too"
out=$(nsx c "$TOOL" flows 1 fd00:9::5 7 61440 REAL7- 2>&1)
is "$out" "1 ok" "over IPv6 as well"

# Idle flows end after udp-idle-timeout (2 s).
sleep 3.5
dump=$(nsx c "$SLUICE" --state-dir "$SL_STATE" dump 2>&1)
like "$dump" "udp flows \(0, 0 ending\)" "idle flows expire"
like "$dump" "expired 4[0-9]" "and are counted"

# The cap (50): the oldest flows make way for new ones.
out=$(for i in 1 2 3 4; do nsx c "$TOOL" flows 20 10.9.0.5 7 10 REAL7- 2>&1; done)
is "$(echo $out)" "20 ok 20 ok 20 ok 20 ok" "80 flows, 20 at a time, over a cap of 50"
dump=$(nsx c "$SLUICE" --state-dir "$SL_STATE" dump 2>&1)
like "$dump" "udp flows \(50," "no more than 50 flows live"
# A client port reused by a later run joins its live flow: about 30.
like "$dump" "evicted (2[0-9]|30) " "the oldest flows were evicted, about 30"
like "$(cat "$SL_LOG")" "udp: intercept.udp-max-flows reached \(50 flows\): the oldest makes way" \
	"and that is logged"

# Out of descriptors: the oldest flows give their sockets up to new ones.
# The cap's flows must be gone first: expiry runs once a second, so a
# fixed sleep could count sockets that close later and leave room.
i=0
until nsx c "$SLUICE" --state-dir "$SL_STATE" dump 2>&1 |
	grep -q 'udp flows (0, 0 ending)' || [ $i -ge 100 ]; do
	sleep 0.1
	i=$((i + 1))
done
nfd=$(ls "/proc/$SL_PID/fd" | wc -l)
soft=$(prlimit --pid "$SL_PID" --nofile --noheadings --output SOFT)
prlimit --pid "$SL_PID" --nofile=$((nfd + 6)):
out=$(for i in 1 2 3 4 5 6 7 8; do nsx c "$TOOL" flows 4 10.9.0.5 7 10 REAL7- 2>&1; done)
is "$(echo $out)" "4 ok 4 ok 4 ok 4 ok 4 ok 4 ok 4 ok 4 ok" \
	"32 flows, 4 at a time, with 6 descriptors to spare"
like "$(cat "$SL_LOG")" "udp: out of file descriptors \([0-9]+ flows\): the oldest makes way" \
	"old flows make way when descriptors run out, and that is logged"
prlimit --pid "$SL_PID" --nofile="$soft":

# A gateway: a LAN client's datagrams are intercepted on their way
# through, and the replies reach it from the original address.
out=$(nsx g "$TOOL" flows 5 10.9.0.5 7 100 REAL7- 2>&1)
is "$out" "5 ok" "a LAN client's IPv4 flows through the gateway are intercepted"
out=$(nsx g "$TOOL" flows 5 fd00:9::5 7 100 REAL7- 2>&1)
is "$out" "5 ok" "and its IPv6 flows"
like "$(nsx c "$SLUICE" --state-dir "$SL_STATE" dump)" "flow [0-9]+ echo: udp \[fd00:8::2\]:[0-9]+ -> \[fd00:9::5\]:7" \
	"the dump shows the LAN client's flow"

sluice_stop TERM
is "$SL_STATUS" 0 "SIGTERM stops sluice with status 0"
same_state "$before" "$(settled_state c)" \
	"v4 and v6 rules, policy rules and routes are as before start"
unlike "$(cat "$SL_LOG")" "ERROR|AddressSanitizer|runtime error" "no errors in the log"

done_testing
