#!/usr/bin/env python3
"""make.py - writes the revision 2 regression scenarios of tests/scenarios/rev2/.

Each scenario reproduces one way the revision 1 engine billed wrongly (issue 6, "What is
wrong today", items numbered as there) in as few events as show it. The .jsonl files are
committed; this script is how they were written, so a change to one is a change here.
Their expectations (expected/NAME.expect.json beside the other goldens) are derived by
hand from design.md section 2, revision 2, and never regenerated.

Usage: tests/scenarios/rev2/make.py [OUTDIR]   (default: this directory)
"""
import json
import os
import sys
from datetime import datetime, timedelta, timezone

DAY = datetime(2026, 12, 1, tzinfo=timezone.utc)


def at(hhmmss, ms=0):
    h, m, s = (int(x) for x in hhmmss.split(":"))
    t = DAY + timedelta(hours=h, minutes=m, seconds=s, milliseconds=ms)
    base = t.strftime("%Y-%m-%dT%H:%M:%S")
    return base + (".%03dZ" % ms if ms else "Z")


def secs(hhmmss):
    h, m, s = (int(x) for x in hhmmss.split(":"))
    return h * 3600 + m * 60 + s


def hms(n):
    return "%02d:%02d:%02d" % (n // 3600, n // 60 % 60, n % 60)


class Scen:
    def __init__(self):
        self.ev = []

    def add(self, t, obj, ms=0):
        o = {"t": at(t, ms)}
        o.update(obj)
        self.ev.append((secs(t) * 1000 + ms, len(self.ev), o))
        return self

    def app(self, t, event, ms=0, **kw):
        return self.add(t, dict({"type": "app", "event": event}, **kw), ms)

    def every(self, a, b, step, fn):
        n = secs(a)
        while n <= secs(b):
            fn(hms(n))
            n += step

    def heartbeats(self, a, b, step=60):
        self.every(a, b, step, lambda t: self.app(t, "heartbeat"))

    def fix(self, t, lat, lon, speed=None, eph=5, ms=0, **kw):
        o = {"type": "fix", "lat": round(lat, 7), "lon": round(lon, 7)}
        if speed is not None:
            o["speed"] = speed
        if eph is not None:
            o["eph"] = eph
        o["mode"] = 3
        o.update(kw)
        return self.add(t, o, ms)

    def start(self, t="08:55:00", policy="P-1"):
        self.add(t, {"type": "policy", "event": "assign", "policy_id": policy,
                     "driver_id": "D-1", "vehicle_id": "V-1"})
        return self.app(t, "online")

    def write(self, path, comment):
        with open(path, "w") as f:
            for line in comment.strip().splitlines():
                f.write("# " + line + "\n")
            for _, _, o in sorted(self.ev, key=lambda e: (e[0], e[1])):
                f.write(json.dumps(o, separators=(",", ":")) + "\n")


LAT, LON = 45.7651, 14.3617
M_PER_DEG = 111195.0


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
    os.makedirs(out, exist_ok=True)

    # 1. A heartbeat exactly app_silence after the previous app event is not a silence.
    s = Scen().start("08:00:00")
    s.app("08:00:00", "job_accepted")
    s.app("08:40:00", "job_delivered")
    s.heartbeats("08:05:00", "18:00:00", 300)
    s.app("18:00:00", "offline")
    s.write(os.path.join(out, "r2-01-heartbeat-every-5min.jsonl"), """
Issue 6 item 1 (job trigger): one 40-minute job, then the app idle online until 18:00,
heartbeating exactly every app_silence (5 min). Revision 1 billed 10 hours.""")
    s.write(os.path.join(out, "r2-01-heartbeat-every-5min-online.jsonl"), """
Issue 6 item 1 (online trigger, r2-01-heartbeat-every-5min-online.conf): the same events;
revision 1's idle_end never fired.""")

    # 2. Ties at one instant: a job accepted exactly at gap_end, a fix and a heartbeat first.
    s = Scen().start()
    s.app("09:00:00", "job_accepted")
    s.heartbeats("09:01:00", "09:59:00")
    s.app("09:20:00", "job_delivered")
    s.fix("09:30:00", LAT, LON, speed=0.0)
    s.app("09:30:00", "heartbeat")
    s.app("09:30:00", "job_accepted")
    s.app("09:50:00", "job_delivered")
    s.app("10:00:00", "offline")
    s.write(os.path.join(out, "r2-02-accept-at-gap-end.jsonl"), """
Issue 6 item 2: a job accepted exactly at gap_end (09:30:00.000), after a fix and a
heartbeat stamped the same millisecond, continues the session.""")

    # 3. A revoke naming another policy changes nothing.
    s = Scen().start()
    s.app("09:00:00", "job_accepted")
    s.heartbeats("09:01:00", "09:59:00")
    s.add("09:10:00", {"type": "policy", "event": "revoke", "policy_id": "P-2"})
    s.app("09:20:00", "job_delivered")
    s.app("09:40:00", "job_accepted")
    s.app("09:55:00", "job_delivered")
    s.app("10:00:00", "offline")
    s.write(os.path.join(out, "r2-03-revoke-other-policy.jsonl"), """
Issue 6 item 3: a revoke naming P-2 while P-1 is held is refused (policy_mismatch); the
next job is insured under P-1.""")

    # 4. A stray pickup creates no job.
    s = Scen().start()
    s.app("09:00:00", "job_accepted")
    s.app("09:10:00", "job_picked_up")
    s.app("09:30:00", "job_delivered")
    s.app("09:35:00", "job_picked_up")
    s.heartbeats("09:01:00", "12:00:00")
    s.app("12:00:00", "offline")
    s.write(os.path.join(out, "r2-04-stray-pickup.jsonl"), """
Issue 6 item 4: a job_picked_up after the last delivery, with no job in progress, creates
no job. Revision 1 billed until offline (3 h).""")

    # 5. A re-sent delivery with nothing in progress moves nothing.
    s = Scen().start()
    s.app("09:00:00", "job_accepted")
    s.app("09:58:00", "job_delivered")
    s.app("10:05:00", "job_delivered")
    s.heartbeats("09:01:00", "10:30:00")
    s.app("10:30:00", "offline")
    s.write(os.path.join(out, "r2-05-resent-delivery.jsonl"), """
Issue 6 item 5: the app re-sends the delivery of 09:58 at 10:05; with nothing in progress
it neither ends nor extends anything. Revision 1 moved the grace and billed a second hour.""")

    # 6. A short app silence inside a running grace changes no bill.
    s = Scen().start()
    s.app("09:00:00", "job_accepted")
    s.app("09:55:00", "job_delivered")
    s.heartbeats("09:01:00", "09:56:00")
    s.heartbeats("10:02:00", "11:30:00")
    s.every("09:50:00", "11:30:00", 5, lambda t: s.fix(
        t, LAT + 10.0 * (secs(t) - secs("09:50:00")) / M_PER_DEG, LON, speed=10.0))
    s.app("11:30:00", "offline")
    s.write(os.path.join(out, "r2-06-short-silence-in-grace.jsonl"), """
Issue 6 item 6: driving home after the last delivery (09:55), the app misses 6 minutes of
heartbeats (09:56 to 10:02) inside the grace. Revision 1 restarted the grace at 10:02.""")

    # 8. Attribution by time.
    s = Scen().start()
    s.app("09:00:00", "job_accepted")
    s.app("09:52:00", "job_delivered")
    s.app("10:00:00", "job_accepted")
    s.app("10:20:00", "job_delivered")
    s.heartbeats("09:01:00", "10:40:00")
    s.fix("10:25:00", LAT, LON, speed=0.0, mock=True)
    s.write(os.path.join(out, "r2-08-attribution.jsonl"), """
Issue 6 item 8: a job accepted exactly at the hour boundary (10:00:00) counts in the hour
that begins then; a mocked fix at 10:25, after the session's backdated end (10:20), is on
no billed activation.""")

    # 9. Movement and distance: a parked receiver's jitter adds nothing.
    s = Scen().start()
    s.app("09:00:00", "job_accepted")
    s.heartbeats("09:01:00", "09:50:00")
    wob = [(0, 0), (4, 1), (-3, 4), (2, -5), (-5, -2), (3, 3)]

    def parked(t):
        k = (secs(t) // 5) % len(wob)
        s.fix(t, LAT + wob[k][0] / M_PER_DEG, LON + wob[k][1] / M_PER_DEG, speed=0.3)
    s.every("09:00:05", "09:29:55", 5, parked)
    # Then 5 minutes due north at 10 m/s from a receiver that reports no speed.
    s.every("09:30:00", "09:35:00", 5, lambda t: s.fix(
        t, LAT + 10.0 * (secs(t) - secs("09:30:00")) / M_PER_DEG, LON))
    s.app("09:40:00", "job_delivered")
    s.app("09:50:00", "offline")
    s.write(os.path.join(out, "r2-09-parked-jitter.jsonl"), """
Issue 6 item 9: half an hour parked (speed 0.3 m/s, positions wandering up to 6 m) adds no
distance and no moving time; then 5 minutes at 10 m/s from a receiver that gives no speed:
speed is derived from the positions (3000 m, 300 s).""")

    # 12 (engine part). Job ids: a duplicate accept and a duplicate delivery are harmless.
    s = Scen().start()
    s.app("09:00:00", "job_accepted", job_id="A")
    s.app("09:05:00", "job_accepted", job_id="B")
    s.app("09:06:00", "job_accepted", job_id="A")
    s.app("09:20:00", "job_delivered", job_id="A")
    s.app("09:21:00", "job_delivered", job_id="A")
    s.app("09:50:00", "job_delivered", job_id="B")
    s.app("09:55:00", "job_accepted", job_id="A")
    s.app("10:10:00", "job_delivered", job_id="A")
    s.heartbeats("09:01:00", "10:30:00")
    s.app("10:30:00", "offline")
    s.write(os.path.join(out, "r2-12-job-ids.jsonl"), """
Issue 6 item 12 (engine part): two jobs at once with ids; the app re-sends the accept of A
and its delivery. Revision 1 counted jobs: the duplicate accept kept cover open until
offline. An accept of an id already delivered (A at 09:55) is a new job.""")

    # job_timeout: a lost delivery cannot bill until offline.
    s = Scen().start()
    s.app("09:00:00", "job_accepted", job_id="X")
    s.app("09:20:00", "job_picked_up", job_id="X")
    s.heartbeats("09:01:00", "13:00:00", 120)
    s.app("13:00:00", "offline")
    s.write(os.path.join(out, "r2-job-timeout.jsonl"), """
Revision 2 job_timeout: the delivery of job X is lost; its last event is the pickup at
09:20, so it counts as ended there once 3 h pass (12:20), not at offline (13:00).""")

    # A policy assigned mid-job opens cover at once; an assign mid-session waits.
    s = Scen()
    s.app("08:55:00", "online")
    s.app("09:00:00", "job_accepted")
    s.add("09:10:00", {"type": "policy", "event": "assign", "policy_id": "P-1",
                       "driver_id": "D-1", "vehicle_id": "V-1"})
    s.add("09:15:00", {"type": "policy", "event": "assign", "policy_id": "P-2",
                       "driver_id": "D-1", "vehicle_id": "V-1"})
    s.app("09:30:00", "job_delivered")
    s.app("09:50:00", "job_accepted")
    s.app("10:05:00", "job_delivered")
    s.heartbeats("08:56:00", "10:10:00")
    s.app("10:10:00", "offline")
    s.write(os.path.join(out, "r2-policy-mid-job.jsonl"), """
Revision 2: a job in progress when the policy arrives (09:10) is insured from that moment;
the policy P-2 assigned during that session (09:15) applies from the next one.""")

    # Zero-length online-trigger session with no job.
    s = Scen().start("09:00:00")
    s.heartbeats("09:01:00", "10:00:00")
    s.app("10:00:00", "offline")
    s.write(os.path.join(out, "r2-zero-length-online.jsonl"), """
Revision 2 (online trigger, r2-zero-length-online.conf): online at 09:00 with no movement
and no job; idle_end ends the session at its start. It bills nothing.""")

    # The app's return after a silence that ended cover mid-job reopens cover.
    s = Scen().start()
    s.app("09:00:00", "job_accepted")
    s.heartbeats("09:01:00", "09:10:00")
    s.every("09:00:00", "09:49:30", 30, lambda t: s.fix(t, LAT, LON, speed=0.0))
    s.heartbeats("09:50:00", "10:05:00")
    s.app("10:00:00", "job_delivered")
    s.app("10:05:00", "offline")
    s.write(os.path.join(out, "r2-silence-return-mid-job.jsonl"), """
Revision 2: the app falls silent after 09:10 while a job is in progress and the vehicle
stands; cover ends after idle_end of standing (the courier may be waiting). The app's
return at 09:50 with the job still in progress opens cover again at once.""")


if __name__ == "__main__":
    main()
