. /lp/lib.sh
. /lp/kmsg.sh
P=livepatch_hooks_legacy
orig=$(cat /proc/cmdline)
kmsg_start load-unload-hooks
kmsg_insmod livepatch-hooks-legacy.ko
klp_wait $P
expect_eq "$(cat /proc/cmdline)" "$orig lp_hooks_legacy" "/proc/cmdline while patched"
kmsg_disable $P
expect_eq "$(cat /proc/cmdline)" "$orig" "/proc/cmdline after disabling"
kmsg_rmmod $P
kmsg_check
