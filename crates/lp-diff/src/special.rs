//! The kernel's special sections, table-driven: which entries belong to the included
//! functions, and what they need.
//!
//! An entry belongs to a function when the relocation of its first field points into that
//! function's section. Entry sizes come from the caller (the kernel being patched) except for
//! the sections whose format is a plain array of 4- or 8-byte place-relative pointers.
//!
//! Every special section is handled here: the table ([`SPECIALS`]), the entry sizes, which
//! entries the patch keeps ([`extract`], the differ's special-section stage) and where they land
//! in the output ([`Kept`]).

use crate::arch::Arch;
use crate::closure::Closure;
use crate::refusal::{Refusal, Refusals};
use crate::view::Target;
use std::collections::BTreeSet;

/// How an entry of a special section is found and kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spec {
    /// Section name.
    pub name: &'static str,
    /// Who makes the section: objtool's output is dropped when objtool runs on the linked
    /// module and makes it again.
    pub made_by: MadeBy,
    /// Entry size when fixed by the format; `None`: must be supplied.
    pub fixed_size: Option<u64>,
    /// The parallel section whose entries are kept with these (`.orc_unwind` for
    /// `.orc_unwind_ip`), and its entry size source name.
    pub parallel: Option<&'static str>,
    /// When the entry has a key (static key / static call key) that must not live in a
    /// module: where.
    pub key_field: Option<KeyField>,
    /// Offset in the entry of the field that points to the code the entry belongs to (0:
    /// the first field).
    pub anchor: u64,
}

/// Who makes a special section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MadeBy {
    /// The compiler or the assembler (the kernel's macros): always the patch object's.
    Compiler,
    /// objtool, from the compiled code (ORC, `.return_sites`, `.static_call_sites`, ...).
    Objtool,
    /// The compiler (`-mrecord-mcount`), or objtool where the compiler cannot
    /// (`CONFIG_FTRACE_MCOUNT_USE_OBJTOOL`: clang on x86_64): `__mcount_loc`.
    CompilerOrObjtool,
}

impl MadeBy {
    /// objtool makes the section, given whether it makes `__mcount_loc`
    /// ([`crate::DiffOptions::objtool_mcount`]).
    pub fn objtool_makes(self, objtool_mcount: bool) -> bool {
        match self {
            MadeBy::Compiler => false,
            MadeBy::Objtool => true,
            MadeBy::CompilerOrObjtool => objtool_mcount,
        }
    }
}

/// Where the key of a special-section entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyField {
    /// At this offset in the entry (`struct static_call_site`: s32 addr, s32 key).
    At(u64),
    /// `struct jump_entry`'s third field, `key`, whose offset depends on the layout
    /// (include/linux/jump_label.h), told apart by the entry size on a 64-bit kernel: relative
    /// (`CONFIG_HAVE_ARCH_JUMP_LABEL_RELATIVE`: s32 code, s32 target, long key; 16 bytes, key at
    /// 8; every architecture lp-build knows since about 5.0) or absolute (three 64-bit
    /// `jump_label_t`: 24 bytes, key at 16; older kernels, such as some of the x86_64 corpus).
    JumpEntry,
}

/// The sizes of `struct jump_entry` on a 64-bit kernel and where its key is in each.
pub const JUMP_ENTRY_LAYOUTS: &[(u64, u64)] = &[(16, 8), (24, 16)];

impl KeyField {
    /// The key's offset in an entry of `size` bytes; `None` when `size` is not a layout of the
    /// entry (for [`KeyField::JumpEntry`], neither 16 nor 24: refused by
    /// [`crate::wellformed::entry_sizes`]).
    pub fn offset(self, size: u64) -> Option<u64> {
        match self {
            KeyField::At(k) => Some(k),
            KeyField::JumpEntry => JUMP_ENTRY_LAYOUTS
                .iter()
                .find(|&&(s, _)| s == size)
                .map(|&(_, k)| k),
        }
    }
}

/// The spec of a section, if special on `arch`. `.orc_unwind` itself is handled through its
/// parallel.
pub fn spec(arch: &dyn Arch, name: &str) -> Option<&'static Spec> {
    arch.specials().iter().find(|s| s.name == name)
}

/// True for sections handled only through another's entries.
pub fn is_parallel(arch: &dyn Arch, name: &str) -> bool {
    arch.specials().iter().any(|s| s.parallel == Some(name))
}

/// Entry size of a special section: fixed by the format (arrays of pointers or place-relative
/// offsets; `.printk_index` holds pointers to `struct pi_entry`, whatever the struct's size), or
/// from the caller's table.
pub fn entry_size(spec: &Spec, sizes: &std::collections::BTreeMap<String, u64>) -> Option<u64> {
    spec.fixed_size.or_else(|| sizes.get(spec.name).copied())
}

