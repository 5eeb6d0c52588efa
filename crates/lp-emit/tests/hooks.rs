//! hooks-macros/lp-hooks.h compiled with gcc and kernel-like flags (userspace build, no
//! `__KERNEL__`): every macro puts the entry docs/CONTRACTS.md describes in the section it
//! names, and wrong callback types do not compile.

mod common;

use common::*;
use lp_elf::{Object, SymSection};
use std::path::Path;

const KERNEL_FLAGS: &[&str] = &[
    "-std=gnu11",
    "-O2",
    "-fno-pic",
    "-mcmodel=kernel",
    "-mno-red-zone",
    "-ffunction-sections",
    "-fdata-sections",
    "-Wall",
    "-Werror",
    "-Wno-unused-parameter",
];

const SOURCE: &str = r#"#include "kpatch-macros.h"

static int pre_a(struct klp_object *obj) { return 0; }
static int pre_b(struct klp_object *obj) { return -1; }
int pre_global(struct klp_object *obj) { return 0; }
static void post_a(struct klp_object *obj) { }
static void post_b(struct klp_object *obj) { }
static void unpatch_a(struct klp_object *obj) { }
static void gone_a(struct klp_object *obj) { }
static void gone_b(struct klp_object *obj) { }
static void load_a(void) { }
static void unload_a(void) { }
static void load_b(void) { }
void noisy(void) { }

LP_PRE_PATCH_CALLBACK(pre_a);
KPATCH_PRE_PATCH_CALLBACK(pre_b);
KLP_PRE_PATCH_CALLBACK(pre_global);
LP_POST_PATCH_CALLBACK(post_a);
KPATCH_POST_PATCH_CALLBACK(post_b);
KLP_PRE_UNPATCH_CALLBACK(unpatch_a);
LP_POST_UNPATCH_CALLBACK(gone_a);
KLP_POST_UNPATCH_CALLBACK(gone_b);
KPATCH_PRE_UNPATCH_CALLBACK(unpatch_a);
KPATCH_POST_UNPATCH_CALLBACK(gone_a);
KLP_POST_PATCH_CALLBACK(post_a);
LP_PRE_UNPATCH_CALLBACK(unpatch_a);
KPATCH_LOAD_HOOK(load_a);
LP_LOAD_HOOK(load_b);
KPATCH_UNLOAD_HOOK(unload_a);
LP_UNLOAD_HOOK(unload_a);
LP_STATE(0x1234567890UL, 3);
LP_STATE(7, 1);
LP_IGNORE_FUNCTION(noisy);
KPATCH_IGNORE_FUNCTION(post_b);
LP_IGNORE_SECTION(".text.unlikely");
KPATCH_IGNORE_SECTION(".data.once");
"#;

/// The 1-based line of the first line of `SOURCE` that starts with `prefix`.
fn line_of(prefix: &str) -> u64 {
    SOURCE
        .lines()
        .position(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("{prefix} not in the source")) as u64
        + 1
}

fn compile(dir: &Path, name: &str, source: &str) -> std::process::Output {
    std::fs::write(dir.join(name), source).unwrap();
    run(cc()
        .current_dir(dir)
        .args(KERNEL_FLAGS)
        .arg("-I")
        .arg(hooks_dir())
        .args(["-c", "-o", "out.o", name]))
}

/// The name of the function a relocation in `sec` at `offset` points to.
fn target(o: &Object, sec: &str, offset: u64) -> String {
    let s = o.section_by_name(sec).unwrap();
    let map = o.reloc_section_map();
    let r = o
        .relocs_for(&map, s)
        .iter()
        .find(|r| r.offset == offset)
        .unwrap_or_else(|| panic!("no relocation at {sec}+{offset}"));
    assert_eq!(r.r_type, R_64, "{sec}+{offset}");
    let sym = &o.symbols[r.sym as usize];
    if !sym.is_section() {
        assert_eq!(r.addend, 0);
        return sym.name_str().into_owned();
    }
    // Against a section symbol: the function (or string) at the addend in that section.
    let idx = sym.section_index().unwrap();
    if let Some(f) = o.symbols.iter().find(|f| {
        f.section == SymSection::Section(idx as u32)
            && f.value == r.addend as u64
            && (f.is_func() || f.is_object())
    }) {
        return f.name_str().into_owned();
    }
    let bytes = o.sections[idx].bytes();
    let start = r.addend as usize;
    let end = bytes[start..].iter().position(|&b| b == 0).unwrap() + start;
    format!("\"{}\"", String::from_utf8_lossy(&bytes[start..end]))
}

