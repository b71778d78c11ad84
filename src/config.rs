//! Configuration: compiled defaults, then `/etc/synnefo-upgrade/upgrade.toml`
//! (or `--config FILE`), then `upgrade.d/*.toml` in name order; later wins, key
//! by key. Unknown keys are errors that name file, line and column (exit 2).
//!
//! This module reads only; it never writes.

use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

use crate::error::Fatal;
use crate::fsx::Root;
use crate::paths;

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
    pub changelog: Option<PathBuf>,
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

/// Backups before the point of no return.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Backups {
    /// Take them (on nodes that run migrations).
    pub enabled: bool,
    /// Where they go (mode 0600 files).
    pub dir: PathBuf,
    /// Command (argv) whose stdout is the database dump; unset: `pg_dump -Fc`
    /// with the `DATABASES` settings from /etc/synnefo.
    pub database_command: Option<Vec<String>>,
}

impl Default for Backups {
    fn default() -> Self {
        Backups {
            enabled: true,
            dir: PathBuf::from("/var/backups/synnefo-upgrade"),
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
    /// After starting them, how long every started service must stay active.
    pub settle_seconds: u64,
}

impl Default for Services {
    fn default() -> Self {
        Services {
            managed: None,
            settle_seconds: 5,
        }
    }
}

/// Database migrations.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Migrations {
    /// Run `snf-manage migrate` on this node (one node per service).
    pub run: bool,
    /// How long `migrate` is retried while the database cannot be reached.
    pub retry_seconds: u64,
    /// On a node that does not migrate: how long to wait for the designated
    /// node to apply every migration (`snf-manage migrate --list`).
    pub wait_seconds: u64,
    /// Before migrating: refuse while another client is connected to the
    /// Synnefo databases (PostgreSQL's `pg_stat_activity`).
    pub require_quiet_database: bool,
    /// How long (seconds) the other clients have to leave before `migrate`.
    pub quiet_period_secs: u64,
}

impl Default for Migrations {
    fn default() -> Self {
        Migrations {
            run: true,
            retry_seconds: 300,
            wait_seconds: 1800,
            require_quiet_database: true,
            quiet_period_secs: 60,
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

/// Parses one file, validating it alone so that an error points into it.
fn parse_file(root: &Root, abs: &Path) -> Result<toml::Table> {
    // A FIFO (or socket, device, directory) is never opened: bad input, exit 2.
    let bytes =
        crate::fsx::read_file(root, abs).map_err(|e| match crate::fsx::not_regular(&e) {
            Some(not_regular) => Fatal::BadInput(not_regular.to_string()).into(),
            None => e,
        })?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = valid.iter().filter(|b| **b == b'\n').count() + 1;
        Fatal::BadInput(format!(
            "{}:{line}: not UTF-8 text (TOML must be UTF-8)",
            abs.display()
        ))
    })?;
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
        Fatal::BadInput(format!("{}{at}: {}", abs.display(), e.message()))
    };
    let config = toml::from_str::<Config>(&text).map_err(bad)?;
    validate(&config).map_err(|e| Fatal::BadInput(format!("{}: {e}", abs.display())))?;
    toml::from_str::<toml::Table>(&text)
        .map_err(bad)
        .map_err(Into::into)
}

/// Checks what the types cannot say.
fn validate(config: &Config) -> std::result::Result<(), String> {
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
    if crate::apt::rewrite_suite(&release.suite_to, &release.suite_from, &release.suite_to)
        .is_some()
        || crate::apt::rewrite_suite(&release.suite_from, &release.suite_to, &release.suite_from)
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
    if let Some(changelog) = &config.fix_ip_history.changelog {
        if !changelog.is_absolute() {
            return Err(format!(
                "[fix_ip_history] changelog '{}' is not an absolute path",
                changelog.display()
            ));
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
/// file (`--config`); a missing main file means defaults.
pub fn load(root: &Root, main: Option<&Path>) -> Result<Config> {
    let main = main.map_or_else(|| PathBuf::from(paths::CONFIG_FILE), Path::to_path_buf);
    let mut files = Vec::new();
    if root.path(&main).exists() {
        files.push(main);
    }
    let dropins = root.path(paths::CONFIG_DROPIN_DIR);
    if let Ok(entries) = std::fs::read_dir(&dropins) {
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".toml") && !n.starts_with('.'))
            .collect();
        names.sort();
        files.extend(
            names
                .into_iter()
                .map(|n| Path::new(paths::CONFIG_DROPIN_DIR).join(n)),
        );
    }
    let mut merged = toml::Table::new();
    for file in &files {
        merge(&mut merged, parse_file(root, file)?);
    }
    let config = Config::deserialize(toml::Value::Table(merged))
        .map_err(|e| Fatal::BadInput(format!("merged configuration: {e}")))?;
    validate(&config).map_err(|e| Fatal::BadInput(format!("merged configuration: {e}")))?;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::exit_code;
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
}
