#!/usr/bin/env python3
"""Tests of tools/gpx2scenario.py against the real track: what --help promises holds."""

import datetime
import json
import math
import os
import subprocess
import sys
import tempfile
import unittest
import xml.etree.ElementTree as ET

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TOOL = os.path.join(ROOT, "tools", "gpx2scenario.py")
TRACK = os.path.join(ROOT, "tests", "data", "tracks", "cerknicko-jezero.gpx")
START = "2026-11-28T09:00:00Z"


def ms(text):
    dt = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return int(round(dt.timestamp() * 1000))


def dist(a, b):
    p1, p2 = math.radians(a["lat"]), math.radians(b["lat"])
    dl = math.radians(b["lon"] - a["lon"])
    h = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371008.8 * math.asin(math.sqrt(h))


def run(*args, ok=True):
    p = subprocess.run([sys.executable, TOOL, TRACK, "--start", START] + list(args),
                       capture_output=True, text=True)
    if ok and p.returncode != 0:
        raise AssertionError("gpx2scenario failed: %s" % p.stderr)
    return p


def events(*args):
    return [json.loads(line) for line in run(*args).stdout.splitlines()]


def track_points():
    pts = []
    for el in ET.parse(TRACK).getroot().iter():
        if el.tag.endswith("trkpt"):
            t = [c.text for c in el if c.tag.endswith("time")][0]
            pts.append((ms(t), float(el.get("lat")), float(el.get("lon"))))
    return pts


