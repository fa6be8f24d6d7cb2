#!/bin/bash
# SPDX-License-Identifier: MIT
# The dns suite: sluice's nameserver against dnsmasq, both answering the
# same names with the same addresses authoritatively, under dnsperf (UDP,
# type A), in the network namespace sluice-bench-dns. `scripts/bench dns`
# runs it; it also runs on its own: scripts/bench-dns.sh.
#
# sluice tproxy (--resolver none --no-self-test, systemd kept out) has
# BENCH_DNS_NAMES services, each with one exact name svcK.bench.test and a
# TCP port, and dns.listen 127.0.0.1:53: it gives each name a pool
# address at start. dig reads those, and dnsmasq on 127.0.0.2:53 answers
# the same names with the same addresses and TTL from --host-record (an
# exact name, AA set, like sluice; --address would match subdomains too).
# Before measuring, both must give identical answers to every name.
#
# dnsperf cycles through the names: a throughput run (no rate limit) for
# each thread count in BENCH_DNS_THREADS, then a latency run at a fixed
# low rate. The servers take turns for each run, the first one changing
# every round; each figure is the median of the rounds. Besides dnsperf's
# queries/s, latency (mean, max), lost queries and other rcodes: the
# server's CPU per query and share of one CPU, dnsperf's CPU share, UDP
# datagrams the kernel dropped on a full receive buffer, the servers'
# peak RSS (VmHWM), and other processes' CPU share meanwhile.
#
# The namespace sees temporary /etc/netns/sluice-bench-dns/{resolv.conf,
# hosts}, never the machine's; traffic stays on its loopback; everything
# is removed on exit (also on Ctrl-C). Each client is bounded by
# timeout(1). One benchmark at a time: on its own, it waits for the lock of
# scripts/bench (BENCH_LOCK_WAIT seconds, default 300), as other suites
# would skew its figures and it theirs.
#
# Knobs (environment), besides BENCH_REPS, BENCH_SLUICE, BENCH_PROFILE,
# BENCH_QUIET and BENCH_NOISE of scripts/bench:
#   BENCH_DNS_NAMES=100     names (and services)
#   BENCH_DNS_TIME=10       seconds of one throughput run (dnsperf -l)
#   BENCH_DNS_CLIENTS=4     dnsperf -c (sockets) of the throughput runs
#   BENCH_DNS_THREADS="1 2" a throughput run with each dnsperf -T
#   BENCH_DNS_OUTSTANDING=100  dnsperf -q
#   BENCH_DNS_LAT_QPS=1000 BENCH_DNS_LAT_TIME=4  the latency run (dnsperf
#                           -c 1 -T 1 -Q QPS -l TIME); QPS 0 skips it
#   BENCH_QUIET_WAIT=5      seconds to wait for a quiet machine before
#                           each round (scripts/bench waits 20 before each
#                           turn; this suite has a 3-minute budget)
#   BENCH_DNS_NS=sluice-bench-dns  the network namespace
# shellcheck shell=bash

# Sourced by scripts/bench (which calls suite_dns after making its own
# namespace and temporary directory): run this file as a program of its
# own, with its own namespace, files and cleanup, as one of the processes
# that scripts/bench stops on exit (BENCH_PIDS; its cleanup also expects
# that list not to be empty). It inherits scripts/bench's lock.
if [ "${BASH_SOURCE[0]}" != "$0" ]; then
	# shellcheck disable=SC2034 # read by scripts/bench
	SUITE_PKGS="dnsperf dnsmasq-base dnsutils"
	suite_dns() {
		bash "${BASH_SOURCE[0]}" "$@" &
		BENCH_PIDS="${BENCH_PIDS:-} $!"
		wait "$!"
	}
	return 0
fi

set -u -o pipefail

TOP=$(cd "$(dirname "$0")/.." && pwd)
REPS=${BENCH_REPS:-3}
NS=${BENCH_DNS_NS:-sluice-bench-dns}
NAMES=${BENCH_DNS_NAMES:-100}
D_TIME=${BENCH_DNS_TIME:-10}
D_CLIENTS=${BENCH_DNS_CLIENTS:-4}
D_THREADS=${BENCH_DNS_THREADS:-1 2}
D_OUT=${BENCH_DNS_OUTSTANDING:-100}
L_QPS=${BENCH_DNS_LAT_QPS:-1000}
L_TIME=${BENCH_DNS_LAT_TIME:-4}
QUIET=${BENCH_QUIET:-5}
QUIET_WAIT=${BENCH_QUIET_WAIT:-5}
NOISE=${BENCH_NOISE:-5}
PROFILE=${BENCH_PROFILE:-}

SL_ADDR=127.0.0.1	# sluice's dns.listen
DM_ADDR=127.0.0.2	# dnsmasq's
TTL=60
SERVERS="sluice dnsmasq"
RULES="?"

TMP=""
NS_MADE=0
NETNS_DIR="/etc/netns/$NS"
NETNS_MADE=0
NETNS_TOP_MADE=0
PIDS=""
CG=""
CG_USAGE=""
MARK="# scripts/bench-dns.sh: temporary, removed on exit"

unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY
export LC_ALL=C
# systemd (resolved, systemd-run) stays out of it.
export SLUICE_SYSTEMD_RUN=/nonexistent SLUICE_SYSTEMCTL=false
unset SLUICE_RESOLV_CONF SLUICE_HOSTS

note() { printf 'bench dns: %s\n' "$*" >&2; }
die() { printf 'bench dns: %s\n' "$1" >&2; exit "${2:-1}"; }

posint() {	# posint NAME VALUE [0ok]
	case $2 in
	'' | *[!0-9]*) die "$1 must be a number" 64 ;;
	0) [ -n "${3:-}" ] || die "$1 must be positive" 64 ;;
	esac
}

# ---- cleanup ----

cleanup() {
	local p i live
	trap - EXIT INT TERM HUP
	set +u
	for p in $PIDS; do kill -TERM "$p" 2>/dev/null; done
	for i in $(seq 50); do
		live=""
		for p in $PIDS; do kill -0 "$p" 2>/dev/null && live=1; done
		[ -z "$live" ] && break
		sleep 0.1
	done
	for p in $PIDS; do kill -KILL "$p" 2>/dev/null; done
	wait 2>/dev/null
	if [ "$NS_MADE" = 1 ] && ip netns list | grep -qw "$NS"; then
		ip netns pids "$NS" 2>/dev/null | xargs -r kill -KILL 2>/dev/null
		ip netns del "$NS" 2>/dev/null ||
			note "WARNING: could not delete namespace $NS"
	fi
	if [ "$NETNS_MADE" = 1 ]; then
		rm -f "$NETNS_DIR/resolv.conf" "$NETNS_DIR/hosts"
		rmdir "$NETNS_DIR" 2>/dev/null
		[ "$NETNS_TOP_MADE" = 1 ] && rmdir /etc/netns 2>/dev/null
	fi
	[ -n "$TMP" ] && rm -rf "$TMP"
	if [ -n "$CG" ]; then
		echo $$ > "${CG%/*}/tasks" 2>/dev/null
		rmdir "$CG" 2>/dev/null
	fi
}

# bench_lock: one benchmark at a time on the machine, whatever its suite
# (they skew each other): the lock of scripts/bench, which is ours
# already when scripts/bench started us (its fd 9); else wait for it,
# BENCH_LOCK_WAIT seconds at most (default 300).
bench_lock() {
	local f="$TOP/scripts/bench" w=${BENCH_LOCK_WAIT:-300}
	[ -f "$f" ] || f=$0
	if [ "$(readlink -f "/proc/$$/fd/9" 2>/dev/null)" = \
	    "$(readlink -f "$f")" ] && flock -n 9; then
		return 0
	fi
	exec 9<"$f" || die "cannot open $f"
	flock -n 9 && return 0
	note "another benchmark holds the lock on $f; waiting (${w} s at most)"
	flock -w "$w" 9 || die "another benchmark is still running" 75
}

# ---- prerequisites ----

ensure_pkgs() {
	local p missing=""
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
			grep -q "ok installed" || missing="$missing $p"
	done
	[ -z "$missing" ] && return 0
	note "installing:$missing"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq || die "apt-get update failed"
	# shellcheck disable=SC2086
	apt-get install -y -qq --no-install-recommends $missing >/dev/null ||
		die "cannot install:$missing"
}

# BENCH_SLUICE, or build/sluice, built when missing or older than a
# source; copied, so that a rebuild meanwhile cannot change it.
ensure_sluice() {
	local src=${BENCH_SLUICE:-$TOP/build/sluice} ver
	if [ -z "${BENCH_SLUICE:-}" ] && { [ ! -x "$src" ] ||
	    [ -n "$(find "$TOP/src" "$TOP/netfilter" "$TOP/dns" \
	    -newer "$src" -name '*.[ch]' 2>/dev/null | head -1)" ]; }; then
		note "building sluice (scripts/build)"
		"$TOP/scripts/deps" >&2 || die "scripts/deps failed"
		"$TOP/scripts/build" >&2 || die "scripts/build failed"
	fi
	[ -x "$src" ] || die "no sluice binary at $src"
	ver=$("$src" version 2>&1)
	case $ver in
	sluice*) ;;
	*) die "$src does not look like sluice ('$src version': '$ver')" ;;
	esac
	SLUICE="$TMP/sluice"
	cp "$src" "$SLUICE" || die "cannot copy $src"
}

# ---- namespace, files, processes ----

nsx() { ip netns exec "$NS" "$@"; }

bg_ns() {	# bg_ns CMD...: LAST_PID is CMD itself (ip netns exec execs)
	ip netns exec "$NS" "$@" &
	LAST_PID=$!
	PIDS="$PIDS $LAST_PID"
}

