//! The node's service downtime in the state file and `status --json`: prepare's
//! stop step records when the running services stop, finish's verify step when
//! they are all active again. The fleet report's sample status documents
//! (contrib/ansible/tests/unit/plugins/modules/) must have the shape of the real output.

mod common;

use common::Node;
use std::collections::BTreeSet;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn status(node: &Node) -> serde_json::Value {
    let out = node.ok(&["status", "--json"]);
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Unix seconds of an RFC 3339 UTC time `YYYY-MM-DDTHH:MM:SSZ` (days from civil).
fn unix(rfc: &str) -> u64 {
    assert_eq!(rfc.len(), 20, "{rfc}");
    assert!(rfc.ends_with('Z'), "{rfc}");
    let n = |a: usize, b: usize| rfc[a..b].parse::<i64>().unwrap();
    let (y, m, d) = (n(0, 4), n(5, 7), n(8, 10));
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    (days * 86_400 + n(11, 13) * 3_600 + n(14, 16) * 60 + n(17, 19)) as u64
}

#[test]
fn prepare_records_the_stop_and_finish_the_restore() {
    let node = Node::wheezy();
    let before = now();
    node.ok(&["prepare"]);
    let after_prepare = now();

    let state = node.state_json();
    let stopped = state["downtime"]["stopped_at"].as_u64().unwrap();
    assert!((before..=after_prepare).contains(&stopped), "{state}");
    assert!(state["downtime"]["restored_at"].is_null(), "{state}");
    let s = status(&node);
    assert_eq!(unix(s["downtime"]["stopped_at"].as_str().unwrap()), stopped);
    assert!(s["downtime"]["restored_at"].is_null(), "{s}");
    assert!(s["downtime"]["seconds"].is_null(), "{s}");

    // A rerun of prepare on the armed node keeps the first stop time.
    node.run(&["prepare"], &[]);
    assert_eq!(node.state_json()["downtime"]["stopped_at"], stopped);

    node.to_jessie();
    node.ok(&["finish"]);
    let after_finish = now();
    let state = node.state_json();
    assert_eq!(state["downtime"]["stopped_at"], stopped);
    let restored = state["downtime"]["restored_at"].as_u64().unwrap();
    assert!((stopped..=after_finish).contains(&restored), "{state}");
    let s = status(&node);
    assert_eq!(s["phase"], "done");
    assert_eq!(unix(s["downtime"]["stopped_at"].as_str().unwrap()), stopped);
    assert_eq!(
        unix(s["downtime"]["restored_at"].as_str().unwrap()),
        restored
    );
    assert_eq!(s["downtime"]["seconds"], restored - stopped);
    let text = String::from_utf8(node.ok(&["status"]).stdout).unwrap();
    assert!(text.contains("service downtime: "), "{text}");
}

#[test]
fn no_running_service_no_downtime() {
    let node = Node::wheezy();
    // gunicorn neither enabled nor running: nothing to stop.
    std::fs::remove_file(node.path("/etc/rc2.d/S02gunicorn")).unwrap();
    node.ok(&["prepare"]);
    assert!(node.state_json().get("downtime").is_none());
    assert!(status(&node)["downtime"].is_null());
}

/// Every key path of a JSON document (array items merged), e.g. `downtime.seconds`.
fn shape(v: &serde_json::Value, prefix: &str, out: &mut BTreeSet<String>) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                let p = format!("{prefix}{k}");
                out.insert(p.clone());
                shape(v, &format!("{p}."), out);
            }
        }
        serde_json::Value::Array(items) => {
            for item in items {
                shape(item, &format!("{prefix}[]."), out);
            }
        }
        _ => {}
    }
}

/// The fleet report's samples (contrib/ansible/tests/unit/plugins/modules/samples/*.json) keep
/// the real document's keys: an armed, a done and a failed node's `status --json`.
/// SYNNEFO_UPGRADE_WRITE_SAMPLES=DIR writes this run's documents there.
#[test]
fn fleet_report_samples_have_the_real_shape() {
    // Each checked before it is armed, as the roll-out's preflight does: the
    // documents carry a real last_check (the second one with a warning).
    let node = Node::wheezy();
    node.ok(&["check"]);
    node.ok(&["prepare"]);
    let armed = status(&node);
    node.to_jessie();
    node.ok(&["finish"]);
    let done = status(&node);
    // finish before the dist-upgrade: its preconditions step fails.
    let early = Node::with_synnefo(&["snf-pithos-app"]);
    early.ok(&["check"]);
    early.ok(&["prepare"]);
    assert_eq!(early.run(&["finish"], &[]).status.code(), Some(1));
    let failed = status(&early);
    assert_eq!(failed["failed_step"]["id"], "preconditions", "{failed}");
    if let Some(dir) = std::env::var_os("SYNNEFO_UPGRADE_WRITE_SAMPLES") {
        for (name, doc) in [("armed", &armed), ("done", &done), ("failed", &failed)] {
            let text = serde_json::to_string_pretty(doc).unwrap() + "\n";
            std::fs::write(Path::new(&dir).join(format!("status-{name}.json")), text).unwrap();
        }
    }
    let mut real = BTreeSet::new();
    shape(&armed, "", &mut real);
    shape(&done, "", &mut real);
    shape(&failed, "", &mut real);
    let samples = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("contrib/ansible/tests/unit/plugins/modules/samples");
    let mut seen = BTreeSet::new();
    for entry in std::fs::read_dir(&samples).unwrap() {
        let path = entry.unwrap().path();
        let doc: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let mut keys = BTreeSet::new();
        shape(&doc["status"], "", &mut keys);
        let unknown: Vec<_> = keys.difference(&real).collect();
        assert!(
            unknown.is_empty(),
            "{}: keys the binary does not write: {unknown:?}",
            path.display()
        );
        seen.extend(keys);
    }
    // Their forecast is check --json's (its keys).
    let check: serde_json::Value =
        serde_json::from_slice(&Node::wheezy().run(&["check", "--json"], &[]).stdout).unwrap();
    let keys = |v: &serde_json::Value| -> BTreeSet<String> {
        v.as_object().unwrap().keys().cloned().collect()
    };
    for entry in std::fs::read_dir(&samples).unwrap() {
        let path = entry.unwrap().path();
        let doc: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(
            keys(&doc["forecast"]),
            keys(&check["forecast"]),
            "{}: the forecast's keys",
            path.display()
        );
    }
    for key in [
        "downtime.stopped_at",
        "downtime.restored_at",
        "downtime.seconds",
        "steps.[].started",
        "failed_step.id",
    ] {
        assert!(seen.contains(key), "no sample has {key}");
    }
}

#[test]
fn abort_ends_the_downtime_too() {
    let node = Node::wheezy();
    node.ok(&["prepare"]);
    node.ok(&["abort"]);
    let s = status(&node);
    assert_eq!(s["phase"], "aborted", "{s}");
    let stopped = unix(s["downtime"]["stopped_at"].as_str().unwrap());
    let restored = unix(s["downtime"]["restored_at"].as_str().unwrap());
    assert_eq!(s["downtime"]["seconds"], restored - stopped);
}
