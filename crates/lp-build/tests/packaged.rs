//! lp-build for a distribution kernel (`--root DIR -K RELEASE`), against a fake distribution
//! root built from the fake kernel tree of `common/`: the headers package (`.config`,
//! `Module.symvers`, a Makefile that includes the common part by absolute path), the debug
//! package's vmlinux (with the kernel banner), the image package's modules (`.ko.xz`) and the
//! source package's tarball with its Debian changelog, laid out as `dpkg -x` leaves them.
//!
//! What they prove: each bad input (no debug package, headers of another release, a source
//! package of another version than the image, another compiler, a damaged compressed module)
//! gets its one-line error naming what was found and what is needed, the input exit status,
//! and leaves nothing behind (no module written, the user's tree as found); a tree built in
//! place is used through lp-build's own copy.

mod common;

use common::*;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const RELEASE: &str = "6.12.0-1-amd64";
const VERSION: &str = "6.12.0-1";

struct Distro {
    f: Fake,
    root: PathBuf,
}

fn write(p: &Path, data: impl AsRef<[u8]>) {
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, data).unwrap();
}

fn xz(data: &[u8]) -> Vec<u8> {
    let mut c = Command::new("xz")
        .args(["-c", "-T1"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    c.stdin.take().unwrap().write_all(data).unwrap();
    let o = c.wait_with_output().unwrap();
    assert!(o.status.success());
    o.stdout
}

/// The debug vmlinux: the fake build's vmlinux with the kernel banner linked in.
fn debug_vmlinux(f: &Fake, release: &str, version: &str, out: &Path) {
    let banner = f.root.join("banner.c");
    fs::write(
        &banner,
        format!(
            "const char linux_banner[] = \"Linux version {release} (debian-kernel@lists.debian.org) \
             (gcc) #1 SMP PREEMPT_DYNAMIC Debian {version} (2025-11-14)\\n\";\n"
        ),
    )
    .unwrap();
    let obj = f.root.join("banner.o");
    run_ok(
        Command::new("gcc")
            .arg("-c")
            .arg("-o")
            .arg(&obj)
            .arg(&banner),
    );
    fs::create_dir_all(out.parent().unwrap()).unwrap();
    run_ok(
        Command::new("ld")
            .arg("-r")
            .arg("-o")
            .arg(out)
            .arg(f.user.join("vmlinux"))
            .arg(&obj),
    );
}

impl Distro {
    fn new() -> Distro {
        let f = Fake::new();
        let root = f.root.join("distro");
        let headers = root.join(format!("usr/src/linux-headers-{RELEASE}"));
        let common = root.join("usr/src/linux-headers-6.12.0-1-common");
        write(&headers.join(".config"), CONFIG);
        write(
            &headers.join("Module.symvers"),
            fs::read(f.user.join("Module.symvers")).unwrap(),
        );
        write(
            &headers.join("Makefile"),
            "include /usr/src/linux-headers-6.12.0-1-common/Makefile\n",
        );
        write(
            &headers.join("include/config/kernel.release"),
            format!("{RELEASE}\n"),
        );
        write(&common.join("Makefile"), FAKE_MAKEFILE);
        // The fake Makefile compiles external modules with -I$(srctree)/include: the view's.
        for (p, text) in PROBE_HEADERS {
            write(&headers.join(p), text);
        }
        let modules = root.join(format!("lib/modules/{RELEASE}"));
        std::os::unix::fs::symlink(format!("/usr/src/linux-headers-{RELEASE}"), {
            fs::create_dir_all(&modules).unwrap();
            modules.join("build")
        })
        .unwrap();
        write(
            &modules.join("modules.order"),
            "kernel/drivers/foo/foo.ko\n",
        );
        write(
            &modules.join("kernel/drivers/foo/foo.ko.xz"),
            xz(&fs::read(f.user.join("drivers/foo/foo.ko")).unwrap()),
        );
        debug_vmlinux(
            &f,
            RELEASE,
            VERSION,
            &root.join(format!("usr/lib/debug/boot/vmlinux-{RELEASE}")),
        );
        // The source package: a tarball of the tree as Debian ships it (no EXTRAVERSION).
        let staging = f.root.join("staging/linux-source-6.12");
        fs::create_dir_all(staging.parent().unwrap()).unwrap();
        run_ok(Command::new("cp").arg("-a").arg(&f.src).arg(&staging));
        let mk = fs::read_to_string(staging.join("Makefile")).unwrap();
        fs::write(
            staging.join("Makefile"),
            mk.replace("EXTRAVERSION = -fake", "EXTRAVERSION ="),
        )
        .unwrap();
        let tarball = root.join("usr/src/linux-source-6.12.tar.xz");
        fs::create_dir_all(tarball.parent().unwrap()).unwrap();
        run_ok(
            Command::new("tar")
                .arg("-cJf")
                .arg(&tarball)
                .arg("-C")
                .arg(f.root.join("staging"))
                .arg("linux-source-6.12"),
        );
        Distro::changelog(&root, VERSION);
        Distro { f, root }
    }

    fn changelog(root: &Path, version: &str) {
        let p = root.join("usr/share/doc/linux-source-6.12/changelog.Debian.gz");
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        let mut e = flate2_gz(format!(
            "linux ({version}) bookworm-security; urgency=high\n\n  * New upstream release\n"
        ));
        fs::write(&p, &mut e).unwrap();
    }

    fn run(&self, patch: &str, extra: &[&str]) -> Output {
        let p = self.f.patch("fix.diff", patch);
        Command::new(env!("CARGO_BIN_EXE_lp-build"))
            .arg(&p)
            .arg("--root")
            .arg(&self.root)
            .args(["-K", RELEASE])
            .arg("-o")
            .arg(self.f.root.join("out"))
            .args(["-j", "2"])
            .args(extra)
            .current_dir(&self.f.root)
            .env("LP_BUILD_CACHE", &self.f.cache)
            .output()
            .unwrap()
    }

    fn assert_nothing_written(&self, what: &str) {
        let out = self.f.root.join("out");
        let written: Vec<_> = fs::read_dir(&out)
            .map(|d| d.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(written.is_empty(), "{what}: wrote {written:?}");
    }
}

fn flate2_gz(text: String) -> Vec<u8> {
    let mut c = Command::new("gzip")
        .arg("-c")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    c.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    c.wait_with_output().unwrap().stdout
}

const FOO_PATCH: &str = "\
--- a/drivers/foo/foo.c
+++ b/drivers/foo/foo.c
@@ -1,5 +1,5 @@
 int foo_value;
 int foo_get(void)
 {
-\treturn foo_value;
+\treturn foo_value + 1;
 }
";

#[test]
fn missing_debug_package_is_named() {
    let d = Distro::new();
    fs::remove_dir_all(d.root.join("usr/lib/debug")).unwrap();
    let o = d.run(CMDLINE_PATCH, &[]);
    assert_failure(&o, 5, "error", &["no debug vmlinux for 6.12.0-1-amd64"]);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("linux-image-6.12.0-1-amd64-dbg"),
        "{}",
        text(&o)
    );
    d.assert_nothing_written("no debug package");
    assert!(
        !d.f.cache.join("sources").exists(),
        "the source was unpacked"
    );
}

#[test]
fn headers_of_another_release_are_refused() {
    let d = Distro::new();
    write(
        &d.root.join(format!(
            "usr/src/linux-headers-{RELEASE}/include/config/kernel.release"
        )),
        "6.12.0-2-amd64\n",
    );
    let o = d.run(CMDLINE_PATCH, &[]);
    assert_failure(
        &o,
        5,
        "error",
        &[
            "headers",
            "are for kernel 6.12.0-2-amd64, not 6.12.0-1-amd64",
        ],
    );
    d.assert_nothing_written("other headers");
}

#[test]
fn debug_vmlinux_of_another_release_is_refused() {
    let d = Distro::new();
    debug_vmlinux(
        &d.f,
        "6.12.0-9-amd64",
        "6.12.0-9",
        &d.root.join(format!("usr/lib/debug/boot/vmlinux-{RELEASE}")),
    );
    let o = d.run(CMDLINE_PATCH, &[]);
    assert_failure(
        &o,
        5,
        "error",
        &["vmlinux of kernel 6.12.0-9-amd64, not 6.12.0-1-amd64"],
    );
    d.assert_nothing_written("other vmlinux");
}

#[test]
fn source_package_of_another_version_is_refused_before_unpacking() {
    let d = Distro::new();
    Distro::changelog(&d.root, "6.12.0-2");
    let o = d.run(CMDLINE_PATCH, &[]);
    assert_failure(
        &o,
        5,
        "error",
        &["version 6.12.0-2 but kernel 6.12.0-1-amd64 is 6.12.0-1"],
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("linux-source-6.12=6.12.0-1"),
        "{}",
        text(&o)
    );
    d.assert_nothing_written("other source");
    assert!(
        !d.f.cache.join("sources").exists(),
        "the source was unpacked"
    );
}

#[test]
fn compiler_other_than_the_kernels_is_refused() {
    let d = Distro::new();
    let vmlinux = d.root.join(format!("usr/lib/debug/boot/vmlinux-{RELEASE}"));
    let comment = d.f.root.join("comment.bin");
    fs::write(&comment, b"GCC: (Other 1.2.3-4) 1.2.3\0").unwrap();
    let tmp = d.f.root.join("vmlinux.tmp");
    run_ok(
        Command::new("objcopy")
            .args(["--remove-section", ".comment", "--add-section"])
            .arg(format!(".comment={}", comment.display()))
            .arg(&vmlinux)
            .arg(&tmp),
    );
    fs::rename(&tmp, &vmlinux).unwrap();
    let o = d.run(CMDLINE_PATCH, &[]);
    assert_failure(
        &o,
        5,
        "error",
        &["compiler mismatch", "(Other 1.2.3-4) 1.2.3"],
    );
    d.assert_nothing_written("other compiler");
}

#[test]
fn damaged_compressed_module_is_refused() {
    let d = Distro::new();
    let ko = d.root.join(format!(
        "lib/modules/{RELEASE}/kernel/drivers/foo/foo.ko.xz"
    ));
    let mut bytes = fs::read(&ko).unwrap();
    let half = bytes.len() / 2;
    bytes.truncate(half);
    fs::write(&ko, &bytes).unwrap();
    let o = d.run(FOO_PATCH, &[]);
    assert_failure(
        &o,
        5,
        "error",
        &["foo.ko.xz", "cannot decompress the module (xz)"],
    );
    d.assert_nothing_written("damaged module");
    // The source package's tarball was unpacked into the cache, never into the root.
    assert!(d.f.cache.join("sources").is_dir());
}

#[test]
fn the_source_tarball_is_unpacked_once_and_only_patched_files_compile() {
    let d = Distro::new();
    let before = snapshot(&d.root, &all);
    let o = d.run(FOO_PATCH, &["--stop-after", "build"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("unpacking"), "{}", text(&o));
    assert!(
        err.contains("with the distribution's configuration"),
        "{}",
        text(&o)
    );
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "rebuilt drivers/foo/foo.o (module foo)",
        "{}",
        text(&o)
    );
    // Only the patched file's object was compiled: no other object in the prepared build.
    let objects: Vec<String> = snapshot(&d.f.cache, &all)
        .into_keys()
        .filter(|p| p.ends_with(".o") && p.contains("/build/"))
        .collect();
    assert_eq!(objects.len(), 1, "{objects:?}");
    assert!(
        objects[0].ends_with("build/drivers/foo/foo.o"),
        "{objects:?}"
    );
    // Warm: no unpack, no prepare.
    let o = d.run(FOO_PATCH, &["--stop-after", "build"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("unpacking"), "{}", text(&o));
    assert!(err.contains("reusing the prepared"), "{}", text(&o));
    assert_eq!(before, snapshot(&d.root, &all), "the packages changed");
}

#[test]
fn a_header_change_is_refused_for_a_packaged_kernel() {
    let d = Distro::new();
    let o = d.run(
        "--- a/include/linux/fake.h\n+++ b/include/linux/fake.h\n@@ -1,4 +1,5 @@\n #ifndef FAKE_H\n #define FAKE_H\n #define FAKE_ZERO 0\n+#define FAKE_ONE 1\n #endif\n",
        &[],
    );
    assert_failure(
        &o,
        3,
        "refused",
        &["include/linux/fake.h", "distribution kernel"],
    );
    d.assert_nothing_written("header change");
}

#[test]
fn a_tree_built_in_place_is_used_through_a_copy() {
    let d = Distro::new();
    // The user's tree, configured and built in place (kbuild would refuse O= from it).
    let tree = d.f.root.join("staging/linux-source-6.12");
    fs::write(tree.join(".config"), CONFIG).unwrap();
    for built in [
        "vmlinux",
        "fs/proc/cmdline.o",
        "fs/proc/.cmdline.o.cmd",
        "drivers/foo/foo.ko",
    ] {
        fs::copy(d.f.user.join(built), tree.join(built)).unwrap();
    }
    write(
        &tree.join("include/config/auto.conf"),
        "CONFIG_LIVEPATCH=y\n",
    );
    write(&tree.join("arch/x86/include/generated/asm/x.h"), "\n");
    let before = snapshot(&tree, &all);
    let o = d.run(
        CMDLINE_PATCH,
        &["-s", tree.to_str().unwrap(), "--stop-after", "build"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "rebuilt fs/proc/cmdline.o (vmlinux)",
        "{}",
        text(&o)
    );
    assert_eq!(before, snapshot(&tree, &all), "the user's tree changed");
}
