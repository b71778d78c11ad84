//! Fixture trees for `--root` tests: Synnefo nodes written in the real formats
//! (dpkg status paragraphs, os-release, init scripts, rc links, APT sources,
//! Ganeti ssconf), plus the real binary and a byte-for-byte tree snapshot.
#![allow(dead_code)]

pub mod pg;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{symlink, FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_synnefo-upgrade");

/// The Debian sources of a wheezy node.
pub const SOURCES_LIST: &str = "\
# Debian wheezy
deb http://ftp.gr.debian.org/debian/ wheezy main contrib non-free
deb http://security.debian.org/ wheezy/updates main
# deb http://ftp.gr.debian.org/debian/ wheezy-proposed-updates main
deb-src http://ftp.gr.debian.org/debian/ wheezy-updates main
";
/// Repositories whose URIs name `debian` but that are not Debian's archive
/// (ceph's, nginx's, the security archive).
pub const NOT_DEBIAN_LIST: &str = "\
deb http://download.ceph.com/debian-hammer/ wheezy main
deb http://nginx.org/packages/debian/ wheezy nginx
deb http://security.debian.org/ wheezy/updates main
";
/// GRNET's flat repository.
pub const GRNET_LIST: &str = "deb [trusted=yes] http://apt.dev.grnet.gr wheezy/\n";

/// Where the fake commands record their calls.
pub const CALLS: &str = "/var/log/snf-manage.calls";

/// The fake `snf-manage`'s answer to `migrate --list` (a read-only query, as
/// check runs it; not recorded): South's format (0.18.1) from
/// /var/lib/fake-south/list when the test wrote one, else every migration applied.
const SOUTH_LIST: &str = "if [ \"$*\" = \"migrate --list\" ]; then\n\
  if [ -f \"$root/var/lib/fake-south/list\" ]; then cat \"$root/var/lib/fake-south/list\"; exit 0; fi\n\
  printf ' db\\n  (*) 0001_initial\\n  (*) 0002_auto__add_ipaddresshistory\\n\\n im\\n  (*) 0001_initial\\n\\n'; exit 0\n\
fi\n";

/// A fixture node.
pub struct Node {
    pub dir: tempfile::TempDir,
    packages: Vec<String>,
}

fn paragraph(name: &str, version: &str, source: Option<&str>, status: &str) -> String {
    let mut p = format!("Package: {name}\nStatus: {status}\nPriority: optional\nSection: python\nInstalled-Size: 2048\nMaintainer: Synnefo development team <synnefo-devel@googlegroups.com>\nArchitecture: all\n");
    if let Some(source) = source {
        p.push_str(&format!("Source: {source}\n"));
    }
    p.push_str(&format!("Version: {version}\nDescription: {name}\n Synnefo is a suite of open source cloud software.\n .\n Long description.\n"));
    p
}

impl Node {
    /// A wheezy node with the common Synnefo packages at 0.18.1, gunicorn
    /// enabled and archipelago installed but not enabled.
    pub fn wheezy() -> Node {
        let dir = tempfile::tempdir().unwrap();
        let mut node = Node {
            dir,
            packages: Vec::new(),
        };
        node.write("/etc/os-release", "PRETTY_NAME=\"Debian GNU/Linux 7 (wheezy)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"7\"\nVERSION=\"7 (wheezy)\"\nID=debian\n", 0o644);
        node.write("/etc/debian_version", "7.11\n", 0o644);
        node.write("/etc/hostname", "node1\n", 0o644);
        node.write("/etc/init.d/gunicorn", "#!/bin/sh\nexit 0\n", 0o755);
        node.write("/etc/init.d/archipelago", "#!/bin/sh\nexit 0\n", 0o755);
        node.write("/etc/apt/sources.list", SOURCES_LIST, 0o644);
        node.write("/etc/apt/sources.list.d/grnet.list", GRNET_LIST, 0o640);
        node.fake_south_snf_manage(
            "echo \"Operations to perform: ...\"\necho \"Running migrations: OK\" >&2\n",
        );
        fs::create_dir_all(node.path("/var/log")).unwrap();
        fs::create_dir_all(node.path("/var/cache/apt/archives")).unwrap();
        node.link("../init.d/gunicorn", "/etc/rc2.d/S02gunicorn");
        node.package("gunicorn", "0.14.5-3+deb7u1", None);
        node.package("snf-common", "0.18.1-1~wheezy", Some("synnefo"));
        node.package("snf-webproject", "0.18.1-1~wheezy", Some("synnefo"));
        node.package("archipelago", "0.4.5-1~wheezy", None);
        node
    }

