//! A distribution's kernel, found from its packages (Debian's and Ubuntu's layout): the headers
//! package (`.config`, `Module.symvers`, kbuild for external modules), the debug package's
//! vmlinux (symbols), the image package's modules (`.ko`, `.ko.xz`, `.ko.zst`) and the source
//! package's tarball.
//!
//! Everything is looked up under a root (`/`, or a directory holding `dpkg -x` of each package),
//! and absolute symlinks inside the root (`lib/modules/R/build -> /usr/src/linux-headers-R`) are
//! read relative to it ([`resolve_in_root`]), so packages extracted for another machine work as
//! installed ones.
//!
//! Why the debug package's vmlinux and not `System.map` (which the image package ships): the
//! livepatch position of a local symbol whose name repeats (`sympos`) is its rank among the
//! same-named symbols in kallsyms order, and knowing which of them is the patched file's needs
//! the `STT_FILE` symbols of the symbol table, which `System.map` does not have; the check that
//! a patched function holds exactly one ftrace call site reads `__mcount_loc`, and the module's
//! vermagic check reads the kernel's own `vermagic` string. With `System.map` a repeated local
//! name could silently get the wrong position, so lp-build requires the debug vmlinux.

use crate::exit::{fail_hint, Status};
use anyhow::Result;
use std::ffi::OsString;
use std::fs;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

/// Where the kernel's source comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The source package's tarball, with the package's version (from its Debian changelog)
    /// when known.
    Tarball {
        /// `/usr/src/linux-source-6.12.tar.xz`.
        path: PathBuf,
        /// `6.12.117-1~deb12u1`.
        package_version: Option<String>,
    },
    /// A source tree given with `-s` or the current directory (may be built in place: lp-build
    /// works from its own copy).
    Tree(PathBuf),
}

/// A distribution kernel's inputs.
#[derive(Debug, Clone)]
pub struct Packaged {
    /// The root the packages are installed or extracted in.
    pub root: PathBuf,
    /// `6.12.117+deb12-amd64`.
    pub release: String,
    /// The headers package's build directory (resolved inside the root).
    pub headers: PathBuf,
    /// Its `.config`.
    pub config: PathBuf,
    /// Its `Module.symvers`.
    pub symvers: PathBuf,
    /// The debug vmlinux.
    pub vmlinux: PathBuf,
    /// `<root>/lib/modules/<release>`.
    pub modules: PathBuf,
    /// The source.
    pub source: Source,
}

/// Resolves `path` (absolute or relative to `root`) inside `root`: every symlink on the way is
/// followed, an absolute target is read relative to `root`, and `..` never leaves `root`.
/// `None` when a component is missing or the symlinks loop.
pub fn resolve_in_root(root: &Path, path: &Path) -> Option<PathBuf> {
    let mut todo: Vec<OsString> = Vec::new();
    push_components(&mut todo, path);
    let mut cur = root.to_path_buf();
    let mut hops = 0u32;
    while let Some(c) = todo.pop() {
        if c == ".." {
            if cur != root {
                cur.pop();
            }
            continue;
        }
        let next = cur.join(&c);
        let meta = fs::symlink_metadata(&next).ok()?;
        if meta.file_type().is_symlink() {
            hops += 1;
            if hops > 40 {
                return None;
            }
            let target = fs::read_link(&next).ok()?;
            if target.is_absolute() {
                cur = root.to_path_buf();
            }
            push_components(&mut todo, &target);
        } else {
            cur = next;
        }
    }
    Some(cur)
}

