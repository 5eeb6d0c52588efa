//! The architecture seam: everything the differ knows about one instruction set, behind one
//! trait, one file per architecture. Adding an architecture is a new file and a line in
//! [`for_machine`]; nothing else in the differ names an architecture.
//!
//! - relocation classes: the field each relocation type patches ([`Arch::reloc_field_size`]),
//!   the absolute 64-bit type ([`Arch::abs64`]) and the PC adjustment of PC-relative addends
//!   ([`Arch::pc_adjust`]);
//! - instruction boundaries ([`Arch::decode`]) for that adjustment and for the `__LINE__` rule
//!   ([`Arch::line_only_change`]);
//! - the ftrace entry of a function ([`Arch::has_ftrace_entry`]);
//! - the placeholder function of link-time stand-ins ([`Arch::placeholder`]);
//! - the special sections and their entry layouts ([`Arch::specials`]).

pub mod aarch64;
pub mod loongarch64;
pub mod ppc64le;
pub mod s390x;
pub mod x86_64;

use crate::special::Spec;
use crate::view::{Target, View};
use lp_elf::Reloc;

/// Instruction boundaries of a code section.
#[derive(Debug, Clone, Default)]
pub struct Insns {
    /// `(start, len)` of each instruction, ascending.
    pub spans: Vec<(u64, u32)>,
}

