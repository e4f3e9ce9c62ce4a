#!/usr/bin/env python3
"""Checks docs/protocol.md against docs/schema/*.json, so the two cannot drift apart.

- every schema is JSON Schema draft 2020-12 and every payload schema has at least one
  example in protocol.md (a ```json block after <!-- schema: NAME -->), which validates;
- the example envelope carries exactly the example record body, and its signature
  verifies with the documented public key (OpenSSL, as a backend in any language would);
- the record key table in protocol.md lists the keys in the schema's order, and the
  example body uses that order;
- payloads the protocol forbids are rejected by the schemas (so the checks can fail).

usage: test_protocol.py [SOURCE_DIR]
"""

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from schema_check import validate  # noqa: E402

SRC = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..")
DOC = os.path.join(SRC, "docs", "protocol.md")
SCHEMAS = os.path.join(SRC, "docs", "schema")
PAYLOADS = ["envelope", "activation-record", "ack", "cmd", "cmd-reply", "status"]

failures = []


def check(cond, msg):
    if not cond:
        failures.append(msg)


def load_schemas():
    out = {}
    for name in PAYLOADS:
        with open(os.path.join(SCHEMAS, name + ".schema.json")) as f:
            s = json.load(f)
        check(s.get("$schema") == "https://json-schema.org/draft/2020-12/schema",
              "%s: not draft 2020-12" % name)
        out[name] = s
    # event.schema.json describes the socket and scenario events: test_event_schema.py.
    extra = {f[:-len(".schema.json")] for f in os.listdir(SCHEMAS)} - set(PAYLOADS) - {"event"}
    check(not extra, "schemas not covered by this test: %s" % extra)
    return out


def examples(doc):
    found = re.findall(r"<!-- schema: ([a-z-]+) -->\n```json\n(.*?)\n```", doc, re.S)
    return [(name, json.loads(text), text) for name, text in found]


