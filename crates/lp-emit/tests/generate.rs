//! The generated C core and Kbuild file: their text, the errors, and the C itself compiled
//! (with stub headers mirroring the kernel's) and run, to check the callback chains' order and
//! failure semantics.

mod common;

use common::*;
use lp_diff::{CallbackRecord, FuncRecord, PatchRecord, StateRecord};
use lp_elf::Object;
use lp_emit::{core_source_name, generate_c, kbuild_file, module_name, EmitError, ModuleSpec};
use std::path::Path;

const SHA: &str = "0123456789abcdef0123456789ABCDEF0123456789abcdef0123456789abcdef";

fn func(old: &str, pos: u64, new: &str) -> FuncRecord {
    FuncRecord {
        old_name: old.to_string(),
        old_sympos: pos,
        new_symbol: new.to_string(),
    }
}

fn cb(kind: &str, symbol: &str, order: u64, void_hook: bool) -> CallbackRecord {
    CallbackRecord {
        kind: lp_diff::CallbackKind::ALL
            .into_iter()
            .find(|k| k.field() == kind)
            .unwrap_or_else(|| panic!("callback kind {kind}")),
        symbol: symbol.to_string(),
        order,
        void_hook,
    }
}

fn record(object: &str) -> PatchRecord {
    PatchRecord {
        object: object.to_string(),
        source: format!("{object}/x.o"),
        ..PatchRecord::default()
    }
}

/// vmlinux (two records, merged), module `nfsd` in between; callbacks declared out of order.
fn sample_spec() -> ModuleSpec {
    let mut v1 = record("vmlinux");
    v1.functions = vec![func("cmdline_proc_show", 0, "lp_f_cmdline")];
    v1.callbacks = vec![
        cb("pre_patch", "cb_c", 30, false),
        cb("pre_patch", "cb_a", 10, false),
        cb("post_unpatch", "cb_y", 40, false),
        cb("pre_patch", "cb_b", 20, false),
        cb("post_patch", "hook_load", 15, true),
        cb("post_patch", "cb_p", 5, false),
        cb("pre_unpatch", "hook_unload", 1, true),
        cb("post_unpatch", "cb_x", 12, false),
    ];
    v1.states = vec![StateRecord { id: 7, version: 2 }];
    let mut m = record("nfsd");
    m.functions = vec![func("nfsd_open.isra.0", 2, "lp_f_nfsd_open")];
    m.states = vec![
        StateRecord { id: 7, version: 2 },
        StateRecord {
            id: 0x1_0000_0000,
            version: 1,
        },
    ];
    let mut v2 = record("vmlinux");
    v2.functions = vec![func("meminfo_proc_show", 1, "lp_f_meminfo")];
    v2.callbacks = vec![cb("pre_patch", "cb_d", 1, false)];
    ModuleSpec {
        name: module_name("fix-stuff"),
        replace: true,
        cumulative: true,
        patch_version: 7,
        lp_build_version: "0.1.0".to_string(),
        sources: vec![("fix-stuff.patch".to_string(), SHA.to_string())],
        records: vec![v1, m, v2],
    }
}

