//! The tables that kbuild and objtool make for a module's code on x86_64, checked on the `.ko`:
//! the module loader rewrites, at load time, every site these tables list for the running CPU's
//! mitigations (`module_finalize()` in arch/x86/kernel/module.c), and the ORC unwinder that the
//! livepatch consistency model relies on finds a task's frames only through `.orc_unwind_ip`.
//!
//! - `.return_sites`: every `jmp`/`jcc __x86_return_thunk` (`apply_returns()`: a site missing
//!   from the table keeps the default thunk, so patched code skips the return mitigation and the
//!   kernel warns "Unpatched return thunk in use").
//! - `.retpoline_sites`: every `call`/`jmp`/`jcc __x86_indirect_*` (`apply_retpolines()`).
//! - `.call_sites` (call depth tracking): every direct call, outside `.altinstr_replacement`,
//!   to anything but retpoline thunks and static-call trampolines (objtool's
//!   `annotate_call_site()`; for modules `.init.text` is no exception), and `call __fentry__` or
//!   not (objtool lists it unless it makes `__mcount_loc` itself). A call that a livepatch
//!   relocation for a module completes must not be listed: those relocations are applied when
//!   that module loads, after `module_finalize()`, which would find a zero displacement and look
//!   for a call thunk in the bytes after the call ("Invalid padding area"). vmlinux's livepatch
//!   relocations are applied with the ordinary ones, before it.
//! - ORC: the entry in effect at the first byte of every function of the module must be a real
//!   one (`orc_find()` takes the last entry at or below an address; objtool ends each section
//!   with an undefined terminator, so a function without entries of its own inherits one).
//!
//! Each table must also point only at such instructions. A branch to a thunk must not wait for a
//! module's livepatch relocation: the loader reads its destination in `module_finalize()`.

use crate::validate::Problem;
use lp_elf::klp::parse_klp_sym;
use lp_elf::{Object, Reloc, SymSection};
use std::collections::{BTreeMap, BTreeSet};

/// Which tables the kernel's configuration requires beside the thunk tables (those are
/// required whenever the code jumps to a thunk).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CodeTables {
    /// `CONFIG_UNWINDER_ORC`: every function needs ORC.
    pub orc: bool,
    /// `CONFIG_CALL_DEPTH_TRACKING`: every plain direct call is listed in `.call_sites`.
    pub call_sites: bool,
}

impl CodeTables {
    /// What a module shows of its kernel when nothing else is known: ORC when it has an
    /// `.orc_header` (6.4+) or ORC sections, call sites when it has `.call_sites`.
    pub fn guess(obj: &Object) -> CodeTables {
        let has = |n: &str| obj.section_by_name(n).is_some();
        CodeTables {
            orc: has(".orc_header") || has(".orc_unwind_ip") || has(".orc_unwind"),
            call_sites: has(".call_sites"),
        }
    }
}

/// A place in the module: (section index, offset).
type Place = (usize, u64);

const RETURN_THUNK: &str = "__x86_return_thunk";
const RETPOLINE_PREFIX: &str = "__x86_indirect_";
const FENTRY: &str = "__fentry__";
/// `sizeof(struct orc_entry)`.
const ORC_ENTRY_SIZE: usize = 6;

/// The kinds of code site a table lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Return,
    Retpoline,
    Call,
}

impl Kind {
    fn table(self) -> &'static str {
        match self {
            Kind::Return => ".return_sites",
            Kind::Retpoline => ".retpoline_sites",
            Kind::Call => ".call_sites",
        }
    }

    fn what(self) -> &'static str {
        match self {
            Kind::Return => "a jump to the return thunk",
            Kind::Retpoline => "a branch to a retpoline thunk",
            Kind::Call => "a direct call",
        }
    }

    fn consequence(self) -> &'static str {
        match self {
            Kind::Return => {
                "the loader will not rewrite it for the CPU's return mitigation (the patched code \
                 runs the default thunk and the kernel warns \"Unpatched return thunk in use\")"
            }
            Kind::Retpoline => {
                "the loader will not rewrite it for the CPU's indirect-branch mitigation"
            }
            Kind::Call => "the loader will not make it account the call depth (retbleed=stuff)",
        }
    }
}

/// A relocated branch: where its instruction starts, its opcode kind, the target's name and
/// whether a livepatch relocation for a module (applied after `module_finalize()`) completes it.
struct Branch {
    start: u64,
    call: bool,
    target: String,
    late: bool,
}

