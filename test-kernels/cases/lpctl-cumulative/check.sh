. /lp/lib.sh
. /lp/kmsg.sh
. /lp/lpctl.sh
FA=livepatch_fix_a
FB=livepatch_fix_b
V1=livepatch_cum_v1
V2=livepatch_cum_v2
KO=/lp/ko
cmdline=$(cat /proc/cmdline)
version=$(cat /proc/version)
CMD=vmlinux/cmdline_proc_show
VER=vmlinux/version_proc_show
expect_list "" "" "before anything is loaded"

# 1. Two non-cumulative fixes, stacked.
kmsg_start 1-fixes
lpctl_ok load $KO/livepatch-fix-a.ko
lpctl_ok load $KO/livepatch-fix-b.ko --keep-others
expect_eq "$(cat /proc/cmdline)" "$cmdline lp_fix_a" "/proc/cmdline with the two fixes"
expect_eq "$(cat /proc/version)" "$version
lp_fix_b" "/proc/version with the two fixes"
expect_list "$FA=enabled/false/v1/true $FB=enabled/false/v1/true" \
	"$CMD=$FA[$FA] $VER=$FB[$FB]" "with the two fixes"
kmsg_check

# 2. Cumulative v1: the fixes are disabled explicitly (their unpatch callbacks run, top of
# the stack first) and unloaded, then v1 is loaded.
kmsg_start 2-cumulative-v1
lpctl_ok load $KO/livepatch-cum-v1.ko
expect_eq "$(cat /proc/cmdline)" "$cmdline lp_fix_a" "/proc/cmdline with cumulative v1"
expect_eq "$(cat /proc/version)" "$version
lp_fix_b lp_cum_v1" "/proc/version with cumulative v1"
expect_list "$V1=enabled/true/v1/true" "$CMD=$V1[$V1] $VER=$V1[$V1]" "with cumulative v1"
[ ! -d /sys/module/$FA ] && [ ! -d /sys/module/$FB ] || fail "the fixes' modules are still loaded"
kmsg_check

# 3. Cumulative v2 over v1: one atomic replace, only v2's callbacks run; v1's module stays
# loaded, unregistered (listed as disabled).
kmsg_start 3-cumulative-v2
lpctl_ok load $KO/livepatch-cum-v2.ko
expect_eq "$(cat /proc/version)" "$version
lp_fix_b lp_cum_v2" "/proc/version with cumulative v2"
expect_eq "$(cat /proc/cmdline)" "$cmdline lp_fix_a" "/proc/cmdline with cumulative v2"
klp_wait_gone $V1
expect_list "$V2=enabled/true/v2/true $V1=disabled/true/v1/false" \
	"$CMD=$V2[$V2] $VER=$V2[$V2]" "with cumulative v2 (v1 replaced)"
kmsg_check

# 4. v1 again: a downgrade, refused (status 6, nothing changes), then accepted with
# --allow-downgrade (v2 disabled explicitly and unloaded, v1's leftover module unloaded and
# loaded again).
kmsg_start 4-downgrade
lpctl_status 6 load $KO/livepatch-cum-v1.ko
expect_contains "$LPCTL_OUT" "downgrade" "lpctl's refusal"
expect_list "$V2=enabled/true/v2/true $V1=disabled/true/v1/false" \
	"$CMD=$V2[$V2] $VER=$V2[$V2]" "after the refused downgrade"
lpctl_ok load $KO/livepatch-cum-v1.ko --allow-downgrade
expect_eq "$(cat /proc/version)" "$version
lp_fix_b lp_cum_v1" "/proc/version after the downgrade"
expect_list "$V1=enabled/true/v1/true" "$CMD=$V1[$V1] $VER=$V1[$V1]" "after the downgrade"
kmsg_check

# 5. A non-cumulative fix over cumulative v1: everything else is disabled first.
kmsg_start 5-fix-over-cumulative
lpctl_ok load $KO/livepatch-fix-a.ko
expect_eq "$(cat /proc/cmdline)" "$cmdline lp_fix_a" "/proc/cmdline with fix-a alone"
expect_eq "$(cat /proc/version)" "$version" "/proc/version with fix-a alone"
expect_list "$FA=enabled/false/v1/true" "$CMD=$FA[$FA]" "with fix-a over cumulative v1"
lpctl_ok unload --all
expect_list "" "" "after lpctl unload --all"
expect_eq "$(cat /proc/cmdline)" "$cmdline" "/proc/cmdline at the end"
kmsg_check
