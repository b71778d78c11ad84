//! The database guard: before `snf-manage migrate`, the migrating node makes
//! sure that nothing else uses the Synnefo databases, so that no 0.18.1
//! service on another host keeps using a database being migrated under it
//! (the guide stops gunicorn on all hosts first).
//!
//! The databases are those of the Synnefo settings ([`backup::databases`]),
//! read with their credentials through the node's own `psql` (the password in
//! `PGPASSWORD`, never on a command line). The guard looks in two ways:
//!
//! - **connections** (`pg_stat_activity`): clients connected at the first
//!   look get `[migrations] quiet_period_secs` to leave (a service being
//!   stopped elsewhere), polled every `quiet_poll_ms`;
//! - **writes** (`pg_stat_user_tables`' per-table row counters, in each
//!   database): once no client is connected, the guard watches for
//!   `quiet_window_secs`. A 0.18.1 worker (Django 1.4) holds no connection
//!   between requests, and a cron job or a host left out of the roll-out
//!   connects, writes and leaves: no poll may see it connected, but the rows
//!   it wrote count. Any row written by anyone in the window, or any client
//!   that connects in it, fails the step before migrating, naming the tables
//!   (and the client's address when a poll saw it).
//!
//! Not counted: our own sessions, on this node or another (application
//! name beginning with [`OUR_APP`]: the guard's, the waiting nodes' watch,
//! a migrating node waiting for its turn, `pg_dump`; reads: they write no row),
//! PostgreSQL's own processes (autovacuum and analyze write only system
//! catalogs, which `pg_stat_user_tables` leaves out), and clients at the
//! addresses of `[migrations] allow_clients` (their connections only: a
//! write cannot be told by its address). Read-only transactions are not
//! counted: PostgreSQL's per-database transaction counters cannot tell a
//! 0.18.1 reader from the guard's own reads and the waiting nodes' watch.
//!
//! A server not reachable yet is waited for like `migrate`
//! ([`synnefo::ServerWait`]); any other `psql` failure fails the step (fail
//! closed). SQLite databases
//! and a node without `psql` are skipped with the reason in the outcome.

use anyhow::{bail, Context, Result};
use std::time::Duration;

use crate::actions::backup::{self, Postgres, Target, OUR_APP};
use crate::actions::synnefo;
use crate::base::clock::{Clock, RealClock};
use crate::base::exec;
use crate::base::fsx::Root;
use crate::inputs::config::Config;

/// psql's field separator in our output (ASCII unit separator: in no name).
pub(crate) const SEP: char = '\u{1f}';

/// The rows written to each table, by `DATABASE.SCHEMA.TABLE`, as
/// `pg_stat_user_tables` counts them (inserts + updates + deletes).
pub type Writes = std::collections::BTreeMap<String, u64>;

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
/// have a NULL `client_port`; a unix socket client has -1. Our own sessions
/// on any node (application name beginning with [`OUR_APP`]: the waiting
/// nodes' watch of `django_migrations`, a migrating node waiting for its
/// turn, `finish`'s `pg_dump`) only read, and are not clients to wait for.
///
/// `allowed`: client addresses not counted (`host(client_addr)`, so
/// `10.0.0.9` or `2001:db8::9`).
pub fn query(names: &[String], pid_column: &str, allowed: &[String]) -> String {
    let names: Vec<String> = names.iter().map(|n| literal(n)).collect();
    let allowed = if allowed.is_empty() {
        String::new()
    } else {
        let addrs: Vec<String> = allowed.iter().map(|a| literal(a)).collect();
        format!(
            " AND (client_addr IS NULL OR host(client_addr) <> ALL(ARRAY[{}]::text[]))",
            addrs.join(", ")
        )
    };
    format!(
        "SELECT client_addr, client_hostname, application_name, usename, datname, backend_start \
         FROM pg_stat_activity WHERE datname = ANY(ARRAY[{}]) AND client_port IS NOT NULL \
         AND {pid_column} <> pg_backend_pid() \
         AND COALESCE(application_name, '') NOT LIKE {}{allowed} ORDER BY backend_start",
        names.join(", "),
        literal(&format!("{OUR_APP}%"))
    )
}

