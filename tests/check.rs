//! `check` on fixture nodes of every role mix and with every inhibitor: the
//! findings (ids, inhibitor flag), the exit code (3 when inhibited), the JSON
//! schema, and that nothing in the tree changes but the report it keeps.

mod common;

use common::{without_our_records, Node};
use serde_json::Value;

/// `check --json` on `node`: its exit code and document. It changes nothing
/// but its own record, which is what it printed.
fn check(node: &Node) -> (Option<i32>, Value) {
    let before = node.snapshot();
    let out = node.run(&["check", "--json"], &[]);
    let after = node.snapshot();
    assert_eq!(
        without_our_records(after.clone()),
        without_our_records(before),
        "check must write nothing but its report"
    );
    let json: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let kept = std::path::Path::new("var/lib/synnefo-upgrade/check.json");
    if after.contains_key(kept) {
        let saved: Value = serde_json::from_slice(
            &std::fs::read(node.path("/var/lib/synnefo-upgrade/check.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(saved, json, "the kept report is the one printed");
    } else {
        // Only where the state directory is not ours to write (a link: refused).
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("was not kept"), "{stderr}");
    }
    (out.status.code(), json)
}

fn ids(json: &Value, inhibitor: bool) -> Vec<String> {
    json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["inhibitor"].as_bool() == Some(inhibitor))
        .map(|f| f["id"].as_str().unwrap().to_string())
        .collect()
}

/// The findings of `json` with `id`.
fn with_id<'a>(json: &'a Value, id: &str) -> Vec<&'a Value> {
    json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["id"] == id)
        .collect()
}

fn roles(json: &Value) -> Vec<&str> {
    json["node"]["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect()
}

#[test]
fn all_in_one_node_passes_with_notices() {
    let node = Node::with_synnefo(&[
        "snf-astakos-app",
        "snf-cyclades-app",
        "snf-pithos-app",
        "snf-cyclades-gtools",
    ]);
    node.write("/etc/init.d/snf-dispatcher", "#!/bin/sh\n", 0o755);
    node.write(
        "/etc/default/snf-dispatcher",
        "# dispatcher\nSNF_DSPTCH_ENABLE=true\n",
        0o644,
    );
    node.write("/etc/init.d/snf-ganeti-eventd", "#!/bin/sh\n", 0o755);
    node.write(
        "/etc/default/snf-ganeti-eventd",
        "SNF_EVENTD_ENABLE=false\n",
        0o644,
    );
    node.write(
        "/var/lib/ganeti/ssconf_master_candidates",
        "node1.example.org\n",
        0o644,
    );
    node.write(
        "/var/lib/ganeti/ssconf_master_node",
        "node1.example.org\n",
        0o644,
    );
    let (code, json) = check(&node);
    assert_eq!(code, Some(0), "{json:#}");
    assert_eq!(json["schema"], 1);
    assert_eq!(
        roles(&json),
        [
            "astakos",
            "cyclades",
            "pithos",
            "ganeti-node",
            "master-candidate",
            "ganeti-master",
            "archipelago"
        ]
    );
    assert_eq!(json["node"]["synnefo"], "0.18.1");
    assert_eq!(json["node"]["os"], "wheezy");
    assert_eq!(json["node"]["init"], "offline");
    let services: Vec<&str> = json["node"]["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        services,
        [
            "gunicorn",
            "snf-dispatcher",
            "snf-ganeti-eventd",
            "archipelago"
        ]
    );
    assert!(ids(&json, true).is_empty());
    let notices = ids(&json, false);
    for id in [
        "migrations-here",
        "kamaki",
        "allowed-hosts",
        "eventd-flag",
        "dispatcher-flag",
    ] {
        assert!(
            notices.contains(&id.to_string()),
            "{id} missing from {notices:?}"
        );
    }
    let eventd = json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "eventd-flag")
        .unwrap();
    assert!(
        eventd["summary"]
            .as_str()
            .unwrap()
            .contains("kept disabled"),
        "{eventd}"
    );
    assert_eq!(json["plan"]["prepare"][0], "preflight");
    assert_eq!(json["plan"]["finish"][0], "preconditions");
}

#[test]
fn role_mixes() {
    let cases: &[(&[&str], &[&str])] = &[
        (&["snf-astakos-app"], &["astakos", "archipelago"]),
        (&["snf-cyclades-app"], &["cyclades", "archipelago"]),
        (&["snf-pithos-app"], &["pithos", "archipelago"]),
        (&["snf-cyclades-gtools"], &["ganeti-node", "archipelago"]),
    ];
    for (packages, want) in cases {
        let node = Node::with_synnefo(packages);
        let (code, json) = check(&node);
        assert_eq!(code, Some(0), "{packages:?}: {json:#}");
        assert_eq!(roles(&json), *want, "{packages:?}");
        let migrations = ids(&json, false).contains(&"migrations-here".to_string());
        assert_eq!(
            migrations,
            packages[0] != "snf-cyclades-gtools",
            "{packages:?}: migrations notice on service nodes only"
        );
    }
    // A master candidate that is not the master; FQDN in ssconf, short name here.
    let node = Node::with_synnefo(&["snf-cyclades-gtools"]);
    node.write(
        "/var/lib/ganeti/ssconf_master_candidates",
        "node0.example.org\nnode1.example.org\n",
        0o644,
    );
    node.write(
        "/var/lib/ganeti/ssconf_master_node",
        "node0.example.org\n",
        0o644,
    );
    let (_, json) = check(&node);
    assert_eq!(
        roles(&json),
        ["ganeti-node", "master-candidate", "archipelago"]
    );
}

