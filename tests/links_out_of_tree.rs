//! `--root` keeps to the tree: an absolute symbolic link inside it is a node
//! path, resolved inside the root, never followed on the host. Each fixture
//! points such a link at the host path of a second temporary directory,
//! outside the root and filled with files that following the link on the
//! host would change: that directory must not change, and the files are
//! written where the link leads inside the tree. Also: symlinked APT sources
//! keep their link (the file it leads to is rewritten and restored), and a
//! backups directory that is a link is refused before anything is written.

mod common;

use common::{snapshot, Node, GRNET_LIST};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Seconds a command may take here.
const DEADLINE: u64 = 30;

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn ok(node: &Node, args: &[&str]) -> String {
    let out = node.run_within(DEADLINE, args);
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A host directory outside the root, and the absolute path of `name` in it:
/// the target the fixtures' absolute links name.
fn outside(name: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join(name).display().to_string();
    fs::create_dir_all(&target).unwrap();
    (dir, target)
}

fn write_host(path: &str, content: &str) {
    fs::create_dir_all(Path::new(path).parent().unwrap()).unwrap();
    fs::write(path, content).unwrap();
}

/// Replaces directory `abs` of the node by an absolute link to `target`.
fn link_dir(node: &Node, target: &str, abs: &str) {
    let _ = fs::remove_dir_all(node.path(abs));
    node.link(target, abs);
}

#[test]
fn an_absolute_sources_list_d_link_is_followed_inside_the_tree() {
    let node = Node::with_synnefo(&["snf-astakos-app"]);
    let (host, target) = outside("apt-sources");
    write_host(&format!("{target}/grnet.list"), GRNET_LIST);
    node.write(&format!("{target}/grnet.list"), GRNET_LIST, 0o640);
    link_dir(&node, &target, "/etc/apt/sources.list.d");
    let untouched = snapshot(host.path());

    ok(&node, &["prepare"]);
    assert_eq!(
        snapshot(host.path()),
        untouched,
        "nothing written on the host"
    );
    let inside = |name: &str| node.path(&format!("{target}/{name}"));
    assert_eq!(
        fs::read_to_string(inside("grnet.list")).unwrap(),
        GRNET_LIST.replace("wheezy/", "jessie/")
    );
    assert!(
        fs::read_to_string(inside("synnefo-upgrade-backports.list"))
            .unwrap()
            .contains("jessie-backports"),
        "the backports source is added where the link leads, inside the tree"
    );
    assert_eq!(
        fs::read_link(node.path("/etc/apt/sources.list.d")).unwrap(),
        Path::new(&target)
    );

    ok(&node, &["abort"]);
    assert_eq!(snapshot(host.path()), untouched);
    assert_eq!(
        fs::read_to_string(inside("grnet.list")).unwrap(),
        GRNET_LIST
    );
    assert!(!inside("synnefo-upgrade-backports.list").exists());
}

#[test]
fn an_absolute_etc_systemd_system_link_gets_the_masks_inside_the_tree() {
    let node = Node::with_synnefo(&["snf-astakos-app"]);
    let (host, target) = outside("systemd-system");
    write_host(&format!("{target}/admin.service"), "[Unit]\n");
    fs::create_dir_all(node.path(&target)).unwrap();
    node.link(&target, "/etc/systemd/system");
    let untouched = snapshot(host.path());

    ok(&node, &["prepare"]);
    assert_eq!(
        snapshot(host.path()),
        untouched,
        "nothing written on the host"
    );
    assert_eq!(
        fs::read_link(node.path(&format!("{target}/gunicorn.service"))).unwrap(),
        Path::new("/dev/null"),
        "the mask is made where the link leads, inside the tree"
    );
    assert_eq!(
        fs::read_link(node.path(&format!(
            "{target}/multi-user.target.wants/synnefo-upgrade-finish.service"
        )))
        .unwrap(),
        Path::new("/lib/systemd/system/synnefo-upgrade-finish.service")
    );
    let status = ok(&node, &["status", "--json"]);
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert!(
        status["masked"]
            .as_array()
            .is_some_and(|m| m.iter().any(|u| u == "gunicorn")),
        "status sees the mask through the link: {status}"
    );

    ok(&node, &["abort"]);
    assert_eq!(snapshot(host.path()), untouched);
    assert!(fs::symlink_metadata(node.path(&format!("{target}/gunicorn.service"))).is_err());
}

#[test]
fn a_backups_or_state_directory_that_is_a_link_is_refused_before_anything_is_written() {
    for (dir, name) in [
        ("/var/lib/synnefo-upgrade/backups", "backups"),
        ("/var/lib/synnefo-upgrade", "state"),
    ] {
        let node = Node::with_synnefo(&["snf-astakos-app"]);
        let (host, target) = outside(name);
        fs::create_dir_all(node.path(&target)).unwrap();
        node.link(&target, dir);
        let (untouched, tree) = (snapshot(host.path()), node.snapshot());

        let out = node.run_within(DEADLINE, &["prepare"]);
        assert_eq!(out.status.code(), Some(2), "{dir}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(&format!("'{dir}' is a symbolic link (to '{target}')")),
            "{dir}: {}",
            stderr(&out)
        );
        assert_eq!(snapshot(host.path()), untouched, "{dir}");
        assert_eq!(node.snapshot(), tree, "{dir}: nothing written in the tree");
        assert!(!node.path("/var/lib/synnefo-upgrade/state.json").exists());
    }
}

#[test]
fn an_absolute_var_log_synnefo_link_is_chowned_inside_the_tree() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: changing an owner needs root");
        return;
    }
    let node = Node::wheezy();
    node.write(
        "/etc/passwd",
        "root:x:0:0:root:/root:/bin/sh\nsynnefo:x:4242:4243::/var/lib/synnefo:/bin/false\n",
        0o644,
    );
    node.write("/etc/synnefo/10-x.conf", "X = 1\n", 0o644);
    let (host, target) = outside("log-synnefo");
    node.link(&target, "/var/log/synnefo");
    let host_owner = fs::metadata(&target).unwrap().uid();

    ok(&node, &["convert", "--force"]);
    assert_eq!(
        fs::metadata(&target).unwrap().uid(),
        host_owner,
        "the host directory keeps its owner"
    );
    assert!(fs::read_dir(host.path().join("log-synnefo"))
        .unwrap()
        .next()
        .is_none());
    let inside = fs::metadata(node.path(&target)).unwrap();
    assert!(
        inside.is_dir(),
        "created where the link leads, inside the tree"
    );
    assert_eq!((inside.uid(), inside.gid()), (4242, 4243));
}

