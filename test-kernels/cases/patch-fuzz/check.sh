. /lp/lib.sh
P=livepatch_patch_fuzz
orig=$(cat /proc/cmdline)
load_ko livepatch-patch-fuzz.ko
klp_wait $P
expect_eq "$(cat /proc/cmdline)" "$orig lp_fuzz_patched" "/proc/cmdline while patched"
klp_disable $P
expect_eq "$(cat /proc/cmdline)" "$orig" "/proc/cmdline after disabling"
unload_ko $P