fn inhibited_by(node: &Node, id: &str) -> Value {
    let (code, json) = check(node);
    assert_eq!(code, Some(3), "{id}: {json:#}");
    let inhibitors = ids(&json, true);
    assert!(
        inhibitors.contains(&id.to_string()),
        "{id} not in {inhibitors:?}"
    );
    // prepare refuses too, and changes nothing.
    let before = node.snapshot();
    let out = node.run(&["prepare"], &[]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{id}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(node.snapshot(), before, "{id}: prepare changed the tree");
    json.clone()
}

#[test]
fn inhibitor_wrong_os_release() {
    let node = Node::wheezy();
    node.to_jessie();
    inhibited_by(&node, "os-release");
}

#[test]
fn inhibitor_synnefo_not_0_18_1_but_other_snf_projects_ignored() {
    let mut node = Node::wheezy();
    node.package("snf-image", "0.16.2-1", None); // its own project and version
    node.config_files_package("snf-pithos-app", "0.17-1"); // removed: ignored
    let (code, _) = check(&node);
    assert_eq!(code, Some(0));
    node.package(
        "snf-cyclades-app",
        "1:0.17-1~wheezy",
        Some("synnefo (0.17-1~wheezy)"),
    );
    let json = inhibited_by(&node, "synnefo-version");
    let finding = json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "synnefo-version")
        .unwrap();
    assert!(
        finding["summary"]
            .as_str()
            .unwrap()
            .contains("snf-cyclades-app 1:0.17-1~wheezy"),
        "{finding}"
    );
    assert_eq!(json["node"]["synnefo"], "0.17, 0.18.1");
}

#[test]
fn inhibitor_ganeti_instances_running() {
    let node = Node::with_synnefo(&["snf-cyclades-gtools"]);
    node.write(
        "/var/run/ganeti/kvm-hypervisor/pid/vm1.example.org",
        "4242\n",
        0o644,
    );
    let json = inhibited_by(&node, "ganeti-instances");
    let finding = json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "ganeti-instances")
        .unwrap();
    // Drained, then each running instance by name: not gnt-node migrate,
    // which fails on a stopped instance of the node.
    assert_eq!(
        finding["remediation"]["commands"],
        serde_json::json!([
            "gnt-node modify --drained=yes node1",
            "gnt-instance migrate -f vm1.example.org"
        ])
    );
    assert!(finding["summary"]
        .as_str()
        .unwrap()
        .contains("vm1.example.org (kvm)"));
}

