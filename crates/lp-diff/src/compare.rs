//! Marks every patched section and symbol as same, changed or new.
//!
//! Sections compare relocation-aware: bytes plus normalised relocation targets (the ORIG name
//! of a correlated symbol, string contents, addends), so a moved callee is no change and a
//! changed string is one. A function whose only difference is a `__LINE__` immediate feeding a
//! WARN/might_sleep/printk call counts as unchanged.

use crate::correlate::Correlation;
use crate::names;
use crate::view::{Target, View};
use lp_elf::SectionData;
use std::collections::BTreeMap;

/// The state of a patched element relative to ORIG.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Identical (up to relocation spelling).
    Same,
    /// Present in both, different.
    Changed,
    /// Only in PATCHED.
    New,
}

/// The comparison.
#[derive(Debug, Clone)]
pub struct Comparison {
    /// Per patched section.
    pub sec: Vec<Status>,
    /// Per patched symbol (functions and objects; others are `Same` or `New`).
    pub sym: Vec<Status>,
    /// Patched functions whose change was only `__LINE__` immediates.
    pub line_only: Vec<usize>,
    /// Per changed patched function: a short listing of the difference.
    pub explanations: Vec<(usize, String)>,
}

fn targets_equal(o: &View, p: &View, c: &Correlation, ot: &Target, pt: &Target) -> bool {
    match (ot, pt) {
        (Target::Str(a), Target::Str(b)) | (Target::Const(a), Target::Const(b)) => a == b,
        (
            Target::Sym {
                sym: os,
                addend: oa,
            },
            Target::Sym {
                sym: ps,
                addend: pa,
            },
        ) => {
            if oa != pa {
                return false;
            }
            match c.p2o.get(*ps).copied().flatten() {
                Some(twin) => twin == *os,
                None => {
                    // Uncorrelated: only special statics and undefined symbols may match by
                    // canonical name; anything else is a reference to something new.
                    let (on, pn) = (o.name(*os), p.name(*ps));
                    let osym = &o.obj.symbols[*os];
                    let psym = &p.obj.symbols[*ps];
                    if psym.is_undef() && osym.is_undef() {
                        return on == pn;
                    }
                    names::is_special_static_name(pn)
                        && names::canonical(on) == names::canonical(pn)
                }
            }
        }
        (
            Target::Sec {
                sec: osec,
                addend: oa,
            },
            Target::Sec {
                sec: psec,
                addend: pa,
            },
        ) => {
            let (on, pn) = (o.sec_name(*osec), p.sec_name(*psec));
            match c.sec_p2o.get(*psec).copied().flatten() {
                // Out-of-line code containers shift when any user changes.
                Some(twin) if names::is_shared_code_container(&pn) => twin == *osec,
                Some(twin) => twin == *osec && oa == pa,
                None => {
                    names::is_numbered_section(&pn)
                        && names::canonical(&on) == names::canonical(&pn)
                        && oa == pa
                }
            }
        }
        _ => false,
    }
}

/// The section and offset of a reference from code into a special table (`__bug_table`, ...),
/// which 7.x's x86 `WARN()` and `WARN_ONCE()` make: `lea 2f(%rip)` where `2:` is the call's own
/// `__bug_table` entry, handed to `__WARN_trap` (the entry also holds the once state).
fn table_entry(v: &View, sec: usize, r: &lp_elf::Reloc) -> Option<(usize, u64)> {
    match v.target(sec, r) {
        Target::Sec { sec: t, addend }
            if crate::special::spec(v.arch, &v.sec_name(t)).is_some() =>
        {
            let off = addend.saturating_add(v.pc_adjust(sec, r));
            Some((t, u64::try_from(off).ok()?))
        }
        _ => None,
    }
}

