. /lp/lib.sh
P=livepatch_multi_object
mkdir -p /tmp/bm
load_ko binfmt_misc.ko
mount -t binfmt_misc none /tmp/bm || fail "mount binfmt_misc"
version_orig=$(cat /proc/version)
expect_eq "$(cat /tmp/bm/status)" "enabled" "binfmt_misc status before loading"
expect_eq "$(grep -c '^LpMulti:' /proc/self/status)" 0 "LpMulti in /proc/self/status before loading"
case "$version_orig" in *lp_multi*) fail "/proc/version patched before loading" ;; esac
load_ko livepatch-multi-object.ko
klp_wait $P
expect_eq "$(cat /sys/kernel/livepatch/$P/vmlinux/patched)" 1 "vmlinux object patched"
expect_eq "$(cat /sys/kernel/livepatch/$P/binfmt_misc/patched)" 1 "binfmt_misc object patched"
expect_eq "$(cat /tmp/bm/status)" "enabled lp_multi" "binfmt_misc status while patched"
expect_eq "$(grep '^LpMulti:' /proc/self/status | tr '\t' ' ')" "LpMulti: array" "/proc/self/status while patched"
expect_eq "$(cat /proc/version)" "$version_orig
lp_multi: version" "/proc/version while patched"
klp_disable $P
expect_eq "$(cat /tmp/bm/status)" "enabled" "binfmt_misc status after disabling"
expect_eq "$(grep -c '^LpMulti:' /proc/self/status)" 0 "LpMulti in /proc/self/status after disabling"
expect_eq "$(cat /proc/version)" "$version_orig" "/proc/version after disabling"
unload_ko $P
umount /tmp/bm
unload_ko binfmt_misc
