//! Checks of the kernel tree, its configuration, the running kernel's vmlinux and the compiler,
//! before anything is built or changed.

use crate::exit::{fail_hint, Status};
use anyhow::Result;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// A kernel source tree.
#[derive(Debug, Clone)]
pub struct SourceTree {
    /// Absolute, canonical path.
    pub path: PathBuf,
    /// `6.12.57` (VERSION.PATCHLEVEL.SUBLEVEL plus EXTRAVERSION).
    pub version: String,
}

/// Opens and checks a kernel source tree.
pub fn open_source(src: &Path) -> Result<SourceTree> {
    let path = fs::canonicalize(src).map_err(|e| {
        fail_hint(
            Status::Input,
            format!("kernel source tree {}: {e}", src.display()),
            "pass the kernel source directory with -s/--sourcedir",
        )
    })?;
    let makefile = path.join("Makefile");
    if !makefile.is_file() || !path.join("Kconfig").is_file() {
        return Err(fail_hint(
            Status::Input,
            format!(
                "{} is not a kernel source tree (no Makefile and Kconfig)",
                path.display()
            ),
            "run lp-build in the kernel source directory or pass it with -s/--sourcedir",
        ));
    }
    let text = String::from_utf8_lossy(&crate::input::read_input(
        &makefile,
        "the tree's Makefile",
        crate::input::Kind::Text,
        "run lp-build in the kernel source directory or pass it with -s/--sourcedir",
    )?)
    .into_owned();
    let version = parse_version(&text).ok_or_else(|| {
        fail_hint(
            Status::Input,
            format!(
                "{}: no VERSION/PATCHLEVEL/SUBLEVEL lines",
                makefile.display()
            ),
            "run lp-build in the kernel source directory or pass it with -s/--sourcedir",
        )
    })?;
    Ok(SourceTree { path, version })
}

/// `VERSION = 6` ... -> `6.12.57-rc1`.
pub fn parse_version(makefile: &str) -> Option<String> {
    let mut vars: BTreeMap<&str, &str> = BTreeMap::new();
    for line in makefile.lines().take(20) {
        if let Some((k, v)) = line.split_once('=') {
            let k = k.trim();
            if ["VERSION", "PATCHLEVEL", "SUBLEVEL", "EXTRAVERSION"].contains(&k) {
                vars.insert(k, v.trim());
            }
        }
    }
    let v = vars.get("VERSION")?;
    let p = vars.get("PATCHLEVEL")?;
    let s = vars.get("SUBLEVEL").copied().unwrap_or("0");
    let e = vars.get("EXTRAVERSION").copied().unwrap_or("");
    Some(format!("{v}.{p}.{s}{e}"))
}

/// Whether the tree was configured or built in place: kbuild refuses a separate `O=` build from
/// such a tree ("source tree is not clean"), so lp-build works from its own copy of its sources.
pub fn built_in_place(src: &Path) -> bool {
    [".config", "include/config", "arch/x86/include/generated"]
        .iter()
        .any(|m| src.join(m).exists())
}

/// A `.config` as a map from `CONFIG_X` to its value (`y`, `m`, `"text"`, `123`); options that
/// are "not set" are absent.
pub fn parse_config(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            if k.starts_with("CONFIG_") {
                out.insert(k.to_string(), v.to_string());
            }
        }
    }
    out
}

/// Reads a `.config`.
pub fn read_config(path: &Path) -> Result<(String, BTreeMap<String, String>)> {
    let bytes = crate::input::read_input(
        path,
        "kernel configuration",
        crate::input::Kind::Text,
        "pass the running kernel's configuration with -c/--config (the kernel tree is not \
         configured)",
    )?;
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let map = parse_config(&text);
    if map.is_empty() {
        return Err(fail_hint(
            Status::Input,
            format!(
                "{} is not a kernel configuration (no CONFIG_ lines)",
                path.display()
            ),
            "pass the running kernel's .config (from its build directory or /boot/config-*) \
             with -c/--config",
        ));
    }
    Ok((text, map))
}

/// The options a livepatch needs.
pub fn check_config(config: &BTreeMap<String, String>, path: &Path) -> Result<()> {
    let needed = [
        ("CONFIG_MODULES", "livepatches are modules"),
        ("CONFIG_LIVEPATCH", "the kernel has no livepatch support"),
        (
            "CONFIG_FUNCTION_TRACER",
            "functions need an ftrace entry to be redirected",
        ),
        (
            "CONFIG_DYNAMIC_FTRACE",
            "functions need a patchable ftrace entry to be redirected",
        ),
    ];
    let missing: Vec<String> = needed
        .iter()
        .filter(|(k, _)| config.get(*k).map(String::as_str) != Some("y"))
        .map(|(k, why)| format!("{k}=y ({why})"))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(fail_hint(
        Status::Input,
        format!(
            "{} cannot be live-patched: it lacks {}",
            path.display(),
            missing.join(", ")
        ),
        "a livepatch can only be built for a kernel configured with these options; check that \
         -c/--config is the running kernel's configuration",
    ))
}

