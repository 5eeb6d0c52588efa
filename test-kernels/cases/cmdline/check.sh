. /lp/lib.sh
orig=$(cat /proc/cmdline)
log "before the livepatch: /proc/cmdline = '$orig'"
case "$orig" in *lp_cmdline_patched*) fail "/proc/cmdline patched before loading" ;; esac
load_ko livepatch-cmdline.ko
klp_wait livepatch_cmdline
expect_eq "$(cat /sys/kernel/livepatch/livepatch_cmdline/enabled)" 1 "enabled"
expect_eq "$(cat /proc/cmdline)" "$orig lp_cmdline_patched" "/proc/cmdline while patched"
klp_disable livepatch_cmdline
expect_eq "$(cat /proc/cmdline)" "$orig" "/proc/cmdline after disabling"
unload_ko livepatch_cmdline
