//! Split service nodes migrating on one database, against a real PostgreSQL:
//! an Astakos node, a Cyclades node and a Pithos node whose Django projects
//! share `snf_apps`. Their finishes start in the wrong order (Pithos, then
//! Cyclades, then Astakos); the migrations still run Astakos first, then
//! Cyclades, never at once, the Pithos node migrates nothing, and no node
//! ends (its services would start) before the last migration has ended.

mod common;

use common::pg::{succeeds, Server};
use common::Node;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A node of `package` on `server`'s snf_apps, named `host`, armed and
/// dist-upgraded; its 0.19 `snf-manage migrate` records its start and end
/// (epoch seconds) in /var/log/migrations and, between them, writes `app`'s
/// row of `django_migrations` as Django does. `listing` is its `migrate --list`.
fn node(server: &Server, package: &str, host: &str, app: Option<&str>, listing: &str) -> Node {
    let node = Node::with_synnefo(&[package]);
    node.write("/etc/hostname", &format!("{host}\n"), 0o644);
    server.serve(
        &node,
        "[backups]\nenabled = false\n[migrations]\nquiet_period_secs = 2\nquiet_window_secs = 1\nwait_seconds = 60\n",
    );
    let record = match app {
        Some(app) => format!(
            "echo \"start $(date +%s.%N)\" >> \"$root/var/log/migrations\"\nsleep 2\n\
             \"$root/usr/bin/psql\" -X -q -h 127.0.0.1 -p {} -U postgres -d snf_apps -c \
             \"CREATE TABLE IF NOT EXISTS django_migrations (id serial PRIMARY KEY, app varchar(255) NOT NULL, \
             name varchar(255) NOT NULL, applied timestamptz NOT NULL); \
             INSERT INTO django_migrations (app, name, applied) VALUES ('{app}', '0001_initial', now())\" || exit 1\n\
             echo \"end $(date +%s.%N)\" >> \"$root/var/log/migrations\"\n",
            server.port
        ),
        None => "echo \"start $(date +%s.%N)\" >> \"$root/var/log/migrations\"\n".into(),
    };
    // The Astakos node re-registers Cyclades after its migrations.
    node.fake_snf_manage(&format!(
        "case \"$1 $2\" in\n\"migrate --list\") printf '{listing}';;\nmigrate*)\n{record};;\n\
         component-list*) echo 'cyclades,https://c.example.org/cyclades,https://c.example.org/cyclades/ui';;\n\
         service-import*) cat >/dev/null;;\nesac\n"
    ));
    node.write(
        "/usr/bin/snf-service-export",
        "#!/bin/sh\necho '{}'\n",
        0o755,
    );
    node
}