/// Instances of any hypervisor count, from each one's own runtime state (a
/// fake-hypervisor file, a chroot directory; under --root no process or
/// mount can be checked): the inhibitor names each with its hypervisor.
/// A Ganeti node that the cluster configuration shows open to new instances
/// gets the drain finding; drained or offline, none.
#[test]
fn instances_of_every_hypervisor_and_the_drain() {
    let node = Node::with_synnefo(&["snf-cyclades-gtools"]);
    node.write(
        "/var/run/ganeti/fake-hypervisor/vm2.example.org",
        "0\n512\n1\n",
        0o644,
    );
    std::fs::create_dir_all(node.path("/var/run/ganeti/chroot-hypervisor/vm3.example.org"))
        .unwrap();
    let config = |drained: bool| {
        format!(
            r#"{{"nodes": {{"u1": {{"name": "node1.example.org", "drained": {drained}, "offline": false}}}}}}"#
        )
    };
    node.write("/var/lib/ganeti/config.data", &config(false), 0o600);
    let json = inhibited_by(&node, "ganeti-instances");
    let finding = |id: &str| {
        json["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["id"] == id)
            .cloned()
    };
    assert_eq!(
        finding("ganeti-instances").unwrap()["summary"],
        "running: vm2.example.org (fake), vm3.example.org (chroot)"
    );
    let drain = finding("ganeti-node-not-drained").expect("the drain finding");
    assert_eq!(drain["severity"], "medium");
    assert_eq!(
        drain["remediation"]["commands"][0],
        "gnt-node modify --drained=yes node1"
    );

    node.write("/var/lib/ganeti/config.data", &config(true), 0o600);
    let json = inhibited_by(&node, "ganeti-instances");
    assert!(
        !json["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["id"] == "ganeti-node-not-drained"),
        "{json}"
    );
}

#[test]
fn inhibitor_not_enough_space() {
    let node = Node::wheezy();
    node.write(
        "/etc/synnefo-upgrade/upgrade.toml",
        "[preflight]\nspace_margin_mib = 1000000000\n",
        0o644,
    );
    let json = inhibited_by(&node, "disk-space");
    let finding = json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "disk-space")
        .unwrap();
    assert_eq!(finding["remediation"]["commands"][0], "apt-get clean");
}

#[test]
fn inhibitor_apt_source_without_successor() {
    fn titles(node: &Node) -> Vec<String> {
        let json = inhibited_by(node, "apt-source");
        json["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["id"] == "apt-source")
            .map(|f| f["title"].as_str().unwrap().to_string())
            .collect()
    }
    let node = Node::wheezy();
    node.write(
        "/etc/apt/sources.list.d/lts.list",
        "# LTS\ndeb http://ftp.debian.org/debian wheezy-lts main\n",
        0o644,
    );
    assert_eq!(
        titles(&node),
        ["/etc/apt/sources.list.d/lts.list:2: the APT suite has no jessie equivalent"]
    );
    // deb822: a Suites: value continued on the next line is read too.
    let node = Node::wheezy();
    node.write(
        "/etc/apt/sources.list.d/debian.sources",
        "Types: deb\nURIs: http://ftp.debian.org/debian\nSuites: wheezy\n wheezy-lts\nComponents: main\n",
        0o644,
    );
    assert_eq!(
        titles(&node),
        ["/etc/apt/sources.list.d/debian.sources:4: the APT suite has no jessie equivalent"]
    );
}

#[test]
fn inhibitor_service_node_without_a_debian_archive_for_backports() {
    let node = Node::with_synnefo(&["snf-pithos-app"]);
    node.write("/etc/apt/sources.list", common::NOT_DEBIAN_LIST, 0o644);
    let json = inhibited_by(&node, "apt-backports");
    let finding = with_id(&json, "apt-backports")[0];
    assert_eq!(
        finding["title"],
        "no Debian archive found to add jessie-backports from"
    );
    assert!(
        finding["remediation"]["hint"]
            .as_str()
            .unwrap()
            .contains("'deb MIRROR jessie-backports main'"),
        "{finding:#}"
    );
    // A site's mirror laid out as Debian's is taken for it, unless APT's
    // lists say otherwise; with lists that say Debian, any path will do.
    let release = |origin: &str| {
        format!("-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\nOrigin: {origin}\nLabel: {origin}\nSuite: oldstable\nCodename: wheezy\n")
    };
    for (uri, origin, recognised) in [
        ("http://mirror.example.org/debian/", None, true),
        ("http://mirror.example.org/debian/", Some("Example"), false),
        ("http://mirror.example.org/pub/os/", None, false),
        ("http://mirror.example.org/pub/os/", Some("Debian"), true),
    ] {
        node.write(
            "/etc/apt/sources.list.d/site.list",
            &format!("deb {uri} wheezy main contrib\n"),
            0o644,
        );
        let lists = node.path("/var/lib/apt/lists");
        let _ = std::fs::remove_dir_all(&lists);
        if let Some(origin) = origin {
            let name = format!(
                "{}dists_wheezy_InRelease",
                uri.trim_start_matches("http://").replace('/', "_")
            );
            node.write(
                &format!("/var/lib/apt/lists/{name}"),
                &release(origin),
                0o644,
            );
        }
        if recognised {
            let (code, json) = check(&node);
            assert_eq!(code, Some(0), "{uri} {origin:?}: {json:#}");
        } else {
            inhibited_by(&node, "apt-backports");
        }
    }

    // A backports source listed already: nothing to derive.
    let node = Node::with_synnefo(&["snf-astakos-app"]);
    node.write(
        "/etc/apt/sources.list",
        &format!(
            "{}deb http://mirror.example.org/pub/os/ jessie-backports main\n",
            common::NOT_DEBIAN_LIST
        ),
        0o644,
    );
    let (code, json) = check(&node);
    assert_eq!(code, Some(0), "{json:#}");
    // Not a service node: it needs no backports.
    let node = Node::wheezy();
    node.write("/etc/apt/sources.list", common::NOT_DEBIAN_LIST, 0o644);
    let (code, json) = check(&node);
    assert_eq!(code, Some(0), "{json:#}");
}

/// A wheezy disc among the sources: reported (prepare comments it out) in a
/// one-line file; an inhibitor in a deb822 stanza, which prepare leaves alone.
#[test]
fn wheezy_disc_reported_and_inhibits_in_a_deb822_stanza() {
    let disc = "deb cdrom:[Debian GNU/Linux 7.0 _Wheezy_ - Official amd64 DVD Binary-1 20130504-14:43]/ wheezy main contrib";
    let node = Node::with_synnefo(&["snf-cyclades-app"]);
    node.write(
        "/etc/apt/sources.list",
        &format!("{disc}\n{}", common::SOURCES_LIST),
        0o644,
    );
    let (code, json) = check(&node);
    assert_eq!(code, Some(0), "{json:#}");
    let cdrom = with_id(&json, "apt-cdrom");
    assert_eq!(cdrom.len(), 1, "{json:#}");
    assert_eq!(
        cdrom[0]["title"],
        "/etc/apt/sources.list:1: a wheezy disc cannot serve jessie"
    );
    assert_eq!(cdrom[0]["severity"], "low");
    assert!(
        cdrom[0]["summary"].as_str().unwrap().contains(
            "'cdrom:[Debian GNU/Linux 7.0 _Wheezy_ - Official amd64 DVD Binary-1 20130504-14:43]/'"
        ),
        "{json:#}"
    );
    // A jessie disc serves jessie: nothing to say.
    node.write(
        "/etc/apt/sources.list.d/dvd.list",
        "deb cdrom:[Debian GNU/Linux 8 _Jessie_ - Official amd64 DVD Binary-1]/ jessie main\n",
        0o644,
    );
    assert_eq!(with_id(&check(&node).1, "apt-cdrom").len(), 1);

    let node = Node::with_synnefo(&["snf-cyclades-app"]);
    node.write(
        "/etc/apt/sources.list.d/dvd.sources",
        "Types: deb\nURIs: cdrom:[Debian7]/\nSuites: wheezy\nComponents: main\n",
        0o644,
    );
    let json = inhibited_by(&node, "apt-cdrom");
    let titles: Vec<&str> = with_id(&json, "apt-cdrom")
        .iter()
        .map(|f| f["title"].as_str().unwrap())
        .collect();
    assert_eq!(
        titles,
        ["/etc/apt/sources.list.d/dvd.sources:3: a wheezy disc cannot serve jessie"]
    );
    // Disabled by the operator: APT does not read it.
    node.write(
        "/etc/apt/sources.list.d/dvd.sources",
        "Enabled: no\nTypes: deb\nURIs: cdrom:[Debian7]/\nSuites: wheezy\nComponents: main\n",
        0o644,
    );
    let (code, json) = check(&node);
    assert_eq!(code, Some(0), "{json:#}");
}

#[test]
fn inhibitor_already_armed_and_foreign_state() {
    let node = Node::wheezy();
    node.ok(&["prepare"]);
    let (code, json) = check(&node);
    assert_eq!(code, Some(3));
    assert!(ids(&json, true).contains(&"already-armed".to_string()));
    // A state file of another version of the tool.
    let node = Node::wheezy();
    node.write(
        "/var/lib/synnefo-upgrade/state.json",
        "{\"schema\": 7, \"phase\": \"armed\"}\n",
        0o600,
    );
    inhibited_by(&node, "state-file");
}

#[test]
fn inhibitor_bad_changelog() {
    let node = Node::wheezy();
    node.write(
        "/etc/synnefo-upgrade/upgrade.toml",
        "[fix_ip_history]\nchangelog = \"/root/owners.log\"\n",
        0o644,
    );
    node.write(
        "/root/owners.log",
        "12|0f5c2b3e-8a1d-4c6e-9b7a-1d2e3f4a5b6c|7d8e9f0a-1b2c-4d3e-8f4a-5b6c7d8e9f0a|2016-03-01 12:30:00.0\n13|x|y|z\n",
        0o600,
    );
    let json = inhibited_by(&node, "changelog-invalid");
    let finding = json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "changelog-invalid")
        .unwrap();
    assert!(
        finding["summary"].as_str().unwrap().starts_with("line 2: "),
        "{finding}"
    );
    assert_eq!(
        finding["remediation"]["commands"][0],
        "synnefo-upgrade validate-changelog /root/owners.log"
    );
    // A path with a space is one word of the command.
    node.write(
        "/etc/synnefo-upgrade/upgrade.toml",
        "[fix_ip_history]\nchangelog = \"/root/vm owners.log\"\n",
        0o644,
    );
    std::fs::rename(
        node.path("/root/owners.log"),
        node.path("/root/vm owners.log"),
    )
    .unwrap();
    let json = inhibited_by(&node, "changelog-invalid");
    assert_eq!(
        self::finding(&json, "changelog-invalid")["remediation"]["commands"][0],
        "synnefo-upgrade validate-changelog \"/root/vm owners.log\""
    );
}

#[test]
fn text_report_groups_by_severity() {
    let node = Node::wheezy();
    node.to_jessie();
    let out = node.run(&["check"], &[]);
    assert_eq!(out.status.code(), Some(3));
    let text = String::from_utf8_lossy(&out.stdout);
    let inhibitors = text.find("INHIBITORS").expect("inhibitors section");
    let info = text.find("\ninfo:").expect("info section");
    assert!(inhibitors < info, "{text}");
    assert!(
        text.contains("[os-release] the OS is 'jessie', not 'wheezy'"),
        "{text}"
    );
}

#[test]
fn validate_changelog_reports_every_bad_line_or_a_summary() {
    let node = Node::wheezy();
    let good = "12|0f5c2b3e-8a1d-4c6e-9b7a-1d2e3f4a5b6c|7d8e9f0a-1b2c-4d3e-8f4a-5b6c7d8e9f0a|2016-03-01 12:30:00.000000\n\
                14|7d8e9f0a-1b2c-4d3e-8f4a-5b6c7d8e9f0a|0f5c2b3e-8a1d-4c6e-9b7a-1d2e3f4a5b6c|2016-01-02 00:00:00.5\n";
    node.write("/tmp/good.log", good, 0o644);
    let out = node.run(
        &[
            "validate-changelog",
            node.path("/tmp/good.log").to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("valid: 2 change(s) of 2 VM(s), from 2016-01-02 00:00:00.5 to 2016-03-01 12:30:00.000000"), "{text}");

    node.write("/tmp/bad.log", &format!("{good}\n12|a|b\n"), 0o644);
    let out = node.run(
        &[
            "validate-changelog",
            node.path("/tmp/bad.log").to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.log:3: blank line"), "{err}");
    assert!(err.contains("bad.log:4: 3 fields"), "{err}");
}

#[test]
fn conversion_problems_surface_before_arming() {
    // A custom allocator: kept, with a notice.
    let node = Node::with_synnefo(&["snf-cyclades-app"]);
    node.write(
        "/etc/synnefo/20-snf-cyclades-app-backend.conf",
        "BACKEND_ALLOCATOR_MODULE = 'grnet.allocators.RackAware'\n",
        0o640,
    );
    let (code, json) = check(&node);
    assert_eq!(code, Some(0));
    let notices = ids(&json, false);
    assert!(
        notices.contains(&"custom-allocator".to_string()),
        "{notices:?}"
    );
    // A setting the converter must refuse: an inhibitor now, not a failed finish later.
    node.write(
        "/etc/synnefo/20-snf-cyclades-app-api.conf",
        "VMAPI_CACHE_BACKEND = BASE_URL + 'x'\n",
        0o640,
    );
    let json = inhibited_by(&node, "convert-refused");
    let finding = json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "convert-refused")
        .unwrap();
    assert!(
        finding["summary"]
            .as_str()
            .unwrap()
            .contains("/etc/synnefo/20-snf-cyclades-app-api.conf:1"),
        "{finding}"
    );
}

/// The `field` (a string) of every finding `id`, in report order.
fn of_every<'a>(json: &'a Value, id: &str, field: &str) -> Vec<&'a str> {
    json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["id"] == id)
        .map(|f| f[field].as_str().unwrap())
        .collect()
}