class Gpx2Scenario(unittest.TestCase):
    def test_help(self):
        p = subprocess.run([sys.executable, TOOL, "--help"], capture_output=True, text=True)
        self.assertEqual(p.returncode, 0)
        for word in ("--start", "--rate", "--jobs", "--extend", "--gap", "--stop-at"):
            self.assertIn(word, p.stdout)

    def test_deterministic(self):
        a = run("--duration", "3h", "--rate", "5", "--jobs", "6", "--jitter", "0.3", "--seed", "3")
        b = run("--duration", "3h", "--rate", "5", "--jobs", "6", "--jitter", "0.3", "--seed", "3")
        self.assertEqual(a.stdout, b.stdout)
        c = run("--duration", "3h", "--rate", "5", "--jobs", "6", "--jitter", "0.3", "--seed", "4")
        self.assertNotEqual(a.stdout, c.stdout, "the seed must matter when jitter is on")

    def test_time_order_and_fields(self):
        evs = events("--duration", "6h", "--rate", "5", "--jobs", "15")
        times = [ms(e["t"]) for e in evs]
        self.assertEqual(times, sorted(times))
        self.assertEqual(times[0], ms(START))
        for e in evs:
            if e["type"] == "fix":
                self.assertTrue(-90 <= e["lat"] <= 90 and -180 <= e["lon"] <= 180)
                self.assertTrue(e["speed"] >= 0 and 0 <= e["course"] < 360)
                self.assertEqual((e["eph"], e["mode"]), (6, 3))

    def test_real_points_kept_and_shifted(self):
        pts = track_points()
        t0 = pts[0][0]
        fixes = {ms(e["t"]): e for e in events("--rate", "5") if e["type"] == "fix"}
        for t, lat, lon in pts:
            f = fixes.get(ms(START) + t - t0)
            self.assertIsNotNone(f, "track point at +%d ms is missing" % (t - t0))
            self.assertAlmostEqual(f["lat"], lat, places=6)
            self.assertAlmostEqual(f["lon"], lon, places=6)

    def test_rate_and_speed_from_distance(self):
        fixes = [e for e in events("--rate", "1", "--duration", "20m") if e["type"] == "fix"]
        self.assertEqual(len({ms(f["t"]) for f in fixes}), len(fixes))
        grid = [f for f in fixes if ms(f["t"]) % 1000 == 0]
        self.assertGreaterEqual(len(grid), 20 * 60)
        # Within one track interval the reported speed is the distance covered per second.
        checked = 0
        for a, b in zip(fixes, fixes[1:]):
            dt = (ms(b["t"]) - ms(a["t"])) / 1000.0
            if a["speed"] == b["speed"] and a["course"] == b["course"] and a["speed"] > 0.5:
                self.assertAlmostEqual(dist(a, b) / dt, a["speed"], delta=0.05)
                checked += 1
        self.assertGreater(checked, 100)

    def test_pingpong_has_no_jump_at_the_turns(self):
        fixes = [e for e in events("--rate", "5", "--duration", "8h") if e["type"] == "fix"]
        self.assertEqual(ms(fixes[-1]["t"]), ms(START) + 8 * 3600 * 1000)
        jumps = []
        for a, b in zip(fixes, fixes[1:]):
            v = dist(a, b) / ((ms(b["t"]) - ms(a["t"])) / 1000.0)
            if v > 90:
                jumps.append(a["t"])
        # Only the receiver's own glitch (about 92 m/s over two seconds) remains: once per
        # pass, forwards and backwards, each split by at most one grid fix.
        self.assertTrue(0 < len(jumps) <= 8, jumps)

    def test_gap_stop_and_silence(self):
        evs = events("--duration", "1h", "--rate", "5", "--jobs", "2", "--gap", "10m,14m",
                     "--app-silent-from", "30m", "--stop-at", "40m")
        fixes = [e for e in evs if e["type"] == "fix"]
        t0 = ms(START)
        self.assertFalse([f for f in fixes if t0 + 600000 <= ms(f["t"]) < t0 + 840000])
        self.assertTrue([f for f in fixes if ms(f["t"]) == t0 + 840000])
        after = [f for f in fixes if ms(f["t"]) >= t0 + 2400000]
        self.assertTrue(after and all(f["speed"] == 0 for f in after))
        self.assertEqual(len({(f["lat"], f["lon"]) for f in after}), 1)
        app = [e for e in evs if e["type"] == "app"]
        self.assertTrue(app and all(ms(e["t"]) < t0 + 1800000 for e in app))

    def test_job_plan(self):
        evs = events("--duration", "6h", "--rate", "60", "--jobs", "15", "--break",
                     "2h45m,3h25m", "--cancel", "12", "--jitter", "0.2", "--seed", "7")
        app = [(ms(e["t"]), e["event"]) for e in evs if e["type"] == "app"]
        names = [n for _, n in app]
        self.assertEqual(names[0], "online")
        self.assertEqual(names[-1], "offline")
        self.assertEqual(names.count("job_accepted"), 15)
        self.assertEqual(names.count("job_cancelled"), 1)
        self.assertEqual(names.count("job_delivered"), 14)
        self.assertEqual([e["type"] for e in evs if e["type"] == "policy"], ["policy"])
        t0 = ms(START)
        jobs = [n for n in names if n.startswith("job")]
        # Jobs follow one another: accepted, then picked up or cancelled, then delivered.
        for i in range(0, len(jobs)):
            if jobs[i] == "job_accepted" and i + 1 < len(jobs):
                self.assertIn(jobs[i + 1], ("job_picked_up", "job_cancelled"))
        for t, n in app:
            if n.startswith("job"):
                self.assertFalse(t0 + 9900000 <= t < t0 + 12300000, "a job event in the break")
        # A heartbeat every minute while the app runs, except where another event is.
        beats = [t for t, n in app if n == "heartbeat"]
        others = {t for t, n in app if n != "heartbeat"}
        for t in range(app[0][0] + 60000, app[-1][0], 60000):
            self.assertTrue(t in beats or t in others, "no app event at %d" % t)

    def test_no_policy_and_restart(self):
        evs = events("--duration", "30m", "--rate", "10", "--no-policy", "--restart-at", "10m")
        self.assertFalse([e for e in evs if e["type"] == "policy"])
        r = [e for e in evs if e["type"] == "restart"]
        self.assertEqual(len(r), 1)
        self.assertEqual(ms(r[0]["t"]), ms(START) + 600000)

    def test_bad_arguments(self):
        for args in (["--duration", "ten"], ["--gap", "5m"], ["--jobs", "3", "--cancel", "4"],
                     ["--start", "yesterday"]):
            p = run(*args, ok=False)
            self.assertEqual(p.returncode, 2, args)
            self.assertIn("gpx2scenario.py:", p.stderr)

    def test_output_file(self):
        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, "s.jsonl")
            run("--duration", "5m", "-o", out)
            with open(out) as f:
                self.assertEqual(f.read(), run("--duration", "5m").stdout)


if __name__ == "__main__":
    unittest.main()