def main():
    with open(DOC) as f:
        doc = f.read()
    schemas = load_schemas()
    ex = examples(doc)
    for name in PAYLOADS:
        check(any(n == name for n, _, _ in ex), "protocol.md has no %s example" % name)
    for name, obj, _ in ex:
        check(name in schemas, "example for unknown schema %s" % name)
        errs = validate(schemas[name], obj) if name in schemas else []
        check(not errs, "protocol.md %s example: %s" % (name, errs))

    # The envelope example wraps the record example, byte for byte, and its signature
    # verifies with the documented key.
    body_text = next(t for n, _, t in ex if n == "activation-record")
    env = next(o for n, o, _ in ex if n == "envelope")
    body = base64.b64decode(env["body"], validate=True)
    check(body == body_text.encode(), "envelope example body is not the record example")
    rec = json.loads(body)
    check(env["seq"] == rec["seq"] and env["device_id"] == rec["device_id"],
          "envelope example disagrees with its body")
    m = re.search(r"<!-- pubkey: envelope -->\n```\n(.*?)\n```", doc, re.S)
    check(m is not None, "protocol.md lacks the example public key")
    openssl = shutil.which("openssl")
    if m and openssl:
        with tempfile.TemporaryDirectory() as d:
            paths = {k: os.path.join(d, k) for k in ("pub", "sig", "body")}
            with open(paths["pub"], "w") as f:
                f.write(m.group(1) + "\n")
            with open(paths["sig"], "wb") as f:
                f.write(base64.b64decode(env["sig"], validate=True))
            with open(paths["body"], "wb") as f:
                f.write(body)
            r = subprocess.run([openssl, "dgst", "-sha256", "-verify", paths["pub"],
                                "-signature", paths["sig"], paths["body"]],
                               capture_output=True, text=True)
            check(r.returncode == 0, "example signature does not verify: %s" % r.stdout)
            with open(paths["body"], "wb") as f:
                f.write(body.replace(b'"jobs":3', b'"jobs":4'))
            r = subprocess.run([openssl, "dgst", "-sha256", "-verify", paths["pub"],
                                "-signature", paths["sig"], paths["body"]],
                               capture_output=True, text=True)
            check(r.returncode != 0, "an altered example body still verifies")

    # Key order: the table, the schema's required list and the example body agree.
    sect = doc[doc.index("### The activation record body"):doc.index("### The envelope")]
    table = re.findall(r"^\| `([a-z_]+)` \|", sect, re.M)
    order = schemas["activation-record"]["required"]
    check(table == order, "record key table %s != schema order %s" % (table, order))
    check(list(rec) == order, "example body key order %s" % list(rec))

    # Forbidden payloads are rejected.
    good = json.loads(body_text)
    bad = [
        ("ack", {"v": 1, "upto": "3"}), ("ack", {"v": 2, "upto": 3}), ("ack", {"v": 1}),
        ("ack", {"v": 1, "upto": -1}), ("ack", {"v": 1, "upto": True}),
        ("activation-record", dict(good, event="opened", revision=1)),
        ("activation-record", dict(good, end=None)),
        ("activation-record", dict(good, prev_hash="AB" * 32)),
        ("activation-record", dict(good, kind="track")),
        ("activation-record", dict(good, start="2024-05-01 08:00:00")),
        ("activation-record", dict(good, start_pos={"lat": 95, "lon": 0})),
        ("activation-record", dict(good, jobs=-1)),
        ("activation-record", {k: v for k, v in good.items() if k != "time_quality"}),
        ("envelope", dict(env, alg="HS256")), ("envelope", dict(env, seq=0)),
        ("envelope", dict(env, body="not base64!")), ("envelope", dict(env, device_id="a/b")),
        ("cmd", {"v": 1, "id": "c1", "cmd": "policy_assign", "driver_id": "d"}),
        ("cmd", {"v": 1, "id": "c1", "cmd": "reboot"}),
        ("cmd", {"v": 1, "id": "bad id", "cmd": "ping"}),
        ("cmd", {"v": 1, "id": "c1", "cmd": "config", "set": {}}),
        ("cmd", {"v": 1, "id": "c1", "cmd": "config", "set": {"Engine.gap": 1}}),
        ("cmd-reply", {"v": 1, "id": "c1", "ok": True, "error": "x", "duplicate": False}),
        ("cmd-reply", {"v": 1, "id": "c1", "ok": False, "duplicate": False}),
        ("cmd-reply", {"v": 1, "id": "c1", "ok": True, "result": {}}),
        ("status", {"v": 1, "device_id": "dev-a", "state": "offline", "reason": "gone"}),
        ("status", {"v": 1, "device_id": "dev-a", "state": "online"}),
    ]
    for name, obj in bad:
        check(validate(schemas[name], obj) != [], "%s schema accepts %s" % (name, obj))

    # Good variants a receiver must accept.
    ok = [
        ("activation-record", dict(good, event="opened", revision=1, end=None,
                                   end_reason=None, end_pos=None)),
        ("activation-record", dict(good, event="voided", revision=3, end_reason="voided")),
        ("activation-record", dict(good, start="2024-05-01T08:00:00.125+02:00")),
        ("cmd", {"v": 1, "id": "c2", "cmd": "config", "set": {"engine.gap_end": 600}}),
        ("cmd", {"v": 1, "id": "c3", "cmd": "end_cover", "expires": "2024-05-01T09:00:00Z"}),
        ("cmd", {"v": 1, "id": "c4", "cmd": "policy_revoke", "policy_id": "pol-1"}),
        ("status", {"v": 1, "device_id": "dev-a", "state": "offline", "reason": "shutdown",
                    "t": "2024-05-01T18:00:00Z"}),
    ]
    for name, obj in ok:
        errs = validate(schemas[name], obj)
        check(not errs, "%s schema rejects a valid payload: %s" % (name, errs))

    if failures:
        for f in failures:
            print("FAIL:", f, file=sys.stderr)
        return 1
    print("PASS protocol: %d examples, %d rejections, %d acceptances"
          % (len(ex), len(bad), len(ok)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
