//! `prepare` then `abort` on fixture nodes of every role: the tree comes back
//! byte for byte (content, links, modes), apart from our own records under
//! /var/lib/synnefo-upgrade. Also: a previous policy-rc.d, an admin's mask,
//! the refusal once dpkg changed a package, and crashes during abort.

mod common;

use common::{without_our_records, Node};
use std::fs;
use std::path::Path;

use synnefo_upgrade::base::state::PhaseKind;
use synnefo_upgrade::phases::plan::steps;

fn round_trip(node: &Node) {
    let before = without_our_records(node.snapshot());
    node.ok(&["prepare"]);
    let armed = node.snapshot();
    assert_ne!(
        without_our_records(armed),
        before,
        "prepare changed nothing?"
    );
    node.ok(&["abort"]);
    assert_eq!(without_our_records(node.snapshot()), before);
    assert_eq!(node.state_json()["phase"], "aborted");
    // Aborted is final for this round: a new prepare starts over and works.
    node.ok(&["prepare"]);
    assert_eq!(node.state_json()["phase"], "armed");
}

#[test]
fn round_trip_for_every_role() {
    for packages in [
        &[
            "snf-astakos-app",
            "snf-cyclades-app",
            "snf-pithos-app",
            "snf-cyclades-gtools",
        ][..],
        &["snf-astakos-app"],
        &["snf-cyclades-app"],
        &["snf-pithos-app"],
        &["snf-cyclades-gtools"],
    ] {
        let node = Node::with_synnefo(packages);
        if packages.contains(&"snf-cyclades-app") {
            node.write("/etc/init.d/snf-dispatcher", "#!/bin/sh\n", 0o755);
            node.write(
                "/etc/default/snf-dispatcher",
                "SNF_DSPTCH_ENABLE=true\n",
                0o644,
            );
            node.link("../init.d/snf-dispatcher", "/etc/rc2.d/S03snf-dispatcher");
        }
        if packages.contains(&"snf-cyclades-gtools") {
            node.write("/etc/init.d/snf-ganeti-eventd", "#!/bin/sh\n", 0o755);
            node.write(
                "/etc/default/snf-ganeti-eventd",
                "SNF_EVENTD_ENABLE=false\n",
                0o644,
            );
        }
        round_trip(&node);
    }
}

#[test]
fn service_node_gets_backports_and_pin_and_abort_takes_them_back() {
    let node = Node::with_synnefo(&["snf-cyclades-app"]);
    node.ok(&["prepare"]);
    assert_eq!(
        fs::read_to_string(node.path("/etc/apt/sources.list.d/synnefo-upgrade-backports.list")).unwrap(),
        "# Added by 'synnefo-upgrade prepare': gevent and greenlet for Synnefo 0.19.\ndeb http://ftp.gr.debian.org/debian/ jessie-backports main\n"
    );
    let pin =
        fs::read_to_string(node.path("/etc/apt/preferences.d/synnefo-upgrade-gevent")).unwrap();
    assert!(
        pin.contains("Package: python-gevent\nPin: version 1.1.1-2*\n"),
        "{pin}"
    );
    let snippet = fs::read_to_string(node.path("/etc/apt/apt.conf.d/50synnefo-upgrade")).unwrap();
    assert!(snippet.contains("\"--force-confold\""), "{snippet}");
    assert!(snippet.contains("DPkg::Post-Invoke"), "{snippet}");
    node.ok(&["abort"]);
    for gone in [
        "/etc/apt/sources.list.d/synnefo-upgrade-backports.list",
        "/etc/apt/preferences.d/synnefo-upgrade-gevent",
        "/etc/apt/apt.conf.d/50synnefo-upgrade",
    ] {
        assert!(!node.path(gone).exists(), "{gone}");
    }
}

