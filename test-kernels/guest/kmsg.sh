# Kernel log checks the way the kernel's livepatch selftests make them
# (tools/testing/selftests/livepatch/functions.sh: start_test, check_result).
# Sourced by check.sh after /lp/lib.sh:
#
#	kmsg_start SCENARIO      writes a unique canary line to /dev/kmsg
#	kmsg_insmod FILE.ko      "% insmod FILE.ko" into the log, then load_ko
#	kmsg_disable PATCH       "% echo 0 > .../enabled" into the log, then klp_disable
#	kmsg_rmmod MODULE        "% rmmod MODULE" into the log, then unload_ko
#	kmsg_step TEXT           "% TEXT" into the log (for other steps)
#	kmsg_check               compares the log since the canary with /lp/SCENARIO.expected
#
# kmsg_check keeps the lines after the canary that match `livepatch:`, $KMSG_PREFIX (the
# callbacks' own prefix, default `lp_test:`) or a step line (`% ...`), drops the taint notices,
# and compares the whole sequence with the expected file; a difference fails the test with the
# diff on the console. Step lines are written only after the previous step has finished
# (klp_wait), so the order of the log is deterministic.

KMSG_PREFIX=${KMSG_PREFIX:-lp_test:}
KMSG_SCENARIO=
KMSG_CANARY=
KMSG_SEQ=0

# The kernel log as text, one message a line, without timestamps.
kmsg_dump() {
	dmesg | sed 's/^\[[ 0-9.]*\] //'
}

kmsg_start() {
	KMSG_SCENARIO=$1
	KMSG_SEQ=$((KMSG_SEQ + 1))
	KMSG_CANARY="lp-e2e canary $KMSG_SCENARIO $KMSG_SEQ $(cut -d' ' -f1 /proc/uptime)"
	echo "$KMSG_CANARY" > /dev/kmsg || fail "cannot write to /dev/kmsg"
	i=0
	until kmsg_dump | grep -qxF "$KMSG_CANARY"; do
		i=$((i + 1))
		[ "$i" -lt 50 ] || fail "canary line not found in dmesg: $KMSG_CANARY"
		sleep 0.1
	done
	log "scenario $KMSG_SCENARIO (canary: $KMSG_CANARY)"
}

kmsg_step() {
	echo "% $*" > /dev/kmsg
}

kmsg_insmod() {
	kmsg_step "insmod $1"
	load_ko "$@"
}

kmsg_disable() {
	kmsg_step "echo 0 > /sys/kernel/livepatch/$1/enabled"
	klp_disable "$@"
}

kmsg_rmmod() {
	kmsg_step "rmmod $1"
	unload_ko "$@"
}

# kmsg_insmod_fails FILE.ko: insmod must fail; its output is left in KMSG_OUT.
# Busybox's insmod tries finit_module and, when that fails, init_module with the file's
# contents: a module whose init fails is loaded and initialised TWICE by one insmod (the
# kernel's selftests use kmod's insmod, which tries once), so an expected file shows the
# kernel's messages of a failed load two times.
kmsg_insmod_fails() {
	kmsg_step "insmod $1"
	if KMSG_OUT=$(insmod "$LP_KO_DIR/$1" 2>&1); then
		fail "insmod $1 succeeded, expected it to fail"
	fi
	log "insmod $1 failed as expected: $KMSG_OUT"
}

kmsg_check() {
	expected=/lp/$KMSG_SCENARIO.expected
	actual=/tmp/$KMSG_SCENARIO.actual
	[ -f "$expected" ] || fail "missing $expected"
	kmsg_dump | awk -v canary="$KMSG_CANARY" 'p; $0 == canary { p = 1 }' |
		grep -e 'livepatch:' -e "$KMSG_PREFIX" -e '^% ' |
		grep -v -e 'taints kernel' -e 'tainting kernel' > "$actual"
	if ! diff -u "$expected" "$actual" > /tmp/$KMSG_SCENARIO.diff; then
		log "kernel log of scenario $KMSG_SCENARIO differs from $KMSG_SCENARIO.expected:"
		sed 's/^/LP:   /' /tmp/$KMSG_SCENARIO.diff
		fail "kernel log of scenario $KMSG_SCENARIO differs from $KMSG_SCENARIO.expected"
	fi
	log "ok: kernel log of scenario $KMSG_SCENARIO matches ($(wc -l < "$actual") lines)"
}
