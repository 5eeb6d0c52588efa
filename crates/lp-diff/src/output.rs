//! The write stage: the patch object from the plan and the converted relocations (the carried
//! sections, their symbols, relocations against the copies, externals or the placeholder, the
//! `.lp.klp_relocs` metadata) and the record for the module emitter.
//!
//! It decides nothing: every refusal was made before ([`crate::checks`], [`crate::special`],
//! [`crate::klp_reloc`]); what goes wrong here is an internal error.

use crate::closure::Plan;
use crate::compare::{Comparison, Status};
use crate::klp_reloc::{Relocations, To};
use crate::view::View;
use crate::HashMap;
use crate::{
    meta, CallbackRecord, DiffError, DiffOptions, FuncRecord, KlpRelocRecord, PatchRecord,
    StateRecord,
};
use lp_elf::klp::KlpRelocEntry;
use lp_elf::{Object, Reloc, Section, SectionData, SymSection, Symbol};
use object::elf;

use crate::arch::x86_64::RETURN_THUNK;

/// The patch object being written.
struct Out {
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
    arch: &'static dyn crate::arch::Arch,
    /// Livepatch relocations: (output section, offset, type, `.klp.sym.` name, addend).
    klp: Vec<(usize, u64, u32, String, i64)>,
}

impl Out {
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

    fn section_symbol(&mut self, idx: usize) -> usize {
        self.obj.push_symbol(Symbol {
            name: Vec::new(),
            info: Symbol::make_info(elf::STB_LOCAL.0, elf::STT_SECTION.0),
            other: 0,
            st_shndx: 0,
            section: SymSection::Section(idx as u32),
            value: 0,
            size: 0,
        })
    }

