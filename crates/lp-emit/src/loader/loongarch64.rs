//! The relocation types the LoongArch module loader applies (`arch/loongarch/kernel/module.c`,
//! the `reloc_rela_handlers` table of `apply_relocate_add`): data relocations, the old
//! stack-machine (`SOP_*`) relocations (the pushes and operations write nothing, the pops one
//! instruction), `ADD32`/`ADD64`/`SUB32`/`SUB64` (the other widths of the `ADD`/`SUB` range are
//! refused by its handler), `B26`, `PCALA_*` and `GOT_PC_*`; `32_PCREL` and `64_PCREL` (6.x). A
//! type without a handler is refused ("Unknown relocation type").

use super::{lookup, Loader};

/// `(type, field size)`.
const TYPES: &[(u32, u64)] = &[
    (0, 0),   // NONE
    (1, 4),   // 32
    (2, 8),   // 64
    (20, 0),  // MARK_LA
    (21, 0),  // MARK_PCREL
    (22, 0),  // SOP_PUSH_PCREL
    (23, 0),  // SOP_PUSH_ABSOLUTE
    (24, 0),  // SOP_PUSH_DUP
    (29, 0),  // SOP_PUSH_PLT_PCREL
    (32, 0),  // SOP_SUB
    (33, 0),  // SOP_SL
    (34, 0),  // SOP_SR
    (35, 0),  // SOP_ADD
    (36, 0),  // SOP_AND
    (37, 0),  // SOP_IF_ELSE
    (38, 4),  // SOP_POP_32_S_10_5
    (39, 4),  // SOP_POP_32_U_10_12
    (40, 4),  // SOP_POP_32_S_10_12
    (41, 4),  // SOP_POP_32_S_10_16
    (42, 4),  // SOP_POP_32_S_10_16_S2
    (43, 4),  // SOP_POP_32_S_5_20
    (44, 4),  // SOP_POP_32_S_0_5_10_16_S2
    (45, 4),  // SOP_POP_32_S_0_10_10_16_S2
    (46, 4),  // SOP_POP_32_U
    (50, 4),  // ADD32
    (51, 8),  // ADD64
    (55, 4),  // SUB32
    (56, 8),  // SUB64
    (66, 4),  // B26
    (71, 4),  // PCALA_HI20
    (72, 4),  // PCALA_LO12
    (73, 4),  // PCALA64_LO20
    (74, 4),  // PCALA64_HI12
    (75, 4),  // GOT_PC_HI20
    (76, 4),  // GOT_PC_LO12
    (99, 4),  // 32_PCREL
    (109, 8), // 64_PCREL
];

/// loongarch64's loader.
pub struct Loongarch64;

impl Loader for Loongarch64 {
    fn name(&self) -> &'static str {
        "loongarch64"
    }

    fn e_machine(&self) -> u16 {
        object::elf::EM_LOONGARCH.0
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
        assert_eq!(Loongarch64.field_size(66), Some(4), "B26");
        assert_eq!(Loongarch64.field_size(99), Some(4), "32_PCREL");
        assert_eq!(Loongarch64.field_size(47), None, "ADD8 is refused");
    }
}
