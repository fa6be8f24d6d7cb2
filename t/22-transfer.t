#!/bin/bash
# SPDX-License-Identifier: MIT
# Bulk data through an intercepted flow: 100 MiB arrive intact in each
# direction, and a client's half-close still gets the whole response.
. "${TOP_SRCDIR:-$(dirname "$0")/..}/t/lib.sh"

require_netns
require_cmd curl nginx socat sha256sum
plan 5

ns_new c
ns_new s
ns_link c 10.9.0.1/24 s 10.9.0.5/24
head -c $((100 * 1024 * 1024)) /dev/urandom > "$T_TMP/big"
want=$(sha256sum < "$T_TMP/big" | cut -d' ' -f1)

# Upstreams: nginx serves the file; socat hashes what it is sent and
# answers only after the client's EOF, which needs the half-close.
d="$T_TMP/nginx-c-8080"; mkdir -p "$d/www"; ln -s "$T_TMP/big" "$d/www/big"
http_server c 127.0.0.1 8080 index
printf '#!/bin/sh\nsha256sum | cut -c1-64\n' > "$T_TMP/hash"; chmod +x "$T_TMP/hash"
bg_ns c socat TCP-LISTEN:9000,bind=127.0.0.1,reuseaddr,fork EXEC:"$T_TMP/hash"
wait_port c 127.0.0.1 9000

conf="$T_TMP/sluice.yaml"
write_conf "$conf" <<'EOF2'
intercept:
  backend: iptables
services:
  - name: download
    intercept: { protocols: [tcp], addresses: [10.9.0.5], ports: [80] }
    forward: { direct: 127.0.0.1:8080 }
  - name: upload
    intercept: { protocols: [tcp], addresses: [10.9.0.5], ports: [90] }
    forward: { direct: 127.0.0.1:9000 }
EOF2
sluice_start c "$conf"
ok $? "sluice tproxy starts"

got=$(nsx c curl -sS --max-time 60 http://10.9.0.5/big | sha256sum | cut -d' ' -f1)
is "$got" "$want" "100 MiB download arrives intact"

got=$(nsx c socat -t 60 -T 60 - TCP:10.9.0.5:90 < "$T_TMP/big")
is "$got" "$want" "100 MiB upload arrives intact, and after the client's half-close the response comes back"

got=$(printf 'hello' | nsx c socat -t 10 - TCP:10.9.0.5:90)
is "$got" "$(printf 'hello' | sha256sum | cut -d' ' -f1)" "a small request with half-close gets its response"

sluice_stop TERM
is "$SL_STATUS" 0 "sluice stops cleanly after the transfers"

done_testing
