//! x86_64: relocation classes and the PC adjustment of `R_X86_64_PC32`-style fields (the
//! instruction boundaries come from yaxpeax-x86, see [`decode_all`]), the `__fentry__` call of
//! ftrace, the placeholder
//! (`endbr64; jmp __x86_return_thunk` or `endbr64; ret; int3`), the special sections (with
//! objtool's), and the `__LINE__` rule on `mov $imm` instructions feeding WARN-style calls.

use super::{Arch, Insns, Placeholder};
use crate::special::{KeyField, MadeBy, Spec};
use crate::view::View;
use iced_x86::{Decoder, DecoderOptions, Formatter, GasFormatter};
use lp_elf::Reloc;
use yaxpeax_arch::{Decoder as _, LengthedInstruction, U8Reader};
use yaxpeax_x86::long_mode::{InstDecoder, Opcode, Operand};

/// The x86_64 architecture.
pub struct X86_64;

/// The x86 return thunk (`-mfunction-return=thunk-extern`).
pub const RETURN_THUNK: &str = "__x86_return_thunk";

impl Arch for X86_64 {
    fn name(&self) -> &'static str {
        "x86_64"
    }

    fn reloc_field_size(&self, r_type: u32) -> Option<u64> {
        reloc_field_size(r_type)
    }

    fn abs64(&self) -> u32 {
        object::elf::R_X86_64_64.0
    }

    fn decode(&self, code: &[u8]) -> Insns {
        Insns {
            spans: decode_all(code).iter().map(|i| (i.ip, i.len)).collect(),
        }
    }

    /// An x86 PC-relative field's addend is relative to the end of its instruction, not to the
    /// field: the distance is added to find what it points to (4 for data).
    fn pc_adjust(&self, insns: Option<&Insns>, in_exec: bool, r: &Reloc) -> i64 {
        if !is_pc_relative(r.r_type) {
            return 0;
        }
        match insns.and_then(|i| i.end_of(r.offset)) {
            Some(end) => end.saturating_sub(r.offset) as i64,
            None if in_exec => 4,
            None => 0,
        }
    }

    /// A call to `__fentry__` (or `mcount`) in the function's first 16 bytes.
    fn has_ftrace_entry(&self, v: &View, f: usize) -> bool {
        super::calls_near_start(v, f, 16, &["__fentry__", "mcount", "_mcount"])
    }

    fn ftrace_entry(&self) -> &'static str {
        "no __fentry__ call: notrace, or a syscall wrapper"
    }

    fn placeholder(&self, return_thunk: bool) -> Placeholder {
        if return_thunk {
            Placeholder {
                code: vec![0xf3, 0x0f, 0x1e, 0xfa, 0xe9, 0, 0, 0, 0],
                align: 16,
                reloc: Some((5, object::elf::R_X86_64_PLT32.0, -4, RETURN_THUNK)),
            }
        } else {
            Placeholder {
                code: vec![0xf3, 0x0f, 0x1e, 0xfa, 0xc3, 0xcc],
                align: 16,
                reloc: None,
            }
        }
    }

    fn specials(&self) -> &'static [Spec] {
        SPECIALS
    }

    fn line_only_change(
        &self,
        orig: &[u8],
        patched: &[u8],
        callee_at: &dyn Fn(u64) -> Option<String>,
    ) -> bool {
        line_only_change(orig, patched, callee_at)
    }

    fn listing(&self, code: &[u8], reloc_at: &dyn Fn(u64, u64) -> Option<String>) -> Vec<String> {
        listing(code, reloc_at)
    }
}

/// x86-64 PC-relative relocation types.
pub fn is_pc_relative(r_type: u32) -> bool {
    use object::elf::*;
    [
        R_X86_64_PC32,
        R_X86_64_PLT32,
        R_X86_64_PC64,
        R_X86_64_GOTPCREL,
        R_X86_64_GOTPCRELX,
        R_X86_64_REX_GOTPCRELX,
        R_X86_64_PC16,
        R_X86_64_PC8,
    ]
    .iter()
    .any(|t| t.0 == r_type)
}