/// Pushes the normal and `..` components of `p` so that the first is popped first.
fn push_components(todo: &mut Vec<OsString>, p: &Path) {
    for c in p.components().rev() {
        match c {
            Component::Normal(n) => todo.push(n.to_os_string()),
            Component::ParentDir => todo.push(OsString::from("..")),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
}

/// The release of the running kernel.
pub fn running_release() -> Option<String> {
    fs::read_to_string("/proc/sys/kernel/osrelease")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// The release to build for under `root` when none is given: the running kernel's for `/`, else
/// the only one the root has modules for.
pub fn default_release(root: &Path) -> Result<String> {
    if root == Path::new("/") {
        return running_release().ok_or_else(|| {
            fail_hint(
                Status::Usage,
                "cannot read the running kernel's release from /proc/sys/kernel/osrelease",
                "pass the release to build for with -K/--kernel-release",
            )
        });
    }
    let dir = resolve_in_root(root, Path::new("lib/modules"));
    let mut found: Vec<String> = dir
        .and_then(|d| fs::read_dir(d).ok())
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| e.path().is_dir())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(fail_hint(
            Status::Input,
            format!(
                "{} has no kernel (no lib/modules/<release>)",
                root.display()
            ),
            "extract the kernel's image package there (dpkg -x linux-image-<release>_*.deb DIR) \
             or pass -K/--kernel-release",
        )),
        _ => Err(fail_hint(
            Status::Usage,
            format!(
                "{} has several kernels ({}): which one?",
                root.display(),
                found.join(", ")
            ),
            "pass the release to build for with -K/--kernel-release",
        )),
    }
}

/// Whether `/lib/modules/<release>/build` (under `root`) is a headers package rather than a
/// complete build directory: it has no `modules.order` (kbuild writes one in every build).
pub fn build_link_is_headers(root: &Path, release: &str) -> bool {
    match resolve_in_root(root, &Path::new("lib/modules").join(release).join("build")) {
        Some(d) => d.join("Module.symvers").is_file() && !d.join("modules.order").exists(),
        None => false,
    }
}

/// `6.12.117+deb12-amd64` -> `6.12`.
pub fn series(release: &str) -> Option<String> {
    let mut it = release.split(|c: char| !c.is_ascii_digit());
    let a = it.next().filter(|s| !s.is_empty())?;
    let b = it.next().filter(|s| !s.is_empty())?;
    Some(format!("{a}.{b}"))
}

/// What the debug package is called (for the hint when vmlinux is missing).
fn dbg_package(release: &str) -> String {
    format!(
        "linux-image-{release}-dbg (Debian; Ubuntu: linux-image-unsigned-{release}-dbgsym from \
         the ddebs archive)"
    )
}

/// Finds every input of `release` under `root`. `vmlinux` and `source` override the lookup.
pub fn find(
    root: &Path,
    release: &str,
    vmlinux: Option<&Path>,
    source: Option<&Path>,
    cwd: &Path,
) -> Result<Packaged> {
    let root = fs::canonicalize(root).map_err(|e| {
        fail_hint(
            Status::Input,
            format!("--root {}: {e}", root.display()),
            "pass the directory the packages are extracted in",
        )
    })?;
    let headers = [
        PathBuf::from(format!("lib/modules/{release}/build")),
        PathBuf::from(format!("usr/src/linux-headers-{release}")),
    ]
    .iter()
    .filter_map(|p| resolve_in_root(&root, p))
    .find(|d| d.join(".config").is_file() && d.join("Module.symvers").is_file())
    .ok_or_else(|| {
        fail_hint(
            Status::Input,
            format!(
                "no kernel headers for {release} under {} (neither lib/modules/{release}/build \
                 nor usr/src/linux-headers-{release} has .config and Module.symvers)",
                root.display()
            ),
            format!("install linux-headers-{release}"),
        )
    })?;
    // The release the kernel reports (and vermagic carries) is UTS_RELEASE: Debian's 6.1
    // headers say `6.1.192` in include/config/kernel.release but `6.1.0-57-amd64` there.
    let uts = fs::read_to_string(headers.join("include/generated/utsrelease.h"))
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                let v = l.strip_prefix("#define UTS_RELEASE ")?.trim();
                Some(v.trim_matches('"').to_string())
            })
        });
    let reported =
        uts.or_else(|| fs::read_to_string(headers.join("include/config/kernel.release")).ok());
    if let Some(r) = reported {
        let r = r.trim();
        if r != release {
            return Err(fail_hint(
                Status::Input,
                format!(
                    "the headers in {} are for kernel {r}, not {release}",
                    headers.display()
                ),
                format!("install linux-headers-{release}"),
            ));
        }
    }
    let vmlinux = match vmlinux {
        Some(v) => v.to_path_buf(),
        None => [
            format!("usr/lib/debug/boot/vmlinux-{release}"),
            format!("usr/lib/debug/lib/modules/{release}/vmlinux"),
        ]
        .iter()
        .filter_map(|p| resolve_in_root(&root, Path::new(p)))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            fail_hint(
                Status::Input,
                format!(
                    "no debug vmlinux for {release} under {} (usr/lib/debug/boot/vmlinux-{release})",
                    root.display()
                ),
                format!(
                    "install {}: lp-build needs the kernel's full symbol table, or pass the \
                     unstripped vmlinux with -v",
                    dbg_package(release)
                ),
            )
        })?,
    };
    let modules = resolve_in_root(&root, &Path::new("lib/modules").join(release))
        .filter(|d| d.is_dir())
        .ok_or_else(|| {
            fail_hint(
                Status::Input,
                format!("no lib/modules/{release} under {}", root.display()),
                format!("install linux-image-{release} (its modules are read for module patches)"),
            )
        })?;
    let source = match source {
        Some(s) if s.is_file() => Source::Tarball {
            path: s.to_path_buf(),
            package_version: None,
        },
        Some(s) => Source::Tree(s.to_path_buf()),
        None if cwd.join("Makefile").is_file() && cwd.join("Kconfig").is_file() => {
            Source::Tree(cwd.to_path_buf())
        }
        None => {
            let series = series(release).unwrap_or_else(|| release.to_string());
            let tarball = ["tar.xz", "tar.bz2", "tar.gz"]
                .iter()
                .filter_map(|ext| {
                    resolve_in_root(
                        &root,
                        Path::new(&format!("usr/src/linux-source-{series}.{ext}")),
                    )
                })
                .find(|p| p.is_file())
                .ok_or_else(|| {
                    fail_hint(
                        Status::Input,
                        format!(
                            "no kernel source: the current directory is not a kernel tree and \
                             {} has no usr/src/linux-source-{series}.tar.xz",
                            root.display()
                        ),
                        format!(
                            "install linux-source-{series} (the version of the running kernel's \
                             image), or pass the source tree or tarball with -s"
                        ),
                    )
                })?;
            let changelog = resolve_in_root(
                &root,
                Path::new(&format!(
                    "usr/share/doc/linux-source-{series}/changelog.Debian.gz"
                )),
            );
            Source::Tarball {
                path: tarball,
                package_version: changelog.and_then(|c| changelog_version(&c)),
            }
        }
    };
    Ok(Packaged {
        config: headers.join(".config"),
        symvers: headers.join("Module.symvers"),
        root,
        release: release.to_string(),
        headers,
        vmlinux,
        modules,
        source,
    })
}