/// [`entry_size`] for a section with relocations `relocs`: a format fixed at 4-byte
/// place-relative offsets whose relocations are all 8-byte absolute pointers is an older
/// kernel's `_ASM_PTR` array (`.discard.retpoline_safe` before 6.x, say), of 8-byte entries.
pub fn entry_size_for(
    arch: &dyn Arch,
    spec: &Spec,
    sizes: &std::collections::BTreeMap<String, u64>,
    relocs: &[lp_elf::Reloc],
) -> Option<u64> {
    let size = entry_size(spec, sizes)?;
    let pointers = !relocs.is_empty() && relocs.iter().all(|r| r.r_type == arch.abs64());
    Some(if spec.fixed_size == Some(4) && pointers {
        8
    } else {
        size
    })
}

/// The entries of one special section that the patch keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    /// The entry size the section was cut with.
    pub size: u64,
    /// Indices of the kept entries, ascending.
    pub entries: Vec<u64>,
}

impl Kept {
    /// Where a byte at `offset` of the input section lands in the compacted output section;
    /// `None` when its entry is not kept.
    pub fn output_offset(&self, offset: u64) -> Option<u64> {
        let size = self.size.max(1);
        let k = self.entries.binary_search(&(offset / size)).ok()?;
        (k as u64).checked_mul(size)?.checked_add(offset % size)
    }

    /// The kept entries' bytes of `data`.
    pub fn cut(&self, data: &[u8]) -> Vec<u8> {
        let mut bytes = Vec::new();
        for &e in &self.entries {
            let start = usize::try_from(e.saturating_mul(self.size)).unwrap_or(usize::MAX);
            let end = start.saturating_add(usize::try_from(self.size).unwrap_or(usize::MAX));
            bytes.extend_from_slice(data.get(start..end).unwrap_or(&[]));
        }
        bytes
    }
}

/// The special-section stage: picks the entries anchored in included code, round after round,
/// following what they need, until nothing new comes in; then checks that the sizes the
/// sections were cut with fit them (a wrong one would write a corrupt table).
pub fn extract(cl: &mut Closure, out: &mut Refusals) -> Result<(), crate::DiffError> {
    while round(cl, out) {}
    let kept: Vec<(usize, u64)> = cl
        .plan
        .special_sizes
        .iter()
        .map(|(&sec, &size)| (sec, size))
        .collect();
    crate::wellformed::entry_sizes(cl.p.obj, &kept, cl.p.arch)
}

/// True when relocation `r` of special section `sec` points into included code.
fn anchored(cl: &Closure, sec: usize, printk_index: bool, r: &lp_elf::Reloc) -> bool {
    let p = cl.p;
    match p.target(sec, r) {
        // `.printk_index` holds pointers to `struct pi_entry` objects: an entry belongs to the
        // included code when its format string is one the code prints.
        Target::Sym { sym, .. } if printk_index => printk_entry_is_ours(cl, sym),
        Target::Sym { sym, .. } => {
            cl.plan.internal[sym]
                && p.obj.symbols[sym]
                    .section_index()
                    .is_some_and(|x| cl.plan.sec_incl[x] && p.obj.sections[x].is_exec())
        }
        Target::Sec { sec: t, .. } => cl.plan.sec_incl[t] && p.obj.sections[t].is_exec(),
        _ => false,
    }
}

