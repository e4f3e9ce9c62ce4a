#!/usr/bin/env python3
"""Writes shift.jsonl, the scenario the coverctl tests read (standard library only).

Run from this folder after an intended change: python3 make_shift.py > shift.jsonl
Four sessions on 2026-11-28, each chosen for what coverctl must show:
  1. 09:00-09:58, ends by gap_end; its second hour opened at 10:00 and was voided when
     the end was backdated to the 09:58 delivery. A job accepted with "mock":true.
  2. 10:30-11:40, two activations: one closed by its hour, one by gap_end; a position
     jump at 11:35.
  3. 12:00-12:20, ended by going offline mid-job, under policy 'P-2,"gold"' (an id
     that CSV must quote).
  4. from 12:30, still open (an open activation with "end": null).
Between sessions 3 and 4, while offline, a re-sent delivery (a duplicate) and a job
accepted while offline (ignored); in session 4, three fixes the engine does not accept
(no fix, an error above max_eph, an unknown error) and, last in the file, one older than
the events before it (out of order): status counts each by its reason.
"""
import json

lines = []


def ev(t, typ, **kw):
    d = {"t": "2026-11-28T%sZ" % t, "type": typ}
    d.update(kw)
    lines.append((t, json.dumps(d, separators=(",", ":"))))


def hms(s):
    return "%02d:%02d:%02d" % (s // 3600, s % 3600 // 60, s % 60)


def drive(t0, t1, lat0, lon, jump_at=None):
    """Fixes every 15 s moving north at 8 m/s."""
    lat = lat0
    for s in range(t0, t1 + 1, 15):
        fix_lat = lat + (0.5 if s == jump_at else 0.0)
        ev(hms(s), "fix", lat=round(fix_lat, 7), lon=lon, speed=8.0, course=0, eph=5, mode=3)
        lat += 8.0 * 15 / 111195.0
    return lat


def heartbeats(t0, t1):
    for s in range(t0, t1 + 1, 120):
        ev(hms(s), "app", event="heartbeat")


H = 3600
ev("08:55:00", "policy", event="assign", policy_id="P-1", driver_id="D-1", vehicle_id="V-1")
ev("08:58:00", "app", event="online")
# Session 1.
ev("09:00:00", "app", event="job_accepted")
drive(9 * H, 9 * H + 58 * 60, 51.5, -0.12)
heartbeats(9 * H + 120, 10 * H + 6 * 60)
ev("09:30:00", "app", event="job_delivered")
ev("09:35:00", "app", event="job_accepted", mock=True)
ev("09:58:00", "app", event="job_delivered")
# Session 2.
ev("10:30:00", "app", event="job_accepted")
drive(10 * H + 30 * 60, 11 * H + 44 * 60, 51.6, -0.10, jump_at=11 * H + 35 * 60)
heartbeats(10 * H + 32 * 60, 11 * H + 48 * 60)
ev("11:40:00", "app", event="job_delivered")
# A new policy whose id needs CSV quoting (a comma and quotes), for sessions 3 and 4.
ev("11:55:00", "policy", event="assign", policy_id='P-2,"gold"', driver_id="D-1",
   vehicle_id="V-1")
# Session 3.
ev("12:00:00", "app", event="job_accepted")
heartbeats(12 * H + 2 * 60, 12 * H + 18 * 60)
ev("12:20:00", "app", event="offline")
ev("12:21:00", "app", event="job_delivered")
ev("12:22:00", "app", event="job_accepted")
ev("12:25:00", "app", event="online")
# Session 4, left open.
ev("12:30:00", "app", event="job_accepted")
ev("12:31:00", "fix", lat=51.7, lon=-0.1, speed=6.0, course=90, eph=4, mode=3)
ev("12:32:00", "app", event="heartbeat")
ev("12:33:00", "fix", lat=51.7, lon=-0.1, mode=1)
ev("12:33:15", "fix", lat=51.7, lon=-0.1, speed=6.0, course=90, eph=80, mode=3)
ev("12:33:30", "fix", lat=51.7, lon=-0.1, speed=6.0, course=90, mode=3)

# A stable sort keeps the order written above for lines with the same time.
lines.sort(key=lambda x: x[0])
print("# coverctl test scenario, written by make_shift.py; see that file for what it holds.")
for _, line in lines:
    print(line)
# Out of order: older than the line before it.
print(json.dumps({"t": "2026-11-28T12:20:30Z", "type": "fix", "lat": 51.7, "lon": -0.1,
                  "speed": 6.0, "course": 90, "eph": 4, "mode": 3}, separators=(",", ":")))