stop_pid() {	# stop_pid PID: TERM, 10 s at most; its status in STOP_STATUS
	local i=0 p keep=""
	kill -TERM "$1" 2>/dev/null
	while kill -0 "$1" 2>/dev/null && [ $i -lt 100 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	kill -KILL "$1" 2>/dev/null
	wait "$1" 2>/dev/null
	STOP_STATUS=$?
	for p in $PIDS; do [ "$p" = "$1" ] || keep="$keep $p"; done
	PIDS=$keep
	[ $i -lt 100 ]
}

# ns_up: the namespace with lo up and its own resolv.conf and hosts (ip
# netns exec bind-mounts /etc/netns/NS/FILE over /etc/FILE); what a run
# that was killed left (the lock is ours, the files carry our mark) is
# removed first.
ns_up() {
	local want got f
	if ip netns list | grep -qw "$NS"; then
		note "removing namespace $NS left by an earlier run"
		ip netns pids "$NS" | xargs -r kill -KILL 2>/dev/null
		ip netns del "$NS" || die "cannot delete $NS"
	fi
	if [ -e "$NETNS_DIR" ]; then
		for f in "$NETNS_DIR"/*; do
			[ -e "$f" ] || continue
			grep -qxF "$MARK" "$f" 2>/dev/null ||
				die "$NETNS_DIR exists and is not ours; remove it first"
		done
		rm -f "$NETNS_DIR"/resolv.conf "$NETNS_DIR"/hosts
		rmdir "$NETNS_DIR" || die "cannot remove $NETNS_DIR"
	fi
	[ -d /etc/netns ] || NETNS_TOP_MADE=1
	mkdir -p "$NETNS_DIR" || die "cannot create $NETNS_DIR"
	NETNS_MADE=1
	printf '%s\nnameserver %s\n' "$MARK" "$SL_ADDR" > "$NETNS_DIR/resolv.conf"
	printf '%s\n127.0.0.1\tlocalhost\n' "$MARK" > "$NETNS_DIR/hosts"
	ip netns add "$NS" || die "cannot create namespace $NS" 69
	NS_MADE=1
	nsx ip link set lo up || die "cannot set lo up in $NS"
	# What the namespace sees must be these files, or nothing may run.
	want="$(stat -c %d:%i "$NETNS_DIR/resolv.conf") $(stat -c %d:%i "$NETNS_DIR/hosts")"
	# shellcheck disable=SC2016 # expanded inside the namespace
	got=$(nsx sh -c 'echo "$(stat -c %d:%i /etc/resolv.conf) $(stat -c %d:%i /etc/hosts)"')
	[ "$got" = "$want" ] ||
		die "ip netns exec does not bind-mount $NETNS_DIR files here" 69
}

wait_log() {	# wait_log FILE REGEX SECONDS
	local i
	for i in $(seq $(($3 * 20))); do
		grep -Eq -- "$2" "$1" 2>/dev/null && return 0
		sleep 0.05
	done
	return 1
}

# ---- CPU accounting ----

CLK_TCK=$(getconf CLK_TCK 2>/dev/null || echo 100)

# cpu_ns PID: the CPU time of PID's threads, in ns: their run time from
# schedstat, or utime + stime in clock ticks (10 ms) without it.
cpu_ns() {
	if [ -r "/proc/$1/schedstat" ]; then
		cat "/proc/$1"/task/*/schedstat 2>/dev/null |
			awk '{ t += $1 } END { printf "%.0f\n", t }'
	else
		awk -v hz="$CLK_TCK" '{ sub(/^.*\) /, "");
			printf "%.0f\n", ($12 + $13) * 1e9 / hz }' \
			"/proc/$1/stat" 2>/dev/null || echo 0
	fi
}

peak_rss_kib() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status" 2>/dev/null; }

# This shell and all it starts are in a CPU accounting cgroup of their
# own, so that what other processes take during a run shows.
cg_setup() {
	local base
	for base in /sys/fs/cgroup/cpuacct /sys/fs/cgroup/cpu,cpuacct; do
		[ -f "$base/cpuacct.usage" ] || continue
		mkdir "$base/sluice-bench-dns-$$" 2>/dev/null || continue
		CG="$base/sluice-bench-dns-$$"
		echo $$ > "$CG/tasks" 2>/dev/null || return 0
		CG_USAGE="$CG/cpuacct.usage"
		return 0
	done
	note "no cgroup v1 cpuacct: other processes' load is not told apart"
}

cg_ns() { if [ -n "$CG_USAGE" ]; then cat "$CG_USAGE"; else echo 0; fi; }

# cpu_snap: "tasks irq all our_ns" (see scripts/bench).
cpu_snap() {
	printf '%s %s\n' "$(awk '/^cpu / { print $2 + $3 + $4, $7 + $8,
		$2 + $3 + $4 + $5 + $6 + $7 + $8; exit }' /proc/stat)" "$(cg_ns)"
}

# others SNAP0 SNAP1: % of the machine's CPU that tasks outside our cgroup
# took (without a cgroup: that all tasks took).
others() {
	awk -v a="$1" -v b="$2" -v hz="$CLK_TCK" -v cg="$CG_USAGE" \
	    'BEGIN { split(a, x, " "); split(b, y, " ");
		tasks = y[1] - x[1]; all = y[3] - x[3];
		if (all <= 0) { print 0; exit }
		ours = cg == "" ? 0 : (y[4] - x[4]) / 1e9 * hz;
		o = 100 * (tasks - ours) / all; if (o < 0) o = 0;
		printf "%.2f\n", o }'
}