/// One round over every special section; true when it included something new.
fn round(cl: &mut Closure, out: &mut Refusals) -> bool {
    let before = cl.plan.sec_incl.iter().filter(|b| **b).count();
    let p = cl.p;
    for sec in 0..p.obj.sections.len() {
        let Some(spec) = spec(p.arch, &p.sec_name(sec)) else {
            continue;
        };
        let name = p.sec_name(sec).into_owned();
        if cl.is_ignored_section(sec) {
            continue;
        }
        // objtool makes these tables again for the whole linked module, and skips a table (or,
        // for ORC, fails) when one of the linked objects already has it: a patch object of a
        // module that objtool checked when it was compiled (a single-object module such as
        // binfmt_misc) must not carry its entries.
        if spec.made_by.objtool_makes(cl.opts.objtool_mcount) && cl.opts.objtool_on_module {
            continue;
        }
        let relocs = p.relocs(sec);
        let printk_index = name == ".printk_index";
        let any_anchored = relocs.iter().any(|r| anchored(cl, sec, printk_index, r));
        let own = p.obj.sections[sec].entsize;
        let Some(size) = size_of(p.arch, spec, &cl.opts.entry_sizes, relocs, own) else {
            if any_anchored {
                out.push(Refusal::UnknownEntrySize { section: name });
            }
            continue;
        };
        if any_anchored {
            cl.plan.special_sizes.insert(sec, size);
        }
        let keep: BTreeSet<u64> = relocs
            .iter()
            .filter(|r| r.offset % size == spec.anchor && anchored(cl, sec, printk_index, r))
            .map(|r| r.offset / size)
            .collect();
        if keep.is_empty() {
            continue;
        }
        if let Some(par) = spec.parallel {
            keep_parallel(cl, par, &keep, out);
        }
        for r in relocs {
            if keep.contains(&(r.offset / size)) {
                check_key(cl, spec, sec, &name, size, r, out);
                cl.follow(sec, r);
            }
        }
        cl.plan.special_keep.insert(
            sec,
            Kept {
                size,
                entries: keep.into_iter().collect(),
            },
        );
    }
    cl.plan.sec_incl.iter().filter(|b| **b).count() != before
}

/// The entry size of a special section: the format's or the caller's ([`entry_size_for`]), else
/// the section's own `sh_entsize` when it has one (objtool sets it).
fn size_of(
    arch: &dyn Arch,
    spec: &Spec,
    sizes: &std::collections::BTreeMap<String, u64>,
    relocs: &[lp_elf::Reloc],
    own: u64,
) -> Option<u64> {
    entry_size_for(arch, spec, sizes, relocs)
        .filter(|&n| n > 0)
        .or((own > 0).then_some(own))
}

/// Keeps the same entries of the parallel table `par` (`.orc_unwind` for `.orc_unwind_ip`).
fn keep_parallel(cl: &mut Closure, par: &str, keep: &BTreeSet<u64>, out: &mut Refusals) {
    let Some(ps) = cl.p.obj.section_by_name(par) else {
        return;
    };
    let own = cl.p.obj.sections[ps].entsize;
    let psize = cl
        .opts
        .entry_sizes
        .get(par)
        .copied()
        .filter(|&n| n > 0)
        .or((own > 0).then_some(own));
    match psize {
        Some(size) => {
            cl.plan.special_sizes.insert(ps, size);
            cl.plan.special_keep.insert(
                ps,
                Kept {
                    size,
                    entries: keep.iter().copied().collect(),
                },
            );
        }
        None => out.push(Refusal::UnknownEntrySize {
            section: par.to_string(),
        }),
    }
}

/// True when the `pi_entry` object `entry` describes a format string that included code uses.
fn printk_entry_is_ours(cl: &Closure, entry: usize) -> bool {
    let p = cl.p;
    let Some(esec) = p.obj.symbols.get(entry).and_then(|s| s.section_index()) else {
        return false;
    };
    let base = p.obj.symbols[entry].value;
    let Some(fmt) = p
        .relocs(esec)
        .iter()
        .find(|r| r.offset == base)
        .and_then(|r| match p.target(esec, r) {
            Target::Str(s) => Some(s),
            _ => None,
        })
    else {
        return false;
    };
    (0..p.obj.sections.len()).any(|s| {
        cl.plan.sec_incl[s]
            && p.obj.sections[s].is_exec()
            && p.relocs(s)
                .iter()
                .any(|r| matches!(p.target(s, r), Target::Str(t) if t == fmt))
    })
}

/// Refuses a jump label or static call of a module whose key the module itself defines.
fn check_key(
    cl: &Closure,
    spec: &Spec,
    sec: usize,
    secname: &str,
    size: u64,
    r: &lp_elf::Reloc,
    out: &mut Refusals,
) {
    // An entry size without a layout has no key to find: the entry-size check after the
    // special-section stage refuses the size itself.
    let Some(kf) = spec.key_field.and_then(|k| k.offset(size)) else {
        return;
    };
    if r.offset % size != kf || cl.opts.object_name == "vmlinux" {
        return;
    }
    let Target::Sym { sym, .. } = cl.p.target(sec, r) else {
        return;
    };
    if cl.plan.internal[sym] {
        return; // the patch module's own key
    }
    let name = cl.p.name(sym).to_string();
    let in_module = !cl.p.obj.symbols[sym].is_undef()
        || cl
            .opts
            .parent
            .as_ref()
            .is_some_and(|par| par.contains(&name));
    if in_module {
        out.push(Refusal::ModuleKey {
            section: secname.to_string(),
            symbol: name,
            module: cl.opts.object_name.clone(),
        });
    }
}
