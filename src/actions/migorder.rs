//! The order of the migrations of several nodes on one database, and the
//! services kept down until the last of them has ended.
//!
//! Where Astakos and Cyclades share their Django database (one `snf_apps`
//! is common), each project's `snf-manage migrate` also migrates Django's
//! own apps (`contenttypes`, `sites`, `auth`, `sessions`) into the same
//! tables and records itself in the same `django_migrations`: two at once
//! race on them. In Synnefo 0.19's source no migration of one project
//! depends on another's (Astakos: `im`, `oa2`, `quotaholder_app`, whose
//! first migrations depend only on Django's `auth`/`contenttypes`; Cyclades:
//! `db`, `userdata`; Pithos' Django project has no migration of its own).
//! So any order is correct; we choose the one the guide lists and Cyclades
//! relies on at run time: **Astakos, then Cyclades, then Pithos**, one at a
//! time ([`ORDER`]).
//!
//! How the nodes agree, with nothing but the database they share:
//!
//! - **Whose turn.** A migrating node whose project comes after another's
//!   in [`ORDER`] waits while that project's tables are in the database
//!   ([`Project::table`]) and `django_migrations` has none of its rows yet
//!   ([`Project::app`]): that project's node has not migrated.
//! - **One at a time.** The migrations run under a session advisory lock
//!   ([`LOCK`]) of that database, held by a `psql` session named after the
//!   node from before the guard until `migrate` has ended; a node that
//!   finds it taken waits, naming the holder (application name, address).
//!   A lock of a session dies with its connection: a node that crashes or
//!   is stopped frees it.
//! - **Services down until the last.** After its own migrations (or, on a
//!   node that does not migrate, after the wait for them), a node keeps its
//!   services down while another project's tables are in the database and
//!   none of its migrations is recorded, or while another node holds the
//!   lock. So no 0.19 service runs before the last migration on the
//!   database has ended, and the last migrating node's guard sees no 0.19
//!   service to take for a 0.18.1 writer, nor one that could hide such a
//!   writer. The cost: every service on that database is down until the
//!   last project's migrations end (the sum of the migrations, one after
//!   the other).
//!
//! Our sessions are named with [`OUR_APP`]: the guards of the other
//! nodes do not count them (they read, and hold nothing but the lock).
//! Separate databases share no table: nodes on different databases (of one
//! server or not) neither wait for each other nor lock each other out (an
//! advisory lock is per database in PostgreSQL).
//!
//! A node whose Django project has no migrations of its own (Pithos) and
//! came after others runs `snf-manage migrate --list` once its turn has
//! come: when the others applied everything it lists, it has nothing to
//! migrate, and neither guards nor migrates.

use anyhow::{bail, Result};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::actions::backup::{self, Postgres, Target, OUR_APP};
use crate::actions::dbguard::{self, Session, SEP};
use crate::base::exec;
use crate::base::fsx::Root;
use crate::inputs::node::Role;

/// A project with migrations of its own in a shared Django database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Project {
    /// Its name, as the operator knows it.
    pub name: &'static str,
    /// The role of a node that serves it.
    pub role: Role,
    /// A table of its 0.18.1 schema: present where its data lives.
    pub table: &'static str,
    /// The app label its 0.19 migrations are recorded under in `django_migrations`.
    pub app: &'static str,
}

/// The projects in the order they migrate on one database; a Pithos node
/// comes after them all.
pub const ORDER: [Project; 2] = [
    Project {
        name: "astakos",
        role: Role::Astakos,
        table: "im_astakosuser",
        app: "im",
    },
    Project {
        name: "cyclades",
        role: Role::Cyclades,
        table: "db_virtualmachine",
        app: "db",
    },
];

/// The advisory lock of the migrations (`pg_try_advisory_lock(int, int)`:
/// "snfu", 19).
pub const LOCK: (i32, i32) = (0x736e_6675, 19);

/// How often the database is looked at while waiting.
pub const POLL: Duration = Duration::from_millis(500);

/// What one look at the database saw.
#[derive(Debug, Default, PartialEq)]
pub struct Seen {
    /// The tables among `django_migrations` and [`Project::table`]s that exist.
    pub tables: BTreeSet<String>,
    /// The app labels among [`Project::app`]s with a row in `django_migrations`.
    pub apps: BTreeSet<String>,
    /// Who else holds [`LOCK`]: `'NAME' at ADDRESS`.
    pub holder: Option<String>,
}

impl Seen {
    /// The projects of `among` whose tables are here and whose migrations
    /// are not recorded yet.
    pub fn unmigrated<'a>(&self, among: &'a [Project]) -> Vec<&'a Project> {
        among
            .iter()
            .filter(|p| self.tables.contains(p.table) && !self.apps.contains(p.app))
            .collect()
    }
}

