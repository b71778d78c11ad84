//! `synnefo-upgrade dist-upgrade` on fixture nodes whose apt-get, dpkg,
//! debconf-set-selections and reboot are scripts that record what they were
//! given: the refusals, the transaction's commands and environment, its
//! record and `status`, a failure and what it says, the worker that survives
//! its follower, and a second invocation that follows the running one.

mod common;

use common::{spawn, Node};
use serde_json::Value;
use std::time::{Duration, Instant};

/// An armed node whose apt-get records each call (its arguments and the
/// environment that matters), and fails on `dist-upgrade` when
/// /var/lib/fake-apt/fail exists, or waits on it while
/// /var/lib/fake-apt/hold exists.
fn armed() -> Node {
    let node = Node::wheezy();
    node.ok(&["prepare"]);
    let root = node.root().display().to_string();
    node.write(
        "/usr/bin/apt-get",
        &format!(
            "#!/bin/sh\nr='{root}'\n\
             echo \"$* | DEBIAN_FRONTEND=$DEBIAN_FRONTEND UCF_FORCE_CONFFOLD=$UCF_FORCE_CONFFOLD tty=$(tty -s && echo yes || echo no)\" >> \"$r/var/log/apt-get.calls\"\n\
             case \"$*\" in *dist-upgrade*)\n\
               while [ -e \"$r/var/lib/fake-apt/hold\" ]; do sleep 0.1; done\n\
               echo 'Setting up snf-common (0.19-1~jessie) ...'\n\
               if [ -e \"$r/var/lib/fake-apt/fail\" ]; then echo 'E: Sub-process /usr/bin/dpkg returned an error code (1)' >&2; exit 100; fi;;\n\
             esac\nexit 0\n"
        ),
        0o755,
    );
    node.write(
        "/usr/bin/dpkg",
        &format!("#!/bin/sh\necho \"$*\" >> '{root}/var/log/dpkg.calls'\ncat '{root}/var/lib/fake-apt/audit' 2>/dev/null\nexit 0\n"),
        0o755,
    );
    node.write(
        "/usr/bin/debconf-set-selections",
        &format!("#!/bin/sh\ncat >> '{root}/var/log/debconf.selections'\n"),
        0o755,
    );
    node.write(
        "/sbin/reboot",
        &format!("#!/bin/sh\necho \"reboot $*\" >> '{root}/var/log/rebooted'\n"),
        0o755,
    );
    // sysvinit's runlevel script (sysv-rc), as on wheezy and jessie.
    node.write("/etc/init.d/rc", "#!/bin/sh\nexit 0\n", 0o755);
    std::fs::create_dir_all(node.path("/var/lib/fake-apt")).unwrap();
    node
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn status(node: &Node) -> Value {
    serde_json::from_slice(&node.ok(&["status", "--json"]).stdout).unwrap()
}

fn read(node: &Node, abs: &str) -> String {
    std::fs::read_to_string(node.path(abs)).unwrap_or_default()
}

fn wait_for(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn refused_unless_armed_and_nothing_written() {
    let node = Node::wheezy();
    let before = node.snapshot();
    let out = node.run(&["dist-upgrade"], &[]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("this node is not armed")
            && text(&out.stderr).contains("run 'synnefo-upgrade prepare' first"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(node.snapshot(), before);

    // Done: nothing to run.
    let node = armed();
    node.to_jessie();
    node.ok(&["finish"]);
    let out = node.run(&["dist-upgrade"], &[]);
    assert_eq!(out.status.code(), Some(3));
    assert!(text(&out.stderr).contains("the upgrade of this node is done"));
    assert!(!node.path("/var/log/apt-get.calls").exists());
}

/// jessie's apt (1.0.9) does not know `--allow-remove-essential` (apt 1.1):
/// the switch to systemd-sysv, when the release kept sysvinit, asks that apt
/// with `--force-yes`, its way to remove an essential package.
#[test]
fn the_switch_to_systemd_speaks_the_installed_apt_s_options() {
    let mut node = armed();
    node.package("apt", "1.0.9.8.4", None);
    let (switch, calls) = switch_call(&node);
    assert!(switch.starts_with("-y -q --force-yes "), "{calls}");
    assert!(!calls.contains("--allow-remove-essential"), "{calls}");
}

/// Runs `dist-upgrade` on `node`, which must pass: its one apt-get call that
/// switches to systemd-sysv, and every call it made.
fn switch_call(node: &Node) -> (String, String) {
    let out = node.run(&["dist-upgrade"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let calls = read(node, "/var/log/apt-get.calls");
    let switch: Vec<&str> = calls
        .lines()
        .filter(|l| l.contains("install systemd-sysv"))
        .collect();
    assert_eq!(switch.len(), 1, "{calls}");
    (switch[0].to_string(), calls)
}

/// A release that keeps sysvinit leaves sysvinit-core installed: the switch
/// names its removal, which trixie's APT 3.0 solver needs (it keeps a
/// package installed by hand rather than remove it for systemd-sysv's
/// conflict; found by the `release` VM scenario's real upgrade).
#[test]
fn the_switch_to_systemd_names_the_init_it_replaces() {
    let mut node = armed();
    node.package("sysvinit-core", "3.14-4", None);
    let (switch, calls) = switch_call(&node);
    assert!(
        switch.contains(" install systemd-sysv sysvinit-core- |"),
        "{calls}"
    );
}

#[test]
fn the_transaction_unattended_with_conffiles_kept_then_audited_and_recorded() {
    let node = armed();
    let out = node.run(&["dist-upgrade"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // The follower printed the worker's output.
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("Setting up snf-common (0.19-1~jessie) ..."),
        "{stdout}"
    );
    assert!(
        text(&out.stderr).contains("reboot now ('reboot')"),
        "{}",
        text(&out.stderr)
    );
    let calls: Vec<String> = read(&node, "/var/log/apt-get.calls")
        .lines()
        .map(String::from)
        .collect();
    let env = "DEBIAN_FRONTEND=noninteractive UCF_FORCE_CONFFOLD=1 tty=no";
    assert_eq!(
        calls,
        [
            format!("-q update | {env}"),
            format!("-y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold dist-upgrade | {env}"),
            // The fixture has no systemd-sysv: asked for explicitly.
            format!("-y -q --allow-remove-essential -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold install systemd-sysv | {env}"),
        ]
    );
    assert_eq!(
        read(&node, "/var/log/debconf.selections"),
        "libc6 libraries/restart-without-asking boolean true\nlibpam0g libraries/restart-without-asking boolean true\n"
    );
    assert_eq!(
        read(&node, "/var/log/dpkg.calls").trim(),
        format!(
            "--admindir {} --audit",
            node.path("/var/lib/dpkg").display()
        )
    );
    // The log has the whole run; the record and status say how it ended.
    let log = read(&node, "/var/log/synnefo-upgrade-dist-upgrade.log");
    assert!(log.contains("dist-upgrade: succeeded at"), "{log}");
    assert_eq!(
        log.matches("Setting up snf-common (0.19-1~jessie) ...")
            .count(),
        1,
        "each line once: {log}"
    );
    let s = status(&node);
    assert_eq!(s["dist_upgrade"]["outcome"], "succeeded", "{s:#}");
    assert_eq!(s["dist_upgrade"]["running"], false);
    assert!(s["dist_upgrade"]["ended_at"].is_string());
    assert!(text(&node.ok(&["status"]).stdout).contains("dist-upgrade: succeeded at"));
    assert!(
        !node.path("/var/log/rebooted").exists(),
        "no --reboot, no reboot"
    );
    assert_eq!(s["phase"], "armed", "the dist-upgrade changes no phase");
}

/// A release whose systemd-sysv removes sysv-rc (trixie's) leaves the
/// running sysvinit without /etc/init.d/rc: told to reboot, it would stop at
/// a maintenance shell (seen in the `release` VM scenario). Then the message
/// says not to use `reboot`, and `--reboot` stops the services by their
/// init scripts (/etc/rc6.d/K*, in order; dangling links skipped), then
/// `reboot -f`. With the rc there, `reboot` as before.
#[test]
fn a_reboot_where_the_old_init_lost_its_rc_stops_the_services_first() {
    let node = armed();
    node.ok(&["dist-upgrade", "--reboot"]);
    assert_eq!(read(&node, "/var/log/rebooted"), "reboot \n");

    let node = armed();
    let root = node.root().display().to_string();
    std::fs::create_dir_all(node.path("/etc/rc6.d")).unwrap();
    std::fs::remove_file(node.path("/etc/init.d/rc")).unwrap();
    for (name, body) in [
        ("K01apache2", "apache2"),
        ("K01postgresql", "postgresql"),
        ("K02cron", "cron"),
    ] {
        node.write(
            &format!("/etc/init.d/{body}"),
            &format!("#!/bin/sh\necho \"{body} $*\" >> '{root}/var/log/rebooted'\n"),
            0o755,
        );
        std::os::unix::fs::symlink(
            format!("../init.d/{body}"),
            node.path(&format!("/etc/rc6.d/{name}")),
        )
        .unwrap();
    }
    // A link left by a removed package (initscripts' umountfs): skipped.
    std::os::unix::fs::symlink("../init.d/umountfs", node.path("/etc/rc6.d/K05umountfs")).unwrap();
    let out = node.run(&["dist-upgrade"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr)
            .contains("reboot now with 'synnefo-upgrade dist-upgrade --reboot', not 'reboot'"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        !node.path("/var/log/rebooted").exists(),
        "no --reboot, no reboot"
    );
    node.ok(&["dist-upgrade", "--reboot"]);
    assert_eq!(
        read(&node, "/var/log/rebooted"),
        "apache2 stop\npostgresql stop\ncron stop\nreboot -f\n"
    );
}

#[test]
fn configured_answers_and_no_switch_and_reboot_when_clean() {
    let node = armed();
    node.write(
        "/etc/synnefo-upgrade/upgrade.d/50-test.toml",
        "[dist_upgrade]\ndebconf = [\"openssh-server openssh-server/permit-root-login boolean true\"]\nswitch_to_systemd = false\n",
        0o644,
    );
    node.ok(&["dist-upgrade", "--reboot"]);
    assert_eq!(
        read(&node, "/var/log/debconf.selections"),
        "openssh-server openssh-server/permit-root-login boolean true\n"
    );
    assert!(!read(&node, "/var/log/apt-get.calls").contains("systemd-sysv"));
    assert!(
        node.path("/var/log/rebooted").exists(),
        "--reboot after a clean run"
    );

    // A line that is no debconf-set-selections line: exit 2, naming it.
    node.write(
        "/etc/synnefo-upgrade/upgrade.d/50-test.toml",
        "[dist_upgrade]\ndebconf = [\"libc6 true\"]\n",
        0o644,
    );
    let out = node.run(&["dist-upgrade"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("'libc6 true' is not a debconf-set-selections line"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_failure_says_what_to_do_and_no_reboot_and_an_unclean_audit_fails() {
    let node = armed();
    std::fs::write(node.path("/var/lib/fake-apt/fail"), "").unwrap();
    let out = node.run(&["dist-upgrade", "--reboot"], &[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("dist-upgrade' failed (exit status: 100)")
            && stderr.contains("E: Sub-process /usr/bin/dpkg returned an error code (1)")
            && stderr.contains("run 'dpkg --configure -a' (dpkg may have been interrupted), then 'synnefo-upgrade dist-upgrade' again"),
        "{stderr}"
    );
    assert!(!node.path("/var/log/rebooted").exists());
    let s = status(&node);
    assert_eq!(s["dist_upgrade"]["outcome"], "failed");
    assert!(text(&node.ok(&["status"]).stdout).contains("dist-upgrade: FAILED at"));

    // The transaction passed, dpkg --audit did not.
    std::fs::remove_file(node.path("/var/lib/fake-apt/fail")).unwrap();
    std::fs::write(
        node.path("/var/lib/fake-apt/audit"),
        "The following packages are only half configured:\n snf-common\n",
    )
    .unwrap();
    let out = node.run(&["dist-upgrade", "--reboot"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("dpkg --audit reports packages that are not fully installed"),
        "{}",
        text(&out.stderr)
    );
    assert!(!node.path("/var/log/rebooted").exists());
}

#[test]
fn the_worker_outlives_its_follower_and_a_second_call_follows_it() {
    let node = armed();
    std::fs::write(node.path("/var/lib/fake-apt/hold"), "").unwrap();
    let mut first = spawn(&node, &["dist-upgrade"]);
    wait_for("the worker's record", || {
        status(&node)["dist_upgrade"]["running"] == true
    });
    // The operator's session goes: the follower is killed, the worker is not.
    first.kill().unwrap();
    first.wait().unwrap();
    let s = status(&node);
    assert_eq!(s["dist_upgrade"]["outcome"], "running");
    assert_eq!(s["dist_upgrade"]["running"], true, "{s:#}");
    assert!(text(&node.ok(&["status"]).stdout).contains("dist-upgrade: RUNNING since"));
    // abort is refused while apt runs.
    let out = node.run(&["abort"], &[]);
    assert_eq!(out.status.code(), Some(75), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("abort is refused while a dist-upgrade runs"));

    // Invoked again: it follows the running worker, starts no second one.
    let second = spawn(&node, &["dist-upgrade"]);
    std::thread::sleep(Duration::from_millis(500));
    std::fs::remove_file(node.path("/var/lib/fake-apt/hold")).unwrap();
    let out = second.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("one runs already"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).contains("Setting up snf-common"),
        "{}",
        text(&out.stdout)
    );
    let calls = read(&node, "/var/log/apt-get.calls");
    assert_eq!(calls.matches(" dist-upgrade |").count(), 1, "{calls}");
    assert_eq!(status(&node)["dist_upgrade"]["outcome"], "succeeded");
}

#[test]
fn under_root_only_the_trees_tools_never_the_live_systems() {
    let node = armed();
    std::fs::remove_file(node.path("/usr/bin/apt-get")).unwrap();
    let out = node.run(&["dist-upgrade", "--reboot"], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("'apt-get' is not installed on the node"),
        "{}",
        text(&out.stderr)
    );
    assert!(!node.path("/var/log/rebooted").exists());
    assert_eq!(status(&node)["dist_upgrade"]["outcome"], "failed");
}
