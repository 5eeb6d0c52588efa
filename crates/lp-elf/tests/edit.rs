//! `Object::remove_sections`: what goes, what is renumbered, and what is refused.

use lp_elf::model::Renumbering;
use lp_elf::{Object, Reloc, Section, SectionData, SymSection, Symbol};
use object::elf;

fn section(name: &str, sh_type: u32, flags: u64, data: SectionData) -> Section {
    Section {
        name: name.as_bytes().to_vec(),
        sh_type,
        flags,
        addr: 0,
        align: 8,
        entsize: 0,
        link: 0,
        info: 0,
        data,
    }
}

fn symbol(name: &str, bind: u8, st_type: u8, section: SymSection, value: u64) -> Symbol {
    let st_shndx = match section {
        SymSection::Section(i) => i as u16,
        SymSection::Undef => 0,
        SymSection::Special(x) => x,
    };
    Symbol {
        name: name.as_bytes().to_vec(),
        info: Symbol::make_info(bind, st_type),
        other: 0,
        st_shndx,
        section,
        value,
        size: 0,
    }
}

const ALLOC: u64 = elf::SHF_ALLOC.0;
const EXEC: u64 = elf::SHF_EXECINSTR.0;
const INFO_LINK: u64 = elf::SHF_INFO_LINK.0;
const LINK_ORDER: u64 = elf::SHF_LINK_ORDER.0;

/// Sections: 1 .text, 2 .meta, 3 .rela.meta, 4 .data, 5 .rela.text, 6 .group, 7 .ord (link-order
/// on .text), 8 .symtab, 9 .strtab, 10 .shstrtab.
/// Symbols: 1 file, 2 .text section, 3 .meta section, 4 meta_label (local, in .meta),
/// 5 data_obj (local, .data), 6 func (global, .text), 7 ext (undefined).
fn sample() -> Object {
    // Written and read once, so header fields the writer derives are as they read back.
    let o = sample_model();
    Object::parse(&o.write().unwrap()).unwrap()
}

fn sample_model() -> Object {
    let mut o = Object::new_relocatable(elf::EM_X86_64.0);
    o.push_section(section(
        ".text",
        elf::SHT_PROGBITS.0,
        ALLOC | EXEC,
        SectionData::Bytes(vec![0x90; 32]),
    ));
    o.push_section(section(
        ".meta",
        elf::SHT_PROGBITS.0,
        ALLOC,
        SectionData::Bytes(vec![0; 16]),
    ));
    let mut rm = section(
        ".rela.meta",
        elf::SHT_RELA.0,
        INFO_LINK,
        SectionData::Relocs {
            is_rela: true,
            relocs: vec![
                Reloc {
                    offset: 0,
                    sym: 2,
                    r_type: elf::R_X86_64_64.0,
                    addend: 4,
                },
                Reloc {
                    offset: 8,
                    sym: 4,
                    r_type: elf::R_X86_64_64.0,
                    addend: 0,
                },
            ],
        },
    );
    rm.info = 2;
    o.push_section(rm);
    o.push_section(section(
        ".data",
        elf::SHT_PROGBITS.0,
        ALLOC | elf::SHF_WRITE.0,
        SectionData::Bytes(vec![1, 2, 3, 4]),
    ));
    let mut rt = section(
        ".rela.text",
        elf::SHT_RELA.0,
        INFO_LINK,
        SectionData::Relocs {
            is_rela: true,
            relocs: vec![
                Reloc {
                    offset: 1,
                    sym: 7,
                    r_type: elf::R_X86_64_PLT32.0,
                    addend: -4,
                },
                Reloc {
                    offset: 8,
                    sym: 5,
                    r_type: elf::R_X86_64_PC32.0,
                    addend: -4,
                },
            ],
        },
    );
    rt.info = 1;
    o.push_section(rt);
    let mut g = section(
        ".group",
        elf::SHT_GROUP.0,
        0,
        SectionData::Group {
            flags: elf::GRP_COMDAT.0,
            members: vec![1, 2, 5],
        },
    );
    g.info = 6;
    g.align = 4;
    o.push_section(g);
    let mut ord = section(
        ".ord",
        elf::SHT_PROGBITS.0,
        ALLOC | LINK_ORDER,
        SectionData::Bytes(vec![0; 8]),
    );
    ord.link = 1;
    o.push_section(ord);
    o.push_section(section(
        ".symtab",
        elf::SHT_SYMTAB.0,
        0,
        SectionData::SymTab,
    ));
    o.push_section(section(
        ".strtab",
        elf::SHT_STRTAB.0,
        0,
        SectionData::StrTab,
    ));
    o.push_section(section(
        ".shstrtab",
        elf::SHT_STRTAB.0,
        0,
        SectionData::ShStrTab,
    ));

    let local = elf::STB_LOCAL.0;
    o.push_symbol(symbol(
        "t.c",
        local,
        elf::STT_FILE.0,
        SymSection::Special(elf::SHN_ABS.0),
        0,
    ));
    o.push_symbol(symbol(
        "",
        local,
        elf::STT_SECTION.0,
        SymSection::Section(1),
        0,
    ));
    o.push_symbol(symbol(
        "",
        local,
        elf::STT_SECTION.0,
        SymSection::Section(2),
        0,
    ));
    o.push_symbol(symbol(
        "meta_label",
        local,
        elf::STT_NOTYPE.0,
        SymSection::Section(2),
        8,
    ));
    o.push_symbol(symbol(
        "data_obj",
        local,
        elf::STT_OBJECT.0,
        SymSection::Section(4),
        0,
    ));
    o.push_symbol(symbol(
        "func",
        elf::STB_GLOBAL.0,
        elf::STT_FUNC.0,
        SymSection::Section(1),
        0,
    ));
    o.push_symbol(symbol(
        "ext",
        elf::STB_GLOBAL.0,
        elf::STT_NOTYPE.0,
        SymSection::Undef,
        0,
    ));
    o
}

