use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use clap::Parser;

use lpctl::cli::{run, Cli};
use lpctl::kernel::RealKernel;
use lpctl::{Error, ErrorClass};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = if cli.root != Path::new("/") && cli.command.mutates() {
        Err(Error::new(
            ErrorClass::Usage,
            "--root only works with info, list and --dry-run",
        )
        .hint("module syscalls always act on the running kernel"))
    } else {
        let mut kernel = RealKernel;
        run(
            cli,
            &mut kernel,
            &mut std::io::stdout().lock(),
            &mut std::io::stderr(),
        )
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "lpctl: error: {e}");
            ExitCode::from(e.class.exit_code() as u8)
        }
    }
}
