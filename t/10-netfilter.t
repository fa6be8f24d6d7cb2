#!/bin/sh
# SPDX-License-Identifier: MIT
# The iptables backend and policy routing, seen the way a user sees them:
# iptables-save, ip rule, ip route, and where real packets land. Every
# phase runs in its own network namespace (unshare -n), never the host's.

PORT=41234
self=$0

# ---- helpers (used inside the namespaces) ----

# TAP lines are unnumbered here; the outer script numbers them.
pass() { echo "ok - $*"; }
fail() { echo "not ok - $*"; }
diag() { sed 's/^/#   /'; }

# check DESCRIPTION COMMAND...: passes if the command succeeds.
check() {
	d=$1
	shift
	if "$@" >"$TMP/check.out" 2>&1; then
		pass "$d"
	else
		fail "$d"
		diag <"$TMP/check.out"
	fi
}

# same DESCRIPTION GOT_FILE WANT_FILE: passes if the files are identical.
same() {
	if cmp -s "$2" "$3"; then
		pass "$1"
	else
		fail "$1"
		diff -u "$3" "$2" | diag
	fi
}

save4() { iptables-legacy-save "$@" | grep -v '^#'; }
save6() { ip6tables-legacy-save "$@" | grep -v '^#'; }
our_rules() { grep -E '^-A (PREROUTING|OUTPUT|NF-INTERCEPT|NF-INTERCEPT-OUT) '; }

snapshot() {
	{
		echo "== iptables-save"; save4
		echo "== ip6tables-save"; save6
		echo "== ip rule"; ip rule
		echo "== ip -6 rule"; ip -6 rule
		echo "== ip route show table all"; ip route show table all
		echo "== ip -6 route show table all"; ip -6 route show table all
	} >"$1" 2>&1
}

tool() { "$NF_TOOL" "$@" 2>>"$TMP/tool.log"; }

# ---- phase: how a configuration expands into rules ----

phase_rules() {
	cat >"$TMP/rules.yaml" <<-'EOF'
	services:
	  - name: wiki
	    intercept:
	      protocols: [tcp, udp]
	      addresses: [wiki.corp.test, 10.9.0.0/24, "fd00:9::/64"]
	      ports: [80, "8000-8100"]
	      sources: [10.8.0.0/16, "fd00:8::/64"]
	    forward:
	      direct: 127.0.0.1:8080
	  - name: plain
	    intercept:
	      protocols: [tcp]
	      addresses: [10.9.1.5]
	      ports: [443]
	    forward:
	      direct: 127.0.0.1:8443
	  - name: hosted
	    host:
	      address: 127.0.0.1:9000
	      allow: [gw-1]
	EOF
	"$NF_TOOL" rules "$TMP/rules.yaml" 169.254.0.1 >/dev/null 2>&1
	check "rules: an extra address without SERVICE= is refused (64)" \
	    test $? = 64
	tool rules "$TMP/rules.yaml" plain=169.254.7.1 >"$TMP/got"
	cat >"$TMP/want" <<-'EOF'
	wiki tcp 10.9.0.0/24 dport 80-80 from 10.8.0.0/16
	wiki tcp 10.9.0.0/24 dport 8000-8100 from 10.8.0.0/16
	wiki udp 10.9.0.0/24 dport 80-80 from 10.8.0.0/16
	wiki udp 10.9.0.0/24 dport 8000-8100 from 10.8.0.0/16
	wiki tcp fd00:9::/64 dport 80-80 from fd00:8::/64
	wiki tcp fd00:9::/64 dport 8000-8100 from fd00:8::/64
	wiki udp fd00:9::/64 dport 80-80 from fd00:8::/64
	wiki udp fd00:9::/64 dport 8000-8100 from fd00:8::/64
	plain tcp 10.9.1.5/32 dport 443-443
	plain tcp 169.254.7.1/32 dport 443-443
	EOF
	same "rules: CIDRs x protocols x ports x same-family sources, names" \
	    "$TMP/got" "$TMP/want"
}

# ---- phase: what gets installed, replaced and removed ----