#[test]
fn settings_python_2_accepts_are_read_bom_coding_crlf_form_feed() {
    // A byte order mark, a coding line, CRLF ends, a form feed before a
    // statement, tabs, Latin-1 comments: all valid Python 2, nothing to refuse.
    let node = Node::with_synnefo(&["snf-cyclades-app"]);
    node.write(
        "/etc/synnefo/20-snf-cyclades-app-backend.conf",
        "\u{feff}# -*- coding: utf-8 -*-\r\nBACKEND_ALLOCATOR_MODULE\t= 'grnet.allocators.RackAware'\r\n",
        0o640,
    );
    node.write(
        "/etc/synnefo/20-snf-cyclades-app-api.conf",
        "# caf\u{e9}\n\x0c\nCACHE_BACKEND = 'locmem://'\n\x0cVMAPI_CACHE_KEY_PREFIX = 'vm'\n",
        0o640,
    );
    // gunicorn configs are Python 2 too: in Latin-1, with a coding line.
    node.write("/etc/gunicorn.d/synnefo", "", 0o644);
    std::fs::write(
        node.path("/etc/gunicorn.d/synnefo"),
        b"# -*- coding: latin-1 -*-\n# caf\xe9\nCONFIG = {\n 'mode': 'django',\n 'working_dir': '/etc/synnefo',\n 'args': ('--bind=0.0.0.0:8080',),\n}\n",
    )
    .unwrap();
    let (code, json) = check(&node);
    assert_eq!(code, Some(0), "{json:#}");
    assert!(ids(&json, true).is_empty(), "{json:#}");
    assert!(finding(&json, "gunicorn-forwarded-ips")["title"]
        .as_str()
        .unwrap()
        .contains("0.0.0.0:8080"));
    // Read, not skipped: the allocator behind the byte order mark is seen.
    assert!(finding(&json, "custom-allocator")["title"]
        .as_str()
        .unwrap()
        .contains("RackAware"));
}

