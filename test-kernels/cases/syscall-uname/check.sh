. /lp/lib.sh
P=livepatch_syscall_uname
r=$(uname -r)
osrelease=$(cat /proc/sys/kernel/osrelease)
expect_eq "$r" "$osrelease" "uname -r before loading"
load_ko livepatch-syscall-uname.ko
klp_wait $P
expect_eq "$(uname -r)" "$r+lp_uname" "uname -r while patched"
expect_eq "$(cat /proc/sys/kernel/osrelease)" "$osrelease" "osrelease while patched"
klp_disable $P
expect_eq "$(uname -r)" "$r" "uname -r after disabling"
unload_ko $P
