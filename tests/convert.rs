//! `synnefo-upgrade convert` end to end: the real binary on fixture roots
//! (`--root`), in the real shipped formats (`tests/fixtures/convert/`).
//!
//! - `snf-deploy-0.18.1/` and `snf-deploy-0.19/`: upstream's own before/after
//!   pair (gunicorn, Apache) plus every shipped 0.18.1 / 0.19 settings file.
//! - `cyclades-node/`: a realistic Cyclades node (memcached caches, explicit
//!   allocator, database password) and `cyclades-node.expected/`, its converted
//!   files, byte for byte.
//! - Hostile inputs are built in the tests themselves.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_synnefo-upgrade");

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/convert")
        .join(name)
}

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let meta = fs::symlink_metadata(&src).unwrap();
        if meta.file_type().is_symlink() {
            symlink(fs::read_link(&src).unwrap(), &dst).unwrap();
        } else if meta.is_dir() {
            copy_tree(&src, &dst);
        } else {
            fs::copy(&src, &dst).unwrap();
            fs::set_permissions(&dst, fs::Permissions::from_mode(0o644)).unwrap();
        }
    }
}

/// dpkg's status paragraph of an installed Synnefo package.
fn synnefo_package(name: &str, version: &str) -> String {
    format!("Package: {name}\nStatus: install ok installed\nArchitecture: all\nSource: synnefo\nVersion: {version}\nDescription: {name}\n")
}

/// Makes `root` a node on `os` (its os-release) with snf-common at
/// `version` (dpkg's status).
fn release(root: &Path, os: &str, number: &str, version: &str) {
    let os_release = format!("PRETTY_NAME=\"Debian GNU/Linux {number} ({os})\"\nVERSION_ID=\"{number}\"\nVERSION=\"{number} ({os})\"\nID=debian\n");
    write(root, "/etc/os-release", os_release.as_bytes());
    let status = synnefo_package("snf-common", version);
    write(root, "/var/lib/dpkg/status", status.as_bytes());
}

/// A node after its dist-upgrade (jessie, Synnefo 0.19), where `convert`
/// converts without `--force`.
fn upgraded(root: &Path) {
    release(root, "jessie", "8", "0.19-1~jessie");
}

/// A copy of fixture `name` whose synnefo user is whoever runs the tests, on
/// an upgraded node.
fn node(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&fixture(name), dir.path());
    upgraded(dir.path());
    let me = fs::metadata(dir.path()).unwrap();
    let passwd = format!(
        "root:x:0:0:root:/root:/bin/bash\nsynnefo:x:{}:{}:Synnefo,,,:/var/lib/synnefo:/bin/false\n",
        me.uid(),
        me.gid()
    );
    write(dir.path(), "/etc/passwd", passwd.as_bytes());
    dir
}

fn write(root: &Path, abs: &str, content: &[u8]) {
    let host = root.join(abs.trim_start_matches('/'));
    fs::create_dir_all(host.parent().unwrap()).unwrap();
    fs::write(host, content).unwrap();
}

fn read(root: &Path, abs: &str) -> Vec<u8> {
    fs::read(root.join(abs.trim_start_matches('/'))).unwrap_or_else(|e| panic!("{abs}: {e}"))
}

fn convert(root: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--root")
        .arg(root)
        .arg("convert")
        .args(args)
        .env_remove("FAILPOINTS")
        .output()
        .unwrap()
}

