# Host side of the isra-clone case: the mitigation and unwind tables of a real livepatch module.
# The built module passes `lp-build check`; copies with its return sites, its call sites or its
# ORC removed (as objtool left them before the fix of 2026-12) are refused, each problem naming
# the function and the offset.
set -eu
ko="$LP_OUT/livepatch-isra-clone.ko"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
config="$LP_KERNEL_BUILD/.config"
"$LP_BUILD" check -c "$config" "$ko"
tables=".return_sites .orc_unwind_ip"
# Call sites exist with call depth tracking (6.2+).
grep -qE '^CONFIG_(MITIGATION_)?CALL_DEPTH_TRACKING=y' "$config" && tables="$tables .call_sites"
for t in $tables; do
	copy="$tmp/no$t.ko"
	if [ "$t" = .orc_unwind_ip ]; then
		objcopy --remove-section .orc_unwind_ip --remove-section .rela.orc_unwind_ip \
			--remove-section .orc_unwind "$ko" "$copy"
	else
		objcopy --remove-section "$t" --remove-section ".rela$t" "$ko" "$copy"
	fi
	set +e
	"$LP_BUILD" check -c "$config" "$copy" >"$tmp/out" 2>&1
	rc=$?
	set -e
	cat "$tmp/out"
	[ "$rc" = 3 ] || { echo "lp-build check exited $rc on a copy without $t, expected 3"; exit 1; }
	case "$t" in
	.return_sites) want="__set_oom_adj+0x" need="a jump to the return thunk that .return_sites does not list" ;;
	.call_sites) want="__set_oom_adj+0x" need="a direct call that .call_sites does not list" ;;
	*) want="__set_oom_adj" need="no ORC entry covers the function's start" ;;
	esac
	grep -F "$need" "$tmp/out" | grep -qF "$want" || { echo "no problem naming $want ($need) without $t"; exit 1; }
	echo "without $t: refused, naming $want"
done
