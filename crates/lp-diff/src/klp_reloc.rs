//! The klp-relocation stage: decides, for every relocation of every section the patch object
//! carries, where it points in the patch object: a carried section or symbol, a normal
//! relocation against an external symbol (the module loader resolves an exported symbol, or
//! the linker another patch object's new global), or a livepatch relocation against
//! `.klp.sym.<obj>.<sym>,<pos>`; and the position of every replaced function. Symbol positions
//! are computed here, one way ([`Resolver::position`]), for relocations and functions alike.
//!
//! It writes nothing: [`crate::output`] turns the decisions into bytes.

use crate::closure::Plan;
use crate::compare::{Comparison, Status};
use crate::correlate::Correlation;
use crate::parent::{Parent, PosError};
use crate::refusal::{Refusal, Refusals};
use crate::view::{Target, View};
use crate::{DiffError, DiffOptions};
use lp_elf::klp;

/// How to reach an external symbol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    /// An undefined global symbol of this name.
    Normal(String),
    /// A livepatch symbol with this full name.
    Klp(String),
}

/// Why no relocation can be made to a symbol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReachError {
    /// The parent lacks it.
    NotInParent,
    /// The parent has this many and none or several in our file.
    Ambiguous(usize),
    /// Its livepatch name cannot be parsed by the kernel.
    KlpName(String),
}

impl ReachError {
    /// The refusal of this error for `symbol` referred to from `section`.
    pub fn refusal(self, section: &str, symbol: &str, object: &str) -> Refusal {
        let (section, symbol, object) =
            (section.to_string(), symbol.to_string(), object.to_string());
        match self {
            ReachError::NotInParent => Refusal::NotInParent {
                section,
                symbol,
                object,
            },
            ReachError::Ambiguous(count) => Refusal::AmbiguousPosition {
                section,
                symbol,
                object,
                count,
            },
            ReachError::KlpName(why) => Refusal::KlpName {
                section,
                symbol,
                why,
            },
        }
    }
}

/// Where the symbol lives, as far as the differ knows.
pub struct Resolver<'a> {
    /// Options (object name, exports).
    pub opts: &'a DiffOptions,
    /// The parent symbol table of the patched object.
    pub parent: &'a Parent,
    /// Our translation unit's `STT_FILE` index in the parent.
    pub file: Option<u32>,
}

impl Resolver<'_> {
    fn exported(&self, name: &str) -> bool {
        match &self.opts.exports {
            Some(set) => set.contains(name),
            None => self.parent.ksymtab.contains(name),
        }
    }

    fn klp(&self, name: &str, pos: u64) -> Result<Reach, ReachError> {
        klp::klp_sym_name(&self.opts.object_name, name, pos)
            .map(Reach::Klp)
            .map_err(|e| ReachError::KlpName(e.to_string()))
    }

    /// The position of `name` (a global, or a local of our file) among same-named symbols of
    /// the parent, as the livepatch core counts it.
    pub fn position(&self, name: &str, global: bool) -> Result<u64, ReachError> {
        match self.parent.position(name, self.file, global) {
            Ok(Some(pos)) => Ok(pos),
            Ok(None) => Err(ReachError::NotInParent),
            Err(PosError::Ambiguous(n)) => Err(ReachError::Ambiguous(n)),
        }
    }

    /// A symbol undefined in the patched object (defined elsewhere in the kernel or by
    /// another patch object).
    pub fn undefined(&self, name: &str) -> Result<Reach, ReachError> {
        // Not a global of this parent (another patch object's new global, another module's
        // export) or exported: the linker or the module loader resolves it.
        if !self.parent.defines_global(name) || self.exported(name) {
            return Ok(Reach::Normal(name.to_string()));
        }
        self.klp(name, self.position(name, true)?)
    }

    /// A symbol this object defines and the patch does not carry.
    pub fn defined(&self, name: &str, global: bool) -> Result<Reach, ReachError> {
        if global && self.exported(name) {
            return Ok(Reach::Normal(name.to_string()));
        }
        self.klp(name, self.position(name, global)?)
    }
}

/// Where a relocation of the patch object points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum To {
    /// A patched section the patch object carries (through its section symbol).
    Section(usize),
    /// A patched symbol the patch object defines.
    Symbol(usize),
    /// An undefined symbol of this name (resolved by the linker or the module loader).
    External(String),
    /// A livepatch relocation against this `.klp.sym.` name (an ordinary stand-in against
    /// the placeholder during the link).
    Klp(String),
}

