# SPDX-License-Identifier: MIT
# The tunnel suite of scripts/bench, sourced by it: sluice's mutual-TLS
# tunnel (`sluice tproxy` -> `sluice host`) against shadowsocks-libev
# (ss-redir -> ss-server) and stunnel (client -> server), and a direct
# connection. The measurements are the tcp suite's (it sources
# scripts/bench-tcp.sh for them): iperf3 single stream, wrk `Connection:
# close` connection rate, keep-alive request latency, peak RSS, CPU per GB
# and per connection; here "the proxy" is both ends of the tunnel, summed.
#
# Two network namespaces joined by a veth pair (MTU 65535: as fast as
# loopback), nothing else:
#   client side  BENCH_NS, 10.9.0.1: the clients (iperf3 -c, wrk, curl),
#                the interception rules and the near end of each tunnel
#   host side    a namespace of its own (held by a sleep that scripts/bench
#                stops on exit), 10.9.0.5: nginx (small file) on
#                10.9.0.5:80, iperf3 -s on 10.9.0.5:5201, and the far end
#                of each tunnel, which reaches them over its loopback
# Contenders:
#   direct   the client connects to 10.9.0.5:80 / :5201 over the veth
#   sluice   `sluice tproxy` intercepts 10.9.0.5:80 and :5201 (TPROXY, its
#            own rules) and forwards with forward: {tunnel: [10.9.0.5:7443]}
#            to `sluice host`, which dials the servers (host.address)
#   ss       ss-redir -T (its TCP TPROXY mode) behind the same rules as
#            sluice's (installed by this script), aes-256-gcm, to ss-server
#            on 10.9.0.5:8388, which dials the original destination
#   stunnel  stunnel 5 cannot take TPROXY flows (its listeners never get
#            IP_TRANSPARENT), so the client connects to the stunnel
#            client's plain ports 127.0.0.1:41080 / :41201, no
#            interception; TLS to the stunnel server on 10.9.0.5:7480 /
#            :7481, which dials the servers
# Both TLS tunnels use identities made by `sluice pki` (EC P-256), verify
# each other's certificate against the CA and its name, and speak TLS 1.3
# with the libraries' default ciphers (the negotiated suite and group are
# printed). stunnel keeps its defaults otherwise (session cache of 1000
# entries for 300 s, resumption on, a thread per connection) except
# `debug = 4`: at its default level it logs two lines per connection.
# ss-redir and ss-server get --no-delay (TCP_NODELAY, as the others set).
# Contenders take turns within each round, starting one later each round.
#
# The namespaces have net.ipv4.tcp_tw_reuse=1 (see bench-tcp.sh): clients
# and sluice's tunneller close first and would run out of ports.
#
# Installing shadowsocks-libev on a machine run by systemd also starts the
# package's own ss-server (unit shadowsocks-libev, 127.0.0.1:8388, outside
# the namespaces); the suite says so when it finds it running.
#
# Knobs (environment), besides those of scripts/bench:
#   BENCH_CONTENDERS="direct sluice ss stunnel"
#   BENCH_IPERF_TIME=10 BENCH_WRK_TIME=10 BENCH_WRK_CONNS=32
#   BENCH_WRK_THREADS=1 BENCH_LAT_TIME=4 BENCH_NGINX_WORKERS=1
#   BENCH_BODY_BYTES=512    as in the tcp suite
#   BENCH_TUNNEL_MTU=65535  MTU of the veth pair
#   BENCH_SS_METHOD=aes-256-gcm  the shadowsocks cipher
#   BENCH_STUNNEL_DEBUG=4   stunnel's log level (its default is 5)
#   BENCH_SLUICE_VERBOSE=3  sluice -v, both ends (4: a line per flow; the
#                           logs are shown on failure)
#   BENCH_PERF_FREQ=4000    perf sampling rate with BENCH_PROFILE
# shellcheck shell=bash

# shellcheck source=scripts/bench-tcp.sh
. "$BENCH_SCRIPTS/bench-tcp.sh"

# shellcheck disable=SC2034 # read by scripts/bench
SUITE_PKGS="iperf3 wrk nginx-light curl openssl shadowsocks-libev stunnel4"

T_CONTENDERS=${BENCH_CONTENDERS:-direct sluice ss stunnel}
N_MTU=${BENCH_TUNNEL_MTU:-65535}
N_SS_METHOD=${BENCH_SS_METHOD:-aes-256-gcm}
N_ST_DEBUG=${BENCH_STUNNEL_DEBUG:-4}
N_SL_V=${BENCH_SLUICE_VERBOSE:-3}

T_REMOTE=10.9.0.5		# the host side's address: servers, far ends
T_CLIENT=10.9.0.1/24		# the client side's
N_WEB_PORT=80
N_IPERF_PORT=5201
N_SL_HOST=7443			# sluice host
N_SS_SERVER=8388		# ss-server
N_SS_REDIR=41180		# ss-redir's TPROXY listener on 127.0.0.1
N_ST_WEB=41080			# stunnel client's accept ports on 127.0.0.1
N_ST_IPERF=41201
N_STS_WEB=7480			# stunnel server's
N_STS_IPERF=7481

N_HOLDER=""			# the sleep holding the host side's namespace
declare -gA N_CMDS=() N_TLS=() N_STATS=()

# ---- the host side's namespace ----

hsx() { nsenter --net="/proc/$N_HOLDER/ns/net" -- "$@"; }

# bg_host CMD...: like bg_ns, in the host side's namespace.
bg_host() {
	nsenter --net="/proc/$N_HOLDER/ns/net" -- "$@" &
	LAST_PID=$!
	BENCH_PIDS="$BENCH_PIDS $LAST_PID"
}