/// The version of the first entry of a Debian changelog (`linux (6.12.117-1~deb12u1) ...`),
/// gzip-compressed or not.
pub fn changelog_version(path: &Path) -> Option<String> {
    let data = fs::read(path).ok()?;
    let mut text = String::new();
    if data.starts_with(&[0x1f, 0x8b]) {
        flate2::read::GzDecoder::new(&data[..])
            .take(64 << 10)
            .read_to_string(&mut text)
            .ok()?;
    } else {
        text = String::from_utf8_lossy(&data[..data.len().min(64 << 10)]).into_owned();
    }
    parse_changelog_version(&text)
}

/// `linux (6.12.117-1~deb12u1) bookworm-security; urgency=high` -> `6.12.117-1~deb12u1`.
pub fn parse_changelog_version(text: &str) -> Option<String> {
    let line = text.lines().find(|l| !l.trim().is_empty())?;
    let open = line.find('(')?;
    let close = line[open..].find(')')? + open;
    let v = line[open + 1..close].trim();
    (!v.is_empty()).then(|| v.to_string())
}

/// What the kernel's banner (`linux_banner`, also `/proc/version`) says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Banner {
    /// `6.12.117+deb12-amd64`.
    pub release: String,
    /// The distribution's package version (`6.12.117-1~deb12u1`), when the banner has one
    /// (`... Debian 6.12.117-1~deb12u1 (2025-11-14)`; Ubuntu: `#57-Ubuntu ...` has none).
    pub package_version: Option<String>,
}

