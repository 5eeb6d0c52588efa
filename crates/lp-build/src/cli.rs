//! The command line (clap derive), in the spirit of kpatch-build's flags.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// Turns a kernel source patch into a livepatch module.
///
/// In a kernel source tree: `lp-build --patch fix.diff -v /path/to/build/vmlinux` builds
/// `livepatch-fix.ko` for the running kernel whose build directory holds that vmlinux.
#[derive(Debug, Parser)]
#[command(
    name = "lp-build",
    version,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    after_help = "Exit statuses: 0 module produced, 1 internal error, 2 usage error, 3 refused \
                  (cannot be live-patched safely), 4 no functional change, 5 bad input or I/O \
                  error, 6 build failure, 130 interrupted. See crates/lp-build/README.md."
)]
pub struct Cli {
    /// Inspect single objects or modules instead of building.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Build options (the default mode).
    #[command(flatten)]
    pub build: BuildArgs,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Diff one object pair (ORIG.o PATCHED.o) and print what a livepatch would replace.
    Diff(DiffArgs),
    /// Check a livepatch module against the kernel's loader rules.
    Check(CheckArgs),
}

/// Where to stop (debugging aid).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
pub enum StopAfter {
    /// After checking the tree and the patches.
    Check,
    /// After the original and patched builds (the tree is restored).
    Build,
    /// After diffing the objects.
    Diff,
}