# n_wait_port nsx|hsx ADDR PORT [t|u]: wait_port in either namespace, for
# a TCP listener (t, the default) or a bound UDP socket (u); 5 s at most.
n_wait_port() {
	local i
	for i in $(seq 100); do
		"$1" ss -Hl"${4:-t}"n "sport = :$3" 2>/dev/null | grep -qF " $2:$3 " &&
			return 0
		sleep 0.05
	done
	return 1
}

# n_started nsx|hsx ADDR PORT LOG WHAT [t|u]: once WHAT's port is bound;
# if it never is, its log and the end of the run.
n_started() {
	n_wait_port "$1" "$2" "$3" "${6:-t}" && return 0
	cat "$4" >&2
	die "$5 did not start"
}

# n_ss_up t|u PORTS SERVER-OPTS... -- REDIR-OPTS...: ss-server on the host
# side, then ss-redir on the client side behind the TPROXY rules for TCP
# (t) or UDP (u) to PORTS; their commands, key hidden, in N_SS_CMDS.
n_ss_up() {
	local kind=$1 ports=$2 proto=tcp key scmd rcmd
	shift 2
	[ "$kind" = u ] && proto=udp
	key=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
	N_SS_SLOG="$BENCH_TMP/ss-server.log"
	N_SS_RLOG="$BENCH_TMP/ss-redir.log"
	: > "$N_SS_SLOG"
	: > "$N_SS_RLOG"
	scmd=(ss-server -s "$T_REMOTE" -p "$N_SS_SERVER" -k "$key" \
		-m "$N_SS_METHOD")
	while [ $# -gt 0 ] && [ "$1" != -- ]; do scmd+=("$1"); shift; done
	[ $# -gt 0 ] && shift
	rcmd=(ss-redir -s "$T_REMOTE" -p "$N_SS_SERVER" -b 127.0.0.1 \
		-l "$N_SS_REDIR" -k "$key" -m "$N_SS_METHOD" "$@")
	bg_host "${scmd[@]}" >>"$N_SS_SLOG" 2>&1
	N_SS_SPID=$LAST_PID
	n_started hsx "$T_REMOTE" "$N_SS_SERVER" "$N_SS_SLOG" ss-server "$kind"
	n_rules_add "$N_SS_REDIR" "$proto" "$ports"
	bg_ns "${rcmd[@]}" >>"$N_SS_RLOG" 2>&1
	N_SS_RPID=$LAST_PID
	n_started nsx 127.0.0.1 "$N_SS_REDIR" "$N_SS_RLOG" ss-redir "$kind"
	PROXY_PIDS="$N_SS_RPID $N_SS_SPID" PROXY_PID=$N_SS_RPID
	N_SS_CMDS="        host side:   ${scmd[*]/$key/KEY}
        client side: ${rcmd[*]/$key/KEY}"
}

n_network() {
	local i mine
	mine=$(readlink /proc/self/ns/net)
	# unshare execs sleep in a namespace of its own: when scripts/bench
	# stops it (BENCH_PIDS), with everything started in there, the
	# namespace goes away; a named one could outlive a killed run.
	unshare --net -- sleep 86400 &
	N_HOLDER=$!
	BENCH_PIDS="$BENCH_PIDS $N_HOLDER"
	for i in $(seq 100); do
		[ "$(readlink "/proc/$N_HOLDER/ns/net" 2>/dev/null)" != "$mine" ] &&
			break
		sleep 0.02
	done
	[ "$(readlink "/proc/$N_HOLDER/ns/net" 2>/dev/null)" != "$mine" ] ||
		die "cannot create the host side's namespace"
	nsx ip link add bv0 type veth peer name bv1 || die "cannot add veth"
	nsx ip link set bv1 netns "$N_HOLDER" ||
		die "cannot move the veth into the host side's namespace"
	nsx ip addr add "$T_CLIENT" dev bv0
	nsx ip link set bv0 mtu "$N_MTU" up || die "cannot set MTU $N_MTU"
	hsx ip link set lo up
	hsx ip addr add "$T_REMOTE/24" dev bv1
	hsx ip link set bv1 mtu "$N_MTU" up || die "cannot set MTU $N_MTU"
	# Clients, and sluice's tunneller towards the host, close first.
	if ! nsx sysctl -qw net.ipv4.tcp_tw_reuse=1 ||
	    ! hsx sysctl -qw net.ipv4.tcp_tw_reuse=1; then
		die "cannot set net.ipv4.tcp_tw_reuse in the namespaces"
	fi
	nsx iptables-legacy -t mangle -S >/dev/null 2>&1 ||
		die "iptables-legacy mangle table unavailable" 69
}

# ---- servers, identities ----

n_servers() {
	local d="$BENCH_TMP/nginx"
	tcp_nginx_files "$d" "$T_REMOTE:$N_WEB_PORT"
	bg_host nginx -c "$d/nginx.conf" -e "$d/error.log"
	n_wait_port hsx "$T_REMOTE" "$N_WEB_PORT" || die "nginx did not start"
	bg_host iperf3 -s -B "$T_REMOTE" -p "$N_IPERF_PORT" \
		--logfile "$BENCH_TMP/iperf3-server.log"
	n_wait_port hsx "$T_REMOTE" "$N_IPERF_PORT" ||
		die "iperf3 -s did not start"
	tcp_wrk_report
}

# n_pki: a CA and the identities gw (the tunnels' client ends) and host
# (their server ends), made by sluice, used by sluice and stunnel alike.
n_pki() {
	N_PKI="$BENCH_TMP/pki"
	{ "$SLUICE" pki init "$N_PKI" &&
	  "$SLUICE" pki issue "$N_PKI" gw &&
	  "$SLUICE" pki issue "$N_PKI" host; } >/dev/null ||
		die "sluice pki failed"
}

# n_show FILE: a file of ours for the report, the temporary directory
# written as $TMP.
n_show() { sed "s|$BENCH_TMP|\$TMP|g; s/^/        /" "$1"; }
n_tmp() { printf '%s\n' "$*" | sed "s|$BENCH_TMP|\$TMP|g"; }

# n_tls_probe CONTENDER ADDR:PORT [ALPN]: the TLS version, suite and group
# a client with the gw identity gets from a far end (openssl s_client).
n_tls_probe() {
	local out
	out=$(nsx timeout 5 openssl s_client -brief -connect "$2" \
		-cert "$N_PKI/gw.crt" -key "$N_PKI/gw.key" \
		-CAfile "$N_PKI/ca.crt" -verify_return_error \
		${3:+-alpn "$3"} </dev/null 2>&1)
	N_TLS[$1]=$(printf '%s\n' "$out" | awk -F': ' '
		/^Protocol version/ { v = $2 } /^Ciphersuite/ { c = $2 }
		/^Server Temp Key/ { k = $2 }
		END { if (v != "") printf "%s %s, %s", v, c, k }')
	[ -n "${N_TLS[$1]}" ] ||
		note "$1: TLS probe of $2 failed: $(printf '%s' "$out" | tail -2)"
}

# ---- contenders ----

# Each start_X sets PROXY_PIDS (both ends; empty for direct), PROXY_PID
# (one of them, for bench-tcp.sh's measurements), HTTP_URL, IPERF_HOST
# and IPERF_PORT, and N_CMDS[X]; stop_X undoes start_X.

proxy_ticks() {
	local p t=0
	for p in $PROXY_PIDS; do t=$((t + $(cpu_ticks "$p"))); done
	echo "$t"
}

proxy_fds() {
	local p n=0
	# shellcheck disable=SC2012 # /proc/PID/fd holds numbers only
	for p in $PROXY_PIDS; do
		n=$((n + $(ls "/proc/$p/fd" 2>/dev/null | wc -l)))
	done
	echo "$n"
}

# n_record_rss CONTENDER: records the peak RSS of the proxy's ends, MiB.
n_record_rss() {
	local hwm
	hwm=$(proxy_rss_kib)
	[ "${hwm:-0}" -gt 0 ] && record rss "$1" "$(awk -v k="$hwm" \
		'BEGIN { print k / 1024 }')"
	return 0
}

# proxy_rss_kib: the peak RSS of both ends, summed.
proxy_rss_kib() {
	local p k t=0
	for p in $PROXY_PIDS; do
		k=$(peak_rss_kib "$p")
		t=$((t + ${k:-0}))
	done
	echo "$t"
}

start_direct() {
	PROXY_PIDS="" PROXY_PID=""
	HTTP_URL="http://$T_REMOTE/"
	IPERF_HOST=$T_REMOTE
	IPERF_PORT=$N_IPERF_PORT
	N_CMDS[direct]="        (no proxy: $HTTP_URL, $IPERF_HOST:$IPERF_PORT)"
}

stop_direct() { :; }

n_sluice_confs() {
	local id="{ cert: $N_PKI/%s.crt, key: $N_PKI/%s.key, ca: $N_PKI/ca.crt }"
	# shellcheck disable=SC2059 # the format is ours
	cat > "$BENCH_TMP/sluice-host.yaml" <<-EOF
	identity: $(printf "$id" host host)
	host: { listen: $T_REMOTE:$N_SL_HOST }
	services:
	  - name: web
	    host: { address: $T_REMOTE:$N_WEB_PORT, allow: [gw] }
	  - name: iperf
	    host: { address: $T_REMOTE:$N_IPERF_PORT, allow: [gw] }
	EOF
	# shellcheck disable=SC2059
	printf 'identity: %s\n' "$(printf "$id" gw gw)" \
		> "$BENCH_TMP/sluice-tproxy.yaml"
	t_intercept_yaml >> "$BENCH_TMP/sluice-tproxy.yaml"
	cat >> "$BENCH_TMP/sluice-tproxy.yaml" <<-EOF
	services:
	  - name: web
	    intercept: { protocols: [tcp], addresses: [$T_REMOTE], ports: [$N_WEB_PORT] }
	    forward: { tunnel: [$T_REMOTE:$N_SL_HOST] }
	  - name: iperf
	    intercept: { protocols: [tcp], addresses: [$T_REMOTE], ports: [$N_IPERF_PORT] }
	    forward: { tunnel: [$T_REMOTE:$N_SL_HOST] }
	EOF
}

# n_sluice_up CONTENDER [tunnel]: with tunnel, sluice host on the host
# side; sluice tproxy on the client side; their configurations in
# BENCH_TMP (sluice-host.yaml, sluice-tproxy.yaml). Dies unless both run;
# their commands go in N_CMDS[CONTENDER].
n_sluice_up() {
	local c=$1 hcmd tcmd
	SL_HLOG="$BENCH_TMP/sluice-host.log"
	SLUICE_LOG="$BENCH_TMP/sluice.log"
	: > "$SL_HLOG"
	: > "$SLUICE_LOG"
	SL_HPID=""
	N_CMDS[$c]=""
	if [ "${2:-}" = tunnel ]; then
		hcmd=("$SLUICE" -v "$N_SL_V" -c "$BENCH_TMP/sluice-host.yaml" \
			--state-dir "$BENCH_TMP/state-host" host)
		bg_host "${hcmd[@]}" 2>>"$SL_HLOG"
		SL_HPID=$LAST_PID
		if ! wait_log "$SL_HLOG" 'host: running' 10; then
			tail -20 "$SL_HLOG" >&2
			die "sluice host did not start"
		fi
		N_CMDS[$c]="$(n_tmp "        host side:   ${hcmd[*]}")
$(n_show "$BENCH_TMP/sluice-host.yaml")
"
	fi
	tcmd=("$SLUICE" -v "$N_SL_V" -c "$BENCH_TMP/sluice-tproxy.yaml" \
		--state-dir "$BENCH_TMP/state" tproxy --no-self-test)
	bg_ns "${tcmd[@]}" 2>>"$SLUICE_LOG"
	SL_TPID=$LAST_PID
	if ! wait_log "$SLUICE_LOG" 'tproxy: running' 10; then
		tail -20 "$SLUICE_LOG" >&2
		die "sluice tproxy did not start"
	fi
	PROXY_PIDS="$SL_TPID${SL_HPID:+ $SL_HPID}" PROXY_PID=$SL_TPID
	if [ -n "$SL_HPID" ] && [ -z "${N_TLS[$c]:-}" ]; then
		n_tls_probe "$c" "$T_REMOTE:$N_SL_HOST" sluice/1
	fi
	N_CMDS[$c]="${N_CMDS[$c]}$(n_tmp "        client side: ${tcmd[*]}")
$(n_show "$BENCH_TMP/sluice-tproxy.yaml")"
}

start_sluice() {
	n_sluice_confs
	n_sluice_up sluice tunnel
	HTTP_URL="http://$T_REMOTE/"
	IPERF_HOST=$T_REMOTE
	IPERF_PORT=$N_IPERF_PORT
}

# n_sluice_after ROUND: with the load over, both dumps, kept for the report
# and checked for flows left behind.
n_sluice_after() {
	local t h n
	t=$(nsx "$SLUICE" --state-dir "$BENCH_TMP/state" dump 2>&1)
	h=$(hsx "$SLUICE" --state-dir "$BENCH_TMP/state-host" dump 2>&1)
	printf '%s\n' "$t" > "$BENCH_TMP/sluice-dump-tproxy.$1"
	printf '%s\n' "$h" > "$BENCH_TMP/sluice-dump-host.$1"
	N_STATS[$1]="tunneller: $(printf '%s\n' "$t" | sed -n \
		'/^tunnel hosts:/{n;s/^ *//;p;q}'); host: $(printf '%s\n' "$h" |
		sed -n 's/^host: listening on [^,]*, //p' | head -1)"
	n=$(printf '%s\n' "$t" | grep -cE '^ +flow [0-9]+')
	[ "$n" -eq 0 ] || note "sluice tproxy: $n flows still listed after" \
		"the load ended: $(printf '%s\n' "$t" | grep -E '^ +flow' |
		head -3)"
	# The tunneller's pool connections wait on the host as "ready".
	n=$(printf '%s\n' "$h" | grep -E '^ +host flow [0-9]+' |
		grep -cv ', ready, ')
	[ "$n" -eq 0 ] || note "sluice host: $n flows still listed after" \
		"the load ended: $(printf '%s\n' "$h" | grep -E '^ +host flow' |
		grep -v ', ready, ' | head -3)"
}

