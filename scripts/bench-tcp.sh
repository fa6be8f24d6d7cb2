# SPDX-License-Identifier: MIT
# The tcp suite of scripts/bench, sourced by it: a direct connection, sluice
# and HAProxy (transparent bind, splice) on the same TPROXY interception.
#
# In the namespace: nginx (small file) on 127.0.0.1:8080 and an iperf3
# server on 127.0.0.1:5202 are the upstreams. 10.9.0.5 is a "remote"
# address, routable through a veth pair whose two ends both stay in the
# namespace, and answered by nobody: whatever reaches it was intercepted.
#   direct   the client connects straight to 127.0.0.1:8080 / :5202, no
#            proxy, no rules
#   sluice   `sluice tproxy` intercepts 10.9.0.5:80 and :5201 and forwards
#            to the upstreams; it installs its own rules
#   haproxy  HAProxy `bind 127.0.0.1:PORT transparent`, mode tcp, splice,
#            its default nbthread (here the CPU count), behind the same
#            rules as sluice's (installed by this script with
#            iptables-legacy and ip, removed after)
#   haproxy-nt1  the same with nbthread 1
# Contenders take turns within each round, starting one later each round,
# each after the machine is quiet (see wait_quiet in scripts/bench).
#
# The namespace has net.ipv4.tcp_tw_reuse=1: wrk closes first and keeps
# its ports in TIME_WAIT, and the default (2) lets only loopback addresses
# reuse them, which favours the direct client (127.0.0.1) over the
# intercepted one (10.9.0.1), whose 28k ports run out within seconds.
#
# Besides the rates: latency percentiles (mean, p50, p99) of one keep-alive
# connection; peak RSS (VmHWM) of the proxy; CPU per GB and per connection
# of the proxy alone and of every benchmark process together (a CPU
# accounting cgroup); and how much CPU other processes took meanwhile.
#
# Knobs (environment), besides those of scripts/bench:
#   BENCH_CONTENDERS="direct sluice haproxy haproxy-nt1"
#   BENCH_IPERF_TIME=10     seconds of one iperf3 run (single stream)
#   BENCH_WRK_TIME=10       seconds of one wrk `Connection: close` run
#   BENCH_WRK_CONNS=32      its concurrent connections
#   BENCH_WRK_THREADS=1     its threads
#   BENCH_LAT_TIME=4        seconds of the latency run (keep-alive, -c 1)
#   BENCH_NGINX_WORKERS=1
#   BENCH_BODY_BYTES=512    size of the file nginx serves
#   BENCH_HAPROXY_SPLICE="auto"  auto: option splice-auto;
#                           always: option splice-request + splice-response
#   BENCH_HAPROXY_PIPESIZE=BYTES  tune.pipesize (default: HAProxy's, the
#                           kernel's 64 KiB; sluice's pipes are 1 MiB)
#   BENCH_PERF_FREQ=4000    perf sampling rate with BENCH_PROFILE
# shellcheck shell=bash

# shellcheck disable=SC2034 # read by scripts/bench
SUITE_PKGS="iperf3 wrk haproxy nginx-light curl"

T_CONTENDERS=${BENCH_CONTENDERS:-direct sluice haproxy haproxy-nt1}
T_IPERF=${BENCH_IPERF_TIME:-10}
T_WRK=${BENCH_WRK_TIME:-10}
T_WRK_CONNS=${BENCH_WRK_CONNS:-32}
T_WRK_THREADS=${BENCH_WRK_THREADS:-1}
T_LAT=${BENCH_LAT_TIME:-4}
T_NGINX_WORKERS=${BENCH_NGINX_WORKERS:-1}
T_BODY=${BENCH_BODY_BYTES:-512}
T_HP_SPLICE=${BENCH_HAPROXY_SPLICE:-auto}
T_HP_PIPESIZE=${BENCH_HAPROXY_PIPESIZE:-}

T_REMOTE=10.9.0.5		# intercepted, answered by nobody
T_CLIENT=10.9.0.1/24		# the client's address on the veth
T_WEB=127.0.0.1:8080		# nginx
T_IPERF_UP=127.0.0.1:5202	# iperf3 -s
T_HP_WEB=41080			# HAProxy's transparent binds
T_HP_IPERF=41201
T_MARK=0x1
T_BYPASS=0x2
T_TABLE=100
T_PRIO=9100

# ---- servers ----

