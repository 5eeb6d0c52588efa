//! The post-link pass: turns the `.lp.klp_relocs` entries of a linked livepatch module into
//! livepatch relocation sections (docs/CONTRACTS.md, "Livepatch relocations travel through
//! the kbuild link").
//!
//! Each `struct lp_klp_reloc { u64 place; u64 name; u32 type; u32 reserved; s64 addend; }`
//! has an absolute 64-bit relocation (`R_X86_64_64` on x86_64) on `place` (resolving, after the link, to a section and an
//! offset of the module) and one on `name` (into `.lp.klp_strs`). Every entry becomes one
//! relocation in `.klp.rela.<objname>.<target section>` against a `SHN_LIVEPATCH` symbol
//! named by the string; then the metadata sections and their relocation sections are removed.
//! Linkers keep neither `SHF_RELA_LIVEPATCH` nor `SHN_LIVEPATCH`, which is why this runs on
//! the final `.ko`.
//!
//! A place may also carry an ordinary relocation that stood in for the klp relocation during
//! the link, so that objtool (which checks the linked module on IBT and LTO kernels) sees an
//! ordinary call or jump: one against a function in [`KLP_PLACEHOLDER_SECTION`], or against an
//! undefined symbol named as the klp symbol. The pass removes such stand-ins; any other
//! ordinary relocation of a klp place is an error.
//!
//! Nothing here reads or writes a file: bytes in, bytes out.

use crate::EmitError;
use lp_elf::klp::{
    klp_rela_name, parse_klp_rela, parse_klp_sym, KlpRelocEntry, KLP_RELOCS_SECTION,
    KLP_RELOC_ENTRY_SIZE, KLP_STRS_SECTION, SHF_RELA_LIVEPATCH, SHN_LIVEPATCH,
};
use lp_elf::{Object, Reloc, Section, SectionData, SymSection, Symbol};
use object::elf;
use std::collections::{BTreeMap, HashMap};

/// The section of the placeholder function that ordinary link-time stand-in relocations at klp
/// places may refer to (docs/CONTRACTS.md). It stays in the module (objtool generated ORC and
/// other data for it); only the stand-in relocations are removed.
pub const KLP_PLACEHOLDER_SECTION: &str = lp_diff::meta::KLP_PLACEHOLDER_SECTION;

/// The absolute 64-bit relocation type of `e_machine` (what the `place` and `name` fields
/// carry), for the architectures the differ knows.
fn abs64(e_machine: u16) -> Option<u32> {
    lp_diff::arch::for_machine(e_machine).map(|a| a.abs64())
}

/// The size of the field a klp relocation of `r_type` writes: a type the architecture's module
/// loader applies ([`crate::loader`]) and that writes something.
fn klp_field_size(e_machine: u16, r_type: u32) -> Option<u64> {
    crate::loader::for_machine(e_machine)?
        .field_size(r_type)
        .filter(|&n| n > 0)
}

/// One resolved entry, with section indices of the input.
struct Entry {
    objname: String,
    target: usize,
    offset: u64,
    r_type: u32,
    addend: i64,
    name: String,
}

fn symbol_label(obj: &Object, sym: &Symbol) -> String {
    if sym.name.is_empty() {
        let sec = sym
            .section_index()
            .and_then(|i| obj.sections.get(i))
            .map(|s| s.name_str().into_owned())
            .unwrap_or_default();
        format!("section symbol of {sec}")
    } else {
        sym.name_str().into_owned()
    }
}

/// Resolves symbol `sym` + `addend` to (section index, offset).
fn resolve(obj: &Object, sym: &Symbol, addend: i64) -> Result<(usize, u64), String> {
    let Some(section) = sym.section_index().filter(|&i| i != 0) else {
        return Err(match sym.section {
            SymSection::Undef => "the symbol is undefined in the module".to_string(),
            _ => format!("the symbol has special section index {:#x}", sym.st_shndx),
        });
    };
    if obj.sections.get(section).is_none() {
        return Err(format!("the symbol's section {section} does not exist"));
    }
    let offset = i128::from(sym.value) + i128::from(addend);
    let offset = u64::try_from(offset)
        .map_err(|_| format!("value {:#x} + addend {addend} is out of range", sym.value))?;
    Ok((section, offset))
}

fn is_meta(s: &Section) -> bool {
    s.name == KLP_RELOCS_SECTION.as_bytes() || s.name == KLP_STRS_SECTION.as_bytes()
}

