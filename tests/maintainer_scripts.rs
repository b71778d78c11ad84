//! The real maintainer scripts (debian/prerm, postinst, postrm) run by `sh`
//! against a fixture root (`DPKG_ROOT`, which the scripts honour and pass on
//! as `--root`), with the real binary on `PATH` as `synnefo-upgrade`: removal
//! while armed aborts first, removal after the dist-upgrade started is
//! refused and `postinst abort-remove` keeps the node armed, purge keeps an
//! unfinished upgrade's state, and an upgrade of the package re-verifies and
//! migrates an older state file.

mod common;

use common::{without_our_records, Node, BIN};
use std::fs;
use std::path::Path;
use std::process::{Command, Output};

/// Runs `debian/SCRIPT ARGS` on `node`; returns the output and its stderr text.
fn script(node: &Node, name: &str, args: &[&str]) -> (Output, String) {
    let bin = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(BIN, bin.path().join("synnefo-upgrade")).unwrap();
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("sh")
        .arg(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("debian")
                .join(name),
        )
        .args(args)
        .env("DPKG_ROOT", node.root())
        .env("PATH", path)
        .env_remove("FAILPOINTS")
        .env_remove("SYNNEFO_UPGRADE_NO_ARM")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, err)
}

fn armed_node() -> Node {
    let mut node = Node::wheezy();
    node.package("snf-cyclades-app", "0.18.1-1~wheezy", Some("synnefo"));
    node
}

#[test]
fn removal_before_the_dist_upgrade_aborts_first_and_says_so() {
    let node = armed_node();
    let before = without_our_records(node.snapshot());
    node.ok(&["prepare"]);
    let (out, err) = script(&node, "prerm", &["remove"]);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("the upgrade was aborted"), "{err}");
    assert_eq!(node.state_json()["phase"], "aborted");
    assert_eq!(without_our_records(node.snapshot()), before);
    let (out, err) = script(&node, "postrm", &["remove"]);
    assert!(out.status.success(), "{err}");
    assert_eq!(without_our_records(node.snapshot()), before);
    // Nothing unfinished is left: purge removes our records.
    let (out, err) = script(&node, "postrm", &["purge"]);
    assert!(out.status.success(), "{err}");
    assert!(!node.path("/var/lib/synnefo-upgrade").exists());
}

#[test]
fn removal_after_the_dist_upgrade_started_is_refused_and_abort_remove_keeps_it_armed() {
    let node = armed_node();
    node.ok(&["prepare"]);
    node.set_dpkg("gunicorn", "install ok unpacked", Some("19.0-1"));
    let armed = node.snapshot();
    let (out, err) = script(&node, "prerm", &["remove"]);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("refusing removal: the dist-upgrade has already started"),
        "{err}"
    );
    assert!(
        err.contains("'apt-get dist-upgrade', then reboot into jessie"),
        "{err}"
    );
    assert_eq!(node.snapshot(), armed, "a refused removal changes nothing");
    // dpkg then runs the old postinst with abort-remove: still armed, protections verified.
    fs::remove_file(node.path("/usr/sbin/policy-rc.d")).unwrap();
    let (out, err) = script(&node, "postinst", &["abort-remove"]);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("restored: /usr/sbin/policy-rc.d"), "{err}");
    assert_eq!(node.state_json()["phase"], "armed");
    assert_eq!(
        without_our_records(node.snapshot()),
        without_our_records(armed)
    );
}

#[test]
fn finishing_refuses_removal_and_purge_keeps_an_unfinished_upgrade() {
    let node = armed_node();
    node.ok(&["prepare"]);
    let host = node.path("/var/lib/synnefo-upgrade/state.json");
    let text = fs::read_to_string(&host).unwrap().replacen(
        "\"phase\": \"armed\"",
        "\"phase\": \"finishing\"",
        1,
    );
    fs::write(&host, text).unwrap();
    let (out, err) = script(&node, "prerm", &["remove"]);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("run 'synnefo-upgrade finish'"), "{err}");
    // A package upgrade between a failed finish and its resume keeps the state.
    let before = node.snapshot();
    let (out, err) = script(&node, "postinst", &["configure", "0.1.0"]);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("its state is kept"), "{err}");
    assert_eq!(node.snapshot(), before);
    let (out, err) = script(&node, "postrm", &["purge"]);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("state and backups in /var/lib/synnefo-upgrade are kept"),
        "{err}"
    );
    assert!(host.is_file());
    assert!(node.path("/var/lib/synnefo-upgrade/backups").is_dir());
}

#[test]
fn a_package_upgrade_while_armed_migrates_the_state_and_restores_protections() {
    let node = armed_node();
    node.ok(&["prepare"]);
    let armed = without_our_records(node.snapshot());
    // The state as the previous version (schema 1) wrote it.
    let host = node.path("/var/lib/synnefo-upgrade/state.json");
    let mut state = node.state_json();
    let object = state.as_object_mut().unwrap();
    object.insert("schema".into(), 1.into());
    object.insert("tool_version".into(), "0.1.0".into());
    object.remove("prepared_by");
    fs::write(&host, serde_json::to_string_pretty(&state).unwrap()).unwrap();
    fs::remove_file(node.path("/etc/systemd/system/gunicorn.service")).unwrap();

    let (out, err) = script(&node, "prerm", &["upgrade", "0.2.0"]);
    assert!(out.status.success(), "{err}");
    let (out, err) = script(&node, "postinst", &["configure", "0.1.0"]);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("restored: masks of gunicorn"), "{err}");
    assert_eq!(without_our_records(node.snapshot()), armed);
    let state = node.state_json();
    assert_eq!(state["phase"], "armed");
    assert_eq!(state["prepared_by"], "0.1.0");
    // And the node can still be taken back.
    node.ok(&["abort"]);
}