phase_state() {
	ip link set lo up
	# Someone else's firewall, policy rule and route: must survive us.
	iptables-legacy -t mangle -A PREROUTING -p icmp -j ACCEPT
	iptables-legacy -t mangle -A OUTPUT -p icmp -j ACCEPT
	ip6tables-legacy -t mangle -A PREROUTING -p ipv6-icmp -j ACCEPT
	ip rule add pref 1000 from 192.0.2.1 lookup main
	ip route add blackhole 192.0.2.0/24 table 100
	snapshot "$TMP/before"

	check "apply exits 0" tool apply $PORT demo:tcp:10.9.0.5/32:80 \
	    web:tcp:10.9.0.0/24:8000-8100:src=10.8.0.0/16 \
	    dns:udp:10.9.0.5:53 six:tcp:[fd00:9::/64]:443

	save4 -t mangle | our_rules >"$TMP/got"
	cat >"$TMP/want" <<-EOF
	-A PREROUTING -j NF-INTERCEPT
	-A PREROUTING -p icmp -j ACCEPT
	-A OUTPUT -j NF-INTERCEPT-OUT
	-A OUTPUT -p icmp -j ACCEPT
	-A NF-INTERCEPT -d 10.9.0.5/32 -p tcp -m tcp --dport 80 -m comment --comment demo -j TPROXY --on-port $PORT --on-ip 127.0.0.1 --tproxy-mark 0x1/0x1
	-A NF-INTERCEPT -s 10.8.0.0/16 -d 10.9.0.0/24 -p tcp -m tcp --dport 8000:8100 -m comment --comment web -j TPROXY --on-port $PORT --on-ip 127.0.0.1 --tproxy-mark 0x1/0x1
	-A NF-INTERCEPT -d 10.9.0.5/32 -p udp -m udp --dport 53 -m comment --comment dns -j TPROXY --on-port $PORT --on-ip 127.0.0.1 --tproxy-mark 0x1/0x1
	-A NF-INTERCEPT-OUT -m mark --mark 0x2/0x2 -j RETURN
	-A NF-INTERCEPT-OUT -d 10.9.0.5/32 -p tcp -m tcp --dport 80 -m comment --comment demo -j MARK --set-xmark 0x1/0x1
	-A NF-INTERCEPT-OUT -s 10.8.0.0/16 -d 10.9.0.0/24 -p tcp -m tcp --dport 8000:8100 -m comment --comment web -j MARK --set-xmark 0x1/0x1
	-A NF-INTERCEPT-OUT -d 10.9.0.5/32 -p udp -m udp --dport 53 -m comment --comment dns -j MARK --set-xmark 0x1/0x1
	EOF
	same "iptables: jumps first, then exactly the TPROXY and MARK rules" \
	    "$TMP/got" "$TMP/want"
	check "iptables: both chains declared in mangle" \
	    sh -c 'iptables-legacy-save -t mangle | grep -x ":NF-INTERCEPT - \[0:0\]" &&
	    iptables-legacy-save -t mangle | grep -x ":NF-INTERCEPT-OUT - \[0:0\]"'

	save6 -t mangle | our_rules >"$TMP/got"
	cat >"$TMP/want" <<-EOF
	-A PREROUTING -j NF-INTERCEPT
	-A PREROUTING -p ipv6-icmp -j ACCEPT
	-A OUTPUT -j NF-INTERCEPT-OUT
	-A NF-INTERCEPT -d fd00:9::/64 -p tcp -m tcp --dport 443 -m comment --comment six -j TPROXY --on-port $PORT --on-ip ::1 --tproxy-mark 0x1/0x1
	-A NF-INTERCEPT-OUT -m mark --mark 0x2/0x2 -j RETURN
	-A NF-INTERCEPT-OUT -d fd00:9::/64 -p tcp -m tcp --dport 443 -m comment --comment six -j MARK --set-xmark 0x1/0x1
	EOF
	same "ip6tables: the IPv6 rule, listener ::1" "$TMP/got" "$TMP/want"

	{ ip rule; ip -6 rule; } | grep '^9100:' >"$TMP/got"
	printf '9100:\tfrom all fwmark 0x1/0x1 lookup 100 proto 83\n' >"$TMP/want"
	cat "$TMP/want" "$TMP/want" >"$TMP/want2"
	same "ip rule: fwmark 0x1/0x1 lookup 100 at 9100, both families" \
	    "$TMP/got" "$TMP/want2"
	check "ip route: local default dev lo in table 100" \
	    sh -c 'ip route show table 100 | grep -x "local default dev lo proto 83 scope host " &&
	    ip -6 route show table 100 | grep "^local default dev lo proto 83 "'

	check "local add of a pool address exits 0" tool local add 169.254.3.4
	check "local add again is fine (idempotent)" tool local add 169.254.3.4
	check "local add of an IPv6 pool address exits 0" \
	    tool local add fd00:5::3/128
	check "ip route: pool addresses are local routes in table local" \
	    sh -c 'ip route show table local | grep -x "local 169.254.3.4 dev lo proto 83 scope host " &&
	    ip -6 route show table local | grep "^local fd00:5::3 dev lo proto 83 "'
	check "local del exits 0" tool local del fd00:5::3/128
	check "... and the route is gone" \
	    sh -c '! ip -6 route show table local | grep -q fd00:5::3'
	check "local del of an absent address exits 0" \
	    tool local del fd00:5::3/128

	tool dump >"$TMP/dump"
	check "dump lists rules with counters" grep -x \
	    "NF-INTERCEPT  tcp 10.9.0.5/32 dport 80 -> 127.0.0.1:$PORT  \[demo\]  pkts 0 bytes 0" \
	    "$TMP/dump"

	snapshot "$TMP/applied"
	tool apply $PORT demo:tcp:10.9.0.5/32:80 \
	    web:tcp:10.9.0.0/24:8000-8100:src=10.8.0.0/16 \
	    dns:udp:10.9.0.5:53 six:tcp:[fd00:9::/64]:443
	snapshot "$TMP/again"
	same "applying the same rules again changes nothing" \
	    "$TMP/again" "$TMP/applied"

	check "apply of a different, IPv4-only set exits 0" \
	    tool apply $PORT api:tcp:10.9.0.6/32:443
	save4 -t mangle | our_rules >"$TMP/got"
	cat >"$TMP/want" <<-EOF
	-A PREROUTING -j NF-INTERCEPT
	-A PREROUTING -p icmp -j ACCEPT
	-A OUTPUT -j NF-INTERCEPT-OUT
	-A OUTPUT -p icmp -j ACCEPT
	-A NF-INTERCEPT -d 10.9.0.6/32 -p tcp -m tcp --dport 443 -m comment --comment api -j TPROXY --on-port $PORT --on-ip 127.0.0.1 --tproxy-mark 0x1/0x1
	-A NF-INTERCEPT-OUT -m mark --mark 0x2/0x2 -j RETURN
	-A NF-INTERCEPT-OUT -d 10.9.0.6/32 -p tcp -m tcp --dport 443 -m comment --comment api -j MARK --set-xmark 0x1/0x1
	EOF
	same "re-apply replaces the rules: no duplicates, no leftovers" \
	    "$TMP/got" "$TMP/want"
	save6 -t mangle | our_rules >"$TMP/got"
	printf '%s\n' '-A PREROUTING -p ipv6-icmp -j ACCEPT' >"$TMP/want"
	same "ip6tables: chains gone once no IPv6 rule is left" \
	    "$TMP/got" "$TMP/want"

	check "flush exits 0" tool flush
	snapshot "$TMP/after"
	same "after flush iptables-save, ip rule, ip route are as before" \
	    "$TMP/after" "$TMP/before"
	check "flush with nothing installed exits 0" tool flush
	snapshot "$TMP/after2"
	same "a second flush changes nothing" "$TMP/after2" "$TMP/before"
}

