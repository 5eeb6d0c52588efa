. /lp/lib.sh
P=livepatch_new_global_shared
fs_orig=$(cat /proc/filesystems)
con_orig=$(cat /proc/consoles)
[ -n "$con_orig" ] || fail "/proc/consoles is empty"
case "$fs_orig$con_orig" in *lp_new_global*) fail "patched before loading" ;; esac
load_ko livepatch-new-global-shared.ko
klp_wait $P
expect_eq "$(tail -n 1 /proc/filesystems)" "lp_new_global(filesystems)" "last line of /proc/filesystems while patched"
expect_contains "$(cat /proc/consoles)" "lp_new_global(consoles)" "/proc/consoles while patched"
klp_disable $P
expect_eq "$(cat /proc/filesystems)" "$fs_orig" "/proc/filesystems after disabling"
expect_eq "$(cat /proc/consoles)" "$con_orig" "/proc/consoles after disabling"
unload_ko $P