#[test]
fn added_backports_line_keeps_the_mirrors_options_and_deb822_continuations_are_rewritten() {
    let node = Node::with_synnefo(&["snf-astakos-app"]);
    let list = "# Debian wheezy, through the site's mirror\n\
deb [arch=amd64 trusted=yes] http://mirror/debian wheezy main\n\
deb-src [arch=amd64 trusted=yes] http://mirror/debian wheezy main\n\
deb http://security.debian.org/ wheezy/updates main\n";
    node.write("/etc/apt/sources.list", list, 0o644);
    let sources = "Types: deb deb-src\nURIs: http://ceph.com/debian-firefly/\nSuites: wheezy\n wheezy-updates\n# keep wheezy in this comment\nComponents: main\n";
    node.write("/etc/apt/sources.list.d/ceph.sources", sources, 0o644);
    let before = without_our_records(node.snapshot());
    node.ok(&["prepare"]);
    assert_eq!(
        fs::read_to_string(node.path("/etc/apt/sources.list.d/synnefo-upgrade-backports.list"))
            .unwrap(),
        "# Added by 'synnefo-upgrade prepare': gevent and greenlet for Synnefo 0.19.\n\
         deb [arch=amd64 trusted=yes] http://mirror/debian jessie-backports main\n"
    );
    assert_eq!(
        fs::read_to_string(node.path("/etc/apt/sources.list")).unwrap(),
        list.replace(" wheezy main", " jessie main")
            .replace("wheezy/updates", "jessie/updates")
    );
    assert_eq!(
        fs::read_to_string(node.path("/etc/apt/sources.list.d/ceph.sources")).unwrap(),
        "Types: deb deb-src\nURIs: http://ceph.com/debian-firefly/\nSuites: jessie\n jessie-updates\n# keep wheezy in this comment\nComponents: main\n"
    );
    node.ok(&["abort"]);
    assert_eq!(without_our_records(node.snapshot()), before);
}

/// The backports source prepare added.
fn added_backports(node: &Node) -> String {
    fs::read_to_string(node.path("/etc/apt/sources.list.d/synnefo-upgrade-backports.list")).unwrap()
}

const ADDED: &str = "# Added by 'synnefo-upgrade prepare': gevent and greenlet for Synnefo 0.19.\n";

#[test]
fn backports_come_from_the_debian_archive_not_from_repositories_naming_debian() {
    let others = common::NOT_DEBIAN_LIST;
    // Listed before the Debian mirror, in the same file or an earlier one.
    for (list, extra) in [
        (
            format!("{others}deb http://ftp.gr.debian.org/debian/ wheezy main contrib non-free\n"),
            None,
        ),
        (
            others.to_string(),
            Some("deb [arch=amd64] http://httpredir.debian.org/debian wheezy main\n"),
        ),
    ] {
        let node = Node::with_synnefo(&["snf-cyclades-app"]);
        node.write("/etc/apt/sources.list", &list, 0o644);
        if let Some(extra) = extra {
            node.write("/etc/apt/sources.list.d/zz-debian.list", extra, 0o644);
        }
        let before = without_our_records(node.snapshot());
        node.ok(&["prepare"]);
        let want = match extra {
            None => "deb http://ftp.gr.debian.org/debian/ jessie-backports main\n",
            Some(_) => {
                "deb [arch=amd64] http://httpredir.debian.org/debian jessie-backports main\n"
            }
        };
        assert_eq!(added_backports(&node), format!("{ADDED}{want}"));
        node.ok(&["abort"]);
        assert_eq!(without_our_records(node.snapshot()), before);
    }

    // APT's lists decide where they say something: a site mirror at any
    // path is Debian's, a repository laid out like a mirror is not.
    let node = Node::with_synnefo(&["snf-astakos-app"]);
    node.write(
        "/etc/apt/sources.list",
        "deb http://packages.example.org/debian wheezy main\ndeb http://mirror.example.org/pub/os/ wheezy main\n",
        0o644,
    );
    node.write(
        "/var/lib/apt/lists/packages.example.org_debian_dists_wheezy_Release",
        "Origin: Example\nLabel: Example tools\nSuite: wheezy\n",
        0o644,
    );
    node.write(
        "/var/lib/apt/lists/mirror.example.org_pub_os_dists_wheezy_Release",
        "Origin: Debian\nLabel: Debian\nSuite: oldstable\nCodename: wheezy\n",
        0o644,
    );
    node.ok(&["prepare"]);
    assert_eq!(
        added_backports(&node),
        format!("{ADDED}deb http://mirror.example.org/pub/os/ jessie-backports main\n")
    );
}

