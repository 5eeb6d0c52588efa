//! The running kernel's module version magic, read from its vmlinux.
//!
//! `kernel/module/main.c` keeps `static const char vermagic[] = VERMAGIC_STRING;` and compares a
//! module's `.modinfo` `vermagic=` with it (`same_magic`). kbuild writes the module's from the
//! tree it builds against, so reading the kernel's lets the validator prove the two agree before
//! the module leaves lp-build.

use object::{Object, ObjectSection, ObjectSymbol, SymbolKind};

/// The `vermagic` string of a vmlinux (without its NUL); `None` when it has no such symbol or
/// its bytes cannot be read.
pub fn kernel_vermagic(vmlinux: &[u8]) -> Option<String> {
    let file = object::File::parse(vmlinux).ok()?;
    let sym = file
        .symbols()
        .find(|s| s.name() == Ok("vermagic") && s.kind() == SymbolKind::Data && s.size() > 0)?;
    let data = file
        .sections()
        .find_map(|s| s.data_range(sym.address(), sym.size()).ok().flatten())?;
    let end = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    let text = std::str::from_utf8(data.get(..end)?).ok()?;
    (!text.is_empty()).then(|| text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn compile(source: &str) -> Vec<u8> {
        let t = tempfile::tempdir().unwrap();
        let c = t.path().join("v.c");
        std::fs::write(&c, source).unwrap();
        let o = t.path().join("v.o");
        let st = Command::new("cc")
            .args(["-O2", "-c", "-o"])
            .arg(&o)
            .arg(&c)
            .status()
            .unwrap();
        assert!(st.success());
        std::fs::read(o).unwrap()
    }

    #[test]
    fn reads_the_string_of_the_vermagic_symbol() {
        let o = compile(
            "static const char other[] __attribute__((used)) = \"not this\";\n\
             static const char vermagic[] __attribute__((used)) =\n\
             \"6.12.57 SMP mod_unload modversions \";\n",
        );
        assert_eq!(
            kernel_vermagic(&o).as_deref(),
            Some("6.12.57 SMP mod_unload modversions ")
        );
    }

    #[test]
    fn none_without_the_symbol_or_on_junk() {
        let o = compile("static const char magic[] __attribute__((used)) = \"x\";\n");
        assert_eq!(kernel_vermagic(&o), None);
        assert_eq!(kernel_vermagic(b"\x7fELF junk"), None);
        assert_eq!(kernel_vermagic(&[]), None);
    }
}