/// `(function, order)` of each 16-byte entry of `sec`, sorted by order.
fn entries(o: &Object, sec: &str) -> Vec<(String, u64)> {
    let s = o
        .section_by_name(sec)
        .unwrap_or_else(|| panic!("no section {sec}"));
    let data = o.sections[s].bytes();
    assert_eq!(data.len() % 16, 0, "{sec} is an array of 16-byte entries");
    let mut v: Vec<_> = (0..data.len() as u64 / 16)
        .map(|k| {
            let at = (k * 16 + 8) as usize;
            let order = u64::from_le_bytes(data[at..at + 8].try_into().unwrap());
            (target(o, sec, k * 16), order)
        })
        .collect();
    v.sort_by_key(|e| e.1);
    v
}

#[test]
fn every_macro_emits_its_entry() {
    let dir = tempfile::tempdir().unwrap();
    let out = compile(dir.path(), "patch.c", SOURCE);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let o = Object::parse(&std::fs::read(dir.path().join("out.o")).unwrap()).unwrap();

    let at = |name: &str, macro_call: &str| (name.to_string(), line_of(macro_call));
    assert_eq!(
        entries(&o, ".lp.callbacks.pre_patch"),
        [
            at("pre_a", "LP_PRE_PATCH_CALLBACK(pre_a)"),
            at("pre_b", "KPATCH_PRE_PATCH_CALLBACK(pre_b)"),
            at("pre_global", "KLP_PRE_PATCH_CALLBACK(pre_global)"),
        ]
    );
    assert_eq!(
        entries(&o, ".lp.callbacks.post_patch"),
        [
            at("post_a", "LP_POST_PATCH_CALLBACK(post_a)"),
            at("post_b", "KPATCH_POST_PATCH_CALLBACK(post_b)"),
            at("post_a", "KLP_POST_PATCH_CALLBACK(post_a)"),
        ]
    );
    assert_eq!(
        entries(&o, ".lp.callbacks.pre_unpatch"),
        [
            at("unpatch_a", "KLP_PRE_UNPATCH_CALLBACK(unpatch_a)"),
            at("unpatch_a", "KPATCH_PRE_UNPATCH_CALLBACK(unpatch_a)"),
            at("unpatch_a", "LP_PRE_UNPATCH_CALLBACK(unpatch_a)"),
        ]
    );
    assert_eq!(
        entries(&o, ".lp.callbacks.post_unpatch"),
        [
            at("gone_a", "LP_POST_UNPATCH_CALLBACK(gone_a)"),
            at("gone_b", "KLP_POST_UNPATCH_CALLBACK(gone_b)"),
            at("gone_a", "KPATCH_POST_UNPATCH_CALLBACK(gone_a)"),
        ]
    );
    assert_eq!(
        entries(&o, ".lp.hooks.load"),
        [
            at("load_a", "KPATCH_LOAD_HOOK(load_a)"),
            at("load_b", "LP_LOAD_HOOK(load_b)")
        ]
    );
    assert_eq!(
        entries(&o, ".lp.hooks.unload"),
        [
            at("unload_a", "KPATCH_UNLOAD_HOOK(unload_a)"),
            at("unload_a", "LP_UNLOAD_HOOK(unload_a)"),
        ]
    );

    // States: 16 bytes each, {id, version, reserved}, no relocations.
    let s = o.section_by_name(".lp.states").unwrap();
    let data = o.sections[s].bytes();
    assert_eq!(data.len(), 32);
    let mut states: Vec<(u64, u32, u32)> = data
        .chunks(16)
        .map(|e| {
            (
                u64::from_le_bytes(e[0..8].try_into().unwrap()),
                u32::from_le_bytes(e[8..12].try_into().unwrap()),
                u32::from_le_bytes(e[12..16].try_into().unwrap()),
            )
        })
        .collect();
    states.sort();
    assert_eq!(states, [(7, 1, 0), (0x12_3456_7890, 3, 0)]);
    assert!(o.relocs_for(&o.reloc_section_map(), s).is_empty());

    // Ignores: 8-byte pointers.
    let mut ignored_functions = vec![
        target(&o, ".lp.ignore.functions", 0),
        target(&o, ".lp.ignore.functions", 8),
    ];
    ignored_functions.sort();
    assert_eq!(ignored_functions, ["noisy", "post_b"]);
    let f = o.section_by_name(".lp.ignore.functions").unwrap();
    assert_eq!(o.sections[f].size(), 16);
    let mut ignored_sections = vec![
        target(&o, ".lp.ignore.sections", 0),
        target(&o, ".lp.ignore.sections", 8),
    ];
    ignored_sections.sort();
    assert_eq!(ignored_sections, ["\".data.once\"", "\".text.unlikely\""]);

    // Nothing in kpatch's sections, and every entry has a name of its own.
    assert!(o
        .sections
        .iter()
        .all(|s| !s.name_str().starts_with(".kpatch")));
    let mut names: Vec<_> = o
        .symbols
        .iter()
        .filter(|s| s.name_str().starts_with("__lp_"))
        .map(|s| s.name_str().into_owned())
        .collect();
    let n = names.len();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), n);
    assert_eq!(n, 3 * 4 + 4 + 2 + 2 + 2);
}

