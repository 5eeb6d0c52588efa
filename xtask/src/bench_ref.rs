//! The reference tool beside lp-build in `cargo xtask bench`'s whole-process comparison: kpatch's
//! `create-diff-object` 0.9.11, the version whose results the x86_64 corpus records
//! (`cases.tsv`). It is built here from Debian's source tarball (pinned by its SHA-256) the way
//! Debian builds it (`dpkg-buildflags`' CFLAGS, so `-O2`), into `target/bench-ref/`: Debian 12
//! has no kpatch package, and unstable's binary needs a newer glibc than the host's.
//!
//! Both tools get the same inputs: the pair, the entry sizes (the reference through kpatch-build's
//! environment variables, lp-build through `--entry-size`), and for the reference the ORIG
//! object's symbol table as `readelf -s --wide` prints it (kpatch-build makes that file once per
//! build, outside create-diff-object; the corpus README: the parent symbol table is the ORIG
//! object's) and an empty `Module.symvers`.

use crate::{root, run};
use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const VERSION: &str = "0.9.11";
const URL: &str = "http://deb.debian.org/debian/pool/main/k/kpatch/kpatch_0.9.11.orig.tar.gz";
const SHA256: &str = "b5f60ce70f7b471f937f1dc71695a3af762df27cc8e047a11c8790de02ee3598";

fn dir() -> PathBuf {
    root().join("target/bench-ref")
}

/// The built `create-diff-object`, downloading and building it on first use.
pub(crate) fn create_diff_object() -> Result<PathBuf> {
    let src = dir().join(format!("kpatch-{VERSION}"));
    let bin = src.join("kpatch-build/create-diff-object");
    if bin.is_file() {
        return Ok(bin);
    }
    fs::create_dir_all(dir())?;
    let tarball = dir().join(format!("kpatch_{VERSION}.orig.tar.gz"));
    if !tarball.is_file() {
        let part = dir().join("download.part");
        run(Command::new("curl")
            .args(["-fsSL", "-o"])
            .arg(&part)
            .arg(URL))
        .with_context(|| format!("downloading {URL} (is curl installed?)"))?;
        let bytes = fs::read(&part)?;
        let got = hex(&Sha256::digest(&bytes));
        if got != SHA256 {
            bail!("{URL}: SHA-256 {got}, expected {SHA256}: not the tarball this bench pins");
        }
        fs::rename(&part, &tarball)?;
    }
    run(Command::new("tar")
        .arg("-xzf")
        .arg(&tarball)
        .arg("-C")
        .arg(dir()))?;
    let cflags = Command::new("dpkg-buildflags")
        .args(["--get", "CFLAGS"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "-g -O2".to_string());
    // kpatch-build's Makefile appends its own flags to CFLAGS from the environment (a `CFLAGS=`
    // argument would replace them); it links with libelf (libelf-dev).
    run(Command::new("make")
        .arg("-C")
        .arg(src.join("kpatch-build"))
        .arg("create-diff-object")
        .env("CFLAGS", cflags))
    .context("building kpatch's create-diff-object (needs gcc, make and libelf-dev)")?;
    Ok(bin)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The reference's per-case inputs that kpatch-build makes outside create-diff-object: the ORIG
/// object's symbol table as `readelf -s --wide` prints it, and an empty `Module.symvers`.
pub(crate) struct RefInputs {
    pub(crate) symtab: PathBuf,
    pub(crate) symvers: PathBuf,
}

pub(crate) fn inputs(scratch: &Path, case: &str, orig: &Path) -> Result<RefInputs> {
    let out = Command::new("readelf")
        .args(["-s", "--wide"])
        .arg(orig)
        .output()
        .context("running readelf")?;
    if !out.status.success() {
        bail!("readelf -s --wide {} failed", orig.display());
    }
    let symtab = scratch.join(format!("{case}.symtab"));
    fs::write(&symtab, &out.stdout)?;
    let symvers = scratch.join("Module.symvers");
    fs::write(&symvers, "")?;
    Ok(RefInputs { symtab, symvers })
}

/// `create-diff-object ORIG PATCHED vmlinux SYMTAB SYMVERS livepatch_bench OUT`, with the
/// entry sizes in the environment as kpatch-build exports them.
pub(crate) fn command(
    bin: &Path,
    orig: &Path,
    patched: &Path,
    inputs: &RefInputs,
    sizes: &[(&str, u64)],
    out: &Path,
) -> Command {
    let mut c = Command::new(bin);
    c.arg(orig)
        .arg(patched)
        .arg("vmlinux")
        .arg(&inputs.symtab)
        .arg(&inputs.symvers)
        .arg("livepatch_bench")
        .arg(out);
    for (name, size) in sizes {
        c.env(name, size.to_string());
    }
    c
}
