//! `status --wait SECONDS`: one command that returns as soon as the upgrade is
//! done (exit 0) or a step failed (exit 1), and exits 75 when neither
//! happened in time; the roll-out waits with it instead of a poll loop.

mod common;

use common::Node;
use std::time::{Duration, Instant};

/// Rewrites the state file the way the runner does (a new file renamed over
/// the old one), with `edit` applied to its JSON.
fn rewrite_state(node: &Node, edit: impl FnOnce(&mut serde_json::Value)) {
    let mut state = node.state_json();
    edit(&mut state);
    let path = node.path("/var/lib/synnefo-upgrade/state.json");
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(&state).unwrap()).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
}

fn code(out: &std::process::Output) -> Option<i32> {
    out.status.code()
}

#[test]
fn a_done_node_returns_at_once_with_exit_0_and_its_status() {
    let node = Node::wheezy();
    node.ok(&["prepare"]);
    node.to_jessie();
    node.ok(&["finish"]);
    let t0 = Instant::now();
    let out = node.run_within(20, &["status", "--json", "--wait", "600"]);
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    assert_eq!(
        code(&out),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["phase"], "done");
}

#[test]
fn an_armed_node_times_out_with_exit_75_after_the_wait() {
    let node = Node::wheezy();
    node.ok(&["prepare"]);
    let t0 = Instant::now();
    let out = node.run_within(20, &["status", "--json", "--wait", "2"]);
    let took = t0.elapsed();
    assert_eq!(
        code(&out),
        Some(75),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        took >= Duration::from_secs(2),
        "returned after {took:?}, before the 2 s"
    );
    assert!(took < Duration::from_secs(6), "took {took:?}");
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["phase"], "armed", "the status is printed all the same");
    // Without --wait: no waiting, exit 0 whatever the phase.
    let t0 = Instant::now();
    assert_eq!(code(&node.run(&["status"], &[])), Some(0));
    assert!(t0.elapsed() < Duration::from_secs(2));
}

/// Spawns `status --json --wait 60`, runs `meanwhile` (the waiter must not
/// return before), then changes the state with `edit`: the waiter's output,
/// and how long after the change it returned (it must, within 10 s).
fn wait_through_change(
    node: &Node,
    meanwhile: impl FnOnce(),
    edit: impl FnOnce(&mut serde_json::Value),
    exit: i32,
) -> serde_json::Value {
    let child = common::spawn(node, &["status", "--json", "--wait", "60"]);
    std::thread::sleep(Duration::from_millis(800));
    meanwhile();
    std::thread::sleep(Duration::from_millis(800));
    let changed = Instant::now();
    rewrite_state(node, edit);
    let (out, ended) = common::reap(child, 10);
    let noticed = ended.duration_since(changed);
    assert_eq!(
        code(&out),
        Some(exit),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        noticed < Duration::from_millis(1500),
        "noticed after {noticed:?}"
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn the_wait_ends_within_a_second_of_the_phase_becoming_done() {
    let node = Node::wheezy();
    node.ok(&["prepare"]);
    let s = wait_through_change(&node, || {}, |s| s["phase"] = "done".into(), 0);
    assert_eq!(s["phase"], "done");
}

#[test]
fn the_wait_ends_with_exit_1_when_a_step_fails() {
    let node = Node::wheezy();
    node.ok(&["prepare"]);
    let fail_last_step = |s: &mut serde_json::Value| {
        s["phase"] = "finishing".into();
        let steps = s["steps"].as_array_mut().unwrap();
        let last = steps.last_mut().unwrap();
        last["status"] = "failed".into();
        last["message"] = "a test failure".into();
    };
    let s = wait_through_change(&node, || {}, fail_last_step, 1);
    assert!(!s["failed_step"].is_null(), "{s}");
}

#[test]
fn a_node_without_state_yet_is_waited_for_until_it_appears() {
    let node = Node::wheezy();
    // prepare creates the state directory and file while the waiter runs;
    // armed is not an end.
    let prepare = || {
        node.ok(&["prepare"]);
    };
    let s = wait_through_change(&node, prepare, |s| s["phase"] = "done".into(), 0);
    assert_eq!(s["phase"], "done");
}
