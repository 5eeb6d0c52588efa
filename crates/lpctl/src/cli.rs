//! Command line and dispatch.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::error::{Error, ErrorClass, Result};
use crate::install::BootService;
use crate::kernel::Kernel;
use crate::ops::{self, Ctx, Timing};
use crate::output;
use crate::policy::Flags;
use crate::sysfs::Sys;

/// Load, list and unload livepatch modules built by lp-build.
#[derive(Debug, Parser)]
#[command(name = "lpctl", version, about, long_about = None)]
pub struct Cli {
    /// Root of the /sys and /proc trees to use (for tests and inspection of
    /// a copied tree). Only `info`, `list` and `--dry-run` work with a root
    /// other than /.
    #[arg(long, global = true, default_value = "/", hide = true)]
    pub root: PathBuf,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show the identity recorded in a livepatch module file, or a loaded livepatch's state and
    /// the functions it patches.
    Info {
        /// The module file (.ko; a path that exists or contains `/`), or the name of a loaded
        /// livepatch (`-` and `_` are the same).
        #[arg(value_name = "FILE.ko|NAME")]
        file: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show loaded livepatches and the functions they patch.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Load a livepatch module, applying the replace policy first.
    Load {
        /// The module file (.ko).
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        file: Option<PathBuf>,
        /// Load every module installed for the running kernel (lpctl install), in file-name
        /// order, each as `lpctl load FILE` would, except that non-cumulative patches without
        /// atomic replace are stacked (as with --keep-others). The boot service runs this.
        #[arg(long)]
        all: bool,
        /// Allow replacing a newer cumulative patch with an older one.
        #[arg(long)]
        allow_downgrade: bool,
        /// Stack a non-cumulative patch on top of the loaded patches
        /// instead of disabling them.
        #[arg(long)]
        keep_others: bool,
        /// Print the plan and do nothing.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        timing: TimingArgs,
    },
    /// Disable and unload livepatches.
    Unload {
        /// Patch (module) names.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        names: Vec<String>,
        /// Unload every livepatch module.
        #[arg(long)]
        all: bool,
        /// Print the plan and do nothing.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        timing: TimingArgs,
    },
    /// Keep a livepatch for a kernel release, so that `lpctl load --all` (the boot service)
    /// loads it: copied to /var/lib/lpctl/<release>/<name>.ko.
    Install {
        /// The module file (.ko).
        file: PathBuf,
        /// The kernel release [default: the running kernel's]; must match the module's
        /// vermagic.
        #[arg(short = 'k', long = "kernel-version", value_name = "RELEASE")]
        kernel_version: Option<String>,
    },
    /// Remove an installed livepatch (it stays loaded until lpctl unload).
    Uninstall {
        /// The module name (`-` and `_` are the same).
        name: String,
        /// The kernel release [default: the running kernel's].
        #[arg(short = 'k', long = "kernel-version", value_name = "RELEASE")]
        kernel_version: Option<String>,
    },
    /// Print a shell completion script for lpctl (bash, zsh or fish).
    #[command(hide = true)]
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print lpctl's man page (roff).
    #[command(hide = true)]
    Man,
}

/// lpctl's man page (roff), generated from the clap definition.
pub fn man_page() -> Vec<u8> {
    use clap::CommandFactory;
    let mut page = Vec::new();
    // Rendering into memory cannot fail.
    let _ = clap_mangen::Man::new(Cli::command()).render(&mut page);
    page
}

#[derive(Debug, Clone, Args)]
pub struct TimingArgs {
    /// Seconds to wait for a transition (and again for its revert) and for
    /// a module's refcount to drop.
    #[arg(long, value_name = "SECS", default_value = "60", value_parser = parse_secs)]
    pub timeout: Duration,
    /// Seconds into a transition after which the blocking tasks are
    /// signalled.
    #[arg(long, value_name = "SECS", default_value = "15", value_parser = parse_secs)]
    pub signal_after: Duration,
    /// Polling interval in milliseconds.
    #[arg(long, value_name = "MS", default_value = "100", hide = true)]
    pub poll_ms: u64,
}

impl TimingArgs {
    pub fn timing(&self) -> Timing {
        Timing {
            timeout: self.timeout,
            signal_after: self.signal_after,
            poll: Duration::from_millis(self.poll_ms.max(1)),
        }
    }
}

fn parse_secs(s: &str) -> std::result::Result<Duration, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !v.is_finite() || !(0.0..=86_400.0).contains(&v) {
        return Err(format!("{s:?}: expected 0 to 86400 seconds"));
    }
    Ok(Duration::from_secs_f64(v))
}

impl Command {
    /// Whether this invocation changes the kernel.
    pub fn mutates(&self) -> bool {
        match self {
            Command::Load { dry_run, .. } | Command::Unload { dry_run, .. } => !dry_run,
            _ => false,
        }
    }
}

fn json<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string_pretty(v)
        .map(|s| s + "\n")
        .map_err(|e| Error::new(ErrorClass::Io, format!("cannot encode JSON: {e}")))
}