#[test]
fn a_wheezy_disc_is_commented_out_and_abort_brings_it_back() {
    let node = Node::with_synnefo(&["snf-cyclades-app"]);
    let disc = "deb cdrom:[Debian GNU/Linux 7.0 _Wheezy_ - Official amd64 DVD Binary-1 20130504-14:43]/ wheezy main contrib";
    let list = format!("{disc}\n{}", common::SOURCES_LIST);
    node.write("/etc/apt/sources.list", &list, 0o644);
    let before = without_our_records(node.snapshot());
    node.ok(&["prepare"]);
    let sources = fs::read_to_string(node.path("/etc/apt/sources.list")).unwrap();
    assert_eq!(
        sources.lines().take(2).collect::<Vec<_>>(),
        [
            format!("# Disabled by 'synnefo-upgrade prepare' (a wheezy disc cannot serve jessie): {disc}"),
            "# Debian wheezy".to_string(),
        ]
    );
    assert!(
        sources
            .lines()
            .all(|l| l.starts_with('#') || !l.contains("wheezy")),
        "{sources}"
    );
    let step = node.step("prepare", "apt-sources");
    assert!(
        step["message"].as_str().unwrap().ends_with(
            "; commented out (a wheezy disc cannot serve jessie): /etc/apt/sources.list:1"
        ),
        "{step:#}"
    );
    // Never the mirror, though it comes first.
    assert_eq!(
        added_backports(&node),
        format!("{ADDED}deb http://ftp.gr.debian.org/debian/ jessie-backports main\n")
    );
    node.ok(&["abort"]);
    assert_eq!(without_our_records(node.snapshot()), before);
}

#[test]
fn finish_keeps_the_pin_and_drops_the_snippet() {
    let node = Node::with_synnefo(&["snf-pithos-app"]);
    node.ok(&["prepare"]);
    node.to_jessie();
    node.ok(&["finish"]);
    assert!(node
        .path("/etc/apt/preferences.d/synnefo-upgrade-gevent")
        .exists());
    assert!(node
        .path("/etc/apt/sources.list.d/synnefo-upgrade-backports.list")
        .exists());
    assert!(!node.path("/etc/apt/apt.conf.d/50synnefo-upgrade").exists());
}

#[test]
fn previous_policy_rcd_is_consulted_then_restored_byte_for_byte() {
    let node = Node::wheezy();
    let previous = "#!/bin/sh\n# site policy: never start cron during package runs\n[ \"$1\" = cron ] && exit 101\nexit 0\n";
    node.write("/usr/sbin/policy-rc.d", previous, 0o750);
    let before = without_our_records(node.snapshot());
    node.ok(&["prepare"]);
    let code = |id: &str| node.run(&["policy-rc.d", id, "start"], &[]).status.code();
    assert_eq!(code("gunicorn"), Some(101), "ours");
    assert_eq!(code("cron"), Some(101), "the previous policy, consulted");
    assert_eq!(code("ssh"), Some(0), "the previous policy, consulted");
    node.ok(&["abort"]);
    assert_eq!(without_our_records(node.snapshot()), before);
    assert_eq!(
        fs::read_to_string(node.path("/usr/sbin/policy-rc.d")).unwrap(),
        previous
    );
}