/// Reads the entries of one `.lp.klp_relocs` section.
fn read_entries(obj: &Object, index: usize, out: &mut Vec<Entry>) -> Result<(), EmitError> {
    let Some(sec) = obj.sections.get(index) else {
        return Ok(());
    };
    let secname = sec.name_str().into_owned();
    let data = sec.bytes();
    let size = data.len() as u64;
    if !size.is_multiple_of(KLP_RELOC_ENTRY_SIZE) {
        return Err(EmitError::BadEntryTable {
            section: secname,
            size,
            entry_size: KLP_RELOC_ENTRY_SIZE,
        });
    }
    let count = size / KLP_RELOC_ENTRY_SIZE;

    // The relocations of the table, by offset.
    let mut relocs: BTreeMap<u64, Reloc> = BTreeMap::new();
    for rs in obj
        .sections
        .iter()
        .filter(|s| s.is_reloc() && s.info as usize == index)
    {
        let SectionData::Relocs {
            is_rela,
            relocs: list,
        } = &rs.data
        else {
            continue;
        };
        for r in list {
            let unexpected = |message: String| EmitError::UnexpectedReloc {
                section: secname.clone(),
                offset: r.offset,
                message,
            };
            if !is_rela {
                return Err(unexpected(format!(
                    "{} is SHT_REL; x86_64 objects use SHT_RELA",
                    rs.name_str()
                )));
            }
            let field = r.offset % KLP_RELOC_ENTRY_SIZE;
            if r.offset >= size || (field != KlpRelocEntry::PLACE && field != KlpRelocEntry::NAME) {
                return Err(unexpected(
                    "not on the `place` or `name` field of an entry".to_string(),
                ));
            }
            if Some(r.r_type) != abs64(obj.e_machine) {
                return Err(unexpected(format!(
                    "type {} where the format has the absolute 64-bit type",
                    r.r_type
                )));
            }
            if relocs.insert(r.offset, *r).is_some() {
                return Err(unexpected(
                    "a second relocation of the same field".to_string(),
                ));
            }
        }
    }

    let strs_names = KLP_STRS_SECTION.as_bytes();
    for entry in 0..count {
        let base = entry * KLP_RELOC_ENTRY_SIZE;
        let missing = |field| EmitError::MissingReloc {
            section: secname.clone(),
            entry,
            field,
        };
        let place = relocs
            .get(&(base + KlpRelocEntry::PLACE))
            .ok_or_else(|| missing("place"))?;
        let name_rel = relocs
            .get(&(base + KlpRelocEntry::NAME))
            .ok_or_else(|| missing("name"))?;
        let KlpRelocEntry { r_type, addend } =
            KlpRelocEntry::decode(data, base, obj.big_endian).ok_or_else(|| missing("type"))?;

        // The name.
        let bad_name = |name: String, message: String| EmitError::BadName {
            section: secname.clone(),
            entry,
            name,
            message,
        };
        let nsym = obj
            .symbols
            .get(name_rel.sym as usize)
            .ok_or_else(|| bad_name(String::new(), "relocation against a missing symbol".into()))?;
        let (nsec, noff) =
            resolve(obj, nsym, name_rel.addend).map_err(|m| bad_name(String::new(), m))?;
        let strs = obj
            .sections
            .get(nsec)
            .filter(|s| s.name == strs_names)
            .ok_or_else(|| {
                bad_name(
                    String::new(),
                    format!(
                        "points into {}, not {KLP_STRS_SECTION}",
                        symbol_label(obj, nsym)
                    ),
                )
            })?;
        let tail = usize::try_from(noff)
            .ok()
            .and_then(|o| strs.bytes().get(o..))
            .ok_or_else(|| {
                bad_name(
                    String::new(),
                    format!("offset {noff:#x} is past the strings"),
                )
            })?;
        let end = tail.iter().position(|&b| b == 0).ok_or_else(|| {
            bad_name(
                String::from_utf8_lossy(tail).into_owned(),
                "not NUL-terminated".into(),
            )
        })?;
        let raw = tail.get(..end).unwrap_or_default();
        let name = std::str::from_utf8(raw)
            .map_err(|_| {
                bad_name(
                    String::from_utf8_lossy(raw).into_owned(),
                    "not UTF-8".into(),
                )
            })?
            .to_string();
        let Some((objname, _, _)) = parse_klp_sym(&name) else {
            return Err(bad_name(
                name,
                "not `.klp.sym.<objname>.<symbol>,<pos>` as the kernel parses it \
                 (objname 1-55 characters without '.', symbol 1-511 without ',', decimal pos)"
                    .into(),
            ));
        };
        let objname = objname.to_string();

        // The place.
        let bad_place = |symbol: String, message: String| EmitError::BadPlace {
            section: secname.clone(),
            entry,
            symbol,
            message,
        };
        let psym = obj
            .symbols
            .get(place.sym as usize)
            .ok_or_else(|| bad_place(format!("#{}", place.sym), "missing symbol".into()))?;
        let label = symbol_label(obj, psym);
        let (target, offset) =
            resolve(obj, psym, place.addend).map_err(|m| bad_place(label.clone(), m))?;
        let Some(size) = klp_field_size(obj.e_machine, r_type) else {
            return Err(EmitError::UnsupportedType {
                section: secname.clone(),
                entry,
                symbol: name,
                r_type,
            });
        };
        let tsec = obj
            .sections
            .get(target)
            .ok_or_else(|| bad_place(label.clone(), "missing section".into()))?;
        let tname = tsec.name_str().into_owned();
        if is_meta(tsec) || !matches!(tsec.data, SectionData::Bytes(_) | SectionData::NoBits(_)) {
            return Err(bad_place(
                label,
                format!("resolves into {tname}, which is not code or data of the module"),
            ));
        }
        if !tsec.is_alloc() {
            return Err(bad_place(
                label,
                format!(
                    "resolves into {tname}, which is not SHF_ALLOC: the kernel skips relocations \
                     of sections it does not load"
                ),
            ));
        }
        if offset.checked_add(size).is_none_or(|end| end > tsec.size()) {
            return Err(bad_place(
                label,
                format!(
                    "offset {offset:#x} + {size} bytes is past the end of {tname} ({:#x} bytes)",
                    tsec.size()
                ),
            ));
        }
        out.push(Entry {
            objname,
            target,
            offset,
            r_type,
            addend,
            name,
        });
    }
    Ok(())
}

