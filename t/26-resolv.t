#!/bin/bash
# SPDX-License-Identifier: MIT
# Resolver setup where /etc/resolv.conf and /etc/hosts are bind mounts, as
# in containers: rename over them fails with EBUSY, so they are written in
# place, and restored byte for byte after a stop and after a crash. All of
# it in a private mount namespace, on a copy of /etc: the machine's own
# files are never touched.

if [ -z "${SLUICE_IN_NS:-}" ]; then
	skip() { echo "1..0 # SKIP $*"; exit 0; }
	[ "$(id -u)" -eq 0 ] || skip "needs root (mount namespaces)"
	command -v unshare >/dev/null 2>&1 || skip "needs unshare"
	unshare -m -n true 2>/dev/null || skip "cannot create mount namespaces here"
	SLUICE_IN_NS=1 exec unshare -m -n --propagation private bash "$0" "$@"
fi

. "${TOP_SRCDIR:-$(dirname "$0")/..}/t/lib.sh"

TOOL="${TOP_BUILDDIR:-$(pwd)}/t/unit_resolv"
[ -x "$TOOL" ] || skip_all "needs t/unit_resolv (make check builds it)"
# Nothing in this namespace is seen outside it.
mount --make-rprivate / || skip_all "cannot make mounts private"

ETC="$T_TMP/etc"
STATE="$T_TMP/state"
mkdir -p "$STATE"
cp -a /etc "$ETC" 2>/dev/null || skip_all "cannot copy /etc"
mount --bind "$ETC" /etc || skip_all "cannot bind-mount over /etc"
# From here on /etc must be the copy, or nothing below may run.
[ "$(stat -c %d:%i /etc)" = "$(stat -c %d:%i "$ETC")" ] ||
	skip_all "/etc is not the copy after mounting it"
MOUNTS="/etc"
umount_all() {
	for m in $MOUNTS; do umount -l "$m" 2>/dev/null; done
	MOUNTS=""
}
trap 'umount_all; t_cleanup' EXIT

# The files the container runtime would bind-mount, odd bytes included.
printf 'search corp.test\r\n\tnameserver 10.0.0.1  \noptions edns0\nnameserver 10.0.0.2' \
	> "$T_TMP/resolv.conf"
printf '127.0.0.1 localhost\n::1 localhost ip6-localhost' > "$T_TMP/hosts"
cp "$T_TMP/resolv.conf" "$T_TMP/resolv.conf.want"
cp "$T_TMP/hosts" "$T_TMP/hosts.want"
# The copy's resolv.conf may be a symlink into /run: replace, never follow.
rm -f /etc/resolv.conf /etc/hosts
echo "underneath" > /etc/resolv.conf
echo "underneath" > /etc/hosts
mount --bind "$T_TMP/resolv.conf" /etc/resolv.conf &&
	mount --bind "$T_TMP/hosts" /etc/hosts ||
	skip_all "cannot bind-mount files"
MOUNTS="/etc/resolv.conf /etc/hosts /etc"

unset SLUICE_RESOLV_CONF SLUICE_HOSTS
export SLUICE_SYSTEMD_RUN="$T_TMP/no-systemd" SLUICE_SYSTEMCTL=false

plan 19

same_bytes() {	# same_bytes FILE WANT-FILE DESCRIPTION
	if cmp -s "$1" "$2"; then
		ok 0 "$3"
	else
		ok 1 "$3"
		diag "got:  $(od -c "$1" | head -5)" "want: $(od -c "$2" | head -5)"
	fi
}

ino=$(stat -c %i /etc/resolv.conf)
out=$("$TOOL" setup auto 127.0.0.1:53 "$STATE" 2>"$T_TMP/log")
is "$out" "resolv.conf" "auto picks resolv.conf without systemd-resolved"
like "$(cat "$T_TMP/log")" "mount point: writing it in place" \
	"rename fails on the bind mount: written in place"
{ printf '# sluice: begin (removed when sluice stops)\nnameserver 127.0.0.1\n# sluice: end\n'
  cat "$T_TMP/resolv.conf.want"; } > "$T_TMP/with-block"
same_bytes /etc/resolv.conf "$T_TMP/with-block" "our nameserver comes first"
is "$(stat -c %i /etc/resolv.conf)" "$ino" "the same file, still the mount"
is "$(ls -A /etc | grep -c sluice-)" 0 "no temporary file is left in /etc"

"$TOOL" restore "$STATE" 2>>"$T_TMP/log"
ok $? "restore"
same_bytes /etc/resolv.conf "$T_TMP/resolv.conf.want" \
	"resolv.conf is back byte for byte"

# A crash: the setup's process exits without undoing anything.
"$TOOL" setup resolv.conf 127.0.0.1:53 "$STATE" >/dev/null 2>>"$T_TMP/log"
same_bytes /etc/resolv.conf "$T_TMP/with-block" "a crashed run leaves its block"
"$TOOL" cleanup "$STATE" 2>>"$T_TMP/log"
ok $? "cleanup"
same_bytes /etc/resolv.conf "$T_TMP/resolv.conf.want" "which restores the original"

# The hosts file fallback on a bind mount.
"$TOOL" setup file:/etc/hosts 127.0.0.1:53 "$STATE" wiki.corp.test=169.254.1.1 \
	'*.docs.corp.test=169.254.1.2' db.corp.test=169.254.1.3 \
	>/dev/null 2>>"$T_TMP/log"
{ cat "$T_TMP/hosts.want"
  printf '\n# sluice: begin (removed when sluice stops)\n169.254.1.1 wiki.corp.test\n169.254.1.3 db.corp.test\n# sluice: end\n'; } \
	> "$T_TMP/hosts-block"
same_bytes /etc/hosts "$T_TMP/hosts-block" "the hosts block, exact names only"
getent hosts wiki.corp.test > "$T_TMP/getent" 2>&1
like "$(cat "$T_TMP/getent")" "^169\.254\.1\.1 +wiki\.corp\.test" \
	"and the system resolver sees it"
"$TOOL" cleanup "$STATE" 2>>"$T_TMP/log"
same_bytes /etc/hosts "$T_TMP/hosts.want" "the hosts file is back byte for byte"

# A read-only bind mount: a clean error, nothing changed or recorded.
mount -o remount,bind,ro /etc/resolv.conf
"$TOOL" setup resolv.conf 127.0.0.1:53 "$STATE" >/dev/null 2>"$T_TMP/rolog"
is $? 1 "a read-only resolv.conf fails"
like "$(cat "$T_TMP/rolog")" "Read-only file system" "and says why"
same_bytes /etc/resolv.conf "$T_TMP/resolv.conf.want" "the file is unchanged"
is "$(ls -A "$STATE")" "" "and nothing is recorded"

umount_all
is "$(cat "$ETC/resolv.conf")" "underneath" \
	"the file under the mount was never touched"
is "$(cat "$ETC/hosts")" "underneath" "nor was the hosts file's"

if [ "$T_FAILED" -ne 0 ]; then
	diag "log:"
	while IFS= read -r l; do diag "$l"; done < "$T_TMP/log"
fi
done_testing