# busiest: the 3 processes outside ours that took most CPU over 0.5 s.
busiest() {
	local a b
	a=$(cat /proc/[0-9]*/stat 2>/dev/null)
	sleep 0.5
	b=$(cat /proc/[0-9]*/stat 2>/dev/null)
	awk -v hz="$CLK_TCK" 'function t(l, f) { c = l; sub(/^.*\) /, "", c);
		split(c, f, " "); return f[12] + f[13] }
		function n(l) { match(l, /\(.*\)/);
		return substr(l, RSTART + 1, RLENGTH - 2) }
		NR == FNR { split($0, p, " "); v[p[1]] = t($0); next }
		{ split($0, p, " "); d = t($0) - v[p[1]];
		  if (d > 0) printf "%d %s\n", d, n($0) }' \
		<(printf '%s\n' "$a") <(printf '%s\n' "$b") | sort -rn |
		head -3 | awk -v hz="$CLK_TCK" '{ printf "%s%s %.0f%%",
		(NR > 1 ? ", " : ""), $2, 100 * $1 / hz / 0.5 } END { print "" }'
}

# wait_quiet: up to QUIET_WAIT s until others take < QUIET % of the CPU.
wait_quiet() {
	local a b o i max=$((QUIET_WAIT * 2))
	[ "$max" -gt 0 ] || return 0
	for i in $(seq "$max"); do
		a=$(cpu_snap); sleep 0.5; b=$(cpu_snap)
		o=$(others "$a" "$b")
		awk -v o="$o" -v l="$QUIET" 'BEGIN { exit !(o < l) }' &&
			return 0
	done
	note "WARNING: other processes take $(fmt "$o" 0)% of the CPU" \
		"($(busiest)); measuring anyway"
	return 1
}

# ---- results ----

declare -A RES	# RES[metric|server] = "v1 v2 ..."

record() {	# record METRIC SERVER VALUE
	[ -n "$3" ] || return 0
	RES["$1|$2"]="${RES["$1|$2"]:-}${RES["$1|$2"]:+ }$3"
}

median() {
	[ $# -gt 0 ] || { echo ""; return; }
	printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
		if (NR % 2) print v[(NR + 1) / 2];
		else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# shellcheck disable=SC2086 # a list of numbers
med() { median ${RES["$1|$2"]:-}; }

# shellcheck disable=SC2086
total() { printf '%s\n' 0 ${RES["$1|$2"]:-} | awk '{ t += $1 } END { print t }'; }

fmt() {
	[ -n "$1" ] || { echo "-"; return; }
	awk -v v="$1" -v d="$2" 'BEGIN { printf "%.*f", d, v }'
}

ratio() {
	if [ -z "$1" ] || [ -z "$2" ] || awk -v b="$2" 'BEGIN { exit b != 0 }'
	then echo "-"; return; fi
	awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'
}

# ---- servers ----

start_sluice() {
	local conf="$TMP/sluice.yaml" k
	{
		cat <<-EOF
		intercept:
		  backend: iptables
		  listen: 127.0.0.1:0
		dns:
		  listen: $SL_ADDR:53
		  ttl: $TTL
		  resolver: none
		  self-test: false
		services:
		EOF
		for k in $(seq "$NAMES"); do
			printf '  - name: svc%d\n' "$k"
			printf '    intercept: { protocols: [tcp], addresses: [svc%d.bench.test], ports: [%d] }\n' \
				"$k" $((10000 + k))
			printf '    forward: { direct: 127.0.0.1:%d }\n' $((20000 + k))
		done
	} > "$conf"
	"$SLUICE" -c "$conf" check >/dev/null 2>"$TMP/check.err" || {
		cat "$TMP/check.err" >&2
		die "sluice check rejects the configuration"
	}
	SL_LOG="$TMP/sluice.log"
	: > "$SL_LOG"
	bg_ns "$SLUICE" -c "$conf" --state-dir "$TMP/state" tproxy \
		--resolver none --no-self-test 2>>"$SL_LOG"
	SL_PID=$LAST_PID
	if ! wait_log "$SL_LOG" 'tproxy: running' 30; then
		tail -20 "$SL_LOG" >&2
		die "sluice did not start"
	fi
}

# names_file FILE: one "svcK.bench.test A" a line; dnsperf cycles through.
names_file() {
	local k
	for k in $(seq "$NAMES"); do printf 'svc%d.bench.test A\n' "$k"; done \
		> "$1"
}

# answers ADDR: "name ttl class type rdata" of every name, sorted, asked
# 50 names per dig.
answers() {
	local -a qs=()
	local k
	for k in $(seq "$NAMES"); do qs+=("svc$k.bench.test" A); done
	printf '%s\n' "${qs[@]}" | paste -d' ' - - | xargs -n 100 \
		ip netns exec "$NS" timeout --foreground 30 dig +time=2 +tries=2 \
		+noall +answer @"$1" 2>&1 | awk 'NF == 5' | sort
}

start_dnsmasq() {
	local args=() name addr
	while read -r name _ _ _ addr; do
		args+=("--host-record=${name%.},$addr")
	done < "$TMP/answers.sluice"
	bg_ns dnsmasq --keep-in-foreground -C /dev/null --no-resolv --no-hosts \
		--user=root --pid-file= --bind-interfaces \
		--listen-address="$DM_ADDR" --port=53 --local-ttl="$TTL" \
		"${args[@]}" 2>"$TMP/dnsmasq.log"
	DM_PID=$LAST_PID
	for _ in $(seq 100); do
		nsx dig +time=1 +tries=1 @"$DM_ADDR" svc1.bench.test A \
			>/dev/null 2>&1 && return 0
		sleep 0.05
	done
	cat "$TMP/dnsmasq.log" >&2
	die "dnsmasq does not answer on $DM_ADDR"
}

flags_of() {	# flags_of ADDR: the header flags for svc1's A
	nsx timeout --foreground 10 dig +time=2 +tries=2 @"$1" svc1.bench.test A 2>&1 |
		sed -n 's/^;; flags: \([a-z ]*\);.*/\1/p'
}

# servers: sluice, then the names' addresses, then dnsmasq with the same;
# both must answer every name identically, authoritatively.
servers() {
	local n
	start_sluice
	answers "$SL_ADDR" > "$TMP/answers.sluice"
	n=$(wc -l < "$TMP/answers.sluice")
	[ "$n" -eq "$NAMES" ] ||
		die "sluice answered $n of $NAMES names: $(head -3 "$TMP/answers.sluice")"
	[ "$(awk '{ print $5 }' "$TMP/answers.sluice" | sort -u | wc -l)" \
		-eq "$NAMES" ] || die "sluice gave two names the same address"
	start_dnsmasq
	answers "$DM_ADDR" > "$TMP/answers.dnsmasq"
	if ! cmp -s "$TMP/answers.sluice" "$TMP/answers.dnsmasq"; then
		diff "$TMP/answers.sluice" "$TMP/answers.dnsmasq" | head >&2
		die "sluice and dnsmasq answer differently"
	fi
	SL_FLAGS=$(flags_of "$SL_ADDR")
	DM_FLAGS=$(flags_of "$DM_ADDR")
	case " $SL_FLAGS " in *" aa "*) ;; *)
		die "sluice's answer is not authoritative (flags: $SL_FLAGS)" ;;
	esac
	case " $DM_FLAGS " in *" aa "*) ;; *)
		die "dnsmasq's answer is not authoritative (flags: $DM_FLAGS)" ;;
	esac
	RULES=$(nsx iptables-legacy-save -t mangle 2>/dev/null | grep -c '^-A')
	note "sluice (pid $SL_PID) and dnsmasq (pid $DM_PID) give the same" \
		"$NAMES answers; e.g. $(head -1 "$TMP/answers.sluice" | tr -s '\t ' ' ')"
}

