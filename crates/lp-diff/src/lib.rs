//! The object differ: compares the original and the patched copy of one kernel object (built
//! with `-ffunction-sections -fdata-sections`) and produces the patch object for that
//! translation unit plus a record of what it patches.
//!
//! [`diff_objects`] is the stage list, one function per stage, in the order of the kernel's
//! `cmd_klp_diff`: [`wellformed`] (relocation sections it can trust), [`view`] (indexes each
//! object), [`hooks`] (the author's annotations), [`correlate`] (pairs orig and patched
//! symbols), [`compare`] (changed and new functions), [`closure`] (plan what the patch needs),
//! [`checks`] (refusals; every kind is in the catalogue, [`refusal`]), [`special`] (the special
//! sections' entries for the included code), [`klp_reloc`] (normal or livepatch relocations,
//! symbol positions), [`output`] (write the patch object and its record).
//!
//! Architecture invariant: this crate does no I/O and starts no process. Callers pass bytes in
//! and get bytes and data out.

pub mod arch;
pub mod checks;
pub mod closure;
pub mod compare;
pub mod correlate;
pub mod hooks;
pub mod klp_reloc;
pub mod names;
pub mod output;
pub mod parent;
pub mod refusal;
pub mod special;
pub mod view;
pub mod wellformed;

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};

pub use parent::Parent;

/// The differ's maps by symbol name or index: foldhash instead of std's SipHash (a good part of
/// indexing an object's symbols), randomly seeded per process like std's; nothing iterates one
/// into an output, so their order never reaches a byte of it.
pub type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// What the caller tells the differ about the object being diffed.
#[derive(Debug, Clone, Default)]
pub struct DiffOptions {
    /// The livepatch object name: `vmlinux` or the module name (dashes as underscores).
    pub object_name: String,
    /// The object's path in the build (`fs/proc/cmdline.o`), for messages and to find its
    /// source file among the parent's `STT_FILE` symbols.
    pub source_name: String,
    /// Entry sizes of special sections by section name (`__jump_table` -> 16).
    pub entry_sizes: BTreeMap<String, u64>,
    /// The symbol table the patched code is resolved against; `None`: the ORIG object itself.
    pub parent: Option<Parent>,
    /// Symbols exported by vmlinux (from Module.symvers). `None`: every symbol undefined in the
    /// ORIG object counts as exported and every global defined in it as unexported unless it has
    /// a `__ksymtab_` entry there.
    pub exports: Option<HashSet<String>>,
    /// The kernel runs objtool on the linked module (CONFIG_X86_KERNEL_IBT or LTO): the patch
    /// object must not carry objtool's output (ORC, `.return_sites`, `__pfx_` symbols, ...),
    /// objtool makes it for the whole module; its input annotations (`.discard.*`) are kept.
    pub objtool_on_module: bool,
    /// objtool, not the compiler, makes `__mcount_loc` (CONFIG_FTRACE_MCOUNT_USE_OBJTOOL: clang
    /// on x86_64, which has no `-mrecord-mcount`). With [`Self::objtool_on_module`] the table
    /// is objtool's output too, left out of the patch object: objtool skips a module that has it.
    pub objtool_mcount: bool,
    /// Compute [`DiffResult::explanations`] (instruction listings of each changed function).
    pub explain: bool,
    /// A prefix, unique per object in one module, for the global aliases the differ gives to
    /// patched functions and callbacks (the generated C refers to them).
    pub alias_prefix: String,
}

/// The differ's verdict for one object pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// A patch object was produced.
    Patch,
    /// Nothing functional changed.
    NoChange,
    /// The change cannot be live-patched safely; see the errors.
    Refused,
}

/// One problem found while diffing, with where it is and what the author can do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnostic {
    /// The object (`fs/proc/meminfo.o`).
    pub object: String,
    /// The section concerned.
    pub section: String,
    /// The symbol concerned (may be empty).
    pub symbol: String,
    /// What is wrong and what to do instead.
    pub message: String,
    /// The refusal's kind in the catalogue ([`refusal::Kind`]); `None` for a warning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<refusal::Kind>,
}

