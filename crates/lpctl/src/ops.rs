//! The operations: computing plans from the live system and carrying them
//! out through [`Kernel`], waiting for transitions.

use std::io::{self, Write};
use std::path::Path;
use std::thread::sleep;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::{Error, ErrorClass, Result};
use crate::kernel::Kernel;
use crate::modinfo::{read_module, ModuleIdentity};
use crate::policy::{self, Action, Flags, NewPatch, Plan, Refusal, Step};
use crate::sysfs::{Blocker, OrderSource, PatchStatus, PatchedFunction, Sys};

/// Timeouts of transitions and unloads.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timing {
    /// How long to wait for a transition (and, separately, for its
    /// reversal, and for a module's refcount to drop).
    pub timeout: Duration,
    /// When to signal the tasks that block a transition.
    pub signal_after: Duration,
    /// Polling interval.
    pub poll: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            timeout: Duration::from_secs(60),
            signal_after: Duration::from_secs(15),
            poll: Duration::from_millis(100),
        }
    }
}

pub struct Ctx<'a> {
    pub sys: Sys,
    pub kernel: &'a mut dyn Kernel,
    pub timing: Timing,
    /// Progress and diagnostics (stderr in the binary).
    pub log: &'a mut dyn Write,
}

impl Ctx<'_> {
    fn say(&mut self, msg: impl AsRef<str>) {
        // Progress output is best effort: a closed stderr must not turn a
        // successful load into a failure.
        let _ = writeln!(self.log, "lpctl: {}", msg.as_ref());
    }

    fn require_privileges(&self) -> Result<()> {
        if self.kernel.privileged() {
            Ok(())
        } else {
            Err(Error::new(
                ErrorClass::Permission,
                "loading and unloading livepatches needs root",
            )
            .hint("run lpctl as root (CAP_SYS_MODULE and write access to /sys)"))
        }
    }
}

/// Everything `lpctl list` shows.
#[derive(Debug, Clone, Serialize)]
pub struct Listing {
    pub order_source: OrderSource,
    pub patches: Vec<PatchStatus>,
    pub functions: Vec<PatchedFunction>,
    /// The patches installed for the running kernel (`lpctl install`), loaded at boot.
    pub installed: Vec<InstalledPatch>,
}

/// A livepatch kept with `lpctl install`.
#[derive(Debug, Clone, Serialize)]
pub struct InstalledPatch {
    /// The module name (`-` written `_`).
    pub name: String,
    pub file: std::path::PathBuf,
}

pub fn list(sys: &Sys) -> Result<Listing> {
    let (patches, order_source) = sys.patches()?;
    let functions = sys.patched_functions(&patches)?;
    // Without a readable release (a copied tree) there is nothing installed to show.
    let installed = match crate::install::running_release(sys) {
        Ok(release) => crate::install::installed(sys, Some(&release))?
            .into_iter()
            .map(|file| InstalledPatch {
                name: crate::install::module_name_of(&file),
                file,
            })
            .collect(),
        Err(_) => Vec::new(),
    };
    Ok(Listing {
        order_source,
        patches,
        functions,
        installed,
    })
}

/// `lpctl info`: the identity of a livepatch module file.
pub fn info(path: &Path) -> Result<ModuleIdentity> {
    let id = read_module(path)?;
    id.require_livepatch(path)?;
    Ok(id)
}

/// `lpctl info NAME`: a livepatch loaded on the running kernel and the functions it patches.
#[derive(Debug, Clone, Serialize)]
pub struct LoadedInfo {
    pub patch: PatchStatus,
    /// Where the stack order came from.
    pub order_source: OrderSource,
    /// The functions this patch patches (those whose `winner` is another patch are overridden).
    pub functions: Vec<PatchedFunction>,
}

/// `lpctl info NAME` (`-` and `_` are the same in module names).
pub fn info_loaded(sys: &Sys, name: &str) -> Result<LoadedInfo> {
    let n = name.replace('-', "_");
    let (patches, order_source) = sys.patches()?;
    let functions = sys.patched_functions(&patches)?;
    let Some(patch) = patches.into_iter().find(|p| p.patch.name == n) else {
        return Err(Error::new(
            ErrorClass::NotFound,
            format!("{name} is neither a module file nor a loaded livepatch"),
        )
        .hint("lpctl list shows the loaded livepatches; give a path to read a .ko file"));
    };
    let functions = functions
        .into_iter()
        .filter(|f| f.patches.contains(&n))
        .collect();
    Ok(LoadedInfo {
        patch,
        order_source,
        functions,
    })
}

