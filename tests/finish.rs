//! The finish phase on fixture nodes of each role: backups, fix_ip_history,
//! conversion, the Cyclades re-registration (with the pipe between
//! snf-service-export and snf-manage service-import), health checks, and the
//! report of conffiles dpkg left beside the kept ones. Fakes of Synnefo's
//! commands live inside the fixture tree and record how they were called.

mod common;

use common::Node;
use std::fs;

const A: &str = "0f5c2b3e-8a1d-4c6e-9b7a-1d2e3f4a5b6c";
const B: &str = "7d8e9f0a-1b2c-4d3e-8f4a-5b6c7d8e9f0a";

#[test]
fn fix_ip_history_dry_run_then_fix_on_a_cyclades_node() {
    let node = Node::with_synnefo(&["snf-cyclades-app"]);
    node.write(
        "/etc/synnefo-upgrade/upgrade.toml",
        "[fix_ip_history]\nchangelog = \"/root/owners.log\"\nfix = true\n",
        0o644,
    );
    node.write(
        "/root/owners.log",
        &format!("42|{A}|{B}|2016-03-01 12:30:00.000000\n"),
        0o600,
    );
    // Like the real tool: a dry run raises CommandError and exits 1.
    node.fake_command(
        "/usr/lib/synnefo/tools/fix_ip_history",
        "fix_ip_history ",
        "if [ \"$1\" = --fix ]; then echo 'Processing change'; exit 0; fi\n\
         echo 'Running in dry run mode.'\necho 'CommandError: Aborting due to dry run mode.' >&2\nexit 1\n",
    );
    node.ok(&["prepare"]);
    node.to_jessie();
    node.ok(&["finish"]);
    let log = node.calls();
    let root = node.root().display().to_string();
    assert!(
        log.contains(&format!(
            "fix_ip_history {root}/root/owners.log\nfix_ip_history --fix {root}/root/owners.log\n"
        )),
        "{log}"
    );
    let state = node.state_json();
    assert_eq!(
        common::step_record(&state, "finish", "fix-ip-history")["message"],
        "IP history fixed for 1 owner change(s)"
    );
}

#[test]
fn fix_ip_history_failing_dry_run_stops_finish_before_services_start() {
    let node = Node::with_synnefo(&["snf-cyclades-app"]);
    node.write(
        "/etc/synnefo-upgrade/upgrade.toml",
        "[fix_ip_history]\nchangelog = \"/root/owners.log\"\n",
        0o644,
    );
    node.write(
        "/root/owners.log",
        &format!("42|{A}|{B}|2016-03-01 12:30:00.000000\n"),
        0o600,
    );
    node.write(
        "/usr/lib/synnefo/tools/fix_ip_history",
        "#!/bin/sh\necho 'Traceback (most recent call last):' >&2\nexit 1\n",
        0o755,
    );
    node.ok(&["prepare"]);
    node.to_jessie();
    let out = node.run(&["finish"], &[]);
    assert_eq!(out.status.code(), Some(1));
    let state = node.state_json();
    assert_eq!(
        common::step_record(&state, "finish", "fix-ip-history")["status"],
        "failed"
    );
    assert!(
        common::step_record(&state, "finish", "fix-ip-history")["message"]
            .as_str()
            .unwrap()
            .contains("dry run of fix_ip_history failed")
    );
    assert!(node.path("/var/lib/synnefo-upgrade/armed").exists());
    assert_eq!(
        fs::read_link(node.path("/etc/systemd/system/gunicorn.service"))
            .unwrap()
            .to_str(),
        Some("/dev/null")
    );
}

