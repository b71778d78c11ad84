//! A finish stopped by a signal in the middle of `migrate` (`systemctl stop`,
//! a shutdown, `kill`) records the step as failed by that signal, stops the
//! migration it ran, and the next run resumes at that step.

mod common;

use common::Node;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::time::{Duration, Instant};

/// Waits until `what` holds, for up to 20 s.
fn until(what: &str, mut holds: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !holds() {
        assert!(t0.elapsed() < Duration::from_secs(20), "never: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sigterm_in_migrate_is_recorded_on_the_step_and_the_next_run_resumes_there() {
    let node = Node::wheezy();
    node.ok(&["prepare"]);
    node.to_jessie();
    // A migration that runs until it is stopped, and says what stopped it.
    node.fake_snf_manage(
        "case \"$*\" in migrate\\ --noinput*)\n\
         trap 'echo \"migrate stopped by TERM\" >> \"$root/var/log/snf-manage.calls\"; exit 143' TERM\n\
         echo running > \"$root/var/lib/migrating\"\n\
         while :; do sleep 0.1; done;;\nesac\n",
    );
    let finish = common::spawn(&node, &["finish"]);
    until("migrate runs", || node.path("/var/lib/migrating").exists());
    // status follows the run in progress (the playbook waits while it runs).
    let status = node.ok(&["status", "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(report["running"]["pid"], finish.id(), "{report}");
    assert_eq!(report["running"]["step"], "finish migrate", "{report}");
    kill(Pid::from_raw(finish.id() as i32), Signal::SIGTERM).unwrap();
    let (out, _) = common::reap(finish, 20);
    assert_eq!(
        out.status.code(),
        Some(128 + 15),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The migration was stopped with the run, not left running unseen.
    until("the migration got the signal", || {
        node.calls().contains("migrate stopped by TERM")
    });

    let step = node.step("finish", "migrate");
    assert_eq!(step["status"], "failed", "{step}");
    let message = step["message"].as_str().unwrap();
    assert!(message.starts_with("interrupted by SIGTERM"), "{message}");
    assert!(step["duration_ms"].as_u64().is_some(), "{step}");
    let status = node.ok(&["status", "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(report["failed_step"]["id"], "migrate", "{report}");
    assert_eq!(report["failed_step"]["phase"], "finish", "{report}");
    assert_eq!(report["phase"], "finishing", "{report}");
    assert!(report["running"].is_null(), "{report}");
    assert!(node.masked("gunicorn.service"), "the services stay masked");
    assert_eq!(node.step("finish", "backups")["status"], "done");

    // The next start resumes at migrate (backups are not taken again).
    let before = node.calls();
    node.fake_snf_manage("");
    node.ok(&["finish"]);
    let again = node.calls()[before.len()..].to_string();
    assert!(again.contains("migrate --noinput"), "{again}");
    assert_eq!(node.state_json()["phase"], "done");
    assert_eq!(node.step("finish", "migrate")["status"], "done");
}
