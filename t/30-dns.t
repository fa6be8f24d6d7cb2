#!/bin/bash
# SPDX-License-Identifier: MIT
# The nameserver: A and AAAA for exact and wildcard service names in any
# case, over UDP and TCP, with EDNS0, the right flags and TTL; NODATA for
# other types; other names recursed to a dnsmasq upstream (failing over
# from a dead one), with TC and a TCP retry for answers too big for UDP;
# hostnames: real intercepts the upstream's address on the service's ports
# only; the intercept is in place when the answer arrives; a client finds
# the service by name through the system resolver; a stop restores
# resolv.conf byte for byte and the kernel state exactly.
. "${TOP_SRCDIR:-$(dirname "$0")/..}/t/lib.sh"
. "${TOP_SRCDIR:-$(dirname "$0")/..}/t/dns-lib.sh"

require_netns
require_cmd curl nginx dig dnsmasq
plan 37

ns_new c	# client, sluice, its dnsmasq upstream, the configured upstream
ns_new s	# the real server at 10.9.0.5
ns_link c 10.9.0.1/24 s 10.9.0.5/24
dns_ns_files c 'search corp.test\nnameserver 127.0.0.9\noptions edns0' \
	'127.0.0.1\tlocalhost\n'
cp "$DNS_RESOLV" "$T_TMP/resolv.want"
http_server s 10.9.0.5 80 REAL80
http_server s 10.9.0.5 81 REAL81
http_server c 127.0.0.1 8080 UPSTREAM

# 60 addresses for big.example.test: an answer too big for 512 bytes.
for i in $(seq 1 60); do echo "10.99.0.$i big.example.test"; done > "$T_TMP/big.hosts"
dns_upstream c 127.0.0.2 --local=/corp.test/ --address=/example.test/10.9.9.9 \
	--host-record=real.corp.test,10.9.0.5 --addn-hosts="$T_TMP/big.hosts"
ok $? "a dnsmasq upstream answers on 127.0.0.2"

conf="$T_TMP/sluice.yaml"
write_conf "$conf" <<'EOF2'
intercept:
  backend: iptables
dns:
  listen: 127.0.0.1:53
  upstream: [127.0.0.3, 127.0.0.2]    # the first answers nothing
  hostnames: real
  ttl: 30
  resolver: resolv.conf
services:
  - name: web
    intercept: { protocols: [tcp], addresses: [web.corp.test, "*.docs.corp.test"], ports: [80] }
    forward: { direct: 127.0.0.1:8080 }
  - name: realweb
    intercept: { protocols: [tcp], addresses: [real.corp.test], ports: [80] }
    forward: { direct: 127.0.0.1:8080 }
EOF2

before=$(settled_state c)
sluice_start c "$conf"
ok $? "sluice tproxy starts with the nameserver"
like "$(cat "$SL_LOG")" "self-test passed" "the self-test passes through resolv.conf"
like "$(cat "$DNS_RESOLV")" "nameserver 127.0.0.1" "resolv.conf lists the nameserver"

# ---- service names ----
a=$(q c +short web.corp.test A)
like "$a" '^169\.254\.[0-9]+\.[0-9]+$' "A for an exact name: a pool address (real mode falls back)"
is "$(q c +short +tcp web.corp.test A)" "$a" "the same over TCP"
out=$(q c WeB.CoRp.TeSt A)
like "$out" "WeB\.CoRp\.TeSt\.[[:space:]]+30[[:space:]]+IN[[:space:]]+A[[:space:]]+$a" \
	"any case, question echoed as asked, TTL from dns.ttl"
like "$(flags c web.corp.test A)" "^qr aa rd ra$" "flags: authoritative, recursion available (upstreams set)"
like "$out" "EDNS: version: 0, flags:; udp: 4096" "an OPT record is echoed"
unlike "$(q c +noedns web.corp.test A)" "OPT PSEUDOSECTION" "and only when the query had one"

