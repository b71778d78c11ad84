//! policy-rc.d fails closed and chains faithfully: on an armed node whose state
//! cannot be read (every way it can be unreadable), start-like actions of every
//! service that may be managed are denied, said and recorded, while the
//! admin's previous policy still decides the others; and an admin's previous
//! policy-rc.d that is a link (relative, absolute, a chain) is consulted where
//! it leads from /usr/sbin, then put back as exactly that link.

mod common;

use common::{without_our_records, Node, BIN};
use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const STATE: &str = "/var/lib/synnefo-upgrade/state.json";
const LEDGER: &str = "/var/lib/synnefo-upgrade/denied-actions.log";

/// Writes the admin's site policy at `abs`: records each call in
/// [`Node::calls`] (by its host path: it runs from our backup while armed),
/// denies `cron`.
fn site_policy(node: &Node, abs: &str) {
    let calls = node.path(common::CALLS);
    node.write(
        abs,
        &format!(
            "#!/bin/sh\necho \"site-policy $*\" >> '{}'\n[ \"$1\" = cron ] && exit 101\nexit 0\n",
            calls.display()
        ),
        0o755,
    );
}

/// `policy-rc.d ARGS` on `node`: its exit code and stderr. Killed (and the
/// test failed) if it has not answered within 20 s: it must never block.
fn decide(node: &Node, args: &[&str]) -> (Option<i32>, String) {
    let mut child = Command::new(BIN)
        .arg("--root")
        .arg(node.root())
        .arg("policy-rc.d")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(20) {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("policy-rc.d {args:?} blocked for 20 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn code(node: &Node, args: &[&str]) -> Option<i32> {
    decide(node, args).0
}

/// A wheezy node with the admin's site policy as its policy-rc.d, armed.
fn armed_with_site_policy() -> Node {
    let node = Node::wheezy();
    site_policy(&node, "/usr/sbin/policy-rc.d");
    node.ok(&["prepare"]);
    node
}

/// A change of the fixture that leaves its state unreadable.
type BreakState = fn(&Node);

/// Every way the state of an armed node can be unreadable, as a change of
/// the fixture; each is named for the messages.
fn unreadable_states() -> Vec<(&'static str, BreakState)> {
    fn edit(node: &Node, f: impl FnOnce(String) -> String) {
        let text = fs::read_to_string(node.path(STATE)).unwrap();
        fs::write(node.path(STATE), f(text)).unwrap();
    }
    vec![
        ("missing", |n| fs::remove_file(n.path(STATE)).unwrap()),
        ("empty", |n| fs::write(n.path(STATE), "").unwrap()),
        ("truncated", |n| edit(n, |t| t[..t.len() / 2].to_string())),
        ("an unknown key", |n| {
            edit(n, |t| {
                t.replacen("\"phase\"", "\"note\": \"by hand\", \"phase\"", 1)
            })
        }),
        ("a newer schema", |n| {
            edit(n, |t| t.replacen("\"schema\": 2", "\"schema\": 9", 1))
        }),
        ("not an object", |n| {
            fs::write(n.path(STATE), "[]\n").unwrap()
        }),
        ("a symbolic link", |n| {
            fs::rename(n.path(STATE), n.path("/etc/state.json")).unwrap();
            symlink("../../../etc/state.json", n.path(STATE)).unwrap();
        }),
        ("a FIFO", |n| {
            fs::remove_file(n.path(STATE)).unwrap();
            nix::unistd::mkfifo(&n.path(STATE), nix::sys::stat::Mode::S_IRWXU).unwrap();
        }),
        ("a directory", |n| {
            fs::remove_file(n.path(STATE)).unwrap();
            fs::create_dir(n.path(STATE)).unwrap();
        }),
    ]
}

#[test]
fn an_unreadable_state_on_an_armed_node_denies_every_managed_service_and_chains_the_rest() {
    let node = armed_with_site_policy();
    let armed = fs::read(node.path(STATE)).unwrap();
    for (how, break_state) in unreadable_states() {
        // Each variant from the armed node's state, with no record yet.
        for path in [STATE, LEDGER, common::CALLS, "/etc/state.json"] {
            let host = node.path(path);
            let _ = fs::remove_file(&host).or_else(|_| fs::remove_dir(&host));
        }
        fs::write(node.path(STATE), &armed).unwrap();
        assert_eq!(code(&node, &["gunicorn", "start"]), Some(101));
        fs::remove_file(node.path(LEDGER)).unwrap();
        break_state(&node);
        // Every Synnefo service the tool knows, in both forms, recorded by
        // prepare or not (this node has no snf-dispatcher).
        let every_action = ["start", "restart", "reload", "stop start"];
        let denials = [
            ("gunicorn", &every_action[..]),
            ("gunicorn.service", &["start"]),
            ("snf-dispatcher", &["start"]),
            ("snf-dispatcher.service", &["restart"]),
            ("snf-ganeti-eventd", &["start"]),
            ("snf-ganeti-eventd.service", &every_action),
            ("archipelago", &["reload"]),
            ("archipelago.service", &["start"]),
        ];
        for (id, actions) in denials {
            for action in actions {
                let (code, stderr) = decide(&node, &[id, action]);
                assert_eq!(code, Some(101), "state {how}: {id} {action}: {stderr}");
                assert!(
                    stderr.contains(STATE) && stderr.contains("synnefo-upgrade status"),
                    "state {how}: the denial names the file and what to do: {stderr}"
                );
            }
        }
        for id in ["gunicorn", "archipelago.service"] {
            assert_eq!(
                code(&node, &[id, "stop"]),
                Some(0),
                "state {how}: {id} stop"
            );
        }
        // Not managed: the admin's policy still decides.
        assert_eq!(code(&node, &["cron", "start"]), Some(101), "state {how}");
        assert_eq!(
            code(&node, &["ssh.service", "restart"]),
            Some(0),
            "state {how}"
        );
        let calls = node.calls();
        assert!(
            calls.contains("site-policy cron start\n")
                && calls.contains("site-policy ssh.service restart\n")
                && !calls.contains("gunicorn"),
            "state {how}: {calls}"
        );
        // Each denial recorded, with its reason.
        let ledger = fs::read_to_string(node.path(LEDGER)).unwrap();
        let recorded: Vec<&str> = ledger
            .lines()
            .filter(|l| l.ends_with(" state-unreadable"))
            .collect();
        let want: usize = denials.iter().map(|(_, actions)| actions.len()).sum();
        assert_eq!(recorded.len(), want, "state {how}: {ledger}");
        assert!(
            recorded
                .iter()
                .any(|l| l.contains(" snf-ganeti-eventd.service stop,start - ")),
            "state {how}: {ledger}"
        );
    }
}

#[test]
fn services_named_by_the_marker_or_the_ledger_stay_denied_without_the_state() {
    let node = Node::wheezy();
    node.write("/etc/init.d/memcached", "#!/bin/sh\nexit 0\n", 0o755);
    node.write("/etc/init.d/redis-server", "#!/bin/sh\nexit 0\n", 0o755);
    node.write(
        "/etc/synnefo-upgrade/upgrade.toml",
        "[services]\nmanaged = [\"gunicorn\", \"memcached\", \"redis-server\"]\n",
        0o644,
    );
    node.ok(&["prepare"]);
    assert_eq!(code(&node, &["redis-server", "start"]), Some(101));
    fs::remove_file(node.path(STATE)).unwrap();
    // The marker lists the managed services.
    assert_eq!(code(&node, &["memcached.service", "start"]), Some(101));
    assert_eq!(code(&node, &["redis-server", "start"]), Some(101));
    // A marker of an older version lists nothing: the ledger still knows
    // redis-server (denied above), not memcached (denied only by name here).
    fs::write(
        node.path("/var/lib/synnefo-upgrade/armed"),
        "armed by synnefo-upgrade prepare\n",
    )
    .unwrap();
    fs::write(node.path(LEDGER), "1795000000 redis-server start -\n").unwrap();
    assert_eq!(code(&node, &["redis-server", "start"]), Some(101));
    assert_eq!(code(&node, &["memcached", "start"]), Some(0));
    assert_eq!(code(&node, &["gunicorn", "start"]), Some(101));
}

#[test]
fn no_state_and_no_marker_is_not_armed_and_allows() {
    let node = Node::wheezy();
    site_policy(&node, "/usr/sbin/policy-rc.d");
    assert_eq!(code(&node, &["gunicorn", "start"]), Some(0));
    node.ok(&["prepare"]);
    node.ok(&["abort"]);
    // Aborted: our policy-rc.d is gone, and asked anyway it allows.
    fs::remove_file(node.path(STATE)).unwrap();
    assert_eq!(code(&node, &["gunicorn", "start"]), Some(0));
    assert!(
        !node.path(LEDGER).exists()
            || !fs::read_to_string(node.path(LEDGER))
                .unwrap()
                .contains("state-unreadable")
    );
}

/// The tree but for our records and the calls the site policy recorded.
fn before_calls(node: &Node) -> std::collections::BTreeMap<std::path::PathBuf, String> {
    let mut tree = without_our_records(node.snapshot());
    tree.remove(Path::new(common::CALLS.trim_start_matches('/')));
    tree
}

/// The admin's policy, a script at `script`, and /usr/sbin/policy-rc.d a
/// link to it by `links` (each `(target, at)`, made in order).
fn admin_policy_by_links(script: &str, links: &[(&str, &str)]) -> Node {
    let node = Node::wheezy();
    site_policy(&node, script);
    for (target, at) in links {
        node.link(target, at);
    }
    node
}

/// The admin policy shapes a link can have; `/usr/sbin/policy-rc.d` first.
fn admin_links() -> Vec<(&'static str, Vec<(&'static str, &'static str)>)> {
    vec![
        (
            "/usr/local/sbin/site-policy",
            vec![("../local/sbin/site-policy", "/usr/sbin/policy-rc.d")],
        ),
        (
            "/usr/local/sbin/site-policy",
            vec![("/usr/local/sbin/site-policy", "/usr/sbin/policy-rc.d")],
        ),
        (
            "/etc/site/policy",
            vec![
                ("policy-rc.d.site", "/usr/sbin/policy-rc.d"),
                ("../../etc/site/current", "/usr/sbin/policy-rc.d.site"),
                ("/etc/site/policy", "/etc/site/current"),
            ],
        ),
    ]
}

#[test]
fn an_admin_policy_rcd_link_is_consulted_where_it_leads_then_put_back_as_it_was() {
    for (script, links) in admin_links() {
        for end in ["abort", "finish"] {
            let node = admin_policy_by_links(script, &links);
            let link = fs::read_link(node.path("/usr/sbin/policy-rc.d")).unwrap();
            let before = before_calls(&node);
            node.ok(&["prepare"]);
            assert_eq!(
                code(&node, &["gunicorn", "start"]),
                Some(101),
                "{link:?}: ours"
            );
            assert_eq!(
                code(&node, &["cron", "start"]),
                Some(101),
                "{link:?}: the admin's policy is consulted"
            );
            assert_eq!(code(&node, &["ssh", "start"]), Some(0), "{link:?}");
            assert_eq!(
                node.calls(),
                "site-policy cron start\nsite-policy ssh start\n",
                "{link:?}"
            );
            if end == "finish" {
                node.to_jessie();
            }
            node.ok(&[end]);
            assert_eq!(
                fs::read_link(node.path("/usr/sbin/policy-rc.d")).unwrap(),
                link,
                "after {end}: the same link"
            );
            if end == "abort" {
                assert_eq!(before_calls(&node), before, "{link:?}");
            }
        }
    }
}

#[test]
fn an_admin_policy_rcd_that_dangled_before_still_allows_and_comes_back_dangling() {
    let node = Node::wheezy();
    node.link("../local/sbin/gone", "/usr/sbin/policy-rc.d");
    let before = without_our_records(node.snapshot());
    node.ok(&["prepare"]);
    assert_eq!(code(&node, &["gunicorn", "start"]), Some(101));
    assert_eq!(code(&node, &["cron", "start"]), Some(0));
    node.ok(&["abort"]);
    assert_eq!(
        fs::read_link(node.path("/usr/sbin/policy-rc.d")).unwrap(),
        Path::new("../local/sbin/gone")
    );
    assert_eq!(without_our_records(node.snapshot()), before);
}

#[test]
fn a_previous_policy_that_leads_back_to_us_is_consulted_once() {
    // The admin's policy asks /usr/sbin/policy-rc.d, which is us while armed
    // (capped at 4 rounds, should the guard fail).
    let node = Node::wheezy();
    let calls = node.path(common::CALLS);
    node.write(
        "/usr/sbin/policy-rc.d",
        &format!(
            "#!/bin/sh\necho \"$*\" >> '{calls}'\n[ \"$(wc -l < '{calls}')\" -gt 3 ] && exit 0\nexec '{BIN}' --root '{root}' policy-rc.d \"$@\"\n",
            calls = calls.display(),
            root = node.root().display()
        ),
        0o755,
    );
    node.ok(&["prepare"]);
    assert_eq!(code(&node, &["cron", "start"]), Some(0));
    assert_eq!(node.calls(), "cron start\n");
}
