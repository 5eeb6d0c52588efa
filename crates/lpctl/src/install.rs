//! `lpctl install` / `uninstall` / `load --all`: livepatches kept for a kernel release in
//! `/var/lib/lpctl/<release>/<name>.ko`, loaded again at boot by `lpctl load --all` (the
//! systemd unit `dist/lpctl.service`), as kpatch keeps its patches in `/var/lib/kpatch`.
//!
//! `install` also enables that unit when it is installed and not yet enabled, as `kpatch
//! install` runs `systemctl enable kpatch.service`: it makes the links of the unit's `WantedBy=`
//! (`/etc/systemd/system/multi-user.target.wants/lpctl.service`), as `systemctl enable` does,
//! so it also works in a chroot or an image where systemd is not running.
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
    let bytes = fs::read(file).map_err(|e| io(format!("reading {}", file.display()), e))?;
    // A compressed module keeps its compression (and its suffix).
    let suffix = crate::compress::detect(&bytes).map_or("", |c| c.suffix());
    let dest = dir.join(format!("{}.ko{suffix}", id.name));
    if let Some(other) = installed(sys, Some(&release))?
        .into_iter()
        .find(|f| *f != dest && module_name_of(f) == id.name.replace('-', "_"))
    {
        return Err(Error::new(
            ErrorClass::Refused,
            format!(
                "{} is already installed for {release} as {}",
                id.name,
                other.display()
            ),
        )
        .hint(format!("lpctl uninstall -k {release} {} first", id.name)));
    }
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
    let want = crate::compress::strip_module_suffix(name).replace('-', "_");
    for f in installed(sys, Some(&release))? {
        if module_name_of(&f) == want {
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
            p.file_name().is_some_and(|n| {
                let n = n.to_string_lossy();
                !n.starts_with('.') && crate::compress::strip_module_suffix(&n).len() < n.len()
            })
        })
        .collect();
    out.sort();
    Ok(out)
}

/// The module name of an installed file (`fix-a.ko.xz` -> `fix_a`).
pub(crate) fn module_name_of(f: &Path) -> String {
    let n = f
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    crate::compress::strip_module_suffix(&n).replace('-', "_")
}

/// The boot unit's file name.
pub const UNIT: &str = "lpctl.service";

/// Where systemd finds units, in its order of precedence (the Debian package installs it in
/// `/lib/systemd/system`).
pub const UNIT_DIRS: &[&str] = &[
    "/etc/systemd/system",
    "/usr/lib/systemd/system",
    "/lib/systemd/system",
];

/// What [`enable_boot_service`] found or did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootService {
    /// The unit is installed; these links (`link`, its target) were made now.
    Enabled(Vec<(PathBuf, PathBuf)>),
    /// The unit is installed and every link of its `WantedBy=` was already there.
    AlreadyEnabled,
    /// The unit is installed but has no `WantedBy=`: nothing to enable.
    NoInstallSection(PathBuf),
    /// No `lpctl.service` in any of [`UNIT_DIRS`].
    NotInstalled,
}

/// The targets of a unit's `WantedBy=` lines in its `[Install]` section.
pub fn wanted_by(unit: &str) -> Vec<String> {
    let mut section = "";
    let mut out = Vec::new();
    for line in unit.lines() {
        let line = line.trim();
        if line.starts_with('[') && line.ends_with(']') {
            section = line;
        } else if section == "[Install]" {
            if let Some(v) = line.strip_prefix("WantedBy=") {
                out.extend(v.split_whitespace().map(String::from));
            }
        }
    }
    out
}

/// Enables `lpctl.service` as `systemctl enable` would: for each target `T` of its
/// `WantedBy=`, the link `/etc/systemd/system/T.wants/lpctl.service` to the unit.
pub fn enable_boot_service(sys: &Sys) -> Result<BootService> {
    let Some(dir) = UNIT_DIRS.iter().find(|d| sys.path(d).join(UNIT).is_file()) else {
        return Ok(BootService::NotInstalled);
    };
    let unit = Path::new(dir).join(UNIT);
    let text = fs::read_to_string(sys.path(&unit.to_string_lossy()))
        .map_err(|e| io(format!("reading {}", unit.display()), e))?;
    let targets = wanted_by(&text);
    if targets.is_empty() {
        return Ok(BootService::NoInstallSection(unit));
    }
    let mut made = Vec::new();
    for t in targets {
        if t.is_empty() || t.contains('/') || t.starts_with('.') {
            return Err(Error::new(
                ErrorClass::Io,
                format!("{}: WantedBy={t} is not a unit name", unit.display()),
            ));
        }
        let wants = sys.path(&format!("/etc/systemd/system/{t}.wants"));
        let link = wants.join(UNIT);
        if fs::symlink_metadata(&link).is_ok() {
            continue;
        }
        fs::create_dir_all(&wants).map_err(|e| io(format!("creating {}", wants.display()), e))?;
        std::os::unix::fs::symlink(&unit, &link)
            .map_err(|e| io(format!("creating {}", link.display()), e))?;
        made.push((
            PathBuf::from(format!("/etc/systemd/system/{t}.wants/{UNIT}")),
            unit.clone(),
        ));
    }
    Ok(if made.is_empty() {
        BootService::AlreadyEnabled
    } else {
        BootService::Enabled(made)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wanted_by_reads_the_install_section_only() {
        let unit = "[Unit]\nWantedBy=not-here.target\n[Service]\nExecStart=/x\n\
                    [Install]\nWantedBy=multi-user.target  other.target\nWantedBy=third.target\n";
        assert_eq!(
            wanted_by(unit),
            ["multi-user.target", "other.target", "third.target"]
        );
        assert!(wanted_by("[Service]\nExecStart=/x\n").is_empty());
        // The shipped unit is enabled for multi-user.target.
        assert_eq!(
            wanted_by(include_str!("../dist/lpctl.service")),
            ["multi-user.target"]
        );
    }
}