# n_sluice_down: stops what n_sluice_up started; dies if interception
# state stays behind, shows the daemons' complaints.
n_sluice_down() {
	stop_pid "$SL_TPID" TERM || note "sluice tproxy did not stop in 10 s"
	if [ -n "$SL_HPID" ]; then
		stop_pid "$SL_HPID" TERM || note "sluice host did not stop in 10 s"
	fi
	if nsx iptables-legacy-save -t mangle | grep -q 'NF-INTERCEPT' ||
	    nsx ip rule | grep -q "^$T_PRIO:"; then
		note "sluice left rules behind:"
		nsx iptables-legacy-save -t mangle >&2
		nsx ip rule >&2
		die "stale interception state"
	fi
	grep -E 'warn|error|fatal' "$SLUICE_LOG" | head -5 |
		sed 's/^/sluice tproxy: /' >&2
	if [ -n "$SL_HPID" ]; then
		grep -E 'warn|error|fatal' "$SL_HLOG" | head -5 |
			sed 's/^/sluice host: /' >&2
	fi
	return 0
}

stop_sluice() { n_sluice_down; }

# n_rules_add PORT [PROTO PORTS]: the rules sluice installs (README "What
# sluice installs in the kernel"), aimed at a transparent listener on
# 127.0.0.1:PORT, for PROTO (default tcp) to the server's PORTS (default
# both services'); n_rules_del removes them.
# shellcheck disable=SC2015 # die exits
n_rules_add() {
	local p proto=${2:-tcp} ports=${3:-"$N_WEB_PORT $N_IPERF_PORT"}
	ipt -N BENCH-TPROXY && ipt -N BENCH-TPROXY-OUT &&
	ipt -A PREROUTING -j BENCH-TPROXY &&
	ipt -A OUTPUT -j BENCH-TPROXY-OUT &&
	ipt -A BENCH-TPROXY-OUT -m mark --mark "$T_BYPASS/$T_BYPASS" \
		-j RETURN || die "cannot install the interception rules"
	for p in $ports; do
		ipt -A BENCH-TPROXY -d "$T_REMOTE/32" -p "$proto" --dport "$p" \
			-j TPROXY --on-port "$1" --on-ip 127.0.0.1 \
			--tproxy-mark "$T_MARK/$T_MARK" &&
		ipt -A BENCH-TPROXY-OUT -d "$T_REMOTE/32" -p "$proto" --dport "$p" \
			-j MARK --set-xmark "$T_MARK/$T_MARK" ||
			die "cannot install the interception rules"
	done
	nsx ip rule add fwmark "$T_MARK/$T_MARK" lookup "$T_TABLE" \
		priority "$T_PRIO" &&
	nsx ip route add local default dev lo table "$T_TABLE" ||
		die "cannot install the interception rules"
}

