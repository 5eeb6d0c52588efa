. /lp/lib.sh
. /lp/kmsg.sh
P=livepatch_shadow_vars
cmdline=$(cat /proc/cmdline)
version=$(cat /proc/version)
# read FILE: one read of a /proc file, logged as a step (each read runs its show function once).
rd() {
	kmsg_step "cat $1"
	cat "$1"
}
kmsg_start shadow
kmsg_insmod livepatch-shadow-vars.ko
klp_wait $P
expect_eq "$(rd /proc/version)" "$version
lp_shadow none" "/proc/version before any /proc/cmdline read"
expect_eq "$(rd /proc/cmdline)" "$cmdline lp_shadow" "/proc/cmdline (1st read)"
expect_eq "$(rd /proc/cmdline)" "$cmdline lp_shadow" "/proc/cmdline (2nd read)"
expect_eq "$(rd /proc/version)" "$version
lp_shadow reads=2" "/proc/version after two /proc/cmdline reads"
expect_contains "$(rd /proc/uptime)" "lp_shadow freed" "/proc/uptime"
expect_eq "$(rd /proc/version)" "$version
lp_shadow none" "/proc/version after /proc/uptime freed the shadow variable"
expect_eq "$(rd /proc/cmdline)" "$cmdline lp_shadow" "/proc/cmdline (3rd read)"
kmsg_disable $P
expect_eq "$(cat /proc/version)" "$version" "/proc/version after disabling"
kmsg_rmmod $P
kmsg_check
