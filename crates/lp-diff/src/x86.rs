//! x86-64 instruction boundaries (with iced-x86): where a PC-relative field's instruction ends,
//! whether two function bodies differ only in `__LINE__` immediates, and readable listings.

use iced_x86::{Decoder, DecoderOptions, Formatter, GasFormatter, Instruction, Mnemonic, OpKind};

/// Start offsets of the instructions of a code section (linear sweep).
#[derive(Debug, Clone, Default)]
pub struct Insns {
    /// `(start, len)` of each instruction, ascending.
    pub spans: Vec<(u64, u32)>,
}

impl Insns {
    /// Decodes `code` from offset 0.
    pub fn decode(code: &[u8]) -> Insns {
        let mut decoder = Decoder::with_ip(64, code, 0, DecoderOptions::NONE);
        let mut spans = Vec::new();
        let mut insn = Instruction::default();
        while decoder.can_decode() {
            decoder.decode_out(&mut insn);
            spans.push((insn.ip(), insn.len() as u32));
        }
        Insns { spans }
    }

    /// The end of the instruction containing `offset`.
    pub fn end_of(&self, offset: u64) -> Option<u64> {
        let i = match self.spans.binary_search_by(|&(s, _)| s.cmp(&offset)) {
            Ok(i) => i,
            Err(0) => return None,
            Err(i) => i - 1,
        };
        let (s, l) = *self.spans.get(i)?;
        let end = s.checked_add(u64::from(l))?;
        (offset < end).then_some(end)
    }
}

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

/// Functions whose `__LINE__` arguments may change without changing behaviour.
pub fn is_line_taking_callee(name: &str) -> bool {
    name.starts_with("warn_slowpath")
        || name.starts_with("__warned.")
        || matches!(
            name,
            "__warn_printk"
                | "__might_sleep"
                | "___might_sleep"
                | "__might_resched"
                | "__might_fault"
                | "printk"
                | "_printk"
                | "lockdep_rcu_suspicious"
                | "__btrfs_abort_transaction"
                | "__btrfs_handle_fs_error"
                | "__btrfs_panic"
                | "__ubsan_handle_out_of_bounds"
                | "__ubsan_handle_shift_out_of_bounds"
                | "__ubsan_handle_load_invalid_value"
        )
}

fn decode_all(code: &[u8]) -> Vec<Instruction> {
    let mut decoder = Decoder::with_ip(64, code, 0, DecoderOptions::NONE);
    let mut out = Vec::new();
    while decoder.can_decode() {
        out.push(decoder.decode());
    }
    out
}

fn is_mov_imm(i: &Instruction) -> bool {
    matches!(i.mnemonic(), Mnemonic::Mov)
        && i.op_count() == 2
        && matches!(
            i.op1_kind(),
            OpKind::Immediate32
                | OpKind::Immediate32to64
                | OpKind::Immediate16
                | OpKind::Immediate8
        )
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
        let (s, l) = (x.ip() as usize, x.len());
        let (Some(xb), Some(yb)) = (orig.get(s..s + l), patched.get(s..s + l)) else {
            return false;
        };
        if xb == yb {
            continue;
        }
        if x.len() != y.len()
            || !is_mov_imm(x)
            || !is_mov_imm(y)
            || x.op0_register() != y.op0_register()
        {
            return false;
        }
        // A line-taking call must follow closely.
        let feeds_call = b.iter().skip(idx + 1).take(12).any(|n| {
            matches!(n.mnemonic(), Mnemonic::Call | Mnemonic::Jmp)
                && (n.ip()..n.ip() + n.len() as u64)
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
    for insn in decode_all(code) {
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
        let i = Insns::decode(&code);
        assert_eq!(i.spans.len(), 4);
        assert_eq!(i.end_of(5), Some(9));
        assert_eq!(i.end_of(14), Some(15));
        assert_eq!(i.end_of(15), None);
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
