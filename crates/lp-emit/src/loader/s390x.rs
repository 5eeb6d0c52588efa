//! The relocation types the s390x module loader applies (`arch/s390/kernel/module.c`,
//! `apply_rela`), with the width of the field each writes (`apply_rela_bits`: a 12-bit field is
//! written as 2 bytes, a 20-bit one as 4). The GOT and PLT types use the module's own GOT and
//! PLT, which the loader sizes from every RELA section, the livepatch ones included. `R_390_COPY`,
//! `GLOB_DAT`, `JMP_SLOT` and `RELATIVE` are refused, as is every type not listed.

use super::{lookup, Loader};

/// `(type, field size)`.
const TYPES: &[(u32, u64)] = &[
    (0, 0),  // NONE
    (1, 1),  // 8
    (2, 2),  // 12
    (3, 2),  // 16
    (57, 4), // 20
    (4, 4),  // 32
    (22, 8), // 64
    (16, 2), // PC16
    (17, 2), // PC16DBL
    (19, 4), // PC32DBL
    (5, 4),  // PC32
    (23, 8), // PC64
    (6, 2),  // GOT12
    (15, 2), // GOT16
    (58, 4), // GOT20
    (7, 4),  // GOT32
    (24, 8), // GOT64
    (26, 4), // GOTENT
    (29, 2), // GOTPLT12
    (59, 4), // GOTPLT20
    (30, 2), // GOTPLT16
    (31, 4), // GOTPLT32
    (32, 8), // GOTPLT64
    (33, 4), // GOTPLTENT
    (18, 2), // PLT16DBL
    (20, 4), // PLT32DBL
    (8, 4),  // PLT32
    (25, 8), // PLT64
    (34, 2), // PLTOFF16
    (35, 4), // PLTOFF32
    (36, 8), // PLTOFF64
    (27, 2), // GOTOFF16
    (13, 4), // GOTOFF32
    (28, 8), // GOTOFF64
    (14, 4), // GOTPC
    (21, 4), // GOTPCDBL
];

/// s390x's loader.
pub struct S390x;

impl Loader for S390x {
    fn name(&self) -> &'static str {
        "s390x"
    }

    fn e_machine(&self) -> u16 {
        object::elf::EM_S390.0
    }

    fn field_size(&self, r_type: u32) -> Option<u64> {
        lookup(TYPES, r_type)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(S390x.field_size(20), Some(4), "PLT32DBL");
        assert_eq!(S390x.field_size(22), Some(8), "64");
        assert_eq!(S390x.field_size(12), None, "RELATIVE is refused");
    }
}