# ---- phase: real packets ----

# The transparent listener: answers each TCP connection and UDP datagram
# with the original destination it was sent to.
write_listener() {
	cat >"$TMP/listener.py" <<-'EOF'
	import select, socket, struct, sys
	IP_TRANSPARENT, IP_RECVORIGDSTADDR, IPV6_TRANSPARENT = 19, 20, 75
	port = int(sys.argv[1])
	def name(sa):
	    return ("[%s]:%d" if ":" in sa[0] else "%s:%d") % sa[:2]
	def tcp(family, level, opt, addr):
	    s = socket.socket(family, socket.SOCK_STREAM)
	    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
	    s.setsockopt(level, opt, 1)
	    s.bind((addr, port))
	    s.listen(16)
	    return s
	t4 = tcp(socket.AF_INET, socket.SOL_IP, IP_TRANSPARENT, "127.0.0.1")
	t6 = tcp(socket.AF_INET6, socket.IPPROTO_IPV6, IPV6_TRANSPARENT, "::1")
	u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
	u.setsockopt(socket.SOL_IP, IP_TRANSPARENT, 1)
	u.setsockopt(socket.SOL_IP, IP_RECVORIGDSTADDR, 1)
	u.bind(("127.0.0.1", port))
	print("ready", flush=True)
	while True:
	    for s in select.select([t4, t6, u], [], [])[0]:
	        if s is not u:
	            c, peer = s.accept()
	            me = name(c.getsockname())
	            print("tcp %s -> %s" % (name(peer), me), flush=True)
	            c.sendall(("intercepted " + me + "\n").encode())
	            c.close()
	            continue
	        data, anc, _, peer = u.recvmsg(2048, 256)
	        for level, kind, d in anc:
	            if level == socket.SOL_IP and kind == IP_RECVORIGDSTADDR:
	                dport = struct.unpack("!H", d[2:4])[0]
	                dst = (socket.inet_ntoa(d[4:8]), dport)
	        me = name(dst)
	        print("udp %s -> %s" % (name(peer), me), flush=True)
	        # Replies leave from the original destination.
	        r = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
	        r.setsockopt(socket.SOL_IP, IP_TRANSPARENT, 1)
	        r.bind(dst)
	        r.sendto(("intercepted " + me + "\n").encode(), peer)
	        r.close()
	EOF
	cat >"$TMP/client.py" <<-'EOF'
	import socket, sys
	SO_MARK = 36
	proto, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
	mark = int(sys.argv[4], 0) if len(sys.argv) > 4 else 0
	family = socket.AF_INET6 if ":" in host else socket.AF_INET
	kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
	s = socket.socket(family, kind)
	s.settimeout(1.5)
	if mark:
	    s.setsockopt(socket.SOL_SOCKET, SO_MARK, mark)
	try:
	    s.connect((host, port))
	    if proto == "udp":
	        s.send(b"ping")
	    print(s.recv(100).decode().strip())
	except OSError as e:
	    print("failed: %s" % e)
	EOF
}

