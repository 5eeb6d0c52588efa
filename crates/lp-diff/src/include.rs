//! Decides what the patch contains: the changed and new functions, the callbacks, the new
//! globals, and everything they reference that the running kernel does not already have
//! (the closure); collects every refusal; picks the special-section entries of the included
//! functions. Then hands the plan to [`crate::output`].

use crate::compare::{Comparison, Status};
use crate::correlate::Correlation;
use crate::hooks::{self, Hooks};
use crate::names;
use crate::special::{self, Spec};
use crate::view::{Target, View};
use crate::{output, Diagnostic, DiffError, DiffOptions, DiffResult, Outcome, PatchRecord};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// What goes into the patch object.
pub struct Plan {
    /// Patched sections copied into the output.
    pub sec_incl: Vec<bool>,
    /// Patched symbols defined in the output (references go to the copy).
    pub internal: Vec<bool>,
    /// Special section -> kept entry indices (and its entry size).
    pub special_keep: BTreeMap<usize, (u64, Vec<u64>)>,
    /// Special section -> the entry size it is read with, for every special section with a
    /// relocation into included code (whether or not an entry was kept: a wrong size can also
    /// lose the entries), and the parallel tables of kept ones.
    pub special_sizes: BTreeMap<usize, u64>,
    /// Changed functions (patched symbol indices) the patch replaces.
    pub changed: Vec<usize>,
    /// New functions that are included.
    pub new: Vec<usize>,
    /// The hooks annotations.
    pub hooks: Hooks,
}

struct Ctx<'a, 'b> {
    o: &'b View<'a>,
    p: &'b View<'a>,
    c: &'b Correlation,
    cmp: &'b Comparison,
    opts: &'b DiffOptions,
    plan: Plan,
    cold_children: HashMap<usize, Vec<usize>>,
    errors: BTreeMap<(String, String), Diagnostic>,
}

const SHF_WRITE: u64 = 1;

/// Sections that hold only compiler-generated special statics (dynamic debug descriptors):
/// their contents change with line numbers and are never shared with the running kernel.
fn is_special_static_section(name: &str) -> bool {
    name.starts_with("__dyndbg") || name == "__verbose"
}

impl Ctx<'_, '_> {
    fn error(&mut self, section: &str, symbol: &str, message: String) {
        self.errors
            .entry((section.to_string(), symbol.to_string()))
            .or_insert_with(|| Diagnostic {
                object: self.opts.source_name.clone(),
                section: section.to_string(),
                symbol: symbol.to_string(),
                message,
            });
    }

    fn is_ignored_section(&self, sec: usize) -> bool {
        self.plan
            .hooks
            .ignored_sections
            .contains(self.p.sec_name(sec).as_ref())
    }

