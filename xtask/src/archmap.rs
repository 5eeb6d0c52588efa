//! Tests that keep ARCHITECTURE.md true: every source file of the crates and of xtask is named
//! in its phase table (crate roots excepted: the crate paragraphs describe them), and the pure
//! crates (lp-elf, lp-diff, lp-emit) never touch files or start processes.

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.filter_map(|e| e.ok()) {
            let p = e.path();
            if p.is_dir() {
                rust_files(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }

    /// Source files below `root` (workspace-relative, `/`-separated), sorted.
    fn sources(root: &Path) -> Vec<String> {
        let mut files = Vec::new();
        for dir in ["crates", "xtask"] {
            rust_files(&root.join(dir), &mut files);
        }
        let mut out: Vec<String> = files
            .iter()
            .filter_map(|p| p.strip_prefix(root).ok())
            .map(|p| p.to_string_lossy().replace('\\', "/"))
            .filter(|p| p.contains("/src/"))
            .collect();
        out.sort();
        out
    }

    /// Whether a table line of ARCHITECTURE.md names `file`: the whole path, or its crate
    /// directory with the file's name (`exit.rs` after `crates/lp-build/src/cli.rs`) or stem in
    /// a brace list (`{read,model,write}.rs`).
    fn named(arch: &str, file: &str) -> bool {
        let (dir, name) = file.rsplit_once('/').unwrap_or(("", file));
        let stem = name.trim_end_matches(".rs");
        arch.lines().any(|l| {
            l.contains(file)
                || (l.contains(&format!("{dir}/"))
                    && (l.contains(&format!("`{name}`"))
                        || l.contains(&format!("{{{stem},"))
                        || l.contains(&format!(",{stem},"))
                        || l.contains(&format!(",{stem}}}"))))
        })
    }

    #[test]
    fn every_source_file_is_on_the_map() {
        let root = crate::root();
        let arch = std::fs::read_to_string(root.join("ARCHITECTURE.md")).unwrap();
        let missing: Vec<String> = sources(&root)
            .into_iter()
            .filter(|f| !f.ends_with("/lib.rs") && !named(&arch, f))
            .collect();
        assert!(
            missing.is_empty(),
            "ARCHITECTURE.md's phase table does not name: {missing:?}"
        );
        // The matcher itself: a file that is not there is not found.
        assert!(!named(&arch, "crates/lp-diff/src/no_such_file.rs"));
        assert!(named(&arch, "crates/lp-elf/src/model.rs"));
    }

    #[test]
    fn pure_crates_do_no_io() {
        let root = crate::root();
        let forbidden = [
            "std::fs",
            "std::process",
            "std::net",
            "File::",
            "Command::",
            "std::env::var",
        ];
        let mut found = Vec::new();
        for f in sources(&root) {
            let pure = ["crates/lp-elf/", "crates/lp-diff/", "crates/lp-emit/"]
                .iter()
                .any(|c| f.starts_with(c));
            if !pure {
                continue;
            }
            let text = std::fs::read_to_string(root.join(&f)).unwrap();
            for (n, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap_or("");
                if let Some(w) = forbidden.iter().find(|w| code.contains(*w)) {
                    found.push(format!("{f}:{}: {w}", n + 1));
                }
            }
        }
        assert!(
            found.is_empty(),
            "the pure crates must do no I/O (ARCHITECTURE.md): {found:?}"
        );
    }
}
