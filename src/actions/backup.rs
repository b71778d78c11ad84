//! Backups before the point of no return (migrations): a dump of every
//! Synnefo database and a tarball of the Synnefo, gunicorn and web server
//! configuration, mode 0600, under `[backups] dir` (default
//! `/var/backups/synnefo-upgrade`, a real directory of mode 0700).
//!
//! The databases: `DATABASES['default']` (read as literals from
//! `/etc/synnefo`) and the Pithos backend's `PITHOS_BACKEND_DB_CONNECTION`
//! (an SQLAlchemy URL) when set and not the same database. PostgreSQL is
//! dumped with `pg_dump -Fc` (the password in `PGPASSWORD`, never on a command
//! line), SQLite copied; a configured `database_command` replaces both.
//!
//! Space: the need is estimated before anything is written (the SQLite files
//! and the configuration, uncompressed; a `pg_dump`'s size is known only as it
//! is written), and a disk that fills up while writing fails the step with
//! the path and the figures. Files are written through [`crate::base::fsx`] under a
//! temporary name and renamed only when complete: a partial dump is removed.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::base::exec;
use crate::base::fsx::{self, Root};
use crate::convert::python::Expr;
use crate::convert::settings::Settings;
use crate::inputs::config::Config;

/// Configuration directories put in the tarball, when present.
pub const CONFIG_DIRS: &[&str] = &[
    "etc/synnefo",
    "etc/gunicorn.d",
    "etc/apache2",
    "etc/nginx",
    "etc/default",
];

/// The setting naming the Pithos backend database (an SQLAlchemy URL).
pub const PITHOS_DB_SETTING: &str = "PITHOS_BACKEND_DB_CONNECTION";

/// How to back up one database.
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

/// One database to back up: the file it goes to (in the backups directory)
/// and how.
#[derive(Debug, PartialEq)]
pub struct Database {
    /// File name under `[backups] dir`.
    pub file: String,
    /// How.
    pub dump: Dump,
}

/// How our PostgreSQL sessions begin their application name
/// (`pg_stat_activity`): the database guard counts no session so named, on
/// any node ([`crate::actions::dbguard::query`]).
pub const OUR_APP: &str = "synnefo-upgrade";

/// A PostgreSQL database, as `pg_dump` is pointed at it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Postgres {
    /// Host (empty: the local socket); a directory for a socket.
    pub host: String,
    /// Port (empty: 5432).
    pub port: String,
    /// User.
    pub user: String,
    /// Password (empty: none).
    pub password: String,
    /// Database name.
    pub name: String,
}

impl Postgres {
    /// The `pg_dump` argv (no password: it goes in `PGPASSWORD`).
    fn dump(&self) -> Dump {
        let mut argv = vec!["pg_dump".to_string(), "-Fc".to_string()];
        for (flag, value) in [
            ("--host", &self.host),
            ("--port", &self.port),
            ("--username", &self.user),
        ] {
            if !value.is_empty() {
                argv.extend([flag.to_string(), value.clone()]);
            }
        }
        argv.push(self.name.clone());
        let password = Some(self.password.clone()).filter(|p| !p.is_empty());
        Dump::Command { argv, password }
    }

    /// Whether `other` is the same database (the local server by any name,
    /// the default port spelled or not).
    fn same_database(&self, other: &Postgres) -> bool {
        fn host(h: &str) -> &str {
            match h {
                "" | "localhost" | "127.0.0.1" | "::1" => "",
                h if h.starts_with('/') => "",
                h => h,
            }
        }
        fn port(p: &str) -> &str {
            if p.is_empty() {
                "5432"
            } else {
                p
            }
        }
        host(&self.host) == host(&other.host)
            && port(&self.port) == port(&other.port)
            && self.name == other.name
    }
}

/// What an SQLAlchemy URL designates.
#[derive(Debug, PartialEq)]
pub enum DbUrl {
    /// A PostgreSQL database.
    Postgres(Postgres),
    /// An SQLite file (absolute path).
    Sqlite(PathBuf),
}

fn percent_decode(s: &str) -> Result<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .with_context(|| format!("bad %-escape in '{s}'"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).with_context(|| format!("'{s}' does not decode to UTF-8"))
}

