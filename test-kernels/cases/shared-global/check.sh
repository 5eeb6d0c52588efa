. /lp/lib.sh
orig_cmdline=$(cat /proc/cmdline)
orig_version=$(cat /proc/version)
case "$orig_version" in *lp_shared_calls*) fail "/proc/version patched before loading" ;; esac
load_ko livepatch-shared-global.ko
klp_wait livepatch_shared_global
expect_eq "$(cat /proc/cmdline)" "$orig_cmdline lp_shared" "/proc/cmdline while patched"
# version.o's new code calls cmdline.o's new function and reads its new global.
v=$(cat /proc/version)
expect_contains "$v" "lp_shared_calls=" "/proc/version while patched"
expect_contains "$v" " lp_shared" "/proc/version while patched"
n1=$(cat /proc/version | sed -n 's/.*lp_shared_calls=\([0-9]*\).*/\1/p')
n2=$(cat /proc/version | sed -n 's/.*lp_shared_calls=\([0-9]*\).*/\1/p')
[ "$n2" -gt "$n1" ] || fail "lp_shared_calls does not count up ($n1 then $n2): the new global is not shared"
klp_disable livepatch_shared_global
expect_eq "$(cat /proc/version)" "$orig_version" "/proc/version after disabling"
expect_eq "$(cat /proc/cmdline)" "$orig_cmdline" "/proc/cmdline after disabling"
unload_ko livepatch_shared_global
