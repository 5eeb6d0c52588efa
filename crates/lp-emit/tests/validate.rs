//! One test per loader rule: a correct converted module, broken in one way, must give exactly
//! the problem that rule describes.

mod common;

use common::*;
use lp_elf::klp::{SHF_RELA_LIVEPATCH, SHN_LIVEPATCH};
use lp_elf::{Object, Reloc, SectionData, SymSection};
use lp_emit::{convert_klp_relocs, validate, Problem, ValidateContext};
use std::collections::{HashMap, HashSet};

fn good() -> Object {
    let out = convert_klp_relocs(&bytes(&sample_module(&sample_entries()))).unwrap();
    Object::parse(&out).unwrap()
}

fn check(o: &Object) -> Vec<Problem> {
    validate(&bytes(o), &ValidateContext::default())
}

/// Exactly one problem, on `section`/`symbol`, whose message contains `needle`.
fn expect_one(problems: &[Problem], section: &str, symbol: &str, needle: &str) {
    let all = problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    assert_eq!(problems.len(), 1, "{all}");
    let p = &problems[0];
    assert_eq!(
        (p.section.as_str(), p.symbol.as_str()),
        (section, symbol),
        "{all}"
    );
    assert!(p.message.contains(needle), "{all}");
}

const VML: &str = ".klp.rela.vmlinux..text.patched";
const NFSD: &str = ".klp.rela.nfsd..text.patched";

fn sec(o: &Object, name: &str) -> usize {
    o.section_by_name(name).unwrap()
}

#[test]
fn good_module_has_no_problem() {
    assert!(check(&good()).is_empty());
}

#[test]
fn unreadable_input() {
    let p = validate(b"\x7fELF\x02\x01", &ValidateContext::default());
    assert_eq!(p.len(), 1);
    assert!(p[0].message.starts_with("not a readable ELF object"));
}

#[test]
fn not_relocatable() {
    let mut o = good();
    o.e_type = object::elf::ET_EXEC.0;
    expect_one(&check(&o), "", "", "not ET_REL");
}

#[test]
fn no_modinfo() {
    let mut o = good();
    let m = sec(&o, ".modinfo");
    o.sections[m].name = b".modinfo.old".to_vec();
    expect_one(&check(&o), ".modinfo", "", "no .modinfo section");
}

#[test]
fn livepatch_flag_on_a_section_not_named_klp() {
    let mut o = good();
    let r = sec(&o, ".rela.text.patched");
    o.sections[r].flags |= SHF_RELA_LIVEPATCH;
    expect_one(
        &check(&o),
        ".rela.text.patched",
        "",
        "SHF_RELA_LIVEPATCH on a section not named",
    );
}

#[test]
fn klp_section_without_the_flag() {
    let mut o = good();
    let k = sec(&o, NFSD);
    o.sections[k].flags &= !SHF_RELA_LIVEPATCH;
    expect_one(&check(&o), NFSD, "", "no SHF_RELA_LIVEPATCH flag");
}

#[test]
fn klp_section_of_the_wrong_type() {
    let mut o = good();
    let k = sec(&o, NFSD);
    o.sections[k].sh_type = object::elf::SHT_PROGBITS.0;
    o.sections[k].data = SectionData::Bytes(vec![0; 24]);
    expect_one(&check(&o), NFSD, "", "is not SHT_RELA");
}

#[test]
fn klp_section_not_alloc() {
    let mut o = good();
    let k = sec(&o, NFSD);
    o.sections[k].flags &= !ALLOC;
    expect_one(&check(&o), NFSD, "", "not SHF_ALLOC");
}

#[test]
fn klp_section_with_a_bad_target() {
    for info in [0u32, 8 /* .symtab placeholder */] {
        let mut o = good();
        let k = sec(&o, NFSD);
        let symtab = o.symtab_index().unwrap() as u32;
        o.sections[k].info = if info == 0 { 0 } else { symtab };
        expect_one(&check(&o), NFSD, "", "is not a code or data section");
    }
}

