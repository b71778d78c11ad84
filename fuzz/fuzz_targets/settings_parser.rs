//! Fuzzes the Python 2 settings tokenizer, the literal parser and the gunicorn
//! conversion: `cargo +nightly fuzz run settings_parser` (cargo-fuzz needs a
//! nightly toolchain). The stable stand-in is `tests/convert_fuzz.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    synnefo_upgrade::convert::check_parsers(data);
});
