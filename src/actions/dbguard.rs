//! The database guard: before `snf-manage migrate`, the migrating node makes
//! sure that no other client is connected to the Synnefo databases, so that
//! no 0.18.1 service on another host keeps using a database being migrated
//! under it (the guide stops gunicorn on all hosts first).
//!
//! The databases are those of the Synnefo settings ([`backup::databases`]);
//! PostgreSQL's `pg_stat_activity` is read with their credentials through the
//! node's own `psql` (the password in `PGPASSWORD`, never on a command line).
//! Other clients get `[migrations] quiet_period_secs` to leave (polled every
//! second); any still there fails the step before migrating. A server not
//! reachable yet is retried like `migrate` (`retry_seconds`); any other `psql`
//! failure fails the step (fail closed). SQLite databases
//! and a node without `psql` are skipped with the reason in the outcome.

use anyhow::{bail, Context, Result};
use std::time::{Duration, Instant};

use crate::actions::backup::{self, Postgres, Target};
use crate::actions::synnefo;
use crate::base::clock::{Clock, RealClock};
use crate::base::exec;
use crate::base::fsx::Root;
use crate::inputs::config::Config;

/// psql's field separator in our output (ASCII unit separator: in no name).
const SEP: char = '\u{1f}';

/// How often the clients are polled during the quiet period.
const POLL: Duration = Duration::from_secs(1);

/// One other client of a Synnefo database, as `pg_stat_activity` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Client {
    /// `client_addr`; empty: a local unix socket.
    pub addr: String,
    /// `client_hostname` (only with `log_hostname`); may be empty.
    pub hostname: String,
    /// `application_name`; may be empty.
    pub application: String,
    /// `usename`.
    pub user: String,
    /// `datname`.
    pub database: String,
    /// `backend_start`.
    pub since: String,
}

impl Client {
    /// `10.0.0.5 (gunicorn, user synnefo, database snf_apps, since ...)`.
    pub fn describe(&self) -> String {
        let mut addr = if self.addr.is_empty() {
            "a local socket".to_string()
        } else {
            self.addr.clone()
        };
        if !self.hostname.is_empty() {
            addr.push_str(&format!(" [{}]", self.hostname));
        }
        let mut about = Vec::new();
        if !self.application.is_empty() {
            about.push(format!("application '{}'", self.application));
        }
        about.push(format!("user {}", self.user));
        about.push(format!("database {}", self.database));
        about.push(format!("connected since {}", self.since));
        format!("{addr} ({})", about.join(", "))
    }
}

/// Parses `psql -X -A -t -F '\x1f'` output of [`query`]'s columns into clients
/// (no line: no client). A NULL prints as an empty field.
pub fn parse(output: &str) -> Result<Vec<Client>> {
    output
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let f: Vec<&str> = line.split(SEP).collect();
            let [addr, hostname, application, user, database, since] = f[..] else {
                bail!(
                    "unexpected psql output line (want 6 fields, got {}): '{line}'",
                    f.len()
                );
            };
            Ok(Client {
                addr: addr.to_string(),
                hostname: hostname.to_string(),
                application: application.to_string(),
                user: user.to_string(),
                database: database.to_string(),
                since: since.to_string(),
            })
        })
        .collect()
}

/// An SQL string literal (standard_conforming_strings, on since 9.1).
fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The query for the other clients of `names`. `pid_column` is `procpid`
/// before 9.2. Internal server processes (autovacuum, background workers)
/// have a NULL `client_port`; a unix socket client has -1. The waiting
/// nodes' sessions ([`crate::actions::migwait::WATCH_APP`]: one read of
/// `django_migrations` a second, no lock held) are not clients to wait for.
pub fn query(names: &[String], pid_column: &str) -> String {
    let names: Vec<String> = names.iter().map(|n| literal(n)).collect();
    format!(
        "SELECT client_addr, client_hostname, application_name, usename, datname, backend_start \
         FROM pg_stat_activity WHERE datname = ANY(ARRAY[{}]) AND client_port IS NOT NULL \
         AND {pid_column} <> pg_backend_pid() \
         AND application_name IS DISTINCT FROM {} ORDER BY backend_start",
        names.join(", "),
        literal(crate::actions::migwait::WATCH_APP)
    )
}

