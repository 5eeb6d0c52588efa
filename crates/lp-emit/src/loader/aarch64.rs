//! The relocation types the arm64 module loader applies (`arch/arm64/kernel/module.c`,
//! `apply_relocate_add`): data relocations with their width, and instruction relocations, each
//! patching one 4-byte instruction (a `CALL26`/`JUMP26` out of range goes through a PLT entry
//! the loader makes). Every other type is refused ("unsupported RELA relocation").

use super::{lookup, Loader};

/// `(type, field size)`.
const TYPES: &[(u32, u64)] = &[
    (0, 0),   // R_ARM_NONE
    (256, 0), // NONE
    (257, 8), // ABS64
    (258, 4), // ABS32
    (259, 2), // ABS16
    (260, 8), // PREL64
    (261, 4), // PREL32
    (262, 2), // PREL16
    (263, 4), // MOVW_UABS_G0
    (264, 4), // MOVW_UABS_G0_NC
    (265, 4), // MOVW_UABS_G1
    (266, 4), // MOVW_UABS_G1_NC
    (267, 4), // MOVW_UABS_G2
    (268, 4), // MOVW_UABS_G2_NC
    (269, 4), // MOVW_UABS_G3
    (270, 4), // MOVW_SABS_G0
    (271, 4), // MOVW_SABS_G1
    (272, 4), // MOVW_SABS_G2
    (287, 4), // MOVW_PREL_G0
    (288, 4), // MOVW_PREL_G0_NC
    (289, 4), // MOVW_PREL_G1
    (290, 4), // MOVW_PREL_G1_NC
    (291, 4), // MOVW_PREL_G2
    (292, 4), // MOVW_PREL_G2_NC
    (293, 4), // MOVW_PREL_G3
    (273, 4), // LD_PREL_LO19
    (274, 4), // ADR_PREL_LO21
    (275, 4), // ADR_PREL_PG_HI21
    (276, 4), // ADR_PREL_PG_HI21_NC
    (277, 4), // ADD_ABS_LO12_NC
    (278, 4), // LDST8_ABS_LO12_NC
    (284, 4), // LDST16_ABS_LO12_NC
    (285, 4), // LDST32_ABS_LO12_NC
    (286, 4), // LDST64_ABS_LO12_NC
    (299, 4), // LDST128_ABS_LO12_NC
    (279, 4), // TSTBR14
    (280, 4), // CONDBR19
    (282, 4), // JUMP26
    (283, 4), // CALL26
];

/// aarch64's loader.
pub struct Aarch64;

impl Loader for Aarch64 {
    fn name(&self) -> &'static str {
        "aarch64"
    }

    fn e_machine(&self) -> u16 {
        object::elf::EM_AARCH64.0
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
        assert_eq!(Aarch64.field_size(283), Some(4), "CALL26");
        assert_eq!(Aarch64.field_size(257), Some(8), "ABS64");
        assert_eq!(Aarch64.field_size(311), None, "ADR_GOT_PAGE is refused");
    }
}