/// The name a relocation refers to (the symbol's, or the name inside a `.klp.sym.` name), and
/// whether it is a livepatch symbol of a module rather than of vmlinux.
fn target_name(obj: &Object, r: &Reloc) -> Option<(String, bool)> {
    let sym = obj.symbols.get(r.sym as usize)?;
    if sym.is_section() {
        let sec = obj.sections.get(sym.section_index()?)?;
        return Some((sec.name_str().into_owned(), false));
    }
    let name = sym.name_str();
    if let Some((object, n, _)) = parse_klp_sym(&name) {
        return Some((n.to_string(), object != "vmlinux"));
    }
    Some((name.into_owned(), false))
}

/// The branch instruction whose rel32 field a relocation at `offset` fills, if any:
/// `e8`/`e9` rel32 or `0f 8x` rel32.
fn branch_start(code: &[u8], offset: u64) -> Option<(u64, bool)> {
    let at = usize::try_from(offset).ok()?;
    let one = at.checked_sub(1).and_then(|i| code.get(i)).copied();
    let two = at.checked_sub(2).and_then(|i| code.get(i)).copied();
    match (two, one) {
        (_, Some(0xe8)) => Some((offset - 1, true)),
        (_, Some(0xe9)) => Some((offset - 1, false)),
        (Some(0x0f), Some(b)) if b & 0xf0 == 0x80 => Some((offset - 2, false)),
        _ => None,
    }
}

/// The branch a table entry at `p` lists. An entry is an instruction's first byte, prefixes
/// included: clang (`-mindirect-branch-cs-prefix`, on retpoline kernels) emits `cs jmp
/// __x86_return_thunk` and `cs call __x86_indirect_thunk_*` (`2e e9`, `2e e8`), listed at the
/// `2e`, which the kernel's decoder skips. An entry on `cs` prefixes directly before a relocated
/// branch's opcode is that branch; any other entry is taken as it is.
fn past_cs_prefix(obj: &Object, branches: &BTreeMap<Place, Branch>, p: Place) -> Place {
    const CS: u8 = 0x2e;
    if branches.contains_key(&p) {
        return p;
    }
    // At most 14 prefixes fit in an instruction.
    let mut q = p;
    for _ in 0..14 {
        if byte_at(obj, q) != Some(CS) {
            return p;
        }
        q = (q.0, q.1.saturating_add(1));
        if branches.contains_key(&q) {
            return q;
        }
    }
    p
}

/// Every relocated branch of every executable section, by place.
fn branches(obj: &Object) -> BTreeMap<Place, Branch> {
    let mut out = BTreeMap::new();
    for rs in obj.sections.iter().filter(|s| s.is_reloc()) {
        let target = rs.info as usize;
        let Some(code) = obj.sections.get(target).filter(|s| s.is_exec()) else {
            continue;
        };
        for r in rs.relocs().unwrap_or(&[]) {
            let Some((start, call)) = branch_start(code.bytes(), r.offset) else {
                continue;
            };
            let Some((name, late)) = target_name(obj, r) else {
                continue;
            };
            out.insert(
                (target, start),
                Branch {
                    start,
                    call,
                    target: name,
                    late,
                },
            );
        }
    }
    out
}

/// The kind of site a branch is, and whether `Call` applies to its section.
fn kind_of(obj: &Object, sec: usize, b: &Branch) -> Option<Kind> {
    if b.target == RETURN_THUNK && !b.call {
        return Some(Kind::Return);
    }
    if b.target.starts_with(RETPOLINE_PREFIX) {
        return Some(Kind::Retpoline);
    }
    let secname = obj.sections.get(sec)?.name_str();
    if b.call && !b.late && secname != ".altinstr_replacement" && call_site_callee(&b.target) {
        return Some(Kind::Call);
    }
    None
}

/// Whether objtool lists a direct call to `callee` in `.call_sites`: not to a static-call
/// trampoline (`__SCT__*`, whose sites go to `.static_call_sites`) nor to a retpoline thunk.
pub fn call_site_callee(callee: &str) -> bool {
    !callee.starts_with("__SCT__") && !callee.starts_with(RETPOLINE_PREFIX)
}

