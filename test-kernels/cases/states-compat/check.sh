. /lp/lib.sh
. /lp/kmsg.sh
V1=livepatch_state_v1
V2=livepatch_state_v2
NO=livepatch_state_none
version=$(cat /proc/version)

kmsg_start upgrade
kmsg_insmod livepatch-state-v1.ko
klp_wait $V1
expect_eq "$(cat /proc/version)" "$version
lp_state_v1" "/proc/version with v1"
kmsg_insmod livepatch-state-v2.ko
klp_wait $V2
expect_eq "$(cat /proc/version)" "$version
lp_state_v2" "/proc/version with v2"
expect_eq "$(ls /sys/kernel/livepatch)" "$V2" "registered livepatches after v2 replaced v1"
kmsg_rmmod $V1
kmsg_check

kmsg_start refused
for m in v1 none; do
	kmsg_insmod_fails livepatch-state-$m.ko
	expect_contains "$KMSG_OUT" "Invalid argument" "insmod of livepatch-state-$m.ko over v2"
	[ ! -d /sys/module/livepatch_state_$m ] || fail "livepatch_state_$m loaded although refused"
	expect_eq "$(cat /proc/version)" "$version
lp_state_v2" "/proc/version after the refused $m"
	expect_eq "$(ls /sys/kernel/livepatch)" "$V2" "registered livepatches after the refused $m"
done
kmsg_disable $V2
kmsg_rmmod $V2
kmsg_insmod livepatch-state-none.ko
klp_wait $NO
expect_eq "$(cat /proc/version)" "$version
lp_state_none" "/proc/version with the state-less patch and nothing else installed"
kmsg_disable $NO
kmsg_rmmod $NO
expect_eq "$(cat /proc/version)" "$version" "/proc/version at the end"
kmsg_check
