//! How a node that does not migrate (`[migrations] run = false`) waits for
//! the node that does, and notices the end within about half a second.
//!
//! `snf-manage migrate --list` (Django 1.7: an app label at the margin, then
//! ` [X] name` or ` [ ] name`) is the truth, but each run starts Django (one
//! to several seconds): polling it every few seconds notices late and loads
//! the node. So it runs once, names the migrations still missing, and then
//! the database itself is asked: one `psql` session on the default database
//! of the Synnefo settings (kept open, so no connection per poll reaches the
//! migrating node's server), `SELECT app, name FROM django_migrations` every
//! half second — the table Django's `migrate --list` reads. Once every missing
//! migration is there, the wait is over. `--list` runs again every
//! [`LISTING_EVERY`] all the same (a squashed migration is recorded under the
//! names it replaces, so its own name never appears in the table), and when
//! the session cannot be had (the server is rebooting) it is opened again
//! every half second. Without a PostgreSQL default database or a `psql`, the
//! listing is polled as before ([`crate::actions::synnefo::pause`] apart).
//!
//! Why not LISTEN/NOTIFY: nothing sends a notification when Django's migrate
//! ends (the migrating node would have to, and a notification sent before
//! the waiter listens is lost), and `psql` prints notifications only after a
//! command anyway: two queries a second on an open session costs the server as
//! little and needs nothing from the other side.
//!
//! The session's application name is [`WATCH_APP`]: the migrating node's
//! database guard (`dbguard`, which reads this module's `WATCH_APP`) does not count it as a client to wait
//! for (it reads one table and holds no lock between polls).

use anyhow::{bail, Context, Result};
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::actions::backup::{self, Postgres, Target};
use crate::base::exec;
use crate::base::fsx::Root;
use crate::base::state::PhaseKind;
use crate::inputs::config::Config;

/// The application name of the waiting node's session (`pg_stat_activity`).
pub const WATCH_APP: &str = "synnefo-upgrade (waiting for the migrations)";
/// How often the session asks for the applied migrations.
pub const POLL: Duration = Duration::from_millis(500);
/// How often `snf-manage migrate --list` runs again while the session watches.
pub const LISTING_EVERY: Duration = Duration::from_secs(30);
/// psql's field separator in our output (ASCII unit separator: in no name).
const SEP: char = '\u{1f}';
/// The line that ends each poll's output.
const MARK: &str = "synnefo-upgrade: end of poll";

/// A migration: its app label and name.
pub type Migration = (String, String);

/// Parses Django 1.7's `snf-manage migrate --list`: each migration with
/// whether it is applied (`[X]`). An app label is a line at the margin;
/// anything else (warnings, `(no migrations)`) is skipped. Never panics.
pub fn parse_django_list(lines: &[String]) -> Vec<(Migration, bool)> {
    let mut app: Option<String> = None;
    let mut found = Vec::new();
    for line in lines {
        let t = line.trim();
        let (applied, rest) = if let Some(rest) = t.strip_prefix("[X]") {
            (true, rest)
        } else if let Some(rest) = t.strip_prefix("[ ]") {
            (false, rest)
        } else {
            if !t.is_empty()
                && !line.starts_with(char::is_whitespace)
                && t.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                app = Some(t.to_string());
            }
            continue;
        };
        if let (Some(app), Some(name)) = (&app, rest.split_whitespace().next()) {
            found.push(((app.clone(), name.to_string()), applied));
        }
    }
    found
}

/// Parses one poll's rows (`app SEP name`).
pub fn parse_rows(lines: &[String]) -> BTreeSet<Migration> {
    lines
        .iter()
        .filter_map(|l| {
            let (app, name) = l.split_once(SEP)?;
            Some((app.to_string(), name.trim_end().to_string()))
        })
        .collect()
}

/// An open `psql` session on the default database, asked every poll.
pub struct Session {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    stderr: Arc<Mutex<String>>,
}