impl Outcome {
    /// Its serialised name: `patch`, `no-change`, `refused`.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Patch => "patch",
            Outcome::NoChange => "no-change",
            Outcome::Refused => "refused",
        }
    }
}

impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: ", self.object)?;
        if !self.symbol.is_empty() {
            write!(f, "{} ", self.symbol)?;
        }
        write!(f, "[{}]: {}", self.section, self.message)
    }
}

/// A function the patch replaces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FuncRecord {
    /// The function's name in the running kernel (the ORIG object's name).
    pub old_name: String,
    /// Its position among same-named symbols of the object (0: unique).
    pub old_sympos: u64,
    /// The global alias of the new version in the patch object.
    pub new_symbol: String,
}

/// The four callback kinds, in `struct klp_callbacks` field order; serialised as the field
/// names (`pre_patch`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallbackKind {
    /// `pre_patch`: `int fn(struct klp_object *)`, non-zero aborts the load.
    PrePatch,
    /// `post_patch`.
    PostPatch,
    /// `pre_unpatch`.
    PreUnpatch,
    /// `post_unpatch`.
    PostUnpatch,
}

impl CallbackKind {
    /// Every kind, in field order.
    pub const ALL: [CallbackKind; 4] = [
        CallbackKind::PrePatch,
        CallbackKind::PostPatch,
        CallbackKind::PreUnpatch,
        CallbackKind::PostUnpatch,
    ];

    /// The `struct klp_callbacks` field (and serialised) name.
    pub fn field(self) -> &'static str {
        match self {
            CallbackKind::PrePatch => "pre_patch",
            CallbackKind::PostPatch => "post_patch",
            CallbackKind::PreUnpatch => "pre_unpatch",
            CallbackKind::PostUnpatch => "post_unpatch",
        }
    }

    /// Its position in [`CallbackKind::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

impl std::fmt::Display for CallbackKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.field())
    }
}

/// A callback declared with the hooks macros.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallbackRecord {
    /// Which of the four callbacks.
    pub kind: CallbackKind,
    /// The global alias of the callback function in the patch object.
    pub symbol: String,
    /// Declaration order within the object.
    pub order: u64,
    /// For `KPATCH_LOAD_HOOK`/`KPATCH_UNLOAD_HOOK` style hooks: `void fn(void)`.
    pub void_hook: bool,
}

/// A system state declared with `LP_STATE(id, version)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateRecord {
    /// `klp_state.id`.
    pub id: u64,
    /// `klp_state.version`.
    pub version: u32,
}

/// A relocation the livepatch core must resolve (informational copy; the one that travels
/// through the link is the `.lp.klp_relocs` section of the patch object).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KlpRelocRecord {
    /// The section of the patch object holding the place.
    pub section: String,
    /// Offset of the place in it.
    pub offset: u64,
    /// `R_X86_64_*`.
    pub r_type: u32,
    /// `.klp.sym.<obj>.<sym>,<pos>`.
    pub symbol: String,
    /// Addend.
    pub addend: i64,
}

/// Everything the module emitter needs to know about one patch object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatchRecord {
    /// The livepatch object name (`vmlinux` or a module).
    pub object: String,
    /// The object's path in the build.
    pub source: String,
    /// Patched functions.
    pub functions: Vec<FuncRecord>,
    /// Callbacks.
    pub callbacks: Vec<CallbackRecord>,
    /// System states.
    pub states: Vec<StateRecord>,
    /// Livepatch relocations.
    pub klp_relocs: Vec<KlpRelocRecord>,
}

