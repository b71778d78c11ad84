//! `cargo +nightly fuzz run gunicorn`: see [`synnefo_upgrade_fuzz::gunicorn`] for what it asserts.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| synnefo_upgrade_fuzz::gunicorn(data));