    fn include_section(&mut self, sec: usize) {
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

    fn follow(&mut self, sec: usize, r: &lp_elf::Reloc) {
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
                // in (`special_round`) and the output points the reference at the kept copy.
                if special::spec(&tname).is_some() && self.p.sec_name(sec) != tname {
                    return;
                }
                let shared_ok = !ts.is_alloc()
                    || ts.flags & SHF_WRITE == 0
                    || names::is_flag_section(&tname)
                    || is_special_static_section(&tname)
                    || names::is_numbered_section(&tname)
                    || ts.is_exec();
                if !shared_ok && self.c.sec_p2o[t].is_some() {
                    let from = self.p.sec_name(sec).into_owned();
                    self.error(
                        &tname,
                        "",
                        format!(
                            "{from} refers to anonymous writable data in {tname}; the patch \
                             cannot share it with the running kernel: give the data a name \
                             (build with -fdata-sections) or move it into a shadow variable"
                        ),
                    );
                    return;
                }
                self.include_section(t);
            }
        }
    }

    fn include_symbol(&mut self, s: usize) {
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
                    // Reported by check_changed_data; do not copy it.
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

    /// Refusals that depend only on what changed.
    fn check_changes(&mut self) {
        let p = self.p;
        for (sec, s) in p.obj.sections.iter().enumerate() {
            if self.cmp.sec[sec] != Status::Changed || s.is_reloc() || p.bundled[sec].is_some() {
                continue;
            }
            let name = s.name_str().into_owned();
            if names::is_ignored_section(&name)
                || special::spec(&name).is_some()
                || special::is_parallel(&name)
                || names::is_string_section(&name, s.flags)
                || names::is_flag_section(&name)
                || names::is_shared_code_container(&name)
                || names::is_numbered_section(&name)
                || is_special_static_section(&name)
                || self.is_ignored_section(sec)
                || !s.is_alloc()
            {
                continue;
            }
            if let Some(why) = names::non_bundled_text_kind(&name) {
                self.error(
                    &name,
                    "",
                    format!(
                        "changed code in {name} cannot be live-patched: {why}; put the new \
                         behaviour in a callback or patch the (non-__init) callers instead"
                    ),
                );
            } else if s.is_exec() {
                self.error(
                    &name,
                    "",
                    format!(
                        "changed code in {name}, which holds more than one function, cannot be \
                         isolated (only -ffunction-sections text can be patched); move the \
                         change into an ordinary function"
                    ),
                );
            } else if s.flags & SHF_WRITE != 0 {
                self.error(
                    &name,
                    "",
                    format!(
                        "data in {name} changed: the running kernel keeps its data, so a \
                         livepatch cannot change it; use a shadow variable (klp_shadow_*) or a \
                         post_patch callback to change it at patch time"
                    ),
                );
            } else if name.starts_with(".init") {
                self.error(
                    &name,
                    "",
                    format!("changed __init data in {name} has already been used at boot"),
                );
            }
        }
        // Changed data objects.
        for (i, sym) in p.obj.symbols.iter().enumerate() {
            if self.cmp.sym[i] != Status::Changed || !sym.is_object() {
                continue;
            }
            let Some(sec) = sym.section_index() else {
                continue;
            };
            let s = &p.obj.sections[sec];
            let secname = s.name_str().into_owned();
            if s.flags & SHF_WRITE == 0
                || names::is_flag_section(&secname)
                || names::is_ignored_section(&secname)
                || special::spec(&secname).is_some()
                || self.is_ignored_section(sec)
            {
                continue;
            }
            let name = p.name(i).to_string();
            self.error(
                &secname,
                &name,
                format!(
                    "data `{name}` changed (initial value, size or relocations): the running \
                     kernel keeps its data, so a livepatch cannot change it; use a shadow \
                     variable (klp_shadow_get_or_alloc) for new state or a post_patch callback \
                     to update the existing value"
                ),
            );
        }
        // Changed section groups.
        for (sec, s) in p.obj.sections.iter().enumerate() {
            if matches!(s.data, lp_elf::SectionData::Group { .. })
                && self.cmp.sec[sec] == Status::Changed
            {
                let name = s.name_str().into_owned();
                self.error(
                    &name,
                    "",
                    format!(
                        "section group {name} changed: the kernel keeps one copy of a COMDAT \
                         group, so its contents cannot be replaced; leave the group unchanged and \
                         patch the functions that use it"
                    ),
                );
            }
        }
    }

    fn check_ftrace(&mut self) {
        for &f in &self.plan.changed.clone() {
            let Some(of) = self.c.p2o[f] else { continue };
            if !self.o.has_ftrace_entry(of) {
                let name = self.o.name(of).to_string();
                let sec = self.p.obj.symbols[f]
                    .section_index()
                    .map(|s| self.p.sec_name(s).into_owned())
                    .unwrap_or_default();
                self.error(
                    &sec,
                    &name,
                    format!(
                        "function `{name}` changed but has no ftrace entry (no __fentry__ call: \
                         notrace, or a syscall wrapper), so livepatch cannot redirect it; patch \
                         its callers instead, or move the change into a traceable helper"
                    ),
                );
            }
        }
    }

    /// Picks special-section entries anchored in included code; follows what they need.
    /// Returns true when it included something new.
    fn special_round(&mut self) -> bool {
        let before = self.plan.sec_incl.iter().filter(|b| **b).count();
        let p = self.p;
        for sec in 0..p.obj.sections.len() {
            let Some(spec) = special::spec(&p.sec_name(sec)) else {
                continue;
            };
            let name = p.sec_name(sec).into_owned();
            if self.is_ignored_section(sec) {
                continue;
            }
            // objtool makes these tables again for the whole linked module, and skips a table
            // (or, for ORC, fails) when one of the linked objects already has it: a patch
            // object of a module that objtool checked when it was compiled (a single-object
            // module such as binfmt_misc) must not carry its entries.
            if spec.objtool_output && self.opts.objtool_on_module {
                continue;
            }
            let relocs = p.relocs(sec);
            let printk_index = name == ".printk_index";
            let anchored = |ctx: &Self, r: &lp_elf::Reloc| match p.target(sec, r) {
                // `.printk_index` holds pointers to `struct pi_entry` objects: an entry belongs
                // to the included code when its format string is one the code prints.
                Target::Sym { sym, .. } if printk_index => ctx.printk_entry_is_ours(sym),
                Target::Sym { sym, .. } => {
                    ctx.plan.internal[sym]
                        && p.obj.symbols[sym]
                            .section_index()
                            .is_some_and(|x| ctx.plan.sec_incl[x] && p.obj.sections[x].is_exec())
                }
                Target::Sec { sec: t, .. } => ctx.plan.sec_incl[t] && p.obj.sections[t].is_exec(),
                _ => false,
            };
            // Not given: the section's own sh_entsize, when it has one (objtool sets it).
            let own = p.obj.sections[sec].entsize;
            let Some(size) = special::entry_size_for(spec, &self.opts.entry_sizes, relocs)
                .filter(|&n| n > 0)
                .or((own > 0).then_some(own))
            else {
                if relocs.iter().any(|r| anchored(self, r)) {
                    self.error(
                        &name,
                        "",
                        format!(
                            "the entry size of {name} is unknown, so its entries for the patched \
                             functions cannot be extracted; pass --entry-size {name}=BYTES (the \
                             sizeof of its struct in the kernel being patched)"
                        ),
                    );
                }
                continue;
            };
            if relocs.iter().any(|r| anchored(self, r)) {
                self.plan.special_sizes.insert(sec, size);
            }
            let mut keep: BTreeSet<u64> = BTreeSet::new();
            for r in relocs {
                if r.offset % size == 0 && anchored(self, r) {
                    keep.insert(r.offset / size);
                }
            }
            if keep.is_empty() {
                continue;
            }
            if let Some(par) = spec.parallel {
                if let Some(ps) = p.obj.section_by_name(par) {
                    let own = p.obj.sections[ps].entsize;
                    let psize = self
                        .opts
                        .entry_sizes
                        .get(par)
                        .copied()
                        .filter(|&n| n > 0)
                        .or((own > 0).then_some(own));
                    match psize {
                        Some(ps_size) => {
                            self.plan.special_sizes.insert(ps, ps_size);
                            self.plan
                                .special_keep
                                .insert(ps, (ps_size, keep.iter().copied().collect()));
                        }
                        None => self.error(
                            par,
                            "",
                            format!(
                                "the entry size of {par} is unknown; pass --entry-size {par}=BYTES"
                            ),
                        ),
                    }
                }
            }
            for r in relocs {
                if keep.contains(&(r.offset / size)) {
                    self.check_key(spec, sec, &name, size, r);
                    self.follow(sec, r);
                }
            }
            self.plan
                .special_keep
                .insert(sec, (size, keep.into_iter().collect()));
        }
        self.plan.sec_incl.iter().filter(|b| **b).count() != before
    }

    /// True when the `pi_entry` object `entry` describes a format string that included code
    /// uses.
    fn printk_entry_is_ours(&self, entry: usize) -> bool {
        let p = self.p;
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
            self.plan.sec_incl[s]
                && p.obj.sections[s].is_exec()
                && p.relocs(s)
                    .iter()
                    .any(|r| matches!(p.target(s, r), Target::Str(t) if t == fmt))
        })
    }

    fn check_key(&mut self, spec: &Spec, sec: usize, secname: &str, size: u64, r: &lp_elf::Reloc) {
        let Some(kf) = spec.key_field else { return };
        if r.offset % size != kf || self.opts.object_name == "vmlinux" {
            return;
        }
        let Target::Sym { sym, .. } = self.p.target(sec, r) else {
            return;
        };
        if self.plan.internal[sym] {
            return; // the patch module's own key
        }
        let name = self.p.name(sym).to_string();
        let in_module = !self.p.obj.symbols[sym].is_undef()
            || self
                .opts
                .parent
                .as_ref()
                .is_some_and(|par| par.contains(&name));
        if in_module {
            let what = if secname == "__jump_table" {
                "jump label (static branch)"
            } else {
                "static call"
            };
            self.error(
                secname,
                &name,
                format!(
                    "a {what} in patched code uses key `{name}`, defined in module {}: its \
                     livepatch relocation would be applied after the key is initialised; use \
                     static_key_enabled(&{name}) or a plain call instead",
                    self.opts.object_name
                ),
            );
        }
    }
}

