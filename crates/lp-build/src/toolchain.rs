//! The kernel's compiler, read from its configuration, and the same compiler on this host.
//!
//! One mechanism for gcc and clang: the configuration says which compiler built the kernel
//! (`CONFIG_CC_IS_CLANG`/`CONFIG_CC_IS_GCC`, `CONFIG_CLANG_VERSION`/`CONFIG_GCC_VERSION`,
//! `CONFIG_CC_VERSION_TEXT`, `CONFIG_LD_IS_LLD` with `CONFIG_LLD_VERSION`, `CONFIG_AS_IS_LLVM`);
//! [`find`] looks for that compiler here under the names it is installed as (`clang-19`, `clang`;
//! the first word of the version text such as `x86_64-linux-gnu-gcc-12`, `gcc-12`, `gcc`), takes
//! the first whose version is the kernel's, and decides the make variables every kbuild run of
//! lp-build gets ([`Toolchain::make_vars`]: `CC`, and for clang `LLVM=-19` or `LLVM=1` as
//! Documentation/kbuild/llvm.rst has it, `LLVM_IAS`). A compiler that is missing, or whose version
//! differs from the kernel's, is refused before anything is built, naming both versions; so is a
//! clang LTO kernel ([`refuse_lto`]), whose objects are LLVM bitcode.

use crate::exit::{fail_hint, Status};
use anyhow::Result;
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

/// The compiler family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// GNU gcc (with GNU binutils).
    Gcc,
    /// clang (with LLVM's tools, or some of GNU's).
    Clang,
}

impl Family {
    /// `gcc` or `clang`.
    pub fn name(self) -> &'static str {
        match self {
            Family::Gcc => "gcc",
            Family::Clang => "clang",
        }
    }
}

/// A compiler or linker version, `major.minor.patch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(pub u32, pub u32, pub u32);

impl Version {
    /// Kconfig's encoding: `190107` -> 19.1.7 (`scripts/cc-version.sh`, `ld-version.sh`).
    pub fn from_kconfig(v: &str) -> Option<Version> {
        let n: u32 = v.trim().parse().ok()?;
        (n > 0).then_some(Version(n / 10000, n / 100 % 100, n % 100))
    }

