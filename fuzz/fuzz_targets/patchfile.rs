//! The unified-diff parser of lp-build (`lp_build::patchfile`) on arbitrary text.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(patch) = lp_build::patchfile::parse(&text) {
        let _ = lp_build::patchfile::refusals(&patch);
    }
});
