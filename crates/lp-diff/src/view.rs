//! An indexed, read-only view of one object: which symbol owns which section, what each
//! relocation really points to, where instructions end.

use crate::arch::{Arch, Insns};
use crate::names;
use crate::HashMap;
use lp_elf::{Object, Reloc, SectionData};
use std::borrow::Cow;
use std::sync::OnceLock;

/// What a relocation points to, independent of how the compiler spelled it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target<'a> {
    /// A named symbol plus an addend relative to it.
    Sym {
        /// Symbol index.
        sym: usize,
        /// Addend relative to the symbol.
        addend: i64,
    },
    /// A string literal (bytes up to the NUL).
    Str(&'a [u8]),
    /// A merged constant (bytes of one entry).
    Const(&'a [u8]),
    /// An offset into a section no named symbol covers.
    Sec {
        /// Section index.
        sec: usize,
        /// The relocation's own addend.
        addend: i64,
    },
}

/// The indexed view.
pub struct View<'a> {
    /// The object.
    pub obj: &'a Object,
    /// Its architecture.
    pub arch: &'static dyn Arch,
    /// Section -> its relocation section.
    pub reloc_sec: Vec<Option<usize>>,
    /// Section -> its STT_SECTION symbol.
    pub section_sym: Vec<Option<usize>>,
    /// Section -> the function/object symbol that owns it alone.
    pub bundled: Vec<Option<usize>>,
    /// Named function/object symbols defined in each section, by value.
    pub in_section: Vec<Vec<usize>>,
    /// Symbols by name.
    pub by_name: HashMap<Cow<'a, str>, Vec<usize>>,
    /// Symbol names (lossy UTF-8; borrowed from the object unless they needed repair).
    pub names: Vec<Cow<'a, str>>,
    /// Section names (lossy UTF-8, borrowed likewise).
    pub sec_names: Vec<Cow<'a, str>>,
    insns: Vec<OnceLock<Insns>>,
}