# tcp_nginx_files DIR LISTEN: nginx's files (the small page, a random
# 16 MiB file whose sum is T_BIG_SUM) and a config listening on LISTEN.
tcp_nginx_files() {
	local d=$1
	mkdir -p "$d/www" "$d/tmp"
	head -c "$T_BODY" /dev/zero | tr '\0' 'x' > "$d/www/index.html"
	# Random bytes, to check that what arrives is what was sent.
	head -c $((16 << 20)) /dev/urandom > "$d/www/big.bin"
	T_BIG_SUM=$(sha256sum < "$d/www/big.bin")
	cat > "$d/nginx.conf" <<-EOF
	daemon off;
	worker_processes $T_NGINX_WORKERS;
	worker_rlimit_nofile 65536;
	pid $d/nginx.pid;
	error_log $d/error.log;
	events { worker_connections 16384; }
	http {
		access_log off;
		keepalive_requests 100000000;
		keepalive_timeout 60s;
		client_body_temp_path $d/tmp;
		proxy_temp_path $d/tmp;
		fastcgi_temp_path $d/tmp;
		uwsgi_temp_path $d/tmp;
		scgi_temp_path $d/tmp;
		server { listen $2 backlog=4096; root $d/www; }
	}
	EOF
}

tcp_servers() {
	local d="$BENCH_TMP/nginx"
	tcp_nginx_files "$d" "$T_WEB"
	bg_ns nginx -c "$d/nginx.conf" -e "$d/error.log"
	wait_port "${T_WEB%:*}" "${T_WEB#*:}" || die "nginx did not start"
	bg_ns iperf3 -s -B "${T_IPERF_UP%:*}" -p "${T_IPERF_UP#*:}" \
		--logfile "$BENCH_TMP/iperf3-server.log"
	wait_port "${T_IPERF_UP%:*}" "${T_IPERF_UP#*:}" ||
		die "iperf3 -s did not start"

	tcp_wrk_report
}

# tcp_wrk_report: wrk's script for one line of numbers at the end,
# latencies in microseconds (wrk_run reads it).
tcp_wrk_report() {
	cat > "$BENCH_TMP/report.lua" <<-'EOF'
	done = function(s, lat, req)
		local e = s.errors
		io.write(string.format("RESULT %d %d %.1f %.1f %.1f %d\n",
			s.requests, s.duration, lat.mean, lat:percentile(50),
			lat:percentile(99),
			e.connect + e.read + e.write + e.status + e.timeout))
	end
	EOF
}

tcp_network() {
	# A veth pair with both ends here (no dummy module on these machines):
	# 10.9.0.0/24 is routable, so connect() to 10.9.0.5 gets as far as the
	# OUTPUT mark that reroutes it over lo to the TPROXY rule.
	nsx ip link add bv0 type veth peer name bv1 || die "cannot add veth"
	nsx ip addr add "$T_CLIENT" dev bv0
	nsx ip link set bv0 up
	nsx ip link set bv1 up
	# The client's TIME_WAIT ports: with the default tcp_tw_reuse=2 only
	# loopback addresses may reuse them, which the direct client
	# (127.0.0.1) is and the intercepted one (10.9.0.1 -> 10.9.0.5) is
	# not. Without this, wrk exhausts its 28k ephemeral ports within
	# seconds through any proxy and the connection rate collapses to
	# what connect() can still find: a benchmark artefact, not the
	# proxy's cost (real clients are many hosts, or reuse too).
	nsx sysctl -qw net.ipv4.tcp_tw_reuse=1 ||
		die "cannot set net.ipv4.tcp_tw_reuse in the namespace"
	nsx iptables-legacy -t mangle -S >/dev/null 2>&1 ||
		die "iptables-legacy mangle table unavailable" 69
}

# ---- contenders ----

# Each start_X sets PROXY_PID (empty for direct), HTTP_URL, IPERF_HOST and
# IPERF_PORT; stop_X undoes start_X.

