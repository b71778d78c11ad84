//! Configuration: compiled defaults, then `/etc/synnefo-upgrade/upgrade.toml`
//! (or `--config FILE`), then `upgrade.d/*.toml` in name order; later wins, key
//! by key. Unknown keys are errors that name file, line and column (exit 2).
//!
//! Every file named is read or refused, never skipped: `--config FILE` (a path
//! on this host, relative to the working directory) must exist, and a file or
//! drop-in that is not a regular file (a directory, a FIFO, a dangling link),
//! cannot be read, is not UTF-8 or not valid TOML is bad input (exit 2, the
//! file named). Only a missing main file means the compiled defaults.
//!
//! This module reads only; it never writes.

use anyhow::Result;
use serde::{Deserialize, Deserializer, Serialize};
use std::ffi::OsString;
use std::fs;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::base::error::Fatal;
use crate::base::fsx::Root;
use crate::base::paths;

/// The whole configuration.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Release names.
    pub release: Release,
    /// Which services are managed.
    pub services: Services,
    /// Database migrations.
    pub migrations: Migrations,
    /// Config conversion (`convert`, and the finish phase).
    pub convert: Convert,
    /// Preflight thresholds.
    pub preflight: Preflight,
    /// The VM owner changelog for `fix_ip_history` (Cyclades).
    pub fix_ip_history: FixIpHistory,
    /// Cyclades re-registration on the Astakos node.
    pub cyclades: Cyclades,
    /// Backups taken before migrations.
    pub backups: Backups,
    /// The operator's step, `synnefo-upgrade dist-upgrade`.
    pub dist_upgrade: DistUpgrade,
    /// Checks that must pass after the services start (`[[health]]`).
    pub health: Vec<HealthCheck>,
}

/// Preflight thresholds.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Preflight {
    /// MiB added to the estimated space the dist-upgrade needs, in
    /// `/var/cache/apt/archives` and in `/`.
    pub space_margin_mib: u64,
    /// Ask APT what the dist-upgrade would do (a scratch `apt-get update`
    /// and `apt-get -s dist-upgrade`, on the live node only); `false`: only
    /// the checks that need no download (holds, pins).
    pub simulate: bool,
}

impl Default for Preflight {
    fn default() -> Self {
        Preflight {
            space_margin_mib: 512,
            simulate: true,
        }
    }
}

/// `fix_ip_history`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct FixIpHistory {
    /// The changelog (`<vmid>|<from_uuid>|<to_uuid>|<date>` lines); unset: not run.
    pub changelog: Option<NodePath>,
    /// Apply the fix (`--fix`) after a successful dry run; false: dry run only.
    pub fix: bool,
}

/// Cyclades re-registration (`snf-component-register cyclades`, non-interactive).
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Cyclades {
    /// Base URL; unset: the one currently registered.
    pub base_url: Option<String>,
    /// UI URL; unset: the one currently registered.
    pub ui_url: Option<String>,
}

/// An absolute path on the node: the type of every path-valued key. A
/// relative one is refused where it is written (file, line and column): no
/// working directory of ours is one the operator could mean.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(transparent)]
pub struct NodePath(PathBuf);

impl NodePath {
    /// `path`, or why it is not absolute.
    pub fn new(path: impl Into<PathBuf>) -> std::result::Result<NodePath, String> {
        let path = path.into();
        if path.is_absolute() {
            Ok(NodePath(path))
        } else {
            Err(format!(
                "'{}' is not an absolute path (give the whole path on the node, from /)",
                path.display()
            ))
        }
    }
}