#[test]
fn klp_section_targeting_a_section_not_loaded() {
    let mut o = good();
    let t = sec(&o, ".text.patched");
    o.sections[t].flags &= !ALLOC;
    let p = check(&o);
    assert_eq!(p.len(), 2, "{p:?}");
    assert!(p
        .iter()
        .all(|p| p.message.contains("is not SHF_ALLOC: the kernel skips")));
}

#[test]
fn module_klp_section_targeting_init_text() {
    let mut o = good();
    let t = sec(&o, ".text.patched");
    o.sections[t].name = b".init.text".to_vec();
    let p = check(&o);
    // Only the module-specific section is a problem: vmlinux relocations apply before init.
    expect_one(
        &p,
        ".klp.rela.nfsd..text.patched",
        "",
        "freed after the module's init",
    );
}

#[test]
fn klp_relocation_against_an_ordinary_symbol() {
    let mut o = good();
    let k = sec(&o, NFSD);
    let printk = o.symbols.iter().position(|s| s.name == b"printk").unwrap() as u32;
    if let SectionData::Relocs { relocs, .. } = &mut o.sections[k].data {
        relocs[0].sym = printk;
    }
    expect_one(
        &check(&o),
        NFSD,
        "printk",
        "not marked as a livepatch symbol",
    );
}

#[test]
fn klp_relocation_of_an_unknown_type() {
    let mut o = good();
    let k = sec(&o, NFSD);
    if let SectionData::Relocs { relocs, .. } = &mut o.sections[k].data {
        relocs[0].r_type = object::elf::R_X86_64_GOTPCREL.0;
    }
    expect_one(
        &check(&o),
        NFSD,
        ".klp.sym.nfsd.nfsd_helper,0",
        "is not one the x86_64 module loader applies",
    );
}

#[test]
fn klp_place_not_zero() {
    let mut o = good();
    let t = sec(&o, ".text.patched");
    if let SectionData::Bytes(b) = &mut o.sections[t].data {
        b[0x33] = 0x90;
    }
    expect_one(
        &check(&o),
        NFSD,
        ".klp.sym.nfsd.nfsd_helper,0",
        "existing value is nonzero",
    );
}

#[test]
fn klp_place_past_the_end() {
    let mut o = good();
    let k = sec(&o, NFSD);
    if let SectionData::Relocs { relocs, .. } = &mut o.sections[k].data {
        relocs[0].offset = 60;
    }
    expect_one(
        &check(&o),
        NFSD,
        ".klp.sym.nfsd.nfsd_helper,0",
        "past the end of .text.patched",
    );
}

#[test]
fn klp_place_also_relocated_ordinarily() {
    let mut o = good();
    let r = sec(&o, ".rela.text.patched");
    let printk = o.symbols.iter().position(|s| s.name == b"printk").unwrap() as u32;
    // The new field's bytes are zero, as the loader requires of every place.
    let t = sec(&o, ".text.patched");
    if let SectionData::Bytes(b) = &mut o.sections[t].data {
        b[0x0e..0x10].fill(0);
    }
    if let SectionData::Relocs { relocs, .. } = &mut o.sections[r].data {
        relocs.push(Reloc {
            offset: 0x0e,
            sym: printk,
            r_type: R_PC32,
            addend: -4,
        });
    }
    // 0x0e..0x12 overlaps the klp field at 0x10..0x14 (and not the one at 0x8..0xc).
    expect_one(
        &check(&o),
        VML,
        ".klp.sym.vmlinux.secret_func,0",
        "also relocated by an ordinary relocation",
    );
}

#[test]
fn ordinary_relocation_against_a_livepatch_symbol() {
    let mut o = good();
    let r = sec(&o, ".rela.text.patched");
    let klp = o
        .symbols
        .iter()
        .position(|s| s.section == SymSection::Special(SHN_LIVEPATCH))
        .unwrap() as u32;
    if let SectionData::Relocs { relocs, .. } = &mut o.sections[r].data {
        relocs[0].sym = klp;
    }
    let p = check(&o);
    expect_one(
        &p,
        ".rela.text.patched",
        &o.symbols[klp as usize].name_str(),
        "applies it with value 0",
    );
}