const VMAPI: &str = "VMAPI_CACHE_BACKEND = 'memcached://127.0.0.1:11211/?timeout=3600'\n";

/// A node whose `/etc/synnefo` is an absolute link to `target`.
fn linked_settings(target: &str) -> Node {
    let node = Node::wheezy();
    let me = fs::metadata(node.root()).unwrap();
    node.write(
        "/etc/passwd",
        &format!("synnefo:x:{}:{}::/:/bin/false\n", me.uid(), me.gid()),
        0o644,
    );
    fs::create_dir_all(node.path("/var/log/synnefo")).unwrap();
    node.link(target, "/etc/synnefo");
    node
}

#[test]
fn an_absolute_etc_synnefo_link_inside_etc_is_converted_inside_the_tree() {
    let node = linked_settings("/etc/synnefo-0.18");
    node.write("/etc/synnefo-0.18/20-vmapi.conf", VMAPI, 0o644);
    let out = ok(&node, &["convert", "--force"]);
    assert!(
        out.contains("/etc/synnefo/20-vmapi.conf: VMAPI_CACHE added"),
        "{out}"
    );
    let converted = fs::read_to_string(node.path("/etc/synnefo-0.18/20-vmapi.conf")).unwrap();
    assert!(converted.contains("#VMAPI_CACHE_BACKEND"), "{converted}");
}

#[test]
fn an_absolute_etc_synnefo_link_out_of_etc_is_refused_and_said() {
    let (host, target) = outside("synnefo");
    write_host(&format!("{target}/20-vmapi.conf"), VMAPI);
    let node = linked_settings(&target);
    node.write(&format!("{target}/20-vmapi.conf"), VMAPI, 0o644);
    let (untouched, tree) = (snapshot(host.path()), node.snapshot());

    let out = node.run_within(DEADLINE, &["convert"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!(
            "'/etc/synnefo/20-vmapi.conf' leads to '{target}/20-vmapi.conf', outside /etc"
        )),
        "{}",
        stderr(&out)
    );
    let check = node.run_within(DEADLINE, &["check"]);
    assert_eq!(check.status.code(), Some(3), "convert-refused inhibits");
    let check = String::from_utf8_lossy(&check.stdout);
    assert!(
        check.contains(&format!(
            "'/etc/synnefo' is a symbolic link to '{target}', outside /etc"
        )),
        "{check}"
    );
    assert_eq!(snapshot(host.path()), untouched);
    // check kept its report in the state directory, nothing else.
    assert_eq!(
        common::without_our_records(node.snapshot()),
        common::without_our_records(tree)
    );
}

