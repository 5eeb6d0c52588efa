//! Test support: a fake /sys + /proc tree, a fake kernel acting on it, and
//! `.ko` fixtures with a `.modinfo` section.
#![allow(dead_code)]

use std::collections::HashSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use lpctl::kernel::Kernel;
use object::write::Object;
use object::{Architecture, BinaryFormat, Endianness, SectionKind};

pub const SHA: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// Write a relocatable ELF with the given `.modinfo` entries.
pub fn ko_bytes(entries: &[String], arch: Architecture, endian: Endianness) -> Vec<u8> {
    let mut obj = Object::new(BinaryFormat::Elf, arch, endian);
    let text = obj.add_section(vec![], b".text".to_vec(), SectionKind::Text);
    obj.append_section_data(text, &[0xc3; 16], 16);
    let mi = obj.add_section(vec![], b".modinfo".to_vec(), SectionKind::ReadOnlyData);
    let mut data = Vec::new();
    for e in entries {
        data.extend_from_slice(e.as_bytes());
        data.push(0);
        while data.len() % 8 != 0 {
            data.push(0); // padding, as the kernel build leaves it
        }
    }
    obj.append_section_data(mi, &data, 1);
    obj.write().expect("write fixture ELF")
}

/// The `.modinfo` entries lp-build emits.
pub fn lp_entries(name: &str, cumulative: bool, version: u32) -> Vec<String> {
    vec![
        "license=GPL".to_string(),
        "livepatch=Y".to_string(),
        format!("name={name}"),
        format!("lp_cumulative={}", if cumulative { "Y" } else { "N" }),
        format!("lp_patch_version={version}"),
        format!("lp_replace={}", if cumulative { "Y" } else { "N" }),
        "lp_build_version=0.1.0".to_string(),
        format!("lp_source=fix-{name}.patch:{SHA}"),
        "vermagic=6.6.0 SMP preempt mod_unload ".to_string(),
    ]
}

pub fn write_ko(dir: &Path, name: &str, cumulative: bool, version: u32) -> PathBuf {
    let path = dir.join(format!("{name}.ko"));
    fs::write(
        &path,
        ko_bytes(
            &lp_entries(name, cumulative, version),
            Architecture::X86_64,
            Endianness::Little,
        ),
    )
    .unwrap();
    path
}

/// A fake kernel's view: /sys/kernel/livepatch, /sys/module, /proc.
pub struct Tree {
    pub dir: tempfile::TempDir,
    /// Kernel 6.13+: patches get a `stack_order` attribute.
    pub stack_order_attr: bool,
    /// Kernel 4.16–5.0: patches have a `signal` attribute.
    pub signal_attr: bool,
}

pub fn w(path: &Path, s: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, s).unwrap();
}

impl Tree {
    pub fn new() -> Tree {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("sys/kernel/livepatch")).unwrap();
        fs::create_dir_all(dir.path().join("sys/module")).unwrap();
        w(&dir.path().join("proc/modules"), "");
        // Some unrelated regular module.
        let t = Tree {
            dir,
            stack_order_attr: false,
            signal_attr: false,
        };
        t.add_module("ext4", false, 2);
        t
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn p(&self, rel: &str) -> PathBuf {
        self.root().join(rel.trim_start_matches('/'))
    }

    /// Put a module at the head of /proc/modules (newest first).
    fn add_module(&self, name: &str, livepatch: bool, refcnt: u32) {
        let pm = self.p("proc/modules");
        let old = fs::read_to_string(&pm).unwrap();
        let taint = if livepatch { " (K)" } else { "" };
        w(
            &pm,
            &format!("{name} 16384 {refcnt} - Live 0xffffffffc0000000{taint}\n{old}"),
        );
        let md = self.p(&format!("sys/module/{name}"));
        w(&md.join("refcnt"), &format!("{refcnt}\n"));
        w(&md.join("initstate"), "live\n");
        if livepatch {
            w(&md.join("taint"), "K\n");
        }
    }

