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
        // debconf (postinst's question, postrm's purge) under DPKG_ROOT too:
        // its databases are the fixture's /var/cache/debconf.
        .env("DEBIAN_FRONTEND", "noninteractive")
        .env("DEBCONF_PACKAGE", "synnefo-upgrade-0.19")
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
    // debconf's own configuration, as every Debian system has it (under
    // DPKG_ROOT, debconf reads the root's).
    let conf = ["/etc/debconf.conf", "/usr/share/debconf/debconf.conf"]
        .iter()
        .find_map(|p| fs::read_to_string(p).ok())
        .expect("debconf installed (/etc/debconf.conf)");
    node.write("/etc/debconf.conf", &conf, 0o644);
    fs::create_dir_all(node.path("/var/cache/debconf")).unwrap();
    node
}

/// The tree without debconf's databases (the question's answer).
fn tree(node: &Node) -> std::collections::BTreeMap<std::path::PathBuf, String> {
    node.snapshot()
        .into_iter()
        .filter(|(p, _)| !p.starts_with("var/cache/debconf"))
        .collect()
}

/// debconf's question, as the package's installation meets it: preseeded
/// with `answer` (`None`: not preseeded: the default), then postinst
/// configure. Returns its stderr.
fn install(node: &Node, answer: Option<&str>) -> String {
    if let Some(answer) = answer {
        let mut set = Command::new("debconf-set-selections")
            .env("DPKG_ROOT", node.root())
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("debconf-set-selections (package debconf)");
        use std::io::Write;
        set.stdin
            .take()
            .unwrap()
            .write_all(
                format!("synnefo-upgrade-0.19 synnefo-upgrade-0.19/arm boolean {answer}\n")
                    .as_bytes(),
            )
            .unwrap();
        assert!(set.wait().unwrap().success());
    }
    let (out, err) = script(node, "postinst", &["configure", ""]);
    assert!(out.status.success(), "{err}");
    err
}

#[test]
fn debconf_arms_by_default_and_a_preseeded_no_installs_without_arming() {
    // Not preseeded, noninteractive: the default arms, as apt install always did.
    let node = armed_node();
    install(&node, None);
    assert_eq!(node.state_json()["phase"], "armed");
    assert!(node.masked("gunicorn.service"));

    // Preseeded to false (the playbook's unarmed install): nothing changes.
    let node = armed_node();
    let before = without_our_records(tree(&node));
    let err = install(&node, Some("false"));
    assert!(
        err.contains("debconf synnefo-upgrade-0.19/arm is false: installed, not armed"),
        "{err}"
    );
    assert!(!node.path("/var/lib/synnefo-upgrade/state.json").exists());
    assert_eq!(without_our_records(tree(&node)), before);
    // Purge forgets the answer: the next installation asks again (and arms).
    let (out, err) = script(&node, "postrm", &["purge"]);
    assert!(out.status.success(), "{err}");
    install(&node, None);
    assert_eq!(node.state_json()["phase"], "armed");

    // Preseeded to true: armed.
    let node = armed_node();
    install(&node, Some("true"));
    assert_eq!(node.state_json()["phase"], "armed");
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

/// Purge after `done` deletes no backup: the originals of the files the
/// upgrade changed (the wheezy APT sources) move beside the dumps.
#[test]
fn purge_after_done_keeps_the_originals_in_var_backups() {
    let node = armed_node();
    let original = fs::read(node.path("/etc/apt/sources.list")).unwrap();
    node.ok(&["prepare"]);
    node.to_jessie();
    node.ok(&["finish"]);
    assert_eq!(node.state_json()["phase"], "done");
    let (out, err) = script(&node, "postrm", &["purge"]);
    assert!(out.status.success(), "{err}");
    assert!(!node.path("/var/lib/synnefo-upgrade").exists());
    let kept: Vec<_> = fs::read_dir(node.path("/var/backups/synnefo-upgrade"))
        .expect("/var/backups/synnefo-upgrade")
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("originals-"))
        })
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    let name = kept[0].file_name().unwrap().to_string_lossy().into_owned();
    assert_eq!(
        fs::read(kept[0].join("etc/apt/sources.list")).unwrap(),
        original
    );
    assert!(
        err.contains(&format!(
            "the originals of the files the upgrade changed are kept in /var/backups/synnefo-upgrade/{name}"
        )),
        "{err}"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(node.path("/var/backups/synnefo-upgrade"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);
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
    let before = tree(&node);
    let (out, err) = script(&node, "postinst", &["configure", "0.1.0"]);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("its state is kept"), "{err}");
    assert_eq!(tree(&node), before);
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
    let armed = without_our_records(tree(&node));
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
    assert_eq!(without_our_records(tree(&node)), armed);
    let state = node.state_json();
    assert_eq!(state["phase"], "armed");
    assert_eq!(state["prepared_by"], "0.1.0");
    // And the node can still be taken back.
    node.ok(&["abort"]);
}
