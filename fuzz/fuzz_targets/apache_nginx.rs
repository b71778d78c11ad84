//! `cargo +nightly fuzz run apache_nginx`: see [`synnefo_upgrade_fuzz::apache_nginx`] for what it asserts.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| synnefo_upgrade_fuzz::apache_nginx(data));