start_direct() {
	PROXY_PID=""
	HTTP_URL="http://$T_WEB/"
	IPERF_HOST=${T_IPERF_UP%:*}
	IPERF_PORT=${T_IPERF_UP#*:}
}

stop_direct() { :; }

# take_turns RUNNER: RUNNER CONTENDER ROUND for each of T_CONTENDERS in
# each of BENCH_REPS rounds, the first one changing every round, so that
# no contender always follows the same one.
take_turns() {
	local order n rounds i
	read -ra order <<<"$T_CONTENDERS"
	n=${#order[@]}
	for rounds in $(seq "$BENCH_REPS"); do
		for i in $(seq 0 $((n - 1))); do
			"$1" "${order[$(((i + rounds - 1) % n))]}" "$rounds"
		done
	done
}

# t_intercept_yaml: the intercept section of every sluice configuration of
# the suites: its own rules, with the marks and table the suites check.
t_intercept_yaml() {
	cat <<-EOF
	intercept:
	  backend: iptables
	  listen: 127.0.0.1:0
	  mark: $T_MARK
	  bypass-mark: $T_BYPASS
	  route-table: $T_TABLE
	EOF
}

start_sluice() {
	local conf="$BENCH_TMP/sluice.yaml"
	t_intercept_yaml > "$conf"
	cat >> "$conf" <<-EOF
	services:
	  - name: web
	    intercept: { protocols: [tcp], addresses: [$T_REMOTE], ports: [80] }
	    forward: { direct: $T_WEB }
	  - name: iperf
	    intercept: { protocols: [tcp], addresses: [$T_REMOTE], ports: [5201] }
	    forward: { direct: $T_IPERF_UP }
	EOF
	SLUICE_LOG="$BENCH_TMP/sluice.log"
	: > "$SLUICE_LOG"
	bg_ns "$SLUICE" -c "$conf" --state-dir "$BENCH_TMP/state" tproxy \
		--no-self-test 2>>"$SLUICE_LOG"
	PROXY_PID=$LAST_PID
	if ! wait_log "$SLUICE_LOG" 'tproxy: running' 10; then
		tail -20 "$SLUICE_LOG" >&2
		die "sluice did not start"
	fi
	HTTP_URL="http://$T_REMOTE/"
	IPERF_HOST=$T_REMOTE
	IPERF_PORT=5201
}

# sluice_idle_check: with no client left, sluice's dump lists no flow.
sluice_idle_check() {
	local dump n
	dump=$(nsx "$SLUICE" --state-dir "$BENCH_TMP/state" dump 2>&1)
	n=$(printf '%s\n' "$dump" | grep -cE '^ +flow [0-9]+')
	[ "$n" -eq 0 ] ||
		note "sluice: $n flows still listed after the load ended:" \
			"$(printf '%s\n' "$dump" | grep -E '^ +flow' | head -3)"
}

stop_sluice() {
	stop_pid "$PROXY_PID" TERM || note "sluice did not stop in 10 s"
	if nsx iptables-legacy-save -t mangle | grep -q 'NF-INTERCEPT' ||
	    nsx ip rule | grep -q "^$T_PRIO:"; then
		note "sluice left rules behind:"
		nsx iptables-legacy-save -t mangle >&2
		nsx ip rule >&2
		die "stale interception state"
	fi
	grep -E 'warn|error|fatal' "$SLUICE_LOG" | head -5 | sed 's/^/sluice: /' >&2
}

# The rules sluice would install (README "What sluice installs in the
# kernel"), aimed at HAProxy's binds. No `socket` shortcut: SYNs must keep
# going to TPROXY, or reused client ports stall on TIME_WAIT sockets.
ipt() { nsx iptables-legacy -t mangle "$@"; }

# shellcheck disable=SC2015 # die exits
hp_rules_add() {
	ipt -N BENCH-TPROXY &&
	ipt -N BENCH-TPROXY-OUT &&
	ipt -A PREROUTING -j BENCH-TPROXY &&
	ipt -A OUTPUT -j BENCH-TPROXY-OUT &&
	ipt -A BENCH-TPROXY -d "$T_REMOTE/32" -p tcp --dport 80 \
		-j TPROXY --on-port "$T_HP_WEB" --on-ip 127.0.0.1 \
		--tproxy-mark "$T_MARK/$T_MARK" &&
	ipt -A BENCH-TPROXY -d "$T_REMOTE/32" -p tcp --dport 5201 \
		-j TPROXY --on-port "$T_HP_IPERF" --on-ip 127.0.0.1 \
		--tproxy-mark "$T_MARK/$T_MARK" &&
	ipt -A BENCH-TPROXY-OUT -m mark --mark "$T_BYPASS/$T_BYPASS" \
		-j RETURN &&
	ipt -A BENCH-TPROXY-OUT -d "$T_REMOTE/32" -p tcp --dport 80 \
		-j MARK --set-xmark "$T_MARK/$T_MARK" &&
	ipt -A BENCH-TPROXY-OUT -d "$T_REMOTE/32" -p tcp --dport 5201 \
		-j MARK --set-xmark "$T_MARK/$T_MARK" &&
	nsx ip rule add fwmark "$T_MARK/$T_MARK" lookup "$T_TABLE" \
		priority "$T_PRIO" &&
	nsx ip route add local default dev lo table "$T_TABLE" ||
		die "cannot install the interception rules for HAProxy"
}

hp_rules_del() {
	ipt -D PREROUTING -j BENCH-TPROXY 2>/dev/null
	ipt -D OUTPUT -j BENCH-TPROXY-OUT 2>/dev/null
	ipt -F BENCH-TPROXY 2>/dev/null
	ipt -F BENCH-TPROXY-OUT 2>/dev/null
	ipt -X BENCH-TPROXY 2>/dev/null
	ipt -X BENCH-TPROXY-OUT 2>/dev/null
	nsx ip rule del priority "$T_PRIO" 2>/dev/null
	nsx ip route del local default dev lo table "$T_TABLE" 2>/dev/null
	return 0
}

hp_splice_opts() {
	case $T_HP_SPLICE in
	always) printf '\toption splice-request\n\toption splice-response\n' ;;
	*) printf '\toption splice-auto\n' ;;
	esac
}

