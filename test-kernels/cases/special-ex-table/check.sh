. /lp/lib.sh
P=livepatch_special_ex_table
mkdir -p /tmp/ex && touch /tmp/ex/lp-hidden /tmp/ex/visible
listing() { ls /tmp/ex | tr '\n' ' '; }
expect_eq "$(listing)" "lp-hidden visible " "listing before loading"
load_ko livepatch-special-ex-table.ko
klp_wait $P
expect_eq "$(listing)" "visible " "listing while patched"
[ -e /tmp/ex/lp-hidden ] || fail "lookup of lp-hidden fails while patched (only readdir should hide it)"
expect_contains "$(ls /)" "proc" "ls / while patched"
klp_disable $P
expect_eq "$(listing)" "lp-hidden visible " "listing after disabling"
unload_ko $P
