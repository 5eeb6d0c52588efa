//! The command line (clap derive), in the spirit of kpatch-build's and klp-build's flags.
//!
//! Patch files are positional (`lp-build fix.patch other.patch`) or given with `--patch`; both
//! kinds are merged in command-line order by [`parse_from`]. A first positional word that is a
//! subcommand's name (`diff`, `check`, and the hidden `completions`, `man`, `hooks`) selects
//! that subcommand: a patch file with such a name is given as `./diff`, after `--`
//! (`lp-build -- diff`), or with `--patch diff`. Once a patch file has been named, later
//! positional words are all patch files.

use crate::exit::{fail_hint, Status};
use clap::{ArgAction, Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use std::ffi::OsString;
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
    override_usage = "lp-build [OPTIONS] PATCH...\n       lp-build [OPTIONS] --patch PATCH...\n       \
                      lp-build diff ORIG.o PATCHED.o [OPTIONS]\n       lp-build check FILE.ko [OPTIONS]",
    after_help = "A patch file named like a subcommand (diff, check) is given as ./diff or with \
                  --patch.\n\nExit statuses: 0 module produced, 1 internal error, 2 usage error, 3 refused \
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
    /// Print a shell completion script for lp-build (bash, zsh or fish).
    #[command(hide = true)]
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print lp-build's man page, or write the pages of lp-build and its subcommands into DIR.
    #[command(hide = true)]
    Man {
        /// Write `lp-build.1`, `lp-build-diff.1` and `lp-build-check.1` here instead.
        #[arg(value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Write the hooks headers built into this binary (lp-hooks.h, kpatch-macros.h, ...) into
    /// DIR, or list them.
    #[command(hide = true)]
    Hooks {
        /// The directory to write them into (created when missing).
        #[arg(value_name = "DIR")]
        dir: Option<PathBuf>,
    },
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
    /// Patch files (unified diffs, -p1): they make one module, applied in the order given.
    #[arg(value_name = "PATCH")]
    pub patch_args: Vec<PathBuf>,
    // After [`parse_from`] this holds every patch file (positional and `--patch`), in
    // command-line order.
    /// A patch file, like a positional PATCH; repeatable.
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
    /// Build for the distribution kernel of this release (`uname -r` of the target machine),
    /// from its packages: headers, debug vmlinux, modules and source package [default: the
    /// running kernel's release, when /lib/modules/RELEASE/build is a headers package].
    #[arg(short = 'K', long = "kernel-release", value_name = "RELEASE")]
    pub kernel_release: Option<String>,
    /// Where the distribution's packages are installed or extracted (`dpkg -x` of each package
    /// into one directory); absolute symlinks inside it are read relative to it [default: /].
    #[arg(long = "root", value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// For a distribution kernel: compile every object of its configuration once (hours for a
    /// distribution's configuration) instead of only the patched .c files; needed for a patch
    /// that changes a header, whose users kbuild then finds through each object's dependencies.
    #[arg(long = "full-build")]
    pub full_build: bool,
    /// Parallel make jobs [default: the number of CPUs].
    #[arg(short = 'j', long = "jobs", value_name = "N")]
    pub jobs: Option<std::num::NonZeroUsize>,
    /// The patch name: the module is `livepatch-<NAME>.ko`. NAME is 1 to 45 characters of
    /// [A-Za-z0-9_-], used as given (never rewritten) [default: the first patch file's name
    /// without its last extension, under the same rule].
    #[arg(short = 'n', long = "name", value_name = "NAME")]
    pub name: Option<String>,
    /// Where to write the module [default: the current directory].
    #[arg(short = 'o', long = "output", value_name = "DIR")]
    pub output: Option<PathBuf>,
    /// Do not replace the patches already loaded (no atomic replace; replace is the default).
    #[arg(short = 'R', long = "non-replace", visible_alias = "no-replace")]
    pub non_replace: bool,
    /// Mark the patch cumulative: it contains every earlier patch (and so replaces them; refused
    /// with --no-replace).
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
    #[arg(short = 'T', long = "keep-tmp", alias = "skip-cleanup")]
    pub keep_tmp: bool,
    /// Debug output; repeat for more. -d: echo every build line, explain why each function
    /// counts as changed, debug logs, keep the temporary directory (like --keep-tmp); -dd: also
    /// trace logs of every phase and object.
    #[arg(short = 'd', long = "debug", action = ArgAction::Count)]
    pub debug: u8,
    /// Show the first changed instruction of each changed function (from the differ's
    /// instruction listings; klp-build's -f).
    #[arg(short = 'f', long = "show-first-changed")]
    pub show_first_changed: bool,
    /// Allow hunks whose context is up to N lines off (patch's --fuzz). Each fuzzed hunk is
    /// reported with the line where it landed; check them [default: 0, no fuzz].
    #[arg(long = "fuzz", value_name = "N", default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=2))]
    pub fuzz: u8,
    /// Also write a JSON report `<module>.json` beside the module.
    #[arg(long)]
    pub json: bool,
    /// Do not compare the compiler with the one that built vmlinux (dangerous).
    #[arg(long = "skip-compiler-check", alias = "skip-gcc-check")]
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
    /// objtool makes `__mcount_loc` (CONFIG_FTRACE_MCOUNT_USE_OBJTOOL, clang kernels): with
    /// --objtool-on-module, leave it out of the patch object too.
    #[arg(long = "objtool-mcount")]
    pub objtool_mcount: bool,
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
    /// The target kernel's .config: which code tables its module code needs (ORC with
    /// CONFIG_UNWINDER_ORC, `.call_sites` with call depth tracking). Without it they are
    /// inferred from the module (`.orc_header`, `.call_sites`).
    #[arg(short = 'c', long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// The longest NAME for `-n`: module names hold at most 55 characters (the kernel's
/// `MODULE_NAME_LEN` is 56 with the NUL), and `livepatch-` takes 10.
pub const NAME_MAX: usize = lp_elf::klp::KLP_OBJNAME_MAX - MODULE_PREFIX.len();

/// What every module name starts with.
pub const MODULE_PREFIX: &str = "livepatch-";

/// Parses the command line (`args[0]` is the program name). Positional patch files and
/// `--patch` files are merged into [`BuildArgs::patches`] in command-line order; the build
/// options are checked against each other ([`BuildArgs::validate`]).
pub fn parse_from<I, T>(args: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let mut cmd = Cli::command();
    let matches = cmd.try_get_matches_from_mut(args)?;
    let mut cli = Cli::from_arg_matches(&matches).map_err(|e| e.format(&mut cmd))?;
    if cli.command.is_none() {
        let mut all: Vec<(usize, PathBuf)> = Vec::new();
        for (id, values) in [
            ("patch_args", &cli.build.patch_args),
            ("patches", &cli.build.patches),
        ] {
            if let Some(idx) = matches.indices_of(id) {
                all.extend(idx.zip(values.iter().cloned()));
            }
        }
        all.sort_by_key(|(i, _)| *i);
        cli.build.patches = all.into_iter().map(|(_, p)| p).collect();
        cli.build.patch_args.clear();
        // Both anchors keep their scratch files with -d.
        if cli.build.debug > 0 {
            cli.build.keep_tmp = true;
        }
        if let Err(msg) = cli.build.validate() {
            return Err(cmd.error(clap::error::ErrorKind::ArgumentConflict, msg));
        }
    }
    Ok(cli)
}

impl BuildArgs {
    /// Options that contradict each other (a usage error).
    pub fn validate(&self) -> Result<(), String> {
        if self.cumulative && self.non_replace {
            return Err(
                "--cumulative contradicts --no-replace/--non-replace: a cumulative patch \
                        contains every earlier patch and replaces them (atomic replace); drop one \
                        of the two"
                    .to_string(),
            );
        }
        if self.name.is_some() || !self.patches.is_empty() {
            self.module_name().map_err(|e| {
                let hint = crate::exit::hint_of(&e).map(str::to_string);
                let mut msg = crate::exit::one_line(&e);
                if let Some(h) = hint {
                    msg.push_str(&format!("\n  hint: {h}"));
                }
                msg
            })?;
        }
        Ok(())
    }

    /// Whether build lines are echoed and changed functions explained (`-d`).
    pub fn debug(&self) -> bool {
        self.debug > 0
    }

    /// The module name: `livepatch-NAME` with NAME from `-n`, else the first patch file's name
    /// without its last extension (`fix.patch` -> `livepatch-fix`). NAME is never rewritten: a
    /// NAME that is not 1 to [`NAME_MAX`] characters of `[A-Za-z0-9_-]` is refused, so two
    /// different names always give two different module files. (The kernel itself treats `-`
    /// and `_` in module names as the same character: `livepatch-a-b` loads as
    /// `livepatch_a_b`, like `livepatch-a_b`.)
    pub fn module_name(&self) -> anyhow::Result<String> {
        match &self.name {
            Some(n) => {
                check_name(n).map_err(|why| {
                    fail_hint(
                        Status::Usage,
                        format!("-n/--name `{n}`: {why}"),
                        name_hint(),
                    )
                })?;
                Ok(format!("{MODULE_PREFIX}{n}"))
            }
            None => {
                let first = self.patches.first().ok_or_else(|| {
                    fail_hint(Status::Usage, "no patch given", "usage: lp-build PATCH...")
                })?;
                let stem = first
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                check_name(&stem).map_err(|why| {
                    fail_hint(
                        Status::Usage,
                        format!(
                            "the patch file name `{}` does not make a module name: `{stem}`: \
                             {why}",
                            first.display()
                        ),
                        format!("pass -n NAME to name the module; {}", name_hint()),
                    )
                })?;
                Ok(format!("{MODULE_PREFIX}{stem}"))
            }
        }
    }
}

fn name_hint() -> String {
    format!(
        "a name is 1 to {NAME_MAX} letters, digits, `_` or `-`; the module is `{MODULE_PREFIX}NAME.ko`"
    )
}

/// Why `name` cannot be a patch name (see [`BuildArgs::module_name`]).
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the name is empty".to_string());
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
    {
        return Err(format!(
            "{c:?} is not allowed in a module name (only letters, digits, `_` and `-`; lp-build \
             does not rewrite names, so that two names never become one module)"
        ));
    }
    if name.len() > NAME_MAX {
        return Err(format!(
            "{} characters: `{MODULE_PREFIX}NAME` must fit the kernel's 55-character module \
             names, so NAME has at most {NAME_MAX} (lp-build does not cut names, so that two \
             names never become one module)",
            name.len()
        ));
    }
    Ok(())
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
        parse_from(std::iter::once("lp-build").chain(args.iter().copied()))
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
        assert!(!b.non_replace && b.cumulative && b.keep_tmp && b.debug() && b.json);
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
            &["a.patch", "--cumulative", "--no-replace"],
            &["a.patch", "--cumulative", "-R"],
            &["a.patch", "-n", ""],
            &["a.patch", "-n", "fix.v2"],
            &["a.patch", "-n", "fix/2"],
            &["a.patch", "-n", "fix 2"],
            &["a.patch", "-n", "caf\u{e9}"],
            &["a.patch", "-n", &"x".repeat(46)],
            &["fix.v2.patch"],
            &["a.patch", "--fuzz", "3"],
        ] {
            let e = parse(bad).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{bad:?}: {e}");
        }
    }

    #[test]
    fn positional_patches_merge_with_patch_in_order() {
        let c = parse(&["a.patch", "--patch", "b.patch", "c.patch", "-p", "d.patch"]).unwrap();
        assert!(c.command.is_none());
        assert_eq!(
            c.build.patches,
            ["a.patch", "b.patch", "c.patch", "d.patch"].map(PathBuf::from)
        );
        assert!(c.build.patch_args.is_empty());
        let c = parse(&["-v", "/b/vmlinux", "fix.patch", "other.patch"]).unwrap();
        assert_eq!(
            c.build.patches,
            ["fix.patch", "other.patch"].map(PathBuf::from)
        );
        assert_eq!(c.build.module_name().unwrap(), "livepatch-fix");
    }

    #[test]
    fn subcommand_names_versus_patch_files() {
        // A first positional word that names a subcommand is the subcommand.
        assert!(matches!(
            parse(&["diff", "a.o", "b.o"]).unwrap().command,
            Some(Command::Diff(_))
        ));
        assert!(matches!(
            parse(&["check", "x.ko"]).unwrap().command,
            Some(Command::Check(_))
        ));
        // A patch file called `diff`: ./diff, --patch diff, or after `--`.
        for args in [&["./diff"][..], &["--patch", "diff"], &["--", "diff"]] {
            let c = parse(args).unwrap();
            assert!(c.command.is_none(), "{args:?}");
            assert_eq!(c.build.patches.len(), 1, "{args:?}");
            assert!(c.build.patches[0].ends_with("diff"), "{args:?}");
        }
        // After a patch file, later words are patch files.
        let c = parse(&["fix.patch", "check"]).unwrap();
        assert!(c.command.is_none());
        assert_eq!(c.build.patches, ["fix.patch", "check"].map(PathBuf::from));
        let c = parse(&["--patch", "a", "check", "x.ko"]).unwrap();
        assert!(c.command.is_none());
        assert_eq!(c.build.patches, ["a", "check", "x.ko"].map(PathBuf::from));
    }

    #[test]
    fn debug_levels_and_flags_of_the_anchors() {
        let c = parse(&["a.patch", "-d"]).unwrap();
        assert_eq!(c.build.debug, 1);
        assert!(
            c.build.keep_tmp,
            "-d keeps the temporary directory, as in both anchors"
        );
        let c = parse(&["a.patch", "-ddd"]).unwrap();
        assert_eq!(c.build.debug, 3);
        let c = parse(&["a.patch", "-d", "--debug"]).unwrap();
        assert_eq!(c.build.debug, 2);
        let c = parse(&["a.patch"]).unwrap();
        assert_eq!(c.build.debug, 0);
        assert!(!c.build.keep_tmp && !c.build.show_first_changed);
        assert_eq!(c.build.fuzz, 0);
        let c = parse(&["a.patch", "-f", "--fuzz", "2", "--no-replace"]).unwrap();
        assert!(c.build.show_first_changed && c.build.non_replace);
        assert_eq!(c.build.fuzz, 2);
        assert!(parse(&["a.patch", "--show-first-changed", "--keep-tmp"]).is_ok());
        // kpatch-build's and klp-build's spellings.
        assert!(parse(&["a.patch", "-T"]).unwrap().build.keep_tmp);
        assert!(
            parse(&["a.patch", "--skip-cleanup"])
                .unwrap()
                .build
                .keep_tmp
        );
        assert!(
            parse(&["a.patch", "--skip-gcc-check"])
                .unwrap()
                .build
                .skip_compiler_check
        );
        assert!(parse(&["a.patch", "-R"]).unwrap().build.non_replace);
    }

    #[test]
    fn names() {
        let c = parse(&["a.patch", "-n", "fix_1-b"]).unwrap();
        assert_eq!(c.build.module_name().unwrap(), "livepatch-fix_1-b");
        let longest = "x".repeat(NAME_MAX);
        let c = parse(&["a.patch", "-n", &longest]).unwrap();
        assert_eq!(c.build.module_name().unwrap().len(), 55);
        // Names are never rewritten: two names, two modules.
        let a = parse(&["p.patch", "-n", "a-b"])
            .unwrap()
            .build
            .module_name()
            .unwrap();
        let b = parse(&["p.patch", "-n", "a_b"])
            .unwrap()
            .build
            .module_name()
            .unwrap();
        assert_ne!(a, b);
        // The default comes from the first patch file, under the same rule.
        let c = parse(&["dir.d/0001-fix-cmdline.patch", "b.diff"]).unwrap();
        assert_eq!(c.build.module_name().unwrap(), "livepatch-0001-fix-cmdline");
        let e = parse(&["fix.v2.patch"]).unwrap_err().to_string();
        assert!(e.contains("pass -n NAME"), "{e}");
        let e = parse(&["a.patch", "-n", "fix.v2"]).unwrap_err().to_string();
        assert!(e.contains("'.' is not allowed"), "{e}");
        let e = parse(&["a.patch", "-n", ""]).unwrap_err().to_string();
        assert!(e.contains("empty"), "{e}");
        let e = parse(&["a.patch", "--cumulative", "--no-replace"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("--cumulative contradicts --no-replace"), "{e}");
        // Property: check_name accepts exactly what module_name keeps verbatim.
        for n in ["a", "A9_-", "-x", "fix.v2", "a b", ""] {
            assert_eq!(
                check_name(n).is_ok(),
                !n.is_empty()
                    && n.len() <= NAME_MAX
                    && n.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
                "{n}"
            );
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
