# lpctl helpers of the lpctl-* cases (busybox sh), sourced after /lp/lib.sh and /lp/kmsg.sh.
#
#	lpctl_ok ARGS...        runs /lp/lpctl ARGS (a "% lpctl ARGS" step line goes to the
#	                        kernel log first); fails the test unless it exits 0
#	lpctl_status N ARGS...  the same, but the exit status must be N; output in LPCTL_OUT
#	lp_patches              `lpctl list --json` as "name=state/cumulative/vVERSION/registered"
#	                        per patch, space-separated, in list order (stack bottom first)
#	lp_functions            the patched functions as "object/function=winner[patches]"

LPCTL=/lp/lpctl

lpctl_status() {
	want=$1
	shift
	kmsg_step "lpctl $*"
	LPCTL_OUT=$($LPCTL "$@" 2>&1)
	rc=$?
	echo "$LPCTL_OUT" | sed 's/^/LP:   | /'
	[ "$rc" = "$want" ] || fail "lpctl $*: exit status $rc, expected $want: $(echo "$LPCTL_OUT" | tail -n 1)"
	log "ok: lpctl $* exited $rc"
}

lpctl_ok() {
	lpctl_status 0 "$@"
}

# The JSON of `lpctl list --json` without white space (no value here contains any).
lp_json() {
	$LPCTL list --json | tr -d ' \n\t'
}

# field NAME: the value of "NAME" in the JSON object on stdin (strings unquoted).
field() {
	sed -E -n "s/.*\"$1\":(\"([^\"]*)\"|([^,}]*)).*/\2\3/p"
}

lp_patches() {
	lp_json | sed -E 's/^\{"order_source":"[^"]*","patches":\[//; s/\],"functions":.*//; s/\},\{/}\n{/g' |
		while read -r o || [ -n "$o" ]; do
			[ -n "$o" ] || continue
			n=$(echo "$o" | field name)
			s=$(echo "$o" | field state)
			c=$(echo "$o" | field cumulative)
			v=$(echo "$o" | field version)
			r=$(echo "$o" | field registered)
			echo "$n=$s/$c/v$v/$r"
		done | tr '\n' ' ' | sed 's/ $//'
}

lp_functions() {
	# `installed` (lpctl install) follows `functions`: dropped (none of its values holds a `]`).
	lp_json | sed -E 's/.*\],"functions":\[//; s/,"installed":\[[^]]*\]\}$/}/; s/\]\}$//; s/\},\{/}\n{/g' |
		while read -r o || [ -n "$o" ]; do
			[ -n "$o" ] || continue
			obj=$(echo "$o" | field object)
			fn=$(echo "$o" | field function)
			w=$(echo "$o" | field winner)
			ps=$(echo "$o" | sed -E -n 's/.*"patches":\[([^]]*)\].*/\1/p' | tr -d '"')
			echo "$obj/$fn=$w[$ps]"
		done | tr '\n' ' ' | sed 's/ $//'
}

# expect_list PATCHES FUNCTIONS WHAT: `lpctl list --json` shows exactly these.
expect_list() {
	$LPCTL list | sed 's/^/LP:   | /'
	expect_eq "$(lp_patches)" "$1" "lpctl list: patches $3"
	expect_eq "$(lp_functions)" "$2" "lpctl list: functions $3"
}