#[test]
fn livepatch_name_without_livepatch_index() {
    let mut o = good();
    let i = o
        .symbols
        .iter()
        .position(|s| s.name == b".klp.sym.nfsd.nfsd_helper,0")
        .unwrap();
    o.symbols[i].section = SymSection::Undef;
    o.symbols[i].st_shndx = 0;
    let p = check(&o);
    assert_eq!(p.len(), 2, "{p:?}");
    assert!(p[0].message.contains("named like a livepatch symbol"));
    assert!(p[1].message.contains("not marked as a livepatch symbol"));
}

#[test]
fn leftover_metadata_of_any_kind() {
    for name in [
        ".lp.callbacks.pre_patch",
        ".kpatch.hooks.load",
        ".lp.states",
    ] {
        let mut o = good();
        o.push_section(section(
            name,
            object::elf::SHT_PROGBITS.0,
            ALLOC | WRITE,
            8,
            SectionData::Bytes(vec![0; 16]),
        ));
        expect_one(&check(&o), name, "", "metadata left in the module");
    }
}

#[test]
fn exports_rule_skips_weak_and_got_and_livepatch_symbols() {
    let mut o = good();
    o.push_symbol(symbol(
        "maybe_there",
        object::elf::STB_WEAK.0,
        object::elf::STT_NOTYPE.0,
        SymSection::Undef,
        0,
    ));
    o.push_symbol(symbol(
        "_GLOBAL_OFFSET_TABLE_",
        object::elf::STB_GLOBAL.0,
        object::elf::STT_NOTYPE.0,
        SymSection::Undef,
        0,
    ));
    o.sort_symbols_locals_first();
    let ctx = ValidateContext {
        exports: Some(HashSet::from(["printk".to_string()])),
        symbol_counts: None,
        crcs: None,
        vermagic: None,
        code_tables: None,
    };
    assert!(validate(&bytes(&o), &ctx).is_empty());
}

#[test]
fn every_problem_is_reported() {
    let mut o = good();
    let m = sec(&o, ".modinfo");
    o.sections[m].data = SectionData::Bytes(b"license=GPL\0".to_vec());
    let k = sec(&o, NFSD);
    o.sections[k].flags &= !ALLOC;
    let i = o
        .symbols
        .iter()
        .position(|s| s.name == b".klp.sym.vmlinux.secret_var,2")
        .unwrap();
    o.symbols[i].name = b".klp.sym.vmlinux.secret_var".to_vec();
    let p = check(&o);
    assert_eq!(p.len(), 3, "{p:?}");
}

// ---- CONFIG_MODVERSIONS: __versions against Module.symvers ----

/// `struct modversion_info` entries as modpost writes them into `<module>.mod.c`.
fn versions(entries: &[(&str, u64)]) -> Vec<u8> {
    let mut v = Vec::new();
    for (name, crc) in entries {
        v.extend_from_slice(&crc.to_le_bytes());
        let mut n = name.as_bytes().to_vec();
        n.resize(56, 0);
        v.extend_from_slice(&n);
    }
    v
}

fn with_versions(data: Vec<u8>) -> Object {
    let mut o = good();
    o.push_section(section(
        "__versions",
        object::elf::SHT_PROGBITS.0,
        ALLOC,
        32,
        SectionData::Bytes(data),
    ));
    o
}

fn modversions_kernel() -> ValidateContext {
    ValidateContext {
        crcs: Some(HashMap::from([
            ("printk".to_string(), 0x8a7c_1b2d),
            ("module_layout".to_string(), 0x0f3e_2d11),
            ("unused_export".to_string(), 0x1234_5678),
        ])),
        ..ValidateContext::default()
    }
}

