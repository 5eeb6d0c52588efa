. /lp/lib.sh
P=livepatch_special_altinstr
vmalloc_total() { grep '^VmallocTotal:' /proc/meminfo; }
orig_vt=$(vmalloc_total)
[ -n "$orig_vt" ] || fail "no VmallocTotal in /proc/meminfo"
expect_eq "$(grep -c '^LpAltinstr:' /proc/meminfo)" 0 "LpAltinstr lines before loading"
load_ko livepatch-special-altinstr.ko
klp_wait $P
expect_eq "$(grep '^LpAltinstr:' /proc/meminfo)" "LpAltinstr:     1 kB" "LpAltinstr line while patched"
expect_eq "$(vmalloc_total)" "$orig_vt" "VmallocTotal while patched"
klp_disable $P
expect_eq "$(grep -c '^LpAltinstr:' /proc/meminfo)" 0 "LpAltinstr lines after disabling"
unload_ko $P
