//! Symbol-name rules: numeric-suffix churn, special statics, child functions, bundling.
//!
//! Pure string functions; nothing here looks at an object.

/// The name with every all-digit `.`-component after the first replaced by `*`:
/// `foo.isra.3` -> `foo.isra.*`, `count.12` -> `count.*`, `f.__key.8` -> `f.__key.*`.
/// Clang's `.llvm.<hash>` suffix is folded the same way.
pub fn canonical(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for (i, part) in name.split('.').enumerate() {
        if i > 0 {
            out.push('.');
            if !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()) {
                out.push('*');
                continue;
            }
        }
        if NUMBERED_PREFIXES.iter().any(|p| part.starts_with(p)) {
            out.push_str(part.trim_end_matches(|c: char| c.is_ascii_digit()));
            out.push('*');
        } else {
            out.push_str(part);
        }
    }
    out
}

/// Name parts the compiler numbers without a dot: `__UNIQUE_ID_ddebug1425`, `.LC38`,
/// `.data..Lubsan_data118`.
const NUMBERED_PREFIXES: &[&str] = &["__UNIQUE_ID_", "Lubsan_", "LC", "L__unnamed_", "L__const"];

/// Sections the compiler creates per use site and numbers (UBSAN data, clang's unnamed
/// constants): never correlated by name, compared by canonical name.
pub fn is_numbered_section(name: &str) -> bool {
    name.starts_with(".data..Lubsan")
        || name.contains("..L__unnamed")
        || name.contains("..L__const")
}

/// Code containers that hold out-of-line pieces of many functions (alternatives, fixups):
/// their layout shifts when any user changes, so references into them compare by section.
pub fn is_shared_code_container(name: &str) -> bool {
    matches!(name, ".altinstr_aux" | ".altinstr_replacement" | ".fixup")
}

/// Symbols that are part of a function's bundle rather than functions of their own
/// (`__pfx_` padding for call-depth tracking, `__cfi_` preambles).
pub fn is_function_prefix(name: &str) -> bool {
    name.starts_with("__pfx_") || name.starts_with("__cfi_")
}