#[test]
fn cyclades_reregistered_on_the_astakos_node_through_a_pipe() {
    let node = Node::with_synnefo(&["snf-astakos-app"]);
    node.fake_snf_manage(
        "case \"$1\" in\n\
         component-list) echo 'astakos,https://accounts.example.org/astakos,https://accounts.example.org/astakos/ui'; \
         echo 'cyclades,https://compute.example.org/cyclades,https://compute.example.org/cyclades/ui' ;;\n\
         service-import) cat > \"$root/var/log/service-import.stdin\" ;;\n\
         esac\n",
    );
    node.write(
        "/usr/bin/snf-service-export",
        "#!/bin/sh\necho \"{\\\"cyclades\\\": {\\\"component\\\": \\\"$1\\\", \\\"base\\\": \\\"$2\\\"}}\"\n",
        0o755,
    );
    node.ok(&["prepare"]);
    node.to_jessie();
    node.ok(&["finish"]);
    let log = node.calls();
    assert!(
        log.contains("component-modify cyclades --base-url https://compute.example.org/cyclades --ui-url https://compute.example.org/cyclades/ui --purge-services\nservice-import --json -\n"),
        "{log}"
    );
    assert_eq!(
        fs::read_to_string(node.path("/var/log/service-import.stdin")).unwrap(),
        "{\"cyclades\": {\"component\": \"cyclades\", \"base\": \"https://compute.example.org/cyclades\"}}\n"
    );

    assert!(log.contains("component-list"), "{log}");

    // Configured URLs win over the registered ones, which are then not asked
    // for (one Django start less).
    let node = astakos_finished_with_urls();
    let log = node.calls();
    assert!(log.contains("component-modify cyclades --base-url https://new.example.org/cyclades --ui-url https://new.example.org/cyclades/ui"));
    assert!(!log.contains("component-list"), "{log}");
}

/// An Astakos node with the Cyclades URLs configured
/// (`https://new.example.org/cyclades`, `.../ui`), upgraded and finished.
fn astakos_finished_with_urls() -> Node {
    let node = Node::with_synnefo(&["snf-astakos-app"]);
    node.write("/etc/synnefo-upgrade/upgrade.toml", "[cyclades]\nbase_url = \"https://new.example.org/cyclades\"\nui_url = \"https://new.example.org/cyclades/ui\"\n", 0o644);
    node.fake_snf_manage("cat >/dev/null\n");
    node.write(
        "/usr/bin/snf-service-export",
        "#!/bin/sh\necho '{}'\n",
        0o755,
    );
    node.ok(&["prepare"]);
    node.to_jessie();
    node.ok(&["finish"]);
    node
}