#[test]
fn versions_matching_the_kernel_pass() {
    let o = with_versions(versions(&[
        ("module_layout", 0x0f3e_2d11),
        ("printk", 0x8a7c_1b2d),
    ]));
    assert!(validate(&bytes(&o), &modversions_kernel()).is_empty());
    // A kernel without MODVERSIONS (no CRCs known, or all zero) checks nothing.
    assert!(validate(&bytes(&good()), &ValidateContext::default()).is_empty());
    let no_crcs = ValidateContext {
        crcs: Some(HashMap::new()),
        ..ValidateContext::default()
    };
    assert!(validate(&bytes(&good()), &no_crcs).is_empty());
}

#[test]
fn versions_with_another_crc_are_refused_as_the_loader_would() {
    let o = with_versions(versions(&[
        ("module_layout", 0x0f3e_2d11),
        ("printk", 0x8a7c_1b2e),
    ]));
    expect_one(
        &validate(&bytes(&o), &modversions_kernel()),
        "__versions",
        "printk",
        "disagrees about version of symbol",
    );
    // The loader compares the whole unsigned long: high bits set are a mismatch too.
    let o = with_versions(versions(&[
        ("module_layout", 0x0f3e_2d11),
        ("printk", 0x1_8a7c_1b2d),
    ]));
    expect_one(
        &validate(&bytes(&o), &modversions_kernel()),
        "__versions",
        "printk",
        "disagrees about version of symbol",
    );
}

#[test]
fn versions_missing_an_entry_or_the_section() {
    let o = with_versions(versions(&[("module_layout", 0x0f3e_2d11)]));
    expect_one(
        &validate(&bytes(&o), &modversions_kernel()),
        "__versions",
        "printk",
        "no symbol version for",
    );
    let o = with_versions(versions(&[("printk", 0x8a7c_1b2d)]));
    expect_one(
        &validate(&bytes(&o), &modversions_kernel()),
        "__versions",
        "module_layout",
        "no symbol version for",
    );
    expect_one(
        &validate(&bytes(&good()), &modversions_kernel()),
        "__versions",
        "",
        "CONFIG_MODVERSIONS",
    );
}

#[test]
fn malformed_versions_are_reported_not_trusted() {
    let mut data = versions(&[("printk", 0x8a7c_1b2d)]);
    data.pop();
    expect_one(
        &validate(&bytes(&with_versions(data)), &modversions_kernel()),
        "__versions",
        "",
        "not a multiple of 64",
    );
    let mut data = versions(&[("printk", 0x8a7c_1b2d)]);
    for b in &mut data[8..] {
        *b = b'x';
    }
    expect_one(
        &validate(&bytes(&with_versions(data)), &modversions_kernel()),
        "__versions",
        "",
        "not NUL-terminated",
    );
}

// ---- vermagic against the kernel's VERMAGIC_STRING (same_magic) ----

fn with_modinfo(o: &mut Object, modinfo: &[u8]) {
    let m = sec(o, ".modinfo");
    o.sections[m].data = SectionData::Bytes(modinfo.to_vec());
}

fn kernel_magic(magic: &str) -> ValidateContext {
    ValidateContext {
        vermagic: Some(magic.to_string()),
        ..ValidateContext::default()
    }
}

#[test]
fn vermagic_must_equal_the_kernels() {
    const K: &str = "6.12.57 SMP mod_unload ";
    let mut o = good();
    with_modinfo(&mut o, b"livepatch=Y\0vermagic=6.12.57 SMP mod_unload \0");
    assert!(validate(&bytes(&o), &kernel_magic(K)).is_empty());
    // Another configuration (no SMP): refused, naming both strings.
    with_modinfo(&mut o, b"livepatch=Y\0vermagic=6.12.57 mod_unload \0");
    expect_one(
        &validate(&bytes(&o), &kernel_magic(K)),
        ".modinfo",
        "",
        "vermagic `6.12.57 mod_unload ` is not the kernel's `6.12.57 SMP mod_unload `",
    );
    // Without __versions the release counts too.
    with_modinfo(&mut o, b"livepatch=Y\0vermagic=6.12.58 SMP mod_unload \0");
    expect_one(
        &validate(&bytes(&o), &kernel_magic(K)),
        ".modinfo",
        "",
        "is not the kernel's",
    );
    with_modinfo(&mut o, b"livepatch=Y\0");
    expect_one(
        &validate(&bytes(&o), &kernel_magic(K)),
        ".modinfo",
        "",
        "no vermagic",
    );
}

