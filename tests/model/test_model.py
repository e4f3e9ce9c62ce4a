#!/usr/bin/env python3
"""Unit tests of the reference model (tests/model/model.py) alone, no coverd needed.

Every expectation here is derived by hand from design.md section 2 (revision 2) and the
[decided] notes of daemon/engine.h; the comment on each case says which rule it checks.
Times are offsets from 2026-11-28T09:00:00Z.
"""

import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import model  # noqa: E402
from model import HOUR, MIN, SEC, Params, parse_time, run_model  # noqa: E402

BASE = parse_time("2026-11-28T09:00:00Z")


def ev(t, typ, **kw):
    """An event at BASE + t milliseconds."""
    d = {"t": model.format_time(BASE + t), "type": typ, "t_ms": BASE + t}
    d.update(kw)
    return d


def app(t, event, **kw):
    return ev(t, "app", event=event, **kw)


def assign(t, pid="P-1"):
    return ev(t, "policy", event="assign", policy_id=pid, driver_id="D-1", vehicle_id="V-1")


def revoke(t, pid=None):
    return ev(t, "policy", event="revoke", **({"policy_id": pid} if pid else {}))


def fix(t, lat=51.5, lon=-0.12, speed=None, eph=5.0, mode=3):
    d = {"lat": lat, "lon": lon, "mode": mode}
    if speed is not None:
        d["speed"] = speed
    if eph is not None:
        d["eph"] = eph
    return ev(t, "fix", **d)


def heartbeats(start, stop, period):
    out = []
    t = start
    while t <= stop:
        out.append(app(t, "heartbeat"))
        t += period
    return out


def tick(t):
    return ev(t, "tick")


def shift_start():
    return [assign(-10 * MIN), app(-5 * MIN, "online")]


def run(events, **params):
    events = sorted(events, key=lambda e: e["t_ms"])  # stable: same-time order kept
    return run_model(events, Params(**params))


