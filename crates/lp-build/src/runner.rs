//! Running long child processes (make): in their own process group, output to a log file and
//! the progress display, stopped with the whole group when SIGINT/SIGTERM arrives.

use crate::exit::{fail, fail_hint, Status};
use crate::ui::Progress;
use anyhow::{Context, Result};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How a run of a child ended when it did not succeed.
#[derive(Debug)]
pub struct RunFailure {
    /// The exit code (None: killed by a signal).
    pub code: Option<i32>,
    /// The lines that look like errors (compiler and make errors), at most 20.
    pub errors: Vec<String>,
    /// The last lines of output.
    pub tail: Vec<String>,
}

/// Lines of make output that explain a failure.
pub fn error_lines(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .filter(|l| {
            l.contains("error:")
                || l.contains("Error ")
                || l.contains("*** ")
                || l.contains("undefined reference")
                || l.contains("fatal:")
                // modpost: `ERROR: modpost: "x" [m.ko] undefined!`, a missing `.o.cmd`.
                || l.contains("ERROR:")
                || l.contains("No such file or directory")
        })
        .take(20)
        .cloned()
        .collect()
}

/// Runs `cmd` to completion, feeding its output lines (stdout and stderr) to `progress` and to
/// `log`. Returns `Ok(Err(failure))` when it exits unsuccessfully, `Err` when it cannot be run
/// or was interrupted (the child's process group is terminated first).
/// While it runs, the child's process group id is in `pgid_file` (if given), so that a later
/// run can stop a build orphaned by a crash ([`kill_orphaned_group`]).
pub fn run_logged(
    mut cmd: Command,
    log: &Path,
    progress: &mut Progress,
    pgid_file: Option<&Path>,
) -> Result<std::result::Result<(), RunFailure>> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut logf = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening the log {}", log.display()))?;
    let _ = writeln!(logf, "$ {:?}", cmd);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(fail_hint(
                Status::Input,
                format!("`{program}` is not installed"),
                "install the kernel build tools (Debian: apt-get install make gcc flex bison bc libelf-dev libssl-dev)",
            ))
        }
        Err(e) => return Err(e).with_context(|| format!("starting {program}")),
    };
    let pgid = child.id() as i32;
    if let Some(f) = pgid_file {
        let _ = std::fs::write(f, format!("{pgid}\n"));
    }
    let (tx, rx) = mpsc::channel::<String>();
    let mut readers = Vec::new();
    if let Some(out) = child.stdout.take() {
        let tx = tx.clone();
        readers.push(std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(|l| l.ok()) {
                let _ = tx.send(line);
            }
        }));
    }
    if let Some(err) = child.stderr.take() {
        let tx = tx.clone();
        readers.push(std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(|l| l.ok()) {
                let _ = tx.send(line);
            }
        }));
    }
    drop(tx);
    let mut tail: std::collections::VecDeque<String> = std::collections::VecDeque::new();
    let mut all_errors: Vec<String> = Vec::new();
    let mut handle_line = |line: String, progress: &mut Progress| {
        let _ = writeln!(logf, "{line}");
        progress.line(&line);
        if all_errors.len() < 20 && !error_lines(std::slice::from_ref(&line)).is_empty() {
            all_errors.push(line.clone());
        }
        tail.push_back(line);
        if tail.len() > 30 {
            tail.pop_front();
        }
    };
    let mut killed_at: Option<Instant> = None;
    let status = loop {
        while let Ok(line) = rx.try_recv() {
            handle_line(line, progress);
        }
        if let Some(st) = child.try_wait().context("waiting for the build")? {
            break st;
        }
        if crate::signals::interrupted() {
            match killed_at {
                None => {
                    // SAFETY: kill(2) with a negative pid signals the child's process group;
                    // no memory is involved.
                    unsafe { libc::kill(-pgid, libc::SIGTERM) };
                    killed_at = Some(Instant::now());
                }
                Some(t) if t.elapsed() > Duration::from_secs(10) => {
                    // SAFETY: as above.
                    unsafe { libc::kill(-pgid, libc::SIGKILL) };
                }
                Some(_) => {}
            }
        }
        progress.tick();
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(line) => handle_line(line, progress),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                std::thread::sleep(Duration::from_millis(50))
            }
        }
    };
    // Stragglers of the group (a compiler still running after make died).
    if killed_at.is_some() {
        // SAFETY: as above; the group may be gone already (ESRCH is fine).
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
    }
    for r in readers {
        let _ = r.join();
    }
    if let Some(f) = pgid_file {
        let _ = std::fs::remove_file(f);
    }
    while let Ok(line) = rx.try_recv() {
        handle_line(line, progress);
    }
    if killed_at.is_some() || crate::signals::interrupted() {
        return Err(fail(Status::Interrupted, "interrupted"));
    }
    if status.success() {
        Ok(Ok(()))
    } else {
        Ok(Err(RunFailure {
            code: status.code(),
            errors: all_errors,
            tail: tail.into_iter().collect(),
        }))
    }
}

/// If `pgid_file` names a process group whose leader is still a running `make` (a build left
/// behind by a run that died), kills the group and waits for it to go. Returns whether it did.
pub fn kill_orphaned_group(pgid_file: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(pgid_file) else {
        return false;
    };
    let _ = std::fs::remove_file(pgid_file);
    let Ok(pgid) = text.trim().parse::<i32>() else {
        return false;
    };
    let is_make = std::fs::read_to_string(format!("/proc/{pgid}/comm"))
        .map(|c| c.trim() == "make")
        .unwrap_or(false);
    if pgid <= 1 || !is_make {
        return false;
    }
    // SAFETY: kill(2) on the process group recorded by the run that started it.
    unsafe { libc::kill(-pgid, libc::SIGKILL) };
    let start = Instant::now();
    // SAFETY: signal 0 only checks whether the group still exists.
    while unsafe { libc::kill(-pgid, 0) } == 0 && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

/// Runs a short command and returns its stdout (errors carry stderr).
pub fn output(cmd: &mut Command) -> Result<String> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {program}"))?;
    if !out.status.success() {
        anyhow::bail!(
            "{program} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::error_lines;

    #[test]
    fn error_lines_of_compiler_make_and_modpost() {
        let lines: Vec<String> = [
            "  CC [M]  /tmp/m/core.o",
            "/tmp/m/core.c:3:1: error: expected ';' before '}' token",
            "  MODPOST /tmp/m/Module.symvers",
            "ERROR: modpost: \"secret\" [/tmp/m/livepatch-x.ko] undefined!",
            "/tmp/m/.lp-patch-fs_proc_version.o.cmd: No such file or directory",
            "make[3]: *** [scripts/Makefile.modpost:145: /tmp/m/Module.symvers] Error 1",
            "  LD [M]  /tmp/m/livepatch-x.ko",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let e = error_lines(&lines);
        assert_eq!(e.len(), 4, "{e:#?}");
        assert!(e.iter().all(|l| !l.starts_with("  ")), "{e:#?}");
    }
}