# A real server behind the remote network: tells which address it was
# reached at, so a client can tell it from the listener.
write_server() {
	cat >"$TMP/server.py" <<-'EOF'
	import select, socket, sys
	socks = []
	for port in sys.argv[1:]:
	    for family, addr in (socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::"):
	        s = socket.socket(family, socket.SOCK_STREAM)
	        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
	        if family == socket.AF_INET6:
	            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
	        s.bind((addr, int(port)))
	        s.listen(16)
	        socks.append(s)
	print("ready", flush=True)
	while True:
	    for s in select.select(socks, [], [])[0]:
	        c, _ = s.accept()
	        me = c.getsockname()
	        fmt = "[%s]:%d" if ":" in me[0] else "%s:%d"
	        c.sendall(("server " + fmt % me[:2] + "\n").encode())
	        c.close()
	EOF
}

# expect DESCRIPTION WANT CLIENT-ARGS...: the client, run in namespace
# $IN (a nsenter prefix, reset after use) or here, prints WANT.
expect() {
	d=$1
	want=$2
	shift 2
	got=$($IN python3 "$TMP/client.py" "$@" 2>&1)
	IN=
	if [ "$got" = "$want" ]; then
		pass "$d"
	else
		fail "$d"
		printf 'got:  %s\nwant: %s\n' "$got" "$want" | diag
	fi
}

# Starts a process holding a new, empty namespace; its pid in $CHILD.
child_netns() {
	unshare -n sleep 600 &
	CHILD=$!
	i=0
	while [ $i -lt 50 ] && [ "$(readlink /proc/$CHILD/ns/net)" = \
	    "$(readlink /proc/self/ns/net)" ]; do
		sleep 0.1
		i=$((i + 1))
	done
}

# The remote network: 10.9.0.5, 10.9.0.7, fd00:9::5 on a server behind wan0.
start_server() {
	child_netns
	SRV_PID=$CHILD
	SRV="nsenter --net=/proc/$SRV_PID/ns/net"
	ip link add wan0 type veth peer name srv0 &&
	ip link set srv0 netns "$SRV_PID" &&
	ip addr add 10.9.0.1/24 dev wan0 &&
	ip addr add fd00:9::1/64 dev wan0 nodad && ip link set wan0 up &&
	$SRV ip link set lo up &&
	$SRV ip addr add 10.9.0.5/24 dev srv0 &&
	$SRV ip addr add 10.9.0.7/24 dev srv0 &&
	$SRV ip addr add fd00:9::5/64 dev srv0 nodad &&
	$SRV ip link set srv0 up &&
	$SRV ip route add 10.8.0.0/24 via 10.9.0.1 || return 1
	$SRV python3 "$TMP/server.py" 80 81 8080 >"$TMP/server.log" 2>&1 &
	SERVER=$!
	wait_ready "$TMP/server.log"
}

# A LAN client of this host as a gateway: 10.8.0.2 behind gw0. (The
# sysctl is this namespace's own.)
start_lan() {
	child_netns
	LAN_PID=$CHILD
	LAN="nsenter --net=/proc/$LAN_PID/ns/net"
	ip link add gw0 type veth peer name lan0 &&
	ip link set lan0 netns "$LAN_PID" &&
	ip addr add 10.8.0.1/24 dev gw0 && ip link set gw0 up &&
	$LAN ip link set lo up &&
	$LAN ip addr add 10.8.0.2/24 dev lan0 && $LAN ip link set lan0 up &&
	$LAN ip route add default via 10.8.0.1 &&
	echo 1 >/proc/sys/net/ipv4/ip_forward
}

wait_ready() {
	i=0
	while [ $i -lt 50 ] && ! grep -q ready "$1"; do
		sleep 0.1
		i=$((i + 1))
	done
	grep -q ready "$1"
}

phase_packets() {
	ip link set lo up
	write_listener
	write_server
	check "remote server namespace behind wan0 is up" start_server
	check "LAN client namespace behind gw0 is up" start_lan
	python3 "$TMP/listener.py" $PORT >"$TMP/listener.log" 2>&1 &
	LISTENER=$!
	check "transparent listener is up" wait_ready "$TMP/listener.log"
	expect "before apply, 10.9.0.5:80 is the real server" \
	    "server 10.9.0.5:80" tcp 10.9.0.5 80

	check "apply exits 0" tool apply $PORT demo:tcp:10.9.0.5/32:80 \
	    dns:udp:10.9.0.5/32:53 web:tcp:10.9.0.0/24:8000-8100:src=10.8.0.0/16
	check "IPv4-only rules leave ip6tables uninstantiated" \
	    sh -c '! grep -qx mangle /proc/net/ip6_tables_names 2>/dev/null'

	expect "local TCP to 10.9.0.5:80 lands on the listener" \
	    "intercepted 10.9.0.5:80" tcp 10.9.0.5 80
	expect "local TCP to 10.9.0.5:81 passes untouched to the server" \
	    "server 10.9.0.5:81" tcp 10.9.0.5 81
	expect "local UDP to 10.9.0.5:53 lands on the listener, reply from it" \
	    "intercepted 10.9.0.5:53" udp 10.9.0.5 53
	expect "a socket with the bypass mark 0x2 reaches the real server" \
	    "server 10.9.0.5:80" tcp 10.9.0.5 80 0x2
	IN=$LAN
	expect "forwarded TCP from 10.8.0.2 to 10.9.0.7:8080 is intercepted" \
	    "intercepted 10.9.0.7:8080" tcp 10.9.0.7 8080
	expect "local TCP to 10.9.0.7:8080 (source not in 10.8/16) is not" \
	    "server 10.9.0.7:8080" tcp 10.9.0.7 8080
	tool dump >"$TMP/dump"
	check "dump counts the intercepted packets" grep -E \
	    "^NF-INTERCEPT  tcp 10.9.0.5/32 dport 80 -> 127.0.0.1:$PORT  \[demo\]  pkts [1-9]" \
	    "$TMP/dump"

	check "apply with an IPv6 rule added exits 0" tool apply $PORT \
	    demo:tcp:10.9.0.5/32:80 six:tcp:[fd00:9::5/128]:80
	expect "local TCP to [fd00:9::5]:80 lands on the listener" \
	    "intercepted [fd00:9::5]:80" tcp fd00:9::5 80
	expect "local TCP to [fd00:9::5]:81 passes untouched to the server" \
	    "server [fd00:9::5]:81" tcp fd00:9::5 81
	IN=$LAN
	expect "after the re-apply, LAN TCP to 10.9.0.7:8080 is forwarded" \
	    "server 10.9.0.7:8080" tcp 10.9.0.7 8080
	grep -E '^(tcp|udp) ' "$TMP/listener.log" | sed 's/ .* -> / /' |
	    sort >"$TMP/got"
	printf '%s\n' "tcp 10.9.0.5:80" "tcp 10.9.0.7:8080" \
	    "tcp [fd00:9::5]:80" "udp 10.9.0.5:53" >"$TMP/want"
	same "the listener saw exactly the intercepted flows" \
	    "$TMP/got" "$TMP/want"

	check "flush exits 0" tool flush
	expect "after flush, 10.9.0.5:80 is the real server again" \
	    "server 10.9.0.5:80" tcp 10.9.0.5 80
}

# ---- inside a namespace ----

inner() {
	# The helper processes keep their namespaces alive: always end them.
	trap 'kill $LISTENER $SERVER $SRV_PID $LAN_PID 2>/dev/null; wait 2>/dev/null' EXIT
	trap 'exit 1' INT TERM
	LISTENER= SERVER= SRV_PID= LAN_PID= IN=
	"phase_$1"
	echo "# phase $1 done"
}

if [ "${1:-}" = "--phase" ]; then
	inner "$2"
	exit 0
fi

# ---- outside: prerequisites, then each phase in a fresh namespace ----

skip() { echo "1..0 # SKIP $*"; exit 0; }
[ "$(id -u)" = 0 ] || skip "need root"
for cmd in unshare nsenter timeout iptables-legacy-save ip6tables-legacy-save ip python3; do
	command -v $cmd >/dev/null 2>&1 || skip "$cmd not found"
done
NF_TOOL=${TOP_BUILDDIR:-.}/t/nf_tool
[ -x "$NF_TOOL" ] || skip "$NF_TOOL not built"
case $NF_TOOL in /*) ;; *) NF_TOOL=$(pwd)/$NF_TOOL ;; esac
unshare -n true 2>/dev/null || skip "cannot create a network namespace"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/sluice-t10.XXXXXX") || exit 1
trap 'rm -rf "$TMP"' EXIT
trap 'exit 1' INT TERM
export TMP NF_TOOL

for phase in rules state packets; do
	timeout 120 unshare -n sh "$self" --phase $phase >>"$TMP/tap" 2>&1
	grep -qx "# phase $phase done" "$TMP/tap" ||
	    echo "not ok - phase $phase ran to the end" >>"$TMP/tap"
	if [ -s "$TMP/tool.log" ]; then
		echo "# nf_tool said, in phase $phase:" >>"$TMP/tap"
		sed 's/^/#   /' "$TMP/tool.log" >>"$TMP/tap"
		: >"$TMP/tool.log"
	fi
done

awk '
/^not ok - / { n++; print "not ok " n substr($0, 7); next }
/^ok - /     { n++; print "ok " n substr($0, 3); next }
/^#/         { print; next }
             { print "# " $0 }
END          { print "1.." n }
' "$TMP/tap"
