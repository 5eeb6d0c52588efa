//! Parsing bytes into the model with `object::read::elf` (the low-level API).
//!
//! Every index and size read from the file is checked; nothing here panics on hostile input.

use crate::model::*;
use crate::{Error, Result};
use object::elf;
use object::read::elf::{FileHeader, SectionHeader, Sym};
use object::Endianness;

type Fh = elf::FileHeader64<Endianness>;

fn malformed<T>(msg: impl Into<String>) -> Result<T> {
    Err(Error::Malformed(msg.into()))
}

impl Object {
    /// Parses an ELF64 object (little- or big-endian) (relocatable, or any type for its symbol table).
    pub fn parse(data: &[u8]) -> Result<Object> {
        parse(data, true)
    }

    /// Parses only headers, section names and the symbol table: section contents of
    /// SHT_PROGBITS sections are left empty. For large linked files (vmlinux) whose symbols we
    /// need but whose code we do not.
    pub fn parse_symbols_only(data: &[u8]) -> Result<Object> {
        parse(data, false)
    }
}

fn parse(data: &[u8], contents: bool) -> Result<Object> {
    if crate::is_llvm_bitcode(data) {
        return Err(Error::LlvmBitcode);
    }
    if data.len() < 16 || &data[..4] != b"\x7fELF" {
        return malformed("not an ELF file (bad magic or too short)");
    }
    if data[4] != elf::ELFCLASS64.0 {
        return Err(Error::Unsupported(
            "32-bit ELF; lp-build handles x86_64 (ELF64) objects".into(),
        ));
    }
    let big_endian = data[5] == elf::ELFDATA2MSB.0;
    if !big_endian && data[5] != elf::ELFDATA2LSB.0 {
        return Err(Error::Unsupported(format!("ELF data encoding {}", data[5])));
    }
    let header = Fh::parse(data)?;
    let endian = header.endian()?;
    let sections = header.sections(endian, data)?;
    let symtab = sections.symbols(endian, data, elf::SHT_SYMTAB)?;
    let symtab_index = symtab.section().0;
    let strtab_index = symtab.string_section().0;
    let shndx_index = symtab.shndx_section().0;
    let shstrndx = header.shstrndx(endian, data)?;
    let nsections = sections.len();

    let mut out_sections = Vec::with_capacity(nsections);
    for (index, sh) in sections.enumerate() {
        let i = index.0;
        let name = if i == 0 {
            Vec::new()
        } else {
            sections.section_name(endian, sh)?.to_vec()
        };
        let sh_type = sh.sh_type(endian);
        let data_kind = if i == 0 {
            SectionData::Null
        } else if i == symtab_index && sh_type == elf::SHT_SYMTAB {
            SectionData::SymTab
        } else if shndx_index != 0 && i == shndx_index {
            SectionData::SymTabShndx
        } else if i == shstrndx as usize {
            SectionData::ShStrTab
        } else if strtab_index != 0 && i == strtab_index {
            SectionData::StrTab
        } else if sh_type == elf::SHT_NOBITS {
            SectionData::NoBits(sh.sh_size(endian))
        } else if sh_type == elf::SHT_RELA || sh_type == elf::SHT_REL {
            let is_rela = sh_type == elf::SHT_RELA;
            if sh.sh_link(endian) as usize != symtab_index {
                return malformed(format!(
                    "relocation section {} links to section {}, not the symbol table",
                    String::from_utf8_lossy(&name),
                    sh.sh_link(endian)
                ));
            }
            let relocs = read_relocs(sh, endian, data, is_rela, symtab.len(), &name)?;
            SectionData::Relocs { is_rela, relocs }
        } else if sh_type == elf::SHT_GROUP {
            let (flags, members) = match sh.group(endian, data)? {
                Some(g) => g,
                None => return malformed("unreadable section group"),
            };
            let mut m = Vec::with_capacity(members.len());
            for member in members {
                let idx = member.get(endian);
                if idx as usize >= nsections {
                    return malformed(format!("section group member {idx} out of range"));
                }
                m.push(idx);
            }
            SectionData::Group {
                flags: flags.0,
                members: m,
            }
        } else if !contents && sh_type == elf::SHT_PROGBITS {
            SectionData::Bytes(Vec::new())
        } else {
            SectionData::Bytes(sh.data(endian, data)?.to_vec())
        };
        out_sections.push(Section {
            name,
            sh_type: sh_type.0,
            flags: sh.sh_flags(endian).0,
            addr: sh.sh_addr(endian),
            align: sh.sh_addralign(endian),
            entsize: sh.sh_entsize(endian),
            link: sh.sh_link(endian),
            info: sh.sh_info(endian),
            data: data_kind,
        });
    }
    if out_sections.is_empty() {
        out_sections.push(Object::new_relocatable(0).sections.remove(0));
    }

    let mut symbols = Vec::with_capacity(symtab.len());
    for (index, sym) in symtab.enumerate() {
        let name = symtab.symbol_name(endian, sym)?.to_vec();
        let st_shndx = sym.st_shndx(endian).0;
        let section = if st_shndx == elf::SHN_UNDEF.0 {
            SymSection::Undef
        } else if st_shndx == elf::SHN_XINDEX.0 {
            match symtab.shndx(endian, index) {
                Some(x) if (x as usize) < nsections => SymSection::Section(x),
                Some(x) => return malformed(format!("symbol {} has section {x}", index.0)),
                None => return malformed("SHN_XINDEX symbol without .symtab_shndx"),
            }
        } else if st_shndx >= elf::SHN_LORESERVE {
            SymSection::Special(st_shndx)
        } else if (st_shndx as usize) < nsections {
            SymSection::Section(u32::from(st_shndx))
        } else {
            return malformed(format!(
                "symbol {} refers to section {st_shndx} of {nsections}",
                index.0
            ));
        };
        symbols.push(Symbol {
            name,
            info: sym.st_info().0,
            other: sym.st_other().0,
            st_shndx,
            section,
            value: sym.st_value(endian),
            size: sym.st_size(endian),
        });
    }
    if symbols.is_empty() {
        symbols.push(Object::new_relocatable(0).symbols.remove(0));
    }

    // Group signatures must name a symbol.
    for s in &out_sections {
        if matches!(s.data, SectionData::Group { .. }) && s.info as usize >= symbols.len() {
            return malformed(format!(
                "section group {} has signature symbol {} of {}",
                s.name_str(),
                s.info,
                symbols.len()
            ));
        }
    }

    Ok(Object {
        e_type: header.e_type(endian).0,
        e_machine: header.e_machine(endian).0,
        e_flags: header.e_flags(endian).0,
        os_abi: header.e_ident().os_abi.0,
        abi_version: header.e_ident().abi_version,
        big_endian,
        sections: out_sections,
        symbols,
    })
}

