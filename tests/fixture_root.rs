//! Fixture-root integration tests: whole `prepare` / `finish` runs of the real
//! binary on a fixture tree (`--root`), with a fake `snf-manage` inside the
//! tree, asserting the resulting tree byte for byte.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use synnefo_upgrade::plan::steps;
use synnefo_upgrade::state::PhaseKind;

const BIN: &str = env!("CARGO_BIN_EXE_synnefo-upgrade");

const SOURCES_LIST: &str = "\
# Debian wheezy
deb http://ftp.gr.debian.org/debian/ wheezy main contrib non-free
deb http://security.debian.org/ wheezy/updates main
# deb http://ftp.gr.debian.org/debian/ wheezy-proposed-updates main
deb-src http://ftp.gr.debian.org/debian/ wheezy-updates main
";
const GRNET_LIST: &str = "deb [trusted=yes] http://apt.dev.grnet.gr wheezy/\n";

/// A wheezy Synnefo node with gunicorn enabled and archipelago installed but not enabled.
fn wheezy_node() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    let write = |p: &str, content: &str, mode: u32| {
        let host = r.join(p.trim_start_matches('/'));
        fs::create_dir_all(host.parent().unwrap()).unwrap();
        fs::write(&host, content).unwrap();
        fs::set_permissions(&host, fs::Permissions::from_mode(mode)).unwrap();
    };
    write("/etc/os-release", "PRETTY_NAME=\"Debian GNU/Linux 7 (wheezy)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"7\"\nVERSION=\"7 (wheezy)\"\nID=debian\n", 0o644);
    write("/etc/debian_version", "7.11\n", 0o644);
    write("/etc/init.d/gunicorn", "#!/bin/sh\nexit 0\n", 0o755);
    write("/etc/init.d/archipelago", "#!/bin/sh\nexit 0\n", 0o755);
    write("/etc/apt/sources.list", SOURCES_LIST, 0o644);
    write("/etc/apt/sources.list.d/grnet.list", GRNET_LIST, 0o640);
    write(
        "/usr/bin/snf-manage",
        "#!/bin/sh\nroot=\"$(dirname \"$0\")/../..\"\necho \"$*\" >> \"$root/var/log/snf-manage.calls\"\necho \"Operations to perform: ...\"\necho \"Running migrations: OK\" >&2\n",
        0o755,
    );
    fs::create_dir_all(r.join("var/log")).unwrap();
    fs::create_dir_all(r.join("etc/rc2.d")).unwrap();
    symlink("../init.d/gunicorn", r.join("etc/rc2.d/S02gunicorn")).unwrap();
    dir
}

fn to_jessie(root: &Path) {
    fs::write(
        root.join("etc/os-release"),
        "PRETTY_NAME=\"Debian GNU/Linux 8 (jessie)\"\nVERSION_ID=\"8\"\nVERSION=\"8 (jessie)\"\nID=debian\n",
    )
    .unwrap();
}

