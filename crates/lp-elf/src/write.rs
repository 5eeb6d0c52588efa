//! Writing the model with `object::write::elf::Writer` (two-phase: reserve, then write).
//!
//! Section indices are kept as in the model. The symbol table, its string table, the section name
//! table and `.symtab_shndx` are regenerated where the model has their placeholders (or appended
//! when it has none). Symbols must already be ordered locals first.

use crate::model::*;
use crate::{Error, Result};
use object::elf;
use object::write::elf::{FileHeader, Rel, SectionHeader, SectionIndex, Sym, Writer};
use object::Endianness;

fn werr<T>(msg: impl Into<String>) -> Result<T> {
    Err(Error::Write(msg.into()))
}

impl Object {
    /// Serialises the object.
    pub fn write(&self) -> Result<Vec<u8>> {
        write(self)
    }
}

fn write(obj: &Object) -> Result<Vec<u8>> {
    let nlocal = obj.num_locals();
    if obj.symbols.iter().skip(nlocal).any(|s| s.is_local()) {
        return werr("local symbol after a global one: sort symbols first");
    }
    let nsections = obj.sections.len();
    for (i, s) in obj.sections.iter().enumerate() {
        match &s.data {
            SectionData::Relocs { relocs, .. } => {
                if let Some(r) = relocs.iter().find(|r| r.sym as usize >= obj.symbols.len()) {
                    return werr(format!(
                        "section {i} ({}) relocation refers to missing symbol {}",
                        s.name_str(),
                        r.sym
                    ));
                }
                if s.info as usize >= nsections {
                    return werr(format!(
                        "relocation section {} targets no section",
                        s.name_str()
                    ));
                }
            }
            SectionData::Group { members, .. }
                if members.iter().any(|&m| m as usize >= nsections) =>
            {
                return werr(format!("group {} has a missing member", s.name_str()));
            }
            _ => {}
        }
    }
    for sym in &obj.symbols {
        if let SymSection::Section(i) = sym.section {
            if i as usize >= nsections {
                return werr(format!("symbol {} in missing section {i}", sym.name_str()));
            }
        }
    }

    let mut buffer = Vec::new();
    let endian = if obj.big_endian {
        Endianness::Big
    } else {
        Endianness::Little
    };
    let mut w = Writer::new(endian, true, &mut buffer);
    w.reserve_file_header();

    // Phase 1a: section indices, in model order.
    let mut name_ids = Vec::with_capacity(nsections);
    let mut has = [false; 4]; // symtab, strtab, shstrtab, shndx
    for s in &obj.sections {
        let id = match s.data {
            SectionData::Null => {
                w.reserve_null_section_index();
                None
            }
            SectionData::SymTab => {
                has[0] = true;
                w.reserve_symtab_section_index();
                None
            }
            SectionData::StrTab => {
                has[1] = true;
                w.reserve_strtab_section_index();
                None
            }
            SectionData::ShStrTab => {
                has[2] = true;
                w.reserve_shstrtab_section_index();
                None
            }
            SectionData::SymTabShndx => {
                has[3] = true;
                w.reserve_symtab_shndx_section_index();
                None
            }
            _ => {
                let id = w.add_section_name(&s.name);
                w.reserve_section_index();
                Some(id)
            }
        };
        name_ids.push(id);
    }
    let mut appended = Vec::new();
    if !has[0] {
        appended.push(SectionData::SymTab);
        w.reserve_symtab_section_index();
    }
    if !has[1] {
        appended.push(SectionData::StrTab);
        w.reserve_strtab_section_index();
    }
    if !has[2] {
        appended.push(SectionData::ShStrTab);
        w.reserve_shstrtab_section_index();
    }
    let needs_shndx = obj
        .symbols
        .iter()
        .any(|s| matches!(s.section, SymSection::Section(i) if i >= u32::from(elf::SHN_LORESERVE)));
    if needs_shndx && !has[3] {
        appended.push(SectionData::SymTabShndx);
        w.reserve_symtab_shndx_section_index();
    }

    // Phase 1b: symbols.
    let mut sym_names = Vec::with_capacity(obj.symbols.len());
    for (i, s) in obj.symbols.iter().enumerate() {
        if i == 0 {
            w.reserve_null_symbol_index();
            sym_names.push(None);
            continue;
        }
        sym_names.push(if s.name.is_empty() {
            None
        } else {
            Some(w.add_string(&s.name))
        });
        w.reserve_symbol_index(match s.section {
            SymSection::Section(i) => Some(SectionIndex(i)),
            _ => None,
        });
    }

    // Phase 1c: file ranges, in model order, then the appended tables.
    let mut offsets = vec![0u64; nsections];
    for (i, s) in obj.sections.iter().enumerate() {
        offsets[i] = reserve_data(&mut w, &s.data, s.align)?;
    }
    for d in &appended {
        reserve_data(&mut w, d, 0)?;
    }
    w.reserve_section_headers();

    // Phase 2: write.
    w.write_file_header(&FileHeader {
        os_abi: elf::OsAbi(obj.os_abi),
        abi_version: obj.abi_version,
        e_type: elf::FileType(obj.e_type),
        e_machine: elf::Machine(obj.e_machine),
        e_entry: 0,
        e_flags: elf::FileFlags(obj.e_flags),
    })
    .map_err(|e| Error::Write(e.to_string()))?;
    for s in &obj.sections {
        write_data(&mut w, obj, &s.data, s.align, &sym_names)?;
    }
    for d in &appended {
        write_data(&mut w, obj, d, 0, &sym_names)?;
    }

    let symtab_index = w.symtab_index().0;
    w.write_null_section_header();
    for (i, s) in obj.sections.iter().enumerate() {
        match s.data {
            SectionData::Null => {}
            SectionData::SymTab => w.write_symtab_section_header(nlocal as u32),
            SectionData::StrTab => w.write_strtab_section_header(),
            SectionData::ShStrTab => w.write_shstrtab_section_header(),
            SectionData::SymTabShndx => w.write_symtab_shndx_section_header(),
            _ => {
                let (sh_size, link) = match &s.data {
                    SectionData::Bytes(b) => (b.len() as u64, s.link),
                    SectionData::NoBits(n) => (*n, s.link),
                    SectionData::Relocs { is_rela, relocs } => (
                        relocs.len() as u64 * if *is_rela { 24 } else { 16 },
                        symtab_index,
                    ),
                    SectionData::Group { members, .. } => {
                        ((members.len() as u64 + 1) * 4, symtab_index)
                    }
                    _ => (0, s.link),
                };
                let entsize = match &s.data {
                    SectionData::Relocs { is_rela, .. } => {
                        if *is_rela {
                            24
                        } else {
                            16
                        }
                    }
                    SectionData::Group { .. } => 4,
                    _ => s.entsize,
                };
                let sh_name = w.section_name_offset(name_ids[i]);
                w.write_section_header(&SectionHeader {
                    sh_name,
                    sh_type: elf::SectionType(s.sh_type),
                    sh_flags: elf::SectionFlags(s.flags),
                    sh_addr: s.addr,
                    sh_offset: offsets[i],
                    sh_size,
                    sh_link: link,
                    sh_info: s.info,
                    sh_addralign: s.align,
                    sh_entsize: entsize,
                });
            }
        }
    }
    for d in &appended {
        match d {
            SectionData::SymTab => w.write_symtab_section_header(nlocal as u32),
            SectionData::StrTab => w.write_strtab_section_header(),
            SectionData::ShStrTab => w.write_shstrtab_section_header(),
            SectionData::SymTabShndx => w.write_symtab_shndx_section_header(),
            _ => {}
        }
    }
    drop(w);
    Ok(buffer)
}

