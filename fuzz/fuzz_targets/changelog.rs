//! `cargo +nightly fuzz run changelog`: see [`synnefo_upgrade_fuzz::changelog`] for what it asserts.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| synnefo_upgrade_fuzz::changelog(data));
