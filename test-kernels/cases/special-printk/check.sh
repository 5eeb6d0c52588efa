. /lp/lib.sh
P=livepatch_special_printk
count() { dmesg | grep -c 'lp_printk: /proc/uptime read by cat'; }
cat /proc/uptime > /dev/null
expect_eq "$(count)" 0 "lp_printk lines before loading"
load_ko livepatch-special-printk.ko
klp_wait $P
cat /proc/uptime > /dev/null
cat /proc/uptime > /dev/null
n=$(count)
[ "$n" -ge 2 ] || fail "lp_printk lines while patched: $n (expected >= 2)"
log "ok: $n lp_printk lines while patched"
klp_disable $P
cat /proc/uptime > /dev/null
expect_eq "$(count)" "$n" "lp_printk lines after disabling"
unload_ko $P
