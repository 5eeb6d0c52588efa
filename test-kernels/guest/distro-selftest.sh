# The stock kernel of a distribution (`cargo xtask vm-selftest --distro NAME`): it boots with
# the project's initramfs, has the livepatch interface, and loads its own stock module
# binfmt_misc as shipped (signed; .ko.xz on Debian's 6.12), which works and unloads untainted.
. /lp/lib.sh
expect_eq "$(uname -r)" "$(cat /lp/release)" "the running kernel's release"
[ -d /sys/kernel/livepatch ] || fail "no /sys/kernel/livepatch: CONFIG_LIVEPATCH is off"
log "ok: /sys/kernel/livepatch exists"
ls /lp/ko
load_ko binfmt_misc.ko
expect_eq "$(cat /sys/module/binfmt_misc/taint)" "" "binfmt_misc's taint (a signed stock module)"
mkdir -p /tmp/bm
mount -t binfmt_misc none /tmp/bm || fail "mount binfmt_misc"
expect_eq "$(cat /tmp/bm/status)" "enabled" "binfmt_misc status"
printf '#!/bin/sh\necho "interpreted $1"\n' > /tmp/lp-interp
chmod +x /tmp/lp-interp
echo ':lp:E::lp::/tmp/lp-interp:' > /tmp/bm/register || fail "register a binfmt_misc entry"
echo 'payload' > /tmp/hello.lp
chmod +x /tmp/hello.lp
expect_eq "$(/tmp/hello.lp)" "interpreted /tmp/hello.lp" "a file run through binfmt_misc"
echo -1 > /tmp/bm/lp
umount /tmp/bm
unload_ko binfmt_misc
expect_eq "$(cat /proc/sys/kernel/tainted)" 0 "the kernel's taint after the stock module"