fn refusal_error(r: Refusal) -> Error {
    let hint = match &r {
        Refusal::InTransition { name, .. } => format!(
            "wait for the transition to finish (lpctl list), or revert it with lpctl unload {name}"
        ),
        Refusal::Downgrade { .. } => {
            "pass --allow-downgrade to disable the newer patch and load this one".to_string()
        }
        Refusal::KeepOthersWithReplace => {
            "a cumulative patch always replaces the loaded patches; drop --keep-others".to_string()
        }
    };
    let class = match r {
        Refusal::InTransition { .. } => ErrorClass::Busy,
        _ => ErrorClass::Refused,
    };
    Error::new(class, r.to_string()).hint(hint)
}

/// Read the module and the system and compute the plan of `lpctl load`.
pub fn plan_load(sys: &Sys, path: &Path, flags: &Flags) -> Result<(ModuleIdentity, Plan)> {
    let id = read_module(path)?;
    id.require_livepatch(path)?;
    let (patches, _) = sys.patches()?;
    let loaded: Vec<_> = patches.into_iter().map(|p| p.patch).collect();
    let new = NewPatch {
        name: id.name.clone(),
        path: path.to_path_buf(),
        cumulative: id.cumulative,
        version: id.patch_version,
        replace: id.replace,
        srcversion: id.srcversion.clone(),
    };
    let plan = policy::plan(&loaded, &new, flags).map_err(refusal_error)?;
    Ok((id, plan))
}

/// Compute the plan of `lpctl unload`: `names`, or every livepatch module
/// when `all`. Top of the stack first.
pub fn plan_unload(sys: &Sys, names: &[String], all: bool) -> Result<Plan> {
    let (patches, _) = sys.patches()?;
    let mut targets: Vec<&PatchStatus> = if all {
        patches.iter().collect()
    } else {
        let mut v = Vec::new();
        for n in names {
            let n = n.replace('-', "_");
            // `/sys/module/` itself is a directory: "" must not look like a loaded module.
            if n.is_empty() || !n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(
                    Error::new(ErrorClass::Usage, format!("{n:?} is not a module name"))
                        .hint("lpctl list shows the loaded livepatches by name"),
                );
            }
            match patches.iter().find(|p| p.patch.name == n) {
                Some(p) => {
                    if !v.iter().any(|q: &&PatchStatus| q.patch.name == n) {
                        v.push(p)
                    }
                }
                None if sys.module_loaded(&n) => {
                    return Err(Error::new(
                        ErrorClass::NotFound,
                        format!("module {n} is loaded but is not a livepatch"),
                    )
                    .hint("use rmmod for regular modules"))
                }
                None => {
                    return Err(Error::new(
                        ErrorClass::NotFound,
                        format!("no livepatch named {n} is loaded"),
                    )
                    .hint("lpctl list shows the loaded livepatches"))
                }
            }
        }
        v
    };
    if let Some(p) = targets.iter().find(|p| p.patch.transition) {
        return Err(refusal_error(Refusal::InTransition {
            name: p.patch.name.clone(),
            state: p.state,
        }));
    }
    // Registered patches top of the stack first, then leftovers.
    targets.sort_by(|a, b| {
        (b.patch.registered, b.patch.stack_order).cmp(&(a.patch.registered, a.patch.stack_order))
    });
    let mut plan = Plan::default();
    for p in targets {
        if p.patch.enabled {
            plan.steps.push(Step {
                action: Action::Disable {
                    name: p.patch.name.clone(),
                },
                reason: "requested".into(),
            });
        }
        plan.steps.push(Step {
            action: Action::Unload {
                name: p.patch.name.clone(),
            },
            reason: if p.patch.enabled {
                "requested".into()
            } else {
                "requested (already disabled)".into()
            },
        });
    }
    Ok(plan)
}

