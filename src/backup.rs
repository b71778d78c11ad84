//! Backups before the point of no return (migrations): a database dump and a
//! tarball of the Synnefo, gunicorn and web server configuration, mode 0600,
//! under `[backups] dir` (default `/var/backups/synnefo-upgrade`).
//!
//! The dump is `pg_dump -Fc` with the `DATABASES['default']` settings read
//! (as literals) from `/etc/synnefo`, a copy of the file for SQLite, or the
//! configured `database_command`. Files are written through [`crate::fsx`].

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::config::Config;
use crate::convert::python::Expr;
use crate::convert::settings::Settings;
use crate::exec;
use crate::fsx::{self, Root};

/// Configuration directories put in the tarball, when present.
pub const CONFIG_DIRS: &[&str] = &[
    "etc/synnefo",
    "etc/gunicorn.d",
    "etc/apache2",
    "etc/nginx",
    "etc/default",
];

/// The database backup plan derived from the settings.
#[derive(Debug, PartialEq)]
pub enum Dump {
    /// Run this argv (with `PGPASSWORD` when given); stdout is the dump.
    Command {
        /// The command.
        argv: Vec<String>,
        /// `PGPASSWORD` for it.
        password: Option<String>,
    },
    /// Copy this SQLite file.
    Copy(PathBuf),
    /// Nothing to dump, and why.
    Nothing(String),
}

fn text(e: Option<&Expr>) -> String {
    e.and_then(Expr::as_str).unwrap_or_default().to_string()
}

/// Where Synnefo keeps its SQLite database when `DATABASES` is not set.
const DEFAULT_SQLITE: &str = "/usr/share/synnefo/synnefo_database.sqlite";

/// How to dump the database of the node under `root`.
pub fn dump_plan(root: &Root, config: &Config) -> Result<Dump> {
    if let Some(argv) = &config.backups.database_command {
        return Ok(Dump::Command {
            argv: argv.clone(),
            password: None,
        });
    }
    let settings = Settings::load(root)?;
    let Some(databases) = settings.literal("DATABASES")? else {
        let default = Path::new(DEFAULT_SQLITE);
        return Ok(if root.path(default).is_file() {
            Dump::Copy(default.to_path_buf())
        } else {
            Dump::Nothing(format!(
                "DATABASES is not set and {DEFAULT_SQLITE} does not exist"
            ))
        });
    };
    let Some(db) = databases.get("default") else {
        bail!("DATABASES has no 'default' entry: set [backups] database_command");
    };
    let engine = text(db.get("ENGINE"));
    let name = text(db.get("NAME"));
    if engine.contains("postgresql") {
        let mut argv = vec!["pg_dump".to_string(), "-Fc".to_string()];
        for (flag, key) in [
            ("--host", "HOST"),
            ("--port", "PORT"),
            ("--username", "USER"),
        ] {
            let value = text(db.get(key));
            if !value.is_empty() {
                argv.extend([flag.to_string(), value]);
            }
        }
        argv.push(name);
        let password = Some(text(db.get("PASSWORD"))).filter(|p| !p.is_empty());
        Ok(Dump::Command { argv, password })
    } else if engine.contains("sqlite3") {
        Ok(Dump::Copy(PathBuf::from(name)))
    } else {
        bail!("cannot dump a '{engine}' database: set [backups] database_command (or [backups] enabled = false)")
    }
}

/// Takes the backups; returns what was written.
pub fn take(root: &Root, config: &Config) -> Result<String> {
    let dir = &config.backups.dir;
    let mut written = Vec::new();
    match dump_plan(root, config)? {
        Dump::Command { argv, password } => {
            let program = exec::find(root, &argv[0])?;
            let mut command = Command::new(program);
            command.args(&argv[1..]);
            if let Some(password) = password {
                command.env("PGPASSWORD", password);
            }
            let dump = dir.join("database.dump");
            fsx::write_from_command(root, &dump, &mut command).context("dumping the database")?;
            written.push(dump);
        }
        Dump::Copy(file) => {
            let copy = dir.join("database.sqlite");
            let mut command = Command::new("cat");
            command.arg(root.path(&file));
            fsx::write_from_command(root, &copy, &mut command)
                .with_context(|| format!("copying '{}'", file.display()))?;
            written.push(copy);
        }
        Dump::Nothing(why) => log::warn!("no database dump: {why}"),
    }
    let present: Vec<&str> = CONFIG_DIRS
        .iter()
        .copied()
        .filter(|d| root.path(Path::new("/").join(d)).is_dir())
        .collect();
    if !present.is_empty() {
        let tarball = dir.join("config.tar.gz");
        let mut command = Command::new(exec::find(root, "tar")?);
        command
            .arg("-czf")
            .arg("-")
            .arg("-C")
            .arg(root.path("/"))
            .args(&present);
        fsx::write_from_command(root, &tarball, &mut command)
            .context("archiving the configuration")?;
        written.push(tarball);
    }
    let written: Vec<String> = written.iter().map(|p| p.display().to_string()).collect();
    Ok(format!(
        "written: {}",
        if written.is_empty() {
            "nothing".into()
        } else {
            written.join(", ")
        }
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root_with_settings(conf: &str) -> (tempfile::TempDir, Root) {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        std::fs::create_dir_all(root.path("/etc/synnefo")).unwrap();
        std::fs::write(
            root.path("/etc/synnefo/10-snf-webproject-database.conf"),
            conf,
        )
        .unwrap();
        (dir, root)
    }

    #[test]
    fn postgres_settings_become_pg_dump_arguments() {
        let (_d, root) = root_with_settings(
            "#DATABASES = {}\nDATABASES = {\n    'default': {\n        'ENGINE': 'django.db.backends.postgresql_psycopg2',\n        'NAME': 'snf_apps',\n        'USER': 'synnefo',\n        'PASSWORD': u'example_passw0rd',\n        'HOST': '203.0.113.1',\n        'PORT': '5432',\n    }\n}\n",
        );
        let plan = dump_plan(&root, &Config::default()).unwrap();
        assert_eq!(
            plan,
            Dump::Command {
                argv: [
                    "pg_dump",
                    "-Fc",
                    "--host",
                    "203.0.113.1",
                    "--port",
                    "5432",
                    "--username",
                    "synnefo",
                    "snf_apps"
                ]
                .map(String::from)
                .to_vec(),
                password: Some("example_passw0rd".into()),
            }
        );
    }

    #[test]
    fn sqlite_and_unset_and_unknown_engines() {
        let (_d, root) = root_with_settings("DATABASES = {'default': {'ENGINE': 'django.db.backends.sqlite3', 'NAME': '/var/lib/snf.db'}}\n");
        assert_eq!(
            dump_plan(&root, &Config::default()).unwrap(),
            Dump::Copy("/var/lib/snf.db".into())
        );
        let (_d, root) = root_with_settings("#DATABASES = {}\n");
        assert!(matches!(
            dump_plan(&root, &Config::default()).unwrap(),
            Dump::Nothing(_)
        ));
        let (_d, root) = root_with_settings(
            "DATABASES = {'default': {'ENGINE': 'django.db.backends.oracle'}}\n",
        );
        assert!(
            format!("{:#}", dump_plan(&root, &Config::default()).unwrap_err())
                .contains("database_command")
        );
    }
}