/// True when two references into a special table name equivalent entries: the same kind of
/// relocation at the same place of each entry with equal targets (the anchor in the function
/// itself, the format and file strings). The entry's place in the table is not compared: it
/// moves whenever another function of the file gains or loses a `WARN`. The entry's plain bytes
/// (line, flags) are not compared either: the line moves with unrelated edits.
/// FIXME: a change of flags alone (`WARN` to `WARN_ONCE` with the same format) is not seen.
fn table_entries_equal(
    o: &View,
    (otab, ooff): (usize, u64),
    p: &View,
    (ptab, poff): (usize, u64),
    c: &Correlation,
    size: Option<u64>,
) -> bool {
    if c.sec_p2o.get(ptab).copied().flatten() != Some(otab) {
        return false;
    }
    // Without the entry size only the anchor (the entry's first field) is compared.
    let len = size.unwrap_or(1);
    fn entry<'v>(v: &'v View, tab: usize, start: u64, len: u64) -> Vec<&'v lp_elf::Reloc> {
        let mut rs: Vec<&lp_elf::Reloc> = v
            .relocs(tab)
            .iter()
            .filter(|r| r.offset >= start && r.offset < start.saturating_add(len))
            .collect();
        rs.sort_by_key(|r| r.offset);
        rs
    }
    let (ors, prs) = (entry(o, otab, ooff, len), entry(p, ptab, poff, len));
    !prs.is_empty()
        && ors.len() == prs.len()
        && ors.iter().zip(&prs).all(|(a, b)| {
            a.offset - ooff == b.offset - poff
                && a.r_type == b.r_type
                && targets_equal(o, p, c, &o.target(otab, a), &p.target(ptab, b))
        })
}

/// Compares relocations of two sections; true when equivalent.
fn relocs_equal(
    o: &View,
    osec: usize,
    p: &View,
    psec: usize,
    c: &Correlation,
    sizes: &BTreeMap<String, u64>,
) -> bool {
    let (or, pr) = (o.relocs(osec), p.relocs(psec));
    if or.len() != pr.len() {
        return false;
    }
    let mut or: Vec<_> = or.iter().collect();
    let mut pr: Vec<_> = pr.iter().collect();
    or.sort_by_key(|r| r.offset);
    pr.sort_by_key(|r| r.offset);
    or.iter().zip(&pr).all(|(a, b)| {
        if a.offset != b.offset || a.r_type != b.r_type {
            return false;
        }
        match (table_entry(o, osec, a), table_entry(p, psec, b)) {
            (Some(oe), Some(pe)) => {
                let size = sizes.get(p.sec_name(pe.0).as_ref()).copied();
                table_entries_equal(o, oe, p, pe, c, size)
            }
            _ => targets_equal(
                o,
                p,
                c,
                &o.compare_target(osec, a),
                &p.compare_target(psec, b),
            ),
        }
    })
}

fn data_equal(o: &View, osec: usize, p: &View, psec: usize) -> bool {
    let (a, b) = (&o.obj.sections[osec], &p.obj.sections[psec]);
    a.sh_type == b.sh_type
        && match (&a.data, &b.data) {
            (SectionData::Bytes(x), SectionData::Bytes(y)) => x == y,
            (SectionData::NoBits(x), SectionData::NoBits(y)) => x == y,
            (
                SectionData::Group {
                    flags: f1,
                    members: m1,
                },
                SectionData::Group {
                    flags: f2,
                    members: m2,
                },
            ) => f1 == f2 && m1.len() == m2.len(),
            (x, y) => std::mem::discriminant(x) == std::mem::discriminant(y),
        }
}

fn describe(t: &Target, v: &View) -> String {
    match t {
        Target::Sym { sym, addend } => {
            let n = names::canonical(v.name(*sym));
            if *addend == 0 || *addend == -4 {
                n
            } else {
                format!("{n}{addend:+}")
            }
        }
        Target::Str(s) => format!("\"{}\"", String::from_utf8_lossy(s).escape_debug()),
        Target::Const(b) => format!("const {b:02x?}"),
        Target::Sec { sec, addend } => format!("{}{addend:+}", v.sec_name(*sec)),
    }
}

/// A short unified diff of the two instruction listings.
fn explain(o: &View, osec: usize, p: &View, psec: usize) -> String {
    // Relocation targets are shown by canonical name, so both listings compare symbolically.
    let listing = |v: &View, sec: usize| {
        let relocs = v.relocs(sec);
        v.arch.listing(v.obj.sections[sec].bytes(), &|start, end| {
            relocs
                .iter()
                .find(|r| r.offset >= start && r.offset < end)
                .map(|r| describe(&v.compare_target(sec, r), v))
        })
    };
    let a = listing(o, osec);
    let b = listing(p, psec);
    let a = a.join("\n");
    let b = b.join("\n");
    let diff = similar::TextDiff::from_lines(&a, &b);
    let mut out = String::new();
    for (n, change) in diff
        .iter_all_changes()
        .filter(|ch| ch.tag() != similar::ChangeTag::Equal)
        .enumerate()
    {
        if n >= 12 {
            out.push_str("  ...\n");
            break;
        }
        let sign = match change.tag() {
            similar::ChangeTag::Delete => '-',
            similar::ChangeTag::Insert => '+',
            similar::ChangeTag::Equal => ' ',
        };
        out.push_str(&format!("  {sign} {}", change.value()));
        if !change.value().ends_with('\n') {
            out.push('\n');
        }
    }
    if out.is_empty() {
        out.push_str("  (same instructions; relocation targets or data differ)\n");
    }
    out
}

