//! Real objects of a Linux 7.2 kernel (`tests/data/linux-7.2-print-once/`): 7.x's x86_64
//! `WARN_ONCE()` refers from the code to its own `__bug_table` entry, which must travel with the
//! patched function and stay its own.

use lp_diff::{diff, DiffOptions, Outcome};
use std::path::Path;

const BUG_ENTRY: u64 = 16; // sizeof(struct bug_entry) in that kernel

#[test]
fn warn_once_refers_to_its_own_bug_table_entry() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/linux-7.2-print-once");
    let orig = std::fs::read(dir.join("orig.o")).unwrap();
    let patched = std::fs::read(dir.join("patched.o")).unwrap();
    let opts = DiffOptions {
        object_name: "vmlinux".into(),
        source_name: "fs/proc/inode.o".into(),
        entry_sizes: [("__bug_table".to_string(), BUG_ENTRY)].into(),
        ..Default::default()
    };
    let r = diff(&orig, &patched, &opts).unwrap();
    let errors: Vec<String> = r.errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(r.outcome, Outcome::Patch, "{errors:?}");
    assert_eq!(r.changed_functions, ["proc_show_options"]);

    let out = lp_elf::Object::parse(r.output.as_ref().unwrap()).unwrap();
    let map = out.reloc_section_map();
    let tab = out.section_by_name("__bug_table").expect("a __bug_table");
    // One entry of the file's two: proc_show_options' WARN_ONCE (the other is another function's).
    assert_eq!(out.sections[tab].size(), BUG_ENTRY);
    let text = out
        .section_by_name(".text.proc_show_options")
        .expect("the patched function");
    // The entry is anchored in the patched function...
    let anchor = out
        .relocs_for(&map, tab)
        .iter()
        .find(|r| r.offset == 0)
        .unwrap();
    assert_eq!(out.symbols[anchor.sym as usize].section_index(), Some(text));
    // ...and the function's `lea` points at that copy (PC32, from the end of the displacement).
    let refs: Vec<_> = out
        .relocs_for(&map, text)
        .iter()
        .filter(|r| out.symbols[r.sym as usize].section_index() == Some(tab))
        .collect();
    assert_eq!(refs.len(), 1, "{refs:?}");
    assert_eq!(refs[0].r_type, object::elf::R_X86_64_PC32.0);
    assert_eq!(refs[0].addend, -4);
}
