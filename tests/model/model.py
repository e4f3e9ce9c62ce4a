"""model.py - an executable reference model of coverd's billing rules.

Written from design.md section 2 (revision 2, 2026-12-07) and the [decided] notes in the
header comment of daemon/engine.h, NOT from daemon/engine.c. Where neither text settles a
point, the choice made here is listed in tests/model/README.md ("Decisions").

Input: the events of a scenario (the JSON objects of docs/scenario-format.md, with `t`
parsed to milliseconds as `t_ms`) and the engine parameters. Output: sessions, activations
(latest revision of each) and the billed units. Only what billing depends on is modelled:
no distance, moving time, positions, time quality or anomalies.

Python 3 standard library only.
"""

import json
import math
import re
from datetime import datetime, timezone

# ---------------------------------------------------------------------------- times

_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?"
    r"(?:([Zz])|([+-])(\d{2}):(\d{2}))$")

_DAYS_BEFORE_EPOCH = 719163  # date(1970, 1, 1).toordinal()


def parse_time(s):
    """RFC 3339 (the subset of docs/scenario-format.md) -> UTC milliseconds."""
    m = _RFC3339.match(s)
    if not m:
        raise ValueError("not an RFC 3339 time: %r" % (s,))
    y, mo, d, hh, mm, ss = (int(m.group(i)) for i in range(1, 7))
    frac = m.group(7) or ""
    ms = int((frac + "000")[:3])
    from datetime import date
    days = date(y, mo, d).toordinal() - _DAYS_BEFORE_EPOCH
    if hh > 23 or mm > 59 or ss > 59:
        raise ValueError("not an RFC 3339 time: %r" % (s,))
    t = ((days * 24 + hh) * 60 + mm) * 60 + ss
    if m.group(9):
        off = (int(m.group(10)) * 60 + int(m.group(11))) * 60
        t -= off if m.group(9) == "+" else -off
    return t * 1000 + ms


def format_time(ms):
    """UTC milliseconds -> the way coverd writes times (milliseconds only when needed)."""
    if ms is None:
        return None
    sec, rem = divmod(ms, 1000)
    dt = datetime.fromtimestamp(sec, tz=timezone.utc)
    s = dt.strftime("%Y-%m-%dT%H:%M:%S")
    if rem:
        s += ".%03d" % rem
    return s + "Z"