/// Removes the ordinary relocations that stood in for klp relocations during the link (see
/// [`KLP_PLACEHOLDER_SECTION`]); any other ordinary relocation of a klp place is an error.
fn remove_stand_ins(
    obj: &mut Object,
    places: &HashMap<(usize, u64), &Entry>,
) -> Result<(), EmitError> {
    let placeholder = KLP_PLACEHOLDER_SECTION.as_bytes();
    let mut drop: Vec<(usize, usize)> = Vec::new();
    for (si, s) in obj.sections.iter().enumerate() {
        let Some(relocs) = s.relocs() else { continue };
        if s.flags & SHF_RELA_LIVEPATCH != 0 || is_meta_target(obj, s) {
            continue;
        }
        for (ri, r) in relocs.iter().enumerate() {
            let Some(e) = places.get(&(s.info as usize, r.offset)) else {
                continue;
            };
            let sym = obj.symbols.get(r.sym as usize);
            let stand_in = sym.is_some_and(|sym| {
                (sym.is_undef() && sym.name == e.name.as_bytes())
                    || sym
                        .section_index()
                        .and_then(|i| obj.sections.get(i))
                        .is_some_and(|t| t.name == placeholder)
            }) && r.r_type == e.r_type;
            if !stand_in {
                return Err(EmitError::DuplicatePlace {
                    section: obj
                        .sections
                        .get(e.target)
                        .map(|t| t.name_str().into_owned())
                        .unwrap_or_default(),
                    offset: e.offset,
                    first: sym.map(|sym| symbol_label(obj, sym)).unwrap_or_default(),
                    second: e.name.clone(),
                });
            }
            drop.push((si, ri));
        }
    }
    for (si, ri) in drop.into_iter().rev() {
        if let Some(SectionData::Relocs { relocs, .. }) =
            obj.sections.get_mut(si).map(|s| &mut s.data)
        {
            if ri < relocs.len() {
                relocs.remove(ri);
            }
        }
    }
    Ok(())
}

