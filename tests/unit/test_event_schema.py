#!/usr/bin/env python3
"""Checks docs/schema/event.schema.json against the events coverd really reads.

- every event line of every committed scenario (tests/scenarios/*.jsonl and rev2/*.jsonl)
  validates and carries t, except the lines bad-input.jsonl holds to be refused, and the
  socket-only examples of docs/scenario-format.md and docs/ipc.md validate;
- every error example of docs/scenario-format.md (an ```errors block) that the schema can
  express (all but calendar checks) is rejected by it, so the schema cannot accept what
  the parser refuses;
- a few more forbidden shapes (job_id on a heartbeat, an id of 64 characters, driver_id on
  a revoke) are rejected.

usage: test_event_schema.py [SOURCE_DIR]
"""

import glob
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from schema_check import validate  # noqa: E402

SRC = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..")
failures = []


def _no_constant(c):
    raise ValueError("not JSON: %s" % c)


def _finite(text):
    v = float(text)
    if v in (float("inf"), float("-inf")):
        raise ValueError("not a finite number: %s" % text)
    return v


def strict(text):
    """json.loads as RFC 8259 reads it: no NaN, no Infinity, no numbers too large to be
    finite (Python's json accepts all three)."""
    return json.loads(text, parse_constant=_no_constant, parse_float=_finite)


def check(cond, msg):
    if not cond:
        failures.append(msg)


def main():
    with open(os.path.join(SRC, "docs", "schema", "event.schema.json")) as f:
        schema = json.load(f)
    check(schema.get("$schema") == "https://json-schema.org/draft/2020-12/schema", "not draft 2020-12")

    # bad-input.jsonl: its expectation lists the lines the parser refuses.
    with open(os.path.join(SRC, "tests", "scenarios", "expected", "bad-input.expect.json")) as f:
        refused = set(json.load(f)["rejected_lines"])
    refused -= {12}   # line 12 is refused by the engine (out of order), not the parser
    files = sorted(glob.glob(os.path.join(SRC, "tests", "scenarios", "*.jsonl")) +
                   glob.glob(os.path.join(SRC, "tests", "scenarios", "rev2", "*.jsonl")))
    n = 0
    for path in files:
        with open(path) as f:
            for lineno, line in enumerate(f, 1):
                s = line.strip()
                if not s or s.startswith("#"):
                    continue
                bad = os.path.basename(path) == "bad-input.jsonl" and lineno in refused
                try:
                    obj = strict(s)
                except ValueError:
                    check(bad, "%s:%d: not JSON" % (path, lineno))
                    continue
                errs = validate(schema, obj)
                if bad:
                    check(errs != [], "%s:%d: a refused line validates" % (path, lineno))
                else:
                    check(not errs, "%s:%d: %s" % (path, lineno, errs))
                    check(isinstance(obj, dict) and "t" in obj, "%s:%d: no t" % (path, lineno))
                    n += 1

    with open(os.path.join(SRC, "docs", "scenario-format.md")) as f:
        doc = f.read()
    good = [l for b in re.findall(r"```jsonl\n(.*?)```", doc, re.S) for l in b.splitlines() if l]
    for l in good:
        errs = validate(schema, json.loads(l))
        check(not errs, "scenario-format.md example %s: %s" % (l, errs))
    bad = []
    for b in re.findall(r"```errors\n(.*?)```", doc, re.S):
        for l in b.splitlines():
            if l and not l.startswith(" "):
                bad.append(l)
    calendar = ("2026-02-30", "T23:59:60")   # left to the parser's calendar check
    nbad = 0
    for l in bad:
        try:
            obj = strict(l)
        except ValueError:
            continue   # not JSON at all
        if any(c in l for c in calendar) or ('"t"' not in l and "type" in l):
            continue   # calendar checks; a missing t is refused in scenarios only
        nbad += 1
        check(validate(schema, obj) != [], "scenario-format.md error example validates: %s" % l)

    more = [
        {"t": "2026-11-28T09:00:00Z", "type": "app", "event": "heartbeat", "job_id": "A"},
        {"t": "2026-11-28T09:00:00Z", "type": "app", "event": "job_accepted", "job_id": ""},
        {"t": "2026-11-28T09:00:00Z", "type": "app", "event": "job_accepted", "job_id": 7},
        {"t": "2026-11-28T09:00:00Z", "type": "app", "event": "online", "id": "x" * 64},
        {"t": "2026-11-28T09:00:00Z", "type": "app", "event": "online", "id": 17},
        {"t": "2026-11-28T09:00:00Z", "type": "policy", "event": "revoke", "driver_id": "D"},
        {"t": "2026-11-28T09:00:00Z", "type": "policy", "event": "assign"},
        {"t": "2026-13-28T09:00:00Z", "type": "tick"},
        {"type": "fix", "lat": 1, "lon": 2, "course": 360},
    ]
    for obj in more:
        check(validate(schema, obj) != [], "schema accepts %s" % obj)
    ok = [{"type": "app", "event": "job_delivered", "job_id": "order 4711", "id": "r-1"},
          {"type": "policy", "event": "revoke", "policy_id": "P-1"},
          {"type": "policy", "event": "revoke"}]
    for obj in ok:
        errs = validate(schema, obj)
        check(not errs, "schema rejects socket event %s: %s" % (obj, errs))

    if failures:
        for f in failures[:50]:
            print("FAIL:", f, file=sys.stderr)
        return 1
    print("PASS event schema: %d scenario lines, %d examples, %d error examples and %d more "
          "rejected" % (n, len(good), nbad, len(more)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
