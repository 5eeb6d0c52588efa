. /lp/lib.sh
P=livepatch_new_function
expect_eq "$(head -n 1 /proc/devices)" "Character devices:" "first line of /proc/devices before loading"
load_ko livepatch-new-function.ko
klp_wait $P
expect_eq "$(head -n 1 /proc/devices)" "lp_new_function: 512 majors" "first line of /proc/devices while patched"
expect_eq "$(sed -n 2p /proc/devices)" "Character devices:" "second line of /proc/devices while patched"
klp_disable $P
expect_eq "$(head -n 1 /proc/devices)" "Character devices:" "first line of /proc/devices after disabling"
unload_ko $P