/// Finds the banner in vmlinux's bytes.
pub fn banner(vmlinux: &[u8]) -> Option<Banner> {
    let needle = b"Linux version ";
    let at = vmlinux.windows(needle.len()).position(|w| w == needle)?;
    let rest = &vmlinux[at..];
    let end = rest.iter().position(|b| *b == 0 || *b == b'\n')?;
    parse_banner(&String::from_utf8_lossy(&rest[..end.min(512)]))
}

/// Parses `Linux version R (...) ... #1 SMP ... Debian V (date)`.
pub fn parse_banner(line: &str) -> Option<Banner> {
    let rest = line.strip_prefix("Linux version ")?;
    let release = rest.split_whitespace().next()?.to_string();
    let package_version = rest
        .rfind(" Debian ")
        .and_then(|i| rest[i + " Debian ".len()..].split_whitespace().next())
        .map(str::to_string);
    Some(Banner {
        release,
        package_version,
    })
}

/// The upstream part of a Debian version: `6.12.117-1~deb12u1` -> `6.12.117`.
pub fn upstream_version(package_version: &str) -> &str {
    package_version
        .split_once('-')
        .map_or(package_version, |(u, _)| u)
}

/// The image's kernel and the source agree: the same release for vmlinux, and the same package
/// version for the source package (or the same upstream version for a tree, whose Debian
/// revision cannot be known).
pub fn check_versions(
    p: &Packaged,
    banner: Option<&Banner>,
    source_version: Option<&str>,
) -> Result<()> {
    let Some(b) = banner else {
        return Err(fail_hint(
            Status::Input,
            format!(
                "{} has no kernel banner (\"Linux version ...\")",
                p.vmlinux.display()
            ),
            format!(
                "pass the kernel's debug vmlinux ({})",
                dbg_package(&p.release)
            ),
        ));
    };
    if b.release != p.release {
        return Err(fail_hint(
            Status::Input,
            format!(
                "{} is the vmlinux of kernel {}, not {}",
                p.vmlinux.display(),
                b.release,
                p.release
            ),
            format!("install {}", dbg_package(&p.release)),
        ));
    }
    if let (
        Source::Tarball {
            path,
            package_version: Some(src),
        },
        Some(img),
    ) = (&p.source, &b.package_version)
    {
        if src != img {
            let series = series(&p.release).unwrap_or_default();
            return Err(fail_hint(
                Status::Input,
                format!(
                    "the source package {} is version {src} but kernel {} is {img}: its code \
                     would not match the running kernel",
                    path.display(),
                    p.release
                ),
                format!("install linux-source-{series}={img} (the image's version)"),
            ));
        }
    }
    if let (Some(src), Some(img)) = (source_version, &b.package_version) {
        let up = upstream_version(img);
        if src != up {
            return Err(fail_hint(
                Status::Input,
                format!(
                    "the kernel source is version {src} but kernel {} was built from {up} \
                     (Debian {img})",
                    p.release
                ),
                "use the source of the image's version (its source package, or a tree at that \
                 version)",
            ));
        }
    }
    Ok(())
}