/// The places a table of 32-bit place-relative entries points to, or a problem.
fn table_places(obj: &Object, name: &str, out: &mut Vec<Problem>) -> Option<Vec<Place>> {
    let idx = obj.section_by_name(name)?;
    let sec = obj.sections.get(idx)?;
    let mut relocs: BTreeMap<u64, &Reloc> = BTreeMap::new();
    for rs in obj
        .sections
        .iter()
        .filter(|s| s.is_reloc() && s.info as usize == idx)
    {
        for r in rs.relocs().unwrap_or(&[]) {
            relocs.insert(r.offset, r);
        }
    }
    let size = sec.size();
    if size % 4 != 0 {
        out.push(problem(
            name,
            "",
            format!("{size} bytes are not a whole number of 4-byte entries"),
        ));
        return None;
    }
    let mut places = Vec::new();
    for at in (0..size).step_by(4) {
        let Some(r) = relocs.get(&at) else {
            out.push(problem(
                name,
                "",
                format!("entry at {at:#x} has no relocation: the loader would read a wild address"),
            ));
            continue;
        };
        match resolve(obj, r) {
            Some(p) => places.push(p),
            None => out.push(problem(
                name,
                "",
                format!("entry at {at:#x} does not point into a section of the module"),
            )),
        }
    }
    Some(places)
}

/// A relocation's target as (section, offset): symbol value plus addend.
fn resolve(obj: &Object, r: &Reloc) -> Option<Place> {
    let sym = obj.symbols.get(r.sym as usize)?;
    let SymSection::Section(sec) = sym.section else {
        return None;
    };
    let off = i128::from(sym.value) + i128::from(r.addend);
    Some((sec as usize, u64::try_from(off).ok()?))
}

fn problem(section: &str, symbol: &str, message: String) -> Problem {
    Problem {
        section: section.to_string(),
        symbol: symbol.to_string(),
        message,
    }
}

/// The functions of the module's code: (section, start, end, name), prefix symbols left out.
fn functions(obj: &Object) -> Vec<(usize, u64, u64, String)> {
    let mut out = Vec::new();
    for s in &obj.symbols {
        let Some(sec) = s.section_index() else {
            continue;
        };
        if !s.is_func() || s.size == 0 || !obj.sections.get(sec).is_some_and(|x| x.is_exec()) {
            continue;
        }
        let name = s.name_str().into_owned();
        if name.starts_with("__pfx_") || name.starts_with("__cfi_") {
            continue;
        }
        out.push((sec, s.value, s.value.saturating_add(s.size), name));
    }
    // At one address, the function's own name before lp-build's `__lp_*` aliases of it.
    out.sort_by(|a, b| {
        (a.0, a.1, a.3.starts_with("__lp_"), &a.3).cmp(&(b.0, b.1, b.3.starts_with("__lp_"), &b.3))
    });
    out.dedup_by(|a, b| (a.0, a.1) == (b.0, b.1));
    out
}

/// `function+0xoff` for a place, else `section+0xoff`.
fn label(obj: &Object, funcs: &[(usize, u64, u64, String)], (sec, off): Place) -> String {
    for (s, start, end, name) in funcs {
        if *s == sec && (*start..*end).contains(&off) {
            return format!("{name}+{:#x}", off - start);
        }
    }
    let secname = obj
        .sections
        .get(sec)
        .map(|s| s.name_str().into_owned())
        .unwrap_or_default();
    format!("{secname}+{off:#x}")
}

fn byte_at(obj: &Object, (sec, off): Place) -> Option<u8> {
    let off = usize::try_from(off).ok()?;
    obj.sections.get(sec)?.bytes().get(off).copied()
}

fn section_name(obj: &Object, sec: usize) -> String {
    obj.sections
        .get(sec)
        .map(|s| s.name_str().into_owned())
        .unwrap_or_default()
}

