//! The ELF reader on arbitrary bytes: `Object::parse`, then `write`, then `parse` again.
//! Malformed input must be a clean `Err`; whatever the writer produces from a parsed object
//! must parse again, with the same symbols and at least the same sections (the writer appends
//! the symbol and string tables an object lacks).
#![no_main]

use libfuzzer_sys::fuzz_target;
use lp_elf::Object;

fuzz_target!(|data: &[u8]| {
    let _ = Object::parse_symbols_only(data);
    let Ok(obj) = Object::parse(data) else {
        return;
    };
    let Ok(bytes) = obj.write() else {
        return;
    };
    let again = match Object::parse(&bytes) {
        Ok(o) => o,
        Err(e) => panic!("the writer's output does not parse: {e}"),
    };
    assert!(again.sections.len() >= obj.sections.len());
    assert_eq!(again.symbols.len(), obj.symbols.len());
    let _ = again.write();
});
