"""Unit tests of the fleet_report module (plugins/modules/fleet_report.py) over sample status documents (offline, stdlib).

    python3 -m unittest discover -s contrib/ansible/tests/unit/plugins/modules

samples/ holds a five-node roll-out derived from real `status --json` output
(make_samples.py; tests/downtime.rs keeps their keys those of the binary).
"""

import copy
import glob
import json
import os
import sys
import tempfile
import unittest
import xml.etree.ElementTree as ET

HERE = os.path.dirname(os.path.abspath(__file__))
COLLECTION = os.path.join(HERE, "..", "..", "..", "..")
sys.path.insert(0, os.path.join(COLLECTION, "plugins", "modules"))
import fleet_report  # noqa: E402

SVG = "{http://www.w3.org/2000/svg}"


def load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def nodes():
    return [load(p) for p in sorted(glob.glob(os.path.join(HERE, "samples", "*.json")))]


TMP = tempfile.TemporaryDirectory(prefix="fleet-report-test-")


def tearDownModule():
    TMP.cleanup()


def run(doc, out=None, **kw):
    """The module's work on `doc` into a new directory (or `out`): (0, the
    directory, the report's text)."""
    out = out or os.path.join(tempfile.mkdtemp(dir=TMP.name), "report")
    result = fleet_report.produce(copy.deepcopy(doc), out, **kw)
    return 0, out, result["text"]


def service_span(nodes):
    """The service nodes' downtimes, and the first stop and last restore
    among them (Unix seconds)."""
    svc = [n["status"]["downtime"] for n in nodes if "service_nodes" in n["groups"]]
    start = fleet_report.parse_time(min(x["stopped_at"] for x in svc))
    end = fleet_report.parse_time(max(x["restored_at"] for x in svc))
    return svc, start, end


