//! `cargo +nightly fuzz run config_toml`: see [`synnefo_upgrade_fuzz::config_toml`] for what it asserts.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| synnefo_upgrade_fuzz::config_toml(data));
