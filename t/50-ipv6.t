#!/bin/bash
# SPDX-License-Identifier: MIT
# IPv6: a local client's and a LAN client's TCP flows to an IPv6 service
# are intercepted through ip6tables, reaching an IPv6 or an IPv4 upstream
# or the original destination, or through a tunnel to a host on IPv6;
# other ports pass untouched; `sluice proxy --bind` takes an IPv6 address; `sources:`
# limits interception to the listed clients of either family; the second
# listener follows intercept.listen's port; a stop, or SIGKILL and
# `sluice cleanup`, leave both families' kernel state as it was; without
# IPv6 on lo, sluice intercepts IPv4 alone.
. "${TOP_SRCDIR:-$(dirname "$0")/..}/t/lib.sh"
. "${TOP_SRCDIR:-$(dirname "$0")/..}/t/tunnel-lib.sh"

require_netns
require_cmd curl nginx ip6tables-legacy-save
plan 49

ns_new c	# clients, sluice, the upstreams; the LAN's gateway
ns_new s	# the real server: 10.9.0.5, fd00:9::5
ns_new lan	# a LAN client behind c: fd00:8::2
ns_link c 10.9.0.1/24 s 10.9.0.5/24
nsx c ip addr add 10.9.0.2/24 dev vcs
nsx c ip -6 addr add fd00:9::1/64 dev vcs nodad
nsx c ip -6 addr add fd00:9::2/64 dev vcs nodad
nsx s ip -6 addr add fd00:9::5/64 dev vsc nodad
ns_link lan 10.8.0.2/24 c 10.8.0.1/24
nsx lan ip -6 addr add fd00:8::2/64 dev vlanc nodad
nsx c ip -6 addr add fd00:8::1/64 dev vclan nodad
nsx lan ip -6 route add default via fd00:8::1
nsx s ip -6 route add fd00:8::/64 via fd00:9::1
nsx c sysctl -qw net.ipv6.conf.all.forwarding=1

http_server s '[fd00:9::5]' 80 REAL6-80
http_server s '[fd00:9::5]' 81 REAL6-81
http_server s '[fd00:9::5]' 82 REAL6-82
http_server s '[fd00:9::5]' 84 REAL6-84
http_server s 10.9.0.5 84 REAL4-84
http_server c '[::1]' 8080 UPSTREAM6
http_server c 127.0.0.1 8080 UPSTREAM4

# get NS URL [CURL-ARGS...]: the body, or curl's complaint.
get() {
	local ns=$1 url=$2
	shift 2
	nsx "$ns" curl -sS -g --max-time 5 "$@" "$url" 2>&1
}

# A sluice host on the real server's IPv6 address, for the tunnel.
pki_make "$T_TMP/pki" gw host
{
	identity_yaml "$T_TMP/pki" host
	cat <<'EOF2'
host:
  listen: "[fd00:9::5]:4433"
services:
  - name: tun6
    host: { address: "[fd00:9::5]:80", allow: [gw] }
EOF2
} > "$T_TMP/host.yaml"
daemon_start H s "$T_TMP/host.yaml" host
ok $? "a sluice host listens on [fd00:9::5]:4433"

conf="$T_TMP/sluice.yaml"
{ identity_yaml "$T_TMP/pki" gw; cat; } > "$conf" <<'EOF2'
intercept:
  backend: iptables
services:
  - name: tun6
    intercept: { protocols: [tcp], addresses: ["fd00:9::5"], ports: [85] }
    forward: { tunnel: ["[fd00:9::5]:4433"] }
  - name: web6
    intercept: { protocols: [tcp], addresses: ["fd00:9::5"], ports: [80] }
    forward: { direct: "[::1]:8080" }
  - name: orig6
    intercept: { protocols: [tcp], addresses: ["fd00:9::/64"], ports: [82] }
    forward: { direct: original }
  - name: to4
    intercept: { protocols: [tcp], addresses: ["fd00:9::5/128"], ports: [83] }
    forward: { direct: 127.0.0.1:8080 }
  - name: picky
    intercept:
      protocols: [tcp]
      addresses: [10.9.0.5, "fd00:9::5"]
      ports: [84]
      sources: [10.9.0.1, "fd00:9::1", "fd00:8::/64"]
    forward: { direct: "[::1]:8080" }
EOF2

before=$(settled_state c)
sluice_start c "$conf"
ok $? "sluice tproxy starts"

