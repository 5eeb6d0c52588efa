. /lp/lib.sh
. /lp/kmsg.sh
A=livepatch_atomic_a
B=livepatch_atomic_b
cmdline=$(cat /proc/cmdline)
version=$(cat /proc/version)
kmsg_start load-a
kmsg_insmod livepatch-atomic-a.ko
klp_wait $A
# The replace attribute exists since 6.11.
[ ! -f /sys/kernel/livepatch/$A/replace ] || expect_eq "$(cat /sys/kernel/livepatch/$A/replace)" 1 "$A replace attribute"
expect_eq "$(cat /proc/cmdline)" "$cmdline lp_atomic_a" "/proc/cmdline with A"
kmsg_check

kmsg_start replace
kmsg_insmod livepatch-atomic-b.ko
klp_wait $B
# The replace attribute exists since 6.11.
[ ! -f /sys/kernel/livepatch/$B/replace ] || expect_eq "$(cat /sys/kernel/livepatch/$B/replace)" 1 "$B replace attribute"
expect_eq "$(cat /proc/cmdline)" "$cmdline" "/proc/cmdline after B replaced A (A's change gone)"
expect_eq "$(cat /proc/version)" "$version
lp_atomic_b" "/proc/version with B"
# A is no longer a registered patch (freed by the replace), its module is still loaded.
klp_wait_gone $A
expect_eq "$(ls /sys/kernel/livepatch)" "$B" "registered livepatches after the replace"
[ -d /sys/module/$A ] || fail "module $A unloaded by the replace (it should be left loaded)"
kmsg_rmmod $A
expect_eq "$(cat /proc/version)" "$version
lp_atomic_b" "/proc/version after removing A's module"
kmsg_disable $B
expect_eq "$(cat /proc/version)" "$version" "/proc/version after disabling B"
expect_eq "$(cat /proc/cmdline)" "$cmdline" "/proc/cmdline after disabling B"
kmsg_rmmod $B
kmsg_check
