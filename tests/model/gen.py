#!/usr/bin/env python3
"""gen.py - random scenarios for the differential test of the billing rules.

A scenario is built one event at a time from a small grammar of courier shifts (policy,
online, jobs with and without job_id, concurrent jobs, pickups, deliveries, strays and
duplicates, heartbeats at periods around app_silence, silences while moving and while
standing, fixes moving/standing/jittering/unusable, restarts, policy changes, private mode,
end-cover commands, offline) while the reference model (model.py) runs alongside, so that
the generator can place events exactly at, 1 ms before and 1 ms after the deadlines the
rules are about (gap_end, app silence, idle_end, hour boundaries, job_timeout,
max_session), often several events in the same millisecond in a random order.

Deterministic: the same (seed, index, options) always gives the same scenario and conf.

    gen.py --seed 1 --index 7 --out DIR      writes DIR/s1-7.jsonl and DIR/s1-7.conf
"""

import argparse
import json
import math
import os
import random
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from model import (HOUR, MIN, P_GAP, P_IDLE, P_SILENCE, SEC, Model, Params, format_time,  # noqa: E402
                   parse_time)

BASE = parse_time("2026-11-28T08:00:00Z")


class Options:
    def __init__(self, job_ids=True, vary_job_timeout=True, emit_job_timeout=None,
                 min_events=20, max_events=300):
        self.job_ids = job_ids                  # emit job_id on some job events
        self.vary_job_timeout = vary_job_timeout  # job_timeout other than 3h (needs the key)
        self.emit_job_timeout = emit_job_timeout  # None: only when not the default
        self.min_events = min_events
        self.max_events = max_events