impl std::ops::Deref for NodePath {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for NodePath {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl<'de> Deserialize<'de> for NodePath {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        NodePath::new(PathBuf::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// `synnefo-upgrade dist-upgrade`: the answers that keep it unattended.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DistUpgrade {
    /// debconf answers given before the transaction, one
    /// `debconf-set-selections` line each (`OWNER QUESTION TYPE VALUE`).
    pub debconf: Vec<String>,
    /// After the dist-upgrade, install `systemd-sysv` when the target release
    /// did not switch the init system by itself (trixie keeps sysvinit-core).
    pub switch_to_systemd: bool,
}

impl Default for DistUpgrade {
    fn default() -> Self {
        DistUpgrade {
            debconf: DEFAULT_DEBCONF.iter().map(|s| s.to_string()).collect(),
            switch_to_systemd: true,
        }
    }
}

/// The debconf answers `dist-upgrade` gives by default: libc6's and libpam's
/// "restart services during package upgrades without asking?" (yes: their
/// restarts of the Synnefo services are denied by policy-rc.d while armed;
/// the others, ssh and cron, come back at once).
pub const DEFAULT_DEBCONF: &[&str] = &[
    "libc6 libraries/restart-without-asking boolean true",
    "libpam0g libraries/restart-without-asking boolean true",
];

/// Backups before the point of no return.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Backups {
    /// Take them (on nodes that run migrations).
    pub enabled: bool,
    /// Where they go (mode 0600 files).
    pub dir: NodePath,
    /// Command (argv) whose stdout is the database dump; unset: `pg_dump -Fc`
    /// with the `DATABASES` settings from /etc/synnefo.
    pub database_command: Option<Vec<String>>,
}

impl Default for Backups {
    fn default() -> Self {
        Backups {
            enabled: true,
            dir: NodePath(PathBuf::from("/var/backups/synnefo-upgrade")),
            database_command: None,
        }
    }
}

/// One health check: exactly one of `url` (HTTP GET must answer 2xx/3xx) or
/// `command` (argv, must exit 0).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HealthCheck {
    /// A name for reports.
    pub name: Option<String>,
    /// HTTP URL to GET.
    pub url: Option<String>,
    /// Command to run (argv, no shell).
    pub command: Option<Vec<String>>,
}

/// Release names: OS codenames checked, APT suite names rewritten.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Release {
    /// OS codename `prepare` requires.
    pub os_from: String,
    /// OS codename `finish` requires.
    pub os_to: String,
    /// APT suite rewritten by `prepare` (also `X-*` and `X/*` suites).
    pub suite_from: String,
    /// What it becomes.
    pub suite_to: String,
}

impl Default for Release {
    fn default() -> Self {
        Release {
            os_from: "wheezy".into(),
            os_to: "jessie".into(),
            suite_from: "wheezy".into(),
            suite_to: "jessie".into(),
        }
    }
}

/// The managed services.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Services {
    /// Overrides the services derived from the node (init script names).
    pub managed: Option<Vec<String>>,
    /// After starting them, how long every started service must stay active:
    /// watched, so a service that goes down ends the step at once; the whole
    /// period passes only when all stay up (0: one look).
    pub settle_seconds: u64,
}

impl Default for Services {
    fn default() -> Self {
        Services {
            managed: None,
            settle_seconds: 2,
        }
    }
}

/// Database migrations.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Migrations {
    /// Run `snf-manage migrate` on this node (one node per service).
    pub run: bool,
    /// How long the steps that need the database (the dump, the guard,
    /// `migrate`) wait for a server that cannot be reached; 0: as long as it
    /// takes (a database node that reboots inside the outage comes back).
    pub retry_seconds: u64,
    /// On a node that does not migrate: how long to wait for the designated
    /// node to apply every migration (`snf-manage migrate --list`); on a
    /// shared database, also each wait of [`crate::actions::migorder`].
    pub wait_seconds: u64,
    /// Before migrating: refuse while another client is connected to the
    /// Synnefo databases (PostgreSQL's `pg_stat_activity`).
    pub require_quiet_database: bool,
    /// How long (seconds) the other clients have to leave before `migrate`.
    pub quiet_period_secs: u64,
    /// Once no other client is connected: how long (seconds) the guard
    /// watches for a client that connects or a row that is written (0: no
    /// watch, connections only).
    pub quiet_window_secs: u64,
    /// How often (milliseconds) the guard looks at the connections.
    pub quiet_poll_ms: u64,
    /// Client addresses the guard does not count as connections (`10.0.0.9`,
    /// `2001:db8::9`); their writes still count.
    pub allow_clients: Vec<String>,
}

impl Default for Migrations {
    fn default() -> Self {
        Migrations {
            run: true,
            retry_seconds: 0,
            wait_seconds: 1800,
            require_quiet_database: true,
            quiet_period_secs: 60,
            quiet_window_secs: 8,
            quiet_poll_ms: 200,
            allow_clients: Vec::new(),
        }
    }
}

/// Config conversion.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Convert {
    /// `ALLOWED_HOSTS` to set in the Synnefo settings; unset: left alone (0.19's
    /// default is `['*']`).
    pub allowed_hosts: Option<Vec<String>>,
}

