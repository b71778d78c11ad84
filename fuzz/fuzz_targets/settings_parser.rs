//! Fuzzes the Python 2 settings tokenizer, the literal parser, the gunicorn
//! conversion ([`synnefo_upgrade_fuzz::check_parsers`]) and the settings
//! conversion: `cargo +nightly fuzz run settings_parser` (cargo-fuzz needs a
//! nightly toolchain). See [`synnefo_upgrade_fuzz::settings_parser`]; the stable
//! replay of the corpus is `tests/fuzz_smoke.rs`, the random stand-in
//! `tests/convert_fuzz.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| synnefo_upgrade_fuzz::settings_parser(data));