    /// `19.1.7`, `12.2.0`, `19.1` (patch 0); a trailing non-digit part (`16.0.6-rc1`) is cut.
    pub fn parse_dotted(s: &str) -> Option<Version> {
        let mut parts = s.split('.').map(|p| {
            let digits: String = p.chars().take_while(char::is_ascii_digit).collect();
            digits.parse::<u32>().ok()
        });
        let major = parts.next()??;
        let minor = parts.next()??;
        let patch = parts.next().flatten().unwrap_or(0);
        Some(Version(major, minor, patch))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

/// What a kernel's configuration says about the tools that built it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelCompiler {
    /// gcc unless `CONFIG_CC_IS_CLANG=y`.
    pub family: Family,
    /// `CONFIG_CC_VERSION_TEXT`, unquoted (`Debian clang version 19.1.7 (3~deb12u1)`).
    pub text: Option<String>,
    /// `CONFIG_CLANG_VERSION` or `CONFIG_GCC_VERSION`.
    pub version: Option<Version>,
    /// `CONFIG_LD_IS_LLD=y`: linked with ld.lld.
    pub ld_is_lld: bool,
    /// `CONFIG_LLD_VERSION`.
    pub lld_version: Option<Version>,
    /// `Some(true)`: `CONFIG_AS_IS_LLVM` (clang's integrated assembler), `Some(false)`:
    /// `CONFIG_AS_IS_GNU`; `None`: the configuration does not say (kernels before 5.15).
    pub llvm_as: Option<bool>,
    /// The clang LTO option that is set (`CONFIG_LTO_CLANG_THIN`, `_FULL`, or `CONFIG_LTO_CLANG`).
    pub lto: Option<String>,
}

/// Reads [`KernelCompiler`] from a parsed `.config`.
pub fn from_config(config: &BTreeMap<String, String>) -> KernelCompiler {
    let on = |k: &str| config.get(k).map(String::as_str) == Some("y");
    let family = if on("CONFIG_CC_IS_CLANG") {
        Family::Clang
    } else {
        Family::Gcc
    };
    let version_key = match family {
        Family::Clang => "CONFIG_CLANG_VERSION",
        Family::Gcc => "CONFIG_GCC_VERSION",
    };
    let llvm_as = if on("CONFIG_AS_IS_LLVM") {
        Some(true)
    } else if on("CONFIG_AS_IS_GNU") {
        Some(false)
    } else {
        None
    };
    let lto = [
        "CONFIG_LTO_CLANG_THIN",
        "CONFIG_LTO_CLANG_FULL",
        "CONFIG_LTO_CLANG",
    ]
    .into_iter()
    .find(|k| on(k))
    .map(str::to_string);
    KernelCompiler {
        family,
        text: config
            .get("CONFIG_CC_VERSION_TEXT")
            .map(|t| t.trim().trim_matches('"').to_string())
            .filter(|t| !t.is_empty()),
        version: config
            .get(version_key)
            .and_then(|v| Version::from_kconfig(v)),
        ld_is_lld: on("CONFIG_LD_IS_LLD"),
        lld_version: config
            .get("CONFIG_LLD_VERSION")
            .and_then(|v| Version::from_kconfig(v)),
        llvm_as,
        lto,
    }
}

impl KernelCompiler {
    /// `clang 19.1.7 (`Debian clang version 19.1.7 (3~deb12u1)`)`, for messages.
    pub fn describe(&self) -> String {
        let mut s = self.family.name().to_string();
        if let Some(v) = self.version {
            s.push_str(&format!(" {v}"));
        }
        if let Some(t) = &self.text {
            s.push_str(&format!(" (`{t}`)"));
        }
        s
    }

    /// The names the kernel's compiler may have on this host, most specific first.
    pub fn candidates(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut push = |c: String| {
            if !c.is_empty() && !out.contains(&c) {
                out.push(c);
            }
        };
        match self.family {
            Family::Clang => {
                if let Some(v) = self.version {
                    push(format!("clang-{}", v.0));
                }
                push("clang".into());
            }
            Family::Gcc => {
                // gcc's version text starts with the name it was run as.
                if let Some(first) = self
                    .text
                    .as_deref()
                    .and_then(|t| t.split_whitespace().next())
                {
                    if first.contains("gcc") && !first.contains('/') {
                        push(first.to_string());
                    }
                }
                if let Some(v) = self.version {
                    push(format!("gcc-{}", v.0));
                }
                push("gcc".into());
            }
        }
        out
    }
}

/// The version in the first line of `--version`: clang's `... clang version 19.1.7 (...)`,
/// gcc's `gcc (Debian 12.2.0-14) 12.2.0` (the last word), ld.lld's `... LLD 19.1.7 (...)`.
pub fn version_of(family: Family, line: &str) -> Option<Version> {
    let words: Vec<&str> = line.split_whitespace().collect();
    match family {
        Family::Clang => words
            .windows(2)
            .find(|w| w[0] == "version")
            .and_then(|w| Version::parse_dotted(w[1])),
        Family::Gcc => words.last().and_then(|w| Version::parse_dotted(w)),
    }
}

/// ld.lld's version from `ld.lld --version` (`Debian LLD 19.1.7 (compatible with GNU linkers)`).
pub fn lld_version_of(line: &str) -> Option<Version> {
    let words: Vec<&str> = line.split_whitespace().collect();
    words
        .windows(2)
        .find(|w| w[0] == "LLD")
        .and_then(|w| Version::parse_dotted(w[1]))
}

/// The compiler lp-build runs, and how it tells kbuild so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Toolchain {
    /// The family.
    pub family: Family,
    /// The command kbuild runs as `CC` (`gcc`, `x86_64-linux-gnu-gcc-12`, `clang-19`).
    pub cc: String,
    /// The first line of its `--version` (also in the cache key).
    pub cc_line: String,
    /// The variables besides `CC` (`LLVM=-19`, `LLVM_IAS=1`, or the tools one by one for a
    /// tree whose Makefile takes no `LLVM` suffix).
    vars: Vec<String>,
}

