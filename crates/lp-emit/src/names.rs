//! Names: the module name, and how names and strings are spelled in the generated C.
//!
//! Nothing here reads a file; every function is total on its input.

use lp_elf::klp::KLP_OBJNAME_MAX;

/// The module name for a patch: `livepatch-<patch name>`, every character outside
/// `[A-Za-z0-9_-]` replaced by `_`, cut to 55 characters (the kernel's `MODULE_NAME_LEN - 1`).
/// The patch name is typically the patch file name without its extension.
pub fn module_name(patch_name: &str) -> String {
    let mut name = String::from("livepatch-");
    name.extend(patch_name.chars().map(|c| {
        if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
            c
        } else {
            '_'
        }
    }));
    // Only ASCII remains, so cutting at a byte count is cutting at a character boundary.
    name.truncate(KLP_OBJNAME_MAX);
    name
}

/// Whether `name` is usable as a module name: 1 to 55 characters of `[A-Za-z0-9_-]`.
pub fn is_module_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= KLP_OBJNAME_MAX
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Whether `s` is a C identifier (`[A-Za-z_][A-Za-z0-9_]*`).
pub fn is_c_identifier(s: &str) -> bool {
    let mut bytes = s.bytes();
    match bytes.next() {
        Some(b) if b.is_ascii_alphabetic() || b == b'_' => {}
        _ => return false,
    }
    bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// `s` as a C string literal. Bytes outside printable ASCII are written as three-digit octal
/// escapes (which cannot run into a following digit); `"`, `\` and `?` (trigraphs) are escaped.
pub fn c_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for b in s.bytes() {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'?' => out.push_str("\\?"),
            0x20..=0x7e => out.push(char::from(b)),
            _ => {
                out.push('\\');
                out.push(char::from(b'0' + (b >> 6)));
                out.push(char::from(b'0' + ((b >> 3) & 7)));
                out.push(char::from(b'0' + (b & 7)));
            }
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_names() {
        assert_eq!(module_name("fix-cmdline"), "livepatch-fix-cmdline");
        assert_eq!(
            module_name("0001 fix.cmdline+x"),
            "livepatch-0001_fix_cmdline_x"
        );
        assert_eq!(module_name("é"), "livepatch-_");
        let long = module_name(&"a".repeat(100));
        assert_eq!(long.len(), 55);
        assert!(long.starts_with("livepatch-aaa"));
        assert!(is_module_name(&long));
        assert!(is_module_name(&module_name("ü/../x y")));
        assert!(!is_module_name(""));
        assert!(!is_module_name("a.b"));
        assert!(!is_module_name(&"a".repeat(56)));
    }

    #[test]
    fn identifiers() {
        assert!(is_c_identifier("__lp_f_cmdline_proc_show"));
        assert!(is_c_identifier("_"));
        assert!(!is_c_identifier(""));
        assert!(!is_c_identifier("0abc"));
        assert!(!is_c_identifier("foo.isra.0"));
        assert!(!is_c_identifier("a-b"));
    }

    #[test]
    fn strings() {
        assert_eq!(c_string("foo.isra.0"), "\"foo.isra.0\"");
        assert_eq!(c_string("a\"b\\c??=d"), "\"a\\\"b\\\\c\\?\\?=d\"");
        assert_eq!(c_string("x\ny\u{e9}1"), "\"x\\012y\\303\\2511\"");
    }
}
