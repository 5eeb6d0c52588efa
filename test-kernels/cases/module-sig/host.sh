# Host side of the module-sig case (see case.conf).
set -eu
name=livepatch-module-sig
ko="$LP_OUT/$name.ko"
marker='~Module signature appended~'

size=$(wc -c < "$ko")
[ "$(tail -c 28 "$ko")" = "$marker" ] || { echo "$ko does not end with '$marker'"; exit 1; }
grep -q "\"signed_with\": \"$LP_KERNEL_BUILD/certs/signing_key.pem\"" "$LP_OUT/$name.json" ||
	{ echo "the report does not name the build's signing key"; exit 1; }
"$LP_BUILD" check --symvers "$LP_KERNEL_BUILD/Module.symvers" --vmlinux "$LP_KERNEL_BUILD/vmlinux" "$ko"

# The signature block: <PKCS#7><struct module_signature (12 bytes, sig_len big-endian at its
# end)><marker>. Stripping it gives the module as lp-build validated it.
set -- $(od -An -tu1 -j $((size - 28 - 4)) -N 4 "$ko")
siglen=$(( ($1 << 24) | ($2 << 16) | ($3 << 8) | $4 ))
[ "$siglen" -gt 0 ] && [ "$siglen" -lt "$size" ] || { echo "bad sig_len $siglen"; exit 1; }
unsigned="$LP_GUEST/$name-unsigned.ko"
head -c $((size - 28 - 12 - siglen)) "$ko" > "$unsigned"
"$LP_BUILD" check --symvers "$LP_KERNEL_BUILD/Module.symvers" --vmlinux "$LP_KERNEL_BUILD/vmlinux" "$unsigned"

# Signed with a key the kernel does not trust.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
openssl req -new -nodes -utf8 -sha512 -days 2 -batch -x509 -subj "/CN=lp-build e2e untrusted key/" \
	-outform PEM -out "$tmp/other.pem" -keyout "$tmp/other.pem" 2>/dev/null
other="$LP_GUEST/$name-otherkey.ko"
cp "$unsigned" "$other"
"$LP_KERNEL_BUILD/scripts/sign-file" sha512 "$tmp/other.pem" "$tmp/other.pem" "$other"
[ "$(tail -c 28 "$other")" = "$marker" ] || { echo "sign-file did not sign $other"; exit 1; }

# The reference: the build's own binfmt_misc.ko signed by kbuild's tool with the build's key,
# exactly as `make modules_install` signs it.
cp "$LP_KERNEL_BUILD/fs/binfmt_misc.ko" "$LP_GUEST/binfmt_misc-kbuild-signed.ko"
"$LP_KERNEL_BUILD/scripts/sign-file" sha512 "$LP_KERNEL_BUILD/certs/signing_key.pem" \
	"$LP_KERNEL_BUILD/certs/signing_key.x509" "$LP_GUEST/binfmt_misc-kbuild-signed.ko"

# --no-sign for a kernel that refuses unsigned modules: refused before any build (status 5).
status=0
out=$("$LP_BUILD" --patch cmdline.patch -s "$LP_KERNEL_SRC" -v "$LP_KERNEL_BUILD/vmlinux" \
	-n nosign -o "$tmp" --no-sign 2>&1) || status=$?
echo "$out"
[ "$status" -eq 5 ] || { echo "lp-build --no-sign exited $status, expected 5"; exit 1; }
case "$out" in
*"--no-sign"*"CONFIG_MODULE_SIG_FORCE"*) ;;
*) echo "lp-build --no-sign did not say why"; exit 1 ;;
esac
[ ! -e "$tmp/livepatch-nosign.ko" ] || { echo "lp-build --no-sign wrote a module"; exit 1; }
