//! Module signatures, as kbuild's `modules_install` makes them.
//!
//! A kernel built with `CONFIG_MODULE_SIG` checks the PKCS#7 signature appended to a module
//! (`~Module signature appended~\n` at the end): with `CONFIG_MODULE_SIG_FORCE` (or lockdown
//! under Secure Boot) an unsigned module is refused, otherwise it loads and taints the kernel
//! (`E`, "module verification failed"). The signature covers the whole file, so it is made
//! last, after the post-link conversion and the validation, with the kernel's own
//! `scripts/sign-file`.

use crate::exit::{fail_hint, Status};
use anyhow::Result;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The marker `sign-file` appends after the signature (`MODULE_SIG_STRING`).
pub const MODULE_SIG_STRING: &[u8] = b"~Module signature appended~\n";

/// How to sign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signer {
    /// `scripts/sign-file` of the kernel build.
    pub sign_file: PathBuf,
    /// `CONFIG_MODULE_SIG_HASH` (`sha512`).
    pub hash: String,
    /// Private key (PEM; may also hold the certificate).
    pub key: PathBuf,
    /// X.509 certificate of the key.
    pub cert: PathBuf,
}

/// What lp-build does about signatures for one kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// The kernel does not check signatures (no `CONFIG_MODULE_SIG`) and no key was given.
    NotNeeded,
    /// Sign with this.
    Sign(Signer),
    /// The kernel checks signatures but the module stays unsigned: loading it taints the
    /// kernel. The reason, for a warning.
    Unsigned(String),
}

/// What the user asked for.
#[derive(Debug, Clone, Default)]
pub struct Request<'a> {
    /// `--sign-key`.
    pub key: Option<&'a Path>,
    /// `--sign-cert`.
    pub cert: Option<&'a Path>,
    /// `--no-sign`.
    pub no_sign: bool,
}

const KEY_HINT: &str = "pass the key the kernel trusts with --sign-key KEY.pem --sign-cert \
                        CERT.x509 (a distribution kernel trusts its vendor's key and the \
                        machine owner keys enrolled with mokutil), or --no-sign to sign later";

/// Decides how to sign for the kernel of `config`, whose build directory is `build`: the key
/// given on the command line, else the build's own key (`CONFIG_MODULE_SIG_KEY`, which kbuild
/// generates for a self-built kernel). Fails when the kernel refuses unsigned modules
/// (`CONFIG_MODULE_SIG_FORCE`) and there is nothing to sign with, or when a given key cannot
/// be used.
pub fn plan(config: &BTreeMap<String, String>, build: &Path, req: &Request) -> Result<Plan> {
    let on = |k: &str| config.get(k).map(String::as_str) == Some("y");
    let checks = on("CONFIG_MODULE_SIG");
    let force = on("CONFIG_MODULE_SIG_FORCE");
    if req.no_sign {
        if force {
            return Err(fail_hint(
                Status::Input,
                "--no-sign, but the kernel has CONFIG_MODULE_SIG_FORCE=y: it refuses unsigned \
                 modules",
                "sign the module before loading it (scripts/sign-file), or drop --no-sign",
            ));
        }
        return Ok(if checks {
            Plan::Unsigned("--no-sign".to_string())
        } else {
            Plan::NotNeeded
        });
    }
    if !checks && req.key.is_none() {
        return Ok(Plan::NotNeeded);
    }
    let hash = config
        .get("CONFIG_MODULE_SIG_HASH")
        .map(|v| v.trim_matches('"').to_string())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "sha512".to_string());
    let sign_file = build.join("scripts/sign-file");
    let explicit = req.key.is_some();
    let (key, cert) = match (req.key, req.cert) {
        (Some(k), Some(c)) => (k.to_path_buf(), c.to_path_buf()),
        (Some(k), None) => (k.to_path_buf(), k.to_path_buf()),
        (None, _) => {
            let configured = config
                .get("CONFIG_MODULE_SIG_KEY")
                .map(|v| v.trim_matches('"').to_string())
                .unwrap_or_else(|| "certs/signing_key.pem".to_string());
            if configured.starts_with("pkcs11:") {
                return unsigned_or_fail(
                    force,
                    format!("the kernel's signing key is a PKCS#11 token ({configured})"),
                );
            }
            let key = build.join(&configured);
            if !key.is_file() {
                return unsigned_or_fail(
                    force,
                    format!(
                        "the kernel checks module signatures but its signing key {} is not \
                         there",
                        key.display()
                    ),
                );
            }
            (key, build.join("certs/signing_key.x509"))
        }
    };
    for (what, p) in [("key", &key), ("certificate", &cert)] {
        if !p.is_file() {
            return Err(fail_hint(
                Status::Input,
                format!("signing {what} {}: not a readable file", p.display()),
                KEY_HINT,
            ));
        }
    }
    if !sign_file.is_file() {
        let why = format!(
            "{} is missing (the kernel build makes it with CONFIG_MODULE_SIG)",
            sign_file.display()
        );
        if explicit || force {
            return Err(fail_hint(
                Status::Input,
                why,
                "build it with `make scripts` in the kernel's build directory",
            ));
        }
        return Ok(Plan::Unsigned(why));
    }
    Ok(Plan::Sign(Signer {
        sign_file,
        hash,
        key,
        cert,
    }))
}