/// x86_64's special sections.
pub const SPECIALS: &[Spec] = &[
    Spec {
        name: "__bug_table",
        made_by: MadeBy::Compiler,
        fixed_size: None,
        parallel: None,
        key_field: None,
        anchor: 0,
    },
    Spec {
        name: "__ex_table",
        made_by: MadeBy::Compiler,
        fixed_size: None,
        parallel: None,
        key_field: None,
        anchor: 0,
    },
    Spec {
        name: "__jump_table",
        made_by: MadeBy::Compiler,
        fixed_size: None,
        parallel: None,
        key_field: Some(KeyField::JumpEntry),
        anchor: 0,
    },
    Spec {
        name: ".static_call_sites",
        made_by: MadeBy::Objtool,
        fixed_size: None,
        parallel: None,
        key_field: Some(KeyField::At(4)),
        anchor: 0,
    },
    Spec {
        name: ".altinstructions",
        made_by: MadeBy::Compiler,
        fixed_size: None,
        parallel: None,
        key_field: None,
        anchor: 0,
    },
    Spec {
        name: ".parainstructions",
        made_by: MadeBy::Compiler,
        fixed_size: None,
        parallel: None,
        key_field: None,
        anchor: 0,
    },
    Spec {
        name: ".printk_index",
        made_by: MadeBy::Compiler,
        fixed_size: Some(8),
        parallel: None,
        key_field: None,
        anchor: 0,
    },
    Spec {
        name: ".smp_locks",
        made_by: MadeBy::Compiler,
        fixed_size: Some(4),
        parallel: None,
        key_field: None,
        anchor: 0,
    },
    Spec {
        name: ".retpoline_sites",
        made_by: MadeBy::Objtool,
        fixed_size: Some(4),
        parallel: None,
        key_field: None,
        anchor: 0,
    },
    Spec {
        name: ".return_sites",
        made_by: MadeBy::Objtool,
        fixed_size: Some(4),
        parallel: None,
        key_field: None,
        anchor: 0,
    },
    Spec {
        name: ".call_sites",
        made_by: MadeBy::Objtool,
        fixed_size: Some(4),
        parallel: None,
        key_field: None,
        anchor: 0,
    },
    Spec {
        name: ".ibt_endbr_seal",
        made_by: MadeBy::Objtool,
        fixed_size: Some(4),
        parallel: None,
        key_field: None,
        anchor: 0,
    },
    Spec {
        name: ".kcfi_traps",
        made_by: MadeBy::Compiler,
        fixed_size: Some(4),
        parallel: None,
        key_field: None,
        anchor: 0,
    },
    Spec {
        name: "__mcount_loc",
        made_by: MadeBy::CompilerOrObjtool,
        fixed_size: Some(8),
        parallel: None,
        key_field: None,
        anchor: 0,
    },
    Spec {
        name: ".orc_unwind_ip",
        made_by: MadeBy::Objtool,
        fixed_size: Some(4),
        parallel: Some(".orc_unwind"),
        key_field: None,
        anchor: 0,
    },
    // objtool's input annotations: kept for the included code when objtool checks the module.
    Spec {
        name: ".discard.annotate_insn",
        made_by: MadeBy::Compiler,
        fixed_size: Some(8),
        parallel: None,
        key_field: None,
        anchor: 0,
    },
    Spec {
        name: ".discard.reachable",
        made_by: MadeBy::Compiler,
        fixed_size: Some(4),
        parallel: None,
        key_field: None,
        anchor: 0,
    },
    Spec {
        name: ".discard.unreachable",
        made_by: MadeBy::Compiler,
        fixed_size: Some(4),
        parallel: None,
        key_field: None,
        anchor: 0,
    },
    Spec {
        name: ".discard.retpoline_safe",
        made_by: MadeBy::Compiler,
        fixed_size: Some(4),
        parallel: None,
        key_field: None,
        anchor: 0,
    },
    Spec {
        name: ".discard.instr_begin",
        made_by: MadeBy::Compiler,
        fixed_size: Some(4),
        parallel: None,
        key_field: None,
        anchor: 0,
    },
    Spec {
        name: ".discard.instr_end",
        made_by: MadeBy::Compiler,
        fixed_size: Some(4),
        parallel: None,
        key_field: None,
        anchor: 0,
    },
    Spec {
        name: ".discard.noendbr",
        made_by: MadeBy::Compiler,
        fixed_size: Some(4),
        parallel: None,
        key_field: None,
        anchor: 0,
    },
    Spec {
        name: ".discard.intra_function_calls",
        made_by: MadeBy::Compiler,
        fixed_size: Some(4),
        parallel: None,
        key_field: None,
        anchor: 0,
    },
];

/// The size of the field a relocation of type `r_type` patches, for the x86_64 relocation types
/// the differ knows (those a compiler or assembler emits for kernel objects); `None`: a type it
/// does not know, which it refuses rather than copy through. `R_X86_64_NONE` patches nothing.
pub fn reloc_field_size(r_type: u32) -> Option<u64> {
    use object::elf::*;
    let t = r_type;
    Some(match t {
        _ if t == R_X86_64_NONE.0 => 0,
        _ if t == R_X86_64_64.0 || t == R_X86_64_PC64.0 => 8,
        _ if [
            R_X86_64_PC32.0,
            R_X86_64_PLT32.0,
            R_X86_64_32.0,
            R_X86_64_32S.0,
            R_X86_64_GOTPCREL.0,
            R_X86_64_GOTPCRELX.0,
            R_X86_64_REX_GOTPCRELX.0,
        ]
        .contains(&t) =>
        {
            4
        }
        _ if t == R_X86_64_16.0 || t == R_X86_64_PC16.0 => 2,
        _ if t == R_X86_64_8.0 || t == R_X86_64_PC8.0 => 1,
        _ => return None,
    })
}

