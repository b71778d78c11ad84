//! The dist-upgrade simulation with the real APT of this machine, against a
//! local `file:` repository built here (dpkg-deb, apt-ftparchive) with suites
//! wheezy and jessie, and a fixture root's dpkg status, sources and
//! preferences: what `check` runs on a live node. (The binary does not
//! simulate under `--root`; these tests call the library's runner on the
//! fixture tree, which reads the node only through the root it is given.)
//!
//! Skipped, saying so, where the tools are missing or the test is not root
//! (APT's sandbox needs root).

mod common;

use common::Node;
use std::path::Path;
use std::process::Command;
use synnefo_upgrade::aptsim::{self, Action, Simulated};
use synnefo_upgrade::config::Config;
use synnefo_upgrade::dpkg;
use synnefo_upgrade::fsx::Root;

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

fn simulate(node: &Node) -> (Vec<aptsim::Failure>, Vec<Action>, Vec<dpkg::Package>) {
    let root = Root::new(node.root());
    let before = node.snapshot();
    let simulated = aptsim::simulate(&root, &Config::default(), false).unwrap();
    assert_eq!(node.snapshot(), before, "the simulation changed the node");
    let packages = dpkg::present_packages(&root).unwrap();
    match simulated {
        Simulated::Done {
            failures,
            actions: Ok(actions),
        } => (failures, actions, packages),
        other => panic!("{other:?}"),
    }
}

fn ids(node: &Node) -> (Vec<aptsim::Failure>, Vec<&'static str>) {
    let (failures, actions, packages) = simulate(node);
    let found = aptsim::simulation_findings(&actions, &packages, "jessie");
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
    let (failures, actions, packages) = simulate(&node);
    assert!(failures.is_empty(), "{failures:?}");
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
    let found = aptsim::simulation_findings(&actions, &packages, "jessie");
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

    // A pin against systemd-sysv: APT takes sysvinit-core, the node would
    // keep booting sysvinit.
    node.write(
        "/etc/apt/preferences.d/no-systemd",
        "Package: systemd-sysv\nPin: release *\nPin-Priority: -1\n",
        0o644,
    );
    let (_, found) = ids(&node);
    assert_eq!(found, ["dist-upgrade-no-systemd"]);
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
    let (failures, _, _) = simulate(&node);
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
