//! `cargo +nightly fuzz run dpkg_status`: see [`synnefo_upgrade_fuzz::dpkg_status`] for what it asserts.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| synnefo_upgrade_fuzz::dpkg_status(data));
