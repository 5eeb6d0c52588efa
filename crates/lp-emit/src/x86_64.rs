//! The relocation types the x86_64 module loader applies (`arch/x86/kernel/module.c`,
//! `__write_relocate_add`), and the size of the field each writes. The loader refuses any
//! other type ("Unknown rela relocation") and refuses to write a field that is not zero.

use object::elf;

/// The size in bytes of the field a relocation of type `r_type` writes, if the x86_64 module
/// loader applies that type. `R_X86_64_NONE` writes nothing and is not useful to livepatch.
pub fn field_size(r_type: u32) -> Option<u64> {
    match r_type {
        t if t == elf::R_X86_64_64.0 || t == elf::R_X86_64_PC64.0 => Some(8),
        t if t == elf::R_X86_64_PC32.0
            || t == elf::R_X86_64_PLT32.0
            || t == elf::R_X86_64_32.0
            || t == elf::R_X86_64_32S.0 =>
        {
            Some(4)
        }
        _ => None,
    }
}

/// `EM_X86_64`.
pub const EM_X86_64: u16 = elf::EM_X86_64.0;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(field_size(1), Some(8));
        assert_eq!(field_size(2), Some(4));
        assert_eq!(field_size(4), Some(4));
        assert_eq!(field_size(10), Some(4));
        assert_eq!(field_size(11), Some(4));
        assert_eq!(field_size(24), Some(8));
        assert_eq!(field_size(0), None);
        assert_eq!(field_size(9), None);
    }
}
