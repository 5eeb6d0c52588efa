//! Reading Debian packages without dpkg and without installing them: a `.deb` is an `ar`
//! archive whose `data.tar.<compression>` member holds the files. [`extract_all`] unpacks a
//! package below a directory (symlinks kept as they are, absolute ones included: lp-build
//! resolves them relative to that directory); [`extract_one`] takes one file out and stops
//! reading the package as soon as that file is written (the debug package's vmlinux sits near
//! the start of a 1 GB archive).
//!
//! The bytes read here are untrusted: a malformed archive is an error value, never a panic, and
//! nothing is read into memory whole (tar's `unpack` refuses paths that leave the directory).

use anyhow::{bail, Context, Result};
use std::fs;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

/// What [`extract_one`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TakenOut {
    /// Size of the file written.
    pub size: u64,
    /// Bytes of the package read before stopping.
    pub package_bytes_read: u64,
    /// The package's size on disk.
    pub package_size: u64,
}

/// A reader that counts what went through it.
struct Counting<R> {
    inner: R,
    count: std::rc::Rc<std::cell::Cell<u64>>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.set(self.count.get().saturating_add(n as u64));
        Ok(n)
    }
}

/// Opens `deb`, finds its `data.tar.*` member and hands `f` the decompressed tar stream.
/// Returns `f`'s result and the bytes of the package read.
fn with_data_tar<T>(deb: &Path, f: impl FnOnce(&mut dyn Read) -> Result<T>) -> Result<(T, u64)> {
    let file = fs::File::open(deb).with_context(|| format!("cannot open {}", deb.display()))?;
    let count = std::rc::Rc::new(std::cell::Cell::new(0));
    let counting = Counting {
        inner: file,
        count: count.clone(),
    };
    let mut archive = ar::Archive::new(BufReader::with_capacity(1 << 16, counting));
    while let Some(entry) = archive.next_entry() {
        let mut entry = entry.with_context(|| {
            format!(
                "{}: not a readable ar archive (a truncated or corrupt download? remove it to fetch it again)",
                deb.display()
            )
        })?;
        let name = String::from_utf8_lossy(entry.header().identifier()).into_owned();
        let Some(compression) = name.strip_prefix("data.tar") else {
            continue;
        };
        let out = match compression {
            ".xz" => {
                let mut r = liblzma::read::XzDecoder::new(&mut entry);
                f(&mut r)
            }
            "" => f(&mut entry),
            other => bail!(
                "{}: data.tar{other} is compressed in a way this reader does not know (it reads \
                 data.tar.xz and data.tar; Debian's kernel packages use xz)",
                deb.display()
            ),
        }
        .with_context(|| format!("reading {} of {}", name, deb.display()))?;
        return Ok((out, count.get()));
    }
    bail!(
        "{}: no data.tar member (not a Debian package?)",
        deb.display()
    )
}

/// Unpacks every file of `deb` below `root` (created if needed); symlinks are kept as they are.
pub fn extract_all(deb: &Path, root: &Path) -> Result<()> {
    fs::create_dir_all(root).with_context(|| format!("cannot create {}", root.display()))?;
    with_data_tar(deb, |r| {
        let mut tar = tar::Archive::new(r);
        tar.set_preserve_permissions(false);
        tar.set_overwrite(true);
        tar.unpack(root)
            .with_context(|| format!("unpacking into {}", root.display()))
    })?;
    Ok(())
}

/// `./usr/lib/x` and `usr/lib/x` are the same member.
fn member_name(path: &Path) -> PathBuf {
    path.components()
        .filter(|c| !matches!(c, std::path::Component::CurDir))
        .collect()
}

