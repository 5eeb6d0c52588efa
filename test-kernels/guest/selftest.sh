# `cargo xtask vm-selftest`: proves the test kernel can load and unload a real livepatch
# (the kernel's samples/livepatch/livepatch-sample.c, which replaces cmdline_proc_show)
# and the in-tree module binfmt_misc.ko (=m in livepatch.config).
. /lp/lib.sh

log "kernel $(uname -r), tainted=$(cat /proc/sys/kernel/tainted 2>/dev/null || echo ?)"
[ -d /sys/kernel/livepatch ] || fail "/sys/kernel/livepatch missing: CONFIG_LIVEPATCH off?"

# 1. The livepatch sample.
orig=$(cat /proc/cmdline)
log "original /proc/cmdline: $orig"
case "$orig" in *"live patched"*) fail "/proc/cmdline is patched before insmod" ;; esac
load_ko livepatch-sample.ko
[ -d /sys/kernel/livepatch/livepatch_sample ] || fail "no /sys/kernel/livepatch/livepatch_sample after insmod"
klp_wait livepatch_sample 60
expect_eq "$(cat /sys/kernel/livepatch/livepatch_sample/enabled)" 1 "livepatch_sample enabled"
expect_eq "$(cat /proc/cmdline)" "this has been live patched" "/proc/cmdline while patched"
klp_disable livepatch_sample 60
expect_eq "$(cat /proc/cmdline)" "$orig" "/proc/cmdline after disabling"
unload_ko livepatch_sample
expect_eq "$(cat /proc/cmdline)" "$orig" "/proc/cmdline after rmmod"

# 2. binfmt_misc.ko: a real module whose behaviour a shell sees.
load_ko binfmt_misc.ko
mkdir -p /tmp/binfmt
mount -t binfmt_misc binfmt_misc /tmp/binfmt || fail "cannot mount binfmt_misc"
expect_eq "$(cat /tmp/binfmt/status)" enabled "binfmt_misc status"
printf '#!/bin/sh\necho "binfmt_misc ran $1"\n' > /tmp/lp-interp
chmod +x /tmp/lp-interp
echo ':lp:E::lp::/tmp/lp-interp:' > /tmp/binfmt/register || fail "cannot register a binfmt_misc entry"
expect_contains "$(cat /tmp/binfmt/lp)" "interpreter /tmp/lp-interp" "binfmt_misc entry lp"
# Not a script the shell could fall back to running itself: only binfmt_misc prints this.
printf 'exit 3\n' > /tmp/hello.lp
chmod +x /tmp/hello.lp
expect_eq "$(/tmp/hello.lp)" "binfmt_misc ran /tmp/hello.lp" "output of /tmp/hello.lp"
echo -1 > /tmp/binfmt/lp
umount /tmp/binfmt
unload_ko binfmt_misc
