//! Plans the closure: the changed and new functions, the callbacks, the new globals, and
//! everything they reference that the running kernel does not already have. The result is a
//! [`Plan`]: which patched sections and symbols the patch object carries.
//!
//! It never decides whether the change is safe (that is [`crate::checks`]) and never writes
//! anything (that is [`crate::output`]); the one refusal it can meet while following references
//! (anonymous writable data shared with the running kernel) is recorded and reported with the
//! others.

use crate::compare::{Comparison, Status};
use crate::correlate::Correlation;
use crate::hooks::Hooks;
use crate::names;
use crate::refusal::{Refusal, Refusals};
use crate::special::Kept;
use crate::view::{Target, View};
use crate::DiffOptions;
use crate::HashMap;
use std::collections::BTreeMap;

/// What goes into the patch object.
pub struct Plan {
    /// Patched sections copied into the output.
    pub sec_incl: Vec<bool>,
    /// Patched symbols defined in the output (references go to the copy).
    pub internal: Vec<bool>,
    /// Special section -> its kept entries (see [`crate::special`]).
    pub special_keep: BTreeMap<usize, Kept>,
    /// Special section -> the entry size it is read with, for every special section with a
    /// relocation into included code (whether or not an entry was kept: a wrong size can also
    /// lose the entries), and the parallel tables of kept ones.
    pub special_sizes: BTreeMap<usize, u64>,
    /// Changed functions (patched symbol indices) the patch replaces.
    pub changed: Vec<usize>,
    /// New functions that are included.
    pub new: Vec<usize>,
    /// New globals (functions or data another patch object may use) were included.
    pub new_globals: bool,
    /// The hooks annotations.
    pub hooks: Hooks,
}

impl Plan {
    /// True when the patch has something to do: a replaced function, a new global, a callback
    /// or a state.
    pub fn has_work(&self) -> bool {
        !self.changed.is_empty()
            || self.new_globals
            || !self.hooks.callbacks.is_empty()
            || !self.hooks.states.is_empty()
    }

    /// True when the patch object carries patched section `sec` (included, or special with
    /// kept entries) with contents to copy.
    pub fn carries_section(&self, p: &View, sec: usize) -> bool {
        let Some(s) = p.obj.sections.get(sec) else {
            return false;
        };
        (self.sec_incl.get(sec).copied().unwrap_or(false) || self.special_keep.contains_key(&sec))
            && matches!(
                s.data,
                lp_elf::SectionData::Bytes(_) | lp_elf::SectionData::NoBits(_)
            )
    }

    /// True when the patch object defines patched symbol `i` (references go to the copy).
    pub fn defines_symbol(&self, p: &View, opts: &DiffOptions, i: usize) -> bool {
        let Some(s) = p.obj.symbols.get(i) else {
            return false;
        };
        self.internal.get(i).copied().unwrap_or(false)
            && !s.is_section()
            // objtool makes the prefix symbols again for the linked module.
            && !(opts.objtool_on_module && names::is_function_prefix(p.name(i)))
            && s.section_index().is_some_and(|x| self.carries_section(p, x))
    }
}

/// Writable sections.
pub(crate) const SHF_WRITE: u64 = 1;

/// Sections that hold only compiler-generated special statics (dynamic debug descriptors):
/// their contents change with line numbers and are never shared with the running kernel.
pub(crate) fn is_special_static_section(name: &str) -> bool {
    name.starts_with("__dyndbg") || name == "__verbose"
}

/// The closure being computed: the plan and what it needs to follow references.
pub struct Closure<'a, 'b> {
    /// The PATCHED object.
    pub p: &'b View<'a>,
    /// The correlation.
    pub c: &'b Correlation,
    /// The comparison.
    pub cmp: &'b Comparison,
    /// The options.
    pub opts: &'b DiffOptions,
    /// The plan so far.
    pub plan: Plan,
    cold_children: HashMap<usize, Vec<usize>>,
    /// Refusals met while following references.
    pub refusals: Refusals,
}

impl<'a, 'b> Closure<'a, 'b> {
    /// An empty closure over `p`; the roots are the changed functions (not `.cold` parts, not
    /// ignored, owning their section), put in [`Plan::changed`] but not yet followed.
    pub fn new(
        p: &'b View<'a>,
        c: &'b Correlation,
        cmp: &'b Comparison,
        hooks: Hooks,
        opts: &'b DiffOptions,
    ) -> Self {
        let nsyms = p.obj.symbols.len();
        let mut cold_children: HashMap<usize, Vec<usize>> = HashMap::default();
        for i in 0..nsyms {
            if let Some(pi) = p.child_parent(i) {
                cold_children.entry(pi).or_default().push(i);
            }
        }
        let mut cl = Closure {
            p,
            c,
            cmp,
            opts,
            plan: Plan {
                sec_incl: vec![false; p.obj.sections.len()],
                internal: vec![false; nsyms],
                special_keep: BTreeMap::new(),
                special_sizes: BTreeMap::new(),
                changed: Vec::new(),
                new: Vec::new(),
                new_globals: false,
                hooks,
            },
            cold_children,
            refusals: Refusals::default(),
        };
        for (i, s) in p.obj.symbols.iter().enumerate() {
            if cmp.sym[i] == Status::Changed
                && s.is_func()
                && p.child_parent(i).is_none()
                && !names::is_function_prefix(p.name(i))
                && !cl.plan.hooks.ignored_functions.contains(&i)
                && !s.section_index().is_some_and(|x| cl.is_ignored_section(x))
                && s.section_index().is_some_and(|x| p.bundled[x] == Some(i))
            {
                cl.plan.changed.push(i);
            }
        }
        cl
    }