fn finding<'a>(json: &'a Value, id: &str) -> &'a Value {
    json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == id)
        .unwrap_or_else(|| panic!("no {id} in {json:#}"))
}

#[test]
fn inhibitor_south_migrations_pending_on_the_migrating_node_only() {
    let node = Node::with_synnefo(&["snf-cyclades-app"]);
    let (code, json) = check(&node);
    assert_eq!(code, Some(0), "all applied: {json:#}");
    assert!(!ids(&json, false).iter().any(|i| i.starts_with("south-")));

    node.write(
        "/var/lib/fake-south/list",
        " db\n  (*) 0001_initial\n  ( ) 0002_auto__add_ipaddresshistory\n\n logic\n  (*) 0001_initial\n",
        0o644,
    );
    let json = inhibited_by(&node, "south-migrations-pending");
    let f = finding(&json, "south-migrations-pending");
    assert!(
        f["summary"]
            .as_str()
            .unwrap()
            .contains("db 0002_auto__add_ipaddresshistory"),
        "{f}"
    );
    assert_eq!(f["remediation"]["commands"][0], "snf-manage migrate db");

    // A node that does not run the migrations does not ask.
    node.write(
        "/etc/synnefo-upgrade/upgrade.toml",
        "[migrations]\nrun = false\n",
        0o644,
    );
    let (code, json) = check(&node);
    assert_eq!(code, Some(0), "{json:#}");
}

#[test]
fn south_list_that_cannot_be_had_is_a_warning() {
    let node = Node::with_synnefo(&["snf-astakos-app"]);
    node.write(
        "/usr/bin/snf-manage",
        "#!/bin/sh\necho 'OperationalError: could not connect to server' >&2\nexit 1\n",
        0o755,
    );
    let (code, json) = check(&node);
    assert_eq!(code, Some(0), "{json:#}");
    let f = finding(&json, "south-migrations-unknown");
    assert_eq!(f["inhibitor"], false);
    assert!(
        f["summary"].as_str().unwrap().contains("could not connect"),
        "{f}"
    );
}

#[test]
fn inhibitor_fstab_device_missing_or_network_mount_systemd_cannot_recognise() {
    let node = Node::wheezy();
    node.write("/dev/disk/by-uuid/1111-aaaa", "", 0o644);
    node.write(
        "/etc/fstab",
        "UUID=1111-aaaa / ext4 errors=remount-ro 0 1\nUUID=2222-bbbb /srv ext4 defaults,nofail 0 2\nnas:/export /mnt/nfs nfs defaults 0 0\n",
        0o644,
    );
    let (code, json) = check(&node);
    assert_eq!(code, Some(0), "{json:#}");
    assert!(ids(&json, false).contains(&"fstab-netdev".to_string()));

    node.write(
        "/etc/fstab",
        "UUID=1111-aaaa / ext4 errors=remount-ro 0 1\n/dev/sdb2 none swap sw 0 0\n",
        0o644,
    );
    let json = inhibited_by(&node, "fstab-device-missing");
    assert!(finding(&json, "fstab-device-missing")["title"]
        .as_str()
        .unwrap()
        .starts_with("/etc/fstab:2:"));

    node.write(
        "/etc/fstab",
        "gluster1:/vol /srv/images fuse.glusterfs defaults 0 0\n",
        0o644,
    );
    inhibited_by(&node, "fstab-network-unrecognised");
}

#[test]
fn dkms_module_without_the_new_kernels_headers_is_reported() {
    let mut node = Node::wheezy();
    node.package("ganeti", "2.12.4-1~bpo70+1", None);
    node.package("linux-image-amd64", "3.2+46", None);
    node.package("linux-headers-3.2.0-4-amd64", "3.2.96-2", None);
    std::fs::create_dir_all(node.path("/var/lib/dkms/blktap/2.0.91")).unwrap();
    let (code, json) = check(&node);
    assert_eq!(code, Some(0), "{json:#}");
    let f = finding(&json, "dkms-headers");
    assert!(f["title"].as_str().unwrap().contains("blktap"), "{f}");
    assert_eq!(
        f["remediation"]["commands"][0],
        "apt-get install linux-headers-amd64"
    );
    node.package("linux-headers-amd64", "3.2+46", None);
    let (_, json) = check(&node);
    assert!(!ids(&json, false).contains(&"dkms-headers".to_string()));
}

