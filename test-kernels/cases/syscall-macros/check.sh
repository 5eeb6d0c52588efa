. /lp/lib.sh
A=livepatch_kpatch_uname
B=livepatch_klp_uname
orig=$(uname -n)
log "before: uname -n = '$orig'"
load_ko livepatch-kpatch-uname.ko
klp_wait $A
expect_eq "$(uname -n)" "lp-kpatch-uname" "uname -n with KPATCH_SYSCALL_DEFINE1"
expect_eq "$(uname -r)" "$(cat /proc/sys/kernel/osrelease)" "uname -r with A (the rest of the syscall)"
load_ko livepatch-klp-uname.ko
klp_wait $B
expect_eq "$(uname -n)" "lp-klp-uname" "uname -n with KLP_SYSCALL_DEFINE1 (B replaced A)"
klp_wait_gone $A
unload_ko $A
klp_disable $B
expect_eq "$(uname -n)" "$orig" "uname -n after disabling"
unload_ko $B
