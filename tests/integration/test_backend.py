#!/usr/bin/env python3
"""Backend integration tests: the shipped broker configuration, coverd-ingest and TLS.

usage: test_backend.py CASE --probe BACKEND_PROBE --ingest COVERD_INGEST --workdir DIR
                       [--mosquitto PATH]

Cases (one ctest test each):
  acl     the shipped ACL: a device writes only its own topics, reads only its own
          ack and cmd; clients without a fleet certificate are refused
  ingest  signed records stored once and acknowledged cumulatively; duplicates counted;
          tampered, broken-chain, rewritten, unknown-device, mismatched and malformed
          records rejected, counted, logged and never acknowledged
  shared  two ingests sharing the subscription split one device's stream and store it
          exactly once, in order
  tls     the ingest refuses a broker certificate from another CA, an expired one and
          one for another host name, and says why; it refuses a world-readable key and
          plaintext to a non-loopback host
  report  billed hours per device, policy and UTC day, voided activations excluded

Every case starts its own mosquitto (tests/integration/mqtt_harness.py) with
certificates made now by tools/pki.sh, and stops it. No assertion depends on timing:
the absence of a message is shown by a sentinel sent after it that must arrive first.
"""

import argparse
import base64
import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mqtt_harness as h  # noqa: E402

ZERO = "0" * 64
HOUR_MS = 3600 * 1000


def fail(msg):
    raise AssertionError(msg)


def check(cond, msg):
    if not cond:
        fail(msg)


def iso(ms):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms // 1000))