/// True when the name carries a numeric component that the compiler may renumber.
pub fn has_numeric_suffix(name: &str) -> bool {
    name.split('.')
        .skip(1)
        .any(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// Compiler-generated static locals that must never be correlated: each patch gets fresh
/// copies (kpatch's "special statics"). GCC names them `__key.3`, clang `func.__key.8`.
const SPECIAL_STATICS: &[&str] = &[
    "__key",
    "__warned",
    "descriptor",
    "__func__",
    "__FUNCTION__",
    "_rs",
    "CSWTCH",
    "_entry",
    "_entry_ptr",
    "__already_done",
    "__print_once",
    "__msg",
    "__ddebug",
];

/// True for a compiler-generated special static variable name.
pub fn is_special_static_name(name: &str) -> bool {
    name.split('.').any(|part| {
        SPECIAL_STATICS.contains(&part)
            || part.starts_with("__UNIQUE_ID_ddebug")
            || part.starts_with("__UNIQUE_ID___addressable")
    })
}

/// Sections whose contents are one-shot flags: changes there are never a data change.
/// (`.data.once` before 5.19, `.data..once` since; `.data.unlikely` in older kernels.)
pub fn is_flag_section(section: &str) -> bool {
    matches!(
        section,
        ".data.once" | ".data..once" | ".data.unlikely" | ".data..unlikely"
    ) || section.starts_with(".data.once.")
        || section.starts_with(".data..once.")
}

/// The parent of a child function: `foo.cold` / `foo.cold.3` / `foo.part.2` -> `foo`. A
/// `.part` function is a child only when its parent exists in the object (see
/// `View::child_parent`); otherwise it is patched as a function of its own.
pub fn child_parent(name: &str) -> Option<&str> {
    if let Some(p) = cold_parent(name) {
        return Some(p);
    }
    let idx = name.find(".part.")?;
    let rest = &name[idx + 6..];
    (!rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit())).then(|| &name[..idx])
}

/// The parent of a `.cold` part: `foo.cold` / `foo.cold.3` / `foo.part.2.cold` -> `foo` (or
/// `foo.part.2`).
pub fn cold_parent(name: &str) -> Option<&str> {
    let idx = name.find(".cold")?;
    let rest = &name[idx + 5..];
    if rest.is_empty() || (rest.starts_with('.') && rest[1..].bytes().all(|b| b.is_ascii_digit())) {
        Some(&name[..idx])
    } else {
        None
    }
}

/// Section prefixes under which `-ffunction-sections -fdata-sections` put one symbol each.
const TEXT_PREFIXES: &[&str] = &[".text.unlikely.", ".text.hot.", ".text.startup.", ".text."];
const DATA_PREFIXES: &[&str] = &[
    ".data.rel.ro.local.",
    ".data.rel.ro.",
    ".data.rel.local.",
    ".data.rel.",
    ".data..read_mostly.",
    ".data.",
    ".rodata.",
    ".bss.",
    ".tbss.",
    ".tdata.",
];

/// True when a function or object symbol `sym` owns the section `section` by itself.
pub fn is_bundled(section: &str, sym: &str, is_func: bool) -> bool {
    let prefixes = if is_func {
        TEXT_PREFIXES
    } else {
        DATA_PREFIXES
    };
    for p in prefixes {
        if let Some(rest) = section.strip_prefix(p) {
            if rest == sym {
                return true;
            }
            // GCC puts `foo.cold` into `.text.unlikely.foo`.
            if is_func
                && *p == ".text.unlikely."
                && (cold_parent(sym) == Some(rest)
                    || cold_parent(sym).is_some_and(|c| c.starts_with(rest)))
            {
                return true;
            }
        }
    }
    false
}

/// String-literal sections (`.rodata.str1.1`, `.rodata.<fn>.str1.8`, clang's `.rodata.str`).
pub fn is_string_section(name: &str, flags: u64) -> bool {
    const SHF_STRINGS: u64 = 0x20;
    flags & SHF_STRINGS != 0 || name.starts_with(".rodata.str") || name.contains(".str1.")
}

/// Sections that only carry debug, build or linker information: never compared, never emitted.
pub fn is_ignored_section(name: &str) -> bool {
    name.starts_with(".debug")
        || name.starts_with(".discard")
        || name.starts_with(".note")
        || name.starts_with(".comment")
        || name.starts_with(".eh_frame")
        || name.starts_with(".llvm_addrsig")
        || name.starts_with(".BTF")
        || name == ".modinfo"
        || name.starts_with("__ksymtab")
        || name.starts_with("___ksymtab")
        || name.starts_with("__kcrctab")
        || name.starts_with(".export_symbol")
        || name == "__versions"
        || name.starts_with(".gnu.linkonce")
        || name.starts_with("__param")
        || name.starts_with(".initcall")
        || name.starts_with(".con_initcall")
        || name == "__mcount_loc"
        || name == ".orc_header"
        || name.starts_with(".kpatch.")
        || name.starts_with(".lp.")
        || name == "__patchable_function_entries"
        || name == ".init.setup"
        || name == "__tracepoints_strings"
}

/// Code sections that are not one-function sections: code there cannot be isolated.
pub fn non_bundled_text_kind(name: &str) -> Option<&'static str> {
    if name.starts_with(".init.") || name == ".init.text" {
        Some("__init code has already run at boot or module load and is freed afterwards")
    } else if name.starts_with(".exit.") {
        Some("__exit code runs only at module unload and cannot be redirected")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_names() {
        assert_eq!(canonical("foo.isra.3"), "foo.isra.*");
        assert_eq!(
            canonical("foo.constprop.0.isra.1"),
            "foo.constprop.*.isra.*"
        );
        assert_eq!(canonical("count.12"), "count.*");
        assert_eq!(canonical("foo.cold"), "foo.cold");
        assert_eq!(canonical("plain"), "plain");
        assert!(has_numeric_suffix("x.part.2"));
        assert!(!has_numeric_suffix("x.cold"));
    }

    #[test]
    fn special_statics() {
        for n in [
            "__key.3",
            "f.__key.8",
            "__warned.12",
            "__func__.5",
            "_rs.1",
            "CSWTCH.99",
            "__already_done.4",
            "descriptor.7",
        ] {
            assert!(is_special_static_name(n), "{n}");
        }
        for n in ["count.2", "counter", "keyring"] {
            assert!(!is_special_static_name(n), "{n}");
        }
    }

    #[test]
    fn bundling_and_children() {
        assert!(is_bundled(".text.foo", "foo", true));
        assert!(is_bundled(".text.unlikely.foo", "foo.cold", true));
        assert!(is_bundled(".text.unlikely.foo", "foo.cold.0", true));
        assert!(is_bundled(".data.bar", "bar", false));
        assert!(is_bundled(".bss.count.2", "count.2", false));
        assert!(!is_bundled(".text.foo", "bar", true));
        assert!(!is_bundled(".init.text", "foo", true));
        assert_eq!(cold_parent("foo.cold"), Some("foo"));
        assert_eq!(cold_parent("foo.cold.3"), Some("foo"));
        assert_eq!(cold_parent("foo.coldx"), None);
    }
}