#[test]
fn text_of_the_core() {
    let c = generate_c(&sample_spec()).unwrap();
    for needle in [
        "#include <linux/livepatch.h>",
        "extern void lp_f_cmdline(void);",
        "extern int cb_a(struct klp_object *obj);",
        "extern void cb_p(struct klp_object *obj);",
        "extern void hook_load(void);",
        "\t\t.name = NULL, /* vmlinux */",
        "\t\t.name = \"nfsd\",",
        "\t\t.old_name = \"nfsd_open.isra.0\",",
        "\t\t.old_sympos = 2,",
        "\t\t.new_func = lp_f_meminfo,",
        "\t{ .id = 7UL, .version = 2U },",
        "\t{ .id = 4294967296UL, .version = 1U },",
        "\t.replace = true,",
        "\t.states = lp_core_states,",
        "\treturn klp_enable_patch(&lp_core_patch);",
        "MODULE_INFO(livepatch, \"Y\");",
        "MODULE_LICENSE(\"GPL\");",
        "module_param_cb(lp_cumulative, &lp_core_bool_ops, &lp_core_cumulative, 0444);",
        "module_param_cb(lp_patch_version, &lp_core_uint_ops, &lp_core_patch_version, 0444);",
        "MODULE_INFO(lp_patch_version, \"7\");",
        "MODULE_INFO(lp_replace, \"Y\");",
        &format!(
            "MODULE_INFO(lp_source, \"fix-stuff.patch:{}\");",
            SHA.to_ascii_lowercase()
        ),
    ] {
        assert!(c.contains(needle), "missing {needle:?} in:\n{c}");
    }
    // vmlinux first, one object each, merged.
    let vml = c.find(".name = NULL").unwrap();
    let nfsd = c.find(".name = \"nfsd\"").unwrap();
    assert!(vml < nfsd);
    assert_eq!(c.matches(".name = NULL").count(), 1);
    assert_eq!(c.matches("extern").count(), 12);
    // The states are deduplicated.
    assert_eq!(c.matches(".id = 7UL").count(), 1);
}

#[test]
fn objects_with_callbacks_only_get_an_empty_funcs_array() {
    let mut r = record("vmlinux");
    r.callbacks = vec![cb("post_patch", "cb_p", 1, false)];
    let spec = ModuleSpec {
        name: "livepatch-x".into(),
        lp_build_version: "0.1.0".into(),
        records: vec![r],
        ..ModuleSpec::default()
    };
    let c = generate_c(&spec).unwrap();
    assert!(
        c.contains("static struct klp_func lp_core_funcs0[] = {\n\t{ }\n};"),
        "{c}"
    );
    assert!(c.contains("\t\t.funcs = lp_core_funcs0,"), "{c}");
    assert!(c.contains("\t.replace = false,"), "{c}");
    assert!(c.contains("MODULE_INFO(lp_cumulative, \"N\");"), "{c}");
}

#[test]
fn errors() {
    let base = sample_spec();
    let with = |f: &dyn Fn(&mut ModuleSpec)| {
        let mut s = base.clone();
        f(&mut s);
        generate_c(&s).unwrap_err()
    };
    assert!(matches!(
        with(&|s| s.name = "a.b".into()),
        EmitError::BadModuleName(_)
    ));
    assert!(matches!(
        with(&|s| s.name = "x".repeat(56)),
        EmitError::BadModuleName(_)
    ));
    assert!(matches!(
        with(&|s| s.records[1].object = "nfs.d".into()),
        EmitError::BadObject { .. }
    ));
    assert!(matches!(
        with(&|s| s.records[1].object = "n".repeat(56)),
        EmitError::BadObject { .. }
    ));
    assert!(matches!(
        with(&|s| s.records[0].functions[0].new_symbol = "foo.cold".into()),
        EmitError::BadSymbol { .. }
    ));
    assert!(matches!(
        with(&|s| s.records[0].callbacks[0].symbol = "lp_core_init".into()),
        EmitError::ReservedSymbol { .. }
    ));
    assert!(matches!(
        with(&|s| s.records[0].callbacks[4].symbol = "cb_a".into()),
        EmitError::ConflictingUse { .. }
    ));
    assert!(matches!(
        with(&|s| s.records[2].functions[0] = func("cmdline_proc_show", 1, "other")),
        EmitError::DuplicateFunction { sympos: 1, .. }
    ));
    assert!(matches!(
        with(&|s| s.records[1].states[0].version = 3),
        EmitError::StateConflict {
            id: 7,
            first: 2,
            second: 3
        }
    ));
    assert!(matches!(
        with(&|s| s.records[1].states[0].id = 0),
        EmitError::ZeroStateId { .. }
    ));
    assert!(matches!(
        with(&|s| s.sources[0].1 = "abc".into()),
        EmitError::BadSource { .. }
    ));
    assert!(matches!(
        with(&|s| s.sources[0].0 = "a\nb".into()),
        EmitError::BadSource { .. }
    ));
    assert!(matches!(
        with(&|s| s.records[0].functions[0].old_name = String::new()),
        EmitError::BadFunctionName { .. }
    ));
    assert!(matches!(
        with(&|s| s.lp_build_version = "0.1\n".into()),
        EmitError::BadBuildVersion(_)
    ));
    assert!(matches!(
        with(&|s| {
            s.records.clear();
            s.replace = false;
        }),
        EmitError::EmptyPatch
    ));
    // An empty replacing patch is meaningful: it reverts every installed patch.
    let mut s = base.clone();
    s.records.clear();
    let c = generate_c(&s).unwrap();
    assert!(
        c.contains("static struct klp_object lp_core_objs[] = {\n\t{ }\n};"),
        "{c}"
    );
}