addr_of() { case $1 in sluice) echo "$SL_ADDR" ;; dnsmasq) echo "$DM_ADDR" ;; esac; }
pid_of() { case $1 in sluice) echo "$SL_PID" ;; dnsmasq) echo "$DM_PID" ;; esac; }

alive() {	# alive SERVER: dies, with the log, when the server has
	local p
	p=$(pid_of "$1")
	kill -0 "$p" 2>/dev/null && return 0
	wait "$p" 2>/dev/null
	note "$1 (pid $p) died, status $?"
	case $1 in
	sluice) tail -20 "$SL_LOG" >&2 ;;
	dnsmasq) tail -20 "$TMP/dnsmasq.log" >&2 ;;
	esac
	die "$1 died during the benchmark"
}

# ---- measurements ----

# udp_drops: datagrams the namespace's kernel dropped for a full socket
# receive buffer (Udp RcvbufErrors).
# shellcheck disable=SC2016 # awk
udp_drops() {
	nsx awk '/^Udp:/ { if (!h) { for (i = 2; i <= NF; i++) c[$i] = i;
		h = 1 } else { print $c["RcvbufErrors"]; exit } }' /proc/net/snmp
}

# children_cpu: CH_CPU, user + system seconds of this shell's reaped
# children (times(1) in this shell: not in a subshell, which has none).
children_cpu() {
	times > "$TMP/times"
	CH_CPU=$(awk 'NR == 2 { t = 0; for (i = 1; i <= 2; i++) {
		split($i, p, "m"); sub(/s$/, "", p[2]); t += p[1] * 60 + p[2] }
		print t }' "$TMP/times")
}

# client OUT SECONDS SERVER ARGS...: dnsperf -l SECONDS ARGS at SERVER,
# its output in OUT. In the background and waited for, so that a signal
# interrupts the wait at once (and the cleanup stops dnsperf); bounded by
# timeout(1).
client() {
	local out=$1 lim=$2 s=$3 pid rc p keep=""
	shift 3
	ip netns exec "$NS" timeout $((lim + 30)) dnsperf -s "$(addr_of "$s")" \
		-d "$TMP/queries" "$@" < /dev/null > "$out" 2>&1 &
	pid=$!
	PIDS="$PIDS $pid"
	wait "$pid"
	rc=$?
	for p in $PIDS; do [ "$p" = "$pid" ] || keep="$keep $p"; done
	PIDS=$keep
	return $rc
}

