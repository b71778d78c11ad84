//! `finish`'s own CPU time on a fixture root, children excluded, as a ratio to
//! the CPU time of a process (`cat`) reading the same files, both measured in
//! this run (issue 11, item 7).
//!
//! `cargo bench --bench finish [-- RUNS]` (default 31 runs). Prints medians and
//! the ratio; asserts nothing about time.
//!
//! The fixture: the node of `tests/common/mod.rs` (`Node::wheezy()`: dpkg
//! status, os-release, init scripts, APT sources, a fake `snf-manage` inside
//! the tree), armed by the real binary's `prepare` and moved to jessie
//! (`Node::to_jessie`), as in `tests/fixture_root.rs`. Every run gets a fresh
//! copy of that armed tree (`cp -a`, outside the measurement), since `finish`
//! changes it.
//!
//! Method, so that only the measured process counts: the bench spawns it,
//! waits for its exit with `waitid(WEXITED | WNOWAIT)`, which leaves it a
//! zombie, reads its process CPU-time clock (`clock_getcpuclockid(pid)` +
//! `clock_gettime`: the sum of user and system time of all its threads, in
//! nanoseconds, and nothing of its children, whose times the kernel keeps
//! apart), then reaps it. `finish` runs `snf-manage` and streams its output
//! from a second thread: that thread is counted, the `snf-manage` shell is not.
//! (`wait4`'s rusage would add the children `finish` waited for; `/proc/PID/stat`
//! counts in 10 ms ticks; `perf stat --no-inherit` would miss the thread.)
//!
//! The baseline is the same measurement of `cat` reading, to /dev/null, the
//! files `finish` reads on this node: the list below, taken from
//! `strace -f -e trace=openat` of a `finish` run on this fixture (the regular
//! files it opens read-only under the root; the rest are directories it opens
//! to fsync and files it writes); the bench checks each exists. Redo the
//! strace when `finish` reads other files.

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use nix::sys::wait::{waitid, Id, WaitPidFlag};
use nix::time::{clock_gettime, ClockId};
use nix::unistd::Pid;

/// The regular files `finish` opens for reading on this fixture, once each
/// (today it reads dpkg's status three times and the hostname twice; the
/// baseline reads each once).
const READS: &[&str] = &[
    "/var/lib/synnefo-upgrade/state.json",
    "/etc/os-release",
    "/var/lib/dpkg/status",
    "/etc/hostname",
];

/// CPU time of the process `cmd` starts, children excluded.
fn own_cpu(cmd: &mut Command) -> Duration {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawning the measured command");
    let pid = Pid::from_raw(child.id() as i32);
    // Exited but not reaped: its clock still reads, and holds its final value.
    waitid(Id::Pid(pid), WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT).expect("waitid");
    let clock = ClockId::pid_cpu_clock_id(pid).expect("clock_getcpuclockid");
    let cpu = clock_gettime(clock).expect("clock_gettime on the zombie");
    let status = child.wait().expect("reaping");
    assert!(status.success(), "{cmd:?}: {status}");
    Duration::from(cpu)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn copy_tree(from: &Path, to: &Path) {
    let ok = Command::new("cp")
        .arg("-a")
        .arg(from.join("."))
        .arg(to)
        .status()
        .expect("running cp")
        .success();
    assert!(ok, "copying the fixture");
}

fn main() {
    let runs: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(31);
    let node = common::Node::wheezy();
    node.ok(&["prepare"]);
    node.to_jessie();
    let files: Vec<_> = READS.iter().map(|p| node.path(p)).collect();
    for f in &files {
        assert!(f.is_file(), "{} is not in the fixture", f.display());
    }

    let (mut ours, mut cat) = (Vec::new(), Vec::new());
    for _ in 0..=runs {
        let dir = tempfile::tempdir().expect("temporary directory");
        copy_tree(node.root(), dir.path());
        ours.push(own_cpu(
            Command::new(common::BIN)
                .arg("--root")
                .arg(dir.path())
                .arg("finish")
                .env_remove("FAILPOINTS"),
        ));
        assert!(
            std::fs::read_to_string(dir.path().join("var/lib/synnefo-upgrade/state.json"))
                .expect("state after finish")
                .contains("\"phase\": \"done\""),
            "finish did not complete"
        );
        cat.push(own_cpu(Command::new("cat").args(&files)));
    }
    // The first round warmed the page cache.
    let (ours, cat) = (median(ours[1..].to_vec()), median(cat[1..].to_vec()));
    println!(
        "finish on a fixture root, own CPU time (user + system, children excluded; median of {runs} runs):"
    );
    println!(
        "  cat of the {} files finish reads: {cat:>12?}   1.0x",
        files.len()
    );
    println!(
        "  synnefo-upgrade finish:            {ours:>12?}   {:.1}x",
        ours.as_secs_f64() / cat.as_secs_f64()
    );
}