/// The (start, end) of a node's migration, in seconds since the epoch.
fn migration(node: &Node) -> (f64, f64) {
    let text = std::fs::read_to_string(node.path("/var/log/migrations")).unwrap_or_default();
    let at = |what: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(what))
            .unwrap_or_else(|| panic!("no {what}in {text:?}"))
            .trim()
            .parse()
            .unwrap()
    };
    (at("start "), at("end "))
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn migrate_message(node: &Node) -> String {
    node.step("finish", "migrate")["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn real_postgresql_split_nodes_take_turns_and_keep_services_down_until_the_last() {
    let server = Server::start_on(25432);
    // The 0.18.1 schema of both projects in the one database.
    succeeds(server.psql("snf_apps").args([
        "-c",
        "CREATE TABLE im_astakosuser (id serial PRIMARY KEY); \
         CREATE TABLE db_virtualmachine (id serial PRIMARY KEY)",
    ]));
    let astakos = node(
        &server,
        "snf-astakos-app",
        "astakos1",
        Some("im"),
        "im\\n [ ] 0001_initial\\n",
    );
    let cyclades = node(
        &server,
        "snf-cyclades-app",
        "cyclades1",
        Some("db"),
        "db\\n [ ] 0001_initial\\n",
    );
    let pithos = node(
        &server,
        "snf-pithos-app",
        "pithos1",
        None,
        "contenttypes\\n [X] 0001_initial\\n",
    );

    // The later ones first: each must wait for its turn.
    let waiting = |host: &str| {
        server
            .sql(&format!("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'synnefo-upgrade (migrating on {host})'"))
            .trim()
            == "1"
    };
    let p = common::spawn(&pithos, &["finish"]);
    let c = common::spawn(&cyclades, &["finish"]);
    let t0 = Instant::now();
    while !(waiting("pithos1") && waiting("cyclades1")) {
        assert!(t0.elapsed() < Duration::from_secs(20), "no node waits");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        !cyclades.calls().contains("migrate --noinput"),
        "Cyclades did not wait for Astakos"
    );
    let a = common::spawn(&astakos, &["finish"]);

    let mut ended = Vec::new();
    for (name, child) in [("astakos", a), ("cyclades", c), ("pithos", p)] {
        let (out, _) = common::reap(child, 120);
        ended.push(now());
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let (a_start, a_end) = migration(&astakos);
    let (c_start, c_end) = migration(&cyclades);
    assert!(a_end <= c_start, "Astakos {a_start}..{a_end}, Cyclades {c_start}..{c_end}: they overlapped or came in the wrong order");
    // No node ended (its services start at its end) before the last migration.
    for (i, at) in ended.iter().enumerate() {
        assert!(
            *at >= c_end,
            "node {i} ended at {at}, before Cyclades' migration ended at {c_end}"
        );
    }
    // The Pithos node had nothing left: no guard, no migrate.
    assert!(
        !pithos.calls().contains("migrate --noinput"),
        "{}",
        pithos.calls()
    );
    assert!(
        migrate_message(&pithos).contains("nothing left to migrate"),
        "{}",
        migrate_message(&pithos)
    );

    let c_said = migrate_message(&cyclades);
    assert!(c_said.contains("astakos's migrations first"), "{c_said}");
    assert!(c_said.contains("database migrations applied"), "{c_said}");
    let a_said = migrate_message(&astakos);
    assert!(
        a_said.starts_with("no other client of snf_apps"),
        "the waiting nodes' sessions counted as clients: {a_said}"
    );
    assert!(
        a_said.contains("kept the services down") && a_said.contains("cyclades's migrations"),
        "{a_said}"
    );
    for n in [&astakos, &cyclades, &pithos] {
        assert_eq!(n.state_json()["phase"], "done");
    }
    // Every session of ours is gone: the lock went with the last one.
    assert_eq!(
        server
            .sql("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'")
            .trim(),
        "0"
    );
}

/// A node that finds the migrations of its database taken waits, naming the
/// holder (its application name and address), and gives up after
/// `[migrations] wait_seconds` with that name and what to do.
#[test]
fn real_postgresql_a_held_lock_names_its_holder() {
    let server = Server::start_on(25433);
    let node = Node::with_synnefo(&["snf-cyclades-app"]);
    server.serve(
        &node,
        "[backups]\nenabled = false\n[migrations]\nwait_seconds = 2\n",
    );
    // Another node's session holds the lock (the key migorder uses).
    let (a, b) = synnefo_upgrade::actions::migorder::LOCK;
    let (mut holder, got) = server.client(
        "snf_apps",
        "synnefo-upgrade (migrating on astakos9)",
        &format!("SELECT pg_try_advisory_lock({a}, {b})"),
    );
    assert_eq!(got, "t");

    let out = node.run(&["finish"], &[]);
    assert_eq!(out.status.code(), Some(1));
    let said = migrate_message(&node);
    assert!(
        said.contains("still waiting after 2s ([migrations] wait_seconds) for 'synnefo-upgrade (migrating on astakos9)' at 127.0.0.1 to end its migrations of snf_apps at 127.0.0.1"),
        "{said}"
    );
    assert!(!node.calls().contains("migrate --noinput"));
    drop(holder.stdin.take());
    holder.wait().unwrap();
    // The holder gone, the rerun migrates.
    node.ok(&["finish"]);
    assert_eq!(node.state_json()["phase"], "done");
}
