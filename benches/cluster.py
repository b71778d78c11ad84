#!/usr/bin/env python3
"""Benchmark figures of a `cluster` VM run, read from its evidence (no VM here):

    python3 benches/cluster.py [DIR]      (DIR: default target/vm/cluster)

Reads DIR/NODE/state.json and DIR/NODE/journal.json of the service nodes
(astakos and cyclades migrate, one after the other on the one database;
pithos finds nothing left; the worker waits), DIR/clock.csv and
DIR/fleet-report/fleet-report.json, as tests/vm/cluster/evidence.py does, and
prints:

  cluster downtime / the migrating nodes' longest own downtime   (issue 20:
      the cluster's service outage is about one node's; goal: cluster <= own
      + 30 s)
  finish overhead / the migrate step, per service node   (the finish steps
      other than backups, migrate, restart-apache and health-checks, summed
      from the step records; goal: overhead <= 2 s), and the part of it
      inside the node's downtime (the steps up to verify-services)
  the waiting node's notice of the end of the migrations  (its migrate
      step's end after the last migrating node's, from their journals, put on
      one clock with DIR/clock.csv, each node's offset from the clock
      measured over one psql session against the evidence server's (db's);
      +- half that session's round trip;
      goal: <= 2 s)
  the forecast beside the measured downtime (the fleet report's)

and, to tell finish's own time from what it waits for, per service node:

  after its migrations: from the end of the migrate step to the end of
      verify-services (the node's share of the outage once the cluster's
      migrations are over), by step; start-services split into systemd's
      own lines (the first "Starting"/"Started" of a started unit after the
      call, the last "Started"): before them (the calls, systemd's queue),
      between them (the units' own start: the init script, the fork), after
      them (the jobs' end reaching finish, the step's record)
  the settle: [services] settle_seconds, and the floor it sets: the watch
      covers what the steps after verify-services leave of it (the period
      counts from the units' start), so finish's overhead is about the steps
      up to verify-services plus the larger of the settle and the later steps
  what else ran on the node meanwhile: the Ansible modules the journal shows
      between the migrate step's end and finish's end (in the scenario, run 2
      resumes while the finishes end: they share the guest's one vCPU)

Exit 0 always when the evidence is readable (it reports, the scenario's
evidence.py decides), 2 when it is not.  tests/vm/scenarios/cluster prints
the same after its evidence check.
"""

import csv
import json
import re
import sys
from pathlib import Path

MIGRATING = ["astakos", "cyclades"]
WAITING = "worker"
SERVICE = MIGRATING + ["pithos", WAITING]
# Steps whose time is the work itself, not finish's overhead.
NOT_OVERHEAD = {"backups", "migrate", "restart-apache", "health-checks"}


def finish_steps(state):
    """The last record of each finish step, in order."""
    last = {}
    for s in state.get("steps", []):
        if s["phase"] == "finish":
            last[s["id"]] = s
    return list(last.values())


def downtime(state):
    d = state.get("downtime") or {}
    if d.get("restored_at") is None or d.get("stopped_at") is None:
        return None
    return d["restored_at"] - d["stopped_at"]