/// Merges `over` into `base`, table by table; other values are replaced.
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// Reads configuration file `shown` at host path `host`: `None` when nothing
/// is there; anything there but a readable regular file of UTF-8 text is bad
/// input naming it. A FIFO or device is never opened: one could block the
/// run, or be read with side effects.
fn read_text(host: &Path, shown: &Path) -> Result<Option<String>> {
    let refuse = |what: String| Fatal::BadInput(format!("{}: {what}", shown.display()));
    let meta = match fs::metadata(host) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return match fs::read_link(host) {
                Ok(target) => Err(refuse(format!(
                    "a symbolic link to '{}', which does not exist",
                    target.display()
                ))
                .into()),
                Err(_) => Ok(None),
            };
        }
        Err(e) => return Err(refuse(format!("cannot be read: {e}")).into()),
    };
    let not_regular = |kind: std::fs::FileType| {
        let what = if kind.is_dir() {
            "a directory"
        } else if kind.is_fifo() {
            "a FIFO"
        } else if kind.is_socket() {
            "a socket"
        } else if kind.is_char_device() || kind.is_block_device() {
            "a device"
        } else {
            "something else"
        };
        refuse(format!("{what}, not a regular file"))
    };
    if !meta.is_file() {
        return Err(not_regular(meta.file_type()).into());
    }
    // Non-blocking, and checked again once open: the entry may have been
    // replaced since.
    let mut bytes = Vec::new();
    fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_NOCTTY)
        .open(host)
        .and_then(|mut file| {
            let meta = file.metadata()?;
            if !meta.is_file() {
                return Ok(Err(not_regular(meta.file_type())));
            }
            file.read_to_end(&mut bytes).map(Ok)
        })
        .map_err(|e| refuse(format!("cannot be read: {e}")))??;
    String::from_utf8(bytes).map(Some).map_err(|e| {
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = valid.iter().filter(|b| **b == b'\n').count() + 1;
        Fatal::BadInput(format!(
            "{}:{line}: not UTF-8 text (TOML must be UTF-8)",
            shown.display()
        ))
        .into()
    })
}

/// Reads node path `abs` under `root`, its links followed inside the root.
fn read_node_file(root: &Root, abs: &Path) -> Result<Option<String>> {
    let real = root
        .resolve(abs)
        .map_err(|e| Fatal::BadInput(format!("{}: {e:#}", abs.display())))?;
    let text = read_text(&root.path(&real), abs)?;
    if text.is_none() && fs::symlink_metadata(root.path_nofollow(abs)).is_ok() {
        return Err(Fatal::BadInput(format!(
            "{}: a symbolic link to '{}', which does not exist",
            abs.display(),
            real.display()
        ))
        .into());
    }
    Ok(text)
}

/// Parses one file, validating it alone so that an error points into it.
fn parse_file(shown: &Path, text: &str) -> Result<toml::Table> {
    let bad = |e: toml::de::Error| {
        let at = e
            .span()
            .map(|span| {
                let before = &text[..span.start.min(text.len())];
                let line = before.matches('\n').count() + 1;
                let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
                format!(":{line}:{col}")
            })
            .unwrap_or_default();
        Fatal::BadInput(format!("{}{at}: {}", shown.display(), e.message()))
    };
    let config = toml::from_str::<Config>(text).map_err(bad)?;
    validate(&config).map_err(|e| Fatal::BadInput(format!("{}: {e}", shown.display())))?;
    toml::from_str::<toml::Table>(text)
        .map_err(bad)
        .map_err(Into::into)
}

/// The drop-ins, in name order (bytes): `*.toml` not starting with a dot.
/// No directory: none; one that cannot be listed is bad input.
fn dropins(root: &Root) -> Result<Vec<PathBuf>> {
    let dir = Path::new(paths::CONFIG_DROPIN_DIR);
    let refuse =
        |e: std::io::Error| Fatal::BadInput(format!("{}: cannot be listed: {e}", dir.display()));
    let real = root
        .resolve(dir)
        .map_err(|e| Fatal::BadInput(format!("{}: {e:#}", dir.display())))?;
    let entries = match fs::read_dir(root.path(real)) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(refuse(e).into()),
    };
    let mut names = entries
        .map(|e| e.map(|e| e.file_name()))
        .collect::<std::io::Result<Vec<OsString>>>()
        .map_err(refuse)?;
    names.retain(|n| n.as_bytes().ends_with(b".toml") && !n.as_bytes().starts_with(b"."));
    names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    Ok(names.into_iter().map(|n| dir.join(n)).collect())
}