/// Parses an SQLAlchemy database URL
/// (`dialect[+driver]://[user[:password]@][host][:port]/name[?host=...&port=...]`,
/// `sqlite:////absolute/path`). User and password are %-decoded.
pub fn parse_db_url(url: &str) -> Result<DbUrl> {
    let (scheme, rest) = url
        .split_once("://")
        .with_context(|| format!("'{url}' is not a database URL (no '://')"))?;
    let dialect = scheme.split('+').next().unwrap_or_default();
    match dialect {
        "sqlite" => {
            // sqlite:///relative, sqlite:////absolute; the part after the third slash.
            let path = rest.strip_prefix('/').unwrap_or(rest);
            let path = path.split('?').next().unwrap_or_default();
            if !path.starts_with('/') {
                bail!("'{url}' is not an absolute SQLite path (sqlite:////PATH)");
            }
            Ok(DbUrl::Sqlite(PathBuf::from(path)))
        }
        "postgresql" | "postgres" => {
            let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
            let (netloc, name) = rest.split_once('/').unwrap_or((rest, ""));
            let mut db = Postgres {
                name: percent_decode(name)?,
                ..Postgres::default()
            };
            let hostport = match netloc.rsplit_once('@') {
                Some((userinfo, hostport)) => {
                    let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
                    db.user = percent_decode(user)?;
                    db.password = percent_decode(password)?;
                    hostport
                }
                None => netloc,
            };
            let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
                let (host, after) = v6
                    .split_once(']')
                    .with_context(|| format!("'{url}': unclosed '[' in the host"))?;
                (host, after.strip_prefix(':').unwrap_or_default())
            } else {
                hostport.rsplit_once(':').unwrap_or((hostport, ""))
            };
            if !port.chars().all(|c| c.is_ascii_digit()) {
                bail!("'{url}': the port '{port}' is not a number");
            }
            db.host = percent_decode(host)?;
            db.port = port.to_string();
            for pair in query.split('&').filter(|p| !p.is_empty()) {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                match key {
                    "host" => db.host = percent_decode(value)?,
                    "port" => db.port = value.to_string(),
                    "user" => db.user = percent_decode(value)?,
                    "password" => db.password = percent_decode(value)?,
                    _ => {}
                }
            }
            if db.name.is_empty() {
                bail!("'{url}' names no database");
            }
            Ok(DbUrl::Postgres(db))
        }
        other => bail!("cannot dump a '{other}' database ('{url}'): set [backups] database_command (or [backups] enabled = false)"),
    }
}

fn text(e: Option<&Expr>) -> String {
    e.and_then(Expr::as_str).unwrap_or_default().to_string()
}

/// Where Synnefo keeps its SQLite database when `DATABASES` is not set.
const DEFAULT_SQLITE: &str = "/usr/share/synnefo/synnefo_database.sqlite";

/// One of the node's Synnefo databases, as its settings name it.
#[derive(Debug, PartialEq)]
pub enum Target {
    /// A PostgreSQL database.
    Postgres(Postgres),
    /// An SQLite file.
    Sqlite(PathBuf),
    /// None, and why (`DATABASES` unset and no default SQLite file).
    Missing(String),
    /// Another engine (Django's `ENGINE`).
    Other(String),
}

/// The default database, as `DATABASES['default']` names it.
fn default_database(settings: &Settings, root: &Root) -> Result<Target> {
    let Some(databases) = settings.literal("DATABASES")? else {
        let default = Path::new(DEFAULT_SQLITE);
        return Ok(if root.path(default).is_file() {
            Target::Sqlite(default.to_path_buf())
        } else {
            Target::Missing(format!(
                "DATABASES is not set and {DEFAULT_SQLITE} does not exist"
            ))
        });
    };
    let Some(db) = databases.get("default") else {
        bail!("DATABASES has no 'default' entry: set [backups] database_command");
    };
    let engine = text(db.get("ENGINE"));
    let name = text(db.get("NAME"));
    Ok(if engine.contains("postgresql") {
        Target::Postgres(Postgres {
            host: text(db.get("HOST")),
            port: text(db.get("PORT")),
            user: text(db.get("USER")),
            password: text(db.get("PASSWORD")),
            name,
        })
    } else if engine.contains("sqlite3") {
        Target::Sqlite(PathBuf::from(name))
    } else {
        Target::Other(engine)
    })
}

