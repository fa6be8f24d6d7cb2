# SPDX-License-Identifier: MIT
# Helpers for the nameserver tests (t/3x-dns-*.t), on top of t/lib.sh.
#
# The resolver setup edits /etc/resolv.conf and /etc/hosts, so a test must
# never let sluice see the machine's own. `ip netns exec NS` (and so nsx,
# bg_ns and sluice_start) bind-mounts /etc/netns/NS/FILE over /etc/FILE in
# a mount namespace of its own when that file exists: dns_ns_files makes
# temporary ones for a test's namespace, checks that they are what the
# namespace sees, and removes them at exit. systemd-resolved is kept out
# of reach (SLUICE_SYSTEMD_RUN points at an empty directory).

DNS_NS_DIRS=""
export SLUICE_SYSTEMD_RUN="$T_TMP/no-systemd" SLUICE_SYSTEMCTL=false
unset SLUICE_RESOLV_CONF SLUICE_HOSTS

# t_cleanup runs from lib.sh's traps and done_testing: extend it.
eval "dns_orig_$(declare -f t_cleanup)"
t_cleanup() {
	dns_orig_t_cleanup
	for d in $DNS_NS_DIRS; do
		rm -rf "$d"
	done
	DNS_NS_DIRS=""
	rmdir /etc/netns 2>/dev/null
}

# dns_ns_files NAME RESOLV-TEXT HOSTS-TEXT: the namespace's own
# /etc/resolv.conf and /etc/hosts (printf formats: odd bytes allowed).
dns_ns_files() {
	local d want got
	d="/etc/netns/${T_PREFIX}$1"
	[ -e "$d" ] && skip_all "$d exists already"
	mkdir -p "$d" || skip_all "cannot create $d"
	DNS_NS_DIRS="$DNS_NS_DIRS $d"
	printf "$2" > "$d/resolv.conf"
	printf "$3" > "$d/hosts"
	# What the namespace sees must be these files, or nothing may run.
	want="$(stat -c %d:%i "$d/resolv.conf") $(stat -c %d:%i "$d/hosts")"
	got=$(nsx "$1" sh -c 'echo "$(stat -c %d:%i /etc/resolv.conf) $(stat -c %d:%i /etc/hosts)"')
	[ "$got" = "$want" ] ||
		skip_all "ip netns exec does not bind-mount /etc/netns files here"
	DNS_RESOLV="$d/resolv.conf"
	DNS_HOSTS="$d/hosts"
}

# dns_upstream NS ADDR ARGS...: a dnsmasq on ADDR:53 in NS, answering from
# ARGS only (no /etc/resolv.conf, no /etc/hosts); its log in $T_TMP.
dns_upstream() {
	local ns=$1 addr=$2 i
	shift 2
	bg_ns "$ns" dnsmasq --keep-in-foreground -C /dev/null --no-resolv \
		--no-hosts --user=root --pid-file= --bind-interfaces \
		--listen-address="$addr" --port=53 --log-queries \
		--log-facility="$T_TMP/dnsmasq-$addr.log" "$@"
	i=0
	while [ $i -lt 100 ]; do
		nsx "$ns" dig +time=1 +tries=1 @"$addr" . SOA >/dev/null 2>&1 &&
			return 0
		i=$((i + 1))
		sleep 0.05
	done
	diag "dnsmasq on $addr does not answer"
	return 1
}

# q NS ARGS...: dig at sluice's nameserver, short answers.
q() {
	local ns=$1
	shift
	nsx "$ns" dig +time=2 +tries=1 @127.0.0.1 "$@" 2>&1
}

# status NS ARGS...: the rcode of a dig query ("NOERROR", "REFUSED", ...).
status() {
	q "$@" | sed -n 's/.*status: \([A-Z]*\),.*/\1/p'
}

# flags NS ARGS...: the header flags of a dig query ("qr aa rd").
flags() {
	q "$@" | sed -n 's/^;; flags: \([a-z ]*\);.*/\1/p'
}