/// Whether kbuild runs objtool on linked modules (and vmlinux.o) rather than on each object:
/// the tree delays objtool (`delay-objtool` in scripts/Makefile.lib, 5.19+) and the
/// configuration asks for it (`CONFIG_X86_KERNEL_IBT` or `CONFIG_LTO_CLANG`).
pub fn objtool_on_module(src: &Path, config: &BTreeMap<String, String>) -> bool {
    let delays = fs::read_to_string(src.join("scripts/Makefile.lib"))
        .map(|t| t.contains("delay-objtool"))
        .unwrap_or(false);
    let wants = ["CONFIG_X86_KERNEL_IBT", "CONFIG_LTO_CLANG"]
        .iter()
        .any(|k| config.get(*k).map(String::as_str) == Some("y"));
    delays && wants
}

/// objtool, not the compiler, makes `__mcount_loc` (CONFIG_FTRACE_MCOUNT_USE_OBJTOOL=y: clang
/// kernels on x86_64).
pub fn objtool_mcount(config: &BTreeMap<String, String>) -> bool {
    config
        .get("CONFIG_FTRACE_MCOUNT_USE_OBJTOOL")
        .is_some_and(|v| v == "y")
}

/// What lp-build needs from the running kernel's vmlinux.
#[derive(Debug, Clone)]
pub struct VmlinuxInfo {
    /// The file.
    pub path: PathBuf,
    /// Its bytes (for the differ's parent symbol table).
    pub bytes: Vec<u8>,
    /// The `GCC: ...` strings of its `.comment` section.
    pub compilers: Vec<String>,
}

/// Reads vmlinux: an ELF file with a symbol table.
pub fn check_vmlinux(path: &Path) -> Result<VmlinuxInfo> {
    use object::read::{Object as _, ObjectSection as _};
    let bytes = crate::input::read_input(
        path,
        "vmlinux",
        crate::input::Kind::Vmlinux,
        "pass the running kernel's vmlinux (in its build directory) with -v/--vmlinux",
    )?;
    let file = object::read::File::parse(&*bytes).map_err(|e| {
        fail_hint(
            Status::Input,
            format!("{} is not an ELF file ({e})", path.display()),
            "pass the uncompressed vmlinux from the kernel's build directory, not bzImage",
        )
    })?;
    if file.section_by_name(".symtab").is_none() {
        return Err(fail_hint(
            Status::Input,
            format!("{} is stripped (no .symtab)", path.display()),
            "pass the unstripped vmlinux from the kernel's build directory (or its debug package)",
        ));
    }
    let mut compilers = Vec::new();
    if let Some(s) = file.section_by_name(".comment") {
        if let Ok(data) = s.data() {
            for part in data.split(|b| *b == 0) {
                let s = String::from_utf8_lossy(part).trim().to_string();
                if (s.starts_with("GCC:") || s.contains("clang version")) && !compilers.contains(&s)
                {
                    compilers.push(s);
                }
            }
        }
    }
    drop(file);
    Ok(VmlinuxInfo {
        path: path.to_path_buf(),
        bytes,
        compilers,
    })
}

/// `gcc (Debian 12.2.0-14) 12.2.0` and `GCC: (Debian 12.2.0-14) 12.2.0` -> `(Debian 12.2.0-14)
/// 12.2.0`: the part both spellings share.
///
/// clang writes its whole version line (`Debian clang version 19.1.7 (3~deb12u1)`) both in
/// `--version` and in `.comment`: its identity is that line from `clang version` on.
pub fn compiler_identity(s: &str) -> String {
    let s = s.trim().trim_matches('"');
    if let Some(i) = s.find("clang version") {
        return s[i..].trim().to_string();
    }
    match s.find('(') {
        Some(i) => s[i..].trim().to_string(),
        None => s
            .strip_prefix("GCC:")
            .or_else(|| s.strip_prefix("gcc"))
            .unwrap_or(s)
            .trim()
            .to_string(),
    }
}

/// The compiler lp-build will use must be the one that built the running kernel.
pub fn check_compiler(vmlinux: &VmlinuxInfo, config_cc: Option<&str>, cc_line: &str) -> Result<()> {
    let ours = compiler_identity(cc_line);
    let recorded: Vec<String> = if vmlinux.compilers.is_empty() {
        config_cc
            .map(|c| vec![c.trim_matches('"').to_string()])
            .unwrap_or_default()
    } else {
        vmlinux.compilers.clone()
    };
    if recorded.is_empty() {
        return Ok(()); // nothing recorded: cannot check
    }
    if recorded.iter().any(|r| compiler_identity(r) == ours) {
        return Ok(());
    }
    Err(fail_hint(
        Status::Input,
        format!(
            "compiler mismatch: {} was built by `{}` but the compiler here is `{cc_line}`",
            vmlinux.path.display(),
            recorded.join("`, `")
        ),
        "install the compiler the running kernel was built with (a different compiler changes \
         code that the patch does not touch), or pass --skip-compiler-check at your own risk",
    ))
}