#[test]
fn kbuild_text() {
    let spec = sample_spec();
    assert_eq!(core_source_name(&spec), "livepatch-fix-stuff-core.c");
    let k = kbuild_file(
        &spec,
        &[
            "vmlinux-fs-proc-cmdline.o".to_string(),
            "nfsd-vfs.o".to_string(),
        ],
    );
    assert_eq!(
        k,
        "# SPDX-License-Identifier: GPL-2.0\n\
         # Livepatch module livepatch-fix-stuff, generated by lp-build 0.1.0. Do not edit.\n\
         # The core is compiled from C; the patch objects are prebuilt and linked as they are.\n\
         obj-m := livepatch-fix-stuff.o\n\
         livepatch-fix-stuff-y := livepatch-fix-stuff-core.o\n\
         livepatch-fix-stuff-y += vmlinux-fs-proc-cmdline.o\n\
         livepatch-fix-stuff-y += nfsd-vfs.o\n"
    );
}

// ---- The C, compiled ----

fn stubs() -> std::path::PathBuf {
    manifest_dir().join("tests/stubs")
}

/// Kernel-like warning flags; the stubs stand in for the kernel headers.
fn cc_kernel_like(dir: &Path) -> std::process::Command {
    let mut c = cc();
    c.current_dir(dir)
        .args([
            "-std=gnu11",
            "-Wall",
            "-Werror",
            "-Wmissing-prototypes",
            "-Wstrict-prototypes",
        ])
        .args(["-Wold-style-definition", "-Wdeclaration-after-statement"])
        .arg("-I")
        .arg(stubs());
    c
}

#[test]
fn core_compiles_against_the_livepatch_structures() {
    let dir = tempfile::tempdir().unwrap();
    let spec = sample_spec();
    let path = dir.path().join(core_source_name(&spec));
    std::fs::write(&path, generate_c(&spec).unwrap()).unwrap();
    run_ok(cc_kernel_like(dir.path()).arg("-fsyntax-only").arg(&path));

    // As an object: the identity is in .modinfo, the parameters in __param.
    run_ok(
        cc_kernel_like(dir.path())
            .args(["-O2", "-c", "-o", "core.o"])
            .arg(&path),
    );
    let o = Object::parse(&std::fs::read(dir.path().join("core.o")).unwrap()).unwrap();
    let info = modinfo(&o);
    for want in [
        "livepatch=Y".to_string(),
        "license=GPL".to_string(),
        "lp_cumulative=Y".to_string(),
        "lp_patch_version=7".to_string(),
        "lp_replace=Y".to_string(),
        "lp_build_version=0.1.0".to_string(),
        format!("lp_source=fix-stuff.patch:{}", SHA.to_ascii_lowercase()),
    ] {
        assert!(info.contains(&want), "{want} not in {info:?}");
    }
    assert!(
        info.iter().any(|e| e.starts_with("parm=lp_cumulative:")),
        "{info:?}"
    );
    let param = o.section_by_name("__param").unwrap();
    assert_eq!(o.sections[param].size(), 2 * 40, "two struct kernel_param");

    // A typo in a field name would not compile: the stubs are strict.
    let broken = generate_c(&spec)
        .unwrap()
        .replace(".old_sympos", ".old_sympos_");
    std::fs::write(&path, broken).unwrap();
    let out = run(cc_kernel_like(dir.path()).arg("-fsyntax-only").arg(&path));
    assert!(!out.status.success());
}