fn read_relocs(
    sh: &elf::SectionHeader64<Endianness>,
    endian: Endianness,
    data: &[u8],
    is_rela: bool,
    nsyms: usize,
    name: &[u8],
) -> Result<Vec<Reloc>> {
    use object::read::elf::{Rel as _, Rela as _};
    let check = |sym: u32| -> Result<u32> {
        if sym as usize >= nsyms.max(1) {
            return malformed(format!(
                "relocation in {} refers to symbol {sym} of {nsyms}",
                String::from_utf8_lossy(name)
            ));
        }
        Ok(sym)
    };
    let mut out = Vec::new();
    if is_rela {
        if let Some((relas, _)) = sh.rela(endian, data)? {
            out.reserve(relas.len());
            for r in relas {
                out.push(Reloc {
                    offset: r.r_offset(endian),
                    sym: check(r.r_sym(endian, false))?,
                    r_type: r.r_type(endian, false).0,
                    addend: r.r_addend(endian),
                });
            }
        }
    } else if let Some((rels, _)) = sh.rel(endian, data)? {
        for r in rels {
            out.push(Reloc {
                offset: r.r_offset(endian),
                sym: check(r.r_sym(endian))?,
                r_type: r.r_type(endian).0,
                addend: 0,
            });
        }
    }
    Ok(out)
}