n_rules_del() {
	hp_rules_del
	if ipt -S | grep -q BENCH-TPROXY || nsx ip rule | grep -q "^$T_PRIO:"
	then
		die "the interception rules are still there"
	fi
}

# n_tproxy_packets: packets that TPROXY rules diverted so far.
n_tproxy_packets() {
	nsx iptables-legacy-save -c -t mangle | awk '/-j TPROXY/ {
		gsub(/[][]/, "", $1); split($1, a, ":"); n += a[1] }
		END { print n + 0 }'
}

start_ss() {
	n_ss_up t "$N_WEB_PORT $N_IPERF_PORT" --no-delay -- -T --no-delay
	HTTP_URL="http://$T_REMOTE/"
	IPERF_HOST=$T_REMOTE
	IPERF_PORT=$N_IPERF_PORT
	N_CMDS[ss]="$N_SS_CMDS
        rules: TPROXY $T_REMOTE:$N_WEB_PORT,$N_IPERF_PORT -> 127.0.0.1:$N_SS_REDIR (as sluice's)"
}

stop_ss() {
	stop_pid "$N_SS_RPID" TERM || note "ss-redir did not stop in 10 s"
	stop_pid "$N_SS_SPID" TERM || note "ss-server did not stop in 10 s"
	n_rules_del
	grep -iE 'error|warn' "$N_SS_RLOG" | head -5 | sed 's/^/ss-redir: /' >&2
	grep -iE 'error|warn' "$N_SS_SLOG" | head -5 | sed 's/^/ss-server: /' >&2
	return 0
}

# n_stunnel_conf FILE SIDE: SIDE client (identity gw, accepts plain on
# 127.0.0.1) or server (identity host, accepts TLS on 10.9.0.5).
n_stunnel_conf() {
	local f=$1 side=$2 me peer s
	if [ "$side" = client ]; then me=gw peer=host; else me=host peer=gw; fi
	{
		printf 'foreground = yes\nsyslog = no\npid =\ndebug = %s\n' \
			"$N_ST_DEBUG"
		for s in "web $N_ST_WEB $N_STS_WEB $N_WEB_PORT" \
		    "iperf $N_ST_IPERF $N_STS_IPERF $N_IPERF_PORT"; do
			# shellcheck disable=SC2086 # four words
			set -- $s
			printf '[%s]\n' "$1"
			if [ "$side" = client ]; then
				printf 'client = yes\naccept = 127.0.0.1:%s\n' "$2"
				printf 'connect = %s:%s\n' "$T_REMOTE" "$3"
			else
				printf 'accept = %s:%s\n' "$T_REMOTE" "$3"
				printf 'connect = %s:%s\n' "$T_REMOTE" "$4"
			fi
			printf 'cert = %s\nkey = %s\nCAfile = %s\n' \
				"$N_PKI/$me.crt" "$N_PKI/$me.key" "$N_PKI/ca.crt"
			printf 'verifyChain = yes\ncheckHost = %s\n' "$peer"
			printf 'sslVersionMin = TLSv1.3\n'
		done
	} > "$f"
}

start_stunnel() {
	local sc="$BENCH_TMP/stunnel-server.conf" cc="$BENCH_TMP/stunnel-client.conf"
	n_stunnel_conf "$sc" server
	n_stunnel_conf "$cc" client
	N_ST_SLOG="$BENCH_TMP/stunnel-server.log"
	N_ST_CLOG="$BENCH_TMP/stunnel-client.log"
	: > "$N_ST_SLOG"
	: > "$N_ST_CLOG"
	bg_host stunnel4 "$sc" >>"$N_ST_SLOG" 2>&1
	N_ST_SPID=$LAST_PID
	n_started hsx "$T_REMOTE" "$N_STS_WEB" "$N_ST_SLOG" "stunnel (server)"
	bg_ns stunnel4 "$cc" >>"$N_ST_CLOG" 2>&1
	N_ST_CPID=$LAST_PID
	n_started nsx 127.0.0.1 "$N_ST_WEB" "$N_ST_CLOG" "stunnel (client)"
	PROXY_PIDS="$N_ST_CPID $N_ST_SPID" PROXY_PID=$N_ST_CPID
	HTTP_URL="http://127.0.0.1:$N_ST_WEB/"
	IPERF_HOST=127.0.0.1
	IPERF_PORT=$N_ST_IPERF
	[ -n "${N_TLS[stunnel]:-}" ] ||
		n_tls_probe stunnel "$T_REMOTE:$N_STS_WEB"
	N_CMDS[stunnel]="        host side:   stunnel4 \$TMP/stunnel-server.conf
$(n_show "$sc")
        client side: stunnel4 \$TMP/stunnel-client.conf
$(n_show "$cc")"
}

stop_stunnel() {
	stop_pid "$N_ST_CPID" TERM || note "stunnel (client) did not stop in 10 s"
	stop_pid "$N_ST_SPID" TERM || note "stunnel (server) did not stop in 10 s"
	grep -E 'LOG[0-4]' "$N_ST_CLOG" | head -5 | sed 's/^/stunnel client: /' >&2
	grep -E 'LOG[0-4]' "$N_ST_SLOG" | head -5 | sed 's/^/stunnel server: /' >&2
}

# ---- a turn ----

n_run_contender() {	# n_run_contender NAME ROUND
	local c=$1 fds0 fds1 tp0 tp1
	note "round $2: $c"
	wait_quiet
	"start_$c"
	tp0=$(n_tproxy_packets)
	check_path "$c"
	tp1=$(n_tproxy_packets)
	case $c in
	sluice | ss) [ "$tp1" -gt "$tp0" ] ||
		die "$c: the check went to $T_REMOTE without interception" ;;
	esac
	fds0=$(proxy_fds)
	measure m_iperf "$c"
	measure m_rate "$c"
	measure m_latency "$c"
	if [ -n "$PROXY_PIDS" ]; then
		sleep 0.5
		fds1=$(proxy_fds)
		[ "${fds1:-0}" -gt $((${fds0:-0} + 130)) ] &&
			note "$c: $((fds1 - fds0)) more fds after the load than before"
		[ "$c" = sluice ] && n_sluice_after "$2"
		n_record_rss "$c"
	fi
	"stop_$c"
}

