. /lp/lib.sh
P=livepatch_ftrace_weak_neighbour
case "$(cat /proc/loadavg)" in *lp_weak_neighbour*) fail "/proc/loadavg patched before loading" ;; esac
load_ko livepatch-ftrace-weak-neighbour.ko
klp_wait $P
T=/sys/kernel/debug/tracing
[ -r $T/enabled_functions ] && log "enabled_functions: $(cat $T/enabled_functions | tr '\n' '|')"
expect_contains "$(cat /proc/loadavg)" " lp_weak_neighbour" "/proc/loadavg while patched"
klp_disable $P
case "$(cat /proc/loadavg)" in *lp_weak_neighbour*) fail "/proc/loadavg still patched after disabling" ;; esac
log "ok: /proc/loadavg after disabling = '$(cat /proc/loadavg)'"
unload_ko $P
