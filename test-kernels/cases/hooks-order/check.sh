. /lp/lib.sh
. /lp/kmsg.sh
P=livepatch_hooks_order
orig=$(cat /proc/version)

# 1. The second pre_patch fails: the first is undone by its post_unpatch partner.
kmsg_start second-pre-patch-fails
kmsg_step "hostname lp-fail-second"
hostname lp-fail-second
kmsg_insmod_fails livepatch-hooks-order.ko
case "$KMSG_OUT" in
*"out of domain"* | *"Domain error"*) log "ok: insmod failed with EDOM" ;;
*) fail "insmod did not fail with EDOM: $KMSG_OUT" ;;
esac
kmsg_check
[ ! -d /sys/kernel/livepatch/$P ] || fail "/sys/kernel/livepatch/$P exists after the failed load"
[ ! -d /sys/module/$P ] || fail "module $P still loaded after the failed load"
expect_eq "$(cat /proc/version)" "$orig" "/proc/version after the failed load"

# 2. The same module with every callback succeeding: declaration order throughout.
kmsg_start declaration-order
kmsg_step "hostname lp-ok"
hostname lp-ok
kmsg_insmod livepatch-hooks-order.ko
klp_wait $P
expect_eq "$(cat /proc/version)" "$orig
lp_hooks_order" "/proc/version while patched"
kmsg_disable $P
expect_eq "$(cat /proc/version)" "$orig" "/proc/version after disabling"
kmsg_rmmod $P
kmsg_check
