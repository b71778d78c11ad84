//! The database guard of `finish` on the migrating node: a fake `psql` inside
//! the fixture tree shows another client of the Synnefo databases for a
//! number of polls (or always); the fake `snf-manage` records whether
//! `migrate` ran.

mod common;

use common::pg::{succeeds, Server};
use common::Node;
use std::fs;

const SETTINGS: &str = "DATABASES = {'default': {'ENGINE': 'django.db.backends.postgresql_psycopg2', 'NAME': 'snf_apps', 'USER': 'synnefo', 'PASSWORD': 's3cret', 'HOST': '10.0.0.1', 'PORT': '5432'}}\n";
const PITHOS: &str =
    "PITHOS_BACKEND_DB_CONNECTION = 'postgresql://synnefo:s3cret@10.0.0.1:5432/snf_pithos'\n";

/// Prints one client row (unit-separated, as `psql -A -t -F` would) while
/// `/var/lib/fake-pg/polls-with-client` says so: a count, or `always`. With
/// `-c SQL` it answers that and exits; without, it is the guard's session:
/// it answers each query read from stdin and echoes `\echo` lines. Every
/// start is a line of psql.calls (`… PGPASSWORD=…`), every query of a
/// session one more (`  SQL`).
const FAKE_PSQL: &str = r#"#!/bin/sh
root="$(dirname "$0")/../.."
# The sessions of the order of the migrations (migorder, named
# 'synnefo-upgrade (…)') are recorded apart: psql.calls is the guard's.
calls="$root/var/log/psql.calls"
case "$PGAPPNAME" in 'synnefo-upgrade ('*) calls="$root/var/log/psql-order.calls";; esac
echo "$* PGPASSWORD=$PGPASSWORD" >> "$calls"
if [ "$calls" = "$root/var/log/psql.calls" ] && [ -e "$root/var/lib/fake-pg/starting" ]; then
  rm "$root/var/lib/fake-pg/starting"
  echo 'psql: could not connect to server: Connection refused' >&2; exit 2
fi
answer() {
  case "$1" in
  *server_version_num*) echo 90400;;
  # The rows written to a table (the writes against a real server: below).
  *pg_stat_user_tables*) printf 'public.im_user\0377\n';;
  # The order of the migrations (migorder): no other project's tables, the
  # lock free and taken.
  *pg_class*) ;;
  *pg_try_advisory_lock*) echo t;;
  *)
    n=$(cat "$root/var/lib/fake-pg/polls-with-client" 2>/dev/null || echo 0)
    if [ "$n" = always ] || [ "$n" -gt 0 ]; then
      [ "$n" = always ] || echo $((n - 1)) > "$root/var/lib/fake-pg/polls-with-client"
      printf '10.0.0.7\037\037gunicorn\037synnefo\037snf_apps\0372026-12-01 22:00:00+00\n'
    fi;;
  esac
}
case " $* " in *" -c "*) answer "$*"; exit 0;; esac
while IFS= read -r line; do
  case "$line" in
  '\echo '*) line=${line#\\echo \'}; echo "${line%\'}";;
  '') ;;
  *) echo "  $line" >> "$calls"; answer "$line";;
  esac
done
"#;

/// A migrating node on PostgreSQL with the fake psql, armed and dist-upgraded.
///
/// The writes are not watched unless `dropin` sets `quiet_window_secs`.
fn migrating(polls_with_client: &str, dropin: &str) -> Node {
    let dropin = if dropin.contains("quiet_window_secs") {
        dropin.to_string()
    } else if dropin.contains("[migrations]") {
        dropin.replace("[migrations]\n", "[migrations]\nquiet_window_secs = 0\n")
    } else {
        format!("{dropin}[migrations]\nquiet_window_secs = 0\n")
    };
    let node = Node::wheezy();
    node.write(
        "/etc/synnefo/10-snf-webproject-database.conf",
        SETTINGS,
        0o640,
    );
    node.write("/etc/synnefo/20-snf-pithos-backend.conf", PITHOS, 0o640);
    node.write("/usr/bin/psql", FAKE_PSQL, 0o755);
    node.write(
        "/var/lib/fake-pg/polls-with-client",
        polls_with_client,
        0o644,
    );
    node.write(
        "/etc/synnefo-upgrade/upgrade.d/50-test.toml",
        &format!("[backups]\nenabled = false\n{dropin}"),
        0o644,
    );
    node.ok(&["prepare"]);
    node.to_jessie();
    node
}

