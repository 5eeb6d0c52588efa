# lpctl-boot (see case.conf): runs at each of the two boots; the disk says which one it is.
. /lp/lib.sh
D=/mnt/root
P=livepatch_lpctl_boot
KO=livepatch-lpctl-boot.ko
R=$(uname -r)
WANTS=$D/etc/systemd/system/multi-user.target.wants/lpctl.service
mount_disk $D
for m in proc sys dev; do
	mount --bind /$m $D/$m || fail "mount --bind /$m $D/$m"
done

# lpctl in the installed system.
lpctl_in() {
	chroot $D /usr/bin/lpctl "$@"
}

# run_unit UNIT: what systemd does with a Type=oneshot service at boot, from the unit file
# itself: its ConditionKernelCommandLine= (negated words only), then each ExecStart= in order,
# in the installed system, failing on a non-zero status. What this cannot do as systemd would
# (prefixes, quoting, specifiers, variables) is refused rather than approximated.
run_unit() {
	expect_eq "$(sed -n 's/^Type=//p' "$1")" oneshot "Type= of $1"
	for c in $(sed -n 's/^ConditionKernelCommandLine=//p' "$1"); do
		case "$c" in
		!*) case " $(cat /proc/cmdline) " in *" ${c#!} "*)
			log "$1: skipped ($c)"
			return 0
			;;
		esac ;;
		*) fail "$1: ConditionKernelCommandLine=$c is not handled here" ;;
		esac
	done
	sed -n 's/^ExecStart=//p' "$1" >/tmp/exec
	[ -s /tmp/exec ] || fail "$1 has no ExecStart="
	while IFS= read -r cmd; do
		case "$cmd" in
		[-@:+!]* | *[\"\'\\%\$]*) fail "ExecStart=$cmd: not handled here" ;;
		esac
		log "ExecStart=$cmd"
		set -f
		# shellcheck disable=SC2086
		out=$(chroot $D $cmd 2>&1)
		rc=$?
		set +f
		echo "$out" | sed 's/^/LP:   /'
		[ "$rc" = 0 ] || fail "ExecStart=$cmd exited with status $rc"
	done </tmp/exec
}

case "$LP_BOOT" in
1)
	orig=$(cat /proc/cmdline)
	case "$orig" in *lp_cmdline_patched*) fail "/proc/cmdline patched at boot 1" ;; esac
	[ ! -e "$WANTS" ] || fail "lpctl.service enabled before lpctl install"
	out=$(lpctl_in install /root/$KO 2>&1) || fail "lpctl install: $out"
	echo "$out" | sed 's/^/LP:   /'
	expect_contains "$out" "installed /var/lib/lpctl/$R/$P.ko" "lpctl install's output"
	cmp $D/root/$KO "$D/var/lib/lpctl/$R/$P.ko" || fail "the installed copy differs"
	expect_eq "$(readlink "$WANTS")" /lib/systemd/system/lpctl.service "the enablement link"
	list=$(lpctl_in list 2>&1) || fail "lpctl list: $list"
	echo "$list" | sed 's/^/LP:   /'
	expect_contains "$list" "no livepatch modules loaded" "lpctl list"
	expect_contains "$list" "$P  /var/lib/lpctl/$R/$P.ko" "lpctl list (installed)"
	[ ! -d /sys/kernel/livepatch/$P ] || fail "lpctl install loaded the patch"
	# What boot 2 compares with.
	echo "$orig" >$D/root/cmdline.boot1
	cat /proc/sys/kernel/random/boot_id >$D/root/boot_id.boot1
	umount_disk $D
	log "boot 1 done: rebooting"
	;;
2)
	orig=$(cat $D/root/cmdline.boot1)
	[ "$(cat /proc/sys/kernel/random/boot_id)" != "$(cat $D/root/boot_id.boot1)" ] ||
		fail "the same boot_id as boot 1: no reboot happened"
	log "ok: a new boot_id ($(cat /proc/sys/kernel/random/boot_id)), boot 1 had $(cat $D/root/boot_id.boot1)"
	expect_eq "$(cat /proc/cmdline)" "$orig" "/proc/cmdline before the boot service"
	[ ! -d /sys/kernel/livepatch/$P ] || fail "$P loaded before the boot service ran"
	# systemd's part: the enabled unit, read from the disk.
	[ -L "$WANTS" ] || fail "lpctl.service is not enabled on the disk"
	unit=$D$(readlink "$WANTS")
	log "multi-user.target wants lpctl.service: $unit"
	run_unit "$unit"
	klp_wait $P
	expect_eq "$(cat /sys/kernel/livepatch/$P/enabled)" 1 "$P enabled after the boot service"
	expect_eq "$(cat /proc/cmdline)" "$orig lp_cmdline_patched" "/proc/cmdline after the boot service"
	list=$(lpctl_in list 2>&1) || fail "lpctl list: $list"
	echo "$list" | sed 's/^/LP:   /'
	expect_contains "$list" "installed for this kernel" "lpctl list"
	# Uninstall: gone from the disk, still loaded until unloaded.
	out=$(lpctl_in uninstall livepatch-lpctl-boot 2>&1) || fail "lpctl uninstall: $out"
	log "$out"
	[ ! -e "$D/var/lib/lpctl/$R/$P.ko" ] || fail "$P.ko still on the disk after uninstall"
	expect_eq "$(ls -A "$D/var/lib/lpctl/$R")" "" "/var/lib/lpctl/$R after uninstall"
	expect_eq "$(cat /sys/kernel/livepatch/$P/enabled)" 1 "$P still enabled after uninstall"
	list=$(lpctl_in list 2>&1) || fail "lpctl list: $list"
	case "$list" in *"installed for this kernel"*) fail "lpctl list still shows an installed patch: $list" ;; esac
	out=$(lpctl_in unload $P 2>&1) || fail "lpctl unload: $out"
	[ ! -d /sys/module/$P ] || fail "module $P still loaded"
	expect_eq "$(cat /proc/cmdline)" "$orig" "/proc/cmdline after unloading"
	# The next boot's service loads nothing.
	run_unit "$unit"
	[ ! -d /sys/kernel/livepatch/$P ] || fail "the boot service loaded $P after uninstall"
	umount_disk $D
	;;
*) fail "boot $LP_BOOT: the case boots twice" ;;
esac
