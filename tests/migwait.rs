//! A node that does not migrate waits for the one that does, and notices the
//! end within about a second: `snf-manage migrate --list` once, then one open
//! `psql` session asked every second for `django_migrations` (a fake `psql`
//! inside the fixture tree answers from a file the test writes, the way the
//! real one answers on an open session: rows, then the `\echo` line).

mod common;

use common::Node;
use std::fs;
use std::time::{Duration, Instant};

const SETTINGS: &str = "DATABASES = {'default': {'ENGINE': 'django.db.backends.postgresql_psycopg2', 'NAME': 'snf_apps', 'USER': 'synnefo', 'PASSWORD': 's3cret', 'HOST': '10.0.0.1', 'PORT': '5432'}}\n";

/// One session per process: each start is recorded; while
/// `/var/lib/fake-pg/down` holds a positive count the server is down (the
/// session ends at once, as psql does when it cannot connect). A `SELECT`
/// prints the rows of `/var/lib/fake-pg/django_migrations` (none, with the
/// error on stderr, while it does not exist), `\echo X` prints X.
const FAKE_PSQL: &str = r#"#!/bin/sh
root="$(dirname "$0")/../.."
echo "session $* PGAPPNAME=$PGAPPNAME PGPASSWORD=$PGPASSWORD" >> "$root/var/log/psql.calls"
n=$(cat "$root/var/lib/fake-pg/down" 2>/dev/null || echo 0)
if [ "$n" -gt 0 ]; then
  echo $((n - 1)) > "$root/var/lib/fake-pg/down"
  echo 'psql: error: could not connect to server: Connection refused' >&2; exit 2
fi
while IFS= read -r line; do
  case "$line" in
    # The order of the migrations (migorder), after the wait: no other
    # project's tables, nobody migrating.
    "SELECT current_setting"*) echo 90400 ;;
    *pg_class*) ;;
    SELECT*) cat "$root/var/lib/fake-pg/django_migrations" 2>/dev/null ||
             echo 'ERROR:  relation "django_migrations" does not exist' >&2 ;;
    '\echo '*) line=${line#\\echo }; line=${line#\'}; echo "${line%\'}" ;;
  esac
done
"#;

/// Django 1.7's listing on the waiting node: two migrations missing, for ever
/// (only the database watch can end the wait).
const LISTING: &str = "echo db\necho ' [X] 0001_initial'\necho ' [ ] 0002_ip_history'\necho im\necho ' [ ] 0001_initial'\n";

fn waiting_node() -> Node {
    let node = Node::wheezy();
    node.write(
        "/etc/synnefo/10-snf-webproject-database.conf",
        SETTINGS,
        0o640,
    );
    node.write("/usr/bin/psql", FAKE_PSQL, 0o755);
    node.write(
        "/etc/synnefo-upgrade/upgrade.d/50-test.toml",
        "[migrations]\nrun = false\nwait_seconds = 60\n",
        0o644,
    );
    node.ok(&["prepare"]);
    node.to_jessie();
    node.fake_snf_manage(LISTING);
    node
}

fn rows(node: &Node, rows: &[(&str, &str)]) {
    let text: String = rows
        .iter()
        .map(|(a, n)| format!("{a}\u{1f}{n}\n"))
        .collect();
    let path = node.path("/var/lib/fake-pg/django_migrations");
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, text).unwrap();
    fs::rename(tmp, path).unwrap();
}

fn read(node: &Node, abs: &str) -> String {
    fs::read_to_string(node.path(abs)).unwrap_or_default()
}

#[test]
fn the_end_of_the_migrations_is_noticed_within_two_seconds_by_one_open_session() {
    let node = waiting_node();
    // One of the two missing is there already: not the end.
    rows(&node, &[("db", "0001_initial"), ("im", "0001_initial")]);
    let child = common::spawn(&node, &["finish"]);
    std::thread::sleep(Duration::from_secs(3));
    let applied = Instant::now();
    rows(
        &node,
        &[
            ("db", "0001_initial"),
            ("db", "0002_ip_history"),
            ("im", "0001_initial"),
        ],
    );
    let (out, ended) = common::reap(child, 40);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let noticed = ended.duration_since(applied);
    assert!(
        noticed < Duration::from_secs(2),
        "noticed after {noticed:?}"
    );
    // The listing ran once; the database was asked on one session, named;
    // then one more looked for other projects left to migrate (migorder).
    assert_eq!(
        node.calls().matches("migrate --list").count(),
        1,
        "{}",
        node.calls()
    );
    let sessions = read(&node, "/var/log/psql.calls");
    assert_eq!(sessions.lines().count(), 2, "{sessions}");
    for session in sessions.lines() {
        assert!(
            session.contains("-h 10.0.0.1 -p 5432 -U synnefo ")
                && session.contains(" -d snf_apps")
                && session.ends_with(
                    "PGAPPNAME=synnefo-upgrade (waiting for the migrations) PGPASSWORD=s3cret"
                ),
            "{sessions}"
        );
    }
    let message = node.step("finish", "migrate")["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        message.contains("the 2 missing were seen in snf_apps's django_migrations"),
        "{message}"
    );
    assert_eq!(node.state_json()["phase"], "done");
}

#[test]
fn a_server_that_is_down_is_asked_again_every_second_and_a_missing_table_is_not_the_end() {
    let node = waiting_node();
    // Down for three sessions; then up, without the table for a while.
    node.write("/var/lib/fake-pg/down", "3", 0o644);
    let child = common::spawn(&node, &["finish"]);
    std::thread::sleep(Duration::from_secs(5));
    assert!(
        node.state_json()["phase"] != "done",
        "done before the migrations were recorded"
    );
    let applied = Instant::now();
    rows(&node, &[("db", "0002_ip_history"), ("im", "0001_initial")]);
    let (out, ended) = common::reap(child, 40);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(ended.duration_since(applied) < Duration::from_secs(2));
    // Three refused sessions, then one that stayed open, then the look for
    // other projects left to migrate.
    assert_eq!(read(&node, "/var/log/psql.calls").lines().count(), 5);
}
