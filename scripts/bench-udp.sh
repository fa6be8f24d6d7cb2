# SPDX-License-Identifier: MIT
# The udp suite of scripts/bench, sourced by it: UDP interception by sluice
# (relayed directly, and through its tunnel) against a direct path and
# shadowsocks-libev's UDP relay (ss-redir -U in TPROXY mode -> ss-server).
# It reuses the tunnel suite's two namespaces and helpers (it sources
# scripts/bench-tunnel.sh, which sources scripts/bench-tcp.sh).
#
# Two network namespaces joined by a veth pair (MTU 65535, as in the
# tunnel suite):
#   client side  BENCH_NS, 10.9.0.1: the clients (iperf3 -c, dnsperf, dig),
#                the interception rules and the near end of each proxy
#   host side    a namespace of its own, 10.9.0.5: iperf3 -s on
#                10.9.0.5:5201, dnsmasq on 10.9.0.5:53 (--address for
#                udp.bench.test, nothing else: no system files), and the
#                far end of each tunnel
# Contenders:
#   direct         the clients send to 10.9.0.5 over the veth, no rules
#   sluice         `sluice tproxy` intercepts UDP to 10.9.0.5:5201 and :53
#                  (its own rules) and relays with forward: {direct:
#                  original}, from its own socket, over the veth
#   sluice-tunnel  the same interception, forward: {tunnel: [10.9.0.5:7443]}
#                  to `sluice host` (identities from `sluice pki`), which
#                  sends to 10.9.0.5:5201 / :53 (host.address)
#   ss             ss-redir -U (UDP only; its UDP relay is TPROXY-only)
#                  behind the same rules as sluice's, installed by this
#                  script, aes-256-gcm, to ss-server -U on 10.9.0.5:8388,
#                  which sends to the original destination; both with
#                  --mtu of the veth (by default shadowsocks-libev reads
#                  datagrams into 2,794-byte buffers: larger ones fail)
# Only UDP is intercepted: iperf3's TCP control connection (also to
# 10.9.0.5:5201) reaches the server over the veth untouched for every
# contender, so the proxies carry exactly the datagrams. Contenders take
# turns within each round, starting one later each round.
#
# Measurements, each BENCH_SECS long:
#   iperf3 -u, one stream, at each offered rate of each series of
#   BENCH_UDP_SERIES (datagram size: rates): the receiver's throughput
#   and loss (iperf3's count of missing sequence numbers), the rate the
#   client managed to send, and the proxy's CPU per datagram received
#   (both ends of a tunnel summed; from schedstat, in ns)
#   dnsperf flood (no rate limit, -c clients, so that as many UDP flows
#   exist) and a paced run: queries/s, lost %, mean latency, the proxy's
#   CPU per query (a query and its answer: two datagrams)
# The report gives, per contender and series, the highest offered rate
# with loss under BENCH_UDP_LOSS %, ratios to direct and to ss, and the
# issue's targets: no loss at rates that direct sustains without loss,
# and at least ss's clean rate and queries/s.
#
# Knobs (environment), besides those of scripts/bench:
#   BENCH_CONTENDERS="direct sluice sluice-tunnel ss"
#   BENCH_SECS=5            seconds of each iperf3 and dnsperf run
#   BENCH_UDP_SERIES="1400:50M,100M,200M,400M,800M,1600M
#                     8000:200M,400M,800M,1600M,3200M,6400M"
#                           iperf3 -l SIZE and its -b rates, in that order
#   BENCH_UDP_LOSS=0.1      loss (%) below which a rate counts as clean
#   BENCH_UDP_WINDOW=       iperf3 -w (socket buffers of both iperf3
#                           ends); empty: the kernel's defaults
#   BENCH_UDP_DNS_CLIENTS=8 dnsperf -c (sockets, hence UDP flows)
#   BENCH_UDP_DNS_THREADS=1 dnsperf -T
#   BENCH_UDP_DNS_OUTSTANDING=100  dnsperf -q
#   BENCH_UDP_DNS_QPS=5000  the paced run's dnsperf -Q; 0 skips it
#   BENCH_UDP_DNS_NAMES=100 names qK.udp.bench.test the queries cycle through
#   BENCH_TUNNEL_MTU=65535 BENCH_SS_METHOD=aes-256-gcm
#   BENCH_SLUICE_VERBOSE=3  as in the tunnel suite
#   BENCH_PERF_FREQ=4000    perf sampling rate with BENCH_PROFILE
# shellcheck shell=bash

# shellcheck source=scripts/bench-tunnel.sh
. "$BENCH_SCRIPTS/bench-tunnel.sh"

# shellcheck disable=SC2034 # read by scripts/bench
SUITE_PKGS="iperf3 dnsperf dnsmasq-base dnsutils shadowsocks-libev openssl"

T_CONTENDERS=${BENCH_CONTENDERS:-direct sluice sluice-tunnel ss}
U_SECS=${BENCH_SECS:-5}
U_SERIES_SPEC=${BENCH_UDP_SERIES:-1400:50M,100M,200M,400M,800M,1600M \
8000:200M,400M,800M,1600M,3200M,6400M}
U_LOSS=${BENCH_UDP_LOSS:-0.1}
U_WINDOW=${BENCH_UDP_WINDOW:-}
U_DNS_CLIENTS=${BENCH_UDP_DNS_CLIENTS:-8}
U_DNS_THREADS=${BENCH_UDP_DNS_THREADS:-1}
U_DNS_OUT=${BENCH_UDP_DNS_OUTSTANDING:-100}
U_DNS_QPS=${BENCH_UDP_DNS_QPS:-5000}
U_DNS_NAMES=${BENCH_UDP_DNS_NAMES:-100}