#[test]
fn reported_not_changed_postgresql_amqp_guest_gunicorn_proxy() {
    let mut node = Node::with_synnefo(&["snf-cyclades-app"]);
    node.package("postgresql-9.1", "9.1.24lts2-0+deb7u1", None);
    node.write(
        "/etc/postgresql/9.1/main/postgresql.conf",
        "port = 5432\n",
        0o644,
    );
    node.write(
        "/etc/postgresql/9.4/main/postgresql.conf",
        "port = 5433\n",
        0o644,
    );
    node.write(
        "/etc/synnefo/20-snf-cyclades-app-queues.conf",
        "AMQP_HOSTS = [\"amqp://guest:guest@mq.example.org:5672\"]\n",
        0o640,
    );
    node.write(
        "/etc/gunicorn.d/synnefo",
        "CONFIG = {\n 'mode': 'django',\n 'working_dir': '/etc/synnefo',\n 'args': (\n   '--bind=0.0.0.0:8080',\n   '--workers=8',\n ),\n}\n",
        0o644,
    );
    let (code, json) = check(&node);
    assert_eq!(code, Some(0), "notices only: {json:#}");
    let pg = finding(&json, "postgresql-clusters");
    assert_eq!(pg["inhibitor"], false);
    assert_eq!(
        pg["remediation"]["commands"],
        serde_json::json!([
            "pg_dropcluster --stop 9.4 main",
            "pg_upgradecluster 9.1 main"
        ])
    );
    assert!(finding(&json, "amqp-remote-guest")["title"]
        .as_str()
        .unwrap()
        .contains("mq.example.org"));
    assert!(finding(&json, "gunicorn-forwarded-ips")["title"]
        .as_str()
        .unwrap()
        .contains("0.0.0.0:8080"));

    // status says the same, after the upgrade as before it.
    let status: Value = serde_json::from_slice(&node.ok(&["status", "--json"]).stdout).unwrap();
    let noticed: Vec<&str> = status["notices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        noticed,
        [
            "postgresql-clusters",
            "amqp-remote-guest",
            "gunicorn-forwarded-ips"
        ]
    );
    let text = String::from_utf8_lossy(&node.ok(&["status"]).stdout).to_string();
    assert!(text.contains("# pg_upgradecluster 9.1 main"), "{text}");

    // With Apache on this host, the proxy is local: no gunicorn notice.
    node.package("apache2", "2.2.22-13+deb7u13", None);
    let (_, json) = check(&node);
    assert!(!ids(&json, false).contains(&"gunicorn-forwarded-ips".to_string()));
}

#[test]
fn apache_2_2_access_control_without_access_compat_is_reported() {
    let node = Node::with_synnefo(&["snf-cyclades-app"]);
    node.write(
        "/etc/apache2/sites-available/synnefo",
        "<Location />\n  # Order deny,allow\n  order allow,deny\n  Allow from all\n</Location>\n",
        0o644,
    );
    node.write("/etc/apache2/conf.d/status", "Deny from all\n", 0o644);
    let (_, json) = check(&node);
    let found = finding(&json, "apache-access-compat");
    assert_eq!(found["inhibitor"], false, "{found}");
    let summary = found["summary"].as_str().unwrap();
    for place in [
        "/etc/apache2/sites-available/synnefo:3 (order)",
        "/etc/apache2/sites-available/synnefo:4 (Allow)",
        "/etc/apache2/conf.d/status:1 (Deny)",
    ] {
        assert!(summary.contains(place), "{place} in {summary}");
    }
    assert!(!summary.contains("synnefo:2"), "a comment: {summary}");
    assert!(
        found["remediation"]["hint"]
            .as_str()
            .unwrap()
            .contains("Require all granted"),
        "{found}"
    );
    assert_eq!(
        found["remediation"]["commands"][0], "a2enmod access_compat",
        "{found}"
    );

    // With mod_access_compat enabled there is nothing to report.
    node.link(
        "../mods-available/access_compat.load",
        "/etc/apache2/mods-enabled/access_compat.load",
    );
    let (_, json) = check(&node);
    assert!(
        !ids(&json, false).contains(&"apache-access-compat".to_string()),
        "{json:#}"
    );
}

#[test]
fn dpkg_hold_on_a_synnefo_package_inhibits_without_a_download() {
    let node = Node::wheezy();
    node.set_dpkg("snf-common", "hold ok installed", None);
    let json = inhibited_by(&node, "dpkg-hold");
    let f = finding(&json, "dpkg-hold");
    assert!(f["title"].as_str().unwrap().contains("snf-common"), "{f}");
    assert_eq!(
        f["remediation"]["commands"][0],
        "apt-mark unhold snf-common"
    );
    // The simulation is not run under --root, and says so.
    assert!(ids(&json, false).contains(&"dist-upgrade-not-simulated".to_string()));
    node.set_dpkg("snf-common", "install ok installed", None);
    let (code, json) = check(&node);
    assert_eq!(code, Some(0), "{json:#}");
}

