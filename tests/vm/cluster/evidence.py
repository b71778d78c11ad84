#!/usr/bin/env python3
"""The `cluster` VM scenario's invariants, checked over its raw evidence.

    evidence.py DIR        (DIR = target/vm/cluster)

Reads DIR/heartbeats.csv (source,node,version,time: each gunicorn's and each
Ganeti instance's heartbeat a second), DIR/migrations.csv
(node,service,event,time: the fake snf-manage's start and end rows, written by
each node with its own clock), DIR/NODE/state.json and DIR/NODE/journal.json
of every node of the roll-out (ganeti1, ganeti2, db, astakos, cyclades,
pithos, worker), DIR/fleet-report/fleet-report.json, and Ganeti's own record
from both Ganeti nodes: DIR/NODE/ganeti/queue/ (the job files, also archived
ones) and DIR/NODE/ganeti/commands.log (master failovers).  Prints one `ok:`
line per invariant that holds, the figures an operator plans around (each
node's service downtime, the cluster's, the migrations' span, the instances'
largest heartbeat gap), and one `FAIL:` line per broken invariant; exits 1 on
any.
"""

import csv
import datetime as dt
import json
import re
import sys
from pathlib import Path

GANETI = ["ganeti2", "ganeti1"]  # in the roll-out's (inventory's) order
DB = "db"
# The service nodes: each but the worker migrates its own project; the worker waits.
SERVICE = ["astakos", "cyclades", "pithos", "worker"]
WAITING = "worker"
# The projects with migrations of their own, in migorder's order on the one
# snf_apps (Pithos' Django project has none: Astakos' migrate applies the
# contenttypes and sites it shares, and the pithos node finds nothing left).
ORDER = ["astakos", "cyclades"]
NODES = GANETI + [DB] + SERVICE
MAX_GAP = 5.0
DOMAIN = ".example.org"
# Primaries before the roll-out; inst3 is stopped (ADMIN_down) throughout:
# the evacuation fails it over rather than migrating it.
HOME = {"inst1": "ganeti1", "inst2": "ganeti2", "inst3": "ganeti2"}

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
        r["t"] = when(r["time"]).timestamp()
    state = {n: json.load(open(out / n / "state.json", encoding="utf-8")) for n in NODES}

    def steps(node, phase):
        return [s for s in state[node]["steps"] if s["phase"] == phase]

    def step(node, phase, sid):
        found = [s for s in steps(node, phase) if s["id"] == sid]
        return found[-1] if found else None

    def end(s):
        return s["started"] + s.get("duration_ms", 0) / 1000

    # Every node done; the figures.
    for n in NODES:
        if state[n]["phase"] != "done":
            bad(f"{n} is {state[n]['phase']}, not done")
    span = {n: (min(s["started"] for s in steps(n, "prepare")), max(end(s) for s in steps(n, "finish")))
            for n in NODES if steps(n, "prepare") and steps(n, "finish")}
    if len(span) == len(NODES):
        ok(f"all {len(NODES)} nodes done: " + ", ".join(f"{n} {utc(a)}-{utc(b)}" for n, (a, b) in span.items()))
    else:
        bad(f"prepare and finish steps are not recorded on every node: {sorted(span)}")
        return

    # The packages were fetched before each node's services stopped.
    no_download = [n for n in NODES if (step(n, "prepare", "download") or {}).get("status") != "done"]
    if no_download:
        bad(f"prepare --download did not run on {no_download}")
    else:
        ok("prepare --download ran on every node (the playbook's default)")

    # 1. The Ganeti nodes one at a time, all done before any node of the
    # service wave (the database node with the service nodes) is armed.
    wave = [DB] + SERVICE
    g1, g2 = span[GANETI[0]], span[GANETI[1]]
    if g1[1] <= g2[0]:
        ok(f"Ganeti nodes one at a time: {GANETI[0]} done ({utc(g1[1])}) before {GANETI[1]} was touched ({utc(g2[0])})")
    else:
        bad(f"Ganeti nodes overlap: {GANETI[0]} {g1}, {GANETI[1]} {g2}")
    first_service = min(span[n][0] for n in wave)
    if max(g1[1], g2[1]) <= first_service:
        ok(f"every Ganeti node done before any node of the service wave was armed ({utc(first_service)})")
    else:
        bad("a node of the service wave was armed before the Ganeti nodes were done")
    # Every node of the wave armed before any is dist-upgraded: the first
    # finish step anywhere (after that node's reboot) comes after the last arm.
    last_arm = max(step(n, "prepare", "arm")["started"] for n in wave)
    first_finish = min(steps(n, "finish")[0]["started"] for n in wave)
    if last_arm <= first_finish:
        ok(f"every node of the service wave armed ({utc(last_arm)}) before the first one finished its reboot ({utc(first_finish)})")
    else:
        bad("a node of the service wave rebooted into finish before every one was armed")

    # 2. The instances never stopped: no heartbeat gap over MAX_GAP, and each moved.
    largest = 0.0
    for inst in sorted({r["version"] for r in beats if r["source"] == "instance"}):
        rows = sorted((r for r in beats if r["source"] == "instance" and r["version"] == inst), key=lambda r: r["t"])
        gaps = [(b["t"] - a["t"], a, b) for a, b in zip(rows, rows[1:])]
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

    ganeti(out, step, steps, span, first_service)

    # 3. One migration per project, on its own node, one after the other in
    # migorder's order: never two at once on the one server.
    spans = {}
    for svc in ORDER:
        rows = sorted((r for r in migrations if r["service"] == svc), key=lambda r: r["t"])
        events = [(r["event"], r["node"]) for r in rows]
        if events == [("start", svc), ("end", svc)]:
            spans[svc] = (rows[0]["t"], rows[1]["t"])
            ok(f"{svc}: migrated exactly once, on the {svc} node")
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
        bad("no migration recorded")
        return
    first_start = min(a for a, _ in spans.values())
    last_end = max(b for _, b in spans.values())

    # The pithos node waited for both turns, then found nothing to migrate.
    pj = (out / "pithos" / "journal.json").read_text(encoding="utf-8", errors="replace")
    pm = step("pithos", "finish", "migrate")
    if "nothing left to migrate" in pj and pm and end(pm) >= spans.get("cyclades", (0, 0))[1]:
        ok("pithos: nothing left to migrate, found after cyclades' migration ended")
    else:
        bad(f"pithos: no 'nothing left to migrate' in its journal, or its migrate step ended before cyclades' migration ({pm})")

    # cyclades' first migration was stopped in the middle (systemctl stop)
    # and recorded so; its rerun migrated.
    journal = (out / "cyclades" / "journal.json").read_text(encoding="utf-8", errors="replace")
    if "interrupted by SIGTERM" in journal and (step("cyclades", "finish", "migrate") or {}).get("status") == "done":
        ok("cyclades: its migration was interrupted by SIGTERM (journal), the next start migrated (migrate done)")
    else:
        bad("cyclades: no interrupted migration in its journal, or its migrate step is not done")

    # The database node rebooted inside the outage: after every service
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
    last_old = max(old, key=lambda r: r["t"]) if old else None
    late = [r for r in old if r["t"] >= first_start]
    early = [r for r in new if r["t"] <= last_end]
    if old and not late:
        ok(f"no 0.18.1 heartbeat after the first migration began ({utc(first_start)}); the last: {last_old['node']} {last_old['time']}")
    else:
        bad(f"0.18.1 heartbeats after the first migration began: {len(late)} of {len(old)}")
    nodes_new = sorted({r["node"] for r in new})
    if nodes_new == sorted(SERVICE) and not early:
        first = min(new, key=lambda r: r["t"])
        ok(f"no 0.19 service anywhere before the last migration ended ({utc(last_end)}); the first: "
           f"{first['node']} {first['time']}; every service node beats 0.19")
    else:
        bad(f"0.19 heartbeats before the last migration ended: {len(early)}; nodes beating 0.19: {nodes_new}")

    # 5. The waiting node started its services only after the migrations ended.
    start = step(WAITING, "finish", "start-services")
    mine = sorted(r["t"] for r in new if r["node"] == WAITING)
    if start and start["started"] >= int(last_end) and mine and mine[0] > last_end:
        ok(f"{WAITING} started its services ({utc(start['started'])}, first 0.19 heartbeat {utc(mine[0])}) after the last migration ended ({utc(last_end)})")
    else:
        bad(f"{WAITING} started its services before the migrations ended (start-services {start}, first 0.19 heartbeat {mine[:1]}, last end {utc(last_end)})")

    # 6. The guard's refusal is in astakos' journal, naming the writer (its
    # address and application when a look saw its short connection, else the
    # table it wrote to), before any migration.
    journal = (out / ORDER[0] / "journal.json").read_text(encoding="utf-8", errors="replace")
    if "snf-dispatcher (0.18.1, left out of the roll-out)" in journal:
        ok(f"{ORDER[0]}'s journal has the database guard's refusal naming the writer left running (seen connected)")
    elif "not migrating: snf_apps.public.stray_writes" in journal:
        ok(f"{ORDER[0]}'s journal has the database guard's refusal naming the table the writer left running wrote to")
    else:
        bad(f"{ORDER[0]}'s journal does not name the writer the guard refused")

    # The figures: downtime per node (status/state), the cluster's (fleet report,
    # and from the heartbeats: last 0.18.1 to the first 0.19 gunicorn anywhere).
    report = json.load(open(out / "fleet-report" / "fleet-report.json", encoding="utf-8"))
    hosts = {r["host"]: r for r in report["nodes"]}
    if sorted(hosts) == sorted(NODES) and all(h["phase"] == "done" for h in hosts.values()) \
            and "database" in hosts.get(DB, {}).get("roles", []):
        ok(f"the fleet report lists the {len(NODES)} nodes, all done, {DB} as the database node")
    else:
        bad(f"the fleet report lists {sorted(hosts)}, {DB}'s roles {hosts.get(DB, {}).get('roles')}")
    # (The database node manages no Synnefo service: no downtime of its own.)
    for n in GANETI + SERVICE:
        d = state[n].get("downtime") or {}
        r = (hosts.get(n) or {}).get("downtime") or {}
        secs = None if d.get("restored_at") is None else d["restored_at"] - d["stopped_at"]
        print(f"figure: {n} service downtime {secs} s (stopped {utc(d['stopped_at']) if d.get('stopped_at') else '-'}, "
              f"restored {utc(d['restored_at']) if d.get('restored_at') else '-'}); fleet report: {r.get('seconds')} s")
        if secs is None or r.get("seconds") != secs:
            bad(f"{n}: downtime not recorded, or the fleet report disagrees ({secs} vs {r.get('seconds')})")
    cluster = report.get("cluster_service_downtime") or {}
    print(f"figure: cluster service downtime (fleet report) {cluster.get('seconds')} s, {cluster.get('stopped_at')} -> {cluster.get('restored_at')} "
          f"(includes the run-1 refusal and the stopped migration, both waited on by hand)")
    first_new = min(new, key=lambda r: r["t"], default=None)
    if last_old and first_new:
        print(f"figure: no gunicorn heartbeat anywhere from {last_old['node']} {last_old['time']} (last 0.18.1) "
              f"to {first_new['node']} {first_new['time']} (first 0.19): {first_new['t'] - last_old['t']:.1f} s")
    print(f"figure: migrations {utc(first_start)}-{utc(last_end)}: {last_end - first_start:.1f} s from the first "
          f"start to the last end, {sum(b - a for a, b in spans.values()):.1f} s of them migrating")
    print(f"figure: instances' largest heartbeat gap {largest:.2f} s")


