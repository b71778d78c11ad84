//! The faults operators really hit (issue 13): two runs at once, a full
//! disk during the backups, hostile and odd trees. Each runs the real binary
//! on a fixture root and checks what the node looks like afterwards.

mod common;

use common::Node;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// An armed node after its dist-upgrade, ready for `finish`.
fn finishing_node() -> Node {
    let node = Node::wheezy();
    node.ok(&["prepare"]);
    node.to_jessie();
    node
}

/// Takes the run lock as another synnefo-upgrade would: flock, then its PID
/// and command line written into the lock file.
fn hold_lock(node: &Node) -> Flock<fs::File> {
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(node.path("/var/lib/synnefo-upgrade/lock"))
        .unwrap();
    let mut lock = Flock::lock(file, FlockArg::LockExclusiveNonblock)
        .map_err(|(_, e)| e)
        .unwrap();
    lock.set_len(0).unwrap();
    writeln!(lock, "{} /usr/sbin/synnefo-upgrade finish", std::process::id()).unwrap();
    lock
}

#[test]
fn a_second_finish_waits_a_bounded_time_names_the_holder_and_changes_nothing() {
    let node = finishing_node();
    let _held = hold_lock(&node);
    let before = node.snapshot();
    let state_before = node.state_json();
    let clock = Instant::now();
    let out = node.run(&["finish"], &[("SYNNEFO_UPGRADE_LOCK_WAIT", "2")]);
    let waited = clock.elapsed();
    assert_eq!(out.status.code(), Some(75), "{}", stderr(&out));
    assert!(
        waited >= Duration::from_secs(2) && waited < Duration::from_secs(10),
        "waited {waited:?}"
    );
    let err = stderr(&out);
    assert!(
        err.contains(&format!("PID {}", std::process::id()))
            && err.contains("synnefo-upgrade finish")
            && err.contains("nothing was changed"),
        "{err}"
    );
    assert_eq!(node.snapshot(), before, "the tree is unchanged");
    assert_eq!(node.state_json(), state_before, "the state is unchanged");
}

#[test]
fn abort_during_a_held_lock_runs_once_the_holder_ends() {
    let node = Node::wheezy();
    node.ok(&["prepare"]);
    let held = hold_lock(&node);
    let release = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1500));
        drop(held);
    });
    let clock = Instant::now();
    let out = node.run(&["abort"], &[("SYNNEFO_UPGRADE_LOCK_WAIT", "20")]);
    release.join().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(clock.elapsed() >= Duration::from_millis(1400));
    assert_eq!(node.state_json()["phase"], "aborted");
    // The lock file now names the run that held it last (this binary).
    let holder = fs::read_to_string(node.path("/var/lib/synnefo-upgrade/lock")).unwrap();
    assert!(holder.contains(" abort"), "{holder}");
}
