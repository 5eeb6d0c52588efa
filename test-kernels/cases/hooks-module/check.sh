. /lp/lib.sh
. /lp/kmsg.sh
P=livepatch_hooks_module
mkdir -p /tmp/bm
status() { cat /tmp/bm/status; }

# 1. binfmt_misc loaded before the patch: its callbacks run at enable and disable.
kmsg_start module-before
kmsg_insmod binfmt_misc.ko
mount -t binfmt_misc none /tmp/bm || fail "mount binfmt_misc"
expect_eq "$(status)" "enabled" "status before the patch"
kmsg_insmod livepatch-hooks-module.ko
klp_wait $P
expect_eq "$(cat /sys/kernel/livepatch/$P/binfmt_misc/patched)" 1 "binfmt_misc object patched"
expect_eq "$(status)" "enabled lp_hooks_module" "status while patched"
kmsg_disable $P
expect_eq "$(status)" "enabled" "status after disabling"
kmsg_rmmod $P
umount /tmp/bm
kmsg_rmmod binfmt_misc
kmsg_check

# 2. The patch first: binfmt_misc's callbacks run when it loads, before its init.
kmsg_start module-after
kmsg_insmod livepatch-hooks-module.ko
klp_wait $P
expect_eq "$(cat /sys/kernel/livepatch/$P/binfmt_misc/patched 2>/dev/null || echo 0)" 0 "object not patched before the module loads"
kmsg_insmod binfmt_misc.ko
expect_eq "$(cat /sys/kernel/livepatch/$P/binfmt_misc/patched)" 1 "binfmt_misc object patched once loaded"
mount -t binfmt_misc none /tmp/bm || fail "mount binfmt_misc (late)"
expect_eq "$(status)" "enabled lp_hooks_module" "status of a module loaded after the patch"
umount /tmp/bm
kmsg_check

# 3. binfmt_misc unloaded while patched: its unpatch callbacks run as it goes; disabling the
# patch afterwards runs none (vmlinux has no callbacks in this patch).
kmsg_start module-unload
kmsg_rmmod binfmt_misc
expect_eq "$(cat /sys/kernel/livepatch/$P/binfmt_misc/patched 2>/dev/null || echo 0)" 0 "object unpatched after the module went"
expect_eq "$(cat /sys/kernel/livepatch/$P/enabled)" 1 "patch still enabled"
kmsg_disable $P
kmsg_rmmod $P
kmsg_check
