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
    writeln!(
        lock,
        "{} /usr/sbin/synnefo-upgrade finish",
        std::process::id()
    )
    .unwrap();
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

// ---- A full disk during the backups --------------------------------------

const PG_SETTINGS: &str = "DATABASES = {'default': {'ENGINE': 'django.db.backends.postgresql_psycopg2', 'NAME': 'snf_apps', 'USER': 'synnefo', 'PASSWORD': 'pw', 'HOST': '127.0.0.1', 'PORT': '5432'}}\n";

/// A fake pg_dump inside the fixture root: records its arguments and
/// `PGPASSWORD`, then writes `bytes` bytes of dump.
fn fake_pg_dump(node: &Node, bytes: u64) {
    node.write(
        "/usr/bin/pg_dump",
        &format!("#!/bin/sh\nroot=\"$(dirname \"$0\")/../..\"\necho \"$* PGPASSWORD=$PGPASSWORD\" >> \"$root/var/log/pg_dump.calls\"\nhead -c {bytes} /dev/zero\n"),
        0o755,
    );
}

/// Runs `finish` with the node's /var/backups on a 1 MiB tmpfs (in a private
/// mount namespace), and returns its output and a listing of what was left
/// in the backups directory before the tmpfs went away. `None` (test
/// skipped) when this host cannot mount one.
fn finish_on_a_small_disk(node: &Node) -> Option<(std::process::Output, String)> {
    fs::create_dir_all(node.path("/var/backups")).unwrap();
    let listing = node.root().with_file_name(format!(
        "{}.listing",
        node.root().file_name().unwrap().to_string_lossy()
    ));
    let script = r#"mount -t tmpfs -o size=1m tmpfs "$1" || exit 200
"$2" --root "$3" finish; rc=$?
ls -A "$1/synnefo-upgrade" > "$4" 2>&1
exit $rc"#;
    let out = std::process::Command::new("unshare")
        .args(["-m", "sh", "-c", script, "sh"])
        .arg(node.path("/var/backups"))
        .arg(common::BIN)
        .arg(node.root())
        .arg(&listing)
        .env_remove("FAILPOINTS")
        .output()
        .ok()?;
    if out.status.code() == Some(200)
        || String::from_utf8_lossy(&out.stderr).contains("unshare failed")
    {
        eprintln!(
            "SKIPPED: cannot mount a tmpfs in a private mount namespace here (needs root): {}",
            stderr(&out)
        );
        return None;
    }
    let left = fs::read_to_string(&listing).unwrap_or_default();
    let _ = fs::remove_file(&listing);
    Some((out, left))
}

/// Arms `node`, takes it through the dist-upgrade and runs `finish` on a
/// small disk, which must fail (exit 1): its stderr, and what was left in
/// the backups directory. `None` when the host cannot mount a tmpfs.
fn failed_finish_on_a_small_disk(node: &Node) -> Option<(String, String)> {
    node.ok(&["prepare"]);
    node.to_jessie();
    let (out, left) = finish_on_a_small_disk(node)?;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(is_masked(node), "the services stay masked");
    assert_eq!(node.state_json()["phase"], "finishing");
    Some((stderr(&out), left))
}

fn is_masked(node: &Node) -> bool {
    fs::read_link(node.path("/etc/systemd/system/gunicorn.service"))
        .is_ok_and(|t| t == std::path::Path::new("/dev/null"))
}

