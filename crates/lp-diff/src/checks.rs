//! The refusals that depend on what changed: changed data, `__init` and non-bundled code,
//! changed section groups, functions without an ftrace entry, changed read-only data nobody
//! uses. Each is a [`Refusal`] of the catalogue; nothing here changes the plan.

use crate::closure::{is_special_static_section, Closure, SHF_WRITE};
use crate::compare::Status;
use crate::names;
use crate::refusal::{Refusal, Refusals};
use crate::special;
use crate::view::View;

/// Changed sections and objects that cannot be patched, and changed section groups.
pub fn changes(cl: &Closure, out: &mut Refusals) {
    let p = cl.p;
    for (sec, s) in p.obj.sections.iter().enumerate() {
        if cl.cmp.sec[sec] != Status::Changed || s.is_reloc() || p.bundled[sec].is_some() {
            continue;
        }
        let name = s.name_str().into_owned();
        if names::is_ignored_section(&name)
            || special::spec(p.arch, &name).is_some()
            || special::is_parallel(p.arch, &name)
            || names::is_string_section(&name, s.flags)
            || names::is_flag_section(&name)
            || names::is_shared_code_container(&name)
            || names::is_numbered_section(&name)
            || is_special_static_section(&name)
            // ppc64le's TOC: its entries change with the code that uses them, which is
            // compared through them (`View::compare_target`).
            || name == ".toc"
            || cl.is_ignored_section(sec)
            || !s.is_alloc()
        {
            continue;
        }
        if let Some(why) = names::non_bundled_text_kind(&name) {
            out.push(Refusal::NonBundledText { section: name, why });
        } else if s.is_exec() {
            out.push(Refusal::SharedCodeSection { section: name });
        } else if s.flags & SHF_WRITE != 0 {
            out.push(Refusal::ChangedDataSection { section: name });
        } else if name.starts_with(".init") {
            out.push(Refusal::ChangedInitData { section: name });
        }
    }
    for (i, sym) in p.obj.symbols.iter().enumerate() {
        if cl.cmp.sym[i] != Status::Changed || !sym.is_object() {
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
            || special::spec(p.arch, &secname).is_some()
            || cl.is_ignored_section(sec)
        {
            continue;
        }
        out.push(Refusal::ChangedData {
            section: secname,
            symbol: p.name(i).to_string(),
        });
    }
    for (sec, s) in p.obj.sections.iter().enumerate() {
        if matches!(s.data, lp_elf::SectionData::Group { .. }) && cl.cmp.sec[sec] == Status::Changed
        {
            out.push(Refusal::ChangedGroup {
                section: s.name_str().into_owned(),
            });
        }
    }
}

/// Changed functions without an ftrace entry in ORIG: livepatch cannot redirect them.
pub fn ftrace(o: &View, cl: &Closure, out: &mut Refusals) {
    let p = cl.p;
    for &f in &cl.plan.changed {
        let Some(of) = cl.c.p2o[f] else { continue };
        if !o.has_ftrace_entry(of) {
            out.push(Refusal::NoFtraceEntry {
                section: p.obj.symbols[f]
                    .section_index()
                    .map(|s| p.sec_name(s).into_owned())
                    .unwrap_or_default(),
                symbol: o.name(of).to_string(),
                entry: o.arch.ftrace_entry(),
            });
        }
    }
}

/// Changed read-only data that no included code uses: its change would not take effect.
pub fn unused_read_only_data(cl: &Closure, out: &mut Refusals) {
    let p = cl.p;
    for (i, s) in p.obj.symbols.iter().enumerate() {
        if cl.cmp.sym[i] != Status::Changed || !s.is_object() || cl.plan.internal[i] {
            continue;
        }
        let Some(sec) = s.section_index() else {
            continue;
        };
        let sname = p.sec_name(sec).into_owned();
        if p.obj.sections[sec].flags & SHF_WRITE == 0
            && p.obj.sections[sec].is_alloc()
            && !names::is_ignored_section(&sname)
            && special::spec(p.arch, &sname).is_none()
        {
            out.push(Refusal::UnusedReadOnlyData {
                section: sname,
                symbol: p.name(i).to_string(),
            });
        }
    }
}
