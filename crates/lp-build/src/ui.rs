//! What the user sees while lp-build works: a progress bar for the long builds on a terminal,
//! plain lines otherwise. Messages go to stderr; results go to stdout.

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// Output settings.
#[derive(Debug, Clone)]
pub struct Ui {
    /// stderr is a terminal: progress bars.
    pub tty: bool,
    /// `--debug`: echo every build line.
    pub debug: bool,
}

impl Ui {
    /// Detects the terminal.
    pub fn new(debug: bool) -> Ui {
        Ui {
            tty: std::io::stderr().is_terminal(),
            debug,
        }
    }

    /// A plain status line.
    pub fn info(&self, msg: &str) {
        eprintln!("{msg}");
    }

    /// A warning line.
    pub fn warn(&self, msg: &str) {
        eprintln!("warning: {msg}");
    }

    /// Starts following a long step.
    pub fn progress(&self, label: &str) -> Progress {
        let bar = self.tty.then(|| {
            let b = ProgressBar::new_spinner();
            b.set_style(
                ProgressStyle::with_template(
                    "{spinner} {prefix} [{elapsed}] {pos} compiled {wide_msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            b.set_prefix(label.to_string());
            b.enable_steady_tick(Duration::from_millis(120));
            b
        });
        if bar.is_none() {
            eprintln!("{label} ...");
        }
        Progress {
            bar,
            label: label.to_string(),
            start: Instant::now(),
            last_beat: Instant::now(),
            compiled: 0,
            debug: self.debug,
        }
    }
}

/// A long step in progress.
pub struct Progress {
    bar: Option<ProgressBar>,
    label: String,
    start: Instant,
    last_beat: Instant,
    compiled: u64,
    debug: bool,
}

impl Progress {
    /// One line of the step's output.
    pub fn line(&mut self, line: &str) {
        let t = line.trim_start();
        if t.starts_with("CC ") || t.starts_with("CC [M]") {
            self.compiled += 1;
            if let Some(b) = &self.bar {
                b.inc(1);
            }
        }
        match &self.bar {
            Some(b) => {
                if self.debug {
                    b.println(line);
                }
                b.set_message(t.to_string());
            }
            None => {
                if self.debug {
                    eprintln!("  | {line}");
                }
            }
        }
    }

    /// Called regularly: a heartbeat line every 30 s when there is no bar.
    pub fn tick(&mut self) {
        if self.bar.is_none() && self.last_beat.elapsed() >= Duration::from_secs(30) {
            self.last_beat = Instant::now();
            eprintln!(
                "{} ... {}s, {} compiled",
                self.label,
                self.start.elapsed().as_secs(),
                self.compiled
            );
        }
    }

    /// Number of compile lines seen.
    pub fn compiled(&self) -> u64 {
        self.compiled
    }

    /// Ends the step.
    pub fn finish(self, ok: bool) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
        eprintln!(
            "{} {} in {} ({} compiled)",
            self.label,
            if ok { "done" } else { "failed" },
            crate::fsutil::secs(self.start.elapsed()),
            self.compiled
        );
    }
}