/// `lpctl load`.
pub fn load(
    ctx: &mut Ctx<'_>,
    path: &Path,
    flags: &Flags,
    dry_run: bool,
) -> Result<(ModuleIdentity, Plan)> {
    let (id, plan) = plan_load(&ctx.sys, path, flags)?;
    if dry_run {
        return Ok((id, plan));
    }
    ctx.require_privileges()?;
    if plan.already_loaded {
        ctx.say(format!("{} is already loaded and enabled", id.name));
        return Ok((id, plan));
    }
    ctx.say(crate::output::plan_text(&plan, &id).trim_end());
    execute(ctx, &plan)?;
    Ok((id, plan))
}

/// `lpctl unload`.
pub fn unload(ctx: &mut Ctx<'_>, names: &[String], all: bool, dry_run: bool) -> Result<Plan> {
    let plan = plan_unload(&ctx.sys, names, all)?;
    if dry_run || plan.steps.is_empty() {
        return Ok(plan);
    }
    ctx.require_privileges()?;
    execute(ctx, &plan)?;
    Ok(plan)
}

/// Carry out a plan step by step; stop at the first failure.
pub fn execute(ctx: &mut Ctx<'_>, plan: &Plan) -> Result<()> {
    let mut done: Vec<String> = Vec::new();
    for step in &plan.steps {
        let r = match &step.action {
            Action::Disable { name } => disable(ctx, name),
            Action::Unload { name } => unload_module(ctx, name),
            Action::Load {
                path,
                name,
                replace,
            } => load_module(ctx, path, name, *replace, &plan.replaced),
        };
        if let Err(mut e) = r {
            if !done.is_empty() {
                e.message = format!(
                    "{}; done before the failure: {}",
                    e.message,
                    done.join(", ")
                );
            }
            return Err(e);
        }
        done.push(match &step.action {
            Action::Disable { name } => format!("disabled {name}"),
            Action::Unload { name } => format!("unloaded {name}"),
            Action::Load { name, .. } => format!("loaded {name}"),
        });
    }
    Ok(())
}

fn errno_error(what: &str, e: &io::Error) -> Error {
    let errno = e.raw_os_error().unwrap_or(0);
    let (class, hint) = match errno {
        libc::EPERM | libc::EACCES => (
            ErrorClass::Permission,
            "run as root with CAP_SYS_MODULE; also check kernel.modules_disabled and lockdown",
        ),
        libc::EBUSY | libc::EAGAIN => (
            ErrorClass::Busy,
            "another transition or module operation is in progress; retry later",
        ),
        libc::EEXIST => (
            ErrorClass::Kernel,
            "a module of this name is already loaded (lpctl list)",
        ),
        libc::ENOEXEC => (
            ErrorClass::BadModule,
            "the module does not fit this kernel (vermagic, arch); see dmesg",
        ),
        libc::EKEYREJECTED | libc::ENOKEY | libc::EBADMSG => (
            ErrorClass::Kernel,
            "the module signature was rejected: sign it with a key the kernel trusts",
        ),
        libc::ENOENT => (ErrorClass::NotFound, "see lpctl list"),
        libc::ENOSYS => (
            ErrorClass::NoLivepatch,
            "the kernel has no module support (CONFIG_MODULES), or a sandbox/seccomp blocks module syscalls",
        ),
        _ => (ErrorClass::Kernel, "see dmesg for the kernel's reason"),
    };
    Error::new(class, format!("{what}: {e}")).hint(hint)
}

enum Waited {
    /// The transition finished in the requested state.
    Done,
    /// The patch is no longer registered.
    Gone,
    /// Still in transition at the timeout.
    Stalled,
}

fn signal_blockers(ctx: &mut Ctx<'_>, name: &str) {
    let sig = ctx.sys.patch_dir(name).join("signal");
    if sig.exists() {
        match ctx.kernel.write_attr(&sig, "1") {
            Ok(()) => ctx.say(format!(
                "{name}: transition slow, signalled the blocking tasks"
            )),
            Err(e) => ctx.say(format!("{name}: could not signal the blocking tasks: {e}")),
        }
    } else {
        ctx.say(format!(
            "{name}: transition slow; this kernel signals blocking tasks itself (no signal attribute)"
        ));
    }
}