# start_haproxy [NBTHREAD]: without one, HAProxy picks its default.
start_haproxy() {
	local conf="$BENCH_TMP/haproxy.cfg" nbt="" pipes=""
	[ -n "${1:-}" ] && nbt="nbthread $1"
	[ -n "$T_HP_PIPESIZE" ] && pipes="tune.pipesize $T_HP_PIPESIZE"
	cat > "$conf" <<-EOF
	global
		$nbt
		$pipes
		maxconn 5000
		stats socket $BENCH_TMP/haproxy.sock mode 600 level admin
	defaults
		mode tcp
		timeout connect 5s
		timeout client 60s
		timeout server 60s
	$(hp_splice_opts)
	frontend web
		bind 127.0.0.1:$T_HP_WEB transparent
		default_backend web
	frontend iperf
		bind 127.0.0.1:$T_HP_IPERF transparent
		default_backend iperf
	backend web
		server s $T_WEB
	backend iperf
		server s $T_IPERF_UP
	EOF
	hp_rules_add
	HP_LOG="$BENCH_TMP/haproxy.log"
	bg_ns haproxy -db -f "$conf" 2>>"$HP_LOG"
	PROXY_PID=$LAST_PID
	if ! wait_port 127.0.0.1 "$T_HP_WEB"; then
		cat "$HP_LOG" >&2
		die "haproxy did not start"
	fi
	HTTP_URL="http://$T_REMOTE/"
	IPERF_HOST=$T_REMOTE
	IPERF_PORT=5201
	HP_THREADS=$(hp_info Nbthread)
}

# hp_info FIELD: a field of HAProxy's `show info`.
hp_info() {
	echo "show info" | nsx socat -t 2 - "UNIX-CONNECT:$BENCH_TMP/haproxy.sock" \
		2>/dev/null | awk -F': ' -v f="$1" '$1 == f { print $2 }'
}

stop_haproxy() {
	HP_PIPES=$(hp_info PipesUsed)/$(hp_info PipesFree)
	stop_pid "$PROXY_PID" TERM || note "haproxy did not stop in 10 s"
	hp_rules_del
	if ipt -S | grep -q BENCH-TPROXY || nsx ip rule | grep -q "^$T_PRIO:"
	then
		die "the interception rules for HAProxy are still there"
	fi
}

start_haproxy-nt1() { start_haproxy 1; }
stop_haproxy-nt1() { stop_haproxy; }

# ---- measurements ----

# Runs of one contender record under its name; PROXY_PID's CPU time is
# charged to the run, and the machine's busy share is noted.

proxy_ticks() { [ -n "$PROXY_PID" ] && cpu_ticks "$PROXY_PID" || echo 0; }

m_iperf() {	# m_iperf CONTENDER
	local out mbps t0 t1 m0 m1
	t0=$(proxy_ticks); m0=$(cpu_snap)
	out=$(nsx timeout $((T_IPERF + 20)) iperf3 -c "$IPERF_HOST" \
		-p "$IPERF_PORT" -t "$T_IPERF" -f m 2>&1)
	t1=$(proxy_ticks); m1=$(cpu_snap)
	mbps=$(printf '%s\n' "$out" | awk '/receiver/ {
		for (i = 2; i <= NF; i++) if ($i == "Mbits/sec") v = $(i - 1) }
		END { print v }')
	if [ -z "$mbps" ]; then
		note "$1: iperf3 failed: $(printf '%s' "$out" | tail -2)"
		return
	fi
	pend thr "$1" "$(awk -v m="$mbps" 'BEGIN { print m / 1000 }')"
	pend_shares thr "$1" "$m0" "$m1"
	[ -n "$BENCH_CG_USAGE" ] && pend all_gb "$1" "$(awk -v n="$M_OURS" \
		-v m="$mbps" -v s="$T_IPERF" \
		'BEGIN { print n / 1e6 / (m * 1e6 * s / 8 / 1e9) }')"
	[ -n "$PROXY_PID" ] && pend cpu_gb "$1" "$(awk -v t=$((t1 - t0)) \
		-v hz="$CLK_TCK" -v m="$mbps" -v s="$T_IPERF" \
		'BEGIN { print t / hz * 1000 / (m * 1e6 * s / 8 / 1e9) }')"
}

