//! The dist-upgrade simulation with the real APT of this machine, against a
//! local `file:` repository built here (dpkg-deb, apt-ftparchive) with suites
//! wheezy and jessie, and a fixture root's dpkg status, sources and
//! preferences: what `check` runs on a live node. (The binary does not
//! simulate under `--root`; these tests call the library's runner on the
//! fixture tree, which reads the node only through the root it is given.)
//!
//! `prepare --download-only` runs as the binary under `--root` on such a
//! node: the same scratch APT state, then the download into the root's own
//! archive cache. Its sources say `copy:` (APT's `file:` method uses the
//! files in place; `copy:` copies them into the cache, as `http:` would).
//!
//! Skipped, saying so, where the tools are missing or the test is not root
//! (APT's sandbox needs root).

mod common;

use common::Node;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use synnefo_upgrade::base::dpkg;
use synnefo_upgrade::base::finding::Finding;
use synnefo_upgrade::base::fsx::Root;
use synnefo_upgrade::findings::aptsim::{self, Action, Simulated};
use synnefo_upgrade::inputs::config::Config;

fn tools_present() -> bool {
    let ok = ["apt-get", "dpkg-deb", "apt-ftparchive"].iter().all(|t| {
        Command::new("sh")
            .args(["-c", &format!("command -v {t}")])
            .output()
            .is_ok_and(|o| o.status.success())
    }) && nix::unistd::geteuid().is_root();
    if !ok {
        eprintln!("SKIPPED: needs root, apt-get, dpkg-deb and apt-ftparchive");
    }
    ok
}

