. /lp/lib.sh
P=livepatch_special_bug_table
# /proc/PID/cmdline of a shell that renamed itself lp-bug-table.
cmdline() { sh -c 'echo -n lp-bug-table > /proc/$$/comm; cat /proc/$$/cmdline; exit 0' | tr '\0' ' '; }
orig=$(cmdline)
case "$orig" in "sh -c "*) log "ok: cmdline before loading = '$orig'" ;; *) fail "cmdline before loading: '$orig'" ;; esac
load_ko livepatch-special-bug-table.ko
klp_wait $P
expect_eq "$(cmdline)" "lp_bug_table" "cmdline of a task named lp-bug-table while patched"
expect_eq "$(cat /proc/self/cmdline | tr '\0' ' ')" "cat /proc/self/cmdline " "cmdline of another task while patched"
klp_disable $P
expect_eq "$(cmdline)" "$orig" "cmdline after disabling"
unload_ko $P
