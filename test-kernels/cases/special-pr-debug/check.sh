. /lp/lib.sh
P=livepatch_special_pr_debug
expect_eq "$(cat /proc/self/personality)" "00000000" "/proc/self/personality before loading"
load_ko livepatch-special-pr-debug.ko
klp_wait $P
expect_eq "$(cat /proc/self/personality)" "00000000 lp_pr_debug" "/proc/self/personality while patched"
# pr_debug is compiled out: nothing in the log.
expect_eq "$(dmesg | grep -c 'lp_pr_debug: personality')" 0 "pr_debug lines in dmesg"
klp_disable $P
expect_eq "$(cat /proc/self/personality)" "00000000" "/proc/self/personality after disabling"
unload_ko $P
