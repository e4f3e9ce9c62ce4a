"""sync_env - a coverd delivering to a real mosquitto and the real coverd-ingest.

Used by test_sync.py (the delivery integration tests) and tests/bench/bench_sync.py.
Python standard library only. Everything runs on loopback with certificates made at
test time by tools/pki.sh, and the broker is configured from the shipped fleet
configuration and ACL (mqtt_harness.py).

    env = SyncEnv(workdir, bins)            # bins: coverd, coverctl, ingest, probe
    env.start_broker(); env.start_ingest()
    env.start_coverd(replay=SHIFT)
    env.wait_drained()
    env.check_exactly_once()

Waits are bounded polls: a deadline turns a hang into a failure, and no assertion
depends on how long something took, except where a test measures a bound on purpose.
"""

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mqtt_harness as h  # noqa: E402

SRC = h.SRC
SHIFT = os.path.join(SRC, "tests", "scenarios", "shift-6h.jsonl")
WAIT_S = 60.0
DEVICE = "dev-a"


class Failure(AssertionError):
    pass


def check(cond, msg):
    if not cond:
        raise Failure(msg)


def rfc3339(ms):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms / 1000.0))


def synthetic_scenario(path, sessions, t0_ms=1795856400000):
    """A scenario whose every session runs to max_session, its job delivered at the very
    instant max_session falls due (revision 2: a job still in progress then would open
    the next session at once). With SYNTHETIC_ENGINE (1-minute activations, 48-minute
    sessions) each session writes 96 outbox records (48 activations opened and closed)."""
    t = t0_ms
    with open(path, "w") as f:
        def ev(ms, obj):
            obj = dict(obj)
            obj["t"] = rfc3339(ms)
            f.write(json.dumps(obj, separators=(",", ":")) + "\n")
        ev(t, {"type": "policy", "event": "assign", "policy_id": "P-1", "driver_id": "D-1",
               "vehicle_id": "V-1"})
        ev(t, {"type": "app", "event": "online"})
        for _ in range(sessions):
            ev(t + 1000, {"type": "app", "event": "job_accepted"})
            ev(t + 1000 + 48 * 60000, {"type": "app", "event": "job_delivered"})
            t += 50 * 60000
        ev(t, {"type": "app", "event": "offline"})
    return 96 * sessions


SYNTHETIC_ENGINE = """[engine]
trigger = job
gap_end = 10m
idle_end = 30m
app_silence = 24h
max_session = 48m
min_cover = 1m
activation_length = 1m
"""


class Bins:
    def __init__(self, coverd, coverctl, ingest, probe):
        self.coverd, self.coverctl, self.ingest, self.probe = coverd, coverctl, ingest, probe


class FixedBroker(h.Broker):
    """The harness broker, restartable on the same port (devices keep their config)."""

    def __init__(self, workdir, pki, server="server", port=None):
        super().__init__(workdir, pki, server)
        self.fixed_port = port

    def start(self):
        if self.fixed_port is None:
            super().start()
            self.fixed_port = self.port
            return self
        os.makedirs(self.workdir, exist_ok=True)
        self.port = self.fixed_port
        args = ["sh", h.BROKER_CONF_SH, "-s", self.server] + (["-d"] if self.debug else [])
        conf = subprocess.run(args + [self.pki, self.workdir, str(self.port)], check=True,
                              capture_output=True, text=True).stdout.strip()
        if os.environ.get("SYNC_BROKER_EXTRA"):
            with open(conf, "a") as f:
                f.write(os.environ["SYNC_BROKER_EXTRA"].replace(";", "\n") + "\n")
        deadline = time.monotonic() + WAIT_S
        while True:
            self.proc = h.spawn([h.MOSQUITTO, "-c", conf], stdout=subprocess.DEVNULL,
                                stderr=open(os.path.join(self.workdir, "stderr"), "a"))
            h._live.add(self)
            if self._wait_listening():
                return self
            self.stop()
            # The old listener's port may linger for a moment after a kill.
            if time.monotonic() > deadline:
                raise Failure("mosquitto did not restart on port %d" % self.port)
            time.sleep(0.2)

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.proc is not None:
            h._procs.discard(self.proc)
        self.proc = None
        h._live.discard(self)

    def signal(self, sig):
        self.proc.send_signal(sig)


