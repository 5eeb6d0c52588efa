//! The post-link pass on a module built in memory: the result is checked with lp_elf and with
//! goblin (an independent parser), then against the loader's rules.

mod common;

use common::*;
use lp_elf::klp::{SHF_RELA_LIVEPATCH, SHN_LIVEPATCH};
use lp_elf::{Object, Reloc, SectionData, SymSection};
use lp_emit::{convert_klp_relocs, validate, EmitError, Problem, ValidateContext};
use std::collections::{BTreeMap, HashMap, HashSet};

fn converted() -> Vec<u8> {
    convert_klp_relocs(&bytes(&sample_module(&sample_entries()))).expect("convert")
}

/// A context that knows the kernel: `printk` exported; positions of the sample's symbols.
fn full_context() -> ValidateContext {
    let mut counts = BTreeMap::new();
    counts.insert(
        "vmlinux".to_string(),
        HashMap::from([
            ("secret_func".to_string(), 1),
            ("secret_var".to_string(), 3),
        ]),
    );
    counts.insert(
        "nfsd".to_string(),
        HashMap::from([("nfsd_helper".to_string(), 1)]),
    );
    ValidateContext {
        exports: Some(HashSet::from(["printk".to_string()])),
        symbol_counts: Some(counts),
        crcs: None,
        vermagic: None,
        code_tables: None,
    }
}

