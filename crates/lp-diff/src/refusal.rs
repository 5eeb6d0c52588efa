//! The refusal catalogue: every reason a change cannot be live-patched safely, in the differ or
//! in the driver, with its message and its hint. A refusal is about the author's change; an
//! error in lp-build itself is a [`crate::DiffError::Internal`], never a refusal.
//!
//! Tests name the [`Kind`] they expect; the README's list of refusals is [`Kind::ALL`].

use crate::Diagnostic;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The kinds of refusal, without their data: what tests and reports name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// `KPATCH_FORCE_UNSAFE`.
    KpatchForce,
    /// An annotation section (`.lp.*`, `.kpatch.*`, `.discard.klp_callback*`) not understood.
    UnknownAnnotation,
    /// A symbol in a klp-build callback section with a name klp-build does not give.
    UnknownKlpCallback,
    /// A callback entry that does not point to a function.
    CallbackNotAFunction,
    /// Changed code in `__init`, `.noinstr.text`, ... sections.
    NonBundledText,
    /// Changed code in a section holding several functions.
    SharedCodeSection,
    /// A changed writable section without a named object.
    ChangedDataSection,
    /// Changed `__init` data.
    ChangedInitData,
    /// A changed writable data object.
    ChangedData,
    /// A changed COMDAT group.
    ChangedGroup,
    /// A changed function without an ftrace entry.
    NoFtraceEntry,
    /// Patched code refers to anonymous writable data the running kernel has.
    AnonymousWritableData,
    /// A special section whose entry size nobody gave.
    UnknownEntrySize,
    /// A jump label or static call whose key is defined in the module being patched.
    ModuleKey,
    /// Changed read-only data no patched function uses.
    UnusedReadOnlyData,
    /// A relocation to data the patch does not carry and the kernel cannot name.
    UnreachableData,
    /// Code that refers to an entry of a special table belonging to no patched function.
    ForeignTableEntry,
    /// A symbol the running kernel does not have.
    NotInParent,
    /// A symbol whose position among same-named ones cannot be told.
    AmbiguousPosition,
    /// A symbol whose livepatch name the kernel cannot parse.
    KlpName,
    /// A tail call out of the patch where the architecture cannot make one (ppc64le's TOC).
    SiblingCall,
    /// (driver) A function whose kallsyms range holds several ftrace call sites.
    AmbiguousFtraceSite,
}

impl Kind {
    /// Every kind, in catalogue order.
    pub const ALL: [Kind; 22] = [
        Kind::KpatchForce,
        Kind::UnknownAnnotation,
        Kind::UnknownKlpCallback,
        Kind::CallbackNotAFunction,
        Kind::NonBundledText,
        Kind::SharedCodeSection,
        Kind::ChangedDataSection,
        Kind::ChangedInitData,
        Kind::ChangedData,
        Kind::ChangedGroup,
        Kind::NoFtraceEntry,
        Kind::AnonymousWritableData,
        Kind::UnknownEntrySize,
        Kind::ModuleKey,
        Kind::UnusedReadOnlyData,
        Kind::UnreachableData,
        Kind::ForeignTableEntry,
        Kind::NotInParent,
        Kind::AmbiguousPosition,
        Kind::KlpName,
        Kind::SiblingCall,
        Kind::AmbiguousFtraceSite,
    ];