impl<'a> View<'a> {
    /// Indexes `obj`.
    pub fn new(obj: &'a Object, arch: &'static dyn Arch) -> View<'a> {
        let n = obj.sections.len();
        let reloc_sec = obj.reloc_section_map();
        let mut section_sym = vec![None; n];
        let mut bundled = vec![None; n];
        let mut in_section: Vec<Vec<usize>> = vec![Vec::new(); n];
        let mut by_name: HashMap<Cow<'a, str>, Vec<usize>> = HashMap::default();
        let names: Vec<Cow<'a, str>> = obj.symbols.iter().map(|s| s.name_str()).collect();
        for (i, s) in obj.symbols.iter().enumerate().skip(1) {
            let Some(sec) = s.section_index().filter(|&x| x < n) else {
                if !names[i].is_empty() {
                    by_name.entry(names[i].clone()).or_default().push(i);
                }
                continue;
            };
            if s.is_section() {
                section_sym[sec].get_or_insert(i);
                continue;
            }
            if !names[i].is_empty() {
                by_name.entry(names[i].clone()).or_default().push(i);
            }
            if s.is_func() || s.is_object() {
                in_section[sec].push(i);
                let secname = obj.sections[sec].name_str();
                if names::is_bundled(&secname, &names[i], s.is_func()) {
                    bundled[sec].get_or_insert(i);
                }
            }
        }
        for v in &mut in_section {
            v.sort_by_key(|&i| obj.symbols[i].value);
        }
        View {
            obj,
            arch,
            reloc_sec,
            section_sym,
            bundled,
            in_section,
            by_name,
            names,
            sec_names: obj.sections.iter().map(|s| s.name_str()).collect(),
            insns: (0..n).map(|_| OnceLock::new()).collect(),
        }
    }

    /// Name of symbol `i`.
    pub fn name(&self, i: usize) -> &str {
        self.names.get(i).map(|n| &**n).unwrap_or("")
    }

    /// Name of section `i`.
    pub fn sec_name(&self, i: usize) -> std::borrow::Cow<'_, str> {
        Cow::Borrowed(self.sec_names.get(i).map(|n| &**n).unwrap_or(""))
    }

    /// Relocations applying to section `sec`.
    pub fn relocs(&self, sec: usize) -> &'a [Reloc] {
        self.obj.relocs_for(&self.reloc_sec, sec)
    }

    /// Instruction boundaries of an executable section.
    pub fn insns(&self, sec: usize) -> Option<&Insns> {
        let s = self.obj.sections.get(sec)?;
        if !s.is_exec() {
            return None;
        }
        Some(
            self.insns
                .get(sec)?
                .get_or_init(|| self.arch.decode(s.bytes())),
        )
    }

    /// How far past `r.offset` the PC of a PC-relative field lies ([`Arch::pc_adjust`]).
    pub fn pc_adjust(&self, in_sec: usize, r: &Reloc) -> i64 {
        let in_exec = self.obj.sections.get(in_sec).is_some_and(|s| s.is_exec());
        self.arch.pc_adjust(self.insns(in_sec), in_exec, r)
    }

    /// The named symbol of `sec` that covers `offset`.
    pub fn symbol_at(&self, sec: usize, offset: i64) -> Option<usize> {
        let cands = self.in_section.get(sec)?;
        let off = u64::try_from(offset).ok()?;
        // `cands` is sorted by value: the ones after the partition point start past `off`.
        let below = cands.partition_point(|&i| self.obj.symbols[i].value <= off);
        cands[..below].iter().copied().rev().find(|&i| {
            let s = &self.obj.symbols[i];
            s.value <= off
                && (off < s.value.saturating_add(s.size) || (s.size == 0 && off == s.value))
        })
    }

    /// Resolves relocation `r` of section `in_sec` to what it points to.
    pub fn target(&self, in_sec: usize, r: &Reloc) -> Target<'a> {
        let obj = self.obj;
        let Some(sym) = obj.symbols.get(r.sym as usize) else {
            return Target::Sym {
                sym: 0,
                addend: r.addend,
            };
        };
        if !sym.is_section() {
            // `.LC12`-style labels inside string or merged-constant sections are contents.
            if let Some(sec) = sym
                .section_index()
                .filter(|_| !sym.is_func() && !sym.is_object())
            {
                if let Some(section) = obj.sections.get(sec) {
                    let off = r
                        .addend
                        .saturating_add(self.pc_adjust(in_sec, r))
                        .saturating_add(sym.value as i64);
                    let rest = usize::try_from(off)
                        .ok()
                        .and_then(|o| section.bytes().get(o..));
                    const SHF_MERGE: u64 = 0x10;
                    if names::is_string_section(&self.sec_name(sec), section.flags) {
                        if let Some(b) = rest {
                            let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
                            return Target::Str(&b[..end]);
                        }
                    } else if section.flags & SHF_MERGE != 0 && section.entsize > 0 {
                        let len = usize::try_from(section.entsize).unwrap_or(usize::MAX);
                        if let Some(b) = rest.and_then(|b| b.get(..len)) {
                            return Target::Const(b);
                        }
                    }
                }
            }
            return Target::Sym {
                sym: r.sym as usize,
                addend: r.addend,
            };
        }
        let Some(sec) = sym.section_index() else {
            return Target::Sym {
                sym: r.sym as usize,
                addend: r.addend,
            };
        };
        let Some(section) = obj.sections.get(sec) else {
            return Target::Sec {
                sec,
                addend: r.addend,
            };
        };
        let adj = self.pc_adjust(in_sec, r);
        let off = r.addend.saturating_add(adj);
        let name = self.sec_name(sec);
        if names::is_string_section(&name, section.flags) {
            if let SectionData::Bytes(b) = &section.data {
                if let Some(start) = usize::try_from(off).ok().filter(|&o| o <= b.len()) {
                    let rest = &b[start..];
                    let end = rest.iter().position(|&c| c == 0).unwrap_or(rest.len());
                    return Target::Str(&rest[..end]);
                }
            }
        }
        const SHF_MERGE: u64 = 0x10;
        if section.flags & SHF_MERGE != 0 && section.entsize > 0 {
            if let SectionData::Bytes(b) = &section.data {
                let start = usize::try_from(off).ok();
                let len = usize::try_from(section.entsize).ok();
                if let (Some(s), Some(l)) = (start, len) {
                    if let Some(bytes) = b.get(s..s.saturating_add(l)) {
                        return Target::Const(bytes);
                    }
                }
            }
        }
        if let Some(named) = self.symbol_at(sec, off) {
            let value = obj.symbols[named].value as i64;
            return Target::Sym {
                sym: named,
                addend: r.addend.saturating_sub(value),
            };
        }
        Target::Sec {
            sec,
            addend: r.addend,
        }
    }

    /// What relocation `r` of `in_sec` means for comparing two versions: [`View::target`],
    /// except that a reference to an entry of ppc64le's TOC (`.toc + X`, from code) is what the
    /// entry points to: TOC entries move whenever another function's use of the TOC changes.
    pub fn compare_target(&self, in_sec: usize, r: &Reloc) -> Target<'a> {
        let toc = self
            .obj
            .symbols
            .get(r.sym as usize)
            .and_then(|s| s.section_index())
            .filter(|&t| t != in_sec && self.sec_name(t) == ".toc");
        if let Some(toc) = toc {
            let entry = u64::try_from(r.addend).ok();
            if let Some(e) = self.relocs(toc).iter().find(|e| Some(e.offset) == entry) {
                return self.target(toc, e);
            }
        }
        self.target(in_sec, r)
    }

    /// The parent function of a child (`.cold`, or `.part.N` whose parent exists here).
    pub fn child_parent(&self, f: usize) -> Option<usize> {
        let s = self.obj.symbols.get(f)?;
        if !s.is_func() {
            return None;
        }
        let parent = names::child_parent(self.name(f))?;
        self.by_name
            .get(parent)?
            .iter()
            .copied()
            .find(|&i| self.obj.symbols[i].is_func() && !self.obj.symbols[i].is_undef())
    }

    /// True when function symbol `f` has an ftrace entry ([`Arch::has_ftrace_entry`]).
    pub fn has_ftrace_entry(&self, f: usize) -> bool {
        self.arch.has_ftrace_entry(self, f)
    }
}