/// The column of a backend's process id for a `server_version_num`.
pub fn pid_column(version_num: &str) -> Result<&'static str> {
    let v: u32 = version_num.trim().parse().with_context(|| {
        format!(
            "server_version_num '{}' is not a number",
            version_num.trim()
        )
    })?;
    Ok(if v < 90200 { "procpid" } else { "pid" })
}

/// What the wait saw: the clients seen at first (they left) and how long it took.
#[derive(Debug, PartialEq)]
pub struct Quiet {
    /// Clients connected at the first poll (all gone now).
    pub left: Vec<Client>,
    /// How long the wait took.
    pub waited: Duration,
}

/// Polls `clients` every `poll` until none is connected (Ok) or `quiet` has
/// passed with some still connected (Err: those of the last poll).
pub fn wait_quiet(
    quiet: Duration,
    poll: Duration,
    clock: &mut dyn Clock,
    clients: &mut dyn FnMut() -> Result<Vec<Client>>,
) -> Result<std::result::Result<Quiet, Vec<Client>>> {
    let start = clock.elapsed();
    let first = clients()?;
    let mut now = first.clone();
    loop {
        if now.is_empty() {
            return Ok(Ok(Quiet {
                left: first,
                waited: clock.elapsed() - start,
            }));
        }
        if clock.elapsed() - start >= quiet {
            return Ok(Err(now));
        }
        clock.sleep(poll);
        now = clients()?;
    }
}

/// One PostgreSQL server and the Synnefo databases on it, reached with the
/// credentials of the first.
struct Server {
    conn: Postgres,
    names: Vec<String>,
}

fn same_server(a: &Postgres, b: &Postgres) -> bool {
    (&a.host, &a.port, &a.user, &a.password) == (&b.host, &b.port, &b.user, &b.password)
}

