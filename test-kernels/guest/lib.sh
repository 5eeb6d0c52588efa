# Helpers for guest scripts of the lp-build test VM (busybox sh).
# The harness copies this file to /lp/lib.sh; a guest script starts with
#   . /lp/lib.sh
# and exits 0 for PASS. `fail REASON` ends it with LP-E2E-RESULT: FAIL REASON.

LP_KO_DIR=/lp/ko
LP_FAIL_FILE=/tmp/lp-fail-reason

log() {
	echo "LP: $*"
}

fail() {
	echo "$*" > "$LP_FAIL_FILE"
	echo "LP: FAIL: $*"
	exit 1
}

# expect_eq ACTUAL EXPECTED WHAT
expect_eq() {
	[ "$1" = "$2" ] || fail "$3: expected '$2', got '$1'"
	log "ok: $3 = '$1'"
}

# expect_contains HAYSTACK NEEDLE WHAT
expect_contains() {
	case "$1" in
	*"$2"*) log "ok: $3 contains '$2'" ;;
	*) fail "$3: '$1' does not contain '$2'" ;;
	esac
}

# load_ko FILE.ko [PARAMS...]: insmod from /lp/ko (or a path), failing with the reason;
# FILE.ko.xz (.zst, .gz) when only that exists.
load_ko() {
	ko=$1
	shift
	case "$ko" in /*) ;; *) ko="$LP_KO_DIR/$ko" ;; esac
	# A distribution's stock module is shipped compressed (binfmt_misc.ko.xz): the same name
	# loads that file as shipped.
	if [ ! -e "$ko" ]; then
		for z in .xz .zst .gz; do
			if [ -e "$ko$z" ]; then
				ko="$ko$z"
				break
			fi
		done
	fi
	case "$ko" in
	# As kmod loads it when the kernel decompresses modules itself (MODULE_DECOMPRESS).
	*.ko.xz | *.ko.zst | *.ko.gz)
		if [ -e /sys/module/compression ]; then
			out=$(lp-finit "$ko" "$*" 2>&1) || fail "lp-finit $ko failed: $out"
		else
			out=$(insmod "$ko" "$@" 2>&1) || fail "insmod $ko failed: $out"
		fi
		;;
	*) out=$(insmod "$ko" "$@" 2>&1) || fail "insmod $ko failed: $out" ;;
	esac
	log "loaded $ko"
}

# unload_ko NAME [TRIES]: rmmod, retried once a second (a disabled livepatch is freed
# asynchronously, so its module may stay busy for a moment).
unload_ko() {
	tries=${2:-10}
	while ! out=$(rmmod "$1" 2>&1); do
		tries=$((tries - 1))
		[ "$tries" -gt 0 ] || fail "rmmod $1 failed: $out"
		sleep 1
	done
	[ ! -d "/sys/module/$1" ] || fail "module $1 still present after rmmod"
	log "unloaded $1"
}

# klp_wait PATCH [TIMEOUT_S]: waits until /sys/kernel/livepatch/PATCH/transition is 0
# (or PATCH is gone, once disabled and freed).
klp_wait() {
	t=${2:-60}
	d=/sys/kernel/livepatch/$1
	i=0
	while [ -d "$d" ] && [ "$(cat "$d/transition" 2>/dev/null)" != 0 ]; do
		i=$((i + 1))
		if [ "$i" -gt $((t * 10)) ]; then
			for p in /proc/[0-9]*; do
				s=$(cat "$p/patch_state" 2>/dev/null)
				[ -n "$s" ] && [ "$s" != -1 ] && echo "LP: pid ${p#/proc/} $(cat "$p/comm") patch_state $s"
			done
			fail "livepatch $1: transition still running after ${t}s"
		fi
		sleep 0.1
	done
	log "livepatch $1: transition done after $((i / 10)).$((i % 10))s"
}

# klp_disable PATCH [TIMEOUT_S]: echo 0 > enabled, then waits for the transition.
klp_disable() {
	echo 0 > "/sys/kernel/livepatch/$1/enabled" || fail "cannot disable livepatch $1"
	klp_wait "$1" "${2:-60}"
}

# klp_wait_gone PATCH [TIMEOUT_S]: waits until /sys/kernel/livepatch/PATCH is gone (a patch
# replaced by an atomic replace is unregistered and freed asynchronously).
klp_wait_gone() {
	t=${2:-10}
	i=0
	while [ -d "/sys/kernel/livepatch/$1" ]; do
		i=$((i + 1))
		[ "$i" -lt $((t * 10)) ] || fail "/sys/kernel/livepatch/$1 still there ${t}s after the replace"
		sleep 0.1
	done
	log "livepatch $1: unregistered"
}

# mount_disk DIR: the VM's disk (`disk = ` in a case.conf): loads the modules that read it, in
# the order of /lp/disk-modules (virtio_blk, ext4 and their dependencies, as the kernel's
# package ships them), mounts /dev/vda on DIR and sets LP_BOOT to the number of this boot of
# the run (counted in DIR/.lp-e2e-boots: the disk is made afresh for each run).
mount_disk() {
	[ -e /lp/disk-modules ] || fail "no disk: the case.conf has no disk = "
	while read -r m; do
		[ -d "/sys/module/${m%%.ko*}" ] || load_ko "$m"
	done </lp/disk-modules
	i=0
	while [ ! -b /dev/vda ]; do
		i=$((i + 1))
		[ "$i" -lt 100 ] || fail "no /dev/vda 10s after loading $(tr '\n' ' ' </lp/disk-modules)"
		sleep 0.1
	done
	mkdir -p "$1"
	out=$(mount -t ext4 /dev/vda "$1" 2>&1) || fail "mount /dev/vda on $1: $out"
	LP_BOOT=$(($(cat "$1/.lp-e2e-boots" 2>/dev/null || echo 0) + 1))
	echo "$LP_BOOT" >"$1/.lp-e2e-boots"
	sync
	log "boot $LP_BOOT: /dev/vda mounted on $1"
}

# umount_disk DIR: everything mounted below DIR, then DIR itself.
umount_disk() {
	for m in $(awk -v d="$1" '$2 ~ "^" d "/" { print $2 }' /proc/mounts | sort -r); do
		umount "$m" || fail "umount $m"
	done
	sync
	umount "$1" || fail "umount $1"
}