class FleetReport(unittest.TestCase):
    def setUp(self):
        self.nodes = nodes()
        self.assertEqual(len(self.nodes), 5)
        self.rc, self.dir, self.stdout = run({"generated_at": "2026-12-01T22:30:00Z", "nodes": self.nodes})
        self.assertEqual(self.rc, 0)
        with open(os.path.join(self.dir, "fleet-report.json"), encoding="utf-8") as f:
            self.report = json.load(f)
        self.rows = {r["host"]: r for r in self.report["nodes"]}

    def test_one_row_per_node_in_inventory_order(self):
        self.assertEqual([r["host"] for r in self.report["nodes"]], ["ganeti2", "ganeti1", "svc1", "svc2", "svc3"])
        self.assertEqual(self.rows["ganeti1"]["roles"], ["ganeti master"])
        self.assertEqual(self.rows["svc1"]["roles"], ["service (migrates)"])
        self.assertEqual(self.rows["svc2"]["roles"], ["service (waits)"])

    def test_downtime_phase_failed_step_and_leftovers_come_from_status(self):
        for n in self.nodes:
            row = self.rows[n["host"]]
            self.assertEqual(row["phase"], n["status"]["phase"])
            self.assertEqual(row["downtime"], n["status"]["downtime"])
            self.assertEqual(row["dpkg_leftovers"], n["status"]["dpkg_leftovers"])
        self.assertIsNone(self.rows["svc1"]["failed_step"])
        self.assertEqual(self.rows["svc3"]["failed_step"]["id"], "preconditions")
        self.assertEqual(self.rows["svc2"]["dpkg_leftovers"], ["/etc/synnefo/20-snf-cyclades-app-api.conf.dpkg-dist"])

    def test_cluster_downtime_spans_the_service_nodes(self):
        # svc3 is still down: the cluster's downtime has no end yet.
        c = self.report["cluster_service_downtime"]
        self.assertEqual(c["stopped_at"], min(n["status"]["downtime"]["stopped_at"] for n in self.nodes[2:]))
        self.assertIsNone(c["seconds"])
        done = [n for n in self.nodes if n["host"] != "svc3"]
        _, d, _ = run({"nodes": done})
        with open(os.path.join(d, "fleet-report.json"), encoding="utf-8") as f:
            c = json.load(f)["cluster_service_downtime"]
        svc, start, end = service_span(done)
        self.assertEqual(c["seconds"], end - start)
        self.assertEqual(c["restored_at"], max(x["restored_at"] for x in svc))

    def test_markdown_table_printed_and_written(self):
        with open(os.path.join(self.dir, "fleet-report.md"), encoding="utf-8") as f:
            md = f.read()
        self.assertIn(md, self.stdout)
        lines = [line for line in md.splitlines() if line.startswith("| ")]
        self.assertEqual(len(lines), 1 + 5)
        svc2 = [line for line in lines if line.startswith("| svc2 ")][0]
        self.assertIn("`/etc/synnefo/20-snf-cyclades-app-api.conf.dpkg-dist`", svc2)
        seconds = self.rows["svc2"]["downtime"]["seconds"]
        self.assertIn("| %d s (" % seconds, svc2)
        svc3 = [line for line in lines if line.startswith("| svc3 ")][0]
        self.assertIn("finish preconditions: the OS is 'wheezy'", svc3)
        self.assertIn("down since", svc3)

    def test_svg_rows_phases_and_shaded_downtime(self):
        tree = ET.parse(os.path.join(self.dir, "fleet-timeline.svg"))
        root = tree.getroot()
        self.assertEqual(root.tag, SVG + "svg")
        # Self-contained: no external references.
        with open(os.path.join(self.dir, "fleet-timeline.svg"), encoding="utf-8") as f:
            text = f.read()
        self.assertNotIn("href", text)
        rects = root.findall(".//" + SVG + "rect")
        down = [r for r in rects if r.get("class") == "down"]
        self.assertEqual(len(down), 5)
        finish = [r for r in rects if r.get("class") == "phase-finish"]
        prepare = [r for r in rects if r.get("class") == "phase-prepare"]
        self.assertEqual((len(prepare), len(finish)), (5, 5))
        # svc1's shaded span ends where its downtime ends: later than it starts, and
        # its x runs from stopped_at.
        d = self.rows["svc1"]["downtime"]
        svc1 = [r for r in down if r.find(SVG + "title").text.startswith("svc1:")][0]
        x0, w = float(svc1.get("x")), float(svc1.get("width"))
        ratio = w / d["seconds"]
        ganeti2 = [r for r in down if r.find(SVG + "title").text.startswith("ganeti2:")][0]
        self.assertAlmostEqual(float(ganeti2.get("width")) / self.rows["ganeti2"]["downtime"]["seconds"], ratio, places=3)
        self.assertGreater(x0, float(ganeti2.get("x")))
        self.assertEqual(len(root.findall(".//" + SVG + "circle")), 1, "the failed step is marked once")

    def test_the_operator_guide_shows_this_report(self):
        docs = os.path.join(COLLECTION, "..", "..", "docs")
        with open(os.path.join(self.dir, "fleet-timeline.svg"), encoding="utf-8") as f:
            svg = f.read()
        with open(os.path.join(docs, "fleet-timeline-example.svg"), encoding="utf-8") as f:
            self.assertEqual(f.read(), svg, "docs/fleet-timeline-example.svg: regenerate it from the samples")
        with open(os.path.join(docs, "operator-guide.md"), encoding="utf-8") as f:
            guide = f.read()
        with open(os.path.join(self.dir, "fleet-report.md"), encoding="utf-8") as f:
            self.assertIn(f.read(), guide, "docs/operator-guide.md: the example table is not the samples' report")

    def test_a_node_without_status_is_listed(self):
        rc, d, out = run({"nodes": [{"host": "dead", "groups": ["service_nodes"], "migrates": False, "status": None, "error": "unreachable"}]})
        self.assertEqual(rc, 0)
        self.assertIn("| dead | service (waits) | unknown | none | unknown | none kept | no status: unreachable | none |", out)
        ET.parse(os.path.join(d, "fleet-timeline.svg"))

    def test_each_nodes_last_check_inhibitors_and_warnings(self):
        # svc3 was checked with a warning (migrations-here) and no inhibitor;
        # the others clean; info findings are not warnings.
        self.assertEqual(self.rows["svc3"]["last_check"]["warnings"][0]["id"], "migrations-here")
        self.assertEqual(self.rows["svc3"]["last_check"]["inhibitors"], [])
        self.assertEqual(self.rows["svc1"]["last_check"]["warnings"], [])
        self.assertEqual(self.rows["svc1"]["last_check"]["checked_at"], self.nodes[2]["status"]["last_check"]["checked_at"])
        lines = {line.split(" | ")[0][2:]: line for line in self.stdout.splitlines() if line.startswith("| ")}
        self.assertIn("| warnings: migrations-here |", lines["svc3"])
        self.assertIn("| clean |", lines["svc1"])
        self.assertIn("- svc3 (checked %s): warning `migrations-here`: database migrations will run on this node" % self.rows["svc3"]["last_check"]["checked_at"], self.stdout)
        # An inhibitor is shown as one; the roll-out's own arming is not.
        svc2 = copy.deepcopy(self.nodes[3])
        finding = {"id": "dpkg-hold", "severity": "high", "inhibitor": True, "title": "a Synnefo package is held", "summary": "", "remediation": {"hint": "", "commands": []}}
        armed = dict(finding, id="already-armed", title="the node is armed")
        svc2["status"]["last_check"]["findings"] = [finding, armed]
        _, _, out = run({"nodes": [svc2]})
        self.assertIn("| inhibitors: dpkg-hold |", out)
        self.assertIn("- svc2 (checked %s): inhibitor `dpkg-hold`: a Synnefo package is held" % svc2["status"]["last_check"]["checked_at"], out)
        self.assertNotIn("already-armed", out)
        svc2["status"]["phase"] = "not-armed"
        _, _, out = run({"nodes": [svc2]})
        self.assertIn("| inhibitors: dpkg-hold, already-armed |", out)
        # No check kept on the node.
        svc2["status"]["last_check"] = None
        _, _, out = run({"nodes": [svc2]})
        self.assertIn("| none kept |", out)

    def test_a_service_node_without_downtime_does_not_spoil_the_clusters_figure(self):
        # svc4 stopped nothing (none of its services ran): no downtime recorded.
        done = [n for n in self.nodes if n["host"] != "svc3"]
        svc4 = copy.deepcopy(self.nodes[3])
        svc4["host"], svc4["status"]["downtime"] = "svc4", None
        _, d, out = run({"nodes": done + [svc4]})
        with open(os.path.join(d, "fleet-report.json"), encoding="utf-8") as f:
            c = json.load(f)["cluster_service_downtime"]
        svc, start, end = service_span(done)
        self.assertEqual(c["seconds"], end - start)
        self.assertIn("Cluster service downtime (first service node stopped to last one restored): %d s" % (end - start), out)
        self.assertNotIn("down since", out)

    def test_forecast_beside_measured_per_node_and_for_the_cluster(self):
        # The rate: the Ganeti nodes' downtime per MiB unpacked (600 MiB each).
        rate = (self.rows["ganeti2"]["downtime"]["seconds"] + self.rows["ganeti1"]["downtime"]["seconds"]) / 1200.0
        f = self.report["cluster_service_downtime_forecast"]
        self.assertAlmostEqual(f["seconds_per_mib"], round(rate, 3))
        self.assertEqual(f["measured_on"], ["ganeti2", "ganeti1"])
        svc1 = self.rows["svc1"]["forecast"]
        self.assertEqual(svc1["packages"], 450)
        self.assertAlmostEqual(svc1["unpack_mib"], 720.0)
        self.assertAlmostEqual(svc1["database_mib"], 64.0)
        self.assertEqual(svc1["seconds"], int(round(720 * rate)))
        self.assertIsNone(self.rows["svc2"]["forecast"]["database_mib"])
        # One wave: the cluster's forecast is the largest service node's.
        self.assertEqual(f["seconds"], max(self.rows[h]["forecast"]["seconds"] for h in ("svc1", "svc2", "svc3")))
        with open(os.path.join(self.dir, "fleet-report.md"), encoding="utf-8") as fh:
            md = fh.read()
        svc1_line = [line for line in md.splitlines() if line.startswith("| svc1 ")][0]
        # Measured, then the forecast, side by side.
        d = self.rows["svc1"]["downtime"]
        measured = "%d s (%s to %s)" % (d["seconds"], d["stopped_at"][11:19], d["restored_at"][11:19])
        self.assertIn("| %s | ≈ %d s (450 pkgs, 720.0 MiB; db 64.0 MiB) |" % (measured, svc1["seconds"]), svc1_line)
        self.assertIn("Cluster service downtime forecast: ≈ %d s" % f["seconds"], md)

    def test_forecast_unknown_without_measurements_and_kept_across_runs(self):
        # Before any node is measured: volumes only, no seconds.
        fresh = [dict(n, status=None, error="not yet") for n in self.nodes]
        rc, d, out = run({"nodes": fresh})
        self.assertEqual(rc, 0)
        self.assertIn("| 450 pkgs, 720.0 MiB; db 64.0 MiB |", out)
        self.assertIn("Cluster service downtime forecast: unknown", out)
        # A later run without forecasts (the nodes no longer checked) keeps them.
        again = [dict(n, forecast=None) for n in self.nodes]
        _, _, text = run({"nodes": again}, d)
        self.assertIn("≈ ", text)
        with open(os.path.join(d, "fleet-forecast.json"), encoding="utf-8") as fh:
            self.assertEqual(sorted(json.load(fh)), sorted(n["host"] for n in self.nodes))

    def test_forecasts_kept_by_the_preflight_reach_a_report_of_a_later_run(self):
        # Play 1 keeps the forecasts; the run fails before its report; the
        # next run no longer checks the nodes (no forecast), yet reports them.
        d = tempfile.mkdtemp(dir=TMP.name)
        run({"nodes": self.nodes}, d, keep_forecasts=True)
        self.assertFalse(os.path.exists(os.path.join(d, "fleet-report.json")))
        later = [dict(n, forecast=None) for n in self.nodes]
        run({"nodes": later}, d)
        report = load(os.path.join(d, "fleet-report.json"))
        self.assertTrue(all(r["forecast"]["unpack_mib"] for r in report["nodes"]), report["nodes"])
        self.assertIsNotNone(report["cluster_service_downtime_forecast"]["seconds"])

    def test_check_mode_writes_nothing_and_returns_the_report(self):
        d = os.path.join(tempfile.mkdtemp(dir=TMP.name), "report")
        result = fleet_report.produce({"nodes": copy.deepcopy(self.nodes)}, d, check_mode=True)
        self.assertFalse(os.path.exists(d))
        self.assertEqual(result["files"], [])
        self.assertIn("| svc1 | service (migrates) | done |", result["text"])
        self.assertEqual(result["report"]["nodes"][2]["host"], "svc1")


if __name__ == "__main__":
    unittest.main()