    /// The kebab-case name (as serialised): `changed-data`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::KpatchForce => "kpatch-force",
            Kind::UnknownAnnotation => "unknown-annotation",
            Kind::UnknownKlpCallback => "unknown-klp-callback",
            Kind::CallbackNotAFunction => "callback-not-a-function",
            Kind::NonBundledText => "non-bundled-text",
            Kind::SharedCodeSection => "shared-code-section",
            Kind::ChangedDataSection => "changed-data-section",
            Kind::ChangedInitData => "changed-init-data",
            Kind::ChangedData => "changed-data",
            Kind::ChangedGroup => "changed-group",
            Kind::NoFtraceEntry => "no-ftrace-entry",
            Kind::AnonymousWritableData => "anonymous-writable-data",
            Kind::UnknownEntrySize => "unknown-entry-size",
            Kind::ModuleKey => "module-key",
            Kind::UnusedReadOnlyData => "unused-read-only-data",
            Kind::UnreachableData => "unreachable-data",
            Kind::ForeignTableEntry => "foreign-table-entry",
            Kind::NotInParent => "not-in-parent",
            Kind::AmbiguousPosition => "ambiguous-position",
            Kind::KlpName => "klp-name",
            Kind::SiblingCall => "sibling-call",
            Kind::AmbiguousFtraceSite => "ambiguous-ftrace-site",
        }
    }

    /// The kind of this name.
    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// What the author can do, the same for every refusal of this kind.
    pub fn hint(self) -> &'static str {
        match self {
            Kind::KpatchForce => "remove it and make the change safe to apply",
            Kind::UnknownAnnotation => "use the macros of lp-hooks.h (hooks-macros/README.md)",
            Kind::UnknownKlpCallback => {
                "expected __klp_{pre,post}_{patch,unpatch}_callback_<object>"
            }
            Kind::CallbackNotAFunction => "declare the callback with a function",
            Kind::NonBundledText => {
                "put the new behaviour in a callback or patch the (non-__init) callers instead"
            }
            Kind::SharedCodeSection => "move the change into an ordinary function",
            Kind::ChangedDataSection => {
                "use a shadow variable (klp_shadow_*) or a post_patch callback to change it at \
                 patch time"
            }
            Kind::ChangedInitData => "leave __init data unchanged",
            Kind::ChangedData => {
                "use a shadow variable (klp_shadow_get_or_alloc) for new state or a post_patch \
                 callback to update the existing value"
            }
            Kind::ChangedGroup => "leave the group unchanged and patch the functions that use it",
            Kind::NoFtraceEntry => {
                "patch its callers instead, or move the change into a traceable helper"
            }
            Kind::AnonymousWritableData => {
                "give the data a name (build with -fdata-sections) or move it into a shadow \
                 variable"
            }
            Kind::UnknownEntrySize => {
                "pass --entry-size SECTION=BYTES (the sizeof of its struct in the kernel being \
                 patched)"
            }
            Kind::ModuleKey => "use static_key_enabled(&key) or a plain call instead",
            Kind::UnusedReadOnlyData => {
                "change the functions that read it (they must be patched to use the new copy)"
            }
            Kind::UnreachableData => {
                "give the data a name (a static variable) or keep the patched code from using it"
            }
            Kind::ForeignTableEntry => {
                "patch the function the entry belongs to as well (7.x's WARN()/WARN_ONCE() hand \
                 their own __bug_table entry to __WARN_trap)"
            }
            Kind::NotInParent => {
                "build the patch against the source and config of the running kernel"
            }
            Kind::AmbiguousPosition => {
                "rename it in the patch or make the patched code not refer to it"
            }
            Kind::KlpName => "rename the symbol",
            Kind::SiblingCall => {
                "keep the call from being a tail call (e.g. use its result, or add \
                 barrier() after it) or patch the callee too"
            }
            Kind::AmbiguousFtraceSite => "patch its callers instead",
        }
    }
}