    /// [`Node::wheezy`] with Synnefo's `packages` at 0.18.1 too (the roles follow).
    pub fn with_synnefo(packages: &[&str]) -> Node {
        let mut node = Node::wheezy();
        for p in packages {
            node.package(p, "0.18.1-1~wheezy", Some("synnefo"));
        }
        node
    }

    /// Installs a fake command at `abs` that records each call, as
    /// `PREFIX ARGS`, in [`Node::calls`], then runs the shell `body` (in which
    /// `$root` is the fixture root).
    pub fn fake_command(&self, abs: &str, prefix: &str, body: &str) {
        let up = vec![".."; abs.trim_start_matches('/').matches('/').count()].join("/");
        self.write(
            abs,
            &format!("#!/bin/sh\nroot=\"$(dirname \"$0\")/{up}\"\necho \"{prefix}$*\" >> \"$root{CALLS}\"\n{body}"),
            0o755,
        );
    }

    /// The fake `snf-manage`: records its arguments in [`Node::calls`], then runs `body`.
    pub fn fake_snf_manage(&self, body: &str) {
        self.fake_snf_manage_after("", body);
    }

    /// The default node's fake `snf-manage`: 0.18.1's, which answers `migrate
    /// --list` the South way (see [`SOUTH_LIST`]); any other call is recorded
    /// in [`Node::calls`], then runs `body`.
    pub fn fake_south_snf_manage(&self, body: &str) {
        self.fake_snf_manage_after(SOUTH_LIST, body);
    }

    fn fake_snf_manage_after(&self, first: &str, body: &str) {
        self.write(
            "/usr/bin/snf-manage",
            &format!("#!/bin/sh\nroot=\"$(dirname \"$0\")/../..\"\n{first}echo \"$*\" >> \"$root{CALLS}\"\n{body}"),
            0o755,
        );
    }