#[test]
fn admin_mask_is_never_touched() {
    let node = Node::wheezy();
    node.link("/dev/null", "/etc/systemd/system/archipelago.service");
    node.link("../init.d/archipelago", "/etc/rc2.d/S04archipelago");
    node.ok(&["prepare"]);
    let archipelago = node.state_json()["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "archipelago")
        .unwrap()
        .clone();
    assert_eq!(archipelago["was_masked"], true);
    assert_eq!(
        archipelago["was_active"], false,
        "a masked service is not started later"
    );
    node.to_jessie();
    node.ok(&["finish"]);
    assert_eq!(
        fs::read_link(node.path("/etc/systemd/system/archipelago.service")).unwrap(),
        Path::new("/dev/null")
    );
}

#[test]
fn eventd_kept_disabled_when_its_flag_was_false() {
    let mut node = Node::wheezy();
    node.package("snf-cyclades-gtools", "0.18.1-1~wheezy", Some("synnefo"));
    node.write("/etc/init.d/snf-ganeti-eventd", "#!/bin/sh\n", 0o755);
    node.link(
        "../init.d/snf-ganeti-eventd",
        "/etc/rc2.d/S05snf-ganeti-eventd",
    );
    node.write(
        "/etc/default/snf-ganeti-eventd",
        "# Set to true to start\nSNF_EVENTD_ENABLE=false\n",
        0o644,
    );
    node.ok(&["prepare"]);
    node.to_jessie();
    // The 0.19 package enables its unit during the dist-upgrade.
    node.link(
        "/lib/systemd/system/snf-ganeti-eventd.service",
        "/etc/systemd/system/multi-user.target.wants/snf-ganeti-eventd.service",
    );
    node.ok(&["finish"]);
    assert!(fs::symlink_metadata(
        node.path("/etc/systemd/system/multi-user.target.wants/snf-ganeti-eventd.service")
    )
    .is_err());
    let state = node.state_json();
    let eventd = state["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "snf-ganeti-eventd")
        .unwrap();
    assert_eq!(eventd["default_flag"], "false");
}

#[test]
fn abort_is_refused_once_dpkg_changed_a_package() {
    let mut node = Node::wheezy();
    node.ok(&["prepare"]);
    // dpkg unpacked a jessie package.
    node.package("snf-common", "0.19-1~jessie", Some("synnefo"));
    let status = fs::read_to_string(node.path("/var/lib/dpkg/status")).unwrap();
    let status = status.replacen("Version: 0.18.1-1~wheezy\n", "Version: 0.19-1~jessie\n", 1);
    node.write("/var/lib/dpkg/status", &status, 0o644);
    let before = node.snapshot();
    let out = node.run(&["abort"], &[]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("snf-common 0.18.1-1~wheezy -> 0.19-1~jessie"));
    assert_eq!(node.snapshot(), before);
    assert_eq!(node.state_json()["phase"], "armed");
}

#[test]
fn crash_during_abort_then_rerun_converges() {
    for step in steps(PhaseKind::Abort) {
        let node = Node::wheezy();
        // prepare --download, so that every step of abort applies (the
        // last one reads APT's lists again).
        node.write("/usr/bin/apt-get", "#!/bin/sh\nexit 0\n", 0o755);
        let before = without_our_records(node.snapshot());
        node.ok(&["prepare", "--download"]);
        let crash = format!("abort-after-{}=panic", step.id);
        let out = node.run(&["abort"], &[("FAILPOINTS", &crash)]);
        assert!(!out.status.success(), "{crash} did not crash");
        node.ok(&["abort"]);
        assert_eq!(
            without_our_records(node.snapshot()),
            before,
            "after {crash}"
        );
    }
}

/// The files whose name starts with `name` + ".synnefo-upgrade-kept-" beside
/// node path `abs` (the copies abort keeps of edits made since).
fn kept_beside(node: &Node, abs: &str) -> Vec<std::path::PathBuf> {
    let host = node.path(abs);
    let prefix = format!(
        "{}.synnefo-upgrade-kept-",
        host.file_name().unwrap().to_string_lossy()
    );
    let Ok(dir) = fs::read_dir(host.parent().unwrap()) else {
        return Vec::new();
    };
    let mut found: Vec<_> = dir
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(&prefix)
        })
        .collect();
    found.sort();
    found
}

/// `tree` without the kept copies of edits (`*.synnefo-upgrade-kept-*`) and
/// the directories that stay only because they hold one (a directory prepare
/// created is removed only when empty again).
fn without_kept(
    tree: std::collections::BTreeMap<std::path::PathBuf, String>,
    before: &std::collections::BTreeMap<std::path::PathBuf, String>,
) -> std::collections::BTreeMap<std::path::PathBuf, String> {
    let kept: Vec<std::path::PathBuf> = tree
        .keys()
        .filter(|p| p.to_string_lossy().contains(".synnefo-upgrade-kept-"))
        .cloned()
        .collect();
    tree.into_iter()
        .filter(|(p, _)| {
            !kept.contains(p) && (before.contains_key(p) || !kept.iter().any(|k| k.starts_with(p)))
        })
        .collect()
}

