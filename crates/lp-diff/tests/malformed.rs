//! Real corpus objects with one field of a relocation section or a special section made wrong
//! (as a hostile or broken build would), and wrong entry sizes given by the caller: the differ
//! must say what is wrong instead of writing a patch object that is silently broken.

use lp_diff::{diff, DiffError, DiffOptions, Outcome};

fn case(name: &str) -> lp_testutil::Case {
    lp_testutil::cases()
        .into_iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("corpus case {name}"))
}

fn opts(case: &lp_testutil::Case) -> DiffOptions {
    DiffOptions {
        object_name: "vmlinux".into(),
        source_name: case.name.clone(),
        alias_prefix: "__lp_m_".into(),
        entry_sizes: case.entry_sizes(),
        ..Default::default()
    }
}

fn read(case: &lp_testutil::Case) -> (Vec<u8>, Vec<u8>) {
    (
        std::fs::read(&case.orig).unwrap(),
        std::fs::read(&case.patched).unwrap(),
    )
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

/// The file offset of section `index`'s header.
fn shdr(bytes: &[u8], index: usize) -> usize {
    let shoff = u64_at(bytes, 0x28) as usize;
    let shentsize = u16::from_le_bytes([bytes[0x3a], bytes[0x3b]]) as usize;
    shoff + index * shentsize
}

fn section_index(bytes: &[u8], name: &str) -> usize {
    let obj = lp_elf::Object::parse(bytes).unwrap();
    obj.section_by_name(name)
        .unwrap_or_else(|| panic!("no section {name}"))
}

/// The relocation section applying to the section of the first changed function of a case.
fn changed_function_rela(case: &lp_testutil::Case, patched: &[u8]) -> (usize, String) {
    let f = case.changed.first().expect("a changed function");
    let name = format!(".rela.text.{f}");
    (section_index(patched, &name), name)
}

/// Sets a section header field: `sh_info` at 44 (4 bytes), `sh_entsize` at 56 (8 bytes).
fn set_shdr_u32(bytes: &mut [u8], index: usize, field: usize, v: u32) {
    let at = shdr(bytes, index) + field;
    bytes[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn set_shdr_u64(bytes: &mut [u8], index: usize, field: usize, v: u64) {
    let at = shdr(bytes, index) + field;
    bytes[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// The file offset of relocation `k` of relocation section `index`.
fn rela(bytes: &[u8], index: usize, k: usize) -> usize {
    u64_at(bytes, shdr(bytes, index) + 24) as usize + k * 24
}

const CASE: &str = "ASSERT_RTNL-detect";

fn relocations_error(r: Result<lp_diff::DiffResult, DiffError>, section: &str, what: &str) {
    match r {
        Err(DiffError::Relocations {
            which: "patched",
            section: s,
            message,
        }) => {
            assert_eq!(s, section);
            assert!(message.contains(what), "{message}");
        }
        Err(e) => panic!("another error: {e}"),
        Ok(r) => panic!(
            "accepted ({:?}, changed {:?}) instead of an error about {section}",
            r.outcome, r.changed_functions
        ),
    }
}

#[test]
fn the_unmodified_pair_is_a_patch() {
    let c = case(CASE);
    let (orig, patched) = read(&c);
    let r = diff(&orig, &patched, &opts(&c)).unwrap();
    assert_eq!(r.outcome, Outcome::Patch);
}

#[test]
fn rela_section_with_sh_info_out_of_range_is_an_error() {
    let c = case(CASE);
    let (orig, mut patched) = read(&c);
    let (idx, name) = changed_function_rela(&c, &patched);
    set_shdr_u32(&mut patched, idx, 44, 60_000);
    relocations_error(
        diff(&orig, &patched, &opts(&c)),
        &name,
        "is not a section of this object",
    );
}

#[test]
fn rela_section_applying_to_a_section_without_contents_is_an_error() {
    let c = case(CASE);
    let (orig, mut patched) = read(&c);
    let (idx, name) = changed_function_rela(&c, &patched);
    let symtab = section_index(&patched, ".symtab") as u32;
    set_shdr_u32(&mut patched, idx, 44, symtab);
    relocations_error(
        diff(&orig, &patched, &opts(&c)),
        &name,
        "has no contents to relocate",
    );
}

#[test]
fn relocation_past_the_end_of_its_section_is_an_error() {
    let c = case(CASE);
    let (orig, mut patched) = read(&c);
    let (idx, name) = changed_function_rela(&c, &patched);
    let text = section_index(&patched, &name[".rela".len()..]);
    let size = u64_at(&patched, shdr(&patched, text) + 32);
    let at = rela(&patched, idx, 0);
    // Two bytes before the end: a 4-byte field would run past it.
    patched[at..at + 8].copy_from_slice(&(size - 2).to_le_bytes());
    relocations_error(
        diff(&orig, &patched, &opts(&c)),
        &name,
        "past the end of the section",
    );
}

#[test]
fn unknown_relocation_type_is_an_error() {
    let c = case(CASE);
    let (orig, mut patched) = read(&c);
    let (idx, name) = changed_function_rela(&c, &patched);
    let at = rela(&patched, idx, 0) + 8;
    patched[at..at + 4].copy_from_slice(&200u32.to_le_bytes());
    relocations_error(diff(&orig, &patched, &opts(&c)), &name, "has type 200");
}

fn entry_size_error(r: Result<lp_diff::DiffResult, DiffError>, section: &str, what: &str) {
    match r {
        Err(DiffError::EntrySize {
            section: s,
            message,
        }) => {
            assert_eq!(s, section, "{message}");
            assert!(message.contains(what), "{message}");
        }
        Err(e) => panic!("another error: {e}"),
        Ok(r) => panic!(
            "accepted ({:?}, changed {:?}) instead of an error about {section}",
            r.outcome, r.changed_functions
        ),
    }
}

/// Every case whose patch object carries entries of a given special section, diffed with a
/// wrong size for it, is refused: the check must hold for every such section of the corpus, not
/// only one. (A size is only checked where it is used: a wrong one for a table the patch takes
/// nothing from cannot corrupt the output.)
fn wrong_size_everywhere(section: &str, wrong: impl Fn(u64) -> u64, what: &[&str]) {
    let mut seen = 0;
    for c in lp_testutil::cases() {
        let (orig, patched) = read(&c);
        let right_opts = opts(&c);
        let Ok(r) = diff(&orig, &patched, &right_opts) else {
            continue; // a size of the corpus that does not fit this pair (see corpus.rs)
        };
        let carries = r.output.as_deref().is_some_and(|out| {
            let obj = lp_elf::Object::parse(out).unwrap();
            obj.section_by_name(section)
                .is_some_and(|i| obj.sections[i].size() > 0)
        });
        if !carries {
            continue;
        }
        let mut o = right_opts;
        let right = o.entry_sizes[section];
        o.entry_sizes.insert(section.to_string(), wrong(right));
        match diff(&orig, &patched, &o) {
            Err(DiffError::EntrySize { message, .. })
                if what.iter().any(|w| message.contains(w)) => {}
            Err(e) => panic!("{}: another error: {e}", c.name),
            Ok(r) => panic!(
                "{}: {section} with {} bytes instead of {right} accepted ({:?})",
                c.name,
                wrong(right),
                r.outcome
            ),
        }
        seen += 1;
    }
    assert!(seen >= 2, "only {seen} cases carry {section}");
    eprintln!("{section}: {seen} cases");
}

#[test]
fn wrong_jump_table_entry_size_is_an_error_in_every_case() {
    // 16-byte entries read as 24 and 24-byte ones as 16 (the two layouts kernels have had).
    wrong_size_everywhere(
        "__jump_table",
        |right| if right == 16 { 24 } else { 16 },
        &[
            "not relocated like",
            "no relocation at its start",
            "crosses",
        ],
    );
}

#[test]
fn wrong_bug_table_entry_size_is_an_error_in_every_case() {
    wrong_size_everywhere(
        "__bug_table",
        |right| right + 4,
        &[
            "not relocated like",
            "no relocation at its start",
            "crosses",
        ],
    );
}

#[test]
fn wrong_orc_entry_size_is_an_error_in_every_case() {
    // `.orc_unwind` has no relocations: only its length against `.orc_unwind_ip` can tell.
    wrong_size_everywhere(
        ".orc_unwind",
        |right| right * 2,
        &["sh_entsize", "must be parallel"],
    );
}

#[test]
fn orc_unwind_shorter_than_orc_unwind_ip_is_an_error() {
    let c = case(CASE);
    let (orig, mut patched) = read(&c);
    let idx = section_index(&patched, ".orc_unwind");
    // Half of its entries gone: sh_size halved (rounded to whole entries).
    let size = u64_at(&patched, shdr(&patched, idx) + 32);
    set_shdr_u64(&mut patched, idx, 32, size / 12 * 6);
    entry_size_error(
        diff(&orig, &patched, &opts(&c)),
        ".orc_unwind",
        "must be parallel",
    );
}

#[test]
fn section_entsize_disagreeing_with_the_given_size_is_an_error() {
    let c = case(CASE);
    let (orig, mut patched) = read(&c);
    let idx = section_index(&patched, "__bug_table");
    set_shdr_u64(&mut patched, idx, 56, 16);
    entry_size_error(
        diff(&orig, &patched, &opts(&c)),
        "__bug_table",
        "sh_entsize is 16",
    );
}

/// A 64-byte ELF header of an x86_64 relocatable object with no section at all.
fn no_sections() -> Vec<u8> {
    let mut h = vec![0u8; 64];
    h[..4].copy_from_slice(b"\x7fELF");
    h[4] = 2; // ELFCLASS64
    h[5] = 1; // little-endian
    h[6] = 1; // EV_CURRENT
    h[16..18].copy_from_slice(&1u16.to_le_bytes()); // ET_REL
    h[18..20].copy_from_slice(&62u16.to_le_bytes()); // EM_X86_64
    h[20..24].copy_from_slice(&1u32.to_le_bytes());
    h[52..54].copy_from_slice(&64u16.to_le_bytes()); // e_ehsize
    h[58..60].copy_from_slice(&64u16.to_le_bytes()); // e_shentsize
    h
}

#[test]
fn objects_without_sections_are_an_error_not_no_change() {
    let empty = no_sections();
    let c = case(CASE);
    let (orig, _) = read(&c);
    for (a, b) in [(&empty, &empty), (&orig, &empty), (&empty, &orig)] {
        match diff(a, b, &opts(&c)) {
            Err(DiffError::Elf { .. }) => {}
            Err(e) => panic!("another error: {e}"),
            Ok(r) => panic!("accepted as {:?}", r.outcome),
        }
    }
}

#[test]
fn unrelated_objects_give_a_warning() {
    let a = case("ASSERT_RTNL-detect");
    let b = case("meminfo-string");
    let (orig, _) = read(&a);
    let (other, _) = read(&b);
    let r = diff(&orig, &other, &opts(&a)).unwrap();
    assert!(
        r.warnings
            .iter()
            .any(|w| w.message.contains("look unrelated")),
        "{:?}: {:?}",
        r.outcome,
        r.warnings
    );
    // A real pair gives no such warning.
    for c in lp_testutil::cases() {
        let (orig, patched) = read(&c);
        if let Ok(r) = diff(&orig, &patched, &opts(&c)) {
            assert!(
                !r.warnings
                    .iter()
                    .any(|w| w.message.contains("look unrelated")),
                "{}: {:?}",
                c.name,
                r.warnings
            );
        }
    }
}

/// With no size given, a table whose own `sh_entsize` is set is read with it (objtool sets it on
/// the ORC tables): the same patch object as with the size given.
#[test]
fn section_entsize_is_used_when_no_size_is_given() {
    let c = case(CASE);
    let (orig, mut patched) = read(&c);
    let given = diff(&orig, &patched, &opts(&c)).unwrap();
    assert_eq!(given.outcome, Outcome::Patch);
    let idx = section_index(&patched, ".orc_unwind");
    set_shdr_u64(&mut patched, idx, 56, 6);
    let mut o = opts(&c);
    o.entry_sizes.remove(".orc_unwind");
    let own = diff(&orig, &patched, &o).unwrap();
    assert_eq!(own.outcome, Outcome::Patch, "{:?}", own.errors);
    // Only the header's sh_entsize differs.
    let sections = |b: &[u8]| {
        let obj = lp_elf::Object::parse(b).unwrap();
        obj.sections
            .iter()
            .map(|s| (s.name_str().into_owned(), s.data.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        sections(given.output.as_deref().unwrap()),
        sections(own.output.as_deref().unwrap())
    );
}

/// An LLVM bitcode object (what a clang LTO kernel's objects are until the final link) on either
/// side is the typed error that says so, not "malformed" and not a panic: raw bitcode and the
/// bitcode wrapper, each as orig and as patched.
#[test]
fn llvm_bitcode_is_its_own_error() {
    let c = case(CASE);
    let (orig, patched) = read(&c);
    let mut raw = b"BC\xc0\xde\x35\x14\x00\x00\x05\x00\x00\x00\x62\x0c\x30\x24".to_vec();
    raw.resize(4096, 0);
    let mut wrapper = vec![0xde, 0xc0, 0x17, 0x0b, 0, 0, 0, 0, 0x14, 0, 0, 0];
    wrapper.extend_from_slice(&raw);
    for bc in [&raw, &wrapper] {
        for (which, o, p) in [("orig", bc, &patched), ("patched", &orig, bc)] {
            let e = diff(o, p, &opts(&c)).expect_err("bitcode must not diff");
            assert!(e.is_llvm_bitcode(), "{which}: {e}");
            let msg = e.to_string();
            assert!(msg.starts_with(which), "{msg}");
            assert!(msg.contains("LLVM bitcode") && msg.contains("LTO"), "{msg}");
        }
    }
    // A truncated ELF file stays "malformed", not bitcode.
    let e = diff(&orig[..10], &patched, &opts(&c)).expect_err("truncated");
    assert!(!e.is_llvm_bitcode(), "{e}");
}