fn unsigned_or_fail(force: bool, why: String) -> Result<Plan> {
    if force {
        return Err(fail_hint(
            Status::Input,
            format!("{why}, and it refuses unsigned modules (CONFIG_MODULE_SIG_FORCE=y)"),
            KEY_HINT,
        ));
    }
    Ok(Plan::Unsigned(why))
}

/// Signs `ko` in place with `sign-file`; checks that the signature marker ends the file.
pub fn sign(signer: &Signer, ko: &Path) -> Result<()> {
    let out = Command::new(&signer.sign_file)
        .arg(&signer.hash)
        .arg(&signer.key)
        .arg(&signer.cert)
        .arg(ko)
        .env("LC_ALL", "C")
        .output()
        .map_err(|e| {
            fail_hint(
                Status::Build,
                format!("cannot run {}: {e}", signer.sign_file.display()),
                "rebuild the kernel's host tools with `make scripts` in its build directory",
            )
        })?;
    let signed = std::fs::read(ko).map(|b| b.ends_with(MODULE_SIG_STRING));
    if !out.status.success() || !matches!(signed, Ok(true)) {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(fail_hint(
            Status::Build,
            format!(
                "signing {} with {} failed ({}): {}",
                ko.display(),
                signer.key.display(),
                out.status,
                stderr.lines().next().unwrap_or("no signature appended")
            ),
            KEY_HINT,
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(lines: &[(&str, &str)]) -> BTreeMap<String, String> {
        lines
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// A build directory with `scripts/sign-file` and, if `with_key`, the generated key.
    fn build(with_key: bool) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("scripts")).unwrap();
        std::fs::write(d.path().join("scripts/sign-file"), "").unwrap();
        if with_key {
            std::fs::create_dir_all(d.path().join("certs")).unwrap();
            std::fs::write(d.path().join("certs/signing_key.pem"), "k").unwrap();
            std::fs::write(d.path().join("certs/signing_key.x509"), "c").unwrap();
        }
        d
    }

    #[test]
    fn no_module_sig_needs_nothing() {
        let b = build(true);
        let p = plan(&config(&[]), b.path(), &Request::default()).unwrap();
        assert_eq!(p, Plan::NotNeeded);
    }

    #[test]
    fn the_builds_own_key_with_the_configured_hash() {
        let b = build(true);
        let c = config(&[
            ("CONFIG_MODULE_SIG", "y"),
            ("CONFIG_MODULE_SIG_HASH", "\"sha256\""),
            ("CONFIG_MODULE_SIG_KEY", "\"certs/signing_key.pem\""),
        ]);
        let Plan::Sign(s) = plan(&c, b.path(), &Request::default()).unwrap() else {
            panic!("not signing")
        };
        assert_eq!(s.hash, "sha256");
        assert_eq!(s.key, b.path().join("certs/signing_key.pem"));
        assert_eq!(s.cert, b.path().join("certs/signing_key.x509"));
        assert_eq!(s.sign_file, b.path().join("scripts/sign-file"));
    }

    #[test]
    fn no_key_warns_or_fails_when_forced() {
        let b = build(false);
        let c = config(&[("CONFIG_MODULE_SIG", "y")]);
        let Plan::Unsigned(why) = plan(&c, b.path(), &Request::default()).unwrap() else {
            panic!("not unsigned")
        };
        assert!(why.contains("signing_key.pem"), "{why}");
        let c = config(&[("CONFIG_MODULE_SIG", "y"), ("CONFIG_MODULE_SIG_FORCE", "y")]);
        let e = plan(&c, b.path(), &Request::default()).unwrap_err();
        assert!(
            format!("{e:#}").contains("CONFIG_MODULE_SIG_FORCE"),
            "{e:#}"
        );
        let e = plan(
            &c,
            b.path(),
            &Request {
                no_sign: true,
                ..Request::default()
            },
        )
        .unwrap_err();
        assert!(format!("{e:#}").contains("--no-sign"), "{e:#}");
    }

    #[test]
    fn explicit_key_is_used_and_checked() {
        let b = build(false);
        let d = tempfile::tempdir().unwrap();
        let key = d.path().join("mok.pem");
        let cert = d.path().join("mok.der");
        std::fs::write(&key, "k").unwrap();
        std::fs::write(&cert, "c").unwrap();
        let req = Request {
            key: Some(&key),
            cert: Some(&cert),
            no_sign: false,
        };
        // Also for a kernel without CONFIG_MODULE_SIG: the user asked for it.
        let Plan::Sign(s) = plan(&config(&[]), b.path(), &req).unwrap() else {
            panic!("not signing")
        };
        assert_eq!(
            (s.key, s.cert, s.hash),
            (key.clone(), cert, "sha512".into())
        );
        let missing = d.path().join("none.der");
        let req = Request {
            key: Some(&key),
            cert: Some(&missing),
            no_sign: false,
        };
        let e = plan(&config(&[]), b.path(), &req).unwrap_err();
        assert!(format!("{e:#}").contains("none.der"), "{e:#}");
    }

    #[test]
    fn pkcs11_keys_are_not_guessed() {
        let b = build(true);
        let c = config(&[
            ("CONFIG_MODULE_SIG", "y"),
            ("CONFIG_MODULE_SIG_KEY", "\"pkcs11:token=x\""),
        ]);
        assert!(matches!(
            plan(&c, b.path(), &Request::default()).unwrap(),
            Plan::Unsigned(_)
        ));
    }

    #[test]
    fn a_failing_sign_file_is_a_build_error() {
        let d = tempfile::tempdir().unwrap();
        let tool = d.path().join("sign-file");
        std::fs::write(&tool, "#!/bin/sh\necho 'sign-file: bad key' >&2\nexit 1\n").unwrap();
        let ok = d.path().join("ok-sign-file");
        std::fs::write(
            &ok,
            "#!/bin/sh\nprintf 'SIG~Module signature appended~\\n' >> \"$4\"\n",
        )
        .unwrap();
        for t in [&tool, &ok] {
            let mut perm = std::fs::metadata(t).unwrap().permissions();
            std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
            std::fs::set_permissions(t, perm).unwrap();
        }
        let ko = d.path().join("m.ko");
        std::fs::write(&ko, "ELF").unwrap();
        let mut s = Signer {
            sign_file: tool,
            hash: "sha512".into(),
            key: d.path().join("k.pem"),
            cert: d.path().join("c.x509"),
        };
        let e = sign(&s, &ko).unwrap_err();
        assert!(format!("{e:#}").contains("sign-file: bad key"), "{e:#}");
        s.sign_file = ok;
        sign(&s, &ko).unwrap();
        assert!(std::fs::read(&ko).unwrap().ends_with(MODULE_SIG_STRING));
    }
}
