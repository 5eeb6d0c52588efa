//! The replace policy of `lpctl load`: a pure function from what is
//! loaded and what is about to be loaded to a [`Plan`].
//!
//! Rules (see README.md):
//! 1. A module with the new module's name that is loaded but disabled
//!    (left behind by an earlier replace or disable) is unloaded first.
//! 2. If a patch is in transition, nothing is done (the kernel cannot start
//!    another transition anyway).
//! 3. `--keep-others` (non-cumulative, non-replace patch only): nothing else
//!    is disabled; the patch is stacked on top.
//! 4. Otherwise every enabled non-cumulative patch is disabled explicitly,
//!    so that its own unpatch callbacks run.
//! 5. New non-cumulative patch: every enabled patch is disabled, then the
//!    new one is loaded.
//! 6. New cumulative patch, version V: enabled cumulative patches with a
//!    version <= V are left to the atomic replace (one transition, no window
//!    without the fixes; only the new patch's callbacks run, and it takes
//!    over their system states); those with version > V make it a
//!    downgrade, refused unless `--allow-downgrade`, in which case they are
//!    disabled explicitly first.
//! 7. A patch with the same name that is enabled and has the same identity
//!    (cumulative flag, version, srcversion when both known) is "already
//!    loaded": empty plan. With a different identity it is disabled and
//!    unloaded before the load (the kernel cannot hold two modules of one
//!    name), subject to the downgrade rule.
//!
//! Every explicitly disabled patch is unloaded right after it is disabled,
//! top of the stack first.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

/// A livepatch module present on the running kernel, as data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LoadedPatch {
    pub name: String,
    /// `/sys/kernel/livepatch/<name>/enabled` (false when not registered).
    pub enabled: bool,
    /// `/sys/kernel/livepatch/<name>/transition`.
    pub transition: bool,
    /// The patch is registered with the livepatch core
    /// (`/sys/kernel/livepatch/<name>` exists). A loaded livepatch module
    /// that is not registered was replaced or disabled and is a leftover.
    pub registered: bool,
    pub cumulative: bool,
    pub version: u32,
    /// 1 = bottom of the stack; higher wins. 0 = not in the stack.
    pub stack_order: u32,
    /// `/sys/module/<name>/srcversion` when present.
    pub srcversion: Option<String>,
}

impl LoadedPatch {
    pub fn state(&self) -> PatchState {
        match (self.enabled, self.transition) {
            (true, false) => PatchState::Enabled,
            (true, true) => PatchState::Patching,
            (false, true) => PatchState::Unpatching,
            (false, false) => PatchState::Disabled,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PatchState {
    Enabled,
    /// In transition towards enabled.
    Patching,
    /// In transition towards disabled.
    Unpatching,
    Disabled,
}

impl PatchState {
    pub fn in_transition(self) -> bool {
        matches!(self, PatchState::Patching | PatchState::Unpatching)
    }
}

impl fmt::Display for PatchState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PatchState::Enabled => "enabled",
            PatchState::Patching => "in transition (patching)",
            PatchState::Unpatching => "in transition (unpatching)",
            PatchState::Disabled => "disabled",
        })
    }
}

