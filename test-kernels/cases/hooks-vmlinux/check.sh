. /lp/lib.sh
. /lp/kmsg.sh
P=livepatch_hooks_vmlinux
orig=$(cat /proc/cmdline)
kmsg_start enable-disable
kmsg_insmod livepatch-hooks-vmlinux.ko
klp_wait $P
expect_eq "$(cat /proc/cmdline)" "$orig lp_hooks_vmlinux" "/proc/cmdline while patched"
kmsg_disable $P
expect_eq "$(cat /proc/cmdline)" "$orig" "/proc/cmdline after disabling"
kmsg_rmmod $P
kmsg_check
