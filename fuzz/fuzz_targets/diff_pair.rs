//! The differ on a pair of objects. Input layout (what `examples/make_seeds.rs` writes):
//! a little-endian u32 `n` whose low 30 bits are the length of the ORIG object (cut to what is
//! there), bit 31 turns on `explain`, bit 30 `objtool_on_module`; then ORIG, then PATCHED.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lp_diff::{diff, DiffOptions};

fuzz_target!(|data: &[u8]| {
    let Some((head, rest)) = data.split_first_chunk::<4>() else {
        return;
    };
    let n = u32::from_le_bytes(*head);
    let len = ((n & 0x3fff_ffff) as usize).min(rest.len());
    let (orig, patched) = rest.split_at(len);
    let opts = DiffOptions {
        object_name: "vmlinux".into(),
        source_name: "fuzz.o".into(),
        alias_prefix: "__lp_fz_".into(),
        explain: n & 0x8000_0000 != 0,
        objtool_on_module: n & 0x4000_0000 != 0,
        entry_sizes: [
            ("__jump_table", 16u64),
            ("__bug_table", 12),
            ("__ex_table", 12),
            (".orc_unwind", 6),
            (".altinstructions", 13),
            (".parainstructions", 16),
            (".static_call_sites", 8),
            (".printk_index", 44),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect(),
        ..Default::default()
    };
    let Ok(result) = diff(orig, patched, &opts) else {
        return;
    };
    // A patch object the differ wrote must be readable.
    if let Some(out) = &result.output {
        if let Err(e) = lp_elf::Object::parse(out) {
            panic!("the differ's output does not parse: {e}");
        }
    }
});