def compact(ms):
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(ms // 1000))


class Device:
    """A device's side of the protocol: record bodies exactly as the store writes them
    (docs/protocol.md), signed with the device key through backend_probe (sign.c)."""

    def __init__(self, t, dev_id):
        self.t = t
        self.id = dev_id
        self.key = os.path.join(t.work, dev_id + ".sig.key")
        self.pub_pem = subprocess.run([t.probe, "key", self.key], check=True,
                                      capture_output=True, text=True).stdout
        self.seq = 0
        self.prev = ZERO
        self.sessions = 0
        self.sent = []  # (seq, body bytes) in order

    def body(self, event, session_id, index, revision, policy, start_ms, end_ms=None,
             end_reason=None, seq=None, prev=None, **over):
        seq = self.seq + 1 if seq is None else seq
        # Key order is the contract: v, kind, event, seq, prev_hash, device_id, id, ...
        b = {
            "v": 1, "kind": "activation", "event": event, "seq": seq,
            "prev_hash": self.prev if prev is None else prev, "device_id": self.id,
            "id": "%s-%d" % (session_id, index), "revision": revision,
            "session_id": session_id, "index": index, "policy_id": policy,
            "driver_id": "drv-1", "vehicle_id": "veh-1", "start": iso(start_ms),
            "end": iso(end_ms) if end_ms is not None else None, "end_reason": end_reason,
            "distance_m": 1234.5, "moving_s": 1800, "jobs": 2,
            "start_pos": {"lat": 52.52, "lon": 13.405},
            "end_pos": {"lat": 52.53, "lon": 13.41} if end_ms is not None else None,
            "time_quality": "gnss", "anomalies": [],
        }
        b.update(over)
        return json.dumps(b, separators=(",", ":")).encode()

    def commit(self, body):
        """Takes a body as the next record (the store's commit)."""
        self.seq += 1
        self.prev = hashlib.sha256(body).hexdigest()
        self.sent.append((self.seq, body))
        return self.seq, body

    def shift(self, policy, start_ms, hours, void_last=False):
        """A session of `hours` activations: each opened (rev 1), then closed (rev 2);
        with void_last, one more activation opened and then voided."""
        self.sessions += 1
        sid = "%s-%s-%d" % (self.id, compact(start_ms), self.sessions)
        out = []
        for k in range(hours):
            s = start_ms + k * HOUR_MS
            out.append(self.commit(self.body("opened", sid, k, 1, policy, s)))
            out.append(self.commit(self.body("closed", sid, k, 2, policy, s,
                                             s + HOUR_MS, "hour" if k < hours - 1 else "offline")))
        if void_last:
            s = start_ms + hours * HOUR_MS
            out.append(self.commit(self.body("opened", sid, hours, 1, policy, s)))
            out.append(self.commit(self.body("voided", sid, hours, 2, policy, s, s, "voided")))
        return out

    def sign(self, bodies):
        lines = "".join(base64.b64encode(b).decode() + "\n" for b in bodies)
        out = subprocess.run([self.t.probe, "sign", self.key], input=lines, check=True,
                             capture_output=True, text=True).stdout.split()
        check(len(out) == len(bodies), "signer returned %d signatures" % len(out))
        return out

    def envelope(self, seq, body, sig=None, **over):
        if sig is None:
            sig = self.sign([body])[0]
        env = {"v": 1, "alg": "ES256", "device_id": self.id, "seq": seq,
               "body": base64.b64encode(body).decode(), "sig": sig}
        env.update(over)
        return json.dumps(env, separators=(",", ":"))

    def envelopes(self, records):
        sigs = self.sign([b for _, b in records])
        return [self.envelope(s, b, g) for (s, b), g in zip(records, sigs)]


class Ingest:
    """coverd-ingest run, with its log kept and read line by line."""

    def __init__(self, t, broker, extra=(), host="127.0.0.1", name="ingest", db=None):
        self.t = t
        self.db = db or t.db
        self.log_path = os.path.join(t.work, name + ".log")
        args = [t.ingest, "run", "--db", self.db, "--host", host, "--port", str(broker.port),
                "--cafile", os.path.join(t.pki, "ca.crt"),
                "--cert", os.path.join(t.pki, "ingest.crt"),
                "--key", os.path.join(t.pki, "ingest.key"), "--verbose"] + list(extra)
        # COVERD_TEST_WRAPPER runs the ingest under a tool, e.g. "valgrind --leak-check=full
        # --error-exitcode=99": its findings then fail the exit-status check in stop().
        wrapper = os.environ.get("COVERD_TEST_WRAPPER", "").split()
        self.proc = h.spawn(wrapper + args, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, bufsize=1)
        self.lines = h.Lines(self.proc.stderr, keep=open(self.log_path, "w"))

    def wait_for(self, pattern):
        return self.lines.wait_for(pattern)[0]

    def stop(self):
        """SIGTERM; the ingest must exit 0 after committing and disconnecting."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=h.HANG_GUARD_S)
        h.stop(self.proc)
        self.lines.t.join(timeout=h.HANG_GUARD_S)
        check(rc == 0, "ingest exited with %s after SIGTERM" % rc)
        check(any("stopped:" in l for l in self.lines.all), "ingest did not log its stop")
        return self.lines.all


class T:
    def __init__(self, args):
        self.probe = os.path.abspath(args.probe)
        self.ingest = os.path.abspath(args.ingest)
        self.work = os.path.abspath(args.workdir)
        h.rmtree(self.work)
        os.makedirs(self.work)
        self.db = os.path.join(self.work, "ingest.db")
        self.pki = None

    def run_cli(self, *args, ok=True):
        p = subprocess.run([self.ingest] + list(args), capture_output=True, text=True)
        if ok:
            check(p.returncode == 0, "coverd-ingest %s failed: %s" % (args[0], p.stderr))
        return p

    def enroll(self, dev):
        pem = os.path.join(self.work, dev.id + ".pub.pem")
        with open(pem, "w") as f:
            f.write(dev.pub_pem)
        self.run_cli("enroll", "--db", self.db, dev.id, pem)

    def counters(self):
        out = self.run_cli("counters", "--db", self.db, "--json").stdout
        return json.loads(out)

    def q(self, sql, *params):
        con = sqlite3.connect(self.db)
        try:
            return con.execute(sql, params).fetchall()
        finally:
            con.close()


def ack_topic(dev):
    return "coverd/v1/%s/ack" % dev


def act_topic(dev):
    return "coverd/v1/%s/activations" % dev


def upto(payload):
    a = json.loads(payload)
    check(set(a) == {"v", "upto"} and a["v"] == 1 and isinstance(a["upto"], int),
          "ack payload not as documented: %s" % payload)
    return a["upto"]


def wait_ack(client, dev, want):
    """Reads dev's acks until one covers `want`; checks they never go backwards or past it."""
    last = 0
    while True:
        topic, payload = client.message()
        check(topic == ack_topic(dev), "unexpected message on %s" % topic)
        n = upto(payload)
        check(n >= last, "acks went backwards: %d after %d" % (n, last))
        check(n <= want, "ack upto %d covers records not sent (%d)" % (n, want))
        last = n
        if n == want:
            return


# ---------------------------------------------------------------------------- acl

def case_acl(t):
    t.pki = h.make_pki(t.work, ["dev-a", "dev-b"])
    with h.Broker(t.work, t.pki) as broker:
        a = h.Client(t.probe, broker, t.pki, "dev-a")
        b = h.Client(t.probe, broker, t.pki, "dev-b")
        ing = h.Client(t.probe, broker, t.pki, "ingest")
        check(ing.sub("$share/ingest/coverd/v1/+/activations") == 1,
              "the ingest identity must be granted the shared subscription")
        check(b.sub("coverd/v1/dev-b/cmd") == 1, "dev-b subscribes to its own cmd")
        check(b.sub("coverd/v1/dev-b/ack") == 1, "dev-b subscribes to its own ack")
        # mosquitto 2.0 grants any subscription and checks read access per message, so
        # these succeed at SUBACK; what matters is that nothing is delivered (below).
        a.sub("coverd/v1/dev-b/cmd")
        a.sub("coverd/v1/dev-b/ack")
        a.sub("coverd/v1/+/activations")
        a.sub("coverd/v1/+/status")
        check(a.sub("coverd/v1/dev-a/cmd") == 1, "dev-a subscribes to its own cmd")

        # Writes a device may not make: refused with MQTT 5 reason 135 (not authorized).
        for topic in ("coverd/v1/dev-b/activations", "coverd/v1/dev-b/status",
                      "coverd/v1/dev-b/cmd/reply", "coverd/v1/dev-a/ack",
                      "coverd/v1/dev-b/ack", "coverd/v1/dev-a/cmd", "coverd/v1/dev-b/cmd",
                      "coverd/v1/other", "coverd/v2/dev-a/activations"):
            rc = a.pub(topic, '{"forged":true}')
            check(rc == 135, "dev-a publishing on %s: PUBACK %d, expected 135" % (topic, rc))
        # Writes it may make (no subscriber may be 16, "no matching subscribers").
        for topic in ("coverd/v1/dev-a/status", "coverd/v1/dev-a/cmd/reply"):
            rc = a.pub(topic, '{"own":true}')
            check(rc in (0, 16), "dev-a publishing on its own %s: PUBACK %d" % (topic, rc))

        # The forged activation never reached the ingest: the first thing it receives is
        # dev-b's own record, sent after the forgery (then dev-a's own record).
        check(a.pub(act_topic("dev-a"), "dev-a-own") == 0, "dev-a publishes its activations")
        check(b.pub(act_topic("dev-b"), "dev-b-own") == 0, "dev-b publishes its activations")
        got = ing.messages_until(act_topic("dev-b"), "dev-b-own")
        check(got == [(act_topic("dev-a"), "dev-a-own")],
              "the ingest received forged records: %s" % got)

        # The ingest writes dev-b's cmd and ack: dev-b receives them, dev-a does not,
        # and neither does dev-a see dev-b's activations or status. The sentinel on
        # dev-a's own cmd is sent last and must be the first thing dev-a receives.
        check(b.pub("coverd/v1/dev-b/status", '{"state":"online"}', retain=True) in (0, 16),
              "dev-b status")
        check(ing.pub("coverd/v1/dev-b/cmd", '{"v":1,"id":"c1","cmd":"ping"}') == 0,
              "ingest writes dev-b's cmd")
        check(ing.pub(ack_topic("dev-b"), '{"v":1,"upto":1}') == 0, "ingest writes dev-b's ack")
        check(b.message() == ("coverd/v1/dev-b/cmd", '{"v":1,"id":"c1","cmd":"ping"}'),
              "dev-b gets its cmd")
        check(b.message() == (ack_topic("dev-b"), '{"v":1,"upto":1}'), "dev-b gets its ack")
        check(ing.pub("coverd/v1/dev-a/cmd", "sentinel") == 0, "ingest writes dev-a's cmd")
        got = a.messages_until("coverd/v1/dev-a/cmd", "sentinel")
        check(got == [], "dev-a read other devices' topics: %s" % got)

        # A dashboard reads every device's status and nothing else: dev-a's record, sent
        # before its status, never reaches it.
        dash = h.Client(t.probe, broker, t.pki, "dashboard")
        dash.sub("coverd/v1/+/activations")
        dash.sub("coverd/v1/+/ack")
        check(dash.sub("coverd/v1/+/status") == 1, "dashboard subscribes to status")
        # dev-b's retained status arrives at once (dev-a's own status was not retained).
        got = dash.messages_until("coverd/v1/dev-b/status", '{"state":"online"}')
        check(got == [], "dashboard got %s before the retained status" % got)
        check(a.pub(act_topic("dev-a"), "not-for-dashboards") in (0, 16), "dev-a record")
        check(ing.pub(ack_topic("dev-a"), '{"v":1,"upto":0}') == 0, "ingest ack")
        check(a.pub("coverd/v1/dev-a/status", '{"state":"live"}') in (0, 16), "dev-a status")
        got = dash.messages_until("coverd/v1/dev-a/status", '{"state":"live"}')
        check(got == [], "the dashboard read records or acks: %s" % got)
        check(dash.pub("coverd/v1/dev-a/status", '{"forged":true}') == 135,
              "a dashboard must not write status")
        dash.close()
        check(ing.messages_until(act_topic("dev-a"), "not-for-dashboards") == [],
              "ingest stream out of order")

        # The ingest identity reads status and replies but may not forge device records.
        check(ing.pub(act_topic("dev-a"), "forged-by-ingest") == 135,
              "the ingest must not write device activations")

        # Without a fleet certificate there is no connection at all.
        check(h.connect_fails(t.probe, broker, t.pki, None), "a client without a certificate")
        check(h.connect_fails(t.probe, broker, t.pki, "server-wrongca"),
              "a client certificate from another CA")
        for c in (a, b, ing):
            c.close()
        log = broker.log()
        check("Denied PUBLISH from probe-dev-a" in log, "the broker logs denied publishes")


# ------------------------------------------------------------------------- ingest

def rejection(t, ing, dev_client, dev_id, payload, reason, barrier):
    """Publishes a bad message from dev_id; checks it is rejected for `reason`, counted,
    logged once and never acknowledged."""
    before = t.counters()
    n_before = t.q("SELECT COUNT(*) FROM records WHERE device_id = ?", dev_id)
    rc = dev_client.pub(act_topic(dev_id), payload)
    check(rc in (0, 16), "broker took the publish (PUBACK %d)" % rc)
    ing.wait_for(r"rejected %s device=%s " % (reason, dev_id))
    # The barrier record goes through the same ingest after the bad one, and its ack is
    # published after any ack the bad one could have caused; then a sentinel on the
    # device's ack topic, which must be the first thing the device sees.
    barrier()
    sentinel = '{"sentinel":"%s"}' % reason
    check(t.sentinel.pub(ack_topic(dev_id), sentinel) == 0, "sentinel")
    got = dev_client.messages_until(ack_topic(dev_id), sentinel)
    check(got == [], "a %s record was acknowledged: %s" % (reason, got))
    after = t.counters()
    key = "rejected." + reason
    check(after.get(key, 0) == before.get(key, 0) + 1,
          "%s counted %s -> %s" % (key, before.get(key), after.get(key)))
    check(t.q("SELECT COUNT(*) FROM records WHERE device_id = ?", dev_id) == n_before,
          "a rejected record was stored")


def case_ingest(t):
    t.pki = h.make_pki(t.work, ["dev-a", "dev-b", "dev-x"])
    da, db, dx = Device(t, "dev-a"), Device(t, "dev-b"), Device(t, "dev-x")
    t.enroll(da)
    t.enroll(db)
    # Enrolling the same key again is harmless; another key needs --replace.
    t.enroll(da)
    p = t.run_cli("enroll", "--db", t.db, "dev-a", os.path.join(t.work, "dev-b.pub.pem"), ok=False)
    check(p.returncode == 1 and "already enrolled" in p.stderr, "re-enrolling another key")

    day = 1714521600000  # 2024-05-01T00:00:00Z
    with h.Broker(t.work, t.pki) as broker:
        ing = Ingest(t, broker)
        ing.wait_for(r"subscribed to \$share/ingest/coverd/v1/\+/activations")
        a = h.Client(t.probe, broker, t.pki, "dev-a")
        b = h.Client(t.probe, broker, t.pki, "dev-b")
        x = h.Client(t.probe, broker, t.pki, "dev-x")
        t.sentinel = h.Client(t.probe, broker, t.pki, "ingest")
        for c, d in ((a, "dev-a"), (b, "dev-b"), (x, "dev-x")):
            check(c.sub(ack_topic(d)) == 1, "subscribe to own ack")

        # A three-hour shift: 6 records, published without waiting, acked cumulatively.
        recs = da.shift("pol-1", day + 8 * HOUR_MS, 3)
        for env in da.envelopes(recs):
            check(a.pub(act_topic("dev-a"), env) in (0, 16), "publish")
        wait_ack(a, "dev-a", 6)
        rows = t.q("SELECT seq, body FROM records WHERE device_id = 'dev-a' ORDER BY seq")
        check([(s, bytes(bd)) for s, bd in rows] == recs, "stored bodies are the bytes sent")
        check(t.q("SELECT COUNT(*) FROM activations WHERE device_id = 'dev-a'") == [(6,)],
              "three activations, two revisions each")
        check(t.counters().get("stored") == 6, "stored counter")

        b_recs = db.shift("pol-9", day + 9 * HOUR_MS, 40)
        b_envs = iter(db.envelopes(b_recs))
        b_next = [0]

        def barrier():
            env = next(b_envs)
            b_next[0] += 1
            check(b.pub(act_topic("dev-b"), env) in (0, 16), "barrier publish")
            wait_ack(b, "dev-b", b_next[0])

        # The same record twice: stored once, counted, and acknowledged again (the
        # device may have lost the first ack).
        before = t.counters()
        env3 = da.envelopes([recs[2]])[0]
        check(a.pub(act_topic("dev-a"), env3) in (0, 16), "publish duplicate")
        wait_ack(a, "dev-a", 6)
        after = t.counters()
        check(after.get("duplicate", 0) == before.get("duplicate", 0) + 1, "duplicate counted")
        check(after.get("stored") == 6, "duplicate not stored")
        check(t.q("SELECT COUNT(*) FROM records WHERE device_id='dev-a'") == [(6,)], "6 records")

        # One byte of the body altered after signing.
        seq7, body7 = da.commit(da.body("opened", "dev-a-20240501T110000Z-2", 0, 1, "pol-1",
                                        day + 11 * HOUR_MS))
        good7 = da.envelope(seq7, body7)
        tampered = bytearray(body7)
        i = tampered.index(b'"jobs":2') + len('"jobs":')
        tampered[i] = ord("9")
        env = json.loads(good7)
        env["body"] = base64.b64encode(bytes(tampered)).decode()
        rejection(t, ing, a, "dev-a", json.dumps(env), "bad_signature", barrier)

        # A signature that is not base64, an envelope that is not JSON, a wrong alg,
        # an unknown version, a body seq that differs from the envelope's.
        env = json.loads(good7)
        env["sig"] = "not base64!"
        rejection(t, ing, a, "dev-a", json.dumps(env), "malformed", barrier)
        rejection(t, ing, a, "dev-a", "this is not json", "malformed", barrier)
        rejection(t, ing, a, "dev-a", da.envelope(seq7, body7, alg="HS256"), "malformed", barrier)
        rejection(t, ing, a, "dev-a", da.envelope(seq7, body7, v=2), "unsupported_version",
                  barrier)
        rejection(t, ing, a, "dev-a", da.envelope(seq7 + 1, body7), "malformed",
                  barrier)
        # The envelope names another device than the topic.
        rejection(t, ing, a, "dev-a", da.envelope(seq7, body7, device_id="dev-b"),
                  "device_mismatch", barrier)

        # A validly signed record whose prev_hash is not the hash of seq 6.
        bad_chain = da.body("opened", "dev-a-20240501T110000Z-2", 0, 1, "pol-1",
                            day + 11 * HOUR_MS, seq=seq7, prev="ab" * 32)
        rejection(t, ing, a, "dev-a", da.envelope(seq7, bad_chain), "chain", barrier)

        # A different body for a sequence number already stored: a rewrite of history.
        rewrite = da.body("opened", "dev-a-20240501T080000Z-1", 0, 1, "pol-2",
                          day + 8 * HOUR_MS, seq=1, prev=ZERO)
        rejection(t, ing, a, "dev-a", da.envelope(1, rewrite), "rewrite", barrier)

        # A device whose key was never enrolled (its certificate is valid).
        xs, xb = dx.commit(dx.body("opened", "dev-x-20240501T080000Z-1", 0, 1, "pol-1",
                                   day + 8 * HOUR_MS))
        rejection(t, ing, x, "dev-x", dx.envelope(xs, xb), "unknown_device", barrier)
        # dev-a signing for dev-b's topic is impossible at the broker; dev-b's key signing
        # a record that claims dev-a's session is caught by the ingest.
        sb = db.body("opened", "dev-a-20240501T120000Z-9", 0, 1, "pol-9", day + 12 * HOUR_MS,
                     seq=b_next[0] + 1)
        # After all that, the untampered seq 7 is stored and acknowledged; it is the
        # barrier for this last rejection.
        def seq7():
            check(a.pub(act_topic("dev-a"), good7) in (0, 16), "publish seq 7")
            wait_ack(a, "dev-a", 7)

        rejection(t, ing, b, "dev-b", db.envelope(b_next[0] + 1, sb), "device_mismatch", seq7)
        rows = t.q("SELECT body FROM records WHERE device_id='dev-a' AND seq=7")
        check(rows and bytes(rows[0][0]) == body7, "seq 7 stored as signed")

        for c in (a, b, x, t.sentinel):
            c.close()
        log = ing.stop()

    # Exactly one log line per rejection, and never an ack to dev-x.
    rej = [l for l in log if " rejected " in l]
    check(len(rej) == 11, "one log line per rejection (%d): %s" % (len(rej), "\n".join(rej)))
    check(not any("ack dev-x" in l for l in log), "dev-x was acknowledged")
    c = t.counters()
    check(c.get("stored") == 7 + b_next[0], "stored counter %s" % c)
    check(c.get("held", 0) == 0, "one ingest, in-order delivery: nothing held")
    # Each activation revision exactly once.
    dup = t.q("SELECT activation_id, revision, COUNT(*) FROM activations "
              "GROUP BY activation_id, revision HAVING COUNT(*) > 1")
    check(dup == [], "an activation revision stored twice: %s" % dup)
    # The stored signatures verify with OpenSSL too, so any backend can check them.
    pem = os.path.join(t.work, "dev-a.pub.pem")
    for seq, body, sig in t.q("SELECT seq, body, sig FROM records WHERE device_id='dev-a'"):
        bp, sp = os.path.join(t.work, "b.bin"), os.path.join(t.work, "s.bin")
        with open(bp, "wb") as f:
            f.write(body)
        with open(sp, "wb") as f:
            f.write(sig)
        r = subprocess.run(["openssl", "dgst", "-sha256", "-verify", pem, "-signature", sp, bp],
                           capture_output=True, text=True)
        check(r.returncode == 0 and "Verified OK" in r.stdout,
              "openssl does not verify seq %d: %s" % (seq, r.stdout + r.stderr))


# ------------------------------------------------------------------------- shared

def case_shared(t):
    t.pki = h.make_pki(t.work, ["dev-a", "dev-b"])
    devs = [Device(t, "dev-a"), Device(t, "dev-b")]
    for d in devs:
        t.enroll(d)
    with h.Broker(t.work, t.pki) as broker:
        ings = [Ingest(t, broker, name="ingest-%d" % i) for i in (1, 2)]
        for i in ings:
            i.wait_for(r"subscribed to \$share/ingest/")
        clients = {d.id: h.Client(t.probe, broker, t.pki, d.id) for d in devs}
        for d in devs:
            check(clients[d.id].sub(ack_topic(d.id)) == 1, "own ack")
        # Each device sends a long shift without waiting for acks, interleaved, so the
        # broker spreads every device's stream over both ingests.
        streams = {d.id: d.envelopes(d.shift("pol-1", 1714550400000, 30)) for d in devs}
        for d in devs:
            codes = clients[d.id].pub_all([(act_topic(d.id), e) for e in streams[d.id]])
            check(all(c in (0, 16) for c in codes), "publish: %s" % codes)
        for d in devs:
            wait_ack(clients[d.id], d.id, 60)
        for c in clients.values():
            c.close()
        logs = [i.stop() for i in ings]
    for n, log in enumerate(logs):
        took = [l for l in log if " stored " in l or " held " in l or " duplicate " in l]
        check(took, "ingest %d received nothing: the subscription was not shared" % (n + 1))
    for d in devs:
        rows = t.q("SELECT seq, body FROM records WHERE device_id=? ORDER BY seq", d.id)
        check([(s, bytes(b)) for s, b in rows] == d.sent, "%s stored exactly as sent" % d.id)
    c = t.counters()
    check(c.get("stored") == 120, "stored counter %s" % c)
    check(not [k for k in c if k.startswith("rejected.")], "nothing rejected: %s" % c)
    check(t.q("SELECT COUNT(*) FROM held") == [(0,)], "nothing left held")


# ---------------------------------------------------------------------------- tls

def case_tls(t):
    t.pki = h.make_pki(t.work, ["dev-a"])
    cases = [
        ("server-wrongca", "127.0.0.1", "unable to get local issuer certificate"),
        ("server-expired", "127.0.0.1", "certificate has expired"),
        ("server-badhost", "localhost", "hostname mismatch"),
        ("server-badhost", "127.0.0.1", "IP address mismatch"),
    ]
    for server, host, why in cases:
        with h.Broker(t.work, t.pki, server=server) as broker:
            ing = Ingest(t, broker, host=host, name="ingest-" + server)
            m = ing.wait_for(r"cannot connect to .*")
            line = m.string
            check("TLS: broker certificate rejected: " + why in line,
                  "%s via %s: expected '%s' in: %s" % (server, host, why, line))
            log = ing.stop()
            check(not any("subscribed" in l for l in log), "connected to a bad broker")
    # The same ingest with the right certificate connects (the control).
    with h.Broker(t.work, t.pki) as broker:
        ing = Ingest(t, broker, host="localhost", name="ingest-good")
        ing.wait_for(r"subscribed to ")
        ing.stop()
        # A client key readable by others is refused before any connection.
        loose = os.path.join(t.work, "loose.key")
        with open(os.path.join(t.pki, "ingest.key")) as f, open(loose, "w") as g:
            g.write(f.read())
        os.chmod(loose, 0o644)
        p = t.run_cli("run", "--db", t.db, "--host", "127.0.0.1", "--port", str(broker.port),
                      "--cafile", os.path.join(t.pki, "ca.crt"),
                      "--cert", os.path.join(t.pki, "ingest.crt"), "--key", loose, ok=False)
        check(p.returncode == 1 and "chmod 600" in p.stderr, "loose key: %s" % p.stderr)
    # Development plaintext to a loopback broker works, and says so at every connect.
    plain = os.path.join(t.work, "plain")
    os.makedirs(plain)
    port = h.free_port()
    with open(os.path.join(plain, "mosquitto.conf"), "w") as f:
        f.write("listener %d 127.0.0.1\nallow_anonymous true\n%s" %
                (port, "user root\n" if os.geteuid() == 0 else ""))
    broker = h.spawn([h.MOSQUITTO, "-c", os.path.join(plain, "mosquitto.conf")],
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    p = None
    try:
        p = h.spawn([t.ingest, "run", "--db", t.db, "--host", "127.0.0.1", "--port",
                     str(port), "--insecure-plaintext"], stderr=subprocess.PIPE, text=True)
        lines = h.Lines(p.stderr)
        m, skipped = lines.wait_for(r"subscribed to ")
        check(any("WITHOUT TLS (--insecure-plaintext)" in l for l in skipped),
              "plaintext connection not announced: %s" % skipped)
        p.send_signal(signal.SIGTERM)
        check(p.wait(timeout=h.HANG_GUARD_S) == 0, "plaintext ingest exit status")
    finally:
        if p is not None:
            h.stop(p)
        h.stop(broker)
    # Plaintext is for loopback development only, and TLS files are required otherwise.
    p = t.run_cli("run", "--db", t.db, "--host", "broker.example", "--insecure-plaintext", ok=False)
    check(p.returncode == 2 and "loopback" in p.stderr, "plaintext off loopback: %s" % p.stderr)
    p = t.run_cli("run", "--db", t.db, "--host", "localhost", ok=False)
    check(p.returncode == 2 and "--cafile" in p.stderr, "TLS without files: %s" % p.stderr)


# ------------------------------------------------------------------------- report

def case_report(t):
    t.pki = h.make_pki(t.work, ["dev-a", "dev-b"])
    da, db = Device(t, "dev-a"), Device(t, "dev-b")
    t.enroll(da)
    t.enroll(db)
    d1 = 1714521600000  # 2024-05-01T00:00:00Z
    recs_a = (da.shift("pol-1", d1 + 8 * HOUR_MS, 3, void_last=True)  # 3 h, one voided
              + da.shift("pol-1", d1 + 22 * HOUR_MS, 4)                # 2 h on 05-01, 2 on 05-02
              + da.shift("pol-2", d1 + 30 * HOUR_MS, 1))               # 1 h, 05-02
    # dev-b: one hour still open (opened, never closed) still bills.
    recs_b = db.shift("pol-7", d1 + 10 * HOUR_MS, 2)
    sid = "dev-b-%s-9" % compact(d1 + 12 * HOUR_MS)
    recs_b.append(db.commit(db.body("opened", sid, 0, 1, "pol-7", d1 + 12 * HOUR_MS)))
    with h.Broker(t.work, t.pki) as broker:
        ing = Ingest(t, broker)
        ing.wait_for(r"subscribed to ")
        for d, recs in ((da, recs_a), (db, recs_b)):
            c = h.Client(t.probe, broker, t.pki, d.id)
            check(c.sub(ack_topic(d.id)) == 1, "own ack")
            for env in d.envelopes(recs):
                check(c.pub(act_topic(d.id), env) in (0, 16), "pub")
            wait_ack(c, d.id, len(recs))
            c.close()
        ing.stop()
    want = [
        {"device_id": "dev-a", "policy_id": "pol-1", "day": "2024-05-01", "hours": 5},
        {"device_id": "dev-a", "policy_id": "pol-1", "day": "2024-05-02", "hours": 2},
        {"device_id": "dev-a", "policy_id": "pol-2", "day": "2024-05-02", "hours": 1},
        {"device_id": "dev-b", "policy_id": "pol-7", "day": "2024-05-01", "hours": 3},
    ]
    got = json.loads(t.run_cli("report", "--db", t.db, "--json").stdout)
    check(got == {"billed": want, "total_hours": 11}, "report --json: %s" % got)
    got = json.loads(t.run_cli("report", "--db", t.db, "--json", "--device", "dev-b").stdout)
    check(got == {"billed": want[3:], "total_hours": 3}, "report --device: %s" % got)
    text = t.run_cli("report", "--db", t.db).stdout.splitlines()
    rows = [l.split() for l in text[1:]]
    check(text[0].split()[:2] == ["DEVICE", "POLICY"], "report header: %s" % text[0])
    check(rows == [[w["device_id"], w["policy_id"], w["day"], str(w["hours"])] for w in want]
          + [["total", "11"]], "report text: %s" % text)
    # The voided activation is stored (both revisions) but not billed.
    check(t.q("SELECT COUNT(*) FROM activations WHERE event='voided'") == [(1,)], "voided stored")
    # report and counters refuse a database that does not exist rather than create one.
    p = t.run_cli("report", "--db", os.path.join(t.work, "none.db"), ok=False)
    check(p.returncode == 1 and not os.path.exists(os.path.join(t.work, "none.db")),
          "report on a missing database")


CASES = {"acl": case_acl, "ingest": case_ingest, "shared": case_shared, "tls": case_tls,
         "report": case_report}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("case", choices=sorted(CASES))
    ap.add_argument("--probe", required=True)
    ap.add_argument("--ingest", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--mosquitto")
    ap.add_argument("--keep", action="store_true", help="keep the work dir after a pass")
    args = ap.parse_args()
    if args.mosquitto:
        h.MOSQUITTO = args.mosquitto
    t = T(args)
    try:
        CASES[args.case](t)
    except (AssertionError, h.HarnessError) as e:
        print("FAIL %s: %s (work dir %s)" % (args.case, e, t.work), file=sys.stderr)
        return 1
    finally:
        h.stop_all()
    print("PASS %s" % args.case)
    if not args.keep:
        h.rmtree(t.work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
