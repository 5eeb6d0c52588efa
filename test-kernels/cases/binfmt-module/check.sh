. /lp/lib.sh
P=livepatch_binfmt_module
mkdir -p /tmp/bm
status() { cat /tmp/bm/status; }
# 1. Module loaded before the livepatch.
load_ko binfmt_misc.ko
mount -t binfmt_misc none /tmp/bm || fail "mount binfmt_misc"
expect_eq "$(status)" "enabled" "status before the livepatch"
load_ko livepatch-binfmt-module.ko
klp_wait $P
expect_eq "$(cat /sys/kernel/livepatch/$P/binfmt_misc/patched)" 1 "binfmt_misc object patched"
expect_eq "$(status)" "enabled lp" "status while patched"
klp_disable $P
expect_eq "$(status)" "enabled" "status after disabling"
unload_ko $P
umount /tmp/bm
unload_ko binfmt_misc
# 2. Livepatch first, module later.
load_ko livepatch-binfmt-module.ko
klp_wait $P
expect_eq "$(cat /sys/kernel/livepatch/$P/binfmt_misc/patched 2>/dev/null || echo 0)" 0 "object not patched before the module loads"
load_ko binfmt_misc.ko
mount -t binfmt_misc none /tmp/bm || fail "mount binfmt_misc (late)"
expect_eq "$(status)" "enabled lp" "status of a module loaded after the livepatch"
umount /tmp/bm
unload_ko binfmt_misc
klp_disable $P
unload_ko $P