/// One refusal, with what it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// `.kpatch.force`.
    KpatchForce {
        /// The section.
        section: String,
    },
    /// An annotation section not understood.
    UnknownAnnotation {
        /// The section.
        section: String,
    },
    /// A symbol in a klp-build callback section with another name.
    UnknownKlpCallback {
        /// The section.
        section: String,
        /// The symbol.
        symbol: String,
    },
    /// A callback entry that does not point to a function.
    CallbackNotAFunction {
        /// The section.
        section: String,
        /// The entry's symbol (empty for the lp/kpatch tables).
        symbol: String,
    },
    /// Changed code in a section that cannot be patched.
    NonBundledText {
        /// The section.
        section: String,
        /// Why (`__init code has already run`).
        why: &'static str,
    },
    /// Changed code in a section holding several functions.
    SharedCodeSection {
        /// The section.
        section: String,
    },
    /// A changed writable section.
    ChangedDataSection {
        /// The section.
        section: String,
    },
    /// Changed `__init` data.
    ChangedInitData {
        /// The section.
        section: String,
    },
    /// A changed data object.
    ChangedData {
        /// Its section.
        section: String,
        /// The object.
        symbol: String,
    },
    /// A changed COMDAT group.
    ChangedGroup {
        /// The group section.
        section: String,
    },
    /// A changed function without an ftrace entry.
    NoFtraceEntry {
        /// Its section.
        section: String,
        /// The function.
        symbol: String,
        /// The architecture's ftrace entry (`a __fentry__ call`).
        entry: &'static str,
    },
    /// Anonymous writable data shared with the running kernel.
    AnonymousWritableData {
        /// The data's section.
        section: String,
        /// The section referring to it.
        from: String,
    },
    /// A special section of unknown entry size.
    UnknownEntrySize {
        /// The section.
        section: String,
    },
    /// A key defined in the module being patched.
    ModuleKey {
        /// The special section.
        section: String,
        /// The key.
        symbol: String,
        /// The module.
        module: String,
    },
    /// Changed read-only data no patched function uses.
    UnusedReadOnlyData {
        /// Its section.
        section: String,
        /// The object.
        symbol: String,
    },
    /// A relocation to data the patch does not carry.
    UnreachableData {
        /// The section holding the relocation.
        section: String,
        /// Its offset.
        offset: u64,
    },
    /// Code that refers to an entry of a special table that belongs to no patched function.
    ForeignTableEntry {
        /// The section holding the reference.
        section: String,
        /// Its offset.
        offset: u64,
        /// The table (`__bug_table`).
        table: String,
        /// The offset it refers to in the table.
        entry: u64,
    },
    /// A symbol the running kernel does not have.
    NotInParent {
        /// The section referring to it (or the function's section).
        section: String,
        /// The symbol.
        symbol: String,
        /// vmlinux or the module.
        object: String,
    },
    /// A symbol whose position cannot be told.
    AmbiguousPosition {
        /// The section referring to it (or the function's section).
        section: String,
        /// The symbol.
        symbol: String,
        /// vmlinux or the module.
        object: String,
        /// How many the parent has.
        count: usize,
    },
    /// A livepatch symbol name the kernel cannot parse.
    KlpName {
        /// The section referring to it.
        section: String,
        /// The symbol.
        symbol: String,
        /// What is wrong with the name.
        why: String,
    },
    /// A tail call out of the patch.
    SiblingCall {
        /// The calling section.
        section: String,
        /// The callee.
        symbol: String,
        /// Offset of the branch.
        offset: u64,
    },
    /// (driver) Several ftrace call sites in one kallsyms range.
    AmbiguousFtraceSite {
        /// The function's section.
        section: String,
        /// The function.
        symbol: String,
        /// Its range in the running kernel.
        start: u64,
        /// End of the range.
        end: u64,
        /// How many call sites it holds.
        sites: usize,
    },
}

impl Refusal {
    /// Its kind.
    pub fn kind(&self) -> Kind {
        match self {
            Refusal::KpatchForce { .. } => Kind::KpatchForce,
            Refusal::UnknownAnnotation { .. } => Kind::UnknownAnnotation,
            Refusal::UnknownKlpCallback { .. } => Kind::UnknownKlpCallback,
            Refusal::CallbackNotAFunction { .. } => Kind::CallbackNotAFunction,
            Refusal::NonBundledText { .. } => Kind::NonBundledText,
            Refusal::SharedCodeSection { .. } => Kind::SharedCodeSection,
            Refusal::ChangedDataSection { .. } => Kind::ChangedDataSection,
            Refusal::ChangedInitData { .. } => Kind::ChangedInitData,
            Refusal::ChangedData { .. } => Kind::ChangedData,
            Refusal::ChangedGroup { .. } => Kind::ChangedGroup,
            Refusal::NoFtraceEntry { .. } => Kind::NoFtraceEntry,
            Refusal::AnonymousWritableData { .. } => Kind::AnonymousWritableData,
            Refusal::UnknownEntrySize { .. } => Kind::UnknownEntrySize,
            Refusal::ModuleKey { .. } => Kind::ModuleKey,
            Refusal::UnusedReadOnlyData { .. } => Kind::UnusedReadOnlyData,
            Refusal::UnreachableData { .. } => Kind::UnreachableData,
            Refusal::ForeignTableEntry { .. } => Kind::ForeignTableEntry,
            Refusal::NotInParent { .. } => Kind::NotInParent,
            Refusal::AmbiguousPosition { .. } => Kind::AmbiguousPosition,
            Refusal::KlpName { .. } => Kind::KlpName,
            Refusal::SiblingCall { .. } => Kind::SiblingCall,
            Refusal::AmbiguousFtraceSite { .. } => Kind::AmbiguousFtraceSite,
        }
    }

