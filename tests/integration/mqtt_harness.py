"""mqtt_harness - a real mosquitto for tests, built from the shipped fleet configuration.

Python standard library only. Used by the backend tests and meant for the device-side
tests too:

    pki = make_pki(workdir, ["dev-a", "dev-b"])          # tools/pki.sh
    with Broker(workdir, pki) as broker:                 # free loopback port
        c = Client(probe, broker, pki, "dev-a")          # backend_probe client
        ...

Broker has tools/broker-conf.sh write its configuration from
firmware/mosquitto/coverd-fleet.conf, replacing only the listener port, the certificate
and persistence paths and the logging, with acl_file pointing at the shipped
firmware/mosquitto/coverd.acl unchanged, so the tests exercise the shipped security
settings. It is always stopped (context manager, and atexit as a net).

Every process is started through spawn(): stop_all() (run at exit, and on SIGTERM, which
this module turns into SystemExit) stops them, and each child also gets SIGTERM from the
kernel if the test process dies, so nothing outlives a failed or killed test.

Waits in this module are for things that must happen (a port opening, a line arriving);
their timeouts only keep a broken run from hanging and are not assertions about speed.
"""

import atexit
import ctypes
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import threading
import time

SRC = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PKI_SH = os.path.join(SRC, "tools", "pki.sh")
BROKER_CONF_SH = os.path.join(SRC, "tools", "broker-conf.sh")
# The broker binary; tests may point it elsewhere (it lives in /usr/sbin on Debian).
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"

# Generous: only a hung or broken run ever reaches it.
HANG_GUARD_S = 60

class HarnessError(AssertionError):
    pass


_procs = set()


def _die_with_parent():
    # PR_SET_PDEATHSIG: a child is sent SIGTERM when the test process dies, even by
    # SIGKILL from a ctest timeout, so no broker or ingest outlives its test.
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def spawn(args, **kw):
    """subprocess.Popen for everything a test starts: stopped by stop_all() at the end
    of the test, whatever happened, and by the kernel if the test itself is killed."""
    p = subprocess.Popen(args, preexec_fn=_die_with_parent, **kw)
    _procs.add(p)
    return p


def stop(p):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=HANG_GUARD_S)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    _procs.discard(p)


def make_pki(workdir, devices, names=()):
    """Runs tools/pki.sh into workdir/pki; returns the directory."""
    d = os.path.join(workdir, "pki")
    args = ["sh", PKI_SH]
    for n in names:
        args += ["-n", n]
    subprocess.run(args + [d] + list(devices), check=True, stdout=subprocess.DEVNULL)
    return d


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """mosquitto on a free loopback port with the shipped configuration."""

    def __init__(self, workdir, pki, server="server", debug=True):
        self.workdir = os.path.join(workdir, "broker-" + server)
        self.pki = pki
        self.server = server
        self.debug = debug
        self.proc = None
        self.port = None

    def start(self):
        os.makedirs(self.workdir, exist_ok=True)
        for _ in range(5):
            self.port = free_port()
            # tools/broker-conf.sh makes the configuration from the shipped one.
            args = ["sh", BROKER_CONF_SH, "-s", self.server] + (["-d"] if self.debug else [])
            conf = subprocess.run(args + [self.pki, self.workdir, str(self.port)], check=True,
                                  capture_output=True, text=True).stdout.strip()
            self.proc = spawn([MOSQUITTO, "-c", conf],
                                         stdout=subprocess.DEVNULL,
                                         stderr=open(os.path.join(self.workdir, "stderr"), "w"))
            _live.add(self)
            if self._wait_listening():
                return self
            self.stop()  # the port was taken between choosing and binding: try another
        raise HarnessError("mosquitto did not start; see %s" % self.workdir)

    def _wait_listening(self):
        deadline = time.monotonic() + HANG_GUARD_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return True
            except OSError:
                time.sleep(0.05)
        return False

    def stop(self):
        if self.proc is not None:
            stop(self.proc)
        self.proc = None
        _live.discard(self)

    def log(self):
        try:
            with open(os.path.join(self.workdir, "mosquitto.log")) as f:
                return f.read()
        except OSError:
            return ""

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


_live = set()


@atexit.register
def stop_all():
    """Stops every broker and process the test started (clients and ingests first)."""
    for p in list(_procs):
        if not any(b.proc is p for b in _live):
            stop(p)
    for b in list(_live):
        b.stop()


_stop_all = stop_all


def _on_sigterm(signum, frame):
    raise SystemExit(128 + signum)


# A ctest timeout sends SIGTERM: unwind, so the atexit handler stops the children.
signal.signal(signal.SIGTERM, _on_sigterm)


class Lines:
    """Reads a process's stream on a thread and hands lines out in order."""

    def __init__(self, stream, keep=None):
        self.q = queue.Queue()
        self.all = []
        self.keep = keep
        self.t = threading.Thread(target=self._run, args=(stream,), daemon=True)
        self.t.start()

    def _run(self, stream):
        for line in iter(stream.readline, ""):
            line = line.rstrip("\n")
            self.all.append(line)
            if self.keep is not None:
                self.keep.write(line + "\n")
                self.keep.flush()
            self.q.put(line)
        self.q.put(None)

    def next(self, what="a line", deadline=None):
        if deadline is None:
            deadline = time.monotonic() + HANG_GUARD_S
        try:
            line = self.q.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise HarnessError("hung waiting for %s" % what)
        if line is None:
            raise HarnessError("stream ended while waiting for %s" % what)
        return line

    def wait_for(self, pattern, what=None):
        """Returns (match, lines skipped before it)."""
        rx = re.compile(pattern)
        skipped = []
        deadline = time.monotonic() + HANG_GUARD_S
        while True:
            line = self.next(what or pattern, deadline)
            m = rx.search(line)
            if m:
                return m, skipped
            skipped.append(line)