def journal_entries(journal):
    """(seconds, identifier, message) of every journal entry, in order."""
    entries = []
    with open(journal, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            entry = json.loads(line)
            message = entry.get("MESSAGE")
            if isinstance(message, list):
                message = bytes(message).decode("utf-8", "replace")
            if not isinstance(message, str):
                continue
            entries.append((int(entry["__REALTIME_TIMESTAMP"]) / 1e6, entry.get("SYSLOG_IDENTIFIER") or "", message))
    return entries


def last_line(entries, prefix):
    """The time of the last journal entry of synnefo-upgrade starting with prefix."""
    found = None
    for t, ident, message in entries:
        if ident == "synnefo-upgrade" and message.startswith(prefix):
            found = t
    return found


def after_migrations(steps, ids, ms, entries):
    """Lines on the node's path from its migrate step's end to verify-services'
    end, and on what ran beside it; [] where the evidence lacks it. ids and
    ms: the steps that ran, in order, and their durations."""
    if "migrate" not in ids or "verify-services" not in ids:
        return []
    path = ids[ids.index("migrate") + 1 : ids.index("verify-services") + 1]
    total = sum(ms[k] for k in path) / 1000
    lines = ["after its migrations: %.1f s to verify-services (%s)" % (total, ", ".join("%s %.2f" % (k, ms[k] / 1000) for k in path))]
    called = last_line(entries, "finish: start-services: start ")
    ended = last_line(entries, "finish: start-services: done")
    started = next((s.get("message") or "" for s in steps if s["id"] == "start-services"), "")
    units = [u.strip() + ".service" for u in started.partition("started: ")[2].split(",") if u.strip() and u.strip() != "none"]
    if called is not None and ended is not None and units:
        marks = [
            (t, m)
            for t, ident, m in entries
            if ident == "systemd" and called <= t <= ended and any(m.startswith(w + " " + u) for u in units for w in ("Starting", "Started"))
        ]
        last = max((t for t, m in marks if m.startswith("Started")), default=None)
        if last is not None:
            first = marks[0][0]
            lines.append(
                "  start-services %.2f s: %.2f before systemd's first line (the calls, systemd's queue), %.2f systemd starting the units (%s), %.2f after the last 'Started' (the jobs' end reaching finish, the record)"
                % (ended - called, first - called, last - first, ", ".join(units), ended - last)
            )
    done = last_line(entries, "finish: the upgrade of this node is done")
    migrated = last_line(entries, "finish: migrate: done")
    if done is not None and migrated is not None:
        modules = [ident[len("ansible-") :] for t, ident, m in entries if ident.startswith("ansible-") and migrated <= t <= done]
        lines.append(
            "  beside it, from the migrate step's end to finish's end (%.1f s): %s"
            % (done - migrated, "%d Ansible module run(s): %s" % (len(modules), ", ".join(modules)) if modules else "no Ansible module run")
        )
    return lines


def settle_seconds(steps):
    """[services] settle_seconds, as services-settled reported it."""
    for s in steps:
        m = re.match(r"active for (\d+)s or more", s.get("message") or "")
        if s["id"] == "services-settled" and m:
            return int(m.group(1))
    return None


def notice(out, journals):
    """(seconds, error bound) from the last migrating node's migrate end to
    the waiting node's, on the evidence server's clock; None where the
    evidence lacks it (journals: each node's entries, None if unreadable)."""
    nodes = MIGRATING + [WAITING]
    try:
        with open(out / "clock.csv", encoding="utf-8") as f:
            clock = {r["node"]: (float(r["offset_s"]), float(r["rtt_s"])) for r in csv.DictReader(f)}
    except (OSError, ValueError, KeyError):
        return None
    if any(journals[n] is None for n in nodes):
        return None
    ends = {n: last_line(journals[n], "finish: migrate: done") for n in nodes}
    if None in ends.values() or any(n not in clock for n in nodes):
        return None
    last = max(MIGRATING, key=lambda n: ends[n] + clock[n][0])
    seconds = (ends[WAITING] + clock[WAITING][0]) - (ends[last] + clock[last][0])
    return seconds, (clock[WAITING][1] + clock[last][1]) / 2


def figures(out):
    state = {n: json.load(open(out / n / "state.json", encoding="utf-8")) for n in SERVICE}
    report = json.load(open(out / "fleet-report" / "fleet-report.json", encoding="utf-8"))
    journals = {}
    for n in SERVICE:
        try:
            journals[n] = journal_entries(out / n / "journal.json")
        except (OSError, ValueError, KeyError):
            journals[n] = None
    lines = []
    owns = {n: downtime(state[n]) for n in MIGRATING}
    longest = max(MIGRATING, key=lambda n: owns[n] or 0)
    own = owns[longest]
    cluster = (report.get("cluster_service_downtime") or {}).get("seconds")
    if own and cluster is not None:
        lines.append(
            "cluster downtime / migrating node's own (%s's, the longest): %d s / %d s = %.2f (goal: cluster <= own + 30 s: %s)"
            % (longest, cluster, own, cluster / own, "met" if cluster <= own + 30 else "NOT met")
        )
    else:
        lines.append("cluster downtime / migrating node's own: unknown (cluster %s s, own %s)" % (cluster, owns))
    for node in SERVICE:
        steps = finish_steps(state[node])
        ms = {s["id"]: s.get("duration_ms") or 0 for s in steps if s["status"] != "skipped"}
        overhead = sum(v for k, v in ms.items() if k not in NOT_OVERHEAD) / 1000
        migrate = ms.get("migrate", 0) / 1000
        top = sorted(((v, k) for k, v in ms.items() if k not in NOT_OVERHEAD), reverse=True)[:4]
        # The part of it inside the node's downtime: up to verify-services,
        # where the downtime ends (the steps after it run with the services up).
        ids = [s["id"] for s in steps if s["status"] != "skipped"]
        upto = ids[: ids.index("verify-services") + 1] if "verify-services" in ids else ids
        on_path = sum(ms[k] for k in upto if k not in NOT_OVERHEAD) / 1000
        lines.append(
            "%s finish overhead / migrate step: %.1f s / %.1f s = %s (goal: overhead <= 2 s: %s; largest: %s)"
            % (
                node,
                overhead,
                migrate,
                "%.3f" % (overhead / migrate) if migrate else "n/a",
                "met" if overhead <= 2 else "NOT met",
                ", ".join("%s %.1f s" % (k, v / 1000) for v, k in top),
            )
        )
        lines.append("%s   of which inside its downtime (up to verify-services): %.1f s" % (node, on_path))
        lines.append(
            "%s   of which services-settled (the watch of what is left of [services] settle_seconds): %.1f s"
            % (node, ms.get("services-settled", 0) / 1000)
        )
        settle = settle_seconds(steps)
        if settle is not None:
            lines.append(
                "%s   settle_seconds = %d: the steps after verify-services and the watch come to about %d s or more (the settle counts from the units' start), on top of the %.1f s up to verify-services"
                % (node, settle, settle, on_path)
            )
        entries = journals[node] or []
        lines.extend("%s %s" % (node, line) for line in after_migrations(steps, ids, ms, entries))
    seen = notice(out, journals)
    if seen is not None:
        lines.append(
            "%s noticed the end of the migrations after %.2f s (+-%.2f s; goal <= 2 s: %s)"
            % (WAITING, seen[0], seen[1], "met" if seen[0] + seen[1] <= 2 else "NOT met")
        )
    else:
        lines.append("%s noticed the end of the migrations: unknown (no clock.csv or journal)" % WAITING)
    f = report.get("cluster_service_downtime_forecast") or {}
    lines.append("cluster downtime forecast %s s, measured %s s" % (f.get("seconds"), cluster))
    for r in report.get("nodes", []):
        lines.append(
            "  %s: measured %s s, forecast %s s"
            % (r["host"], (r.get("downtime") or {}).get("seconds"), (r.get("forecast") or {}).get("seconds"))
        )
    return lines


def main(argv):
    out = Path(argv[1] if len(argv) > 1 else "target/vm/cluster")
    try:
        lines = figures(out)
    except (OSError, ValueError, KeyError) as e:
        sys.stderr.write("benches/cluster.py: cannot read the cluster evidence in %s: %s\n" % (out, e))
        return 2
    for line in lines:
        print("bench: " + line)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