/// The node's Synnefo databases: `DATABASES['default']`, then the Pithos
/// backend's `PITHOS_BACKEND_DB_CONNECTION` when it is set and another database.
pub fn databases(root: &Root) -> Result<Vec<Target>> {
    let settings = Settings::load(root)?;
    let default = default_database(&settings, root)?;
    let mut targets = Vec::new();
    if let Some(url) = settings.literal(PITHOS_DB_SETTING)? {
        let url = url
            .as_str()
            .with_context(|| format!("{PITHOS_DB_SETTING} is not a string"))?
            .to_string();
        let parsed = parse_db_url(&url).with_context(|| format!("reading {PITHOS_DB_SETTING}"))?;
        match (&default, parsed) {
            (Target::Postgres(d), DbUrl::Postgres(pg)) if d.same_database(&pg) => {
                log::info!("{PITHOS_DB_SETTING} is the default database: dumped once");
            }
            (Target::Sqlite(d), DbUrl::Sqlite(path)) if *d == path => {}
            (_, DbUrl::Postgres(pg)) => targets.push(Target::Postgres(pg)),
            (_, DbUrl::Sqlite(path)) => targets.push(Target::Sqlite(path)),
        }
    }
    targets.insert(0, default);
    Ok(targets)
}

/// What to back up on the node under `root`: the default database, then the
/// Pithos backend database when it is set and another one.
pub fn dump_plan(root: &Root, config: &Config) -> Result<Vec<Database>> {
    if let Some(argv) = &config.backups.database_command {
        return Ok(vec![Database {
            file: "database.dump".into(),
            dump: Dump::Command {
                argv: argv.clone(),
                password: None,
            },
        }]);
    }
    let mut plan = Vec::new();
    for (i, target) in databases(root)?.into_iter().enumerate() {
        let stem = if i == 0 { "database" } else { "pithos-backend" };
        let (dump, ext) = match target {
            Target::Postgres(pg) => (pg.dump(), "dump"),
            Target::Sqlite(path) => (Dump::Copy(path), "sqlite"),
            Target::Missing(why) => (Dump::Nothing(why), "dump"),
            Target::Other(engine) => bail!("cannot dump a '{engine}' database: set [backups] database_command (or [backups] enabled = false)"),
        };
        plan.push(Database {
            file: format!("{stem}.{ext}"),
            dump,
        });
    }
    Ok(plan)
}

/// Bytes in regular files under host directory `dir` (links not followed).
pub fn tree_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.path().symlink_metadata() {
            Ok(m) if m.is_dir() => tree_size(&e.path()),
            Ok(m) if m.is_file() => m.len(),
            _ => 0,
        })
        .sum()
}

/// Free bytes for us on the file system holding node path `abs` (or its
/// nearest existing ancestor).
fn free_bytes(root: &Root, abs: &Path) -> Option<u64> {
    let mut at = Some(abs);
    while let Some(dir) = at {
        if let Ok(stat) = nix::sys::statvfs::statvfs(&root.path(dir)) {
            return Some(stat.blocks_available() * stat.fragment_size());
        }
        at = dir.parent();
    }
    None
}