# dnsperf_run KEY SERVER ARGS...: one dnsperf run at SERVER, recorded
# under metric names KEY_*.
dnsperf_run() {
	local key=$1 s=$2 res out p t0 t1 c0 c1 w0 w1 m0 m1 d0 d1 lim=$D_TIME
	shift 2
	[ "$key" = lat ] && lim=$L_TIME
	p=$(pid_of "$s")
	out="$TMP/dnsperf.$key.$s.out"
	d0=$(udp_drops); t0=$(cpu_ns "$p"); children_cpu; c0=$CH_CPU
	m0=$(cpu_snap); w0=$EPOCHREALTIME
	client "$out" "$lim" "$s" "$@"
	w1=$EPOCHREALTIME; m1=$(cpu_snap)
	children_cpu; c1=$CH_CPU; t1=$(cpu_ns "$p"); d1=$(udp_drops)
	alive "$s"
	res=$(awk '
		/Queries sent:/ { sent = $3 }
		/Queries completed:/ { compl = $3 }
		/Queries lost:/ { lost = $3 }
		/Response codes:/ { sub(/.*Response codes: */, "");
			n = split($0, f, /, */);
			for (i = 1; i <= n; i++) { split(f[i], g, " ");
				if (g[1] != "NOERROR") bad += g[2] } }
		/Run time \(s\):/ { rt = $4 }
		/Queries per second:/ { qps = $4 }
		/Average Latency \(s\):/ { avg = $4; mx = $8; sub(/\)/, "", mx) }
		END { if (qps == "") exit 1;
			print sent, compl, lost + 0, bad + 0, rt, qps, avg, mx }' \
		"$out") || { note "$s: dnsperf failed: $(tail -3 "$out")"; return; }
	local sent compl lost bad rt qps avg mx wall
	read -r sent compl lost bad rt qps avg mx <<<"$res"
	wall=$(awk -v a="$w0" -v b="$w1" 'BEGIN { print b - a }')
	record "${key}_qps" "$s" "$qps"
	record "${key}_avg" "$s" "$(awk -v v="$avg" 'BEGIN { print v * 1e6 }')"
	record "${key}_max" "$s" "$(awk -v v="$mx" 'BEGIN { print v * 1e6 }')"
	record "${key}_lost" "$s" "$lost"
	record "${key}_bad" "$s" "$bad"
	record "${key}_drops" "$s" $((d1 - d0))
	[ "$compl" -gt 0 ] && record "${key}_cpuq" "$s" "$(awk -v t=$((t1 - t0)) \
		-v n="$compl" 'BEGIN { print t / 1e3 / n }')"
	record "${key}_cpu" "$s" "$(awk -v t=$((t1 - t0)) -v w="$wall" \
		'BEGIN { print 100 * t / 1e9 / w }')"
	record "${key}_ccpu" "$s" "$(awk -v a="$c0" -v b="$c1" -v w="$wall" \
		'BEGIN { print 100 * (b - a) / w }')"
	record "${key}_others" "$s" "$(others "$m0" "$m1")"
	note "  $s: $(fmt "$qps" 0) q/s, mean $(fmt "$avg" 6) s," \
		"max $(fmt "$mx" 6) s, sent $sent, lost $lost, drops" \
		"$((d1 - d0)), other rcodes $bad, run $(fmt "$rt" 1) s"
}

# The runs: "KEY|label|dnsperf arguments".
runs() {
	local t
	for t in $D_THREADS; do
		echo "t$t|-T $t -c $D_CLIENTS|-l $D_TIME -c $D_CLIENTS -T $t -q $D_OUT"
	done
	[ "$L_QPS" -gt 0 ] &&
		echo "lat|-Q $L_QPS|-l $L_TIME -c 1 -T 1 -q $D_OUT -Q $L_QPS"
	return 0
}

# ---- profile (BENCH_PROFILE=DIR) ----

profile() {
	local s p key args
	mkdir -p "$PROFILE" || die "cannot create $PROFILE"
	command -v perf >/dev/null || ensure_pkgs linux-perf
	command -v strace >/dev/null || ensure_pkgs strace
	IFS='|' read -r key _ args <<<"$(runs | head -1)"
	for s in $SERVERS; do
		p=$(pid_of "$s")
		if perf record -q -o /dev/null -- true >/dev/null 2>&1; then
			note "profile $s: perf record -g -p $p"
			perf record -q -g -F 2000 -o "$PROFILE/$s.data" -p "$p" \
				-- sleep "$D_TIME" >/dev/null 2>&1 &
			local pp=$!
			# shellcheck disable=SC2086 # arguments
			client "$PROFILE/$s.perf.dnsperf" "$D_TIME" "$s" $args
			wait "$pp"
			perf report -i "$PROFILE/$s.data" --stdio --no-children \
				--sort dso,sym -g none --percent-limit 0.5 \
				2>/dev/null | grep -v '^#' | grep . \
				> "$PROFILE/$s.flat.txt"
			perf report -i "$PROFILE/$s.data" --stdio --children \
				--sort sym -g none 2>/dev/null |
				grep -E '__x64_sys_|do_syscall_64' | head -25 \
				> "$PROFILE/$s.syscalls.txt"
		else
			note "perf record does not work here; no perf profile"
		fi
		note "profile $s: strace -c -f -p $p for 5 s"
		timeout 30 strace -c -f -o "$PROFILE/$s.strace" -p "$p" \
			2>/dev/null &
		local st=$!
		sleep 0.5
		client "$PROFILE/$s.strace.dnsperf" 5 "$s" -l 5 -c "$D_CLIENTS" \
			-T 1 -q "$D_OUT"
		kill -INT "$st" 2>/dev/null
		wait "$st" 2>/dev/null
	done
	note "profiles in $PROFILE (*.flat.txt, *.syscalls.txt, *.strace," \
		"perf report -i *.data for more)"
}