/// Checks what the types cannot say.
fn validate(config: &Config) -> std::result::Result<(), String> {
    for line in &config.dist_upgrade.debconf {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.len() < 3 || line.contains('\n') {
            return Err(format!(
                "[dist_upgrade] debconf: '{line}' is not a debconf-set-selections line ('OWNER QUESTION TYPE VALUE', e.g. '{}')",
                DEFAULT_DEBCONF[0]
            ));
        }
    }
    for addr in &config.migrations.allow_clients {
        if addr.parse::<std::net::IpAddr>().is_err() {
            return Err(format!(
                "[migrations] allow_clients: '{addr}' is not an IP address (as PostgreSQL shows a client: '10.0.0.9', '2001:db8::9')"
            ));
        }
    }
    let release = &config.release;
    for (key, name) in [
        ("os_from", &release.os_from),
        ("os_to", &release.os_to),
        ("suite_from", &release.suite_from),
        ("suite_to", &release.suite_to),
    ] {
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        {
            return Err(format!(
                "[release] {key} '{name}' is not a release name (letters, digits, '.', '_', '-')"
            ));
        }
    }
    // A suite rewritten into its own derivative (or back) would not stay rewritten.
    if crate::base::apt::rewrite_suite(&release.suite_to, &release.suite_from, &release.suite_to)
        .is_some()
        || crate::base::apt::rewrite_suite(
            &release.suite_from,
            &release.suite_to,
            &release.suite_from,
        )
        .is_some()
    {
        return Err(format!(
            "[release] suite_from '{}' and suite_to '{}' must be different release names",
            release.suite_from, release.suite_to
        ));
    }
    for (i, check) in config.health.iter().enumerate() {
        let what = check
            .name
            .clone()
            .unwrap_or_else(|| format!("[[health]] #{}", i + 1));
        match (&check.url, &check.command) {
            (Some(url), None) if url.starts_with("http://") || url.starts_with("https://") => {}
            (Some(url), None) => {
                return Err(format!("{what}: url '{url}' is not http:// or https://"))
            }
            (None, Some(argv)) if !argv.is_empty() => {}
            _ => {
                return Err(format!(
                    "{what}: give exactly one of 'url' or a non-empty 'command'"
                ))
            }
        }
    }
    for (key, url) in [
        ("base_url", &config.cyclades.base_url),
        ("ui_url", &config.cyclades.ui_url),
    ] {
        if let Some(url) = url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(format!("[cyclades] {key} '{url}' is not an http(s) URL"));
            }
        }
    }
    if config
        .backups
        .database_command
        .as_ref()
        .is_some_and(Vec::is_empty)
    {
        return Err("[backups] database_command is empty".into());
    }
    Ok(())
}