/// `lp-build --patch ...`.
#[derive(Debug, Args, Clone, Default)]
pub struct BuildArgs {
    /// A patch file (unified diff, -p1); repeat for several: they make one module, applied in
    /// order.
    #[arg(long = "patch", short = 'p', value_name = "FILE")]
    pub patches: Vec<PathBuf>,
    /// The kernel source tree [default: the current directory].
    #[arg(short = 's', long = "sourcedir", value_name = "DIR")]
    pub sourcedir: Option<PathBuf>,
    /// The running kernel's configuration [default: <sourcedir>/.config, else the .config beside
    /// vmlinux].
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The running kernel's vmlinux; its directory is that kernel's build directory (with
    /// Module.symvers and the modules' .ko) [default: /lib/modules/$(uname -r)/build/vmlinux].
    #[arg(short = 'v', long = "vmlinux", value_name = "FILE")]
    pub vmlinux: Option<PathBuf>,
    /// Parallel make jobs [default: the number of CPUs].
    #[arg(short = 'j', long = "jobs", value_name = "N")]
    pub jobs: Option<std::num::NonZeroUsize>,
    /// The patch name: the module is `livepatch-<NAME>.ko` [default: the first patch file's
    /// name without extension].
    #[arg(short = 'n', long = "name", value_name = "NAME")]
    pub name: Option<String>,
    /// Where to write the module [default: the current directory].
    #[arg(short = 'o', long = "output", value_name = "DIR")]
    pub output: Option<PathBuf>,
    /// Do not replace the patches already loaded (no atomic replace; replace is the default).
    #[arg(short = 'R', long = "non-replace", visible_alias = "no-replace")]
    pub non_replace: bool,
    /// Mark the patch cumulative: it contains every earlier patch.
    #[arg(long)]
    pub cumulative: bool,
    /// The patch's version number (module identity for lpctl).
    #[arg(long = "patch-version", value_name = "N", default_value_t = 1)]
    pub patch_version: u32,
    /// Sign the module with this private key (PEM) [default, for a kernel with
    /// CONFIG_MODULE_SIG: the build's own CONFIG_MODULE_SIG_KEY, when it is there].
    #[arg(long = "sign-key", value_name = "KEY.pem")]
    pub sign_key: Option<PathBuf>,
    /// The X.509 certificate of --sign-key [default: the key file, which then holds both].
    #[arg(long = "sign-cert", value_name = "CERT", requires = "sign_key")]
    pub sign_cert: Option<PathBuf>,
    /// Leave the module unsigned, also for a kernel that checks signatures.
    #[arg(long = "no-sign", conflicts_with = "sign_key")]
    pub no_sign: bool,
    /// Keep the temporary directory (objects, generated module sources, logs) and print its
    /// path.
    #[arg(long = "keep-tmp")]
    pub keep_tmp: bool,
    /// Print every build line and debug logs.
    #[arg(short = 'd', long = "debug")]
    pub debug: bool,
    /// Also write a JSON report `<module>.json` beside the module.
    #[arg(long)]
    pub json: bool,
    /// Do not compare the compiler with the one that built vmlinux (dangerous).
    #[arg(long = "skip-compiler-check")]
    pub skip_compiler_check: bool,
    /// Stop after a phase (debugging; the tree is restored as always).
    #[arg(long = "stop-after", value_enum, value_name = "PHASE")]
    pub stop_after: Option<StopAfter>,
}

/// `lp-build diff`.
#[derive(Debug, Args, Clone)]
pub struct DiffArgs {
    /// The original object.
    #[arg(value_name = "ORIG.o")]
    pub orig: PathBuf,
    /// The patched object.
    #[arg(value_name = "PATCHED.o")]
    pub patched: PathBuf,
    /// The running object's symbol table: vmlinux or the module's .ko [default: ORIG.o].
    #[arg(long, value_name = "FILE")]
    pub parent: Option<PathBuf>,
    /// Module.symvers of the running kernel: which symbols vmlinux exports.
    #[arg(long, value_name = "FILE")]
    pub symvers: Option<PathBuf>,
    /// The livepatch object name: `vmlinux` or the module name [default: `vmlinux`, or the
    /// name of a --parent .ko].
    #[arg(long = "object-name", value_name = "NAME")]
    pub object_name: Option<String>,
    /// A special section's entry size, e.g. `__jump_table=16` (repeatable).
    #[arg(long = "entry-size", value_name = "SECTION=BYTES", value_parser = parse_entry_size)]
    pub entry_sizes: Vec<(String, u64)>,
    /// The kernel runs objtool on linked modules (CONFIG_X86_KERNEL_IBT or LTO, 5.19+): leave
    /// objtool's output out of the patch object.
    #[arg(long = "objtool-on-module")]
    pub objtool_on_module: bool,
    /// Show why each changed function counts as changed (instruction listings).
    #[arg(long)]
    pub explain: bool,
    /// Write the patch object here (and its record to OUT.o.json).
    #[arg(short = 'o', long, value_name = "OUT.o")]
    pub output: Option<PathBuf>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `lp-build check`.
#[derive(Debug, Args, Clone)]
pub struct CheckArgs {
    /// The module.
    #[arg(value_name = "FILE.ko")]
    pub module: PathBuf,
    /// Module.symvers of the target kernel: check that undefined symbols are exported and, for a
    /// kernel built with CONFIG_MODVERSIONS, that `__versions` carries their CRCs.
    #[arg(long, value_name = "FILE")]
    pub symvers: Option<PathBuf>,
    /// vmlinux of the target kernel: check the module's vermagic against the kernel's and the
    /// positions of `.klp.sym.vmlinux.*` symbols against its symbol table.
    #[arg(long, value_name = "FILE")]
    pub vmlinux: Option<PathBuf>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `SECTION=BYTES`.
pub fn parse_entry_size(s: &str) -> Result<(String, u64), String> {
    let (name, size) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}`: expected SECTION=BYTES, e.g. __jump_table=16"))?;
    if name.is_empty() {
        return Err(format!("`{s}`: empty section name"));
    }
    let size: u64 = size
        .parse()
        .map_err(|_| format!("`{s}`: `{size}` is not a number of bytes"))?;
    if size == 0 {
        return Err(format!("`{s}`: an entry size cannot be 0"));
    }
    Ok((name.to_string(), size))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("lp-build").chain(args.iter().copied()))
    }

    #[test]
    fn definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn build_mode() {
        let c = parse(&[
            "--patch",
            "a.diff",
            "--patch",
            "b.diff",
            "-s",
            "/src",
            "-c",
            "/cfg",
            "-v",
            "/b/vmlinux",
            "-j",
            "4",
            "-n",
            "fix",
            "-o",
            "/out",
            "-R",
            "--cumulative",
            "--patch-version",
            "3",
            "--keep-tmp",
            "-d",
            "--json",
        ])
        .unwrap();
        assert!(c.command.is_none());
        let b = c.build;
        assert_eq!(
            b.patches,
            [PathBuf::from("a.diff"), PathBuf::from("b.diff")]
        );
        assert_eq!(b.sourcedir, Some(PathBuf::from("/src")));
        assert_eq!(b.config, Some(PathBuf::from("/cfg")));
        assert_eq!(b.vmlinux, Some(PathBuf::from("/b/vmlinux")));
        assert_eq!(b.jobs.map(|j| j.get()), Some(4));
        assert_eq!(b.name.as_deref(), Some("fix"));
        assert!(b.non_replace && b.cumulative && b.keep_tmp && b.debug && b.json);
        assert_eq!(b.patch_version, 3);

        let c = parse(&[
            "--patch",
            "a.diff",
            "--sign-key",
            "k.pem",
            "--sign-cert",
            "c.x509",
        ])
        .unwrap();
        assert_eq!(c.build.sign_key, Some(PathBuf::from("k.pem")));
        assert_eq!(c.build.sign_cert, Some(PathBuf::from("c.x509")));
        assert!(parse(&["--patch", "a.diff", "--sign-cert", "c.x509"]).is_err());
        assert!(parse(&["--patch", "a.diff", "--sign-key", "k", "--no-sign"]).is_err());
        let c = parse(&["--patch", "a.diff", "--no-replace"]).unwrap();
        assert!(c.build.non_replace);
        let c = parse(&["--patch", "a.diff"]).unwrap();
        assert!(!c.build.non_replace);
        assert_eq!(c.build.patch_version, 1);
        assert_eq!(
            parse(&["--patch", "a.diff", "--stop-after", "build"])
                .unwrap()
                .build
                .stop_after,
            Some(StopAfter::Build)
        );
    }

    #[test]
    fn usage_errors() {
        for bad in [
            &["--patch"][..],
            &["--patch", "a", "-j", "0"],
            &["--patch", "a", "--patch-version", "x"],
            &["--bogus"],
            &["diff", "only-one.o"],
            &["diff", "a.o", "b.o", "--entry-size", "x"],
            &["diff", "a.o", "b.o", "--entry-size", "__jump_table=0"],
            &["--patch", "a", "check", "x.ko"],
        ] {
            let e = parse(bad).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{bad:?}: {e}");
        }
    }

    #[test]
    fn subcommands() {
        let c = parse(&[
            "diff",
            "o.o",
            "p.o",
            "--parent",
            "vmlinux",
            "--symvers",
            "Module.symvers",
            "--object-name",
            "vmlinux",
            "--entry-size",
            "__jump_table=16",
            "--entry-size",
            ".altinstructions=14",
            "--output",
            "out.o",
            "--json",
        ])
        .unwrap();
        let Some(Command::Diff(d)) = c.command else {
            panic!("not diff")
        };
        assert_eq!(
            d.entry_sizes,
            [
                ("__jump_table".to_string(), 16),
                (".altinstructions".to_string(), 14)
            ]
        );
        assert_eq!(d.output, Some(PathBuf::from("out.o")));
        assert!(d.json);
        let c = parse(&["check", "x.ko", "--symvers", "S", "--vmlinux", "V"]).unwrap();
        let Some(Command::Check(k)) = c.command else {
            panic!("not check")
        };
        assert_eq!(k.vmlinux, Some(PathBuf::from("V")));
    }
}
