#!/usr/bin/env python3
"""Derives the sample cluster (samples/*.json) from real `status --json` output.

    SYNNEFO_UPGRADE_WRITE_SAMPLES=/tmp/s cargo test --test downtime
    python3 contrib/ansible/tests/unit/plugins/modules/make_samples.py /tmp/s

The binary's documents (armed, done, failed: fixture-root runs in
tests/downtime.rs) are kept as they are except for the times, which are laid
out as a roll-out of the guide's order would lay them out (Ganeti nodes one at a
time, then every service node armed, the migrating node, the waiting ones) and
for the hosts' dpkg leftovers.  tests/downtime.rs checks that the samples keep
the real documents' keys.
"""

import copy
import datetime
import json
import os
import re
import sys

T0 = 1796162400  # 2026-12-01T22:00:00Z


def rfc(t):
    return None if t is None else datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def lay_out(doc, prepare_at, finish_at, step_s=2, down=True):
    """Times: prepare's steps from prepare_at, finish's from finish_at, step_s apart."""
    doc = copy.deepcopy(doc)
    t = {"prepare": prepare_at, "finish": finish_at}
    stopped = restored = None
    for s in doc["steps"]:
        s["started"] = t[s["phase"]]
        if s["id"] == "stop-services":
            stopped = s["started"]
        if s["id"] == "migrate" and s["status"] == "done":
            s["duration_ms"] = 41000
        dur = -(-(s["duration_ms"] or 0) // 1000)
        t[s["phase"]] += max(step_s, dur + 1) if s["status"] != "skipped" else 0
        if s["id"] == "verify-services" and s["status"] == "done":
            restored = s["started"] + dur
    if doc.get("failed_step"):
        f = [s for s in doc["steps"] if s["id"] == doc["failed_step"]["id"] and s["phase"] == doc["failed_step"]["phase"]][0]
        doc["failed_step"] = copy.deepcopy(f)
    if doc.get("downtime") and down:
        doc["downtime"] = {
            "stopped_at": rfc(stopped),
            "restored_at": rfc(restored),
            "seconds": None if restored is None else restored - stopped,
        }
    elif not down:
        doc["downtime"] = None
    if doc.get("last_check"):
        # The preflight: every node checked in the roll-out's first minute.
        doc["last_check"]["checked_at"] = rfc(T0 + 30)
    return doc


def main(src, out):
    real = {}
    for n in ("armed", "done", "failed"):
        with open(os.path.join(src, "status-%s.json" % n), encoding="utf-8") as f:
            # The fixture trees' temporary paths, as one stable path.
            real[n] = json.loads(re.sub(r"/tmp/\.tmp\w+/", "/srv/node-tree/", f.read()))
    nodes = [
        ("ganeti2", ["ganeti_nodes"], None, lay_out(real["done"], T0 + 60, T0 + 300)),
        ("ganeti1", ["ganeti_master", "ganeti_nodes"], None, lay_out(real["done"], T0 + 420, T0 + 660)),
        ("svc1", ["service_nodes"], True, lay_out(real["done"], T0 + 800, T0 + 1100)),
        ("svc2", ["service_nodes"], False, lay_out(real["done"], T0 + 801, T0 + 1260)),
        ("svc3", ["service_nodes"], False, lay_out(real["failed"], T0 + 802, T0 + 1262)),
    ]
    nodes[3][3]["dpkg_leftovers"] = ["/etc/synnefo/20-snf-cyclades-app-api.conf.dpkg-dist"]
    # `check --json`'s forecast of each node (docs/json.md), as the preflight gave it.
    def forecast(packages, mib, dbs):
        return {
            "packages_to_unpack": packages,
            "unpack_installed_kib": mib * 1024,
            "unpack_size_unknown": 0,
            "databases": [{"name": n, "host": "10.0.0.21", "bytes": b} for n, b in dbs],
            "database_bytes": sum(b for _, b in dbs) if dbs else None,
            "notes": [] if dbs else ["no database dump: this node does not dump before migrating (it does not run them, or [backups] enabled = false)"],
        }
    forecasts = {
        "ganeti2": forecast(380, 600, []),
        "ganeti1": forecast(380, 600, []),
        "svc1": forecast(450, 720, [("snf_apps", 48 << 20), ("snf_pithos", 16 << 20)]),
        "svc2": forecast(450, 720, []),
        "svc3": forecast(450, 720, []),
    }
    os.makedirs(out, exist_ok=True)
    for i, (host, groups, migrates, status) in enumerate(nodes):
        doc = {"host": host, "groups": groups, "migrates": migrates, "status": status, "forecast": forecasts[host], "error": None}
        with open(os.path.join(out, "%d-%s.json" % (i + 1, host)), "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=1, sort_keys=True)
            f.write("\n")


if __name__ == "__main__":
    main(sys.argv[1], os.path.join(os.path.dirname(os.path.abspath(__file__)), "samples"))