impl Toolchain {
    /// The plain gcc lp-build used before it read the configuration (tests).
    pub fn gcc(cc_line: &str) -> Toolchain {
        Toolchain {
            family: Family::Gcc,
            cc: "gcc".into(),
            cc_line: cc_line.into(),
            vars: Vec::new(),
        }
    }

    /// The make variables of one kbuild run whose `CC` is `cc` (the compiler itself, or the
    /// wrapper in front of it): every make lp-build runs gets these.
    pub fn make_vars(&self, cc: &str) -> Vec<String> {
        let mut v = self.vars.clone();
        v.push(format!("CC={cc}"));
        v
    }

    /// `LLVM=-19 LLVM_IAS=1`: what a user types to build the same way (for messages).
    pub fn describe_vars(&self) -> String {
        self.make_vars(&self.cc).join(" ")
    }
}

/// How [`find`] runs a candidate: `Some(first line of "<name> --version")` when it runs.
pub type Probe<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The probe of the real host: the command is looked up on `PATH` and run with `--version`.
pub fn host_probe(name: &str) -> Option<String> {
    if name.contains('/') {
        return None;
    }
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
        .unwrap_or(false);
    if !on_path {
        return None;
    }
    let out = std::process::Command::new(name)
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    Some(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .unwrap_or("")
            .trim()
            .to_string(),
    )
}

/// A clang LTO kernel is refused before anything is built.
pub fn refuse_lto(k: &KernelCompiler, config_path: &Path) -> Result<()> {
    let Some(option) = &k.lto else {
        return Ok(());
    };
    Err(fail_hint(
        Status::Input,
        format!(
            "{} is a clang LTO kernel ({option}=y), which lp-build cannot patch: its objects are \
             LLVM bitcode until the final link of vmlinux, where the machine code of every file \
             is generated together (and inlined across files), but lp-build's differ compares \
             the machine code of each object, original and patched",
            config_path.display()
        ),
        "live-patch a kernel built without LTO (CONFIG_LTO_NONE=y; with clang or gcc): build and \
         boot one, then run lp-build against it",
    ))
}

/// What [`find`] needs besides the kernel's configuration.
pub struct Host<'a> {
    /// The kernel tree's top Makefile (whether it takes `LLVM=-19`).
    pub makefile: &'a str,
    /// `--skip-compiler-check`: take the first candidate that runs, whatever its version.
    pub skip_version_check: bool,
    /// How candidates are run ([`host_probe`] outside tests).
    pub probe: Probe<'a>,
}

/// Finds the kernel's compiler on this host (see the module documentation). Errors are bad
/// input (status 5), one line naming the kernel's version and the host's.
pub fn find(k: &KernelCompiler, host: &Host) -> Result<Toolchain> {
    let name = k.family.name();
    let candidates = k.candidates();
    let mut found: Vec<(String, String, Option<Version>)> = Vec::new();
    let mut chosen = None;
    for c in &candidates {
        let Some(line) = (host.probe)(c) else {
            continue;
        };
        let v = version_of(k.family, &line);
        let matches = match (k.version, v) {
            (Some(want), Some(have)) => want == have,
            // The configuration names no version (older kernels, hand-made configs): the
            // comparison with vmlinux's .comment is all there is.
            (None, _) => true,
            (Some(_), None) => false,
        };
        if matches {
            chosen = Some((c.clone(), line));
            break;
        }
        found.push((c.clone(), line, v));
    }
    let install = install_hint(k);
    let (cc, cc_line) = match chosen {
        Some(c) => c,
        None if host.skip_version_check && !found.is_empty() => {
            let (c, l, _) = found.swap_remove(0);
            (c, l)
        }
        None if found.is_empty() => {
            return Err(fail_hint(
                Status::Input,
                format!(
                    "the kernel was built with {}, which is not installed here (tried {})",
                    k.describe(),
                    candidates.join(", ")
                ),
                format!(
                    "install the kernel's compiler ({install}): a different one changes code that \
                     the patch does not touch"
                ),
            ));
        }
        None => {
            let here: Vec<String> = found
                .iter()
                .map(|(c, l, v)| {
                    let v = v.map_or("of unknown version".to_string(), |v| v.to_string());
                    format!("`{c}` is {name} {v} (`{l}`)")
                })
                .collect();
            return Err(fail_hint(
                Status::Input,
                format!(
                    "compiler mismatch: the kernel was built with {} but {}",
                    k.describe(),
                    here.join(", ")
                ),
                format!(
                    "install the kernel's compiler ({install}; a different one changes code that \
                     the patch does not touch), or pass --skip-compiler-check at your own risk"
                ),
            ));
        }
    };
    let vars = match k.family {
        Family::Gcc => Vec::new(),
        Family::Clang => clang_vars(k, &cc, host)?,
    };
    Ok(Toolchain {
        family: k.family,
        cc,
        cc_line,
        vars,
    })
}