# ---- profile (BENCH_PROFILE=DIR) ----

# n_perf_by_pid NAME [CONNECTIONS]: DIR/NAME.data by process (pid, so that
# sluice's two ends show apart) and kernel/user.
n_perf_by_pid() {
	local n=${2:-0}
	perf report -i "$P_DIR/$1.data" --stdio --no-children --sort pid,dso \
		-g none --show-nr-samples 2>/dev/null | awk -v n="$n" \
		-v f="$P_FREQ" '
		/^#/ || NF < 4 { next }
		{ dso = ($4 == "[kernel.kallsyms]") ? "kernel" : $4;
		  s[$3 " " dso] += $2; t += $2 }
		END { for (k in s) printf "%6.2f%% %8d %s%s\n", 100 * s[k] / t,
			s[k], k, n ? sprintf("  %.1f us/conn",
			s[k] * 1e6 / f / n) : "" }' |
		sort -rn > "$P_DIR/$1.pid.txt"
}

# n_perf_api NAME [CONNECTIONS]: DIR/NAME.data (recorded with dwarf call
# graphs: libcrypto has no frame pointers) by process, the daemon's own
# function nearest the event loop and the outermost library entry point
# below it (OpenSSL's exported API, a system call, malloc), in
# DIR/NAME.api.txt: where the handshakes' time goes.
n_perf_api() {
	local n=${2:-0}
	perf script -i "$P_DIR/$1.data" -F comm,pid,ip,sym 2>/dev/null | awk '
	/^[^ \t]/ { if (st != "") print hdr "\t" st; hdr = $1 "/" $2; st = ""
		next }
	/^[ \t]+[0-9a-f]+ / { st = (st == "" ? $2 : st ";" $2) }
	END { if (st != "") print hdr "\t" st }' | awk -F '\t' -v n="$n" \
	    -v f="$P_FREQ" '
	BEGIN { np = split("d2i_SSL_SESSION i2d_SSL_SESSION SSL_SESSION_free " \
		"SSL_free SSL_new X509_verify_cert EVP_DigestSign " \
		"EVP_DigestVerify EVP_PKEY_derive EVP_PKEY_keygen " \
		"EVP_PKEY_generate EVP_EncryptUpdate EVP_DecryptUpdate " \
		"EVP_CipherInit EVP_MD_fetch EVP_KDF EVP_MAC OSSL_DECODER " \
		"d2i_X509 RAND_bytes SSL_write SSL_read SSL_shutdown " \
		"SSL_do_handshake do_syscall_64 malloc free cfree " \
		"epoll_wait", P, " ") }
	{ nf = split($2, fr, ";"); k = ""; own = "-"
	  for (i = nf; i >= 1 && k == ""; i--) {
		if (fr[i] ~ /^[a-z][a-z0-9]*_[a-z_0-9]+$/ &&
		    fr[i] !~ /^(event_|daemon_|ev_|start_thread|clone|__libc|_start|main)/ &&
		    own == "-")
			own = fr[i]
		for (j = 1; j <= np; j++)
			if (index(fr[i], P[j]) == 1) { k = P[j]; break } }
	  if (k == "") k = "(" fr[1] ")"
	  c[$1 " " own " " k]++; t[$1]++ }
	END { for (x in c) { split(x, X, " ");
		printf "%6.2f%% %-14s %-22s %-20s%s\n", 100 * c[x] / t[X[1]],
		X[1], X[2], X[3], n ? sprintf(" %7.1f us/conn",
		c[x] * 1e6 / f / n) : "" } }' | sort -k2,2 -k1,1rn \
		> "$P_DIR/$1.api.txt"
}