    /// The placeholder function that stand-in relocations point to during the link. objtool
    /// must see it return: a call to a function that cannot return is a dead end to objtool,
    /// which then leaves the code after every stand-in call unvalidated and without ORC (and
    /// newer objtool fails: "missing __noreturn"). It returns the way the object's own code
    /// does ([`crate::arch::Arch::placeholder`]; on x86_64 `endbr64; jmp __x86_return_thunk`
    /// when the object uses return thunks, objtool lists that jump in `.return_sites` like any
    /// other, else `endbr64; ret; int3`).
    fn placeholder(&mut self) -> usize {
        if let Some(p) = self.placeholder {
            return p;
        }
        let ph = self.arch.placeholder(self.return_thunk);
        let size = ph.code.len() as u64;
        let sec = self.obj.push_section(Section {
            name: meta::KLP_PLACEHOLDER_SECTION.as_bytes().to_vec(),
            sh_type: elf::SHT_PROGBITS.0,
            flags: elf::SHF_ALLOC.0 | elf::SHF_EXECINSTR.0,
            addr: 0,
            align: ph.align,
            entsize: 0,
            link: 0,
            info: 0,
            data: SectionData::Bytes(ph.code),
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
        if let Some((offset, r_type, addend, target)) = ph.reloc {
            let t = self.external(target);
            self.placeholder_relocs = Some((
                sec,
                Reloc {
                    offset,
                    sym: t as u32,
                    r_type,
                    addend,
                },
            ));
        }
        self.placeholder = Some(sym);
        sym
    }
}

/// Writes the patch object and its record.
pub fn write(
    p: &View,
    cmp: &Comparison,
    plan: &Plan,
    relocs: &Relocations,
    opts: &DiffOptions,
) -> Result<(Vec<u8>, PatchRecord), DiffError> {
    let mut out = Out {
        obj: Object::new_relocatable(p.obj.e_machine),
        sec_map: HashMap::default(),
        sec_sym: HashMap::default(),
        sym_map: HashMap::default(),
        externals: HashMap::default(),
        placeholder: None,
        placeholder_relocs: None,
        return_thunk: p
            .obj
            .symbols
            .iter()
            .any(|s| s.is_undef() && s.name == RETURN_THUNK.as_bytes()),
        klp: Vec::new(),
        arch: p.arch,
    };
    out.obj.e_flags = p.obj.e_flags;
    out.obj.big_endian = p.obj.big_endian;
    copy_sections(&mut out, p, plan);
    define_symbols(&mut out, p, cmp, plan, opts);
    let rela_sections = relocate(&mut out, relocs)?;
    let record = record(&mut out, plan, relocs, opts);
    for (osec, relocs) in rela_sections {
        push_rela_section(&mut out.obj, osec, relocs);
    }
    let mut record = record;
    write_klp_metadata(&mut out, &mut record);
    out.obj.sort_symbols_locals_first();
    let bytes = out.obj.write().map_err(DiffError::Write)?;
    Ok((bytes, record))
}

/// The carried sections: included ones as they are, special ones with their kept entries only.
fn copy_sections(out: &mut Out, p: &View, plan: &Plan) {
    for (sec, s) in p.obj.sections.iter().enumerate() {
        if !plan.carries_section(p, sec) {
            continue;
        }
        let data = match (plan.special_keep.get(&sec), &s.data) {
            (Some(kept), SectionData::Bytes(b)) => SectionData::Bytes(kept.cut(b)),
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
        let ss = out.section_symbol(idx);
        out.sec_sym.insert(idx, ss);
    }
}

/// The symbols the patch object defines. Changed globals become local: the running kernel
/// keeps the original global.
fn define_symbols(out: &mut Out, p: &View, cmp: &Comparison, plan: &Plan, opts: &DiffOptions) {
    for (i, s) in p.obj.symbols.iter().enumerate() {
        if !plan.defines_symbol(p, opts, i) {
            continue;
        }
        let Some(&osec) = s.section_index().and_then(|x| out.sec_map.get(&x)) else {
            continue;
        };
        let mut info = s.info;
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
}

/// The relocations of every output section, by output section. A livepatch relocation gets an
/// ordinary stand-in against the placeholder during the link, at every klp place: objtool must
/// see a call, not an unannotated intra-function call, and a relocation for every field it
/// reads in special sections (the key of a `__jump_table` entry: without one it stops with
/// "can't find key reloc" and writes no ORC or site tables at all). The post-link pass removes
/// it.
fn relocate(out: &mut Out, relocs: &Relocations) -> Result<Vec<(usize, Vec<Reloc>)>, DiffError> {
    let internal = |what: String| DiffError::Internal(format!("writing the patch object: {what}"));
    let mut rela_sections: Vec<(usize, Vec<Reloc>)> = Vec::new();
    for (psec, list) in &relocs.sections {
        let osec = *out
            .sec_map
            .get(psec)
            .ok_or_else(|| internal(format!("section {psec} is not carried")))?;
        let mut new_relocs = Vec::with_capacity(list.len());
        for c in list {
            let sym = match &c.to {
                To::Section(s) => {
                    let os = out
                        .sec_map
                        .get(s)
                        .ok_or_else(|| internal(format!("section {s} is not carried")))?;
                    out.sec_sym[os]
                }
                To::Symbol(s) => *out
                    .sym_map
                    .get(s)
                    .ok_or_else(|| internal(format!("symbol {s} is not defined")))?,
                To::External(n) => out.external(n),
                To::Klp(k) => {
                    out.klp
                        .push((osec, c.offset, c.r_type, k.clone(), c.addend));
                    out.placeholder()
                }
            };
            new_relocs.push(Reloc {
                offset: c.offset,
                sym: sym as u32,
                r_type: c.r_type,
                addend: c.addend,
            });
        }
        new_relocs.sort_by_key(|r| r.offset);
        if !new_relocs.is_empty() {
            rela_sections.push((osec, new_relocs));
        }
    }
    if let Some((sec, r)) = out.placeholder_relocs.take() {
        rela_sections.push((sec, vec![r]));
    }
    rela_sections.sort_by_key(|(s, _)| *s);
    Ok(rela_sections)
}

/// The record for the module emitter, with a global alias for every replaced function and
/// every callback (the generated C refers to them).
fn record(out: &mut Out, plan: &Plan, relocs: &Relocations, opts: &DiffOptions) -> PatchRecord {
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
    for f in &relocs.functions {
        let Some(&of) = out.sym_map.get(&f.func) else {
            continue;
        };
        if let Some(new_symbol) = alias(out, of, format!("{}f{}", opts.alias_prefix, f.index)) {
            record.functions.push(FuncRecord {
                old_name: f.old_name.clone(),
                old_sympos: f.old_sympos,
                new_symbol,
            });
        }
    }
    for (n, cb) in plan.hooks.callbacks.iter().enumerate() {
        let Some(&of) = out.sym_map.get(&cb.func) else {
            continue;
        };
        if let Some(symbol) = alias(out, of, format!("{}cb{n}", opts.alias_prefix)) {
            record.callbacks.push(CallbackRecord {
                kind: cb.kind,
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
    record
}

fn push_rela_section(obj: &mut Object, osec: usize, relocs: Vec<Reloc>) -> usize {
    let mut name = b".rela".to_vec();
    name.extend_from_slice(&obj.sections[osec].name);
    obj.push_section(Section {
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
    })
}

/// The `.lp.klp_relocs` entries and their `.lp.klp_strs` names (docs/CONTRACTS.md).
fn write_klp_metadata(out: &mut Out, record: &mut PatchRecord) {
    if out.klp.is_empty() {
        return;
    }
    let mut strs: Vec<u8> = Vec::new();
    let mut str_off: HashMap<String, u64> = HashMap::default();
    let mut entries = Vec::new();
    let mut relocs = Vec::new();
    for (k, (osec, offset, r_type, name, addend)) in out.klp.iter().enumerate() {
        let off = *str_off.entry(name.clone()).or_insert_with(|| {
            let o = strs.len() as u64;
            strs.extend_from_slice(name.as_bytes());
            strs.push(0);
            o
        });
        let base = k as u64 * meta::KLP_RELOC_ENTRY_SIZE;
        let entry = KlpRelocEntry {
            r_type: *r_type,
            addend: *addend,
        };
        entries.extend_from_slice(&entry.encode(out.obj.big_endian));
        relocs.push(Reloc {
            offset: base + KlpRelocEntry::PLACE,
            sym: out.sec_sym[osec] as u32,
            r_type: out.arch.abs64(),
            addend: *offset as i64,
        });
        relocs.push(Reloc {
            offset: base + KlpRelocEntry::NAME,
            sym: 0, // set below, once the strings section symbol exists
            r_type: out.arch.abs64(),
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
    let _ = out.section_symbol(relocs_idx);
    let strs_sym = out.section_symbol(s_idx);
    for r in relocs.iter_mut().skip(1).step_by(2) {
        r.sym = strs_sym as u32;
    }
    let rela = push_rela_section(&mut out.obj, relocs_idx, relocs);
    out.obj.sections[rela].name = format!(".rela{}", meta::KLP_RELOCS_SECTION).into_bytes();
}
