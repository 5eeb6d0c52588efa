//! s390x (big-endian): instructions of 2, 4 or 6 bytes (the length is in the first byte's top
//! two bits); PC-relative `*DBL` fields sit 2 bytes into their instruction, whose start is the
//! PC; the ftrace entry is `-mfentry -mnop-mcount -mrecord-mcount`'s: an `__mcount_loc` entry at
//! the function's start (or a `__fentry__` call); special sections: the expoline tables
//! (`.s390_indirect_jump`, `.s390_indirect_call`, `.s390_indirect_branches`,
//! `.s390_return_mem`, `.s390_return_reg`: 4-byte place-relative pointers), `.altinstructions`,
//! `__bug_table`, `__ex_table`, `__jump_table`, `.printk_index`, `__mcount_loc`.

use super::{Arch, Insns, Placeholder};
use crate::special::{KeyField, MadeBy, Spec};
use crate::view::View;
use lp_elf::Reloc;

/// The s390x architecture.
pub struct S390x;

/// `R_390_64`.
const R_390_64: u32 = 22;

/// Relocation types of fields 2 bytes into an instruction whose start is the PC (`brasl`,
/// `larl`, `lgrl` with a GOT entry, ...).
fn is_dbl(r_type: u32) -> bool {
    matches!(r_type, 16..=21 | 26 | 33)
}

fn insn_len(first: u8) -> u32 {
    match first >> 6 {
        0 => 2,
        3 => 6,
        _ => 4,
    }
}

impl Arch for S390x {
    fn name(&self) -> &'static str {
        "s390x"
    }

    fn reloc_field_size(&self, r_type: u32) -> Option<u64> {
        Some(match r_type {
            0 => 0,                                                          // NONE
            1 => 1,                                                          // 8
            2 | 3 | 6 | 15..=18 | 27 | 29 | 30 => 2, // 12, 16, GOT12, GOT16, PC16*, GOTOFF16, GOTPLT12/16
            4 | 5 | 7 | 8 | 13 | 14 | 19..=21 | 26 | 31 | 33 | 57..=59 => 4, // 32, PC32, GOT32, PLT32, GOTOFF32, GOTPC, PC32DBL, PLT32DBL, GOTPCDBL, GOTENT, GOTPLT32, GOTPLTENT, 20-bit
            22..=25 | 28 | 32 => 8, // 64, PC64, GOT64, PLT64, GOTOFF64, GOTPLT64
            _ => return None,
        })
    }

    fn abs64(&self) -> u32 {
        R_390_64
    }

    fn decode(&self, code: &[u8]) -> Insns {
        let mut spans = Vec::new();
        let mut at = 0usize;
        while let Some(&first) = code.get(at) {
            let len = insn_len(first);
            if at + len as usize > code.len() {
                break;
            }
            spans.push((at as u64, len));
            at += len as usize;
        }
        Insns { spans }
    }

    /// A `*DBL` field's addend counts from the field (2 bytes into the instruction); what it
    /// points to counts from the instruction.
    fn pc_adjust(&self, _insns: Option<&Insns>, _in_exec: bool, r: &Reloc) -> i64 {
        if is_dbl(r.r_type) {
            -2
        } else {
            0
        }
    }

    fn has_ftrace_entry(&self, v: &View, f: usize) -> bool {
        super::listed_near_start(v, f, "__mcount_loc", 0, 8)
            || super::calls_near_start(v, f, 16, &["__fentry__", "_mcount"])
    }

    fn ftrace_entry(&self) -> &'static str {
        "no __mcount_loc entry at its start: notrace, or built without -mrecord-mcount"
    }

    /// `br %r14`.
    fn placeholder(&self, _return_thunk: bool) -> Placeholder {
        Placeholder {
            code: vec![0x07, 0xfe],
            align: 8,
            reloc: None,
        }
    }

    fn specials(&self) -> &'static [Spec] {
        SPECIALS
    }

    /// `lhi`/`lghi` (`a7x8`/`a7x9`) instructions that differ only in the immediate.
    fn line_only_change(
        &self,
        orig: &[u8],
        patched: &[u8],
        callee_at: &dyn Fn(u64) -> Option<String>,
    ) -> bool {
        if orig.len() != patched.len() {
            return false;
        }
        let (a, b) = (self.decode(orig), self.decode(patched));
        if a.spans != b.spans {
            return false;
        }
        let load_imm = |i: &[u8]| i.len() == 4 && i[0] == 0xa7 && matches!(i[1] & 0x0f, 8 | 9);
        let mut any = false;
        for (k, &(s, l)) in a.spans.iter().enumerate() {
            let range = s as usize..s as usize + l as usize;
            let (Some(x), Some(y)) = (orig.get(range.clone()), patched.get(range)) else {
                return false;
            };
            if x == y {
                continue;
            }
            if !load_imm(x) || !load_imm(y) || x[..2] != y[..2] {
                return false;
            }
            let feeds_call = a.spans.iter().skip(k + 1).take(12).any(|&(n, nl)| {
                (n..n + u64::from(nl))
                    .any(|o| callee_at(o).is_some_and(|c| super::is_line_taking_callee(&c)))
            });
            if !feeds_call {
                return false;
            }
            any = true;
        }
        any
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

/// s390x's special sections.
pub const SPECIALS: &[Spec] = &[
    given("__bug_table"),
    given("__ex_table"),
    Spec {
        key_field: Some(KeyField::JumpEntry),
        ..given("__jump_table")
    },
    given(".altinstructions"),
    fixed(".s390_indirect_jump", 4),
    fixed(".s390_indirect_call", 4),
    fixed(".s390_indirect_branches", 4),
    fixed(".s390_return_mem", 4),
    fixed(".s390_return_reg", 4),
    fixed(".printk_index", 8),
    fixed("__mcount_loc", 8),
];
