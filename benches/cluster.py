#!/usr/bin/env python3
"""Benchmark figures of a `cluster` VM run, read from its evidence (no VM here):

    python3 benches/cluster.py [DIR]      (DIR: default target/vm/cluster)

Reads DIR/NODE/state.json of the service nodes (svc1 migrates, svc2 waits),
DIR/migrations.csv and DIR/fleet-report/fleet-report.json, as
tests/vm/cluster/evidence.py does, and prints:

  cluster downtime / the migrating node's own downtime   (issue 20: the
      cluster's service outage is about one node's; goal: cluster <= own + 30 s)
  finish overhead / the migrate step, per service node   (the finish steps
      other than backups, migrate, restart-apache and health-checks, summed
      from the step records; goal: overhead <= 2 s), and the part of it
      inside the node's downtime (the steps up to verify-services)
  the waiting node's notice of the end of the migrations  (its migrate step's
      end after the last migration's end row; goal: <= 2 s; the step records
      start at whole seconds, so this is +-1 s)
  the forecast beside the measured downtime (the fleet report's)

Exit 0 always when the evidence is readable (it reports, the scenario's
evidence.py decides), 2 when it is not.  tests/vm/scenarios/cluster prints
the same after its evidence check.
"""

import csv
import datetime as dt
import json
import sys
from pathlib import Path

MIGRATING, WAITING = "svc1", "svc2"
# Steps whose time is the work itself, not finish's overhead.
NOT_OVERHEAD = {"backups", "migrate", "restart-apache", "health-checks"}


def when(text):
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.timezone.utc).timestamp()


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


def figures(out):
    state = {n: json.load(open(out / n / "state.json", encoding="utf-8")) for n in (MIGRATING, WAITING)}
    report = json.load(open(out / "fleet-report" / "fleet-report.json", encoding="utf-8"))
    lines = []
    own = downtime(state[MIGRATING])
    cluster = (report.get("cluster_service_downtime") or {}).get("seconds")
    if own and cluster is not None:
        lines.append(
            "cluster downtime / migrating node's own: %d s / %d s = %.2f (goal: cluster <= own + 30 s: %s)"
            % (cluster, own, cluster / own, "met" if cluster <= own + 30 else "NOT met")
        )
    else:
        lines.append("cluster downtime / migrating node's own: unknown (cluster %s s, %s's own %s s)" % (cluster, MIGRATING, own))
    for node in (MIGRATING, WAITING):
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
    ends = []
    with open(out / "migrations.csv", encoding="utf-8") as f:
        ends = [when(r["time"]) for r in csv.DictReader(f) if r["event"] == "end"]
    wait = [s for s in finish_steps(state[WAITING]) if s["id"] == "migrate"]
    if ends and wait and wait[0].get("duration_ms") is not None:
        noticed = wait[0]["started"] + wait[0]["duration_ms"] / 1000 - max(ends)
        lines.append("%s noticed the end of the migrations after %.1f s (+-1 s; goal <= 2 s)" % (WAITING, noticed))
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
