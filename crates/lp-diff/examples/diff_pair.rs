//! Debugging aid: `cargo run -p lp-diff --example diff_pair -- ORIG.o PATCHED.o [PARENT [OBJNAME]]`
//! prints the differ's verdict, functions, errors and livepatch relocations for one pair.
//! (The user-facing command is `lp-build diff`.)

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 {
        eprintln!("usage: diff_pair ORIG.o PATCHED.o [PARENT [OBJNAME]]");
        std::process::exit(2);
    }
    let read = |p: &str| std::fs::read(p).unwrap_or_else(|e| panic!("{p}: {e}"));
    let parent = args.get(2).map(|p| {
        let obj = lp_elf::Object::parse_symbols_only(&read(p)).expect("parent");
        lp_diff::Parent::from_object(&obj, obj.e_type == object::elf::ET_EXEC.0)
    });
    let opts = lp_diff::DiffOptions {
        object_name: args.get(3).cloned().unwrap_or_else(|| "vmlinux".into()),
        source_name: args[0].clone(),
        parent,
        explain: true,
        alias_prefix: "__lp_dbg_".into(),
        entry_sizes: [
            ("__bug_table", 12u64),
            ("__jump_table", 16),
            ("__ex_table", 12),
            (".altinstructions", 14),
            (".orc_unwind", 6),
            (".static_call_sites", 8),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect(),
        ..Default::default()
    };
    let r = lp_diff::diff(&read(&args[0]), &read(&args[1]), &opts).expect("diff");
    println!("outcome: {:?}", r.outcome);
    println!("changed: {:?}", r.changed_functions);
    println!("new: {:?}", r.new_functions);
    for e in &r.errors {
        println!("error: {e}");
    }
    for (f, why) in &r.explanations {
        println!("why {f}:\n{why}");
    }
    println!(
        "{}",
        serde_json::to_string_pretty(&r.record).unwrap_or_default()
    );
    if let Some(out) = &r.output {
        std::fs::write("/tmp/lp-diff-out.o", out).expect("write");
        println!("patch object: /tmp/lp-diff-out.o");
    }
}