/// The query of the tables and the lock's holder (PostgreSQL 9.1 and later:
/// `pid_column` is `procpid` before 9.2). Lines: `table SEP NAME`, `lock SEP
/// APPLICATION SEP ADDRESS`.
pub fn state_query(pid_column: &str) -> String {
    let tables: Vec<String> = std::iter::once("django_migrations")
        .chain(ORDER.iter().map(|p| p.table))
        .map(|t| format!("'{t}'"))
        .collect();
    format!(
        "SELECT 'table', relname, '' FROM pg_class WHERE relkind = 'r' AND pg_table_is_visible(oid) \
         AND relname IN ({}) \
         UNION ALL SELECT 'lock', COALESCE(a.application_name, ''), COALESCE(host(a.client_addr), '') \
         FROM pg_locks l JOIN pg_stat_activity a ON a.{pid_column} = l.pid \
         WHERE l.locktype = 'advisory' AND l.granted AND l.classid = {} AND l.objid = {} \
         AND l.objsubid = 2 AND l.pid <> pg_backend_pid() \
         AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        tables.join(", "),
        LOCK.0 as u32,
        LOCK.1
    )
}

/// The query of the projects' apps recorded in `django_migrations`.
pub fn apps_query() -> String {
    let apps: Vec<String> = ORDER.iter().map(|p| format!("'{}'", p.app)).collect();
    format!(
        "SELECT DISTINCT app FROM django_migrations WHERE app IN ({})",
        apps.join(", ")
    )
}

/// Parses [`state_query`]'s answer (the apps left empty).
pub fn parse_state(answer: &str) -> Seen {
    let mut seen = Seen::default();
    for line in answer.lines() {
        let f: Vec<&str> = line.split(SEP).collect();
        match f[..] {
            ["table", name, ..] => {
                seen.tables.insert(name.trim().to_string());
            }
            ["lock", app, addr] => {
                let addr = addr.trim();
                seen.holder = Some(format!(
                    "'{app}' at {}",
                    if addr.is_empty() {
                        "a local socket"
                    } else {
                        addr
                    }
                ));
            }
            _ => {}
        }
    }
    seen
}

/// One node's place among the migrations of its Django database.
pub struct Order {
    program: String,
    conn: Postgres,
    /// The projects that go before this node's.
    before: Vec<Project>,
    /// The projects this node does not serve (whose migrations it waits
    /// for before starting its services).
    others: Vec<Project>,
    /// This node's name in the lock holder's application name.
    host: String,
    wait: Duration,
    /// `[migrations] retry_seconds`: the bound on a server that cannot be
    /// reached (0: none).
    retry: u64,
}

/// The lock held: the migrations are this node's until it is dropped.
pub struct Turn {
    _session: Session,
    /// Whether a project that goes before this node's is in the database.
    after_others: bool,
}

/// What a wait saw.
pub struct Waited {
    /// How long.
    pub for_: Duration,
    /// Whom, in order, without repeats.
    pub whom: Vec<String>,
}

impl Waited {
    fn describe(&self, what: &str) -> Option<String> {
        (!self.whom.is_empty()).then(|| {
            format!(
                "{what} {}s ({})",
                self.for_.as_secs(),
                self.whom.join("; then ")
            )
        })
    }
}

impl Order {
    /// The order on the node under `root` serving `roles`; `None` without a
    /// PostgreSQL Django database or a `psql` (nothing to agree through).
    pub fn for_node(
        root: &Root,
        roles: &[Role],
        wait: Duration,
        retry: u64,
    ) -> Result<Option<Order>> {
        let Some(Target::Postgres(conn)) = backup::databases(root)?.into_iter().next() else {
            return Ok(None);
        };
        let Some(program) = exec::find_inside(root, "psql") else {
            return Ok(None);
        };
        let first = ORDER
            .iter()
            .position(|p| roles.contains(&p.role))
            .unwrap_or(ORDER.len());
        let others: Vec<Project> = ORDER
            .iter()
            .filter(|p| !roles.contains(&p.role))
            .copied()
            .collect();
        Ok(Some(Order {
            program: program.to_string_lossy().into_owned(),
            conn,
            before: ORDER[..first].to_vec(),
            others,
            host: crate::inputs::node::hostname(root).unwrap_or_else(|| "a node".into()),
            wait,
            retry,
        }))
    }

    /// The database, for messages: `snf_apps at HOST`.
    fn database(&self) -> String {
        if self.conn.host.is_empty() {
            self.conn.name.clone()
        } else {
            format!("{} at {}", self.conn.name, self.conn.host)
        }
    }

    /// Looks at the database through `session`.
    fn look(&self, session: &mut Session, pid_column: &str) -> Result<Seen> {
        let mut seen = parse_state(&session.query(&state_query(pid_column))?);
        if seen.tables.contains("django_migrations") {
            seen.apps = session
                .query(&apps_query())?
                .lines()
                .map(|l| l.trim().to_string())
                .filter(|l| !l.is_empty())
                .collect();
        }
        Ok(seen)
    }

