. /lp/lib.sh
P=livepatch_static_local
dc=/proc/sys/vm/drop_caches
[ -w $dc ] || fail "$dc is missing"
count() { dmesg | grep -c 'lp_static_local:'; }
expect_eq "$(count)" 0 "lp_static_local lines before loading"
# The original handler: "drop_caches: 4" is logged, then stfu |= 4.
echo 4 > $dc || fail "write 4 to $dc"
expect_contains "$(dmesg | grep 'drop_caches: 4')" "drop_caches: 4" "the original handler's message"
load_ko livepatch-static-local.ko
klp_wait $P
echo 2 > $dc || fail "write 2 to $dc"
expect_eq "$(dmesg | grep 'lp_static_local:' | tail -n 1 | sed 's/.*lp_static_local: //')" "stfu=4" "the static as seen by the patched handler"
# stfu is set: neither handler prints "drop_caches: 2".
expect_eq "$(dmesg | grep -c 'drop_caches: 2')" 0 "drop_caches: 2 messages"
klp_disable $P
n=$(count)
echo 2 > $dc
expect_eq "$(count)" "$n" "lp_static_local lines after disabling"
unload_ko $P