fn messages(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn converts_entries_into_klp_sections_and_symbols() {
    let out = converted();
    let o = Object::parse(&out).unwrap();

    // Metadata gone, and its section symbols with it.
    for s in &o.sections {
        let n = s.name_str();
        assert!(!n.contains(".lp."), "leftover {n}");
    }
    assert!(o.symbols.iter().all(|s| match s.section {
        SymSection::Section(i) => !o.sections[i as usize].name_str().starts_with(".lp."),
        _ => true,
    }));

    let text = o.section_by_name(".text.patched").unwrap();
    let vml = o
        .section_by_name(".klp.rela.vmlinux..text.patched")
        .unwrap();
    let nfsd = o.section_by_name(".klp.rela.nfsd..text.patched").unwrap();
    let symtab = o.symtab_index().unwrap();
    for &k in &[vml, nfsd] {
        let s = &o.sections[k];
        assert_eq!(s.sh_type, object::elf::SHT_RELA.0);
        assert_eq!(s.flags, ALLOC | INFO_LINK | SHF_RELA_LIVEPATCH);
        assert_eq!(s.info as usize, text);
    }

    let sym_named = |name: &str| -> u32 {
        o.symbols
            .iter()
            .position(|s| s.name == name.as_bytes())
            .unwrap_or_else(|| panic!("no symbol {name}")) as u32
    };
    let func = sym_named(".klp.sym.vmlinux.secret_func,0");
    let var = sym_named(".klp.sym.vmlinux.secret_var,2");
    let helper = sym_named(".klp.sym.nfsd.nfsd_helper,0");
    for &i in &[func, var, helper] {
        let s = &o.symbols[i as usize];
        assert_eq!(s.section, SymSection::Special(SHN_LIVEPATCH));
        assert_eq!(s.st_bind(), object::elf::STB_GLOBAL.0);
        assert_eq!(s.value, 0);
    }
    // One symbol per distinct name.
    let klp_syms = o
        .symbols
        .iter()
        .filter(|s| s.section == SymSection::Special(SHN_LIVEPATCH))
        .count();
    assert_eq!(klp_syms, 3);

    assert_eq!(
        o.sections[vml].relocs().unwrap(),
        &[
            Reloc {
                offset: 0x1,
                sym: func,
                r_type: R_PLT32,
                addend: -4
            },
            Reloc {
                offset: 0x8,
                sym: var,
                r_type: R_PC32,
                addend: -4
            },
            Reloc {
                offset: 0x10,
                sym: func,
                r_type: R_PLT32,
                addend: -4
            },
        ]
    );
    assert_eq!(
        o.sections[nfsd].relocs().unwrap(),
        &[Reloc {
            offset: 0x32,
            sym: helper,
            r_type: R_64,
            addend: 16
        }]
    );
    // The ordinary relocation still refers to printk.
    let rt = o.section_by_name(".rela.text.patched").unwrap();
    let r = o.sections[rt].relocs().unwrap()[0];
    assert_eq!(o.symbols[r.sym as usize].name_str(), "printk");
    assert_eq!(o.sections[rt].info as usize, text);

    // goblin, independently.
    let g = goblin::elf::Elf::parse(&out).unwrap();
    let shname = |i: usize| {
        g.shdr_strtab
            .get_at(g.section_headers[i].sh_name)
            .unwrap_or("")
    };
    let gvml = (0..g.section_headers.len())
        .find(|&i| shname(i) == ".klp.rela.vmlinux..text.patched")
        .unwrap();
    let h = &g.section_headers[gvml];
    assert_eq!(h.sh_type, goblin::elf::section_header::SHT_RELA);
    assert_eq!(h.sh_flags, 0x2 | 0x40 | 0x0010_0000);
    assert_eq!(shname(h.sh_info as usize), ".text.patched");
    assert_eq!(h.sh_entsize, 24);
    assert_eq!(h.sh_link as usize, symtab);
    assert!((0..g.section_headers.len())
        .all(|i| !shname(i).starts_with(".lp.") && !shname(i).starts_with(".rela.lp.")));
    let (_, relocs) = g.shdr_relocs.iter().find(|(i, _)| *i == gvml).unwrap();
    let got: Vec<_> = relocs
        .iter()
        .map(|r| {
            let sym = g.syms.get(r.r_sym).unwrap();
            (
                r.r_offset,
                r.r_type,
                r.r_addend.unwrap_or(0),
                g.strtab.get_at(sym.st_name).unwrap_or("").to_string(),
                sym.st_shndx,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                0x1,
                R_PLT32,
                -4,
                ".klp.sym.vmlinux.secret_func,0".to_string(),
                0xff20
            ),
            (
                0x8,
                R_PC32,
                -4,
                ".klp.sym.vmlinux.secret_var,2".to_string(),
                0xff20
            ),
            (
                0x10,
                R_PLT32,
                -4,
                ".klp.sym.vmlinux.secret_func,0".to_string(),
                0xff20
            ),
        ]
    );
    // Locals first: the symtab's sh_info counts them, and no local follows a global.
    let symtab_hdr = &g.section_headers[symtab];
    let nlocal = symtab_hdr.sh_info as usize;
    assert!(g
        .syms
        .iter()
        .skip(nlocal)
        .all(|s| s.st_bind() != goblin::elf::sym::STB_LOCAL));
    assert!(g
        .syms
        .iter()
        .take(nlocal)
        .all(|s| s.st_bind() == goblin::elf::sym::STB_LOCAL));
}

#[test]
fn converted_module_passes_validation() {
    let problems = validate(&converted(), &full_context());
    assert!(problems.is_empty(), "{}", messages(&problems));
    let problems = validate(&converted(), &ValidateContext::default());
    assert!(problems.is_empty(), "{}", messages(&problems));
}

#[test]
fn unconverted_module_fails_validation() {
    let problems = validate(
        &bytes(&sample_module(&sample_entries())),
        &ValidateContext::default(),
    );
    let text = messages(&problems);
    assert!(
        text.contains(".lp.klp_relocs: lp-build metadata left"),
        "{text}"
    );
    assert!(
        text.contains(".rela.lp.klp_relocs: lp-build metadata left"),
        "{text}"
    );
    assert!(
        text.contains(".lp.klp_strs: lp-build metadata left"),
        "{text}"
    );
}

#[test]
fn no_metadata_means_no_change() {
    let mut o = sample_module(&[]);
    o.remove_sections(&[KLP_RELOCS, KLP_STRS]).unwrap();
    let input = bytes(&o);
    assert_eq!(convert_klp_relocs(&input).unwrap(), input);
}

#[test]
fn empty_table_only_removes_the_metadata() {
    let out = convert_klp_relocs(&bytes(&sample_module(&[]))).unwrap();
    let o = Object::parse(&out).unwrap();
    assert!(o.sections.iter().all(|s| !s.name_str().contains(".lp.")));
    assert!(o
        .sections
        .iter()
        .all(|s| !s.name_str().starts_with(".klp.")));
    assert!(validate(&out, &ValidateContext::default()).is_empty());
}

#[test]
fn existing_livepatch_symbols_are_reused() {
    let mut o = sample_module(&sample_entries());
    // An undefined reference of the same name, as another tool might leave it.
    o.push_symbol(symbol(
        ".klp.sym.vmlinux.secret_var,2",
        object::elf::STB_GLOBAL.0,
        object::elf::STT_NOTYPE.0,
        SymSection::Undef,
        0,
    ));
    let out = convert_klp_relocs(&bytes(&o)).unwrap();
    let c = Object::parse(&out).unwrap();
    let named: Vec<_> = c
        .symbols
        .iter()
        .filter(|s| s.name == b".klp.sym.vmlinux.secret_var,2")
        .collect();
    assert_eq!(named.len(), 1);
    assert_eq!(named[0].section, SymSection::Special(SHN_LIVEPATCH));
}

#[test]
fn refuses_a_table_that_is_not_whole_entries() {
    let mut o = sample_module(&sample_entries());
    if let SectionData::Bytes(b) = &mut o.sections[KLP_RELOCS].data {
        b.extend_from_slice(&[0; 8]);
    }
    match convert_klp_relocs(&bytes(&o)) {
        Err(EmitError::BadEntryTable { size: 136, .. }) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn refuses_missing_relocations() {
    for (drop, field) in [(0u64, "place"), (8, "name"), (32 + 8, "name")] {
        let mut o = sample_module(&sample_entries());
        if let SectionData::Relocs { relocs, .. } = &mut o.sections[RELA_KLP_RELOCS].data {
            relocs.retain(|r| r.offset != drop);
        }
        match convert_klp_relocs(&bytes(&o)) {
            Err(EmitError::MissingReloc {
                field: f, entry, ..
            }) => {
                assert_eq!(f, field);
                assert_eq!(entry, drop / 32);
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn refuses_names_the_kernel_does_not_parse() {
    for bad in [
        ".klp.sym.vmlinux_secret_func,0", // no '.' after the object
        ".klp.sym.vmlinux.secret_func",   // no position
        ".klp.sym.vmlinux.secret_func,x", // position not a number
        ".klp.sym..secret_func,0",        // empty object
        "secret_func",                    // no prefix
    ] {
        let mut entries = sample_entries();
        entries[1].name = bad.to_string();
        match convert_klp_relocs(&bytes(&sample_module(&entries))) {
            Err(EmitError::BadName { name, entry: 1, .. }) => assert_eq!(name, bad),
            other => panic!("{bad}: {other:?}"),
        }
    }
    let long = format!(".klp.sym.{}.x,0", "m".repeat(56));
    let mut entries = sample_entries();
    entries[0].name = long;
    assert!(matches!(
        convert_klp_relocs(&bytes(&sample_module(&entries))),
        Err(EmitError::BadName { entry: 0, .. })
    ));
}

#[test]
fn refuses_places_that_do_not_resolve() {
    // Undefined symbol.
    let mut entries = sample_entries();
    entries[2].place = PlaceSym::Undefined;
    entries[2].place_addend = 0;
    match convert_klp_relocs(&bytes(&sample_module(&entries))) {
        Err(EmitError::BadPlace {
            entry: 2,
            symbol,
            message,
            ..
        }) => {
            assert_eq!(symbol, "printk");
            assert!(message.contains("undefined"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    // Past the end of the section.
    let mut entries = sample_entries();
    entries[0].place_addend = 62;
    match convert_klp_relocs(&bytes(&sample_module(&entries))) {
        Err(EmitError::BadPlace {
            entry: 0, message, ..
        }) => {
            assert!(message.contains("past the end"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    // A type the loader does not apply.
    let mut entries = sample_entries();
    entries[1].r_type = object::elf::R_X86_64_GOTPCREL.0;
    assert!(matches!(
        convert_klp_relocs(&bytes(&sample_module(&entries))),
        Err(EmitError::UnsupportedType {
            entry: 1,
            r_type: 9,
            ..
        })
    ));
    // The same place twice.
    let mut entries = sample_entries();
    entries[3].place_addend = 1;
    assert!(matches!(
        convert_klp_relocs(&bytes(&sample_module(&entries))),
        Err(EmitError::DuplicatePlace { offset: 1, .. })
    ));
}

#[test]
fn refuses_relocations_the_format_does_not_have() {
    let mut o = sample_module(&sample_entries());
    if let SectionData::Relocs { relocs, .. } = &mut o.sections[RELA_KLP_RELOCS].data {
        relocs[0].r_type = R_PC32;
    }
    assert!(matches!(
        convert_klp_relocs(&bytes(&o)),
        Err(EmitError::UnexpectedReloc { offset: 0, .. })
    ));
    let mut o = sample_module(&sample_entries());
    if let SectionData::Relocs { relocs, .. } = &mut o.sections[RELA_KLP_RELOCS].data {
        relocs.push(Reloc {
            offset: 16,
            sym: SYM_TEXT,
            r_type: R_64,
            addend: 0,
        });
    }
    assert!(matches!(
        convert_klp_relocs(&bytes(&o)),
        Err(EmitError::UnexpectedReloc { offset: 16, .. })
    ));
}

#[test]
fn refuses_a_symbol_elsewhere_that_points_into_the_metadata() {
    let mut o = sample_module(&sample_entries());
    if let SectionData::Relocs { relocs, .. } = &mut o.sections[RELA_TEXT].data {
        relocs.push(Reloc {
            offset: 0x28,
            sym: SYM_STRS,
            r_type: R_PC32,
            addend: 0,
        });
    }
    assert!(matches!(
        convert_klp_relocs(&bytes(&o)),
        Err(EmitError::Edit(_))
    ));
}

#[test]
fn garbage_is_an_error() {
    assert!(matches!(
        convert_klp_relocs(b"not elf"),
        Err(EmitError::Read(_))
    ));
    let good = bytes(&sample_module(&sample_entries()));
    for cut in [20, 64, 200, good.len() / 2, good.len() - 1] {
        let _ = convert_klp_relocs(&good[..cut]);
        let _ = validate(&good[..cut], &ValidateContext::default());
    }
}

// ---- validate on broken variants of the converted module ----

fn converted_object() -> Object {
    Object::parse(&converted()).unwrap()
}

fn klp_symbol_index(o: &Object, name: &str) -> usize {
    o.symbols
        .iter()
        .position(|s| s.name == name.as_bytes())
        .unwrap()
}

#[test]
fn validate_catches_bad_object_names() {
    // A symbol of another object in a section of vmlinux.
    let mut o = converted_object();
    let i = klp_symbol_index(&o, ".klp.sym.vmlinux.secret_var,2");
    o.symbols[i].name = b".klp.sym.nfsd.secret_var,2".to_vec();
    let text = messages(&validate(&bytes(&o), &ValidateContext::default()));
    assert!(
        text.contains("symbol of object `nfsd` in a section of object `vmlinux`"),
        "{text}"
    );

    // A dash in an object name.
    let mut o = converted_object();
    let i = klp_symbol_index(&o, ".klp.sym.nfsd.nfsd_helper,0");
    o.symbols[i].name = b".klp.sym.nfs-d.nfsd_helper,0".to_vec();
    let k = o.section_by_name(".klp.rela.nfsd..text.patched").unwrap();
    o.sections[k].name = b".klp.rela.nfs-d..text.patched".to_vec();
    let text = messages(&validate(&bytes(&o), &ValidateContext::default()));
    assert!(text.contains("object name `nfs-d` has '-'"), "{text}");

    // An object name longer than the kernel reads.
    let mut o = converted_object();
    let k = o.section_by_name(".klp.rela.nfsd..text.patched").unwrap();
    o.sections[k].name = format!(".klp.rela.{}..text.patched", "n".repeat(56)).into_bytes();
    let text = messages(&validate(&bytes(&o), &ValidateContext::default()));
    assert!(
        text.contains("not `.klp.rela.<objname>.<section>` as the kernel parses it"),
        "{text}"
    );
}

#[test]
fn validate_catches_names_without_a_dot() {
    let mut o = converted_object();
    let i = klp_symbol_index(&o, ".klp.sym.vmlinux.secret_func,0");
    o.symbols[i].name = b".klp.sym.vmlinux_secret_func,0".to_vec();
    let problems = validate(&bytes(&o), &ValidateContext::default());
    let p = problems
        .iter()
        .find(|p| p.symbol == ".klp.sym.vmlinux_secret_func,0")
        .unwrap_or_else(|| panic!("{}", messages(&problems)));
    assert!(p.message.contains("incorrectly formatted name"), "{p}");

    let mut o = converted_object();
    let k = o
        .section_by_name(".klp.rela.vmlinux..text.patched")
        .unwrap();
    o.sections[k].name = b".klp.rela.vmlinux".to_vec();
    let text = messages(&validate(&bytes(&o), &ValidateContext::default()));
    assert!(
        text.contains(".klp.rela.vmlinux: not `.klp.rela.<objname>.<section>`"),
        "{text}"
    );
}

#[test]
fn validate_catches_missing_livepatch_modinfo() {
    let mut o = converted_object();
    let m = o.section_by_name(".modinfo").unwrap();
    o.sections[m].data = SectionData::Bytes(b"license=GPL\0livepatch=N\0".to_vec());
    let problems = validate(&bytes(&o), &ValidateContext::default());
    assert_eq!(problems.len(), 1, "{}", messages(&problems));
    assert_eq!(problems[0].section, ".modinfo");
    assert!(problems[0].message.contains("no `livepatch=Y`"));
}

#[test]
fn validate_catches_module_sections_referring_to_vmlinux() {
    let mut o = converted_object();
    let vml = o
        .section_by_name(".klp.rela.vmlinux..text.patched")
        .unwrap();
    let nfsd = o.section_by_name(".klp.rela.nfsd..text.patched").unwrap();
    let moved = o.sections[vml].relocs().unwrap()[1];
    if let SectionData::Relocs { relocs, .. } = &mut o.sections[vml].data {
        relocs.remove(1);
    }
    if let SectionData::Relocs { relocs, .. } = &mut o.sections[nfsd].data {
        relocs.push(moved);
    }
    let problems = validate(&bytes(&o), &ValidateContext::default());
    assert_eq!(problems.len(), 1, "{}", messages(&problems));
    assert_eq!(problems[0].section, ".klp.rela.nfsd..text.patched");
    assert_eq!(problems[0].symbol, ".klp.sym.vmlinux.secret_var,2");
    assert!(problems[0]
        .message
        .contains("invalid access to vmlinux symbol"));
}

#[test]
fn validate_catches_ambiguous_and_impossible_positions() {
    let mut ctx = full_context();
    let counts = ctx.symbol_counts.as_mut().unwrap();
    counts
        .get_mut("vmlinux")
        .unwrap()
        .insert("secret_func".into(), 2);
    counts
        .get_mut("vmlinux")
        .unwrap()
        .insert("secret_var".into(), 1);
    counts.get_mut("nfsd").unwrap().remove("nfsd_helper");
    let problems = validate(&converted(), &ctx);
    let find = |sym: &str| {
        problems
            .iter()
            .find(|p| p.symbol == sym)
            .unwrap_or_else(|| panic!("no problem for {sym}: {}", messages(&problems)))
            .message
            .clone()
    };
    assert!(find(".klp.sym.vmlinux.secret_func,0").contains("ambiguous"));
    assert!(find(".klp.sym.vmlinux.secret_var,2").contains("has only 1"));
    assert!(find(".klp.sym.nfsd.nfsd_helper,0").contains("does not exist in nfsd"));
    assert_eq!(problems.len(), 3, "{}", messages(&problems));
}

#[test]
fn validate_catches_unexported_undefined_symbols() {
    let mut ctx = full_context();
    ctx.exports = Some(HashSet::new());
    let problems = validate(&converted(), &ctx);
    assert_eq!(problems.len(), 1, "{}", messages(&problems));
    assert_eq!(problems[0].symbol, "printk");
    assert!(problems[0].message.contains("Unknown symbol"));
}

/// Two patch objects linked by GNU ld as kbuild links a module (`ld -r`): the tables and
/// strings of both are concatenated, section-symbol addends and offsets are rebased, and the
/// pass must still find every place.
#[test]
fn survives_a_real_ld_r_link() {
    let dir = tempfile::tempdir().unwrap();
    let a = sample_module(&sample_entries());
    let mut b = sample_module(&[
        entry(
            PlaceSym::TextSection,
            0x4,
            ".klp.sym.vmlinux.other,0",
            R_PC32,
            -4,
        ),
        entry(
            PlaceSym::GlobalFunc,
            0x18,
            ".klp.sym.vmlinux.secret_func,0",
            R_PLT32,
            -4,
        ),
    ]);
    b.symbols[SYM_FOO as usize].name = b"__lp_f_bar".to_vec();
    // b keeps ordinary stand-ins at its places through the link, as objtool needs.
    add_stand_ins(&mut b, &[(0x4, R_PC32, None), (0x18, R_PLT32, None)]);
    std::fs::write(dir.path().join("a.o"), bytes(&a)).unwrap();
    std::fs::write(dir.path().join("b.o"), bytes(&b)).unwrap();
    let linked = dir.path().join("linked.ko");
    run_ok(
        std::process::Command::new("ld")
            .arg("-r")
            .arg("-o")
            .arg(&linked)
            .arg(dir.path().join("a.o"))
            .arg(dir.path().join("b.o")),
    );
    let out = convert_klp_relocs(&std::fs::read(&linked).unwrap()).unwrap();
    let o = Object::parse(&out).unwrap();
    let text = o.section_by_name(".text.patched").unwrap();
    assert_eq!(
        o.sections[text].size(),
        128,
        "ld placed both texts in one section"
    );
    let got = |secname: &str| -> Vec<(u64, u32, i64, String)> {
        let k = o.section_by_name(secname).unwrap();
        assert_eq!(o.sections[k].info as usize, text);
        o.sections[k]
            .relocs()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r.offset,
                    r.r_type,
                    r.addend,
                    o.symbols[r.sym as usize].name_str().into_owned(),
                )
            })
            .collect()
    };
    let s = |x: &str| x.to_string();
    assert_eq!(
        got(".klp.rela.vmlinux..text.patched"),
        [
            (0x1, R_PLT32, -4, s(".klp.sym.vmlinux.secret_func,0")),
            (0x8, R_PC32, -4, s(".klp.sym.vmlinux.secret_var,2")),
            (0x10, R_PLT32, -4, s(".klp.sym.vmlinux.secret_func,0")),
            (64 + 0x4, R_PC32, -4, s(".klp.sym.vmlinux.other,0")),
            (64 + 0x18, R_PLT32, -4, s(".klp.sym.vmlinux.secret_func,0")),
        ]
    );
    assert_eq!(
        got(".klp.rela.nfsd..text.patched"),
        [(0x32, R_64, 16, s(".klp.sym.nfsd.nfsd_helper,0"))]
    );
    let problems = validate(&out, &ValidateContext::default());
    assert!(problems.is_empty(), "{}", messages(&problems));
    // And readelf (binutils), a third reader, accepts the result.
    std::fs::write(dir.path().join("out.ko"), &out).unwrap();
    let re = run_ok(
        std::process::Command::new("readelf")
            .arg("-W")
            .arg("-r")
            .arg("-s")
            .arg(dir.path().join("out.ko")),
    );
    let text = String::from_utf8_lossy(&re.stdout);
    assert!(
        text.contains("Relocation section '.klp.rela.vmlinux..text.patched'"),
        "{text}"
    );
    assert!(text.contains(".klp.sym.nfsd.nfsd_helper,0"), "{text}");
    assert!(
        !String::from_utf8_lossy(&re.stderr).contains("Error"),
        "{}",
        String::from_utf8_lossy(&re.stderr)
    );
}

#[test]
fn link_time_stand_ins_are_removed() {
    let mut o = sample_module(&sample_entries());
    add_stand_ins(
        &mut o,
        &[
            (0x1, R_PLT32, None),
            (0x10, R_PLT32, None),
            (0x8, R_PC32, Some(".klp.sym.vmlinux.secret_var,2")),
        ],
    );
    let out = convert_klp_relocs(&bytes(&o)).unwrap();
    let c = Object::parse(&out).unwrap();
    // Only the relocation to printk is left in .rela.text.patched.
    let rt = c.section_by_name(".rela.text.patched").unwrap();
    let left: Vec<_> = c.sections[rt]
        .relocs()
        .unwrap()
        .iter()
        .map(|r| c.symbols[r.sym as usize].name_str().into_owned())
        .collect();
    assert_eq!(left, ["printk"]);
    // The placeholder stays; the undefined stand-in became the livepatch symbol.
    assert!(c
        .section_by_name(lp_emit::KLP_PLACEHOLDER_SECTION)
        .is_some());
    let named: Vec<_> = c
        .symbols
        .iter()
        .filter(|s| s.name == b".klp.sym.vmlinux.secret_var,2")
        .collect();
    assert_eq!(named.len(), 1);
    assert_eq!(named[0].section, SymSection::Special(SHN_LIVEPATCH));
    let vml = c
        .section_by_name(".klp.rela.vmlinux..text.patched")
        .unwrap();
    assert_eq!(c.sections[vml].relocs().unwrap().len(), 3);
    let problems = validate(&out, &full_context());
    assert!(problems.is_empty(), "{}", messages(&problems));
}

#[test]
fn other_ordinary_relocations_of_a_klp_place_are_refused() {
    // Against an ordinary symbol.
    let mut o = sample_module(&sample_entries());
    add_stand_ins(&mut o, &[(0x1, R_PLT32, Some("printk"))]);
    match convert_klp_relocs(&bytes(&o)) {
        Err(EmitError::DuplicatePlace {
            offset: 1, first, ..
        }) => assert_eq!(first, "printk"),
        other => panic!("{other:?}"),
    }
    // Against the placeholder, but of another type.
    let mut o = sample_module(&sample_entries());
    add_stand_ins(&mut o, &[(0x1, R_PC32, None)]);
    assert!(matches!(
        convert_klp_relocs(&bytes(&o)),
        Err(EmitError::DuplicatePlace { offset: 1, .. })
    ));
}

/// objtool lists every stand-in call in `.call_sites`; the pass keeps the calls into vmlinux and
/// drops those a module's klp relocation completes (applied after the loader patches call
/// sites) and those to a static-call trampoline (objtool never lists them).
#[test]
fn late_and_trampoline_calls_leave_call_sites() {
    let entries = vec![
        entry(
            PlaceSym::TextSection,
            0x1,
            ".klp.sym.vmlinux.secret_func,0",
            R_PLT32,
            -4,
        ),
        entry(
            PlaceSym::TextSection,
            0x11,
            ".klp.sym.nfsd.nfsd_call,0",
            R_PLT32,
            -4,
        ),
        entry(
            PlaceSym::TextSection,
            0x29,
            ".klp.sym.vmlinux.__SCT__tp_func_x,0",
            R_PLT32,
            -4,
        ),
    ];
    let mut o = sample_module(&entries);
    if let SectionData::Bytes(text) = &mut o.sections[TEXT].data {
        for call in [0x0, 0x10, 0x28] {
            text[call] = 0xe8;
        }
    }
    let cs = o.push_section(section(
        ".call_sites",
        object::elf::SHT_PROGBITS.0,
        ALLOC,
        1,
        SectionData::Bytes(vec![0; 12]),
    ));
    let relocs = [0x0, 0x10, 0x28]
        .iter()
        .enumerate()
        .map(|(i, &call)| Reloc {
            offset: i as u64 * 4,
            sym: SYM_TEXT,
            r_type: R_PC32,
            addend: call,
        })
        .collect();
    o.push_section(rela_section(".rela.call_sites", cs, relocs));
    let out = Object::parse(&convert_klp_relocs(&bytes(&o)).unwrap()).unwrap();
    let cs = out.section_by_name(".call_sites").unwrap();
    assert_eq!(out.sections[cs].size(), 4);
    let map = out.reloc_section_map();
    let kept: Vec<(u64, i64)> = out
        .relocs_for(&map, cs)
        .iter()
        .map(|r| (r.offset, r.addend))
        .collect();
    assert_eq!(kept, [(0, 0)]);
}