/// `apt install clang-19 lld-19` and the like.
fn install_hint(k: &KernelCompiler) -> String {
    match (k.family, k.version) {
        (Family::Clang, Some(v)) if k.ld_is_lld => {
            format!("Debian/Ubuntu: apt install clang-{0} lld-{0} llvm-{0}", v.0)
        }
        (Family::Clang, Some(v)) => format!("Debian/Ubuntu: apt install clang-{}", v.0),
        (Family::Gcc, Some(v)) => format!("Debian/Ubuntu: apt install gcc-{}", v.0),
        (f, None) => format!("its {} package", f.name()),
    }
}

/// The make variables of a clang kernel built with `cc` (`clang-19` or `clang`): `LLVM=-19`
/// (or `LLVM=1`) when it was linked with ld.lld, as kbuild's llvm.rst documents; the tools named
/// one by one for a tree whose Makefile takes no suffix (before 5.18); `LLVM_IAS` as the
/// configuration says. ld.lld must be there, of the kernel's version.
fn clang_vars(k: &KernelCompiler, cc: &str, host: &Host) -> Result<Vec<String>> {
    let suffix = cc.strip_prefix("clang").unwrap_or("");
    let mut vars = Vec::new();
    if k.ld_is_lld {
        let ld = format!("ld.lld{suffix}");
        let Some(line) = (host.probe)(&ld) else {
            let v = k.lld_version.map_or(String::new(), |v| format!(" {v}"));
            return Err(fail_hint(
                Status::Input,
                format!(
                    "the kernel was linked with ld.lld{v} (CONFIG_LD_IS_LLD), which is not \
                     installed here (tried {ld})"
                ),
                format!("install it ({})", install_hint(k)),
            ));
        };
        let have = lld_version_of(&line);
        if let (Some(want), false) = (k.lld_version, host.skip_version_check) {
            if have != Some(want) {
                let have = have.map_or("of unknown version".to_string(), |v| v.to_string());
                return Err(fail_hint(
                    Status::Input,
                    format!(
                        "linker mismatch: the kernel was linked with ld.lld {want} but `{ld}` \
                         is {have} (`{line}`)"
                    ),
                    format!(
                        "install the kernel's linker ({}), or pass --skip-compiler-check at \
                         your own risk",
                        install_hint(k)
                    ),
                ));
            }
        }
        // `LLVM=` also takes the archiver, nm, objcopy and strip from LLVM (package llvm-N,
        // apart from clang-N and lld-N): without them the build stops half-way, in objtool.
        let ar = format!("llvm-ar{suffix}");
        if (host.probe)(&ar).is_none() {
            return Err(fail_hint(
                Status::Input,
                format!(
                    "the kernel was built with LLVM's binary utilities (LLVM=), which are not \
                     installed here (tried {ar})"
                ),
                format!("install them ({})", install_hint(k)),
            ));
        }
        if suffix.is_empty() {
            vars.push("LLVM=1".to_string());
        } else if host.makefile.contains("LLVM_SUFFIX") {
            vars.push(format!("LLVM={suffix}"));
        } else {
            vars.push("LLVM=1".to_string());
            for tool in [
                "LD=ld.lld",
                "AR=llvm-ar",
                "NM=llvm-nm",
                "OBJCOPY=llvm-objcopy",
                "OBJDUMP=llvm-objdump",
                "READELF=llvm-readelf",
                "STRIP=llvm-strip",
                "HOSTCC=clang",
                "HOSTCXX=clang++",
            ] {
                vars.push(format!("{tool}{suffix}"));
            }
        }
    }
    match k.llvm_as {
        Some(true) => vars.push("LLVM_IAS=1".into()),
        Some(false) => vars.push("LLVM_IAS=0".into()),
        None => {}
    }
    Ok(vars)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> BTreeMap<String, String> {
        crate::tree::parse_config(text)
    }

    const CLANG19: &str = "CONFIG_CC_VERSION_TEXT=\"Debian clang version 19.1.7 (3~deb12u1)\"\n\
        CONFIG_CC_IS_CLANG=y\nCONFIG_CLANG_VERSION=190107\nCONFIG_LD_IS_LLD=y\n\
        CONFIG_LLD_VERSION=190107\nCONFIG_AS_IS_LLVM=y\nCONFIG_AS_VERSION=190107\n";
    const GCC12: &str =
        "CONFIG_CC_VERSION_TEXT=\"x86_64-linux-gnu-gcc-12 (Debian 12.2.0-14+deb12u1) \
        12.2.0\"\nCONFIG_CC_IS_GCC=y\nCONFIG_GCC_VERSION=120200\nCONFIG_LD_IS_BFD=y\n\
        CONFIG_AS_IS_GNU=y\n";

    fn host<'a>(probe: Probe<'a>) -> Host<'a> {
        Host {
            makefile: "LLVM_SUFFIX := $(LLVM)\n",
            skip_version_check: false,
            probe,
        }
    }

    fn one_line(r: Result<Toolchain>) -> (Status, String) {
        let e = r.unwrap_err();
        (crate::exit::status_of(&e), crate::exit::one_line(&e))
    }

    #[test]
    fn versions() {
        assert_eq!(Version::from_kconfig("190107"), Some(Version(19, 1, 7)));
        assert_eq!(Version::from_kconfig("120200"), Some(Version(12, 2, 0)));
        assert_eq!(Version::from_kconfig("0"), None);
        assert_eq!(Version::from_kconfig("x"), None);
        let clang = "Debian clang version 19.1.7 (3~deb12u1)";
        assert_eq!(version_of(Family::Clang, clang), Some(Version(19, 1, 7)));
        let gcc = "gcc (Debian 12.2.0-14+deb12u1) 12.2.0";
        assert_eq!(version_of(Family::Gcc, gcc), Some(Version(12, 2, 0)));
        assert_eq!(version_of(Family::Gcc, "gcc"), None);
        let lld = "Debian LLD 16.0.6 (compatible with GNU linkers)";
        assert_eq!(lld_version_of(lld), Some(Version(16, 0, 6)));
        assert_eq!(Version::parse_dotted("16.0.6-rc1"), Some(Version(16, 0, 6)));
        assert_eq!(Version::parse_dotted("19"), None);
    }

    #[test]
    fn the_configuration_names_the_compiler() {
        let k = from_config(&config(CLANG19));
        assert_eq!(k.family, Family::Clang);
        assert_eq!(k.version, Some(Version(19, 1, 7)));
        assert!(k.ld_is_lld);
        assert_eq!(k.llvm_as, Some(true));
        assert_eq!(k.lto, None);
        assert_eq!(k.candidates(), ["clang-19", "clang"]);
        let g = from_config(&config(GCC12));
        assert_eq!(g.family, Family::Gcc);
        assert_eq!(g.candidates(), ["x86_64-linux-gnu-gcc-12", "gcc-12", "gcc"]);
        // A configuration without any of it (a hand-made one) is gcc of unknown version.
        let none = from_config(&config("CONFIG_MODULES=y\n"));
        assert_eq!(none.family, Family::Gcc);
        assert_eq!(none.version, None);
        assert_eq!(none.candidates(), ["gcc"]);
        let lto = from_config(&config(&format!("{CLANG19}CONFIG_LTO_CLANG_THIN=y\n")));
        assert_eq!(lto.lto.as_deref(), Some("CONFIG_LTO_CLANG_THIN"));
    }

    #[test]
    fn clang_with_its_suffix_gets_llvm_suffix() {
        let probe = |c: &str| match c {
            "clang-19" => Some("Debian clang version 19.1.7 (3~deb12u1)".to_string()),
            "ld.lld-19" => Some("Debian LLD 19.1.7 (compatible with GNU linkers)".to_string()),
            "llvm-ar-19" => Some("Debian LLVM version 19.1.7".to_string()),
            "clang" => Some("Debian clang version 16.0.6 (15)".to_string()),
            _ => None,
        };
        let t = find(&from_config(&config(CLANG19)), &host(&probe)).unwrap();
        assert_eq!(t.cc, "clang-19");
        assert_eq!(
            t.make_vars("W __cc clang-19"),
            ["LLVM=-19", "LLVM_IAS=1", "CC=W __cc clang-19"]
        );
        // A tree whose Makefile takes no suffix gets every tool by name.
        let old = Host {
            makefile: "ifneq ($(LLVM),)\nCC = clang\n",
            ..host(&probe)
        };
        let t = find(&from_config(&config(CLANG19)), &old).unwrap();
        let vars = t.make_vars("clang-19");
        assert!(vars.contains(&"LD=ld.lld-19".to_string()), "{vars:?}");
        assert!(vars.contains(&"AR=llvm-ar-19".to_string()), "{vars:?}");
        assert_eq!(vars.first().map(String::as_str), Some("LLVM=1"));
    }

    #[test]
    fn unsuffixed_clang_of_the_right_version_is_llvm_1() {
        let probe = |c: &str| match c {
            "clang" => Some("clang version 19.1.7".to_string()),
            "ld.lld" => Some("LLD 19.1.7".to_string()),
            "llvm-ar" => Some("LLVM version 19.1.7".to_string()),
            _ => None,
        };
        let t = find(&from_config(&config(CLANG19)), &host(&probe)).unwrap();
        assert_eq!(t.cc, "clang");
        assert_eq!(t.describe_vars(), "LLVM=1 LLVM_IAS=1 CC=clang");
        // clang with GNU ld and GNU as: CC and LLVM_IAS=0 only.
        let bfd = "CONFIG_CC_IS_CLANG=y\nCONFIG_CLANG_VERSION=190107\nCONFIG_LD_IS_BFD=y\n\
                   CONFIG_AS_IS_GNU=y\n";
        let t = find(&from_config(&config(bfd)), &host(&probe)).unwrap();
        assert_eq!(t.describe_vars(), "LLVM_IAS=0 CC=clang");
    }

    #[test]
    fn gcc_gets_cc_only_and_prefers_the_name_it_was_built_as() {
        let probe = |c: &str| match c {
            "x86_64-linux-gnu-gcc-12" | "gcc" => {
                Some("gcc (Debian 12.2.0-14+deb12u1) 12.2.0".to_string())
            }
            _ => None,
        };
        let t = find(&from_config(&config(GCC12)), &host(&probe)).unwrap();
        assert_eq!(t.cc, "x86_64-linux-gnu-gcc-12");
        assert_eq!(t.make_vars("gcc"), ["CC=gcc"]);
        let only_gcc = |c: &str| (c == "gcc").then(|| "gcc (GCC) 12.2.0".to_string());
        let t = find(&from_config(&config(GCC12)), &host(&only_gcc)).unwrap();
        assert_eq!(t.cc, "gcc");
    }

    #[test]
    fn a_mismatch_names_both_versions() {
        let probe = |c: &str| match c {
            "clang" => Some("Debian clang version 16.0.6 (15)".to_string()),
            "ld.lld" => Some("Debian LLD 16.0.6".to_string()),
            "llvm-ar" => Some("Debian LLVM version 16.0.6".to_string()),
            _ => None,
        };
        let (status, msg) = one_line(find(&from_config(&config(CLANG19)), &host(&probe)));
        assert_eq!(status, Status::Input);
        assert!(msg.contains("compiler mismatch"), "{msg}");
        assert!(msg.contains("clang 19.1.7"), "{msg}");
        assert!(msg.contains("16.0.6"), "{msg}");
        // --skip-compiler-check takes it anyway.
        let skip = Host {
            skip_version_check: true,
            ..host(&probe)
        };
        let t = find(&from_config(&config(CLANG19)), &skip).unwrap();
        assert_eq!(t.cc, "clang");
        // gcc the same way.
        let gcc13 = |c: &str| (c == "gcc").then(|| "gcc (Debian 13.2.0-4) 13.2.0".to_string());
        let (_, msg) = one_line(find(&from_config(&config(GCC12)), &host(&gcc13)));
        assert!(
            msg.contains("gcc 12.2.0") && msg.contains("13.2.0"),
            "{msg}"
        );
    }

    #[test]
    fn missing_compiler_and_linker_are_named() {
        let nothing = |_: &str| None;
        let (status, msg) = one_line(find(&from_config(&config(CLANG19)), &host(&nothing)));
        assert_eq!(status, Status::Input);
        assert!(msg.contains("clang 19.1.7"), "{msg}");
        assert!(msg.contains("not installed"), "{msg}");
        assert!(msg.contains("clang-19, clang"), "{msg}");
        let no_lld =
            |c: &str| (c == "clang-19").then(|| "Debian clang version 19.1.7 (3)".to_string());
        let (_, msg) = one_line(find(&from_config(&config(CLANG19)), &host(&no_lld)));
        assert!(
            msg.contains("ld.lld 19.1.7") && msg.contains("ld.lld-19"),
            "{msg}"
        );
        let old_lld = |c: &str| match c {
            "clang-19" => Some("Debian clang version 19.1.7 (3)".to_string()),
            "ld.lld-19" => Some("Debian LLD 18.1.8".to_string()),
            _ => None,
        };
        let (_, msg) = one_line(find(&from_config(&config(CLANG19)), &host(&old_lld)));
        assert!(msg.contains("19.1.7") && msg.contains("18.1.8"), "{msg}");
        // clang and ld.lld without LLVM's binary utilities (llvm-N): kbuild's LLVM= needs
        // llvm-ar, which objtool's build reaches first.
        let no_llvm = |c: &str| match c {
            "clang-19" => Some("Debian clang version 19.1.7 (3)".to_string()),
            "ld.lld-19" => Some("Debian LLD 19.1.7".to_string()),
            _ => None,
        };
        let e = find(&from_config(&config(CLANG19)), &host(&no_llvm)).unwrap_err();
        assert_eq!(crate::exit::status_of(&e), Status::Input);
        let msg = crate::exit::one_line(&e);
        assert!(msg.contains("llvm-ar-19"), "{msg}");
        let hint = crate::exit::hint_of(&e).unwrap_or_default();
        assert!(
            hint.contains("apt install clang-19 lld-19 llvm-19"),
            "{hint}"
        );
    }

    #[test]
    fn lto_is_refused_with_the_reason() {
        let k = from_config(&config(&format!("{CLANG19}CONFIG_LTO_CLANG_FULL=y\n")));
        let e = refuse_lto(&k, Path::new("/b/.config")).unwrap_err();
        assert_eq!(crate::exit::status_of(&e), Status::Input);
        let msg = crate::exit::one_line(&e);
        assert!(msg.contains("CONFIG_LTO_CLANG_FULL=y"), "{msg}");
        assert!(msg.contains("bitcode"), "{msg}");
        assert!(refuse_lto(&from_config(&config(CLANG19)), Path::new("c")).is_ok());
    }
}