pub use super::is_line_taking_callee;

/// One decoded instruction: where it is, its length, and what the `__LINE__` rule asks of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Insn {
    /// Offset in the section.
    pub ip: u64,
    /// Length in bytes (at least 1).
    pub len: u32,
    /// What it is.
    pub kind: InsnKind,
}

/// What the `__LINE__` rule distinguishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InsnKind {
    /// `mov $imm, DEST`; DEST as decoded (a register, or a memory operand).
    MovImm(Operand),
    /// A `call` or `jmp`.
    CallOrJmp,
    /// Anything else, and bytes that are no instruction.
    Other,
}

/// Decodes `code` from offset 0 to its end.
///
/// yaxpeax-x86 does the work: its tables are static, so a process that decodes a few functions
/// (one `lp-build diff` of a small object) pays nothing to set a decoder up, where iced-x86
/// builds its tables at first use, about 1 ms of a 2.5 ms process (`cargo xtask bench`). Bytes
/// yaxpeax-x86 does not take as an instruction get iced-x86's length (an invalid 3DNow! byte
/// sequence in the corpus is one); the two agree on every instruction of the corpus's code
/// (`tests/corpus.rs`, `x86_boundaries_agree_with_iced`).
pub fn decode_all(code: &[u8]) -> Vec<Insn> {
    let decoder = InstDecoder::default();
    let mut out = Vec::new();
    let mut off = 0usize;
    while let Some(rest) = code.get(off..).filter(|r| !r.is_empty()) {
        let mut reader = U8Reader::new(rest);
        let insn = match decoder.decode(&mut reader) {
            Ok(i) => {
                let len = i.len().to_const() as u32;
                let kind = match i.opcode() {
                    Opcode::MOV
                        if i.operand_count() == 2
                            && is_immediate(&i.operand(1))
                            && !is_movabs(rest) =>
                    {
                        InsnKind::MovImm(i.operand(0))
                    }
                    Opcode::CALL | Opcode::JMP => InsnKind::CallOrJmp,
                    _ => InsnKind::Other,
                };
                Insn {
                    ip: off as u64,
                    len,
                    kind,
                }
            }
            Err(_) => Insn {
                ip: off as u64,
                len: iced_len(code, off),
                kind: InsnKind::Other,
            },
        };
        off = off.saturating_add(insn.len.max(1) as usize);
        out.push(insn);
    }
    out
}

/// iced-x86's length of the instruction at `off` (at least 1).
fn iced_len(code: &[u8], off: usize) -> u32 {
    let rest = code.get(off..).unwrap_or_default();
    let mut decoder = Decoder::with_ip(64, rest, 0, DecoderOptions::NONE);
    (decoder.decode().len() as u32).max(1)
}

/// An immediate of a `mov`: 8, 16 or 32 bits as encoded (a 32-bit one sign-extended to 64 is
/// decoded as a 64-bit immediate).
fn is_immediate(o: &Operand) -> bool {
    matches!(
        o,
        Operand::ImmediateI8 { .. }
            | Operand::ImmediateU8 { .. }
            | Operand::ImmediateI16 { .. }
            | Operand::ImmediateU16 { .. }
            | Operand::ImmediateI32 { .. }
            | Operand::ImmediateU32 { .. }
            | Operand::ImmediateI64 { .. }
            | Operand::ImmediateU64 { .. }
    )
}

/// `movabs $imm64, %reg` (REX.W, then opcode B8+r, after any legacy prefixes): its 8-byte
/// immediate is a 64-bit constant, never a line number, so the `__LINE__` rule leaves it alone.
fn is_movabs(bytes: &[u8]) -> bool {
    const LEGACY: [u8; 11] = [
        0x66, 0x67, 0xf0, 0xf2, 0xf3, 0x2e, 0x36, 0x3e, 0x26, 0x64, 0x65,
    ];
    let start = bytes.iter().position(|b| !LEGACY.contains(b));
    match start.and_then(|k| bytes.get(k..k.saturating_add(2))) {
        Some(&[rex, op]) => rex & 0xf8 == 0x48 && (0xb8..=0xbf).contains(&op),
        _ => false,
    }
}

