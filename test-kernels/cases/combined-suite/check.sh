. /lp/lib.sh
P=livepatch_combined_suite
# Each chk_<case> PHASE checks one case: PHASE is orig (before loading), patched (loaded and
# enabled) or after (disabled). Copied from the cases' own check.sh files.

# special-bug-table: proc_pid_cmdline_read (BUG_ON, __bug_table)
bt_cmdline() { sh -c 'echo -n lp-bug-table > /proc/$$/comm; cat /proc/$$/cmdline; exit 0' | tr '\0' ' '; }
chk_bug_table() {
	case $1 in
	orig)
		BT_ORIG=$(bt_cmdline)
		case "$BT_ORIG" in "sh -c "*) log "ok: bug-table: cmdline = '$BT_ORIG'" ;; *) fail "bug-table: cmdline before loading: '$BT_ORIG'" ;; esac ;;
	patched)
		expect_eq "$(bt_cmdline)" "lp_bug_table" "bug-table: cmdline of lp-bug-table"
		expect_eq "$(cat /proc/self/cmdline | tr '\0' ' ')" "cat /proc/self/cmdline " "bug-table: cmdline of cat" ;;
	after) expect_eq "$(bt_cmdline)" "$BT_ORIG" "bug-table: cmdline" ;;
	esac
}

# special-ex-table: filldir64 (__ex_table)
ex_listing() { ls /tmp/ex | tr '\n' ' '; }
chk_ex_table() {
	case $1 in
	orig)
		mkdir -p /tmp/ex && touch /tmp/ex/lp-hidden /tmp/ex/visible
		expect_eq "$(ex_listing)" "lp-hidden visible " "ex-table: listing" ;;
	patched)
		expect_eq "$(ex_listing)" "visible " "ex-table: listing"
		[ -e /tmp/ex/lp-hidden ] || fail "ex-table: lookup of lp-hidden fails" ;;
	after) expect_eq "$(ex_listing)" "lp-hidden visible " "ex-table: listing" ;;
	esac
}

# special-jump-table: active_show (sched_smt_present, __jump_table)
SMT=/sys/devices/system/cpu/smt/active
chk_jump_table() {
	case $1 in
	orig)
		[ -r $SMT ] || fail "jump-table: $SMT does not exist"
		JT_ORIG=$(cat $SMT)
		case "$JT_ORIG" in 0|1) log "ok: jump-table: smt/active = '$JT_ORIG'" ;; *) fail "jump-table: smt/active: '$JT_ORIG'" ;; esac ;;
	patched) expect_eq "$(cat $SMT)" "$JT_ORIG lp_static_key" "jump-table: smt/active" ;;
	after) expect_eq "$(cat $SMT)" "$JT_ORIG" "jump-table: smt/active" ;;
	esac
}

# special-static-call: __set_task_comm (tracepoint static call)
sc_rename() { sh -c 'echo -n "$1" > /proc/$$/comm; cat /proc/$$/comm; exit 0' rename "$1"; }
chk_static_call() {
	case $1 in
	patched)
		expect_eq "$(sc_rename lp-static-call)" "lp-sc-patched" "static-call: comm"
		expect_eq "$(sc_rename lp-other-name)" "lp-other-name" "static-call: other comm" ;;
	*) expect_eq "$(sc_rename lp-static-call)" "lp-static-call" "static-call: comm" ;;
	esac
}

# special-altinstr: meminfo_proc_show (.altinstructions)
vmalloc_total() { grep '^VmallocTotal:' /proc/meminfo; }
chk_altinstr() {
	case $1 in
	orig)
		AI_VT=$(vmalloc_total)
		[ -n "$AI_VT" ] || fail "altinstr: no VmallocTotal"
		expect_eq "$(grep -c '^LpAltinstr:' /proc/meminfo)" 0 "altinstr: LpAltinstr lines" ;;
	patched)
		expect_eq "$(grep '^LpAltinstr:' /proc/meminfo)" "LpAltinstr:     1 kB" "altinstr: LpAltinstr line"
		expect_eq "$(vmalloc_total)" "$AI_VT" "altinstr: VmallocTotal" ;;
	after) expect_eq "$(grep -c '^LpAltinstr:' /proc/meminfo)" 0 "altinstr: LpAltinstr lines" ;;
	esac
}

# special-pr-debug: proc_pid_personality (pr_debug compiled out)
chk_pr_debug() {
	case $1 in
	patched)
		expect_eq "$(cat /proc/self/personality)" "00000000 lp_pr_debug" "pr-debug: /proc/self/personality"
		expect_eq "$(dmesg | grep -c 'lp_pr_debug: personality')" 0 "pr-debug: pr_debug lines" ;;
	*) expect_eq "$(cat /proc/self/personality)" "00000000" "pr-debug: /proc/self/personality ($1)" ;;
	esac
}