# ---- report ----

row() {	# row LABEL METRIC DECIMALS [noratio]
	local a b r
	a=$(med "$2" sluice); b=$(med "$2" dnsmasq)
	r=$(ratio "$a" "$b")
	[ -n "${4:-}" ] && r="-"
	echo "| $1 | $(fmt "$a" "$3") | $(fmt "$b" "$3") | $r |"
}

report() {
	local key label args s m v line cpu
	cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
	echo "## scripts/bench dns, $(date -u '+%Y-%m-%d %H:%M UTC')"
	echo
	echo "    kernel $(uname -r), $(nproc) CPUs ($cpu), load $(cut -d' ' -f1-3 /proc/loadavg)"
	if [ -n "${BENCH_SLUICE:-}" ]; then
		echo "    $("$SLUICE" version 2>&1 | head -1) (BENCH_SLUICE=$BENCH_SLUICE)"
	else
		echo "    $("$SLUICE" version 2>&1 | head -1) (build/sluice, tree at" \
			"$(cd "$TOP" && git describe --always --dirty 2>/dev/null ||
			echo '?'))"
	fi
	echo "    $(dnsmasq --version 2>&1 | head -1 | cut -d' ' -f1-3)," \
		"--host-record per name, --local-ttl=$TTL"
	echo "    dnsperf $(dnsperf -h 2>&1 | awk '/^Version/ { print $2 }')," \
		"UDP, type A, $NAMES names svcK.bench.test in turn;" \
		"answers: $TTL s TTL, flags \"$SL_FLAGS\" (sluice), \"$DM_FLAGS\" (dnsmasq)"
	echo "    the namespace holds sluice's $RULES mangle rules for the names," \
		"which every packet walks: both servers pay for them"
	echo
	echo "Medians of $REPS rounds (the servers take turns); sluice/dnsmasq:" \
		"above 1 is better for queries/s, below 1 for latency, CPU and" \
		"memory. Latency under load is mostly queueing (-q $D_OUT" \
		"outstanding); the -Q $L_QPS run shows the service time."
	echo
	echo "| metric | sluice | dnsmasq | sluice/dnsmasq |"
	echo "|---|--:|--:|--:|"
	while IFS='|' read -r key label args; do
		if [ "$key" = lat ]; then
			row "latency mean, µs ($label)" lat_avg 0
			row "latency max, µs ($label)" lat_max 0
			row "server CPU per query, µs ($label)" lat_cpuq 2
			continue
		fi
		row "queries/s ($label, no rate limit)" "${key}_qps" 0
		row "latency mean, µs ($label)" "${key}_avg" 0
		row "latency max, µs ($label)" "${key}_max" 0
		row "lost queries ($label)" "${key}_lost" 0 noratio
		row "server CPU per query, µs ($label)" "${key}_cpuq" 2
		row "server CPU, % of one ($label)" "${key}_cpu" 0 noratio
		row "dnsperf CPU, % of one ($label)" "${key}_ccpu" 0 noratio
	done < <(runs)
	row "peak RSS (VmHWM), MiB" rss 1
	echo
	echo "Command: \`scripts/bench dns\` (or scripts/bench-dns.sh), with" \
		"BENCH_REPS=$REPS BENCH_DNS_NAMES=$NAMES BENCH_DNS_TIME=$D_TIME" \
		"BENCH_DNS_CLIENTS=$D_CLIENTS BENCH_DNS_THREADS=\"$D_THREADS\"" \
		"BENCH_DNS_OUTSTANDING=$D_OUT BENCH_DNS_LAT_QPS=$L_QPS" \
		"BENCH_DNS_LAT_TIME=$L_TIME; each run is"
	echo
	while IFS='|' read -r key label args; do
		echo "    dnsperf -s ADDR -d names.txt $args"
	done < <(runs)
	echo
	echo "against sluice (ADDR $SL_ADDR) and dnsmasq ($DM_ADDR), names.txt" \
		"listing \"svcK.bench.test A\" for K = 1..$NAMES."
	# Warnings: anything lost or answered otherwise, and noisy runs.
	for s in $SERVERS; do
		while IFS='|' read -r key label args; do
			for m in lost bad drops; do
				v=$(total "${key}_$m" "$s")
				[ "${v%.*}" -gt 0 ] || continue
				case $m in
				lost) echo; echo "WARNING: $s: $v queries lost ($label, all rounds)." ;;
				bad) echo; echo "WARNING: $s: $v answers not NOERROR ($label, all rounds)." ;;
				drops) echo; echo "NOTE: $s: the kernel dropped $v queries on a full receive buffer ($label, all rounds)." ;;
				esac
			done
		done < <(runs)
	done
	v=0
	for m in "${!RES[@]}"; do
		case $m in *_others\|*) ;; *) continue ;; esac
		for line in ${RES[$m]}; do
			v=$(awk -v a="$v" -v b="$line" 'BEGIN { print (b > a) ? b : a }')
		done
	done
	if awk -v w="$v" -v l="$NOISE" 'BEGIN { exit !(w > l) }'; then
		echo
		echo "WARNING: other processes on this machine took up to" \
			"$(fmt "$v" 0)% of its CPU during some runs; those figures" \
			"are skewed. Run again on a quiet machine."
	fi
	echo
	echo "Every run (in round order):"
	echo
	while IFS='|' read -r key label args; do
		for m in qps avg max lost bad drops cpuq cpu ccpu others; do
			for s in $SERVERS; do
				v=${RES["${key}_$m|$s"]:-}
				# shellcheck disable=SC2086 # numbers
				[ -n "$v" ] && printf '    %-11s %-8s %s\n' \
					"${key}_$m" "$s" "$(printf '%s\n' $v |
					awk '{ printf "%.6g ", $1 }')"
			done
		done
	done < <(runs)
	for s in $SERVERS; do
		printf '    %-11s %-8s %s\n' rss "$s" "$(med rss "$s")"
	done
}