/// Runs one `psql -c sql` against `conn`; its stdout.
fn psql(program: &str, conn: &Postgres, sql: &str) -> Result<String> {
    let sep = SEP.to_string();
    let mut argv = vec![program, "-X", "-A", "-t", "-w", "-F", &sep];
    for (flag, value) in [("-h", &conn.host), ("-p", &conn.port), ("-U", &conn.user)] {
        if !value.is_empty() {
            argv.extend([flag, value.as_str()]);
        }
    }
    argv.extend(["-d", conn.name.as_str(), "-c", sql]);
    let mut env = vec![
        ("PGCONNECT_TIMEOUT", "10"),
        ("PGAPPNAME", "synnefo-upgrade"),
    ];
    if !conn.password.is_empty() {
        env.push(("PGPASSWORD", conn.password.as_str()));
    }
    let out = exec::run_output(&argv, &env)?;
    if !out.status.success() {
        bail!(
            "'psql' on database {}{} failed ({}): {}",
            conn.name,
            if conn.host.is_empty() {
                String::new()
            } else {
                format!(" at {}", conn.host)
            },
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The guard (step `migrate`, on the node with `[migrations] run = true`):
/// Ok with what it saw, or Err naming the clients still connected and what to do.
pub fn ensure_quiet(root: &Root, config: &Config) -> Result<String> {
    if !config.migrations.require_quiet_database {
        return Ok("database guard off ([migrations] require_quiet_database = false)".into());
    }
    let mut servers: Vec<Server> = Vec::new();
    let mut skipped = Vec::new();
    for target in backup::databases(root)? {
        match target {
            Target::Postgres(pg) => match servers.iter_mut().find(|s| same_server(&s.conn, &pg)) {
                Some(s) => s.names.push(pg.name),
                None => servers.push(Server {
                    names: vec![pg.name.clone()],
                    conn: pg,
                }),
            },
            Target::Sqlite(path) => skipped.push(format!("SQLite {}", path.display())),
            Target::Missing(why) => skipped.push(why),
            Target::Other(engine) => skipped.push(format!("engine '{engine}'")),
        }
    }
    let skipped = if skipped.is_empty() {
        String::new()
    } else {
        format!(" (not checked: {})", skipped.join("; "))
    };
    if servers.is_empty() {
        return Ok(format!(
            "database guard skipped: no PostgreSQL database{skipped}"
        ));
    }
    let Some(program) = exec::find_inside(root, "psql") else {
        let notice = format!("database guard skipped: no psql on this node (install postgresql-client to check for other clients before migrating){skipped}");
        log::warn!("{notice}");
        return Ok(notice);
    };
    let program = program.to_string_lossy().into_owned();
    // First contact: retried while the server is not reachable yet (as migrate is).
    let deadline = Instant::now() + Duration::from_secs(config.migrations.retry_seconds);
    let mut sqls = Vec::new();
    for server in &servers {
        let version = loop {
            let sql = "SELECT current_setting('server_version_num')";
            match psql(&program, &server.conn, sql) {
                Err(err)
                    if Instant::now() < deadline
                        && synnefo::UNREACHABLE
                            .iter()
                            .any(|u| format!("{err:#}").contains(u)) =>
                {
                    log::warn!("database guard: {err:#}; retrying");
                    std::thread::sleep(synnefo::pause());
                }
                other => break other?,
            }
        };
        sqls.push(query(&server.names, pid_column(&version)?));
    }
    let mut clients = || -> Result<Vec<Client>> {
        let mut all = Vec::new();
        for (server, sql) in servers.iter().zip(&sqls) {
            all.extend(parse(&psql(&program, &server.conn, sql)?)?);
        }
        Ok(all)
    };
    let names: Vec<&str> = servers
        .iter()
        .flat_map(|s| s.names.iter().map(String::as_str))
        .collect();
    let quiet = Duration::from_secs(config.migrations.quiet_period_secs);
    let mut clock = RealClock::start();
    match wait_quiet(quiet, POLL, &mut clock, &mut clients).context("database guard")? {
        Ok(q) if q.left.is_empty() => Ok(format!(
            "no other client of {}{skipped}",
            names.join(", ")
        )),
        Ok(q) => Ok(format!(
            "no other client of {} after {}s (left: {}){skipped}",
            names.join(", "),
            q.waited.as_secs(),
            describe(&q.left)
        )),
        Err(remaining) => bail!(
            "{} other client(s) still connected to {} after {}s, not migrating: {}; \
             stop gunicorn and every Synnefo service on all other hosts — arm them with \
             'apt install synnefo-upgrade-0.19' / 'synnefo-upgrade prepare' — then \
             'systemctl restart synnefo-upgrade-finish' (or set [migrations] require_quiet_database = false)",
            remaining.len(),
            names.join(", "),
            config.migrations.quiet_period_secs,
            describe(&remaining)
        ),
    }
}

/// The sizes of the databases `finish` dumps on this node (`dumps`: its
/// `backups` step applies), for `check`'s forecast: `pg_database_size`
/// through the node's `psql` with the settings' credentials, a SQLite
/// file's length. `Err`: why this node dumps none.
pub fn database_sizes(
    root: &Root,
    dumps: bool,
) -> std::result::Result<Vec<crate::base::forecast::DatabaseSize>, String> {
    use crate::base::forecast::DatabaseSize;
    if !dumps {
        return Err("this node does not dump before migrating (it does not run them, or [backups] enabled = false)".into());
    }
    let targets = backup::databases(root).map_err(|e| format!("{e:#}"))?;
    let program = exec::find_inside(root, "psql").map(|p| p.to_string_lossy().into_owned());
    let mut sizes = Vec::new();
    for target in targets {
        match target {
            Target::Postgres(pg) => {
                let bytes = match &program {
                    Some(program) => {
                        match psql(program, &pg, "SELECT pg_database_size(current_database())") {
                            Ok(out) => out.trim().parse::<u64>().ok(),
                            Err(e) => {
                                log::warn!("forecast: the size of database {}: {e:#}", pg.name);
                                None
                            }
                        }
                    }
                    None => None,
                };
                sizes.push(DatabaseSize {
                    name: pg.name,
                    host: pg.host,
                    bytes,
                });
            }
            Target::Sqlite(path) => sizes.push(DatabaseSize {
                name: path.display().to_string(),
                host: String::new(),
                bytes: std::fs::metadata(root.path(&path)).ok().map(|m| m.len()),
            }),
            Target::Missing(_) | Target::Other(_) => {}
        }
    }
    Ok(sizes)
}

fn describe(clients: &[Client]) -> String {
    clients
        .iter()
        .map(Client::describe)
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(fields: &[&str]) -> String {
        fields.join(&SEP.to_string())
    }

    #[test]
    fn psql_output_becomes_clients_with_ipv6_and_local_sockets() {
        assert_eq!(parse("").unwrap(), vec![]);
        assert_eq!(parse("\n").unwrap(), vec![]);
        let out = format!(
            "{}\n{}\n{}\n",
            row(&[
                "10.0.0.5",
                "",
                "gunicorn",
                "synnefo",
                "snf_apps",
                "2026-12-01 22:00:00.1+00"
            ]),
            row(&[
                "2001:db8::7",
                "svc2.example.org",
                "",
                "synnefo",
                "snf_pithos",
                "2026-12-01 22:00:01+00"
            ]),
            row(&[
                "",
                "",
                "psql",
                "postgres",
                "snf_apps",
                "2026-12-01 22:00:02+00"
            ]),
        );
        let clients = parse(&out).unwrap();
        assert_eq!(clients.len(), 3);
        assert_eq!(clients[0].addr, "10.0.0.5");
        assert_eq!(clients[0].application, "gunicorn");
        assert_eq!(
            clients[1].describe(),
            "2001:db8::7 [svc2.example.org] (user synnefo, database snf_pithos, connected since 2026-12-01 22:00:01+00)"
        );
        assert_eq!(
            clients[2].describe(),
            "a local socket (application 'psql', user postgres, database snf_apps, connected since 2026-12-01 22:00:02+00)"
        );
        let err = parse("10.0.0.5|x\n").unwrap_err().to_string();
        assert!(err.contains("want 6 fields, got 1"), "{err}");
    }

    #[test]
    fn the_query_quotes_names_and_follows_the_server_version() {
        let sql = query(
            &["snf_apps".into(), "o'db".into()],
            pid_column("90124\n").unwrap(),
        );
        assert!(
            sql.contains("datname = ANY(ARRAY['snf_apps', 'o''db'])"),
            "{sql}"
        );
        assert!(sql.contains("procpid <> pg_backend_pid()"), "{sql}");
        assert!(sql.contains("client_port IS NOT NULL"), "{sql}");
        assert!(
            query(&["a".into()], pid_column("90400").unwrap()).contains(" pid <> pg_backend_pid()")
        );
        assert!(query(&["a".into()], pid_column("150008").unwrap()).contains(" pid <> "));
        assert!(pid_column("").is_err());
    }

    /// A clock that only moves when slept.
    struct FakeClock(Duration);
    impl Clock for FakeClock {
        fn elapsed(&self) -> Duration {
            self.0
        }
        fn sleep(&mut self, d: Duration) {
            self.0 += d;
        }
    }

    fn client(addr: &str) -> Client {
        parse(&row(&[addr, "", "gunicorn", "synnefo", "snf_apps", "t"]))
            .unwrap()
            .remove(0)
    }

    #[test]
    fn clients_that_leave_within_the_quiet_period_are_fine() {
        let mut clock = FakeClock(Duration::from_secs(100));
        let mut polls = 0;
        let mut probe = || {
            polls += 1;
            Ok(if polls <= 3 {
                vec![client("10.0.0.5")]
            } else {
                vec![]
            })
        };
        let got = wait_quiet(Duration::from_secs(60), POLL, &mut clock, &mut probe).unwrap();
        assert_eq!(
            got,
            Ok(Quiet {
                left: vec![client("10.0.0.5")],
                waited: Duration::from_secs(3)
            })
        );
        assert_eq!(polls, 4);
    }

    #[test]
    fn a_client_that_stays_fails_after_the_quiet_period_and_none_passes_at_once() {
        let mut clock = FakeClock(Duration::ZERO);
        let mut polls = 0;
        let mut probe = || {
            polls += 1;
            Ok(if polls == 1 {
                vec![client("10.0.0.5"), client("10.0.0.6")]
            } else {
                vec![client("10.0.0.6")]
            })
        };
        let got = wait_quiet(Duration::from_secs(5), POLL, &mut clock, &mut probe).unwrap();
        assert_eq!(got, Err(vec![client("10.0.0.6")]));
        assert_eq!(polls, 6);
        assert_eq!(clock.0, Duration::from_secs(5));

        let mut clock = FakeClock(Duration::ZERO);
        let got = wait_quiet(Duration::from_secs(5), POLL, &mut clock, &mut || Ok(vec![])).unwrap();
        assert_eq!(
            got,
            Ok(Quiet {
                left: vec![],
                waited: Duration::ZERO
            })
        );
        // A failing probe is an error, not a pass.
        let err = wait_quiet(Duration::from_secs(5), POLL, &mut clock, &mut || {
            bail!("psql: connection refused")
        });
        assert!(err.is_err());
    }
}
