//! `lp-build`: see the crate README for the command line and exit statuses.

use lp_build::cli::Command;
use lp_build::exit::{hint_of, one_line, status_of, Status};
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // The compiler wrapper: kbuild runs `lp-build __cc gcc ARGS...`; never through clap.
    if args
        .get(1)
        .is_some_and(|a| a == lp_build::ccwrap::SUBCOMMAND)
    {
        return lp_build::ccwrap::main(args[2..].to_vec());
    }
    let cli = match lp_build::cli::parse_from(&args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                Status::Usage.code()
            } else {
                0
            });
        }
    };
    let debug = cli.build.debug();
    // Errors are printed as one line with a hint, never with a backtrace; yet `RUST_BACKTRACE=1`
    // in a developer's environment makes anyhow capture one for every error it wraps, which
    // unwinds the whole stack (4 ms in a short `lp-build diff`, 20 ms in a static binary), for
    // nothing: no backtrace is printed. Only an explicit RUST_LIB_BACKTRACE is obeyed.
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        std::env::set_var("RUST_LIB_BACKTRACE", "0");
    }
    let filter = match cli.build.debug {
        0 => "warn",
        1 => "debug",
        _ => "trace",
    };
    // The subscriber is set up only when it can print something: lp-build emits no event at
    // the default level (warn; `tests/tidy.rs` keeps it so), and setting it up is a good part of
    // a short process's start-up (`lp-build diff` on a small pair).
    if cli.build.debug > 0 || std::env::var_os("LP_BUILD_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_env("LP_BUILD_LOG")
                    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter)),
            )
            .with_writer(std::io::stderr)
            .try_init();
    }
    // Before anything that can block (reading a patch from a FIFO): SIGINT and SIGTERM set
    // a flag every wait looks at.
    if let Err(e) = lp_build::signals::install() {
        eprintln!("lp-build: error: {e:#}");
        eprintln!("  hint: this is a bug in lp-build or a very unusual system: please report it");
        return ExitCode::from(Status::Internal.code());
    }
    let pipeline = cli.command.is_none();
    let result = match &cli.command {
        Some(Command::Diff(d)) => lp_build::commands::diff(d),
        Some(Command::Check(c)) => lp_build::commands::check(c),
        Some(Command::Completions { shell }) => lp_build::install::completions(*shell),
        Some(Command::Man { dir }) => lp_build::install::man(dir.as_deref()),
        Some(Command::Hooks { dir }) => lp_build::install::hooks(dir.as_deref()),
        None => {
            let ui = lp_build::ui::Ui::new(debug);
            lp_build::pipeline::run(&cli.build, &ui).map(|o| o.status)
        }
    };
    match result {
        Ok(status) => ExitCode::from(status.code()),
        Err(e) => {
            let status = status_of(&e);
            let word = match status {
                Status::Refused => "refused",
                Status::NoChange => "no functional change",
                Status::Interrupted => "interrupted",
                _ => "error",
            };
            if status == Status::Interrupted {
                if pipeline {
                    eprintln!("lp-build: interrupted: the tree and the cache build were restored");
                } else {
                    eprintln!("lp-build: interrupted: {}", one_line(&e));
                }
                eprintln!("  hint: nothing was written; run the command again to finish it");
            } else {
                eprintln!("lp-build: {word}: {}", one_line(&e));
                // Every error gets a hint: its own, else what its status calls for.
                let fallback = match status {
                    Status::Input => {
                        "check that the file named above exists, is readable, and that its file \
                         system has free space"
                    }
                    Status::Build => "the build log named above says why",
                    _ => {
                        "this is a bug in lp-build: please report it with the command line and \
                         the --keep-tmp directory"
                    }
                };
                eprintln!("  hint: {}", hint_of(&e).unwrap_or(fallback));
            }
            ExitCode::from(status.code())
        }
    }
}