    pub fn set_refcnt(&self, name: &str, refcnt: u32) {
        let md = self.p(&format!("sys/module/{name}"));
        if md.is_dir() {
            w(&md.join("refcnt"), &format!("{refcnt}\n"));
        }
        let pm = self.p("proc/modules");
        let text = fs::read_to_string(&pm).unwrap();
        let text: String = text
            .lines()
            .map(|l| {
                let mut f: Vec<&str> = l.split(' ').collect();
                let r = refcnt.to_string();
                if f.first() == Some(&name) && f.len() > 2 {
                    f[2] = &r;
                    f.join(" ") + "\n"
                } else {
                    l.to_string() + "\n"
                }
            })
            .collect();
        w(&pm, &text);
    }

    pub fn remove_module(&self, name: &str) {
        let _ = fs::remove_dir_all(self.p(&format!("sys/module/{name}")));
        let pm = self.p("proc/modules");
        let text = fs::read_to_string(&pm).unwrap();
        let text: String = text
            .lines()
            .filter(|l| l.split(' ').next() != Some(name))
            .map(|l| l.to_string() + "\n")
            .collect();
        w(&pm, &text);
    }

    pub fn next_stack_order(&self) -> u32 {
        let mut max = 0;
        for e in fs::read_dir(self.p("sys/kernel/livepatch"))
            .unwrap()
            .flatten()
        {
            if let Ok(s) = fs::read_to_string(e.path().join("stack_order")) {
                max = max.max(s.trim().parse().unwrap_or(0));
            }
        }
        max + 1
    }

    /// A registered, enabled lp-build patch (`lp` = Some((cumulative,
    /// version))) or a foreign one (None), patching `funcs`
    /// (object, function, sympos).
    pub fn add_patch(&self, name: &str, lp: Option<(bool, u32)>, funcs: &[(&str, &str, u32)]) {
        self.add_module(name, true, 1);
        let md = self.p(&format!("sys/module/{name}"));
        if let Some((c, v)) = lp {
            w(
                &md.join("parameters/lp_cumulative"),
                if c { "Y\n" } else { "N\n" },
            );
            w(&md.join("parameters/lp_patch_version"), &format!("{v}\n"));
        }
        let pd = self.p(&format!("sys/kernel/livepatch/{name}"));
        let order = self.next_stack_order();
        w(&pd.join("enabled"), "1\n");
        w(&pd.join("transition"), "0\n");
        w(&pd.join("force"), "");
        if self.stack_order_attr {
            w(&pd.join("stack_order"), &format!("{order}\n"));
        }
        if self.signal_attr {
            w(&pd.join("signal"), "");
        }
        for (obj, func, pos) in funcs {
            w(&pd.join(obj).join("patched"), "1\n");
            fs::create_dir_all(pd.join(obj).join(format!("{func},{pos}"))).unwrap();
        }
    }

    /// A loaded livepatch module that is no longer registered.
    pub fn add_leftover(&self, name: &str, cumulative: bool, version: u32) {
        self.add_module(name, true, 0);
        let md = self.p(&format!("sys/module/{name}"));
        w(
            &md.join("parameters/lp_cumulative"),
            if cumulative { "Y\n" } else { "N\n" },
        );
        w(
            &md.join("parameters/lp_patch_version"),
            &format!("{version}\n"),
        );
    }

    pub fn set_attr(&self, patch: &str, attr: &str, value: &str) {
        w(
            &self.p(&format!("sys/kernel/livepatch/{patch}/{attr}")),
            &format!("{value}\n"),
        );
    }

    pub fn add_task(&self, pid: u32, tid: u32, comm: &str, state: i32, stack: &[&str]) {
        let t = self.p(&format!("proc/{pid}/task/{tid}"));
        w(&t.join("patch_state"), &format!("{state}\n"));
        w(&t.join("comm"), &format!("{comm}\n"));
        let mut s = String::new();
        for l in stack {
            s.push_str(l);
            s.push('\n');
        }
        w(&t.join("stack"), &s);
    }
}

/// How the fake kernel reacts.
#[derive(Default)]
pub struct Behaviour {
    /// Patches whose next transition (enable on load, or disable) hangs;
    /// the reversal then completes.
    pub stall: HashSet<String>,
    /// Patches whose transitions never finish, reversals included.
    pub stall_forever: HashSet<String>,
    /// errno for finit_module.
    pub load_errno: Option<i32>,
    /// finit_module fails with EBUSY this many times first.
    pub busy_loads: u32,
    /// Not root.
    pub unprivileged: bool,
}

pub struct FakeKernel<'t> {
    pub tree: &'t Tree,
    pub calls: Vec<String>,
    pub b: Behaviour,
}