fn ok(root: &Path, args: &[&str]) -> String {
    let out = convert(root, args);
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Refused: exit 2, nothing written, and the message (returned) on stderr.
fn refused(root: &Path) -> String {
    let before = snapshot(root);
    let out = convert(root, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(
        snapshot(root),
        before,
        "a refused conversion wrote something"
    );
    stderr
}

/// Every entry under `root`: kind, mode, owner, link target or content.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, (String, Vec<u8>)> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, (String, Vec<u8>)>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = fs::symlink_metadata(&path).unwrap();
            let rel = path.strip_prefix(root).unwrap().to_path_buf();
            let head = format!("{:o} {}:{}", meta.mode(), meta.uid(), meta.gid());
            if meta.file_type().is_symlink() {
                let target = fs::read_link(&path).unwrap();
                out.insert(rel, (head, target.into_os_string().into_encoded_bytes()));
            } else if meta.is_dir() {
                out.insert(rel, (head, Vec::new()));
                walk(root, &path, out);
            } else {
                out.insert(rel, (head, fs::read(&path).unwrap()));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

const PROTO_FIX: (&str, &str) = ("X-Forwarded-Protocol", "X-Forwarded-Proto");

#[test]
fn upstream_snf_deploy_pair_converts_to_the_0_19_shape() {
    let dir = node("snf-deploy-0.18.1");
    let root = dir.path();
    fs::create_dir_all(root.join("etc/apache2/sites-enabled")).unwrap();
    symlink(
        "../sites-available/synnefo-ssl",
        root.join("etc/apache2/sites-enabled/synnefo-ssl"),
    )
    .unwrap();
    symlink(
        "/etc/apache2/sites-available/synnefo",
        root.join("etc/apache2/sites-enabled/synnefo"),
    )
    .unwrap();

    let before = snapshot(root);
    let dry = ok(root, &["--dry-run"]);
    assert_eq!(snapshot(root), before, "--dry-run wrote something");
    assert!(
        dry.contains("--- /etc/gunicorn.d/synnefo\n+++ /etc/gunicorn.d/synnefo\n"),
        "{dry}"
    );
    assert!(
        dry.contains("- 'mode': 'django',\n+ 'mode': 'wsgi',\n"),
        "{dry}"
    );
    assert!(
        dry.contains("+   'synnefo.webproject.wsgi',\n  ),\n"),
        "{dry}"
    );
    assert!(
        dry.contains("dry run, nothing written; 7 change(s) to make:"),
        "{dry}"
    );

    let done = ok(root, &[]);
    assert!(done.starts_with("converted, 7 change(s) made:\n"), "{done}");
    let want = fixture("snf-deploy-0.19");
    for f in [
        "etc/gunicorn.d/synnefo",
        "etc/gunicorn.d/synnefo-archip",
        "etc/apache2/sites-available/synnefo.conf",
    ] {
        assert_eq!(read(root, f), fs::read(want.join(f)).unwrap(), "{f}");
    }
    // Upstream's 0.19 snf-deploy forgot the header the 0.19 guide renames; we do not.
    let ssl = String::from_utf8(
        fs::read(want.join("etc/apache2/sites-available/synnefo-ssl.conf")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        String::from_utf8(read(root, "etc/apache2/sites-available/synnefo-ssl.conf")).unwrap(),
        ssl.replace(PROTO_FIX.0, PROTO_FIX.1)
    );
    for gone in [
        "etc/apache2/sites-available/synnefo",
        "etc/apache2/sites-available/synnefo-ssl",
        "etc/apache2/sites-enabled/synnefo",
    ] {
        assert!(
            fs::symlink_metadata(root.join(gone)).is_err(),
            "{gone} still there"
        );
    }
    assert_eq!(
        fs::read_link(root.join("etc/apache2/sites-enabled/synnefo-ssl.conf")).unwrap(),
        Path::new("../sites-available/synnefo-ssl.conf")
    );
    assert_eq!(
        fs::read_link(root.join("etc/apache2/sites-enabled/synnefo.conf")).unwrap(),
        Path::new("/etc/apache2/sites-available/synnefo.conf")
    );
    // The shipped settings are commented defaults: untouched, byte for byte.
    let settings = fixture("snf-deploy-0.18.1/etc/synnefo");
    for entry in fs::read_dir(&settings).unwrap() {
        let name = entry.unwrap().file_name();
        let rel = Path::new("etc/synnefo").join(&name);
        assert_eq!(
            read(root, rel.to_str().unwrap()),
            fs::read(settings.join(&name)).unwrap()
        );
    }
    // Backups of the originals.
    assert_eq!(
        read(
            root,
            "/var/lib/synnefo-upgrade/backups/etc/gunicorn.d/synnefo"
        ),
        fs::read(fixture("snf-deploy-0.18.1/etc/gunicorn.d/synnefo")).unwrap()
    );
    assert_eq!(
        fs::read_link(
            root.join("var/lib/synnefo-upgrade/backups/etc/apache2/sites-enabled/synnefo-ssl")
        )
        .unwrap(),
        Path::new("../sites-available/synnefo-ssl")
    );
    // A second run changes nothing and says so.
    let converted = snapshot(root);
    let again = ok(root, &[]);
    assert_eq!(
        again,
        "nothing to convert: the configuration already has the 0.19 shape\n"
    );
    assert_eq!(snapshot(root), converted);
}

#[test]
fn shipped_0_19_files_only_need_the_header_upstream_forgot() {
    let dir = node("snf-deploy-0.19");
    let out = ok(dir.path(), &["--dry-run"]);
    let me = fs::metadata(dir.path()).unwrap();
    assert!(
        out.ends_with(&format!(
            "dry run, nothing written; 2 change(s) to make:\n  \
             /etc/apache2/sites-available/synnefo-ssl.conf: X-Forwarded-Protocol -> X-Forwarded-Proto\n  \
             create /var/log/synnefo owned by {}:{}\n",
            me.uid(),
            me.gid()
        )),
        "{out}"
    );
    assert!(out.contains("-  RequestHeader set X-Forwarded-Protocol \"https\"\n+  RequestHeader set X-Forwarded-Proto \"https\"\n"), "{out}");
    assert!(
        !out.contains("/etc/synnefo/"),
        "0.19 settings need no change: {out}"
    );
}

#[test]
fn cyclades_node_with_memcached_caches_converts_byte_for_byte() {
    let dir = node("cyclades-node");
    let root = dir.path();
    let db = root.join("etc/synnefo/10-snf-webproject-database.conf");
    fs::set_permissions(&db, fs::Permissions::from_mode(0o640)).unwrap();
    let vmapi = root.join("etc/synnefo/20-snf-cyclades-app-vmapi.conf");
    fs::set_permissions(&vmapi, fs::Permissions::from_mode(0o640)).unwrap();
    fs::create_dir_all(root.join("etc/apache2/sites-enabled")).unwrap();
    symlink(
        "../sites-available/synnefo-ssl",
        root.join("etc/apache2/sites-enabled/synnefo-ssl"),
    )
    .unwrap();

    let before = snapshot(root);
    let dry = ok(root, &["--dry-run"]);
    assert_eq!(snapshot(root), before, "--dry-run wrote something");
    assert!(
        dry.contains("+    \"LOCATION\": [\"10.0.1.11:11211\", \"10.0.1.12:11211\"],\n"),
        "{dry}"
    );

    ok(root, &[]);
    let expected = fixture("cyclades-node.expected");
    for f in [
        "etc/synnefo/10-snf-webproject-deploy.conf",
        "etc/synnefo/20-snf-cyclades-app-api.conf",
        "etc/synnefo/20-snf-cyclades-app-backend.conf",
        "etc/synnefo/20-snf-cyclades-app-vmapi.conf",
        "etc/gunicorn.d/synnefo",
        "etc/apache2/sites-available/synnefo-ssl.conf",
        "etc/nginx/sites-available/cyclades-proxy",
    ] {
        assert_eq!(
            String::from_utf8_lossy(&read(root, f)),
            String::from_utf8_lossy(&fs::read(expected.join(f)).unwrap()),
            "{f}"
        );
    }
    // Untouched: the database settings (mode too), the queues, another app's gunicorn config.
    for f in [
        "etc/synnefo/10-snf-webproject-database.conf",
        "etc/synnefo/20-snf-cyclades-app-queues.conf",
        "etc/gunicorn.d/other-app",
    ] {
        assert_eq!(
            read(root, f),
            fs::read(fixture("cyclades-node").join(f)).unwrap(),
            "{f}"
        );
    }
    assert_eq!(fs::metadata(&db).unwrap().mode() & 0o7777, 0o640);
    assert_eq!(
        fs::metadata(&vmapi).unwrap().mode() & 0o7777,
        0o640,
        "mode of a converted file is kept"
    );
    let log = fs::metadata(root.join("var/log/synnefo")).unwrap();
    assert!(log.is_dir());
    let me = fs::metadata(root).unwrap();
    assert_eq!((log.uid(), log.gid()), (me.uid(), me.gid()));

    let converted = snapshot(root);
    assert_eq!(
        ok(root, &[]),
        "nothing to convert: the configuration already has the 0.19 shape\n"
    );
    assert_eq!(snapshot(root), converted);
}

/// An upgraded node with only `/etc/synnefo` files and a synnefo user.
fn settings_node(files: &[(&str, &[u8])]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    upgraded(dir.path());
    let me = fs::metadata(dir.path()).unwrap();
    let passwd = format!("synnefo:x:{}:{}::/:/bin/false\n", me.uid(), me.gid());
    write(dir.path(), "/etc/passwd", passwd.as_bytes());
    fs::create_dir_all(dir.path().join("var/log/synnefo")).unwrap();
    for (name, content) in files {
        write(dir.path(), &format!("/etc/synnefo/{name}"), content);
    }
    dir
}

fn conf(root: &Path, name: &str) -> String {
    String::from_utf8_lossy(&read(root, &format!("/etc/synnefo/{name}"))).into_owned()
}

const VMAPI_DICT_LF: &str = "VMAPI_CACHE = {\n    \"BACKEND\": \"django.core.cache.backends.memcached.MemcachedCache\",\n    \"LOCATION\": \"127.0.0.1:11211\",\n    \"KEY_PREFIX\": \"vmapi\",\n    \"TIMEOUT\": 3600,\n}\n";

#[test]
fn tabs_and_a_multi_line_value_are_edited_in_place() {
    let dir = settings_node(&[(
        "20-vmapi.conf",
        b"A = {\n\t'x': 1,\t# tab\n}\nVMAPI_CACHE_BACKEND\t=\t(\"memcached://\"\n\t\"127.0.0.1:11211/?timeout=3600\")\t# tabs\nB = 2\n",
    )]);
    ok(dir.path(), &[]);
    assert_eq!(
        conf(dir.path(), "20-vmapi.conf"),
        format!("A = {{\n\t'x': 1,\t# tab\n}}\n# synnefo-upgrade-0.19: VMAPI_CACHE_BACKEND is obsolete since Synnefo 0.19 (its value is now in VMAPI_CACHE)\n#VMAPI_CACHE_BACKEND\t=\t(\"memcached://\"\n#\t\"127.0.0.1:11211/?timeout=3600\")\t# tabs\n{VMAPI_DICT_LF}B = 2\n")
    );
}

#[test]
fn crlf_files_stay_crlf() {
    let dir = settings_node(&[(
        "20-vmapi.conf",
        b"## comment\r\nVMAPI_CACHE_BACKEND = 'memcached://127.0.0.1:11211/?timeout=3600'\r\nX = 1\r\n",
    )]);
    ok(dir.path(), &[]);
    assert_eq!(
        conf(dir.path(), "20-vmapi.conf"),
        format!(
            "## comment\r\n# synnefo-upgrade-0.19: VMAPI_CACHE_BACKEND is obsolete since Synnefo 0.19 (its value is now in VMAPI_CACHE)\r\n#VMAPI_CACHE_BACKEND = 'memcached://127.0.0.1:11211/?timeout=3600'\r\n{}X = 1\r\n",
            VMAPI_DICT_LF.replace('\n', "\r\n")
        )
    );
}

#[test]
fn a_byte_order_mark_coding_line_and_form_feeds_are_python_2_and_kept() {
    let dir = settings_node(&[
        (
            "20-vmapi.conf",
            b"\xef\xbb\xbf# -*- coding: utf-8 -*-\r\nVMAPI_CACHE_BACKEND = 'memcached://127.0.0.1:11211/?timeout=3600'\r\n",
        ),
        (
            "30-backend.conf",
            b"\xef\xbb\xbfBACKEND_ALLOCATOR_MODULE = 'synnefo.logic.allocators.default_allocator.DefaultAllocator'\n",
        ),
        ("40-api.conf", b"A = 1\n\x0c\n\x0cCACHE_BACKEND = 'locmem://'\n"),
    ]);
    ok(dir.path(), &[]);
    assert_eq!(
        conf(dir.path(), "20-vmapi.conf"),
        format!(
            "\u{feff}# -*- coding: utf-8 -*-\r\n# synnefo-upgrade-0.19: VMAPI_CACHE_BACKEND is obsolete since Synnefo 0.19 (its value is now in VMAPI_CACHE)\r\n#VMAPI_CACHE_BACKEND = 'memcached://127.0.0.1:11211/?timeout=3600'\r\n{}",
            VMAPI_DICT_LF.replace('\n', "\r\n")
        )
    );
    // The byte order mark stays in front of the edited first line.
    assert_eq!(
        read(dir.path(), "/etc/synnefo/30-backend.conf"),
        b"\xef\xbb\xbfBACKEND_ALLOCATOR_MODULE = 'synnefo.logic.allocators.filter_allocator.FilterAllocator'\n"
    );
    let api = conf(dir.path(), "40-api.conf");
    assert!(
        api.starts_with("A = 1\n\x0c\n# synnefo-upgrade-0.19: CACHE_BACKEND is obsolete since Synnefo 0.19 (its value is now in PUBLIC_STATS_CACHE, VM_PASSWORD_CACHE)\n#\x0cCACHE_BACKEND = 'locmem://'\nPUBLIC_STATS_CACHE = {"),
        "{api}"
    );
    // Converted: a second run has nothing to do.
    assert_eq!(
        ok(dir.path(), &[]),
        "nothing to convert: the configuration already has the 0.19 shape\n"
    );
}

#[test]
fn non_utf8_bytes_are_carried_unchanged() {
    let dir = settings_node(&[(
        "20-x.conf",
        b"# -*- coding: latin-1 -*-\n# caf\xe9\nNAME = 'caf\xe9'\nBACKEND_ALLOCATOR_MODULE = 'synnefo.logic.allocators.default_allocator.DefaultAllocator'  # \xff\n",
    )]);
    ok(dir.path(), &[]);
    assert_eq!(
        read(dir.path(), "/etc/synnefo/20-x.conf"),
        b"# -*- coding: latin-1 -*-\n# caf\xe9\nNAME = 'caf\xe9'\nBACKEND_ALLOCATOR_MODULE = 'synnefo.logic.allocators.filter_allocator.FilterAllocator'  # \xff\n"
    );
}

#[test]
fn a_symlinked_conf_file_is_written_through_and_stays_a_link() {
    // A link to a file inside /etc (ours); one out of /etc is refused (tests/faults.rs).
    let dir = settings_node(&[]);
    let root = dir.path();
    write(
        root,
        "/etc/synnefo-local/vmapi.conf",
        b"VMAPI_CACHE_BACKEND = 'memcached://127.0.0.1:11211/?timeout=3600'\n",
    );
    fs::create_dir_all(root.join("etc/synnefo")).unwrap();
    symlink(
        "/etc/synnefo-local/vmapi.conf",
        root.join("etc/synnefo/20-vmapi.conf"),
    )
    .unwrap();
    // Synnefo skips what is not a regular file: a dangling link, a directory named x.conf.
    symlink("/nowhere.conf", root.join("etc/synnefo/30-dangling.conf")).unwrap();
    write(
        root,
        "/etc/synnefo/40-dir.conf/inner.conf",
        b"CACHE_BACKEND = 'x'\n",
    );
    let out = ok(root, &[]);
    assert!(
        out.contains("/etc/synnefo/20-vmapi.conf: VMAPI_CACHE added"),
        "{out}"
    );
    assert_eq!(
        fs::read_link(root.join("etc/synnefo/20-vmapi.conf")).unwrap(),
        Path::new("/etc/synnefo-local/vmapi.conf")
    );
    assert!(
        String::from_utf8(read(root, "/etc/synnefo-local/vmapi.conf"))
            .unwrap()
            .ends_with(VMAPI_DICT_LF)
    );
    assert_eq!(
        read(
            root,
            "/var/lib/synnefo-upgrade/backups/etc/synnefo-local/vmapi.conf"
        ),
        b"VMAPI_CACHE_BACKEND = 'memcached://127.0.0.1:11211/?timeout=3600'\n"
    );
    assert_eq!(
        read(root, "/etc/synnefo/40-dir.conf/inner.conf"),
        b"CACHE_BACKEND = 'x'\n"
    );
}

#[test]
fn duplicate_assignments_the_last_wins_and_all_are_commented_out() {
    let dir = settings_node(&[
        ("10-a.conf", b"CACHE_BACKEND = 'locmem://'\n"),
        ("20-b.conf", b"CACHE_BACKEND = 'db://cache_table'\nCACHE_BACKEND = 'file:///var/tmp/django_cache?max_entries=1000'\n"),
    ]);
    let root = dir.path();
    ok(root, &[]);
    assert_eq!(
        conf(root, "10-a.conf"),
        "# synnefo-upgrade-0.19: CACHE_BACKEND is obsolete since Synnefo 0.19 (overridden by a later assignment)\n#CACHE_BACKEND = 'locmem://'\n"
    );
    let b = conf(root, "20-b.conf");
    assert!(b.starts_with("# synnefo-upgrade-0.19: CACHE_BACKEND is obsolete since Synnefo 0.19 (overridden by a later assignment)\n#CACHE_BACKEND = 'db://cache_table'\n# synnefo-upgrade-0.19: CACHE_BACKEND is obsolete since Synnefo 0.19 (its value is now in VMAPI_CACHE, PUBLIC_STATS_CACHE, VM_PASSWORD_CACHE)\n#CACHE_BACKEND = 'file:///var/tmp/django_cache?max_entries=1000'\nVMAPI_CACHE = {\n    \"BACKEND\": \"django.core.cache.backends.filebased.FileBasedCache\",\n    \"LOCATION\": \"/var/tmp/django_cache\",\n    \"KEY_PREFIX\": \"vmapi\",\n    \"OPTIONS\": {\n        \"MAX_ENTRIES\": 1000,\n    },\n}\n"), "{b}");
    assert!(
        b.contains("\"KEY_PREFIX\": \"publicstats\",\n    \"TIMEOUT\": 300,\n"),
        "{b}"
    );
    assert!(b.ends_with("\"KEY_PREFIX\": \"vmpassword\",\n    \"TIMEOUT\": None,\n    \"OPTIONS\": {\n        \"MAX_ENTRIES\": 1000,\n    },\n}\n"), "{b}");
}

#[test]
fn a_custom_allocator_is_kept_with_a_warning_and_new_settings_already_set_win() {
    let dir = settings_node(&[(
        "20-x.conf",
        b"BACKEND_ALLOCATOR_MODULE = 'mycloud.allocator.Mine'\nVMAPI_CACHE = {'BACKEND': 'django.core.cache.backends.dummy.DummyCache'}\nVMAPI_CACHE_BACKEND = 'locmem://'\n",
    )]);
    let out = convert(dir.path(), &[]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "BACKEND_ALLOCATOR_MODULE = 'mycloud.allocator.Mine' at /etc/synnefo/20-x.conf:1 kept"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("VMAPI_CACHE is already set at /etc/synnefo/20-x.conf:2"),
        "{stderr}"
    );
    assert_eq!(
        conf(dir.path(), "20-x.conf"),
        "BACKEND_ALLOCATOR_MODULE = 'mycloud.allocator.Mine'\nVMAPI_CACHE = {'BACKEND': 'django.core.cache.backends.dummy.DummyCache'}\n# synnefo-upgrade-0.19: VMAPI_CACHE_BACKEND is obsolete since Synnefo 0.19 (not converted, see the warning of the conversion)\n#VMAPI_CACHE_BACKEND = 'locmem://'\n"
    );
}

#[test]
fn allowed_hosts_follows_the_commented_default_and_is_replaced_when_set() {
    let dir = settings_node(&[
        (
            "10-snf-webproject-deploy.conf",
            b"## hosts\n#ALLOWED_HOSTS = ['*']\n#\n#USE_X_FORWARDED_HOST = False\n",
        ),
        ("99-local.conf", b"X = 1"),
    ]);
    let root = dir.path();
    write(
        root,
        "/etc/synnefo-upgrade/upgrade.toml",
        b"[convert]\nallowed_hosts = [\"a.example.org\"]\n",
    );
    ok(root, &[]);
    assert_eq!(
        conf(root, "10-snf-webproject-deploy.conf"),
        "## hosts\n#ALLOWED_HOSTS = ['*']\n# synnefo-upgrade-0.19: ALLOWED_HOSTS from /etc/synnefo-upgrade/upgrade.toml\nALLOWED_HOSTS = [\"a.example.org\"]\n#\n#USE_X_FORWARDED_HOST = False\n"
    );
    write(
        root,
        "/etc/synnefo-upgrade/upgrade.toml",
        b"[convert]\nallowed_hosts = [\"a.example.org\", \"b\"]\n",
    );
    ok(root, &[]);
    assert!(conf(root, "10-snf-webproject-deploy.conf")
        .contains("\nALLOWED_HOSTS = [\"a.example.org\", \"b\"]\n#\n"));
    assert_eq!(conf(root, "99-local.conf"), "X = 1");
}

#[test]
fn an_unterminated_dict_is_refused_with_file_and_line() {
    let dir = settings_node(&[
        (
            "10-db.conf",
            b"DATABASES = {\n    'default': {\n        'NAME': 'x',\n    },\n",
        ),
        ("20-vmapi.conf", b"VMAPI_CACHE_BACKEND = 'locmem://'\n"),
    ]);
    let err = refused(dir.path());
    assert!(
        err.contains("/etc/synnefo/10-db.conf:1: '{' is never closed"),
        "{err}"
    );
}

#[test]
fn an_assignment_inside_an_if_is_refused() {
    let dir = settings_node(&[(
        "20-x.conf",
        b"import socket\nVMAPI_CACHE_BACKEND = 'locmem://'\nif socket.gethostname() == 'c1':\n    VMAPI_CACHE_BACKEND = 'memcached://127.0.0.1:11211/'\n",
    )]);
    let err = refused(dir.path());
    assert!(
        err.contains(
            "/etc/synnefo/20-x.conf:4: VMAPI_CACHE_BACKEND is assigned here inside a block"
        ),
        "{err}"
    );
}

#[test]
fn a_value_computed_from_another_setting_is_refused() {
    let dir = settings_node(&[
        ("10-a.conf", b"MEMCACHED = '10.0.0.1:11211'\n"),
        (
            "20-b.conf",
            b"# cache\nCACHE_BACKEND = 'memcached://%s/?timeout=60' % MEMCACHED\n",
        ),
    ]);
    let err = refused(dir.path());
    assert!(
        err.contains("/etc/synnefo/20-b.conf:2: CACHE_BACKEND: '%' is not part of a literal"),
        "{err}"
    );
    let dir = settings_node(&[(
        "20-b.conf",
        b"CACHE_BACKEND = 'locmem://'\nVMAPI_CACHE_BACKEND = CACHE_BACKEND\n",
    )]);
    let err = refused(dir.path());
    assert!(
        err.contains("20-b.conf:2: VMAPI_CACHE_BACKEND: 'CACHE_BACKEND' is not a literal"),
        "{err}"
    );
}

#[test]
fn an_obsolete_setting_read_elsewhere_or_sharing_a_line_is_refused() {
    let dir = settings_node(&[
        ("20-a.conf", b"CACHE_BACKEND = 'locmem://'\n"),
        ("30-b.conf", b"\nMY_CACHE = CACHE_BACKEND\n"),
    ]);
    let err = refused(dir.path());
    assert!(
        err.contains("/etc/synnefo/30-b.conf:2: this statement reads CACHE_BACKEND"),
        "{err}"
    );
    let dir = settings_node(&[("20-a.conf", b"X = 1; CACHE_BACKEND = 'locmem://'\n")]);
    assert!(refused(dir.path()).contains("20-a.conf:1: CACHE_BACKEND shares its line"));
}

#[test]
fn unknown_cache_scheme_and_broken_gunicorn_config_are_refused() {
    let dir = settings_node(&[(
        "20-a.conf",
        b"\n\nCACHE_BACKEND = 'redis://127.0.0.1:6379/1'\n",
    )]);
    assert!(refused(dir.path())
        .contains("20-a.conf:3: cache URI 'redis://127.0.0.1:6379/1': unknown scheme 'redis'"));
    let dir = settings_node(&[]);
    write(dir.path(), "/etc/gunicorn.d/synnefo", b"CONFIG = {\n 'mode': 'django',\n 'working_dir': '/etc/synnefo',\n 'args': ('--workers=4',\n}\n");
    let err = refused(dir.path());
    assert!(
        err.contains("/etc/gunicorn.d/synnefo:5: '}' does not close the '(' opened on line 4"),
        "{err}"
    );
}

#[test]
fn apache_conf_d_moves_to_conf_available_enabled_with_the_header_rewritten() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    upgraded(root);
    let header = b"RequestHeader set X-Forwarded-Protocol \"https\"\n# keep me\n";
    write(root, "/etc/apache2/conf.d/synnefo-proxy", header);
    write(
        root,
        "/etc/apache2/conf.d/security.conf",
        b"ServerTokens Prod\n",
    );
    write(
        root,
        "/etc/apache2/conf.d/charset.dpkg-old",
        b"AddDefaultCharset UTF-8\n",
    );
    // A link to a file elsewhere in /etc, relative: it still leads there.
    write(root, "/etc/synnefo/apache-status", b"ExtendedStatus On\n");
    fs::create_dir_all(root.join("etc/apache2/conf.d")).unwrap();
    symlink(
        "../../synnefo/apache-status",
        root.join("etc/apache2/conf.d/status"),
    )
    .unwrap();
    // Already at its destination: left alone, with a warning.
    write(root, "/etc/apache2/conf.d/taken", b"x\n");
    write(root, "/etc/apache2/conf-available/taken.conf", b"y\n");

    let before = snapshot(root);
    let dry = ok(root, &["--dry-run"]);
    assert_eq!(snapshot(root), before, "--dry-run wrote something");
    assert!(
        dry.contains("rename /etc/apache2/conf.d/synnefo-proxy -> /etc/apache2/conf-available/synnefo-proxy.conf"),
        "{dry}"
    );
    assert!(
        dry.contains(
            "link /etc/apache2/conf-enabled/security.conf -> ../conf-available/security.conf"
        ),
        "{dry}"
    );
    assert!(
        dry.contains("+RequestHeader set X-Forwarded-Proto \"https\""),
        "{dry}"
    );

    ok(root, &[]);
    assert_eq!(
        read(root, "/etc/apache2/conf-available/synnefo-proxy.conf"),
        b"RequestHeader set X-Forwarded-Proto \"https\"\n# keep me\n"
    );
    assert_eq!(
        read(root, "/etc/apache2/conf-available/security.conf"),
        b"ServerTokens Prod\n",
        "a name ending in .conf is not doubled"
    );
    for name in ["synnefo-proxy.conf", "security.conf"] {
        assert_eq!(
            fs::read_link(root.join("etc/apache2/conf-enabled").join(name)).unwrap(),
            Path::new("../conf-available").join(name)
        );
        // The link leads to the moved file.
        assert!(root.join("etc/apache2/conf-enabled").join(name).is_file());
    }
    assert_eq!(
        fs::read_link(root.join("etc/apache2/conf-available/status.conf")).unwrap(),
        Path::new("../../synnefo/apache-status")
    );
    assert_eq!(
        read(root, "/etc/apache2/conf-enabled/status.conf"),
        b"ExtendedStatus On\n"
    );
    assert!(fs::symlink_metadata(root.join("etc/apache2/conf.d/status")).is_err());
    assert!(!root.join("etc/apache2/conf.d/synnefo-proxy").exists());
    assert!(!root.join("etc/apache2/conf.d/security.conf").exists());
    // Leftovers and the clash stay.
    assert!(root.join("etc/apache2/conf.d/charset.dpkg-old").exists());
    assert!(!root.join("etc/apache2/conf-enabled/charset.conf").exists());
    assert_eq!(read(root, "/etc/apache2/conf.d/taken"), b"x\n");
    assert_eq!(read(root, "/etc/apache2/conf-available/taken.conf"), b"y\n");
    assert!(!root.join("etc/apache2/conf-enabled/taken.conf").exists());

    let again = ok(root, &[]);
    assert!(again.contains("nothing to convert"), "{again}");
}

/// Runs `convert` (with `args`), expecting success: (stdout, stderr).
fn ok_with_warnings(root: &Path, args: &[&str]) -> (String, String) {
    let out = convert(root, args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    (String::from_utf8(out.stdout).unwrap(), stderr)
}

#[test]
fn x_forwarded_protocol_is_renamed_wherever_apache_reads_it() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    upgraded(root);
    // The main file sets it, and pulls in the enabled sites (2.2 style, a directory).
    write(
        root,
        "/etc/apache2/apache2.conf",
        b"ServerRoot \"/etc/apache2\"\nrequestheader set X-Forwarded-Protocol https\nInclude sites-enabled/\nIncludeOptional /srv/apache/*.conf\nInclude ports.conf\n",
    );
    write(root, "/etc/apache2/ports.conf", b"Listen 443\n");
    // A site pulls in a relative glob and an absolute, quoted, lower-case include.
    write(
        root,
        "/etc/apache2/sites-available/synnefo.conf",
        b"<VirtualHost *:443>\n  Include synnefo-inc/*.conf\n  include \"/etc/synnefo/apache/headers\"\n</VirtualHost>\n",
    );
    fs::create_dir_all(root.join("etc/apache2/sites-enabled")).unwrap();
    symlink(
        "../sites-available/synnefo.conf",
        root.join("etc/apache2/sites-enabled/synnefo.conf"),
    )
    .unwrap();
    // Only reachable through the include; it includes the site again (a cycle).
    write(
        root,
        "/etc/apache2/synnefo-inc/proxy.conf",
        b"RequestHeader append \"x-forwarded-protocol\" \"https\"\r\n  RequestHeader setifempty \\\n    X-Forwarded-Protocol https early\r\nInclude sites-available/synnefo.conf\r\n",
    );
    write(
        root,
        "/etc/apache2/synnefo-inc/unused.txt",
        b"RequestHeader set X-Forwarded-Protocol https\n",
    );
    write(
        root,
        "/etc/synnefo/apache/headers",
        b"# RequestHeader set X-Forwarded-Protocol https\nRequestHeader add X-Forwarded-Protocol https\nHeader set X-Forwarded-Protocol https\n",
    );
    // Outside /etc: not followed, not changed, reported; also through a link
    // the glob matches.
    let outside = b"RequestHeader set X-Forwarded-Protocol https\n";
    write(root, "/srv/apache/synnefo.conf", outside);
    symlink(
        "/srv/apache/synnefo.conf",
        root.join("etc/apache2/synnefo-inc/shared.conf"),
    )
    .unwrap();
    // A variable cannot be followed; a site the conversion renames breaks
    // the include that names it.
    write(
        root,
        "/etc/apache2/conf.d/extra",
        b"Include ${APACHE_CONFDIR}/extra.conf\nInclude sites-available/old\n",
    );
    write(
        root,
        "/etc/apache2/sites-available/old",
        b"RequestHeader set X-Forwarded-Protocol https\n",
    );

    let before = snapshot(root);
    let (dry, warnings) = ok_with_warnings(root, &["--dry-run"]);
    assert_eq!(snapshot(root), before, "--dry-run wrote something");
    for diff in [
        "--- /etc/apache2/apache2.conf\n+++ /etc/apache2/apache2.conf\n",
        "-requestheader set X-Forwarded-Protocol https\n+requestheader set X-Forwarded-Proto https\n",
        "--- /etc/apache2/synnefo-inc/proxy.conf\n",
        "+RequestHeader append \"X-Forwarded-Proto\" \"https\"\r\n",
        "--- /etc/synnefo/apache/headers\n",
        "+RequestHeader add X-Forwarded-Proto https\n",
        "--- /etc/apache2/sites-available/old.conf\n",
    ] {
        assert!(dry.contains(diff), "{diff} in {dry}");
    }
    for warning in [
        "'/etc/apache2/apache2.conf:4' includes '/srv/apache/*.conf', which leads to '/srv/apache', outside /etc: not followed",
        "'/etc/synnefo/apache/headers:3' names X-Forwarded-Protocol",
        "'/etc/apache2/sites-available/synnefo.conf:2' includes '/etc/apache2/synnefo-inc/shared.conf', which leads to '/srv/apache/synnefo.conf', outside /etc: not followed",
        "'/etc/apache2/conf.d/extra:1' includes '${APACHE_CONFDIR}/extra.conf', which names a variable: not followed",
        "'/etc/apache2/conf.d/extra:2' includes '/etc/apache2/sites-available/old', which the conversion moves to '/etc/apache2/sites-available/old.conf': change the include",
    ] {
        assert!(warnings.contains(warning), "{warning} in {warnings}");
    }

    ok(root, &[]);
    assert_eq!(
        read(root, "/etc/apache2/apache2.conf"),
        b"ServerRoot \"/etc/apache2\"\nrequestheader set X-Forwarded-Proto https\nInclude sites-enabled/\nIncludeOptional /srv/apache/*.conf\nInclude ports.conf\n"
    );
    assert_eq!(
        read(root, "/etc/apache2/synnefo-inc/proxy.conf"),
        b"RequestHeader append \"X-Forwarded-Proto\" \"https\"\r\n  RequestHeader setifempty \\\n    X-Forwarded-Proto https early\r\nInclude sites-available/synnefo.conf\r\n"
    );
    assert_eq!(
        read(root, "/etc/synnefo/apache/headers"),
        b"# RequestHeader set X-Forwarded-Protocol https\nRequestHeader add X-Forwarded-Proto https\nHeader set X-Forwarded-Protocol https\n",
        "the comment and the response header are left as they are"
    );
    assert_eq!(read(root, "/srv/apache/synnefo.conf"), outside);
    assert_eq!(
        read(root, "/etc/apache2/synnefo-inc/unused.txt"),
        b"RequestHeader set X-Forwarded-Protocol https\n",
        "not included by anything: Apache never reads it"
    );
    assert_eq!(
        read(
            root,
            "/var/lib/synnefo-upgrade/backups/etc/apache2/apache2.conf"
        ),
        before[Path::new("etc/apache2/apache2.conf")].1
    );
    let (again, warnings) = ok_with_warnings(root, &[]);
    assert!(again.contains("nothing to convert"), "{again}");
    assert!(warnings.contains("not followed"), "still said: {warnings}");
}

#[test]
fn x_forwarded_protocol_is_renamed_wherever_nginx_reads_it() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    upgraded(root);
    write(
        root,
        "/etc/nginx/nginx.conf",
        b"events { worker_connections 768; }\nhttp {\n\tinclude /etc/nginx/conf.d/*.conf;\n\tinclude /etc/nginx/sites-enabled/*;\n}\n",
    );
    let params = "proxy_set_header Host $http_host;\nproxy_set_header X-Real-IP $remote_addr;\nproxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\nproxy_set_header X-Forwarded-Protocol $scheme;\n";
    write(root, "/etc/nginx/proxy_params", params.as_bytes());
    // One line, nested blocks, a comment after the statement, and includes:
    // relative, and a relative glob into a directory no one lists.
    let site = "server { listen 443 ssl; location / { proxy_set_header X-Forwarded-Protocol $scheme; include proxy_params; include synnefo/*.conf; proxy_pass http://127.0.0.1:8080; } } # proxy_set_header X-Forwarded-Protocol $scheme;\n";
    write(root, "/etc/nginx/sites-available/synnefo", site.as_bytes());
    fs::create_dir_all(root.join("etc/nginx/sites-enabled")).unwrap();
    symlink(
        "/etc/nginx/sites-available/synnefo",
        root.join("etc/nginx/sites-enabled/synnefo"),
    )
    .unwrap();
    write(
        root,
        "/etc/nginx/synnefo/headers.conf",
        b"proxy_set_header\n    'X-FORWARDED-PROTOCOL'\n    $scheme; proxy_set_header X-Forwarded-Protocol-Other 1;\nmore_set_input_headers 'X-Forwarded-Protocol: https';\n",
    );

    let before = snapshot(root);
    let (dry, warnings) = ok_with_warnings(root, &["--dry-run"]);
    assert_eq!(snapshot(root), before, "--dry-run wrote something");
    for diff in [
        "--- /etc/nginx/proxy_params\n",
        "-proxy_set_header X-Forwarded-Protocol $scheme;\n+proxy_set_header X-Forwarded-Proto $scheme;\n",
        "--- /etc/nginx/sites-available/synnefo\n",
        "--- /etc/nginx/synnefo/headers.conf\n",
    ] {
        assert!(dry.contains(diff), "{diff} in {dry}");
    }
    assert!(
        warnings.contains("'/etc/nginx/synnefo/headers.conf:4' names X-Forwarded-Protocol"),
        "{warnings}"
    );

    ok(root, &[]);
    assert_eq!(
        String::from_utf8(read(root, "/etc/nginx/proxy_params")).unwrap(),
        params.replace("Protocol $", "Proto $")
    );
    assert_eq!(
        String::from_utf8(read(root, "/etc/nginx/sites-available/synnefo")).unwrap(),
        "server { listen 443 ssl; location / { proxy_set_header X-Forwarded-Proto $scheme; include proxy_params; include synnefo/*.conf; proxy_pass http://127.0.0.1:8080; } } # proxy_set_header X-Forwarded-Protocol $scheme;\n"
    );
    assert_eq!(
        read(root, "/etc/nginx/synnefo/headers.conf"),
        b"proxy_set_header\n    'X-Forwarded-Proto'\n    $scheme; proxy_set_header X-Forwarded-Protocol-Other 1;\nmore_set_input_headers 'X-Forwarded-Protocol: https';\n"
    );
    assert_eq!(
        fs::read_link(root.join("etc/nginx/sites-enabled/synnefo")).unwrap(),
        Path::new("/etc/nginx/sites-available/synnefo"),
        "written through the link, which stays"
    );
    let again = ok(root, &[]);
    assert!(again.contains("nothing to convert"), "{again}");
}

#[test]
fn gunicorn_wsgi_app_already_named_with_its_callable_is_not_added_again() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    upgraded(root);
    let django = "CONFIG = {\n 'mode': 'django',\n 'environment': {'DJANGO_SETTINGS_MODULE': 'synnefo.settings'},\n 'args': ('--bind=127.0.0.1:8080', 'synnefo.webproject.wsgi:application'),\n}\n";
    let wsgi = "CONFIG = {\n 'mode': 'wsgi',\n 'working_dir': '/etc/synnefo',\n 'args': ['--workers=4', 'synnefo.webproject.wsgi:application'],\n}\n";
    // Another application: Django mode too, but not Synnefo's.
    let other = "CONFIG = {\n 'mode': 'django',\n 'working_dir': '/srv/shop',\n 'environment': {'DJANGO_SETTINGS_MODULE': 'shop.settings'},\n 'args': ('--bind=127.0.0.1:9000',),\n}\n";
    write(root, "/etc/gunicorn.d/synnefo", django.as_bytes());
    write(root, "/etc/gunicorn.d/synnefo-api", wsgi.as_bytes());
    write(root, "/etc/gunicorn.d/shop", other.as_bytes());
    let dry = ok(root, &["--dry-run"]);
    assert!(
        dry.contains("/etc/gunicorn.d/synnefo: mode django -> wsgi\n"),
        "{dry}"
    );
    ok(root, &[]);
    assert_eq!(
        String::from_utf8(read(root, "/etc/gunicorn.d/synnefo")).unwrap(),
        django.replace("'django'", "'wsgi'")
    );
    assert_eq!(read(root, "/etc/gunicorn.d/synnefo-api"), wsgi.as_bytes());
    assert_eq!(read(root, "/etc/gunicorn.d/shop"), other.as_bytes());
}

/// What a conversion on a node not yet upgraded must refuse: the allocator
/// (0.18.1 has no FilterAllocator), a conf.d snippet (Apache 2.2 reads no
/// conf-available), a site without `.conf`.
fn not_upgraded_node(os: &str, number: &str, version: &str) -> tempfile::TempDir {
    let dir = settings_node(&[(
        "20-snf-cyclades-app-backend.conf",
        b"BACKEND_ALLOCATOR_MODULE = 'synnefo.logic.allocators.default_allocator.DefaultAllocator'\n",
    )]);
    release(dir.path(), os, number, version);
    write(
        dir.path(),
        "/etc/apache2/conf.d/synnefo-proxy",
        b"RequestHeader set X-Forwarded-Protocol \"https\"\n",
    );
    write(
        dir.path(),
        "/etc/apache2/sites-available/synnefo",
        b"<VirtualHost *:80>\n</VirtualHost>\n",
    );
    dir
}

#[test]
fn a_node_not_upgraded_is_refused_without_force_and_converted_with_it() {
    for (os, number, version, why) in [
        (
            "wheezy",
            "7",
            "0.18.1-1~wheezy",
            "the OS is wheezy, not jessie",
        ),
        // The dist-upgrade under way: jessie, Synnefo not yet 0.19.
        (
            "jessie",
            "8",
            "0.18.1-1~wheezy",
            "snf-common 0.18.1-1~wheezy",
        ),
    ] {
        let dir = not_upgraded_node(os, number, version);
        let root = dir.path();
        let before = snapshot(root);
        let out = convert(root, &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{os} {version}: {stderr}");
        for said in [
            why,
            "FilterAllocator",
            "conf.d",
            "--force",
            "convert --dry-run",
            "nothing was changed",
        ] {
            assert!(
                stderr.contains(said),
                "{os} {version}: no '{said}' in: {stderr}"
            );
        }
        assert_eq!(
            snapshot(root),
            before,
            "{os} {version}: a refused conversion wrote something"
        );
        // A dry run is not refused: it changes nothing.
        let dry = ok(root, &["--dry-run"]);
        assert!(dry.contains("dry run, nothing written"), "{dry}");
        assert_eq!(snapshot(root), before);
        // --force converts.
        let done = ok(root, &["--force"]);
        assert!(done.starts_with("converted, "), "{done}");
        assert!(conf(root, "20-snf-cyclades-app-backend.conf").contains("FilterAllocator"));
        assert!(root
            .join("etc/apache2/conf-available/synnefo-proxy.conf")
            .exists());
    }
}

#[test]
fn a_node_whose_release_is_unknown_is_refused_with_the_reason() {
    let dir = not_upgraded_node("jessie", "8", "0.19-1~jessie");
    fs::remove_file(dir.path().join("etc/os-release")).unwrap();
    fs::remove_file(dir.path().join("var/lib/dpkg/status")).unwrap();
    let out = convert(dir.path(), &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("the OS is unknown"), "{stderr}");
    assert!(stderr.contains("/var/lib/dpkg/status"), "{stderr}");
}

#[test]
fn an_upgraded_node_converts_without_force() {
    let dir = not_upgraded_node("jessie", "8", "0.19-1~jessie");
    let done = ok(dir.path(), &[]);
    assert!(done.starts_with("converted, "), "{done}");
}