# special-printk: uptime_proc_show (printk)
pk_count() { dmesg | grep -c 'lp_printk: /proc/uptime read by cat'; }
chk_printk() {
	case $1 in
	orig)
		cat /proc/uptime > /dev/null
		expect_eq "$(pk_count)" 0 "printk: lp_printk lines" ;;
	patched)
		cat /proc/uptime > /dev/null
		cat /proc/uptime > /dev/null
		PK_N=$(pk_count)
		[ "$PK_N" -ge 2 ] || fail "printk: lp_printk lines: $PK_N (expected >= 2)"
		log "ok: printk: $PK_N lp_printk lines" ;;
	after)
		cat /proc/uptime > /dev/null
		expect_eq "$(pk_count)" "$PK_N" "printk: lp_printk lines" ;;
	esac
}

# cold-part: comm_show (grows comm_show.cold)
chk_cold_part() {
	case $1 in
	patched)
		expect_eq "$(sc_rename lp-cold)" "lp-cold-path" "cold-part: comm of lp-cold"
		expect_eq "$(sc_rename lp-warm)" "lp-warm" "cold-part: comm of lp-warm"
		expect_contains "$(dmesg | grep lp_cold:)" "lp_cold: comm_show of pid" "cold-part: warning" ;;
	*) expect_eq "$(sc_rename lp-cold)" "lp-cold" "cold-part: comm of lp-cold" ;;
	esac
}

# isra-clone: __set_oom_adj.isra.0 -> __set_oom_adj
oom_adj() { sh -c 'echo "$1" > /proc/$$/oom_score_adj; cat /proc/$$/oom_score_adj; exit 0' adj "$1"; }
chk_isra_clone() {
	case $1 in
	patched)
		expect_eq "$(oom_adj 123)" "321" "isra-clone: oom_score_adj 123"
		expect_eq "$(oom_adj 50)" "50" "isra-clone: oom_score_adj 50"
		expect_contains "$(dmesg | grep lp_isra:)" "oom_score_adj 123 -> 321" "isra-clone: message" ;;
	*) expect_eq "$(oom_adj 123)" "123" "isra-clone: oom_score_adj 123" ;;
	esac
}

# static-local: drop_caches_sysctl_handler's `static int stfu`
DC=/proc/sys/vm/drop_caches
sl_count() { dmesg | grep -c 'lp_static_local:'; }
chk_static_local() {
	case $1 in
	orig)
		[ -w $DC ] || fail "static-local: $DC is missing"
		expect_eq "$(sl_count)" 0 "static-local: lp_static_local lines"
		echo 4 > $DC || fail "static-local: write 4" ;;
	patched)
		echo 2 > $DC || fail "static-local: write 2"
		expect_eq "$(dmesg | grep 'lp_static_local:' | tail -n 1 | sed 's/.*lp_static_local: //')" "stfu=4" "static-local: stfu seen by the patched handler"
		expect_eq "$(dmesg | grep -c 'drop_caches: 2')" 0 "static-local: drop_caches: 2 messages" ;;
	after)
		SL_N=$(sl_count)
		echo 2 > $DC
		expect_eq "$(sl_count)" "$SL_N" "static-local: lp_static_local lines" ;;
	esac
}

# print-once: proc_show_options (WARN_ONCE + new pr_info_once, .data..once)
po_line() { grep '^proc /proc ' /proc/mounts; }
chk_print_once() {
	case $1 in
	patched)
		for i in 1 2 3; do po_line > /dev/null; done
		expect_contains "$(po_line)" ",lp_once" "print-once: proc options"
		expect_eq "$(dmesg | grep -c 'lp_print_once: proc_show_options patched')" 1 "print-once: pr_info_once messages" ;;
	*)
		[ -n "$(po_line)" ] || fail "print-once: no proc line in /proc/mounts"
		expect_eq "$(po_line | grep -c lp_once)" 0 "print-once: lp_once in /proc/mounts ($1)" ;;
	esac
}

# data-new: new static counter in fs/proc/softirqs.c
dn_reads() { sed -n 's/^LP_DATA_NEW: //p' /proc/softirqs; }
chk_data_new() {
	case $1 in
	patched)
		a=$(dn_reads)
		b=$(dn_reads)
		[ -n "$a" ] && [ "$a" -ge 1 ] || fail "data-new: LP_DATA_NEW: '$a'"
		[ "$b" -gt "$a" ] || fail "data-new: LP_DATA_NEW does not count up: $a then $b"
		log "ok: data-new: LP_DATA_NEW counts $a, $b" ;;
	*) expect_eq "$(dn_reads)" "" "data-new: LP_DATA_NEW ($1)" ;;
	esac
}

