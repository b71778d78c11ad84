//! Runs at once (issue 25, item 1): real processes of the binary started
//! together on one fixture root. Each run looks at the node without the lock
//! first; the failpoint `before-lock` (`sleep(MS)`) holds it there, so the
//! other run changes the node in that window every time, not by luck. The
//! end state must be that of the runs one after the other.

mod common;

use common::{without_our_records, Node, BIN};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Starts `args` on `node` with the failpoints `failpoints` (`NAME=ACTION;...`).
fn spawn(node: &Node, args: &[&str], failpoints: &str) -> Child {
    Command::new(BIN)
        .arg("--root")
        .arg(node.root())
        .args(args)
        .env("FAILPOINTS", failpoints)
        .env("SYNNEFO_UPGRADE_LOCK_WAIT", "60")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Starts `args` held `ms` milliseconds just before it takes the lock.
fn spawn_held(node: &Node, args: &[&str], ms: u64) -> Child {
    spawn(node, args, &format!("before-lock=sleep({ms})"))
}

fn succeeded(child: Child, what: &str) -> Output {
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{what}: {}", stderr(&out));
    out
}

/// Waits until the state file records step `id` of `phase` as done.
fn wait_for_step(node: &Node, phase: &str, id: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let done = std::fs::read(node.path("/var/lib/synnefo-upgrade/state.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|doc| {
                doc["steps"].as_array().map(|steps| {
                    steps
                        .iter()
                        .any(|s| s["phase"] == phase && s["id"] == id && s["status"] == "done")
                })
            })
            .unwrap_or(false);
        if done {
            return;
        }
        assert!(Instant::now() < deadline, "{phase}/{id} never done");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A service node (the APT pin is written there too).
fn node() -> Node {
    Node::with_synnefo(&["snf-pithos-app"])
}

/// The tree as one `prepare` leaves it: the state's service records and
/// steps, and every file (backups included), without timestamps.
fn armed_as_one_prepare(
    node: &Node,
) -> (serde_json::Value, Vec<String>, BTreeMap<PathBuf, String>) {
    let state = node.state_json();
    assert_eq!(state["phase"], "armed", "{state:#}");
    let steps = state["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| format!("{}/{} {}", s["phase"], s["id"], s["status"]))
        .collect();
    (state["services"].clone(), steps, node.snapshot())
}

/// What one `prepare` alone makes of a fresh [`node`].
fn one_prepare() -> (serde_json::Value, Vec<String>, BTreeMap<PathBuf, String>) {
    let reference = node();
    reference.ok(&["prepare"]);
    armed_as_one_prepare(&reference)
}

/// After the runs: `abort` brings back the tree as it was before them, byte
/// for byte, or (`finish`) the services that ran are started and unmasked.
fn then_abort_or_finish(node: &Node, before: &BTreeMap<PathBuf, String>, finish: bool) {
    if finish {
        node.to_jessie();
        node.ok(&["finish"]);
        let started = node.step("finish", "start-services");
        assert_eq!(started["message"], "started: gunicorn", "{started:#}");
        assert!(!node.masked("gunicorn.service"));
        assert!(!node.masked("archipelago.service"));
    } else {
        node.ok(&["abort"]);
        assert_eq!(&without_our_records(node.snapshot()), before);
    }
}

#[test]
fn two_prepares_at_once_arm_the_node_once() {
    let reference = one_prepare();
    assert_eq!(reference.0[0]["name"], "gunicorn");
    assert_eq!(reference.0[0]["was_active"], true);
    assert_eq!(reference.0[0]["was_masked"], false);
    let mut hit = 0;
    for round in 0..2 {
        let node = node();
        let before = without_our_records(node.snapshot());
        // Both look at the fresh node, then both wait for the lock.
        let a = spawn_held(&node, &["prepare"], 400);
        let b = spawn_held(&node, &["prepare"], 400);
        let (a, b) = (succeeded(a, "first"), succeeded(b, "second"));
        assert_eq!(armed_as_one_prepare(&node), reference, "round {round}");
        let second = if stderr(&a).contains("already armed") {
            &a
        } else {
            &b
        };
        assert!(
            stderr(second).contains("already armed; every protection is in place"),
            "{}",
            stderr(second)
        );
        // The window was hit: it saw the node fresh, then armed under the lock.
        hit += usize::from(stderr(second).contains("phase 'none' then, 'armed' now"));
        then_abort_or_finish(&node, &before, round % 2 == 1);
    }
    assert!(hit > 0, "no round had both prepares look at the fresh node");
}

#[test]
fn prepares_started_together_without_help_arm_the_node_once() {
    // No failpoint: only the processes' own timing, three at a time.
    let reference = one_prepare();
    for round in 0..4 {
        let node = node();
        let before = without_our_records(node.snapshot());
        let runs: Vec<Child> = (0..3).map(|_| spawn(&node, &["prepare"], "")).collect();
        for run in runs {
            succeeded(run, "prepare");
        }
        assert_eq!(armed_as_one_prepare(&node), reference, "round {round}");
        then_abort_or_finish(&node, &before, round % 2 == 1);
    }
}

/// Arms `node` and starts `command`, which sees the node armed and then waits
/// before the lock while `abort` takes everything back: its output.
fn while_abort_runs(node: &Node, command: &str) -> Output {
    node.ok(&["prepare"]);
    let held = spawn_held(node, &[command], 1000);
    std::thread::sleep(Duration::from_millis(300));
    node.ok(&["abort"]);
    succeeded(held, command)
}

#[test]
fn a_prepare_that_waited_while_abort_ran_arms_the_node_afresh() {
    let reference = one_prepare();
    let node = node();
    let before = without_our_records(node.snapshot());
    let out = while_abort_runs(&node, "prepare");
    assert!(
        stderr(&out).contains("phase 'armed' then, 'aborted' now"),
        "{}",
        stderr(&out)
    );
    // Armed from scratch, as a first prepare would, not the armed state it saw.
    let (services, steps, tree) = armed_as_one_prepare(&node);
    assert_eq!((&services, &tree), (&reference.0, &reference.2));
    assert!(
        steps.iter().all(|s| s.starts_with("\"prepare\"/")),
        "{steps:?}"
    );
    node.ok(&["abort"]);
    assert_eq!(without_our_records(node.snapshot()), before);
}

/// Runs `command` while `prepare` holds the lock, held after its step `step`
/// (done): its output, once both ended well.
fn during_prepare(node: &Node, step: &str, command: &str) -> Output {
    let failpoint = format!("prepare-after-{step}=sleep(1000)");
    let prepare = spawn(node, &["prepare"], &failpoint);
    wait_for_step(node, "prepare", step);
    let out = node.run(&[command], &[("SYNNEFO_UPGRADE_LOCK_WAIT", "60")]);
    succeeded(prepare, "prepare");
    assert!(out.status.success(), "{command}: {}", stderr(&out));
    out
}

#[test]
fn an_abort_that_waited_while_prepare_ran_takes_back_the_whole_prepare() {
    let node = node();
    let before = without_our_records(node.snapshot());
    // prepare holds the lock (the services recorded and stopped) while abort starts.
    during_prepare(&node, "stop-services", "abort");
    assert_eq!(node.state_json()["phase"], "aborted");
    assert_eq!(without_our_records(node.snapshot()), before);
}

#[test]
fn two_finishes_or_two_aborts_at_once_run_once() {
    for command in ["finish", "abort"] {
        let node = node();
        let before = without_our_records(node.snapshot());
        node.ok(&["prepare"]);
        if command == "finish" {
            node.to_jessie();
        }
        let a = spawn_held(&node, &[command], 300);
        let b = spawn_held(&node, &[command], 300);
        let outs = [succeeded(a, command), succeeded(b, command)];
        let done = if command == "finish" {
            "done"
        } else {
            "aborted"
        };
        let already = outs
            .iter()
            .filter(|o| stderr(o).contains(&format!("already {done}; nothing to do")))
            .count();
        assert_eq!(already, 1, "{command}: one runs, the other finds it done");
        let state = node.state_json();
        assert_eq!(state["phase"], done);
        for step in state["steps"].as_array().unwrap() {
            assert!(
                step["status"] == "done" || step["status"] == "skipped",
                "{step:#}"
            );
        }
        if command == "abort" {
            assert_eq!(without_our_records(node.snapshot()), before);
        } else {
            assert!(!node.masked("gunicorn.service"));
        }
    }
}

/// The guard hook's record of a service it stopped.
fn guard_stopped(node: &Node) -> bool {
    std::fs::read_to_string(node.path("/var/lib/synnefo-upgrade/denied-actions.log"))
        .unwrap_or_default()
        .contains("guard-stopped")
}

#[test]
fn the_guard_hook_does_not_stop_what_abort_started_meanwhile() {
    let node = node();
    let before = without_our_records(node.snapshot());
    // The guard sees the node armed, then waits; abort starts the services meanwhile.
    let out = while_abort_runs(&node, "guard");
    assert!(!stderr(&out).contains("stopping"), "{}", stderr(&out));
    assert!(!guard_stopped(&node));
    assert_eq!(without_our_records(node.snapshot()), before);
}

#[test]
fn the_guard_hook_during_prepare_waits_for_it() {
    let node = node();
    // prepare has recorded the services (still running, not yet masked).
    let out = during_prepare(&node, "record-services", "guard");
    // It ran once prepare had stopped and masked them: nothing came up.
    assert!(!stderr(&out).contains("stopping"), "{}", stderr(&out));
    assert!(!guard_stopped(&node));
}

#[test]
fn convert_that_waited_while_finish_converted_plans_again() {
    let node = node();
    node.write("/etc/gunicorn.d/synnefo", "CONFIG = {\n 'mode': 'django',\n 'working_dir': '/etc/synnefo',\n 'args': (\n   '--bind=127.0.0.1:8080',\n ),\n}\n", 0o644);
    node.ok(&["prepare"]);
    node.to_jessie();
    // convert plans the gunicorn change, then waits; finish converts it meanwhile.
    let convert = spawn_held(&node, &["convert"], 1000);
    let finish = spawn_held(&node, &["finish"], 300);
    succeeded(finish, "finish");
    let converted = std::fs::read_to_string(node.path("/etc/gunicorn.d/synnefo")).unwrap();
    assert!(converted.contains("'mode': 'wsgi'"), "{converted}");
    let out = succeeded(convert, "convert");
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("change(s) made"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(
        std::fs::read_to_string(node.path("/etc/gunicorn.d/synnefo")).unwrap(),
        converted
    );
}

#[test]
fn commands_on_a_never_armed_node_write_nothing_not_even_the_lock() {
    // `check` keeps its report, and nothing else (tests/check.rs).
    for args in [
        &["finish"][..],
        &["finish", "--dry-run"],
        &["abort"],
        &["guard"],
        &["status"],
        &["prepare", "--dry-run"],
        &["convert", "--dry-run"],
        &["convert"],
        &["policy-rc.d", "gunicorn", "start"],
    ] {
        let node = node();
        let before = node.snapshot();
        let out = node.run(args, &[]);
        assert_ne!(out.status.code(), Some(101), "{args:?}: {}", stderr(&out));
        assert_eq!(node.snapshot(), before, "{args:?}");
        assert!(
            !node.path("/var/lib/synnefo-upgrade").exists(),
            "{args:?} made the state directory"
        );
    }
}
