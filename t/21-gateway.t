#!/bin/bash
# SPDX-License-Identifier: MIT
# A gateway: a LAN client routed through a namespace running sluice is
# intercepted for the listed port, while other traffic is forwarded as is.
. "${TOP_SRCDIR:-$(dirname "$0")/..}/t/lib.sh"

require_netns
require_cmd curl nginx
plan 6

ns_new lan	# a client behind the gateway
ns_new gw	# the gateway running sluice
ns_new s	# the real server
ns_link lan 10.8.0.2/24 gw 10.8.0.1/24
ns_link gw 10.9.0.1/24 s 10.9.0.5/24
nsx lan ip route add default via 10.8.0.1
nsx s ip route add default via 10.9.0.1
nsx gw sysctl -qw net.ipv4.ip_forward=1
http_server s 10.9.0.5 80 REAL80
http_server s 10.9.0.5 81 REAL81
http_server gw 127.0.0.1 8080 GATEWAY-UPSTREAM

conf="$T_TMP/sluice.yaml"
write_conf "$conf" <<'EOF2'
intercept:
  backend: iptables
services:
  - name: web
    intercept: { protocols: [tcp], addresses: [10.9.0.0/24], ports: [80], sources: [10.8.0.0/24] }
    forward: { direct: 127.0.0.1:8080 }
EOF2

before=$(settled_state gw)
sluice_start gw "$conf"
ok $? "sluice tproxy starts on the gateway"

body=$(nsx lan curl -sS --max-time 5 http://10.9.0.5/ 2>&1)
is "$body" GATEWAY-UPSTREAM "the LAN client's flow is intercepted by the gateway"
body=$(nsx lan curl -sS --max-time 5 http://10.9.0.5:81/ 2>&1)
is "$body" REAL81 "other ports are forwarded untouched"
like "$(cat "$SL_LOG")" "flow [0-9]+ web: 10\.8\.0\.2:[0-9]+ -> 10\.9\.0\.5:80" \
	"the flow is logged with its client and original destination"

sluice_stop TERM
is "$SL_STATUS" 0 "SIGTERM stops sluice with status 0"
same_state "$before" "$(settled_state gw)" "the gateway's kernel state is as before"

done_testing