fn read(node: &Node, abs: &str) -> String {
    fs::read_to_string(node.path(abs)).unwrap_or_default()
}

/// Runs finish, which the guard stops (exit 1, nothing migrated); the
/// migrate step's message.
fn refused(node: &Node) -> String {
    let out = node.run(&["finish"], &[]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!read(node, "/var/log/snf-manage.calls").contains("migrate"));
    node.step("finish", "migrate")["message"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Runs finish to `done`; the migrate step's outcome starts with `guard`,
/// then `snf-manage migrate` ran. Returns that outcome.
fn finishes_after(node: &Node, guard: &str) -> String {
    node.ok(&["finish"]);
    assert_eq!(node.state_json()["phase"], "done");
    let message = node.step("finish", "migrate")["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(message.starts_with(guard), "{message}");
    assert!(message.contains("database migrations applied"), "{message}");
    assert!(read(node, "/var/log/snf-manage.calls").contains("migrate --noinput"));
    message
}

#[test]
fn a_client_that_leaves_within_the_quiet_period_lets_migrate_run() {
    let node = migrating(
        "2",
        "[migrations]\nquiet_period_secs = 10\nquiet_poll_ms = 1000\n",
    );
    finishes_after(&node, "no other client of snf_apps, snf_pithos (connected at first, gone after 2s: 10.0.0.7 (application 'gunicorn', user synnefo, database snf_apps");
    let calls = read(&node, "/var/log/psql.calls");
    let lines: Vec<&str> = calls.lines().collect();
    // The version once; then one session for both databases (one server),
    // which looks every second until the client is gone.
    assert_eq!(lines.len(), 5, "{calls}");
    assert!(lines[0].contains("server_version_num"), "{calls}");
    assert!(
        lines[0]
            .starts_with("-X -A -t -w -F \u{1f} -h 10.0.0.1 -p 5432 -U synnefo -d snf_apps -c "),
        "{calls}"
    );
    assert_eq!(
        lines[1],
        "-X -A -t -w -F \u{1f} -h 10.0.0.1 -p 5432 -U synnefo -d snf_apps -q -v ON_ERROR_STOP=1 PGPASSWORD=s3cret",
        "{calls}"
    );
    for line in &lines[..2] {
        // The password only in the environment.
        let (argv, env) = line.rsplit_once(" PGPASSWORD=").unwrap();
        assert_eq!(env, "s3cret");
        assert!(!argv.contains("s3cret"), "{line}");
    }
    for poll in &lines[2..] {
        assert!(
            poll.contains("datname = ANY(ARRAY['snf_apps', 'snf_pithos'])")
                && poll.contains(" pid <> pg_backend_pid()"),
            "{calls}"
        );
    }
}

#[test]
fn a_client_that_stays_stops_finish_before_migrate_and_a_restart_resumes() {
    let node = migrating(
        "always",
        "[migrations]\nquiet_period_secs = 2\nquiet_poll_ms = 1000\n",
    );
    let out = node.run(&["finish"], &[]);
    assert_eq!(out.status.code(), Some(1), "a step failure");
    let step = node.step("finish", "migrate");
    assert_eq!(step["status"], "failed");
    let message = step["message"].as_str().unwrap();
    assert!(
        message.contains("1 other client(s) still connected to snf_apps, snf_pithos after 2s, not migrating: 10.0.0.7 (application 'gunicorn', user synnefo, database snf_apps"),
        "{message}"
    );
    assert!(
        message.contains("stop gunicorn and every Synnefo service on all other hosts")
            && message.contains("then 'systemctl restart synnefo-upgrade-finish'"),
        "{message}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("10.0.0.7"));
    assert!(
        !read(&node, "/var/log/snf-manage.calls").contains("migrate"),
        "{}",
        read(&node, "/var/log/snf-manage.calls")
    );
    // It waited the quiet period, polling: the version, the session, then 3
    // looks (0 s, 1 s, 2 s).
    assert_eq!(read(&node, "/var/log/psql.calls").lines().count(), 5);
    assert_eq!(node.state_json()["phase"], "finishing");
    assert!(node.masked("gunicorn.service"));

    // The other host is armed: the restart resumes at migrate and completes.
    node.write("/var/lib/fake-pg/polls-with-client", "0", 0o644);
    finishes_after(&node, "no other client of snf_apps, snf_pithos; ");
    assert!(!node.masked("gunicorn.service"));
}

#[test]
fn a_server_still_starting_is_retried_and_a_failing_psql_fails_the_step() {
    let node = migrating("0", "");
    node.write("/var/lib/fake-pg/starting", "", 0o644);
    let out = node.run(&["finish"], &[("SYNNEFO_UPGRADE_RETRY_PAUSE_MS", "100")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(node.step("finish", "migrate")["message"]
        .as_str()
        .unwrap()
        .starts_with("no other client of snf_apps, snf_pithos; "));
    // The refused attempt, then the version, the session and one look.
    assert_eq!(read(&node, "/var/log/psql.calls").lines().count(), 4);

    // Any other psql failure: the step fails, nothing migrated.
    let node = migrating("0", "");
    node.write("/usr/bin/psql", "#!/bin/sh\necho 'psql: FATAL:  password authentication failed for user \"synnefo\"' >&2\nexit 2\n", 0o755);
    let out = node.run(&["finish"], &[]);
    assert_eq!(out.status.code(), Some(1));
    let message = node.step("finish", "migrate")["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        message.contains("'psql' on database snf_apps at 10.0.0.1 failed")
            && message.contains("password authentication failed"),
        "{message}"
    );
    assert!(!read(&node, "/var/log/snf-manage.calls").contains("migrate"));
}

#[test]
fn the_window_reads_the_row_counters_of_each_database_at_its_start_and_end() {
    let node = migrating(
        "0",
        "[migrations]\nquiet_window_secs = 1\nquiet_poll_ms = 1000\n",
    );
    finishes_after(
        &node,
        "no other client of snf_apps, snf_pithos, and no row written to them in 1s; ",
    );
    let calls = read(&node, "/var/log/psql.calls");
    let lines: Vec<&str> = calls.lines().collect();
    // The version; the session and its first look at the clients; the
    // counters of both databases; a look a second through the window; the
    // counters again.
    assert_eq!(lines.len(), 8, "{calls}");
    for (i, db) in [
        (3, "snf_apps"),
        (4, "snf_pithos"),
        (6, "snf_apps"),
        (7, "snf_pithos"),
    ] {
        assert!(
            lines[i].contains(&format!("-d {db} -c SELECT schemaname || '.' || relname"))
                && lines[i].contains("FROM pg_stat_user_tables"),
            "{calls}"
        );
    }
    for i in [2, 5] {
        assert!(lines[i].contains("FROM pg_stat_activity"), "{calls}");
    }
}

#[test]
fn the_switch_turns_the_guard_off() {
    let node = migrating(
        "always",
        "[migrations]\nrequire_quiet_database = false\nquiet_period_secs = 2\n",
    );
    finishes_after(
        &node,
        "database guard off ([migrations] require_quiet_database = false); ",
    );
    assert_eq!(read(&node, "/var/log/psql.calls"), "");
}

#[test]
fn sqlite_and_a_node_without_psql_are_skipped_with_a_notice() {
    // PostgreSQL settings, no psql in the node: skipped, migrate runs.
    let node = migrating("always", "");
    fs::remove_file(node.path("/usr/bin/psql")).unwrap();
    finishes_after(
        &node,
        "database guard skipped: no psql on this node (install postgresql-client",
    );

    // SQLite: nothing to ask, psql present or not.
    let node = Node::wheezy();
    node.write("/etc/synnefo/10-snf-webproject-database.conf", "DATABASES = {'default': {'ENGINE': 'django.db.backends.sqlite3', 'NAME': '/srv/snf.sqlite'}}\n", 0o640);
    node.write("/srv/snf.sqlite", "SQLite format 3\0fake", 0o600);
    node.write("/usr/bin/psql", FAKE_PSQL, 0o755);
    node.ok(&["prepare"]);
    node.to_jessie();
    finishes_after(
        &node,
        "database guard skipped: no PostgreSQL database (not checked: SQLite /srv/snf.sqlite); ",
    );
    assert_eq!(read(&node, "/var/log/psql.calls"), "");
}

/// A migrating node whose databases are `server`'s snf_apps and snf_pithos
/// (user postgres, no password), with the server's psql and `migrations` (keys of that
/// table), armed
/// and dist-upgraded (backups off).
fn node_on(server: &Server, migrations: &str) -> Node {
    let node = Node::wheezy();
    node.write(
        "/etc/synnefo/20-snf-pithos-backend.conf",
        &format!(
            "PITHOS_BACKEND_DB_CONNECTION = 'postgresql://postgres@127.0.0.1:{}/snf_pithos'\n",
            server.port
        ),
        0o640,
    );
    server.serve(
        &node,
        &format!("[backups]\nenabled = false\n[migrations]\n{migrations}"),
    );
    node
}

/// The guard's query against a real server (tests/vm/install-deps installs
/// PostgreSQL; the tests run it as `postgres` when root). An idle client of
/// snf_pithos (as gunicorn keeps one) stops finish; its server's own
/// background processes and our psql do not count; once it left, finish completes.
#[test]
fn real_postgresql_other_client_then_none() {
    let server = Server::start();
    let node = node_on(&server, "quiet_period_secs = 2\nquiet_window_secs = 1\n");

    // An idle client, connected until its stdin closes.
    let (mut client, _) = server.client("snf_pithos", "gunicorn", "SELECT 1");
    let connected = || {
        server
            .sql("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'gunicorn'")
            .trim()
            == "1"
    };
    for _ in 0..50 {
        if connected() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(connected());

    let message = refused(&node);
    assert!(
        message.contains("1 other client(s) still connected to snf_apps, snf_pithos after 2s, not migrating: 127.0.0.1 (application 'gunicorn', user postgres, database snf_pithos, connected since "),
        "{message}"
    );
    assert!(!read(&node, "/var/log/snf-manage.calls").contains("migrate"));

    drop(client.stdin.take());
    client.wait().unwrap();
    finishes_after(
        &node,
        "no other client of snf_apps, snf_pithos, and no row written to them in 1s; ",
    );
}

/// A 0.18.1 writer that holds no connection (Django 1.4 closes it after each
/// request; a cron job; a host left out of the roll-out): every 5 s it
/// connects, inserts one row and leaves. The guard with its defaults (an
/// 8 s window after every client left) sees the rows and refuses before
/// migrating, naming the table; with the writer stopped, finish completes.
/// Our own reads, and autovacuum's, write no row of a user table.
#[test]
fn real_postgresql_a_writer_with_short_lived_connections_is_seen() {
    let server = Server::start_on(25431);
    succeeds(server.psql("snf_apps").args([
        "-c",
        "CREATE TABLE stray_writes (id serial PRIMARY KEY, at timestamptz NOT NULL DEFAULT now())",
    ]));
    let node = node_on(&server, "quiet_period_secs = 2\n");

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        let mut insert = server.psql("snf_apps");
        insert
            .env("PGAPPNAME", "snf-dispatcher 0.18.1")
            .args(["-c", "INSERT INTO stray_writes DEFAULT VALUES"]);
        std::thread::spawn(move || {
            let mut writes = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                succeeds(&mut insert);
                writes += 1;
                for _ in 0..50 {
                    if stop.load(std::sync::atomic::Ordering::SeqCst) {
                        break;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
            }
            writes
        })
    };
    let message = refused(&node);
    assert!(
        message.contains("rows were written to snf_apps, snf_pithos within 8s while no other client stayed connected, not migrating: snf_apps.public.stray_writes (")
            || message.contains("connected to snf_apps, snf_pithos within 8s after every other client had left, not migrating: 127.0.0.1 (application 'snf-dispatcher 0.18.1'"),
        "{message}"
    );
    assert!(!read(&node, "/var/log/snf-manage.calls").contains("migrate"));
    assert_eq!(node.state_json()["phase"], "finishing");

    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(writer.join().unwrap() >= 2);
    finishes_after(
        &node,
        "no other client of snf_apps, snf_pithos, and no row written to them in 8s; ",
    );
}

/// The waiting node's watch against a real server: its open session is not a
/// client the migrating node's guard waits for, a missing `django_migrations`
/// is not the end, and the rows Django writes end the wait within two
/// seconds.
#[test]
fn real_postgresql_waiting_session_is_not_a_client_and_sees_the_migrations() {
    let server = Server::start_on(25430);
    let node = Node::wheezy();
    server.serve(&node, "[migrations]\nrun = false\nwait_seconds = 60\n");
    node.fake_snf_manage("echo im\necho ' [ ] 0001_initial'\n");
    let mut finish = common::spawn(&node, &["finish"]);
    let watching = || {
        server
            .sql("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'synnefo-upgrade (waiting for the migrations)'")
            .trim()
            == "1"
    };
    let t0 = std::time::Instant::now();
    while !watching() {
        assert!(t0.elapsed().as_secs() < 20, "no waiting session appeared");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // The guard's query, as the migrating node runs it: no client.
    let guard = synnefo_upgrade::actions::dbguard::query(&["snf_apps".to_string()], "pid", &[]);
    assert_eq!(
        server.sql(&guard).trim(),
        "",
        "the guard counts the waiting session"
    );
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert!(
        finish.try_wait().unwrap().is_none(),
        "the wait ended without the table"
    );
    let applied = std::time::Instant::now();
    succeeds(server.psql("snf_apps").args([
        "-c",
        "CREATE TABLE django_migrations (id serial PRIMARY KEY, app varchar(255) NOT NULL, name varchar(255) NOT NULL, applied timestamptz NOT NULL); \
         INSERT INTO django_migrations (app, name, applied) VALUES ('im', '0001_initial', now())",
    ]));
    let status = finish.wait().unwrap();
    assert!(status.success());
    assert!(
        applied.elapsed().as_secs_f64() < 2.0,
        "{:?}",
        applied.elapsed()
    );
    assert_eq!(node.state_json()["phase"], "done");
}

/// A database server of its own that reboots inside the outage (upgraded in
/// the same wave as the service nodes): down when the migrating node's
/// finish reaches the database. With the defaults (`[migrations]
/// retry_seconds = 0`) the step waits as long as the server cannot be
/// reached, saying so, and goes on by itself once it answers: the guard, then
/// the migrations. Any fixed bound would end such a wait (here `wait_seconds
/// = 2`, which ended it before); this one ends with the server.
#[test]
fn real_postgresql_a_database_server_that_reboots_is_waited_for() {
    let server = Server::start_on(25433);
    // wait_seconds bounds the waits for other nodes; the time the server
    // cannot be reached does not count against it.
    let node = node_on(
        &server,
        "quiet_period_secs = 1\nquiet_window_secs = 1\nwait_seconds = 2\n",
    );
    server.stop();
    let child = common::spawn_env(
        &node,
        &["finish"],
        &[("SYNNEFO_UPGRADE_RETRY_PAUSE_MS", "200")],
    );
    // Twenty tries and more: still waiting, nothing migrated.
    std::thread::sleep(std::time::Duration::from_secs(5));
    let migrate = node.step("finish", "migrate");
    assert_eq!(migrate["status"], "started", "{migrate}");
    assert!(!read(&node, "/var/log/snf-manage.calls").contains("migrate"));
    server.start_again();
    let (out, _) = common::reap(child, 120);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("the database server cannot be reached")
            && stderr.contains("waiting as long as it takes"),
        "{stderr}"
    );
    finishes_after(
        &node,
        "no other client of snf_apps, snf_pithos, and no row written to them in 1s; ",
    );
}