/// The call-depth table (`.call_sites`) lists what objtool saw: every stand-in call to the
/// placeholder. It must not list a call that a livepatch relocation for a module completes
/// (crate::sites): that relocation is applied when the module loads, after the loader patched
/// call sites, which would find a zero displacement there ("Invalid padding area"); nor a call
/// to a callee objtool never lists (a static-call trampoline, a retpoline thunk), whose bytes
/// before it are no call-thunk padding. Such entries are removed with their relocations; other
/// calls into vmlinux stay (their relocations are applied at load, before call sites).
fn drop_late_call_sites(obj: &mut Object, places: &HashMap<(usize, u64), &Entry>) {
    let Some(cs) = obj.section_by_name(".call_sites") else {
        return;
    };
    let relocs_of_table = |obj: &Object| -> Vec<usize> {
        obj.sections
            .iter()
            .enumerate()
            .filter(|(_, s)| s.is_reloc() && s.info as usize == cs)
            .map(|(i, _)| i)
            .collect()
    };
    let mut drop: std::collections::BTreeSet<u64> = std::collections::BTreeSet::new();
    for ri in relocs_of_table(obj) {
        for r in obj.sections[ri].relocs().unwrap_or(&[]) {
            let Some(sym) = obj.symbols.get(r.sym as usize) else {
                continue;
            };
            let Some(sec) = sym.section_index() else {
                continue;
            };
            let Ok(call) = u64::try_from(i128::from(sym.value) + i128::from(r.addend)) else {
                continue;
            };
            let is_call = usize::try_from(call)
                .ok()
                .and_then(|c| obj.sections.get(sec)?.bytes().get(c).copied())
                == Some(0xe8);
            let unlisted = call
                .checked_add(1)
                .and_then(|rel32| places.get(&(sec, rel32)))
                .is_some_and(|e| {
                    let callee = parse_klp_sym(&e.name).map_or("", |(_, name, _)| name);
                    e.objname != "vmlinux" || !crate::sites::call_site_callee(callee)
                });
            if is_call && unlisted {
                drop.insert(r.offset);
            }
        }
    }
    if drop.is_empty() {
        return;
    }
    let old = obj.sections[cs].bytes().to_vec();
    let mut new = Vec::with_capacity(old.len());
    let mut moved: HashMap<u64, u64> = HashMap::new();
    for (i, entry) in old.chunks(4).enumerate() {
        let at = i as u64 * 4;
        if !drop.contains(&at) {
            moved.insert(at, new.len() as u64);
            new.extend_from_slice(entry);
        }
    }
    obj.sections[cs].data = SectionData::Bytes(new);
    for ri in relocs_of_table(obj) {
        if let SectionData::Relocs { relocs, .. } = &mut obj.sections[ri].data {
            relocs.retain(|r| moved.contains_key(&r.offset));
            for r in relocs.iter_mut() {
                r.offset = moved.get(&r.offset).copied().unwrap_or(r.offset);
            }
        }
    }
}

fn is_meta_target(obj: &Object, reloc_section: &Section) -> bool {
    obj.sections
        .get(reloc_section.info as usize)
        .is_some_and(is_meta)
}

