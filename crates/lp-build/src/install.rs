//! What an installed lp-build carries with it, through hidden subcommands: shell completions
//! (`lp-build completions bash|zsh|fish`), man pages (`lp-build man [DIR]`), both generated
//! from the clap definitions, and the hooks headers (`lp-build hooks [DIR]`).

use crate::cli::Cli;
use crate::exit::Status;
use anyhow::{Context, Result};
use clap::CommandFactory;
use std::fs;
use std::io::Write;
use std::path::Path;

/// Prints the completion script of `shell` to stdout.
pub fn completions(shell: clap_complete::Shell) -> Result<Status> {
    let mut cmd = Cli::command();
    let mut out = std::io::stdout().lock();
    clap_complete::generate(shell, &mut cmd, "lp-build", &mut out);
    out.flush().context("writing the completion script")?;
    Ok(Status::Success)
}

/// The man pages: `(file name, roff text)` of lp-build and each visible subcommand.
pub fn man_pages() -> Result<Vec<(String, Vec<u8>)>> {
    let cmd = Cli::command();
    let mut pages = Vec::new();
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .render(&mut page)
        .context("rendering the man page")?;
    pages.push(("lp-build.1".to_string(), page));
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("lp-build-{}", sub.get_name());
        // clap names are `'static`; this runs once per page in a short-lived command.
        let static_name: &'static str = Box::leak(name.clone().into_boxed_str());
        let sub = sub.clone().name(static_name);
        let mut page = Vec::new();
        clap_mangen::Man::new(sub)
            .render(&mut page)
            .context("rendering the man page")?;
        pages.push((format!("{name}.1"), page));
    }
    Ok(pages)
}

/// Prints lp-build's man page, or writes every page into `dir`.
pub fn man(dir: Option<&Path>) -> Result<Status> {
    let pages = man_pages()?;
    match dir {
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(&pages[0].1).context("writing the man page")?;
            out.flush().context("writing the man page")?;
        }
        Some(dir) => {
            fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            for (name, page) in pages {
                let p = dir.join(&name);
                fs::write(&p, page).with_context(|| format!("writing {}", p.display()))?;
                println!("{}", p.display());
            }
        }
    }
    Ok(Status::Success)
}

/// Lists the built-in hooks headers, or writes them into `dir` and prints their paths.
pub fn hooks(dir: Option<&Path>) -> Result<Status> {
    match dir {
        None => {
            for (rel, _) in crate::hooks::HEADERS {
                println!("{rel}");
            }
            for (rel, _) in crate::hooks::COMPAT_HEADERS {
                println!("{}/{rel}", crate::hooks::COMPAT_SUBDIR);
            }
        }
        Some(dir) => {
            for rel in crate::hooks::write_headers(dir)? {
                println!("{}", dir.join(rel).display());
            }
        }
    }
    Ok(Status::Success)
}
