//! `cargo install` of lp-build and lpctl into a temporary root, then the installed binaries,
//! run from outside the repository: lp-build writes the hooks headers built into it (the same
//! bytes as `hooks-macros/`), and both print shell completions (bash, zsh, fish) and man pages
//! generated from their clap definitions.
//!
//! The install reuses this workspace's target directory (`--debug`, `--offline`, `--locked`),
//! so it links what `cargo test` already built instead of building everything again.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn install(root: &Path) {
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"));
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    for krate in ["crates/lp-build", "crates/lpctl"] {
        let out = Command::new(&cargo)
            .current_dir(workspace())
            .args(["install", "--debug", "--offline", "--locked", "--quiet"])
            .args(["--path", krate])
            .arg("--root")
            .arg(root)
            .env("CARGO_TARGET_DIR", &target_dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "cargo install --path {krate} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Runs an installed binary in `cwd` with a minimal environment.
fn run(bin: &Path, cwd: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(bin)
        .args(args)
        .current_dir(cwd)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn shell_accepts(shell: &str, args: &[&str], script: &str, dir: &Path) {
    let Ok(path) = which(shell) else {
        eprintln!("{shell} is not installed: its completion script is only checked for content");
        return;
    };
    let file = dir.join(format!("completion.{shell}"));
    fs::write(&file, script).unwrap();
    let out = Command::new(path).args(args).arg(&file).output().unwrap();
    assert!(
        out.status.success(),
        "{shell} rejects the completion script: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn which(name: &str) -> Result<PathBuf, ()> {
    ["/usr/bin", "/bin", "/usr/local/bin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
        .ok_or(())
}

#[test]
fn installed_binaries_carry_headers_completions_and_man_pages() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    install(&root);
    let lp_build = root.join("bin/lp-build");
    let lpctl = root.join("bin/lpctl");
    assert!(lp_build.is_file() && lpctl.is_file());
    // Nothing beside the binaries: no data directory to find.
    let installed: Vec<_> = fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| !n.starts_with(".crates"))
        .collect();
    assert_eq!(installed, ["bin"]);

    // The hooks headers, written by the installed binary from a directory outside the repo.
    let away = t.path().join("elsewhere");
    fs::create_dir_all(&away).unwrap();
    let (ok, listed, err) = run(&lp_build, &away, &["hooks"]);
    assert!(ok, "{err}");
    assert!(listed.lines().any(|l| l == "lp-hooks.h"), "{listed}");
    assert!(listed.lines().any(|l| l == "kpatch-syscall.h"), "{listed}");
    let (ok, written, err) = run(&lp_build, &away, &["hooks", "include"]);
    assert!(ok, "{err}");
    assert_eq!(written.lines().count(), listed.lines().count());
    for rel in listed.lines() {
        let repo_rel = rel.strip_prefix("compat/").unwrap_or(rel);
        let got = fs::read(away.join("include").join(rel)).unwrap();
        let want = fs::read(workspace().join("hooks-macros").join(repo_rel)).unwrap();
        assert_eq!(got, want, "{rel}");
    }
    // ... and they compile: a file using the kpatch names, in a userspace build.
    if let Ok(gcc) = which("gcc") {
        let c = away.join("t.c");
        fs::write(
            &c,
            "#include \"kpatch-macros.h\"\nstatic void f(void) {}\nKPATCH_LOAD_HOOK(f);\n\
             KPATCH_IGNORE_SECTION(\".text.x\");\n",
        )
        .unwrap();
        let out = Command::new(gcc)
            .arg("-c")
            .arg("-I")
            .arg(away.join("include"))
            .arg(&c)
            .arg("-o")
            .arg(away.join("t.o"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // Completions and man pages of both binaries.
    for (bin, name, flag) in [
        (&lp_build, "lp-build", "patch"),
        (&lpctl, "lpctl", "unload"),
    ] {
        for shell in ["bash", "zsh", "fish"] {
            let (ok, script, err) = run(bin, &away, &["completions", shell]);
            assert!(ok, "{name} completions {shell}: {err}");
            assert!(script.contains(name), "{name} {shell}");
            assert!(script.contains(flag), "{name} {shell}: no {flag}");
            match shell {
                "bash" => shell_accepts("bash", &["-n"], &script, &away),
                "zsh" => shell_accepts("zsh", &["-n"], &script, &away),
                _ => shell_accepts("fish", &["--no-execute"], &script, &away),
            }
        }
        let (ok, page, err) = run(bin, &away, &["man"]);
        assert!(ok, "{name} man: {err}");
        assert!(page.starts_with(".ie") || page.contains(".TH"), "{page}");
        assert!(page.contains(&format!(".TH {name}")), "{page}");
        assert!(
            page.contains(flag.trim_start_matches('-')),
            "{name}: {flag}"
        );
        // The hidden subcommands stay out of the page.
        assert!(!page.contains("completions"), "{name}");
    }
    let (ok, written, err) = run(&lp_build, &away, &["man", "man1"]);
    assert!(ok, "{err}");
    for page in ["lp-build.1", "lp-build-diff.1", "lp-build-check.1"] {
        assert!(written.contains(page), "{written}");
        let text = fs::read_to_string(away.join("man1").join(page)).unwrap();
        assert!(text.contains(".TH"), "{page}");
    }
    if let Ok(groff) = which("groff") {
        let out = Command::new(groff)
            .args(["-man", "-Tutf8", "-ww", "-z"])
            .arg(away.join("man1/lp-build.1"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