#[test]
fn an_absolute_etc_synnefo_link_to_nothing_in_the_tree_is_said_not_skipped() {
    let (host, target) = outside("synnefo");
    write_host(&format!("{target}/20-vmapi.conf"), VMAPI);
    let node = linked_settings(&target);
    let (untouched, tree) = (snapshot(host.path()), node.snapshot());

    let out = node.run_within(DEADLINE, &["convert"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!(
            "'/etc/synnefo' is a symbolic link to '{target}', which does not exist inside the root"
        )),
        "{}",
        stderr(&out)
    );
    assert_eq!(snapshot(host.path()), untouched);
    assert_eq!(node.snapshot(), tree);
}

#[test]
fn a_symlinked_apt_source_stays_a_link_and_its_target_is_rewritten_and_restored() {
    let node = Node::with_synnefo(&["snf-astakos-app"]);
    let (host, target) = outside("grnet.list");
    fs::remove_dir(&target).unwrap();
    write_host(&target, GRNET_LIST);
    fs::remove_file(node.path("/etc/apt/sources.list.d/grnet.list")).unwrap();
    // One absolute link whose target is also a host path, one relative.
    node.write(&target, GRNET_LIST, 0o640);
    node.link(&target, "/etc/apt/sources.list.d/grnet.list");
    node.write(
        "/srv/apt/ceph.list",
        "deb http://ceph.com/debian-firefly/ wheezy main\n",
        0o644,
    );
    node.link(
        "../../../srv/apt/ceph.list",
        "/etc/apt/sources.list.d/ceph.list",
    );
    let untouched = snapshot(host.path());

    ok(&node, &["prepare"]);
    assert_eq!(snapshot(host.path()), untouched);
    for (link, to, file, jessie) in [
        (
            "grnet.list",
            target.as_str(),
            target.clone(),
            GRNET_LIST.replace("wheezy/", "jessie/"),
        ),
        (
            "ceph.list",
            "../../../srv/apt/ceph.list",
            "/srv/apt/ceph.list".to_string(),
            "deb http://ceph.com/debian-firefly/ jessie main\n".to_string(),
        ),
    ] {
        let link = node.path(&format!("/etc/apt/sources.list.d/{link}"));
        assert_eq!(fs::read_link(&link).unwrap(), Path::new(to), "still a link");
        assert_eq!(fs::read_to_string(node.path(&file)).unwrap(), jessie);
    }
    assert_eq!(
        fs::metadata(node.path(&target)).unwrap().mode() & 0o7777,
        0o640,
        "the target keeps its mode"
    );

    ok(&node, &["abort"]);
    assert_eq!(snapshot(host.path()), untouched);
    assert_eq!(fs::read_to_string(node.path(&target)).unwrap(), GRNET_LIST);
    assert_eq!(
        fs::read_to_string(node.path("/srv/apt/ceph.list")).unwrap(),
        "deb http://ceph.com/debian-firefly/ wheezy main\n"
    );
    assert_eq!(
        fs::read_link(node.path("/etc/apt/sources.list.d/grnet.list")).unwrap(),
        Path::new(&target)
    );
}

#[test]
fn a_linked_settings_directory_is_archived_as_the_link_and_its_target_in_the_tree() {
    let node = Node::wheezy();
    let (host, target) = outside("synnefo");
    write_host(&format!("{target}/99-host-only.conf"), "HOST = 1\n");
    node.write(
        &format!("{target}/10-snf-webproject-database.conf"),
        "DATABASES = {'default': {'ENGINE': 'django.db.backends.sqlite3', 'NAME': '/srv/snf.sqlite'}}\n",
        0o640,
    );
    node.write("/srv/snf.sqlite", "SQLite format 3\0fake", 0o600);
    node.link(&target, "/etc/synnefo");
    let untouched = snapshot(host.path());
    ok(&node, &["prepare"]);
    node.to_jessie();
    ok(&node, &["finish"]);
    assert_eq!(snapshot(host.path()), untouched);
    let listing = std::process::Command::new("tar")
        .arg("-tvzf")
        .arg(node.path("/var/backups/synnefo-upgrade/config.tar.gz"))
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout);
    let rel = target.trim_start_matches('/');
    assert!(
        listing.contains(&format!("etc/synnefo -> {target}")),
        "{listing}"
    );
    assert!(
        listing.contains(&format!("{rel}/10-snf-webproject-database.conf")),
        "{listing}"
    );
    assert!(!listing.contains("99-host-only.conf"), "{listing}");
    assert_eq!(
        fs::read(node.path("/var/backups/synnefo-upgrade/database.sqlite")).unwrap(),
        b"SQLite format 3\0fake"
    );
}
