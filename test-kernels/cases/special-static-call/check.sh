. /lp/lib.sh
P=livepatch_special_static_call
# A shell renames itself through /proc/PID/comm (comm_write -> __set_task_comm) and shows it.
rename() { sh -c 'echo -n "$1" > /proc/$$/comm; cat /proc/$$/comm; exit 0' rename "$1"; }
expect_eq "$(rename lp-static-call)" "lp-static-call" "comm before loading"
load_ko livepatch-special-static-call.ko
klp_wait $P
expect_eq "$(rename lp-static-call)" "lp-sc-patched" "comm while patched"
expect_eq "$(rename lp-other-name)" "lp-other-name" "another comm while patched"
klp_disable $P
expect_eq "$(rename lp-static-call)" "lp-static-call" "comm after disabling"
unload_ko $P
