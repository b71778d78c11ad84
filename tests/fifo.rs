//! No read of a node file may block: a FIFO where the tool reads a file (a
//! gunicorn config, an APT preferences file, `/etc/default/*`, `/etc/fstab`,
//! an APT source, a settings file...) is skipped with a `not-a-regular-file`
//! finding naming it, and every command ends. A configuration drop-in that
//! is a FIFO is bad input (exit 2). Each command runs with a deadline
//! ([`Node::run_within`]): a regression fails instead of hanging the run.

mod common;

use common::Node;

/// Seconds a command may take here (they take well under one).
const DEADLINE: u64 = 20;

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs `args` within the deadline and requires success.
fn ok(node: &Node, args: &[&str]) -> std::process::Output {
    let out = node.run_within(DEADLINE, args);
    assert!(
        out.status.success(),
        "{args:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        stderr(&out)
    );
    out
}

/// The `not-a-regular-file` findings of `check --json`, by title.
fn skipped_in_check(node: &Node) -> Vec<String> {
    let out = node.run_within(DEADLINE, &["check", "--json"]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("check --json: {e}: {}", stderr(&out)));
    doc["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["id"] == "not-a-regular-file")
        .map(|f| {
            assert_eq!(f["inhibitor"], false, "{f}");
            f["title"].as_str().unwrap().to_string()
        })
        .collect()
}

/// `check` and `prepare` end and name the FIFO at `abs`; `status` too.
fn check_prepare_status_skip(node: &Node, abs: &str) {
    let titles = skipped_in_check(node);
    assert!(
        titles.contains(&format!(
            "'{abs}' is a FIFO (named pipe), not a regular file"
        )),
        "{titles:?}"
    );
    let out = ok(node, &["prepare"]);
    assert!(
        stderr(&out).contains(&format!(
            "'{abs}' is a FIFO (named pipe), not a regular file"
        )),
        "prepare warns: {}",
        stderr(&out)
    );
    assert_eq!(node.state_json()["phase"], "armed");
    ok(node, &["status"]);
}

#[test]
fn a_fifo_in_gunicorn_d_is_skipped_by_check_prepare_status_and_finish() {
    let node = Node::wheezy();
    let fifo = "/etc/gunicorn.d/x";
    node.fifo(fifo);
    check_prepare_status_skip(&node, fifo);
    let text = String::from_utf8_lossy(&ok(&node, &["status"]).stdout).into_owned();
    assert!(text.contains(fifo), "status names it:\n{text}");
    node.to_jessie();
    ok(&node, &["finish"]);
    let notices = node.step("finish", "report-notices");
    assert!(
        notices["message"]
            .as_str()
            .is_some_and(|m| m.contains("not-a-regular-file") && m.contains(fifo)),
        "{notices}"
    );
    assert_eq!(node.state_json()["phase"], "done");
}

#[test]
fn a_fifo_in_apt_preferences_d_is_skipped() {
    let node = Node::with_synnefo(&["snf-astakos-app"]);
    node.fifo("/etc/apt/preferences.d/x");
    check_prepare_status_skip(&node, "/etc/apt/preferences.d/x");
}

#[test]
fn a_fifo_as_an_etc_default_file_is_skipped() {
    let node = Node::with_synnefo(&["snf-cyclades-app"]);
    node.write("/etc/init.d/snf-dispatcher", "#!/bin/sh\nexit 0\n", 0o755);
    node.fifo("/etc/default/snf-dispatcher");
    check_prepare_status_skip(&node, "/etc/default/snf-dispatcher");
}

#[test]
fn a_fifo_as_etc_fstab_is_skipped() {
    let node = Node::with_synnefo(&["snf-astakos-app"]);
    node.fifo("/etc/fstab");
    check_prepare_status_skip(&node, "/etc/fstab");
}

#[test]
fn a_fifo_among_the_apt_sources_is_skipped_and_not_rewritten() {
    let node = Node::with_synnefo(&["snf-astakos-app"]);
    node.fifo("/etc/apt/sources.list.d/x.list");
    check_prepare_status_skip(&node, "/etc/apt/sources.list.d/x.list");
    let grnet = std::fs::read_to_string(node.path("/etc/apt/sources.list.d/grnet.list")).unwrap();
    assert!(
        grnet.contains("jessie/"),
        "the other sources are rewritten: {grnet}"
    );
}

#[test]
fn a_fifo_among_the_settings_is_skipped_by_check_and_convert() {
    let node = Node::with_synnefo(&["snf-astakos-app"]);
    node.write(
        "/etc/synnefo/10-snf-webproject-database.conf",
        "DATABASES = {}\n",
        0o644,
    );
    node.fifo("/etc/synnefo/20-x.conf");
    let titles = skipped_in_check(&node);
    assert!(
        titles.iter().any(|t| t.contains("/etc/synnefo/20-x.conf")),
        "{titles:?}"
    );
    let out = ok(&node, &["convert", "--dry-run"]);
    assert!(
        stderr(&out).contains("'/etc/synnefo/20-x.conf' is a FIFO"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_fifo_as_dpkg_status_inhibits_instead_of_blocking() {
    let node = Node::with_synnefo(&["snf-astakos-app"]);
    std::fs::remove_file(node.path("/var/lib/dpkg/status")).unwrap();
    node.fifo("/var/lib/dpkg/status");
    let out = node.run_within(DEADLINE, &["check"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("'/var/lib/dpkg/status' is a FIFO (named pipe), not a regular file"),
        "{text}"
    );
    let out = node.run_within(DEADLINE, &["prepare"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
}

#[test]
fn a_fifo_drop_in_is_bad_input() {
    let node = Node::with_synnefo(&["snf-astakos-app"]);
    node.fifo("/etc/synnefo-upgrade/upgrade.d/50-x.toml");
    for args in [&["check"][..], &["prepare"], &["convert", "--dry-run"]] {
        let out = node.run_within(DEADLINE, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out)
                .contains("/etc/synnefo-upgrade/upgrade.d/50-x.toml: a FIFO, not a regular file"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    assert!(!node.path("/var/lib/synnefo-upgrade/state.json").exists());
}

#[test]
fn a_fifo_as_the_state_file_is_an_error_not_a_hang() {
    let node = Node::with_synnefo(&["snf-astakos-app"]);
    node.fifo("/var/lib/synnefo-upgrade/state.json");
    for args in [&["status"][..], &["prepare"], &["finish"]] {
        let out = node.run_within(DEADLINE, args);
        assert!(!out.status.success(), "{args:?}");
        assert!(
            stderr(&out).contains("'/var/lib/synnefo-upgrade/state.json' is a FIFO"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn a_fifo_as_the_sqlite_database_fails_the_backup_instead_of_blocking() {
    let node = Node::wheezy();
    node.write(
        "/etc/synnefo/10-snf-webproject-database.conf",
        "DATABASES = {'default': {'ENGINE': 'django.db.backends.sqlite3', 'NAME': '/srv/snf.sqlite'}}\n",
        0o640,
    );
    node.fifo("/srv/snf.sqlite");
    ok(&node, &["prepare"]);
    node.to_jessie();
    let out = node.run_within(DEADLINE, &["finish"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("'/srv/snf.sqlite' is a FIFO (named pipe), not a regular file"),
        "{}",
        stderr(&out)
    );
    assert_eq!(node.step("finish", "backups")["status"], "failed");
}