/// A size for people: `1.5 MiB`.
pub fn human(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// Writes one backup file from `command`'s output; a full disk is reported
/// with the path and the space it took so far and what is free.
fn write_backup(root: &Root, abs: &Path, command: &mut Command, what: &str) -> Result<()> {
    match fsx::write_from_command(root, abs, command) {
        Ok(_) => Ok(()),
        Err(err) if fsx::is_disk_full(&err) => {
            let dir = abs.parent().unwrap_or(Path::new("/"));
            let free = free_bytes(root, dir).unwrap_or(0);
            let written = fsx::written_before_full(&err).unwrap_or(0);
            Err(err.context(format!(
                "{what}: the disk holding '{}' is full: '{}' needs more than {} ({} free now, the partial file was removed); free space there (or set [backups] dir to a larger file system) and run 'synnefo-upgrade finish' again",
                dir.display(),
                abs.display(),
                human(written),
                human(free)
            )))
        }
        Err(err) => Err(err.context(what.to_string())),
    }
}

/// Takes the backups; returns what was written.
pub fn take(root: &Root, config: &Config) -> Result<String> {
    let dir = &config.backups.dir;
    let plan = dump_plan(root, config)?;
    let present: Vec<&str> = CONFIG_DIRS
        .iter()
        .copied()
        .filter(|d| root.path(Path::new("/").join(d)).is_dir())
        .collect();
    // A directory that is a link (`/etc/synnefo -> /srv/synnefo`) is archived
    // as the link and, under its own name, as the directory it leads to in
    // the tree; tar follows no link, neither on the way (the paths it gets are
    // resolved inside the tree) nor in the directories.
    let mut archived: Vec<PathBuf> = Vec::new();
    for d in &present {
        let abs = Path::new("/").join(d);
        for p in [root.resolve_nofollow(&abs)?, root.resolve(&abs)?] {
            let rel = p.strip_prefix("/").unwrap_or(&p).to_path_buf();
            if !archived.contains(&rel) {
                archived.push(rel);
            }
        }
    }
    // Before writing anything: the space we can know we need.
    let copies: u64 = plan
        .iter()
        .filter_map(|d| match &d.dump {
            Dump::Copy(file) => std::fs::metadata(root.path(file)).ok().map(|m| m.len()),
            _ => None,
        })
        .sum();
    let configs: u64 = present
        .iter()
        .map(|d| tree_size(&root.path(Path::new("/").join(d))))
        .sum();
    let need = copies + configs;
    if let Some(free) = free_bytes(root, dir) {
        if free < need {
            bail!(
                "not enough space for the backups in '{}': they need about {} (database copies {}, configuration {} before compression), {} is free; free space there (or set [backups] dir to a larger file system) and run 'synnefo-upgrade finish' again",
                dir.display(),
                human(need),
                human(copies),
                human(configs),
                human(free)
            );
        }
    }
    // The default directory is ours alone (0700); one the operator chose keeps its mode.
    let ours = *dir == crate::inputs::config::Backups::default().dir;
    fsx::ensure_private_dir(root, &dir.to_string_lossy(), ours)?;
    let mut written = Vec::new();
    for database in plan {
        let dest = dir.join(&database.file);
        match database.dump {
            Dump::Command { argv, password } => {
                let program = exec::find(root, &argv[0])?;
                let mut command = Command::new(program);
                // Named ours: the guard of another node migrating on the
                // same database does not count a dump (it only reads).
                command
                    .args(&argv[1..])
                    .env("PGAPPNAME", format!("{OUR_APP} (backup)"));
                if let Some(password) = password {
                    command.env("PGPASSWORD", password);
                }
                // A database server that reboots inside the outage (a node
                // of its own) is waited for, as migrate does.
                let what = format!("dumping the database into '{}'", dest.display());
                let mut wait = crate::actions::synnefo::ServerWait::new(config);
                loop {
                    match write_backup(root, &dest, &mut command, &what) {
                        Err(err) if crate::actions::synnefo::unreachable(&format!("{err:#}")) => {
                            wait.again(&what, &format!("{err:#}"))?
                        }
                        other => break other?,
                    }
                }
            }
            Dump::Copy(file) => {
                // cat would wait forever on a FIFO.
                fsx::check_regular(root, &file)
                    .with_context(|| format!("copying '{}'", file.display()))?;
                let mut command = Command::new("cat");
                command.arg(root.path(&file));
                write_backup(
                    root,
                    &dest,
                    &mut command,
                    &format!("copying '{}'", file.display()),
                )?;
            }
            Dump::Nothing(why) => {
                log::warn!("no database dump: {why}");
                continue;
            }
        }
        written.push(dest);
    }
    if !present.is_empty() {
        let tarball = dir.join("config.tar.gz");
        let mut command = Command::new(exec::find(root, "tar")?);
        command
            .arg("-czf")
            .arg("-")
            .arg("-C")
            .arg(root.path("/"))
            .args(&archived);
        write_backup(root, &tarball, &mut command, "archiving the configuration")?;
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
        assert_eq!(plan.len(), 1);
        assert_eq!(plan[0].file, "database.dump");
        assert_eq!(
            plan[0].dump,
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
            vec![Database {
                file: "database.sqlite".into(),
                dump: Dump::Copy("/var/lib/snf.db".into())
            }]
        );
        let (_d, root) = root_with_settings("#DATABASES = {}\n");
        assert!(matches!(
            dump_plan(&root, &Config::default()).unwrap()[0].dump,
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

    fn pg(host: &str, port: &str, user: &str, password: &str, name: &str) -> DbUrl {
        DbUrl::Postgres(Postgres {
            host: host.into(),
            port: port.into(),
            user: user.into(),
            password: password.into(),
            name: name.into(),
        })
    }

    #[test]
    fn sqlalchemy_urls_are_parsed_with_escapes_and_defaults() {
        let p = |u: &str| parse_db_url(u).unwrap();
        assert_eq!(
            p("postgresql://synnefo:s3cr3t@203.0.113.1:5433/snf_pithos"),
            pg("203.0.113.1", "5433", "synnefo", "s3cr3t", "snf_pithos")
        );
        // An escaped '@', ':' and '/' in the password; no port.
        assert_eq!(
            p("postgresql+psycopg2://synnefo:p%40ss%3Aw%2Frd@db.example.org/snf_pithos"),
            pg("db.example.org", "", "synnefo", "p@ss:w/rd", "snf_pithos")
        );
        // No user, no host (the local socket), a socket directory in the query.
        assert_eq!(
            p("postgres:///snf_pithos?host=/var/run/postgresql"),
            pg("/var/run/postgresql", "", "", "", "snf_pithos")
        );
        assert_eq!(
            p("postgresql://u@[2001:db8::1]:5432/db"),
            pg("2001:db8::1", "5432", "u", "", "db")
        );
        assert_eq!(
            p("sqlite:////var/lib/pithos/backend.db"),
            DbUrl::Sqlite("/var/lib/pithos/backend.db".into())
        );
        for bad in [
            "sqlite:///relative.db",
            "mysql://u:p@h/db",
            "postgresql://u:p@h:port/db",
            "postgresql://u:p@h:5432/",
            "postgresql://u:p%zz@h/db",
            "no-scheme",
        ] {
            assert!(parse_db_url(bad).is_err(), "{bad}");
        }
    }

    const PG_DEFAULT: &str = "DATABASES = {'default': {'ENGINE': 'django.db.backends.postgresql_psycopg2', 'NAME': 'snf_apps', 'USER': 'synnefo', 'PASSWORD': 'pw', 'HOST': 'localhost', 'PORT': ''}}\n";

    #[test]
    fn the_pithos_backend_database_is_dumped_too_unless_it_is_the_default() {
        let (_d, root) = root_with_settings(PG_DEFAULT);
        let pithos = root.path("/etc/synnefo/20-snf-pithos-app-settings.conf");
        std::fs::write(
            &pithos,
            "PITHOS_BACKEND_DB_CONNECTION = 'postgresql://pithos:a%25b@127.0.0.1:5432/snf_pithos'\n",
        )
        .unwrap();
        let plan = dump_plan(&root, &Config::default()).unwrap();
        assert_eq!(plan.len(), 2, "{plan:?}");
        assert_eq!(plan[1].file, "pithos-backend.dump");
        assert_eq!(
            plan[1].dump,
            Dump::Command {
                argv: [
                    "pg_dump",
                    "-Fc",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    "5432",
                    "--username",
                    "pithos",
                    "snf_pithos"
                ]
                .map(String::from)
                .to_vec(),
                password: Some("a%b".into()),
            }
        );
        // The same database by another spelling: dumped once.
        std::fs::write(
            &pithos,
            "PITHOS_BACKEND_DB_CONNECTION = 'postgresql://synnefo:pw@127.0.0.1:5432/snf_apps'\n",
        )
        .unwrap();
        assert_eq!(dump_plan(&root, &Config::default()).unwrap().len(), 1);
        // An SQLite backend is copied.
        std::fs::write(
            &pithos,
            "PITHOS_BACKEND_DB_CONNECTION = 'sqlite:////var/lib/pithos/backend.db'\n",
        )
        .unwrap();
        assert_eq!(
            dump_plan(&root, &Config::default()).unwrap()[1],
            Database {
                file: "pithos-backend.sqlite".into(),
                dump: Dump::Copy("/var/lib/pithos/backend.db".into())
            }
        );
    }
}
