//! `convert --dry-run` over a generated 1 MiB settings directory, as a ratio to
//! merely reading the same files, both measured in this run (issue 5, item 9);
//! then how the time grows with the size of one settings file: the time per
//! MiB of `convert::plan` over 1 MiB and over 8 MiB, and their ratio (about 1
//! when the time is linear in the size; issue 25, item 11).
//!
//! `cargo bench --bench convert`. Prints medians and ratios; asserts nothing
//! about time.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use synnefo_upgrade::base::fsx::Root;
use synnefo_upgrade::convert;
use synnefo_upgrade::inputs::config::Config;

const TEMPLATE: &str = include_str!(
    "../tests/fixtures/convert/cyclades-node/etc/synnefo/20-snf-cyclades-app-api.conf"
);
const VMAPI: &str = include_str!(
    "../tests/fixtures/convert/cyclades-node/etc/synnefo/20-snf-cyclades-app-vmapi.conf"
);

/// Writes about `size` bytes of settings: shipped files with operator
/// assignments, plus the real cache settings to convert.
fn generate(root: &Path, size: usize) -> usize {
    let dir = root.join("etc/synnefo");
    fs::create_dir_all(&dir).unwrap();
    let template = TEMPLATE
        .replace("CACHE_BACKEND = ", "#CACHE_BACKEND = ")
        .replace(
            "PUBLIC_STATS_CACHE_POPULATE_INTERVAL = 120L",
            "#PUBLIC_STATS_CACHE_POPULATE_INTERVAL = 120L",
        );
    let mut total = 0;
    let mut n = 0;
    while total < size {
        let text = format!(
            "{template}\nSETTING_{n} = {{\n    'key': u'value {n}',\n    'list': [1, 2L, 0755, 3.5e2],\n}}\n"
        );
        fs::write(dir.join(format!("30-generated-{n:04}.conf")), &text).unwrap();
        total += text.len();
        n += 1;
    }
    fs::write(dir.join("20-snf-cyclades-app-api.conf"), TEMPLATE).unwrap();
    fs::write(dir.join("20-snf-cyclades-app-vmapi.conf"), VMAPI).unwrap();
    total + TEMPLATE.len() + VMAPI.len()
}

/// Writes one settings file of about `size` bytes, dense with the operator's
/// own assignments, after the four obsolete cache settings (so that every
/// check of the conversion runs over all of it).
fn generate_one_file(root: &Path, size: usize) -> usize {
    let dir = root.join("etc/synnefo");
    fs::create_dir_all(&dir).unwrap();
    let mut text = String::from(
        "CACHE_BACKEND = 'memcached://127.0.0.1:11211/?timeout=3600'\n\
         VMAPI_CACHE_BACKEND = 'memcached://127.0.0.1:11211/'\n\
         VMAPI_CACHE_KEY_PREFIX = 'vmapi'\n\
         PUBLIC_STATS_CACHE_POPULATE_INTERVAL = 120L\n",
    );
    let mut n = 0;
    while text.len() < size {
        text.push_str(&format!(
            "# setting {n}\nSETTING_{n} = {{'key': u'value {n}', 'list': [1, 2L, 0755, 3.5e2]}}\nOTHER_{n} = SETTING_{n}['key']\n"
        ));
        n += 1;
    }
    fs::write(dir.join("50-operator.conf"), &text).unwrap();
    text.len()
}

fn median(mut f: impl FnMut(), runs: usize) -> Duration {
    f(); // warm the page cache
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    times.sort();
    times[runs / 2]
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = generate(dir.path(), 1 << 20);
    let root = Root::new(dir.path());
    let config = Config::default();
    let files: Vec<_> = fs::read_dir(dir.path().join("etc/synnefo"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let runs = 15;

    let read = median(
        || {
            let n: usize = files.iter().map(|f| fs::read(f).unwrap().len()).sum();
            assert_eq!(n, bytes);
        },
        runs,
    );
    let plan = median(
        || {
            let c = convert::plan(&root, &config).unwrap();
            assert!(!c.diff().is_empty());
        },
        runs,
    );
    let bin = env!("CARGO_BIN_EXE_synnefo-upgrade");
    let process = median(
        || {
            let out = Command::new(bin)
                .arg("--root")
                .arg(dir.path())
                .args(["convert", "--dry-run"])
                .output()
                .unwrap();
            assert!(out.status.success());
        },
        runs,
    );
    println!(
        "convert over {} files, {} bytes of settings (median of {runs} runs):",
        files.len(),
        bytes
    );
    println!("  reading the files:                 {read:>12?}   1.0x");
    println!(
        "  convert::plan + diff (library):    {plan:>12?}   {:.1}x reading",
        plan.as_secs_f64() / read.as_secs_f64()
    );
    println!(
        "  synnefo-upgrade convert --dry-run: {process:>12?}   {:.1}x reading",
        process.as_secs_f64() / read.as_secs_f64()
    );
    scaling(&config);
}

/// Time per MiB of one settings file of 1 MiB and of 8 MiB.
fn scaling(config: &Config) {
    const MIB: f64 = (1 << 20) as f64;
    let runs = 3;
    let mut per_mib = Vec::new();
    println!("one settings file, time per MiB (median of {runs} runs):");
    for mib in [1, 8] {
        let dir = tempfile::tempdir().unwrap();
        let bytes = generate_one_file(dir.path(), mib << 20);
        let root = Root::new(dir.path());
        let file = dir.path().join("etc/synnefo/50-operator.conf");
        let read = median(|| assert_eq!(fs::read(&file).unwrap().len(), bytes), runs);
        let plan = median(
            || {
                let c = convert::plan(&root, config).unwrap();
                assert!(!c.is_empty());
            },
            runs,
        );
        let (read, plan) = (
            read.as_secs_f64() * 1000.0 / (bytes as f64 / MIB),
            plan.as_secs_f64() * 1000.0 / (bytes as f64 / MIB),
        );
        println!(
            "  {mib} MiB: reading {read:>9.3} ms/MiB, convert::plan {plan:>9.1} ms/MiB ({:.0}x reading)",
            plan / read
        );
        per_mib.push(plan);
    }
    println!(
        "  convert::plan per MiB, 8 MiB / 1 MiB: {:.2} (1 when linear, 8 when quadratic)",
        per_mib[1] / per_mib[0]
    );
}
