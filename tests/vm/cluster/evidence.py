#!/usr/bin/env python3
"""The `cluster` VM scenario's invariants, checked over its raw evidence.

    evidence.py DIR        (DIR = target/vm/cluster)

Reads DIR/heartbeats.csv (source,node,version,time), DIR/migrations.csv
(node,service,event,time), DIR/NODE/state.json for ganeti1, ganeti2, svc1 and
svc2, DIR/NODE/journal.json, DIR/fleet-report/fleet-report.json.  Prints one
`ok:` line per invariant that holds, the figures an operator plans around
(each node's service downtime, the cluster's, the instances' largest
heartbeat gap), and one `FAIL:` line per broken invariant; exits 1 on any.
"""

import csv
import datetime as dt
import json
import sys
from pathlib import Path

GANETI = ["ganeti2", "ganeti1"]  # in the roll-out's (inventory's) order
SERVICE = ["svc1", "svc2"]
MIGRATING, WAITING = "svc1", "svc2"
SERVICES = ["astakos", "cyclades", "pithos"]
MAX_GAP = 5.0

failed = []


def ok(msg):
    print(f"ok: {msg}")


def bad(msg):
    failed.append(msg)
    print(f"FAIL: {msg}")


def when(text):
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.timezone.utc)


def utc(epoch):
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).strftime("%H:%M:%S")


