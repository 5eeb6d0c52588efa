//! `lpctl install` / `uninstall` / `load --all`: livepatches kept for a kernel release in
//! `/var/lib/lpctl/<release>/<name>.ko`, loaded again at boot by `lpctl load --all` (the
//! systemd unit `dist/lpctl.service`), as kpatch keeps its patches in `/var/lib/kpatch`.
//!
//! Only files under the root ([`Sys`]) are touched: tests use a fake tree.

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{Error, ErrorClass, Result};
use crate::modinfo::read_module;
use crate::sysfs::Sys;

/// Where installed livepatches live, per kernel release.
pub const INSTALL_DIR: &str = "/var/lib/lpctl";

fn io(what: String, e: std::io::Error) -> Error {
    Error::new(ErrorClass::Io, format!("{what}: {e}"))
}

/// The running kernel's release (`/proc/sys/kernel/osrelease`).
pub fn running_release(sys: &Sys) -> Result<String> {
    let p = sys.path("/proc/sys/kernel/osrelease");
    let r = fs::read_to_string(&p).map_err(|e| io(format!("reading {}", p.display()), e))?;
    Ok(r.trim().to_string())
}

/// `/var/lib/lpctl/<release>` under the root. A release is one path component.
pub fn release_dir(sys: &Sys, release: &str) -> Result<PathBuf> {
    if release.is_empty() || release.contains('/') || release == "." || release == ".." {
        return Err(Error::new(
            ErrorClass::Usage,
            format!("{release:?} is not a kernel release"),
        )
        .hint("a release is what `uname -r` prints"));
    }
    Ok(sys.path(INSTALL_DIR).join(release))
}

fn release_or_running(sys: &Sys, release: Option<&str>) -> Result<String> {
    match release {
        Some(r) => Ok(r.to_string()),
        None => running_release(sys),
    }
}

/// `lpctl install FILE.ko [-k RELEASE]`: checks that the file is a livepatch built for that
/// release (its vermagic's first word), then copies it to `<release dir>/<name>.ko`. A module
/// of that name already installed is refused (uninstall it first), unless it is the same file.
pub fn install(sys: &Sys, file: &Path, release: Option<&str>) -> Result<PathBuf> {
    let id = read_module(file)?;
    id.require_livepatch(file)?;
    let release = release_or_running(sys, release)?;
    let built_for = id
        .vermagic
        .as_deref()
        .and_then(|v| v.split_whitespace().next())
        .unwrap_or("");
    if built_for != release {
        return Err(Error::new(
            ErrorClass::BadModule,
            format!(
                "{} is built for kernel {:?}, not {release}",
                file.display(),
                built_for
            ),
        )
        .hint("install it for its own kernel with -k RELEASE, or rebuild it for this one"));
    }
    let dir = release_dir(sys, &release)?;
    let dest = dir.join(format!("{}.ko", id.name));
    let bytes = fs::read(file).map_err(|e| io(format!("reading {}", file.display()), e))?;
    if let Ok(existing) = fs::read(&dest) {
        if existing == bytes {
            return Ok(dest);
        }
        return Err(Error::new(
            ErrorClass::Refused,
            format!("a different {} is already installed for {release}", id.name),
        )
        .hint(format!("lpctl uninstall -k {release} {} first", id.name)));
    }
    fs::create_dir_all(&dir).map_err(|e| io(format!("creating {}", dir.display()), e))?;
    // Written beside, then renamed: a crash never leaves half a module to load at boot.
    let tmp = dir.join(format!(".{}.ko.tmp", id.name));
    fs::write(&tmp, &bytes).map_err(|e| io(format!("writing {}", tmp.display()), e))?;
    fs::rename(&tmp, &dest).map_err(|e| io(format!("writing {}", dest.display()), e))?;
    Ok(dest)
}

/// `lpctl uninstall NAME [-k RELEASE]` (`-` and `_` are the same in module names).
pub fn uninstall(sys: &Sys, name: &str, release: Option<&str>) -> Result<PathBuf> {
    let release = release_or_running(sys, release)?;
    let want = name.trim_end_matches(".ko").replace('-', "_");
    for f in installed(sys, Some(&release))? {
        let stem = f
            .file_stem()
            .map(|s| s.to_string_lossy().replace('-', "_"))
            .unwrap_or_default();
        if stem == want {
            fs::remove_file(&f).map_err(|e| io(format!("removing {}", f.display()), e))?;
            return Ok(f);
        }
    }
    Err(Error::new(
        ErrorClass::NotFound,
        format!("{name} is not installed for kernel {release}"),
    )
    .hint("lpctl install lists nothing; see the files in /var/lib/lpctl/<release>/"))
}

/// The installed modules of a release, in file-name order.
pub fn installed(sys: &Sys, release: Option<&str>) -> Result<Vec<PathBuf>> {
    let release = release_or_running(sys, release)?;
    let dir = release_dir(sys, &release)?;
    let entries = match fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(format!("reading {}", dir.display()), e)),
    };
    let mut out: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.extension().is_some_and(|x| x == "ko")
                && !p
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    out.sort();
    Ok(out)
}