def choose_params(rng, opts):
    for _ in range(1000):
        kw = {}
        r = rng.random()
        kw["trigger"] = "job" if r < 0.6 else "online" if r < 0.85 else "motion"
        if rng.random() < 0.55:
            vary = lambda: rng.random() < 0.35  # noqa: E731
            if vary():
                kw["gap_end"] = rng.choice([30 * SEC, 2 * MIN, 5 * MIN, 7 * MIN, 15 * MIN])
            if vary():
                kw["idle_end"] = rng.choice([5 * MIN, 10 * MIN, 20 * MIN, 45 * MIN])
            if vary():
                kw["app_silence"] = rng.choice([1 * MIN, 2 * MIN, 3 * MIN, 10 * MIN])
            if vary():
                kw["unit"] = rng.choice([15 * MIN, 30 * MIN, 2 * HOUR])
            if vary():
                unit = kw.get("unit", HOUR)
                kw["min_cover"] = rng.choice([unit, unit // 2, MIN])
            elif "unit" in kw:
                kw["min_cover"] = min(kw["unit"], HOUR)
            if vary():
                kw["max_session"] = rng.choice([90 * MIN, 2 * HOUR, 3 * HOUR, 5 * HOUR, 8 * HOUR])
            if vary():
                kw["move_speed"] = rng.choice([1.5, 3.0])
            if vary():
                kw["max_eph"] = rng.choice([30.0, 100.0])
            if vary():
                kw["max_fix_gap"] = rng.choice([20 * SEC, 60 * SEC])
            if vary():
                kw["max_jump_speed"] = rng.choice([60.0, 150.0])
        if opts.vary_job_timeout and rng.random() < 0.5:
            kw["job_timeout"] = rng.choice([20 * MIN, 30 * MIN, 45 * MIN, HOUR, 90 * MIN])
        p = Params(**kw)
        if p.check() is None:
            return p
    raise RuntimeError("no valid parameters")


def _weird_id(rng):
    """A job id of 1 to 63 printable ASCII characters, quotes and backslashes included."""
    n = rng.choice([1, 2, 8, 20, 63])
    return "".join(chr(rng.randint(0x20, 0x7e)) for _ in range(n))


class Builder:
    def __init__(self, rng, params, opts):
        self.rng = rng
        self.p = params
        self.opts = opts
        self.m = Model(params)
        day = rng.randint(0, 40)
        start = BASE + day * 24 * HOUR
        r = rng.random()
        if r < 0.15:
            start += 15 * HOUR + 30 * MIN + rng.randint(0, 20) * MIN   # across midnight UTC
        elif r < 0.3:
            start += rng.randint(0, 3600) * SEC + rng.randint(0, 999)
        self.t0 = self.t = start
        self.lines = []           # JSON text of each line
        self.target = self._target_count()
        self.lat = 45.77 + rng.random() * 0.05
        self.lon = 14.35 + rng.random() * 0.05
        self.heading = rng.random() * 2 * math.pi
        self.v = 8.0
        self.motion = rng.choice(["moving", "standing", "derived", "jitter", "none"])
        self.hb = self._pick_hb()
        self.fix_period = self._pick_fix_period()
        self.last_fix_emit = None   # (t, lat, lon) of the last fix written
        self.job_seq = 0
        self.delivered = []         # ids delivered or cancelled
        self.policy_seq = 1
        self.use_ids = opts.job_ids and rng.random() < 0.75
        self.p_id = 0.7 if rng.random() < 0.7 else 1.0

    # -- basics

    def _target_count(self):
        r = self.rng.random()
        lo, hi = self.opts.min_events, self.opts.max_events
        if r < 0.6:
            return self.rng.randint(lo, min(hi, 100))
        if r < 0.9:
            return self.rng.randint(lo, min(hi, 200))
        return self.rng.randint(lo, hi)

    def _pick_hb(self):
        s = self.p.app_silence
        # mostly alive (up to exactly app_silence apart); now and then just over it
        r = self.rng.random()
        if r < 0.08:
            return self.rng.choice([s + 1, s + SEC, 6 * MIN, None])
        return self.rng.choice([60 * SEC, 60 * SEC, 2 * MIN, 2 * MIN, 30 * SEC, 4 * MIN,
                                s - SEC, s - SEC, s, s, s, s - 1])

    def _pick_fix_period(self):
        g = self.p.max_fix_gap
        return self.rng.choice([10 * SEC, 15 * SEC, 20 * SEC, g, g + 1, g + SEC, 60 * SEC,
                                2 * MIN, 5 * MIN])

    def _fmt(self, t):
        if self.rng.random() < 0.04:
            # the same instant written with an offset
            off = self.rng.choice([60, 120, -300, 330])
            lt = t + off * MIN
            s = format_time(lt)[:-1]
            if "." not in s and self.rng.random() < 0.3:
                s += ".000"
            sign = "+" if off >= 0 else "-"
            return "%s%s%02d:%02d" % (s, sign, abs(off) // 60, abs(off) % 60)
        return format_time(t)

    def emit(self, obj, t=None):
        """Writes one line at t (default: now) and steps the model with it."""
        if t is None:
            t = self.t
        line = {"t": self._fmt(t)}
        line.update(obj)
        text = json.dumps(line, separators=(",", ":"))
        self.lines.append(text)
        ev = dict(obj)
        ev["t_ms"] = t
        self.m.step(ev)
        if t > self.t:
            self.t = t

    def app(self, event, job_id=None, t=None, **extra):
        obj = {"type": "app", "event": event}
        if job_id is not None:
            obj["job_id"] = job_id
        obj.update(extra)
        self.emit(obj, t)

    def full(self):
        return len(self.lines) >= self.target

    # -- fixes and movement

    def _advance_position(self, dt):
        if self.motion in ("moving", "derived") and dt > 0:
            d = self.v * dt / 1000.0
            self.heading += self.rng.uniform(-0.3, 0.3)
            self.lat += d * math.cos(self.heading) / 111195.0
            self.lon += d * math.sin(self.heading) / (111195.0 * math.cos(math.radians(self.lat)))

    def fix(self, t=None, kind=None):
        """One fix at t, following the current motion (kind overrides)."""
        if t is None:
            t = self.t
        last = self.m.last_fix
        if last is not None and last[0] == t:
            return   # never two accepted fixes in one millisecond
        if self.last_fix_emit is not None and self.last_fix_emit[0] == t:
            return
        prev_t = self.last_fix_emit[0] if self.last_fix_emit else None
        dt = t - prev_t if prev_t is not None else 0
        self._advance_position(dt)
        kind = kind or self.motion
        rng = self.rng
        obj = {"type": "fix"}
        lat, lon = self.lat, self.lon
        eph = round(rng.uniform(2.0, min(25.0, self.p.max_eph * 0.8)), 1)
        mode = 3 if rng.random() < 0.8 else 2
        speed = None
        if kind == "moving":
            r = rng.random()
            if r < 0.06:
                speed = self.p.move_speed           # exactly the threshold: moving
            elif r < 0.12:
                speed = round(self.p.move_speed - 0.01, 2)   # just below: not moving
            else:
                speed = round(self.v, 2)
        elif kind == "derived":
            speed = None
        elif kind == "standing":
            speed = rng.choice([0.0, 0.0, 0.3, None])
            if speed is None and dt >= 5 * SEC:
                lat += rng.uniform(-1, 1) * 1e-5
        elif kind == "jitter":
            if dt >= 5 * SEC:
                lat += rng.uniform(-1.5, 1.5) * 1e-5
                lon += rng.uniform(-1.5, 1.5) * 1e-5
        r = rng.random()
        if r < 0.03:
            mode = 1
        elif r < 0.06:
            eph = None
        elif r < 0.08:
            eph = self.p.max_eph + 0.5
        elif r < 0.10:
            eph = self.p.max_eph            # exactly the limit: accepted
        obj["lat"] = round(lat, 7)
        obj["lon"] = round(lon, 7)
        if speed is not None:
            obj["speed"] = speed
        if rng.random() < 0.3:
            obj["course"] = round(math.degrees(self.heading) % 360, 1) % 360
        if eph is not None:
            obj["eph"] = eph
        if mode != 3 or rng.random() < 0.5:
            obj["mode"] = mode
        if rng.random() < 0.01:
            obj["mock"] = True
        self.last_fix_emit = (t, lat, lon)
        self.emit(obj, t)

    def jump(self):
        """A position jump: only when the last accepted fix is recent, so the implied speed
        is far above max_jump_speed."""
        last = self.m.last_fix
        if last is None:
            return
        t = max(self.t, last[0] + 1)
        if t - last[0] > 30 * SEC or t == last[0]:
            return
        self.lat += 0.3
        obj = {"type": "fix", "lat": round(self.lat, 7), "lon": round(self.lon, 7),
               "eph": 5.0, "mode": 3}
        if self.rng.random() < 0.5:
            obj["speed"] = 10.0
        self.last_fix_emit = (t, self.lat, self.lon)
        self.emit(obj, t)

    # -- time passing, with heartbeats and fixes in the background

    def wait(self, dur, budget=40):
        """Time passes: heartbeats (every self.hb after the last app event) and fixes
        (every fix period) until now + dur. Fixes are thinned to keep the background
        within about `budget` events; heartbeats are not (their period is the point)."""
        end = self.t + dur
        fix_period = self.fix_period
        hb = self.hb
        if hb is not None and hb < self.p.app_silence and dur / hb > budget:
            hb = self.p.app_silence     # a long wait: heartbeats exactly app_silence apart
        if self.motion != "none":
            n_hb = dur / hb if hb else 0
            room = budget - n_hb
            if room < 4:
                fix_period = max(fix_period, dur // 4 + 1)
            elif dur / fix_period > room:
                fix_period = int(dur / room) + 1
        while not self.full():
            cands = []
            if hb is not None:
                base = self.m.last_app if self.m.last_app is not None else self.t
                nh = base + hb
                if nh <= self.t:
                    nh = self.t + hb
                cands.append((nh, "hb"))
            if self.motion != "none":
                nf = (self.last_fix_emit[0] + fix_period) if self.last_fix_emit else self.t + fix_period
                if nf <= self.t:
                    nf = self.t + fix_period
                cands.append((nf, "fix"))
            cands = [c for c in cands if c[0] <= end]
            if not cands:
                break
            cands.sort()
            t = cands[0][0]
            now = [c for c in cands if c[0] == t]
            self.rng.shuffle(now)
            for _t, what in now:
                if what == "hb":
                    self.app("heartbeat", t=t)
                else:
                    self.fix(t)
        if self.t < end and not self.full():
            self.t = end

    def _dur(self):
        p = self.p
        return self.rng.choice([1, SEC, 10 * SEC, MIN, 2 * MIN, 4 * MIN, 8 * MIN, 12 * MIN,
                                20 * MIN, 35 * MIN, p.app_silence, p.gap_end, p.gap_end - 1,
                                p.gap_end + 1, p.idle_end, p.unit, HOUR, 2 * HOUR])

    def _switch_background(self):
        if self.rng.random() < 0.3:
            self.motion = self.rng.choice(["moving", "standing", "derived", "jitter", "none"])
        if self.rng.random() < 0.25:
            self.hb = self._pick_hb()
        if self.rng.random() < 0.2:
            self.fix_period = self._pick_fix_period()
        if self.rng.random() < 0.3:
            self.v = self.rng.choice([4.0, 8.0, 12.0, 15.0])

    def _fit(self, dur):
        """Shortens a wait so that its background stays within ~40 events."""
        per = 0.0
        if self.hb:
            per += 1.0 / self.hb
        if self.motion != "none":
            per += 1.0 / self.fix_period
        if per > 0 and dur * per > 40:
            dur = int(40 / per)
        return max(dur, 1)

    # -- actions of the grammar

    def a_wait(self):
        self._switch_background()
        self.wait(self._fit(self._dur()))

    def a_travel(self):
        self.motion = self.rng.choice(["moving", "moving", "derived"])
        if self.motion == "derived":
            self.fix_period = self.rng.choice([10 * SEC, 20 * SEC, self.p.max_fix_gap])
        self.wait(self._fit(self.rng.choice([2 * MIN, 5 * MIN, 10 * MIN, 20 * MIN, 40 * MIN])))

    def a_silence(self):
        p = self.p
        saved = self.hb
        self.hb = None
        self.motion = self.rng.choice(["moving", "standing", "none", "derived", "jitter"])
        dur = self.rng.choice([p.app_silence - 1, p.app_silence, p.app_silence + 1,
                               p.app_silence + SEC, 6 * MIN, p.gap_end + MIN, p.idle_end + MIN,
                               45 * MIN, 90 * MIN])
        self.wait(dur)
        self.hb = saved if self.rng.random() < 0.8 else self._pick_hb()

    def _new_job_id(self):
        if not self.use_ids or self.rng.random() > self.p_id:
            return None
        r = self.rng.random()
        if r < 0.08 and self.delivered:
            return self.rng.choice(self.delivered)   # an id already delivered: a new job
        self.job_seq += 1
        if r < 0.15:
            return _weird_id(self.rng)
        return "J%d" % self.job_seq

    def a_accept(self):
        jid = self._new_job_id()
        self.app("job_accepted", jid)
        if jid is not None and self.rng.random() < 0.12:
            # the app retries the accept: a duplicate, which must not refresh the job's clock
            self.wait(self.rng.choice([1, SEC, 20 * SEC, 2 * MIN]))
            self.app("job_accepted", jid)
        if self.rng.random() < 0.25:
            # a second order at once (concurrent jobs)
            self.wait(self.rng.choice([0, 1, SEC, MIN]))
            self.app("job_accepted", self._new_job_id())

    def _open_job(self):
        ids = list(self.m.jobs.keys())
        choices = ids + ([None] * self.m.anon)
        if not choices:
            return None, False
        return self.rng.choice(choices), True

    def a_deliver(self, event="job_delivered"):
        jid, ok = self._open_job()
        if not ok:
            return self.a_stray()
        self.app(event, jid)
        if jid is not None:
            self.delivered.append(jid)
        if self.rng.random() < 0.15:
            # the app re-sends the delivery
            self.wait(self.rng.choice([0, 1, SEC, 30 * SEC]))
            self.app(event, jid)
        if (self.m.s is not None and not self.m.jobs and not self.m.anon and
                self.rng.random() < 0.4 and not self.full()):
            # the grace begins: aim at its end (the app alive, or not, meanwhile)
            if self.hb is None or self.hb > self.p.app_silence and self.rng.random() < 0.7:
                self.hb = self.rng.choice([60 * SEC, 2 * MIN, self.p.app_silence - SEC])
            self.a_target((P_GAP, P_IDLE, P_SILENCE))

    def a_pickup(self):
        jid, ok = self._open_job()
        if not ok:
            return self.a_stray()
        self.app("job_picked_up", jid)

    def a_stray(self):
        r = self.rng.random()
        ids = self.delivered or ["J-unknown"]
        use_id = self.use_ids and self.rng.random() < 0.7
        jid = self.rng.choice(ids) if use_id else None
        if r < 0.4:
            self.app("job_picked_up", jid)
        elif r < 0.8:
            self.app("job_delivered", jid)
        elif r < 0.9:
            self.app("job_cancelled", jid)
        else:
            ids = list(self.m.jobs.keys())
            if ids:
                self.app("job_accepted", self.rng.choice(ids))   # duplicate accept
            else:
                self.app("job_delivered", jid)

    def a_flood(self):
        """More jobs at once than the engine keeps (16): the 17th accept is refused."""
        for _ in range(17 - len(self.m.jobs) - self.m.anon):
            self.app("job_accepted")
        self.app("job_accepted", "J-flood" if self.use_ids else None)

    def a_assign(self):
        r = self.rng.random()
        if self.m.s is not None and r < 0.6:
            # mid-session: a new policy, for the next session
            self.policy_seq += 1
            pid = "P-%d" % self.policy_seq
        elif r < 0.5 or self.m.policy is None and r < 0.7:
            pid = "P-%d" % self.policy_seq
        else:
            self.policy_seq += 1
            pid = "P-%d" % self.policy_seq
        obj = {"type": "policy", "event": "assign", "policy_id": pid}
        if self.rng.random() < 0.8:
            obj["driver_id"] = "D-1"
            obj["vehicle_id"] = "V-%d" % self.rng.randint(1, 2)
        self.emit(obj)

    def a_revoke(self):
        r = self.rng.random()
        obj = {"type": "policy", "event": "revoke"}
        split = (self.m.s is not None and self.m.policy is not None and
                 self.m.policy != self.m.s.policy_id)
        if split and r < 0.6:
            # the held policy and the session's differ: revoke one of them
            obj["policy_id"] = self.rng.choice([self.m.policy, self.m.s.policy_id])
        elif r < 0.35 and self.m.policy is not None:
            obj["policy_id"] = self.m.policy
        elif r < 0.55 and self.m.s is not None:
            obj["policy_id"] = self.m.s.policy_id
        elif r < 0.8:
            obj["policy_id"] = "P-other"     # neither held nor the session's: refused
        self.emit(obj)

    def a_restart(self):
        self.emit({"type": "restart"})

    def a_tick(self):
        self.emit({"type": "tick"})

    def a_power(self):
        self.emit({"type": "power", "event": self.rng.choice(["low", "shutdown", "restored"])})

    def a_ignition(self, on=None):
        if on is None:
            on = not self.m.ignition if self.rng.random() < 0.8 else self.m.ignition
        self.emit({"type": "ignition", "on": on})

    def a_end_cover(self):
        self.emit({"type": "cmd", "event": "end_cover"})

    def a_out_of_order(self):
        last = self.m.last_t
        if last is None:
            return
        t = last - self.rng.choice([1, SEC, MIN, 10 * MIN])
        if t < self.t0 - HOUR:
            return
        kind = self.rng.random()
        if kind < 0.5:
            self.emit({"type": "app", "event": "job_accepted"}, t)
        elif kind < 0.8:
            self.emit({"type": "app", "event": "heartbeat"}, t)
        else:
            self.emit({"type": "fix", "lat": round(self.lat, 7), "lon": round(self.lon, 7),
                       "speed": 9.0, "eph": 5.0}, t)

    def _cluster_event(self, what):
        if what == "accept":
            self.app("job_accepted", self._new_job_id())
        elif what == "deliver":
            self.a_deliver()
        elif what == "pickup":
            self.a_pickup()
        elif what == "heartbeat":
            self.app("heartbeat")
        elif what == "fix":
            self.fix(kind=self.rng.choice(["moving", "standing", self.motion]))
        elif what == "offline":
            self.app("offline")
        elif what == "online":
            self.app("online")
        elif what == "private_on":
            self.app("private_on")
        elif what == "private_off":
            self.app("private_off")
        elif what == "tick":
            self.a_tick()
        elif what == "restart":
            self.a_restart()
        elif what == "end_cover":
            self.a_end_cover()
        elif what == "revoke":
            self.a_revoke()
        elif what == "assign":
            self.a_assign()

    def _instants(self):
        """The model's pending deadlines, plus the end of the gap_end grace even while the
        app is not (yet) known to be alive through it."""
        dl = self.m.deadlines()
        m = self.m
        if (m.s is not None and self.p.trigger == "job" and not m.jobs and not m.anon and
                m.grace_from is not None and not any(d[1] == P_GAP for d in dl)):
            dl.append((m.grace_from + self.p.gap_end, P_GAP, "end", None))
            dl.sort(key=lambda d: (d[0], d[1]))
        return dl

    def a_target(self, prios=None):
        """Jumps to a pending deadline (d - 1 ms, d, d + 1 ms) and writes a few events in
        that millisecond, in a random order. prios: only deadlines of these kinds."""
        dl = [d for d in self._instants() if d[0] >= self.t and (prios is None or d[1] in prios)]
        if not dl:
            return self.a_wait()
        # the silence deadline moves with every heartbeat: aiming at it makes a silence,
        # so it is picked less often than the others
        dl = dl[:4]
        pick = self.rng.choices(dl, weights=[0.25 if d[1] == P_SILENCE else 1.0 for d in dl])[0]
        kind = (pick[2], pick[1])
        delta = self.rng.choice([0, 0, 0, 1, -1, SEC])
        goal = pick[0] + delta
        # the background up to just before the instant, then aim again: the background
        # may have moved the deadline
        if goal - self.t > 2 * SEC:
            self.wait(goal - self.t - 2 * SEC)
            if self.full():
                return
            again = [d for d in self._instants() if (d[2], d[1]) == kind and d[0] >= self.t]
            if again:
                goal = again[0][0] + delta
        goal = max(goal, self.t)
        self.t = goal
        n = self.rng.choice([1, 2, 2, 3])
        pool = ["accept", "heartbeat", "fix", "deliver", "pickup", "tick", "heartbeat", "fix",
                "accept", "offline", "private_on", "end_cover", "restart", "online",
                "private_off", "revoke", "assign"]
        if prios is not None:
            # the end of a grace or an idle period: what may continue or end cover then
            pool = ["accept", "accept", "heartbeat", "fix", "offline", "private_on",
                    "end_cover", "revoke", "deliver", "pickup", "tick", "restart"]
            whats = [self.rng.choice(pool) for _ in range(n)]
        else:
            whats = [self.rng.choice(pool[:10] if self.rng.random() < 0.8 else pool)
                     for _ in range(n)]
        for w in whats:
            self._cluster_event(w)

    # -- the shift

    def preamble(self):
        rng = self.rng
        first = []
        if self.p.trigger == "motion" or rng.random() < 0.3:
            first.append(lambda: self.a_ignition(True))
        if rng.random() < 0.88:
            first.append(self.a_assign)
        if rng.random() < 0.95:
            first.append(lambda: self.app("online"))
        rng.shuffle(first)
        for f in first:
            f()
            if rng.random() < 0.5:
                self.wait(rng.choice([0, 1, SEC, MIN]))

    def pick(self):
        m = self.m
        njobs = len(m.jobs) + m.anon
        w = {}
        if not m.online:
            w[self.a_online] = 5
        else:
            w[self.a_offline] = 0.6
        if m.online and not m.private:
            w[self.a_accept] = 4 if njobs < 3 else 0.8
        if njobs:
            w[self.a_deliver] = 5
            w[self.a_pickup] = 1.5
            w[lambda: self.a_deliver("job_cancelled")] = 0.6
            w[self.a_travel] = 4
        w[self.a_wait] = 4
        w[self.a_silence] = 1.2
        if m.s is not None and any(d[1] in (P_GAP, P_IDLE) and d[0] >= self.t
                                   for d in self._instants()):
            w[lambda: self.a_target((P_GAP, P_IDLE))] = 4
        if m.s is not None or njobs:
            w[self.a_target] = 4
        else:
            w[self.a_target] = 1
        w[self.a_stray] = 0.7
        w[self.a_private] = 2.5 if m.private else 0.35
        w[self.a_end_cover] = 0.25
        w[self.a_assign] = 3 if m.policy is None else 0.3
        w[self.a_revoke] = 0.35 if not (m.s is not None and m.policy not in (None, m.s.policy_id)) else 1.5
        w[self.a_ignition] = 1.0 if self.p.trigger == "motion" else 0.2
        w[self.a_restart] = 0.35
        w[self.a_tick] = 0.25
        w[self.a_power] = 0.08
        w[self.a_out_of_order] = 0.08
        w[self.jump] = 0.5
        w[self.a_flood] = 0.015
        fs = list(w)
        return self.rng.choices(fs, weights=[w[f] for f in fs])[0]

    def a_online(self):
        self.app("online")

    def a_offline(self):
        self.app("offline")

    def a_private(self):
        self.app("private_off" if self.m.private else "private_on")

    def build(self):
        self.preamble()
        while not self.full() and self.t - self.t0 < 30 * HOUR:
            self.pick()()
        # The end: a tick at the last event's instant or a little later, so the replay's
        # final judgement is always at an accepted line.
        end = self.rng.choice([0, 0, 1, SEC, self.p.gap_end, self.p.app_silence, HOUR])
        self.emit({"type": "tick"}, self.t + end)
        return self.lines


def generate(seed, index, opts=None):
    """(lines, params, comment): scenario `index` of the run with `seed`."""
    opts = opts or Options()
    rng = random.Random("coverd-model:%s:%d:%d:%d" % (seed, index, int(opts.job_ids),
                                                      int(opts.vary_job_timeout)))
    params = choose_params(rng, opts)
    b = Builder(rng, params, opts)
    lines = b.build()
    comment = ("generated by tests/model/gen.py: seed %s, index %d%s" %
               (seed, index, "" if opts.job_ids else ", no job ids"))
    return lines, params, comment


def write(dirpath, name, lines, params, comment, opts=None):
    opts = opts or Options()
    os.makedirs(dirpath, exist_ok=True)
    scen = os.path.join(dirpath, name + ".jsonl")
    conf = os.path.join(dirpath, name + ".conf")
    with open(scen, "w", encoding="utf-8") as f:
        f.write("# %s\n" % comment)
        for line in lines:
            f.write(line + "\n")
    with open(conf, "w", encoding="utf-8") as f:
        f.write(params.conf_text(emit_job_timeout=opts.emit_job_timeout, comment=comment))
    return scen, conf


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", default="1")
    ap.add_argument("--index", type=int, default=0)
    ap.add_argument("--count", type=int, default=1)
    ap.add_argument("--out", required=True)
    ap.add_argument("--no-job-ids", action="store_true")
    ap.add_argument("--no-job-timeout", action="store_true",
                    help="keep job_timeout at its default (3h) and never write the key")
    a = ap.parse_args(argv)
    opts = Options(job_ids=not a.no_job_ids, vary_job_timeout=not a.no_job_timeout,
                   emit_job_timeout=False if a.no_job_timeout else None)
    for i in range(a.index, a.index + a.count):
        lines, params, comment = generate(a.seed, i, opts)
        scen, conf = write(a.out, "s%s-%d" % (a.seed, i), lines, params, comment, opts)
        print(scen)
    return 0


if __name__ == "__main__":
    sys.exit(main())
