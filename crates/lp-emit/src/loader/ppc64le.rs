//! The relocation types the ppc64 (ELFv2) module loader applies (`arch/powerpc/kernel/
//! module_64.c`, `apply_relocate_add`), and its rule for calls out of the module: a `bl` to a
//! symbol outside the module goes through a stub that saves r2 (the TOC pointer), and the
//! loader rewrites the instruction after the `bl` to restore it, so that instruction must be a
//! `nop` (or already the restore, when a livepatch relocation is applied again); anything else
//! fails the load ("Expected nop after call"). `R_PPC64_NONE` is not in its list: it refuses it.

use super::{lookup, Loader};

/// `R_PPC64_REL24`.
const R_PPC64_REL24: u32 = 10;
/// `R_PPC64_REL24_NOTOC` (pc-relative kernels, 6.4+).
const R_PPC64_REL24_NOTOC: u32 = 116;

/// `(type, field size)`.
const TYPES: &[(u32, u64)] = &[
    (1, 4),  // ADDR32
    (38, 8), // ADDR64
    (51, 8), // TOC
    (47, 2), // TOC16
    (48, 2), // TOC16_LO
    (63, 2), // TOC16_DS
    (64, 2), // TOC16_LO_DS
    (50, 2), // TOC16_HA
    (R_PPC64_REL24, 4),
    (44, 8),  // REL64
    (26, 4),  // REL32
    (109, 0), // TOCSAVE: a marker
    (118, 8), // ENTRY: may rewrite the two instructions of the global entry
    (252, 2), // REL16_HA
    (250, 2), // REL16_LO
    // CONFIG_PPC_KERNEL_PCREL (6.4+):
    (R_PPC64_REL24_NOTOC, 4),
    (132, 8), // PCREL34: a prefixed instruction
    (133, 8), // GOT_PCREL34
];

/// `nop` (`ori 0,0,0`).
const NOP: u32 = 0x6000_0000;
/// `ld r2,24(r1)`: the restore the loader writes.
const LD_TOC: u32 = 0xe841_0018;

/// ppc64le's loader.
pub struct Ppc64le;

impl Loader for Ppc64le {
    fn name(&self) -> &'static str {
        "ppc64le"
    }

    fn e_machine(&self) -> u16 {
        object::elf::EM_PPC64.0
    }

    fn field_size(&self, r_type: u32) -> Option<u64> {
        lookup(TYPES, r_type)
    }

    fn check_external_site(
        &self,
        code: &[u8],
        offset: u64,
        r_type: u32,
        symbol: &str,
        big_endian: bool,
    ) -> Option<String> {
        // `restore_r2`: the ftrace entry's call and branches that do not link need nothing.
        if r_type != R_PPC64_REL24
            || ["_mcount", "ftrace_caller", "ftrace_regs_caller"]
                .iter()
                .any(|n| symbol.ends_with(n))
        {
            return None;
        }
        let word = |at: u64| -> Option<u32> {
            let at = usize::try_from(at).ok()?;
            let b: [u8; 4] = code.get(at..at.checked_add(4)?)?.try_into().ok()?;
            Some(if big_endian {
                u32::from_be_bytes(b)
            } else {
                u32::from_le_bytes(b)
            })
        };
        let insn = word(offset)?;
        // A relative branch with link: `bl` (primary opcode 18, AA = 0, LK = 1).
        if insn & 0xfc00_0003 != 0x4800_0001 {
            return None;
        }
        match word(offset.checked_add(4)?) {
            Some(NOP) | Some(LD_TOC) => None,
            Some(next) => Some(format!(
                "the call at {offset:#x} is followed by {next:#010x}, not a nop: the ppc64 loader \
                 must put the TOC restore there and refuses the module (\"Expected nop after \
                 call\")"
            )),
            None => Some(format!(
                "the call at {offset:#x} is the last instruction of its section: the ppc64 \
                 loader needs a nop after it for the TOC restore"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn le(words: &[u32]) -> Vec<u8> {
        words.iter().flat_map(|w| w.to_le_bytes()).collect()
    }

    #[test]
    fn sizes() {
        assert_eq!(Ppc64le.field_size(R_PPC64_REL24), Some(4));
        assert_eq!(Ppc64le.field_size(38), Some(8));
        assert_eq!(Ppc64le.field_size(0), None, "R_PPC64_NONE is refused");
    }

    #[test]
    fn call_needs_a_nop() {
        let bl = 0x4800_0001;
        let site = |code: &[u32], r_type, sym| {
            Ppc64le.check_external_site(&le(code), 0, r_type, sym, false)
        };
        assert_eq!(site(&[bl, NOP], R_PPC64_REL24, "f"), None);
        assert_eq!(site(&[bl, LD_TOC], R_PPC64_REL24, "f"), None);
        assert!(site(&[bl, 0x7c08_02a6], R_PPC64_REL24, "f").is_some());
        assert!(site(&[bl], R_PPC64_REL24, "f").is_some());
        // A sibling call (`b`) and the ftrace call need no restore.
        assert_eq!(site(&[0x4800_0000, 0x7c08_02a6], R_PPC64_REL24, "f"), None);
        assert_eq!(site(&[bl, 0x7c08_02a6], R_PPC64_REL24, "_mcount"), None);
        // Big-endian objects are read as such.
        let be: Vec<u8> = [bl, NOP].iter().flat_map(|w| w.to_be_bytes()).collect();
        assert_eq!(
            Ppc64le.check_external_site(&be, 0, R_PPC64_REL24, "f", true),
            None
        );
    }
}
