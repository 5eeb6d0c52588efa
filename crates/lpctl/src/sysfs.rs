//! Reading the livepatch state of the running kernel from sysfs and procfs.
//!
//! Every path goes through [`Sys::root`] (normally `/`), so tests can build
//! a fake `/sys` + `/proc` tree in a temporary directory.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{Error, ErrorClass, Result};
use crate::policy::LoadedPatch;

#[derive(Debug, Clone)]
pub struct Sys {
    root: PathBuf,
}

/// How the stack order of the patches was determined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderSource {
    /// `/sys/kernel/livepatch/<p>/stack_order` (6.13+).
    StackOrder,
    /// Load order from `/proc/modules` (newest first).
    LoadOrder,
}

/// A livepatch module on the running kernel, with everything `list` shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PatchStatus {
    #[serde(flatten)]
    pub patch: LoadedPatch,
    pub state: crate::policy::PatchState,
    /// The module has lp-build's `lp_*` parameters.
    pub lp_build: bool,
    /// `/sys/kernel/livepatch/<p>/replace` (6.11+).
    pub replace: Option<bool>,
    /// The module is in `/proc/modules` / `/sys/module`.
    pub module_loaded: bool,
    /// `/sys/module/<m>/refcnt`.
    pub refcnt: Option<i64>,
}

/// One currently patched function.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PatchedFunction {
    pub object: String,
    pub function: String,
    pub sympos: u64,
    /// The patch whose version of the function runs (top of the stack).
    pub winner: String,
    /// Every enabled patch that patches the function, winner first.
    pub patches: Vec<String>,
}

/// A task that blocks a transition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Blocker {
    pub pid: u32,
    pub tid: u32,
    pub comm: String,
    pub patch_state: i32,
    pub stack: Vec<String>,
}

fn read_trim(path: &Path) -> io::Result<String> {
    Ok(fs::read_to_string(path)?.trim().to_string())
}

fn parse_bool(path: &Path, s: &str) -> Result<bool> {
    match s {
        "1" | "Y" | "y" => Ok(true),
        "0" | "N" | "n" => Ok(false),
        _ => Err(Error::new(
            ErrorClass::Io,
            format!("{}: unexpected value {s:?}", path.display()),
        )),
    }
}

/// The attribute's object is gone or going away: ENOENT once sysfs removed
/// it, ENODEV while the kernel is removing it (kernfs refuses to open or
/// read an attribute of a node being deleted). A livepatch disabled or
/// replaced is freed asynchronously, so its `/sys/kernel/livepatch/<p>/*`
/// and a module's `/sys/module/<m>/*` can give either right after a
/// transition.
fn is_gone(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENODEV)
}

/// A line of `/proc/modules`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcModule {
    pub name: String,
    pub refcnt: Option<i64>,
    pub state: String,
    pub taints: String,
}

fn parse_proc_modules(text: &str) -> Vec<ProcModule> {
    text.lines()
        .filter_map(|line| {
            let mut f = line.split_whitespace();
            let name = f.next()?.to_string();
            let _size = f.next();
            let refcnt = f.next().and_then(|r| r.parse().ok());
            let _deps = f.next();
            let state = f.next().unwrap_or("").to_string();
            let _addr = f.next();
            let taints = f
                .next()
                .filter(|t| t.starts_with('('))
                .map(|t| t.trim_matches(|c| c == '(' || c == ')').to_string())
                .unwrap_or_default();
            Some(ProcModule {
                name,
                refcnt,
                state,
                taints,
            })
        })
        .collect()
}