fn run(root: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(BIN)
        .arg("--root")
        .arg(root)
        .args(args)
        .env_remove("FAILPOINTS")
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

fn ok(root: &Path, args: &[&str]) -> Output {
    let out = run(root, args, &[]);
    assert!(
        out.status.success(),
        "{args:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Every file, link and directory under `root` with its content, target and mode;
/// our own records with timestamps (state, ledger, lock) are left out.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, String>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path.strip_prefix(root).unwrap().to_path_buf();
            if [
                "var/lib/synnefo-upgrade/state.json",
                "var/lib/synnefo-upgrade/lock",
                "var/lib/synnefo-upgrade/denied-actions.log",
            ]
            .iter()
            .any(|skip| rel == Path::new(skip))
            {
                continue;
            }
            let meta = fs::symlink_metadata(&path).unwrap();
            let mode = meta.permissions().mode() & 0o7777;
            if meta.file_type().is_symlink() {
                out.insert(
                    rel,
                    format!("link -> {}", fs::read_link(&path).unwrap().display()),
                );
            } else if meta.is_dir() {
                out.insert(rel.clone(), format!("dir {mode:o}"));
                walk(root, &path, out);
            } else {
                out.insert(
                    rel,
                    format!(
                        "file {mode:o} {}",
                        String::from_utf8_lossy(&fs::read(&path).unwrap())
                    ),
                );
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn state_json(root: &Path) -> serde_json::Value {
    serde_json::from_slice(&fs::read(root.join("var/lib/synnefo-upgrade/state.json")).unwrap())
        .unwrap()
}

#[test]
fn prepare_arms_the_node_offline() {
    let node = wheezy_node();
    let r = node.path();
    ok(r, &["prepare"]);

    assert_eq!(
        fs::read_link(r.join("etc/systemd/system/gunicorn.service")).unwrap(),
        Path::new("/dev/null")
    );
    assert_eq!(
        fs::read_link(r.join("etc/systemd/system/archipelago.service")).unwrap(),
        Path::new("/dev/null")
    );
    assert_eq!(
        fs::read_link(r.join("usr/sbin/policy-rc.d")).unwrap(),
        Path::new("/usr/sbin/synnefo-upgrade")
    );
    assert_eq!(
        fs::read_link(
            r.join("etc/systemd/system/multi-user.target.wants/synnefo-upgrade-finish.service")
        )
        .unwrap(),
        Path::new("/lib/systemd/system/synnefo-upgrade-finish.service")
    );
    assert!(r.join("var/lib/synnefo-upgrade/armed").is_file());
    assert_eq!(
        fs::read_to_string(r.join("etc/apt/sources.list")).unwrap(),
        SOURCES_LIST
            .replace(" wheezy main contrib", " jessie main contrib")
            .replace("wheezy/updates", "jessie/updates")
            .replace(
                "deb-src http://ftp.gr.debian.org/debian/ wheezy-updates",
                "deb-src http://ftp.gr.debian.org/debian/ jessie-updates"
            )
    );
    assert_eq!(
        fs::read_to_string(r.join("etc/apt/sources.list.d/grnet.list")).unwrap(),
        GRNET_LIST.replace("wheezy/", "jessie/")
    );
    // Backups are the originals, mode kept.
    let backup = r.join("var/lib/synnefo-upgrade/backups/etc/apt/sources.list.d/grnet.list");
    assert_eq!(fs::read_to_string(&backup).unwrap(), GRNET_LIST);
    assert_eq!(
        fs::metadata(&backup).unwrap().permissions().mode() & 0o777,
        0o640
    );
    assert_eq!(
        fs::metadata(r.join("etc/apt/sources.list.d/grnet.list"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o640
    );
    assert_eq!(
        fs::metadata(r.join("var/lib/synnefo-upgrade"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o700
    );

    let state = state_json(r);
    assert_eq!(state["phase"], "armed");
    let services: Vec<(String, bool)> = state["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_string(),
                s["was_active"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        services,
        [
            ("gunicorn".to_string(), true),
            ("archipelago".to_string(), false)
        ]
    );

    // A second prepare on an armed node changes nothing.
    let before = snapshot(r);
    ok(r, &["prepare"]);
    assert_eq!(snapshot(r), before);
}

#[test]
fn policy_rcd_denies_managed_starts_in_both_forms_and_records_them() {
    let node = wheezy_node();
    let r = node.path();
    // Not armed: everything is allowed.
    assert_eq!(
        run(r, &["policy-rc.d", "gunicorn", "start"], &[])
            .status
            .code(),
        Some(0)
    );
    ok(r, &["prepare"]);
    let code = |args: &[&str]| {
        let mut all = vec!["policy-rc.d"];
        all.extend_from_slice(args);
        run(r, &all, &[]).status.code()
    };
    assert_eq!(code(&["gunicorn", "start"]), Some(101));
    assert_eq!(code(&["--quiet", "gunicorn.service", "restart"]), Some(101));
    assert_eq!(code(&["gunicorn", "(start)", "2"]), Some(101));
    assert_eq!(code(&["gunicorn", "stop"]), Some(0));
    assert_eq!(code(&["gunicorn", "status"]), Some(0));
    assert_eq!(code(&["cron", "start"]), Some(0));
    assert_eq!(code(&["cron.service", "restart"]), Some(0));
    assert_eq!(code(&["gunicorn"]), Some(103));
    let ledger = fs::read_to_string(r.join("var/lib/synnefo-upgrade/denied-actions.log")).unwrap();
    let lines: Vec<&str> = ledger.lines().collect();
    assert_eq!(lines.len(), 3, "{ledger}");
    assert!(lines[0].ends_with(" gunicorn start -"), "{ledger}");
    assert!(lines[2].ends_with(" gunicorn start 2"), "{ledger}");
}

#[test]
fn finish_after_prepare_converges_and_migrates_once() {
    let node = wheezy_node();
    let r = node.path();
    let original = snapshot(r);
    ok(r, &["prepare"]);
    to_jessie(r);
    ok(r, &["finish"]);

    assert_eq!(
        fs::read_to_string(r.join("var/log/snf-manage.calls")).unwrap(),
        "migrate --noinput\n"
    );
    for gone in [
        "etc/systemd/system/gunicorn.service",
        "etc/systemd/system/archipelago.service",
        "usr/sbin/policy-rc.d",
        "etc/systemd/system/multi-user.target.wants/synnefo-upgrade-finish.service",
        "var/lib/synnefo-upgrade/armed",
    ] {
        assert!(
            fs::symlink_metadata(r.join(gone)).is_err(),
            "{gone} should be gone"
        );
    }
    let state = state_json(r);
    assert_eq!(state["phase"], "done");
    let finish_steps: Vec<&str> = state["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["phase"] == "finish")
        .map(|s| s["status"].as_str().unwrap())
        .collect();
    assert_eq!(finish_steps.len(), steps(PhaseKind::Finish).len());
    assert!(
        finish_steps.iter().all(|s| *s == "done"),
        "{finish_steps:?}"
    );

    // Apart from the conversion (sources), the tree is back as it was.
    let after = snapshot(r);
    let changed: Vec<&PathBuf> = original
        .keys()
        .filter(|k| original.get(*k) != after.get(*k))
        .collect();
    assert_eq!(
        changed,
        [
            Path::new("etc/apt/sources.list"),
            Path::new("etc/apt/sources.list.d/grnet.list"),
            Path::new("etc/os-release")
        ],
    );

    // Running finish again does nothing, migrates nothing.
    ok(r, &["finish"]);
    assert_eq!(snapshot(r), after);
}

#[test]
fn dry_runs_and_check_write_nothing() {
    let node = wheezy_node();
    let r = node.path();
    let before = snapshot(r);
    let out = ok(r, &["prepare", "--dry-run"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("prepare: stop-services: would run"), "{text}");
    ok(r, &["check"]);
    ok(r, &["check", "--json"]);
    ok(r, &["status"]);
    assert_eq!(snapshot(r), before);
    assert!(!r.join("var/lib/synnefo-upgrade").exists());
}

#[test]
fn wrong_release_is_inhibited_and_changes_nothing() {
    let node = wheezy_node();
    let r = node.path();
    to_jessie(r);
    let before = snapshot(r);
    let out = run(r, &["check"], &[]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stdout).contains("the OS is 'jessie', not 'wheezy'"));
    let out = run(r, &["prepare"], &[]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(snapshot(r), before);
}

#[test]
fn bad_configuration_exits_2_naming_file_and_line() {
    let node = wheezy_node();
    let r = node.path();
    fs::create_dir_all(r.join("etc/synnefo-upgrade")).unwrap();
    fs::write(
        r.join("etc/synnefo-upgrade/upgrade.toml"),
        "[release]\nos_from = \"wheezy\"\n\n[migrations]\nrun = \"yes\"\n",
    )
    .unwrap();
    let before = snapshot(r);
    let out = run(r, &["prepare"], &[]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("/etc/synnefo-upgrade/upgrade.toml:5:"),
        "{stderr}"
    );
    assert_eq!(snapshot(r), before);
}

#[test]
fn failed_migration_stops_finish_and_a_rerun_resumes() {
    let node = wheezy_node();
    let r = node.path();
    ok(r, &["prepare"]);
    to_jessie(r);
    let fake = r.join("usr/bin/snf-manage");
    let working = fs::read_to_string(&fake).unwrap();
    fs::write(&fake, "#!/bin/sh\necho 'django.db.utils.OperationalError: could not connect to server' >&2\nexit 1\n").unwrap();
    let out = run(r, &["finish"], &[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("could not connect to server"),
        "output streamed: {stderr}"
    );
    assert!(stderr.contains("step 'migrate' failed"), "{stderr}");
    // The safe state: still masked, policy-rc.d in place, still armed.
    assert!(r.join("var/lib/synnefo-upgrade/armed").exists());
    assert_eq!(
        fs::read_link(r.join("etc/systemd/system/gunicorn.service")).unwrap(),
        Path::new("/dev/null")
    );
    assert_eq!(state_json(r)["phase"], "finishing");
    let status = String::from_utf8_lossy(&ok(r, &["status", "--json"]).stdout).to_string();
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    let migrate = status["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "migrate")
        .unwrap()
        .clone();
    assert_eq!(migrate["status"], "failed");

    fs::write(&fake, working).unwrap();
    ok(r, &["finish"]);
    assert_eq!(
        fs::read_to_string(r.join("var/log/snf-manage.calls")).unwrap(),
        "migrate --noinput\n"
    );
    assert_eq!(state_json(r)["phase"], "done");
}

/// A crash (panic = abort) after any step of either phase, then a rerun, ends
/// in the same tree as an uninterrupted run, with migrations run once.
#[test]
fn crash_after_every_step_then_rerun_converges() {
    let reference = {
        let node = wheezy_node();
        ok(node.path(), &["prepare"]);
        to_jessie(node.path());
        ok(node.path(), &["finish"]);
        snapshot(node.path())
    };
    for phase in [PhaseKind::Prepare, PhaseKind::Finish] {
        for step in steps(phase) {
            let failpoint = format!("{}-after-{}", phase.name(), step.id());
            let node = wheezy_node();
            let r = node.path();
            let crash = format!("{failpoint}=panic");
            if phase == PhaseKind::Finish {
                ok(r, &["prepare"]);
                to_jessie(r);
            }
            let out = run(r, &[phase.name()], &[("FAILPOINTS", &crash)]);
            assert!(!out.status.success(), "{failpoint} did not crash");
            if phase == PhaseKind::Prepare {
                ok(r, &["prepare"]);
                to_jessie(r);
            }
            ok(r, &["finish"]);
            assert_eq!(snapshot(r), reference, "after a crash at {failpoint}");
            assert_eq!(state_json(r)["phase"], "done", "{failpoint}");
        }
    }
}