# ---- listeners and rules ----
p4=$(sed -n 's/.*transparent listener on tcp 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$SL_LOG")
p6=$(sed -n 's/.*transparent listener on tcp \[::1\]:\([0-9]*\).*/\1/p' "$SL_LOG")
like "$p4" '^[0-9]+$' "a transparent listener on 127.0.0.1 (intercept.listen)"
like "$p6" '^[0-9]+$' "and its IPv6 twin on [::1]"

rules6=$(nsx c ip6tables-legacy-save -t mangle)
like "$rules6" "-A PREROUTING -j NF-INTERCEPT" "ip6tables: PREROUTING jumps to NF-INTERCEPT"
like "$rules6" "-A OUTPUT -j NF-INTERCEPT-OUT" "ip6tables: OUTPUT jumps to NF-INTERCEPT-OUT"
like "$rules6" "-A NF-INTERCEPT -d fd00:9::5/128 -p tcp -m tcp --dport 80 -m comment --comment web6 -j TPROXY --on-port $p6 --on-ip ::1 --tproxy-mark 0x1/0x1" \
	"ip6tables: a TPROXY rule to [::1]:$p6, the service named in its comment"
like "$rules6" "-A NF-INTERCEPT-OUT -d fd00:9::5/128 -p tcp -m tcp --dport 80 -m comment --comment web6 -j MARK --set-xmark 0x1/0x1" \
	"ip6tables: locally generated flows are marked in OUTPUT"
like "$rules6" "-A NF-INTERCEPT-OUT -m mark --mark 0x2/0x2 -j RETURN" \
	"ip6tables: sluice's own sockets are exempt"
like "$rules6" "-A NF-INTERCEPT -s fd00:9::1/128 -d fd00:9::5/128 -p tcp -m tcp --dport 84 -m comment --comment picky -j TPROXY" \
	"ip6tables: sources: only the listed client"
rules4=$(nsx c iptables-legacy-save -t mangle)
like "$rules4" "-A NF-INTERCEPT -s 10.9.0.1/32 -d 10.9.0.5/32 -p tcp -m tcp --dport 84 -m comment --comment picky -j TPROXY --on-port $p4 --on-ip 127.0.0.1" \
	"iptables: sources: only the listed client, to the IPv4 listener"
unlike "$rules4" "fd00|-s 10\.9\.0\.2" "iptables: no IPv6 source or destination, no unlisted client"
like "$(nsx c ip -6 rule)" "9100:.*fwmark 0x1/0x1 lookup 100 proto 83" "ip -6 rule: the tproxy mark's policy rule"
like "$(nsx c ip -6 route show table 100)" "local default dev lo proto 83" "ip -6 route: local default in table 100"

# ---- a local client ----
is "$(get c 'http://[fd00:9::5]/')" UPSTREAM6 "curl -6 to the listed port reaches the IPv6 upstream"
is "$(get c 'http://[fd00:9::5]:81/')" REAL6-81 "another port of the same address reaches the real server"
is "$(get c 'http://[fd00:9::5]:82/')" REAL6-82 "direct: original reaches the real server without looping"
is "$(get c 'http://[fd00:9::5]:83/')" UPSTREAM4 "an IPv6 client reaches an IPv4 upstream"
is "$(get c 'http://[fd00:9::5]:85/')" REAL6-80 "an IPv6 flow through a tunnel to a host on IPv6"
like "$(cat "$SL_LOG")" "flow [0-9]+ web6: \[fd00:9::[12]\]:[0-9]+ -> \[fd00:9::5\]:80" \
	"the flow is logged with both IPv6 endpoints"

# ---- sluice proxy --bind, bare and in brackets ----
daemon_start P c "$conf" proxy --bind ::1 web6:18080
ok $? "sluice proxy --bind ::1 starts"
is "$(get c 'http://[::1]:18080/')" UPSTREAM6 "and forwards [::1]:18080"
daemon_stop P
daemon_start Q c "$conf" proxy --bind '[::1]' web6:18081 to4:18082
is "$(get c 'http://[::1]:18081/')$(get c 'http://[::1]:18082/')" UPSTREAM6UPSTREAM4 \
	"--bind [::1] works too, to IPv6 and IPv4 upstreams"
daemon_stop Q

# ---- sources ----
is "$(get c 'http://[fd00:9::5]:84/' --interface fd00:9::1)" UPSTREAM6 "sources: a listed IPv6 client is intercepted"
is "$(get c 'http://[fd00:9::5]:84/' --interface fd00:9::2)" REAL6-84 "sources: an unlisted IPv6 client reaches the real server"
is "$(get c http://10.9.0.5:84/ --interface 10.9.0.1)" UPSTREAM6 "sources: a listed IPv4 client is intercepted (IPv6 upstream)"
is "$(get c http://10.9.0.5:84/ --interface 10.9.0.2)" REAL4-84 "sources: an unlisted IPv4 client reaches the real server"

# ---- a gateway ----
is "$(get lan 'http://[fd00:9::5]/')" UPSTREAM6 "a LAN client's IPv6 flow is intercepted by the gateway"
is "$(get lan 'http://[fd00:9::5]:81/')" REAL6-81 "its other ports are forwarded untouched"
is "$(get lan 'http://[fd00:9::5]:84/')" UPSTREAM6 "sources: the listed LAN prefix is intercepted"
like "$(cat "$SL_LOG")" "flow [0-9]+ web6: \[fd00:8::2\]:[0-9]+ -> \[fd00:9::5\]:80" \
	"the gateway's flow is logged with the LAN client"

dump=$(nsx c "$SLUICE" --state-dir "$SL_STATE" dump 2>&1)
like "$dump" "tcp \[::1\]:$p6 \(transparent\)" "dump lists the IPv6 listener"
like "$dump" "NF-INTERCEPT  tcp fd00:9::5/128 dport 80 -> \[::1\]:$p6  \[web6\]" \
	"dump lists the IPv6 rules"

sluice_stop TERM
is "$SL_STATUS" 0 "SIGTERM stops sluice with status 0"
same_state "$before" "$(settled_state c)" "after the stop, IPv4 and IPv6 rules, policy rules and routes are as before"

# ---- listen on IPv6, fixed port; SIGKILL and cleanup ----
conf2="$T_TMP/sluice-v6.yaml"
sed 's/^  backend: iptables$/  backend: iptables\n  listen: "[::1]:15001"/' "$conf" > "$conf2"
sluice_start c "$conf2"
ok $? "sluice starts with intercept.listen [::1]:15001"
like "$(cat "$SL_LOG")" "transparent listener on tcp 127\.0\.0\.1:15001" \
	"the IPv4 twin takes the same port on 127.0.0.1"
like "$(nsx c iptables-legacy-save -t mangle)" "--comment picky -j TPROXY --on-port 15001 --on-ip 127.0.0.1" \
	"iptables rules point at it"
like "$(nsx c ip6tables-legacy-save -t mangle)" "--comment web6 -j TPROXY --on-port 15001 --on-ip ::1" \
	"ip6tables rules at [::1]:15001"
is "$(get c 'http://[fd00:9::5]/')" UPSTREAM6 "an IPv6 flow is intercepted"
is "$(get c http://10.9.0.5:84/ --interface 10.9.0.1)" UPSTREAM6 "and an IPv4 one"
sluice_stop KILL
ok $([ "$(kernel_state c)" != "$before" ] && echo 0 || echo 1) "SIGKILL leaves rules behind"
out=$(nsx c "$SLUICE" -c "$conf2" --state-dir "$SL_STATE" cleanup 2>&1); rc=$?
is "$rc" 0 "sluice cleanup succeeds"
same_state "$before" "$(settled_state c)" "and restores IPv4 and IPv6 state exactly"

# ---- no IPv6 on lo ----
ns_new n
nsx n sysctl -qw net.ipv6.conf.lo.disable_ipv6=1
nsx n ip link add d0 type veth peer name d1
nsx n ip addr add 10.7.0.1/24 dev d0
nsx n ip link set d0 up
nsx n ip link set d1 up
http_server n 127.0.0.1 8080 UPSTREAM-N
before_n=$(settled_state n)
write_conf "$T_TMP/sluice-n.yaml" <<'EOF2'
intercept:
  backend: iptables
services:
  - name: both
    intercept: { protocols: [tcp], addresses: [10.7.0.5, "fd00:9::5"], ports: [80] }
    forward: { direct: 127.0.0.1:8080 }
EOF2
sluice_start n "$T_TMP/sluice-n.yaml"
ok $? "without IPv6 on lo, sluice starts"
is "$(grep -c 'ipv6 is disabled on lo: intercepting ipv4 only' "$SL_LOG")" 1 \
	"and says, once, that it intercepts IPv4 only"
is "$(get n http://10.7.0.5/)" UPSTREAM-N "IPv4 is intercepted"
unlike "$(nsx n ip6tables-legacy-save -t mangle; nsx n ip -6 rule)" "NF-INTERCEPT|9100" \
	"no IPv6 rules or policy rules are installed"
sluice_stop TERM
same_state "$before_n" "$(settled_state n)" "a stop leaves the kernel state as before"

done_testing