/// A module of the image package: `name` (`binfmt_misc`) -> its file under
/// `lib/modules/<release>/` through `modules.order` (`kernel/fs/binfmt_misc.ko`, shipped as
/// `.ko.xz` / `.ko.zst` / `.ko.gz` or plain).
pub fn module_file(p: &Packaged, name: &str) -> Result<PathBuf> {
    let order = p.modules.join("modules.order");
    let text = String::from_utf8_lossy(&crate::input::read_input(
        &order,
        "modules.order",
        crate::input::Kind::Text,
        &format!("install linux-image-{}", p.release),
    )?)
    .into_owned();
    let entry = text
        .lines()
        .map(str::trim)
        .find(|l| {
            let base = l.rsplit('/').next().unwrap_or(l);
            let base = base.strip_suffix(".ko").unwrap_or(base);
            base.replace('-', "_") == name
        })
        .ok_or_else(|| {
            fail_hint(
                Status::Input,
                format!(
                    "the patch changes module {name}, which kernel {} does not have ({} does not \
                     list it)",
                    p.release,
                    order.display()
                ),
                "the changed file is not built as a module in this kernel's configuration",
            )
        })?;
    for suffix in ["", ".xz", ".zst", ".gz"] {
        let f = p.modules.join(format!("{entry}{suffix}"));
        if f.is_file() {
            return Ok(f);
        }
    }
    Err(fail_hint(
        Status::Input,
        format!(
            "module {name} ({entry}) is listed in {} but missing under {}",
            order.display(),
            p.modules.display()
        ),
        format!("reinstall linux-image-{}", p.release),
    ))
}

/// A module file's ELF bytes, decompressed when compressed.
pub fn read_module(path: &Path) -> Result<Vec<u8>> {
    let bytes = crate::input::read_input(
        path,
        "module",
        crate::input::Kind::Object,
        "the image package's module must be readable",
    )?;
    match lp_elf::compress::decompress(&bytes, lp_elf::compress::MAX_MODULE) {
        Ok(Some(d)) => Ok(d),
        Ok(None) => Ok(bytes),
        Err(e) => Err(fail_hint(
            Status::Input,
            format!("{}: {e}", path.display()),
            "the module file is damaged: reinstall the kernel's image package",
        )),
    }
}

/// An object's module, from the compiler command kbuild recorded beside it (`.<obj>.cmd`):
/// `Some(name)` when it was compiled for a module (`-DMODULE`, `KBUILD_MODNAME`), `None` for
/// built-in code.
pub fn object_module(build: &Path, object: &str) -> Option<String> {
    let p = Path::new(object);
    let file = p.file_name()?.to_string_lossy().into_owned();
    let cmd = build
        .join(p.parent().unwrap_or(Path::new("")))
        .join(format!(".{file}.cmd"));
    let text = fs::read_to_string(cmd).ok()?;
    let first = text.lines().next()?;
    if !first.contains("-DMODULE") {
        return None;
    }
    let i = first.find("-DKBUILD_MODNAME=")?;
    let v = &first[i + "-DKBUILD_MODNAME=".len()..];
    let v = v.split_whitespace().next()?;
    let name: String = v
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .collect();
    (!name.is_empty()).then_some(name)
}

