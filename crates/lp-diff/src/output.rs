//! Builds the patch object from the plan: the included sections, their symbols, relocations
//! rewritten for the patch (internal, normal external, or livepatch), the regenerated special
//! sections, the `.lp.klp_relocs` metadata and the record for the module emitter.

use crate::compare::{Comparison, Status};
use crate::correlate::Correlation;
use crate::include::Plan;
use crate::klp_reloc::{Reach, Resolver};
use crate::parent::Parent;
use crate::view::{Target, View};
use crate::{
    meta, CallbackRecord, Diagnostic, DiffOptions, FuncRecord, KlpRelocRecord, PatchRecord,
    StateRecord,
};
use lp_elf::{Object, Reloc, Section, SectionData, SymSection, Symbol};
use object::elf;
use std::collections::HashMap;

/// The x86 return thunk (`-mfunction-return=thunk-extern`).
const RETURN_THUNK: &str = "__x86_return_thunk";

/// Why the output could not be built.
pub enum BuildError {
    /// References that cannot be resolved safely.
    Refused(Vec<Diagnostic>),
    /// The object could not be written.
    Elf(lp_elf::Error),
}

struct Out<'a> {
    obj: Object,
    /// patched section -> output section
    sec_map: HashMap<usize, usize>,
    /// output section -> its section symbol
    sec_sym: HashMap<usize, usize>,
    /// patched symbol -> output symbol
    sym_map: HashMap<usize, usize>,
    externals: HashMap<String, usize>,
    placeholder: Option<usize>,
    /// The placeholder's own relocation (its `jmp __x86_return_thunk`).
    placeholder_relocs: Option<(usize, Reloc)>,
    /// The object returns through `__x86_return_thunk` (CONFIG_MITIGATION_RETHUNK).
    return_thunk: bool,
    klp: Vec<(usize, u64, u32, String, i64)>,
    errors: Vec<Diagnostic>,
    resolver: Resolver<'a>,
    opts: &'a DiffOptions,
}

impl Out<'_> {
    fn external(&mut self, name: &str) -> usize {
        if let Some(&i) = self.externals.get(name) {
            return i;
        }
        let i = self.obj.push_symbol(Symbol {
            name: name.as_bytes().to_vec(),
            info: Symbol::make_info(elf::STB_GLOBAL.0, elf::STT_NOTYPE.0),
            other: 0,
            st_shndx: 0,
            section: SymSection::Undef,
            value: 0,
            size: 0,
        });
        self.externals.insert(name.to_string(), i);
        i
    }

    /// The placeholder function that stand-in relocations point to during the link. objtool
    /// must see it return: a call to a function that cannot return is a dead end to objtool,
    /// which then leaves the code after every stand-in call unvalidated and without ORC (and
    /// newer objtool fails: "missing __noreturn"). It returns the way the object's own code
    /// does: `endbr64; jmp __x86_return_thunk` when the object uses return thunks (objtool
    /// lists that jump in `.return_sites` like any other), else `endbr64; ret; int3`.
    fn placeholder(&mut self) -> usize {
        if let Some(p) = self.placeholder {
            return p;
        }
        let (code, thunk) = if self.return_thunk {
            (vec![0xf3, 0x0f, 0x1e, 0xfa, 0xe9, 0, 0, 0, 0], true)
        } else {
            (vec![0xf3, 0x0f, 0x1e, 0xfa, 0xc3, 0xcc], false)
        };
        let size = code.len() as u64;
        let sec = self.obj.push_section(Section {
            name: meta::KLP_PLACEHOLDER_SECTION.as_bytes().to_vec(),
            sh_type: elf::SHT_PROGBITS.0,
            flags: elf::SHF_ALLOC.0 | elf::SHF_EXECINSTR.0,
            addr: 0,
            align: 16,
            entsize: 0,
            link: 0,
            info: 0,
            data: SectionData::Bytes(code),
        });
        let sym = self.obj.push_symbol(Symbol {
            name: b"__lp_klp_placeholder".to_vec(),
            info: Symbol::make_info(elf::STB_LOCAL.0, elf::STT_FUNC.0),
            other: 0,
            st_shndx: 0,
            section: SymSection::Section(sec as u32),
            value: 0,
            size,
        });
        if thunk {
            let t = self.external(RETURN_THUNK);
            self.placeholder_relocs = Some((
                sec,
                Reloc {
                    offset: 5,
                    sym: t as u32,
                    r_type: elf::R_X86_64_PLT32.0,
                    addend: -4,
                },
            ));
        }
        self.placeholder = Some(sym);
        sym
    }

    fn refuse(&mut self, section: &str, symbol: &str, message: String) {
        self.errors.push(Diagnostic {
            object: self.opts.source_name.clone(),
            section: section.to_string(),
            symbol: symbol.to_string(),
            message,
        });
    }
}