/// True when `orig` and `patched` (same length, identical relocations) differ only in
/// immediates of `mov $imm, ...` instructions that feed a call to a line-taking function
/// within the next few instructions. `callee_at(offset)` names the call target relocated at a
/// byte offset (if any).
pub fn line_only_change(
    orig: &[u8],
    patched: &[u8],
    callee_at: &dyn Fn(u64) -> Option<String>,
) -> bool {
    if orig.len() != patched.len() {
        return false;
    }
    let a = decode_all(orig);
    let b = decode_all(patched);
    if a.len() != b.len() {
        return false;
    }
    let mut any = false;
    for (idx, (x, y)) in a.iter().zip(&b).enumerate() {
        let (s, l) = (x.ip as usize, x.len as usize);
        let (Some(xb), Some(yb)) = (
            orig.get(s..s.saturating_add(l)),
            patched.get(s..s.saturating_add(l)),
        ) else {
            return false;
        };
        if xb == yb {
            continue;
        }
        // The same `mov $imm` to the same destination, only the immediate differs.
        let same_dest = matches!(
            (&x.kind, &y.kind),
            (InsnKind::MovImm(d), InsnKind::MovImm(e)) if d == e
        );
        if x.len != y.len || x.ip != y.ip || !same_dest {
            return false;
        }
        // A line-taking call must follow closely.
        let feeds_call = b.iter().skip(idx + 1).take(12).any(|n| {
            n.kind == InsnKind::CallOrJmp
                && (n.ip..n.ip + u64::from(n.len))
                    .any(|o| callee_at(o).is_some_and(|c| is_line_taking_callee(&c)))
        });
        if !feeds_call {
            return false;
        }
        any = true;
    }
    any
}

/// A GAS listing of `code`, one instruction a line, with relocation targets substituted by
/// `reloc_at(offset)` so listings of two versions compare symbolically.
pub fn listing(code: &[u8], reloc_at: &dyn Fn(u64, u64) -> Option<String>) -> Vec<String> {
    let mut fmt = GasFormatter::new();
    let mut out = Vec::new();
    let mut decoder = Decoder::with_ip(64, code, 0, DecoderOptions::NONE);
    while decoder.can_decode() {
        let insn = decoder.decode();
        let mut text = String::new();
        fmt.format(&insn, &mut text);
        if let Some(r) = reloc_at(insn.ip(), insn.ip() + insn.len() as u64) {
            // PC-relative displacements mean nothing before relocation: show the target.
            let mnemonic = text.split_whitespace().next().unwrap_or("").to_string();
            text = format!("{mnemonic} <{r}>");
        }
        out.push(text);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundaries() {
        // endbr64; call rel32; mov $5,%esi; ret
        let code = [
            0xf3, 0x0f, 0x1e, 0xfa, 0xe8, 0, 0, 0, 0, 0xbe, 5, 0, 0, 0, 0xc3,
        ];
        let i = X86_64.decode(&code);
        assert_eq!(i.spans.len(), 4);
        assert_eq!(i.end_of(5), Some(9));
        assert_eq!(i.end_of(14), Some(15));
        assert_eq!(i.end_of(15), None);
    }

    #[test]
    fn undecodable_bytes_take_iced_length_and_movabs_is_no_line() {
        // `0f 0f ff 48` is no 3DNow! instruction (suffix 0x48): yaxpeax-x86 refuses it, iced-x86
        // takes 4 bytes (warn-detect.ORIG.o has it in .text..refcount); then `ret`.
        let code = [0x0f, 0x0f, 0xff, 0x48, 0xc3];
        let i = decode_all(&code);
        assert_eq!(
            i.iter().map(|i| (i.ip, i.len)).collect::<Vec<_>>(),
            [(0, 4), (4, 1)]
        );
        // movabs $imm64,%rax is not a `mov $imm` of the rule; mov $imm32,%rax (sign-extended)
        // and mov $imm32,%r8d are.
        let movabs = [0x48, 0xb8, 1, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(decode_all(&movabs)[0].kind, InsnKind::Other);
        for code in [
            &[0x48u8, 0xc7, 0xc0, 1, 0, 0, 0][..],
            &[0x41, 0xb8, 1, 0, 0, 0],
        ] {
            assert!(matches!(decode_all(code)[0].kind, InsnKind::MovImm(_)));
        }
    }

    #[test]
    fn line_only() {
        // mov $0x10,%esi; call X; ret   vs   mov $0x11,%esi; call X; ret
        let a = [0xbe, 0x10, 0, 0, 0, 0xe8, 0, 0, 0, 0, 0xc3];
        let b = [0xbe, 0x11, 0, 0, 0, 0xe8, 0, 0, 0, 0, 0xc3];
        let warn = |o: u64| (o == 6).then(|| "__might_sleep".to_string());
        let other = |o: u64| (o == 6).then(|| "do_something".to_string());
        assert!(line_only_change(&a, &b, &warn));
        assert!(!line_only_change(&a, &b, &other));
        assert!(
            !line_only_change(&a, &a, &warn),
            "no difference is not a line change"
        );
    }
}