/// The headers package as kbuild builds external modules against it (`make -C VIEW M=...`),
/// under the cache: links to every entry of the package's build directory, and its Makefile with
/// `include /usr/src/linux-headers-<ver>-common/Makefile` pointed inside the root. (The package's
/// own Makefile names the common package by absolute path, which is wrong for packages
/// extracted elsewhere than `/`.) Made once per root and release.
pub fn headers_view(cache_root: &Path, p: &Packaged) -> Result<PathBuf> {
    let identity = format!(
        "{}\n{}\n{}",
        p.root.display(),
        p.release,
        p.headers.display()
    );
    let hash = crate::fsutil::sha256_hex(identity.as_bytes());
    let view = cache_root
        .join("headers")
        .join(hash.get(..16).unwrap_or(&hash));
    let stamp = view.join(".lp-view");
    if fs::read_to_string(&stamp).ok().as_deref() == Some(identity.as_str()) {
        return Ok(view);
    }
    let makefile = fs::read_to_string(p.headers.join("Makefile")).map_err(|e| {
        fail_hint(
            Status::Input,
            format!("{}/Makefile: {e}", p.headers.display()),
            format!("reinstall linux-headers-{}", p.release),
        )
    })?;
    let mut rewritten = String::new();
    for line in makefile.lines() {
        match line.strip_prefix("include /") {
            Some(rest) => {
                let target = resolve_in_root(&p.root, Path::new(rest.trim())).ok_or_else(|| {
                    fail_hint(
                        Status::Input,
                        format!(
                            "{}/Makefile includes /{} which is not under {}",
                            p.headers.display(),
                            rest.trim(),
                            p.root.display()
                        ),
                        "install (or extract) the headers package's common part, e.g. \
                         linux-headers-<version>-common, and linux-kbuild-<version>",
                    )
                })?;
                rewritten.push_str(&format!("include {}\n", target.display()));
            }
            None => {
                rewritten.push_str(line);
                rewritten.push('\n');
            }
        }
    }
    let tmp = view.with_extension(format!("tmp{}", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(&tmp).map_err(|e| {
        fail_hint(
            Status::Input,
            format!("cannot create {}: {e}", tmp.display()),
            "set LP_BUILD_CACHE to a writable directory",
        )
    })?;
    for e in fs::read_dir(&p.headers)? {
        let e = e?;
        let name = e.file_name();
        if name == "Makefile" {
            continue;
        }
        std::os::unix::fs::symlink(e.path(), tmp.join(&name))?;
    }
    fs::write(tmp.join("Makefile"), rewritten)?;
    fs::write(tmp.join(".lp-view"), &identity)?;
    let _ = fs::remove_dir_all(&view);
    if fs::rename(&tmp, &view).is_err() {
        // Another run made it meanwhile.
        let _ = fs::remove_dir_all(&tmp);
    }
    Ok(view)
}

/// Options of the distribution's configuration that `make olddefconfig` may change on this
/// host without changing the code of the kernel's C objects: what the host's Rust toolchain and
/// pahole offer (BTF is debug information), and the compiler's text (the compiler itself is
/// compared separately).
fn host_dependent(option: &str) -> bool {
    option.starts_with("CONFIG_RUSTC_")
        || option == "CONFIG_RUST_IS_AVAILABLE"
        || option.starts_with("CONFIG_PAHOLE_")
        || option.starts_with("CONFIG_DEBUG_INFO_BTF")
        || option == "CONFIG_CC_VERSION_TEXT"
}

/// The options `make olddefconfig` changed in the distribution's configuration (`ours` is the
/// result), as `CONFIG_X: old -> new`, host-dependent ones left out.
pub fn config_differences(
    distro: &std::collections::BTreeMap<String, String>,
    ours: &std::collections::BTreeMap<String, String>,
) -> Vec<String> {
    let keys: std::collections::BTreeSet<&String> = distro.keys().chain(ours.keys()).collect();
    keys.into_iter()
        .filter(|k| !host_dependent(k))
        .filter_map(|k| {
            let a = distro.get(k);
            let b = ours.get(k);
            (a != b).then(|| {
                format!(
                    "{k}: {} -> {}",
                    a.map_or("unset", String::as_str),
                    b.map_or("unset", String::as_str)
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlinks_resolve_inside_the_root() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        fs::create_dir_all(root.join("usr/src/linux-headers-R")).unwrap();
        fs::create_dir_all(root.join("lib/modules/R")).unwrap();
        std::os::unix::fs::symlink("/usr/src/linux-headers-R", root.join("lib/modules/R/build"))
            .unwrap();
        std::os::unix::fs::symlink("../../../..", root.join("lib/modules/R/up")).unwrap();
        std::os::unix::fs::symlink("loop", root.join("loop")).unwrap();
        assert_eq!(
            resolve_in_root(root, Path::new("/lib/modules/R/build")),
            Some(root.join("usr/src/linux-headers-R"))
        );
        // `..` stops at the root.
        assert_eq!(
            resolve_in_root(root, Path::new("lib/modules/R/up/../usr")),
            Some(root.join("usr"))
        );
        assert_eq!(resolve_in_root(root, Path::new("loop")), None);
        assert_eq!(resolve_in_root(root, Path::new("missing")), None);
    }

    #[test]
    fn banners_and_changelogs() {
        let b = parse_banner(
            "Linux version 6.12.117+deb12-amd64 (debian-kernel@lists.debian.org) \
             (x86_64-linux-gnu-gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0, GNU ld (GNU Binutils \
             for Debian) 2.40) #1 SMP PREEMPT_DYNAMIC Debian 6.12.117-1~deb12u1 (2025-11-14)",
        )
        .unwrap();
        assert_eq!(b.release, "6.12.117+deb12-amd64");
        assert_eq!(b.package_version.as_deref(), Some("6.12.117-1~deb12u1"));
        let u =
            parse_banner("Linux version 6.8.0-50-generic (buildd@x) (gcc) #51-Ubuntu SMP").unwrap();
        assert_eq!(u.package_version, None);
        assert_eq!(
            parse_changelog_version("linux (6.1.192-3) bookworm-security; urgency=high\n"),
            Some("6.1.192-3".into())
        );
        assert_eq!(upstream_version("6.1.192-3"), "6.1.192");
        assert_eq!(series("6.12.117+deb12-amd64").as_deref(), Some("6.12"));
        assert_eq!(series("6.1.0-57-amd64").as_deref(), Some("6.1"));
        assert_eq!(series("x"), None);
    }

    #[test]
    fn configuration_changes_that_matter() {
        let distro = crate::tree::parse_config(
            "CONFIG_A=y\nCONFIG_RUSTC_VERSION=0\nCONFIG_CC_VERSION_TEXT=\"x-gcc-12 (D) 12\"\n\
             CONFIG_B=m\n",
        );
        let ours = crate::tree::parse_config(
            "CONFIG_A=y\nCONFIG_RUSTC_VERSION=109500\nCONFIG_CC_VERSION_TEXT=\"gcc (D) 12\"\n\
             CONFIG_C=y\n",
        );
        assert_eq!(
            config_differences(&distro, &ours),
            vec!["CONFIG_B: m -> unset", "CONFIG_C: unset -> y"]
        );
        assert!(config_differences(&distro, &distro).is_empty());
    }

    #[test]
    fn module_of_an_object_from_its_cmd_file() {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir_all(t.path().join("fs/proc")).unwrap();
        fs::write(
            t.path().join("fs/.binfmt_misc.o.cmd"),
            "savedcmd_fs/binfmt_misc.o := gcc -DMODULE -DKBUILD_BASENAME='\"binfmt_misc\"' \
             -DKBUILD_MODNAME='\"binfmt_misc\"' -D__KBUILD_MODNAME=kmod_binfmt_misc -c -o x\n",
        )
        .unwrap();
        fs::write(
            t.path().join("fs/proc/.cmdline.o.cmd"),
            "savedcmd_fs/proc/cmdline.o := gcc -DKBUILD_MODNAME='\"cmdline\"' -c -o x\n",
        )
        .unwrap();
        assert_eq!(
            object_module(t.path(), "fs/binfmt_misc.o").as_deref(),
            Some("binfmt_misc")
        );
        assert_eq!(object_module(t.path(), "fs/proc/cmdline.o"), None);
        assert_eq!(object_module(t.path(), "fs/none.o"), None);
    }
}