fn emit(out: &mut dyn Write, s: &str) -> Result<()> {
    out.write_all(s.as_bytes())
        .and_then(|_| out.flush())
        .or_else(|e| {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                Ok(())
            } else {
                Err(e)
            }
        })
        .map_err(|e| Error::new(ErrorClass::Io, format!("cannot write output: {e}")))
}

/// Run a parsed command line. Results go to `out`, progress to `log`.
pub fn run(
    cli: Cli,
    kernel: &mut dyn Kernel,
    out: &mut dyn Write,
    log: &mut dyn Write,
) -> Result<()> {
    let sys = Sys::new(&cli.root);
    match cli.command {
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "lpctl", &mut script);
            emit(out, &String::from_utf8_lossy(&script))
        }
        Command::Man => emit(out, &String::from_utf8_lossy(&man_page())),
        // A path that exists, or anything with a `/`, is a module file; otherwise the name
        // of a loaded livepatch.
        Command::Info { file, json: j }
            if !file.exists() && !file.as_os_str().as_encoded_bytes().contains(&b'/') =>
        {
            let name = file.to_string_lossy();
            let info = ops::info_loaded(&sys, &name)?;
            let text = if j {
                json(&info)?
            } else {
                output::loaded_info_text(&info)
            };
            emit(out, &text)
        }
        Command::Info { file, json: j } => {
            let id = ops::info(&file)?;
            let text = if j {
                json(&id)?
            } else {
                output::info_text(&file, &id)
            };
            emit(out, &text)
        }
        Command::List { json: j } => {
            let listing = ops::list(&sys)?;
            let text = if j {
                json(&listing)?
            } else {
                output::list_text(&listing)
            };
            emit(out, &text)
        }
        Command::Install {
            file,
            kernel_version,
        } => {
            let dest = crate::install::install(&sys, &file, kernel_version.as_deref())?;
            emit(out, &format!("installed {}\n", dest.display()))?;
            // As `kpatch install` enables kpatch.service: the patch is of no use at boot else.
            match crate::install::enable_boot_service(&sys)? {
                BootService::Enabled(links) => {
                    for (link, unit) in links {
                        emit(
                            out,
                            &format!(
                                "enabled the boot service: {} -> {}\n",
                                link.display(),
                                unit.display()
                            ),
                        )?;
                    }
                }
                BootService::AlreadyEnabled => {}
                BootService::NoInstallSection(unit) => {
                    let _ = writeln!(
                        log,
                        "lpctl: warning: {} has no WantedBy=: enable it by hand to load the \
                         installed patches at boot",
                        unit.display()
                    );
                }
                BootService::NotInstalled => {
                    let _ = writeln!(
                        log,
                        "lpctl: warning: {} is not installed (in {}): nothing loads the \
                         installed patches at boot (install it from lpctl's package, or run \
                         `lpctl load --all` at boot)",
                        crate::install::UNIT,
                        crate::install::UNIT_DIRS.join(", ")
                    );
                }
            }
            Ok(())
        }
        Command::Uninstall {
            name,
            kernel_version,
        } => {
            let gone = crate::install::uninstall(&sys, &name, kernel_version.as_deref())?;
            emit(
                out,
                &format!(
                    "uninstalled {} (a loaded copy stays loaded: lpctl unload)\n",
                    gone.display()
                ),
            )
        }
        Command::Load {
            file,
            all,
            allow_downgrade,
            keep_others,
            dry_run,
            timing,
        } => {
            let flags = Flags {
                allow_downgrade,
                keep_others,
            };
            let mut ctx = Ctx {
                sys,
                kernel,
                timing: timing.timing(),
                log,
            };
            let files = match file {
                Some(f) => vec![f],
                None => {
                    let files = crate::install::installed(&ctx.sys, None)?;
                    if files.is_empty() {
                        let _ = writeln!(
                            ctx.log,
                            "lpctl: no livepatch installed for this kernel (lpctl install)"
                        );
                    }
                    files
                }
            };
            for file in files {
                // --all stacks the non-cumulative patches that do not replace (as
                // --keep-others); a cumulative or replacing patch follows the policy as is.
                let stack = all
                    && crate::modinfo::read_module(&file)
                        .map(|id| !id.cumulative && !id.replace)
                        .unwrap_or(false);
                let flags = Flags {
                    allow_downgrade: flags.allow_downgrade,
                    keep_others: flags.keep_others || stack,
                };
                let (id, plan) = ops::load(&mut ctx, &file, &flags, dry_run)?;
                if dry_run {
                    emit(out, &output::plan_text(&plan, &id))?;
                }
            }
            Ok(())
        }
        Command::Unload {
            names,
            all,
            dry_run,
            timing,
        } => {
            let mut ctx = Ctx {
                sys,
                kernel,
                timing: timing.timing(),
                log,
            };
            let plan = ops::unload(&mut ctx, &names, all, dry_run)?;
            if dry_run {
                emit(out, &format!("plan:\n{}", output::steps_text(&plan)))?;
            } else if plan.steps.is_empty() {
                let _ = writeln!(ctx.log, "lpctl: no livepatch modules loaded");
            }
            Ok(())
        }
    }
}
