//! The livepatch ELF constants, defined once.
//!
//! Source: the kernel's `include/uapi/linux/elf.h` (`SHF_RELA_LIVEPATCH`, `SHN_LIVEPATCH`) and
//! `Documentation/livepatch/module-elf-format.rst` (section and symbol naming), and the parser in
//! `kernel/livepatch/core.c` (`klp_resolve_symbols`, `klp_write_section_relocs`), which reads the
//! names with `sscanf(".klp.sym.%55[^.].%511[^,],%lu")` and `".klp.rela.%55[^.]"`.

/// `sh_flags` bit of a relocation section that the livepatch core applies (not the module loader).
pub const SHF_RELA_LIVEPATCH: u64 = 0x0010_0000;
/// `st_shndx` of a symbol that the livepatch core resolves by name and position.
pub const SHN_LIVEPATCH: u16 = 0xff20;
/// Prefix of a livepatch relocation section: `.klp.rela.<objname>.<section name>`.
pub const KLP_RELA_PREFIX: &str = ".klp.rela.";
/// Prefix of a livepatch symbol: `.klp.sym.<objname>.<symbol name>,<sympos>`.
pub const KLP_SYM_PREFIX: &str = ".klp.sym.";
/// The kernel's `MODULE_NAME_LEN - 1`: the longest object name `%55[^.]` accepts.
pub const KLP_OBJNAME_MAX: usize = 55;
/// The kernel's `KSYM_NAME_LEN - 1` since 6.1 (`%511[^,]`); 127 before.
pub const KLP_SYMNAME_MAX: usize = 511;

/// Section of [`KlpRelocEntry`] records: the livepatch relocations of a patch object, carried
/// through the kbuild link as data (docs/CONTRACTS.md). The differ writes it, the post-link pass
/// of the emitter reads it, both with this one encoding.
pub const KLP_RELOCS_SECTION: &str = ".lp.klp_relocs";
/// Section of the NUL-terminated `.klp.sym.` names the records point to.
pub const KLP_STRS_SECTION: &str = ".lp.klp_strs";
/// `struct lp_klp_reloc { u64 place; u64 name; u32 type; u32 reserved; s64 addend; }`.
pub const KLP_RELOC_ENTRY_SIZE: u64 = 32;

/// One `struct lp_klp_reloc` record, in the object's byte order. `place` (offset [`Self::PLACE`]) and `name`
/// (offset [`Self::NAME`]) are zero in the bytes and filled by the linker through an absolute
/// 64-bit relocation each (to the patched place; into [`KLP_STRS_SECTION`]); the bytes carry
/// the relocation type to apply and its addend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KlpRelocEntry {
    /// The relocation type to apply at the place (`R_X86_64_PC32`, ...).
    pub r_type: u32,
    /// Its addend.
    pub addend: i64,
}

impl KlpRelocEntry {
    /// Offset of the `place` field.
    pub const PLACE: u64 = 0;
    /// Offset of the `name` field.
    pub const NAME: u64 = 8;
    /// Offset of the `type` field.
    pub const TYPE: u64 = 16;
    /// Offset of the `addend` field.
    pub const ADDEND: u64 = 24;

    /// The record's bytes (place and name zero: the linker fills them).
    pub fn encode(&self, big_endian: bool) -> [u8; KLP_RELOC_ENTRY_SIZE as usize] {
        let mut b = [0u8; KLP_RELOC_ENTRY_SIZE as usize];
        let (t, a) = if big_endian {
            (self.r_type.to_be_bytes(), self.addend.to_be_bytes())
        } else {
            (self.r_type.to_le_bytes(), self.addend.to_le_bytes())
        };
        b[16..20].copy_from_slice(&t);
        b[24..32].copy_from_slice(&a);
        b
    }

    /// The record at byte `at` of `table`; `None` when it does not fit.
    pub fn decode(table: &[u8], at: u64, big_endian: bool) -> Option<KlpRelocEntry> {
        let at = usize::try_from(at).ok()?;
        let b = table.get(at..at.checked_add(KLP_RELOC_ENTRY_SIZE as usize)?)?;
        let t: [u8; 4] = b.get(16..20)?.try_into().ok()?;
        let a: [u8; 8] = b.get(24..32)?.try_into().ok()?;
        Some(if big_endian {
            KlpRelocEntry {
                r_type: u32::from_be_bytes(t),
                addend: i64::from_be_bytes(a),
            }
        } else {
            KlpRelocEntry {
                r_type: u32::from_le_bytes(t),
                addend: i64::from_le_bytes(a),
            }
        })
    }
}

