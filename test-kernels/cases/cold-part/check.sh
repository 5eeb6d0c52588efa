. /lp/lib.sh
P=livepatch_cold_part
comm_of() { sh -c 'echo -n "$1" > /proc/$$/comm; cat /proc/$$/comm; exit 0' comm_of "$1"; }
expect_eq "$(comm_of lp-cold)" "lp-cold" "comm of lp-cold before loading"
load_ko livepatch-cold-part.ko
klp_wait $P
expect_eq "$(comm_of lp-cold)" "lp-cold-path" "comm of lp-cold while patched (the .cold path)"
expect_eq "$(comm_of lp-warm)" "lp-warm" "comm of lp-warm while patched (the hot path)"
expect_contains "$(dmesg | grep lp_cold:)" "lp_cold: comm_show of pid" "the cold path's warning"
klp_disable $P
expect_eq "$(comm_of lp-cold)" "lp-cold" "comm of lp-cold after disabling"
unload_ko $P
