//! ppc64le (ELFv2): fixed 4-byte instructions; PC-relative addends are offsets from the symbol
//! (no adjustment); the ftrace entry is the `bl _mcount` of `-mprofile-kernel` after the global
//! entry's TOC setup (or an `__mcount_loc` entry there); the TOC (`.toc`) is carried whole (see
//! [`crate::closure`]); special sections: the feature fixups (`__ftr_fixup`, `__mmu_ftr_fixup`,
//! `__fw_ftr_fixup`, whose code pointers are the `start_off` field at +16, and
//! `__lwsync_fixup`), `__bug_table`, `__ex_table`, `__jump_table`, `.printk_index`,
//! `__mcount_loc`.

use super::{Arch, Insns, Placeholder};
use crate::special::{KeyField, MadeBy, Spec};
use crate::view::View;

/// The ppc64le architecture.
pub struct Ppc64le;

/// `R_PPC64_ADDR64`.
const R_PPC64_ADDR64: u32 = 38;

impl Arch for Ppc64le {
    fn name(&self) -> &'static str {
        "ppc64le"
    }

    fn reloc_field_size(&self, r_type: u32) -> Option<u64> {
        Some(match r_type {
            0 => 0,                                                              // NONE
            118 => 0, // ENTRY: a hint on the global entry's TOC setup, no field of its own
            38 | 43 | 44 | 51 => 8, // ADDR64, UADDR64, REL64, TOC
            1 | 2 | 7..=11 | 24 | 26 | 37 | 116 => 4, // ADDR32, ADDR24, ADDR14*, REL24, REL14*, UADDR32, REL32, ADDR30, REL24_NOTOC
            3..=6 | 25 | 39..=42 | 47..=50 | 56 | 57 | 63 | 64 | 249..=252 => 2, // ADDR16*, UADDR16, TOC16*, REL16*
            12..=13 => 4,           // REL14_BRTAKEN/BRNTAKEN
            14..=17 | 58 | 59 => 2, // GOT16*
            _ => return None,
        })
    }

    fn abs64(&self) -> u32 {
        R_PPC64_ADDR64
    }

    fn decode(&self, code: &[u8]) -> Insns {
        Insns::fixed(code, 4)
    }

    fn has_ftrace_entry(&self, v: &View, f: usize) -> bool {
        super::calls_near_start(v, f, 32, &["_mcount", "mcount"])
            || super::listed_near_start(v, f, "__mcount_loc", 0, 32)
    }

    fn ftrace_entry(&self) -> &'static str {
        "no _mcount call in its first instructions: notrace, or built without -mprofile-kernel"
    }

    /// `blr`.
    fn placeholder(&self, _return_thunk: bool) -> Placeholder {
        Placeholder {
            code: vec![0x20, 0x00, 0x80, 0x4e],
            align: 4,
            reloc: None,
        }
    }

    fn specials(&self) -> &'static [Spec] {
        SPECIALS
    }

    /// `b target` (not `bl`) relocated with `R_PPC64_REL24`.
    fn is_unsupported_sibling_call(&self, code: &[u8], r: &lp_elf::Reloc) -> bool {
        let Some(w) = usize::try_from(r.offset)
            .ok()
            .and_then(|o| code.get(o..o.checked_add(4)?))
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)
        else {
            return false;
        };
        r.r_type == 10 && w & 0xfc00_0003 == 0x4800_0000
    }

    /// `li rD, imm` (`addi rD, 0, imm`) words that differ only in the immediate.
    fn line_only_change(
        &self,
        orig: &[u8],
        patched: &[u8],
        callee_at: &dyn Fn(u64) -> Option<String>,
    ) -> bool {
        let li = |w: u32| w >> 26 == 14 && (w >> 16) & 0x1f == 0;
        super::line_only_change_fixed(orig, patched, callee_at, &|a, b| {
            li(a) && li(b) && a & 0xffff_0000 == b & 0xffff_0000
        })
    }
}

const fn given(name: &'static str) -> Spec {
    Spec {
        name,
        made_by: MadeBy::Compiler,
        fixed_size: None,
        parallel: None,
        key_field: None,
        anchor: 0,
    }
}

const fn fixed(name: &'static str, size: u64) -> Spec {
    Spec {
        fixed_size: Some(size),
        ..given(name)
    }
}

/// `struct fixup_entry { unsigned long mask, value; long start_off, end_off, alt_start_off,
/// alt_end_off; }`: the code pointer is `start_off`.
const fn feature_fixup(name: &'static str) -> Spec {
    Spec {
        anchor: 16,
        ..given(name)
    }
}

/// ppc64le's special sections.
pub const SPECIALS: &[Spec] = &[
    given("__bug_table"),
    given("__ex_table"),
    Spec {
        key_field: Some(KeyField::JumpEntry),
        ..given("__jump_table")
    },
    feature_fixup("__ftr_fixup"),
    feature_fixup("__mmu_ftr_fixup"),
    feature_fixup("__fw_ftr_fixup"),
    fixed("__lwsync_fixup", 8),
    fixed(".printk_index", 8),
    fixed("__mcount_loc", 8),
];