impl<'t> FakeKernel<'t> {
    pub fn new(tree: &'t Tree) -> Self {
        FakeKernel {
            tree,
            calls: Vec::new(),
            b: Behaviour::default(),
        }
    }

    fn stalls(&mut self, name: &str) -> bool {
        self.b.stall_forever.contains(name) || self.b.stall.remove(name)
    }

    /// Free a registered patch the way 5.1+ does after it is disabled or
    /// replaced: the sysfs directory goes, the module stays with refcnt 0.
    fn free_patch(&self, name: &str) {
        let _ = fs::remove_dir_all(self.tree.p(&format!("sys/kernel/livepatch/{name}")));
        self.tree.set_refcnt(name, 0);
    }
}

impl Kernel for FakeKernel<'_> {
    fn write_attr(&mut self, path: &Path, value: &str) -> io::Result<()> {
        let rel = path
            .strip_prefix(self.tree.root())
            .expect("write outside the fake root");
        self.calls.push(format!("write /{} {value}", rel.display()));
        if !path.exists() {
            return Err(io::Error::from_raw_os_error(libc::ENOENT));
        }
        let attr = path.file_name().unwrap().to_string_lossy().into_owned();
        let patch_dir = path.parent().unwrap();
        let name = patch_dir
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let rd = |f: &str| fs::read_to_string(patch_dir.join(f)).unwrap_or_default();
        match attr.as_str() {
            "enabled" => {
                let want = value == "1";
                let enabled = rd("enabled").trim() == "1";
                let transition = rd("transition").trim() == "1";
                if enabled == want && !transition {
                    return Err(io::Error::from_raw_os_error(libc::EINVAL));
                }
                if transition {
                    // Reversal.
                    if self.b.stall_forever.contains(&name) {
                        w(&patch_dir.join("enabled"), if want { "1\n" } else { "0\n" });
                        return Ok(());
                    }
                } else if self.stalls(&name) {
                    w(&patch_dir.join("enabled"), if want { "1\n" } else { "0\n" });
                    w(&patch_dir.join("transition"), "1\n");
                    return Ok(());
                }
                if want {
                    w(&patch_dir.join("enabled"), "1\n");
                    w(&patch_dir.join("transition"), "0\n");
                } else {
                    self.free_patch(&name);
                }
                Ok(())
            }
            _ => fs::write(path, value),
        }
    }

    fn load_module(&mut self, path: &Path, params: &str) -> io::Result<()> {
        let id = lpctl::modinfo::read_module(path)
            .map_err(|_| io::Error::from_raw_os_error(libc::ENOEXEC))?;
        self.calls
            .push(format!("load {} {params}", id.name).trim().to_string());
        if let Some(e) = self.b.load_errno {
            return Err(io::Error::from_raw_os_error(e));
        }
        if self.b.busy_loads > 0 {
            self.b.busy_loads -= 1;
            return Err(io::Error::from_raw_os_error(libc::EBUSY));
        }
        if self.tree.p(&format!("sys/module/{}", id.name)).exists() {
            return Err(io::Error::from_raw_os_error(libc::EEXIST));
        }
        let others: Vec<String> = fs::read_dir(self.tree.p("sys/kernel/livepatch"))?
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        self.tree.add_patch(
            &id.name,
            id.lp_build.then_some((id.cumulative, id.patch_version)),
            &[("vmlinux", "cmdline_proc_show", 1)],
        );
        if self.stalls(&id.name) {
            self.tree.set_attr(&id.name, "transition", "1");
        } else if id.replace {
            for o in others {
                self.free_patch(&o);
            }
        }
        Ok(())
    }

    fn delete_module(&mut self, name: &str) -> io::Result<()> {
        self.calls.push(format!("rmmod {name}"));
        let md = self.tree.p(&format!("sys/module/{name}"));
        if !md.exists() {
            return Err(io::Error::from_raw_os_error(libc::ENOENT));
        }
        let refcnt: u32 = fs::read_to_string(md.join("refcnt"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        if refcnt > 0 {
            return Err(io::Error::from_raw_os_error(libc::EWOULDBLOCK));
        }
        self.tree.remove_module(name);
        Ok(())
    }

    fn privileged(&self) -> bool {
        !self.b.unprivileged
    }
}