# wrk_run SECONDS ARGS...: prints
# "requests duration_us mean_us p50_us p99_us errors"
wrk_run() {
	local s=$1; shift
	nsx timeout $((s + 20)) wrk -d "${s}s" -s "$BENCH_TMP/report.lua" \
		"$@" 2>&1 | awk '/^RESULT/ { print $2, $3, $4, $5, $6, $7 }'
}

m_rate() {	# m_rate CONTENDER
	local r t0 t1 m0 m1 req dur err
	t0=$(proxy_ticks); m0=$(cpu_snap)
	r=$(wrk_run "$T_WRK" -t "$T_WRK_THREADS" -c "$T_WRK_CONNS" \
		-H 'Connection: close' "$HTTP_URL")
	t1=$(proxy_ticks); m1=$(cpu_snap)
	read -r req dur _ _ _ err <<<"$r"
	if [ -z "${req:-}" ] || [ "$req" -eq 0 ]; then
		note "$1: wrk (Connection: close) failed"
		return
	fi
	[ "$err" -gt 0 ] && note "$1: wrk (Connection: close): $err errors"
	pend rate "$1" "$(awk -v n="$req" -v d="$dur" \
		'BEGIN { print n * 1e6 / d }')"
	pend_shares rate "$1" "$m0" "$m1"
	[ -n "$BENCH_CG_USAGE" ] && pend all_conn "$1" "$(awk -v t="$M_OURS" \
		-v n="$req" 'BEGIN { print t / 1e3 / n }')"
	pend errors "$1" "$err"
	[ -n "$PROXY_PID" ] && pend cpu_conn "$1" "$(awk -v t=$((t1 - t0)) \
		-v hz="$CLK_TCK" -v n="$req" 'BEGIN { print t / hz * 1e6 / n }')"
}

m_latency() {	# m_latency CONTENDER
	local r req mean p50 p99 err m0 m1
	m0=$(cpu_snap)
	r=$(wrk_run "$T_LAT" -t 1 -c 1 "$HTTP_URL")
	m1=$(cpu_snap)
	read -r req _ mean p50 p99 err <<<"$r"
	if [ -z "${req:-}" ] || [ "$req" -eq 0 ]; then
		note "$1: wrk (latency) failed"
		return
	fi
	[ "$err" -gt 0 ] && note "$1: wrk (latency): $err errors"
	pend lat_mean "$1" "$mean"
	pend_shares lat "$1" "$m0" "$m1"
	pend lat_p50 "$1" "$p50"
	pend lat_p99 "$1" "$p99"
}

# check_path CONTENDER: the small file and 16 MiB of random bytes arrive
# intact through the contender's path. For proxied ones, 10.9.0.5 answers
# nobody: the flow was intercepted.
check_path() {
	local body sum
	body=$(nsx curl -sS --max-time 5 "$HTTP_URL" 2>&1)
	[ "$body" = "$(cat "$BENCH_TMP/nginx/www/index.html")" ] ||
		die "$1: $HTTP_URL did not return the file: ${body:0:200}"
	sum=$(nsx curl -sS --max-time 20 "${HTTP_URL}big.bin" | sha256sum)
	[ "$sum" = "$T_BIG_SUM" ] ||
		die "$1: ${HTTP_URL}big.bin arrived damaged (sha256 $sum)"
}

# proxy_fds: the proxy's open file descriptors.
proxy_fds() {
	# shellcheck disable=SC2012 # /proc/PID/fd holds numbers only
	[ -n "$PROXY_PID" ] && ls "/proc/$PROXY_PID/fd" 2>/dev/null | wc -l
}

run_contender() {	# run_contender NAME ROUND
	local c=$1 hwm fds0 fds1
	note "round $2: $c"
	wait_quiet
	"start_$c"
	check_path "$c"
	fds0=$(proxy_fds)
	measure m_iperf "$c"
	measure m_rate "$c"
	measure m_latency "$c"
	if [ -n "$PROXY_PID" ]; then
		# Idle again, the proxy holds what it held before the load
		# (sluice: plus up to 64 pooled pipes, 2 fds each).
		sleep 0.5
		fds1=$(proxy_fds)
		[ "${fds1:-0}" -gt $((${fds0:-0} + 130)) ] &&
			note "$c: $((fds1 - fds0)) more fds after the load than before"
		[ "$c" = sluice ] && sluice_idle_check
		hwm=$(peak_rss_kib "$PROXY_PID")
		[ -n "$hwm" ] && record rss "$c" "$(awk -v k="$hwm" \
			'BEGIN { print k / 1024 }')"
	fi
	"stop_$c"
	case $c in
	haproxy*) note "$c: nbthread $HP_THREADS, pipes used/free $HP_PIPES"
		HP_NBT[$c]=$HP_THREADS ;;
	esac
}

