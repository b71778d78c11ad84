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

Exit 0 always when the evidence is readable (it reports, the scenario's
evidence.py decides), 2 when it is not.  tests/vm/scenarios/cluster prints
the same after its evidence check.
"""

import csv
import json
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


def migrate_done(journal):
    """The journal time (s) of the last "finish: migrate: done" message."""
    found = None
    with open(journal, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            entry = json.loads(line)
            message = entry.get("MESSAGE")
            if isinstance(message, str) and message.startswith("finish: migrate: done"):
                found = int(entry["__REALTIME_TIMESTAMP"]) / 1e6
    return found


def notice(out):
    """(seconds, error bound) from the last migrating node's migrate end to
    the waiting node's, on the evidence server's clock; None where the
    evidence lacks it."""
    nodes = MIGRATING + [WAITING]
    try:
        with open(out / "clock.csv", encoding="utf-8") as f:
            clock = {r["node"]: (float(r["offset_s"]), float(r["rtt_s"])) for r in csv.DictReader(f)}
        ends = {n: migrate_done(out / n / "journal.json") for n in nodes}
    except (OSError, ValueError, KeyError):
        return None
    if None in ends.values() or any(n not in clock for n in nodes):
        return None
    last = max(MIGRATING, key=lambda n: ends[n] + clock[n][0])
    seconds = (ends[WAITING] + clock[WAITING][0]) - (ends[last] + clock[last][0])
    return seconds, (clock[WAITING][1] + clock[last][1]) / 2


def figures(out):
    state = {n: json.load(open(out / n / "state.json", encoding="utf-8")) for n in SERVICE}
    report = json.load(open(out / "fleet-report" / "fleet-report.json", encoding="utf-8"))
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
    seen = notice(out)
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
