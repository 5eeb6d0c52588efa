. /lp/lib.sh
P=livepatch_isra_clone
adj() { sh -c 'echo "$1" > /proc/$$/oom_score_adj; cat /proc/$$/oom_score_adj; exit 0' adj "$1"; }
expect_eq "$(adj 123)" "123" "oom_score_adj 123 before loading"
load_ko livepatch-isra-clone.ko
klp_wait $P
expect_eq "$(adj 123)" "321" "oom_score_adj 123 while patched"
expect_eq "$(adj 50)" "50" "oom_score_adj 50 while patched"
expect_contains "$(dmesg | grep lp_isra:)" "oom_score_adj 123 -> 321" "the patched function's message"
klp_disable $P
expect_eq "$(adj 123)" "123" "oom_score_adj 123 after disabling"
unload_ko $P