    /// True when the author asked (`.lp.ignore.sections`) to leave section `sec` out.
    pub fn is_ignored_section(&self, sec: usize) -> bool {
        self.plan
            .hooks
            .ignored_sections
            .contains(self.p.sec_name(sec).as_ref())
    }

    /// Follows the roots: the changed functions, the callbacks and the new globals.
    pub fn follow_roots(&mut self) {
        let p = self.p;
        for f in self.plan.changed.clone() {
            self.include_symbol(f);
        }
        for cb in self.plan.hooks.callbacks.clone() {
            self.plan.internal[cb.func] = true;
            if let Some(sec) = p.obj.symbols[cb.func].section_index() {
                self.include_section(sec);
            }
        }
        for (i, s) in p.obj.symbols.iter().enumerate() {
            if self.cmp.sym[i] == Status::New
                && !s.is_local()
                && (s.is_func() || s.is_object())
                && !s.is_undef()
                && !self.plan.hooks.ignored_functions.contains(&i)
                && !s.section_index().is_some_and(|x| {
                    let n = p.sec_name(x);
                    names::is_ignored_section(&n) || self.is_ignored_section(x)
                })
            {
                self.plan.new_globals = true;
                self.include_symbol(i);
            }
        }
    }

    /// The new functions the closure took in, sorted by name.
    pub fn finish_new_functions(&mut self) {
        let p = self.p;
        let mut new: Vec<usize> = (0..p.obj.symbols.len())
            .filter(|&i| {
                self.cmp.sym[i] == Status::New
                    && self.plan.internal[i]
                    && p.obj.symbols[i].is_func()
                    && p.child_parent(i).is_none()
                    && !names::is_function_prefix(p.name(i))
            })
            .collect();
        new.sort_by(|a, b| p.name(*a).cmp(p.name(*b)));
        self.plan.new = new;
    }

    /// Includes section `sec` and what its relocations reach.
    pub fn include_section(&mut self, sec: usize) {
        if sec >= self.plan.sec_incl.len() || self.plan.sec_incl[sec] {
            return;
        }
        let s = &self.p.obj.sections[sec];
        if s.is_reloc() || matches!(s.data, lp_elf::SectionData::SymTab) {
            return;
        }
        self.plan.sec_incl[sec] = true;
        if let Some(b) = self.p.bundled[sec] {
            self.plan.internal[b] = true;
            if let Some(children) = self.cold_children.get(&b).cloned() {
                for ch in children {
                    self.plan.internal[ch] = true;
                    if let Some(cs) = self.p.obj.symbols[ch].section_index() {
                        self.include_section(cs);
                    }
                }
            }
        } else {
            // A shared section: its new symbols come along.
            for &i in &self.p.in_section[sec] {
                if self.cmp.sym[i] != Status::Same {
                    self.plan.internal[i] = true;
                }
            }
        }
        for r in self.p.relocs(sec) {
            self.follow(sec, r);
        }
    }

    /// Includes what relocation `r` of section `sec` reaches, when the running kernel lacks it.
    pub fn follow(&mut self, sec: usize, r: &lp_elf::Reloc) {
        match self.p.target(sec, r) {
            Target::Sym { sym, .. } => self.include_symbol(sym),
            Target::Str(_) | Target::Const(_) => {
                if let Some(t) = self.p.obj.symbols[r.sym as usize].section_index() {
                    self.include_section(t);
                }
            }
            Target::Sec { sec: t, .. } => {
                let ts = &self.p.obj.sections[t];
                let tname = ts.name_str().into_owned();
                // Code that refers to its own entry of a special table (7.x's x86 `WARN()` and
                // `WARN_ONCE()` hand their `__bug_table` entry to `__WARN_trap`, and the entry
                // holds the once state): the entry is kept with the code that it is anchored
                // in (special sections) and the reference points at the kept copy.
                if crate::special::spec(self.p.arch, &tname).is_some()
                    && self.p.sec_name(sec) != tname
                {
                    return;
                }
                let shared_ok = !ts.is_alloc()
                    || ts.flags & SHF_WRITE == 0
                    || names::is_flag_section(&tname)
                    || is_special_static_section(&tname)
                    || names::is_numbered_section(&tname)
                    // ppc64le's TOC: entries the code addresses, carried whole (each entry is
                    // a relocation to what it names, resolved like any other).
                    || tname == ".toc"
                    || ts.is_exec();
                if !shared_ok && self.c.sec_p2o[t].is_some() {
                    let from = self.p.sec_name(sec).into_owned();
                    self.refusals.push(Refusal::AnonymousWritableData {
                        section: tname,
                        from,
                    });
                    return;
                }
                self.include_section(t);
            }
        }
    }

    /// Includes symbol `s` when the running kernel does not have it (changed or new).
    pub fn include_symbol(&mut self, s: usize) {
        let Some(sym) = self.p.obj.symbols.get(s) else {
            return;
        };
        if sym.is_undef()
            || self.plan.internal[s] && sym.section_index().is_some_and(|x| self.plan.sec_incl[x])
        {
            return;
        }
        let Some(sec) = sym.section_index() else {
            return;
        };
        if sym.is_section() {
            self.include_section(sec);
            return;
        }
        match self.cmp.sym[s] {
            Status::Same => {} // the running kernel has it: referenced from outside
            Status::Changed if sym.is_object() => {
                let secname = self.p.sec_name(sec).into_owned();
                let writable = self.p.obj.sections[sec].flags & SHF_WRITE != 0;
                if writable && !names::is_flag_section(&secname) {
                    // Refused by the checks (changed data); do not copy it.
                    return;
                }
                self.plan.internal[s] = true;
                self.include_section(sec);
            }
            Status::Changed | Status::New => {
                self.plan.internal[s] = true;
                self.include_section(sec);
            }
        }
    }
}
