//! End-to-end tests of lpctl on a fake /sys + /proc tree with a fake
//! kernel that records the module syscalls and sysfs writes.

mod common;

use clap::Parser;
use common::*;
use lpctl::cli::{run, Cli};
use lpctl::{Error, ErrorClass};

struct Outcome {
    result: Result<(), Error>,
    out: String,
    log: String,
}

fn lpctl(tree: &Tree, k: &mut FakeKernel<'_>, args: &[&str]) -> Outcome {
    let root = tree.root().to_str().unwrap().to_string();
    let mut argv = vec!["lpctl", "--root", &root];
    argv.extend_from_slice(args);
    // Fast polling, short timeouts: the fake kernel is instantaneous.
    let is_mutating = matches!(args.first(), Some(&"load") | Some(&"unload"));
    if is_mutating {
        argv.extend_from_slice(&["--poll-ms", "5"]);
        if !args.contains(&"--timeout") {
            argv.extend_from_slice(&["--timeout", "0.3"]);
        }
        if !args.contains(&"--signal-after") {
            argv.extend_from_slice(&["--signal-after", "0.1"]);
        }
    }
    let cli = Cli::try_parse_from(argv).expect("valid command line");
    let mut out = Vec::new();
    let mut log = Vec::new();
    let result = run(cli, k, &mut out, &mut log);
    Outcome {
        result,
        out: String::from_utf8(out).unwrap(),
        log: String::from_utf8(log).unwrap(),
    }
}

fn ok(o: &Outcome) {
    if let Err(e) = &o.result {
        panic!("unexpected error: {e}\nlog:\n{}", o.log);
    }
}

fn err_class(o: &Outcome) -> ErrorClass {
    match &o.result {
        Ok(()) => panic!("expected an error; out:\n{}\nlog:\n{}", o.out, o.log),
        Err(e) => e.class,
    }
}