class Client:
    """A backend_probe MQTT 5 client with a device's (or the ingest's) certificate."""

    def __init__(self, probe, broker, pki, identity, host="127.0.0.1"):
        name = identity if identity in ("ingest", "dashboard") else "device-" + identity
        self.identity = identity
        self.proc = spawn(
            [probe, "client", "--host", host, "--port", str(broker.port),
             "--id", "probe-%s-%d" % (identity, os.getpid()),
             "--cafile", os.path.join(pki, "ca.crt"),
             "--cert", os.path.join(pki, name + ".crt"),
             "--key", os.path.join(pki, name + ".key")],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, bufsize=1)
        self.out = Lines(self.proc.stdout)
        self.err = Lines(self.proc.stderr)
        m, _ = self.out.wait_for(r"^(CONNACK|CONNECT_FAILED) ?(-?\d*)", "CONNACK")
        self.connack = m.group(0)
        if not m.group(0).startswith("CONNACK 0"):
            raise HarnessError("%s could not connect: %s" % (identity, m.group(0)))
        self.pending = []  # MSG lines seen while waiting for something else
        self.pubacks = {}  # mid -> reason code, seen early

    def _send(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def _wait(self, pattern):
        m, skipped = self.out.wait_for(pattern)
        for s in skipped:
            if s.startswith("MSG "):
                self.pending.append(s)
            elif s.startswith("PUBACK "):
                # The library's thread may report the PUBACK before the main thread
                # has printed "PUB <mid>".
                _, mid, rc = s.split()
                self.pubacks[mid] = int(rc)
        return m

    def sub(self, topic, qos=1):
        """Returns the SUBACK's granted QoS or reason code."""
        self._send("sub %d %s" % (qos, topic))
        return int(self._wait(r"^SUBACK (-?\d+)").group(1))

    def pub(self, topic, payload, qos=1, retain=False):
        """Publishes and returns the PUBACK reason code (0 success, 135 not authorized)."""
        self._send("%s %d %s %s" % ("pubr" if retain else "pub", qos, topic, payload))
        mid = self._wait(r"^PUB (\d+)").group(1)
        if mid in self.pubacks:
            return self.pubacks.pop(mid)
        return int(self._wait(r"^PUBACK %s (\d+)" % mid).group(1))

    def pub_all(self, items, qos=1):
        """Publishes every (topic, payload) without waiting in between (so the broker
        sees them back to back), then returns their PUBACK reason codes in order."""
        for topic, payload in items:
            self._send("pub %d %s %s" % (qos, topic, payload))
        mids = [self._wait(r"^PUB (\d+)").group(1) for _ in items]
        codes = []
        for mid in mids:
            if mid not in self.pubacks:
                m = self._wait(r"^PUBACK %s (\d+)" % mid)
                self.pubacks[mid] = int(m.group(1))
            codes.append(self.pubacks.pop(mid))
        return codes

    def message(self):
        """The next received message as (topic, payload)."""
        if self.pending:
            line = self.pending.pop(0)
        else:
            line = self._wait(r"^MSG ").string
        _, topic, payload = line.split(" ", 2)
        return topic, payload

    def messages_until(self, topic, payload):
        """All messages before the given one, which must arrive (a sentinel)."""
        got = []
        while True:
            t, p = self.message()
            if t == topic and p == payload:
                return got
            got.append((t, p))

    def close(self):
        if self.proc.poll() is None:
            try:
                self._send("quit")
            except BrokenPipeError:
                pass
            try:
                self.proc.wait(timeout=HANG_GUARD_S)
            except subprocess.TimeoutExpired:
                pass
        stop(self.proc)


def connect_fails(probe, broker, pki, cert_name, ca="ca.crt", host="127.0.0.1"):
    """Tries to connect with the given client certificate; returns True when refused."""
    args = [probe, "client", "--host", host, "--port", str(broker.port),
            "--id", "probe-refused-%d" % os.getpid(), "--cafile", os.path.join(pki, ca)]
    if cert_name:
        args += ["--cert", os.path.join(pki, cert_name + ".crt"),
                 "--key", os.path.join(pki, cert_name + ".key")]
    p = spawn(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
              stderr=subprocess.DEVNULL, text=True)
    lines = Lines(p.stdout)
    while True:
        line = lines.next("a connection result")
        if line.startswith("CONNACK 0"):
            p.stdin.write("quit\n")
            p.stdin.close()
            p.wait(timeout=HANG_GUARD_S)
            stop(p)
            return False
        if line.startswith(("CONNACK", "CONNECT_FAILED", "DISCONNECT")):
            p.stdin.close()
            p.wait(timeout=HANG_GUARD_S)
            stop(p)
            return True


def rmtree(d):
    shutil.rmtree(d, ignore_errors=True)
