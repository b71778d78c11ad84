#!/usr/bin/python
# Copyright: synnefo-upgrade-0.19 developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fleet report of a synnefo-upgrade-0.19 roll-out (an Ansible module; its
logic is Python 3 stdlib only, so that its unit tests need no Ansible).

The playbook gives it one entry per node:

    {"host": "svc1", "groups": ["service_nodes"], "migrates": true,
     "status": {... `synnefo-upgrade status --json` ...} or null,
     "forecast": {... `synnefo-upgrade check --json`'s forecast ...} or null,
     "error": "why there is no status" or null}

and it writes into `dest`:

    fleet-report.json     one row per node (phase, downtime, forecast, the last
                          check's inhibitors and warnings, failed step), and
                          the cluster's service downtime, forecast and measured
    fleet-report.md       the same as a Markdown table (also returned as `text`)
    fleet-timeline.svg    one row per node: its phases from arming to done (from
                          the step records), the service-down span shaded
    fleet-forecast.json   each node's forecast as the preflight gave it, kept
                          for later runs (a resumed roll-out no longer checks
                          the nodes already armed)

The forecast in seconds: a node's megabytes to unpack times the seconds per
megabyte its downtime took on the nodes already measured in this roll-out
(the Ganeti nodes, upgraded before any service node stops; all measured
nodes when none is); the cluster's, the largest of the service nodes' (they
are upgraded in one wave).  Times are RFC 3339 UTC.
"""

DOCUMENTATION = r"""
---
module: fleet_report
short_description: Writes the fleet report of a synnefo-upgrade-0.19 roll-out
description:
  - Turns every node's C(synnefo-upgrade status --json) and preflight forecast
    into one report on the controller, C(fleet-report.json), C(fleet-report.md)
    and C(fleet-timeline.svg), and keeps the forecasts in C(fleet-forecast.json)
    for later runs.
  - Each node's row has its phase, service downtime, forecast, the inhibitors
    and warnings of its last C(synnefo-upgrade check), its failed step and the
    C(.dpkg-dist) files to review; the cluster's service downtime spans the
    service nodes that recorded one.
  - Runs on the controller (with C(delegate_to=localhost)). Never reports a change;
    in check mode it writes nothing and returns the report.
version_added: 1.0.0
author: synnefo-upgrade-0.19 developers
options:
  nodes:
    description:
      - One entry per node, in the order of the rows. Keys C(host),
        C(groups) (its inventory groups), C(migrates) (bool, service nodes),
        C(status) (the C(status --json) document, or null), C(forecast)
        (C(check --json)'s C(forecast), or null), C(error) (why there is no
        status, or null).
    type: list
    elements: dict
    required: true
  dest:
    description: The directory the report is written into (created when missing).
    type: path
    required: true
  generated_at:
    description: When the report was made (RFC 3339 UTC), recorded in C(fleet-report.json).
    type: str
  keep_forecasts:
    description:
      - Only keep the nodes' forecasts in C(fleet-forecast.json), no report
        (the preflight play, so that a run that fails before its report keeps them).
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Write the fleet report on the controller
  synnefo.upgrade.fleet_report:
    dest: "{{ inventory_dir }}/fleet-report"
    generated_at: "{{ now(utc=true, fmt='%Y-%m-%dT%H:%M:%SZ') }}"
    nodes:
      - host: svc1
        groups: [service_nodes]
        migrates: true
        status: "{{ svc1_status }}"
        forecast: null
        error: null
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
text:
  description: The Markdown report (or, with keep_forecasts, what was kept).
  returned: always
  type: str
files:
  description: The files written (none in check mode).
  returned: always
  type: list
  elements: str
report:
  description: The content of fleet-report.json (null with keep_forecasts).
  returned: always
  type: dict
"""

import datetime
import html
import json
import os

PHASE_COLOURS = {
    "prepare": "#4e79a7",
    "upgrade": "#bab0ac",
    "finish": "#59a14f",
    "abort": "#f28e2b",
}
DOWN_COLOUR = "#e15759"


def rfc3339(unix):
    """Unix seconds as RFC 3339 UTC, None as None."""
    if unix is None:
        return None
    return datetime.datetime.fromtimestamp(unix, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text):
    """RFC 3339 UTC (`...Z`) as Unix seconds, None as None."""
    if text is None:
        return None
    when = datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ")
    return int(when.replace(tzinfo=datetime.timezone.utc).timestamp())


def roles(node):
    """What the node is in the roll-out, from its inventory groups."""
    groups = node.get("groups") or []
    out = []
    if "ganeti_master" in groups:
        out.append("ganeti master")
    elif "ganeti_nodes" in groups:
        out.append("ganeti")
    if "service_nodes" in groups:
        out.append("service (migrates)" if node.get("migrates") else "service (waits)")
    if "database_nodes" in groups:
        out.append("database")
    return out or ["other"]


def step_end(step):
    """When a step ended (Unix seconds), or None while it runs."""
    if step.get("duration_ms") is None:
        return None
    return step["started"] + (step["duration_ms"] + 999) // 1000


def spans(status):
    """The node's phases as (name, start, end) from its step records: prepare
    (first prepare step to arm), upgrade (arm to the first finish step: the
    dist-upgrade and the reboot), finish, abort.  End None: still running."""
    steps = status.get("steps") or []
    by_phase = {}
    for s in steps:
        by_phase.setdefault(s["phase"], []).append(s)
    out = []

    def span(name, records):
        start = min(r["started"] for r in records)
        ends = [step_end(r) for r in records]
        end = None if None in ends else max(ends)
        out.append((name, start, end))

    if "prepare" in by_phase:
        span("prepare", by_phase["prepare"])
    if "prepare" in by_phase and "finish" in by_phase:
        prepare_end = out[0][2]
        finish_start = min(r["started"] for r in by_phase["finish"])
        if prepare_end is not None and finish_start > prepare_end:
            out.append(("upgrade", prepare_end, finish_start))
    for phase in ("finish", "abort"):
        if phase in by_phase:
            span(phase, by_phase[phase])
    return out


def row(node):
    """One report row of a node."""
    status = node.get("status")
    r = {
        "host": node["host"],
        "roles": roles(node),
        "phase": None,
        "downtime": None,
        "failed_step": None,
        "dpkg_leftovers": [],
        "forecast": forecast_volume(node.get("forecast")),
        "last_check": None,
        "error": node.get("error"),
    }
    if not status:
        r["phase"] = "unknown"
        return r
    r["phase"] = status.get("phase")
    r["downtime"] = status.get("downtime")
    failed = status.get("failed_step")
    if failed:
        r["failed_step"] = {
            "phase": failed.get("phase"),
            "id": failed.get("id"),
            "message": failed.get("message"),
        }
    r["dpkg_leftovers"] = list(status.get("dpkg_leftovers") or [])
    r["last_check"] = last_check(status)
    return r


# Findings that say what the roll-out itself did, not what is wrong with the
# node: a check on an armed node (the last look before a Ganeti node's
# reboot) finds it armed.
ROLL_OUT_OWN = {"already-armed"}


def last_check(status):
    """The node's last `synnefo-upgrade check` (status's `last_check`): when,
    by which version, its inhibitors and warnings (findings that are no
    inhibitor, of severity high or medium) as {id, title}; None when none was
    kept.  `already-armed` is left out once the node is armed or further: the
    roll-out armed it."""
    doc = status.get("last_check")
    if not isinstance(doc, dict):
        return None
    armed = status.get("phase") not in (None, "not-armed", "aborted")
    findings = [f for f in doc.get("findings") or [] if not (armed and f.get("id") in ROLL_OUT_OWN)]

    def pick(keep):
        return [{"id": f.get("id"), "title": f.get("title")} for f in findings if keep(f)]

    return {
        "checked_at": doc.get("checked_at"),
        "tool_version": doc.get("tool_version"),
        "inhibitors": pick(lambda f: f.get("inhibitor")),
        "warnings": pick(lambda f: not f.get("inhibitor") and f.get("severity") in ("high", "medium")),
    }


def mib(kib_or_bytes, unit):
    return None if kib_or_bytes is None else kib_or_bytes / unit


def forecast_volume(f):
    """A node's forecast figures (MiB to unpack, MiB of databases to dump)."""
    f = f or {}
    return {
        "packages": f.get("packages_to_unpack"),
        "unpack_mib": mib(f.get("unpack_installed_kib"), 1024.0),
        "database_mib": mib(f.get("database_bytes"), 1024.0 * 1024.0),
    }


def seconds_per_mib(rows):
    """Seconds of downtime per MiB unpacked, measured on this roll-out's nodes
    (the Ganeti nodes when one is measured, else every measured node), and
    the hosts it comes from; (None, []) before any."""
    measured = [r for r in rows if (r["downtime"] or {}).get("seconds") is not None and (r["forecast"]["unpack_mib"] or 0) > 0]
    ganeti = [r for r in measured if "ganeti" in " ".join(r["roles"])]
    base = ganeti or measured
    if not base:
        return None, []
    rate = sum(r["downtime"]["seconds"] for r in base) / sum(r["forecast"]["unpack_mib"] for r in base)
    return rate, [r["host"] for r in base]


def add_forecast_seconds(rows):
    """Each row's forecast in seconds, and the cluster's (the largest of the
    service nodes': one wave)."""
    rate, basis = seconds_per_mib(rows)
    for r in rows:
        u = r["forecast"]["unpack_mib"]
        r["forecast"]["seconds"] = None if rate is None or u is None else int(round(u * rate))
    service = [r for r in rows if any(x.startswith("service") for x in r["roles"])]
    secs = [r["forecast"]["seconds"] for r in service]
    return {
        "seconds": None if not secs or None in secs else max(secs),
        "seconds_per_mib": None if rate is None else round(rate, 3),
        "measured_on": basis,
    }


def cluster_downtime(rows):
    """The service nodes' downtime together: the first stop to the last
    restore.  Only the nodes that recorded a downtime count: a service node
    that stopped nothing (none of its managed services ran) has none, and
    its absence is no outage."""
    service = [r for r in rows if any(x.startswith("service") for x in r["roles"])]
    down = [r["downtime"] for r in service if r["downtime"]]
    stops = [parse_time(d["stopped_at"]) for d in down]
    if not stops:
        return None
    restores = [d.get("restored_at") for d in down]
    restored = None if not all(restores) else max(parse_time(t) for t in restores)
    start = min(stops)
    return {
        "stopped_at": rfc3339(start),
        "restored_at": rfc3339(restored),
        "seconds": None if restored is None else restored - start,
    }


def build(doc):
    """The report: rows in input order and the cluster's downtime."""
    rows = [row(n) for n in doc.get("nodes") or []]
    forecast = add_forecast_seconds(rows)
    return {
        "schema": 1,
        "generated_at": doc.get("generated_at"),
        "cluster_service_downtime": cluster_downtime(rows),
        "cluster_service_downtime_forecast": forecast,
        "nodes": rows,
    }


def forecast_cell(f):
    """`≈ 338 s (450 pkgs, 720.0 MiB; db 64.0 MiB)`, or what is known."""
    if f["unpack_mib"] is None:
        return "unknown"
    what = "%s pkgs, %.1f MiB" % (f["packages"], f["unpack_mib"])
    if f["database_mib"] is not None:
        what += "; db %.1f MiB" % f["database_mib"]
    if f.get("seconds") is None:
        return what
    return "≈ %d s (%s)" % (f["seconds"], what)


def downtime_cell(d):
    if not d:
        return "none"
    if d.get("seconds") is None:
        return "down since %s" % d["stopped_at"]
    return "%d s (%s to %s)" % (d["seconds"], d["stopped_at"][11:19], d["restored_at"][11:19])


def check_cell(c):
    """`inhibitors: a, b; warnings: c`, `clean`, or `none kept`."""
    if c is None:
        return "none kept"
    parts = []
    for key in ("inhibitors", "warnings"):
        if c[key]:
            parts.append("%s: %s" % (key, ", ".join(f["id"] for f in c[key])))
    return "; ".join(parts) or "clean"


def md_escape(text):
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown(report):
    lines = [
        "| node | roles | phase | service downtime | forecast | last check | failed step | .dpkg-dist to review |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in report["nodes"]:
        failed = "none"
        if r["failed_step"]:
            f = r["failed_step"]
            failed = "%s %s: %s" % (f["phase"], f["id"], f["message"] or "")
        elif r["error"]:
            failed = "no status: %s" % r["error"]
        leftovers = ", ".join("`%s`" % p for p in r["dpkg_leftovers"]) or "none"
        lines.append(
            "| %s |" % " | ".join(md_escape(c) for c in [r["host"], ", ".join(r["roles"]), r["phase"], downtime_cell(r["downtime"]), forecast_cell(r["forecast"]), check_cell(r["last_check"]), failed])
            + " %s |" % md_escape(leftovers)
        )
    found = [r for r in report["nodes"] if r["last_check"] and (r["last_check"]["inhibitors"] or r["last_check"]["warnings"])]
    if found:
        lines.append("")
        lines.append("Findings of each node's last check (`synnefo-upgrade status` on the node shows the rest):")
        lines.append("")
        for r in found:
            c = r["last_check"]
            for kind, key in (("inhibitor", "inhibitors"), ("warning", "warnings")):
                for f in c[key]:
                    lines.append("- %s (checked %s): %s `%s`: %s" % (r["host"], c["checked_at"], kind, f["id"], md_escape(f["title"])))
    c = report["cluster_service_downtime"]
    lines.append("")
    lines.append("Cluster service downtime (first service node stopped to last one restored): %s" % downtime_cell(c))
    f = report["cluster_service_downtime_forecast"]
    if f["seconds"] is None:
        lines.append("Cluster service downtime forecast: unknown (no node measured yet, or a service node without a forecast)")
    else:
        lines.append(
            "Cluster service downtime forecast: ≈ %d s (the largest service node's MiB to unpack × %.3f s/MiB measured on %s)"
            % (f["seconds"], f["seconds_per_mib"], ", ".join(f["measured_on"]))
        )
    return "\n".join(lines) + "\n"


def svg(report, statuses):
    """The timeline: one row per node, phases as bars, service-down span shaded."""
    left, right, top, row_h, bar_h = 190, 30, 50, 34, 16
    width = 1000
    times = []
    for status in statuses:
        if not status:
            continue
        for name, start, end in spans(status):
            times += [t for t in (start, end) if t is not None]
        d = status.get("downtime")
        if d:
            times += [t for t in (parse_time(d["stopped_at"]), parse_time(d.get("restored_at"))) if t is not None]
    t0 = min(times) if times else 0
    t1 = max(times) if times else 1
    if t1 <= t0:
        t1 = t0 + 1
    scale = (width - left - right) / float(t1 - t0)

    def x(t):
        return left + (t - t0) * scale

    height = top + row_h * len(statuses) + 60
    out = [
        '<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">'
        % (width, height, width, height),
        "<title>synnefo-upgrade-0.19 roll-out timeline</title>",
        '<rect width="100%" height="100%" fill="#ffffff"/>',
        '<text x="10" y="20" font-size="15" font-weight="bold">synnefo-upgrade-0.19 roll-out: %s to %s (UTC)</text>'
        % (rfc3339(t0), rfc3339(t1)),
    ]
    # Time axis: 6 ticks.
    for i in range(7):
        t = t0 + (t1 - t0) * i / 6.0
        out.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#dddddd"/>' % (x(t), top - 8, x(t), top + row_h * len(statuses)))
        out.append('<text x="%.1f" y="%d" text-anchor="middle" fill="#555555">%s</text>' % (x(t), top - 12, rfc3339(int(t))[11:19]))
    end_of_chart = t1
    for i, (r, status) in enumerate(zip(report["nodes"], statuses)):
        y = top + i * row_h
        label = "%s (%s)" % (r["host"], ", ".join(r["roles"]))
        out.append('<text x="10" y="%d">%s</text>' % (y + bar_h, html.escape(label)))
        if not status:
            out.append('<text x="%d" y="%d" fill="#999999">no status</text>' % (left, y + bar_h))
            continue
        d = status.get("downtime")
        if d:
            a = parse_time(d["stopped_at"])
            b = parse_time(d.get("restored_at"))
            b_draw = end_of_chart if b is None else b
            out.append(
                '<rect class="down" x="%.1f" y="%d" width="%.1f" height="%d" fill="%s" fill-opacity="0.25" stroke="%s" stroke-dasharray="3,2">'
                "<title>%s: services down %s</title></rect>"
                % (x(a), y, max(x(b_draw) - x(a), 1.0), row_h - 6, DOWN_COLOUR, DOWN_COLOUR, html.escape(r["host"]), html.escape(downtime_cell(d)))
            )
        for name, start, end in spans(status):
            end_draw = end_of_chart if end is None else end
            out.append(
                '<rect class="phase-%s" x="%.1f" y="%d" width="%.1f" height="%d" fill="%s"><title>%s %s: %s to %s</title></rect>'
                % (name, x(start), y + 4, max(x(end_draw) - x(start), 1.0), bar_h - 4, PHASE_COLOURS[name], html.escape(r["host"]), name, rfc3339(start), rfc3339(end) or "running")
            )
        failed = status.get("failed_step")
        if failed:
            fx = x(failed["started"])
            out.append(
                '<circle class="failed" cx="%.1f" cy="%d" r="6" fill="#d62728"><title>failed: %s %s: %s</title></circle>'
                % (fx, y + bar_h // 2 + 2, html.escape(failed["phase"]), html.escape(failed["id"]), html.escape(failed.get("message") or ""))
            )
        out.append('<text x="%d" y="%d" font-size="10" fill="#555555">%s</text>' % (left, y + bar_h + 12, html.escape("%s, downtime %s" % (r["phase"], downtime_cell(d)))))
    ly = top + row_h * len(statuses) + 25
    lx = 10
    for name in ("prepare", "upgrade", "finish", "abort"):
        out.append('<rect x="%d" y="%d" width="14" height="10" fill="%s"/><text x="%d" y="%d">%s</text>' % (lx, ly, PHASE_COLOURS[name], lx + 18, ly + 10, name))
        lx += 100
    out.append(
        '<rect x="%d" y="%d" width="14" height="10" fill="%s" fill-opacity="0.25" stroke="%s"/><text x="%d" y="%d">services down</text>'
        % (lx, ly, DOWN_COLOUR, DOWN_COLOUR, lx + 18, ly + 10)
    )
    out.append("</svg>")
    return "\n".join(out) + "\n"


def write(path, text):
    """Writes atomically (a half-written report is never left behind)."""
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def produce(doc, out, keep_forecasts=False, check_mode=False):
    """The report of `doc` ({"generated_at", "nodes"}) into directory `out`:
    {"text", "files", "report"}.  The forecasts kept in `out` by earlier runs
    fill in the nodes that have none now.  In check mode nothing is written."""
    kept_path = os.path.join(out, "fleet-forecast.json")
    try:
        with open(kept_path, encoding="utf-8") as f:
            kept = json.load(f)
    except (OSError, ValueError):
        kept = {}
    if not isinstance(kept, dict):
        kept = {}
    for n in doc.get("nodes") or []:
        if n.get("forecast"):
            kept[n["host"]] = n["forecast"]
        elif n.get("host") in kept:
            n["forecast"] = kept[n["host"]]
    files = {kept_path: json.dumps(kept, indent=2, sort_keys=True) + "\n"}
    if keep_forecasts:
        report = None
        text = "kept: %s (%d node(s))\n" % (kept_path, len(kept))
    else:
        report = build(doc)
        statuses = [n.get("status") for n in doc.get("nodes") or []]
        text = markdown(report)
        files[os.path.join(out, "fleet-report.json")] = json.dumps(report, indent=2, sort_keys=True) + "\n"
        files[os.path.join(out, "fleet-report.md")] = text
        files[os.path.join(out, "fleet-timeline.svg")] = svg(report, statuses)
    if check_mode:
        return {"text": text, "files": [], "report": report}
    os.makedirs(out, exist_ok=True)
    for path, content in files.items():
        write(path, content)
    return {"text": text, "files": sorted(files), "report": report}


def main():
    from ansible.module_utils.basic import AnsibleModule

    module = AnsibleModule(
        argument_spec=dict(
            nodes=dict(type="list", elements="dict", required=True),
            dest=dict(type="path", required=True),
            generated_at=dict(type="str"),
            keep_forecasts=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    p = module.params
    for i, n in enumerate(p["nodes"]):
        if not isinstance(n.get("host"), str):
            module.fail_json(msg="fleet_report: nodes[%d] has no host name: %r" % (i, n))
    try:
        result = produce(
            {"generated_at": p["generated_at"], "nodes": p["nodes"]},
            p["dest"],
            keep_forecasts=p["keep_forecasts"],
            check_mode=module.check_mode,
        )
    except OSError as e:
        module.fail_json(msg="fleet_report: cannot write the report into %s: %s; set synnefo_upgrade_report_dir to a writable directory" % (p["dest"], e))
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