# ---- main ----

main() {
	local r key label args s i order t0
	case ${1:-} in
	-h | --help) sed -n '3,/^# shellcheck/p' "$0" | sed '$d; s/^# \{0,1\}//'
		exit 0 ;;
	dns) ;;		# scripts/bench dns passing its suite along
	'') ;;
	*) die "usage: scripts/bench-dns.sh [--help]" 64 ;;
	esac
	posint BENCH_REPS "$REPS"
	posint BENCH_DNS_NAMES "$NAMES"
	posint BENCH_DNS_TIME "$D_TIME"
	posint BENCH_DNS_CLIENTS "$D_CLIENTS"
	posint BENCH_DNS_OUTSTANDING "$D_OUT"
	posint BENCH_DNS_LAT_QPS "$L_QPS" 0ok
	posint BENCH_DNS_LAT_TIME "$L_TIME"
	posint BENCH_QUIET_WAIT "$QUIET_WAIT" 0ok
	for i in $D_THREADS; do posint BENCH_DNS_THREADS "$i"; done
	[ "$NAMES" -le 2000 ] || die "BENCH_DNS_NAMES: at most 2000" 64
	[ "$(id -u)" -eq 0 ] ||
		die "needs root (network namespace, iptables, port 53)" 77
	bench_lock
	trap cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	trap 'exit 129' HUP
	t0=$SECONDS
	TMP=$(mktemp -d /tmp/sluice-bench-dns.XXXXXX) || die "mktemp"
	ensure_pkgs dnsperf dnsmasq-base dnsutils iproute2 iptables procps \
		util-linux coreutils
	ensure_sluice
	cg_setup
	ns_up
	nsx iptables-legacy -t mangle -S >/dev/null 2>&1 ||
		die "iptables-legacy mangle table unavailable" 69
	names_file "$TMP/queries"
	servers
	for r in $(seq "$REPS"); do
		note "round $r of $REPS"
		wait_quiet
		if [ $((r % 2)) = 1 ]; then order="sluice dnsmasq"
		else order="dnsmasq sluice"; fi
		while IFS='|' read -r key label args; do
			note " dnsperf $args"
			for s in $order; do
				# shellcheck disable=SC2086 # arguments
				dnsperf_run "$key" "$s" $args
			done
		done < <(runs)
	done
	for s in $SERVERS; do
		record rss "$s" "$(awk -v k="$(peak_rss_kib "$(pid_of "$s")")" \
			'BEGIN { print k / 1024 }')"
	done
	# Still right after the load?
	answers "$SL_ADDR" | cmp -s - "$TMP/answers.sluice" ||
		note "WARNING: sluice's answers changed under load"
	nsx "$SLUICE" --state-dir "$TMP/state" dump > "$TMP/dump" 2>&1
	note "sluice's counters: $(grep -iE 'udp|queries|answered|malformed|servfail' \
		"$TMP/dump" | tr -s ' \n' ' ' | cut -c1-300)"
	note "measured in $((SECONDS - t0)) s"
	[ -n "$PROFILE" ] && profile
	stop_pid "$SL_PID" || note "sluice did not stop in 10 s"
	[ "$STOP_STATUS" = 0 ] || note "WARNING: sluice exited $STOP_STATUS on SIGTERM"
	grep -E 'warn|error|fatal' "$SL_LOG" | head -5 | sed 's/^/sluice: /' >&2
	stop_pid "$DM_PID"
	report
}

main "$@"