#[test]
fn vermagic_with_versions_ignores_the_release_like_the_kernel() {
    const K: &str = "6.12.57 SMP mod_unload modversions ";
    let mut o = with_versions(versions(&[("printk", 1)]));
    with_modinfo(
        &mut o,
        b"livepatch=Y\0vermagic=6.12.58 SMP mod_unload modversions \0",
    );
    assert!(validate(&bytes(&o), &kernel_magic(K)).is_empty());
    with_modinfo(&mut o, b"livepatch=Y\0vermagic=6.12.57 SMP mod_unload \0");
    expect_one(
        &validate(&bytes(&o), &kernel_magic(K)),
        ".modinfo",
        "",
        "is not the kernel's",
    );
}

// The loader's rules before livepatch: machine, `struct module`, ordinary relocations.

#[test]
fn module_of_another_machine() {
    let mut o = good();
    o.e_machine = object::elf::EM_RISCV.0;
    expect_one(&check(&o), "", "", "none of the architectures");
}

/// The loader rules are the module's architecture's: x86_64's relocation types in a module
/// marked aarch64 are types the arm64 loader refuses.
#[test]
fn relocation_types_are_checked_against_the_modules_architecture() {
    let mut o = good();
    assert!(check(&o).is_empty());
    o.e_machine = object::elf::EM_AARCH64.0;
    let problems = check(&o);
    assert!(!problems.is_empty());
    for p in &problems {
        assert!(
            p.message
                .contains("not one the aarch64 module loader applies"),
            "{p}"
        );
    }
}

#[test]
fn module_without_this_module_section() {
    let mut o = good();
    let m = sec(&o, ".gnu.linkonce.this_module");
    o.sections[m].name = b".gnu.linkonce.other".to_vec();
    expect_one(
        &check(&o),
        ".gnu.linkonce.this_module",
        "",
        "No module found in object",
    );
}

#[test]
fn ordinary_relocation_past_the_end_of_its_section() {
    let mut o = good();
    let r = sec(&o, ".rela.text.patched");
    if let SectionData::Relocs { relocs, .. } = &mut o.sections[r].data {
        relocs[0].offset = 62; // a 4-byte field in a 64-byte section
    }
    expect_one(
        &check(&o),
        ".rela.text.patched",
        "printk",
        "does no bounds check",
    );
}

#[test]
fn ordinary_relocation_of_an_unknown_type() {
    let mut o = good();
    let r = sec(&o, ".rela.text.patched");
    if let SectionData::Relocs { relocs, .. } = &mut o.sections[r].data {
        relocs[0].r_type = 200;
    }
    expect_one(
        &check(&o),
        ".rela.text.patched",
        "printk",
        "Unknown rela relocation",
    );
}

#[test]
fn ordinary_place_not_zero() {
    let mut o = good();
    let t = sec(&o, ".text.patched");
    if let SectionData::Bytes(b) = &mut o.sections[t].data {
        b[0x21] = 0x90;
    }
    expect_one(
        &check(&o),
        ".rela.text.patched",
        "printk",
        "existing value is nonzero",
    );
}

#[test]
fn ordinary_relocation_section_with_its_target_out_of_range() {
    let o = good();
    let r = sec(&o, ".rela.text.patched");
    let mut b = bytes(&o);
    // sh_info of the section header (the writer refuses to write it wrong).
    let shoff = u64::from_le_bytes(b[0x28..0x30].try_into().unwrap()) as usize;
    let at = shoff + r * 64 + 44;
    b[at..at + 4].copy_from_slice(&999u32.to_le_bytes());
    expect_one(
        &validate(&b, &ValidateContext::default()),
        ".rela.text.patched",
        "",
        "runs unrelocated",
    );
}
