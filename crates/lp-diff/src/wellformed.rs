//! What the differ checks before it trusts an object: every relocation section applies to a
//! section with contents, with relocation types it knows and fields inside that section; every
//! special section the patch reads is cut into entries that fit it: its `sh_entsize`, a
//! relocation at the start of each entry, none straddling two, each field relocated alike in
//! every entry, parallel tables of equal length (a wrong `--entry-size` would otherwise cut
//! entries in the wrong places and write a corrupt table, or lose them).
//!
//! It must never change the objects: it only says what is wrong, as a [`DiffError`].

use crate::arch::Arch;
use crate::special;
use crate::DiffError;
use lp_elf::{Object, SectionData};
use std::collections::BTreeMap;

fn name(obj: &Object, i: usize) -> String {
    obj.sections
        .get(i)
        .map(|s| s.name_str().into_owned())
        .unwrap_or_else(|| format!("section {i}"))
}

/// Checks every relocation section of a relocatable object (`which`: `orig` or `patched`).
pub fn relocations(obj: &Object, which: &'static str, arch: &dyn Arch) -> Result<(), DiffError> {
    let bad = |section: String, message: String| DiffError::Relocations {
        which,
        section,
        message,
    };
    let mut seen: BTreeMap<u32, usize> = BTreeMap::new();
    for (i, s) in obj.sections.iter().enumerate() {
        let Some(relocs) = s.relocs() else { continue };
        let target = s.info;
        let size = match obj.sections.get(target as usize).map(|t| &t.data) {
            Some(SectionData::Bytes(b)) if target != 0 => b.len() as u64,
            Some(_) if target != 0 => {
                return Err(bad(
                    name(obj, i),
                    format!(
                        "applies to section {target} ({}), which has no contents to relocate",
                        name(obj, target as usize)
                    ),
                ))
            }
            _ => {
                return Err(bad(
                    name(obj, i),
                    format!(
                        "sh_info {target} is not a section of this object (it has {})",
                        obj.sections.len()
                    ),
                ))
            }
        };
        if let Some(first) = seen.insert(target, i) {
            return Err(bad(
                name(obj, i),
                format!(
                    "a second relocation section for {} (the first is {})",
                    name(obj, target as usize),
                    name(obj, first)
                ),
            ));
        }
        for r in relocs {
            let Some(width) = arch.reloc_field_size(r.r_type) else {
                return Err(bad(
                    name(obj, i),
                    format!(
                        "relocation at {}+{:#x} has type {}, not an {} relocation type the \
                         differ knows",
                        name(obj, target as usize),
                        r.offset,
                        r.r_type,
                        arch.name()
                    ),
                ));
            };
            let fits = matches!(r.offset.checked_add(width), Some(end) if end <= size);
            if !fits {
                return Err(bad(
                    name(obj, i),
                    format!(
                        "relocation at {}+{:#x} ({width} bytes) is past the end of the section \
                         ({size} bytes)",
                        name(obj, target as usize),
                        r.offset
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Checks the entry size each special section is cut with (`kept`: section index and size, as
/// [`crate::closure::Plan::special_sizes`] holds them) against the section itself: its own
/// `sh_entsize` when set; the relocations, as [`check_columns`] reads them; and for a table with
/// a parallel one (`.orc_unwind_ip` and `.orc_unwind`), as many entries in both.
pub fn entry_sizes(obj: &Object, kept: &[(usize, u64)], arch: &dyn Arch) -> Result<(), DiffError> {
    let map = obj.reloc_section_map();
    for &(i, size) in kept {
        if size == 0 {
            continue;
        }
        let Some(s) = obj.sections.get(i) else {
            continue;
        };
        let secname = s.name_str().into_owned();
        let err = |message: String| DiffError::EntrySize {
            section: secname.clone(),
            message,
        };
        if s.entsize != 0 && s.entsize != size {
            return Err(err(format!(
                "entry size {size} given, but the section's own sh_entsize is {}",
                s.entsize
            )));
        }
        // A `struct jump_entry` has two layouts; a size that is neither has no key to check.
        if let Some(kf) = special::spec(arch, &secname).and_then(|spec| spec.key_field) {
            if kf.offset(size).is_none() {
                let layouts: Vec<String> = special::JUMP_ENTRY_LAYOUTS
                    .iter()
                    .map(|(s, _)| s.to_string())
                    .collect();
                return Err(err(format!(
                    "entry size {size} given, but a `struct jump_entry` is {} bytes",
                    layouts.join(" or ")
                )));
            }
        }
        let len = s.size();
        let relocs = obj.relocs_for(&map, i);
        if !relocs.is_empty() {
            let anchor = special::spec(arch, &secname).map_or(0, |spec| spec.anchor);
            check_columns(obj, arch, relocs, len, size, anchor).map_err(err)?;
        }
        let parallel = special::spec(arch, &secname).and_then(|spec| spec.parallel);
        if let Some(par) = parallel {
            let Some(&(pi, psize)) = kept.iter().find(|&&(k, _)| {
                obj.sections
                    .get(k)
                    .is_some_and(|t| t.name == par.as_bytes())
            }) else {
                continue;
            };
            let Some(ps) = obj.sections.get(pi).filter(|_| psize > 0) else {
                continue;
            };
            if ps.entsize != 0 && ps.entsize != psize {
                return Err(DiffError::EntrySize {
                    section: par.to_string(),
                    message: format!(
                        "entry size {psize} given, but the section's own sh_entsize is {}",
                        ps.entsize
                    ),
                });
            }
            let plen = ps.size();
            let entries = len / size;
            if plen % psize != 0 || plen / psize != entries || len % size != 0 {
                return Err(DiffError::EntrySize {
                    section: par.to_string(),
                    message: format!(
                        "{plen} bytes of {psize}-byte entries, but {secname} has {entries} \
                         entries of {size} bytes: the two tables must be parallel",
                    ),
                });
            }
        }
    }
    Ok(())
}

/// Reads a table's relocations as entries of `size` bytes: each entry must have a relocation at
/// its start, none may cross into the next entry, and a field (an offset in the entry) must be
/// relocated the same way in every entry that relocates it: the same type, and pointing into code
/// in every entry or into code in none (a field holding an address of code in one entry and of a
/// static key in the next is two entries cut in the wrong place). Fields may be relocated in some
/// entries only (an alternative without replacement has no `repl_offset` relocation).
fn check_columns(
    obj: &Object,
    arch: &dyn Arch,
    relocs: &[lp_elf::Reloc],
    len: u64,
    size: u64,
    anchor: u64,
) -> Result<(), String> {
    let entries = usize::try_from(len.div_ceil(size)).unwrap_or(0);
    let mut anchored = vec![false; entries];
    // Offset in the entry -> (type, into code?, the entry that set it).
    let mut columns: BTreeMap<u64, (u32, Option<bool>, u64)> = BTreeMap::new();
    for r in relocs {
        let within = r.offset % size;
        let entry = r.offset / size;
        let width = arch.reloc_field_size(r.r_type).unwrap_or(0);
        if within.saturating_add(width) > size {
            return Err(format!(
                "the relocation at +{:#x} crosses from one {size}-byte entry into the next",
                r.offset
            ));
        }
        if within == anchor {
            if let Some(a) = usize::try_from(entry)
                .ok()
                .and_then(|k| anchored.get_mut(k))
            {
                *a = true;
            }
        }
        // Into code: a symbol defined in an executable section. Undefined symbols (static keys
        // of other objects, exception handlers) count as not code.
        let code = obj.symbols.get(r.sym as usize).map(|sym| {
            sym.section_index()
                .and_then(|sec| obj.sections.get(sec))
                .is_some_and(|t| t.is_exec())
        });
        let col = columns.entry(within).or_insert((r.r_type, code, entry));
        if col.1.is_none() {
            col.1 = code;
        }
        let (t, c, first) = *col;
        if t != r.r_type || (code.is_some() && c.is_some() && code != c) {
            return Err(format!(
                "the field at +{within:#x} of entry {entry} is not relocated like the same field \
                 of entry {first}: the entries are not {size} bytes"
            ));
        }
    }
    if let Some(k) = anchored.iter().position(|a| !a) {
        return Err(format!(
            "entry {k} (at +{:#x}) has no relocation at +{anchor:#x}, as every {size}-byte entry \
             should",
            (k as u64).saturating_mul(size)
        ));
    }
    Ok(())
}