/// One relocation of the patch object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Converted {
    /// Offset in the output section (special sections are compacted).
    pub offset: u64,
    /// The relocation type.
    pub r_type: u32,
    /// What it points to.
    pub to: To,
    /// The addend.
    pub addend: i64,
}

/// A replaced function and its position in the running kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replaced {
    /// Index in [`Plan::changed`] (names the alias).
    pub index: usize,
    /// The patched function.
    pub func: usize,
    /// Its ORIG name.
    pub old_name: String,
    /// Its position.
    pub old_sympos: u64,
}

/// The stage's result.
#[derive(Debug, Clone, Default)]
pub struct Relocations {
    /// Per carried patched section, in section order: its relocations, in the order of the
    /// input's (the order the writer meets external symbols in).
    pub sections: Vec<(usize, Vec<Converted>)>,
    /// The replaced functions.
    pub functions: Vec<Replaced>,
}

/// The parent's `STT_FILE` index of our translation unit.
pub fn find_file(o: &View, parent: &Parent, opts: &DiffOptions) -> Option<u32> {
    let base = opts
        .source_name
        .rsplit('/')
        .next()
        .unwrap_or(&opts.source_name);
    let basename = match base.strip_suffix(".o") {
        Some(stem) => format!("{stem}.c"),
        None => base.to_string(),
    };
    let local_names: Vec<&str> = o
        .obj
        .symbols
        .iter()
        .enumerate()
        .filter(|(_, s)| s.is_local() && (s.is_func() || s.is_object()))
        .map(|(i, _)| o.name(i))
        .collect();
    parent
        .find_file(&basename, &local_names)
        .or_else(|| (parent.files.len() == 1).then_some(0))
        .or_else(|| {
            // The ORIG object itself: its one FILE symbol, whatever its name.
            let files = o.obj.symbols.iter().filter(|s| s.is_file()).count();
            (opts.parent.is_none() && files <= 1).then_some(0)
        })
}

/// The inputs of the stage.
pub struct Inputs<'x, 'a> {
    /// ORIG.
    pub o: &'x View<'a>,
    /// PATCHED.
    pub p: &'x View<'a>,
    /// The correlation.
    pub c: &'x Correlation,
    /// The comparison.
    pub cmp: &'x Comparison,
    /// The plan.
    pub plan: &'x Plan,
    /// The options.
    pub opts: &'x DiffOptions,
}

/// Converts every relocation of the carried sections and places every replaced function.
pub fn convert(
    x: &Inputs,
    resolver: &Resolver,
    out: &mut Refusals,
) -> Result<Relocations, DiffError> {
    let mut result = Relocations::default();
    for psec in 0..x.p.obj.sections.len() {
        if !x.plan.carries_section(x.p, psec) {
            continue;
        }
        let kept = x.plan.special_keep.get(&psec);
        let mut list = Vec::new();
        for r in x.p.relocs(psec) {
            let offset = match kept {
                Some(k) => match k.output_offset(r.offset) {
                    Some(o) => o,
                    None => continue,
                },
                None => r.offset,
            };
            if let Some((to, addend)) = convert_one(x, resolver, psec, r, out)? {
                list.push(Converted {
                    offset,
                    r_type: r.r_type,
                    to,
                    addend,
                });
            }
        }
        result.sections.push((psec, list));
    }
    result.functions = place_functions(x, resolver, out);
    Ok(result)
}