/// Defines every symbol the core refers to, includes the core, and prints what the chains do.
fn harness(spec: &ModuleSpec) -> String {
    let mut h = String::from(
        "#include <stdio.h>\n#include <string.h>\n#include <linux/livepatch.h>\n\
         static const char *lp_test_fail;\n\
         static int lp_test_call(const char *name)\n{\n\tprintf(\"  %s\\n\", name);\n\
         \treturn lp_test_fail && !strcmp(lp_test_fail, name) ? -22 : 0;\n}\n",
    );
    let mut seen = std::collections::HashSet::new();
    for r in &spec.records {
        for f in &r.functions {
            if seen.insert(f.new_symbol.clone()) {
                h += &format!("void {}(void);\nvoid {0}(void) {{ }}\n", f.new_symbol);
            }
        }
        for c in &r.callbacks {
            if !seen.insert(c.symbol.clone()) {
                continue;
            }
            let s = &c.symbol;
            h += &if c.void_hook {
                format!("void {s}(void);\nvoid {s}(void) {{ lp_test_call(\"{s}\"); }}\n")
            } else if c.kind == lp_diff::CallbackKind::PrePatch {
                format!(
                    "int {s}(struct klp_object *obj);\n\
                     int {s}(struct klp_object *obj) {{ return lp_test_call(\"{s}\"); }}\n"
                )
            } else {
                format!(
                    "void {s}(struct klp_object *obj);\n\
                     void {s}(struct klp_object *obj) {{ lp_test_call(\"{s}\"); }}\n"
                )
            };
        }
    }
    h += "int klp_enable_patch(struct klp_patch *p) { return p->objs ? 0 : -22; }\n\
          int param_get_bool(char *b, const struct kernel_param *kp) { return 0; }\n\
          int param_get_uint(char *b, const struct kernel_param *kp) { return 0; }\n\
          #include \"core.c\"\n\
          int main(int argc, char **argv)\n{\n\
          \tstruct klp_object *o;\n\tstruct klp_func *f;\n\tstruct klp_state *s;\n\
          \tlp_test_fail = argc > 1 ? argv[1] : NULL;\n\
          \tprintf(\"init %d replace %d\\n\", lp_core_init(), lp_core_patch.replace);\n\
          \tfor (s = lp_core_patch.states; s->id; s++)\n\
          \t\tprintf(\"state %lu %u\\n\", s->id, s->version);\n\
          \tfor (o = lp_core_patch.objs; o->name || o->funcs; o++) {\n\
          \t\tprintf(\"object %s\\n\", o->name ? o->name : \"(vmlinux)\");\n\
          \t\tfor (f = o->funcs; f->old_name; f++)\n\
          \t\t\tprintf(\" func %s,%lu\\n\", f->old_name, f->old_sympos);\n\
          \t\tif (o->callbacks.pre_patch) {\n\t\t\tprintf(\" pre_patch\\n\");\n\
          \t\t\tprintf(\" -> %d\\n\", o->callbacks.pre_patch(o));\n\t\t}\n\
          \t\tif (o->callbacks.post_patch) {\n\t\t\tprintf(\" post_patch\\n\");\n\
          \t\t\to->callbacks.post_patch(o);\n\t\t}\n\
          \t\tif (o->callbacks.pre_unpatch) {\n\t\t\tprintf(\" pre_unpatch\\n\");\n\
          \t\t\to->callbacks.pre_unpatch(o);\n\t\t}\n\
          \t\tif (o->callbacks.post_unpatch) {\n\t\t\tprintf(\" post_unpatch\\n\");\n\
          \t\t\to->callbacks.post_unpatch(o);\n\t\t}\n\t}\n\treturn 0;\n}\n";
    h
}

