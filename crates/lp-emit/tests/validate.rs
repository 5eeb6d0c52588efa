//! One test per loader rule: a correct converted module, broken in one way, must give exactly
//! the problem that rule describes.

mod common;

use common::*;
use lp_elf::klp::{SHF_RELA_LIVEPATCH, SHN_LIVEPATCH};
use lp_elf::{Object, Reloc, SectionData, SymSection};
use lp_emit::{convert_klp_relocs, validate, Problem, ValidateContext};
use std::collections::HashSet;

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