#[test]
fn a_disk_that_fills_during_the_dump_fails_the_step_with_the_path_and_leaves_no_partial_dump() {
    let node = Node::wheezy();
    node.write(
        "/etc/synnefo/10-snf-webproject-database.conf",
        PG_SETTINGS,
        0o640,
    );
    fake_pg_dump(&node, 3 << 20);
    let Some((err, left)) = failed_finish_on_a_small_disk(&node) else {
        return;
    };
    assert!(
        err.contains("'/var/backups/synnefo-upgrade/database.dump' needs more than")
            && err.contains("is full")
            && err.contains("MiB free now"),
        "{err}"
    );
    assert_eq!(
        left.trim(),
        "",
        "nothing is left in the backups directory: {left}"
    );
    let backups = node.step("finish", "backups");
    assert_eq!(backups["status"], "failed");
    assert!(
        !fs::read_to_string(node.path("/var/log/snf-manage.calls"))
            .unwrap_or_default()
            .contains("migrate"),
        "nothing migrated"
    );
    // Space freed (no small tmpfs any more): the restart resumes and completes.
    node.ok(&["finish"]);
    assert_eq!(node.state_json()["phase"], "done");
    let dump = node.path("/var/backups/synnefo-upgrade/database.dump");
    assert_eq!(fs::metadata(&dump).unwrap().len(), 3 << 20);
    assert_eq!(
        fs::metadata(&dump).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        fs::metadata(node.path("/var/backups/synnefo-upgrade"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o700
    );
}

#[test]
fn backups_that_cannot_fit_are_refused_before_anything_is_written() {
    let node = Node::wheezy();
    node.write("/etc/synnefo/10-snf-webproject-database.conf", "DATABASES = {'default': {'ENGINE': 'django.db.backends.sqlite3', 'NAME': '/srv/snf.sqlite'}}\n", 0o640);
    let big = vec![b'x'; 2 << 20];
    fs::create_dir_all(node.path("/srv")).unwrap();
    fs::write(node.path("/srv/snf.sqlite"), &big).unwrap();
    let Some((err, left)) = failed_finish_on_a_small_disk(&node) else {
        return;
    };
    assert!(
        err.contains("not enough space for the backups in '/var/backups/synnefo-upgrade'")
            && err.contains("they need about 2.0 MiB"),
        "{err}"
    );
    assert!(
        left.contains("No such file") || left.trim().is_empty(),
        "nothing written: {left}"
    );
}

// ---- Backups of every Synnefo database (issue 12 item 9) ------------------

#[test]
fn the_pithos_backend_database_is_dumped_too_without_its_password_on_a_command_line() {
    let mut node = Node::wheezy();
    node.package("snf-pithos-app", "0.18.1-1~wheezy", Some("synnefo"));
    node.write(
        "/etc/synnefo/10-snf-webproject-database.conf",
        PG_SETTINGS,
        0o640,
    );
    node.write(
        "/etc/synnefo/20-snf-pithos-app-settings.conf",
        "PITHOS_BACKEND_DB_CONNECTION = 'postgresql://pithos:p%40ss%3Aw0rd@203.0.113.2/snf_pithos'\n",
        0o640,
    );
    fake_pg_dump(&node, 1000);
    node.ok(&["prepare"]);
    node.to_jessie();
    node.ok(&["finish"]);
    let calls = fs::read_to_string(node.path("/var/log/pg_dump.calls")).unwrap();
    assert_eq!(
        calls,
        "-Fc --host 127.0.0.1 --port 5432 --username synnefo snf_apps PGPASSWORD=pw\n\
         -Fc --host 203.0.113.2 --username pithos snf_pithos PGPASSWORD=p@ss:w0rd\n"
    );
    for file in ["database.dump", "pithos-backend.dump"] {
        let dump = node.path(&format!("/var/backups/synnefo-upgrade/{file}"));
        assert_eq!(fs::metadata(&dump).unwrap().len(), 1000, "{file}");
    }
}

// ---- Hostile and odd trees -------------------------------------------------

const DJANGO_GUNICORN: &str = "CONFIG = {\n 'mode': 'django',\n 'working_dir': '/etc/synnefo',\n 'args': (\n   '--bind=127.0.0.1:8080',\n ),\n}\n";

fn findings(node: &Node) -> Vec<serde_json::Value> {
    let out = node.run(&["check", "--json"], &[]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    report["findings"].as_array().unwrap().clone()
}

fn finding<'a>(found: &'a [serde_json::Value], id: &str) -> Option<&'a serde_json::Value> {
    found.iter().find(|f| f["id"] == id)
}

#[test]
fn a_link_out_of_etc_is_reported_and_never_written_through() {
    let node = Node::wheezy();
    // A configuration-management checkout outside /etc, linked in.
    node.write("/srv/cm/gunicorn-synnefo", DJANGO_GUNICORN, 0o644);
    fs::create_dir_all(node.path("/etc/gunicorn.d")).unwrap();
    symlink(
        "../../srv/cm/gunicorn-synnefo",
        node.path("/etc/gunicorn.d/synnefo"),
    )
    .unwrap();
    let found = findings(&node);
    let link = finding(&found, "config-symlink").expect("config-symlink finding");
    assert!(
        link["title"]
            .as_str()
            .unwrap()
            .contains("'/etc/gunicorn.d/synnefo'")
            && link["title"]
                .as_str()
                .unwrap()
                .contains("/srv/cm/gunicorn-synnefo"),
        "{link}"
    );
    assert_eq!(
        finding(&found, "convert-refused").unwrap()["inhibitor"],
        true
    );
    let before = node.snapshot();
    let out = node.run(&["convert"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(
            "'/etc/gunicorn.d/synnefo' leads to '/srv/cm/gunicorn-synnefo', outside /etc"
        ),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        node.snapshot(),
        before,
        "nothing written, the link's target least of all"
    );
}

#[test]
fn an_apache_link_out_of_etc_is_not_renamed_or_replaced() {
    let node = Node::wheezy();
    node.write(
        "/srv/www/synnefo",
        "<VirtualHost *:80>\n</VirtualHost>\n",
        0o644,
    );
    fs::create_dir_all(node.path("/etc/apache2/sites-enabled")).unwrap();
    symlink(
        "/srv/www/synnefo",
        node.path("/etc/apache2/sites-enabled/synnefo"),
    )
    .unwrap();
    let before = node.snapshot();
    let out = node.run(&["convert"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("'/etc/apache2/sites-enabled/synnefo' is a link to '/srv/www/synnefo', outside /etc: it is not ours"),
        "{}",
        stderr(&out)
    );
    assert_eq!(node.snapshot(), before);
    // A link to a site inside /etc is ours: it follows its site's new name
    // (converted on the upgraded node, where convert needs no --force).
    let node = Node::wheezy();
    node.to_jessie();
    node.write(
        "/etc/apache2/sites-available/synnefo",
        "<VirtualHost *:80>\n</VirtualHost>\n",
        0o644,
    );
    fs::create_dir_all(node.path("/etc/apache2/sites-enabled")).unwrap();
    symlink(
        "../sites-available/synnefo",
        node.path("/etc/apache2/sites-enabled/synnefo"),
    )
    .unwrap();
    node.ok(&["convert"]);
    assert_eq!(
        fs::read_link(node.path("/etc/apache2/sites-enabled/synnefo.conf")).unwrap(),
        std::path::Path::new("../sites-available/synnefo.conf")
    );
}

#[test]
fn world_writable_settings_are_reported() {
    let node = Node::wheezy();
    node.write("/etc/synnefo/20-snf-cyclades-app-api.conf", "#\n", 0o666);
    node.write("/etc/synnefo/10-snf-webproject-database.conf", "#\n", 0o640);
    let found = findings(&node);
    let ww: Vec<_> = found
        .iter()
        .filter(|f| f["id"] == "world-writable-config")
        .collect();
    assert_eq!(ww.len(), 1, "{found:?}");
    assert!(ww[0]["title"]
        .as_str()
        .unwrap()
        .contains("20-snf-cyclades-app-api.conf"));
    assert_eq!(
        ww[0]["remediation"]["commands"][0],
        "chmod o-w /etc/synnefo/20-snf-cyclades-app-api.conf"
    );
    // A name with a space, one with a quote: the command is one a shell runs.
    node.write("/etc/synnefo/30-my settings.conf", "#\n", 0o666);
    node.write("/etc/synnefo/40-it's.conf", "#\n", 0o666);
    node.write("/etc/synnefo/50-$HOME's.conf", "#\n", 0o666);
    let commands: Vec<String> = findings(&node)
        .iter()
        .filter(|f| f["id"] == "world-writable-config")
        .map(|f| {
            f["remediation"]["commands"][0]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        commands,
        [
            "chmod o-w /etc/synnefo/20-snf-cyclades-app-api.conf",
            "chmod o-w \"/etc/synnefo/30-my settings.conf\"",
            "chmod o-w \"/etc/synnefo/40-it's.conf\"",
            "chmod o-w '/etc/synnefo/50-$HOME'\\''s.conf'",
        ]
    );
}

#[test]
fn a_state_directory_that_is_a_link_is_refused_and_nothing_goes_through_it() {
    let node = Node::wheezy();
    fs::create_dir_all(node.path("/srv/elsewhere")).unwrap();
    fs::create_dir_all(node.path("/var/lib")).unwrap();
    symlink("../../srv/elsewhere", node.path("/var/lib/synnefo-upgrade")).unwrap();
    let before = node.snapshot();
    let out = node.run(&["prepare"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("'/var/lib/synnefo-upgrade' is a symbolic link"),
        "{}",
        stderr(&out)
    );
    assert_eq!(node.snapshot(), before);
    assert_eq!(
        fs::read_dir(node.path("/srv/elsewhere")).unwrap().count(),
        0
    );
}

#[test]
fn the_state_and_the_ledger_are_never_opened_through_a_link() {
    let node = Node::wheezy();
    node.ok(&["prepare"]);
    let dir = node.path("/var/lib/synnefo-upgrade");
    assert_eq!(
        fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
        0o700
    );
    for file in ["state.json", "lock"] {
        assert_eq!(
            fs::metadata(dir.join(file)).unwrap().permissions().mode() & 0o777,
            0o600,
            "{file}"
        );
    }
    // The ledger replaced by a link to a file elsewhere: policy-rc.d still
    // denies, and appends nothing through the link.
    node.write("/etc/victim", "untouched\n", 0o644);
    let ledger = dir.join("denied-actions.log");
    let _ = fs::remove_file(&ledger);
    symlink("../../../etc/victim", &ledger).unwrap();
    let out = node.run(&["policy-rc.d", "gunicorn", "start"], &[]);
    assert_eq!(out.status.code(), Some(101), "{}", stderr(&out));
    assert_eq!(
        fs::read_to_string(node.path("/etc/victim")).unwrap(),
        "untouched\n"
    );
    // The state file replaced by a link: not read through it.
    let state = dir.join("state.json");
    fs::rename(&state, node.path("/etc/state-copy.json")).unwrap();
    symlink("../../../etc/state-copy.json", &state).unwrap();
    let out = node.run(&["status"], &[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("must be a regular file, not a symbolic link"),
        "{}",
        stderr(&out)
    );
    // Nor the lock file.
    fs::remove_file(&state).unwrap();
    fs::rename(node.path("/etc/state-copy.json"), &state).unwrap();
    fs::remove_file(dir.join("lock")).unwrap();
    symlink("../../../etc/victim", dir.join("lock")).unwrap();
    let out = node.run(&["abort"], &[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("must not be a symbolic link"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        fs::read_to_string(node.path("/etc/victim")).unwrap(),
        "untouched\n"
    );
}

#[test]
fn a_backups_directory_that_is_a_link_is_refused() {
    let node = Node::wheezy();
    node.write(
        "/etc/synnefo/10-snf-webproject-database.conf",
        PG_SETTINGS,
        0o640,
    );
    fake_pg_dump(&node, 100);
    node.ok(&["prepare"]);
    node.to_jessie();
    fs::create_dir_all(node.path("/srv/dumps")).unwrap();
    fs::create_dir_all(node.path("/var/backups")).unwrap();
    symlink("../../srv/dumps", node.path("/var/backups/synnefo-upgrade")).unwrap();
    let out = node.run(&["finish"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("'/var/backups/synnefo-upgrade' is a symbolic link"));
    assert_eq!(fs::read_dir(node.path("/srv/dumps")).unwrap().count(), 0);
    assert!(is_masked(&node));
}

#[test]
fn latin1_settings_with_a_coding_line_are_carried_byte_for_byte() {
    let node = Node::wheezy();
    node.to_jessie();
    let mut conf = b"# -*- coding: latin-1 -*-\n# Caf\xe9 settings\nSITE_NAME = 'Caf\xe9 Cloud'\nVMAPI_CACHE_BACKEND = 'memcached://127.0.0.1:11211/'\n".to_vec();
    let host = node.path("/etc/synnefo/20-snf-cyclades-app-api.conf");
    fs::create_dir_all(host.parent().unwrap()).unwrap();
    fs::write(&host, &conf).unwrap();
    node.ok(&["convert"]);
    let out = fs::read(&host).unwrap();
    let text = String::from_utf8_lossy(&out);
    assert!(text.contains("VMAPI_CACHE = {"), "converted: {text}");
    assert!(!text.contains("\nVMAPI_CACHE_BACKEND = "), "{text}");
    // The untouched lines, latin-1 bytes included, are the same bytes.
    conf.truncate(conf.len() - b"VMAPI_CACHE_BACKEND = 'memcached://127.0.0.1:11211/'\n".len());
    assert!(
        out.starts_with(&conf),
        "{:?}",
        &out[..conf.len().min(out.len())]
    );
    assert!(
        out.windows(2).any(|w| w == b"\xe9 "),
        "the latin-1 byte is kept"
    );
    // A latin-1 value that would have to move into a new 0.19 setting is
    // refused with the reason (not re-encoded by guess); nothing written.
    let carried = b"# -*- coding: latin-1 -*-\nVMAPI_CACHE_BACKEND = 'memcached://127.0.0.1:11211/'\nVMAPI_CACHE_KEY_PREFIX = 'caf\xe9'\n";
    fs::write(&host, carried).unwrap();
    let out = node.run(&["convert"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(
            "20-snf-cyclades-app-api.conf:3: VMAPI_CACHE_KEY_PREFIX: the value is not UTF-8"
        ),
        "{}",
        stderr(&out)
    );
    assert_eq!(fs::read(&host).unwrap(), carried);
}