U_IPERF_PORT=5201
U_DNS_PORT=53
U_DNS_ZONE=udp.bench.test
U_DNS_ANSWER=10.9.1.1		# dnsmasq's answer to every name of the zone
U_PORTS="$U_IPERF_PORT $U_DNS_PORT"	# intercepted, UDP only

declare -gA U_FAILED=() U_CHECKED=()
U_SERIES=()

# ---- helpers ----

# u_proxy_ns: CPU time of every thread of the proxy's processes (both
# ends of a tunnel), in ns, from schedstat: clock ticks are too coarse
# for a few seconds of light load.
u_proxy_ns() {
	local p
	for p in $PROXY_PIDS; do
		cat "/proc/$p"/task/*/schedstat 2>/dev/null
	done | awk '{ t += $1 } END { printf "%.0f\n", t }'
}

# u_rcvbuf_errors nsx|hsx: datagrams that namespace's kernel dropped on a
# full socket receive buffer (Udp RcvbufErrors): on the client side, the
# proxy's near end (or, for direct, nobody); on the host side, iperf3 -s,
# dnsmasq and the far end.
# shellcheck disable=SC2016 # awk
u_rcvbuf_errors() {
	"$1" awk '/^Udp:/ { if (!h) { for (i = 2; i <= NF; i++) c[$i] = i;
		h = 1 } else { print $c["RcvbufErrors"]; exit } }' /proc/net/snmp
}

# u_bps RATE: iperf3's -b notation (50M, 1.6G) in bits per second.
u_bps() {
	awk -v r="$1" 'BEGIN { m = 1; u = toupper(substr(r, length(r)));
		if (u == "K") m = 1e3; else if (u == "M") m = 1e6;
		else if (u == "G") m = 1e9;
		if (m > 1) r = substr(r, 1, length(r) - 1);
		printf "%.0f\n", r * m }'
}

# u_parse_series: BENCH_UDP_SERIES into U_SERIES ("SIZE RATE RATE ...").
u_parse_series() {
	local s len rates r
	for s in $U_SERIES_SPEC; do
		len=${s%%:*} rates=${s#*:}
		case $s in *:*) ;; *) die "BENCH_UDP_SERIES: '$s' is not SIZE:RATE,..." 64 ;; esac
		case $len in '' | *[!0-9]*)
			die "BENCH_UDP_SERIES: bad datagram size '$len'" 64 ;;
		esac
		if [ "$len" -lt 16 ] || [ "$len" -gt 65507 ]; then
			die "BENCH_UDP_SERIES: datagram size $len out of 16..65507" 64
		fi
		for r in ${rates//,/ }; do
			[[ $r =~ ^[0-9]+(\.[0-9]+)?[KMGkmg]?$ ]] ||
				die "BENCH_UDP_SERIES: bad rate '$r'" 64
		done
		U_SERIES+=("$len ${rates//,/ }")
	done
	[ "${#U_SERIES[@]}" -gt 0 ] || die "BENCH_UDP_SERIES is empty" 64
}

# u_sysctl NAME: the namespace's value; before Linux 6.x (Debian 12's
# 6.1) net.core.[rw]mem_* are the machine's, not shown in a namespace.
u_sysctl() { hsx sysctl -n "$1" 2>/dev/null || sysctl -n "$1"; }

# u_window_check: the kernel caps SO_RCVBUF at net.core.rmem_max (per
# namespace since Linux 6.x, else the machine's), silently.
u_window_check() {
	local w m
	[ -n "$U_WINDOW" ] || return 0
	[[ $U_WINDOW =~ ^[0-9]+[KMkm]?$ ]] ||
		die "BENCH_UDP_WINDOW: '$U_WINDOW' is not a size (e.g. 4M)" 64
	case $U_WINDOW in	# iperf3's sizes are binary
	*[Kk]) w=$((${U_WINDOW%?} * 1024)) ;;
	*[Mm]) w=$((${U_WINDOW%?} * 1048576)) ;;
	*) w=$U_WINDOW ;;
	esac
	m=$(u_sysctl net.core.rmem_max)
	[ "$w" -le "$m" ] || note "WARNING: BENCH_UDP_WINDOW=$U_WINDOW is" \
		"over net.core.rmem_max ($m): the kernel caps iperf3's buffers"
	return 0
}

# ---- servers ----

u_servers() {
	local k
	bg_host iperf3 -s -B "$T_REMOTE" -p "$U_IPERF_PORT" \
		--logfile "$BENCH_TMP/iperf3-server.log"
	n_wait_port hsx "$T_REMOTE" "$U_IPERF_PORT" ||
		die "iperf3 -s did not start"
	# No configuration file, resolv.conf or hosts: only what is given here.
	bg_host dnsmasq --keep-in-foreground -C /dev/null --no-resolv \
		--no-hosts --user=root --pid-file="$BENCH_TMP/dnsmasq.pid" \
		--bind-interfaces --listen-address="$T_REMOTE" \
		--port="$U_DNS_PORT" --address="/$U_DNS_ZONE/$U_DNS_ANSWER" \
		2>"$BENCH_TMP/dnsmasq.log"
	for k in $(seq 100); do
		[ "$(u_dig_host)" = "$U_DNS_ANSWER" ] && break
		sleep 0.05
	done
	[ "$(u_dig_host)" = "$U_DNS_ANSWER" ] || {
		cat "$BENCH_TMP/dnsmasq.log" >&2
		die "dnsmasq does not answer on $T_REMOTE:$U_DNS_PORT"
	}
	for k in $(seq "$U_DNS_NAMES"); do
		printf 'q%d.%s A\n' "$k" "$U_DNS_ZONE"
	done > "$BENCH_TMP/queries"
}

u_dig_host() {	# dnsmasq's answer for q1, asked on the host side
	hsx timeout 5 dig +time=1 +tries=1 +short -p "$U_DNS_PORT" \
		@"$T_REMOTE" "q1.$U_DNS_ZONE" A 2>/dev/null
}

# ---- contenders ----

# Each start_X sets PROXY_PIDS (both ends; empty for direct) and
# N_CMDS[X]; stop_X undoes start_X. The clients always address
# 10.9.0.5:5201 and :53.

start_direct() {
	PROXY_PIDS="" PROXY_PID=""
	N_CMDS[direct]="        (no proxy: UDP to $T_REMOTE:$U_IPERF_PORT and :$U_DNS_PORT over the veth)"
}

stop_direct() { :; }

# u_sluice_confs tunnel|direct: sluice's configurations; the tunneller's
# services are those of the TCP suites with protocols [udp].
u_sluice_confs() {
	local id="{ cert: ${N_PKI:-}/%s.crt, key: ${N_PKI:-}/%s.key, ca: ${N_PKI:-}/ca.crt }"
	local fwd="{ direct: original }" p name
	if [ "$1" = tunnel ]; then
		fwd="{ tunnel: [$T_REMOTE:$N_SL_HOST] }"
		# shellcheck disable=SC2059 # the format is ours
		{
			printf 'identity: %s\n' "$(printf "$id" host host)"
			printf 'host: { listen: %s:%s }\n' "$T_REMOTE" "$N_SL_HOST"
			printf 'services:\n'
			for p in $U_PORTS; do
				printf '  - name: %s\n' "$(u_svc "$p")"
				printf '    host: { address: %s:%s, allow: [gw] }\n' \
					"$T_REMOTE" "$p"
			done
		} > "$BENCH_TMP/sluice-host.yaml"
	fi
	{
		# shellcheck disable=SC2059
		[ "$1" = tunnel ] &&
			printf 'identity: %s\n' "$(printf "$id" gw gw)"
		t_intercept_yaml
		printf 'services:\n'
		for p in $U_PORTS; do
			name=$(u_svc "$p")
			printf '  - name: %s\n' "$name"
			printf '    intercept: { protocols: [udp], addresses: [%s], ports: [%s] }\n' \
				"$T_REMOTE" "$p"
			printf '    forward: %s\n' "$fwd"
		done
	} > "$BENCH_TMP/sluice-tproxy.yaml"
}

u_svc() { case $1 in "$U_IPERF_PORT") echo iperf ;; *) echo dns ;; esac; }

# u_sluice_start CONTENDER tunnel|direct
u_sluice_start() {
	u_sluice_confs "$2"
	n_sluice_up "$1" "$2"
}

start_sluice() { u_sluice_start sluice direct; }
start_sluice-tunnel() { u_sluice_start sluice-tunnel tunnel; }

# u_sluice_stop CONTENDER: both daemons, their rules gone, their
# complaints shown; the tunneller's dump first, for the report.
u_sluice_stop() {
	local t h=""
	t=$(nsx "$SLUICE" --state-dir "$BENCH_TMP/state" dump 2>&1 |
		grep -E '^udp (flows|counters)')
	[ -n "$SL_HPID" ] && h=$(hsx "$SLUICE" --state-dir \
		"$BENCH_TMP/state-host" dump 2>&1 | grep -E '^udp (flows|counters)')
	t=$(printf '%s\n' "$t" | sed 's/^/        tproxy: /')
	[ -n "$h" ] && t="$t
$(printf '%s\n' "$h" | sed 's/^/        host:   /')"
	U_DUMP["$1, round $U_ROUND"]=$t
	n_sluice_down
}

stop_sluice() { u_sluice_stop sluice; }
stop_sluice-tunnel() { u_sluice_stop sluice-tunnel; }

start_ss() {
	# Its UDP relay behind the rules shadowsocks-libev documents for it,
	# which are sluice's with -p udp.
	n_ss_up u "$U_PORTS" -U --mtu "$N_MTU" -- -U --mtu "$N_MTU"
	N_CMDS[ss]="$N_SS_CMDS
        rules: udp $T_REMOTE:${U_PORTS// /,} -> TPROXY 127.0.0.1:$N_SS_REDIR (as sluice's, -p udp)"
}

# stop_ss: the tunnel suite's.

# ---- measurements ----

# u_iperf SECONDS RATE SIZE: iperf3 -u from the client side; prints its
# summary "sent_kbps recv_kbps lost total", or nothing.
u_iperf() {
	nsx timeout $(($1 + 20)) iperf3 -c "$T_REMOTE" -p "$U_IPERF_PORT" -u \
		-b "$2" -l "$3" -t "$1" -f k ${U_WINDOW:+-w "$U_WINDOW"} 2>&1 |
		awk '/ sender$/ || / receiver$/ {
			for (i = 2; i <= NF; i++) {
				if ($i == "Kbits/sec") k = $(i - 1)
				if ($i ~ /^[0-9]+\/[0-9]+$/) lt = $i }
			if ($NF == "sender") s = k; else { r = k; l = lt } }
			END { if (r == "" || l == "") exit 1
				split(l, x, "/"); print s, r, x[1], x[2] }'
}

# m_udp CONTENDER: one iperf3 -u run at U_RATE with U_LEN-byte datagrams.
m_udp() {
	local r t0 t1 m0 m1 c0 c1 h0 h1 tx rx lost total k="$U_LEN:$U_RATE"
	c0=$(u_rcvbuf_errors nsx); h0=$(u_rcvbuf_errors hsx)
	t0=$(u_proxy_ns); m0=$(cpu_snap)
	r=$(u_iperf "$U_SECS" "$U_RATE" "$U_LEN")
	t1=$(u_proxy_ns); m1=$(cpu_snap)
	c1=$(u_rcvbuf_errors nsx); h1=$(u_rcvbuf_errors hsx)
	read -r tx rx lost total <<<"$r"
	if [ -z "${total:-}" ] || [ "$total" -eq 0 ]; then
		note "$1: iperf3 -u -b $U_RATE -l $U_LEN failed"
		U_ERRORS[$1]=$((${U_ERRORS[$1]:-0} + 1))
		return
	fi
	pend "tx:$k" "$1" "$(awk -v v="$tx" 'BEGIN { print v / 1000 }')"
	pend "rx:$k" "$1" "$(awk -v v="$rx" 'BEGIN { print v / 1000 }')"
	pend "loss:$k" "$1" "$(awk -v l="$lost" -v t="$total" \
		'BEGIN { print 100 * l / t }')"
	pend_shares "u:$k" "$1" "$m0" "$m1"
	pend "rcvbuf_client:$k" "$1" $((c1 - c0))
	pend "rcvbuf_host:$k" "$1" $((h1 - h0))
	[ -n "$PROXY_PIDS" ] && [ "$total" -gt "$lost" ] &&
		pend "cpud:$k" "$1" "$(awk -v n=$((t1 - t0)) \
			-v d=$((total - lost)) 'BEGIN { print n / 1e3 / d }')"
	return 0
}

# u_dnsperf ARGS...: dnsperf at 10.9.0.5 from the client side; prints
# "sent completed lost qps avg_s".
u_dnsperf() {
	nsx timeout $((U_SECS + 30)) dnsperf -s "$T_REMOTE" -p "$U_DNS_PORT" \
		-d "$BENCH_TMP/queries" -l "$U_SECS" -c "$U_DNS_CLIENTS" \
		-T "$U_DNS_THREADS" -q "$U_DNS_OUT" "$@" </dev/null 2>&1 | awk '
		/Queries sent:/ { s = $3 } /Queries completed:/ { c = $3 }
		/Queries lost:/ { l = $3 } /Queries per second:/ { q = $4 }
		/Average Latency \(s\):/ { a = $4 }
		END { if (q == "" || s == "") exit 1; print s, c, l + 0, q, a }'
}

# m_dns_run KEY CONTENDER ARGS...: one dnsperf run, as metrics KEY_*.
m_dns_run() {
	local key=$1 c=$2 r t0 t1 m0 m1 sent compl lost qps avg
	shift 2
	t0=$(u_proxy_ns); m0=$(cpu_snap)
	r=$(u_dnsperf "$@")
	t1=$(u_proxy_ns); m1=$(cpu_snap)
	read -r sent compl lost qps avg <<<"$r"
	if [ -z "${avg:-}" ] || [ "$sent" -eq 0 ]; then
		note "$c: dnsperf $* failed"
		U_ERRORS[$c]=$((${U_ERRORS[$c]:-0} + 1))
		return
	fi
	pend "${key}_qps" "$c" "$qps"
	pend "${key}_lost" "$c" "$(awk -v l="$lost" -v s="$sent" \
		'BEGIN { print 100 * l / s }')"
	pend "${key}_avg" "$c" "$(awk -v a="$avg" 'BEGIN { print a * 1e6 }')"
	pend_shares "$key" "$c" "$m0" "$m1"
	[ -n "$PROXY_PIDS" ] && [ "$compl" -gt 0 ] &&
		pend "${key}_cpuq" "$c" "$(awk -v n=$((t1 - t0)) -v q="$compl" \
			'BEGIN { print n / 1e3 / q }')"
	return 0
}

m_dns() { m_dns_run dns "$1"; }
m_dnsq() { m_dns_run dnsq "$1" -Q "$U_DNS_QPS"; }

# u_check CONTENDER: a DNS answer and a short iperf3 -u stream arrive over
# the contender's path, and for a proxy, the TPROXY rules took them.
u_check() {
	local tp0 tp1 a r
	tp0=$(n_tproxy_packets)
	a=$(nsx timeout 10 dig +time=2 +tries=2 +short -p "$U_DNS_PORT" \
		@"$T_REMOTE" "q1.$U_DNS_ZONE" A 2>&1)
	if [ "$a" != "$U_DNS_ANSWER" ]; then
		note "$1: no DNS answer through its path: ${a:0:200}"
		return 1
	fi
	r=$(u_iperf 1 10M 1400)
	if [ -z "$r" ]; then
		note "$1: iperf3 -u did not get through its path"
		return 1
	fi
	tp1=$(n_tproxy_packets)
	case $1 in
	direct) ;;
	*) if [ $((tp1 - tp0)) -lt 100 ]; then
		note "$1: only $((tp1 - tp0)) datagrams went through TPROXY"
		return 1
	fi ;;
	esac
	U_CHECKED[$1]="dig and iperf3 -u -b 10M ok ($((tp1 - tp0)) datagrams diverted)"
}

u_run_contender() {	# u_run_contender NAME ROUND
	local c=$1 s p
	U_ROUND=$2
	note "round $2: $c"
	wait_quiet
	"start_$c"
	if ! u_check "$c"; then
		U_FAILED[$c]="${U_FAILED[$c]:-}${U_FAILED[$c]:+; }round $2: its path failed the check, no figures"
		"stop_$c"
		return 0
	fi
	for s in "${U_SERIES[@]}"; do
		U_LEN=${s%% *}
		for U_RATE in ${s#* }; do
			note "  $c: iperf3 -u -l $U_LEN -b $U_RATE"
			measure m_udp "$c"
		done
	done
	note "  $c: dnsperf"
	measure m_dns "$c"
	[ "$U_DNS_QPS" -gt 0 ] && measure m_dnsq "$c"
	for p in $PROXY_PIDS; do
		kill -0 "$p" 2>/dev/null || {
			note "$c: process $p died during the turn"
			U_FAILED[$c]="${U_FAILED[$c]:-}${U_FAILED[$c]:+; }round $2: a process died, figures suspect"
		}
	done
	[ -n "$PROXY_PIDS" ] && n_record_rss "$c"
	"stop_$c"
}

# ---- profile (BENCH_PROFILE=DIR) ----

# u_profile_one CONTENDER: perf record -a (every process) and -p (the
# proxy's ends) during iperf3 -u at the first series' highest rate and
# during the dnsperf flood; strace -c of the proxy during the flood.
u_profile_one() {
	local c=$1 s len rate pids st sp=() p
	s=${U_SERIES[0]}
	len=${s%% *} rate=${s##* }
	wait_quiet
	"start_$c"
	u_check "$c" || { "stop_$c"; return; }
	note "profile $c: iperf3 -u -b $rate -l $len, every process"
	bg_perf "$c-udp-all" "$U_SECS" -a -F "$P_FREQ"
	u_iperf "$U_SECS" "$rate" "$len" > "$P_DIR/$c-udp-all.iperf"
	wait "$PERF_PID"
	perf_summary "$c-udp-all"
	note "profile $c: dnsperf, every process"
	bg_perf "$c-dns-all" "$U_SECS" -a -F "$P_FREQ"
	u_dnsperf > "$P_DIR/$c-dns-all.dnsperf"
	wait "$PERF_PID"
	perf_summary "$c-dns-all"
	if [ -n "$PROXY_PIDS" ]; then
		pids=${PROXY_PIDS// /,}
		note "profile $c: iperf3 and dnsperf, the proxy alone"
		bg_perf "$c-udp" "$U_SECS" -p "$pids" -F "$P_FREQ"
		u_iperf "$U_SECS" "$rate" "$len" > "$P_DIR/$c-udp.iperf"
		wait "$PERF_PID"
		perf_summary "$c-udp"
		n_perf_by_pid "$c-udp"
		bg_perf "$c-dns" "$U_SECS" -p "$pids" -F "$P_FREQ"
		u_dnsperf > "$P_DIR/$c-dns.dnsperf"
		wait "$PERF_PID"
		perf_summary "$c-dns"
		n_perf_by_pid "$c-dns"
		for p in $PROXY_PIDS; do sp+=(-p "$p"); done
		timeout $((U_SECS + 20)) strace -c -f -o "$P_DIR/$c-dns.strace" \
			"${sp[@]}" 2>/dev/null &
		st=$!
		sleep 0.5
		u_dnsperf > "$P_DIR/$c-dns.strace.dnsperf"
		kill -INT "$st" 2>/dev/null
		wait "$st" 2>/dev/null
	fi
	"stop_$c"
}

u_profile() {
	profile_each u_profile_one "*.comm.txt, *.pid.txt, *.syscalls.txt, *.flat.txt, *.strace"
}

# ---- report ----

# u_clean CONTENDER SERIES: the highest offered rate of SERIES at which
# the median loss stayed under BENCH_UDP_LOSS %, or "none".
u_clean() {
	local r best=none l
	for r in ${2#* }; do
		l=$(med "loss:${2%% *}:$r" "$1")
		[ -n "$l" ] && awk -v l="$l" -v t="$U_LOSS" \
			'BEGIN { exit !(l < t) }' && best=$r
	done
	echo "$best"
}

u_has() {	# u_has CONTENDER SERIES: some loss figure of SERIES
	local r
	for r in ${2#* }; do
		[ -n "${RES["loss:${2%% *}:$r|$1"]:-}" ] && return 0
	done
	return 1
}

# u_header FIRST [own]: the columns: contenders (proxies only with own),
# each proxy against direct (not with own), each sluice contender
# against ss.
u_header() {
	local c line="| $1" sep="|---"
	for c in $T_CONTENDERS; do
		[ "${2:-}" = own ] && [ "$c" = direct ] && continue
		line="$line | $c"; sep="$sep|--:"
	done
	if [ "${2:-}" != own ]; then
		for c in $T_VSDIRECT; do line="$line | $c/direct"; sep="$sep|--:"; done
	fi
	for c in $T_SLUICES; do line="$line | $c/ss"; sep="$sep|--:"; done
	echo "$line |"
	echo "$sep|"
}

# u_ratios METRIC [own]: the ratio columns of one row.
u_ratios() {
	local c line=""
	if [ "${2:-}" != own ]; then
		for c in $T_VSDIRECT; do
			line="$line | $(ratio "$(med "$1" "$c")" "$(med "$1" direct)")"
		done
	fi
	for c in $T_SLUICES; do
		line="$line | $(ratio "$(med "$1" "$c")" "$(med "$1" ss)")"
	done
	printf '%s' "$line"
}

# u_series_table SERIES: received Mbit/s (loss %) at each offered rate,
# the highest clean rate, and the proxies' CPU per datagram.
u_series_table() {
	local s=$1 len=${1%% *} r c line v l cl
	local -A clean
	echo "iperf3 -u -l $len, one stream, $U_SECS s: received Mbit/s" \
		"(loss %); ratios of received throughput"
	echo
	u_header "offered"
	for r in ${s#* }; do
		line="| $r"
		for c in $T_CONTENDERS; do
			v=$(med "rx:$len:$r" "$c")
			l=$(med "loss:$len:$r" "$c")
			if [ -z "$v" ]; then line="$line | -"
			else line="$line | $(fmt "$v" 1) ($(fmt "$l" 2))"; fi
		done
		echo "$line$(u_ratios "rx:$len:$r") |"
	done
	line="| highest rate with loss < $U_LOSS%"
	for c in $T_CONTENDERS; do
		clean[$c]=$(u_clean "$c" "$s")
		line="$line | ${clean[$c]}"
	done
	for c in $T_VSDIRECT; do
		line="$line | $(u_rate_ratio "${clean[$c]}" "${clean[direct]:-}")"
	done
	for c in $T_SLUICES; do
		line="$line | $(u_rate_ratio "${clean[$c]}" "${clean[ss]:-}")"
	done
	echo "$line |"
	[ -n "$T_PROXIES" ] || return 0
	echo
	echo "The proxy's CPU per datagram received by iperf3 -s, µs (-l $len;" \
		"a tunnel's two ends summed)"
	echo
	u_header "offered" own
	for r in ${s#* }; do
		line="| $r"
		for c in $T_PROXIES; do
			line="$line | $(fmt "$(med "cpud:$len:$r" "$c")" 2)"
		done
		echo "$line$(u_ratios "cpud:$len:$r" own) |"
	done
	echo
	echo "Datagrams dropped on a full socket receive buffer, client side /" \
		"host side (-l $len; the proxy's near end is on the client side;" \
		"iperf3 -s and a tunnel's far end on the host side)"
	echo
	line="| offered"; cl="|---"
	for c in $T_CONTENDERS; do line="$line | $c"; cl="$cl|--:"; done
	echo "$line |"
	echo "$cl|"
	for r in ${s#* }; do
		line="| $r"
		for c in $T_CONTENDERS; do
			line="$line | $(fmt "$(med "rcvbuf_client:$len:$r" "$c")" 0)"
			line="$line / $(fmt "$(med "rcvbuf_host:$len:$r" "$c")" 0)"
		done
		echo "$line |"
	done
	cl=""
	for r in ${s#* }; do
		for c in $T_CONTENDERS; do
			v=$(med "tx:$len:$r" "$c")
			[ -n "$v" ] && awk -v v="$v" -v o="$(u_bps "$r")" \
				'BEGIN { exit !(v * 1e6 < 0.95 * o) }' &&
				cl="$cl${cl:+, }$c at $r sent $(fmt "$v" 0)"
		done
	done
	[ -n "$cl" ] && { echo; echo "The client could not send the offered" \
		"rate (-l $len; Mbit/s): $cl."; }
	return 0
}

u_rate_ratio() {	# u_rate_ratio RATE RATE: as ratio, "none" as 0
	local a b
	case ${1:-none} in none) a=0 ;; *) a=$(u_bps "$1") ;; esac
	case ${2:-none} in none) b="" ;; *) b=$(u_bps "$2") ;; esac
	ratio "$a" "$b"
}

u_dns_row() {	# u_dns_row LABEL METRIC DECIMALS [own]
	local c line="| $1"
	for c in $T_CONTENDERS; do
		[ "${4:-}" = own ] && [ "$c" = direct ] && continue
		line="$line | $(fmt "$(med "$2" "$c")" "$3")"
	done
	echo "$line$(u_ratios "$2" "${4:-}") |"
}

u_dns_table() {
	echo "dnsperf, $U_SECS s, -c $U_DNS_CLIENTS (UDP flows) -T" \
		"$U_DNS_THREADS -q $U_DNS_OUT, $U_DNS_NAMES names in turn," \
		"dnsmasq answering"
	echo
	u_header metric
	u_dns_row "queries/s (no rate limit)" dns_qps 0
	u_dns_row "lost queries, %" dns_lost 3
	u_dns_row "latency mean, µs" dns_avg 0
	if [ "$U_DNS_QPS" -gt 0 ]; then
		u_dns_row "latency mean at $U_DNS_QPS queries/s, µs" dnsq_avg 0
		u_dns_row "lost queries at $U_DNS_QPS queries/s, %" dnsq_lost 3
	fi
	[ -n "$T_PROXIES" ] || return 0
	echo
	echo "The proxy's CPU per query (a query and its answer), µs"
	echo
	u_header metric own
	u_dns_row "no rate limit" dns_cpuq 2 own
	[ "$U_DNS_QPS" -gt 0 ] &&
		u_dns_row "at $U_DNS_QPS queries/s" dnsq_cpuq 2 own
	return 0
}

# u_targets: the issue's: no loss at the rates direct sustains without
# loss; a clean rate and queries/s at least ss's.
u_targets() {
	local c s len d r bad l mine theirs v
	for c in $T_SLUICES_ALL; do
		for s in "${U_SERIES[@]}"; do
			len=${s%% *}
			d=$(u_clean direct "$s")
			if ! u_has "$c" "$s"; then
				echo "- $c, -l $len: no figures"
				continue
			elif [ "$d" = none ]; then
				echo "- $c, -l $len: direct lost $U_LOSS% or more at every rate"
			else
				bad=""
				for r in ${s#* }; do
					[ "$(u_bps "$r")" -le "$(u_bps "$d")" ] || break
					l=$(med "loss:$len:$r" "$c")
					[ -n "$l" ] && awk -v l="$l" -v t="$U_LOSS" \
						'BEGIN { exit !(l < t) }' && continue
					bad="$bad${bad:+, }$r ($(fmt "$l" 2)%)"
				done
				if [ -z "$bad" ]; then
					echo "- $c, -l $len: loss < $U_LOSS% up to $d, the rate direct sustains: met"
				else
					echo "- $c, -l $len: loss < $U_LOSS% up to $d, the rate direct sustains: MISSED at $bad"
				fi
			fi
			case " $T_CONTENDERS " in *" ss "*) ;; *) continue ;; esac
			mine=$(u_clean "$c" "$s") theirs=$(u_clean ss "$s")
			v=$(u_rate_ratio "$mine" "$theirs")
			if [ "$theirs" = none ] || awk -v v="$v" \
			    'BEGIN { exit !(v >= 1) }'; then
				echo "- $c, -l $len: highest clean rate $mine, ss $theirs: met"
			else
				echo "- $c, -l $len: highest clean rate $mine, ss $theirs: MISSED"
			fi
		done
		case " $T_CONTENDERS " in *" ss "*) ;; *) continue ;; esac
		v=$(ratio "$(med dns_qps "$c")" "$(med dns_qps ss)")
		if [ "$v" = "-" ]; then
			echo "- $c, DNS flood: no figures"
		elif awk -v v="$v" 'BEGIN { exit !(v >= 1) }'; then
			echo "- $c, DNS flood: queries/s $v times ss's: met"
		else
			echo "- $c, DNS flood: queries/s $v times ss's: MISSED"
		fi
	done
}

u_report() {
	local c s m p
	T_PROXIES="" T_SLUICES="" T_SLUICES_ALL="" T_VSDIRECT=""
	for c in $T_CONTENDERS; do
		[ "$c" = direct ] || T_PROXIES="$T_PROXIES $c"
		case $c in sluice*) T_SLUICES_ALL="$T_SLUICES_ALL $c" ;; esac
	done
	case " $T_CONTENDERS " in *" ss "*) T_SLUICES=$T_SLUICES_ALL ;; esac
	case " $T_CONTENDERS " in *" direct "*) T_VSDIRECT=$T_PROXIES ;; esac
	echo
	echo "Medians of $BENCH_REPS rounds (contenders take turns); ratios of" \
		"medians: above 1 is better for throughput and queries/s, below 1" \
		"for latency and CPU."
	for s in "${U_SERIES[@]}"; do
		echo
		u_series_table "$s"
	done
	echo
	u_dns_table
	if [ -n "$T_PROXIES" ]; then
		echo
		echo "Peak RSS (VmHWM, both ends of a tunnel), MiB:" \
			"$(for c in $T_PROXIES; do printf '%s %s; ' "$c" \
			"$(fmt "$(med rss "$c")" 1)"; done | sed 's/; $//')"
	fi
	if [ -n "$T_SLUICES_ALL" ] && case " $T_CONTENDERS " in
	    *" direct "*) true ;; *) false ;; esac; then
		echo
		echo "Targets:"
		u_targets
	fi
	echo
	echo "Only UDP is intercepted; iperf3's TCP control connection goes" \
		"straight to the server for every contender. sluice-tunnel and ss" \
		"are encrypted tunnels (TLS over TCP; AEAD per datagram over UDP);" \
		"sluice relays in the clear, so sluice/ss compares unlike work:" \
		"sluice-tunnel/ss is the like-for-like ratio."
	n_ciphers_said
	for c in $T_CONTENDERS; do
		[ -n "${U_CHECKED[$c]:-}" ] &&
			echo "$c: path check: ${U_CHECKED[$c]}"
	done
	for c in $T_CONTENDERS; do
		[ -n "${U_FAILED[$c]:-}" ] &&
			echo "WARNING: $c: ${U_FAILED[$c]}."
		[ -n "${U_ERRORS[$c]:-}" ] &&
			echo "WARNING: $c: ${U_ERRORS[$c]} iperf3 or dnsperf runs failed."
	done
	m=""
	for p in "${!RES[@]}"; do
		case $p in others_*) m="$m ${p%%|*}" ;; esac
	done
	# shellcheck disable=SC2086,SC2046 # a list of metric names
	[ -n "$m" ] && noisy "$T_CONTENDERS" $(printf '%s\n' $m | sort -u)
	if [ "${#U_DUMP[@]}" -gt 0 ]; then
		echo
		echo "sluice's dumps (UDP lines) at the end of each turn:"
		echo
		while read -r c; do
			echo "    $c:"
			printf '%s\n' "${U_DUMP[$c]:-        (none)}"
		done < <(printf '%s\n' "${!U_DUMP[@]}" | sort)
	fi
	echo
	echo "Every run (in round order; Mbit/s, %, µs):"
	echo
	# shellcheck disable=SC2046 # metric names have no blanks
	every_run 22 14 $(printf '%s\n' "${!RES[@]}" | sed 's/|.*//' | sort -u)
	echo
	echo "Commands (client side: namespace $BENCH_NS; host side: a namespace" \
		"of its own; \$TMP: the temporary directory):"
	echo
	echo "    clients, in the client side's namespace:"
	echo "        iperf3 -c $T_REMOTE -p $U_IPERF_PORT -u -b RATE -l SIZE" \
		"-t $U_SECS -f k${U_WINDOW:+ -w $U_WINDOW}"
	echo "        dnsperf -s $T_REMOTE -p $U_DNS_PORT -d \$TMP/queries" \
		"-l $U_SECS -c $U_DNS_CLIENTS -T $U_DNS_THREADS -q $U_DNS_OUT" \
		"[-Q $U_DNS_QPS]"
	echo "    servers, in the host side's namespace:"
	echo "        iperf3 -s -B $T_REMOTE -p $U_IPERF_PORT"
	echo "        dnsmasq -k -C /dev/null --no-resolv --no-hosts" \
		"--bind-interfaces --listen-address=$T_REMOTE" \
		"--port=$U_DNS_PORT --address=/$U_DNS_ZONE/$U_DNS_ANSWER"
	for c in $T_CONTENDERS; do
		echo "    $c:"
		printf '%s\n' "${N_CMDS[$c]:-        (not started)}"
	done
}