#[test]
fn sample_round_trips() {
    let o = sample();
    let back = Object::parse(&o.write().unwrap()).unwrap();
    assert_eq!(back, o);
}

#[test]
fn removing_a_section_takes_its_relocations_and_symbols_and_renumbers_the_rest() {
    let mut o = sample();
    let map = o.remove_sections(&[2]).unwrap();
    assert_eq!(
        map,
        Renumbering {
            sections: vec![
                Some(0),
                Some(1),
                None,
                None,
                Some(2),
                Some(3),
                Some(4),
                Some(5),
                Some(6),
                Some(7),
                Some(8)
            ],
            symbols: vec![
                Some(0),
                Some(1),
                Some(2),
                None,
                None,
                Some(3),
                Some(4),
                Some(5)
            ],
        }
    );
    let names: Vec<_> = o
        .sections
        .iter()
        .map(|s| s.name_str().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "",
            ".text",
            ".data",
            ".rela.text",
            ".group",
            ".ord",
            ".symtab",
            ".strtab",
            ".shstrtab"
        ]
    );
    let rt = &o.sections[3];
    assert_eq!(rt.info, 1);
    assert_eq!(
        rt.relocs().unwrap(),
        &[
            Reloc {
                offset: 1,
                sym: 5,
                r_type: elf::R_X86_64_PLT32.0,
                addend: -4
            },
            Reloc {
                offset: 8,
                sym: 3,
                r_type: elf::R_X86_64_PC32.0,
                addend: -4
            },
        ]
    );
    // Group: member .meta dropped, .rela.text renumbered, signature renumbered.
    assert_eq!(
        o.sections[4].data,
        SectionData::Group {
            flags: elf::GRP_COMDAT.0,
            members: vec![1, 3]
        }
    );
    assert_eq!(o.sections[4].info, 4);
    assert_eq!(o.sections[5].link, 1);
    let data_obj = &o.symbols[3];
    assert_eq!(data_obj.name_str(), "data_obj");
    assert_eq!(data_obj.section, SymSection::Section(2));
    assert_eq!(data_obj.st_shndx, 2);

    // The result writes, reads back identically, and goblin agrees.
    let bytes = o.write().unwrap();
    let back = Object::parse(&bytes).unwrap();
    assert_eq!(back, o);
    let g = goblin::elf::Elf::parse(&bytes).unwrap();
    assert_eq!(g.section_headers.len(), 9);
    let gsym: Vec<_> = g
        .syms
        .iter()
        .map(|s| g.strtab.get_at(s.st_name).unwrap_or(""))
        .collect();
    assert_eq!(gsym, ["", "t.c", "", "data_obj", "func", "ext"]);
    assert_eq!(g.syms.get(3).unwrap().st_shndx, 2);
    let (idx, relocs) = g
        .shdr_relocs
        .iter()
        .find(|(i, _)| *i == 3)
        .expect("goblin sees .rela.text");
    assert_eq!(*idx, 3);
    let r: Vec<_> = relocs.iter().map(|r| (r.r_offset, r.r_sym)).collect();
    assert_eq!(r, [(1, 5), (8, 3)]);
    assert_eq!(g.section_headers[3].sh_info, 1);
    // Local count (symtab sh_info) follows the removal.
    assert_eq!(g.section_headers[6].sh_info, 4);
}

#[test]
fn removing_a_relocation_section_alone_keeps_its_target() {
    let mut o = sample();
    o.remove_sections(&[3]).unwrap();
    assert!(o.section_by_name(".meta").is_some());
    assert!(o.section_by_name(".rela.meta").is_none());
    assert_eq!(o.symbols.len(), 8);
    Object::parse(&o.write().unwrap()).unwrap();
}

#[test]
fn removal_is_refused_when_something_still_refers_to_it() {
    // A relocation elsewhere against a symbol of the removed section.
    let mut o = sample();
    if let SectionData::Relocs { relocs, .. } = &mut o.sections[5].data {
        relocs.push(Reloc {
            offset: 16,
            sym: 4,
            r_type: elf::R_X86_64_PC32.0,
            addend: -4,
        });
    }
    let before = o.clone();
    let err = o.remove_sections(&[2]).unwrap_err().to_string();
    assert!(err.contains("meta_label"), "{err}");
    assert_eq!(o, before, "a refused removal leaves the object unchanged");

    // A link-order section linking to it.
    let mut o = sample();
    o.sections[7].link = 2;
    let err = o.remove_sections(&[2]).unwrap_err().to_string();
    assert!(err.contains(".ord links to removed section 2"), "{err}");

    // A relocation against a section symbol of the removed section names the section.
    let mut o = sample();
    let err = o.remove_sections(&[1]).unwrap_err().to_string();
    assert!(err.contains("section symbol of .text"), "{err}");

    // Tables and the null section stay; out of range is an error, not a panic.
    let mut o = sample();
    assert!(o.remove_sections(&[0]).is_err());
    assert!(o.remove_sections(&[8]).is_err());
    assert!(o.remove_sections(&[10]).is_err());
    assert!(o.remove_sections(&[11]).is_err());
    assert_eq!(o, sample());
}

#[test]
fn removing_nothing_changes_nothing() {
    let mut o = sample();
    let map = o.remove_sections(&[]).unwrap();
    assert_eq!(o, sample());
    assert!(map
        .sections
        .iter()
        .enumerate()
        .all(|(i, m)| *m == Some(i as u32)));
}
