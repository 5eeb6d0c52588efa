. /lp/lib.sh
. /lp/kmsg.sh
P=livepatch_hooks_pre_patch_fail
orig=$(cat /proc/cmdline)
kmsg_start pre-patch-fails
kmsg_insmod_fails livepatch-hooks-pre-patch-fail.ko
# busybox insmod prints strerror(EDOM) (glibc: "Numerical argument out of domain").
case "$KMSG_OUT" in
*"out of domain"* | *"Domain error"*) log "ok: insmod failed with EDOM" ;;
*) fail "insmod did not fail with EDOM: $KMSG_OUT" ;;
esac
kmsg_check
[ ! -d /sys/kernel/livepatch/$P ] || fail "/sys/kernel/livepatch/$P exists after the failed load"
[ ! -d /sys/module/$P ] || fail "module $P still loaded after the failed load"
expect_eq "$(ls /sys/kernel/livepatch | wc -l)" 0 "registered livepatches"
expect_eq "$(cat /proc/cmdline)" "$orig" "/proc/cmdline after the failed load"
