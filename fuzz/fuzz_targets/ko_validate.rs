//! The `.ko` checker and the post-link klp relocation pass on arbitrary bytes:
//! `lp_emit::validate`, `lp_emit::convert_klp_relocs`, and `validate` again on what the pass
//! wrote, which must parse.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lp_emit::{convert_klp_relocs, validate, ValidateContext};
use std::collections::{BTreeMap, HashMap, HashSet};

fuzz_target!(|data: &[u8]| {
    let ctx = ValidateContext {
        exports: Some(HashSet::from(["printk".to_string()])),
        symbol_counts: Some(BTreeMap::from([(
            "vmlinux".to_string(),
            HashMap::from([
                ("secret_func".to_string(), 1),
                ("secret_var".to_string(), 3),
            ]),
        )])),
        // A MODVERSIONS kernel: __versions and vermagic are parsed and compared too.
        crcs: Some(HashMap::from([
            ("printk".to_string(), 0x8a7c_1b2d),
            ("module_layout".to_string(), 0x0f3e_2d11),
        ])),
        vermagic: Some("6.12.57 SMP mod_unload modversions ".to_string()),
        // Every code table required: ORC and call sites are checked on any input.
        code_tables: Some(lp_emit::CodeTables {
            orc: true,
            call_sites: true,
        }),
    };
    let _ = validate(data, &ctx);
    let _ = validate(data, &ValidateContext::default());
    let Ok(out) = convert_klp_relocs(data) else {
        return;
    };
    if let Err(e) = lp_elf::Object::parse(&out) {
        panic!("the converted module does not parse: {e}");
    }
    let _ = validate(&out, &ctx);
});
