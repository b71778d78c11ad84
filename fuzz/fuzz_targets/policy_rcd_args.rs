//! `cargo +nightly fuzz run policy_rcd_args`: see [`synnefo_upgrade_fuzz::policy_rcd_args`] for what it asserts.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| synnefo_upgrade_fuzz::policy_rcd_args(data));