# ---- profile (BENCH_PROFILE=DIR) ----

# bg_perf NAME SECONDS PERF-ARGS...: perf record -g for SECONDS into
# DIR/NAME.data, in the background; PERF_PID.
bg_perf() {
	local n=$1 t=$2
	shift 2
	perf record -q -g -o "$P_DIR/$n.data" "$@" -- sleep "$t" \
		>/dev/null 2>&1 &
	PERF_PID=$!
}

# perf_summary NAME [CONNECTIONS]: text reports of DIR/NAME.data: by
# process and kernel/user (with CPU µs per connection when given), flat
# by symbol, and the CPU inside each system call.
perf_summary() {
	local d="$P_DIR/$1.data" n=${2:-0}
	perf report -i "$d" --stdio --no-children --sort comm,dso -g none \
		--show-nr-samples \
		2>/dev/null | awk -v n="$n" -v f="$P_FREQ" '
		/^#/ || NF < 4 { next }
		{ dso = ($4 == "[kernel.kallsyms]") ? "kernel" : "user";
		  s[$3 " " dso] += $2; t += $2 }
		END { for (k in s) printf "%6.2f%% %8d %s%s\n", 100 * s[k] / t,
			s[k], k, n ? sprintf("  %.1f us/conn",
			s[k] * 1e6 / f / n) : "" }' |
		sort -rn > "$P_DIR/$1.comm.txt"
	perf report -i "$d" --stdio --no-children --sort dso,sym -g none \
		--percent-limit 0.3 2>/dev/null | grep -v '^#' | grep . \
		> "$P_DIR/$1.flat.txt"
	perf report -i "$d" --stdio --children --sort sym -g none 2>/dev/null |
		grep -E '__x64_sys_|do_syscall_64' | head -25 \
		> "$P_DIR/$1.syscalls.txt"
}

# profile_all CONTENDER: starts it and runs the connection-rate and iperf3
# loads under perf record -a (every process); the suites' profile_one and
# n_profile_one go on with the proxy alone.
profile_all() {
	local c=$1 r
	wait_quiet
	"start_$c"
	check_path "$c"
	note "profile $c: Connection: close, every process"
	bg_perf "$c-rate-all" "$T_WRK" -a -F "$P_FREQ"
	r=$(wrk_run "$T_WRK" -t "$T_WRK_THREADS" -c "$T_WRK_CONNS" \
		-H 'Connection: close' "$HTTP_URL")
	wait "$PERF_PID"
	echo "$r" > "$P_DIR/$c-rate-all.wrk"
	perf_summary "$c-rate-all" "${r%% *}"
	note "profile $c: iperf3, every process"
	bg_perf "$c-iperf-all" "$T_IPERF" -a -F "$P_FREQ"
	nsx timeout $((T_IPERF + 20)) iperf3 -c "$IPERF_HOST" -p "$IPERF_PORT" \
		-t "$T_IPERF" -f m > "$P_DIR/$c-iperf-all.out" 2>&1
	wait "$PERF_PID"
	perf_summary "$c-iperf-all"
}

# profile_one CONTENDER: the connection-rate and iperf3 loads again under
# perf record -a (every process) and, for a proxy, perf record -p (the
# proxy alone), strace -c (slows the proxy: count syscalls, not time) and
# strace of one single request (the syscalls of one connection).
profile_one() {
	local c=$1 r n st
	profile_all "$c"
	if [ -n "$PROXY_PID" ]; then
		note "profile $c: Connection: close and iperf3, the proxy alone"
		bg_perf "$c-rate" "$T_WRK" -p "$PROXY_PID" -F "$P_FREQ"
		r=$(wrk_run "$T_WRK" -t "$T_WRK_THREADS" -c "$T_WRK_CONNS" \
			-H 'Connection: close' "$HTTP_URL")
		wait "$PERF_PID"
		echo "$r" > "$P_DIR/$c-rate.wrk"
		perf_summary "$c-rate" "${r%% *}"
		bg_perf "$c-iperf" "$T_IPERF" -p "$PROXY_PID" -F "$P_FREQ"
		nsx timeout $((T_IPERF + 20)) iperf3 -c "$IPERF_HOST" \
			-p "$IPERF_PORT" -t "$T_IPERF" -f m \
			> "$P_DIR/$c-iperf.out" 2>&1
		wait "$PERF_PID"
		perf_summary "$c-iperf"
		note "profile $c: strace"
		timeout 30 strace -c -f -o "$P_DIR/$c-rate.strace" \
			-p "$PROXY_PID" 2>/dev/null &
		st=$!
		sleep 0.5
		wrk_run 5 -t "$T_WRK_THREADS" -c "$T_WRK_CONNS" \
			-H 'Connection: close' "$HTTP_URL" \
			> "$P_DIR/$c-rate.strace.wrk"
		kill -INT "$st" 2>/dev/null
		wait "$st" 2>/dev/null
		timeout 30 strace -f -o "$P_DIR/$c-one.strace" \
			-p "$PROXY_PID" 2>/dev/null &
		st=$!
		sleep 0.5
		nsx curl -sS -o /dev/null --max-time 5 "$HTTP_URL"
		sleep 0.5
		kill -INT "$st" 2>/dev/null
		wait "$st" 2>/dev/null
	fi
	"stop_$c"
}