/// The result of diffing one object pair.
#[derive(Debug, Clone)]
pub struct DiffResult {
    /// The verdict.
    pub outcome: Outcome,
    /// Changed functions (ORIG names), sorted.
    pub changed_functions: Vec<String>,
    /// New functions (PATCHED names), sorted.
    pub new_functions: Vec<String>,
    /// Refusals: when not empty, the outcome is `Refused`.
    pub errors: Vec<Diagnostic>,
    /// Things the author should know that do not stop the patch.
    pub warnings: Vec<Diagnostic>,
    /// Why each changed function counts as changed (a short instruction diff), when
    /// [`DiffOptions::explain`] is set.
    pub explanations: BTreeMap<String, String>,
    /// The patch object, when the outcome is `Patch`.
    pub output: Option<Vec<u8>>,
    /// The record for the module emitter, when the outcome is `Patch`.
    pub record: PatchRecord,
}

/// Errors that stop the differ before it can judge the change (unreadable input).
#[derive(Debug, thiserror::Error)]
pub enum DiffError {
    /// The ORIG or PATCHED bytes are not an object we can read.
    #[error("{which} object: {source}")]
    Elf {
        /// `orig` or `patched`.
        which: &'static str,
        /// The ELF error.
        #[source]
        source: lp_elf::Error,
    },
    /// The two objects are not of the same kind (machine, type).
    #[error("objects do not match: {0}")]
    Mismatch(String),
    /// The patch object could not be written.
    #[error("writing the patch object: {0}")]
    Write(#[from] lp_elf::Error),
    /// A relocation section the differ cannot trust (see [`wellformed::relocations`]).
    #[error("{which} object: {section}: {message}")]
    Relocations {
        /// `orig` or `patched`.
        which: &'static str,
        /// The relocation section.
        section: String,
        /// What is wrong with it.
        message: String,
    },
    /// An architecture the differ does not know.
    #[error(
        "e_machine {0}: the differ knows x86_64, ppc64le, s390x, aarch64 and loongarch64 objects"
    )]
    Machine(u16),
    /// A bug in lp-build (never a refusal: the change may well be patchable).
    #[error(
        "internal error: {0}; this is a bug in lp-build: report it with the object pair \
         (lp-build --keep-tmp keeps them)"
    )]
    Internal(String),
    /// A special section whose entries are not of the size given for it (see
    /// [`wellformed::entry_sizes`]).
    #[error("patched object: {section}: {message}")]
    EntrySize {
        /// The special section.
        section: String,
        /// What does not fit.
        message: String,
    },
}

impl DiffError {
    /// The object is LLVM bitcode (a clang LTO build's), which the differ cannot compare: the
    /// caller says so instead of calling it damaged or a bug.
    pub fn is_llvm_bitcode(&self) -> bool {
        matches!(
            self,
            DiffError::Elf {
                source: lp_elf::Error::LlvmBitcode,
                ..
            }
        )
    }
}

/// Section and layout constants of the metadata the differ writes for the module emitter (the
/// encoding itself is shared with the emitter: [`lp_elf::klp::KlpRelocEntry`]).
pub mod meta {
    pub use lp_elf::klp::{KLP_RELOCS_SECTION, KLP_RELOC_ENTRY_SIZE, KLP_STRS_SECTION};
    /// Section of the placeholder function that link-time stand-in relocations at klp places
    /// in code point to, so that objtool sees ordinary calls (docs/CONTRACTS.md).
    pub const KLP_PLACEHOLDER_SECTION: &str = ".lp.klp_placeholder";
}

/// Diffs one object pair.
pub fn diff(orig: &[u8], patched: &[u8], opts: &DiffOptions) -> Result<DiffResult, DiffError> {
    let orig = lp_elf::Object::parse(orig).map_err(|source| DiffError::Elf {
        which: "orig",
        source,
    })?;
    let patched = lp_elf::Object::parse(patched).map_err(|source| DiffError::Elf {
        which: "patched",
        source,
    })?;
    diff_objects(&orig, &patched, opts)
}