/// The query of the rows written to the tables of the database it runs in:
/// one line `SCHEMA.TABLE<SEP>ROWS` a table.
pub const WRITES_QUERY: &str = "SELECT schemaname || '.' || relname, \
     n_tup_ins + n_tup_upd + n_tup_del FROM pg_stat_user_tables";

/// Parses [`WRITES_QUERY`]'s output for `database` into `writes`.
pub fn parse_writes(database: &str, output: &str, writes: &mut Writes) -> Result<()> {
    for line in output.lines().filter(|l| !l.trim().is_empty()) {
        let Some((table, rows)) = line.split_once(SEP) else {
            bail!("unexpected psql output line (want a table and a count): '{line}'");
        };
        let rows: u64 = rows
            .trim()
            .parse()
            .with_context(|| format!("the row count of '{table}' is not a number: '{line}'"))?;
        writes.insert(format!("{database}.{table}"), rows);
    }
    Ok(())
}

/// The tables written between `before` and `after`, with how many rows
/// (a table new since `before` counts all its rows).
pub fn written(before: &Writes, after: &Writes) -> Vec<(String, u64)> {
    after
        .iter()
        .filter_map(|(table, &rows)| {
            let was = before.get(table).copied().unwrap_or(0);
            (rows > was).then(|| (table.clone(), rows - was))
        })
        .collect()
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

/// What the watch saw in its window, when it was not quiet.
#[derive(Debug, PartialEq)]
pub enum Noise {
    /// Clients connected during the window (the poll that saw them).
    Connected(Vec<Client>),
    /// Rows written in the window, by table.
    Written(Vec<(String, u64)>),
}

/// With no client connected: watches for `window`, polling `clients` every
/// `poll`, and compares `writes` at its start and its end. Ok(()) when no
/// client connected and no row was written; else what was seen (a client at
/// once, the writes at the end).
pub fn watch_window(
    window: Duration,
    poll: Duration,
    clock: &mut dyn Clock,
    clients: &mut dyn FnMut() -> Result<Vec<Client>>,
    writes: &mut dyn FnMut() -> Result<Writes>,
) -> Result<std::result::Result<(), Noise>> {
    let before = writes()?;
    let start = clock.elapsed();
    loop {
        let left = window.saturating_sub(clock.elapsed() - start);
        if left.is_zero() {
            break;
        }
        clock.sleep(poll.min(left));
        let now = clients()?;
        if !now.is_empty() {
            return Ok(Err(Noise::Connected(now)));
        }
    }
    let rows = written(&before, &writes()?);
    Ok(if rows.is_empty() {
        Ok(())
    } else {
        Err(Noise::Written(rows))
    })
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

/// The `psql` argv (without the command) and environment for `conn`.
fn psql_command(
    program: &str,
    conn: &Postgres,
    app: &str,
) -> (Vec<String>, Vec<(&'static str, String)>) {
    let mut argv: Vec<String> = [program, "-X", "-A", "-t", "-w", "-F"]
        .iter()
        .map(|a| a.to_string())
        .collect();
    argv.push(SEP.to_string());
    for (flag, value) in [("-h", &conn.host), ("-p", &conn.port), ("-U", &conn.user)] {
        if !value.is_empty() {
            argv.extend([flag.to_string(), value.clone()]);
        }
    }
    argv.extend(["-d".to_string(), conn.name.clone()]);
    let mut env = vec![
        ("PGCONNECT_TIMEOUT", "10".to_string()),
        ("PGAPPNAME", app.to_string()),
    ];
    if !conn.password.is_empty() {
        env.push(("PGPASSWORD", conn.password.clone()));
    }
    (argv, env)
}

/// `'psql' on database NAME at HOST failed (STATUS): STDERR`.
fn psql_failed(conn: &Postgres, status: impl std::fmt::Display, stderr: &[u8]) -> anyhow::Error {
    anyhow::anyhow!(
        "'psql' on database {}{} failed ({status}): {}",
        conn.name,
        if conn.host.is_empty() {
            String::new()
        } else {
            format!(" at {}", conn.host)
        },
        String::from_utf8_lossy(stderr).trim()
    )
}

/// Runs one `psql -c sql` against `conn`; its stdout.
fn psql(program: &str, conn: &Postgres, sql: &str) -> Result<String> {
    let (mut argv, env) = psql_command(program, conn, OUR_APP);
    argv.extend(["-c".to_string(), sql.to_string()]);
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let out = exec::run_output(&argv, &env)?;
    if !out.status.success() {
        return Err(psql_failed(conn, out.status, &out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// One `psql` kept open for the guard's looks at the connections: one
/// connection and one process for all of them, instead of one of each per
/// look, so that looking five times a second costs the server a query and
/// the node nothing (a `psql` start is what a busy node cannot spare).
/// Queries go in on its stdin, each followed by `\echo` of a marker that
/// ends its answer.
pub(crate) struct Session {
    child: std::process::Child,
    input: std::process::ChildStdin,
    output: std::io::BufReader<std::process::ChildStdout>,
    conn: Postgres,
    end: String,
    _tracked: crate::base::children::Tracked,
}

impl Session {
    /// Starts `psql` on `conn`, named `app` in `pg_stat_activity` (begin
    /// it with [`OUR_APP`]: the guard does not count our sessions).
    pub(crate) fn open(program: &str, conn: &Postgres, app: &str) -> Result<Session> {
        use std::process::{Command, Stdio};
        let (argv, env) = psql_command(program, conn, app);
        let mut child = Command::new(&argv[0])
            .args(&argv[1..])
            .args(["-q", "-v", "ON_ERROR_STOP=1"])
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting '{}'", argv[0]))?;
        let tracked = crate::base::children::track(child.id());
        let input = child.stdin.take().context("no stdin pipe")?;
        let output = std::io::BufReader::new(child.stdout.take().context("no stdout pipe")?);
        // No answer of the server can end with it: it names this process and the time.
        let end = format!(
            "-- end of answer {} {} --",
            std::process::id(),
            crate::base::clock::now()
        );
        Ok(Session {
            child,
            input,
            output,
            conn: conn.clone(),
            end,
            _tracked: tracked,
        })
    }

    /// The answer (stdout) to `sql`: one line a row, fields separated by
    /// U+001F. An error ends the session (`ON_ERROR_STOP`).
    pub(crate) fn query(&mut self, sql: &str) -> Result<String> {
        use std::io::{BufRead, Read, Write};
        let sent =
            writeln!(self.input, "{sql};\n\\echo '{}'", self.end).and_then(|()| self.input.flush());
        let mut answer = String::new();
        let mut line = String::new();
        let ended = sent.is_ok()
            && loop {
                line.clear();
                match self.output.read_line(&mut line) {
                    Ok(0) | Err(_) => break false,
                    Ok(_) if line.trim_end_matches(['\n', '\r']) == self.end => break true,
                    Ok(_) => answer.push_str(&line),
                }
            };
        if ended {
            return Ok(answer);
        }
        // psql ended (ON_ERROR_STOP, a lost connection): its stderr says why.
        let mut stderr = Vec::new();
        if let Some(mut pipe) = self.child.stderr.take() {
            let _ = pipe.read_to_end(&mut stderr);
        }
        let status = self
            .child
            .wait()
            .map_or_else(|e| e.to_string(), |s| s.to_string());
        Err(psql_failed(&self.conn, status, &stderr))
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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
    // First contact: waited for while the server is not reachable yet (as
    // migrate does).
    let mut sqls = Vec::new();
    for server in &servers {
        let mut wait = synnefo::ServerWait::new(config);
        let version = loop {
            let sql = "SELECT current_setting('server_version_num')";
            match psql(&program, &server.conn, sql) {
                Err(err) if synnefo::unreachable(&format!("{err:#}")) => {
                    wait.again("database guard", &format!("{err:#}"))?
                }
                other => break other?,
            }
        };
        sqls.push(query(
            &server.names,
            pid_column(&version)?,
            &config.migrations.allow_clients,
        ));
    }
    let mut sessions = servers
        .iter()
        .map(|server| Session::open(&program, &server.conn, OUR_APP))
        .collect::<Result<Vec<_>>>()?;
    let mut clients = || -> Result<Vec<Client>> {
        let mut all = Vec::new();
        for (session, sql) in sessions.iter_mut().zip(&sqls) {
            all.extend(parse(&session.query(sql)?)?);
        }
        Ok(all)
    };
    let names: Vec<&str> = servers
        .iter()
        .flat_map(|s| s.names.iter().map(String::as_str))
        .collect();
    let m = &config.migrations;
    let poll = Duration::from_millis(m.quiet_poll_ms.max(1));
    let mut clock = RealClock::start();
    let left = match wait_quiet(
        Duration::from_secs(m.quiet_period_secs),
        poll,
        &mut clock,
        &mut clients,
    )
    .context("database guard")?
    {
        Ok(q) if q.left.is_empty() => String::new(),
        Ok(q) => format!(
            " (connected at first, gone after {}s: {})",
            q.waited.as_secs(),
            describe(&q.left)
        ),
        Err(remaining) => bail!(
            "{} other client(s) still connected to {} after {}s, not migrating: {}; {STOP_THEM}",
            remaining.len(),
            names.join(", "),
            m.quiet_period_secs,
            describe(&remaining)
        ),
    };
    if m.quiet_window_secs == 0 {
        return Ok(format!(
            "no other client of {}{left}; writes not watched ([migrations] quiet_window_secs = 0){skipped}",
            names.join(", ")
        ));
    }
    let mut writes = || -> Result<Writes> {
        let mut all = Writes::new();
        for server in &servers {
            for name in &server.names {
                let conn = Postgres {
                    name: name.clone(),
                    ..server.conn.clone()
                };
                parse_writes(name, &psql(&program, &conn, WRITES_QUERY)?, &mut all)?;
            }
        }
        Ok(all)
    };
    let window = Duration::from_secs(m.quiet_window_secs);
    match watch_window(window, poll, &mut clock, &mut clients, &mut writes)
        .context("database guard")?
    {
        Ok(()) => Ok(format!(
            "no other client of {}{left}, and no row written to them in {}s{skipped}",
            names.join(", "),
            m.quiet_window_secs
        )),
        Err(Noise::Connected(clients)) => bail!(
            "{} client(s) connected to {} within {}s after every other client had left, not migrating: {}; \
             something still uses the databases; {STOP_THEM}",
            clients.len(),
            names.join(", "),
            m.quiet_window_secs,
            describe(&clients)
        ),
        Err(Noise::Written(rows)) => bail!(
            "rows were written to {} within {}s while no other client stayed connected, not migrating: {}; \
             a client that connects only to write (a 0.18.1 gunicorn between requests, a cron job, \
             a host left out of the roll-out) still runs somewhere — PostgreSQL's log shows who \
             with log_connections = on; {STOP_THEM}",
            names.join(", "),
            m.quiet_window_secs,
            rows.iter()
                .map(|(table, n)| format!("{table} ({n} row(s))"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// What to do about another user of the databases.
const STOP_THEM: &str =
    "stop gunicorn and every Synnefo service on all other hosts — arm them with \
     'apt install synnefo-upgrade-0.19' / 'synnefo-upgrade prepare' — then \
     'systemctl restart synnefo-upgrade-finish' (a client you know is harmless: \
     [migrations] allow_clients; or, knowingly, require_quiet_database = false)";

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

    const POLL: Duration = Duration::from_secs(1);

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
            &[],
        );
        assert!(!sql.contains("host(client_addr)"), "{sql}");
        assert!(
            sql.contains("datname = ANY(ARRAY['snf_apps', 'o''db'])"),
            "{sql}"
        );
        assert!(sql.contains("procpid <> pg_backend_pid()"), "{sql}");
        assert!(sql.contains("client_port IS NOT NULL"), "{sql}");
        assert!(query(&["a".into()], pid_column("90400").unwrap(), &[])
            .contains(" pid <> pg_backend_pid()"));
        let allowing = query(
            &["a".into()],
            pid_column("150008").unwrap(),
            &["10.0.0.9".into(), "2001:db8::9".into()],
        );
        assert!(allowing.contains(" pid <> "));
        assert!(
            allowing.contains(
                "AND (client_addr IS NULL OR host(client_addr) <> ALL(ARRAY['10.0.0.9', '2001:db8::9']::text[]))"
            ),
            "{allowing}"
        );
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

    fn table_rows(rows: &[(&str, u64)]) -> Writes {
        rows.iter().map(|(t, n)| (t.to_string(), *n)).collect()
    }

    #[test]
    fn writes_are_parsed_per_database_and_compared_by_table() {
        let mut writes = Writes::new();
        let out = format!("public.im_user{SEP}12\npublic.stray{SEP}0\n\n");
        parse_writes("snf_apps", &out, &mut writes).unwrap();
        parse_writes("snf_pithos", &format!("public.nodes{SEP}5\n"), &mut writes).unwrap();
        assert_eq!(
            writes,
            table_rows(&[
                ("snf_apps.public.im_user", 12),
                ("snf_apps.public.stray", 0),
                ("snf_pithos.public.nodes", 5)
            ])
        );
        assert!(parse_writes("x", "no separator", &mut writes).is_err());
        assert!(parse_writes("x", &format!("t{SEP}many"), &mut writes).is_err());

        let after = table_rows(&[
            ("snf_apps.public.im_user", 12),
            ("snf_apps.public.stray", 3),
            ("snf_apps.public.new_table", 2),
            ("snf_pithos.public.nodes", 5),
        ]);
        assert_eq!(
            written(&writes, &after),
            vec![
                ("snf_apps.public.new_table".to_string(), 2),
                ("snf_apps.public.stray".to_string(), 3)
            ]
        );
        // Counters reset (a server restart) are no write.
        assert_eq!(written(&after, &writes), vec![]);
    }

    #[test]
    fn the_window_fails_on_a_client_at_once_and_on_writes_at_its_end() {
        let window = Duration::from_secs(8);
        // Quiet: no client, the counters did not move.
        let mut clock = FakeClock(Duration::ZERO);
        let mut polls = 0;
        let quiet = watch_window(
            window,
            POLL,
            &mut clock,
            &mut || {
                polls += 1;
                Ok(vec![])
            },
            &mut || Ok(table_rows(&[("snf_apps.public.t", 7)])),
        )
        .unwrap();
        assert_eq!(quiet, Ok(()));
        assert_eq!(polls, 8);
        assert_eq!(clock.0, window);

        // A writer that never stays connected: seen by the counters at the end.
        let mut clock = FakeClock(Duration::ZERO);
        let mut samples = 0;
        let got = watch_window(window, POLL, &mut clock, &mut || Ok(vec![]), &mut || {
            samples += 1;
            Ok(table_rows(&[("snf_apps.public.t", 7 + samples)]))
        })
        .unwrap();
        assert_eq!(
            got,
            Err(Noise::Written(vec![("snf_apps.public.t".to_string(), 1)]))
        );
        assert_eq!(clock.0, window);

        // A client that connects in the window ends it at once.
        let mut clock = FakeClock(Duration::ZERO);
        let mut polls = 0;
        let got = watch_window(
            window,
            POLL,
            &mut clock,
            &mut || {
                polls += 1;
                Ok(if polls == 3 {
                    vec![client("10.0.0.7")]
                } else {
                    vec![]
                })
            },
            &mut || Ok(Writes::new()),
        )
        .unwrap();
        assert_eq!(got, Err(Noise::Connected(vec![client("10.0.0.7")])));
        assert_eq!(clock.0, Duration::from_secs(3));

        // A poll longer than the window still ends at the window.
        let mut clock = FakeClock(Duration::ZERO);
        let got = watch_window(
            Duration::from_millis(1500),
            POLL,
            &mut clock,
            &mut || Ok(vec![]),
            &mut || Ok(Writes::new()),
        )
        .unwrap();
        assert_eq!(got, Ok(()));
        assert_eq!(clock.0, Duration::from_millis(1500));
    }
}
