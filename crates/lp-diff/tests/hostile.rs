//! Hostile bytes: every corpus pair with one side truncated at many offsets or with flipped
//! bytes must give a clean result or error from the differ, never a panic.

use lp_diff::{diff, DiffOptions};

fn opts(case: &lp_testutil::Case) -> DiffOptions {
    DiffOptions {
        object_name: "vmlinux".into(),
        source_name: "hostile.o".into(),
        alias_prefix: "__lp_h_".into(),
        entry_sizes: case.entry_sizes(),
        ..Default::default()
    }
}

/// A small deterministic generator (xorshift), so failures reproduce.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn truncated_and_corrupted_objects_never_panic() {
    let cases = lp_testutil::cases();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut runs = 0;
    // A handful of varied pairs keeps this fast; every object is still parsed below.
    for case in cases.iter().step_by(5) {
        let orig = std::fs::read(&case.orig).unwrap();
        let patched = std::fs::read(&case.patched).unwrap();
        let len = patched.len();
        for cut in [
            0,
            1,
            16,
            63,
            64,
            65,
            len / 4,
            len / 2,
            len - 100.min(len),
            len - 1,
        ] {
            let _ = diff(&orig, &patched[..cut], &opts(case));
            let _ = diff(&patched[..cut], &orig, &opts(case));
            runs += 2;
        }
        for _ in 0..40 {
            let mut bad = patched.clone();
            for _ in 0..4 {
                let at = (rng.next() as usize) % bad.len();
                bad[at] ^= (rng.next() as u8) | 1;
            }
            let _ = diff(&orig, &bad, &opts(case));
            runs += 1;
        }
    }
    assert!(runs > 300);
}

#[test]
fn every_corpus_object_truncated_is_a_clean_error() {
    for path in lp_testutil::corpus_objects() {
        let bytes = std::fs::read(&path).unwrap();
        for k in 1..24 {
            let cut = bytes.len() * k / 24;
            // Either a clean parse of what is there or an error; a panic fails the test.
            let _ = lp_elf::Object::parse(&bytes[..cut]);
        }
        assert!(lp_elf::Object::parse(&bytes[..bytes.len() / 2]).is_err() || bytes.len() < 128);
    }
}
