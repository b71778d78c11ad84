#!/usr/bin/env python3
"""The `production` VM scenario's invariants, checked over its raw evidence.

    production.py DIR        (DIR = target/vm/production)

Reads DIR/migrations.csv (node,service,event,time: the fake snf-manage's start
and end rows, written by each node with its own clock), DIR/heartbeats.csv
(source,node,version,time: each gunicorn's heartbeat a second),
DIR/NODE/state.json and DIR/NODE/journal.json of db, astakos, cyclades,
pithos and worker, and DIR/fleet-report/fleet-report.json.  Prints one `ok:`
line per invariant that holds, the figures an operator plans around, and one
`FAIL:` line per broken invariant; exits 1 on any.
"""

import csv
import json
import sys
from pathlib import Path

from evidence import bad, failed, ok, utc, when

DB = "db"
# The service nodes: each but the worker migrates its own project; the worker waits.
SERVICE = ["astakos", "cyclades", "pithos", "worker"]
# The projects with migrations of their own, in migorder's order on the one
# snf_apps (Pithos' Django project has none: Astakos' migrate applies the
# contenttypes and sites it shares, and the pithos node finds nothing left).
ORDER = ["astakos", "cyclades"]
NODES = [DB] + SERVICE


def main(out):
    beats = list(csv.DictReader(open(out / "heartbeats.csv", encoding="utf-8")))
    migrations = list(csv.DictReader(open(out / "migrations.csv", encoding="utf-8")))
    for r in beats + migrations:
        r["t"] = when(r["time"]).timestamp()
    state = {n: json.load(open(out / n / "state.json", encoding="utf-8")) for n in NODES}

    def steps(node, phase):
        return [s for s in state[node]["steps"] if s["phase"] == phase]

    def step(node, phase, sid):
        found = [s for s in steps(node, phase) if s["id"] == sid]
        return found[-1] if found else None

    not_done = [n for n in NODES if state[n]["phase"] != "done"]
    if not_done:
        bad(f"not done: {not_done}")
    else:
        ok("all five nodes done: " + ", ".join(NODES))

    # 1. One migration per project, on its own node, one after the other in
    # migorder's order: never two at once on the one server.
    spans = {}
    for svc in ORDER:
        rows = sorted((r for r in migrations if r["service"] == svc), key=lambda r: r["t"])
        events = [(r["event"], r["node"]) for r in rows]
        if events == [("start", svc), ("end", svc)]:
            spans[svc] = (rows[0]["t"], rows[1]["t"])
        else:
            bad(f"{svc}: migrations {events}, want one start and one end on the {svc} node")
    others = sorted({r["node"] for r in migrations} - set(ORDER))
    if others:
        bad(f"migrations recorded on nodes that do not migrate: {others}")
    if len(spans) == len(ORDER):
        line = ", ".join(f"{s} {utc(a)}-{utc(b)} ({b - a:.1f} s)" for s, (a, b) in spans.items())
        pairs = list(zip(ORDER, ORDER[1:]))
        if all(spans[a][1] <= spans[b][0] for a, b in pairs):
            gaps = ", ".join(f"{a}->{b} {spans[b][0] - spans[a][1]:.1f} s" for a, b in pairs)
            ok(f"the migrations on the one database server never overlapped, in order: {line}; hand-overs {gaps}")
        else:
            bad(f"migrations overlapped or came out of order: {line}")
    if not spans:
        return
    first_start = min(a for a, _ in spans.values())
    last_end = max(b for _, b in spans.values())

    # The pithos node waited for both turns, then found nothing to migrate.
    pj = (out / "pithos" / "journal.json").read_text(encoding="utf-8", errors="replace")
    pm = step("pithos", "finish", "migrate")
    if "nothing left to migrate" in pj and pm and pm["started"] + pm.get("duration_ms", 0) / 1000 >= spans.get("cyclades", (0, 0))[1]:
        ok("pithos: nothing left to migrate, found after cyclades' migration ended")
    else:
        bad(f"pithos: no 'nothing left to migrate' in its journal, or its migrate step ended before cyclades' migration ({pm})")

    # 2. cyclades' first migration was stopped in the middle (systemctl stop)
    # and recorded so; its rerun migrated.
    journal = (out / "cyclades" / "journal.json").read_text(encoding="utf-8", errors="replace")
    if "interrupted by SIGTERM" in journal and (step("cyclades", "finish", "migrate") or {}).get("status") == "done":
        ok("cyclades: its migration was interrupted by SIGTERM (journal), the next start migrated (migrate done)")
    else:
        bad("cyclades: no interrupted migration in its journal, or its migrate step is not done")

    # 3. The database node rebooted inside the outage: after every service
    # node's services were stopped, before the first migration began.
    stopped = {n: (state[n].get("downtime") or {}).get("stopped_at") for n in SERVICE}
    db_boot = min((s["started"] for s in steps(DB, "finish")), default=None)
    if None in stopped.values() or db_boot is None:
        bad(f"no stop time on a service node ({stopped}) or no finish on {DB}")
    elif max(stopped.values()) <= db_boot <= first_start:
        ok(f"{DB} rebooted inside the outage: its first systemd boot's finish at {utc(db_boot)}, after the last "
           f"service stop ({utc(max(stopped.values()))}), before the first migration ({utc(first_start)})")
    else:
        bad(f"{DB}'s finish began at {utc(db_boot)}: not between the last service stop "
            f"({utc(max(stopped.values()))}) and the first migration ({utc(first_start)})")

    # 4. No 0.18.1 gunicorn after the first migration began; no 0.19 one
    # anywhere before the last migration on the server ended.
    old = [r for r in beats if r["source"] == "gunicorn" and r["version"] == "0.18.1"]
    new = [r for r in beats if r["source"] == "gunicorn" and r["version"] == "0.19"]
    late = [r for r in old if r["t"] >= first_start]
    early = [r for r in new if r["t"] <= last_end]
    if old and not late:
        ok(f"no 0.18.1 heartbeat after the first migration began; the last: {max(old, key=lambda r: r['t'])['node']} "
           f"{max(old, key=lambda r: r['t'])['time']}")
    else:
        bad(f"0.18.1 heartbeats after the first migration began: {len(late)} of {len(old)}")
    nodes_new = sorted({r["node"] for r in new})
    if nodes_new == sorted(SERVICE) and not early:
        first = min(new, key=lambda r: r["t"])
        ok(f"no 0.19 service anywhere before the last migration ended ({utc(last_end)}); the first: "
           f"{first['node']} {first['time']}; every service node beats 0.19")
    else:
        bad(f"0.19 heartbeats before the last migration ended: {len(early)}; nodes beating 0.19: {nodes_new}")

    # 5. The waiting worker started its services after the migrations.
    start = step("worker", "finish", "start-services")
    if start and start["started"] >= last_end:
        ok(f"worker started its services at {utc(start['started'])}, after the last migration ended ({utc(last_end)})")
    else:
        bad(f"worker's start-services {start} before the last migration ended ({utc(last_end)})")

    # The fleet report, and the figures.
    report = json.load(open(out / "fleet-report" / "fleet-report.json", encoding="utf-8"))
    hosts = {r["host"]: r for r in report["nodes"]}
    if sorted(hosts) == sorted(NODES) and "database" in hosts.get(DB, {}).get("roles", []):
        ok(f"the fleet report lists the five nodes, {DB} as the database node")
    else:
        bad(f"the fleet report lists {sorted(hosts)}, {DB}'s roles {hosts.get(DB, {}).get('roles')}")
    for n in SERVICE:
        d = state[n].get("downtime") or {}
        secs = None if d.get("restored_at") is None else d["restored_at"] - d["stopped_at"]
        print(f"figure: {n} service downtime {secs} s (stopped {utc(d['stopped_at']) if d.get('stopped_at') else '-'}, "
              f"restored {utc(d['restored_at']) if d.get('restored_at') else '-'})")
    cluster = report.get("cluster_service_downtime") or {}
    print(f"figure: cluster service downtime (fleet report) {cluster.get('seconds')} s "
          f"(includes the run-1 refusal and the stopped migration, both waited on by hand)")
    print(f"figure: migrations {utc(first_start)}-{utc(last_end)}: {last_end - first_start:.1f} s from the first "
          f"start to the last end, {sum(b - a for a, b in spans.values()):.1f} s of them migrating")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "target/vm/production"))
    sys.exit(1 if failed else 0)