#[test]
fn apt_pin_keeping_sysvinit_core_or_old_synnefo_inhibits() {
    let node = Node::wheezy();
    node.write(
        "/etc/apt/preferences.d/keep-sysvinit",
        "# we like sysvinit\nPackage: sysvinit-core\nPin: release *\nPin-Priority: 1001\n",
        0o644,
    );
    let json = inhibited_by(&node, "apt-pin");
    let title = finding(&json, "apt-pin")["title"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        title.starts_with("/etc/apt/preferences.d/keep-sysvinit:2:"),
        "{title}"
    );
    assert!(title.contains("sysvinit-core"), "{title}");
    std::fs::remove_file(node.path("/etc/apt/preferences.d/keep-sysvinit")).unwrap();
    node.write(
        "/etc/apt/preferences",
        "Package: snf-*\nPin: version 0.18.1*\nPin-Priority: 1001\n",
        0o644,
    );
    let json = inhibited_by(&node, "apt-pin");
    assert!(finding(&json, "apt-pin")["title"]
        .as_str()
        .unwrap()
        .starts_with("/etc/apt/preferences:1:"));
    // The guide's own gevent pin is no problem.
    std::fs::remove_file(node.path("/etc/apt/preferences")).unwrap();
    node.write(
        "/etc/apt/preferences.d/synnefo-upgrade-gevent",
        "Package: python-gevent\nPin: version 1.1.1-2*\nPin-Priority: 990\n",
        0o644,
    );
    let (code, json) = check(&node);
    assert_eq!(code, Some(0), "{json:#}");
}

#[test]
fn dist_upgrade_not_simulated_under_root_or_when_configured_off_is_a_notice() {
    let node = Node::wheezy();
    let (code, json) = check(&node);
    assert_eq!(code, Some(0), "{json:#}");
    let f = finding(&json, "dist-upgrade-not-simulated");
    assert_eq!(f["severity"], "info", "{f}");
    assert_eq!(f["inhibitor"], false, "{f}");
    assert!(f["summary"].as_str().unwrap().contains("--root"), "{f}");
    node.write(
        "/etc/synnefo-upgrade/upgrade.toml",
        "[preflight]\nsimulate = false\n",
        0o644,
    );
    let (_, json) = check(&node);
    let f = finding(&json, "dist-upgrade-not-simulated");
    assert!(
        f["summary"].as_str().unwrap().contains("simulate = false"),
        "{f}"
    );
}

#[test]
fn x_forwarded_protocol_wherever_the_web_servers_read_it_is_reported() {
    let node = Node::with_synnefo(&["snf-cyclades-app"]);
    node.write(
        "/etc/apache2/apache2.conf",
        "RequestHeader set X-Forwarded-Protocol https\nIncludeOptional sites-enabled/*.conf\n",
        0o644,
    );
    node.write(
        "/etc/apache2/sites-available/synnefo.conf",
        "<VirtualHost *:443>\n  Include ../synnefo/apache-*.inc\n  Include /srv/apache/headers.conf\n</VirtualHost>\n",
        0o644,
    );
    node.link(
        "../sites-available/synnefo.conf",
        "/etc/apache2/sites-enabled/synnefo.conf",
    );
    node.write(
        "/etc/synnefo/apache-proxy.inc",
        "RequestHeader set X-Forwarded-Protocol \"https\"\n",
        0o644,
    );
    node.write(
        "/srv/apache/headers.conf",
        "RequestHeader set X-Forwarded-Protocol https\n",
        0o644,
    );
    node.write(
        "/etc/nginx/proxy_params",
        "proxy_set_header Host $http_host;\nproxy_set_header X-Forwarded-Protocol $scheme;\n",
        0o644,
    );
    node.write(
        "/etc/nginx/sites-available/synnefo",
        "server { location / { proxy_set_header X-Forwarded-Protocol $scheme; proxy_pass http://127.0.0.1:8080; } }\n",
        0o644,
    );
    let (code, json) = check(&node);
    assert_eq!(code, Some(0), "{json:#}");
    let plan = finding(&json, "convert-plan")["summary"]
        .as_str()
        .unwrap()
        .to_string();
    for file in [
        "/etc/apache2/apache2.conf",
        "/etc/synnefo/apache-proxy.inc",
        "/etc/nginx/proxy_params",
        "/etc/nginx/sites-available/synnefo",
    ] {
        assert!(
            plan.contains(&format!(
                "{file}: X-Forwarded-Protocol -> X-Forwarded-Proto"
            )),
            "{file} in {plan}"
        );
    }
    let warnings = of_every(&json, "convert-warning", "summary");
    assert!(
        warnings.iter().any(|w| w.starts_with(
            "'/etc/apache2/sites-available/synnefo.conf:3' includes '/srv/apache/headers.conf', outside /etc: not followed"
        ) && w.contains("X-Forwarded-Proto")),
        "{warnings:#?}"
    );
}

#[test]
fn another_django_app_in_gunicorn_d_is_reported_synnefo_is_converted() {
    let node = Node::with_synnefo(&["snf-cyclades-app"]);
    node.write(
        "/etc/gunicorn.d/shop",
        "CONFIG = {\n    'mode': 'django',\n    'working_dir': '/srv/shop',\n    'environment': {'DJANGO_SETTINGS_MODULE': 'shop.settings'},\n    'args': ('--bind=127.0.0.1:9000',),\n}\n",
        0o644,
    );
    node.write(
        "/etc/gunicorn.d/blog",
        "CONFIG = {'mode': 'django', 'working_dir': '/srv/blog', 'args': ('--bind=127.0.0.1:9001',)}\n",
        0o644,
    );
    node.write(
        "/etc/gunicorn.d/wiki",
        "CONFIG = {'mode': 'wsgi', 'working_dir': '/srv/wiki', 'args': ('wiki.wsgi:application',)}\n",
        0o644,
    );
    node.write(
        "/etc/gunicorn.d/synnefo",
        "CONFIG = {\n 'mode': 'django',\n 'working_dir': '/etc/synnefo',\n 'args': ('--bind=127.0.0.1:8080', 'synnefo.webproject.wsgi:application'),\n}\n",
        0o644,
    );
    let (code, json) = check(&node);
    assert_eq!(code, Some(0), "{json:#}");
    let titles = of_every(&json, "gunicorn-django-mode", "title");
    assert_eq!(
        titles,
        [
            "/etc/gunicorn.d/blog runs another application (working_dir '/srv/blog') in gunicorn's Django mode",
            "/etc/gunicorn.d/shop runs another application (Django settings 'shop.settings') in gunicorn's Django mode"
        ]
    );
    let shop = finding(&json, "gunicorn-django-mode");
    assert_eq!(shop["severity"], "medium");
    assert!(
        shop["remediation"]["hint"]
            .as_str()
            .unwrap()
            .contains("'mode': 'wsgi'"),
        "{shop}"
    );
    // Synnefo's own config is converted, its WSGI module not added twice.
    let plan = finding(&json, "convert-plan")["summary"].as_str().unwrap();
    assert!(
        plan.contains("/etc/gunicorn.d/synnefo: mode django -> wsgi") && !plan.contains("appended"),
        "{plan}"
    );
    assert!(!plan.contains("shop") && !plan.contains("blog"), "{plan}");
}

