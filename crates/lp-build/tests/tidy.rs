//! lp-build sets its tracing subscriber up only under `-d` or `LP_BUILD_LOG` (start-up time, see
//! `main.rs`), which is right only while no crate of lp-build emits an event at the default
//! level: a `warn!` or `error!` would be silently lost. This keeps it so.

use std::path::Path;

fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn no_event_at_the_default_log_level() {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    for c in ["lp-build", "lp-diff", "lp-elf", "lp-emit"] {
        sources(&crates.join(c).join("src"), &mut files);
    }
    assert!(files.len() > 20, "sources found: {}", files.len());
    let mut found = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        for (n, line) in text.lines().enumerate() {
            if ["warn!(", "error!("].iter().any(|m| line.contains(m)) {
                found.push(format!("{}:{}: {}", f.display(), n + 1, line.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "events at the default level (warn) would not be printed without -d: print them with \
         Ui or eprintln!, or set the subscriber up unconditionally in main.rs:\n{}",
        found.join("\n")
    );
}
