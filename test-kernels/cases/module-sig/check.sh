. /lp/lib.sh
orig=$(cat /proc/cmdline)

if out=$(insmod /lp/livepatch-module-sig-unsigned.ko 2>&1); then
	fail "the kernel (MODULE_SIG_FORCE) loaded the unsigned copy"
fi
log "unsigned copy refused: $out"
dmesg | grep -q "Loading of unsigned module is rejected" ||
	fail "no 'Loading of unsigned module is rejected' in the kernel log"

if out=$(insmod /lp/livepatch-module-sig-otherkey.ko 2>&1); then
	fail "the kernel loaded the copy signed with an untrusted key"
fi
log "copy signed with another key refused: $out"
dmesg | grep -q "Loading of module with unavailable key is rejected" ||
	fail "no 'Loading of module with unavailable key is rejected' in the kernel log"
[ ! -d /sys/kernel/livepatch/livepatch_module_sig ] || fail "a refused copy left a livepatch"

# The reference: binfmt_misc.ko signed by kbuild's own sign-file with the build's key loads
# (the kernel can check signatures at all).
load_ko /lp/binfmt_misc-kbuild-signed.ko
unload_ko binfmt_misc

load_ko livepatch-module-sig.ko
klp_wait livepatch_module_sig
taint=$(cat /sys/module/livepatch_module_sig/taint)
log "module taint flags: '$taint'"
case "$taint" in *E*) fail "the signed module was loaded as unsigned (taint E)" ;; esac
expect_eq "$(cat /proc/cmdline)" "$orig lp_signed" "/proc/cmdline while patched"
klp_disable livepatch_module_sig
expect_eq "$(cat /proc/cmdline)" "$orig" "/proc/cmdline after disabling"
unload_ko livepatch_module_sig