/// A fake binary package `name` `version` (Architecture: all) in `pool`.
fn build_deb(pool: &Path, name: &str, version: &str, extra: &str) {
    let dir = tempfile::tempdir().unwrap();
    let debian = dir.path().join("DEBIAN");
    std::fs::create_dir_all(&debian).unwrap();
    std::fs::write(
        debian.join("control"),
        format!("Package: {name}\nVersion: {version}\nArchitecture: all\nMaintainer: Test <test@example.org>\n{extra}Description: fake {name}\n"),
    )
    .unwrap();
    std::fs::create_dir_all(pool).unwrap();
    let out = Command::new("dpkg-deb")
        .args(["--build", "--root-owner-group"])
        .arg(dir.path())
        .arg(pool.join(format!("{name}_{version}_all.deb")))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A repository with `dists/{wheezy,jessie}/main/binary-amd64` and a
/// Release file each (unsigned: the sources say `[trusted=yes]`).
fn build_repo(repo: &Path) {
    let wheezy = repo.join("pool/wheezy");
    for name in ["snf-common", "snf-webproject"] {
        build_deb(&wheezy, name, "0.18.1-1~wheezy", "");
    }
    build_deb(&wheezy, "sysvinit", "2.88dsf-41+deb7u1", "");
    let jessie = repo.join("pool/jessie");
    for name in ["snf-common", "snf-webproject"] {
        build_deb(&jessie, name, "0.19-1~jessie", "");
    }
    build_deb(
        &jessie,
        "sysvinit",
        "2.88dsf-59",
        "Depends: systemd-sysv | sysvinit-core\n",
    );
    build_deb(&jessie, "systemd-sysv", "215-17+deb8u7", "");
    build_deb(&jessie, "sysvinit-core", "2.88dsf-59", "");
    for suite in ["wheezy", "jessie"] {
        for arch in ["amd64", "arm64", "i386"] {
            let dir = repo.join(format!("dists/{suite}/main/binary-{arch}"));
            std::fs::create_dir_all(&dir).unwrap();
            let out = Command::new("apt-ftparchive")
                .args(["packages", &format!("pool/{suite}")])
                .current_dir(repo)
                .output()
                .unwrap();
            assert!(out.status.success());
            std::fs::write(dir.join("Packages"), out.stdout).unwrap();
        }
        let out = Command::new("apt-ftparchive")
            .args([
                "-o",
                &format!("APT::FTPArchive::Release::Suite={suite}"),
                "-o",
                &format!("APT::FTPArchive::Release::Codename={suite}"),
                "-o",
                "APT::FTPArchive::Release::Components=main",
                "-o",
                "APT::FTPArchive::Release::Architectures=amd64 arm64 i386",
                "release",
                &format!("dists/{suite}"),
            ])
            .current_dir(repo)
            .output()
            .unwrap();
        assert!(out.status.success());
        std::fs::write(repo.join(format!("dists/{suite}/Release")), out.stdout).unwrap();
    }
}

/// A wheezy node whose only source is the local repository (as the VM's).
fn node(repo: &Path) -> Node {
    let mut node = Node::wheezy();
    node.package("sysvinit", "2.88dsf-41+deb7u1", None);
    node.write(
        "/etc/apt/sources.list",
        &format!("deb [trusted=yes] file:{} wheezy main\n", repo.display()),
        0o644,
    );
    std::fs::remove_file(node.path("/etc/apt/sources.list.d/grnet.list")).unwrap();
    node
}

type Simulation = (
    Vec<aptsim::Failure>,
    Vec<Action>,
    Vec<dpkg::Package>,
    aptsim::Switch,
);

fn simulate(node: &Node) -> Simulation {
    let root = Root::new(node.root());
    let before = node.snapshot();
    let simulated = aptsim::simulate(&root, &Config::default(), false).unwrap();
    assert_eq!(node.snapshot(), before, "the simulation changed the node");
    let packages = dpkg::present_packages(&root).unwrap();
    match simulated {
        Simulated::Done {
            failures,
            actions: Ok(actions),
            switch,
        } => (failures, actions, packages, switch),
        other => panic!("{other:?}"),
    }
}

fn findings(node: &Node) -> (Vec<aptsim::Failure>, Vec<Finding>) {
    let (failures, actions, packages, switch) = simulate(node);
    let found = aptsim::simulation_findings(&actions, &packages, "jessie", &switch);
    (failures, found)
}

fn ids(node: &Node) -> (Vec<aptsim::Failure>, Vec<&'static str>) {
    let (failures, found) = findings(node);
    (failures, found.iter().map(|f| f.id).collect())
}

#[test]
fn real_apt_simulates_the_upgrade_to_0_19_and_systemd() {
    if !tools_present() {
        return;
    }
    let repo = tempfile::tempdir().unwrap();
    build_repo(repo.path());
    let mut node = node(repo.path());
    // As in our postinst: our own package is half-configured while prepare runs.
    node.package("synnefo-upgrade-0.19", "0.1.0", None);
    node.set_dpkg("synnefo-upgrade-0.19", "install ok half-configured", None);
    let (failures, actions, packages, switch) = simulate(&node);
    assert!(failures.is_empty(), "{failures:?}");
    // The dist-upgrade installs systemd-sysv: no switch to ask for.
    assert_eq!(switch, aptsim::Switch::NotAsked);
    assert!(
        actions.contains(&Action::Inst {
            package: "snf-common".into(),
            old: Some("0.18.1-1~wheezy".into()),
            new: "0.19-1~jessie".into()
        }),
        "{actions:#?}"
    );
    assert_eq!(
        aptsim::final_version(&actions, &packages, "systemd-sysv").as_deref(),
        Some("215-17+deb8u7")
    );
    let found = aptsim::simulation_findings(&actions, &packages, "jessie", &switch);
    assert!(found.is_empty(), "{found:#?}");
}

#[test]
fn real_apt_hold_pin_and_a_failing_source_inhibit() {
    if !tools_present() {
        return;
    }
    let repo = tempfile::tempdir().unwrap();
    build_repo(repo.path());
    let node = node(repo.path());

    // A dpkg hold (what apt-mark hold sets) keeps snf-common at 0.18.1.
    node.set_dpkg("snf-common", "hold ok installed", None);
    let (_, found) = ids(&node);
    assert_eq!(found, ["dist-upgrade-synnefo-kept"]);
    node.set_dpkg("snf-common", "install ok installed", None);

    // A pin against systemd-sysv: APT takes sysvinit-core, and refuses the
    // switch that `dist-upgrade` asks for after it: the node would keep
    // booting sysvinit.
    node.write(
        "/etc/apt/preferences.d/no-systemd",
        "Package: systemd-sysv\nPin: release *\nPin-Priority: -1\n",
        0o644,
    );
    let (_, found) = findings(&node);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].id, "dist-upgrade-no-systemd");
    assert!(found[0].inhibitor);
    assert!(
        found[0].summary.contains("systemd-sysv"),
        "APT's refusal named: {found:#?}"
    );
    std::fs::remove_file(node.path("/etc/apt/preferences.d/no-systemd")).unwrap();

    // A source that does not exist: named, and the rest still simulated.
    let missing = repo.path().join("missing");
    node.write(
        "/etc/apt/sources.list.d/gone.list",
        &format!("deb [trusted=yes] file:{} wheezy main\n", missing.display()),
        0o644,
    );
    let (failures, found) = ids(&node);
    assert!(found.is_empty(), "{found:?}");
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(
        failures[0]
            .url
            .starts_with(&format!("file:{}", missing.display())),
        "{failures:?}"
    );
    assert!(!failures[0].is_network());
}

