//! Inputs that crashed the `elf_roundtrip` fuzz target (fuzz/README.md), each minimised and kept
//! under `tests/fuzz-regressions/elf_roundtrip/`: the same code as the target must run on every
//! one of them without a panic or an abort.

use lp_elf::Object;
use std::path::Path;

/// The body of `fuzz/fuzz_targets/elf_roundtrip.rs`.
fn elf_roundtrip(data: &[u8]) {
    let _ = Object::parse_symbols_only(data);
    let Ok(obj) = Object::parse(data) else {
        return;
    };
    let Ok(bytes) = obj.write() else {
        return;
    };
    let again = match Object::parse(&bytes) {
        Ok(o) => o,
        Err(e) => panic!("the writer's output does not parse: {e}"),
    };
    assert!(again.sections.len() >= obj.sections.len());
    assert_eq!(again.symbols.len(), obj.symbols.len());
    let _ = again.write();
}

fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz-regressions")
        .join(target);
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let path = e.expect("directory entry").path();
            let bytes = std::fs::read(&path).expect("read regression input");
            (path.display().to_string(), bytes)
        })
        .collect();
    out.sort();
    out
}

#[test]
fn elf_roundtrip_regressions() {
    let inputs = inputs("elf_roundtrip");
    assert!(!inputs.is_empty());
    for (name, data) in inputs {
        eprintln!("{name}");
        elf_roundtrip(&data);
    }
}

/// The first one, by name: a section alignment of 2^62 made the writer pad the file to 2^62
/// bytes. The alignment stays in the header; the file offset is padded to at most a page.
#[test]
fn huge_alignment_is_kept_but_not_padded_to() {
    let (_, data) = inputs("elf_roundtrip")
        .into_iter()
        .find(|(n, _)| n.ends_with("huge-section-alignment"))
        .expect("regression input");
    let obj = Object::parse(&data).unwrap();
    let out = obj.write().unwrap();
    assert!(out.len() < 8192, "{} bytes", out.len());
    let again = Object::parse(&out).unwrap();
    assert_eq!(again.sections[1].align, 1 << 62);
    assert_eq!(again.sections[1].bytes(), obj.sections[1].bytes());
}