/// The post-link pass on the final linked `.ko` (ET_REL); see the module documentation.
/// Without a `.lp.klp_relocs` section the input is returned unchanged.
pub fn convert_klp_relocs(ko: &[u8]) -> Result<Vec<u8>, EmitError> {
    let mut obj = Object::parse(ko).map_err(EmitError::Read)?;
    let tables: Vec<usize> = obj
        .sections
        .iter()
        .enumerate()
        .filter(|(_, s)| s.name == KLP_RELOCS_SECTION.as_bytes() && !s.is_reloc())
        .map(|(i, _)| i)
        .collect();
    if tables.is_empty() {
        return Ok(ko.to_vec());
    }
    if abs64(obj.e_machine).is_none() {
        return Err(EmitError::UnsupportedMachine(obj.e_machine));
    }
    if obj.symtab_index().is_none() {
        return Err(EmitError::NoSymtab);
    }

    let mut entries = Vec::new();
    for &t in &tables {
        read_entries(&obj, t, &mut entries)?;
    }
    // One place, one relocation.
    let section_name = |i: usize| {
        obj.sections
            .get(i)
            .map(|s| s.name_str().into_owned())
            .unwrap_or_default()
    };
    let mut places: HashMap<(usize, u64), &Entry> = HashMap::new();
    for e in &entries {
        if let Some(first) = places.insert((e.target, e.offset), e) {
            return Err(EmitError::DuplicatePlace {
                section: section_name(e.target),
                offset: e.offset,
                first: first.name.clone(),
                second: e.name.clone(),
            });
        }
    }
    remove_stand_ins(&mut obj, &places)?;
    drop_late_call_sites(&mut obj, &places);

    // Remove the metadata (and, with it, its relocation sections and symbols).
    let meta: Vec<usize> = obj
        .sections
        .iter()
        .enumerate()
        .filter(|(_, s)| is_meta(s) && !s.is_reloc())
        .map(|(i, _)| i)
        .collect();
    let renum = obj.remove_sections(&meta).map_err(EmitError::Edit)?;

    // One SHN_LIVEPATCH symbol per name; reuse one the module already has.
    let mut sym_index: HashMap<String, u32> = HashMap::new();
    for e in &entries {
        if sym_index.contains_key(&e.name) {
            continue;
        }
        let existing = obj.symbols.iter().position(|s| s.name == e.name.as_bytes());
        let idx = match existing {
            Some(i) => {
                let Some(s) = obj.symbols.get_mut(i) else {
                    continue;
                };
                match s.section {
                    SymSection::Special(SHN_LIVEPATCH) | SymSection::Undef => {
                        s.section = SymSection::Special(SHN_LIVEPATCH);
                        s.st_shndx = SHN_LIVEPATCH;
                        s.info = Symbol::make_info(elf::STB_GLOBAL.0, s.st_type());
                        s.value = 0;
                    }
                    _ => {
                        return Err(EmitError::NameClash {
                            symbol: e.name.clone(),
                        })
                    }
                }
                i
            }
            None => obj.push_symbol(Symbol {
                name: e.name.as_bytes().to_vec(),
                info: Symbol::make_info(elf::STB_GLOBAL.0, elf::STT_NOTYPE.0),
                other: elf::STV_DEFAULT.0,
                st_shndx: SHN_LIVEPATCH,
                section: SymSection::Special(SHN_LIVEPATCH),
                value: 0,
                size: 0,
            }),
        };
        sym_index.insert(e.name.clone(), idx as u32);
    }

    // Group into one section per (objname, target), in the order entries name them; append to
    // a matching klp relocation section the module may already have.
    let symtab = obj.symtab_index().unwrap_or(0) as u32;
    let mut group_of: HashMap<(String, u32), usize> = HashMap::new();
    for e in &entries {
        let Some(target) = renum.sections.get(e.target).copied().flatten() else {
            continue; // read_entries refused places in removed sections
        };
        let sym = sym_index.get(&e.name).copied().unwrap_or(0);
        let reloc = Reloc {
            offset: e.offset,
            sym,
            r_type: e.r_type,
            addend: e.addend,
        };
        let key = (e.objname.clone(), target);
        let sec_index = match group_of.get(&key) {
            Some(&i) => i,
            None => {
                let existing = obj.sections.iter().position(|s| {
                    s.is_reloc()
                        && s.flags & SHF_RELA_LIVEPATCH != 0
                        && s.info == target
                        && parse_klp_rela(&s.name_str()).map(|(o, _)| o) == Some(&e.objname)
                });
                let i = match existing {
                    Some(i) => i,
                    None => {
                        let tname = obj
                            .sections
                            .get(target as usize)
                            .map(|s| s.name_str().into_owned())
                            .unwrap_or_default();
                        // The objname parsed from a klp symbol name is a valid one.
                        let name = klp_rela_name(&e.objname, &tname).map_err(|err| {
                            EmitError::BadName {
                                section: KLP_RELOCS_SECTION.to_string(),
                                entry: 0,
                                name: e.name.clone(),
                                message: err.to_string(),
                            }
                        })?;
                        obj.push_section(Section {
                            name: name.into_bytes(),
                            sh_type: elf::SHT_RELA.0,
                            flags: elf::SHF_ALLOC.0 | elf::SHF_INFO_LINK.0 | SHF_RELA_LIVEPATCH,
                            addr: 0,
                            align: 8,
                            entsize: 24,
                            link: symtab,
                            info: target,
                            data: SectionData::Relocs {
                                is_rela: true,
                                relocs: Vec::new(),
                            },
                        })
                    }
                };
                group_of.insert(key, i);
                i
            }
        };
        if let Some(SectionData::Relocs { relocs, .. }) =
            obj.sections.get_mut(sec_index).map(|s| &mut s.data)
        {
            relocs.push(reloc);
        }
    }

    obj.sort_symbols_locals_first();
    obj.write().map_err(EmitError::Write)
}
