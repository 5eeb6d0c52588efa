. /lp/lib.sh
A=livepatch_stuff_a
B=livepatch_stuff_b
vuln=/sys/devices/system/cpu/vulnerabilities
log "retbleed: $(cat $vuln/retbleed); spectre_v2: $(cat $vuln/spectre_v2)"
expect_contains "$(cat $vuln/retbleed)" "Stuffing" "the Retbleed mitigation"
expect_contains "$(cat $vuln/spectre_v2)" "Retpolines" "the Spectre v2 mitigation"
cmdline=$(cat /proc/cmdline)
# The kernel's own boot may already have warned (see case.conf); only what follows counts.
before=$(dmesg | wc -l)
adj() { sh -c 'echo "$1" > /proc/$$/oom_score_adj; cat /proc/$$/oom_score_adj; exit 0' adj "$1"; }
rename() { sh -c 'echo -n "$1" > /proc/$$/comm; cat /proc/$$/comm; exit 0' rename "$1"; }

load_ko livepatch-stuff-a.ko
klp_wait $A
expect_eq "$(cat /proc/cmdline)" "$cmdline lp_stuff_a" "/proc/cmdline with A"
expect_eq "$(adj 123)" "321" "oom_score_adj 123 with A"
expect_eq "$(adj 50)" "50" "oom_score_adj 50 with A"
expect_contains "$(dmesg | grep lp_stuff:)" "lp_stuff: post_patch vmlinux" "A's post-patch callback"

load_ko livepatch-stuff-b.ko
klp_wait $B
expect_eq "$(cat /proc/cmdline)" "$cmdline" "/proc/cmdline after B replaced A"
expect_eq "$(adj 123)" "123" "oom_score_adj 123 after B replaced A"
expect_eq "$(rename lp-static-call)" "lp-sc-patched" "comm with B"
klp_wait_gone $A
unload_ko $A
klp_disable $B
expect_eq "$(rename lp-static-call)" "lp-static-call" "comm after disabling B"
unload_ko $B
# Everything ran under the mitigation: an unlisted return site would have made the kernel warn
# "Unpatched return thunk in use" (and failed the case through the console check too).
after=$(dmesg | tail -n +$((before + 1)))
case "$after" in
*"Unpatched return thunk"* | *"missing return thunk"* | *"Invalid padding area"*) fail "the kernel saw an unpatched site: $(echo "$after" | grep -E 'Unpatched|missing return|padding' | head -n 1)" ;;
esac
log "no unpatched site reported"