/// A release whose dist-upgrade keeps sysvinit (trixie's does): APT is
/// asked for the switch `dist-upgrade` runs after it, which it would do, so
/// the node is told, not inhibited.
#[test]
fn real_apt_a_release_that_keeps_sysvinit_is_told_when_the_switch_resolves() {
    if !tools_present() {
        return;
    }
    let repo = tempfile::tempdir().unwrap();
    build_repo(repo.path());
    let mut node = node(repo.path());
    // Nothing installed pulls systemd-sysv in: the dist-upgrade keeps the init.
    node.remove_package("sysvinit");
    let (_, actions, packages, switch) = simulate(&node);
    assert_eq!(
        aptsim::final_version(&actions, &packages, "systemd-sysv"),
        None
    );
    assert_eq!(switch, aptsim::Switch::Possible);
    let found = aptsim::simulation_findings(&actions, &packages, "jessie", &switch);
    let ids: Vec<&str> = found.iter().map(|f| f.id).collect();
    assert_eq!(ids, ["dist-upgrade-keeps-sysvinit"], "{found:#?}");
    assert!(!found[0].inhibitor);
}

#[test]
fn real_apt_without_network_is_offline_not_a_failed_source() {
    if !tools_present() {
        return;
    }
    // `.invalid` never resolves (RFC 2606): what a node without DNS sees.
    let unreachable = "deb http://mirror.example.invalid/debian wheezy main\n";
    let offline = Node::wheezy();
    offline.write("/etc/apt/sources.list", unreachable, 0o644);
    std::fs::remove_file(offline.path("/etc/apt/sources.list.d/grnet.list")).unwrap();
    let root = Root::new(offline.root());
    match aptsim::simulate(&root, &Config::default(), false).unwrap() {
        Simulated::Offline(why) => assert!(why.contains("mirror.example.invalid"), "{why}"),
        other => panic!("{other:?}"),
    }
    // With a source that answers, the unreachable one is a failed source.
    let repo = tempfile::tempdir().unwrap();
    build_repo(repo.path());
    let node = node(repo.path());
    node.write("/etc/apt/sources.list.d/mirror.list", unreachable, 0o644);
    let (failures, _, _, _) = simulate(&node);
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(
        failures[0]
            .url
            .starts_with("http://mirror.example.invalid/debian/dists/jessie/"),
        "{failures:?}"
    );
    let found = aptsim::failure_findings(&failures);
    assert!(found[0].inhibitor && found[0].id == "dist-upgrade-source-failed");
}

/// A wheezy node whose source is the local repository through `copy:`.
fn copy_node(repo: &Path) -> Node {
    let node = node(repo);
    node.write(
        "/etc/apt/sources.list",
        &format!("deb [trusted=yes] copy:{} wheezy main\n", repo.display()),
        0o644,
    );
    node
}

/// A repository and a [`copy_node`] of it; `None` (skipped) without the tools.
fn copy_repo_and_node() -> Option<(tempfile::TempDir, Node)> {
    if !tools_present() {
        return None;
    }
    let repo = tempfile::tempdir().unwrap();
    build_repo(repo.path());
    let node = copy_node(repo.path());
    Some((repo, node))
}

/// What the jessie dist-upgrade of [`node`] installs: the debs of the repository.
const NEEDED: [&str; 4] = [
    "snf-common_0.19-1~jessie_all.deb",
    "snf-webproject_0.19-1~jessie_all.deb",
    "systemd-sysv_215-17+deb8u7_all.deb",
    "sysvinit_2.88dsf-59_all.deb",
];

/// The `.deb` files in the node's archive cache.
fn cached(node: &Node) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(node.path("/var/cache/apt/archives"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".deb"))
        .collect();
    names.sort();
    names
}

/// The node's tree without its archive cache (what APT is asked to fill).
fn outside_the_cache(node: &Node) -> BTreeMap<PathBuf, String> {
    node.snapshot()
        .into_iter()
        .filter(|(p, _)| !p.starts_with("var/cache/apt/archives"))
        .collect()
}

