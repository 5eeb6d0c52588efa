//! loongarch64: fixed 4-byte instructions; PC-relative addends are offsets from the symbol;
//! the ftrace entry is the NOPs of `-fpatchable-function-entry` (`__patchable_function_entries`);
//! special sections: `__bug_table`, `__ex_table`, `__jump_table`, `.altinstructions`, ORC
//! (`.orc_unwind_ip` with its parallel `.orc_unwind`) and objtool's `.discard.annotate_insn`.

use super::{Arch, Insns, Placeholder};
use crate::special::{KeyField, MadeBy, Spec};
use crate::view::View;

/// The loongarch64 architecture.
pub struct Loongarch64;

/// `R_LARCH_64`.
const R_LARCH_64: u32 = 2;

impl Arch for Loongarch64 {
    fn name(&self) -> &'static str {
        "loongarch64"
    }

    fn reloc_field_size(&self, r_type: u32) -> Option<u64> {
        Some(match r_type {
            0 | 20 | 21 | 100 | 102 => 0, // NONE, MARK_LA, MARK_PCREL, RELAX, ALIGN
            2 | 51 | 56 | 109 | 110 => 8, // 64, ADD64, SUB64, 64_PCREL, CALL36 (two instructions)
            1 | 50 | 55 | 99 => 4,        // 32, ADD32, SUB32, 32_PCREL
            49 | 54 => 3,                 // ADD24, SUB24
            48 | 53 => 2,                 // ADD16, SUB16
            47 | 52 | 105 | 106 => 1,     // ADD8, SUB8, ADD6, SUB6
            64..=98 | 103 => 4,           // branches, HI20/LO12 pairs, GOT, TLS, PCREL20_S2
            _ => return None,
        })
    }

    fn abs64(&self) -> u32 {
        R_LARCH_64
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

    /// `jirl $zero, $ra, 0` (return).
    fn placeholder(&self, _return_thunk: bool) -> Placeholder {
        Placeholder {
            code: vec![0x20, 0x00, 0x00, 0x4c],
            align: 4,
            reloc: None,
        }
    }

    fn specials(&self) -> &'static [Spec] {
        SPECIALS
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

/// loongarch64's special sections.
pub const SPECIALS: &[Spec] = &[
    given("__bug_table"),
    given("__ex_table"),
    Spec {
        key_field: Some(KeyField::JumpEntry),
        ..given("__jump_table")
    },
    given(".altinstructions"),
    Spec {
        made_by: MadeBy::Objtool,
        fixed_size: Some(4),
        parallel: Some(".orc_unwind"),
        ..given(".orc_unwind_ip")
    },
    Spec {
        fixed_size: Some(8),
        ..given(".discard.annotate_insn")
    },
];
