# SPDX-License-Identifier: MIT
# Helpers for the tunnel tests (t/4x-*.t), on top of t/lib.sh: several
# sluice daemons at once (a tunneller and a host, each in its namespace),
# identities made with `sluice pki`, timing and sanitizer checks.

# pki_make DIR NAME...: a CA in DIR and an identity per NAME.
pki_make() {
	local d=$1 n
	shift
	"$SLUICE" pki init "$d" >/dev/null || return 1
	for n in "$@"; do
		"$SLUICE" pki issue "$d" "$n" >/dev/null || return 1
	done
}

# identity_yaml DIR NAME [CADIR]: the identity section for NAME.
identity_yaml() {
	printf 'identity:\n  cert: %s/%s.crt\n  key: %s/%s.key\n  ca: %s/ca.crt\n' \
		"$1" "$2" "$1" "$2" "${3:-$1}"
}

# daemon_start TAG NS CONF ARGS...: `sluice -v 4 -c CONF --state-dir DIR
# ARGS...` in namespace NS (through $SL_AS, e.g. setpriv, when set), its
# stderr in $T_TMP/TAG.log; waits until it runs. Sets TAG_PID, TAG_LOG,
# TAG_STATE (the state dir, made beforehand so that $SL_AS may own it)
# and TAG_FROM (the log's first line of this start).
daemon_start() {
	local tag=$1 ns=$2 conf=$3 log state pid
	shift 3
	log="$T_TMP/$tag.log"
	state="$T_TMP/state-$tag"
	: >> "$log"
	eval "${tag}_FROM=$(($(wc -l < "$log") + 1))"
	bg_ns "$ns" ${SL_AS:-} "$SLUICE" -v 4 -c "$conf" --state-dir "$state" \
		"$@" 2>>"$log"
	pid=$LAST_PID
	eval "${tag}_PID=$pid ${tag}_LOG=\$log ${tag}_STATE=\$state"
	# The marker must be this start's: a restart appends to the log.
	daemon_wait_log "$log" "running \(pid $pid," 10 "$pid"
}

# daemon_wait_log FILE REGEX SECONDS PID: like wait_log, but gives up at
# once when PID has exited.
daemon_wait_log() {
	local i=0
	while [ $i -lt $(($3 * 20)) ]; do
		grep -Eq -- "$2" "$1" 2>/dev/null && return 0
		kill -0 "$4" 2>/dev/null || break
		i=$((i + 1))
		sleep 0.05
	done
	grep -Eq -- "$2" "$1" 2>/dev/null && return 0
	diag "no /$2/ in $1; log follows:"
	tail -30 "$1" | while IFS= read -r l; do diag "    $l"; done
	return 1
}

# daemon_stop TAG [SIGNAL]: signals TAG's daemon and waits for it to exit
# (10 s); its exit status in STOP_STATUS. Fails if it is still running.
daemon_stop() {
	local pid
	eval "pid=\$${1}_PID"
	pid_stop "$pid" "${2:-TERM}"
}

# dump_of TAG NS: `sluice dump` of TAG's daemon.
dump_of() {
	local state
	eval "state=\$${1}_STATE"
	nsx "$2" "$SLUICE" --state-dir "$state" dump 2>&1
}

# now_ms, since_ms START: wall-clock milliseconds.
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
since_ms() { echo $(( $(now_ms) - $1 )); }

# below N LIMIT DESCRIPTION: ok if N < LIMIT (numbers).
below() {
	if [ -n "$1" ] && [ "$1" -lt "$2" ] 2>/dev/null; then
		ok 0 "$3"
	else
		ok 1 "$3"
		diag "got:  '$1'" "want: below $2"
	fi
}

# at_least N MIN DESCRIPTION
at_least() {
	if [ -n "$1" ] && [ "$1" -ge "$2" ] 2>/dev/null; then
		ok 0 "$3"
	else
		ok 1 "$3"
		diag "got:  '$1'" "want: at least $2"
	fi
}

# sanitizer_clean DESCRIPTION LOG...: no AddressSanitizer, LeakSanitizer
# or UBSan report, nor a libevent warning, in the daemons' logs (reports
# go to their stderr).
sanitizer_clean() {
	local what=$1 hits
	shift
	# libevent's own complaints ("[warn] Epoll ADD ...") count too.
	hits=$(grep -HE 'ERROR: (Address|Leak)Sanitizer|Sanitizer has encountered|runtime error:|SUMMARY: [A-Za-z]+Sanitizer|Sanitizer:DEADLYSIGNAL|^\[(warn|err)\] ' "$@" 2>/dev/null)
	if [ -z "$hits" ]; then
		ok 0 "$what"
	else
		ok 1 "$what"
		printf '%s\n' "$hits" | head -20 | while IFS= read -r l; do diag "$l"; done
		for f in "$@"; do
			grep -qE 'Sanitizer|runtime error:' "$f" 2>/dev/null || continue
			diag "--- $f"
			grep -A40 -E 'ERROR: [A-Za-z]+Sanitizer|runtime error:' "$f" |
				head -80 | while IFS= read -r l; do diag "$l"; done
		done
	fi
}

# http_server_logged NS ADDR PORT BODY [DIRECTIVES]: http_server with an
# access log, $T_TMP/nginx-NS-PORT/access.log, to tell whether a request
# arrived, and DIRECTIVES in its server block.
http_server_logged() {
	local d="$T_TMP/nginx-$1-$3"
	mkdir -p "$d/www" "$d/tmp"
	printf '%s\n' "$4" > "$d/www/index.html"
	: > "$d/access.log"
	cat > "$d/nginx.conf" <<-EOF2
	daemon off;
	worker_processes 1;
	pid $d/nginx.pid;
	error_log $d/error.log;
	events { worker_connections 1024; }
	http {
		access_log $d/access.log;
		client_body_temp_path $d/tmp;
		proxy_temp_path $d/tmp;
		fastcgi_temp_path $d/tmp;
		uwsgi_temp_path $d/tmp;
		scgi_temp_path $d/tmp;
		server { listen $2:$3; root $d/www; ${5:-} }
	}
	EOF2
	bg_ns "$1" nginx -c "$d/nginx.conf" -e "$d/error.log"
	wait_port "$1" "$2" "$3"
}

# requests_seen NS PORT: lines in that server's access log.
requests_seen() {
	wc -l < "$T_TMP/nginx-$1-$2/access.log"
}

# timed_curl NS URL: runs curl in NS (5 s at most); sets CURL_RC,
# CURL_OUT (body and errors) and CURL_MS.
timed_curl() {
	local t0
	t0=$(now_ms)
	CURL_OUT=$(nsx "$1" curl -sS --max-time 5 "$2" 2>&1)
	CURL_RC=$?
	CURL_MS=$(since_ms "$t0")
}

# log_of TAG: TAG's log since its daemon's latest start.
log_of() {
	local from log
	eval "from=\$${1}_FROM log=\$${1}_LOG"
	tail -n "+$from" "$log"
}
