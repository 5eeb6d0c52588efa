. /lp/lib.sh
. /lp/kmsg.sh
P=livepatch_hooks_klp_build
orig=$(cat /proc/cmdline)
kmsg_start enable-disable
kmsg_insmod livepatch-hooks-klp-build.ko
klp_wait $P
expect_eq "$(cat /proc/cmdline)" "$orig lp_klp_build_hooks" "/proc/cmdline while patched"
kmsg_disable $P
expect_eq "$(cat /proc/cmdline)" "$orig" "/proc/cmdline after disabling"
kmsg_rmmod $P
kmsg_check