fn names_in_list(tree: &Tree) -> Vec<(String, String)> {
    let mut k = FakeKernel::new(tree);
    let o = lpctl(tree, &mut k, &["list", "--json"]);
    ok(&o);
    let v: serde_json::Value = serde_json::from_str(&o.out).unwrap();
    v["patches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_string(),
                p["state"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

// ---------------------------------------------------------------- list

#[test]
fn list_table_by_load_order() {
    let t = Tree::new();
    t.add_patch(
        "fix_a",
        Some((false, 0)),
        &[
            ("vmlinux", "cmdline_proc_show", 1),
            ("ext4", "ext4_fill_super", 1),
        ],
    );
    t.add_patch(
        "fix_b",
        Some((false, 0)),
        &[("vmlinux", "cmdline_proc_show", 1), ("vmlinux", "dup", 2)],
    );
    t.add_patch("kpatch_x", None, &[("nfs", "nfs_open", 1)]);
    t.set_attr("kpatch_x/nfs", "patched", "0"); // nfs not loaded
    t.add_leftover("cum_v1", true, 1);
    let mut k = FakeKernel::new(&t);
    let o = lpctl(&t, &mut k, &["list"]);
    ok(&o);
    let expected = "\
PATCH     STATE     TYPE            ORDER  NOTES
fix_a     enabled   non-cumulative  1      refcnt 1
fix_b     enabled   non-cumulative  2      refcnt 1
kpatch_x  enabled   non-cumulative  3      not built by lp-build, refcnt 1
cum_v1    disabled  cumulative v1   -      module left loaded (replaced or disabled), refcnt 0
(stack order from the load order in /proc/modules; the highest order wins)

OBJECT   FUNCTION           POS  ACTIVE PATCH  OVERRIDES
ext4     ext4_fill_super    1    fix_a
vmlinux  cmdline_proc_show  1    fix_b         fix_a
vmlinux  dup                2    fix_b
";
    assert_eq!(o.out, expected);
    assert!(k.calls.is_empty());
}

#[test]
fn patch_being_freed_counts_as_unregistered() {
    // Right after a disable (or an atomic replace) the kernel frees the
    // patch asynchronously: its attributes go before its directory (and
    // read as ENODEV before that). Seen in the VM as a failing
    // `lpctl load` ("has no enabled attribute") right after a disable.
    let t = Tree::new();
    t.add_patch("fix_a", Some((false, 1)), &[("vmlinux", "f", 1)]);
    t.add_patch("fix_b", Some((false, 1)), &[("vmlinux", "g", 1)]);
    std::fs::remove_file(t.p("sys/kernel/livepatch/fix_a/enabled")).unwrap();
    std::fs::remove_file(t.p("sys/kernel/livepatch/fix_a/transition")).unwrap();
    let mut k = FakeKernel::new(&t);
    let o = lpctl(&t, &mut k, &["list", "--json"]);
    ok(&o);
    let v: serde_json::Value = serde_json::from_str(&o.out).unwrap();
    assert_eq!(v["patches"][0]["name"], "fix_b");
    assert_eq!(v["patches"][0]["stack_order"], 1);
    assert_eq!(v["patches"][1]["name"], "fix_a");
    assert_eq!(v["patches"][1]["registered"], false);
    assert_eq!(v["patches"][1]["state"], "disabled");
    assert_eq!(v["functions"].as_array().unwrap().len(), 1);
    assert_eq!(v["functions"][0]["winner"], "fix_b");
    // Unloading it only removes the module (nothing to disable).
    t.set_refcnt("fix_a", 0);
    ok(&lpctl(&t, &mut k, &["unload", "fix_a"]));
    assert_eq!(k.calls, vec!["rmmod fix_a"]);
}

#[test]
fn list_uses_stack_order_attribute() {
    let mut t = Tree::new();
    t.stack_order_attr = true;
    t.add_patch("old", Some((false, 0)), &[("vmlinux", "f", 1)]);
    t.add_patch("new", Some((true, 4)), &[("vmlinux", "f", 1)]);
    // Make /proc/modules order disagree: the stack_order attribute wins.
    t.set_attr("old", "stack_order", "9");
    let mut k = FakeKernel::new(&t);
    let o = lpctl(&t, &mut k, &["list", "--json"]);
    ok(&o);
    let v: serde_json::Value = serde_json::from_str(&o.out).unwrap();
    assert_eq!(v["order_source"], "stack_order");
    assert_eq!(v["patches"][0]["name"], "new");
    assert_eq!(v["patches"][0]["cumulative"], true);
    assert_eq!(v["patches"][0]["version"], 4);
    assert_eq!(v["patches"][1]["name"], "old");
    assert_eq!(v["patches"][1]["stack_order"], 9);
    assert_eq!(v["functions"][0]["winner"], "old");
    assert_eq!(v["functions"][0]["patches"][1], "new");
}

#[test]
fn list_shows_transition_states() {
    let t = Tree::new();
    t.add_patch("p1", Some((false, 0)), &[]);
    t.add_patch("p2", Some((false, 0)), &[]);
    t.set_attr("p1", "transition", "1");
    t.set_attr("p2", "enabled", "0");
    t.set_attr("p2", "transition", "1");
    let mut k = FakeKernel::new(&t);
    let o = lpctl(&t, &mut k, &["list"]);
    ok(&o);
    assert!(
        o.out.contains("\np1     in transition (patching)  "),
        "{}",
        o.out
    );
    assert!(
        o.out.contains("\np2     in transition (unpatching)  "),
        "{}",
        o.out
    );
    assert_eq!(
        names_in_list(&t),
        vec![
            ("p1".to_string(), "patching".to_string()),
            ("p2".to_string(), "unpatching".to_string())
        ]
    );
}

#[test]
fn list_empty_and_unsupported() {
    let t = Tree::new();
    let mut k = FakeKernel::new(&t);
    let o = lpctl(&t, &mut k, &["list"]);
    ok(&o);
    assert_eq!(o.out, "no livepatch modules loaded\n");

    std::fs::remove_dir(t.p("sys/kernel/livepatch")).unwrap();
    let o = lpctl(&t, &mut k, &["list"]);
    assert_eq!(err_class(&o), ErrorClass::NoLivepatch);
    assert!(o
        .result
        .unwrap_err()
        .to_string()
        .contains("CONFIG_LIVEPATCH"));

    std::fs::remove_dir_all(t.p("sys")).unwrap();
    let o = lpctl(&t, &mut k, &["list"]);
    assert_eq!(err_class(&o), ErrorClass::NoLivepatch);
    assert!(o.result.unwrap_err().to_string().contains("sysfs mounted"));
}

// ---------------------------------------------------------------- info

#[test]
fn info_human_and_json() {
    let t = Tree::new();
    let ko = write_ko(t.root(), "cum_v3", true, 3);
    let mut k = FakeKernel::new(&t);
    let o = lpctl(&t, &mut k, &["info", ko.to_str().unwrap()]);
    ok(&o);
    assert!(o.out.contains("name:           cum_v3\n"), "{}", o.out);
    assert!(o.out.contains("cumulative:     yes\n"));
    assert!(o.out.contains("patch version:  3\n"));
    assert!(o.out.contains("built by:       lp-build 0.1.0\n"));
    assert!(o
        .out
        .contains(&format!("  fix-cum_v3.patch  sha256:{SHA}\n")));
    let o = lpctl(&t, &mut k, &["info", "--json", ko.to_str().unwrap()]);
    ok(&o);
    let v: serde_json::Value = serde_json::from_str(&o.out).unwrap();
    assert_eq!(v["patch_version"], 3);
    assert_eq!(v["replace"], true);
    assert_eq!(v["sources"][0]["sha256"], SHA);
}

#[test]
fn not_a_livepatch_and_malformed_files() {
    let t = Tree::new();
    let plain = t.p("plain.ko");
    std::fs::write(
        &plain,
        ko_bytes(
            &["license=GPL".into(), "name=plain".into()],
            object::Architecture::X86_64,
            object::Endianness::Little,
        ),
    )
    .unwrap();
    let mut k = FakeKernel::new(&t);
    for cmd in [&["info"][..], &["load"], &["load", "--dry-run"]] {
        let mut args = cmd.to_vec();
        args.push(plain.to_str().unwrap());
        let o = lpctl(&t, &mut k, &args);
        assert_eq!(err_class(&o), ErrorClass::BadModule);
        assert!(o
            .result
            .unwrap_err()
            .to_string()
            .contains("no livepatch=Y in .modinfo"));
    }
    let junk = t.p("junk.ko");
    std::fs::write(&junk, b"\x7fELF\x02\x01\x01garbage").unwrap();
    let o = lpctl(&t, &mut k, &["load", junk.to_str().unwrap()]);
    assert_eq!(err_class(&o), ErrorClass::BadModule);
    let o = lpctl(&t, &mut k, &["info", "/nonexistent/x.ko"]);
    assert_eq!(err_class(&o), ErrorClass::BadModule);
    assert!(k.calls.is_empty());
}

#[test]
fn malformed_elf_never_panics() {
    let good = ko_bytes(
        &lp_entries("fuzz", true, 2),
        object::Architecture::X86_64,
        object::Endianness::Little,
    );
    let path = std::path::Path::new("fuzz.ko");
    assert!(lpctl::modinfo::parse_module(&good, path).is_ok());
    // Every truncation.
    for len in 0..good.len() {
        let _ = lpctl::modinfo::parse_module(&good[..len], path);
    }
    // Byte flips all over the file (headers, section table, .modinfo).
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for i in 0..good.len() {
        for _ in 0..4 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let mut bad = good.clone();
            bad[i] = seed as u8;
            let _ = lpctl::modinfo::parse_module(&bad, path);
        }
    }
}

#[test]
fn elf32_big_endian_modules_parse() {
    let data = ko_bytes(
        &lp_entries("ppc_fix", false, 0),
        object::Architecture::PowerPc,
        object::Endianness::Big,
    );
    let id = lpctl::modinfo::parse_module(&data, std::path::Path::new("x.ko")).unwrap();
    assert_eq!(id.name, "ppc_fix");
    assert!(id.livepatch && !id.cumulative);
}

// ---------------------------------------------------------------- load

#[test]
fn dry_run_prints_plan_and_does_nothing() {
    let t = Tree::new();
    t.add_patch("fix_a", Some((false, 0)), &[]);
    t.add_patch("fix_b", Some((false, 0)), &[]);
    let ko = write_ko(t.root(), "cum_v1", true, 1);
    let mut k = FakeKernel::new(&t);
    k.b.unprivileged = true; // dry runs need no privileges
    let o = lpctl(&t, &mut k, &["load", "--dry-run", ko.to_str().unwrap()]);
    ok(&o);
    let expected = format!(
        "plan for cum_v1 (cumulative v1):
  1. disable fix_b: non-cumulative: disabled explicitly so its unpatch callbacks run
  2. unload fix_b: disabled above
  3. disable fix_a: non-cumulative: disabled explicitly so its unpatch callbacks run
  4. unload fix_a: disabled above
  5. load {} as cum_v1: with atomic replace
",
        ko.display()
    );
    assert_eq!(o.out, expected);
    assert!(k.calls.is_empty());
}

#[test]
fn two_fixes_then_cumulative_v1() {
    let t = Tree::new();
    let mut k = FakeKernel::new(&t);
    let a = write_ko(t.root(), "fix_a", false, 0);
    let b = write_ko(t.root(), "fix_b", false, 0);
    let c1 = write_ko(t.root(), "cum_v1", true, 1);
    ok(&lpctl(&t, &mut k, &["load", a.to_str().unwrap()]));
    // --keep-others stacks the second fix on top of the first.
    ok(&lpctl(
        &t,
        &mut k,
        &["load", "--keep-others", b.to_str().unwrap()],
    ));
    assert_eq!(k.calls, vec!["load fix_a", "load fix_b"]);
    k.calls.clear();
    ok(&lpctl(&t, &mut k, &["load", c1.to_str().unwrap()]));
    assert_eq!(
        k.calls,
        vec![
            "write /sys/kernel/livepatch/fix_b/enabled 0",
            "rmmod fix_b",
            "write /sys/kernel/livepatch/fix_a/enabled 0",
            "rmmod fix_a",
            "load cum_v1",
        ]
    );
    assert_eq!(
        names_in_list(&t),
        vec![("cum_v1".to_string(), "enabled".to_string())]
    );
}

#[test]
fn non_cumulative_without_keep_others_disables_the_rest() {
    let t = Tree::new();
    t.add_patch("fix_a", Some((false, 0)), &[]);
    let b = write_ko(t.root(), "fix_b", false, 0);
    let mut k = FakeKernel::new(&t);
    ok(&lpctl(&t, &mut k, &["load", b.to_str().unwrap()]));
    assert_eq!(
        k.calls,
        vec![
            "write /sys/kernel/livepatch/fix_a/enabled 0",
            "rmmod fix_a",
            "load fix_b"
        ]
    );
}

#[test]
fn cumulative_upgrade_downgrade_and_back() {
    let t = Tree::new();
    let mut k = FakeKernel::new(&t);
    let c1 = write_ko(t.root(), "cum_v1", true, 1);
    let c2 = write_ko(t.root(), "cum_v2", true, 2);
    ok(&lpctl(&t, &mut k, &["load", c1.to_str().unwrap()]));
    ok(&lpctl(&t, &mut k, &["load", c2.to_str().unwrap()]));
    assert_eq!(
        k.calls,
        vec!["load cum_v1", "load cum_v2"],
        "an upgrade is one atomic replace: v1 is not disabled explicitly"
    );
    assert_eq!(
        names_in_list(&t),
        vec![
            ("cum_v2".to_string(), "enabled".to_string()),
            ("cum_v1".to_string(), "disabled".to_string())
        ]
    );
    k.calls.clear();

    // v1 over v2: refused, nothing touched.
    let o = lpctl(&t, &mut k, &["load", c1.to_str().unwrap()]);
    assert_eq!(err_class(&o), ErrorClass::Refused);
    let msg = o.result.unwrap_err().to_string();
    assert!(
        msg.contains("downgrade") && msg.contains("--allow-downgrade"),
        "{msg}"
    );
    assert!(k.calls.is_empty());

    // With --allow-downgrade: v1's leftover module and the newer patch go first.
    ok(&lpctl(
        &t,
        &mut k,
        &["load", "--allow-downgrade", c1.to_str().unwrap()],
    ));
    assert_eq!(
        k.calls,
        vec![
            "rmmod cum_v1",
            "write /sys/kernel/livepatch/cum_v2/enabled 0",
            "rmmod cum_v2",
            "load cum_v1"
        ]
    );
}

#[test]
fn non_cumulative_over_cumulative_v2() {
    let t = Tree::new();
    t.add_patch("cum_v2", Some((true, 2)), &[]);
    let f = write_ko(t.root(), "fix_x", false, 0);
    let mut k = FakeKernel::new(&t);
    ok(&lpctl(&t, &mut k, &["load", f.to_str().unwrap()]));
    assert_eq!(
        k.calls,
        vec![
            "write /sys/kernel/livepatch/cum_v2/enabled 0",
            "rmmod cum_v2",
            "load fix_x"
        ]
    );
}

#[test]
fn keep_others_stacks() {
    let t = Tree::new();
    t.add_patch("cum_v2", Some((true, 2)), &[]);
    t.add_patch("fix_a", Some((false, 0)), &[]);
    let f = write_ko(t.root(), "fix_x", false, 0);
    let mut k = FakeKernel::new(&t);
    ok(&lpctl(
        &t,
        &mut k,
        &["load", "--keep-others", f.to_str().unwrap()],
    ));
    assert_eq!(k.calls, vec!["load fix_x"]);
    let c = write_ko(t.root(), "cum_v3", true, 3);
    let o = lpctl(&t, &mut k, &["load", "--keep-others", c.to_str().unwrap()]);
    assert_eq!(err_class(&o), ErrorClass::Refused);
}

#[test]
fn same_name_leftover_is_cleaned_up_first() {
    let t = Tree::new();
    let mut k = FakeKernel::new(&t);
    let c2 = write_ko(t.root(), "cum_v2", true, 2);
    let c2b = write_ko(t.root(), "cum_v2b", true, 2);
    ok(&lpctl(&t, &mut k, &["load", c2.to_str().unwrap()]));
    // Equal version, other name: atomic replace leaves cum_v2's module.
    ok(&lpctl(&t, &mut k, &["load", c2b.to_str().unwrap()]));
    assert_eq!(k.calls, vec!["load cum_v2", "load cum_v2b"]);
    assert_eq!(
        names_in_list(&t),
        vec![
            ("cum_v2b".to_string(), "enabled".to_string()),
            ("cum_v2".to_string(), "disabled".to_string())
        ]
    );
    k.calls.clear();
    // Re-loading cum_v2: its leftover module goes first.
    let o = lpctl(&t, &mut k, &["load", c2.to_str().unwrap()]);
    ok(&o);
    assert_eq!(k.calls, vec!["rmmod cum_v2", "load cum_v2"]);
    assert!(o.log.contains("replaced cum_v2b"), "{}", o.log);
}

#[test]
fn already_loaded_is_a_no_op() {
    let t = Tree::new();
    let mut k = FakeKernel::new(&t);
    let c2 = write_ko(t.root(), "cum_v2", true, 2);
    ok(&lpctl(&t, &mut k, &["load", c2.to_str().unwrap()]));
    let o = lpctl(&t, &mut k, &["load", c2.to_str().unwrap()]);
    ok(&o);
    assert!(o.log.contains("already loaded"));
    assert_eq!(k.calls, vec!["load cum_v2"]);
}

#[test]
fn refuses_while_in_transition() {
    let t = Tree::new();
    t.add_patch("fix_a", Some((false, 0)), &[]);
    t.set_attr("fix_a", "transition", "1");
    let f = write_ko(t.root(), "fix_b", false, 0);
    let mut k = FakeKernel::new(&t);
    let o = lpctl(&t, &mut k, &["load", f.to_str().unwrap()]);
    assert_eq!(err_class(&o), ErrorClass::Busy);
    let o = lpctl(&t, &mut k, &["unload", "fix_a"]);
    assert_eq!(err_class(&o), ErrorClass::Busy);
    assert!(k.calls.is_empty());
}

#[test]
fn not_root() {
    let t = Tree::new();
    t.add_patch("fix_a", Some((false, 0)), &[]);
    let f = write_ko(t.root(), "fix_b", false, 0);
    let mut k = FakeKernel::new(&t);
    k.b.unprivileged = true;
    let o = lpctl(&t, &mut k, &["load", f.to_str().unwrap()]);
    assert_eq!(err_class(&o), ErrorClass::Permission);
    assert!(o.result.unwrap_err().to_string().contains("root"));
    let o = lpctl(&t, &mut k, &["unload", "fix_a"]);
    assert_eq!(err_class(&o), ErrorClass::Permission);
    assert!(k.calls.is_empty());
}

#[test]
fn kernel_refusals_map_to_classes() {
    for (errno, class, text) in [
        (libc::EPERM, ErrorClass::Permission, "CAP_SYS_MODULE"),
        (libc::ENOEXEC, ErrorClass::BadModule, "vermagic"),
        (libc::EKEYREJECTED, ErrorClass::Kernel, "signature"),
        (libc::EINVAL, ErrorClass::Kernel, "dmesg"),
    ] {
        let t = Tree::new();
        let f = write_ko(t.root(), "fix_b", false, 0);
        let mut k = FakeKernel::new(&t);
        k.b.load_errno = Some(errno);
        let o = lpctl(&t, &mut k, &["load", f.to_str().unwrap()]);
        assert_eq!(err_class(&o), class, "errno {errno}");
        let msg = o.result.unwrap_err().to_string();
        assert!(msg.contains(text), "{msg}");
        assert!(!msg.contains('\n'));
    }
}

#[test]
fn info_of_a_loaded_patch() {
    let t = Tree::new();
    t.add_patch(
        "fix_a",
        Some((false, 0)),
        &[
            ("vmlinux", "cmdline_proc_show", 1),
            ("ext4", "ext4_fill_super", 1),
        ],
    );
    t.add_patch(
        "fix_b",
        Some((true, 3)),
        &[("vmlinux", "cmdline_proc_show", 1)],
    );
    let mut k = FakeKernel::new(&t);
    // Not a file here, no `/`: a loaded patch; `-` and `_` are the same.
    let o = lpctl(&t, &mut k, &["info", "fix-a"]);
    ok(&o);
    assert!(o.out.contains("name:           fix_a"), "{}", o.out);
    assert!(o.out.contains("state:          enabled"), "{}", o.out);
    assert!(
        o.out.contains("type:           non-cumulative"),
        "{}",
        o.out
    );
    assert!(
        o.out
            .contains("vmlinux:cmdline_proc_show,1  overridden by fix_b"),
        "{}",
        o.out
    );
    assert!(
        o.out.contains("ext4:ext4_fill_super,1  active"),
        "{}",
        o.out
    );
    let o = lpctl(&t, &mut k, &["info", "fix_b", "--json"]);
    ok(&o);
    let v: serde_json::Value = serde_json::from_str(&o.out).unwrap();
    assert_eq!(v["patch"]["name"], "fix_b");
    assert_eq!(v["patch"]["cumulative"], true);
    assert_eq!(v["patch"]["version"], 3);
    assert_eq!(v["functions"].as_array().unwrap().len(), 1);
    assert_eq!(v["functions"][0]["winner"], "fix_b");
    // Neither a file nor a loaded patch.
    let o = lpctl(&t, &mut k, &["info", "nope"]);
    assert_eq!(err_class(&o), ErrorClass::NotFound);
    assert!(o
        .result
        .unwrap_err()
        .to_string()
        .contains("neither a module file nor a loaded livepatch"));
    // A path is always a file.
    let o = lpctl(&t, &mut k, &["info", "./fix_a"]);
    assert_eq!(err_class(&o), ErrorClass::BadModule);
    assert!(k.calls.is_empty());
}

#[test]
fn install_uninstall_and_load_all() {
    let t = Tree::new();
    w(&t.p("proc/sys/kernel/osrelease"), "6.6.0\n");
    let dir = tempfile::tempdir().unwrap();
    let a = write_ko(dir.path(), "fix_a", false, 0);
    let c = write_ko(dir.path(), "fix_c", false, 0);
    let mut k = FakeKernel::new(&t);

    // Nothing installed: load --all loads nothing, and says so.
    let o = lpctl(&t, &mut k, &["load", "--all"]);
    ok(&o);
    assert!(o.log.contains("no livepatch installed"), "{}", o.log);
    assert!(k.calls.is_empty());

    // Install (for the running release by default), twice is a no-op. Without the boot
    // unit, install says that nothing will load the patch at boot.
    for f in [&a, &c, &a] {
        let o = lpctl(&t, &mut k, &["install", f.to_str().unwrap()]);
        ok(&o);
        assert!(
            o.log.contains("lpctl.service is not installed"),
            "{}",
            o.log
        );
    }
    assert!(t.p("var/lib/lpctl/6.6.0/fix_a.ko").is_file());
    assert!(t.p("var/lib/lpctl/6.6.0/fix_c.ko").is_file());
    // With the unit installed (where the Debian package puts it), install enables it as
    // `systemctl enable` would, once.
    let unit = include_str!("../dist/lpctl.service");
    w(&t.p("lib/systemd/system/lpctl.service"), unit);
    let link = t.p("etc/systemd/system/multi-user.target.wants/lpctl.service");
    let o = lpctl(&t, &mut k, &["install", a.to_str().unwrap()]);
    ok(&o);
    assert!(o.out.contains("enabled the boot service"), "{}", o.out);
    assert_eq!(
        std::fs::read_link(&link).unwrap(),
        std::path::Path::new("/lib/systemd/system/lpctl.service")
    );
    let o = lpctl(&t, &mut k, &["install", c.to_str().unwrap()]);
    ok(&o);
    assert!(
        !o.out.contains("enabled") && o.log.is_empty(),
        "{}{}",
        o.out,
        o.log
    );
    // list shows what is installed, in text and JSON.
    let o = lpctl(&t, &mut k, &["list"]);
    ok(&o);
    assert!(o.out.contains("no livepatch modules loaded"), "{}", o.out);
    assert!(o.out.contains("installed for this kernel"), "{}", o.out);
    assert!(
        o.out.contains("fix_a") && o.out.contains("fix_c.ko"),
        "{}",
        o.out
    );
    let o = lpctl(&t, &mut k, &["list", "--json"]);
    ok(&o);
    let v: serde_json::Value = serde_json::from_str(&o.out).unwrap();
    let names: Vec<&str> = v["installed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["fix_a", "fix_c"]);
    // Another module of the same name: refused.
    let other = write_ko(dir.path(), "fix_a", true, 7);
    let o = lpctl(&t, &mut k, &["install", other.to_str().unwrap()]);
    assert_eq!(err_class(&o), ErrorClass::Refused);
    // Built for another kernel: refused, unless installed for that one.
    let o = lpctl(
        &t,
        &mut k,
        &["install", "-k", "6.12.0", a.to_str().unwrap()],
    );
    assert_eq!(err_class(&o), ErrorClass::BadModule);
    assert!(o
        .result
        .unwrap_err()
        .to_string()
        .contains("built for kernel"));
    let o = lpctl(&t, &mut k, &["install", "-k", "../x", a.to_str().unwrap()]);
    assert!(o.result.is_err());
    assert!(k.calls.is_empty(), "install never touches the kernel");

    // load --all: every installed module, in file-name order, through the policy; the two
    // non-cumulative, non-replacing patches are stacked.
    let o = lpctl(&t, &mut k, &["load", "--all", "--dry-run"]);
    ok(&o);
    assert!(k.calls.is_empty());
    let o = lpctl(&t, &mut k, &["load", "--all"]);
    ok(&o);
    let loads: Vec<&String> = k.calls.iter().filter(|c| c.starts_with("load ")).collect();
    assert_eq!(loads, ["load fix_a", "load fix_c"]);
    assert!(
        t.p("sys/kernel/livepatch/fix_a").is_dir() && t.p("sys/kernel/livepatch/fix_c").is_dir()
    );
    // At boot again (already loaded): nothing to do.
    k.calls.clear();
    let o = lpctl(&t, &mut k, &["load", "--all"]);
    ok(&o);
    assert!(
        !k.calls.iter().any(|c| c.starts_with("load ")),
        "{:?}",
        k.calls
    );

    // Uninstall by name (`-` or `_`); unknown names are not found.
    let o = lpctl(&t, &mut k, &["uninstall", "fix-a"]);
    ok(&o);
    assert!(!t.p("var/lib/lpctl/6.6.0/fix_a.ko").exists());
    let o = lpctl(&t, &mut k, &["uninstall", "fix_a"]);
    assert_eq!(err_class(&o), ErrorClass::NotFound);
}

#[test]
fn the_boot_unit_runs_a_valid_command() {
    let unit = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/dist/lpctl.service"))
        .unwrap();
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap();
    let argv: Vec<&str> = exec.split_whitespace().collect();
    assert_eq!(argv[0], "/usr/bin/lpctl");
    let cli = Cli::try_parse_from(argv).unwrap();
    assert!(matches!(
        cli.command,
        lpctl::cli::Command::Load { all: true, .. }
    ));
    assert!(unit.contains("Type=oneshot"));
    assert!(unit.contains("WantedBy=multi-user.target"));
}

/// `path` compressed as kbuild's CONFIG_MODULE_COMPRESS_* would, beside it.
fn compressed(path: &std::path::Path, suffix: &str) -> std::path::PathBuf {
    use std::io::Write;
    let data = std::fs::read(path).unwrap();
    let z = match suffix {
        "xz" => {
            let mut out = Vec::new();
            lzma_rs::xz_compress(&mut &data[..], &mut out).unwrap();
            out
        }
        "zst" => ruzstd::encoding::compress_to_vec(
            &data[..],
            ruzstd::encoding::CompressionLevel::Fastest,
        ),
        _ => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(&data).unwrap();
            e.finish().unwrap()
        }
    };
    let out = path.with_extension(format!("ko.{suffix}"));
    std::fs::write(&out, z).unwrap();
    std::fs::remove_file(path).unwrap();
    out
}

#[test]
fn compressed_modules() {
    for suffix in ["xz", "zst", "gz"] {
        let t = Tree::new();
        w(&t.p("proc/sys/kernel/osrelease"), "6.6.0\n");
        let dir = tempfile::tempdir().unwrap();
        let f = compressed(&write_ko(dir.path(), "fix-z", false, 0), suffix);
        let mut k = FakeKernel::new(&t);
        // info reads it decompressed; the name drops .ko.<suffix>.
        let o = lpctl(&t, &mut k, &["info", f.to_str().unwrap(), "--json"]);
        ok(&o);
        let v: serde_json::Value = serde_json::from_str(&o.out).unwrap();
        assert_eq!(v["name"], "fix-z", "{suffix}");
        // load goes through (the fake kernel reads the image like the real one).
        let o = lpctl(&t, &mut k, &["load", f.to_str().unwrap()]);
        ok(&o);
        assert_eq!(k.calls.iter().filter(|c| c.starts_with("load ")).count(), 1);
        // install keeps the compression; load --all finds it, already loaded.
        let o = lpctl(&t, &mut k, &["install", f.to_str().unwrap()]);
        ok(&o);
        assert!(t
            .p(&format!("var/lib/lpctl/6.6.0/fix-z.ko.{suffix}"))
            .is_file());
        let o = lpctl(&t, &mut k, &["load", "--all"]);
        ok(&o);
        assert_eq!(k.calls.iter().filter(|c| c.starts_with("load ")).count(), 1);
        let o = lpctl(&t, &mut k, &["uninstall", "fix_z"]);
        ok(&o);
        // Damaged: a bad module, never a panic.
        let data = std::fs::read(&f).unwrap();
        std::fs::write(&f, &data[..data.len() / 2]).unwrap();
        let o = lpctl(&t, &mut k, &["info", f.to_str().unwrap()]);
        assert_eq!(err_class(&o), ErrorClass::BadModule, "{suffix}");
    }
}

#[test]
fn a_busy_kernel_is_retried() {
    // Busy twice, then the load goes through.
    let t = Tree::new();
    let f = write_ko(t.root(), "fix_b", false, 0);
    let mut k = FakeKernel::new(&t);
    k.b.busy_loads = 2;
    let o = lpctl(&t, &mut k, &["load", f.to_str().unwrap()]);
    assert!(o.result.is_ok(), "{:?}", o.result);
    assert_eq!(k.calls.iter().filter(|c| c.starts_with("load ")).count(), 3);
    assert!(
        o.log.contains("the kernel is busy (attempt 1 of 5)"),
        "{}",
        o.log
    );
    assert!(o.log.contains("attempt 2 of 5"), "{}", o.log);

    // Busy every time: given up after the last attempt, as busy.
    let t = Tree::new();
    let f = write_ko(t.root(), "fix_c", false, 0);
    let mut k = FakeKernel::new(&t);
    k.b.busy_loads = 100;
    let o = lpctl(&t, &mut k, &["load", f.to_str().unwrap()]);
    assert_eq!(err_class(&o), ErrorClass::Busy);
    assert_eq!(
        k.calls.iter().filter(|c| c.starts_with("load ")).count(),
        lpctl::ops::BUSY_LOAD_ATTEMPTS as usize
    );
    assert!(o
        .result
        .unwrap_err()
        .to_string()
        .contains("after 5 attempts"));
}

// ---------------------------------------------------------------- stalls

#[test]
fn stalled_load_reports_blockers_and_reverts() {
    let mut t = Tree::new();
    t.signal_attr = true;
    t.add_task(1, 1, "init", 1, &["[<0>] do_wait+0x1/0x2"]);
    t.add_task(
        42,
        43,
        "stuck_worker",
        0,
        &[
            "[<0>] cmdline_proc_show+0x10/0x20",
            "[<0>] seq_read+0x1/0x2",
        ],
    );
    t.add_task(50, 50, "idle_in_user", -1, &[]);
    let f = write_ko(t.root(), "fix_s", false, 0);
    let mut k = FakeKernel::new(&t);
    k.b.stall.insert("fix_s".into());
    let o = lpctl(&t, &mut k, &["load", f.to_str().unwrap()]);
    assert_eq!(err_class(&o), ErrorClass::Stalled, "{}", o.log);
    assert_eq!(
        k.calls,
        vec![
            "load fix_s",
            "write /sys/kernel/livepatch/fix_s/signal 1",
            "write /sys/kernel/livepatch/fix_s/enabled 0",
            "rmmod fix_s",
        ]
    );
    assert!(o.log.contains("1 task(s) block it"), "{}", o.log);
    assert!(o.log.contains("task 43 (pid 42) stuck_worker"), "{}", o.log);
    assert!(o.log.contains("cmdline_proc_show+0x10/0x20"));
    assert!(!o.log.contains("init"));
    let msg = o.result.unwrap_err().to_string();
    assert!(msg.contains("reverted"), "{msg}");
    assert!(names_in_list(&t).is_empty());
}

#[test]
fn stall_without_signal_attribute() {
    let t = Tree::new();
    let f = write_ko(t.root(), "fix_s", false, 0);
    let mut k = FakeKernel::new(&t);
    k.b.stall.insert("fix_s".into());
    let o = lpctl(&t, &mut k, &["load", f.to_str().unwrap()]);
    assert_eq!(err_class(&o), ErrorClass::Stalled);
    assert!(o.log.contains("signals blocking tasks itself"), "{}", o.log);
    assert!(!k.calls.iter().any(|c| c.contains("signal")));
}

#[test]
fn stall_whose_revert_also_stalls() {
    let t = Tree::new();
    let f = write_ko(t.root(), "fix_s", false, 0);
    let mut k = FakeKernel::new(&t);
    k.b.stall_forever.insert("fix_s".into());
    let o = lpctl(&t, &mut k, &["load", f.to_str().unwrap()]);
    assert_eq!(err_class(&o), ErrorClass::Stalled);
    let msg = o.result.unwrap_err().to_string();
    assert!(
        msg.contains("still in transition") && msg.contains("force"),
        "{msg}"
    );
    // Not unloaded: the module is still in use by the transition.
    assert!(!k.calls.iter().any(|c| c.starts_with("rmmod")));
}

#[test]
fn stalled_disable_during_load_aborts_and_re_enables() {
    let t = Tree::new();
    t.add_patch("fix_a", Some((false, 0)), &[]);
    t.add_task(7, 7, "blocker", 1, &["[<0>] somewhere"]);
    let c = write_ko(t.root(), "cum_v1", true, 1);
    let mut k = FakeKernel::new(&t);
    k.b.stall.insert("fix_a".into());
    let o = lpctl(&t, &mut k, &["load", c.to_str().unwrap()]);
    assert_eq!(err_class(&o), ErrorClass::Stalled, "{}", o.log);
    assert_eq!(
        k.calls,
        vec![
            "write /sys/kernel/livepatch/fix_a/enabled 0",
            "write /sys/kernel/livepatch/fix_a/enabled 1",
        ]
    );
    assert!(o.log.contains("task 7 (pid 7) blocker"), "{}", o.log);
    assert_eq!(
        names_in_list(&t),
        vec![("fix_a".to_string(), "enabled".to_string())]
    );
}

// ---------------------------------------------------------------- unload

#[test]
fn unload_named_all_and_unknown() {
    let t = Tree::new();
    t.add_patch("fix_a", Some((false, 0)), &[]);
    t.add_patch("cum_v1", Some((true, 1)), &[]);
    t.add_leftover("old", true, 0);
    let mut k = FakeKernel::new(&t);

    let o = lpctl(&t, &mut k, &["unload", "nope"]);
    assert_eq!(err_class(&o), ErrorClass::NotFound);
    let o = lpctl(&t, &mut k, &["unload", "ext4"]);
    assert_eq!(err_class(&o), ErrorClass::NotFound);
    assert!(o
        .result
        .unwrap_err()
        .to_string()
        .contains("not a livepatch"));

    let o = lpctl(&t, &mut k, &["unload", "--all", "--dry-run"]);
    ok(&o);
    assert_eq!(
        o.out,
        "plan:
  1. disable cum_v1: requested
  2. unload cum_v1: requested
  3. disable fix_a: requested
  4. unload fix_a: requested
  5. unload old: requested (already disabled)
"
    );
    assert!(k.calls.is_empty());

    ok(&lpctl(&t, &mut k, &["unload", "fix-a"]));
    assert_eq!(
        k.calls,
        vec!["write /sys/kernel/livepatch/fix_a/enabled 0", "rmmod fix_a"]
    );
    k.calls.clear();
    ok(&lpctl(&t, &mut k, &["unload", "--all"]));
    assert_eq!(
        k.calls,
        vec![
            "write /sys/kernel/livepatch/cum_v1/enabled 0",
            "rmmod cum_v1",
            "rmmod old"
        ]
    );
    assert!(names_in_list(&t).is_empty());
    // Nothing left: --all is a no-op.
    k.calls.clear();
    ok(&lpctl(&t, &mut k, &["unload", "--all"]));
    assert!(k.calls.is_empty());
}

#[test]
fn unload_waits_for_refcount() {
    let t = Tree::new();
    t.add_leftover("held", false, 0);
    t.set_refcnt("held", 2);
    let mut k = FakeKernel::new(&t);
    let o = lpctl(&t, &mut k, &["unload", "held"]);
    assert_eq!(err_class(&o), ErrorClass::Busy);
    assert!(o.result.unwrap_err().to_string().contains("refcount 2"));
    assert!(k.calls.is_empty());
}
