//! `cargo +nightly fuzz run preflight_parsers`: see [`synnefo_upgrade_fuzz::preflight_parsers`] for what it asserts.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| synnefo_upgrade_fuzz::preflight_parsers(data));