/// Every problem with the module's code tables.
pub fn check(obj: &Object, tables: CodeTables) -> Vec<Problem> {
    let mut out = Vec::new();
    let funcs = functions(obj);
    let branches = branches(obj);

    // Thunks reached through a module's livepatch relocations.
    for (&(sec, _), b) in &branches {
        if b.late && (b.target == RETURN_THUNK || b.target.starts_with(RETPOLINE_PREFIX)) {
            out.push(problem(
                &section_name(obj, sec),
                &label(obj, &funcs, (sec, b.start)),
                format!(
                    "branches to `{}` through a module's livepatch relocation: the loader reads \
                     the destination before that module's relocations are applied; it must be \
                     an ordinary relocation (the thunk is exported)",
                    b.target
                ),
            ));
        }
    }

    for kind in [Kind::Return, Kind::Retpoline, Kind::Call] {
        let sites: BTreeSet<Place> = branches
            .iter()
            .filter(|(&(sec, _), b)| kind_of(obj, sec, b) == Some(kind))
            .map(|(&p, _)| p)
            .collect();
        let required = kind != Kind::Call || tables.call_sites;
        let listed = table_places(obj, kind.table(), &mut out);
        if listed.is_none() && (sites.is_empty() || !required) {
            continue;
        }
        let listed: BTreeSet<Place> = listed
            .unwrap_or_default()
            .into_iter()
            .map(|p| past_cs_prefix(obj, &branches, p))
            .collect();
        if required {
            for &p in sites.difference(&listed) {
                // objtool lists `call __fentry__` unless it makes `__mcount_loc` itself
                // (`--mcount`, for compilers without -mrecord-mcount): either is right.
                if branches.get(&p).is_some_and(|b| b.target == FENTRY) {
                    continue;
                }
                if is_placeholder(obj, p.0) {
                    continue;
                }
                out.push(problem(
                    &section_name(obj, p.0),
                    &label(obj, &funcs, p),
                    format!(
                        "{} that {} does not list: {}",
                        kind.what(),
                        kind.table(),
                        kind.consequence()
                    ),
                ));
            }
        }
        for &p in listed.difference(&sites) {
            // objtool also lists calls that need no relocation (within one section).
            if kind == Kind::Call && !branches.contains_key(&p) && byte_at(obj, p) == Some(0xe8) {
                continue;
            }
            let why = match branches.get(&p) {
                Some(b) if b.late && kind == Kind::Call => {
                    "a call that a livepatch relocation for a module completes (its displacement \
                     is zero when the loader patches call sites)"
                        .to_string()
                }
                Some(b) => format!("a branch to `{}`", b.target),
                None => "no relocated branch".to_string(),
            };
            out.push(problem(
                kind.table(),
                &label(obj, &funcs, p),
                format!(
                    "lists {}: {why}, not {}; the loader would rewrite the wrong instruction",
                    section_name(obj, p.0),
                    kind.what()
                ),
            ));
        }
    }

    if tables.orc {
        check_orc(obj, &funcs, &mut out);
    }
    out
}

/// The placeholder that stand-in relocations point to during the link
/// ([`crate::convert::KLP_PLACEHOLDER_SECTION`]): unreachable in the module, since the post-link
/// pass replaces every relocation to it and refuses any other. objtool covers it when it runs
/// on the linked module (IBT kernels); on kernels where objtool runs on each object at compile
/// time (no IBT: Debian's 6.1) nothing makes tables for it, and none are needed.
fn is_placeholder(obj: &Object, sec: usize) -> bool {
    section_name(obj, sec) == crate::convert::KLP_PLACEHOLDER_SECTION
}

/// Every function's first byte is covered by a real ORC entry.
fn check_orc(obj: &Object, funcs: &[(usize, u64, u64, String)], out: &mut Vec<Problem>) {
    let ips = table_places(obj, ".orc_unwind_ip", out).unwrap_or_default();
    let data = obj
        .section_by_name(".orc_unwind")
        .and_then(|i| obj.sections.get(i))
        .map(|s| s.bytes())
        .unwrap_or(&[]);
    if data.len() != ips.len().saturating_mul(ORC_ENTRY_SIZE) {
        out.push(problem(
            ".orc_unwind",
            "",
            format!(
                "{} bytes for {} `.orc_unwind_ip` entries of {ORC_ENTRY_SIZE} bytes: the tables \
                 do not match",
                data.len(),
                ips.len()
            ),
        ));
        return;
    }
    // Per section: offset -> defined, sorted as the kernel sorts them (at one address a real
    // entry wins over the undefined terminator).
    let mut by_sec: BTreeMap<usize, BTreeMap<u64, bool>> = BTreeMap::new();
    for (i, &(sec, off)) in ips.iter().enumerate() {
        let defined = data
            .get(i * ORC_ENTRY_SIZE..(i + 1) * ORC_ENTRY_SIZE)
            .is_some_and(|e| e.iter().any(|&b| b != 0));
        let slot = by_sec.entry(sec).or_default().entry(off).or_insert(false);
        *slot |= defined;
    }
    for (sec, start, _, name) in funcs {
        if is_placeholder(obj, *sec) {
            continue;
        }
        let effective = by_sec
            .get(sec)
            .and_then(|m| m.range(..=*start).next_back())
            .map(|(_, &d)| d);
        if effective != Some(true) {
            out.push(problem(
                &section_name(obj, *sec),
                name,
                format!(
                    "no ORC entry covers the function's start ({}): the reliable unwinder cannot \
                     walk a task sleeping in it, so the livepatch transition can stall or be \
                     wrong; objtool must generate ORC for the module's code",
                    if ips.is_empty() {
                        "the module has no .orc_unwind_ip"
                    } else {
                        "the entry in effect there is undefined"
                    }
                ),
            ));
        }
    }
}