    /// The section it concerns.
    pub fn section(&self) -> &str {
        match self {
            Refusal::KpatchForce { section }
            | Refusal::UnknownAnnotation { section }
            | Refusal::UnknownKlpCallback { section, .. }
            | Refusal::CallbackNotAFunction { section, .. }
            | Refusal::NonBundledText { section, .. }
            | Refusal::SharedCodeSection { section }
            | Refusal::ChangedDataSection { section }
            | Refusal::ChangedInitData { section }
            | Refusal::ChangedData { section, .. }
            | Refusal::ChangedGroup { section }
            | Refusal::NoFtraceEntry { section, .. }
            | Refusal::AnonymousWritableData { section, .. }
            | Refusal::UnknownEntrySize { section }
            | Refusal::ModuleKey { section, .. }
            | Refusal::UnusedReadOnlyData { section, .. }
            | Refusal::UnreachableData { section, .. }
            | Refusal::ForeignTableEntry { section, .. }
            | Refusal::NotInParent { section, .. }
            | Refusal::AmbiguousPosition { section, .. }
            | Refusal::KlpName { section, .. }
            | Refusal::SiblingCall { section, .. }
            | Refusal::AmbiguousFtraceSite { section, .. } => section,
        }
    }

    /// The symbol it concerns (empty when none).
    pub fn symbol(&self) -> &str {
        match self {
            Refusal::UnknownKlpCallback { .. } | Refusal::CallbackNotAFunction { .. } => "",
            Refusal::ChangedData { symbol, .. }
            | Refusal::NoFtraceEntry { symbol, .. }
            | Refusal::ModuleKey { symbol, .. }
            | Refusal::UnusedReadOnlyData { symbol, .. }
            | Refusal::NotInParent { symbol, .. }
            | Refusal::AmbiguousPosition { symbol, .. }
            | Refusal::KlpName { symbol, .. }
            | Refusal::SiblingCall { symbol, .. }
            | Refusal::AmbiguousFtraceSite { symbol, .. } => symbol,
            _ => "",
        }
    }

    /// What is wrong, without the hint.
    pub fn message(&self) -> String {
        match self {
            Refusal::KpatchForce { .. } => "KPATCH_FORCE_UNSAFE: the kernel's livepatch has no \
                 per-function override of the consistency model (only a whole-transition force \
                 from sysfs)"
                .into(),
            Refusal::UnknownAnnotation { .. } => "an annotation section lp-build does not \
                 understand: it would be dropped, so the patch is refused"
                .into(),
            Refusal::UnknownKlpCallback { symbol, .. } => {
                format!("`{symbol}` is not a klp-build callback lp-build knows")
            }
            Refusal::CallbackNotAFunction { symbol, .. } if symbol.is_empty() => {
                "entry does not point to a function".into()
            }
            Refusal::CallbackNotAFunction { symbol, .. } => {
                format!("`{symbol}` does not point to a function")
            }
            Refusal::NonBundledText { section, why } => {
                format!("changed code in {section} cannot be live-patched: {why}")
            }
            Refusal::SharedCodeSection { section } => format!(
                "changed code in {section}, which holds more than one function, cannot be \
                 isolated (only -ffunction-sections text can be patched)"
            ),
            Refusal::ChangedDataSection { section } => format!(
                "data in {section} changed: the running kernel keeps its data, so a livepatch \
                 cannot change it"
            ),
            Refusal::ChangedInitData { section } => {
                format!("changed __init data in {section} has already been used at boot")
            }
            Refusal::ChangedData { symbol, .. } => format!(
                "data `{symbol}` changed (initial value, size or relocations): the running \
                 kernel keeps its data, so a livepatch cannot change it"
            ),
            Refusal::ChangedGroup { section } => format!(
                "section group {section} changed: the kernel keeps one copy of a COMDAT group, \
                 so its contents cannot be replaced"
            ),
            Refusal::NoFtraceEntry { symbol, entry, .. } => format!(
                "function `{symbol}` changed but has no ftrace entry ({entry}), so livepatch \
                 cannot redirect it"
            ),
            Refusal::AnonymousWritableData { section, from } => format!(
                "{from} refers to anonymous writable data in {section}; the patch cannot share \
                 it with the running kernel"
            ),
            Refusal::UnknownEntrySize { section } => format!(
                "the entry size of {section} is unknown, so its entries for the patched \
                 functions cannot be extracted"
            ),
            Refusal::ModuleKey {
                section,
                symbol,
                module,
            } => {
                let what = if section == "__jump_table" {
                    "jump label (static branch)"
                } else {
                    "static call"
                };
                format!(
                    "a {what} in patched code uses key `{symbol}`, defined in module {module}: \
                     its livepatch relocation would be applied after the key is initialised"
                )
            }
            Refusal::UnusedReadOnlyData { symbol, .. } => format!(
                "read-only data `{symbol}` changed but no patched function uses it, so the \
                 change would not take effect"
            ),
            Refusal::UnreachableData { section, offset } => format!(
                "a relocation at {section}+{offset:#x} points to data the patch does not carry \
                 and the running kernel cannot provide by name"
            ),
            Refusal::ForeignTableEntry {
                section,
                offset,
                table,
                entry,
            } => format!(
                "{section}+{offset:#x} refers to {table}+{entry:#x}, an entry that belongs to no \
                 patched function, so the patch cannot carry it"
            ),
            Refusal::NotInParent { symbol, object, .. } => format!(
                "`{symbol}` is not in the symbol table of {object}: the running kernel does not \
                 have it (was the parent built from the same source and config?)"
            ),
            Refusal::AmbiguousPosition {
                symbol,
                object,
                count,
                ..
            } => format!(
                "`{symbol}` appears {count} times in {object} and its position cannot be told \
                 apart (no unique match in this source file)"
            ),
            Refusal::KlpName { why, .. } => why.clone(),
            Refusal::SiblingCall {
                section,
                symbol,
                offset,
            } => format!(
                "{section}+{offset:#x} is a sibling (tail) call to `{symbol}`, outside the \
                 patch: on this architecture the callee would return with the patch module's \
                 TOC"
            ),
            Refusal::AmbiguousFtraceSite {
                symbol,
                start,
                end,
                sites,
                ..
            } => format!(
                "in the running kernel, `{symbol}` [{start:#x}, {end:#x}) holds {sites} ftrace \
                 call sites (code without a symbol follows it, e.g. an overridden __weak \
                 function): the kernel may attach the patch to the wrong one and change nothing"
            ),
        }
    }