/// Runs the inclusion, the refusals and the output.
pub fn run(
    o: &View,
    p: &View,
    c: &Correlation,
    cmp: &Comparison,
    opts: &DiffOptions,
) -> Result<DiffResult, DiffError> {
    let hooks = hooks::read(p);
    let nsyms = p.obj.symbols.len();
    let mut cold_children: HashMap<usize, Vec<usize>> = HashMap::new();
    for i in 0..nsyms {
        if let Some(pi) = p.child_parent(i) {
            cold_children.entry(pi).or_default().push(i);
        }
    }
    let mut ctx = Ctx {
        o,
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
            hooks,
        },
        cold_children,
        errors: BTreeMap::new(),
    };
    for (sec, what) in ctx.plan.hooks.problems.clone() {
        ctx.error(&sec, "", what);
    }

    // Roots: changed functions (not `.cold` parts, not ignored).
    for (i, s) in p.obj.symbols.iter().enumerate() {
        if cmp.sym[i] == Status::Changed
            && s.is_func()
            && p.child_parent(i).is_none()
            && !names::is_function_prefix(p.name(i))
            && !ctx.plan.hooks.ignored_functions.contains(&i)
            && !s.section_index().is_some_and(|x| ctx.is_ignored_section(x))
            && s.section_index().is_some_and(|x| p.bundled[x] == Some(i))
        {
            ctx.plan.changed.push(i);
        }
    }
    ctx.check_changes();
    ctx.check_ftrace();

    for f in ctx.plan.changed.clone() {
        ctx.include_symbol(f);
    }
    // Callbacks.
    for cb in ctx.plan.hooks.callbacks.clone() {
        ctx.plan.internal[cb.func] = true;
        if let Some(sec) = p.obj.symbols[cb.func].section_index() {
            ctx.include_section(sec);
        }
    }
    // New globals (functions and data another patch object may use).
    let mut new_globals = false;
    for (i, s) in p.obj.symbols.iter().enumerate() {
        if cmp.sym[i] == Status::New
            && !s.is_local()
            && (s.is_func() || s.is_object())
            && !s.is_undef()
            && !ctx.plan.hooks.ignored_functions.contains(&i)
            && !s.section_index().is_some_and(|x| {
                let n = p.sec_name(x);
                names::is_ignored_section(&n) || ctx.is_ignored_section(x)
            })
        {
            new_globals = true;
            ctx.include_symbol(i);
        }
    }
    // Special sections until nothing new comes in.
    while ctx.special_round() {}
    // The sizes the special sections were cut with must fit them: a wrong one would write a
    // corrupt table.
    let kept: Vec<(usize, u64)> = ctx
        .plan
        .special_sizes
        .iter()
        .map(|(&sec, &size)| (sec, size))
        .collect();
    crate::wellformed::entry_sizes(p.obj, &kept)?;

    // Changed read-only data that no patched code uses: its change would not take effect.
    for (i, s) in p.obj.symbols.iter().enumerate() {
        if cmp.sym[i] == Status::Changed && s.is_object() && !ctx.plan.internal[i] {
            if let Some(sec) = s.section_index() {
                let sname = p.sec_name(sec).into_owned();
                if p.obj.sections[sec].flags & SHF_WRITE == 0
                    && p.obj.sections[sec].is_alloc()
                    && !names::is_ignored_section(&sname)
                    && special::spec(&sname).is_none()
                {
                    let name = p.name(i).to_string();
                    ctx.error(
                        &sname,
                        &name,
                        format!(
                            "read-only data `{name}` changed but no patched function uses it, so \
                             the change would not take effect; change the functions that read \
                             it (they must be patched to use the new copy)"
                        ),
                    );
                }
            }
        }
    }

    let mut new: Vec<usize> = (0..nsyms)
        .filter(|&i| {
            cmp.sym[i] == Status::New
                && ctx.plan.internal[i]
                && p.obj.symbols[i].is_func()
                && p.child_parent(i).is_none()
                && !names::is_function_prefix(p.name(i))
        })
        .collect();
    new.sort_by(|a, b| p.name(*a).cmp(p.name(*b)));
    ctx.plan.new = new;

    let mut changed_functions: Vec<String> = ctx
        .plan
        .changed
        .iter()
        .filter_map(|&f| c.p2o[f].map(|of| o.name(of).to_string()))
        .collect();
    changed_functions.sort();
    changed_functions.dedup();
    let new_functions: Vec<String> = ctx
        .plan
        .new
        .iter()
        .map(|&i| p.name(i).to_string())
        .collect();
    let explanations = cmp
        .explanations
        .iter()
        .filter(|(f, _)| ctx.plan.changed.contains(f))
        .filter_map(|(f, text)| c.p2o[*f].map(|of| (o.name(of).to_string(), text.clone())))
        .collect();

    let has_hooks = !ctx.plan.hooks.callbacks.is_empty() || !ctx.plan.hooks.states.is_empty();
    let warnings = cmp
        .line_only
        .iter()
        .map(|&f| {
            let sec = p.obj.symbols[f]
                .section_index()
                .map(|s| p.sec_name(s).into_owned())
                .unwrap_or_default();
            Diagnostic {
                object: opts.source_name.clone(),
                section: sec,
                symbol: p.name(f).to_string(),
                message: "only __LINE__ arguments of WARN/might_sleep/printk calls moved: not \
                          a functional change, not patched"
                    .into(),
            }
        })
        .collect();
    let mut result = DiffResult {
        outcome: Outcome::Patch,
        changed_functions,
        new_functions,
        errors: Vec::new(),
        warnings,
        explanations,
        output: None,
        record: PatchRecord::default(),
    };
    if ctx.errors.is_empty() && ctx.plan.changed.is_empty() && !new_globals && !has_hooks {
        result.outcome = Outcome::NoChange;
        return Ok(result);
    }
    if ctx.errors.is_empty() {
        match output::build(o, p, c, cmp, opts, &ctx.plan) {
            Ok((bytes, record)) => {
                result.output = Some(bytes);
                result.record = record;
            }
            Err(output::BuildError::Refused(diags)) => {
                for d in diags {
                    ctx.errors.insert((d.section.clone(), d.symbol.clone()), d);
                }
            }
            Err(output::BuildError::Elf(e)) => return Err(DiffError::Write(e)),
        }
    }
    if !ctx.errors.is_empty() {
        result.outcome = Outcome::Refused;
        result.errors = ctx.errors.into_values().collect();
        result.output = None;
    }
    Ok(result)
}
