. /lp/lib.sh
P=livepatch_print_once
procline() { grep '^proc /proc ' /proc/mounts; }
[ -n "$(procline)" ] || fail "no proc line in /proc/mounts"
expect_eq "$(procline | grep -c lp_once)" 0 "lp_once in /proc/mounts before loading"
load_ko livepatch-print-once.ko
klp_wait $P
for i in 1 2 3; do procline > /dev/null; done
expect_contains "$(procline)" ",lp_once" "proc options while patched"
expect_eq "$(dmesg | grep -c 'lp_print_once: proc_show_options patched')" 1 "pr_info_once messages after 4 reads"
klp_disable $P
expect_eq "$(procline | grep -c lp_once)" 0 "lp_once in /proc/mounts after disabling"
unload_ko $P