fn source_basename(source: &str) -> String {
    let base = source.rsplit('/').next().unwrap_or(source);
    match base.strip_suffix(".o") {
        Some(stem) => format!("{stem}.c"),
        None => base.to_string(),
    }
}

/// Builds the patch object and its record.
pub fn build(
    o: &View,
    p: &View,
    c: &Correlation,
    cmp: &Comparison,
    opts: &DiffOptions,
    plan: &Plan,
) -> Result<(Vec<u8>, PatchRecord), BuildError> {
    let own_parent;
    let parent: &Parent = match &opts.parent {
        Some(par) => par,
        None => {
            own_parent = Parent::from_object(o.obj, false);
            &own_parent
        }
    };
    let local_names: Vec<&str> = o
        .obj
        .symbols
        .iter()
        .enumerate()
        .filter(|(_, s)| s.is_local() && (s.is_func() || s.is_object()))
        .map(|(i, _)| o.name(i))
        .collect();
    let file = parent
        .find_file(&source_basename(&opts.source_name), &local_names)
        .or_else(|| (parent.files.len() == 1).then_some(0))
        .or_else(|| {
            // The ORIG object itself: its one FILE symbol, whatever its name.
            let files: Vec<_> = o.obj.symbols.iter().filter(|s| s.is_file()).collect();
            (opts.parent.is_none() && files.len() <= 1).then_some(0)
        });

    let mut out = Out {
        obj: Object::new_relocatable(p.obj.e_machine),
        sec_map: HashMap::new(),
        sec_sym: HashMap::new(),
        sym_map: HashMap::new(),
        externals: HashMap::new(),
        placeholder: None,
        placeholder_relocs: None,
        return_thunk: p
            .obj
            .symbols
            .iter()
            .any(|s| s.is_undef() && s.name == RETURN_THUNK.as_bytes()),
        klp: Vec::new(),
        errors: Vec::new(),
        resolver: Resolver { opts, parent, file },
        opts,
    };
    out.obj.e_flags = p.obj.e_flags;

    // Sections: included ones as they are, special ones with their kept entries only.
    let mut special_src: HashMap<usize, (u64, Vec<u64>)> = HashMap::new();
    for (sec, s) in p.obj.sections.iter().enumerate() {
        let kept = plan.special_keep.get(&sec);
        if !plan.sec_incl[sec] && kept.is_none() {
            continue;
        }
        let data = match (kept, &s.data) {
            (Some((size, entries)), SectionData::Bytes(b)) => {
                let mut bytes = Vec::new();
                for &e in entries {
                    let start = usize::try_from(e.saturating_mul(*size)).unwrap_or(usize::MAX);
                    let end = start.saturating_add(*size as usize);
                    bytes.extend_from_slice(b.get(start..end).unwrap_or(&[]));
                }
                special_src.insert(sec, (*size, entries.clone()));
                SectionData::Bytes(bytes)
            }
            (_, SectionData::Bytes(b)) => SectionData::Bytes(b.clone()),
            (_, SectionData::NoBits(n)) => SectionData::NoBits(*n),
            _ => continue,
        };
        let idx = out.obj.push_section(Section {
            name: s.name.clone(),
            sh_type: s.sh_type,
            flags: s.flags & !elf::SHF_GROUP.0,
            addr: 0,
            align: s.align,
            entsize: s.entsize,
            link: 0,
            info: 0,
            data,
        });
        out.sec_map.insert(sec, idx);
        let ss = out.obj.push_symbol(Symbol {
            name: Vec::new(),
            info: Symbol::make_info(elf::STB_LOCAL.0, elf::STT_SECTION.0),
            other: 0,
            st_shndx: 0,
            section: SymSection::Section(idx as u32),
            value: 0,
            size: 0,
        });
        out.sec_sym.insert(idx, ss);
    }

    // Symbols defined in the output.
    for (i, s) in p.obj.symbols.iter().enumerate() {
        if !plan.internal[i] || s.is_section() {
            continue;
        }
        // objtool makes the prefix symbols again for the linked module.
        if opts.objtool_on_module && crate::names::is_function_prefix(p.name(i)) {
            continue;
        }
        let Some(&osec) = s.section_index().and_then(|x| out.sec_map.get(&x)) else {
            continue;
        };
        let mut info = s.info;
        // Changed globals become local: the running kernel keeps the original global.
        if cmp.sym[i] == Status::Changed && !s.is_local() {
            info = Symbol::make_info(elf::STB_LOCAL.0, s.st_type());
        }
        let new = out.obj.push_symbol(Symbol {
            section: SymSection::Section(osec as u32),
            st_shndx: 0,
            info,
            ..s.clone()
        });
        out.sym_map.insert(i, new);
    }

    // Relocations of every output section.
    let mut rela_sections: Vec<(usize, Vec<Reloc>)> = Vec::new();
    // In section order: the undefined symbols and livepatch relocations this loop creates are
    // numbered in the order it meets them, and the same inputs must give the same bytes.
    let mut sections: Vec<(usize, usize)> = out.sec_map.iter().map(|(&p, &o)| (p, o)).collect();
    sections.sort_unstable();
    for (psec, osec) in sections {
        let relocs = p.relocs(psec);
        let mut new_relocs = Vec::new();
        let special = special_src.get(&psec).cloned();
        for r in relocs {
            // Position in the output (special sections are compacted).
            let offset = match &special {
                Some((size, entries)) => {
                    let e = r.offset / size;
                    match entries.binary_search(&e) {
                        Ok(k) => k as u64 * size + r.offset % size,
                        Err(_) => continue,
                    }
                }
                None => r.offset,
            };
            let rsym = &p.obj.symbols[r.sym as usize];
            let target = p.target(psec, r);
            // The section the relocation's own symbol lives in, if the output has it.
            let via_section = rsym
                .section_index()
                .and_then(|x| out.sec_map.get(&x).copied());
            let sym_value = if rsym.is_section() {
                0
            } else {
                rsym.value as i64
            };
            let internal_sym = match &target {
                Target::Sym { sym, .. } => out.sym_map.get(sym).copied(),
                _ => None,
            };
            match (&target, via_section, internal_sym) {
                (Target::Sym { .. }, Some(os), Some(_)) if rsym.is_section() => {
                    new_relocs.push(Reloc {
                        offset,
                        sym: out.sec_sym[&os] as u32,
                        r_type: r.r_type,
                        addend: r.addend,
                    });
                }
                // A reference to an entry of a special table, which is compacted in the output:
                // to the kept copy of that entry (see `include`'s `follow`).
                (Target::Sec { sec: t, addend }, Some(os), _) if special_src.contains_key(t) => {
                    let (size, entries) = &special_src[t];
                    let off = addend.saturating_add(p.pc_adjust(psec, r));
                    let entry = u64::try_from(off).ok().map(|o| (o / size, o % size));
                    match entry
                        .and_then(|(e, rest)| Some((entries.binary_search(&e).ok()?, e, rest)))
                    {
                        Some((k, e, _)) => new_relocs.push(Reloc {
                            offset,
                            sym: out.sec_sym[&os] as u32,
                            r_type: r.r_type,
                            addend: addend
                                .saturating_sub((e * size) as i64)
                                .saturating_add((k as u64 * size) as i64),
                        }),
                        None => {
                            let secname = p.sec_name(psec).into_owned();
                            let tname = p.sec_name(*t).into_owned();
                            out.refuse(
                                &secname,
                                "",
                                format!(
                                    "{secname}+{:#x} refers to {tname}+{off:#x}, an entry that \
                                     belongs to no patched function, so the patch cannot carry \
                                     it: patch the function the entry belongs to as well",
                                    r.offset
                                ),
                            );
                        }
                    }
                }
                (Target::Str(_) | Target::Const(_) | Target::Sec { .. }, Some(os), _) => {
                    new_relocs.push(Reloc {
                        offset,
                        sym: out.sec_sym[&os] as u32,
                        r_type: r.r_type,
                        addend: r.addend.saturating_add(sym_value),
                    });
                }
                (Target::Sym { .. }, _, Some(is)) => {
                    new_relocs.push(Reloc {
                        offset,
                        sym: is as u32,
                        r_type: r.r_type,
                        addend: r.addend,
                    });
                }
                (Target::Sym { sym, addend }, _, None) => {
                    let ps = &p.obj.symbols[*sym];
                    let name = match c.p2o[*sym] {
                        Some(os) => o.name(os).to_string(),
                        None => p.name(*sym).to_string(),
                    };
                    if name.is_empty() {
                        continue;
                    }
                    let reach = if ps.is_undef() {
                        out.resolver.undefined(&name)
                    } else {
                        if cmp.sym[*sym] != Status::Same {
                            let secname = p.sec_name(psec).into_owned();
                            out.refuse(
                                &secname,
                                &name,
                                format!(
                                    "internal error: `{name}` is neither included nor in the \
                                     running kernel; this is a bug in lp-build: report it with \
                                     the object pair (lp-build --keep-tmp keeps them)"
                                ),
                            );
                            continue;
                        }
                        out.resolver.defined(&name, !ps.is_local())
                    };
                    match reach {
                        Ok(Reach::Normal(n)) => {
                            let e = out.external(&n);
                            new_relocs.push(Reloc {
                                offset,
                                sym: e as u32,
                                r_type: r.r_type,
                                addend: *addend,
                            });
                        }
                        Ok(Reach::Klp(k)) => {
                            // An ordinary stand-in during the link, at every klp place: objtool
                            // must see a call, not an unannotated intra-function call, and a
                            // relocation for every field it reads in special sections (the key
                            // of a `__jump_table` entry: without one it stops with "can't find
                            // key reloc" and writes no ORC or site tables at all). The
                            // post-link pass removes it.
                            let ph = out.placeholder();
                            new_relocs.push(Reloc {
                                offset,
                                sym: ph as u32,
                                r_type: r.r_type,
                                addend: *addend,
                            });
                            out.klp.push((osec, offset, r.r_type, k, *addend))
                        }
                        Err(e) => {
                            let secname = p.sec_name(psec).into_owned();
                            out.refuse(&secname, &name, e.0);
                        }
                    }
                }
                (_, None, _) => {
                    let secname = p.sec_name(psec).into_owned();
                    out.refuse(
                        &secname,
                        "",
                        format!(
                            "a relocation at {secname}+{:#x} points to data the patch does not \
                             carry and the running kernel cannot provide by name: give the data \
                             a name (a static variable) or keep the patched code from using it",
                            r.offset
                        ),
                    );
                }
            }
        }
        new_relocs.sort_by_key(|r| r.offset);
        if !new_relocs.is_empty() {
            rela_sections.push((osec, new_relocs));
        }
    }
    if !out.errors.is_empty() {
        return Err(BuildError::Refused(out.errors));
    }
    if let Some((sec, r)) = out.placeholder_relocs.take() {
        rela_sections.push((sec, vec![r]));
    }
    rela_sections.sort_by_key(|(s, _)| *s);

    // Aliases for the module emitter: patched functions and callbacks.
    let mut record = PatchRecord {
        object: opts.object_name.clone(),
        source: opts.source_name.clone(),
        ..PatchRecord::default()
    };
    let alias = |out: &mut Out, of: usize, name: String| -> Option<String> {
        let target = out.obj.symbols.get(of)?.clone();
        out.obj.push_symbol(Symbol {
            name: name.as_bytes().to_vec(),
            info: Symbol::make_info(elf::STB_GLOBAL.0, elf::STT_FUNC.0),
            other: 0,
            ..target
        });
        Some(name)
    };
    for (n, &f) in plan.changed.iter().enumerate() {
        let (Some(&of), Some(orig)) = (out.sym_map.get(&f), c.p2o[f]) else {
            continue;
        };
        let old_name = o.name(orig).to_string();
        let global = !o.obj.symbols[orig].is_local();
        let pos = match parent.position(&old_name, file, global) {
            Ok(Some(pos)) => pos,
            Ok(None) => {
                out.refuse(
                    &p.sec_name(p.obj.symbols[f].section_index().unwrap_or(0)),
                    &old_name,
                    format!(
                        "function `{old_name}` is not in the symbol table of {}: the running \
                         kernel does not have it (is the parent from the same build?)",
                        opts.object_name
                    ),
                );
                continue;
            }
            Err(_) => {
                out.refuse(
                    &p.sec_name(p.obj.symbols[f].section_index().unwrap_or(0)),
                    &old_name,
                    format!(
                        "function `{old_name}` appears {} times in {} and none or several in \
                         this source file: its position is ambiguous",
                        parent.count(&old_name),
                        opts.object_name
                    ),
                );
                continue;
            }
        };
        if let Some(new_symbol) = alias(&mut out, of, format!("{}f{n}", opts.alias_prefix)) {
            record.functions.push(FuncRecord {
                old_name,
                old_sympos: pos,
                new_symbol,
            });
        }
    }
    for (n, cb) in plan.hooks.callbacks.iter().enumerate() {
        let Some(&of) = out.sym_map.get(&cb.func) else {
            continue;
        };
        if let Some(symbol) = alias(&mut out, of, format!("{}cb{n}", opts.alias_prefix)) {
            record.callbacks.push(CallbackRecord {
                kind: cb.kind.to_string(),
                symbol,
                order: cb.order,
                void_hook: cb.void_hook,
            });
        }
    }
    record.states = plan
        .hooks
        .states
        .iter()
        .map(|&(id, version)| StateRecord { id, version })
        .collect();
    if !out.errors.is_empty() {
        return Err(BuildError::Refused(out.errors));
    }

    // Relocation sections.
    for (osec, relocs) in rela_sections {
        let mut name = b".rela".to_vec();
        name.extend_from_slice(&out.obj.sections[osec].name);
        out.obj.push_section(Section {
            name,
            sh_type: elf::SHT_RELA.0,
            flags: elf::SHF_INFO_LINK.0,
            addr: 0,
            align: 8,
            entsize: 24,
            link: 0,
            info: osec as u32,
            data: SectionData::Relocs {
                is_rela: true,
                relocs,
            },
        });
    }

    // Livepatch relocation metadata.
    if !out.klp.is_empty() {
        let mut strs: Vec<u8> = Vec::new();
        let mut str_off: HashMap<String, u64> = HashMap::new();
        let mut entries = Vec::new();
        let mut relocs = Vec::new();
        let strs_idx = out.obj.sections.len() + 1;
        for (k, (osec, offset, r_type, name, addend)) in out.klp.iter().enumerate() {
            let off = *str_off.entry(name.clone()).or_insert_with(|| {
                let o = strs.len() as u64;
                strs.extend_from_slice(name.as_bytes());
                strs.push(0);
                o
            });
            let base = k as u64 * meta::KLP_RELOC_ENTRY_SIZE;
            entries.extend_from_slice(&[0u8; 16]);
            entries.extend_from_slice(&r_type.to_le_bytes());
            entries.extend_from_slice(&0u32.to_le_bytes());
            entries.extend_from_slice(&addend.to_le_bytes());
            relocs.push(Reloc {
                offset: base,
                sym: out.sec_sym[osec] as u32,
                r_type: elf::R_X86_64_64.0,
                addend: *offset as i64,
            });
            relocs.push(Reloc {
                offset: base + 8,
                sym: 0, // patched below, once the strings section symbol exists
                r_type: elf::R_X86_64_64.0,
                addend: off as i64,
            });
            record.klp_relocs.push(KlpRelocRecord {
                section: out.obj.sections[*osec].name_str().into_owned(),
                offset: *offset,
                r_type: *r_type,
                symbol: name.clone(),
                addend: *addend,
            });
        }
        let relocs_idx = out.obj.push_section(Section {
            name: meta::KLP_RELOCS_SECTION.as_bytes().to_vec(),
            sh_type: elf::SHT_PROGBITS.0,
            flags: elf::SHF_ALLOC.0,
            addr: 0,
            align: 8,
            entsize: meta::KLP_RELOC_ENTRY_SIZE,
            link: 0,
            info: 0,
            data: SectionData::Bytes(entries),
        });
        let s_idx = out.obj.push_section(Section {
            name: meta::KLP_STRS_SECTION.as_bytes().to_vec(),
            sh_type: elf::SHT_PROGBITS.0,
            flags: elf::SHF_ALLOC.0,
            addr: 0,
            align: 1,
            entsize: 0,
            link: 0,
            info: 0,
            data: SectionData::Bytes(strs),
        });
        debug_assert_eq!(s_idx, strs_idx);
        let mut section_symbol = |idx: usize| {
            out.obj.push_symbol(Symbol {
                name: Vec::new(),
                info: Symbol::make_info(elf::STB_LOCAL.0, elf::STT_SECTION.0),
                other: 0,
                st_shndx: 0,
                section: SymSection::Section(idx as u32),
                value: 0,
                size: 0,
            })
        };
        let _ = section_symbol(relocs_idx);
        let strs_sym = section_symbol(s_idx);
        for r in relocs.iter_mut().skip(1).step_by(2) {
            r.sym = strs_sym as u32;
        }
        out.obj.push_section(Section {
            name: format!(".rela{}", meta::KLP_RELOCS_SECTION).into_bytes(),
            sh_type: elf::SHT_RELA.0,
            flags: elf::SHF_INFO_LINK.0,
            addr: 0,
            align: 8,
            entsize: 24,
            link: 0,
            info: relocs_idx as u32,
            data: SectionData::Relocs {
                is_rela: true,
                relocs,
            },
        });
    }

    out.obj.sort_symbols_locals_first();
    let bytes = out.obj.write().map_err(BuildError::Elf)?;
    Ok((bytes, record))
}