def _id_time(ms):
    return datetime.fromtimestamp(ms // 1000, tz=timezone.utc).strftime("%Y%m%dT%H%M%SZ")


# ---------------------------------------------------------------------------- parameters

MS = 1
SEC = 1000
MIN = 60 * SEC
HOUR = 60 * MIN

TRIGGERS = ("job", "online", "motion")


def parse_duration(s):
    """A configuration duration (docs/configuration.md): 250ms, 90s, 10m, 16h, or bare s."""
    m = re.match(r"^(\d+)(ms|s|m|h)?$", s.strip())
    if not m:
        raise ValueError("not a duration: %r" % (s,))
    n = int(m.group(1))
    return n * {"ms": 1, "s": SEC, "m": MIN, "h": HOUR, None: SEC}[m.group(2)]


def format_duration(ms):
    for unit, size in (("h", HOUR), ("m", MIN), ("s", SEC)):
        if ms % size == 0:
            return "%d%s" % (ms // size, unit)
    return "%dms" % ms


class Params:
    """The engine parameters, with the documented defaults (device as in test.conf)."""

    FIELDS = {
        # name: (conf key, kind, default)
        "trigger": ("trigger", "trigger", "job"),
        "gap_end": ("gap_end", "duration", 10 * MIN),
        "idle_end": ("idle_end", "duration", 30 * MIN),
        "app_silence": ("app_silence", "duration", 5 * MIN),
        "max_session": ("max_session", "duration", 16 * HOUR),
        "min_cover": ("min_cover", "duration", 60 * MIN),
        "unit": ("activation_length", "duration", 1 * HOUR),
        "move_speed": ("move_speed", "number", 2.0),
        "max_eph": ("max_eph", "number", 50.0),
        "max_jump_speed": ("max_jump_speed", "number", 90.0),
        "max_fix_gap": ("max_fix_gap", "duration", 30 * SEC),
        "job_timeout": ("job_timeout", "duration", 3 * HOUR),
    }

    def __init__(self, **kw):
        self.device = kw.pop("device", "dev-test")
        for name, (_key, _kind, default) in self.FIELDS.items():
            setattr(self, name, kw.pop(name, default))
        if kw:
            raise TypeError("unknown parameters: %s" % ", ".join(sorted(kw)))
        if self.trigger not in TRIGGERS:
            raise ValueError("trigger must be one of %s" % (TRIGGERS,))

    def as_dict(self):
        d = {"device": self.device}
        for name in self.FIELDS:
            d[name] = getattr(self, name)
        return d

    def check(self):
        """The limits of engine_config_check and docs/configuration.md; None or why."""
        if not (MIN <= self.unit <= 24 * HOUR):
            return "activation_length out of range"
        for n in ("gap_end", "idle_end", "app_silence", "max_fix_gap"):
            if not (SEC <= getattr(self, n) <= 24 * HOUR):
                return "%s out of range" % n
        if not (MIN <= self.max_session <= 168 * HOUR):
            return "max_session out of range"
        if not (SEC <= self.min_cover <= self.unit):
            return "min_cover must be positive and at most activation_length"
        if -(-self.max_session // self.unit) > 48:
            return "max_session may span at most 48 activations"
        if self.gap_end >= self.max_session:
            return "gap_end must be shorter than max_session"
        if not (0 < self.move_speed < 100):
            return "move_speed out of range"
        if not (0 < self.max_eph <= 100000):
            return "max_eph out of range"
        if not (self.move_speed < self.max_jump_speed <= 10000):
            return "max_jump_speed out of range"
        if not (MIN <= self.job_timeout <= 168 * HOUR):
            return "job_timeout out of range"
        return None

    def conf_text(self, emit_job_timeout=None, comment=None):
        """A configuration file in tests/scenarios/test.conf's layout. job_timeout is
        written when emit_job_timeout is true, or (None) when it is not the default."""
        out = []
        if comment:
            for line in comment.splitlines():
                out.append("# " + line if line else "#")
            out.append("")
        out += ["[device]", "id = %s" % self.device, "", "[engine]"]
        for name, (key, kind, default) in self.FIELDS.items():
            v = getattr(self, name)
            if name == "job_timeout":
                emit = emit_job_timeout if emit_job_timeout is not None else v != default
                if not emit:
                    continue
            if kind == "duration":
                v = format_duration(v)
            elif kind == "number":
                v = "%g" % v
            out.append("%s = %s" % (key, v))
        out += ["", "[gnss]", "source = none", "", "[log]", "level = warn", "syslog = no",
                "", "[mqtt]", "enabled = no", ""]
        return "\n".join(out)

    @classmethod
    def from_conf(cls, path):
        """Reads the [device] id and [engine] keys of a coverd.conf (other sections are
        ignored)."""
        kw = {}
        section = None
        keys = {v[0]: k for k, v in cls.FIELDS.items()}
        with open(path, encoding="utf-8") as f:
            for raw in f:
                line = raw.strip()
                if not line or line[0] in "#;":
                    continue
                if line.startswith("["):
                    section = line.strip("[]").strip()
                    continue
                k, _, v = line.partition("=") if "=" in line else line.partition(":")
                k = k.strip()
                v = v.split(" ;")[0].strip()
                if section == "device" and k == "id":
                    kw["device"] = v
                elif section == "engine" and k in keys:
                    name = keys[k]
                    kind = cls.FIELDS[name][1]
                    if kind == "duration":
                        kw[name] = parse_duration(v)
                    elif kind == "number":
                        kw[name] = float(v)
                    else:
                        kw[name] = v
        return cls(**kw)


# ---------------------------------------------------------------------------- geometry

def distance_m(lat1, lon1, lat2, lon2):
    """Great-circle distance (haversine, mean Earth radius), as engine_distance_m."""
    r = 6371008.8
    rad = math.pi / 180.0
    dlat = (lat2 - lat1) * rad
    dlon = (lon2 - lon1) * rad
    a = (math.sin(dlat / 2) ** 2 +
         math.cos(lat1 * rad) * math.cos(lat2 * rad) * math.sin(dlon / 2) ** 2)
    a = min(a, 1.0)
    return 2.0 * r * math.atan2(math.sqrt(a), math.sqrt(1.0 - a))


# ---------------------------------------------------------------------------- scenarios

def load_scenario(path):
    """The events of a scenario file: dicts as in the file plus t_ms and line (1-based).
    Blank and # lines are skipped; a line that is not JSON raises ValueError."""
    with open(path, encoding="utf-8") as f:
        return parse_lines(f.read().splitlines())


def parse_lines(lines):
    events = []
    for n, line in enumerate(lines, 1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        ev = json.loads(s)
        ev["t_ms"] = parse_time(ev["t"])
        ev["line"] = n
        events.append(ev)
    return events


# ---------------------------------------------------------------------------- the model

END_REASONS = ("offline", "gap_end", "idle_end", "app_silence", "max_session",
               "policy_revoked", "end_cover", "private", "hour", "voided", "job_timeout")

# Deadlines at the same instant are judged in this order (engine.h): job_timeout, gap_end,
# app silence, idle_end, max_session, then the hour boundary.
P_TIMEOUT, P_GAP, P_SILENCE, P_IDLE, P_MAX, P_HOUR = range(6)

ANON = object()  # the key of the count of jobs without id


class Activation:
    __slots__ = ("index", "start", "end", "end_reason", "status", "revision")

    def __init__(self, index, start):
        self.index = index
        self.start = start
        self.end = None
        self.end_reason = None
        self.status = "open"
        self.revision = 1


class Session:
    def __init__(self, sid, ordinal, start, policy_id, rule):
        self.id = sid
        self.ordinal = ordinal
        self.start = start
        self.end = None
        self.end_reason = None
        self.policy_id = policy_id
        self.open_rule = rule
        self.open = True
        self.jobs_accepted = 0
        self.accept_times = []   # times of the jobs accepted in the session
        self.acts = [Activation(0, start)]


class Model:
    """The engine, one event at a time: step(event) for each event in file order, then
    finish(). Events are dicts with t_ms and the scenario fields."""

    MAX_JOBS = 16

    def __init__(self, params):
        self.p = params
        self.started = False
        self.last_t = None           # last accepted event
        self.final_t = None          # last event of any kind (for the end of a replay)
        self.online = False
        self.private = False
        self.ignition = False
        self.policy = None           # held policy id, or None
        self.jobs = {}               # id -> [accepted_ms, last_ms]
        self.anon = 0
        self.anon_last = None
        self.last_job_end = None
        self.grace_from = None
        self.grace_by_timeout = False
        self.silence_ended = False
        self.last_app = None
        self.last_move = None
        self.last_fix = None         # (t, lat, lon) of the last accepted fix
        self.sessions = []
        self.s = None                # the open session
        self.rejected = {"out_of_order": 0, "policy_mismatch": 0, "too_many_jobs": 0}
        self.notes = {"duplicate": 0, "job_ignored": 0, "job_timeout": 0}
        self.log = []                # (t, text): what the model did, for diffs
        self._clock = None           # the time deadlines are being fired at (trace only)

    # -- helpers

    def _jobs_total(self):
        return len(self.jobs) + self.anon

    def _note(self, t, text):
        self.log.append((t, text))

    # -- sessions and activations

    def _open(self, at, rule):
        ordinal = len(self.sessions) + 1
        sid = "%s-%s-%d" % (self.p.device, _id_time(at), ordinal)
        s = Session(sid, ordinal, at, self.policy, rule)
        self.sessions.append(s)
        self.s = s
        self._note(at, "open %s by %s" % (sid, rule))

    def _close(self, end, reason, at):
        s = self.s
        unit = self.p.unit
        end = max(end, s.start)
        s.end = end
        s.end_reason = reason
        s.open = False
        self.s = None
        if reason == "app_silence":
            self.silence_ended = True
        void0 = end == s.start and s.jobs_accepted == 0
        # A job accepted exactly at the end, on an activation that began then and is now
        # voided, belongs to the last billed activation (engine.h, Activations): that
        # record changes, so it gets a new revision even if its end does not move.
        moved = None
        if end in s.accept_times:
            for a in s.acts[1:]:
                if a.status != "voided" and a.start == end:
                    prev = s.acts[a.index - 1]
                    if prev.status != "voided":
                        moved = prev.index
        for a in s.acts:
            if a.status == "voided":
                continue
            if (a.index > 0 and a.start >= end) or (a.index == 0 and void0):
                a.status = "voided"
                a.revision += 1
                a.end = a.start
                a.end_reason = "voided"
            elif a.status == "open":
                a.status = "closed"
                a.revision += 1
                a.end = min(a.start + unit, end)
                a.end_reason = reason
            elif a.end > end:
                a.revision += 1
                a.end = end
                a.end_reason = reason
            elif a.index == moved:
                a.revision += 1
        self._note(at, "close %s at %s (%s)" % (s.id, format_time(end), reason))

    def _hour(self, h):
        s = self.s
        a = s.acts[-1]
        a.status = "closed"
        a.revision += 1
        a.end = h
        a.end_reason = "hour"
        s.acts.append(Activation(len(s.acts), h))

    def _can_open(self):
        return self.s is None and self.policy is not None and not self.private

    def _open_in_progress(self, at):
        """Under every trigger: a job in progress, online, not private, a policy, no
        session, and not silent after a silence ended cover: a session opens now."""
        if (self._jobs_total() > 0 and self.online and self._can_open() and
                not self.silence_ended):
            self._open(at, "start_job_in_progress")

    def _end_event(self, t, reason):
        """offline, private_on, end cover, revoke: at t, or at grace_from inside the grace."""
        s = self.s
        if s is None:
            return
        end = t
        if (self.p.trigger == "job" and self._jobs_total() == 0 and
                self.grace_from is not None and t <= self.grace_from + self.p.gap_end):
            end = self.grace_from
        self._close(end, reason, t)

    def _clear_jobs(self):
        self.jobs.clear()
        self.anon = 0

    def _job_end(self, t):
        self.last_job_end = t
        if self._jobs_total() == 0:
            self.grace_from = t
            self.grace_by_timeout = False

    # -- deadlines

    def deadlines(self):
        """Every pending deadline as (d, priority, kind, data), in firing order first.
        A deadline may lie in the past (made pending by a job timeout); it fires at once."""
        p = self.p
        out = []
        for jid, (_acc, last) in self.jobs.items():
            out.append((last + p.job_timeout, P_TIMEOUT, "timeout", jid))
        if self.anon > 0:
            out.append((self.anon_last + p.job_timeout, P_TIMEOUT, "timeout", ANON))
        s = self.s
        if s is not None:
            njobs = self._jobs_total()
            alive_until = (self.last_app + p.app_silence) if self.last_app is not None else None
            out.append((s.start + len(s.acts) * p.unit, P_HOUR, "hour", None))
            out.append((s.start + p.max_session, P_MAX, "end",
                        (s.start + p.max_session, "max_session")))
            if p.trigger == "job" and njobs == 0 and self.grace_from is not None:
                g = self.grace_from + p.gap_end
                # The grace is judged only while the app is alive (at g inclusive).
                if alive_until is None or g <= alive_until:
                    reason = "job_timeout" if self.grace_by_timeout else "gap_end"
                    out.append((g, P_GAP, "end", (self.grace_from, reason)))
            if p.trigger != "motion" and self.last_app is not None:
                still = s.start if self.last_move is None else max(s.start, self.last_move)
                x = p.idle_end if njobs > 0 else p.gap_end
                d = max(alive_until, still + x)
                out.append((d, P_SILENCE, "end", (max(self.last_app, still), "app_silence")))
            if p.trigger != "job" and njobs == 0:
                base = s.start
                if self.last_move is not None:
                    base = max(base, self.last_move)
                if self.last_job_end is not None:
                    base = max(base, self.last_job_end)
                out.append((base + p.idle_end, P_IDLE, "end", (base, "idle_end")))
        out.sort(key=lambda x: (x[0], x[1]))
        return out

    def _fire(self, limit, inclusive):
        """Fires, in time order, every deadline before limit (at or before, inclusive)."""
        while True:
            dl = self.deadlines()
            if not dl:
                return
            d, _prio, kind, data = dl[0]
            if d > limit or (d == limit and not inclusive):
                return
            # when the rule is detected (for the trace only): deadlines fire in time order,
            # one made pending by a job timeout is detected at that timeout
            self._clock = d if self._clock is None else max(self._clock, d)
            at = self._clock
            if kind == "timeout":
                self.notes["job_timeout"] += 1
                if data is ANON:
                    last = self.anon_last
                    self.anon = 0
                    self._note(at, "jobs without id timed out (last event %s)" % format_time(last))
                else:
                    last = self.jobs.pop(data)[1]
                    self._note(at, "job %s timed out (last event %s)" % (data, format_time(last)))
                self.last_job_end = last if self.last_job_end is None else max(self.last_job_end, last)
                if self._jobs_total() == 0:
                    # The session ends by job_timeout when the grace from the last job end
                    # is already over; otherwise the grace runs on and gap_end ends it.
                    self.grace_from = self.last_job_end
                    self.grace_by_timeout = self.grace_from + self.p.gap_end < d
            elif kind == "end":
                end, reason = data
                self._close(end, reason, at)
            else:
                self._hour(d)
            self._open_in_progress(d)

    # -- events

    def step(self, ev):
        """Applies one event (a dict with t_ms). Returns None, or the reason it was
        rejected."""
        t = ev["t_ms"]
        typ = ev["type"]
        if typ == "restart":
            return None   # the daemon must resume exactly where it was
        self.final_t = t if self.final_t is None else max(self.final_t, t)
        if self.started and t < self.last_t:
            self.rejected["out_of_order"] += 1
            return "out_of_order"
        # The deadlines before t fire first; then the event is judged at its instant: a
        # rejected one (policy_mismatch, too_many_jobs) changes nothing more, is no sign of
        # life and is not the last accepted event.
        self._clock = self.last_t
        self._fire(t, inclusive=False)
        why = self._reject_reason(ev)
        if why:
            self.rejected[why] += 1
            self._note(t, "rejected %s (%s)" % (typ, why))
            return why
        self.started = True
        self.last_t = t

        if typ == "app":
            self._app(ev, t)
        elif typ == "fix":
            self._fix(ev, t)
        elif typ == "policy":
            self._policy(ev, t)
        elif typ == "ignition":
            self.ignition = bool(ev["on"])
        elif typ == "cmd":
            if ev["event"] == "end_cover":
                self._end_event(t, "end_cover")
                self._clear_jobs()
        # tick, power: time only
        self._open_in_progress(t)
        return None

    def _reject_reason(self, ev):
        typ = ev["type"]
        if typ == "policy" and ev["event"] == "revoke":
            pid = ev.get("policy_id")
            if pid is not None and pid != self.policy and (self.s is None or pid != self.s.policy_id):
                return "policy_mismatch"
        if typ == "app" and ev["event"] == "job_accepted" and self.online and not self.private:
            jid = ev.get("job_id")
            if (jid is None or jid not in self.jobs) and self._jobs_total() >= self.MAX_JOBS:
                return "too_many_jobs"
        return None

    def _app(self, ev, t):
        p = self.p
        e = ev["event"]
        jid = ev.get("job_id")
        # Every app event is a sign of life; one later than last_app + app_silence is the
        # app's return after a silence.
        if self.last_app is not None and t > self.last_app + p.app_silence:
            if (self.s is not None and p.trigger == "job" and self._jobs_total() == 0 and
                    self.grace_from is not None and self.grace_from + p.gap_end < t):
                self.grace_from = t
                self.grace_by_timeout = False
                self._note(t, "app back after a silence that outlived the grace: grace from now")
        self.silence_ended = False
        self.last_app = t

        if e == "online":
            self.online = True
            if p.trigger == "online" and self._can_open():
                self._open(t, "start_online")
        elif e == "offline":
            self._end_event(t, "offline")
            self.online = False
            self._clear_jobs()
        elif e == "job_accepted":
            if not self.online or self.private:
                self.notes["job_ignored"] += 1
                return
            if jid is not None:
                if jid in self.jobs:
                    self.notes["duplicate"] += 1
                    return
                self.jobs[jid] = [t, t]
            else:
                self.anon += 1
                self.anon_last = t
            # JOB trigger: the accept starts cover. Other triggers: a job in progress
            # starts it at that moment (the accept itself), so the accept is the session's.
            if self._can_open():
                self._open(t, "start_job" if p.trigger == "job" else "start_job_in_progress")
            if self.s is not None:
                self.s.jobs_accepted += 1
                self.s.accept_times.append(t)
        elif e == "job_picked_up":
            if jid is not None:
                if jid in self.jobs:
                    self.jobs[jid][1] = t
            elif self.anon > 0:
                self.anon_last = t
        elif e in ("job_delivered", "job_cancelled"):
            if jid is not None:
                if jid not in self.jobs:
                    self.notes["duplicate"] += 1
                    return
                del self.jobs[jid]
            else:
                if self.anon == 0:
                    self.notes["duplicate"] += 1
                    return
                self.anon -= 1
                self.anon_last = t
            self._job_end(t)
        elif e == "private_on":
            self._end_event(t, "private")
            self.private = True
            self._clear_jobs()
        elif e == "private_off":
            self.private = False
        # heartbeat: a sign of life only

    def _fix(self, ev, t):
        p = self.p
        mode = ev.get("mode", 3)
        eph = ev.get("eph")
        if mode not in (2, 3) or eph is None or eph > p.max_eph:
            return   # counted by reason, otherwise ignored
        lat, lon = ev["lat"], ev["lon"]
        speed = ev.get("speed")
        jump = False
        if self.last_fix is not None:
            pt, plat, plon = self.last_fix
            dt = t - pt
            dist = distance_m(plat, plon, lat, lon)
            if dt > 0:
                implied = dist / (dt / 1000.0)
                jump = implied > p.max_jump_speed
                if speed is None and dt <= p.max_fix_gap and not jump:
                    speed = implied
        moving = speed is not None and speed >= p.move_speed and not jump
        self.last_fix = (t, lat, lon)
        if moving:
            self.last_move = t
            if p.trigger == "motion" and self.ignition and self._can_open():
                self._open(t, "start_motion")

    def _policy(self, ev, t):
        pid = ev.get("policy_id")
        if ev["event"] == "assign":
            self.policy = pid
            return
        if pid is None:
            self.policy = None
            self._end_event(t, "policy_revoked")
            return
        if self.s is not None and pid == self.s.policy_id:
            self._end_event(t, "policy_revoked")
        if pid == self.policy:
            self.policy = None

    def finish(self):
        """The end of a replay: the deadlines due at or before the last event's time."""
        if self.final_t is not None:
            self._clock = self.last_t
            self._fire(self.final_t, inclusive=True)

    # -- results

    def result(self):
        sessions = []
        acts = []
        for s in self.sessions:
            sessions.append({"id": s.id, "start": s.start, "end": s.end,
                             "end_reason": s.end_reason, "policy_id": s.policy_id,
                             "open": s.open})
            live = [a for a in s.acts if a.status != "voided"]
            for a in s.acts:
                jobs = 0
                if a.status != "voided":
                    for jt in s.accept_times:
                        if s.end is not None and jt > s.end:
                            continue
                        hi = a.end if a.end is not None else a.start + self.p.unit
                        if a.start <= jt < hi or (s.end is not None and jt == s.end and
                                                  a is live[-1]):
                            jobs += 1
                acts.append({"id": "%s-%d" % (s.id, a.index), "session_id": s.id,
                             "index": a.index, "start": a.start, "end": a.end,
                             "end_reason": a.end_reason, "status": a.status,
                             "revision": a.revision, "jobs": jobs})
        billed = sum(1 for a in acts if a["status"] != "voided")
        return {"sessions": sessions, "activations": acts, "billed": billed,
                "rejected": sum(self.rejected.values())}


def run_model(events, params):
    """Runs a whole scenario; returns the model's result (see Model.result)."""
    m = Model(params)
    for ev in events:
        m.step(ev)
    m.finish()
    return m.result()


def run_file(path, params):
    return run_model(load_scenario(path), params)