/// The re-registration writes to the database once for the cluster: on the
/// Astakos node that runs the migrations, after its services are back (off
/// the downtime); an Astakos node that waits for the migrations skips it.
#[test]
fn cyclades_reregistered_once_after_the_services_are_back_and_not_by_a_waiting_node() {
    let ids = |node: &Node| -> Vec<(String, String)> {
        node.state_json()["steps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["phase"] == "finish")
            .map(|s| {
                (
                    s["id"].as_str().unwrap().to_string(),
                    s["status"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let node = astakos_finished_with_urls();
    let steps = ids(&node);
    let at = |id: &str| steps.iter().position(|(s, _)| s == id).unwrap();
    assert_eq!(steps[at("register-cyclades")].1, "done", "{steps:?}");
    assert!(at("verify-services") < at("register-cyclades"), "{steps:?}");
    assert!(node.calls().contains("component-modify cyclades"));

    let node = Node::with_synnefo(&["snf-astakos-app"]);
    node.write(
        "/etc/synnefo-upgrade/upgrade.toml",
        "[migrations]\nrun = false\nwait_seconds = 30\n",
        0o644,
    );
    node.fake_snf_manage("echo im\necho ' [X] 0001_initial'\n");
    node.ok(&["prepare"]);
    node.to_jessie();
    node.ok(&["finish"]);
    let steps = ids(&node);
    assert!(
        steps.contains(&("register-cyclades".to_string(), "skipped".to_string())),
        "{steps:?}"
    );
    assert!(
        !node.calls().contains("component-modify"),
        "{}",
        node.calls()
    );
}

#[test]
fn health_checks_gate_done() {
    let node = Node::wheezy();
    node.write(
        "/etc/synnefo-upgrade/upgrade.toml",
        "[[health]]\nname = \"always\"\ncommand = [\"true\"]\n[[health]]\nname = \"api\"\ncommand = [\"/usr/local/bin/api-check\"]\n",
        0o644,
    );
    node.write(
        "/usr/local/bin/api-check",
        "#!/bin/sh\necho 'HTTP 502 from gunicorn'\nexit 1\n",
        0o755,
    );
    node.ok(&["prepare"]);
    node.to_jessie();
    let out = node.run(&["finish"], &[]);
    assert_eq!(out.status.code(), Some(1));
    let state = node.state_json();
    assert_eq!(state["phase"], "finishing");
    assert!(
        common::step_record(&state, "finish", "health-checks")["message"]
            .as_str()
            .unwrap()
            .contains("health checks failed: api (exit status: 1)")
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("HTTP 502 from gunicorn"));
    // Fixed: the rerun resumes at the health checks and completes.
    node.write("/usr/local/bin/api-check", "#!/bin/sh\nexit 0\n", 0o755);
    node.ok(&["finish"]);
    assert_eq!(node.state_json()["phase"], "done");
}

#[test]
fn backups_and_dpkg_leftovers() {
    let node = Node::wheezy();
    node.write("/etc/synnefo/10-snf-webproject-database.conf", "DATABASES = {'default': {'ENGINE': 'django.db.backends.sqlite3', 'NAME': '/srv/snf.sqlite'}}\n", 0o640);
    node.write("/srv/snf.sqlite", "SQLite format 3\0fake", 0o600);
    node.write(
        "/etc/gunicorn.d/synnefo",
        "CONFIG = {'mode': 'wsgi', 'args': ('synnefo.webproject.wsgi',)}\n",
        0o644,
    );
    node.ok(&["prepare"]);
    node.to_jessie();
    node.write(
        "/etc/synnefo/20-snf-cyclades-app-api.conf.dpkg-dist",
        "# new default\n",
        0o644,
    );
    // ucf's own: a file it manages (sshd_config), the admin's version kept.
    node.write("/etc/ssh/sshd_config.ucf-dist", "# new default\n", 0o644);
    node.ok(&["finish"]);
    let dump = node.path("/var/backups/synnefo-upgrade/database.sqlite");
    assert_eq!(fs::read(&dump).unwrap(), b"SQLite format 3\0fake");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        fs::metadata(&dump).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let tarball = node.path("/var/backups/synnefo-upgrade/config.tar.gz");
    assert_eq!(
        fs::metadata(&tarball).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let listing = std::process::Command::new("tar")
        .arg("-tzf")
        .arg(&tarball)
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout);
    assert!(
        listing.contains("etc/synnefo/10-snf-webproject-database.conf"),
        "{listing}"
    );
    assert!(listing.contains("etc/gunicorn.d/synnefo"), "{listing}");
    let state = node.state_json();
    assert_eq!(
        common::step_record(&state, "finish", "report-dpkg-dist")["message"],
        "to review: /etc/ssh/sshd_config.ucf-dist, /etc/synnefo/20-snf-cyclades-app-api.conf.dpkg-dist"
    );
}

#[test]
fn conversion_runs_in_finish_and_a_bad_setting_stops_it_with_file_and_line() {
    let node = Node::wheezy();
    node.write("/etc/gunicorn.d/synnefo", "CONFIG = {\n 'mode': 'django',\n 'working_dir': '/etc/synnefo',\n 'args': (\n   '--bind=127.0.0.1:8080',\n ),\n}\n", 0o644);
    node.ok(&["prepare"]);
    node.to_jessie();
    // Changed after arming (check would have refused to arm with it).
    node.write(
        "/etc/synnefo/20-snf-cyclades-app-api.conf",
        "VMAPI_CACHE_BACKEND = BASE + '/cache'\n",
        0o640,
    );
    let out = node.run(&["finish"], &[]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "bad input is exit 2: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("/etc/synnefo/20-snf-cyclades-app-api.conf:1"));
    assert_eq!(fs::read_to_string(node.path("/etc/gunicorn.d/synnefo")).unwrap(), "CONFIG = {\n 'mode': 'django',\n 'working_dir': '/etc/synnefo',\n 'args': (\n   '--bind=127.0.0.1:8080',\n ),\n}\n");
    // Fixed by the operator: the rerun converts.
    node.write(
        "/etc/synnefo/20-snf-cyclades-app-api.conf",
        "VMAPI_CACHE_BACKEND = 'memcached://127.0.0.1:11211/'\n",
        0o640,
    );
    node.ok(&["finish"]);
    let gunicorn = fs::read_to_string(node.path("/etc/gunicorn.d/synnefo")).unwrap();
    assert!(
        gunicorn.contains("'mode': 'wsgi'") && gunicorn.contains("'synnefo.webproject.wsgi'"),
        "{gunicorn}"
    );
    let api = fs::read_to_string(node.path("/etc/synnefo/20-snf-cyclades-app-api.conf")).unwrap();
    assert!(
        api.contains("VMAPI_CACHE = {") && api.contains("MemcachedCache"),
        "{api}"
    );
}

#[test]
fn an_unfinished_dist_upgrade_stops_finish_before_backups_and_migrations() {
    let node = Node::wheezy();
    node.ok(&["prepare"]);
    node.to_jessie();
    // Power lost while dpkg configured snf-webproject; a trigger still pending.
    node.set_dpkg("snf-webproject", "install ok half-configured", None);
    node.set_dpkg("gunicorn", "install ok triggers-pending", None);
    let out = node.run(&["finish"], &[]);
    assert_eq!(out.status.code(), Some(1));
    let state = node.state_json();
    assert_eq!(state["phase"], "finishing");
    let preconditions = common::step_record(&state, "finish", "preconditions");
    assert_eq!(preconditions["status"], "failed");
    let message = preconditions["message"].as_str().unwrap();
    assert!(
        message.contains(
            "2 package(s): gunicorn (triggers-pending), snf-webproject (half-configured)"
        ),
        "{message}"
    );
    assert!(
        message.contains("run 'dpkg --configure -a && apt-get dist-upgrade', then 'systemctl restart synnefo-upgrade-finish'"),
        "{message}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("dpkg --configure -a"));
    assert!(!node.calls().contains("migrate"), "{}", node.calls());
    assert!(!node.path("/var/backups/synnefo-upgrade").exists());
    assert!(node.masked("gunicorn.service"));
    assert!(node.path("/var/lib/synnefo-upgrade/armed").exists());

    // A package needing reinstallation is not finished either.
    node.set_dpkg("snf-webproject", "install reinstreq installed", None);
    node.set_dpkg("gunicorn", "install ok installed", None);
    let out = node.run(&["finish"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        common::step_record(&node.state_json(), "finish", "preconditions")["message"]
            .as_str()
            .unwrap()
            .contains("snf-webproject (reinstreq)")
    );
    assert!(!node.calls().contains("migrate"));

    // 'dpkg --configure -a' done: finish resumes and completes.
    node.set_dpkg("snf-webproject", "install ok installed", None);
    node.ok(&["finish"]);
    let state = node.state_json();
    assert_eq!(state["phase"], "done");
    assert_eq!(
        common::step_record(&state, "finish", "preconditions")["status"],
        "done"
    );
    assert!(
        node.calls().contains("migrate --noinput"),
        "{}",
        node.calls()
    );
    assert!(!node.masked("gunicorn.service"));
}

#[test]
fn gevent_and_greenlet_are_compared_in_dpkg_order_and_shown_by_status() {
    let mut node = Node::with_synnefo(&["snf-cyclades-app"]);
    node.package("python-gevent", "0.13.6-1+nmu3", None);
    node.package("python-greenlet", "0.3.1-2.5", None);
    node.ok(&["prepare"]);
    node.to_jessie();
    // jessie's own gevent: too old, whatever the pin says.
    node.set_dpkg("python-gevent", "install ok installed", Some("1.0.1-2"));
    node.set_dpkg(
        "python-greenlet",
        "install ok installed",
        Some("0.4.9-1~0bpo80~grnet1"),
    );
    let out = node.run(&["finish"], &[]);
    assert_eq!(out.status.code(), Some(1));
    let state = node.state_json();
    let record = common::step_record(&state, "finish", "preconditions");
    let message = record["message"].as_str().unwrap();
    assert!(
        message.contains("python-gevent is 1.0.1-2, older than the 1.1.1 Synnefo 0.19 needs"),
        "{message}"
    );
    assert!(
        message.contains("'apt-get install -t jessie-backports python-gevent'"),
        "{message}"
    );
    assert!(!node.calls().contains("migrate"));
    let status: serde_json::Value =
        serde_json::from_slice(&node.ok(&["status", "--json"]).stdout).unwrap();
    assert_eq!(
        status["gevent"],
        serde_json::json!([
            {"package": "python-gevent", "version": "1.0.1-2", "required": "1.1.1", "satisfied": false},
            {"package": "python-greenlet", "version": "0.4.9-1~0bpo80~grnet1", "required": "0.4.9", "satisfied": true}
        ])
    );
    // GRNET's jessie build of gevent: 1.1.1-1~0bpo80~grnet1 >= 1.1.1 for dpkg.
    node.set_dpkg(
        "python-gevent",
        "install ok installed",
        Some("1.1.1-1~0bpo80~grnet1"),
    );
    node.ok(&["finish"]);
    assert_eq!(node.state_json()["phase"], "done");
    let text = String::from_utf8_lossy(&node.ok(&["status"]).stdout).into_owned();
    assert!(
        text.contains("gevent/greenlet: python-gevent 1.1.1-1~0bpo80~grnet1 (meets >= 1.1.1), python-greenlet 0.4.9-1~0bpo80~grnet1 (meets >= 0.4.9)"),
        "{text}"
    );
    // The pin written at prepare still prefers the guide's backports builds.
    let pin =
        fs::read_to_string(node.path("/etc/apt/preferences.d/synnefo-upgrade-gevent")).unwrap();
    assert!(pin.contains("Package: python-gevent\nPin: version 1.1.1-2*\nPin-Priority: 990\n"));
    assert!(pin.contains("Package: python-greenlet\nPin: version 0.4.10-1*\nPin-Priority: 990\n"));
}

/// The 0.19 packages bring native units; their maintainer scripts ran
/// `deb-systemd-helper enable` while our masks stood (no link for gunicorn,
/// which started at boot before) or made a link for a service that did not
/// (archipelago). After finish, boot starts what started before, only that.
#[test]
fn boot_state_is_restored_both_ways_for_native_units() {
    let node = Node::wheezy();
    node.ok(&["prepare"]);
    node.to_jessie();
    let unit = "[Unit]\nDescription=x\n\n[Service]\nExecStart=/bin/true\n\n[Install]\nWantedBy=multi-user.target\n";
    node.write("/lib/systemd/system/gunicorn.service", unit, 0o644);
    node.write("/lib/systemd/system/archipelago.service", unit, 0o644);
    node.link(
        "/lib/systemd/system/archipelago.service",
        "/etc/systemd/system/multi-user.target.wants/archipelago.service",
    );
    node.write(
        "/var/lib/systemd/deb-systemd-helper-enabled/archipelago.service.dsh-also",
        "/etc/systemd/system/multi-user.target.wants/archipelago.service\n",
        0o644,
    );
    node.ok(&["finish"]);
    let wants = "/etc/systemd/system/multi-user.target.wants";
    assert_eq!(
        fs::read_link(node.path(&format!("{wants}/gunicorn.service"))).unwrap(),
        std::path::Path::new("/lib/systemd/system/gunicorn.service"),
        "gunicorn started at boot before: enabled as systemctl enable does"
    );
    assert!(
        fs::symlink_metadata(node.path(&format!("{wants}/archipelago.service"))).is_err(),
        "archipelago did not start at boot before: its package's link is gone"
    );
    assert!(!node.masked("gunicorn") && !node.masked("archipelago"));
    let state = node.state_json();
    let message = common::step_record(&state, "finish", "restore-boot-state")["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        message,
        "enabled: gunicorn.service; by rc links: none; kept disabled: archipelago"
    );
    // The rc start link of the init script is back too (restore-boot-start).
    assert!(fs::symlink_metadata(node.path("/etc/rc2.d/S02gunicorn")).is_ok());
}

/// Apache ran before prepare: finish moves conf.d to Apache 2.4's places, then
/// gates `done` on `apache2ctl configtest` and a restart.
#[test]
fn apache_configtest_gates_done_where_apache_ran_before() {
    let mut node = Node::wheezy();
    node.package("apache2", "2.2.22-13+deb7u13", None);
    node.write("/etc/init.d/apache2", "#!/bin/sh\nexit 0\n", 0o755);
    node.link("../init.d/apache2", "/etc/rc2.d/S02apache2");
    node.write(
        "/etc/apache2/conf.d/synnefo-proxy",
        "RequestHeader set X-Forwarded-Protocol \"https\"\n<Location />\n  Order allow,deny\n</Location>\n",
        0o644,
    );
    node.fake_command(
        "/usr/sbin/apache2ctl",
        "apache2ctl ",
        "echo \"AH00526: Syntax error on line 3 of /etc/apache2/conf-enabled/synnefo-proxy.conf:\" >&2\necho \"Invalid command 'Order', perhaps misspelled\" >&2\nexit 1\n",
    );
    node.ok(&["prepare"]);
    assert_eq!(node.state_json()["apache2_was_active"], true);
    assert!(
        !node.masked("apache2"),
        "apache2 is recorded, not managed: prepare neither stops nor masks it"
    );
    node.to_jessie();
    let out = node.run(&["finish"], &[]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let state = node.state_json();
    assert_eq!(state["phase"], "finishing");
    let message = common::step_record(&state, "finish", "restart-apache")["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        message.contains("'apache2ctl configtest' failed")
            && message.contains("Invalid command 'Order', perhaps misspelled")
            && message.contains("a2enmod access_compat"),
        "{message}"
    );
    assert_eq!(apache2ctl_calls(&node), ["configtest"]);
    // The conversion ran before: conf.d moved, enabled, header rewritten.
    assert_eq!(
        fs::read_to_string(node.path("/etc/apache2/conf-enabled/synnefo-proxy.conf")).unwrap(),
        "RequestHeader set X-Forwarded-Proto \"https\"\n<Location />\n  Order allow,deny\n</Location>\n"
    );
    assert!(!node.path("/etc/apache2/conf.d/synnefo-proxy").exists());

    // Fixed by the operator: the rerun resumes at the gate and completes.
    node.fake_command("/usr/sbin/apache2ctl", "apache2ctl ", "echo 'Syntax OK'\n");
    node.ok(&["finish"]);
    let state = node.state_json();
    assert_eq!(state["phase"], "done");
    assert_eq!(
        common::step_record(&state, "finish", "restart-apache")["status"],
        "done"
    );
    assert_eq!(apache2ctl_calls(&node), ["configtest", "configtest"]);
}

/// Apache installed but not running before: finish leaves it alone.
#[test]
fn apache_that_did_not_run_before_is_left_alone() {
    let mut node = Node::wheezy();
    node.package("apache2", "2.2.22-13+deb7u13", None);
    node.write("/etc/init.d/apache2", "#!/bin/sh\nexit 0\n", 0o755);
    node.fake_command("/usr/sbin/apache2ctl", "apache2ctl ", "exit 1\n");
    node.ok(&["prepare"]);
    assert_eq!(node.state_json()["apache2_was_active"], false);
    node.to_jessie();
    node.ok(&["finish"]);
    let state = node.state_json();
    assert_eq!(
        common::step_record(&state, "finish", "restart-apache")["status"],
        "skipped"
    );
    assert!(apache2ctl_calls(&node).is_empty());
}

fn apache2ctl_calls(node: &Node) -> Vec<String> {
    node.calls()
        .lines()
        .filter_map(|l| l.strip_prefix("apache2ctl "))
        .map(String::from)
        .collect()
}

#[test]
fn notices_are_reported_by_finish_after_the_dist_upgrade() {
    let mut node = Node::with_synnefo(&["snf-cyclades-app"]);
    node.package("postgresql-9.1", "9.1.24lts2-0+deb7u1", None);
    node.ok(&["prepare"]);
    node.package("postgresql-9.4", "9.4.26-0+deb8u1", None);
    // Only the dist-upgrade brings the second cluster; pg_lsclusters lists
    // them (no /etc/postgresql in this tree: its answer is the one read).
    node.fake_command(
        "/usr/bin/pg_lsclusters",
        "pg_lsclusters ",
        "echo 'Ver Cluster Port Status Owner    Data directory               Log file'\n\
         echo '9.1 main    5432 online postgres /var/lib/postgresql/9.1/main /var/log/postgresql/postgresql-9.1-main.log'\n\
         echo '9.4 main    5433 online postgres /var/lib/postgresql/9.4/main /var/log/postgresql/postgresql-9.4-main.log'\n",
    );
    node.to_jessie();
    let out = node.ok(&["finish"]);
    assert_eq!(node.state_json()["phase"], "done");
    let record = node.step("finish", "report-notices");
    assert_eq!(record["status"], "done", "{record}");
    let message = record["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(
            "postgresql-clusters: PostgreSQL clusters of two versions: 9.1/main, 9.4/main"
        ) && message.contains("pg_dropcluster --stop 9.4 main; pg_upgradecluster 9.1 main"),
        "{message}"
    );
    // The journal's record (stderr carries the same under --root): one per notice.
    let stderr = String::from_utf8_lossy(&out.stderr);
    let notices: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("finish: report-notices: notice "))
        .collect();
    assert_eq!(notices.len(), 1, "{stderr}");
    assert!(
        notices[0].contains("notice postgresql-clusters: ")
            && notices[0].contains("pg_upgradecluster 9.1 main"),
        "{stderr}"
    );
    // status says the same, evaluated now.
    let status: serde_json::Value =
        serde_json::from_slice(&node.ok(&["status", "--json"]).stdout).unwrap();
    assert_eq!(status["phase"], "done");
    let pg = status["notices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == "postgresql-clusters")
        .unwrap_or_else(|| panic!("{status:#}"));
    assert_eq!(
        pg["remediation"]["commands"],
        serde_json::json!([
            "pg_dropcluster --stop 9.4 main",
            "pg_upgradecluster 9.1 main"
        ])
    );
    assert!(
        node.calls().contains("pg_lsclusters \n"),
        "{}",
        node.calls()
    );
}

#[test]
fn finish_without_notices_says_none() {
    let node = Node::wheezy();
    node.ok(&["prepare"]);
    node.to_jessie();
    let out = node.ok(&["finish"]);
    assert_eq!(node.step("finish", "report-notices")["message"], "none");
    assert!(!String::from_utf8_lossy(&out.stderr).contains("notice "));
}

#[test]
fn the_postgresql_notice_told_ahead_is_not_repeated_after_the_upgrade() {
    let mut node = Node::wheezy();
    node.package("postgresql-9.1", "9.1.24lts2-0+deb7u1", None);
    node.write(
        "/etc/postgresql/9.1/main/postgresql.conf",
        "port = 5432\n",
        0o644,
    );
    let check: serde_json::Value =
        serde_json::from_slice(&node.run(&["check", "--json"], &[]).stdout).unwrap();
    assert!(
        check["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["id"] == "postgresql-clusters"),
        "{check:#}"
    );
    node.ok(&["prepare"]);
    node.to_jessie();
    node.ok(&["finish"]);
    // "the dist-upgrade brings PostgreSQL 9.4" would be false now.
    assert_eq!(node.step("finish", "report-notices")["message"], "none");
    let status: serde_json::Value =
        serde_json::from_slice(&node.ok(&["status", "--json"]).stdout).unwrap();
    assert_eq!(status["notices"], serde_json::json!([]), "{status:#}");
}

#[test]
fn a_ganeti_node_finishes_without_migrations_or_dumps_whatever_migrations_run_says() {
    // A Ganeti node has snf-cyclades-gtools, not the Django project: no
    // snf-manage, nothing to migrate or dump. `[migrations] run = true` is the
    // default, and what a fleet tool writes when it does not tell nodes apart.
    let mut node = Node::wheezy();
    node.remove_package("snf-webproject");
    node.package("snf-cyclades-gtools", "0.18.1-1~wheezy", Some("synnefo"));
    fs::remove_file(node.path("/usr/bin/snf-manage")).unwrap();
    node.write(
        "/etc/synnefo-upgrade/upgrade.d/40-fleet.toml",
        "[migrations]\nrun = true\n",
        0o644,
    );
    node.ok(&["prepare"]);
    node.to_jessie();
    node.ok(&["finish"]);
    let state = node.state_json();
    assert_eq!(state["phase"], "done");
    for id in ["backups", "migrate"] {
        assert_eq!(
            common::step_record(&state, "finish", id)["status"],
            "skipped",
            "{id}"
        );
    }
    assert!(!node.path("/var/backups/synnefo-upgrade").exists());
}
