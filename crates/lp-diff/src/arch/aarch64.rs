//! aarch64: fixed 4-byte instructions; PC-relative addends are offsets from the symbol; the
//! ftrace entry is the NOPs of `-fpatchable-function-entry` (listed in
//! `__patchable_function_entries`, at the function's start or up to two instructions before it
//! with `CALL_OPS`); special sections: `.altinstructions` (`struct alt_instr`, 12 bytes),
//! `__bug_table`, `__ex_table`, `__jump_table`, `.printk_index`.

use super::{Arch, Insns, Placeholder};
use crate::special::{KeyField, MadeBy, Spec};
use crate::view::View;

/// The aarch64 architecture.
pub struct Aarch64;

/// `R_AARCH64_ABS64`.
const R_AARCH64_ABS64: u32 = 257;

impl Arch for Aarch64 {
    fn name(&self) -> &'static str {
        "aarch64"
    }

    fn reloc_field_size(&self, r_type: u32) -> Option<u64> {
        Some(match r_type {
            0 | 256 => 0,   // NONE
            257 | 260 => 8, // ABS64, PREL64
            258 | 261 => 4, // ABS32, PREL32
            259 | 262 => 2, // ABS16, PREL16
            // MOVW_*, LD_PREL_LO19, ADR_*, ADD_ABS_LO12_NC, LDST*_ABS_LO12_NC, TSTBR14,
            // CONDBR19, JUMP26, CALL26, GOT page relocations: one instruction.
            263..=299 | 309..=313 => 4,
            _ => return None,
        })
    }

    fn abs64(&self) -> u32 {
        R_AARCH64_ABS64
    }

    fn decode(&self, code: &[u8]) -> Insns {
        Insns::fixed(code, 4)
    }

    fn has_ftrace_entry(&self, v: &View, f: usize) -> bool {
        super::listed_near_start(v, f, "__patchable_function_entries", 8, 8)
            || super::calls_near_start(v, f, 16, &["_mcount"])
    }

    fn ftrace_entry(&self) -> &'static str {
        "no patchable-function-entry NOPs: notrace, or built without ftrace"
    }

    /// `bti c; ret`.
    fn placeholder(&self, _return_thunk: bool) -> Placeholder {
        Placeholder {
            code: vec![0x5f, 0x24, 0x03, 0xd5, 0xc0, 0x03, 0x5f, 0xd6],
            align: 4,
            reloc: None,
        }
    }

    fn specials(&self) -> &'static [Spec] {
        SPECIALS
    }

    /// `movz wD/xD, #imm` words that differ only in the 16-bit immediate.
    fn line_only_change(
        &self,
        orig: &[u8],
        patched: &[u8],
        callee_at: &dyn Fn(u64) -> Option<String>,
    ) -> bool {
        let movz = |w: u32| w & 0x7f80_0000 == 0x5280_0000;
        let imm = 0xffff << 5;
        super::line_only_change_fixed(orig, patched, callee_at, &|a, b| {
            movz(a) && movz(b) && a & !imm == b & !imm
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

/// aarch64's special sections.
pub const SPECIALS: &[Spec] = &[
    given("__bug_table"),
    given("__ex_table"),
    Spec {
        key_field: Some(KeyField::JumpEntry),
        ..given("__jump_table")
    },
    given(".altinstructions"),
    Spec {
        fixed_size: Some(8),
        ..given(".printk_index")
    },
];