# every_run WIDTH WIDTH METRIC...: each contender's figure of every round
# for each METRIC, in columns of those widths.
every_run() {
	local mw=$1 cw=$2 m c p
	shift 2
	for m in "$@"; do
		for c in $T_CONTENDERS; do
			p=${RES["$m|$c"]:-}
			# shellcheck disable=SC2086 # a list of numbers
			[ -n "$p" ] && printf "    %-${mw}s %-${cw}s %s\n" "$m" "$c" \
				"$(printf '%s\n' $p | awk '{ printf "%.6g ", $1 }')"
		done
	done
}

# profile_each FN FILES: perf and strace made ready, then FN CONTENDER for
# each contender; FILES names what the profiles are, for the closing note.
profile_each() {
	local c
	P_DIR=$BENCH_PROFILE
	P_FREQ=${BENCH_PERF_FREQ:-4000}
	mkdir -p "$P_DIR" || die "cannot create $P_DIR"
	command -v perf >/dev/null || ensure_pkgs linux-perf
	ensure_pkgs strace
	perf record -q -o /dev/null -- true >/dev/null 2>&1 ||
		{ note "perf record does not work here; no profile"; return; }
	for c in $T_CONTENDERS; do "$1" "$c"; done
	note "profiles in $P_DIR ($2; perf report -i *.data for more)"
}

# One thread of HAProxy is the same program: its profile adds nothing.
profile_tcp_one() {
	case $1 in haproxy-nt1) return ;; esac
	profile_one "$1"
}

profile() {
	profile_each profile_tcp_one "*.comm.txt, *.syscalls.txt, *.flat.txt, *.strace"
}

# ---- report ----

# row LABEL METRIC DECIMALS [noratio | none]: medians, then ratios to direct
# (not with noratio or none) and of sluice to its rivals (not with none).
row() {
	local label=$1 m=$2 dec=$3 c line v
	local -A med_of
	line="| $label"
	for c in $T_CONTENDERS; do
		med_of[$c]=$(med "$m" "$c")
		line="$line | $(fmt "${med_of[$c]}" "$dec")"
	done
	for c in $T_PROXIES; do
		if [ -n "${4:-}" ]; then v="-"
		else v=$(ratio "${med_of[$c]}" "${med_of[direct]:-}"); fi
		line="$line | $v"
	done
	for c in $T_RIVALS; do
		if [ "${4:-}" = none ]; then v="-"
		else v=$(ratio "${med_of[sluice]:-}" "${med_of[$c]}"); fi
		line="$line | $v"
	done
	echo "$line |"
}

header() {	# header FIRST-COLUMN
	local c line="| $1" sep="|---"
	for c in $T_CONTENDERS; do line="$line | $c"; sep="$sep|--:"; done
	for c in $T_PROXIES; do line="$line | $c/direct"; sep="$sep|--:"; done
	for c in $T_RIVALS; do line="$line | sluice/$c"; sep="$sep|--:"; done
	echo "$line |"
	echo "$sep|"
}

