//! Human-readable renderings (tables, plans, identities).

use std::fmt::Write as _;

use crate::modinfo::ModuleIdentity;
use crate::ops::Listing;
use crate::policy::{Action, Plan};
use crate::sysfs::{Blocker, OrderSource};

fn kind(cumulative: bool, version: u32) -> String {
    if cumulative {
        format!("cumulative v{version}")
    } else {
        "non-cumulative".to_string()
    }
}

/// A left-aligned table with two spaces between columns.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                l.push_str(c);
            } else {
                let pad = widths[i].saturating_sub(c.chars().count());
                l.push_str(c);
                l.push_str(&" ".repeat(pad + 2));
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(header.to_vec());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
    out
}

pub fn list_text(l: &Listing) -> String {
    let mut out = loaded_text(l);
    if !l.installed.is_empty() {
        let rows: Vec<Vec<String>> = l
            .installed
            .iter()
            .map(|i| vec![i.name.clone(), i.file.display().to_string()])
            .collect();
        out.push_str("\ninstalled for this kernel (lpctl load --all loads them at boot):\n");
        out.push_str(&table(&["PATCH", "FILE"], &rows));
    }
    out
}

/// The loaded patches and the functions they patch.
fn loaded_text(l: &Listing) -> String {
    let mut out = String::new();
    if l.patches.is_empty() {
        out.push_str("no livepatch modules loaded\n");
        return out;
    }
    let rows: Vec<Vec<String>> = l
        .patches
        .iter()
        .map(|p| {
            let mut notes = Vec::new();
            if !p.patch.registered {
                notes.push("module left loaded (replaced or disabled)".to_string());
            }
            if !p.lp_build {
                notes.push("not built by lp-build".to_string());
            }
            if p.replace == Some(true) && !p.patch.cumulative {
                notes.push("replace".to_string());
            }
            if let Some(r) = p.refcnt {
                notes.push(format!("refcnt {r}"));
            }
            vec![
                p.patch.name.clone(),
                p.state.to_string(),
                kind(p.patch.cumulative, p.patch.version),
                if p.patch.registered && p.patch.stack_order > 0 {
                    p.patch.stack_order.to_string()
                } else {
                    "-".to_string()
                },
                notes.join(", "),
            ]
        })
        .collect();
    out.push_str(&table(&["PATCH", "STATE", "TYPE", "ORDER", "NOTES"], &rows));
    let _ = writeln!(
        out,
        "(stack order from {}; the highest order wins)",
        match l.order_source {
            OrderSource::StackOrder => "/sys/kernel/livepatch/*/stack_order",
            OrderSource::LoadOrder => "the load order in /proc/modules",
        }
    );
    out.push('\n');
    if l.functions.is_empty() {
        out.push_str("no functions patched\n");
    } else {
        let rows: Vec<Vec<String>> = l
            .functions
            .iter()
            .map(|f| {
                vec![
                    f.object.clone(),
                    f.function.clone(),
                    f.sympos.to_string(),
                    f.winner.clone(),
                    f.patches[1..].join(", "),
                ]
            })
            .collect();
        out.push_str(&table(
            &["OBJECT", "FUNCTION", "POS", "ACTIVE PATCH", "OVERRIDES"],
            &rows,
        ));
    }
    out
}

pub fn info_text(path: &std::path::Path, id: &ModuleIdentity) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "file:           {}", path.display());
    let _ = writeln!(o, "name:           {}", id.name);
    let _ = writeln!(
        o,
        "livepatch:      {}",
        if id.livepatch { "yes" } else { "no" }
    );
    let _ = writeln!(
        o,
        "built by:       {}",
        match (&id.build_version, id.lp_build) {
            (Some(v), _) => format!("lp-build {v}"),
            (None, true) => "lp-build (version not recorded)".to_string(),
            (None, false) => "not lp-build (no lp_* keys)".to_string(),
        }
    );
    let _ = writeln!(
        o,
        "cumulative:     {}",
        if id.cumulative { "yes" } else { "no" }
    );
    let _ = writeln!(o, "patch version:  {}", id.patch_version);
    let _ = writeln!(
        o,
        "replace:        {}",
        if id.replace { "yes" } else { "no" }
    );
    if let Some(v) = &id.vermagic {
        let _ = writeln!(o, "vermagic:       {v}");
    }
    if let Some(v) = &id.srcversion {
        let _ = writeln!(o, "srcversion:     {v}");
    }
    if id.sources.is_empty() {
        let _ = writeln!(o, "source patches: (none recorded)");
    } else {
        let _ = writeln!(o, "source patches:");
        for s in &id.sources {
            let _ = writeln!(o, "  {}  sha256:{}", s.name, s.sha256);
        }
    }
    o
}

