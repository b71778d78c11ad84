//! Fixture-root integration tests: whole `prepare` / `finish` runs of the real
//! binary on a fixture tree (`--root`), with a fake `snf-manage` inside the
//! tree, asserting the resulting tree byte for byte.

mod common;

use common::{Node, GRNET_LIST, SOURCES_LIST};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use synnefo_upgrade::base::state::PhaseKind;
use synnefo_upgrade::phases::plan::steps;

#[test]
fn prepare_arms_the_node_offline() {
    let node = Node::wheezy();
    let r = node.root();
    node.ok(&["prepare"]);

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

    let state = node.state_json();
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
    let before = node.snapshot();
    node.ok(&["prepare"]);
    assert_eq!(node.snapshot(), before);
}

#[test]
fn policy_rcd_denies_managed_starts_in_both_forms_and_records_them() {
    let node = Node::wheezy();
    let r = node.root();
    // Not armed: everything is allowed.
    assert_eq!(
        node.run(&["policy-rc.d", "gunicorn", "start"], &[])
            .status
            .code(),
        Some(0)
    );
    node.ok(&["prepare"]);
    let code = |args: &[&str]| {
        let mut all = vec!["policy-rc.d"];
        all.extend_from_slice(args);
        node.run(&all, &[]).status.code()
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
    let node = Node::wheezy();
    let r = node.root();
    let original = node.snapshot();
    node.ok(&["prepare"]);
    node.to_jessie();
    node.ok(&["finish"]);

    assert_eq!(node.calls(), "migrate --noinput\n");
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
    let state = node.state_json();
    assert_eq!(state["phase"], "done");
    let finish_steps: Vec<(&str, &str)> = state["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["phase"] == "finish")
        .map(|s| (s["id"].as_str().unwrap(), s["status"].as_str().unwrap()))
        .collect();
    assert_eq!(finish_steps.len(), steps(PhaseKind::Finish).len());
    // Role-bound steps do not apply to this node (no Cyclades, no Astakos, no
    // [[health]], no apache2).
    let skipped = [
        "fix-ip-history",
        "register-cyclades",
        "restart-apache",
        "health-checks",
    ];
    for (id, status) in &finish_steps {
        let want = if skipped.contains(id) {
            "skipped"
        } else {
            "done"
        };
        assert_eq!(*status, want, "{id}: {finish_steps:?}");
    }

    // Apart from the sources switch and the dist-upgrade itself (os-release,
    // dpkg status), the tree is back as it was.
    let after = node.snapshot();
    let changed: Vec<&PathBuf> = original
        .keys()
        .filter(|k| original.get(*k) != after.get(*k))
        .collect();
    assert_eq!(
        changed,
        [
            Path::new("etc/apt/sources.list"),
            Path::new("etc/apt/sources.list.d/grnet.list"),
            Path::new("etc/os-release"),
            Path::new("var/lib/dpkg/status"),
        ],
    );

    // Running finish again does nothing, migrates nothing; nor does prepare
    // (as when a later version of the package is installed on the upgraded node).
    node.ok(&["finish"]);
    node.ok(&["prepare"]);
    assert_eq!(node.snapshot(), after);
}

#[test]
fn dry_runs_and_check_write_nothing() {
    let node = Node::wheezy();
    let r = node.root();
    let before = node.snapshot();
    let out = node.ok(&["prepare", "--dry-run"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("prepare: stop-services: would run"), "{text}");
    node.ok(&["status"]);
    assert_eq!(node.snapshot(), before);
    assert!(!r.join("var/lib/synnefo-upgrade").exists());

    // check keeps its report (0600 in the 0700 state directory) and writes
    // nothing else; status shows it.
    node.ok(&["check"]);
    node.ok(&["check", "--json"]);
    assert_eq!(
        common::without_our_records(node.snapshot()),
        common::without_our_records(before)
    );
    let kept = r.join("var/lib/synnefo-upgrade/check.json");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        fs::metadata(&kept).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        fs::metadata(r.join("var/lib/synnefo-upgrade"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o700
    );
    let saved: serde_json::Value = serde_json::from_slice(&fs::read(&kept).unwrap()).unwrap();
    let status: serde_json::Value =
        serde_json::from_slice(&node.ok(&["status", "--json"]).stdout).unwrap();
    assert_eq!(status["last_check"], saved);
    assert_eq!(saved["tool_version"], env!("CARGO_PKG_VERSION"));
    assert!(
        saved["checked_at"].as_str().unwrap().ends_with('Z'),
        "{saved}"
    );
    let text = String::from_utf8_lossy(&node.ok(&["status"]).stdout).into_owned();
    let line = format!(
        "last check: {} (synnefo-upgrade {}): inhibitors: none; warnings: none",
        saved["checked_at"].as_str().unwrap(),
        env!("CARGO_PKG_VERSION")
    );
    assert!(text.contains(&line), "{text}");
}

#[test]
fn check_no_save_keeps_nothing_and_the_last_report_stays() {
    let node = Node::wheezy();
    let before = node.snapshot();
    node.ok(&["check", "--json", "--no-save"]);
    assert_eq!(node.snapshot(), before, "--no-save writes nothing");
    node.ok(&["check"]);
    let kept = fs::read(node.path("/var/lib/synnefo-upgrade/check.json")).unwrap();
    node.to_jessie();
    assert_eq!(
        node.run(&["check", "--no-save"], &[]).status.code(),
        Some(3)
    );
    assert_eq!(
        fs::read(node.path("/var/lib/synnefo-upgrade/check.json")).unwrap(),
        kept,
        "the last kept report stays"
    );
}

#[test]
fn status_shows_the_last_check_and_none_before_one() {
    let node = Node::wheezy();
    let status: serde_json::Value =
        serde_json::from_slice(&node.ok(&["status", "--json"]).stdout).unwrap();
    assert!(status["last_check"].is_null(), "{status}");
    let text = String::from_utf8_lossy(&node.ok(&["status"]).stdout).into_owned();
    assert!(
        text.contains("last check: none kept (run 'synnefo-upgrade check')"),
        "{text}"
    );

    // An inhibitor is named by id; a later check replaces the report.
    node.to_jessie();
    assert_eq!(node.run(&["check"], &[]).status.code(), Some(3));
    let status: serde_json::Value =
        serde_json::from_slice(&node.ok(&["status", "--json"]).stdout).unwrap();
    let inhibitors: Vec<&str> = status["last_check"]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["inhibitor"] == true)
        .map(|f| f["id"].as_str().unwrap())
        .collect();
    assert!(inhibitors.contains(&"os-release"), "{inhibitors:?}");
    let text = String::from_utf8_lossy(&node.ok(&["status"]).stdout).into_owned();
    assert!(
        text.contains("inhibitors: os-release, synnefo-version; warnings: none"),
        "{text}"
    );

    // A report that is not JSON: status says so and goes on.
    fs::write(node.path("/var/lib/synnefo-upgrade/check.json"), "{").unwrap();
    let out = node.ok(&["status", "--json"]);
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(status["last_check"].is_null());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("/var/lib/synnefo-upgrade/check.json"),
        "{stderr}"
    );
}

#[test]
fn wrong_release_is_inhibited_and_changes_nothing() {
    let node = Node::wheezy();
    node.to_jessie();
    let before = node.snapshot();
    let out = node.run(&["check"], &[]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stdout).contains("the OS is 'jessie', not 'wheezy'"));
    // check keeps its report; prepare adds nothing to it.
    let checked = node.snapshot();
    assert_eq!(
        common::without_our_records(checked.clone()),
        common::without_our_records(before)
    );
    let out = node.run(&["prepare"], &[]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(node.snapshot(), checked);
}

#[test]
fn bad_configuration_exits_2_naming_file_and_line() {
    let node = Node::wheezy();
    let r = node.root();
    fs::create_dir_all(r.join("etc/synnefo-upgrade")).unwrap();
    fs::write(
        r.join("etc/synnefo-upgrade/upgrade.toml"),
        "[release]\nos_from = \"wheezy\"\n\n[migrations]\nrun = \"yes\"\n",
    )
    .unwrap();
    let before = node.snapshot();
    let out = node.run(&["prepare"], &[]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("/etc/synnefo-upgrade/upgrade.toml:5:"),
        "{stderr}"
    );
    assert_eq!(node.snapshot(), before);
}

/// Runs the binary on `node` from working directory `cwd`; a run that has not
/// ended after 20 s (blocked on a FIFO, say) is killed and fails the test.
fn run_in(node: &Node, cwd: &Path, args: &[&str]) -> std::process::Output {
    let mut child = std::process::Command::new(common::BIN)
        .arg("--root")
        .arg(node.root())
        .args(args)
        .current_dir(cwd)
        .env_remove("FAILPOINTS")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            panic!("{args:?} still runs after 20 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn config_option_is_a_host_path_relative_to_the_working_directory_and_must_exist() {
    let node = Node::wheezy();
    let cwd = tempfile::tempdir().unwrap();
    // The same relative name under the root says otherwise: not the one read.
    node.write("/op.toml", "[release]\nos_from = \"wheezy\"\n", 0o644);
    fs::write(
        cwd.path().join("op.toml"),
        "[release]\nos_from = \"jessie\"\n",
    )
    .unwrap();
    let before = node.snapshot();
    let out = run_in(&node, cwd.path(), &["--config", "op.toml", "check"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stdout).contains("the OS is 'wheezy', not 'jessie'"));
    let out = run_in(&node, cwd.path(), &["prepare", "--config", "op.toml"]);
    assert_eq!(out.status.code(), Some(3));
    // Missing: refused (it used to mean the defaults, [migrations] run = true).
    for missing in ["missing.toml", "/nonexistent/upgrade.toml"] {
        let out = run_in(&node, cwd.path(), &["--config", missing, "prepare"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains(&format!("--config '{missing}': no such file")),
            "{stderr}"
        );
    }
    fs::create_dir(cwd.path().join("dir.toml")).unwrap();
    let out = run_in(&node, cwd.path(), &["--config", "dir.toml", "check"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("dir.toml: a directory, not a regular file")
    );
    // The check that ran kept its report, nothing else.
    assert_eq!(
        common::without_our_records(node.snapshot()),
        common::without_our_records(before)
    );
}

#[test]
fn every_bad_dropin_exits_2_naming_it_and_changes_nothing() {
    let node = Node::wheezy();
    let dropins = node.path("/etc/synnefo-upgrade/upgrade.d");
    fs::create_dir_all(&dropins).unwrap();
    let fifo = |path: &Path| {
        nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap()
    };
    type Make<'a> = &'a dyn Fn(&Path);
    let cases: [(&str, Make, &str); 5] = [
        (
            "10-dir.toml",
            &|p| fs::create_dir(p).unwrap(),
            "a directory, not a regular file",
        ),
        (
            "20-gone.toml",
            &|p| std::os::unix::fs::symlink("/etc/nowhere.toml", p).unwrap(),
            "a symbolic link to '/etc/nowhere.toml', which does not exist",
        ),
        ("30-fifo.toml", &fifo, "a FIFO, not a regular file"),
        (
            "40-latin1.toml",
            &|p| fs::write(p, b"# caf\xe9\n").unwrap(),
            ":1: not UTF-8",
        ),
        (
            "50-bad.toml",
            &|p| fs::write(p, "[release\n").unwrap(),
            ":1:",
        ),
    ];
    for (name, make, says) in cases {
        let path = dropins.join(name);
        // Taken without the entry: reading a FIFO would block the snapshot.
        let before = node.snapshot();
        make(&path);
        for command in ["check", "prepare", "convert"] {
            let out = run_in(&node, node.root(), &[command]);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{name}, {command}: {stderr}");
            assert!(
                stderr.contains(&format!("/etc/synnefo-upgrade/upgrade.d/{name}{says}"))
                    || stderr.contains(&format!("/etc/synnefo-upgrade/upgrade.d/{name}: {says}")),
                "{name}, {command}: {stderr}"
            );
        }
        if path.is_dir() {
            fs::remove_dir(&path).unwrap();
        } else {
            fs::remove_file(&path).unwrap();
        }
        assert_eq!(node.snapshot(), before, "{name}");
    }
    // A main file that is a dangling link is not "no file": it is refused too.
    std::os::unix::fs::symlink("gone.toml", node.path("/etc/synnefo-upgrade/upgrade.toml"))
        .unwrap();
    let out = run_in(&node, node.root(), &["check"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains(
        "/etc/synnefo-upgrade/upgrade.toml: a symbolic link to '/etc/synnefo-upgrade/gone.toml', which does not exist"
    ));
}

#[test]
fn failed_migration_stops_finish_and_a_rerun_resumes() {
    let node = Node::wheezy();
    let r = node.root();
    node.ok(&["prepare"]);
    node.to_jessie();
    let fake = r.join("usr/bin/snf-manage");
    let working = fs::read_to_string(&fake).unwrap();
    fs::write(&fake, "#!/bin/sh\necho 'django.db.utils.ProgrammingError: relation \"db_vm\" already exists' >&2\nexit 1\n").unwrap();
    let out = node.run(&["finish"], &[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("relation \"db_vm\" already exists"),
        "output streamed: {stderr}"
    );
    assert_eq!(
        stderr.matches("already exists").count(),
        1,
        "a real error is not retried: {stderr}"
    );
    assert!(stderr.contains("step 'migrate' failed"), "{stderr}");
    // The safe state: still masked, policy-rc.d in place, still armed.
    assert!(r.join("var/lib/synnefo-upgrade/armed").exists());
    assert_eq!(
        fs::read_link(r.join("etc/systemd/system/gunicorn.service")).unwrap(),
        Path::new("/dev/null")
    );
    assert_eq!(node.state_json()["phase"], "finishing");
    let status = String::from_utf8_lossy(&node.ok(&["status", "--json"]).stdout).to_string();
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    let migrate = common::step_record(&status, "finish", "migrate");
    assert_eq!(migrate["status"], "failed");

    fs::write(&fake, working).unwrap();
    node.ok(&["finish"]);
    assert_eq!(node.calls(), "migrate --noinput\n");
    assert_eq!(node.state_json()["phase"], "done");
}

/// A crash (panic = abort) after any step of either phase, then a rerun, ends
/// in the same tree as an uninterrupted run, with migrations run once.
#[test]
fn crash_after_every_step_then_rerun_converges() {
    let reference = {
        let node = Node::wheezy();
        node.ok(&["prepare"]);
        node.to_jessie();
        node.ok(&["finish"]);
        node.snapshot()
    };
    for phase in [PhaseKind::Prepare, PhaseKind::Finish] {
        for step in steps(phase) {
            let failpoint = format!("{}-after-{}", phase.name(), step.id);
            let node = Node::wheezy();
            let crash = format!("{failpoint}=panic");
            if phase == PhaseKind::Finish {
                node.ok(&["prepare"]);
                node.to_jessie();
            }
            let out = node.run(&[phase.name()], &[("FAILPOINTS", &crash)]);
            if out.status.success() {
                // Only steps that ran (and so may have changed something) have a crash point.
                assert_eq!(
                    node.step(phase.name(), step.id)["status"],
                    "skipped",
                    "{failpoint} did not crash"
                );
                continue;
            }
            if phase == PhaseKind::Prepare {
                node.ok(&["prepare"]);
                node.to_jessie();
            }
            node.ok(&["finish"]);
            assert_eq!(node.snapshot(), reference, "after a crash at {failpoint}");
            assert_eq!(node.state_json()["phase"], "done", "{failpoint}");
        }
    }
}

#[test]
fn prepare_download_fetches_from_the_new_sources_before_stopping_services() {
    let node = Node::wheezy();
    node.write(
        "/usr/bin/apt-get",
        "#!/bin/sh\nroot=\"$(dirname \"$0\")/../..\"\necho \"$* | $(grep -c jessie \"$root/etc/apt/sources.list\") jessie lines\" >> \"$root/var/log/apt-get.calls\"\n",
        0o755,
    );
    node.ok(&["prepare", "--download"]);
    assert_eq!(
        fs::read_to_string(node.path("/var/log/apt-get.calls")).unwrap(),
        "update | 3 jessie lines\n-y --download-only dist-upgrade | 3 jessie lines\n"
    );
    let ids: Vec<String> = node.state_json()["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    let at = |id: &str| ids.iter().position(|s| s == id).unwrap();
    assert!(at("download") < at("stop-services"), "{ids:?}");

    // abort reads APT's lists again from the restored sources (no jessie
    // line left), once the services run again.
    node.ok(&["abort"]);
    let calls = fs::read_to_string(node.path("/var/log/apt-get.calls")).unwrap();
    assert!(
        calls.ends_with("dist-upgrade | 3 jessie lines\nupdate | 0 jessie lines\n"),
        "{calls}"
    );
    let refresh = node.step("abort", "refresh-apt-lists");
    assert_eq!(refresh["status"], "done");
    assert!(refresh["message"]
        .as_str()
        .unwrap()
        .contains("no longer describe the new release"));

    // Without --download the step is skipped, and abort runs no apt-get.
    let plain = Node::wheezy();
    plain.write(
        "/usr/bin/apt-get",
        "#!/bin/sh\nroot=\"$(dirname \"$0\")/../..\"\necho \"$*\" >> \"$root/var/log/apt-get.calls\"\n",
        0o755,
    );
    plain.ok(&["prepare"]);
    let download = plain.step("prepare", "download");
    assert_eq!(download["status"], "skipped");
    plain.ok(&["abort"]);
    assert_eq!(
        plain.step("abort", "refresh-apt-lists")["status"],
        "skipped"
    );
    assert!(!plain.path("/var/log/apt-get.calls").exists());
}

#[test]
fn migrate_is_retried_while_the_database_is_unreachable_then_gives_up() {
    let node = Node::wheezy();
    node.write(
        "/etc/synnefo-upgrade/upgrade.toml",
        "[migrations]\nretry_seconds = 2\n",
        0o644,
    );
    node.ok(&["prepare"]);
    node.to_jessie();
    // Unreachable twice (PostgreSQL still starting), then it works.
    node.fake_snf_manage(
        "n=$(grep -c migrate \"$root/var/log/snf-manage.calls\")\n\
         if [ \"$n\" -le 2 ]; then echo 'OperationalError: could not connect to server: Connection refused' >&2; exit 1; fi\n\
         echo 'Running migrations: OK'\n",
    );
    let fast = [("SYNNEFO_UPGRADE_RETRY_PAUSE_MS", "100")];
    let out = node.run(&["finish"], &fast);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(node.calls().lines().count(), 3);
    let migrate = node.step("finish", "migrate");
    assert!(
        migrate["message"].as_str().unwrap().contains("attempt 3"),
        "{migrate}"
    );

    // A database that never comes back: bounded, then the step fails.
    let node = Node::wheezy();
    node.write(
        "/etc/synnefo-upgrade/upgrade.toml",
        "[migrations]\nretry_seconds = 1\n",
        0o644,
    );
    node.ok(&["prepare"]);
    node.to_jessie();
    node.write(
        "/usr/bin/snf-manage",
        "#!/bin/sh\necho 'could not connect to server' >&2\nexit 1\n",
        0o755,
    );
    let out = node.run(&["finish"], &fast);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("the database stayed unreachable"));
}

#[test]
fn a_node_that_does_not_migrate_waits_for_the_one_that_does() {
    let node = Node::wheezy();
    node.write(
        "/etc/synnefo-upgrade/upgrade.toml",
        "[migrations]\nrun = false\nwait_seconds = 30\n",
        0o644,
    );
    node.ok(&["prepare"]);
    node.to_jessie();
    // The other node finishes after two polls.
    node.fake_snf_manage(
        "echo db\necho ' [X] 0001_initial'\n\
         if [ $(wc -l < \"$root/var/log/snf-manage.calls\") -le 2 ]; then echo ' [ ] 0002_ipaddresshistory'; else echo ' [X] 0002_ipaddresshistory'; fi\n",
    );
    let out = node.run(&["finish"], &[("SYNNEFO_UPGRADE_RETRY_PAUSE_MS", "100")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        node.calls(),
        "migrate --list\nmigrate --list\nmigrate --list\n"
    );
    // No backup where migrations do not run.
    assert!(!node.path("/var/backups/synnefo-upgrade").exists());
}

#[test]
fn prepare_evaluates_its_preflight_once_and_the_step_records_that_result() {
    // A fresh node: the runner checks for inhibitors before writing anything,
    // and the `preflight` step stands on that same evaluation.
    let node = Node::wheezy();
    let out = node.ok(&["-v", "prepare"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.matches("preflight evaluated:").count(),
        1,
        "{stderr}"
    );
    // The findings of a wheezy node, in the one evaluation.
    assert!(stderr.contains("kamaki"), "{stderr}");
    let preflight = node.step("prepare", "preflight");
    assert_eq!(preflight["status"], "done");
    assert_eq!(preflight["message"], "no inhibitor");

    // A prepare resumed after a crash in the preflight step evaluates it (once) in the step.
    let node = Node::wheezy();
    let out = node.run(
        &["prepare"],
        &[("FAILPOINTS", "prepare-after-preflight=panic")],
    );
    assert!(!out.status.success());
    let mut state = node.state_json();
    state["steps"][0]["status"] = "started".into();
    node.write(
        "/var/lib/synnefo-upgrade/state.json",
        &serde_json::to_string(&state).unwrap(),
        0o644,
    );
    let out = node.ok(&["-v", "prepare"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.matches("preflight evaluated:").count(),
        1,
        "{stderr}"
    );
    assert!(stderr.contains("prepare: preflight: done"), "{stderr}");
}