/// Diffs two parsed objects: the stage list.
pub fn diff_objects(
    orig: &lp_elf::Object,
    patched: &lp_elf::Object,
    opts: &DiffOptions,
) -> Result<DiffResult, DiffError> {
    check_pair(orig, patched)?;
    let arch = arch::for_machine(orig.e_machine).ok_or(DiffError::Machine(orig.e_machine))?;
    wellformed::relocations(orig, "orig", arch)?;
    wellformed::relocations(patched, "patched", arch)?;
    let (o, p) = (view::View::new(orig, arch), view::View::new(patched, arch));
    let mut refusals = refusal::Refusals::default();

    let hooks = hooks::read(&p, &mut refusals); // 1. hooks
    let corr = correlate::correlate(&o, &p); // 2. correlate
    let cmp = compare::compare(&o, &p, &corr, opts.explain, &opts.entry_sizes); // 3. compare
    let mut cl = closure::Closure::new(&p, &corr, &cmp, hooks, opts); // 4. plan the closure
    checks::changes(&cl, &mut refusals); // 5. refusals
    checks::ftrace(&o, &cl, &mut refusals);
    cl.follow_roots();
    special::extract(&mut cl, &mut refusals)?; // 6. special sections
    checks::unused_read_only_data(&cl, &mut refusals);
    refusals.extend(std::mem::take(&mut cl.refusals).into_refusals());
    cl.finish_new_functions();

    let mut result = report(&o, &p, &corr, &cmp, &cl.plan, opts);
    if refusals.is_empty() && !cl.plan.has_work() {
        result.outcome = Outcome::NoChange;
        return Ok(result);
    }
    if refusals.is_empty() {
        let x = klp_reloc::Inputs {
            o: &o,
            p: &p,
            c: &corr,
            cmp: &cmp,
            plan: &cl.plan,
            opts,
        };
        let relocs = klp_relocations(&x, &mut refusals)?; // 7. klp relocations
        if refusals.is_empty() {
            let (bytes, record) = output::write(&p, &cmp, &cl.plan, &relocs, opts)?; // 8. write
            result.output = Some(bytes);
            result.record = record;
            return Ok(result);
        }
    }
    result.outcome = Outcome::Refused;
    result.errors = refusals.diagnostics(&opts.source_name);
    Ok(result)
}

/// The klp-relocation stage against the parent (the caller's, else the ORIG object itself).
fn klp_relocations(
    x: &klp_reloc::Inputs,
    refusals: &mut refusal::Refusals,
) -> Result<klp_reloc::Relocations, DiffError> {
    let own_parent;
    let parent = match &x.opts.parent {
        Some(par) => par,
        None => {
            own_parent = Parent::from_object(x.o.obj, false);
            &own_parent
        }
    };
    let file = klp_reloc::find_file(x.o, parent, x.opts);
    let resolver = klp_reloc::Resolver {
        opts: x.opts,
        parent,
        file,
    };
    klp_reloc::convert(x, &resolver, refusals)
}

/// The two objects are relocatable objects of one machine, with symbol tables.
fn check_pair(orig: &lp_elf::Object, patched: &lp_elf::Object) -> Result<(), DiffError> {
    if orig.e_machine != patched.e_machine || orig.e_type != patched.e_type {
        return Err(DiffError::Mismatch(format!(
            "machine {}/{} and type {}/{} differ",
            orig.e_machine, patched.e_machine, orig.e_type, patched.e_type
        )));
    }
    if orig.e_type != object::elf::ET_REL.0 {
        return Err(DiffError::Mismatch(
            "not relocatable objects (ET_REL): pass the .o files the compiler produced".into(),
        ));
    }
    for (which, obj) in [("orig", orig), ("patched", patched)] {
        if obj.symtab_index().is_none() {
            return Err(DiffError::Elf {
                which,
                source: lp_elf::Error::Malformed(
                    "no symbol table (or no sections at all): not an object a compiler produced"
                        .into(),
                ),
            });
        }
    }
    Ok(())
}