pub fn plan_text(plan: &Plan, id: &ModuleIdentity) -> String {
    let mut o = String::new();
    let what = format!("{} ({})", id.name, kind(id.cumulative, id.patch_version));
    if plan.already_loaded {
        let _ = writeln!(o, "{what} is already loaded and enabled: nothing to do");
        return o;
    }
    let _ = writeln!(o, "plan for {what}:");
    o.push_str(&steps_text(plan));
    o
}

pub fn steps_text(plan: &Plan) -> String {
    let mut o = String::new();
    if plan.steps.is_empty() {
        let _ = writeln!(o, "  nothing to do");
    }
    for (i, s) in plan.steps.iter().enumerate() {
        let n = i + 1;
        let _ = match &s.action {
            Action::Disable { name } => writeln!(o, "  {n}. disable {name}: {}", s.reason),
            Action::Unload { name } => writeln!(o, "  {n}. unload {name}: {}", s.reason),
            Action::Load {
                path,
                name,
                replace,
            } => {
                let mut extra = String::new();
                if *replace && !plan.replaced.is_empty() {
                    extra = format!(" (replaces {})", plan.replaced.join(", "));
                }
                writeln!(
                    o,
                    "  {n}. load {} as {name}: {}{extra}",
                    path.display(),
                    s.reason
                )
            }
        };
    }
    o
}

pub fn blockers_text(blockers: &[Blocker], max: usize) -> String {
    let mut o = String::new();
    for b in blockers.iter().take(max) {
        let _ = writeln!(
            o,
            "  task {} (pid {}) {}: patch_state {}",
            b.tid, b.pid, b.comm, b.patch_state
        );
        for l in &b.stack {
            let _ = writeln!(o, "      {l}");
        }
    }
    if blockers.len() > max {
        let _ = writeln!(o, "  ... and {} more", blockers.len() - max);
    }
    if blockers.is_empty() {
        let _ = writeln!(
            o,
            "  (no blocking task found in /proc; idle or exiting tasks may block it, see dmesg)"
        );
    }
    o
}

/// `lpctl info NAME` for a loaded livepatch.
pub fn loaded_info_text(i: &crate::ops::LoadedInfo) -> String {
    let p = &i.patch;
    let mut o = String::new();
    let _ = writeln!(o, "name:           {}", p.patch.name);
    let _ = writeln!(o, "state:          {}", p.state);
    let _ = writeln!(
        o,
        "registered:     {}",
        if p.patch.registered {
            "yes"
        } else {
            "no (module left loaded: replaced or disabled)"
        }
    );
    let _ = writeln!(
        o,
        "type:           {}",
        kind(p.patch.cumulative, p.patch.version)
    );
    let _ = writeln!(
        o,
        "built by:       {}",
        if p.lp_build {
            "lp-build"
        } else {
            "not lp-build (no lp_* parameters)"
        }
    );
    if let Some(r) = p.replace {
        let _ = writeln!(o, "replace:        {}", if r { "yes" } else { "no" });
    }
    if p.patch.registered && p.patch.stack_order > 0 {
        let _ = writeln!(
            o,
            "stack order:    {} (from {})",
            p.patch.stack_order,
            match i.order_source {
                OrderSource::StackOrder => "stack_order",
                OrderSource::LoadOrder => "the load order",
            }
        );
    }
    if let Some(v) = &p.patch.srcversion {
        let _ = writeln!(o, "srcversion:     {v}");
    }
    if let Some(r) = p.refcnt {
        let _ = writeln!(o, "refcnt:         {r}");
    }
    if i.functions.is_empty() {
        let _ = writeln!(o, "functions:      (none patched now)");
    } else {
        let _ = writeln!(o, "functions:");
        for f in &i.functions {
            let who = if f.winner == p.patch.name {
                "active".to_string()
            } else {
                format!("overridden by {}", f.winner)
            };
            let _ = writeln!(o, "  {}:{},{}  {who}", f.object, f.function, f.sympos);
        }
    }
    o
}