/// The module about to be loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPatch {
    pub name: String,
    pub path: PathBuf,
    pub cumulative: bool,
    pub version: u32,
    /// Atomic replace (cumulative implies it).
    pub replace: bool,
    pub srcversion: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flags {
    pub allow_downgrade: bool,
    pub keep_others: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// `echo 0 > /sys/kernel/livepatch/<name>/enabled` and wait.
    Disable { name: String },
    /// Wait for the refcount to drop, then `delete_module`.
    Unload { name: String },
    /// `finit_module` and wait for the transition.
    Load {
        path: PathBuf,
        name: String,
        replace: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    #[serde(flatten)]
    pub action: Action,
    /// Why the policy chose this step, for humans.
    pub reason: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub steps: Vec<Step>,
    /// The same module is already loaded and enabled: nothing to do.
    pub already_loaded: bool,
    /// Registered patches that the atomic replace of the new patch will
    /// replace without being disabled explicitly.
    pub replaced: Vec<String>,
}

impl Plan {
    pub fn actions(&self) -> Vec<Action> {
        self.steps.iter().map(|s| s.action.clone()).collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Some patch is in transition.
    InTransition { name: String, state: PatchState },
    /// Loading would downgrade a cumulative patch.
    Downgrade {
        loaded: String,
        loaded_version: u32,
        new_version: u32,
    },
    /// `--keep-others` with a patch that replaces everything.
    KeepOthersWithReplace,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::InTransition { name, state } => {
                write!(f, "patch {name} is {state}")
            }
            Refusal::Downgrade {
                loaded,
                loaded_version,
                new_version,
            } => write!(
                f,
                "refusing to downgrade: cumulative patch {loaded} version {loaded_version} \
                 is loaded, the new patch is version {new_version}"
            ),
            Refusal::KeepOthersWithReplace => write!(
                f,
                "--keep-others cannot be used with a cumulative (atomic replace) patch"
            ),
        }
    }
}

fn describe(p: &LoadedPatch) -> String {
    if p.cumulative {
        format!("cumulative v{}", p.version)
    } else {
        "non-cumulative".to_string()
    }
}

