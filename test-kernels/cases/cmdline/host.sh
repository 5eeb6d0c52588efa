# Host side of the cmdline case: the same inputs give the same bytes. The module is built a
# second time from the same patch, tree, kernel and cache into another directory (another
# temporary directory too) and must equal the first byte for byte, as a distribution that
# rebuilds a livepatch and compares expects.
set -eu
first="$LP_OUT/livepatch-cmdline.ko"
again=$(mktemp -d)
trap 'rm -rf "$again"' EXIT
# A distribution kernel (`e2e --distro`) is named by its extracted packages and release.
if [ -n "${LP_ROOT:-}" ]; then
	set -- --root "$LP_ROOT" --kernel-release "$LP_KERNEL_RELEASE"
else
	set -- -s "$LP_KERNEL_SRC" -v "$LP_KERNEL_BUILD/vmlinux"
fi
LP_BUILD_CACHE="$LP_BUILD_CACHE" "$LP_BUILD" "$PWD/cmdline.patch" "$@" -n cmdline -o "$again" \
	>"$again/log" 2>&1 || {
	cat "$again/log"
	exit 1
}
if cmp "$first" "$again/livepatch-cmdline.ko"; then
	echo "rebuilt livepatch-cmdline.ko: identical ($(wc -c <"$first") bytes)"
else
	echo "rebuilt livepatch-cmdline.ko differs from the first build"
	exit 1
fi