/// The user's kernel build directory (the running kernel's): where vmlinux, Module.symvers and
/// the modules are.
#[derive(Debug, Clone)]
pub struct UserBuild {
    /// The directory.
    pub dir: PathBuf,
    /// `include/config/kernel.release`, when present.
    pub release: Option<String>,
}

/// Checks the build directory of vmlinux.
pub fn check_user_build(dir: &Path) -> Result<UserBuild> {
    let symvers = dir.join("Module.symvers");
    if !symvers.is_file() {
        return Err(fail_hint(
            Status::Input,
            format!("{} has no Module.symvers", dir.display()),
            "the livepatch module is built against the running kernel's build directory (the \
             directory of -v/--vmlinux): finish that build with `make modules`",
        ));
    }
    let release = fs::read_to_string(dir.join("include/config/kernel.release"))
        .ok()
        .map(|s| s.trim().to_string());
    Ok(UserBuild {
        dir: dir.to_path_buf(),
        release,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        let mk = "# SPDX\nVERSION = 6\nPATCHLEVEL = 12\nSUBLEVEL = 57\nEXTRAVERSION =\nNAME = Baby Opossum Posse\n";
        assert_eq!(parse_version(mk).as_deref(), Some("6.12.57"));
        let mk = "VERSION = 6\nPATCHLEVEL = 1\nSUBLEVEL = 0\nEXTRAVERSION = -rc3\n";
        assert_eq!(parse_version(mk).as_deref(), Some("6.1.0-rc3"));
        assert_eq!(parse_version("all:\n"), None);
    }

    #[test]
    fn configs() {
        let c = parse_config(
            "#\n# CONFIG_MODULE_SIG is not set\nCONFIG_LIVEPATCH=y\nCONFIG_CC_VERSION_TEXT=\"gcc (Debian 12.2.0-14) 12.2.0\"\nCONFIG_MODULES=y\nCONFIG_FUNCTION_TRACER=y\n",
        );
        assert_eq!(c.get("CONFIG_LIVEPATCH").map(String::as_str), Some("y"));
        assert!(!c.contains_key("CONFIG_MODULE_SIG"));
        let e = check_config(&c, Path::new(".config")).unwrap_err();
        let msg = crate::exit::one_line(&e);
        assert!(msg.contains("CONFIG_DYNAMIC_FTRACE=y"), "{msg}");
        assert!(!msg.contains("CONFIG_LIVEPATCH=y"), "{msg}");
        assert_eq!(crate::exit::status_of(&e), Status::Input);
    }

    #[test]
    fn compilers() {
        assert_eq!(
            compiler_identity("gcc (Debian 12.2.0-14+deb12u1) 12.2.0"),
            compiler_identity("GCC: (Debian 12.2.0-14+deb12u1) 12.2.0")
        );
        assert_ne!(
            compiler_identity("gcc (Debian 12.2.0-14+deb12u1) 12.2.0"),
            compiler_identity("GCC: (Debian 12.2.0-14) 12.2.0")
        );
        let v = VmlinuxInfo {
            path: "vmlinux".into(),
            bytes: vec![],
            compilers: vec!["GCC: (GNU) 13.1.0".into()],
        };
        let e = check_compiler(&v, None, "gcc (GNU) 12.2.0").unwrap_err();
        assert!(crate::exit::one_line(&e).contains("compiler mismatch"));
        assert!(check_compiler(&v, None, "gcc (GNU) 13.1.0").is_ok());
        // clang: the whole version, not just its parenthesis (Debian's revision).
        let clang = "Debian clang version 19.1.7 (3~deb12u1)";
        assert_eq!(compiler_identity(clang), "clang version 19.1.7 (3~deb12u1)");
        assert_ne!(
            compiler_identity(clang),
            compiler_identity("Debian clang version 16.0.6 (3~deb12u1)")
        );
        let v = VmlinuxInfo {
            compilers: vec![clang.into()],
            ..v
        };
        assert!(check_compiler(&v, None, clang).is_ok());
        assert!(check_compiler(&v, None, "Debian clang version 16.0.6 (15)").is_err());
    }

    #[test]
    fn trees_built_in_place_are_seen() {
        let t = tempfile::tempdir().unwrap();
        assert!(!built_in_place(t.path()));
        fs::write(t.path().join(".config"), "CONFIG_X=y\n").unwrap();
        assert!(built_in_place(t.path()));
    }

    #[test]
    fn not_elf_vmlinux() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("vmlinux");
        fs::write(&p, b"MZ not elf").unwrap();
        let e = check_vmlinux(&p).unwrap_err();
        assert!(crate::exit::one_line(&e).contains("not an ELF file"));
        let e = check_vmlinux(&t.path().join("missing")).unwrap_err();
        assert_eq!(crate::exit::status_of(&e), Status::Input);
    }
}