/// Compute what `lpctl load` has to do. Pure: no I/O.
pub fn plan(loaded: &[LoadedPatch], new: &NewPatch, flags: &Flags) -> Result<Plan, Refusal> {
    if let Some(p) = loaded.iter().find(|p| p.transition) {
        return Err(Refusal::InTransition {
            name: p.name.clone(),
            state: p.state(),
        });
    }
    if flags.keep_others && new.replace {
        return Err(Refusal::KeepOthersWithReplace);
    }

    let mut plan = Plan::default();
    let same = loaded.iter().find(|p| p.name == new.name);

    if let Some(s) = same {
        if s.enabled {
            let same_src = match (&s.srcversion, &new.srcversion) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            };
            if s.cumulative == new.cumulative && s.version == new.version && same_src {
                plan.already_loaded = true;
                return Ok(plan);
            }
        } else {
            plan.steps.push(Step {
                action: Action::Unload {
                    name: s.name.clone(),
                },
                reason: "a disabled module of the same name is still loaded (left by an \
                         earlier replace or disable); it must go first"
                    .to_string(),
            });
        }
    }

    // Enabled patches, top of the stack first.
    let mut active: Vec<&LoadedPatch> = loaded.iter().filter(|p| p.enabled).collect();
    active.sort_by(|a, b| {
        b.stack_order
            .cmp(&a.stack_order)
            .then_with(|| a.name.cmp(&b.name))
    });

    if new.cumulative {
        if let Some(newer) = active
            .iter()
            .filter(|p| p.cumulative && p.version > new.version)
            .max_by_key(|p| p.version)
        {
            if !flags.allow_downgrade {
                return Err(Refusal::Downgrade {
                    loaded: newer.name.clone(),
                    loaded_version: newer.version,
                    new_version: new.version,
                });
            }
        }
    }

    for p in &active {
        let reason = if p.name == new.name {
            Some(format!(
                "same module name as the new patch ({} loaded, making room)",
                describe(p)
            ))
        } else if flags.keep_others {
            None
        } else if !p.cumulative {
            Some("non-cumulative: disabled explicitly so its unpatch callbacks run".to_string())
        } else if !new.cumulative {
            Some(format!(
                "{}: the new patch is non-cumulative, all loaded patches are disabled",
                describe(p)
            ))
        } else if p.version > new.version {
            Some(format!(
                "{}: newer than v{}, downgrade allowed by --allow-downgrade",
                describe(p),
                new.version
            ))
        } else {
            None
        };
        match reason {
            Some(reason) => {
                plan.steps.push(Step {
                    action: Action::Disable {
                        name: p.name.clone(),
                    },
                    reason,
                });
                plan.steps.push(Step {
                    action: Action::Unload {
                        name: p.name.clone(),
                    },
                    reason: "disabled above".to_string(),
                });
            }
            None => {
                if new.replace {
                    plan.replaced.push(p.name.clone());
                }
            }
        }
    }

    plan.steps.push(Step {
        action: Action::Load {
            path: new.path.clone(),
            name: new.name.clone(),
            replace: new.replace,
        },
        reason: if new.replace {
            "with atomic replace".to_string()
        } else if flags.keep_others {
            "stacked on top of the loaded patches (--keep-others)".to_string()
        } else {
            "new patch".to_string()
        },
    });
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lp(name: &str, cumulative: bool, version: u32, order: u32) -> LoadedPatch {
        LoadedPatch {
            name: name.into(),
            enabled: true,
            transition: false,
            registered: true,
            cumulative,
            version,
            stack_order: order,
            srcversion: None,
        }
    }

    fn fix(name: &str, order: u32) -> LoadedPatch {
        lp(name, false, 0, order)
    }

    fn cum(name: &str, version: u32, order: u32) -> LoadedPatch {
        lp(name, true, version, order)
    }

    fn leftover(name: &str, cumulative: bool, version: u32) -> LoadedPatch {
        LoadedPatch {
            enabled: false,
            registered: false,
            stack_order: 0,
            ..lp(name, cumulative, version, 0)
        }
    }

    fn new_fix(name: &str) -> NewPatch {
        NewPatch {
            name: name.into(),
            path: format!("/p/{name}.ko").into(),
            cumulative: false,
            version: 0,
            replace: false,
            srcversion: None,
        }
    }

    fn new_cum(name: &str, version: u32) -> NewPatch {
        NewPatch {
            cumulative: true,
            replace: true,
            version,
            ..new_fix(name)
        }
    }

    fn d(n: &str) -> Action {
        Action::Disable { name: n.into() }
    }
    fn u(n: &str) -> Action {
        Action::Unload { name: n.into() }
    }
    fn l(new: &NewPatch) -> Action {
        Action::Load {
            path: new.path.clone(),
            name: new.name.clone(),
            replace: new.replace,
        }
    }

    const NONE: Flags = Flags {
        allow_downgrade: false,
        keep_others: false,
    };
    const DOWN: Flags = Flags {
        allow_downgrade: true,
        keep_others: false,
    };
    const KEEP: Flags = Flags {
        allow_downgrade: false,
        keep_others: true,
    };

    struct Case {
        what: &'static str,
        loaded: Vec<LoadedPatch>,
        new: NewPatch,
        flags: Flags,
        expect: Result<Vec<Action>, Refusal>,
    }

    fn cases() -> Vec<Case> {
        let c1 = new_cum("cum_v1", 1);
        let c2 = new_cum("cum_v2", 2);
        let c3 = new_cum("cum_v3", 3);
        let f3 = new_fix("fix_c");
        vec![
            Case {
                what: "first patch on a clean kernel",
                loaded: vec![],
                new: f3.clone(),
                flags: NONE,
                expect: Ok(vec![l(&f3)]),
            },
            Case {
                what: "two non-cumulative fixes then cumulative v1",
                loaded: vec![fix("fix_a", 1), fix("fix_b", 2)],
                new: c1.clone(),
                flags: NONE,
                expect: Ok(vec![d("fix_b"), u("fix_b"), d("fix_a"), u("fix_a"), l(&c1)]),
            },
            Case {
                what: "cumulative v2 over v1: left to the atomic replace",
                loaded: vec![cum("cum_v1", 1, 1)],
                new: c2.clone(),
                flags: NONE,
                expect: Ok(vec![l(&c2)]),
            },
            Case {
                what: "cumulative v1 over v2 is refused",
                loaded: vec![cum("cum_v2", 2, 1)],
                new: c1.clone(),
                flags: NONE,
                expect: Err(Refusal::Downgrade {
                    loaded: "cum_v2".into(),
                    loaded_version: 2,
                    new_version: 1,
                }),
            },
            Case {
                what: "cumulative v1 over v2 with --allow-downgrade",
                loaded: vec![cum("cum_v2", 2, 1)],
                new: c1.clone(),
                flags: DOWN,
                expect: Ok(vec![d("cum_v2"), u("cum_v2"), l(&c1)]),
            },
            Case {
                what: "downgrade refusal names the highest loaded version",
                loaded: vec![cum("cum_v2", 2, 1), cum("cum_v5", 5, 2)],
                new: c1.clone(),
                flags: NONE,
                expect: Err(Refusal::Downgrade {
                    loaded: "cum_v5".into(),
                    loaded_version: 5,
                    new_version: 1,
                }),
            },
            Case {
                what: "non-cumulative over cumulative v2",
                loaded: vec![cum("cum_v2", 2, 1)],
                new: f3.clone(),
                flags: NONE,
                expect: Ok(vec![d("cum_v2"), u("cum_v2"), l(&f3)]),
            },
            Case {
                what: "non-cumulative over cumulative v2 is not a downgrade even without the flag",
                loaded: vec![cum("cum_v2", 2, 1), fix("fix_a", 2)],
                new: f3.clone(),
                flags: NONE,
                expect: Ok(vec![
                    d("fix_a"),
                    u("fix_a"),
                    d("cum_v2"),
                    u("cum_v2"),
                    l(&f3),
                ]),
            },
            Case {
                what: "--keep-others stacks a fix on top of everything",
                loaded: vec![cum("cum_v2", 2, 1), fix("fix_a", 2)],
                new: f3.clone(),
                flags: KEEP,
                expect: Ok(vec![l(&f3)]),
            },
            Case {
                what: "--keep-others with a cumulative patch is refused",
                loaded: vec![fix("fix_a", 1)],
                new: c1.clone(),
                flags: KEEP,
                expect: Err(Refusal::KeepOthersWithReplace),
            },
            Case {
                what: "same-name disabled leftover is cleaned up first",
                loaded: vec![leftover("cum_v2", true, 2), cum("cum_v3", 3, 1)],
                new: c2.clone(),
                flags: DOWN,
                expect: Ok(vec![u("cum_v2"), d("cum_v3"), u("cum_v3"), l(&c2)]),
            },
            Case {
                what: "same-name leftover of a fix, nothing else loaded",
                loaded: vec![leftover("fix_c", false, 0)],
                new: f3.clone(),
                flags: NONE,
                expect: Ok(vec![u("fix_c"), l(&f3)]),
            },
            Case {
                what: "other leftovers are ignored",
                loaded: vec![leftover("cum_v1", true, 1), cum("cum_v2", 2, 1)],
                new: c3.clone(),
                flags: NONE,
                expect: Ok(vec![l(&c3)]),
            },
            Case {
                what: "fixes and a cumulative under a newer cumulative",
                loaded: vec![fix("fix_a", 1), cum("cum_v1", 1, 2), fix("fix_b", 3)],
                new: c3.clone(),
                flags: NONE,
                expect: Ok(vec![d("fix_b"), u("fix_b"), d("fix_a"), u("fix_a"), l(&c3)]),
            },
            Case {
                what: "equal-version cumulative of another name is left to atomic replace",
                loaded: vec![cum("cum_v3_old", 3, 1)],
                new: c3.clone(),
                flags: NONE,
                expect: Ok(vec![l(&c3)]),
            },
            Case {
                what: "already loaded: nothing to do",
                loaded: vec![fix("fix_a", 1), cum("cum_v2", 2, 2)],
                new: c2.clone(),
                flags: NONE,
                expect: Ok(vec![]),
            },
            Case {
                what: "same name, different version: disable and unload it first",
                loaded: vec![cum("cum_v2", 1, 1)],
                new: c2.clone(),
                flags: NONE,
                expect: Ok(vec![d("cum_v2"), u("cum_v2"), l(&c2)]),
            },
            Case {
                what: "same name with a higher version is a downgrade",
                loaded: vec![cum("cum_v2", 9, 1)],
                new: c2.clone(),
                flags: NONE,
                expect: Err(Refusal::Downgrade {
                    loaded: "cum_v2".into(),
                    loaded_version: 9,
                    new_version: 2,
                }),
            },
            Case {
                what: "same name under --keep-others still has to make room",
                loaded: vec![
                    fix("fix_a", 1),
                    LoadedPatch {
                        srcversion: Some("OLD".into()),
                        ..fix("fix_c", 2)
                    },
                ],
                new: NewPatch {
                    srcversion: Some("NEW".into()),
                    ..f3.clone()
                },
                flags: KEEP,
                expect: Ok(vec![
                    d("fix_c"),
                    u("fix_c"),
                    l(&NewPatch {
                        srcversion: Some("NEW".into()),
                        ..f3.clone()
                    }),
                ]),
            },
            Case {
                what: "patch in transition: refused",
                loaded: vec![LoadedPatch {
                    transition: true,
                    ..fix("fix_a", 1)
                }],
                new: f3.clone(),
                flags: NONE,
                expect: Err(Refusal::InTransition {
                    name: "fix_a".into(),
                    state: PatchState::Patching,
                }),
            },
            Case {
                what: "foreign patches count as non-cumulative v0",
                loaded: vec![fix("kpatch_foo", 1)],
                new: c1.clone(),
                flags: NONE,
                expect: Ok(vec![d("kpatch_foo"), u("kpatch_foo"), l(&c1)]),
            },
        ]
    }

    #[test]
    fn policy_table() {
        let mut failed = Vec::new();
        for c in cases() {
            let got = plan(&c.loaded, &c.new, &c.flags).map(|p| p.actions());
            if got != c.expect {
                failed.push(format!(
                    "{}:\n  expected {:?}\n  got      {:?}",
                    c.what, c.expect, got
                ));
            }
        }
        assert!(failed.is_empty(), "{}", failed.join("\n"));
    }

    #[test]
    fn already_loaded_flag_and_srcversion() {
        let mut loaded = cum("cum_v2", 2, 1);
        loaded.srcversion = Some("AAA".into());
        let mut new = new_cum("cum_v2", 2);
        new.srcversion = Some("AAA".into());
        let p = plan(std::slice::from_ref(&loaded), &new, &NONE).unwrap();
        assert!(p.already_loaded && p.steps.is_empty());
        new.srcversion = Some("BBB".into());
        let p = plan(&[loaded], &new, &NONE).unwrap();
        assert!(!p.already_loaded);
        assert_eq!(p.actions(), vec![d("cum_v2"), u("cum_v2"), l(&new)]);
    }

    #[test]
    fn replaced_lists_patches_left_to_atomic_replace() {
        let p = plan(
            &[cum("cum_v3_old", 3, 1), fix("fix_a", 2)],
            &new_cum("cum_v3", 3),
            &NONE,
        )
        .unwrap();
        assert_eq!(p.replaced, vec!["cum_v3_old".to_string()]);
        // Older cumulative versions too: an upgrade is one atomic replace.
        let p = plan(
            &[cum("cum_v1", 1, 1), cum("cum_v2", 2, 2)],
            &new_cum("cum_v3", 3),
            &NONE,
        )
        .unwrap();
        assert_eq!(p.actions(), vec![l(&new_cum("cum_v3", 3))]);
        assert_eq!(p.replaced, vec!["cum_v2".to_string(), "cum_v1".to_string()]);
    }

    #[test]
    fn unpatching_transition_refused_too() {
        let t = LoadedPatch {
            enabled: false,
            transition: true,
            ..cum("cum_v1", 1, 1)
        };
        let e = plan(&[t], &new_cum("cum_v2", 2), &DOWN).unwrap_err();
        assert_eq!(
            e,
            Refusal::InTransition {
                name: "cum_v1".into(),
                state: PatchState::Unpatching
            }
        );
    }
}
