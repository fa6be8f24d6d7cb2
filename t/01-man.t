#!/bin/bash
# SPDX-License-Identifier: MIT
# The manual pages: mandoc finds nothing to warn about, and sluice.8
# documents every command and option that `sluice --help` lists.
. "${TOP_SRCDIR:-$(dirname "$0")/..}/t/lib.sh"

[ -x "$SLUICE" ] || skip_all "sluice not built at $SLUICE"
man8="$TOP_SRCDIR/man/sluice.8"
man5="$TOP_SRCDIR/man/sluice.yaml.5"

help=$("$SLUICE" --help)
# Command lines of the help are indented by two spaces, their options by
# more; "pki init DIR" is the command "pki init".
cmds=$(printf '%s\n' "$help" | sed -n '/^commands:/,$p' |
	sed -n 's/^  \([a-z][a-z]*\)\( \(init\|issue\)\)\{0,1\}\( .*\)\{0,1\}$/\1\2/p')
longs=$(printf '%s\n' "$help" | grep -oE -- '--[a-z][a-z-]*' | sort -u)
shorts=$(printf '%s\n' "$help" | grep -oE -- '(^|[ [])-[a-z]( |,)' |
	grep -oE -- '-[a-z]' | sort -u)
words=$(printf '%s\n' "$cmds" | cut -d' ' -f1 | uniq)
ncmds=$(printf '%s\n' "$cmds" | grep -c .)
nwords=$(printf '%s\n' "$words" | grep -c .)
nlongs=$(printf '%s\n' "$longs" | grep -c .)
nshorts=$(printf '%s\n' "$shorts" | grep -c .)
plan $((3 + 2 + ncmds + nwords + nlongs + nshorts))

# A parse of the help that found nothing must not pass as "all documented".
ok $([ "$ncmds" -ge 8 ] && echo 0 || echo 1) "--help lists commands ($ncmds found)"
ok $([ "$nlongs" -ge 8 ] && echo 0 || echo 1) "--help lists long options ($nlongs found)"
ok $([ "$nshorts" -ge 2 ] && echo 0 || echo 1) "--help lists short options ($nshorts found)"

if command -v mandoc >/dev/null 2>&1; then
	for m in "$man8" "$man5"; do
		out=$(mandoc -Tlint -Wwarning "$m" 2>&1); rc=$?
		# Lint reports by level; a stale mandoc.db is the system's.
		bad=$(printf '%s\n' "$out" | grep -v 'mandoc\.db' | grep .)
		if [ "$rc" -eq 0 ] && [ -z "$bad" ]; then
			ok 0 "mandoc -Tlint -Wwarning: $(basename "$m") is clean"
		else
			ok 1 "mandoc -Tlint -Wwarning: $(basename "$m") is clean"
			diag "exit $rc" "$out"
		fi
	done
else
	ok 0 "# SKIP mandoc is not installed"
	ok 0 "# SKIP mandoc is not installed"
fi

# mdoc writes a command as "Cm word" and an option as "Fl word": look for
# those macros, not for the word anywhere in the text.
# has TEXT REGEX WHERE DESCRIPTION: like, without quoting the whole page.
has() {
	if printf '%s\n' "$1" | grep -Eq -- "$2"; then
		ok 0 "$4"
	else
		ok 1 "$4"
		diag "no /$2/ in $3"
	fi
}
page=$(cat "$man8")
synopsis=$(sed -n '/^\.Sh SYNOPSIS/,/^\.Sh /p' "$man8")
description=$(sed -n '/^\.Sh DESCRIPTION/,/^\.Sh /p' "$man8")
while IFS= read -r c; do
	has "$synopsis" "^\.Cm $c( |$)" "SYNOPSIS of sluice.8" \
		"SYNOPSIS of sluice.8 shows '$c'"
done <<EOF
$cmds
EOF
while IFS= read -r w; do
	has "$description" "(^\.It|[ ,]) *Cm $w( |$)" \
		"DESCRIPTION of sluice.8" "DESCRIPTION of sluice.8 describes '$w'"
done <<EOF
$words
EOF
while IFS= read -r o; do
	has "$page" "Fl -${o#--}( |$)" sluice.8 "sluice.8 documents $o"
done <<EOF
$longs
EOF
while IFS= read -r o; do
	has "$page" "Fl ${o#-}( |$)" sluice.8 "sluice.8 documents $o"
done <<EOF
$shorts
EOF

done_testing
