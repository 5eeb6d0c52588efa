//! The module loader's relocation rules, one file per architecture: which relocation types each
//! architecture's `apply_relocate_add` (`arch/*/kernel/module*.c`) applies and how wide the
//! field each writes is, whether it refuses a place that is not zero, and what it requires of
//! the code around a livepatch relocation. The validator ([`crate::validate`]) and the
//! post-link pass ([`crate::convert`]) ask [`for_machine`]; nothing else names an architecture.
//!
//! The lists follow the kernel's `switch`es (read in Linux 5.10 to 6.x; where a later kernel
//! added types, they are accepted and the file says since when). A type outside the list makes
//! the loader refuse the whole module ("Unknown rela relocation", "unsupported RELA
//! relocation"), so a module that the validator passes does not fail there.

pub mod aarch64;
pub mod loongarch64;
pub mod ppc64le;
pub mod s390x;
pub mod x86_64;

/// What one architecture's module loader accepts.
pub trait Loader: Sync {
    /// The name used in messages (`x86_64`).
    fn name(&self) -> &'static str;

    /// `e_machine` of its modules.
    fn e_machine(&self) -> u16;

    /// The size in bytes of the field a relocation of type `r_type` writes, if
    /// `apply_relocate_add` applies the type; `Some(0)` for a type it accepts and that writes
    /// nothing (`R_*_NONE`, markers); `None` for a type it refuses.
    fn field_size(&self, r_type: u32) -> Option<u64>;

    /// True when the loader refuses to write a place that is not zero (x86_64: "Invalid
    /// relocation target, existing value is nonzero"); elsewhere fields are instruction bits
    /// that the loader merges into the instruction.
    fn place_must_be_zero(&self) -> bool {
        false
    }

    /// A problem the loader has with the code around a relocation of `r_type` at `offset` of
    /// `code` against a symbol outside the module (undefined or `SHN_LIVEPATCH`, named
    /// `symbol`): the message, or `None`. `big_endian`: the object's byte order.
    fn check_external_site(
        &self,
        _code: &[u8],
        _offset: u64,
        _r_type: u32,
        _symbol: &str,
        _big_endian: bool,
    ) -> Option<String> {
        None
    }
}

/// The loader of `e_machine`, if lp-build knows its rules.
pub fn for_machine(e_machine: u16) -> Option<&'static dyn Loader> {
    const LOADERS: &[&dyn Loader] = &[
        &x86_64::X86_64,
        &ppc64le::Ppc64le,
        &s390x::S390x,
        &aarch64::Aarch64,
        &loongarch64::Loongarch64,
    ];
    LOADERS.iter().copied().find(|l| l.e_machine() == e_machine)
}

/// Looks `r_type` up in a table of `(type, field size)`.
fn lookup(table: &[(u32, u64)], r_type: u32) -> Option<u64> {
    table.iter().find(|&&(t, _)| t == r_type).map(|&(_, n)| n)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every loader is found by its own machine, and no two share one.
    #[test]
    fn machines() {
        for m in [
            object::elf::EM_X86_64.0,
            object::elf::EM_PPC64.0,
            object::elf::EM_S390.0,
            object::elf::EM_AARCH64.0,
            object::elf::EM_LOONGARCH.0,
        ] {
            assert_eq!(for_machine(m).map(|l| l.e_machine()), Some(m));
        }
        assert!(for_machine(object::elf::EM_RISCV.0).is_none());
    }
}