    /// The calls the fake commands recorded, one line each.
    pub fn calls(&self) -> String {
        fs::read_to_string(self.path(CALLS)).unwrap_or_default()
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn path(&self, abs: &str) -> PathBuf {
        self.dir.path().join(abs.trim_start_matches('/'))
    }

    pub fn write(&self, abs: &str, content: &str, mode: u32) {
        let host = self.path(abs);
        fs::create_dir_all(host.parent().unwrap()).unwrap();
        fs::write(&host, content).unwrap();
        fs::set_permissions(&host, fs::Permissions::from_mode(mode)).unwrap();
    }

    pub fn link(&self, target: &str, abs: &str) {
        let host = self.path(abs);
        fs::create_dir_all(host.parent().unwrap()).unwrap();
        symlink(target, host).unwrap();
    }

    /// Adds an installed package to dpkg's status (rewritten each time).
    pub fn package(&mut self, name: &str, version: &str, source: Option<&str>) {
        self.packages
            .push(paragraph(name, version, source, "install ok installed"));
        self.write_status();
    }

    /// Takes `name` out of dpkg's status (as if it was never installed).
    pub fn remove_package(&mut self, name: &str) {
        let head = format!("Package: {name}\n");
        self.packages.retain(|p| !p.starts_with(&head));
        self.write_status();
    }

    /// Adds a removed package whose conffiles remain.
    pub fn config_files_package(&mut self, name: &str, version: &str) {
        self.packages.push(paragraph(
            name,
            version,
            Some("synnefo"),
            "deinstall ok config-files",
        ));
        self.write_status();
    }

    /// Sets the `Status:` (and, when given, `Version:`) of `name` in dpkg's
    /// status file as it is on disk now (after `to_jessie`, say).
    pub fn set_dpkg(&self, name: &str, status: &str, version: Option<&str>) {
        let text = fs::read_to_string(self.path("/var/lib/dpkg/status")).unwrap();
        let head = format!("Package: {name}\n");
        let mut found = false;
        let paragraphs: Vec<String> = text
            .split("\n\n")
            .map(|p| {
                if !p.starts_with(&head) {
                    return p.to_string();
                }
                found = true;
                p.lines()
                    .map(|l| match (l.split_once(": "), version) {
                        (Some(("Status", _)), _) => format!("Status: {status}"),
                        (Some(("Version", _)), Some(v)) => format!("Version: {v}"),
                        _ => l.to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
                    + if p.ends_with('\n') { "\n" } else { "" }
            })
            .collect();
        assert!(found, "{name} is not in dpkg's status");
        self.write("/var/lib/dpkg/status", &paragraphs.join("\n\n"), 0o644);
    }

    fn write_status(&self) {
        self.write("/var/lib/dpkg/status", &self.packages.join("\n"), 0o644);
    }

    /// The node after the dist-upgrade to jessie: os-release, and Synnefo's
    /// packages at 0.19 in dpkg's status.
    pub fn to_jessie(&self) {
        self.write("/etc/os-release", "PRETTY_NAME=\"Debian GNU/Linux 8 (jessie)\"\nVERSION_ID=\"8\"\nVERSION=\"8 (jessie)\"\nID=debian\n", 0o644);
        let status = fs::read_to_string(self.path("/var/lib/dpkg/status")).unwrap();
        let status = status.replace(
            "Source: synnefo\nVersion: 0.18.1-1~wheezy\n",
            "Source: synnefo\nVersion: 0.19-1~jessie\n",
        );
        self.write("/var/lib/dpkg/status", &status, 0o644);
    }

    /// Runs the binary with `--root` on this node.
    pub fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        Command::new(BIN)
            .arg("--root")
            .arg(self.root())
            .args(args)
            .env_remove("FAILPOINTS")
            .envs(env.iter().copied())
            .output()
            .unwrap()
    }

    /// Runs the binary like [`Node::run`], but kills it and fails the test
    /// when it has not ended within `secs` seconds: for inputs that once made
    /// it block forever (a FIFO where a file is read), so that a regression
    /// fails instead of hanging the test run.
    pub fn run_within(&self, secs: u64, args: &[&str]) -> Output {
        let (out, err) = (tempfile::tempfile().unwrap(), tempfile::tempfile().unwrap());
        let mut child = Command::new(BIN)
            .arg("--root")
            .arg(self.root())
            .args(args)
            .env_remove("FAILPOINTS")
            .env("SYNNEFO_UPGRADE_LOCK_WAIT", "0")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(err.try_clone().unwrap())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(secs);
        let read = |mut f: fs::File| {
            use std::io::{Read, Seek};
            let mut bytes = Vec::new();
            f.rewind().unwrap();
            f.read_to_end(&mut bytes).unwrap();
            bytes
        };
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return Output {
                    status,
                    stdout: read(out),
                    stderr: read(err),
                };
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{args:?} did not end within {secs} s (blocked?); its stderr so far:\n{}",
                    String::from_utf8_lossy(&read(err))
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Creates a FIFO (named pipe) at `abs`, with its parent directories.
    pub fn fifo(&self, abs: &str) {
        let host = self.path(abs);
        fs::create_dir_all(host.parent().unwrap()).unwrap();
        nix::unistd::mkfifo(&host, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    }

    /// Runs and requires success.
    pub fn ok(&self, args: &[&str]) -> Output {
        let out = self.run(args, &[]);
        assert!(
            out.status.success(),
            "{args:?}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    pub fn state_json(&self) -> serde_json::Value {
        serde_json::from_slice(&fs::read(self.path("/var/lib/synnefo-upgrade/state.json")).unwrap())
            .unwrap()
    }

    /// The state file's record of step `id` of `phase`.
    pub fn step(&self, phase: &str, id: &str) -> serde_json::Value {
        step_record(&self.state_json(), phase, id)
    }

    pub fn snapshot(&self) -> BTreeMap<PathBuf, String> {
        snapshot(self.root())
    }

    /// Whether the systemd unit `unit` is masked (a link to /dev/null).
    pub fn masked(&self, unit: &str) -> bool {
        fs::read_link(self.path(&format!("/etc/systemd/system/{unit}")))
            .is_ok_and(|target| target.to_str() == Some("/dev/null"))
    }
}

/// A [`snapshot`] without what the tool keeps for itself (its state, ledger
/// and backups under /var/lib/synnefo-upgrade).
pub fn without_our_records(tree: BTreeMap<PathBuf, String>) -> BTreeMap<PathBuf, String> {
    tree.into_iter()
        .filter(|(p, _)| !p.starts_with("var/lib/synnefo-upgrade") && p != Path::new("var/lib"))
        .collect()
}

/// The record of step `id` of `phase` in a state file or `status --json` document.
pub fn step_record(doc: &serde_json::Value, phase: &str, id: &str) -> serde_json::Value {
    doc["steps"]
        .as_array()
        .expect("a steps array")
        .iter()
        .find(|s| s["id"] == id && s["phase"] == phase)
        .unwrap_or_else(|| panic!("no record of step {phase}/{id} in {doc:#}"))
        .clone()
}

/// Every file, link and directory under `root` with its content, target and mode;
/// our own records with timestamps (state, ledger, the locks) are left out.
pub fn snapshot(root: &Path) -> BTreeMap<PathBuf, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, String>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path.strip_prefix(root).unwrap().to_path_buf();
            if [
                "var/lib/synnefo-upgrade/state.json",
                "var/lib/synnefo-upgrade/lock",
                "var/lib/synnefo-upgrade/dist-upgrade.lock",
                "var/lib/synnefo-upgrade/denied-actions.log",
            ]
            .iter()
            .any(|skip| rel == Path::new(skip))
            {
                continue;
            }
            let meta = fs::symlink_metadata(&path).unwrap();
            let mode = meta.permissions().mode() & 0o7777;
            if meta.file_type().is_fifo() {
                // Never opened: reading it would block.
                out.insert(rel, format!("fifo {mode:o}"));
            } else if meta.file_type().is_symlink() {
                out.insert(
                    rel,
                    format!("link -> {}", fs::read_link(&path).unwrap().display()),
                );
            } else if meta.is_dir() {
                out.insert(rel.clone(), format!("dir {mode:o}"));
                walk(root, &path, out);
            } else {
                out.insert(
                    rel,
                    format!(
                        "file {mode:o} {}",
                        String::from_utf8_lossy(&fs::read(&path).unwrap())
                    ),
                );
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// Starts the binary with `--root` on `node` in the background (output piped).
pub fn spawn(node: &Node, args: &[&str]) -> std::process::Child {
    spawn_env(node, args, &[])
}

/// [`spawn`] with `env` set for the binary.
pub fn spawn_env(node: &Node, args: &[&str], env: &[(&str, &str)]) -> std::process::Child {
    Command::new(BIN)
        .arg("--root")
        .arg(node.root())
        .args(args)
        .env_remove("FAILPOINTS")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits for `child` for up to `secs` (killed, and the test fails, after
/// that): its output, and when it ended.
pub fn reap(mut child: std::process::Child, secs: u64) -> (Output, Instant) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if child.try_wait().unwrap().is_some() {
            let ended = Instant::now();
            return (child.wait_with_output().unwrap(), ended);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!("the command did not end within {secs} s");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