class Ipc:
    """One request to coverd's socket, one reply."""

    def __init__(self, path):
        self.path = path

    def ask(self, obj):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(WAIT_S)
        try:
            s.connect(self.path)
            s.sendall(json.dumps(obj).encode() + b"\n")
            buf = b""
            while b"\n" not in buf:
                chunk = s.recv(1 << 20)
                if not chunk:
                    raise Failure("coverd closed the socket")
                buf += chunk
            return json.loads(buf.split(b"\n", 1)[0])
        finally:
            s.close()


class SyncEnv:
    def __init__(self, workdir, bins, devices=(DEVICE, "dev-b"), device=DEVICE):
        self.root = workdir
        os.makedirs(workdir, exist_ok=True)
        self.bins = bins
        self.device = device
        self.pki = h.make_pki(workdir, list(devices))
        self.state = os.path.join(workdir, "state")
        os.makedirs(self.state, exist_ok=True)
        os.chmod(self.state, 0o700)
        self.conf = os.path.join(workdir, "coverd.conf")
        self.sock = os.path.join(self.state, "coverd.sock")
        self.ingest_db = os.path.join(workdir, "ingest.db")
        self.broker = None
        self.port = h.free_port()
        self.coverd = None
        self.coverd_logs = []
        self.ingest = None
        self.ingest_logs = []
        self.ipc = Ipc(self.sock)
        self.enrolled = False

    # ------------------------------------------------------------ processes

    def start_broker(self, server="server"):
        if self.broker is not None and self.broker.server != server:
            self.broker.stop()
            self.broker = None
        if self.broker is None:
            self.broker = FixedBroker(self.root, self.pki, server, self.port)
        self.broker.start()
        return self.broker

    def write_conf(self, keepalive="10s", inflight=32, engine="", extra_mqtt="",
                   cert=None, enabled=True, device=None):
        dev = device or self.device
        cert = cert or ("device-" + dev)
        with open(self.conf, "w") as f:
            f.write("# written by sync_env.py\n[device]\nid = %s\n\n%s\n"
                    "[store]\nstate_dir = %s\ntrack_flush = 1s\n\n"
                    "[gnss]\nsource = none\n\n[log]\nlevel = info\nsyslog = no\n\n"
                    "[mqtt]\nenabled = %s\nhost = 127.0.0.1\nport = %d\nkeepalive = %s\n"
                    "ca_file = %s/ca.crt\ncert_file = %s/%s.crt\nkey_file = %s/%s.key\n"
                    "inflight = %d\nbackoff_min = 200ms\nbackoff_max = 1s\n%s"
                    % (dev, engine, self.state, "yes" if enabled else "no", self.port,
                       keepalive, self.pki, self.pki, cert, self.pki, cert, inflight,
                       extra_mqtt))

    def enroll(self):
        """Makes the device key (as coverd would at its first start), checks that
        `coverctl key --public` prints it, and enrols it with the ingest."""
        key = os.path.join(self.state, "device.key")
        pem = subprocess.run([self.bins.probe, "key", key], check=True, capture_output=True,
                             text=True).stdout
        ctl = subprocess.run([self.bins.coverctl, "-c", self.conf, "key", "--public"],
                             capture_output=True, text=True)
        check(ctl.returncode == 0 and ctl.stdout == pem,
              "coverctl key --public must print the device's public key: %r %r"
              % (ctl.stdout, ctl.stderr))
        path = os.path.join(self.root, "device.pub")
        with open(path, "w") as f:
            f.write(pem)
        subprocess.run([self.bins.ingest, "enroll", "--db", self.ingest_db, self.device, path],
                       check=True, stdout=subprocess.DEVNULL)
        self.enrolled = True

    def start_ingest(self):
        log = os.path.join(self.root, "ingest-%d.log" % len(self.ingest_logs))
        self.ingest_logs.append(log)
        self.ingest = h.spawn(
            [self.bins.ingest, "run", "--db", self.ingest_db, "--host", "127.0.0.1",
             "--port", str(self.port), "--cafile", os.path.join(self.pki, "ca.crt"),
             "--cert", os.path.join(self.pki, "ingest.crt"),
             "--key", os.path.join(self.pki, "ingest.key"), "--keepalive", "5"],
            stdout=subprocess.DEVNULL, stderr=open(log, "w"))
        self.wait_log(log, "subscribed to", "the ingest to subscribe")
        return self.ingest

    def stop_ingest(self, sig=signal.SIGTERM):
        if self.ingest is not None and self.ingest.poll() is None:
            self.ingest.send_signal(sig)
            self.ingest.wait(timeout=WAIT_S)
        self.ingest = None

    def start_coverd(self, *args, wait=True):
        log = os.path.join(self.root, "coverd-%d.log" % len(self.coverd_logs))
        self.coverd_logs.append(log)
        self.coverd = h.spawn([self.bins.coverd, "-f", "-c", self.conf] + list(args),
                                       stdout=subprocess.DEVNULL, stderr=open(log, "w"),
                                       stdin=subprocess.DEVNULL)
        if wait:
            self.wait_ready()
        return self.coverd

    def wait_ready(self):
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            if self.coverd.poll() is not None:
                raise Failure("coverd exited with %s:\n%s" % (self.coverd.returncode,
                                                              self.coverd_log()))
            try:
                if self.ipc.ask({"cmd": "ping"}).get("pong"):
                    return
            except (OSError, Failure, ValueError):
                pass
            time.sleep(0.05)
        raise Failure("coverd did not answer:\n" + self.coverd_log())

    def stop_coverd(self, sig=signal.SIGTERM):
        if self.coverd is not None and self.coverd.poll() is None:
            self.coverd.send_signal(sig)
            rc = self.coverd.wait(timeout=WAIT_S)
        else:
            rc = self.coverd.returncode if self.coverd else None
        self.coverd = None
        return rc

    def cleanup(self):
        for p in (self.coverd, self.ingest):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
        if self.broker is not None:
            if self.broker.proc is not None and self.broker.proc.poll() is None:
                try:
                    self.broker.proc.send_signal(signal.SIGCONT)
                except OSError:
                    pass
            self.broker.stop()

    # ------------------------------------------------------------ observing

    def coverd_log(self, i=-1):
        with open(self.coverd_logs[i]) as f:
            return f.read()

    def wait_log(self, path, text, what, start=0):
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            with open(path) as f:
                data = f.read()
            i = data.find(text, start)
            if i >= 0:
                return i
            time.sleep(0.05)
        with open(path) as f:
            tail = f.read()[-3000:]
        raise Failure("timed out waiting for %s (%r) in %s:\n%s" % (what, text, path, tail))

    def wait_coverd_log(self, text, what, start=0):
        return self.wait_log(self.coverd_logs[-1], text, what, start)

    def status(self):
        r = self.ipc.ask({"cmd": "status"})
        check(r.get("ok") is True, "status failed: %r" % r)
        return r["status"]

    def wait_status(self, pred, what):
        deadline = time.monotonic() + WAIT_S
        st = None
        while time.monotonic() < deadline:
            if self.coverd is not None and self.coverd.poll() is not None:
                raise Failure("coverd exited while waiting for %s:\n%s" % (what, self.coverd_log()))
            st = self.status()
            if pred(st):
                return st
            time.sleep(0.05)
        raise Failure("timed out waiting for %s; last status %s\n%s"
                      % (what, json.dumps(st)[:2000], self.coverd_log()[-3000:]))

    def replay_done(self, st):
        return "replay finished" in self.coverd_log()

    def wait_drained(self, min_records=1):
        """Waits until the replay (if any) is over and every record written is acked."""
        def done(st):
            m = st.get("mqtt", {})
            return ((not self.coverd_logs or self.replay_done(st) or "--replay" not in
                     " ".join(self.coverd.args)) and st.get("outbox_depth") == 0 and
                    m.get("acked_upto", 0) >= min_records)
        return self.wait_status(done, "the outbox to drain")

    def counters(self):
        return self.status().get("counters", {})

    # ------------------------------------------------------------ the two databases

    def outbox(self):
        db = sqlite3.connect("file:%s/coverd.db?mode=ro" % self.state, uri=True, timeout=30)
        try:
            return db.execute("SELECT seq, body, sig, delivered_ms FROM outbox ORDER BY seq").fetchall()
        finally:
            db.close()

    def ingest_records(self):
        db = sqlite3.connect("file:%s?mode=ro" % self.ingest_db, uri=True, timeout=30)
        try:
            return db.execute("SELECT seq, body FROM records WHERE device_id = ? ORDER BY rowid",
                              (self.device,)).fetchall()
        finally:
            db.close()

    def ingest_counters(self):
        out = subprocess.run([self.bins.ingest, "counters", "--db", self.ingest_db, "--json"],
                             check=True, capture_output=True, text=True).stdout
        return json.loads(out)

    def check_exactly_once(self):
        """Every outbox record is at the ingest once, byte for byte, stored in seq
        order; nothing at the ingest that the device did not write; all delivered."""
        ob = self.outbox()
        check(len(ob) > 0, "the scenario wrote no records")
        ing = self.ingest_records()
        seqs = [r[0] for r in ing]
        check(len(seqs) == len(set(seqs)), "a record stored twice at the ingest")
        check(seqs == sorted(seqs), "the ingest stored records out of order: %r" % seqs[:50])
        check(seqs == [r[0] for r in ob],
              "ingest holds seqs %s..%s (%d), device wrote %d" %
              (seqs[:1], seqs[-1:], len(seqs), len(ob)))
        for (s1, b1, sig, dm), (s2, b2) in zip(ob, ing):
            body = b1 if isinstance(b1, bytes) else b1.encode()
            b2 = b2 if isinstance(b2, bytes) else b2.encode()
            check(body == b2, "record %d differs between device and ingest" % s1)
            check(sig is not None and len(sig) > 0, "record %d unsigned on the device" % s1)
            check(dm is not None, "record %d not marked delivered" % s1)
        c = self.ingest_counters()
        rejected = {k: v for k, v in c.items() if k.startswith("rejected.")}
        check(not rejected, "the ingest rejected records: %r" % rejected)
        check(c.get("stored", 0) == len(ob), "ingest stored %r, device wrote %d" %
              (c.get("stored"), len(ob)))
        return ob, c

    def check_activations_match(self):
        """coverctl activations --json agrees with the activation revisions the ingest
        stored (the latest revision of each activation)."""
        out = subprocess.run([self.bins.coverctl, "-c", self.conf, "activations", "--json"],
                             check=True, capture_output=True, text=True).stdout
        acts = json.loads(out)
        if isinstance(acts, dict):
            acts = acts.get("activations", acts)
        db = sqlite3.connect("file:%s?mode=ro" % self.ingest_db, uri=True, timeout=30)
        try:
            rows = db.execute("SELECT activation_id, MAX(revision) FROM activations "
                              "WHERE device_id = ? GROUP BY activation_id", (self.device,)).fetchall()
        finally:
            db.close()
        at_ingest = dict(rows)
        device = {a["id"]: a["revision"] for a in acts}
        check(device == at_ingest, "activations differ: device %r, ingest %r" % (device, at_ingest))
        return device

    def broker_log(self):
        return self.broker.log() if self.broker else ""