/// The largest file-offset alignment the writer pads a section to. `sh_addralign` itself is
/// written unchanged: in a relocatable object it constrains the address the loader chooses, not
/// the file offset. Without the cap, an alignment read from hostile input (2^62) made the writer
/// try to allocate a buffer of that size.
const MAX_FILE_ALIGN: u64 = 4096;

fn pow2_align(align: u64) -> u64 {
    if align.is_power_of_two() {
        align.min(MAX_FILE_ALIGN)
    } else {
        1
    }
}

fn reserve_data(w: &mut Writer<'_>, d: &SectionData, align: u64) -> Result<u64> {
    Ok(match d {
        SectionData::Null | SectionData::NoBits(_) => 0,
        SectionData::Bytes(b) => {
            if b.is_empty() {
                0
            } else {
                w.reserve(b.len() as u64, pow2_align(align))
            }
        }
        SectionData::Relocs { is_rela, relocs } => w.reserve_relocations(relocs.len(), *is_rela),
        SectionData::Group { members, .. } => w.reserve((members.len() as u64 + 1) * 4, 4),
        SectionData::SymTab => {
            w.reserve_symtab();
            0
        }
        SectionData::StrTab => {
            w.reserve_strtab()
                .map_err(|e| Error::Write(e.to_string()))?;
            0
        }
        SectionData::ShStrTab => {
            w.reserve_shstrtab()
                .map_err(|e| Error::Write(e.to_string()))?;
            0
        }
        SectionData::SymTabShndx => {
            w.reserve_symtab_shndx();
            0
        }
    })
}

fn write_data(
    w: &mut Writer<'_>,
    obj: &Object,
    d: &SectionData,
    align: u64,
    sym_names: &[Option<object::write::StringId>],
) -> Result<()> {
    match d {
        SectionData::Null | SectionData::NoBits(_) => {}
        SectionData::Bytes(b) => {
            if !b.is_empty() {
                w.write_align(pow2_align(align));
                w.write(b);
            }
        }
        SectionData::Relocs { is_rela, relocs } => {
            w.write_align_relocation();
            for r in relocs {
                w.write_relocation(
                    *is_rela,
                    &Rel {
                        r_offset: r.offset,
                        r_sym: r.sym,
                        r_type: elf::RelocationType(r.r_type),
                        r_addend: r.addend,
                    },
                );
            }
        }
        SectionData::Group { flags, members } => {
            w.write_align(4);
            w.write(&flags.to_le_bytes());
            for m in members {
                w.write(&m.to_le_bytes());
            }
        }
        SectionData::SymTab => {
            w.write_null_symbol();
            for (i, s) in obj.symbols.iter().enumerate().skip(1) {
                let st_name = w.string_offset(sym_names.get(i).copied().flatten());
                let (section, st_shndx) = match s.section {
                    SymSection::Section(i) => (Some(i), 0),
                    SymSection::Undef => (None, elf::SHN_UNDEF.0),
                    SymSection::Special(x) => (None, x),
                };
                w.write_symbol(&Sym {
                    section,
                    st_name,
                    st_info: elf::SymbolInfo(s.info),
                    st_other: elf::SymbolOther(s.other),
                    st_shndx: elf::SymbolSection(st_shndx),
                    st_value: s.value,
                    st_size: s.size,
                });
            }
        }
        SectionData::StrTab => w.write_strtab(),
        SectionData::ShStrTab => w.write_shstrtab(),
        SectionData::SymTabShndx => {
            w.write_symtab_shndx();
        }
    }
    Ok(())
}