fn download_only(node: &Node) -> std::process::Output {
    node.run(&["prepare", "--download-only"], &[])
}

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn download_only_fills_the_archive_cache_and_changes_nothing_else() {
    let Some((repo, node)) = copy_repo_and_node() else {
        return;
    };
    let sources = std::fs::read(node.path("/etc/apt/sources.list")).unwrap();
    let before = outside_the_cache(&node);
    let out = download_only(&node);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(cached(&node), NEEDED, "{}", text(&out));
    for deb in NEEDED {
        assert_eq!(
            std::fs::read(node.path(&format!("/var/cache/apt/archives/{deb}"))).unwrap(),
            std::fs::read(repo.path().join("pool/jessie").join(deb)).unwrap(),
            "{deb}"
        );
    }
    let bytes: u64 = NEEDED
        .iter()
        .map(|d| {
            std::fs::metadata(repo.path().join("pool/jessie").join(d))
                .unwrap()
                .len()
        })
        .sum();
    assert!(
        text(&out).contains(&format!("4 package(s) fetched ({bytes} bytes")),
        "{}",
        text(&out)
    );
    // Sources byte for byte, no state, no lock, nothing else of the node.
    assert_eq!(
        std::fs::read(node.path("/etc/apt/sources.list")).unwrap(),
        sources
    );
    assert!(!node.path("/var/lib/synnefo-upgrade").exists());
    assert_eq!(outside_the_cache(&node), before);

    // The dist-upgrade needs nothing more: with the packages gone from the
    // repository (its indexes still there), APT fetches nothing and succeeds.
    std::fs::remove_dir_all(repo.path().join("pool/jessie")).unwrap();
    let out = download_only(&node);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains(
            "0 package(s) fetched (0 bytes, 0.0 MiB) into /var/cache/apt/archives, 4 already there"
        ),
        "{}",
        text(&out)
    );
    assert_eq!(cached(&node), NEEDED);
}

#[test]
fn download_only_on_an_armed_node_leaves_its_state_and_sources() {
    let Some((_repo, node)) = copy_repo_and_node() else {
        return;
    };
    node.ok(&["prepare"]);
    let state = std::fs::read(node.path("/var/lib/synnefo-upgrade/state.json")).unwrap();
    let sources = std::fs::read(node.path("/etc/apt/sources.list")).unwrap();
    assert!(String::from_utf8_lossy(&sources).contains(" jessie "));
    let out = download_only(&node);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(cached(&node), NEEDED);
    assert_eq!(
        std::fs::read(node.path("/var/lib/synnefo-upgrade/state.json")).unwrap(),
        state
    );
    assert_eq!(
        std::fs::read(node.path("/etc/apt/sources.list")).unwrap(),
        sources
    );
    assert_eq!(node.state_json()["phase"], "armed");
}

#[test]
fn download_only_names_the_url_of_a_failing_source_or_package() {
    let Some((repo, node)) = copy_repo_and_node() else {
        return;
    };
    let before = node.snapshot();
    // A source that does not exist: named, nothing downloaded.
    let missing = repo.path().join("missing");
    node.write(
        "/etc/apt/sources.list.d/gone.list",
        &format!("deb [trusted=yes] copy:{} wheezy main\n", missing.display()),
        0o644,
    );
    let out = download_only(&node);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("copy:{}", missing.display())),
        "{}",
        text(&out)
    );
    assert!(cached(&node).is_empty());
    std::fs::remove_file(node.path("/etc/apt/sources.list.d/gone.list")).unwrap();
    assert_eq!(node.snapshot(), before);

    // A package the index lists but the repository lost: its URL named
    // (APT quotes the `+` of the version).
    let lost = repo
        .path()
        .join("pool/jessie/systemd-sysv_215-17+deb8u7_all.deb");
    std::fs::remove_file(&lost).unwrap();
    let out = download_only(&node);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let url = format!(
        "copy:{}/pool/jessie/systemd-sysv_215-17%2bdeb8u7_all.deb",
        repo.path().display()
    );
    assert!(text(&out).contains(&url), "{}", text(&out));
    assert!(!node.path("/var/lib/synnefo-upgrade").exists());
}

#[test]
fn download_only_refuses_a_finishing_node_and_does_nothing_on_a_done_one() {
    // No APT needed: both answer before any download.
    let node = Node::wheezy();
    node.ok(&["prepare"]);
    let state_file = node.path("/var/lib/synnefo-upgrade/state.json");
    for (phase, code, said) in [
        ("finishing", 3, "phase 'finishing'"),
        ("done", 0, "nothing to download"),
    ] {
        let mut state = node.state_json();
        state["phase"] = phase.into();
        std::fs::write(&state_file, serde_json::to_vec(&state).unwrap()).unwrap();
        let before = node.snapshot();
        let written = std::fs::read(&state_file).unwrap();
        let out = download_only(&node);
        assert_eq!(out.status.code(), Some(code), "{phase}: {}", text(&out));
        assert!(text(&out).contains(said), "{phase}: {}", text(&out));
        assert_eq!(node.snapshot(), before, "{phase}");
        assert_eq!(std::fs::read(&state_file).unwrap(), written, "{phase}");
    }
}