/// Why a livepatch symbol or section name cannot be emitted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Object name empty, too long, or containing '.' or NUL.
    #[error("object name `{0}` is not usable in a klp name (1..=55 bytes, no '.', no NUL)")]
    BadObject(String),
    /// Symbol name empty, too long or containing ',' or NUL.
    #[error("symbol name `{0}` is not usable in a klp name (1..=511 bytes, no ',', no NUL)")]
    BadSymbol(String),
    /// Section name containing NUL (the name would be cut short in the string table).
    #[error("section name `{0}` is not usable in a klp name (no NUL)")]
    BadSection(String),
}

/// The kernel's object name for a module file name: dashes become underscores.
pub fn module_objname(name: &str) -> String {
    name.replace('-', "_")
}

fn check_objname(objname: &str) -> Result<(), NameError> {
    if objname.is_empty() || objname.len() > KLP_OBJNAME_MAX || objname.contains(['.', '\0']) {
        return Err(NameError::BadObject(objname.to_string()));
    }
    Ok(())
}

/// `.klp.sym.<objname>.<symbol>,<pos>`, checked against the kernel's parser.
pub fn klp_sym_name(objname: &str, symbol: &str, pos: u64) -> Result<String, NameError> {
    check_objname(objname)?;
    if symbol.is_empty() || symbol.len() > KLP_SYMNAME_MAX || symbol.contains([',', '\0']) {
        return Err(NameError::BadSymbol(symbol.to_string()));
    }
    Ok(format!("{KLP_SYM_PREFIX}{objname}.{symbol},{pos}"))
}

/// `.klp.rela.<objname>.<section>`, checked against the kernel's parser.
pub fn klp_rela_name(objname: &str, section: &str) -> Result<String, NameError> {
    check_objname(objname)?;
    if section.contains('\0') {
        return Err(NameError::BadSection(section.to_string()));
    }
    Ok(format!("{KLP_RELA_PREFIX}{objname}.{section}"))
}

/// The part of `name` that C code sees: up to the first NUL.
fn c_str(name: &str) -> &str {
    name.split('\0').next().unwrap_or_default()
}

/// Parses a `.klp.sym.` name the way `klp_resolve_symbols` does:
/// `sscanf(name, ".klp.sym.%55[^.].%511[^,],%lu", objname, symname, &sympos)` must match all three.
/// Returns (objname, symbol, position).
///
/// How the kernel's `vsscanf` (lib/vsprintf.c) reads it, and where this mirror differs:
/// - The name is a C string: it ends at the first NUL. So does the mirror.
/// - Literal characters of the format must match exactly; `%[` skips no white space.
/// - `%55[^.]` needs at least one character that is not '.' (nor NUL), copies at most 55, and
///   the format's next character, the literal '.', must then be next in the name: a 56-byte
///   object name fails. Likewise `%511[^,]` then ','. Widths count bytes, as `len()` does.
/// - `%lu` skips leading white space (the kernel's `isspace`, which includes 0xa0), needs a
///   decimal digit next (no sign: it is unsigned), reads digits with `simple_strntoull`, which
///   wraps on overflow instead of failing, and ignores whatever follows the digits.
///   DIFFERENCE: the mirror is stricter. It accepts only the form [`klp_sym_name`] writes:
///   digits alone up to the end of the string, and no overflow. A name the mirror accepts the
///   kernel parses to the same three values; a name with white space before the position,
///   text after it, or a position above `u64::MAX` the kernel would accept (with a wrapped
///   position) and the mirror refuses, so the validator reports it rather than let it load
///   with a position nobody meant.
pub fn parse_klp_sym(name: &str) -> Option<(&str, &str, u64)> {
    let rest = c_str(name).strip_prefix(KLP_SYM_PREFIX)?;
    let dot = rest.find('.')?;
    let (obj, rest) = rest.split_at(dot);
    if obj.is_empty() || obj.len() > KLP_OBJNAME_MAX {
        return None;
    }
    let rest = rest.get(1..)?;
    let comma = rest.find(',')?;
    let (sym, pos) = rest.split_at(comma);
    if sym.is_empty() || sym.len() > KLP_SYMNAME_MAX {
        return None;
    }
    let pos = pos.get(1..)?;
    if pos.is_empty() || !pos.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((obj, sym, pos.parse().ok()?))
}