#[test]
fn wrong_types_do_not_compile() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "static void f(struct klp_object *o) { }\nLP_PRE_PATCH_CALLBACK(f);\n",
            "int fn(struct klp_object *) for a pre_patch callback",
        ),
        (
            "static int f(struct klp_object *o) { return 0; }\nKPATCH_POST_PATCH_CALLBACK(f);\n",
            "void fn(struct klp_object *) for a post_patch callback",
        ),
        (
            "static int f(struct klp_object *o) { return 0; }\nKLP_PRE_UNPATCH_CALLBACK(f);\n",
            "void fn(struct klp_object *) for a pre_unpatch callback",
        ),
        (
            "static void f(void) { }\nLP_POST_UNPATCH_CALLBACK(f);\n",
            "void fn(struct klp_object *) for a post_unpatch callback",
        ),
        (
            "static void f(struct klp_object *o) { }\nKPATCH_LOAD_HOOK(f);\n",
            "void fn(void) for a load hook",
        ),
        (
            "static int f(void) { return 0; }\nKPATCH_UNLOAD_HOOK(f);\n",
            "void fn(void) for an unload hook",
        ),
        ("LP_STATE(0, 1);\n", "the state id must not be 0"),
        (
            "void f(void) { }\nKPATCH_FORCE_UNSAFE(f);\n",
            "livepatch has no per-function force",
        ),
    ];
    for (body, message) in cases {
        let source = format!("#include \"lp-hooks.h\"\n{body}");
        let out = compile(dir.path(), "bad.c", &source);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "compiled:\n{source}");
        assert!(stderr.contains(message), "{source}\n{stderr}");
    }
}

#[test]
fn the_right_types_compile_through_function_pointers_too() {
    let dir = tempfile::tempdir().unwrap();
    let source = "#include \"lp-hooks.h\"\n\
                  static int f(struct klp_object *o) { return 0; }\n\
                  int (*const fp)(struct klp_object *) = f;\n\
                  LP_PRE_PATCH_CALLBACK(f);\n";
    let out = compile(dir.path(), "ok.c", source);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