fn run_harness(spec: &ModuleSpec) -> impl Fn(Option<&str>) -> String {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("core.c"), generate_c(spec).unwrap()).unwrap();
    std::fs::write(dir.path().join("harness.c"), harness(spec)).unwrap();
    run_ok(
        cc().current_dir(dir.path())
            .args([
                "-std=gnu11",
                "-Wall",
                "-Wno-unused-parameter",
                "-Werror",
                "-I",
            ])
            .arg(stubs())
            .args(["-o", "harness", "harness.c"]),
    );
    move |fail: Option<&str>| {
        let mut cmd = std::process::Command::new(dir.path().join("harness"));
        if let Some(f) = fail {
            cmd.arg(f);
        }
        String::from_utf8(run_ok(&mut cmd).stdout).unwrap()
    }
}

#[test]
fn callback_chains_run_in_order_and_roll_back() {
    let run = run_harness(&sample_spec());
    let obj = |pre: &str| {
        format!(
            "object (vmlinux)\n func cmdline_proc_show,0\n func meminfo_proc_show,1\n\
             {pre}\
             \x20post_patch\n  cb_p\n  hook_load\n\
             \x20pre_unpatch\n  hook_unload\n\
             \x20post_unpatch\n  cb_x\n  cb_y\n\
             object nfsd\n func nfsd_open.isra.0,2\n"
        )
    };
    let head = "init 0 replace 1\nstate 7 2\nstate 4294967296 1\n";
    // Declaration order: by record, then `order` (cb_d is in the second vmlinux record).
    assert_eq!(
        run(None),
        format!(
            "{head}{}",
            obj(" pre_patch\n  cb_a\n  cb_b\n  cb_c\n  cb_d\n -> 0\n")
        )
    );
    // The first fails: nothing to undo.
    assert_eq!(
        run(Some("cb_a")),
        format!("{head}{}", obj(" pre_patch\n  cb_a\n -> -22\n"))
    );
    // pre_patch k fails: post_unpatch 0..k-1 run in reverse.
    assert_eq!(
        run(Some("cb_b")),
        format!(
            "{head}{}",
            obj(" pre_patch\n  cb_a\n  cb_b\n  cb_x\n -> -22\n")
        )
    );
    assert_eq!(
        run(Some("cb_c")),
        format!(
            "{head}{}",
            obj(" pre_patch\n  cb_a\n  cb_b\n  cb_c\n  cb_y\n  cb_x\n -> -22\n")
        )
    );
    // Only two post_unpatch callbacks exist to pair with.
    assert_eq!(
        run(Some("cb_d")),
        format!(
            "{head}{}",
            obj(" pre_patch\n  cb_a\n  cb_b\n  cb_c\n  cb_d\n  cb_y\n  cb_x\n -> -22\n")
        )
    );
}

#[test]
fn void_hooks_in_pre_patch_cannot_fail() {
    let mut r = record("vmlinux");
    r.callbacks = vec![
        cb("pre_patch", "h0", 1, true),
        cb("pre_patch", "p1", 2, false),
        cb("post_unpatch", "u0", 1, true),
        cb("post_unpatch", "u1", 2, false),
    ];
    let spec = ModuleSpec {
        name: "livepatch-hooks".into(),
        lp_build_version: "0.1.0".into(),
        records: vec![r],
        ..ModuleSpec::default()
    };
    let run = run_harness(&spec);
    let out = run(Some("p1"));
    assert!(
        out.contains(" pre_patch\n  h0\n  p1\n  u0\n -> -22\n"),
        "{out}"
    );
    let out = run(Some("h0"));
    assert!(out.contains(" pre_patch\n  h0\n  p1\n -> 0\n"), "{out}");
}
