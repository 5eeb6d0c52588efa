//! The kernel's special sections, table-driven: which entries belong to the included
//! functions, and what they need.
//!
//! An entry belongs to a function when the relocation of its first field points into that
//! function's section. Entry sizes come from the caller (the kernel being patched) except for
//! the sections whose format is a plain array of 4- or 8-byte place-relative pointers.

/// How an entry of a special section is found and kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spec {
    /// Section name.
    pub name: &'static str,
    /// Made by objtool: dropped when objtool runs on the linked module and makes it again.
    pub objtool_output: bool,
    /// Entry size when fixed by the format; `None`: must be supplied.
    pub fixed_size: Option<u64>,
    /// The parallel section whose entries are kept with these (`.orc_unwind` for
    /// `.orc_unwind_ip`), and its entry size source name.
    pub parallel: Option<&'static str>,
    /// When the entry's second relocation is a key (static key / static call key) that must
    /// not live in a module.
    pub key_field: Option<u64>,
}

/// The table.
pub const SPECIALS: &[Spec] = &[
    Spec {
        name: "__bug_table",
        objtool_output: false,
        fixed_size: None,
        parallel: None,
        key_field: None,
    },
    Spec {
        name: "__ex_table",
        objtool_output: false,
        fixed_size: None,
        parallel: None,
        key_field: None,
    },
    Spec {
        name: "__jump_table",
        objtool_output: false,
        fixed_size: None,
        parallel: None,
        key_field: Some(8),
    },
    Spec {
        name: ".static_call_sites",
        objtool_output: true,
        fixed_size: None,
        parallel: None,
        key_field: Some(4),
    },
    Spec {
        name: ".altinstructions",
        objtool_output: false,
        fixed_size: None,
        parallel: None,
        key_field: None,
    },
    Spec {
        name: ".parainstructions",
        objtool_output: false,
        fixed_size: None,
        parallel: None,
        key_field: None,
    },
    Spec {
        name: ".printk_index",
        objtool_output: false,
        fixed_size: Some(8),
        parallel: None,
        key_field: None,
    },
    Spec {
        name: ".smp_locks",
        objtool_output: false,
        fixed_size: Some(4),
        parallel: None,
        key_field: None,
    },
    Spec {
        name: ".retpoline_sites",
        objtool_output: true,
        fixed_size: Some(4),
        parallel: None,
        key_field: None,
    },
    Spec {
        name: ".return_sites",
        objtool_output: true,
        fixed_size: Some(4),
        parallel: None,
        key_field: None,
    },
    Spec {
        name: ".call_sites",
        objtool_output: true,
        fixed_size: Some(4),
        parallel: None,
        key_field: None,
    },
    Spec {
        name: ".ibt_endbr_seal",
        objtool_output: true,
        fixed_size: Some(4),
        parallel: None,
        key_field: None,
    },
    Spec {
        name: ".kcfi_traps",
        objtool_output: false,
        fixed_size: Some(4),
        parallel: None,
        key_field: None,
    },
    Spec {
        name: "__mcount_loc",
        objtool_output: false,
        fixed_size: Some(8),
        parallel: None,
        key_field: None,
    },
    Spec {
        name: ".orc_unwind_ip",
        objtool_output: true,
        fixed_size: Some(4),
        parallel: Some(".orc_unwind"),
        key_field: None,
    },
    // objtool's input annotations: kept for the included code when objtool checks the module.
    Spec {
        name: ".discard.annotate_insn",
        objtool_output: false,
        fixed_size: Some(8),
        parallel: None,
        key_field: None,
    },
    Spec {
        name: ".discard.reachable",
        objtool_output: false,
        fixed_size: Some(4),
        parallel: None,
        key_field: None,
    },
    Spec {
        name: ".discard.unreachable",
        objtool_output: false,
        fixed_size: Some(4),
        parallel: None,
        key_field: None,
    },
    Spec {
        name: ".discard.retpoline_safe",
        objtool_output: false,
        fixed_size: Some(4),
        parallel: None,
        key_field: None,
    },
    Spec {
        name: ".discard.instr_begin",
        objtool_output: false,
        fixed_size: Some(4),
        parallel: None,
        key_field: None,
    },
    Spec {
        name: ".discard.instr_end",
        objtool_output: false,
        fixed_size: Some(4),
        parallel: None,
        key_field: None,
    },
    Spec {
        name: ".discard.noendbr",
        objtool_output: false,
        fixed_size: Some(4),
        parallel: None,
        key_field: None,
    },
    Spec {
        name: ".discard.intra_function_calls",
        objtool_output: false,
        fixed_size: Some(4),
        parallel: None,
        key_field: None,
    },
];

/// The spec of a section, if special. `.orc_unwind` itself is handled through its parallel.
pub fn spec(name: &str) -> Option<&'static Spec> {
    SPECIALS.iter().find(|s| s.name == name)
}

/// True for sections handled only through another's entries.
pub fn is_parallel(name: &str) -> bool {
    SPECIALS.iter().any(|s| s.parallel == Some(name))
}

/// Entry size of a special section: fixed by the format (arrays of pointers or place-relative
/// offsets; `.printk_index` holds pointers to `struct pi_entry`, whatever the struct's size), or
/// from the caller's table.
pub fn entry_size(spec: &Spec, sizes: &std::collections::BTreeMap<String, u64>) -> Option<u64> {
    spec.fixed_size.or_else(|| sizes.get(spec.name).copied())
}

/// [`entry_size`] for a section with relocations `relocs`: a format fixed at 4-byte
/// place-relative offsets whose relocations are all 8-byte absolute pointers is an older
/// kernel's `_ASM_PTR` array (`.discard.retpoline_safe` before 6.x, say), of 8-byte entries.
pub fn entry_size_for(
    spec: &Spec,
    sizes: &std::collections::BTreeMap<String, u64>,
    relocs: &[lp_elf::Reloc],
) -> Option<u64> {
    let size = entry_size(spec, sizes)?;
    let pointers = !relocs.is_empty()
        && relocs
            .iter()
            .all(|r| r.r_type == object::elf::R_X86_64_64.0);
    Some(if spec.fixed_size == Some(4) && pointers {
        8
    } else {
        size
    })
}