def short(name):
    return (name or "").removesuffix(DOMAIN)


def jobs_of(out):
    """Every job in both Ganeti nodes' queues (union by id: the queue lives on
    the master and the master candidates of each moment), as dicts with the
    first opcode's input, its status, result, and the job's start and end."""
    jobs = {}
    for f in sorted(out.glob("ganeti*/ganeti/queue/**/job-*")):
        try:
            job = json.loads(f.read_text(encoding="utf-8"))
        except (ValueError, OSError):
            continue
        for i, op in enumerate(job.get("ops") or []):
            inp = op.get("input") or {}
            ts = [op.get("start_timestamp") or job.get("start_timestamp"), op.get("end_timestamp") or job.get("end_timestamp")]
            if not ts[0] or not ts[1]:
                continue
            jobs[(int(job["id"]), i)] = {
                "id": int(job["id"]), "op": inp.get("OP_ID"), "input": inp, "status": op.get("status"),
                "result": op.get("result"), "start": ts[0][0] + ts[0][1] / 1e6, "end": ts[1][0] + ts[1][1] / 1e6,
            }
    return sorted(jobs.values(), key=lambda j: j["start"])


def resyncs_of(journal, after, before):
    """(time, seconds, K/sec) of each DRBD 'Resync done (total N sec; ...)' in a
    node's journal.json between `after` and `before`, in order."""
    found = []
    pat = re.compile(r"Resync done \(total (\d+) sec;.* (\d+) K/sec\)")
    if not journal.exists():
        return found
    for line in journal.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        msg = entry.get("MESSAGE")
        m = pat.search(msg) if isinstance(msg, str) else None
        t = int(entry.get("__REALTIME_TIMESTAMP", "0")) / 1e6
        if m and after <= t <= before:
            found.append((t, int(m[1]), int(m[2])))
    return sorted(found)