impl Sys {
    pub fn new(root: impl Into<PathBuf>) -> Sys {
        Sys { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `root` + an absolute path such as `/sys/kernel/livepatch`.
    pub fn path(&self, abs: &str) -> PathBuf {
        self.root.join(abs.trim_start_matches('/'))
    }

    pub fn livepatch_dir(&self) -> PathBuf {
        self.path("/sys/kernel/livepatch")
    }

    pub fn patch_dir(&self, name: &str) -> PathBuf {
        self.livepatch_dir().join(name)
    }

    pub fn module_dir(&self, name: &str) -> PathBuf {
        self.path("/sys/module").join(name)
    }

    /// Fail with a clear error when the kernel has no livepatch support.
    pub fn check_livepatch_support(&self) -> Result<()> {
        if self.livepatch_dir().is_dir() {
            return Ok(());
        }
        if !self.path("/sys/kernel").is_dir() {
            return Err(Error::new(
                ErrorClass::NoLivepatch,
                format!("{} does not exist", self.path("/sys/kernel").display()),
            )
            .hint("is sysfs mounted? mount -t sysfs sysfs /sys"));
        }
        Err(Error::new(
            ErrorClass::NoLivepatch,
            "this kernel has no livepatch support (no /sys/kernel/livepatch)",
        )
        .hint("boot a kernel built with CONFIG_LIVEPATCH=y"))
    }

    /// `/proc/modules`, newest first; empty when unreadable.
    pub fn proc_modules(&self) -> Vec<ProcModule> {
        match fs::read_to_string(self.path("/proc/modules")) {
            Ok(t) => parse_proc_modules(&t),
            Err(_) => Vec::new(),
        }
    }

    pub fn module_loaded(&self, name: &str) -> bool {
        self.module_dir(name).is_dir() || self.proc_modules().iter().any(|m| m.name == name)
    }

    pub fn module_refcnt(&self, name: &str) -> Option<i64> {
        read_trim(&self.module_dir(name).join("refcnt"))
            .ok()
            .and_then(|s| s.parse().ok())
    }

    /// Read a boolean sysfs attribute ("0"/"1"/"Y"/"N"); `None` when it is
    /// gone (see [`is_gone`]).
    fn read_bool(&self, path: &Path) -> Result<Option<bool>> {
        match read_trim(path) {
            Ok(s) => parse_bool(path, &s).map(Some),
            Err(e) if is_gone(&e) => Ok(None),
            Err(e) => Err(Error::io(path, &e)),
        }
    }

    /// `enabled` and `transition` of a registered patch; `None` when the
    /// patch is not (or no longer) registered.
    pub fn patch_flags(&self, name: &str) -> Result<Option<(bool, bool)>> {
        let dir = self.patch_dir(name);
        if !dir.is_dir() {
            return Ok(None);
        }
        let path = dir.join("enabled");
        let enabled = match read_trim(&path) {
            Ok(s) => parse_bool(&path, &s)?,
            // A disabled or replaced patch is freed asynchronously, right
            // after its transition: kernfs first refuses its attributes
            // (ENODEV), then removes them before the directory (ENOENT with
            // the directory still there). Either way it is no longer
            // registered.
            Err(e) if is_gone(&e) => return Ok(None),
            Err(e) => return Err(Error::io(&path, &e)),
        };
        // `transition` gone after `enabled` was read: the patch was freed in
        // between, so it is not in transition any more.
        let transition = self.read_bool(&dir.join("transition"))?;
        Ok(Some((enabled, transition.unwrap_or(false))))
    }

    /// lp-build identity from the module parameters; non-cumulative v0 when
    /// the module has none.
    fn lp_identity(&self, name: &str) -> Result<(bool, u32, bool)> {
        let params = self.module_dir(name).join("parameters");
        let cumulative = self.read_bool(&params.join("lp_cumulative"))?;
        let vpath = params.join("lp_patch_version");
        let version = match read_trim(&vpath) {
            Ok(s) => Some(s.parse::<u32>().map_err(|_| {
                Error::new(
                    ErrorClass::Io,
                    format!("{}: not a version number: {s:?}", vpath.display()),
                )
            })?),
            Err(e) if is_gone(&e) => None,
            Err(e) => return Err(Error::io(&vpath, &e)),
        };
        let lp_build = cumulative.is_some() || version.is_some();
        Ok((cumulative.unwrap_or(false), version.unwrap_or(0), lp_build))
    }

    /// Every livepatch module on the system: registered patches and loaded
    /// livepatch modules that are no longer registered (replaced or
    /// disabled). Sorted by stack order, bottom first; leftovers last.
    pub fn patches(&self) -> Result<(Vec<PatchStatus>, OrderSource)> {
        self.check_livepatch_support()?;
        let lpdir = self.livepatch_dir();
        let mut registered = Vec::new();
        let rd = fs::read_dir(&lpdir).map_err(|e| Error::io(&lpdir, &e))?;
        for entry in rd {
            let entry = entry.map_err(|e| Error::io(&lpdir, &e))?;
            if entry.path().is_dir() {
                registered.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        registered.sort();

        let proc_mods = self.proc_modules();
        let mut out = Vec::new();
        let mut have_sysfs_order = true;
        for name in &registered {
            let Some((enabled, transition)) = self.patch_flags(name)? else {
                continue; // freed meanwhile
            };
            let dir = self.patch_dir(name);
            let order_path = dir.join("stack_order");
            let stack_order = match read_trim(&order_path) {
                Ok(s) => s.parse::<u32>().ok(),
                Err(_) => None,
            };
            if stack_order.is_none() {
                have_sysfs_order = false;
            }
            out.push(self.status(
                name,
                true,
                enabled,
                transition,
                stack_order.unwrap_or(0),
                self.read_bool(&dir.join("replace"))?,
                &proc_mods,
            )?);
        }

        // Patches freed (or being freed) since the directory was listed are
        // not registered any more: their modules count as leftovers below.
        registered.retain(|r| out.iter().any(|p| p.patch.name == *r));

        let source = if have_sysfs_order {
            OrderSource::StackOrder
        } else {
            // /proc/modules lists the newest module first: the bottom of the
            // stack is the last registered patch in it.
            let mut order: Vec<&str> = proc_mods
                .iter()
                .rev()
                .map(|m| m.name.as_str())
                .filter(|n| registered.iter().any(|r| r == n))
                .collect();
            for r in &registered {
                if !order.contains(&r.as_str()) {
                    order.insert(0, r); // unknown position: assume oldest
                }
            }
            for p in &mut out {
                if let Some(i) = order.iter().position(|n| *n == p.patch.name) {
                    p.patch.stack_order = i as u32 + 1;
                }
            }
            OrderSource::LoadOrder
        };

        // Livepatch modules that are loaded but not registered.
        for m in &proc_mods {
            if registered.contains(&m.name) || out.iter().any(|p| p.patch.name == m.name) {
                continue;
            }
            let taint_k = m.taints.contains('K')
                || read_trim(&self.module_dir(&m.name).join("taint"))
                    .map(|t| t.contains('K'))
                    .unwrap_or(false);
            if !taint_k {
                continue;
            }
            out.push(self.status(&m.name, false, false, false, 0, None, &proc_mods)?);
        }

        out.sort_by(|a, b| {
            let ka = (a.patch.registered as u8, a.patch.stack_order);
            let kb = (b.patch.registered as u8, b.patch.stack_order);
            kb.0.cmp(&ka.0)
                .then(ka.1.cmp(&kb.1))
                .then_with(|| a.patch.name.cmp(&b.patch.name))
        });
        Ok((out, source))
    }

    #[allow(clippy::too_many_arguments)]
    fn status(
        &self,
        name: &str,
        registered: bool,
        enabled: bool,
        transition: bool,
        stack_order: u32,
        replace: Option<bool>,
        proc_mods: &[ProcModule],
    ) -> Result<PatchStatus> {
        let (cumulative, version, lp_build) = self.lp_identity(name)?;
        let srcversion = read_trim(&self.module_dir(name).join("srcversion")).ok();
        let patch = LoadedPatch {
            name: name.to_string(),
            enabled,
            transition,
            registered,
            cumulative,
            version,
            stack_order,
            srcversion,
        };
        let refcnt = self
            .module_refcnt(name)
            .or_else(|| proc_mods.iter().find(|m| m.name == name)?.refcnt);
        Ok(PatchStatus {
            state: patch.state(),
            patch,
            lp_build,
            replace,
            module_loaded: self.module_dir(name).is_dir()
                || proc_mods.iter().any(|m| m.name == name),
            refcnt,
        })
    }

    /// The functions currently patched, and which patch wins for each.
    pub fn patched_functions(&self, patches: &[PatchStatus]) -> Result<Vec<PatchedFunction>> {
        // (object, function, sympos) -> [(stack order, patch)]
        let mut map: BTreeMap<(String, String, u64), Vec<(u32, String)>> = BTreeMap::new();
        for p in patches
            .iter()
            .filter(|p| p.patch.registered && p.patch.enabled)
        {
            let dir = self.patch_dir(&p.patch.name);
            let Ok(objects) = fs::read_dir(&dir) else {
                continue; // freed meanwhile
            };
            for obj in objects.flatten() {
                let obj_path = obj.path();
                if !obj_path.is_dir() {
                    continue;
                }
                let object = obj.file_name().to_string_lossy().into_owned();
                let applied = match self.read_bool(&obj_path.join("patched")) {
                    Ok(Some(v)) => v,
                    // Before 6.0 there is no `patched`: vmlinux is always
                    // patched, a module object when the module is loaded.
                    _ => object == "vmlinux" || self.module_loaded(&object),
                };
                if !applied {
                    continue;
                }
                let Ok(funcs) = fs::read_dir(&obj_path) else {
                    continue;
                };
                for f in funcs.flatten() {
                    if !f.path().is_dir() {
                        continue;
                    }
                    let fname = f.file_name().to_string_lossy().into_owned();
                    let (function, sympos) = match fname.rsplit_once(',') {
                        Some((func, pos)) => (func.to_string(), pos.parse().unwrap_or(0)),
                        None => (fname.clone(), 0),
                    };
                    map.entry((object.clone(), function, sympos))
                        .or_default()
                        .push((p.patch.stack_order, p.patch.name.clone()));
                }
            }
        }
        Ok(map
            .into_iter()
            .filter_map(|((object, function, sympos), mut ps)| {
                ps.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
                let patches: Vec<String> = ps.into_iter().map(|(_, n)| n).collect();
                Some(PatchedFunction {
                    object,
                    function,
                    sympos,
                    winner: patches.first()?.clone(),
                    patches,
                })
            })
            .collect())
    }

    /// Tasks whose `patch_state` is not `target` (1 = patched, 0 =
    /// unpatched) during a transition, with their stacks.
    pub fn blockers(&self, target: i32) -> Vec<Blocker> {
        let mut out = Vec::new();
        let Ok(procs) = fs::read_dir(self.path("/proc")) else {
            return out;
        };
        let mut pids: Vec<u32> = procs
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .collect();
        pids.sort_unstable();
        for pid in pids {
            let task_dir = self.path("/proc").join(pid.to_string()).join("task");
            let Ok(tasks) = fs::read_dir(&task_dir) else {
                continue; // exited
            };
            let mut tids: Vec<u32> = tasks
                .flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect();
            tids.sort_unstable();
            for tid in tids {
                let t = task_dir.join(tid.to_string());
                let Some(state) = read_trim(&t.join("patch_state"))
                    .ok()
                    .and_then(|s| s.parse::<i32>().ok())
                else {
                    continue;
                };
                if state == -1 || state == target {
                    continue;
                }
                let comm = read_trim(&t.join("comm")).unwrap_or_default();
                let stack = fs::read_to_string(t.join("stack"))
                    .map(|s| s.lines().map(str::to_string).collect())
                    .unwrap_or_else(|e| vec![format!("(stack unavailable: {e})")]);
                out.push(Blocker {
                    pid,
                    tid,
                    comm,
                    patch_state: state,
                    stack,
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gone_attributes() {
        assert!(is_gone(&io::Error::from_raw_os_error(libc::ENOENT)));
        assert!(is_gone(&io::Error::from_raw_os_error(libc::ENODEV)));
        assert!(!is_gone(&io::Error::from_raw_os_error(libc::EACCES)));
        assert!(!is_gone(&io::Error::from_raw_os_error(libc::EIO)));
    }

    #[test]
    fn proc_modules_lines() {
        let m = parse_proc_modules(
            "lp_b 16384 1 - Live 0xffffffffc0a00000 (OEK)\n\
             ext4 1000 2 jbd2, Live 0xffffffffc0000000\n\
             broken\n",
        );
        assert_eq!(m.len(), 3);
        assert_eq!(m[0].name, "lp_b");
        assert_eq!(m[0].taints, "OEK");
        assert_eq!(m[0].refcnt, Some(1));
        assert_eq!(m[1].taints, "");
        assert_eq!(m[2].refcnt, None);
    }
}
