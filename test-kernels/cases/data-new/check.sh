. /lp/lib.sh
P=livepatch_data_new
reads() { sed -n 's/^LP_DATA_NEW: //p' /proc/softirqs; }
expect_eq "$(reads)" "" "LP_DATA_NEW before loading"
load_ko livepatch-data-new.ko
klp_wait $P
a=$(reads)
b=$(reads)
[ -n "$a" ] && [ "$a" -ge 1 ] || fail "LP_DATA_NEW while patched: '$a'"
[ "$b" -gt "$a" ] || fail "LP_DATA_NEW does not count up: $a then $b"
log "ok: LP_DATA_NEW counts $a, $b"
klp_disable $P
expect_eq "$(reads)" "" "LP_DATA_NEW after disabling"
unload_ko $P
