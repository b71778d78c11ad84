//! Armed means down, across any boot: `prepare` turns the sysvinit start links
//! of the managed services into stop links (as `update-rc.d NAME disable`),
//! `abort` and `finish` put them back exactly. And a `prepare` on an armed
//! node re-verifies every protection and restores what is missing.

mod common;

use common::{without_our_records, Node};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

const GUNICORN_SCRIPT: &str = "#!/bin/sh\n### BEGIN INIT INFO\n# Provides:          gunicorn\n# Required-Start:    $remote_fs $syslog\n# Required-Stop:     $remote_fs $syslog\n# Default-Start:     2 3 4 5\n# Default-Stop:      0 1 6\n### END INIT INFO\nexit 0\n";

/// A wheezy node whose gunicorn starts in runlevels 2–5 (insserv's links,
/// stop links in 0, 1, 6) and whose archipelago is installed but disabled.
fn node() -> Node {
    let mut node = Node::wheezy();
    node.package("snf-cyclades-app", "0.18.1-1~wheezy", Some("synnefo"));
    node.write("/etc/init.d/gunicorn", GUNICORN_SCRIPT, 0o755);
    for level in ["3", "4", "5"] {
        node.link(
            "../init.d/gunicorn",
            &format!("/etc/rc{level}.d/S02gunicorn"),
        );
    }
    for level in ["0", "1", "6"] {
        node.link(
            "../init.d/gunicorn",
            &format!("/etc/rc{level}.d/K01gunicorn"),
        );
    }
    node.link("../init.d/archipelago", "/etc/rc2.d/K01archipelago");
    node
}

/// The entries of the rc directories, with their link targets.
fn rc_links(node: &Node) -> BTreeMap<PathBuf, String> {
    node.snapshot()
        .into_iter()
        .filter(|(p, _)| p.starts_with("etc") && p.to_string_lossy().contains("/rc"))
        .collect()
}

fn is_link(node: &Node, abs: &str) -> bool {
    fs::symlink_metadata(node.path(abs)).is_ok_and(|m| m.file_type().is_symlink())
}

fn assert_started_at_boot(node: &Node) {
    for level in ["2", "3", "4", "5"] {
        assert!(
            is_link(node, &format!("/etc/rc{level}.d/S02gunicorn")),
            "rc{level}.d"
        );
        assert!(
            !is_link(node, &format!("/etc/rc{level}.d/K02gunicorn")),
            "rc{level}.d"
        );
    }
}

#[test]
fn prepare_turns_start_links_into_stop_links_with_the_same_numbers() {
    let node = node();
    let before = rc_links(&node);
    node.ok(&["prepare"]);
    for level in ["2", "3", "4", "5"] {
        assert!(
            !is_link(&node, &format!("/etc/rc{level}.d/S02gunicorn")),
            "rc{level}.d"
        );
        assert_eq!(
            fs::read_link(node.path(&format!("/etc/rc{level}.d/K02gunicorn"))).unwrap(),
            Path::new("../init.d/gunicorn")
        );
    }
    // Nothing else in the rc directories changed.
    let after = rc_links(&node);
    let changed: Vec<&PathBuf> = before
        .keys()
        .chain(after.keys())
        .filter(|p| before.get(*p) != after.get(*p))
        .collect();
    assert_eq!(changed.len(), 8, "{changed:?}");
    let step = node.step("prepare", "disable-boot-start");
    assert_eq!(step["status"], "done");
    assert!(
        step["message"]
            .as_str()
            .unwrap()
            .contains("/etc/rc2.d/S02gunicorn -> /etc/rc2.d/K02gunicorn"),
        "{step}"
    );
}

#[test]
fn abort_restores_the_start_links_byte_for_byte() {
    let node = node();
    let before = without_our_records(node.snapshot());
    node.ok(&["prepare"]);
    node.ok(&["abort"]);
    assert_eq!(without_our_records(node.snapshot()), before);
    assert_started_at_boot(&node);
}

#[test]
fn abort_after_a_crash_right_after_disable_boot_start_restores_them() {
    let node = node();
    let before = without_our_records(node.snapshot());
    let out = node.run(
        &["prepare"],
        &[("FAILPOINTS", "prepare-after-disable-boot-start=panic")],
    );
    assert!(!out.status.success());
    assert!(is_link(&node, "/etc/rc2.d/K02gunicorn"));
    node.ok(&["abort"]);
    assert_eq!(without_our_records(node.snapshot()), before);
}

#[test]
fn finish_restores_the_start_links() {
    let node = node();
    let before = rc_links(&node);
    node.ok(&["prepare"]);
    node.to_jessie();
    node.ok(&["finish"]);
    assert_eq!(rc_links(&node), before);
    assert_started_at_boot(&node);
}

#[test]
fn prepare_on_an_armed_node_restores_the_missing_protections_and_says_which() {
    let node = node();
    node.ok(&["prepare"]);
    let armed = without_our_records(node.snapshot());
    // What an old package's postrm (or an admin) left: no policy-rc.d, one
    // mask gone, the start link back, the sources on wheezy again.
    fs::remove_file(node.path("/usr/sbin/policy-rc.d")).unwrap();
    fs::remove_file(node.path("/etc/systemd/system/gunicorn.service")).unwrap();
    fs::rename(
        node.path("/etc/rc2.d/K02gunicorn"),
        node.path("/etc/rc2.d/S02gunicorn"),
    )
    .unwrap();
    node.write("/etc/apt/sources.list", common::SOURCES_LIST, 0o644);
    for gone in [
        "/etc/systemd/system/multi-user.target.wants/synnefo-upgrade-finish.service",
        "/etc/apt/apt.conf.d/50synnefo-upgrade",
        "/var/lib/synnefo-upgrade/armed",
    ] {
        fs::remove_file(node.path(gone)).unwrap();
    }

    let out = node.ok(&["prepare"]);
    let said =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("protections were missing; restored:"),
        "{said}"
    );
    for what in [
        "/usr/sbin/policy-rc.d",
        "masks of gunicorn",
        "/etc/rc2.d/S02gunicorn -> /etc/rc2.d/K02gunicorn",
        "/etc/apt/sources.list",
        "the finish unit's enable link",
        "/etc/apt/apt.conf.d/50synnefo-upgrade",
        "the armed marker",
    ] {
        assert!(said.contains(what), "{what} not reported: {said}");
    }
    assert_eq!(
        fs::read_link(node.path("/usr/sbin/policy-rc.d")).unwrap(),
        Path::new("/usr/sbin/synnefo-upgrade")
    );
    assert_eq!(
        fs::read_link(node.path("/etc/systemd/system/gunicorn.service")).unwrap(),
        Path::new("/dev/null")
    );
    assert_eq!(without_our_records(node.snapshot()), armed);
    assert!(node.path("/var/lib/synnefo-upgrade/armed").is_file());
    assert_eq!(node.state_json()["phase"], "armed");

    // All in place: it says so and changes nothing.
    let out = node.ok(&["prepare"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("every protection is in place"));
    assert_eq!(without_our_records(node.snapshot()), armed);

    // And abort still takes everything back.
    let out = node.run(&["abort"], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_started_at_boot(&node);
    assert!(fs::symlink_metadata(node.path("/usr/sbin/policy-rc.d")).is_err());
}
