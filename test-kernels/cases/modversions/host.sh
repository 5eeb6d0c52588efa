# Host side of the modversions case (see case.conf): checks __versions of the built module
# against the kernel's Module.symvers, makes a copy whose seq_printf CRC is wrong and one whose
# vermagic is not the kernel's, and checks that lp-build check refuses both.
set -eu
ko="$LP_OUT/livepatch-modversions.ko"
symvers="$LP_KERNEL_BUILD/Module.symvers"
sym=seq_printf

want=$(awk -F'\t' -v s="$sym" '$2 == s { print $1 }' "$symvers")
case "$want" in
"" | 0x00000000) echo "no CRC for $sym in $symvers: the test kernel must have CONFIG_MODVERSIONS"; exit 1 ;;
esac

# __versions: `unsigned long crc; char name[56]` per entry (struct modversion_info).
set -- $(readelf -S -W "$ko" | awk '{ for (i = 1; i < NF; i++) if ($i == "__versions") print $(i + 3), $(i + 4) }')
[ $# -eq 2 ] || { echo "$ko has no __versions section"; exit 1; }
off=$((0x$1))
size=$((0x$2))
pos=
k=0
while [ $((k * 64)) -lt "$size" ]; do
	e=$((off + k * 64))
	name=$(dd if="$ko" bs=1 skip=$((e + 8)) count=56 2>/dev/null | tr -d '\000')
	crc=$(od -An -tx8 -j "$e" -N 8 "$ko" | tr -d ' ')
	echo "__versions[$k] $name 0x$crc"
	if [ "$name" = "$sym" ]; then
		pos=$e
		[ "$((0x$crc))" -eq "$((want))" ] || { echo "$sym: module CRC 0x$crc, Module.symvers $want"; exit 1; }
	fi
	k=$((k + 1))
done
[ -n "$pos" ] || { echo "$ko: no __versions entry for $sym"; exit 1; }

vmlinux="$LP_KERNEL_BUILD/vmlinux"
"$LP_BUILD" check --symvers "$symvers" --vmlinux "$vmlinux" "$ko"

bad="$LP_GUEST/livepatch-modversions-badcrc.ko"
cp "$ko" "$bad"
# The CRC's low 4 bytes (little-endian) become 0xdeadbeef, or 0xfeedface if it was that.
if [ "$((want))" -eq $((0xdeadbeef)) ]; then new='\316\372\355\376'; else new='\357\276\255\336'; fi
printf "$new" | dd of="$bad" bs=1 seek="$pos" conv=notrunc 2>/dev/null

if out=$("$LP_BUILD" check --symvers "$symvers" --vmlinux "$vmlinux" "$bad"); then
	echo "lp-build check accepted a module whose $sym CRC is wrong:"
	echo "$out"
	exit 1
fi
echo "$out"
case "$out" in
*"$sym"*"disagrees about version of symbol"*) ;;
*) echo "lp-build check did not name $sym's CRC mismatch"; exit 1 ;;
esac

# vermagic: "SMP" becomes "smp" (same length), so the kernel's same_magic() differs even
# though __versions lets it ignore the release.
magic="$LP_GUEST/livepatch-modversions-badmagic.ko"
perl -0777 -pe 's/(vermagic=\S+) SMP /$1 smp /' "$ko" > "$magic"
cmp -s "$ko" "$magic" && { echo "no ' SMP ' in the vermagic of $ko"; exit 1; }
if out=$("$LP_BUILD" check --symvers "$symvers" --vmlinux "$vmlinux" "$magic"); then
	echo "lp-build check accepted a module whose vermagic is not the kernel's:"
	echo "$out"
	exit 1
fi
echo "$out"
case "$out" in
*"vermagic"*"smp"*"is not the kernel's"*) ;;
*) echo "lp-build check did not name the vermagic mismatch"; exit 1 ;;
esac
