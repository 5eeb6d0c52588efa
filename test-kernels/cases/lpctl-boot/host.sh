# The installed system's root file system, made into the guest's disk image: lpctl where a
# package puts it, the boot unit where the Debian package (cargo xtask dist) installs it, and
# the livepatch as a user would have it before `lpctl install`.
set -eu
: "${LP_DISK:?no disk (case.conf: disk = )}" "${LP_LPCTL:?no lpctl (case.conf: guest-tools = lpctl)}"
install -D -m 755 "$LP_LPCTL" "$LP_DISK/usr/bin/lpctl"
install -D -m 644 "$LP_REPO/crates/lpctl/dist/lpctl.service" \
	"$LP_DISK/lib/systemd/system/lpctl.service"
mkdir -p "$LP_DISK/proc" "$LP_DISK/sys" "$LP_DISK/dev" "$LP_DISK/root" \
	"$LP_DISK/etc/systemd/system" "$LP_DISK/var/lib"
cp "$LP_OUT/livepatch-lpctl-boot.ko" "$LP_DISK/root/"
echo "disk: $(cd "$LP_DISK" && find . -type f | sort | tr '\n' ' ')"