n_profile_one() {
	local c=$1 r pids st p sp
	profile_all "$c"
	if [ -n "$PROXY_PIDS" ]; then
		pids=${PROXY_PIDS// /,}
		note "profile $c: Connection: close and iperf3, the tunnel alone"
		bg_perf "$c-rate" "$T_WRK" -p "$pids" -F "$P_FREQ"
		r=$(wrk_run "$T_WRK" -t "$T_WRK_THREADS" -c "$T_WRK_CONNS" \
			-H 'Connection: close' "$HTTP_URL")
		wait "$PERF_PID"
		echo "$r" > "$P_DIR/$c-rate.wrk"
		perf_summary "$c-rate" "${r%% *}"
		n_perf_by_pid "$c-rate" "${r%% *}"
		bg_perf "$c-iperf" "$T_IPERF" -p "$pids" -F "$P_FREQ"
		nsx timeout $((T_IPERF + 20)) iperf3 -c "$IPERF_HOST" \
			-p "$IPERF_PORT" -t "$T_IPERF" -f m \
			> "$P_DIR/$c-iperf.out" 2>&1
		wait "$PERF_PID"
		perf_summary "$c-iperf"
		n_perf_by_pid "$c-iperf"
		note "profile $c: Connection: close, the tunnel, dwarf call graphs"
		perf record -q --call-graph dwarf,16384 -F 500 \
			-o "$P_DIR/$c-rate-dwarf.data" -p "$pids" -- sleep 5 \
			>/dev/null 2>&1 &
		st=$!
		r=$(wrk_run 5 -t "$T_WRK_THREADS" -c "$T_WRK_CONNS" \
			-H 'Connection: close' "$HTTP_URL")
		wait "$st"
		echo "$r" > "$P_DIR/$c-rate-dwarf.wrk"
		P_FREQ=500 n_perf_api "$c-rate-dwarf" "${r%% *}"
		note "profile $c: perf stat and strace"
		perf stat -o "$P_DIR/$c-rate.stat" -p "$pids" \
			-e task-clock,context-switches,cpu-migrations,page-faults \
			-- sleep 5 >/dev/null 2>&1 &
		st=$!
		wrk_run 5 -t "$T_WRK_THREADS" -c "$T_WRK_CONNS" \
			-H 'Connection: close' "$HTTP_URL" > "$P_DIR/$c-rate.stat.wrk"
		wait "$st"
		perf stat -o "$P_DIR/$c-iperf.stat" -p "$pids" \
			-e task-clock,context-switches,cpu-migrations,page-faults \
			-- sleep 5 >/dev/null 2>&1 &
		st=$!
		nsx timeout 25 iperf3 -c "$IPERF_HOST" -p "$IPERF_PORT" -t 5 \
			-f m > "$P_DIR/$c-iperf.stat.out" 2>&1
		wait "$st"
		sp=()
		for p in $PROXY_PIDS; do sp+=(-p "$p"); done
		timeout 30 strace -c -f -o "$P_DIR/$c-rate.strace" "${sp[@]}" \
			2>/dev/null &
		st=$!
		sleep 0.5
		wrk_run 5 -t "$T_WRK_THREADS" -c "$T_WRK_CONNS" \
			-H 'Connection: close' "$HTTP_URL" \
			> "$P_DIR/$c-rate.strace.wrk"
		kill -INT "$st" 2>/dev/null
		wait "$st" 2>/dev/null
		timeout 30 strace -c -f -o "$P_DIR/$c-iperf.strace" "${sp[@]}" \
			2>/dev/null &
		st=$!
		sleep 0.5
		nsx timeout 25 iperf3 -c "$IPERF_HOST" -p "$IPERF_PORT" -t 5 \
			-f m > "$P_DIR/$c-iperf.strace.out" 2>&1
		kill -INT "$st" 2>/dev/null
		wait "$st" 2>/dev/null
		timeout 30 strace -f -tt -o "$P_DIR/$c-one.strace" "${sp[@]}" \
			2>/dev/null &
		st=$!
		sleep 0.5
		nsx curl -sS -o /dev/null --max-time 5 "$HTTP_URL"
		sleep 0.5
		kill -INT "$st" 2>/dev/null
		wait "$st" 2>/dev/null
		[ "$c" = sluice ] && n_sluice_after profile &&
			cp "$BENCH_TMP"/sluice-dump-*.profile "$P_DIR/"
	fi
	"stop_$c"
}

n_profile() {
	profile_each n_profile_one "*.comm.txt, *.pid.txt, *.api.txt, *.syscalls.txt, *.flat.txt, *.stat, *.strace"
}

# ---- report ----

# n_row LABEL METRIC DECIMALS KIND: medians, ratios to direct, of sluice to
# each peer and to the best peer. KIND: hi (higher is better), lo (lower
# is better), lo-own (lower is better, no direct figure: the proxy's own),
# none (figures only).
n_row() {
	local label=$1 m=$2 dec=$3 kind=$4 c line v best="" bc=""
	local -A mo
	line="| $label"
	for c in $T_CONTENDERS; do
		mo[$c]=$(med "$m" "$c")
		line="$line | $(fmt "${mo[$c]}" "$dec")"
	done
	for c in $T_PROXIES; do
		case $kind in hi | lo) v=$(ratio "${mo[$c]}" "${mo[direct]:-}") ;;
		*) v="-" ;; esac
		line="$line | $v"
	done
	for c in $T_PEERS; do
		[ "$kind" = none ] && { line="$line | -"; continue; }
		line="$line | $(ratio "${mo[sluice]:-}" "${mo[$c]}")"
		[ -n "${mo[$c]}" ] || continue
		if [ -z "$best" ] || awk -v a="${mo[$c]}" -v b="$best" -v k="$kind" \
		    'BEGIN { exit !(k == "hi" ? a > b : a < b) }'; then
			best=${mo[$c]} bc=$c
		fi
	done
	if [ -n "$T_PEERS" ]; then
		v="-"
		[ "$kind" != none ] && [ -n "$best" ] &&
			v="$(ratio "${mo[sluice]:-}" "$best") ($bc)"
		line="$line | $v"
	fi
	echo "$line |"
	[ -n "$bc" ] && N_BEST[$m]="$(ratio "${mo[sluice]:-}" "$best") $bc"
	return 0
}