u_environment() {
	environment_head udp
	echo "    $(iperf3 -v 2>&1 | head -1 | cut -d' ' -f1-2), -u, one stream," \
		"-t $U_SECS${U_WINDOW:+, -w $U_WINDOW}"
	echo "    dnsperf $(dnsperf -h 2>&1 | awk '/^Version/ { print $2 }')," \
		"$(dnsmasq --version 2>&1 | head -1 | cut -d' ' -f1-3)"
	case " $T_CONTENDERS " in *" ss "*)
		echo "    $(ss-server -h 2>&1 | grep -m1 shadowsocks-libev |
			sed 's/^ *//'), -m $N_SS_METHOD" ;;
	esac
	case " $T_CONTENDERS " in *" sluice-tunnel "*)
		echo "    $(openssl version 2>&1 | head -1)" ;;
	esac
	echo "    veth MTU $N_MTU; net.core.rmem_default" \
		"$(u_sysctl net.core.rmem_default)," \
		"rmem_max $(u_sysctl net.core.rmem_max)," \
		"wmem_default $(u_sysctl net.core.wmem_default)"
	echo "    BENCH_REPS=$BENCH_REPS BENCH_SECS=$U_SECS" \
		"BENCH_CONTENDERS=\"$T_CONTENDERS\""
	echo "    BENCH_UDP_SERIES=\"$U_SERIES_SPEC\" BENCH_UDP_LOSS=$U_LOSS"
}

suite_udp() {
	local c
	declare -gA U_DUMP=() U_ERRORS=()
	for c in $T_CONTENDERS; do
		case $c in direct | sluice | sluice-tunnel | ss) ;;
		*) die "unknown contender '$c' (have: direct sluice sluice-tunnel ss)" 64 ;;
		esac
	done
	case $U_SECS in '' | *[!0-9]* | 0)
		die "BENCH_SECS must be a positive number" 64 ;;
	esac
	for c in "$U_DNS_CLIENTS" "$U_DNS_THREADS" "$U_DNS_OUT" "$U_DNS_NAMES"; do
		case $c in '' | *[!0-9]* | 0)
			die "BENCH_UDP_DNS_*: '$c' is not a positive number" 64 ;;
		esac
	done
	case $U_DNS_QPS in '' | *[!0-9]*)
		die "BENCH_UDP_DNS_QPS must be a number" 64 ;;
	esac
	u_parse_series
	n_ss_system_note
	n_network
	u_window_check
	u_servers
	case " $T_CONTENDERS " in *" sluice-tunnel "*) n_pki ;; esac
	take_turns u_run_contender
	u_environment
	u_report
	[ -n "${BENCH_PROFILE:-}" ] && u_profile
	return 0
}
