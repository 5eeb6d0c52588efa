//! The relocation types the x86_64 module loader applies (`arch/x86/kernel/module.c`,
//! `__write_relocate_add`), and the size of the field each writes. The loader refuses any
//! other type ("Unknown rela relocation") and refuses to write a field that is not zero.

use super::{lookup, Loader};
use object::elf;

/// `(type, field size)`: `R_X86_64_NONE` writes nothing.
const TYPES: &[(u32, u64)] = &[
    (elf::R_X86_64_NONE.0, 0),
    (elf::R_X86_64_64.0, 8),
    (elf::R_X86_64_PC64.0, 8),
    (elf::R_X86_64_PC32.0, 4),
    (elf::R_X86_64_PLT32.0, 4),
    (elf::R_X86_64_32.0, 4),
    (elf::R_X86_64_32S.0, 4),
];

/// x86_64's loader.
pub struct X86_64;

impl Loader for X86_64 {
    fn name(&self) -> &'static str {
        "x86_64"
    }

    fn e_machine(&self) -> u16 {
        elf::EM_X86_64.0
    }

    fn field_size(&self, r_type: u32) -> Option<u64> {
        lookup(TYPES, r_type)
    }

    fn place_must_be_zero(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        let f = |t| X86_64.field_size(t);
        assert_eq!(f(1), Some(8));
        assert_eq!(f(2), Some(4));
        assert_eq!(f(4), Some(4));
        assert_eq!(f(10), Some(4));
        assert_eq!(f(11), Some(4));
        assert_eq!(f(24), Some(8));
        assert_eq!(f(0), Some(0));
        assert_eq!(f(9), None);
    }
}