/// The result before the verdict: changed and new functions, explanations and warnings.
fn report(
    o: &view::View,
    p: &view::View,
    c: &correlate::Correlation,
    cmp: &compare::Comparison,
    plan: &closure::Plan,
    opts: &DiffOptions,
) -> DiffResult {
    let mut changed_functions: Vec<String> = plan
        .changed
        .iter()
        .filter_map(|&f| c.p2o[f].map(|of| o.name(of).to_string()))
        .collect();
    changed_functions.sort();
    changed_functions.dedup();
    let new_functions = plan.new.iter().map(|&i| p.name(i).to_string()).collect();
    let explanations = cmp
        .explanations
        .iter()
        .filter(|(f, _)| plan.changed.contains(f))
        .filter_map(|(f, text)| c.p2o[*f].map(|of| (o.name(of).to_string(), text.clone())))
        .collect();
    let mut warnings: Vec<Diagnostic> = cmp
        .line_only
        .iter()
        .map(|&f| Diagnostic {
            object: opts.source_name.clone(),
            section: p.obj.symbols[f]
                .section_index()
                .map(|s| p.sec_name(s).into_owned())
                .unwrap_or_default(),
            symbol: p.name(f).to_string(),
            message: "only __LINE__ arguments of WARN/might_sleep/printk calls moved: not a \
                      functional change, not patched"
                .into(),
            kind: None,
        })
        .collect();
    warnings.extend(unrelated_warning(o, p, c, opts));
    DiffResult {
        outcome: Outcome::Patch,
        changed_functions,
        new_functions,
        errors: Vec::new(),
        warnings,
        explanations,
        output: None,
        record: PatchRecord::default(),
    }
}

/// A warning when ORIG and PATCHED do not look like two builds of one source file: their
/// source file names (`STT_FILE`) differ, or fewer than half of ORIG's functions have a
/// counterpart in PATCHED. A patch never renames most of a file.
fn unrelated_warning(
    o: &view::View,
    p: &view::View,
    corr: &correlate::Correlation,
    opts: &DiffOptions,
) -> Option<Diagnostic> {
    let files = |v: &view::View| -> std::collections::BTreeSet<String> {
        v.obj
            .symbols
            .iter()
            .enumerate()
            .filter(|(_, s)| s.is_file())
            .map(|(i, _)| v.name(i).to_string())
            .filter(|n| !n.is_empty())
            .collect()
    };
    let (of, pf) = (files(o), files(p));
    let funcs: Vec<usize> = (0..o.obj.symbols.len())
        .filter(|&i| o.obj.symbols[i].is_func() && !o.obj.symbols[i].is_undef())
        .collect();
    let paired = funcs.iter().filter(|&&i| corr.o2p[i].is_some()).count();
    let why = if !of.is_empty() && !pf.is_empty() && of.is_disjoint(&pf) {
        format!(
            "ORIG was compiled from {} and PATCHED from {}",
            of.into_iter().collect::<Vec<_>>().join(", "),
            pf.into_iter().collect::<Vec<_>>().join(", ")
        )
    } else if funcs.len() >= 4 && paired * 2 < funcs.len() {
        format!(
            "only {paired} of ORIG's {} functions are in PATCHED",
            funcs.len()
        )
    } else {
        return None;
    };
    Some(Diagnostic {
        object: opts.source_name.clone(),
        section: String::new(),
        symbol: String::new(),
        message: format!(
            "the two objects look unrelated ({why}): pass the original and the patched build of \
             the same source file"
        ),
        kind: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The contracts' spellings: the callback kind serialises as the `klp_callbacks` field
    /// name, an unknown kind is rejected when a record is read, and the outcome's name is its
    /// serialised form.
    #[test]
    fn contract_types_serialise_as_documented() {
        for k in CallbackKind::ALL {
            let json = serde_json::to_string(&k).unwrap();
            assert_eq!(json, format!("\"{}\"", k.field()));
            assert_eq!(serde_json::from_str::<CallbackKind>(&json).unwrap(), k);
        }
        let bad = r#"{"kind":"pre-patch","symbol":"f","order":1,"void_hook":false}"#;
        assert!(serde_json::from_str::<CallbackRecord>(bad).is_err());
        for o in [Outcome::Patch, Outcome::NoChange, Outcome::Refused] {
            assert_eq!(
                serde_json::to_string(&o).unwrap(),
                format!("\"{}\"", o.name())
            );
        }
    }
}
