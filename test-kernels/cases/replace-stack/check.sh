. /lp/lib.sh
. /lp/kmsg.sh
A=livepatch_stack_a
B=livepatch_stack_b
cmdline=$(cat /proc/cmdline)
version=$(cat /proc/version)
kmsg_start stack
kmsg_insmod livepatch-stack-a.ko
klp_wait $A
# The replace attribute exists since 6.11.
[ ! -f /sys/kernel/livepatch/$A/replace ] || expect_eq "$(cat /sys/kernel/livepatch/$A/replace)" 0 "$A replace attribute"
kmsg_insmod livepatch-stack-b.ko
klp_wait $B
# The replace attribute exists since 6.11.
[ ! -f /sys/kernel/livepatch/$B/replace ] || expect_eq "$(cat /sys/kernel/livepatch/$B/replace)" 0 "$B replace attribute"
# Both active.
expect_eq "$(cat /sys/kernel/livepatch/$A/enabled)" 1 "$A enabled with B loaded"
expect_eq "$(cat /sys/kernel/livepatch/$B/enabled)" 1 "$B enabled"
expect_eq "$(cat /proc/cmdline)" "$cmdline lp_stack_a" "/proc/cmdline with A and B (A's change)"
expect_eq "$(cat /proc/version)" "$version
lp_stack_b" "/proc/version with A and B (B's change)"
# Reverse order: B, then A.
kmsg_disable $B
expect_eq "$(cat /proc/version)" "$version" "/proc/version after disabling B"
expect_eq "$(cat /proc/cmdline)" "$cmdline lp_stack_a" "/proc/cmdline after disabling B"
kmsg_rmmod $B
kmsg_disable $A
expect_eq "$(cat /proc/cmdline)" "$cmdline" "/proc/cmdline after disabling A"
kmsg_rmmod $A
kmsg_check
