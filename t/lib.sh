# SPDX-License-Identifier: MIT
# Shared harness for the integration tests: TAP output, throwaway network
# namespaces, servers and sluice itself. Everything a test creates is
# registered here and removed on exit, whether the test passed or not.
# Traffic only ever goes to loopback or to addresses inside these namespaces.

set -u

SLUICE=${SLUICE:-$(pwd)/sluice}
TOP_SRCDIR=${TOP_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
T_NUM=0
T_FAILED=0
T_PREFIX="sl$$"
T_NETNS=""
T_PIDS=""
T_TMP=$(mktemp -d /tmp/sluice-test.XXXXXX)
chmod 755 "$T_TMP"	# servers' unprivileged workers read files here
# sluice must never reach the machine's systemd-resolved from a test; tests
# that use the nameserver give their namespace its own resolv.conf and hosts
# (t/dns-lib.sh).
export SLUICE_SYSTEMD_RUN="$T_TMP/no-systemd" SLUICE_SYSTEMCTL=false
# Clients talk to the test's own addresses, never through a proxy.
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY
export no_proxy='*' NO_PROXY='*'

# ---- TAP ----

skip_all() {
	echo "1..0 # SKIP $*"
	rm -rf "$T_TMP"
	exit 0
}

plan() { echo "1..$1"; }
diag() { printf '%s\n' "$@" | sed 's/^/# /'; }

ok() {	# ok CONDITION-EXIT-STATUS DESCRIPTION
	T_NUM=$((T_NUM + 1))
	if [ "$1" -eq 0 ]; then
		echo "ok $T_NUM - $2"
	else
		echo "not ok $T_NUM - $2"
		T_FAILED=$((T_FAILED + 1))
	fi
}

# is GOT WANT DESCRIPTION
is() {
	if [ "$1" = "$2" ]; then
		ok 0 "$3"
	else
		ok 1 "$3"
		diag "got:  '$1'" "want: '$2'"
	fi
}

# same_state BEFORE AFTER DESCRIPTION: like is, with a diff when they differ.
same_state() {
	if [ "$1" = "$2" ]; then
		ok 0 "$3"
	else
		ok 1 "$3"
		diff -u <(printf '%s\n' "$1") <(printf '%s\n' "$2") |
			while IFS= read -r l; do diag "$l"; done
	fi
}

# like GOT REGEX DESCRIPTION
like() {
	if printf '%s' "$1" | grep -Eq -- "$2"; then
		ok 0 "$3"
	else
		ok 1 "$3"
		diag "got:  '$1'" "want match: /$2/"
	fi
}

unlike() {
	if printf '%s' "$1" | grep -Eq -- "$2"; then
		ok 1 "$3"
		diag "got:  '$1'" "want no match: /$2/"
	else
		ok 0 "$3"
	fi
}

# ---- prerequisites ----

require_root() {
	[ "$(id -u)" -eq 0 ] || skip_all "integration test needs root (network namespaces)"
}

require_cmd() {
	for c in "$@"; do
		command -v "$c" >/dev/null 2>&1 || skip_all "needs $c"
	done
}

require_netns() {
	require_root
	require_cmd ip iptables-legacy-save
	ip netns add "${T_PREFIX}probe" 2>/dev/null ||
		skip_all "cannot create network namespaces here"
	ip netns del "${T_PREFIX}probe"
}

# ---- cleanup ----

# A sanitizer report in any daemon log fails the test, whatever its
# assertions said: ASan/UBSan/LSan write to the daemon's stderr.
t_sanitizer_scan() {
	local hits
	[ -d "$T_TMP" ] || return 0
	hits=$(grep -rlE 'ERROR: (Address|Leak)Sanitizer|runtime error:|SUMMARY: [A-Za-z]+Sanitizer' \
		--include='*.log' "$T_TMP" 2>/dev/null)
	[ -z "$hits" ] && return 0
	for f in $hits; do
		grep -m1 -A30 -E 'ERROR: [A-Za-z]+Sanitizer|runtime error:' "$f" |
			while IFS= read -r l; do diag "$l"; done
	done
	echo "Bail out! sanitizer report in $(echo $hits | sed "s|$T_TMP/||g")"
}

t_cleanup() {
	for p in $T_PIDS; do
		kill "$p" 2>/dev/null
	done
	sleep 0.1
	for p in $T_PIDS; do
		kill -9 "$p" 2>/dev/null
	done
	wait 2>/dev/null
	for n in $T_NETNS; do
		ip netns pids "$n" 2>/dev/null | xargs -r kill -9 2>/dev/null
		ip netns del "$n" 2>/dev/null
	done
	t_sanitizer_scan
	rm -rf "$T_TMP"
}

t_exit() {
	t_cleanup
	[ "$T_FAILED" -eq 0 ]
}
trap 't_cleanup' EXIT
trap 't_cleanup; exit 1' INT TERM

done_testing() {
	trap - EXIT
	t_cleanup
	[ "$T_FAILED" -eq 0 ] || exit 1
	exit 0
}

# bg CMD...: runs CMD in the background, remembered for cleanup; LAST_PID.
bg() {
	"$@" &
	LAST_PID=$!
	T_PIDS="$T_PIDS $LAST_PID"
}

# bg_ns NS CMD...: the same inside namespace NS (ip netns exec execs CMD,
# so LAST_PID is CMD itself and signals reach it).
bg_ns() {
	n="${T_PREFIX}$1"; shift
	ip netns exec "$n" "$@" &
	LAST_PID=$!
	T_PIDS="$T_PIDS $LAST_PID"
}

# ---- namespaces ----

# ns_new NAME: creates namespace $T_PREFIX-NAME with lo up; sets NS_NAME.
ns_new() {
	n="${T_PREFIX}$1"
	ip netns add "$n" || return 1
	T_NETNS="$T_NETNS $n"
	ip -n "$n" link set lo up
	# No duplicate address detection: link-local addresses (and their
	# routes) appear at once, not a second later in the middle of a test.
	ip netns exec "$n" sysctl -qw net.ipv6.conf.all.accept_dad=0 \
		net.ipv6.conf.default.accept_dad=0 2>/dev/null
	# The mangle table exists on any machine where it was ever used; make
	# it exist here too so before/after snapshots compare like for like.
	ip netns exec "$n" iptables-legacy -t mangle -S >/dev/null 2>&1
	ip netns exec "$n" ip6tables-legacy -t mangle -S >/dev/null 2>&1
	eval "NS_$1=$n"
}

# ns_link A ADDR_A B ADDR_B: a veth pair between namespaces A and B.
ns_link() {
	a="${T_PREFIX}$1"; b="${T_PREFIX}$3"
	ia="v$1$3"; ib="v$3$1"
	ip link add "$ia" netns "$a" type veth peer name "$ib" netns "$b" ||
		return 1
	ip -n "$a" addr add "$2" dev "$ia"
	ip -n "$b" addr add "$4" dev "$ib"
	ip -n "$a" link set "$ia" up
	ip -n "$b" link set "$ib" up
}

nsx() {	# nsx NAME CMD...: run CMD in namespace NAME
	n="${T_PREFIX}$1"; shift
	ip netns exec "$n" "$@"
}

# The kernel state that a clean stop must restore, normalised for counters.
kernel_state() {
	nsx "$1" sh -c '
		iptables-legacy-save 2>/dev/null; ip6tables-legacy-save 2>/dev/null
		ip rule; ip -6 rule 2>/dev/null
		ip route show table all; ip -6 route show table all 2>/dev/null
	' | grep -v '^#' | sed 's/\[[0-9]*:[0-9]*\]/[-]/'
}

# settled_state NS: kernel_state once it stops changing; new interfaces get
# their IPv6 link-local routes a moment after they come up.
settled_state() {
	prev=$(kernel_state "$1")
	i=0 same=0
	while [ $i -lt 50 ] && [ $same -lt 5 ]; do
		sleep 0.1
		cur=$(kernel_state "$1")
		if [ "$cur" = "$prev" ]; then same=$((same + 1)); else same=0; fi
		prev=$cur
		i=$((i + 1))
	done
	printf '%s\n' "$cur"
}

# ---- servers ----

# http_server NS ADDR PORT BODY: a tiny nginx answering BODY on ADDR:PORT.
# An IPv6 server's files are in nginx-NS-PORT-6, so both families fit.
http_server() {
	d="$T_TMP/nginx-$1-$3"
	case $2 in *:*) d="$d-6" ;; esac
	mkdir -p "$d/www" "$d/tmp"
	printf '%s\n' "$4" > "$d/www/index.html"
	cat > "$d/nginx.conf" <<-EOF
	daemon off;
	worker_processes 1;
	pid $d/nginx.pid;
	error_log $d/error.log;
	events { worker_connections 1024; }
	http {
		access_log off;
		client_body_temp_path $d/tmp;
		proxy_temp_path $d/tmp;
		fastcgi_temp_path $d/tmp;
		uwsgi_temp_path $d/tmp;
		scgi_temp_path $d/tmp;
		server { listen $2:$3; root $d/www; }
	}
	EOF
	bg_ns "$1" nginx -c "$d/nginx.conf" -e "$d/error.log"
	wait_port "$1" "$2" "$3"
}