impl Session {
    /// Starts `psql` (`program`) on `conn` (password in `PGPASSWORD`).
    pub fn open(program: &str, conn: &Postgres) -> Result<Session> {
        let mut cmd = Command::new(program);
        cmd.args(["-X", "-A", "-t", "-q", "-w", "-F"])
            .arg(SEP.to_string());
        for (flag, value) in [("-h", &conn.host), ("-p", &conn.port), ("-U", &conn.user)] {
            if !value.is_empty() {
                cmd.args([flag, value.as_str()]);
            }
        }
        cmd.args(["-d", conn.name.as_str()])
            .env("PGAPPNAME", WATCH_APP)
            .env("PGCONNECT_TIMEOUT", "5")
            .env("LC_ALL", "C")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if !conn.password.is_empty() {
            cmd.env("PGPASSWORD", &conn.password);
        }
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting '{program}' on database {}", conn.name))?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().context("psql's stdout")?;
        let mut stderr_pipe = child.stderr.take().context("psql's stderr")?;
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // The last error psql printed (a missing table is expected until
        // migrate creates it); read so that the pipe never fills.
        let stderr = Arc::new(Mutex::new(String::new()));
        let last = Arc::clone(&stderr);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stderr_pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                if let Ok(mut last) = last.lock() {
                    *last = String::from_utf8_lossy(&buf[..n]).trim().to_string();
                }
            }
        });
        Ok(Session {
            child,
            stdin,
            lines,
            stderr,
        })
    }

    /// The migrations recorded in `django_migrations` now (none while the
    /// table does not exist), or an error when the session ended or did
    /// not answer within `timeout`.
    pub fn applied(&mut self, timeout: Duration) -> Result<BTreeSet<Migration>> {
        let stdin = self.stdin.as_mut().context("the psql session is closed")?;
        let ask = format!("SELECT app, name FROM django_migrations;\n\\echo {MARK}\n");
        if stdin
            .write_all(ask.as_bytes())
            .and_then(|()| stdin.flush())
            .is_err()
        {
            bail!("the psql session ended: {}", self.last_error());
        }
        let deadline = Instant::now() + timeout;
        let mut rows = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line == MARK => return Ok(parse_rows(&rows)),
                Ok(line) => rows.push(line),
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    bail!("psql did not answer within {}s", timeout.as_secs())
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    bail!("the psql session ended: {}", self.last_error())
                }
            }
        }
    }

    fn last_error(&self) -> String {
        let last = self.stderr.lock().map(|s| s.clone()).unwrap_or_default();
        if last.is_empty() {
            "no message".into()
        } else {
            last
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where the waiting node can watch: `psql` and the PostgreSQL default database.
fn watch_target(root: &Root) -> Option<(String, Postgres)> {
    let psql = exec::find_inside(root, "psql")?;
    match backup::databases(root).ok()?.into_iter().next()? {
        Target::Postgres(pg) => Some((psql.to_string_lossy().into_owned(), pg)),
        _ => None,
    }
}

/// What a watch ended with.
enum Watched {
    /// Every missing migration is recorded now.
    Applied,
    /// Time for the listing again (or the deadline).
    Again,
}

/// Polls `target` every [`POLL`] until every migration of `missing` is in
/// `django_migrations`, or `until`. A session that cannot be had, or ends,
/// is opened again at the next poll.
fn watch(target: &(String, Postgres), missing: &BTreeSet<Migration>, until: Instant) -> Watched {
    let mut session: Option<Session> = None;
    let mut said = String::new();
    loop {
        let poll_start = Instant::now();
        if session.is_none() {
            session = Session::open(&target.0, &target.1).ok();
        }
        if let Some(s) = session.as_mut() {
            match s.applied(Duration::from_secs(10)) {
                Ok(applied) if missing.is_subset(&applied) => return Watched::Applied,
                Ok(_) => {}
                Err(e) => {
                    let e = format!("{e:#}");
                    if e != said {
                        log::info!("waiting for the migrations: {e}; trying again");
                        said = e;
                    }
                    session = None;
                }
            }
        }
        let next = poll_start + POLL;
        if next >= until {
            return Watched::Again;
        }
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
}

/// On a node that does not migrate: waits until another node has applied
/// every migration, for up to `[migrations] wait_seconds` (see the module doc);
/// while the database server cannot be reached (a database node rebooting
/// inside the outage), the time does not count, bounded by `[migrations]
/// retry_seconds` alone (0: as long as it takes).
pub fn wait_for_migrations(
    root: &Root,
    config: &Config,
    phase: PhaseKind,
    step: &str,
) -> Result<String> {
    let program = crate::actions::synnefo::snf_manage(root)?;
    let started = Instant::now();
    let deadline = started + Duration::from_secs(config.migrations.wait_seconds);
    let target = watch_target(root);
    let mut listings = 0;
    let mut server = crate::actions::synnefo::ServerWait::new(config);
    let mut down_since: Option<Instant> = None;
    let mut down_for = Duration::ZERO;
    loop {
        let listed_at = Instant::now();
        let run = exec::run_logged(phase, step, &[&program, "migrate", "--list"], &[])?;
        listings += 1;
        let unreachable = !run.status.success()
            && crate::actions::synnefo::UNREACHABLE
                .iter()
                .any(|u| run.said(u));
        if unreachable {
            down_since.get_or_insert(listed_at);
            server.again(
                "waiting for the migrations ('snf-manage migrate --list')",
                "could not connect to the database",
            )?;
            continue;
        }
        if let Some(since) = down_since.take() {
            down_for += listed_at.saturating_duration_since(since);
            server = crate::actions::synnefo::ServerWait::new(config);
        }
        let deadline = deadline + down_for;
        let listed = parse_django_list(&run.lines);
        let missing: BTreeSet<Migration> = listed
            .iter()
            .filter(|(_, applied)| !applied)
            .map(|(m, _)| m.clone())
            .collect();
        let unapplied = crate::actions::synnefo::unapplied(&run.lines);
        if run.status.success() && unapplied.is_empty() {
            return Ok(format!(
                "every migration is applied (by the node that runs them; snf-manage migrate --list, run {listings} time(s))"
            ));
        }
        if Instant::now() >= deadline {
            bail!(
                "after {}s, migrations are still unapplied ({}): the node with [migrations] run = true must finish \
                 first; then run 'synnefo-upgrade finish' here",
                config.migrations.wait_seconds,
                if run.status.success() {
                    unapplied.join(", ")
                } else {
                    format!("'snf-manage migrate --list' failed: {}", run.status)
                }
            );
        }
        let watchable =
            run.status.success() && !missing.is_empty() && missing.len() == unapplied.len();
        match (&target, watchable) {
            // Every missing one named with its app: watch the table.
            (Some(target), true) => {
                let until = deadline.min(Instant::now() + LISTING_EVERY);
                if let Watched::Applied = watch(target, &missing, until) {
                    return Ok(format!(
                        "every migration is applied (by the node that runs them): the {} missing were seen in \
                         {}'s django_migrations after {}s (snf-manage migrate --list run {listings} time(s))",
                        missing.len(),
                        target.1.name,
                        started.elapsed().as_secs()
                    ));
                }
            }
            // The listing failed (the server still starting, say): soon again.
            (Some(_), false) if !run.status.success() => {
                std::thread::sleep(crate::actions::synnefo::pause().min(Duration::from_secs(2)))
            }
            _ => std::thread::sleep(crate::actions::synnefo::pause()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(String::from).collect()
    }

    #[test]
    fn django_list_by_app_with_applied_marks() {
        let listed = parse_django_list(&lines(
            "db\n [X] 0001_initial\n [ ] 0002_ip_history\nim\n [ ] 0001_initial\nadmin\n (no migrations)\n",
        ));
        let want = [
            (("db", "0001_initial"), true),
            (("db", "0002_ip_history"), false),
            (("im", "0001_initial"), false),
        ];
        assert_eq!(
            listed,
            want.map(|((a, n), x)| ((a.to_string(), n.to_string()), x))
        );
        // A migration line before any app label is no migration we can look for.
        assert!(parse_django_list(&lines(" [ ] 0001_initial\n")).is_empty());
        // Warnings at the margin with spaces or punctuation are not app labels.
        let noisy = parse_django_list(&lines(
            "/usr/lib/python2.7/x.py:1: Warning: y\ndb\n [ ] 0001_initial\n",
        ));
        assert_eq!(
            noisy,
            [(("db".to_string(), "0001_initial".to_string()), false)]
        );
    }

    #[test]
    fn rows_are_app_and_name() {
        let rows = parse_rows(&lines("im\u{1f}0001_initial\ndb\u{1f}0002_x\ngarbage\n"));
        assert_eq!(rows.len(), 2);
        assert!(rows.contains(&("im".to_string(), "0001_initial".to_string())));
    }
}