# new-function: devinfo_show calls lp_new_function
chk_new_function() {
	case $1 in
	patched)
		expect_eq "$(head -n 1 /proc/devices)" "lp_new_function: 512 majors" "new-function: first line of /proc/devices"
		expect_eq "$(sed -n 2p /proc/devices)" "Character devices:" "new-function: second line of /proc/devices" ;;
	*) expect_eq "$(head -n 1 /proc/devices)" "Character devices:" "new-function: first line of /proc/devices" ;;
	esac
}

# new-global-shared: lp_new_global_note (fs/filesystems.c) called from fs/proc/consoles.c
chk_new_global_shared() {
	case $1 in
	orig)
		NG_FS=$(cat /proc/filesystems)
		NG_CON=$(cat /proc/consoles)
		[ -n "$NG_CON" ] || fail "new-global-shared: /proc/consoles is empty"
		case "$NG_FS$NG_CON" in *lp_new_global*) fail "new-global-shared: patched before loading" ;; esac ;;
	patched)
		expect_eq "$(tail -n 1 /proc/filesystems)" "lp_new_global(filesystems)" "new-global-shared: last line of /proc/filesystems"
		expect_contains "$(cat /proc/consoles)" "lp_new_global(consoles)" "new-global-shared: /proc/consoles" ;;
	after)
		expect_eq "$(cat /proc/filesystems)" "$NG_FS" "new-global-shared: /proc/filesystems"
		expect_eq "$(cat /proc/consoles)" "$NG_CON" "new-global-shared: /proc/consoles" ;;
	esac
}

# multi-object: fs/proc/array.c + fs/proc/version.c + binfmt_misc (mounted on /tmp/bm)
chk_multi_object() {
	case $1 in
	orig)
		MO_VERSION=$(cat /proc/version)
		expect_eq "$(cat /tmp/bm/status)" "enabled" "multi-object: binfmt_misc status"
		expect_eq "$(grep -c '^LpMulti:' /proc/self/status)" 0 "multi-object: LpMulti lines"
		case "$MO_VERSION" in *lp_multi*) fail "multi-object: /proc/version patched before loading" ;; esac ;;
	patched)
		expect_eq "$(cat /sys/kernel/livepatch/$P/binfmt_misc/patched)" 1 "multi-object: binfmt_misc object patched"
		expect_eq "$(cat /tmp/bm/status)" "enabled lp_multi" "multi-object: binfmt_misc status"
		expect_eq "$(grep '^LpMulti:' /proc/self/status | tr '\t' ' ')" "LpMulti: array" "multi-object: /proc/self/status"
		expect_eq "$(cat /proc/version)" "$MO_VERSION
lp_multi: version" "multi-object: /proc/version" ;;
	after)
		expect_eq "$(cat /tmp/bm/status)" "enabled" "multi-object: binfmt_misc status"
		expect_eq "$(grep -c '^LpMulti:' /proc/self/status)" 0 "multi-object: LpMulti lines"
		expect_eq "$(cat /proc/version)" "$MO_VERSION" "multi-object: /proc/version" ;;
	esac
}

# syscall-uname: override_release (called by the newuname syscall)
chk_syscall_uname() {
	case $1 in
	orig)
		SU_R=$(uname -r)
		SU_OS=$(cat /proc/sys/kernel/osrelease)
		expect_eq "$SU_R" "$SU_OS" "syscall-uname: uname -r" ;;
	patched)
		expect_eq "$(uname -r)" "$SU_R+lp_uname" "syscall-uname: uname -r"
		expect_eq "$(cat /proc/sys/kernel/osrelease)" "$SU_OS" "syscall-uname: osrelease" ;;
	after) expect_eq "$(uname -r)" "$SU_R" "syscall-uname: uname -r" ;;
	esac
}

CHECKS="bug_table ex_table jump_table static_call altinstr pr_debug printk cold_part isra_clone static_local print_once data_new new_function new_global_shared multi_object syscall_uname"
run_checks() {
	log "=== phase $1"
	for c in $CHECKS; do chk_$c "$1"; done
}

mkdir -p /tmp/bm
load_ko binfmt_misc.ko
mount -t binfmt_misc none /tmp/bm || fail "mount binfmt_misc"
run_checks orig
load_ko livepatch-combined-suite.ko
klp_wait $P
expect_eq "$(cat /sys/kernel/livepatch/$P/vmlinux/patched)" 1 "vmlinux object patched"
run_checks patched
klp_disable $P
run_checks after
unload_ko $P
umount /tmp/bm
unload_ko binfmt_misc