/// `check`'s downtime forecast: the databases the node dumps before migrating
/// with their size from PostgreSQL (a fake `psql` answers
/// `pg_database_size`), the packages to unpack unknown under `--root` (no
/// simulation there, said in a note); a node that waits dumps nothing.
#[test]
fn forecast_names_the_databases_to_dump_with_their_size() {
    let node = Node::wheezy();
    node.write(
        "/etc/synnefo/10-snf-webproject-database.conf",
        "DATABASES = {'default': {'ENGINE': 'django.db.backends.postgresql_psycopg2', 'NAME': 'snf_apps', 'USER': 'synnefo', 'PASSWORD': 'pw', 'HOST': '10.0.0.1', 'PORT': '5432'}}\n",
        0o640,
    );
    node.write(
        "/etc/synnefo/20-snf-pithos-backend.conf",
        "PITHOS_BACKEND_DB_CONNECTION = 'postgresql://synnefo:pw@10.0.0.1:5432/snf_pithos'\n",
        0o640,
    );
    node.write(
        "/usr/bin/psql",
        "#!/bin/sh\ncase \"$*\" in\n*snf_apps*pg_database_size*) echo 3145728 ;;\n*snf_pithos*pg_database_size*) echo 1048576 ;;\n*) exit 2 ;;\nesac\n",
        0o755,
    );
    let out = node.run(&["check", "--json"], &[]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let f = &report["forecast"];
    assert_eq!(f["database_bytes"], 4 << 20, "{f}");
    assert_eq!(f["databases"][0]["name"], "snf_apps");
    assert_eq!(f["databases"][0]["host"], "10.0.0.1");
    assert_eq!(f["databases"][1]["bytes"], 1 << 20);
    assert!(f["packages_to_unpack"].is_null(), "{f}");
    assert!(
        f["notes"]
            .to_string()
            .contains("not simulated: under --root"),
        "{f}"
    );
    let text = node.run(&["check"], &[]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("dump database snf_apps at 10.0.0.1: 3.0 MiB"),
        "{text}"
    );

    // A node that waits for the migrations dumps nothing.
    node.write(
        "/etc/synnefo-upgrade/upgrade.toml",
        "[migrations]\nrun = false\n",
        0o644,
    );
    let out = node.run(&["check", "--json"], &[]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let f = &report["forecast"];
    assert_eq!(f["databases"], serde_json::json!([]));
    assert!(f["database_bytes"].is_null());
    assert!(f["notes"].to_string().contains("does not dump"), "{f}");
}

#[test]
fn a_report_that_cannot_be_kept_is_said_and_the_check_still_answers() {
    let node = Node::wheezy();
    let elsewhere = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(elsewhere.path(), node.path("/var/lib/synnefo-upgrade")).unwrap();
    let before = node.snapshot();
    let out = node.run(&["check", "--json"], &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("the report above was not kept in /var/lib/synnefo-upgrade/check.json")
            && stderr.contains("is a symbolic link"),
        "{stderr}"
    );
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["schema"], 1);
    assert_eq!(node.snapshot(), before, "nothing written through the link");
    assert_eq!(std::fs::read_dir(elsewhere.path()).unwrap().count(), 0);
}

/// A database server of its own (PostgreSQL, no Synnefo service): its
/// forecast names the clusters the dist-upgrade restarts inside the outage,
/// with their data, beside the notice that says what to do about the major
/// version.
#[test]
fn a_database_server_forecasts_its_postgresql_clusters() {
    let mut node = Node::with_synnefo(&[]);
    node.package("postgresql-9.1", "9.1.24lts2-0+deb7u1", None);
    node.write(
        "/etc/postgresql/9.1/main/postgresql.conf",
        "port = 5432\n",
        0o644,
    );
    node.write("/var/lib/postgresql/9.1/main/PG_VERSION", "9.1\n", 0o600);
    node.write(
        "/var/lib/postgresql/9.1/main/base/1/12345",
        &"x".repeat(3000),
        0o600,
    );
    let (_, json) = check(&node);
    assert_eq!(
        json["forecast"]["postgresql_clusters"],
        serde_json::json!([{"version": "9.1", "name": "main", "data_bytes": 3004}]),
        "{json:#}"
    );
    assert_eq!(finding(&json, "postgresql-clusters")["inhibitor"], false);
    let text = String::from_utf8_lossy(&node.run(&["check"], &[]).stdout).to_string();
    assert!(
        text.contains(
            "PostgreSQL cluster 9.1/main (0.0 MiB of data): restarted by the dist-upgrade"
        ),
        "{text}"
    );
}