/// Where one relocation `r` of patched section `psec` points; `None`: dropped.
fn convert_one(
    x: &Inputs,
    resolver: &Resolver,
    psec: usize,
    r: &lp_elf::Reloc,
    out: &mut Refusals,
) -> Result<Option<(To, i64)>, DiffError> {
    let p = x.p;
    let Some(rsym) = p.obj.symbols.get(r.sym as usize) else {
        return Ok(None);
    };
    let target = p.target(psec, r);
    // The section the relocation's own symbol lives in, if the output has it.
    let via_section = rsym
        .section_index()
        .filter(|&s| x.plan.carries_section(p, s));
    let sym_value = if rsym.is_section() {
        0
    } else {
        rsym.value as i64
    };
    let internal = match &target {
        Target::Sym { sym, .. } => x.plan.defines_symbol(p, x.opts, *sym),
        _ => false,
    };
    Ok(Some(match (&target, via_section, internal) {
        (Target::Sym { .. }, Some(s), true) if rsym.is_section() => (To::Section(s), r.addend),
        // A reference from code to an entry of a special table (7.x's x86 `WARN()` and
        // `WARN_ONCE()` hand their own `__bug_table` entry, which holds the once state, to
        // `__WARN_trap`): the table is compacted in the output, so to the kept copy.
        (Target::Sec { sec: t, addend }, Some(s), _) if x.plan.special_keep.contains_key(t) => {
            let kept = &x.plan.special_keep[t];
            let off = addend.saturating_add(p.pc_adjust(psec, r));
            let moved = u64::try_from(off)
                .ok()
                .and_then(|o| Some((o, kept.output_offset(o)?)));
            match moved {
                Some((from, to)) => {
                    let delta = i64::try_from(to)
                        .unwrap_or(i64::MAX)
                        .saturating_sub(i64::try_from(from).unwrap_or(i64::MAX));
                    (
                        To::Section(s),
                        r.addend.saturating_add(sym_value).saturating_add(delta),
                    )
                }
                None => {
                    out.push(Refusal::ForeignTableEntry {
                        section: p.sec_name(psec).into_owned(),
                        offset: r.offset,
                        table: p.sec_name(*t).into_owned(),
                        entry: u64::try_from(off).unwrap_or(0),
                    });
                    return Ok(None);
                }
            }
        }
        (Target::Str(_) | Target::Const(_) | Target::Sec { .. }, Some(s), _) => {
            (To::Section(s), r.addend.saturating_add(sym_value))
        }
        (Target::Sym { sym, .. }, _, true) => (To::Symbol(*sym), r.addend),
        (Target::Sym { sym, addend }, _, false) => {
            let ps = &p.obj.symbols[*sym];
            let name = match x.c.p2o[*sym] {
                Some(os) => x.o.name(os).to_string(),
                None => p.name(*sym).to_string(),
            };
            if name.is_empty() {
                return Ok(None);
            }
            let reach = if ps.is_undef() {
                resolver.undefined(&name)
            } else {
                if x.cmp.sym[*sym] != Status::Same {
                    return Err(DiffError::Internal(format!(
                        "{}: `{name}` (referred to from {}) is neither included nor in the \
                         running kernel",
                        x.opts.source_name,
                        p.sec_name(psec)
                    )));
                }
                resolver.defined(&name, !ps.is_local())
            };
            let code = p.obj.sections[psec].bytes();
            if reach.is_ok() && p.arch.is_unsupported_sibling_call(code, r) {
                out.push(Refusal::SiblingCall {
                    section: p.sec_name(psec).into_owned(),
                    symbol: name,
                    offset: r.offset,
                });
                return Ok(None);
            }
            match reach {
                Ok(Reach::Normal(n)) => (To::External(n), *addend),
                Ok(Reach::Klp(k)) => (To::Klp(k), *addend),
                Err(e) => {
                    out.push(e.refusal(&p.sec_name(psec), &name, &x.opts.object_name));
                    return Ok(None);
                }
            }
        }
        (_, None, _) => {
            out.push(Refusal::UnreachableData {
                section: p.sec_name(psec).into_owned(),
                offset: r.offset,
            });
            return Ok(None);
        }
    }))
}

/// The position of every replaced function in the running kernel.
fn place_functions(x: &Inputs, resolver: &Resolver, out: &mut Refusals) -> Vec<Replaced> {
    let mut functions = Vec::new();
    for (index, &f) in x.plan.changed.iter().enumerate() {
        let Some(orig) = x.c.p2o[f] else { continue };
        if !x.plan.defines_symbol(x.p, x.opts, f) {
            continue;
        }
        let old_name = x.o.name(orig).to_string();
        let global = !x.o.obj.symbols[orig].is_local();
        match resolver.position(&old_name, global) {
            Ok(old_sympos) => functions.push(Replaced {
                index,
                func: f,
                old_name,
                old_sympos,
            }),
            Err(e) => {
                let sec = x.p.obj.symbols[f].section_index().unwrap_or(0);
                out.push(e.refusal(&x.p.sec_name(sec), &old_name, &x.opts.object_name));
            }
        }
    }
    functions
}