n_header() {
	local c line="| metric" sep="|---"
	for c in $T_CONTENDERS; do line="$line | $c"; sep="$sep|--:"; done
	for c in $T_PROXIES; do line="$line | $c/direct"; sep="$sep|--:"; done
	for c in $T_PEERS; do line="$line | sluice/$c"; sep="$sep|--:"; done
	[ -n "$T_PEERS" ] && { line="$line | sluice/best peer"; sep="$sep|--:"; }
	echo "$line |"
	echo "$sep|"
}

# n_target METRIC LABEL GOAL
n_target() {
	local r c
	read -r r c <<<"${N_BEST[$2]:-}"
	if [ -z "${r:-}" ] || [ "$r" = "-" ]; then
		echo "- $1: no figure"
	elif awk -v r="$r" -v g="$3" 'BEGIN { exit !(r >= g) }'; then
		echo "- $1: sluice/best peer ($c) $r, target >= $3: met"
	else
		echo "- $1: sluice/best peer ($c) $r, target >= $3: MISSED"
	fi
}

n_report() {
	local c p m
	declare -gA N_BEST=()
	T_PROXIES="" T_PEERS=""
	for c in $T_CONTENDERS; do
		[ "$c" = direct ] || T_PROXIES="$T_PROXIES $c"
		case $c in direct | sluice) ;; *) T_PEERS="$T_PEERS $c" ;; esac
	done
	case " $T_CONTENDERS " in *" sluice "*) ;; *) T_PEERS="" ;; esac
	echo
	echo "Medians of $BENCH_REPS rounds (contenders take turns); ratios of" \
		"medians: above 1 is better for the rates, below 1 for latency," \
		"memory and CPU. Each tunnel is both of its ends, summed."
	echo
	n_header
	n_row "iperf3 single stream, Gbit/s" thr 2 hi
	n_row "wrk \`Connection: close\`, connections/s" rate 0 hi
	n_row "request latency mean, µs (keep-alive, 1 conn)" lat_mean 1 lo
	n_row "request latency p50, µs" lat_p50 1 lo
	n_row "request latency p99, µs" lat_p99 1 lo
	n_row "peak RSS (VmHWM), both ends, MiB" rss 1 lo-own
	n_row "tunnel's CPU per GB (iperf3), ms" cpu_gb 0 lo-own
	n_row "tunnel's CPU per connection (wrk), µs" cpu_conn 1 lo-own
	n_row "CPU per GB, all benchmark processes, ms" all_gb 0 lo
	n_row "CPU per connection, all benchmark processes, µs" all_conn 1 lo
	n_row "machine CPU busy during iperf3, %" busy_thr 0 none
	n_row "machine CPU busy during wrk, %" busy_rate 0 none
	n_row "other processes' CPU during iperf3, %" others_thr 1 none
	n_row "other processes' CPU during wrk, %" others_rate 1 none
	n_row "other processes' CPU during latency, %" others_lat 1 none
	echo
	echo "Client, tunnel ends and servers share $(nproc) CPUs. \"The" \
		"tunnel's\" CPU is the utime + stime of both ends; \"all" \
		"benchmark processes\" adds clients and servers (a CPU"
	echo "accounting cgroup) and interrupt work."
	if [ -n "$T_PEERS" ]; then
		echo
		echo "Targets (sluice against the best peer):"
		n_target "iperf3 throughput" thr 1.5
		n_target "connections/s" rate 2
	fi
	echo
	n_ciphers_said
	case " $T_CONTENDERS " in *" stunnel "*)
		echo "stunnel: its defaults otherwise ($(stunnel4 -version 2>&1 |
			awk '/^(sessionCache|TIMEOUTidle|stack)/ {
				sub(/ +=/, " ="); printf "%s%s", s, $0; s = ", " }')," \
			"a thread per connection)" ;;
	esac
	noisy "$T_CONTENDERS" others_thr others_rate others_lat
	for c in $T_CONTENDERS; do
		p=$(echo "${RES["errors|$c"]:-}" | awk '{ for (i = 1; i <= NF; i++)
			t += $i } END { print t + 0 }')
		[ "$p" -gt 0 ] && echo "WARNING: $c: wrk counted $p errors."
	done
	if [ "${#N_STATS[@]}" -gt 0 ]; then
		echo
		echo "sluice's dumps after each turn (its two daemons run for one turn):"
		echo
		for p in $(printf '%s\n' "${!N_STATS[@]}" | sort -n); do
			echo "    round $p: ${N_STATS[$p]}"
		done
	fi
	echo
	echo "Every run (in round order):"
	echo
	every_run 9 12 thr rate lat_mean lat_p50 lat_p99 rss all_gb all_conn \
	    cpu_gb cpu_conn \
	    busy_thr busy_rate others_thr others_rate others_lat errors
	echo
	echo "Commands (client side: namespace $BENCH_NS; host side: a namespace" \
		"of its own; \$TMP: the temporary directory):"
	echo
	echo "    clients, in the client side's namespace:"
	echo "        iperf3 -c HOST -p PORT -t $T_IPERF -f m"
	echo "        wrk -d ${T_WRK}s -t $T_WRK_THREADS -c $T_WRK_CONNS" \
		"-H 'Connection: close' -s \$TMP/report.lua URL"
	echo "        wrk -d ${T_LAT}s -t 1 -c 1 -s \$TMP/report.lua URL"
	echo "    servers, in the host side's namespace:"
	echo "        nginx -c \$TMP/nginx/nginx.conf (listen $T_REMOTE:$N_WEB_PORT," \
		"worker_processes $T_NGINX_WORKERS)"
	echo "        iperf3 -s -B $T_REMOTE -p $N_IPERF_PORT"
	for c in $T_CONTENDERS; do
		echo "    $c:"
		printf '%s\n' "${N_CMDS[$c]:-        (not started)}"
	done
}