w1=$(q c +short a.docs.corp.test)
w2=$(q c +short +tcp b.c.docs.corp.test)
like "$w1" '^169\.254\.' "a wildcard name gets an address"
ok $([ -n "$w2" ] && [ "$w1" != "$w2" ] && [ "$w1" != "$a" ] && echo 0 || echo 1) \
	"each name under the wildcard its own ($w1, $w2)"
is "$(status c docs.corp.test A)" NXDOMAIN "the wildcard's own domain is not a service name (upstream says)"

# The answer must not arrive before the interception of its address.
new=$(q c +short fresh.docs.corp.test)
rules=$(nsx c iptables-legacy-save -t mangle)
like "$rules" "-d $new/32 -p tcp -m tcp --dport 80 -m comment --comment web -j TPROXY" \
	"a new wildcard name's TPROXY rule is there when its answer arrives"
like "$(nsx c ip route show table local)" "local $new dev lo proto 83" "and its local route"

out=$(q c web.corp.test AAAA)
like "$out" "status: NOERROR" "AAAA without IPv6 addresses: NOERROR"
like "$out" "ANSWER: 0," "with no answer (NODATA)"
like "$(flags c web.corp.test MX)" "aa" "NODATA for MX is authoritative"
is "$(status c web.corp.test MX)" NOERROR "and NOERROR"

# ---- other names: the upstreams ----
is "$(q c +short example.test)" 10.9.9.9 "another name is answered by the upstream, past a dead one"
is "$(status c +opcode=2 web.corp.test)" NOTIMP "an unsupported opcode: NOTIMP"
is "$(status c CH TXT version.bind)" REFUSED "class CH: REFUSED"
out=$(q c +noedns +ignore big.example.test)
like "$(echo "$out" | sed -n 's/^;; flags: \([a-z ]*\);.*/\1/p')" "tc" \
	"an upstream answer too big for 512 bytes of UDP: TC"
n=$(q c +noedns +short big.example.test | wc -l)
is "$n" 60 "and the client's retry over TCP gets all 60 records"
is "$(q c +short +bufsize=4096 big.example.test | wc -l)" 60 "EDNS0 with room for it: all of them over UDP"

# ---- hostnames: real ----
is "$(q c +short real.corp.test)" 10.9.0.5 "hostnames: real answers the upstream's address"
like "$(nsx c iptables-legacy-save -t mangle)" "-d 10.9.0.5/32 -p tcp -m tcp --dport 80 -m comment --comment realweb" \
	"which is intercepted for the service"
is "$(nsx c curl -sS --max-time 5 http://real.corp.test/ 2>&1)" UPSTREAM \
	"the service's port of the real address reaches the configured upstream"
is "$(nsx c curl -sS --max-time 5 http://real.corp.test:81/ 2>&1)" REAL81 \
	"another port of it reaches the real host"

# ---- through the system resolver ----
is "$(nsx c curl -sS --max-time 5 http://web.corp.test/ 2>&1)" UPSTREAM \
	"curl finds a service by name through the system resolver"
is "$(nsx c curl -sS --max-time 5 http://x.docs.corp.test/ 2>&1)" UPSTREAM \
	"and a wildcard one"

dump=$(nsx c "$SLUICE" --state-dir "$SL_STATE" dump 2>&1)
like "$dump" "web\.corp\.test $a web \(pool\)" "dump lists names with address and service"
like "$dump" "real\.corp\.test 10\.9\.0\.5 realweb \(real\)" "and real addresses"
like "$dump" "forwarded [1-9]" "and the DNS counters"

sluice_stop TERM
is "$SL_STATUS" 0 "SIGTERM stops sluice with status 0"
if cmp -s "$DNS_RESOLV" "$T_TMP/resolv.want"; then ok 0 "resolv.conf is restored byte for byte"
else ok 1 "resolv.conf is restored byte for byte"; diag "$(cat -A "$DNS_RESOLV")"; fi
same_state "$before" "$(settled_state c)" "rules, routes (local ones too) and policy rules are as before"

done_testing
