//! Configuration: compiled defaults, then `/etc/synnefo-upgrade/upgrade.toml`
//! (or `--config FILE`), then `upgrade.d/*.toml` in name order; later wins, key
//! by key. Unknown keys are errors that name file, line and column (exit 2).
//!
//! This module reads only; it never writes.

use anyhow::{Context, Result};
use serde::Deserialize;
use std::path::{Path, PathBuf};

use crate::error::Fatal;
use crate::fsx::Root;
use crate::paths;

/// The whole configuration.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Release names.
    pub release: Release,
    /// Which services are managed.
    pub services: Services,
    /// Database migrations.
    pub migrations: Migrations,
}

/// Release names: OS codenames checked, APT suite names rewritten.
#[derive(Debug, Clone, Deserialize, PartialEq)]
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
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Services {
    /// Overrides the services derived from the node (init script names).
    pub managed: Option<Vec<String>>,
}

/// Database migrations.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Migrations {
    /// Run `snf-manage migrate` on this node (one node per service).
    pub run: bool,
}

impl Default for Migrations {
    fn default() -> Self {
        Migrations { run: true }
    }
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
    let text = std::fs::read_to_string(root.path(abs))
        .with_context(|| format!("reading '{}'", abs.display()))?;
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
    toml::from_str::<Config>(&text).map_err(bad)?;
    toml::from_str::<toml::Table>(&text)
        .map_err(bad)
        .map_err(Into::into)
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
    Config::deserialize(toml::Value::Table(merged))
        .map_err(|e| Fatal::BadInput(format!("merged configuration: {e}")).into())
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