/// Parses a `.klp.rela.` section name the way `klp_write_section_relocs` does
/// (`sscanf(secname, ".klp.rela.%55[^.]", objname)`); returns (objname, target section name).
/// The name ends at the first NUL, as a C string does.
///
/// DIFFERENCE: the kernel reads only the object name (the target section is `sh_info`), and as
/// nothing follows `%55[^.]` in that format, sscanf succeeds whatever comes after the first 55
/// bytes that are not '.': `.klp.rela.vmlinux` passes, and so does a 60-byte object name, cut to
/// its first 55 bytes (which may then match another object). The mirror is stricter: the object
/// name must end, within 55 bytes, at a '.' followed by the section name, as [`klp_rela_name`]
/// writes it. A name the mirror accepts, the kernel reads to the same object name.
pub fn parse_klp_rela(name: &str) -> Option<(&str, &str)> {
    let rest = c_str(name).strip_prefix(KLP_RELA_PREFIX)?;
    let dot = rest.find('.')?;
    let (obj, sec) = rest.split_at(dot);
    if obj.is_empty() || obj.len() > KLP_OBJNAME_MAX {
        return None;
    }
    Some((obj, sec.get(1..)?))
}

#[cfg(test)]
mod tests {
    #[test]
    fn klp_reloc_entries_round_trip() {
        let e = super::KlpRelocEntry {
            r_type: 4,
            addend: -4,
        };
        for big in [false, true] {
            let mut table = vec![0xaa; 8];
            table.extend_from_slice(&e.encode(big));
            assert_eq!(super::KlpRelocEntry::decode(&table, 8, big), Some(e));
            assert_eq!(super::KlpRelocEntry::decode(&table, 9, big), None);
            assert_eq!(super::KlpRelocEntry::decode(&table, u64::MAX, big), None);
        }
        assert_eq!(&e.encode(false)[16..20], &[4, 0, 0, 0]);
        assert_eq!(&e.encode(true)[16..20], &[0, 0, 0, 4]);
    }

    use super::*;

    #[test]
    fn sym_names_round_trip() {
        let n = klp_sym_name("vmlinux", "cmdline_proc_show", 0).unwrap();
        assert_eq!(n, ".klp.sym.vmlinux.cmdline_proc_show,0");
        assert_eq!(parse_klp_sym(&n), Some(("vmlinux", "cmdline_proc_show", 0)));
        let n = klp_sym_name("null_blk", "foo.isra.0", 2).unwrap();
        assert_eq!(parse_klp_sym(&n), Some(("null_blk", "foo.isra.0", 2)));
    }

    #[test]
    fn bad_names_are_refused() {
        assert!(klp_sym_name("a.b", "x", 0).is_err());
        assert!(klp_sym_name("vmlinux", "x,y", 0).is_err());
        assert!(klp_sym_name(&"m".repeat(56), "x", 0).is_err());
        assert!(klp_sym_name("vmlinux", &"s".repeat(512), 0).is_err());
        assert!(klp_sym_name(&"m".repeat(55), &"s".repeat(511), 1).is_ok());
        assert_eq!(parse_klp_sym(".klp.sym.vmlinux.foo"), None);
        assert_eq!(parse_klp_sym(".klp.sym.vmlinux.foo,"), None);
    }

    #[test]
    fn rela_names() {
        let n = klp_rela_name("vmlinux", ".text.cmdline_proc_show").unwrap();
        assert_eq!(n, ".klp.rela.vmlinux..text.cmdline_proc_show");
        assert_eq!(
            parse_klp_rela(&n),
            Some(("vmlinux", ".text.cmdline_proc_show"))
        );
    }
}