class ModelTest(unittest.TestCase):
    def sessions(self, r):
        return [(s["start"] - BASE, None if s["end"] is None else s["end"] - BASE,
                 s["end_reason"]) for s in r["sessions"]]

    def acts(self, r):
        return [(a["index"], a["start"] - BASE, None if a["end"] is None else a["end"] - BASE,
                 a["end_reason"], a["status"], a["revision"]) for a in r["activations"]]

    # The audit's case: a 40-minute job, the app sending a heartbeat exactly every
    # app_silence (5 min) for ten hours. A heartbeat exactly app_silence after the previous
    # app event is not a silence, so the gap_end grace runs and ends cover at the
    # delivery: one unit, not ten.
    def test_ten_hours_of_heartbeats_bill_one_unit(self):
        evs = shift_start() + [app(0, "job_accepted")]
        evs += [fix(t, lat=51.5 + t / HOUR * 0.05, speed=8.0) for t in range(30 * SEC, 40 * MIN, 30 * SEC)]
        evs += [app(40 * MIN, "job_delivered")]
        evs += heartbeats(5 * MIN, 10 * HOUR, 5 * MIN)
        evs += [fix(t, lat=51.5 + 40 / 60 * 0.05, speed=0.0) for t in range(41 * MIN, 10 * HOUR, 10 * MIN)]
        r = run(evs)
        self.assertEqual(self.sessions(r), [(0, 40 * MIN, "gap_end")])
        self.assertEqual(r["billed"], 1)

    # Ties: all events of one instant are applied before a deadline due at that instant is
    # judged, so a job accepted exactly at gap_end continues the session, even with a fix
    # at the same millisecond applied first.
    def test_accept_exactly_at_gap_end_continues(self):
        evs = shift_start() + [app(0, "job_accepted"), app(20 * MIN, "job_delivered")]
        evs += heartbeats(MIN, 29 * MIN, MIN)
        evs += [fix(30 * MIN, speed=0.0), app(30 * MIN, "job_accepted")]
        evs += heartbeats(31 * MIN, 70 * MIN, MIN)
        evs += [app(50 * MIN, "job_delivered")]
        r = run(evs)
        self.assertEqual(self.sessions(r), [(0, 50 * MIN, "gap_end")])
        self.assertEqual(r["billed"], 1)

    # One millisecond later the grace has run out: cover ended at the first delivery, and
    # the accept starts a new session.
    def test_accept_one_ms_after_gap_end_starts_a_new_session(self):
        evs = shift_start() + [app(0, "job_accepted"), app(20 * MIN, "job_delivered")]
        evs += heartbeats(MIN, 29 * MIN, MIN)
        evs += [fix(30 * MIN + 1, speed=0.0), app(30 * MIN + 1, "job_accepted")]
        evs += heartbeats(31 * MIN, 70 * MIN, MIN)
        evs += [app(50 * MIN, "job_delivered")]
        r = run(evs)
        self.assertEqual(self.sessions(r), [(0, 20 * MIN, "gap_end"),
                                            (30 * MIN + 1, 50 * MIN, "gap_end")])
        self.assertEqual(r["billed"], 2)

    # job_picked_up never creates a job: a stray pickup after the last delivery neither
    # extends cover nor bills (revision 1 made it a job in progress: 3 units).
    def test_stray_pickup_after_last_delivery_bills_one(self):
        evs = shift_start() + [app(0, "job_accepted"), app(20 * MIN, "job_delivered"),
                               app(25 * MIN, "job_picked_up")]
        evs += heartbeats(MIN, 3 * HOUR, 4 * MIN)
        r = run(evs)
        self.assertEqual(self.sessions(r), [(0, 20 * MIN, "gap_end")])
        self.assertEqual(r["billed"], 1)

    # A delivery or cancel with no job in progress has no effect: a re-sent delivery does
    # not extend the grace.
    def test_resent_delivery_without_id_adds_nothing(self):
        evs = shift_start() + [app(0, "job_accepted"), app(20 * MIN, "job_delivered"),
                               app(28 * MIN, "job_delivered")]
        evs += heartbeats(MIN, 2 * HOUR, MIN)
        r = run(evs)
        self.assertEqual(self.sessions(r), [(0, 20 * MIN, "gap_end")])
        self.assertEqual(r["billed"], 1)

    # With job ids a re-sent delivery of a job already delivered is a duplicate: it does
    # not end the other job in progress.
    def test_resent_delivery_with_id_keeps_the_other_job(self):
        evs = shift_start() + [app(0, "job_accepted", job_id="A"),
                               app(5 * MIN, "job_accepted", job_id="B"),
                               app(20 * MIN, "job_delivered", job_id="A"),
                               app(21 * MIN, "job_delivered", job_id="A"),
                               app(50 * MIN, "job_delivered", job_id="B")]
        evs += heartbeats(MIN, 2 * HOUR, MIN)
        r = run(evs)
        self.assertEqual(self.sessions(r), [(0, 50 * MIN, "gap_end")])
        self.assertEqual(r["billed"], 1)

    # A duplicate accept has no effect: one delivery ends the job.
    def test_duplicate_accept_with_id(self):
        evs = shift_start() + [app(0, "job_accepted", job_id="A"),
                               app(MIN, "job_accepted", job_id="A"),
                               app(20 * MIN, "job_delivered", job_id="A")]
        evs += heartbeats(MIN, 2 * HOUR, MIN)
        r = run(evs)
        self.assertEqual(self.sessions(r), [(0, 20 * MIN, "gap_end")])

    # A six-minute heartbeat gap inside the grace, standing still: silent and stationary,
    # cover ends at the later of the last app event and the last movement (the delivery);
    # one unit, as without the silence.
    def test_six_minute_gap_in_grace_standing_bills_one(self):
        evs = shift_start() + [app(0, "job_accepted"), app(30 * MIN, "job_delivered")]
        evs += heartbeats(MIN, 29 * MIN, MIN) + heartbeats(36 * MIN, 2 * HOUR, MIN)
        r = run(evs)
        self.assertEqual(self.sessions(r), [(0, 30 * MIN, "app_silence")])
        self.assertEqual(r["billed"], 1)

    # The same gap while moving: the silence suspends the grace, the app comes back
    # before the grace ran out, so the grace goes on counting from the delivery.
    def test_six_minute_gap_in_grace_moving_bills_one(self):
        evs = shift_start() + [app(0, "job_accepted"), app(30 * MIN, "job_delivered")]
        evs += heartbeats(MIN, 29 * MIN, MIN) + heartbeats(36 * MIN, 2 * HOUR, MIN)
        evs += [fix(t, lat=51.5 + t / HOUR * 0.05, speed=8.0)
                for t in range(30 * MIN + 20 * SEC, 36 * MIN, 20 * SEC)]
        r = run(evs)
        self.assertEqual(self.sessions(r), [(0, 30 * MIN, "gap_end")])
        self.assertEqual(r["billed"], 1)

    # A silence in which movement kept the session alive past the end of the grace: the
    # grace restarts from the app's return.
    def test_grace_restarts_from_return_after_moving_silence(self):
        evs = shift_start() + [app(0, "job_accepted"), app(30 * MIN, "job_delivered")]
        evs += heartbeats(MIN, 29 * MIN, MIN) + heartbeats(50 * MIN, 2 * HOUR, MIN)
        evs += [fix(t, lat=51.5 + t / HOUR * 0.05, speed=8.0)
                for t in range(30 * MIN + 20 * SEC, 49 * MIN, 20 * SEC)]
        r = run(evs)
        self.assertEqual(self.sessions(r), [(0, 50 * MIN, "gap_end")])
        self.assertEqual(r["billed"], 1)

    # A revoke naming a policy other than the one held is refused and changes nothing.
    def test_revoke_of_another_policy_changes_nothing(self):
        evs = shift_start() + [app(0, "job_accepted"), revoke(10 * MIN, "P-2"),
                               app(20 * MIN, "job_delivered")]
        evs += heartbeats(MIN, HOUR, MIN)
        r = run(evs)
        self.assertEqual(self.sessions(r), [(0, 20 * MIN, "gap_end")])
        self.assertEqual(r["rejected"], 1)

    # An event is judged at its instant, after the deadlines before it have fired. Here
    # the session (P-1) ended by gap_end at 30 min; a revoke of P-1 arriving after that,
    # while P-2 is held, names neither the held policy nor an open session's: refused, even
    # though nothing had fired the gap_end deadline before the revoke arrived.
    def test_rejection_is_judged_after_deadlines_fire(self):
        evs = shift_start() + [app(0, "job_accepted"), assign(MIN, "P-2"),
                               app(20 * MIN, "job_delivered")]
        evs += heartbeats(21 * MIN, 29 * MIN, MIN) + [revoke(30 * MIN + 1, "P-1")]
        evs += heartbeats(31 * MIN, HOUR, MIN) + [revoke(HOUR + 1, "P-1")]
        r = run(evs)
        self.assertEqual(self.sessions(r), [(0, 20 * MIN, "gap_end")])
        self.assertEqual(r["rejected"], 2)

    # The 17th job in progress is refused, but only when 16 are still in progress at its
    # instant: a job that timed out before it makes room.
    def test_too_many_jobs_after_a_timeout(self):
        evs = shift_start() + [app(0, "job_accepted", job_id="A")]
        evs += [app(MIN, "job_accepted") for _ in range(16)]          # the 17th: refused
        evs += heartbeats(2 * MIN, 70 * MIN, 2 * MIN)
        evs += [app(HOUR + 1, "job_accepted", job_id="B")]            # A timed out at 1 h
        r = run(evs, job_timeout=HOUR)
        self.assertEqual(r["rejected"], 1)

    # Revoking the policy the session runs under ends it; inside the grace the end is
    # backdated to the last job end and keeps its own reason.
    def test_revoke_inside_grace_is_backdated(self):
        evs = shift_start() + [app(0, "job_accepted"), app(20 * MIN, "job_delivered"),
                               revoke(25 * MIN, "P-1")]
        evs += heartbeats(MIN, HOUR, MIN)
        r = run(evs)
        self.assertEqual(self.sessions(r), [(0, 20 * MIN, "policy_revoked")])

    # offline inside the grace (inclusive at exactly gap_end) ends at the last delivery
    # with reason offline; one ms after, gap_end has already ended it.
    def test_offline_inside_and_outside_grace(self):
        for at, reason in ((25 * MIN, "offline"), (30 * MIN, "offline"),
                           (30 * MIN + 1, "gap_end")):
            evs = shift_start() + [app(0, "job_accepted"), app(20 * MIN, "job_delivered"),
                                   app(at, "offline")]
            evs += heartbeats(MIN, 29 * MIN, MIN)
            r = run(evs)
            self.assertEqual(self.sessions(r), [(0, 20 * MIN, reason)], at)

    # Online trigger, no movement, no job before idle_end: a session of zero length with
    # no job accepted bills nothing; its first activation is voided.
    def test_zero_length_online_session_is_voided(self):
        evs = [assign(-MIN), app(0, "online")] + heartbeats(MIN, 40 * MIN, MIN)
        r = run(evs, trigger="online")
        self.assertEqual(self.sessions(r), [(0, 0, "idle_end")])
        self.assertEqual(self.acts(r), [(0, 0, 0, "voided", "voided", 2)])
        self.assertEqual(r["billed"], 0)

    # A job with no event of its own for job_timeout counts as ended at its last job event:
    # the lost delivery bills one unit, the hours opened meanwhile are voided.
    def test_job_timeout(self):
        evs = shift_start() + [app(0, "job_accepted")] + heartbeats(5 * MIN, 4 * HOUR, 5 * MIN)
        r = run(evs)
        self.assertEqual(self.sessions(r), [(0, 0, "job_timeout")])
        self.assertEqual(self.acts(r), [
            (0, 0, 0, "job_timeout", "closed", 3),
            (1, HOUR, HOUR, "voided", "voided", 3),
            (2, 2 * HOUR, 2 * HOUR, "voided", "voided", 2),
        ])
        self.assertEqual(r["billed"], 1)

    # A pickup refreshes the job's timeout clock; a duplicate accept does not.
    def test_job_timeout_pickup_refreshes_duplicate_accept_does_not(self):
        evs = shift_start() + [app(0, "job_accepted", job_id="A"),
                               app(30 * MIN, "job_picked_up", job_id="A"),
                               app(0, "job_accepted", job_id="B"),
                               app(40 * MIN, "job_accepted", job_id="B")]
        evs += heartbeats(5 * MIN, 5 * HOUR, 5 * MIN)
        r = run(evs, job_timeout=HOUR)
        # B times out at 1h (its last own event is the accept at 0), A at 1h30 (pickup):
        # the last job end is then 30 min, the grace is long over: job_timeout at 30 min.
        self.assertEqual(self.sessions(r), [(0, 30 * MIN, "job_timeout")])
        self.assertEqual(r["billed"], 1)

    # Hourly activations: opened when the hour begins, closed at the hour or the session end.
    def test_hourly_activations(self):
        evs = shift_start() + [app(0, "job_accepted"), app(150 * MIN, "job_delivered")]
        evs += heartbeats(MIN, 3 * HOUR, MIN)
        r = run(evs)
        self.assertEqual(self.acts(r), [
            (0, 0, HOUR, "hour", "closed", 2),
            (1, HOUR, 2 * HOUR, "hour", "closed", 2),
            (2, 2 * HOUR, 150 * MIN, "gap_end", "closed", 2),
        ])
        self.assertEqual(r["billed"], 3)

    # An activation opened inside the grace whose session end is then backdated before its
    # start is voided by a new revision.
    def test_activation_opened_in_grace_is_voided(self):
        evs = shift_start() + [app(0, "job_accepted"), app(55 * MIN, "job_delivered")]
        evs += heartbeats(MIN, 2 * HOUR, MIN)
        r = run(evs)
        self.assertEqual(self.acts(r), [
            (0, 0, 55 * MIN, "gap_end", "closed", 3),   # closed at the hour, closed again
            (1, HOUR, HOUR, "voided", "voided", 2),
        ])
        self.assertEqual(r["billed"], 1)

    # max_session mid-job: a session opens at once; an assignment mid-session applies
    # from the next session.
    def test_max_session_mid_job_reopens_with_the_new_policy(self):
        evs = shift_start() + [app(0, "job_accepted", job_id="A"), assign(30 * MIN, "P-2")]
        evs += [app(t, "job_picked_up", job_id="A") for t in (HOUR, 2 * HOUR)]
        evs += [app(150 * MIN, "job_delivered", job_id="A")]
        evs += heartbeats(MIN, 4 * HOUR, MIN)
        r = run(evs, max_session=2 * HOUR)
        self.assertEqual(self.sessions(r), [(0, 2 * HOUR, "max_session"),
                                            (2 * HOUR, 150 * MIN, "gap_end")])
        self.assertEqual([s["policy_id"] for s in r["sessions"]], ["P-1", "P-2"])
        self.assertEqual(r["billed"], 3)

    # Silent and stationary with a job in progress: cover ends after idle_end, and opens
    # again on the app's return while the job is still in progress.
    def test_silence_mid_job_reopens_on_return(self):
        evs = shift_start() + [app(0, "job_accepted"), app(40 * MIN, "heartbeat"),
                               app(50 * MIN, "job_delivered")]
        evs += heartbeats(51 * MIN, 2 * HOUR, MIN)
        r = run(evs)
        self.assertEqual(self.sessions(r), [(0, 0, "app_silence"),
                                            (40 * MIN, 50 * MIN, "gap_end")])
        self.assertEqual(r["billed"], 2)

    # A policy assigned while a job is in progress (online, not private) opens a session
    # at the assignment.
    def test_policy_assigned_mid_job_opens_a_session(self):
        evs = [app(0, "online"), app(MIN, "job_accepted"), assign(10 * MIN),
               app(20 * MIN, "job_delivered")] + heartbeats(2 * MIN, HOUR, 2 * MIN)
        r = run(evs)
        self.assertEqual(self.sessions(r), [(10 * MIN, 20 * MIN, "gap_end")])
        self.assertEqual(r["sessions"][0]["id"], "dev-test-20261128T091000Z-1")

    # Accepts while offline or private are not jobs in progress.
    def test_accept_while_offline_or_private_is_ignored(self):
        evs = [assign(0), app(MIN, "job_accepted"), app(2 * MIN, "online"),
               app(3 * MIN, "private_on"), app(4 * MIN, "job_accepted"), tick(HOUR)]
        r = run(evs)
        self.assertEqual(r["sessions"], [])

    # Events older than the last accepted one are rejected and change nothing.
    def test_out_of_order_is_rejected(self):
        evs = shift_start() + [app(0, "job_accepted"), app(20 * MIN, "job_delivered"),
                               app(10 * MIN, "job_accepted")] + heartbeats(21 * MIN, HOUR, MIN)
        r = run_model(evs, Params())  # file order, not sorted
        self.assertEqual(self.sessions(r), [(0, 20 * MIN, "gap_end")])
        self.assertEqual(r["rejected"], 1)

    # Movement: a jittering parked receiver (derived speed below move_speed) does not keep
    # a silent app's session alive; a fix without eph, or with mode 1, is not movement.
    def test_movement_rules(self):
        evs = shift_start() + [app(0, "job_accepted"), app(10 * MIN, "job_delivered")]
        # the app falls silent after the delivery; the vehicle stands
        evs += [fix(10 * MIN + k * 20 * SEC, lat=51.5 + (k % 2) * 0.00002) for k in range(60)]
        evs += [fix(12 * MIN, lat=51.6, speed=10.0, eph=None),
                fix(13 * MIN, lat=51.7, speed=10.0, mode=1),
                fix(14 * MIN, lat=51.8, speed=10.0, eph=80.0)]
        evs += [tick(2 * HOUR)]
        r = run(evs)
        # gap_end at 20 min would need the app alive at 20 min; it fell silent at 15 min.
        # Silence: after 15 min and still since the start + gap_end: ends at the delivery.
        self.assertEqual(self.sessions(r), [(0, 10 * MIN, "app_silence")])

    # Open at the end of the replay: end null, the current activation open; a deadline at
    # exactly the last event's time is judged at the end of the replay.
    def test_open_at_end_and_final_deadline(self):
        evs = shift_start() + [app(0, "job_accepted"), app(20 * MIN, "job_delivered")]
        evs += heartbeats(21 * MIN, 28 * MIN, MIN) + [app(30 * MIN, "heartbeat")]
        r = run(evs)
        self.assertEqual(self.sessions(r), [(0, 20 * MIN, "gap_end")])
        r = run(evs[:-1] + [app(29 * MIN, "heartbeat")])
        self.assertEqual(self.sessions(r), [(0, None, None)])
        self.assertEqual(self.acts(r), [(0, 0, None, None, "open", 1)])

    def test_ids(self):
        evs = shift_start() + [app(1500, "job_accepted"), app(MIN, "offline")]
        r = run(evs)
        self.assertEqual(r["sessions"][0]["id"], "dev-test-20261128T090001Z-1")
        self.assertEqual(r["activations"][0]["id"], "dev-test-20261128T090001Z-1-0")


if __name__ == "__main__":
    unittest.main()