    /// The hint: what the author can do.
    pub fn hint(&self) -> String {
        match self {
            Refusal::UnknownEntrySize { section } => format!(
                "pass --entry-size {section}=BYTES (the sizeof of its struct in the kernel being \
                 patched)"
            ),
            Refusal::ModuleKey { symbol, .. } => {
                format!("use static_key_enabled(&{symbol}) or a plain call instead")
            }
            _ => self.kind().hint().to_string(),
        }
    }

    /// The diagnostic of this refusal in `object` (`fs/proc/meminfo.o`).
    pub fn diagnostic(&self, object: &str) -> Diagnostic {
        Diagnostic {
            object: object.to_string(),
            section: self.section().to_string(),
            symbol: self.symbol().to_string(),
            message: format!("{}; {}", self.message(), self.hint()),
            kind: Some(self.kind()),
        }
    }
}

/// Refusals collected while diffing, one per section and symbol (the first found).
#[derive(Debug, Clone, Default)]
pub struct Refusals {
    by_place: BTreeMap<(String, String), Refusal>,
}

impl Refusals {
    /// Records `r` unless a refusal of the same section and symbol is already there.
    pub fn push(&mut self, r: Refusal) {
        self.by_place
            .entry((r.section().to_string(), r.symbol().to_string()))
            .or_insert(r);
    }

    /// Records every one of `rs`.
    pub fn extend(&mut self, rs: impl IntoIterator<Item = Refusal>) {
        for r in rs {
            self.push(r);
        }
    }

    /// The refusals, ordered by section and symbol.
    pub fn into_refusals(self) -> impl Iterator<Item = Refusal> {
        self.by_place.into_values()
    }

    /// True when nothing was refused.
    pub fn is_empty(&self) -> bool {
        self.by_place.is_empty()
    }

    /// The diagnostics, ordered by section and symbol.
    pub fn diagnostics(&self, object: &str) -> Vec<Diagnostic> {
        self.by_place
            .values()
            .map(|r| r.diagnostic(object))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_match_serde() {
        for k in Kind::ALL {
            assert_eq!(Kind::from_name(k.name()), Some(k));
            let json = serde_json_like(k);
            assert_eq!(json, k.name());
            assert!(!k.hint().is_empty());
        }
    }

    /// The README's table lists exactly the catalogue.
    #[test]
    fn readme_lists_every_kind() {
        let readme = include_str!("../README.md");
        let listed: Vec<&str> = readme
            .lines()
            .filter_map(|l| l.strip_prefix("| `")?.split_once('`').map(|(n, _)| n))
            .collect();
        let all: Vec<&str> = Kind::ALL.iter().map(|k| k.name()).collect();
        assert_eq!(listed, all);
    }

    fn serde_json_like(k: Kind) -> String {
        serde_json::to_string(&k)
            .unwrap()
            .trim_matches('"')
            .to_string()
    }
}