impl Insns {
    /// Fixed-width instructions (RISC): `width` bytes each, from offset 0.
    pub fn fixed(code: &[u8], width: u32) -> Insns {
        let n = code.len() as u64 / u64::from(width.max(1));
        Insns {
            spans: (0..n).map(|k| (k * u64::from(width), width)).collect(),
        }
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

/// The placeholder function stand-in relocations point to during the link (docs/CONTRACTS.md):
/// its code, alignment, and its own relocation (offset, type, addend, undefined symbol).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placeholder {
    /// The code; it must return.
    pub code: Vec<u8>,
    /// Section alignment.
    pub align: u64,
    /// The code's own relocation, if any: (offset, type, addend, symbol).
    pub reloc: Option<(u64, u32, i64, &'static str)>,
}

/// What the differ knows about one architecture.
pub trait Arch: Sync {
    /// The name used in messages (`x86_64`).
    fn name(&self) -> &'static str;

    /// The size of the field a relocation of type `r_type` patches; `None`: a type the differ
    /// does not know, which it refuses rather than copy through. 0: a marker that patches
    /// nothing.
    fn reloc_field_size(&self, r_type: u32) -> Option<u64>;

    /// The absolute 64-bit data relocation (`R_X86_64_64`): what a pointer table holds and
    /// what the `.lp.klp_relocs` fields carry.
    fn abs64(&self) -> u32;

    /// Instruction boundaries of `code`.
    fn decode(&self, code: &[u8]) -> Insns;

    /// How far past `r.offset` the PC a PC-relative addend is relative to lies (x86: the end of
    /// the instruction); 0 where the addend is the offset from the symbol already.
    fn pc_adjust(&self, _insns: Option<&Insns>, _in_exec: bool, _r: &Reloc) -> i64 {
        0
    }

    /// True when function symbol `f` of `v` has an ftrace entry livepatch can redirect.
    fn has_ftrace_entry(&self, v: &View, f: usize) -> bool;

    /// What a missing ftrace entry means here, for the refusal (`no __fentry__ call: ...`).
    fn ftrace_entry(&self) -> &'static str;

    /// The placeholder function; `return_thunk`: the object returns through a thunk.
    fn placeholder(&self, return_thunk: bool) -> Placeholder;

    /// True when relocation `r` of `code` is a sibling (tail) call, a branch that does not
    /// return, which cannot leave the patch module on this architecture (ppc64le: the callee
    /// would return to the caller's caller with the patch module's TOC in r2).
    fn is_unsupported_sibling_call(&self, _code: &[u8], _r: &Reloc) -> bool {
        false
    }

    /// The special sections of this architecture.
    fn specials(&self) -> &'static [Spec];

    /// True when `orig` and `patched` (same length, identical relocations) differ only in
    /// `__LINE__` arguments of WARN-style calls. `callee_at(offset)` names the call target
    /// relocated at a byte offset. Architectures without the rule say false: every such
    /// difference is a change (the reference tool's rule is x86-only in lp-build today).
    fn line_only_change(
        &self,
        _orig: &[u8],
        _patched: &[u8],
        _callee_at: &dyn Fn(u64) -> Option<String>,
    ) -> bool {
        false
    }

    /// A listing of `code`, one instruction a line, relocation targets substituted by
    /// `reloc_at(start, end)`. By default the instruction words in hex.
    fn listing(&self, code: &[u8], reloc_at: &dyn Fn(u64, u64) -> Option<String>) -> Vec<String> {
        self.decode(code)
            .spans
            .iter()
            .map(|&(s, l)| {
                let end = s.saturating_add(u64::from(l));
                match reloc_at(s, end) {
                    Some(r) => format!("<{r}>"),
                    None => {
                        let bytes = usize::try_from(s)
                            .ok()
                            .and_then(|a| code.get(a..a.checked_add(l as usize)?))
                            .unwrap_or(&[]);
                        format!("{bytes:02x?}")
                    }
                }
            })
            .collect()
    }
}

/// The architecture of `e_machine`, if the differ knows it.
pub fn for_machine(e_machine: u16) -> Option<&'static dyn Arch> {
    use object::elf;
    match e_machine {
        m if m == elf::EM_X86_64.0 => Some(&x86_64::X86_64),
        m if m == elf::EM_PPC64.0 => Some(&ppc64le::Ppc64le),
        m if m == elf::EM_AARCH64.0 => Some(&aarch64::Aarch64),
        m if m == elf::EM_LOONGARCH.0 => Some(&loongarch64::Loongarch64),
        m if m == elf::EM_S390.0 => Some(&s390x::S390x),
        _ => None,
    }
}

/// True when function `f` has a relocation against one of `callees` in its first `within`
/// bytes (a call to the ftrace entry).
pub fn calls_near_start(v: &View, f: usize, within: u64, callees: &[&str]) -> bool {
    let Some(s) = v.obj.symbols.get(f) else {
        return false;
    };
    let Some(sec) = s.section_index() else {
        return false;
    };
    v.relocs(sec).iter().any(|r| {
        r.offset >= s.value
            && r.offset < s.value.saturating_add(within)
            && callees.contains(&v.name(r.sym as usize))
    })
}

/// True when an entry of a table section named `table` (`__patchable_function_entries`,
/// `__mcount_loc`: pointers to ftrace call sites) points into function `f`'s section within
/// `before` bytes before and `after` bytes after its start.
pub fn listed_near_start(v: &View, f: usize, table: &str, before: u64, after: u64) -> bool {
    let Some(s) = v.obj.symbols.get(f) else {
        return false;
    };
    let Some(fsec) = s.section_index() else {
        return false;
    };
    let lo = s.value.saturating_sub(before);
    let hi = s.value.saturating_add(after);
    (0..v.obj.sections.len())
        .filter(|&t| v.sec_name(t) == table)
        .any(|t| {
            v.relocs(t).iter().any(|r| {
                let Some(rs) = v.obj.symbols.get(r.sym as usize) else {
                    return false;
                };
                if rs.section_index() != Some(fsec) {
                    return false;
                }
                let at = match v.target(t, r) {
                    Target::Sym { sym, addend } => {
                        i128::from(v.obj.symbols[sym].value) + i128::from(addend)
                    }
                    _ => i128::from(rs.value) + i128::from(r.addend),
                };
                at >= i128::from(lo) && at < i128::from(hi)
            })
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

/// The `__LINE__` rule for fixed-width little-endian instruction sets: every differing word
/// is a load of an immediate (`same_but_immediate(orig, patched)`) followed, within 12
/// instructions, by a call relocated to a line-taking function.
pub fn line_only_change_fixed(
    orig: &[u8],
    patched: &[u8],
    callee_at: &dyn Fn(u64) -> Option<String>,
    same_but_immediate: &dyn Fn(u32, u32) -> bool,
) -> bool {
    if orig.len() != patched.len() || !orig.len().is_multiple_of(4) {
        return false;
    }
    let word = |b: &[u8], k: usize| -> Option<u32> {
        Some(u32::from_le_bytes(
            b.get(k..k.checked_add(4)?)?.try_into().ok()?,
        ))
    };
    let mut any = false;
    for k in (0..orig.len()).step_by(4) {
        let (Some(a), Some(b)) = (word(orig, k), word(patched, k)) else {
            return false;
        };
        if a == b {
            continue;
        }
        if !same_but_immediate(a, b) {
            return false;
        }
        let start = k as u64 + 4;
        let feeds_call =
            (start..start + 48).any(|o| callee_at(o).is_some_and(|c| is_line_taking_callee(&c)));
        if !feeds_call {
            return false;
        }
        any = true;
    }
    any
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reloc(offset: u64, r_type: u32) -> Reloc {
        Reloc {
            offset,
            sym: 1,
            r_type,
            addend: 0,
        }
    }

    #[test]
    fn every_known_machine_has_an_arch() {
        use object::elf;
        for (m, name) in [
            (elf::EM_X86_64.0, "x86_64"),
            (elf::EM_PPC64.0, "ppc64le"),
            (elf::EM_S390.0, "s390x"),
            (elf::EM_AARCH64.0, "aarch64"),
            (elf::EM_LOONGARCH.0, "loongarch64"),
        ] {
            let a = for_machine(m).unwrap();
            assert_eq!(a.name(), name);
            // The absolute 64-bit type patches 8 bytes.
            assert_eq!(a.reloc_field_size(a.abs64()), Some(8), "{name}");
            assert!(!a.placeholder(false).code.is_empty(), "{name}");
        }
        assert!(for_machine(elf::EM_386.0).is_none());
    }

    #[test]
    fn s390x_instruction_lengths_and_dbl_adjustment() {
        // lhi %r2,5 (4); br %r14 (2); brasl %r14,x (6)
        let code = [0xa7, 0x28, 0, 5, 0x07, 0xfe, 0xc0, 0xe5, 0, 0, 0, 0];
        let s = s390x::S390x;
        let i = s.decode(&code);
        assert_eq!(i.spans, vec![(0, 4), (4, 2), (6, 6)]);
        assert_eq!(s.pc_adjust(Some(&i), true, &reloc(8, 20)), -2); // PLT32DBL
        assert_eq!(s.pc_adjust(Some(&i), true, &reloc(8, 5)), 0); // PC32
    }

    #[test]
    fn ppc64le_sibling_calls_and_line_rule() {
        let p = ppc64le::Ppc64le;
        let b = 0x4800_0000u32.to_le_bytes(); // b .
        let bl = 0x4800_0001u32.to_le_bytes(); // bl .
        assert!(p.is_unsupported_sibling_call(&b, &reloc(0, 10)));
        assert!(!p.is_unsupported_sibling_call(&bl, &reloc(0, 10)));
        assert!(!p.is_unsupported_sibling_call(&b, &reloc(2, 10)));
        // li r5,0x10; bl warn  vs  li r5,0x11; bl warn
        let word = |w: u32| w.to_le_bytes();
        let a = [word(0x38a0_0010), word(0x4800_0001)].concat();
        let c = [word(0x38a0_0011), word(0x4800_0001)].concat();
        let warn = |o: u64| (o == 4).then(|| "warn_slowpath_fmt".to_string());
        let other = |o: u64| (o == 4).then(|| "do_something".to_string());
        assert!(p.line_only_change(&a, &c, &warn));
        assert!(!p.line_only_change(&a, &c, &other));
        // addi r5,r3,0x10 is not a load of an immediate.
        let d = [word(0x38a3_0010), word(0x4800_0001)].concat();
        let e = [word(0x38a3_0011), word(0x4800_0001)].concat();
        assert!(!p.line_only_change(&d, &e, &warn));
    }

    #[test]
    fn fixed_width_boundaries() {
        let i = Insns::fixed(&[0; 10], 4);
        assert_eq!(i.spans, vec![(0, 4), (4, 4)]);
        assert_eq!(i.end_of(5), Some(8));
        assert_eq!(i.end_of(9), None);
    }
}