def failovers_of(out):
    """(time, new master, old master) of every master failover, from the
    commands.log of the node it ran on (Ganeti logs it there)."""
    found = []
    pat = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d+): .* INFO Setting master to (\S+), old master: (\S+)")
    for f in sorted(out.glob("ganeti*/ganeti/commands.log")):
        for line in f.read_text(encoding="utf-8", errors="replace").splitlines():
            m = pat.match(line)
            if m:
                t = dt.datetime.strptime(m[1], "%Y-%m-%d %H:%M:%S").replace(tzinfo=dt.timezone.utc).timestamp() + int(m[2]) / 1000
                found.append((t, short(m[3]), short(m[4])))
    return sorted(found)


def ganeti(out, step, steps, span, first_service):
    """Issue 22: what Ganeti itself recorded of the roll-out."""
    t_from = min(span[n][0] for n in GANETI) - 600
    every_job = jobs_of(out)
    jobs = [j for j in every_job if j["start"] >= t_from]
    if not jobs:
        bad("no Ganeti job of the roll-out found in either node's queue (NODE/ganeti/queue)")
        return

    def fmt(j):
        return f"job {j['id']} {j['op']} {utc(j['start'])}-{utc(j['end'])} {j['status']}"

    for j in jobs:
        print(f"ganeti: {fmt(j)} {json.dumps({k: v for k, v in j['input'].items() if k in ('node_name', 'instance_name', 'drained', 'target_node', 'mode')})}")
    failed_jobs = [j for j in jobs if j["status"] != "success"]
    if failed_jobs:
        bad("Ganeti jobs that did not succeed: " + "; ".join(fmt(j) for j in failed_jobs))
    failovers = failovers_of(out)
    for t, new, old in failovers:
        print(f"ganeti: master failover at {utc(t)}: {old} -> {new}")

    # The primary of each instance over time: a migration moves it to the
    # other node of its DRBD pair when it ends.
    primary = {i: [(0.0, n)] for i, n in HOME.items()}
    for j in jobs:
        if j["op"] == "OP_INSTANCE_MIGRATE" and j["status"] == "success":
            inst = j["input"].get("instance_name")
            if inst in primary:
                other = [n for n in HOME.values() if n != primary[inst][-1][1]][0]
                primary[inst].append((j["end"], other))

    def primaries_on(node, a, b):
        """Instances whose primary was `node` at some time in [a, b]."""
        hits = []
        for inst, hist in primary.items():
            for k, (t, n) in enumerate(hist):
                t_next = hist[k + 1][0] if k + 1 < len(hist) else float("inf")
                if n == node and t < b and t_next > a:
                    hits.append(inst)
        return hits

    dirtied = []
    for f in sorted(out.glob("ganeti*/ganeti/drbd-dirty.log")):
        for line in f.read_text(encoding="utf-8").splitlines():
            fields = line.split()
            if len(fields) >= 2:
                dirtied.append((float(fields[0]), fields[1]))

    for k, node in enumerate(GANETI):
        def is_node(j):
            return short(j["input"].get("node_name")) == node
        drain = [j for j in jobs if j["op"] == "OP_NODE_SET_PARAMS" and is_node(j) and j["input"].get("drained") is True]
        undrain = [j for j in jobs if j["op"] == "OP_NODE_SET_PARAMS" and is_node(j) and j["input"].get("drained") is False]
        arm = (step(node, "prepare", "arm") or {}).get("started")
        # Its evacuation: the instance migrations (failovers for a stopped
        # one) that began after its drain began, before its arming.
        evac = [j for j in jobs if j["op"] == "OP_INSTANCE_MIGRATE" and drain and arm
                and drain[0]["start"] <= j["start"] <= arm]
        booted = steps(node, "finish")[0]["started"] if steps(node, "finish") else None
        if not (drain and evac and undrain and arm and booted):
            bad(f"{node}: drain {bool(drain)}, evacuation {bool(evac)}, undrain {bool(undrain)}, arm {arm}, first systemd boot {booted}: a step is missing")
            continue
        d, e, u = drain[0], evac[0], undrain[-1]
        if d["end"] <= e["start"] and evac[-1]["end"] <= arm and u["start"] >= booted:
            moved = ", ".join(j["input"].get("instance_name", "?") for j in evac)
            ok(f"{node}: drained ({utc(d['end'])}) before its evacuation ({moved}: {utc(e['start'])}-{utc(evac[-1]['end'])}), armed after it ({utc(arm)}), undrained ({utc(u['start'])}) after its reboot ({utc(booted)})")
        else:
            bad(f"{node}: out of order: {fmt(d)}, {fmt(e)}, armed {utc(arm)}, rebooted by {utc(booted)}, {fmt(u)}")
        on = primaries_on(node, arm, booted)
        if on:
            bad(f"{node}: primary of {on} between its arming ({utc(arm)}) and its first systemd boot ({utc(booted)})")
        else:
            ok(f"{node}: primary of no instance from its arming ({utc(arm)}) through its reboot ({utc(booted)}), by Ganeti's migrations")
        # Clean verify (disks and cluster) after its reboot, before the next
        # node was touched (or the service nodes armed).
        nxt = GANETI[k + 1] if k + 1 < len(GANETI) else None
        limit = min((j["start"] for j in jobs if j["op"] == "OP_NODE_SET_PARAMS" and nxt and short(j["input"].get("node_name")) == nxt and j["input"].get("drained") is True), default=first_service)
        if nxt:
            limit = min([limit] + [t for t, new, old in failovers if old == nxt and t > booted])
        window = [j for j in jobs if booted <= j["start"] and j["end"] <= limit]
        vdisks = [j for j in window if j["op"] == "OP_CLUSTER_VERIFY_DISKS"]
        vgroups = [j for j in window if j["op"] == "OP_CLUSTER_VERIFY_GROUP"]
        if vdisks and vgroups and vgroups[-1]["result"] is True and vdisks[-1]["status"] == "success":
            ok(f"{node}: gnt-cluster verify-disks and verify clean after its reboot ({fmt(vdisks[-1])}; {fmt(vgroups[-1])}: {vgroups[-1]['result']}) before the next node was touched ({utc(limit)})")
        else:
            bad(f"{node}: no clean verify-disks and verify between its reboot ({utc(booted)}) and the next node ({utc(limit)}): {[fmt(j) for j in vdisks + vgroups]}")
        # Its disks written to while it was away (drbd-dirty on the other
        # node): the gate's last verify, the one that let the roll-out go on,
        # began after the resync ended (Ganeti reports a disk that still
        # resyncs as a warning only).
        written = [(t, dev) for t, dev in dirtied if arm <= t <= booted]
        if written:
            # (A migration's reconnect resyncs nothing: "0 K/sec".)
            resyncs = [r[:2] for r in resyncs_of(out / node / "journal.json", booted, limit) if r[2] > 0]
            if not resyncs:
                bad(f"{node}: its disks were written to while it was away ({written}) but its journal has no resync of data between its boot and the next node")
            elif max(secs for _, secs in resyncs) < 30:
                # Seen under TCG: Ganeti's c-max-rate did not slow the
                # resync; the gate's wait is then not timed here.
                print(f"note: {node}: its disks, written to while it was away, resynced in {max(secs for _, secs in resyncs)} s: too short to time the gate against (the gate's last verify {[fmt(j) for j in vgroups[-1:]]})")
            elif vgroups and vgroups[-1]["start"] >= resyncs[-1][0] - 3:
                ok(f"{node}: its disks, written to while it was away ({', '.join(dev for _, dev in written)}), resynced until {utc(resyncs[-1][0])} (longest {max(secs for _, secs in resyncs)} s); the gate's last verify began after that ({fmt(vgroups[-1])})")
            else:
                bad(f"{node}: the gate let the roll-out go on ({[fmt(j) for j in vgroups[-1:]]}) before its DRBD resync ended ({utc(resyncs[-1][0])})")
        elif node == GANETI[0]:
            bad(f"{node}: drbd-dirty wrote nothing while it was away (NODE/ganeti/drbd-dirty.log: {dirtied})")

    # The check play's gnt-cluster verify, before any node was touched: the
    # unclean one (--check with ganeti2's DRBD helper wrong) stopped the
    # roll-out; the last before the first drain is clean.
    first_drain = min((j["start"] for j in every_job if j["op"] == "OP_NODE_SET_PARAMS" and j["input"].get("drained") is True), default=float("inf"))
    before = [j for j in every_job if j["op"] == "OP_CLUSTER_VERIFY_GROUP" and j["end"] <= first_drain]
    unclean = [j for j in before if j["result"] is False]
    if unclean and before[-1]["result"] is True and before[-1]["start"] >= unclean[-1]["end"]:
        ok(f"gnt-cluster verify before any node was touched: unclean ({fmt(unclean[-1])}: False) in the run it stopped, clean ({fmt(before[-1])}: True) before the first drain ({utc(first_drain)})")
    else:
        bad(f"no unclean then clean gnt-cluster verify before the first drain ({utc(first_drain) if first_drain < float('inf') else 'none'}): {[(fmt(j), j['result']) for j in before[-4:]]}")

    # The master: failed over to the other candidate before its own upgrade
    # (before its drain and arming), back after its reboot.
    master = GANETI[-1]
    other = GANETI[0]
    arm = (step(master, "prepare", "arm") or {}).get("started") or 0
    booted = steps(master, "finish")[0]["started"] if steps(master, "finish") else float("inf")
    drain = min((j["start"] for j in jobs if j["op"] == "OP_NODE_SET_PARAMS" and short(j["input"].get("node_name")) == master and j["input"].get("drained") is True), default=0)
    away = [t for t, new, old in failovers if old == master and new == other and t <= min(drain, arm)]
    back = [t for t, new, old in failovers if old == other and new == master and t >= booted]
    if away and back:
        ok(f"the master role went from {master} to {other} ({utc(away[-1])}) before {master}'s drain ({utc(drain)}) and arming ({utc(arm)}), and came back ({utc(back[0])}) after its reboot ({utc(booted)})")
    else:
        bad(f"master failover: away before {master}'s drain/arm {away}, back after its reboot {back} (failovers: {failovers})")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
    sys.exit(1 if failed else 0)