def main(out):
    beats = list(csv.DictReader(open(out / "heartbeats.csv", encoding="utf-8")))
    migrations = list(csv.DictReader(open(out / "migrations.csv", encoding="utf-8")))
    for r in beats + migrations:
        r["t"] = when(r["time"])
    state = {n: json.load(open(out / n / "state.json", encoding="utf-8")) for n in GANETI + SERVICE}

    def steps(node, phase):
        return [s for s in state[node]["steps"] if s["phase"] == phase]

    def step(node, phase, sid):
        found = [s for s in steps(node, phase) if s["id"] == sid]
        return found[-1] if found else None

    def end(s):
        return s["started"] + s.get("duration_ms", 0) / 1000

    # Every node done; the figures.
    for n in GANETI + SERVICE:
        if state[n]["phase"] != "done":
            bad(f"{n} is {state[n]['phase']}, not done")
    span = {n: (min(s["started"] for s in steps(n, "prepare")), max(end(s) for s in steps(n, "finish")))
            for n in GANETI + SERVICE if steps(n, "prepare") and steps(n, "finish")}
    if len(span) == 4:
        ok("all four nodes done: " + ", ".join(f"{n} {utc(a)}-{utc(b)}" for n, (a, b) in span.items()))
    else:
        bad(f"prepare and finish steps are not recorded on every node: {sorted(span)}")
        return

    # The packages were fetched before each node's services stopped.
    no_download = [n for n in GANETI + SERVICE if (step(n, "prepare", "download") or {}).get("status") != "done"]
    if no_download:
        bad(f"prepare --download did not run on {no_download}")
    else:
        ok("prepare --download ran on every node (the playbook's default)")

    # 1. The Ganeti nodes one at a time, all done before any service node is armed.
    g1, g2 = span[GANETI[0]], span[GANETI[1]]
    if g1[1] <= g2[0]:
        ok(f"Ganeti nodes one at a time: {GANETI[0]} done ({utc(g1[1])}) before {GANETI[1]} was touched ({utc(g2[0])})")
    else:
        bad(f"Ganeti nodes overlap: {GANETI[0]} {g1}, {GANETI[1]} {g2}")
    first_service = min(span[n][0] for n in SERVICE)
    if max(g1[1], g2[1]) <= first_service:
        ok(f"every Ganeti node done before any service node was armed ({utc(first_service)})")
    else:
        bad("a service node was armed before the Ganeti nodes were done")
    # Every service node armed before any is dist-upgraded: the first finish step
    # anywhere (after that node's reboot) comes after the last arm.
    last_arm = max(step(n, "prepare", "arm")["started"] for n in SERVICE)
    first_finish = min(steps(n, "finish")[0]["started"] for n in SERVICE)
    if last_arm <= first_finish:
        ok(f"every service node armed ({utc(last_arm)}) before the first one finished its reboot ({utc(first_finish)})")
    else:
        bad("a service node rebooted into finish before every service node was armed")

    # 2. The instances never stopped: no heartbeat gap over MAX_GAP, and each moved.
    largest = 0.0
    for inst in sorted({r["version"] for r in beats if r["source"] == "instance"}):
        rows = sorted((r for r in beats if r["source"] == "instance" and r["version"] == inst), key=lambda r: r["t"])
        gaps = [((b["t"] - a["t"]).total_seconds(), a, b) for a, b in zip(rows, rows[1:])]
        gap, a, b = max(gaps, key=lambda g: g[0])
        largest = max(largest, gap)
        # Where it ran: a live migration overlaps the two processes for a few
        # seconds (their rows interleave); a stay is 5 rows or more.
        runs = []
        for r in rows:
            if runs and runs[-1][0] == r["node"]:
                runs[-1][1] += 1
            else:
                runs.append([r["node"], 1])
        nodes = []
        for node, count in runs:
            if count >= 5 and (not nodes or nodes[-1] != node):
                nodes.append(node)
        line = f"instance {inst}: {len(rows)} heartbeats, on {' -> '.join(nodes)}, largest gap {gap:.2f} s ({a['node']} {a['time']} -> {b['node']} {b['time']})"
        if gap <= MAX_GAP and len(nodes) >= 3 and nodes[0] == nodes[-1]:
            ok(line)
        else:
            bad(line + f" (want gaps <= {MAX_GAP} s, moved away and back)")
    if not any(r["source"] == "instance" for r in beats):
        bad("no instance heartbeat at all")

    # 3. Exactly one migrate per service, on the migrating node.
    for svc in SERVICES:
        rows = [r for r in migrations if r["service"] == svc]
        events = sorted((r["event"], r["node"]) for r in rows)
        if events == [("end", MIGRATING), ("start", MIGRATING)]:
            ok(f"{svc}: migrated exactly once, on {MIGRATING}")
        else:
            bad(f"{svc}: migrations {events}, want one start and one end on {MIGRATING}")
    starts = [r["t"] for r in migrations if r["event"] == "start"]
    ends = [r["t"] for r in migrations if r["event"] == "end"]
    if not starts or not ends:
        bad("no migration recorded")
        return
    first_start, last_end = min(starts), max(ends)

    # 4. No 0.18.1 heartbeat after the first migrate start.
    old = [r for r in beats if r["source"] == "gunicorn" and r["version"] == "0.18.1"]
    last_old = max(old, key=lambda r: r["t"]) if old else None
    late = [r for r in old if r["t"] >= first_start]
    if old and not late:
        ok(f"no 0.18.1 heartbeat after the first migrate start ({first_start:%H:%M:%S.%f}); the last one: {last_old['node']} {last_old['time']}")
    else:
        bad(f"0.18.1 heartbeats after the first migrate start: {len(late)} (of {len(old)})")

    # 5. The waiting node started its services only after the migrations ended.
    start = step(WAITING, "finish", "start-services")
    new = sorted(r["t"] for r in beats if r["source"] == "gunicorn" and r["version"] == "0.19" and r["node"] == WAITING)
    if start and start["started"] >= int(last_end.timestamp()) and new and new[0] > last_end:
        ok(f"{WAITING} started its services ({utc(start['started'])}, first 0.19 heartbeat {new[0]:%H:%M:%S.%f}) after the last migration ended ({last_end:%H:%M:%S.%f})")
    else:
        bad(f"{WAITING} started its services before the migrations ended (start-services {start}, first 0.19 heartbeat {new[:1]}, last end {last_end})")

    # 6. The guard's refusal is in svc1's journal, naming the writer (its
    # address and application when a look saw its short connection, else the
    # table it wrote to), before any migration.
    journal = (out / MIGRATING / "journal.json").read_text(encoding="utf-8", errors="replace")
    if "snf-dispatcher (0.18.1, left out of the roll-out)" in journal:
        ok(f"{MIGRATING}'s journal has the database guard's refusal naming the writer left running (seen connected)")
    elif "not migrating: snf_apps.public.stray_writes" in journal:
        ok(f"{MIGRATING}'s journal has the database guard's refusal naming the table the writer left running wrote to")
    else:
        bad(f"{MIGRATING}'s journal does not name the writer the guard refused")

    # The figures: downtime per node (status/state), the cluster's (fleet report,
    # and from the heartbeats: last 0.18.1 to the first 0.19 gunicorn anywhere).
    report = json.load(open(out / "fleet-report" / "fleet-report.json", encoding="utf-8"))
    hosts = {r["host"]: r for r in report["nodes"]}
    if sorted(hosts) == sorted(GANETI + SERVICE) and all(h["phase"] == "done" for h in hosts.values()):
        ok("the fleet report lists the four nodes, all done")
    else:
        bad(f"the fleet report lists {sorted(hosts)}")
    for n in GANETI + SERVICE:
        d = state[n].get("downtime") or {}
        r = (hosts.get(n) or {}).get("downtime") or {}
        secs = None if d.get("restored_at") is None else d["restored_at"] - d["stopped_at"]
        print(f"figure: {n} service downtime {secs} s (stopped {utc(d['stopped_at']) if d.get('stopped_at') else '-'}, "
              f"restored {utc(d['restored_at']) if d.get('restored_at') else '-'}); fleet report: {r.get('seconds')} s")
        if secs is None or r.get("seconds") != secs:
            bad(f"{n}: downtime not recorded, or the fleet report disagrees ({secs} vs {r.get('seconds')})")
    cluster = report.get("cluster_service_downtime") or {}
    print(f"figure: cluster service downtime (fleet report) {cluster.get('seconds')} s, {cluster.get('stopped_at')} -> {cluster.get('restored_at')}")
    first_new = min((r for r in beats if r["source"] == "gunicorn" and r["version"] == "0.19"), key=lambda r: r["t"], default=None)
    if last_old and first_new:
        print(f"figure: no gunicorn heartbeat anywhere from {last_old['node']} {last_old['time']} (last 0.18.1) "
              f"to {first_new['node']} {first_new['time']} (first 0.19): {(first_new['t'] - last_old['t']).total_seconds():.1f} s")
    print(f"figure: instances' largest heartbeat gap {largest:.2f} s")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
    sys.exit(1 if failed else 0)
