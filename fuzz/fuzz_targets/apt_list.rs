//! `cargo +nightly fuzz run apt_list`: see [`synnefo_upgrade_fuzz::apt_list`] for what it asserts.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| synnefo_upgrade_fuzz::apt_list(data));