# wait_port NS ADDR PORT: until something listens there (5 s at most).
# ADDR may be an IPv6 address in brackets, as nginx wants it.
wait_port() {
	local h=${2#[}
	h=${h%]}
	i=0
	while [ $i -lt 100 ]; do
		nsx "$1" bash -c "exec 3<>/dev/tcp/$h/$3" 2>/dev/null && return 0
		i=$((i + 1))
		sleep 0.05
	done
	diag "nothing listens on $2:$3 in $1"
	return 1
}

# ---- sluice ----

# sluice_start NS CONFIG [ARGS...]: starts `sluice -v 4 tproxy` in NS with
# its own state dir; waits for it to run. Sets SL_PID, SL_LOG, SL_STATE.
sluice_start() {
	ns=$1; conf=$2; shift 2
	SL_STATE="$T_TMP/state-$ns"
	SL_LOG="$T_TMP/sluice-$ns.log"
	: > "$SL_LOG"
	bg_ns "$ns" "$SLUICE" -v 4 -c "$conf" --state-dir "$SL_STATE" \
		"$@" tproxy 2>>"$SL_LOG"
	SL_PID=$LAST_PID
	wait_log "$SL_LOG" 'tproxy: running' 10
}

# wait_log FILE REGEX SECONDS
wait_log() {
	i=0
	while [ $i -lt $(($3 * 20)) ]; do
		grep -Eq -- "$2" "$1" 2>/dev/null && return 0
		i=$((i + 1))
		sleep 0.05
	done
	diag "no /$2/ in $1 after $3 s; log follows:"
	sed 's/^/    /' "$1" | tail -30 | while IFS= read -r l; do diag "$l"; done
	return 1
}

# pid_stop PID [SIGNAL]: signals PID and waits for it to exit (10 s);
# its exit status in STOP_STATUS; fails if it is still running.
pid_stop() {
	local i=0
	kill -"${2:-TERM}" "$1" 2>/dev/null
	while kill -0 "$1" 2>/dev/null && [ $i -lt 200 ]; do
		i=$((i + 1))
		sleep 0.05
	done
	wait "$1" 2>/dev/null
	STOP_STATUS=$?
	! kill -0 "$1" 2>/dev/null
}

# sluice_stop [SIGNAL]: pid_stop for SL_PID; its status in SL_STATUS.
sluice_stop() {
	pid_stop "$SL_PID" "${1:-TERM}"
	local rc=$?
	SL_STATUS=$STOP_STATUS
	return $rc
}

# write_conf FILE: the config from stdin, for a test.
write_conf() {
	cat > "$1"
}
