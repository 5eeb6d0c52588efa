. /lp/lib.sh
orig=$(cat /proc/version)
log "before the livepatch: /proc/version = '$orig'"

# The copy with a wrong CRC for seq_printf: the kernel's check_version() must refuse it.
if out=$(insmod /lp/livepatch-modversions-badcrc.ko 2>&1); then
	fail "the kernel loaded a module whose seq_printf CRC does not match"
fi
log "insmod of the bad-CRC copy failed as it should: $out"
dmesg | grep -q "livepatch_modversions: disagrees about version of symbol seq_printf" ||
	fail "no 'disagrees about version of symbol seq_printf' in the kernel log"
[ ! -d /sys/kernel/livepatch/livepatch_modversions ] || fail "the bad-CRC module left a livepatch"

# The copy whose vermagic says "smp": refused by check_modinfo() (same_magic).
if out=$(insmod /lp/livepatch-modversions-badmagic.ko 2>&1); then
	fail "the kernel loaded a module whose vermagic is not its own"
fi
dmesg | grep -q "livepatch_modversions: version magic '.* smp .*' should be '.* SMP .*'" ||
	fail "no 'version magic ... should be ...' in the kernel log"

load_ko livepatch-modversions.ko
klp_wait livepatch_modversions
expect_eq "$(cat /proc/version)" "$orig
lp_modversions" "/proc/version while patched"
klp_disable livepatch_modversions
expect_eq "$(cat /proc/version)" "$orig" "/proc/version after disabling"
unload_ko livepatch_modversions