fn wait_transition(ctx: &mut Ctx<'_>, name: &str, target_enabled: bool) -> Result<Waited> {
    let start = Instant::now();
    let mut signalled = false;
    loop {
        match ctx.sys.patch_flags(name)? {
            None => return Ok(Waited::Gone),
            Some((enabled, false)) => {
                if enabled == target_enabled {
                    return Ok(Waited::Done);
                }
                return Err(Error::new(
                    ErrorClass::Kernel,
                    format!(
                        "the transition of {name} ended {}, not as requested",
                        if enabled { "enabled" } else { "disabled" }
                    ),
                )
                .hint("someone else wrote to /sys/kernel/livepatch meanwhile? see dmesg"));
            }
            Some((_, true)) => {}
        }
        let elapsed = start.elapsed();
        if !signalled && elapsed >= ctx.timing.signal_after {
            signalled = true;
            signal_blockers(ctx, name);
        }
        if elapsed >= ctx.timing.timeout {
            return Ok(Waited::Stalled);
        }
        sleep(ctx.timing.poll);
    }
}

fn report_blockers(ctx: &mut Ctx<'_>, name: &str, target: i32) -> usize {
    let blockers: Vec<Blocker> = ctx.sys.blockers(target);
    ctx.say(format!(
        "{name}: transition did not finish in {:.1}s; {} task(s) block it:",
        ctx.timing.timeout.as_secs_f64(),
        blockers.len()
    ));
    let text = crate::output::blockers_text(&blockers, 50);
    let _ = ctx.log.write_all(text.as_bytes());
    blockers.len()
}

fn write_enabled(ctx: &mut Ctx<'_>, name: &str, value: bool) -> Result<()> {
    let path = ctx.sys.patch_dir(name).join("enabled");
    ctx.kernel
        .write_attr(&path, if value { "1" } else { "0" })
        .map_err(|e| {
            errno_error(
                &format!(
                    "cannot {} {name} ({})",
                    if value { "enable" } else { "disable" },
                    path.display()
                ),
                &e,
            )
        })
}

/// Disable a registered patch and wait for the transition; on a stall,
/// reverse it (re-enable) and fail.
fn disable(ctx: &mut Ctx<'_>, name: &str) -> Result<()> {
    match ctx.sys.patch_flags(name)? {
        None | Some((false, false)) => return Ok(()), // nothing to do
        Some((enabled, true)) => {
            return Err(refusal_error(Refusal::InTransition {
                name: name.to_string(),
                state: if enabled {
                    policy::PatchState::Patching
                } else {
                    policy::PatchState::Unpatching
                },
            }))
        }
        Some((true, false)) => {}
    }
    ctx.say(format!("disabling {name}"));
    write_enabled(ctx, name, false)?;
    match wait_transition(ctx, name, false)? {
        Waited::Done | Waited::Gone => {
            ctx.say(format!("{name} disabled"));
            Ok(())
        }
        Waited::Stalled => {
            let n = report_blockers(ctx, name, 0);
            ctx.say(format!("reverting: re-enabling {name}"));
            write_enabled(ctx, name, true)?;
            let reverted = matches!(wait_transition(ctx, name, true)?, Waited::Done);
            Err(stall_error(name, "disabling", n, reverted, ctx.timing))
        }
    }
}

fn stall_error(name: &str, what: &str, blockers: usize, reverted: bool, t: Timing) -> Error {
    let base = format!(
        "{what} {name} stalled: the transition did not finish within {:.1}s ({blockers} blocking task(s) listed above)",
        t.timeout.as_secs_f64()
    );
    if reverted {
        Error::new(ErrorClass::Stalled, format!("{base}; reverted"))
            .hint("retry when the blocking tasks are idle, or raise --timeout")
    } else {
        Error::new(
            ErrorClass::Stalled,
            format!("{base}; the revert did not finish either, {name} is still in transition"),
        )
        .hint(format!(
            "wait, then check lpctl list; as a last resort: echo 1 > /sys/kernel/livepatch/{name}/force"
        ))
    }
}