    /// Polls every [`POLL`] with a session named `app` until `step` says
    /// the wait is over (`Ok(None)`); `Ok(Some(why))` goes on waiting (each
    /// new reason logged). A session that fails is opened again at the next
    /// poll (a server that reboots). The session is returned.
    fn wait_until(
        &self,
        app: &str,
        what: &str,
        step: &mut dyn FnMut(&mut Session, &Seen) -> Result<Option<String>>,
    ) -> Result<(Session, Waited)> {
        let started = Instant::now();
        let deadline = started + self.wait;
        let mut session: Option<(Session, &'static str)> = None;
        let mut whom: Vec<String> = Vec::new();
        let mut last_error = String::new();
        let mut said_error = String::new();
        // A server that cannot be reached (a database node rebooting inside
        // the outage) does not use up `wait_seconds`: that time is bounded by
        // `[migrations] retry_seconds` only (0: as long as it takes).
        let retry = crate::actions::synnefo::ServerWait::limit(self.retry);
        let mut down_since: Option<Instant> = None;
        let mut down_for = Duration::ZERO;
        loop {
            let poll = Instant::now();
            if session.is_none() {
                session = Session::open(&self.program, &self.conn, app)
                    .and_then(|mut s| {
                        let v = s.query("SELECT current_setting('server_version_num')")?;
                        Ok((s, dbguard::pid_column(&v)?))
                    })
                    .map_err(|e| last_error = format!("{e:#}"))
                    .ok();
            }
            if let Some((s, pid_column)) = session.as_mut() {
                let pid_column: &'static str = pid_column;
                match self.look(s, pid_column).and_then(|seen| step(s, &seen)) {
                    Ok(None) => {
                        let (s, _) = session.take().expect("a session");
                        return Ok((
                            s,
                            Waited {
                                for_: started.elapsed(),
                                whom,
                            },
                        ));
                    }
                    Ok(Some(why)) => {
                        if whom.last() != Some(&why) {
                            log::info!("{what}: waiting for {why}");
                            whom.push(why);
                        }
                    }
                    Err(e) => {
                        last_error = format!("{e:#}");
                        session = None;
                    }
                }
            }
            // A server not reachable (yet) is looked at again; anything else
            // (credentials, a failing psql) fails at once, as the guard does.
            if session.is_none() && !crate::actions::synnefo::unreachable(&last_error) {
                bail!("{what}: {last_error}");
            }
            if session.is_none() && last_error != said_error {
                log::warn!(
                    "{what}: the database server cannot be reached ({}; trying again every half second): {last_error}",
                    crate::actions::synnefo::ServerWait::bound(retry)
                );
                said_error = last_error.clone();
            }
            match (session.is_none(), down_since) {
                (true, None) => down_since = Some(poll),
                (true, Some(since)) => {
                    if retry.is_some_and(|limit| since.elapsed() >= limit) {
                        bail!(
                            "{what}: the database stayed unreachable for {}s ([migrations] retry_seconds): {last_error}",
                            since.elapsed().as_secs()
                        );
                    }
                }
                (false, Some(since)) => {
                    down_for += poll.saturating_duration_since(since);
                    down_since = None;
                }
                (false, None) => {}
            }
            let unreachable_now = down_since.map_or(Duration::ZERO, |s| s.elapsed());
            if Instant::now() >= deadline + down_for + unreachable_now {
                let why = match (whom.last(), session.is_some()) {
                    (Some(why), true) => why.clone(),
                    _ => format!("the database (last error: {last_error})"),
                };
                bail!(
                    "{what}: still waiting after {}s ([migrations] wait_seconds) for {why}; make the node named \
                     there finish its migrations (synnefo-upgrade status there), then run 'synnefo-upgrade \
                     finish' here",
                    self.wait.as_secs()
                );
            }
            std::thread::sleep((poll + POLL).saturating_duration_since(Instant::now()));
        }
    }

    /// Waits until the projects that go before this node's have migrated,
    /// then takes the lock of the database's migrations. The [`Turn`] holds
    /// it; the message says whom it waited for (empty: nobody).
    pub fn wait_turn(&self) -> Result<(Turn, String)> {
        let app = format!("{OUR_APP} (migrating on {})", self.host);
        let before = self.before.clone();
        let database = self.database();
        let mut after_others = false;
        let (session, waited) = self.wait_until(
            &app,
            &format!("the migrations of {database}"),
            &mut |s, seen| {
                if let Some(p) = seen.unmigrated(&before).first() {
                    return Ok(Some(format!(
                        "{name}'s migrations first (its tables are in {database}, django_migrations has no '{app}' \
                         migration yet): the node that migrates {name} ([migrations] run = true there) goes before \
                         this one{held}",
                        name = p.name,
                        app = p.app,
                        held = seen
                            .holder
                            .as_ref()
                            .map(|h| format!("; the lock is held by {h}"))
                            .unwrap_or_default()
                    )));
                }
                after_others = before.iter().any(|p| seen.tables.contains(p.table));
                let got = s.query(&format!(
                    "SELECT pg_try_advisory_lock({}, {})",
                    LOCK.0, LOCK.1
                ))?;
                Ok(if got.trim() == "t" {
                    None
                } else {
                    Some(format!(
                        "{} to end its migrations of {database}",
                        seen.holder.as_deref().unwrap_or("another node")
                    ))
                })
            },
        )?;
        let said = waited
            .describe("waited")
            .map(|w| format!("{w}, then "))
            .unwrap_or_default();
        Ok((
            Turn {
                _session: session,
                after_others,
            },
            format!("{said}took the migrations of {database} (advisory lock)"),
        ))
    }

    /// Whether this node has nothing to migrate that the others left: a
    /// node with no project of [`ORDER`] (Pithos) whose turn came after
    /// others' in the database, and whose `snf-manage migrate --list` shows
    /// everything applied.
    pub fn nothing_left(
        &self,
        turn: &Turn,
        root: &Root,
        phase: crate::base::state::PhaseKind,
        step: &str,
    ) -> Result<bool> {
        // A node that serves a project of ORDER has migrations of its own.
        if self.others.len() < ORDER.len() || !turn.after_others {
            return Ok(false);
        }
        let program = crate::actions::synnefo::snf_manage(root)?;
        let run = exec::run_logged(phase, step, &[&program, "migrate", "--list"], &[])?;
        Ok(run.status.success() && crate::actions::synnefo::unapplied(&run.lines).is_empty())
    }

    /// Waits until no project this node does not serve is left to migrate
    /// on the database and no node holds its migrations: the moment this
    /// node's services may start. The message says whom it waited for.
    pub fn wait_rest(&self) -> Result<Option<String>> {
        // A node that serves every project has seen all of them migrated.
        if self.others.is_empty() {
            return Ok(None);
        }
        let others = self.others.clone();
        let database = self.database();
        let (_, waited) = self.wait_until(
            crate::actions::migwait::WATCH_APP,
            &format!("the services, until the last migration of {database}"),
            &mut |_, seen| {
                if let Some(p) = seen.unmigrated(&others).first() {
                    return Ok(Some(format!(
                        "{name}'s migrations (its tables are in {database}, django_migrations has no '{app}' \
                         migration yet: the node that migrates {name} has not run them)",
                        name = p.name,
                        app = p.app
                    )));
                }
                Ok(seen
                    .holder
                    .as_ref()
                    .map(|h| format!("{h} to end its migrations of {database}")))
            },
        )?;
        Ok(waited.describe("kept the services down"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_is_tables_and_the_holder() {
        let seen = parse_state(
            "table\u{1f}django_migrations\u{1f}\ntable\u{1f}im_astakosuser\u{1f}\n\
             lock\u{1f}synnefo-upgrade (migrating on svc1)\u{1f}10.0.0.3\n",
        );
        assert!(seen.tables.contains("im_astakosuser"));
        assert_eq!(
            seen.holder.as_deref(),
            Some("'synnefo-upgrade (migrating on svc1)' at 10.0.0.3")
        );
        assert_eq!(
            parse_state("lock\u{1f}x\u{1f}\n").holder.as_deref(),
            Some("'x' at a local socket")
        );
    }

    #[test]
    fn a_project_is_unmigrated_while_its_tables_are_here_and_its_rows_are_not() {
        let mut seen = Seen::default();
        assert!(seen.unmigrated(&ORDER).is_empty());
        seen.tables.insert("im_astakosuser".into());
        seen.tables.insert("db_virtualmachine".into());
        let names =
            |seen: &Seen| -> Vec<&str> { seen.unmigrated(&ORDER).iter().map(|p| p.name).collect() };
        assert_eq!(names(&seen), ["astakos", "cyclades"]);
        seen.apps.insert("im".into());
        assert_eq!(names(&seen), ["cyclades"]);
        seen.apps.insert("db".into());
        assert!(names(&seen).is_empty());
    }

    #[test]
    fn the_queries_name_every_project() {
        let q = state_query("procpid");
        for p in ORDER {
            assert!(q.contains(&format!("'{}'", p.table)), "{q}");
            assert!(apps_query().contains(&format!("'{}'", p.app)));
        }
        assert!(q.contains("a.procpid = l.pid"), "{q}");
        assert!(q.contains(&format!("l.classid = {}", LOCK.0)), "{q}");
    }
}
