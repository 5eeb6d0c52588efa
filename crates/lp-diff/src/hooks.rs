//! Reads the hooks-macros annotations from the PATCHED object (and only there): callbacks,
//! legacy load/unload hooks, system states, ignored functions and sections.
//! Formats: docs/CONTRACTS.md.
//!
//! Also read: kpatch's own sections (`.kpatch.callbacks.*`, `.kpatch.hooks.*`,
//! `.kpatch.ignore.*`) and the upstream kernel's klp-build callbacks
//! (`.discard.klp_callback_ptrs`, one pointer per callback named
//! `__klp_<kind>_callback_<objname>`). A section that carries an author's intent and is not
//! understood here (`.kpatch.force`, any other `.kpatch.*`, `.lp.*` or `.discard.klp_callback*`
//! section or symbol) is a problem naming it, never dropped.

use crate::refusal::{Refusal, Refusals};
use crate::view::{Target, View};
use crate::CallbackKind::{self, PostPatch, PostUnpatch, PrePatch, PreUnpatch};
use std::collections::HashSet;

/// One callback found in the patched object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Callback {
    /// Which of the four callbacks.
    pub kind: CallbackKind,
    /// The callback function (patched symbol index).
    pub func: usize,
    /// Declaration order.
    pub order: u64,
    /// A `void fn(void)` hook.
    pub void_hook: bool,
}

/// Everything the annotations say.
#[derive(Debug, Clone, Default)]
pub struct Hooks {
    /// Callbacks, in declaration order per kind.
    pub callbacks: Vec<Callback>,
    /// `(id, version)` states.
    pub states: Vec<(u64, u32)>,
    /// Functions never to include.
    pub ignored_functions: HashSet<usize>,
    /// Sections never to include.
    pub ignored_sections: HashSet<String>,
}

const CALLBACK_SECTIONS: &[(&str, CallbackKind, bool, bool)] = &[
    // (section, kind, void hook, kpatch layout)
    (".lp.callbacks.pre_patch", PrePatch, false, false),
    (".lp.callbacks.post_patch", PostPatch, false, false),
    (".lp.callbacks.pre_unpatch", PreUnpatch, false, false),
    (".lp.callbacks.post_unpatch", PostUnpatch, false, false),
    (".lp.hooks.load", PostPatch, true, false),
    (".lp.hooks.unload", PreUnpatch, true, false),
    (".kpatch.callbacks.pre_patch", PrePatch, false, true),
    (".kpatch.callbacks.post_patch", PostPatch, false, true),
    (".kpatch.callbacks.pre_unpatch", PreUnpatch, false, true),
    (".kpatch.callbacks.post_unpatch", PostUnpatch, false, true),
    (".kpatch.hooks.load", PostPatch, true, true),
    (".kpatch.hooks.unload", PreUnpatch, true, true),
];

fn read_u64(b: &[u8], at: usize, big_endian: bool) -> Option<u64> {
    let w: [u8; 8] = b.get(at..at.checked_add(8)?)?.try_into().ok()?;
    Some(if big_endian {
        u64::from_be_bytes(w)
    } else {
        u64::from_le_bytes(w)
    })
}

fn read_u32(b: &[u8], at: usize, big_endian: bool) -> Option<u32> {
    let w: [u8; 4] = b.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(if big_endian {
        u32::from_be_bytes(w)
    } else {
        u32::from_le_bytes(w)
    })
}

/// The sections of klp-build's `KLP_*_CALLBACK` (`include/linux/livepatch_helpers.h`; the
/// name changed during its review).
const KLP_CALLBACK_SECTIONS: &[&str] = &[".discard.klp_callback_ptrs", ".discard.klp_callbacks"];

/// klp-build's callback symbol prefixes (`include/linux/livepatch_external.h`) and their kinds.
const KLP_CALLBACK_PREFIXES: &[(&str, CallbackKind)] = &[
    ("__klp_pre_patch_callback_", PrePatch),
    ("__klp_post_patch_callback_", PostPatch),
    ("__klp_pre_unpatch_callback_", PreUnpatch),
    ("__klp_post_unpatch_callback_", PostUnpatch),
];

/// Other annotation sections the differ knows.
const KNOWN_SECTIONS: &[&str] = &[
    ".lp.states",
    ".lp.ignore.functions",
    ".lp.ignore.sections",
    ".kpatch.ignore.functions",
    ".kpatch.ignore.sections",
];