n_environment() {
	environment_head tunnel
	echo "    $(openssl version 2>&1 | head -1)"
	echo "    $(ss-server -h 2>&1 | grep -m1 shadowsocks-libev | sed 's/^ *//'), -m $N_SS_METHOD"
	echo "    $(stunnel4 -version 2>&1 | grep -m1 '^stunnel'), debug = $N_ST_DEBUG"
	environment_loads
	echo "    veth MTU $N_MTU; BENCH_REPS=$BENCH_REPS BENCH_CONTENDERS=\"$T_CONTENDERS\""
}

# n_ciphers_said: what each encrypting contender negotiated or uses.
n_ciphers_said() {
	local c
	for c in $T_CONTENDERS; do
		[ -n "${N_TLS[$c]:-}" ] && echo "$c: an openssl s_client probe of its far end negotiated ${N_TLS[$c]}"
	done
	case " $T_CONTENDERS " in *" ss "*)
		echo "ss: shadowsocks $N_SS_METHOD (AEAD, no handshake)" ;;
	esac
	return 0
}

# n_ss_system_note: says so when the shadowsocks-libev package's own
# ss-server runs (installing it on a machine run by systemd starts one).
n_ss_system_note() {
	if command -v systemctl >/dev/null 2>&1 &&
	    systemctl is-active --quiet shadowsocks-libev 2>/dev/null; then
		note "the shadowsocks-libev package runs its own ss-server" \
			"(systemd unit shadowsocks-libev); this suite does not" \
			"use it: \`systemctl disable --now shadowsocks-libev\`" \
			"if it is not wanted"
	fi
}

suite_tunnel() {
	local c
	for c in $T_CONTENDERS; do
		declare -F "start_$c" >/dev/null ||
			die "unknown contender '$c' (have: direct sluice ss stunnel)" 64
	done
	n_ss_system_note
	n_network
	n_servers
	n_pki
	take_turns n_run_contender
	n_environment
	n_report
	[ -n "${BENCH_PROFILE:-}" ] && n_profile
	return 0
}