/// Compares the objects.
///
/// `entry_sizes`: the special sections' entry sizes, for references from code to table entries.
pub fn compare(
    o: &View,
    p: &View,
    c: &Correlation,
    explain_changes: bool,
    entry_sizes: &BTreeMap<String, u64>,
) -> Comparison {
    let mut sec = vec![Status::New; p.obj.sections.len()];
    let mut line_only = Vec::new();
    for (psec, s) in p.obj.sections.iter().enumerate() {
        if s.is_reloc() {
            continue;
        }
        let Some(osec) = c.sec_p2o[psec] else {
            continue;
        };
        let bytes_same = data_equal(o, osec, p, psec);
        let relocs_same = relocs_equal(o, osec, p, psec, c, entry_sizes);
        sec[psec] = if bytes_same && relocs_same {
            Status::Same
        } else if relocs_same && s.is_exec() {
            let relocs = p.relocs(psec);
            let callee_at = |off: u64| {
                relocs
                    .iter()
                    .find(|r| r.offset == off)
                    .map(|r| match p.target(psec, r) {
                        Target::Sym { sym, .. } => p.name(sym).to_string(),
                        _ => String::new(),
                    })
            };
            if p.arch
                .line_only_change(o.obj.sections[osec].bytes(), s.bytes(), &callee_at)
            {
                if let Some(f) = p.bundled[psec] {
                    line_only.push(f);
                }
                Status::Same
            } else {
                Status::Changed
            }
        } else {
            Status::Changed
        };
    }
    // A group changes with its members (COMDAT contents must stay identical everywhere).
    for (psec, s) in p.obj.sections.iter().enumerate() {
        if let SectionData::Group { members, .. } = &s.data {
            if sec[psec] == Status::Same
                && members
                    .iter()
                    .any(|&m| sec.get(m as usize).is_some_and(|st| *st != Status::Same))
            {
                sec[psec] = Status::Changed;
            }
        }
    }
    // Relocation sections share their target's status.
    for (psec, s) in p.obj.sections.iter().enumerate() {
        if s.is_reloc() {
            sec[psec] = sec.get(s.info as usize).copied().unwrap_or(Status::New);
        }
    }

    let mut sym = vec![Status::Same; p.obj.symbols.len()];
    for (i, s) in p.obj.symbols.iter().enumerate().skip(1) {
        if s.is_undef() {
            continue;
        }
        sym[i] = match c.p2o[i] {
            None => Status::New,
            Some(_) => match s.section_index() {
                Some(psec) if p.bundled[psec] == Some(i) => sec[psec],
                Some(psec) if s.is_func() || s.is_object() => {
                    // A symbol in a shared section: changed when its bytes or relocations are.
                    if sec[psec] == Status::Same {
                        Status::Same
                    } else {
                        Status::Changed
                    }
                }
                _ => Status::Same,
            },
        };
    }
    // A changed or new child (`.cold`, `.part`) makes its parent changed.
    for i in 0..p.obj.symbols.len() {
        if sym[i] == Status::Same || !p.obj.symbols[i].is_func() {
            continue;
        }
        if let Some(pi) = p.child_parent(i) {
            if sym[pi] == Status::Same {
                sym[pi] = Status::Changed;
            }
        }
    }
    // Prefix padding shares its function's status.
    for (i, st) in sym.iter_mut().enumerate() {
        if names::is_function_prefix(p.name(i)) {
            *st = Status::Same;
        }
    }

    let mut explanations = Vec::new();
    for (i, s) in p.obj.symbols.iter().enumerate() {
        if !explain_changes {
            break;
        }
        if sym[i] != Status::Changed || !s.is_func() || p.child_parent(i).is_some() {
            continue;
        }
        if let (Some(psec), Some(osym)) = (s.section_index(), c.p2o[i]) {
            if let Some(osec) = o.obj.symbols[osym].section_index() {
                explanations.push((i, explain(o, osec, p, psec)));
            }
        }
    }
    Comparison {
        sec,
        sym,
        line_only,
        explanations,
    }
}