/// Whether `name` looks like an annotation section (an author's intent) that is not known.
fn unknown_annotation(name: &str) -> bool {
    let annotation = name.starts_with(".lp.")
        || name.starts_with(".kpatch.")
        || name.starts_with(".discard.klp_callback");
    annotation
        && !KNOWN_SECTIONS.contains(&name)
        && !KLP_CALLBACK_SECTIONS.contains(&name)
        && !CALLBACK_SECTIONS.iter().any(|(n, ..)| *n == name)
}

fn read_klp_callbacks(p: &View, sec: usize, name: &str, h: &mut Hooks, out: &mut Refusals) {
    let relocs = p.relocs(sec);
    for (i, sym) in p.obj.symbols.iter().enumerate() {
        if sym.section_index() != Some(sec) || sym.is_section() {
            continue;
        }
        let sname = p.name(i);
        let Some((prefix, kind)) = KLP_CALLBACK_PREFIXES
            .iter()
            .find(|(prefix, _)| sname.starts_with(prefix))
        else {
            out.push(Refusal::UnknownKlpCallback {
                section: name.to_string(),
                symbol: sname.to_string(),
            });
            continue;
        };
        let _ = prefix;
        let Some(r) = relocs.iter().find(|r| r.offset == sym.value) else {
            out.push(Refusal::CallbackNotAFunction {
                section: name.to_string(),
                symbol: sname.to_string(),
            });
            continue;
        };
        let Target::Sym { sym: func, .. } = p.target(sec, r) else {
            out.push(Refusal::CallbackNotAFunction {
                section: name.to_string(),
                symbol: sname.to_string(),
            });
            continue;
        };
        h.callbacks.push(Callback {
            kind: *kind,
            func,
            order: sym.value / 8,
            void_hook: false,
        });
    }
}

/// Reads the annotations of `p`; what it cannot understand is refused.
pub fn read(p: &View, out: &mut Refusals) -> Hooks {
    let mut h = Hooks::default();
    for (sec, s) in p.obj.sections.iter().enumerate() {
        let name = s.name_str();
        if let Some(&(_, kind, void_hook, kpatch)) =
            CALLBACK_SECTIONS.iter().find(|(n, ..)| *n == name)
        {
            let bytes = s.bytes();
            let mut relocs: Vec<_> = p.relocs(sec).iter().collect();
            relocs.sort_by_key(|r| r.offset);
            for r in relocs {
                if r.offset % 16 != 0 {
                    continue; // kpatch's objname field
                }
                let Target::Sym { sym, .. } = p.target(sec, r) else {
                    out.push(Refusal::CallbackNotAFunction {
                        section: name.to_string(),
                        symbol: String::new(),
                    });
                    continue;
                };
                let order = if kpatch {
                    r.offset / 16
                } else {
                    usize::try_from(r.offset)
                        .ok()
                        .and_then(|o| read_u64(bytes, o.checked_add(8)?, p.obj.big_endian))
                        .unwrap_or(r.offset / 16)
                };
                h.callbacks.push(Callback {
                    kind,
                    func: sym,
                    order,
                    void_hook,
                });
            }
        } else if KLP_CALLBACK_SECTIONS.contains(&name.as_ref()) {
            read_klp_callbacks(p, sec, &name, &mut h, out);
        } else if name == ".kpatch.force" {
            out.push(Refusal::KpatchForce {
                section: name.to_string(),
            });
        } else if !s.is_reloc() && unknown_annotation(&name) {
            out.push(Refusal::UnknownAnnotation {
                section: name.to_string(),
            });
        } else if name == ".lp.states" {
            let b = s.bytes();
            for at in (0..b.len() / 16).map(|k| k * 16) {
                let be = p.obj.big_endian;
                if let (Some(id), Some(v)) = (read_u64(b, at, be), read_u32(b, at + 8, be)) {
                    h.states.push((id, v));
                }
            }
        } else if name == ".lp.ignore.functions" || name == ".kpatch.ignore.functions" {
            for r in p.relocs(sec) {
                if let Target::Sym { sym, .. } = p.target(sec, r) {
                    h.ignored_functions.insert(sym);
                }
            }
        } else if name == ".lp.ignore.sections" || name == ".kpatch.ignore.sections" {
            for r in p.relocs(sec) {
                if let Target::Str(s) = p.target(sec, r) {
                    h.ignored_sections
                        .insert(String::from_utf8_lossy(s).into_owned());
                }
            }
        }
    }
    h.callbacks.sort_by(|a, b| {
        a.kind
            .field()
            .cmp(b.kind.field())
            .then(a.order.cmp(&b.order))
    });
    h
}