/// Loads the configuration of the node under `root`. `main` replaces the main
/// file (`--config`): a host path (relative to the working directory, not
/// under the root) that must exist. Without it, a missing main file means
/// the defaults.
pub fn load(root: &Root, main: Option<&Path>) -> Result<Config> {
    let mut files = Vec::new();
    match main {
        Some(file) => match read_text(file, file)? {
            Some(text) => files.push((file.to_path_buf(), text)),
            None => {
                return Err(
                    Fatal::BadInput(format!("--config '{}': no such file", file.display())).into(),
                )
            }
        },
        None => {
            let main = Path::new(paths::CONFIG_FILE);
            if let Some(text) = read_node_file(root, main)? {
                files.push((main.to_path_buf(), text));
            }
        }
    }
    for dropin in dropins(root)? {
        // Listed a moment ago: gone now is as bad as unreadable.
        let text = read_node_file(root, &dropin)?.ok_or_else(|| {
            Fatal::BadInput(format!("{}: disappeared while read", dropin.display()))
        })?;
        files.push((dropin, text));
    }
    let mut merged = toml::Table::new();
    for (file, text) in &files {
        merge(&mut merged, parse_file(file, text)?);
    }
    let config = Config::deserialize(toml::Value::Table(merged))
        .map_err(|e| Fatal::BadInput(format!("merged configuration: {e}")))?;
    validate(&config).map_err(|e| Fatal::BadInput(format!("merged configuration: {e}")))?;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::error::exit_code;
    use std::fs;

    fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (path, content) in files {
            let p = Root::new(dir.path()).path(path);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, content).unwrap();
        }
        dir
    }

    #[test]
    fn defaults_without_files() {
        let dir = tree(&[]);
        let config = load(&Root::new(dir.path()), None).unwrap();
        assert_eq!(config, Config::default());
        assert_eq!(config.release.os_to, "jessie");
        assert!(config.migrations.run);
    }

    #[test]
    fn dropins_override_key_by_key_in_name_order() {
        let dir = tree(&[
            (
                "/etc/synnefo-upgrade/upgrade.toml",
                "[release]\nos_from = \"a\"\nos_to = \"b\"\n",
            ),
            (
                "/etc/synnefo-upgrade/upgrade.d/20-x.toml",
                "[release]\nos_to = \"second\"\n",
            ),
            (
                "/etc/synnefo-upgrade/upgrade.d/10-x.toml",
                "[release]\nos_to = \"first\"\n[migrations]\nrun = false\n",
            ),
        ]);
        let config = load(&Root::new(dir.path()), None).unwrap();
        assert_eq!(config.release.os_from, "a");
        assert_eq!(config.release.os_to, "second");
        assert_eq!(config.release.suite_to, "jessie");
        assert!(!config.migrations.run);
    }

    #[test]
    fn convert_allowed_hosts() {
        let dir = tree(&[(
            "/etc/synnefo-upgrade/upgrade.toml",
            "[convert]\nallowed_hosts = [\"cloud.example.org\", \".example.org\"]\n",
        )]);
        let config = load(&Root::new(dir.path()), None).unwrap();
        assert_eq!(
            config.convert.allowed_hosts.as_deref(),
            Some(&["cloud.example.org".to_string(), ".example.org".to_string()][..])
        );
        assert_eq!(Config::default().convert.allowed_hosts, None);
    }

    #[test]
    fn unknown_key_names_file_line_and_column_and_exits_2() {
        let dir = tree(&[(
            "/etc/synnefo-upgrade/upgrade.d/50-bad.toml",
            "[release]\nos_to = \"jessie\"\nos_tooo = \"x\"\n",
        )]);
        let err = load(&Root::new(dir.path()), None).unwrap_err();
        let msg = format!("{err:#}");
        assert!(
            msg.contains("/etc/synnefo-upgrade/upgrade.d/50-bad.toml:3:1"),
            "{msg}"
        );
        assert!(msg.contains("os_tooo"), "{msg}");
        assert_eq!(exit_code(&err), std::process::ExitCode::from(2));
    }

    #[test]
    fn every_path_valued_key_must_be_absolute_named_at_file_line_column() {
        for (text, at) in [
            ("[backups]\nenabled = true\ndir = \"backups\"\n", ":3:7"),
            ("[fix_ip_history]\nchangelog = \"./vm.log\"\n", ":2:13"),
            ("[backups]\ndir = \"\"\n", ":2:7"),
        ] {
            let dir = tree(&[("/etc/synnefo-upgrade/upgrade.d/50-x.toml", text)]);
            let err = load(&Root::new(dir.path()), None).unwrap_err();
            let msg = format!("{err:#}");
            assert!(
                msg.contains(&format!("/etc/synnefo-upgrade/upgrade.d/50-x.toml{at}: '"))
                    && msg.contains("is not an absolute path"),
                "{msg}"
            );
            assert_eq!(exit_code(&err), std::process::ExitCode::from(2));
        }
        let dir = tree(&[(
            "/etc/synnefo-upgrade/upgrade.toml",
            "[backups]\ndir = \"/srv/backups\"\n[fix_ip_history]\nchangelog = \"/root/vm.log\"\n",
        )]);
        let config = load(&Root::new(dir.path()), None).unwrap();
        assert_eq!(&*config.backups.dir, Path::new("/srv/backups"));
        assert_eq!(
            config.fix_ip_history.changelog.as_deref(),
            Some(Path::new("/root/vm.log"))
        );
    }

    #[test]
    fn links_are_followed_inside_the_root_and_dangling_ones_refused() {
        let dir = tree(&[
            ("/etc/synnefo-local/30.toml", "[migrations]\nrun = false\n"),
            ("/etc/synnefo-upgrade/upgrade.toml", ""),
        ]);
        let root = Root::new(dir.path());
        let dropins = root.path(paths::CONFIG_DROPIN_DIR);
        fs::create_dir_all(&dropins).unwrap();
        // An absolute target is a node path: under the root, not the host's /etc.
        std::os::unix::fs::symlink("/etc/synnefo-local/30.toml", dropins.join("30.toml")).unwrap();
        assert!(!load(&root, None).unwrap().migrations.run);
        for (link, main) in [
            (dropins.join("40-gone.toml"), "40-gone.toml"),
            (root.path(paths::CONFIG_FILE), "upgrade.toml"),
        ] {
            let _ = fs::remove_file(&link);
            std::os::unix::fs::symlink("/etc/nowhere.toml", &link).unwrap();
            let err = load(&root, None).unwrap_err();
            let msg = format!("{err:#}");
            assert!(
                msg.contains(&format!(
                    "{main}: a symbolic link to '/etc/nowhere.toml', which does not exist"
                )),
                "{msg}"
            );
            assert_eq!(exit_code(&err), std::process::ExitCode::from(2));
            fs::remove_file(&link).unwrap();
        }
    }
}