#[test]
fn edits_made_after_prepare_are_kept_beside_their_files_and_named() {
    use std::os::unix::fs::PermissionsExt;
    let node = Node::with_synnefo(&["snf-cyclades-app"]);
    let before = without_our_records(node.snapshot());
    node.ok(&["prepare"]);
    // The operator edits files prepare rewrote (a backup exists) and files
    // prepare created (no backup): each edit is theirs alone.
    let mut edited = Vec::new();
    for (abs, line) in [
        (
            "/etc/apt/sources.list",
            "deb http://mirror.example.org/extra jessie main\n",
        ),
        ("/etc/apt/sources.list.d/grnet.list", "# pinned by hand\n"),
        (
            "/etc/apt/preferences.d/synnefo-upgrade-gevent",
            "# keep me\n",
        ),
        (
            "/etc/apt/sources.list.d/synnefo-upgrade-backports.list",
            "# mine\n",
        ),
    ] {
        let mut text = fs::read_to_string(node.path(abs)).unwrap();
        text.push_str(line);
        fs::write(node.path(abs), &text).unwrap();
        edited.push((abs, text));
    }
    let mode = |abs: &str| fs::metadata(node.path(abs)).unwrap().permissions().mode() & 0o7777;
    let out = node.ok(&["abort"]);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let recorded = node.step("abort", "restore-backups")["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
        + node.step("abort", "remove-apt-config")["message"]
            .as_str()
            .unwrap_or_default();
    for (abs, text) in &edited {
        let kept = kept_beside(&node, abs);
        assert_eq!(kept.len(), 1, "{abs}: {kept:?}\n{said}");
        assert_eq!(&fs::read_to_string(&kept[0]).unwrap(), text, "{abs}");
        let kept_abs = format!("/{}", kept[0].strip_prefix(node.root()).unwrap().display());
        assert!(
            said.contains(&kept_abs),
            "abort's output does not name {kept_abs}:\n{said}"
        );
        assert!(
            recorded.contains(&kept_abs),
            "the step records do not name {kept_abs}: {recorded}"
        );
        assert_eq!(
            fs::metadata(&kept[0]).unwrap().permissions().mode() & 0o7777,
            if abs.ends_with("grnet.list") {
                0o640
            } else {
                0o644
            },
            "{abs}: the kept copy has the file's mode"
        );
    }
    // Everything else is exactly as before prepare: originals restored, created files gone.
    assert_eq!(
        without_kept(without_our_records(node.snapshot()), &before),
        before
    );
    assert_eq!(mode("/etc/apt/sources.list.d/grnet.list"), 0o640);
    // A second abort keeps nothing more.
    node.ok(&["abort"]);
    for (abs, _) in &edited {
        assert_eq!(kept_beside(&node, abs).len(), 1, "{abs}");
    }
}

#[test]
fn an_unedited_file_is_restored_without_a_copy() {
    let node = Node::with_synnefo(&["snf-cyclades-app"]);
    node.ok(&["prepare"]);
    node.ok(&["abort"]);
    for abs in [
        "/etc/apt/sources.list",
        "/etc/apt/sources.list.d/grnet.list",
        "/etc/apt/preferences.d/synnefo-upgrade-gevent",
    ] {
        assert!(kept_beside(&node, abs).is_empty(), "{abs}");
    }
}

/// An Apache 2.2 node as snf-deploy leaves it: sites without `.conf`, enabled
/// by relative and absolute links, a site enabled as a plain file, a `conf.d`
/// snippet (a file and a link), a gunicorn config in django mode.
fn apache_node() -> Node {
    let mut node = Node::with_synnefo(&["snf-cyclades-app"]);
    node.package("apache2", "2.2.22-13+deb7u13", None);
    let site =
        "<VirtualHost *:80>\n  RequestHeader set X-Forwarded-Protocol \"http\"\n</VirtualHost>\n";
    node.write("/etc/apache2/sites-available/synnefo", site, 0o644);
    node.write("/etc/apache2/sites-available/synnefo-ssl", site, 0o644);
    node.write(
        "/etc/apache2/sites-available/default",
        "<VirtualHost *:80>\n</VirtualHost>\n",
        0o644,
    );
    node.link(
        "../sites-available/synnefo",
        "/etc/apache2/sites-enabled/synnefo",
    );
    node.link(
        "/etc/apache2/sites-available/synnefo-ssl",
        "/etc/apache2/sites-enabled/synnefo-ssl",
    );
    node.link(
        "../sites-available/default",
        "/etc/apache2/sites-enabled/000-default",
    );
    node.write(
        "/etc/apache2/sites-enabled/legacy",
        "<VirtualHost *:8080>\n</VirtualHost>\n",
        0o644,
    );
    node.write("/etc/apache2/conf.d/security", "ServerTokens Prod\n", 0o644);
    node.write(
        "/etc/apache2/other/charset",
        "AddDefaultCharset UTF-8\n",
        0o644,
    );
    node.link("../other/charset", "/etc/apache2/conf.d/charset");
    node.write(
        "/etc/gunicorn.d/synnefo",
        "CONFIG = {\n 'mode': 'django',\n 'args': (\n   '--bind=127.0.0.1:8080',\n ),\n}\n",
        0o644,
    );
    node
}

/// The entries of node directory `abs`: name and link target (or "file").
fn entries(node: &Node, abs: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = fs::read_dir(node.path(abs))
        .map(|d| {
            d.map(|e| {
                let e = e.unwrap();
                let target = fs::read_link(e.path())
                    .map(|t| t.display().to_string())
                    .unwrap_or_else(|_| "file".into());
                (e.file_name().to_string_lossy().into_owned(), target)
            })
            .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

#[test]
fn convert_then_prepare_then_abort_leaves_every_site_enabled_once() {
    let node = apache_node();
    let before = without_our_records(node.snapshot());
    let enabled = entries(&node, "/etc/apache2/sites-enabled");
    node.ok(&["convert", "--force"]);
    assert!(
        node.path("/etc/apache2/sites-enabled/synnefo.conf")
            .exists(),
        "convert did not rename: the test proves nothing"
    );
    assert!(node
        .path("/etc/apache2/conf-enabled/security.conf")
        .exists());
    node.ok(&["prepare"]);
    node.ok(&["abort"]);
    assert_eq!(entries(&node, "/etc/apache2/sites-enabled"), enabled);
    assert_eq!(without_our_records(node.snapshot()), before);
}

#[test]
fn convert_then_abort_keeps_an_edit_of_a_renamed_file_and_undoes_the_rename() {
    let node = apache_node();
    let before = without_our_records(node.snapshot());
    node.ok(&["prepare"]);
    node.ok(&["convert", "--force"]);
    // Edited after the conversion, under the new names.
    let site = node.path("/etc/apache2/sites-available/synnefo.conf");
    let mut text = fs::read_to_string(&site).unwrap();
    text.push_str("# ServerAlias added by hand\n");
    fs::write(&site, &text).unwrap();
    let snippet = node.path("/etc/apache2/conf-available/security.conf");
    fs::write(&snippet, "ServerTokens Minimal\n").unwrap();
    let out = node.ok(&["abort"]);
    let said = String::from_utf8_lossy(&out.stderr);
    let kept = kept_beside(&node, "/etc/apache2/sites-available/synnefo.conf");
    assert_eq!(kept.len(), 1, "{kept:?}\n{said}");
    assert_eq!(fs::read_to_string(&kept[0]).unwrap(), text);
    assert!(
        said.contains(&kept[0].file_name().unwrap().to_string_lossy().into_owned()),
        "{said}"
    );
    let kept = kept_beside(&node, "/etc/apache2/conf-available/security.conf");
    assert_eq!(kept.len(), 1, "{kept:?}\n{said}");
    assert_eq!(
        fs::read_to_string(&kept[0]).unwrap(),
        "ServerTokens Minimal\n"
    );
    // The copies are where Apache 2.2 does not look (sites-available,
    // conf-available); everything else is as before: renames undone.
    assert_eq!(
        without_kept(without_our_records(node.snapshot()), &before),
        before
    );
}