/// Wait for the refcount to drop to 0, then `delete_module`. Disables the
/// patch first if it is still enabled.
fn unload_module(ctx: &mut Ctx<'_>, name: &str) -> Result<()> {
    if let Some((true, _)) | Some((_, true)) = ctx.sys.patch_flags(name)? {
        disable(ctx, name)?;
    }
    if !ctx.sys.module_loaded(name) {
        return Ok(());
    }
    let start = Instant::now();
    loop {
        match ctx.sys.module_refcnt(name) {
            Some(n) if n > 0 => {
                if start.elapsed() >= ctx.timing.timeout {
                    return Err(Error::new(
                        ErrorClass::Busy,
                        format!(
                            "module {name} still has refcount {n} after {:.1}s",
                            ctx.timing.timeout.as_secs_f64()
                        ),
                    )
                    .hint("something still holds the module; see lsmod and dmesg"));
                }
                sleep(ctx.timing.poll);
            }
            _ => break,
        }
    }
    loop {
        match ctx.kernel.delete_module(name) {
            Ok(()) => break,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => break, // already gone
            Err(e)
                if matches!(e.raw_os_error(), Some(libc::EBUSY) | Some(libc::EAGAIN))
                    && start.elapsed() < ctx.timing.timeout =>
            {
                sleep(ctx.timing.poll);
            }
            Err(e) => return Err(errno_error(&format!("cannot unload module {name}"), &e)),
        }
    }
    ctx.say(format!("unloaded {name}"));
    Ok(())
}

/// How many times `load` tries `finit_module` while the kernel answers EBUSY.
pub const BUSY_LOAD_ATTEMPTS: u32 = 5;

/// The wait between two attempts: 20 polling intervals (2 s by default).
pub fn busy_retry_interval(t: Timing) -> Duration {
    t.poll.saturating_mul(20)
}

/// `finit_module` (retried while the kernel is busy) and wait for the patching transition; on a stall, report
/// the blocking tasks, reverse the transition and unload the module.
fn load_module(
    ctx: &mut Ctx<'_>,
    path: &Path,
    name: &str,
    replace: bool,
    replaced: &[String],
) -> Result<()> {
    ctx.say(format!("loading {} as {name}", path.display()));
    let mut attempt = 1;
    loop {
        match ctx.kernel.load_module(path, "") {
            Ok(()) => break,
            // EBUSY: the kernel is in another transition (or another module operation); it
            // usually clears within seconds, so retry as kpatch's tool does.
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && attempt < BUSY_LOAD_ATTEMPTS => {
                let wait = busy_retry_interval(ctx.timing);
                ctx.say(format!(
                    "the kernel is busy (attempt {attempt} of {BUSY_LOAD_ATTEMPTS}): retrying \
                     in {:.1} s",
                    wait.as_secs_f64()
                ));
                sleep(wait);
                attempt += 1;
            }
            Err(e) => {
                let mut err = errno_error(&format!("cannot load {}", path.display()), &e);
                if attempt > 1 {
                    err.message = format!("{} (after {attempt} attempts)", err.message);
                }
                return Err(err);
            }
        }
    }
    if ctx.sys.patch_flags(name)?.is_none() {
        let _ = ctx.kernel.delete_module(name);
        return Err(Error::new(
            ErrorClass::Kernel,
            format!("module {name} loaded but registered no livepatch; unloaded it again"),
        )
        .hint("see dmesg"));
    }
    match wait_transition(ctx, name, true)? {
        Waited::Done => {}
        Waited::Gone => {
            return Err(Error::new(
                ErrorClass::Kernel,
                format!("livepatch {name} disappeared during its transition"),
            )
            .hint("see dmesg"))
        }
        Waited::Stalled => {
            let n = report_blockers(ctx, name, 1);
            ctx.say(format!("reverting: disabling {name}"));
            write_enabled(ctx, name, false)?;
            let reverted = matches!(
                wait_transition(ctx, name, false)?,
                Waited::Done | Waited::Gone
            );
            if reverted {
                unload_module(ctx, name)?;
            }
            return Err(stall_error(name, "loading", n, reverted, ctx.timing));
        }
    }
    if replace && !replaced.is_empty() {
        ctx.say(format!(
            "{name} enabled; it replaced {} (their modules stay loaded until lpctl unload)",
            replaced.join(", ")
        ));
    } else {
        ctx.say(format!("{name} enabled"));
    }
    Ok(())
}
