. /lp/lib.sh
P=livepatch_special_jump_table
f=/sys/devices/system/cpu/smt/active
[ -r $f ] || fail "$f does not exist"
orig=$(cat $f)
case "$orig" in 0|1) log "ok: smt/active before loading = '$orig'" ;; *) fail "smt/active before loading: '$orig'" ;; esac
load_ko livepatch-special-jump-table.ko
klp_wait $P
expect_eq "$(cat $f)" "$orig lp_static_key" "smt/active while patched"
klp_disable $P
expect_eq "$(cat $f)" "$orig" "smt/active after disabling"
unload_ko $P