report() {
	local c p
	T_PROXIES="" T_RIVALS=""
	for c in $T_CONTENDERS; do
		[ "$c" = direct ] || T_PROXIES="$T_PROXIES $c"
		case $c in haproxy*) T_RIVALS="$T_RIVALS $c" ;; esac
	done
	case " $T_CONTENDERS " in *" sluice "*) ;; *) T_RIVALS="" ;; esac
	echo
	echo "Medians of $BENCH_REPS rounds (contenders take turns); ratios of" \
		"medians: above 1 is better for the rates, below 1 for latency," \
		"memory and CPU."
	echo
	header metric
	row "iperf3 single stream, Gbit/s" thr 2
	row "wrk \`Connection: close\`, connections/s" rate 0
	row "request latency mean, µs (keep-alive, 1 conn)" lat_mean 1
	row "request latency p50, µs" lat_p50 1
	row "request latency p99, µs" lat_p99 1
	row "peak RSS (VmHWM), MiB" rss 1 noratio
	echo
	echo "Where the CPU goes: client, proxy and servers share $(nproc) CPUs;" \
		"\"all benchmark processes\" is their CPU time together"
	echo "(a CPU accounting cgroup) plus interrupt work, \"the proxy's own\"" \
		"its utime + stime (kernel work it does for its peers included)."
	echo
	header metric
	row "CPU per GB, all benchmark processes (iperf3), ms" all_gb 0
	row "CPU per connection, all benchmark processes (wrk), µs" all_conn 1
	row "proxy's own CPU per GB (iperf3), ms" cpu_gb 0 noratio
	row "proxy's own CPU per connection (wrk), µs" cpu_conn 1 noratio
	row "machine CPU busy during iperf3, %" busy_thr 0 none
	row "machine CPU busy during wrk, %" busy_rate 0 none
	row "other processes' CPU during iperf3, %" others_thr 1 none
	row "other processes' CPU during wrk, %" others_rate 1 none
	row "other processes' CPU during latency, %" others_lat 1 none
	echo
	for c in $T_CONTENDERS; do
		case $c in haproxy*)
			echo "$c: nbthread ${HP_NBT[$c]:-?}, option splice-$T_HP_SPLICE${T_HP_PIPESIZE:+, tune.pipesize $T_HP_PIPESIZE}" ;;
		esac
	done
	noisy "$T_CONTENDERS" others_thr others_rate others_lat
	for c in $T_CONTENDERS; do
		p=$(echo "${RES["errors|$c"]:-}" | awk '{ for (i = 1; i <= NF; i++)
			t += $i } END { print t + 0 }')
		[ "$p" -gt 0 ] && echo "WARNING: $c: wrk counted $p errors."
	done
	echo
	echo "Every run (in round order):"
	echo
	every_run 9 12 thr rate lat_mean lat_p50 lat_p99 rss all_gb all_conn \
	    cpu_gb cpu_conn \
	    busy_thr busy_rate others_thr others_rate others_lat errors
}

# environment_head SUITE: the report's title, the machine and sluice.
environment_head() {
	local cpu
	cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
	echo "## scripts/bench $1, $(date -u '+%Y-%m-%d %H:%M UTC')"
	echo
	echo "    kernel $(uname -r), $(nproc) CPUs ($cpu), load $(cut -d' ' -f1-3 /proc/loadavg)"
	if [ -n "${BENCH_SLUICE:-}" ]; then
		echo "    $("$SLUICE" version 2>&1 | head -1) (BENCH_SLUICE=$BENCH_SLUICE)"
	else
		echo "    $("$SLUICE" version 2>&1 | head -1) (build/sluice, tree at" \
			"$(cd "$BENCH_TOP" && git describe --always --dirty \
			2>/dev/null || echo '?'))"
	fi
}

# environment_loads: the servers and load generators, as configured.
environment_loads() {
	echo "    $(nginx -v 2>&1 | head -1), worker_processes $T_NGINX_WORKERS, ${T_BODY}-byte file"
	echo "    $(iperf3 -v 2>&1 | head -1 | cut -d' ' -f1-2), -t $T_IPERF, 1 stream"
	echo "    $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2), -t $T_WRK_THREADS -c $T_WRK_CONNS -d $T_WRK (Connection: close); -t 1 -c 1 -d $T_LAT (latency)"
}

environment() {
	environment_head tcp
	echo "    $(haproxy -v 2>&1 | head -1)"
	environment_loads
	echo "    BENCH_REPS=$BENCH_REPS BENCH_CONTENDERS=\"$T_CONTENDERS\" BENCH_HAPROXY_SPLICE=$T_HP_SPLICE${T_HP_PIPESIZE:+ BENCH_HAPROXY_PIPESIZE=$T_HP_PIPESIZE}"
}

suite_tcp() {
	local c
	declare -gA HP_NBT
	for c in $T_CONTENDERS; do
		declare -F "start_$c" >/dev/null ||
			die "unknown contender '$c' (have: direct sluice haproxy haproxy-nt1)" 64
	done
	ensure_pkgs socat
	tcp_network
	tcp_servers
	take_turns run_contender
	environment
	report
	[ -n "${BENCH_PROFILE:-}" ] && profile
	return 0
}