/// Writes the member `member` (a regular file, `usr/lib/...` or `./usr/lib/...`) of `deb` to
/// `dest` and stops reading the package there. `dest` appears only once complete.
pub fn extract_one(deb: &Path, member: &str, dest: &Path) -> Result<TakenOut> {
    let want = member_name(Path::new(member));
    let package_size = fs::metadata(deb)
        .with_context(|| format!("cannot read {}", deb.display()))?
        .len();
    if let Some(dir) = dest.parent() {
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let tmp = dest.with_extension("part");
    let (size, read) = with_data_tar(deb, |r| {
        let mut tar = tar::Archive::new(r);
        for entry in tar.entries().context("reading the tar stream")? {
            let mut entry = entry.context("reading a tar header")?;
            let path = entry.path().context("a tar member's path")?;
            if member_name(&path) != want {
                continue;
            }
            if entry.header().entry_type() != tar::EntryType::Regular {
                bail!(
                    "{member} is not a regular file in the package ({:?})",
                    entry.header().entry_type()
                );
            }
            let size = entry.size();
            entry
                .unpack(&tmp)
                .with_context(|| format!("writing {}", tmp.display()))?;
            // Stop here: the rest of the archive is not read.
            return Ok(size);
        }
        bail!("the package has no {member}")
    })
    .inspect_err(|_| {
        let _ = fs::remove_file(&tmp);
    })?;
    fs::rename(&tmp, dest)
        .with_context(|| format!("cannot rename {} to {}", tmp.display(), dest.display()))?;
    Ok(TakenOut {
        size,
        package_bytes_read: read,
        package_size,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Write;

    /// A scratch directory removed on drop.
    pub(crate) struct Scratch(pub PathBuf);
    impl Scratch {
        pub(crate) fn new(tag: &str) -> Scratch {
            let d = std::env::temp_dir().join(format!("lp-deb-{tag}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&d);
            fs::create_dir_all(&d).unwrap();
            Scratch(d)
        }
    }
    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    /// Pseudo-random bytes that xz cannot shrink much (a stand-in for the rest of a package).
    fn noise(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    /// A package as dpkg-deb builds one: debian-binary, control.tar.xz, data.tar.xz with these
    /// files (`(path, Some(contents))`) and symlinks (`(path, None)` with the target after `->`).
    pub(crate) fn make_deb(path: &Path, files: &[(&str, &[u8])], links: &[(&str, &str)]) {
        let mut tar = tar::Builder::new(Vec::new());
        for dir in ["./", "./usr/", "./usr/lib/", "./lib/", "./lib/modules/"] {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Directory);
            h.set_mode(0o755);
            h.set_size(0);
            tar.append_data(&mut h, dir, std::io::empty()).unwrap();
        }
        for (name, data) in files {
            let mut h = tar::Header::new_gnu();
            h.set_mode(0o644);
            h.set_size(data.len() as u64);
            tar.append_data(&mut h, name, *data).unwrap();
        }
        for (name, target) in links {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_size(0);
            tar.append_link(&mut h, name, target).unwrap();
        }
        let data = tar.into_inner().unwrap();
        let mut xz = liblzma::write::XzEncoder::new(Vec::new(), 1);
        xz.write_all(&data).unwrap();
        let data = xz.finish().unwrap();
        let mut out = ar::Builder::new(fs::File::create(path).unwrap());
        let member = |name: &str, len: usize| ar::Header::new(name.as_bytes().to_vec(), len as u64);
        out.append(&member("debian-binary", 4), &b"2.0\n"[..])
            .unwrap();
        out.append(&member("control.tar.xz", 0), &b""[..]).unwrap();
        out.append(&member("data.tar.xz", data.len()), &data[..])
            .unwrap();
    }

    #[test]
    fn extracts_everything_and_keeps_symlinks() {
        let s = Scratch::new("all");
        let deb = s.0.join("p.deb");
        make_deb(
            &deb,
            &[("./usr/lib/a.txt", b"alpha"), ("./lib/modules/m.ko", b"ko")],
            &[
                ("./lib/modules/build", "/usr/src/linux-headers-R"),
                ("./usr/lib/rel", "a.txt"),
            ],
        );
        let root = s.0.join("root");
        extract_all(&deb, &root).unwrap();
        assert_eq!(fs::read(root.join("usr/lib/a.txt")).unwrap(), b"alpha");
        assert_eq!(fs::read(root.join("lib/modules/m.ko")).unwrap(), b"ko");
        // Absolute symlinks stay absolute (they are resolved inside ROOT by their reader).
        assert_eq!(
            fs::read_link(root.join("lib/modules/build")).unwrap(),
            Path::new("/usr/src/linux-headers-R")
        );
        assert_eq!(
            fs::read_link(root.join("usr/lib/rel")).unwrap(),
            Path::new("a.txt")
        );
    }

    #[test]
    fn takes_one_file_and_stops_reading() {
        let s = Scratch::new("one");
        let deb = s.0.join("dbg.deb");
        let vmlinux = noise(64 << 10, 7);
        let rest = noise(4 << 20, 9);
        make_deb(
            &deb,
            &[
                ("./usr/lib/debug/boot/vmlinux-R", &vmlinux),
                ("./usr/lib/debug/lib/modules/big.ko", &rest),
            ],
            &[],
        );
        let dest = s.0.join("out/vmlinux-R");
        let t = extract_one(&deb, "./usr/lib/debug/boot/vmlinux-R", &dest).unwrap();
        assert_eq!(fs::read(&dest).unwrap(), vmlinux);
        assert_eq!(t.size, vmlinux.len() as u64);
        // Read: about the file itself and buffers, far less than the 4 MiB that follow it.
        assert!(
            t.package_bytes_read < t.package_size / 2,
            "read {} of {} bytes",
            t.package_bytes_read,
            t.package_size
        );
        // Same member named without `./`; a missing member is an error naming it.
        extract_one(&deb, "usr/lib/debug/boot/vmlinux-R", &dest).unwrap();
        let err = format!(
            "{:#}",
            extract_one(&deb, "./boot/none", &s.0.join("none")).unwrap_err()
        );
        assert!(err.contains("the package has no ./boot/none"), "{err}");
        assert!(!s.0.join("none").exists() && !s.0.join("none.part").exists());
    }

    #[test]
    fn corrupt_packages_are_errors() {
        let s = Scratch::new("bad");
        let good = s.0.join("good.deb");
        make_deb(&good, &[("./usr/lib/a.txt", &noise(100_000, 3))], &[]);
        let bytes = fs::read(&good).unwrap();
        // Not an ar archive; truncated in the data member; a flipped byte in the xz stream.
        let mut flipped = bytes.clone();
        let at = flipped.len() - 2000;
        flipped[at] ^= 0x55;
        for (name, data) in [
            ("garbage", b"this is not a package".to_vec()),
            ("truncated", bytes[..bytes.len() / 2].to_vec()),
            ("flipped", flipped),
        ] {
            let deb = s.0.join(format!("{name}.deb"));
            fs::write(&deb, &data).unwrap();
            assert!(
                extract_all(&deb, &s.0.join(format!("root-{name}"))).is_err(),
                "{name}"
            );
            assert!(
                extract_one(&deb, "usr/lib/a.txt", &s.0.join(name)).is_err(),
                "{name}"
            );
            assert!(!s.0.join(name).exists(), "{name}: partial output left");
        }
    }
}
