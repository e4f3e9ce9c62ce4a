#!/usr/bin/env python3
"""Integration tests of the real coverd process.

Each case starts the real daemon (and, for the gpsd case, a real gpsd through gpsfake)
with a temporary state directory and talks to it over its real Unix socket, exactly as
the courier app and coverctl do. Only the Python standard library is used.

    daemon_test.py --coverd PATH --case NAME [--data DIR]
    daemon_test.py --coverd PATH --list

Exit status: 0 passed, 1 failed, 77 skipped (ctest's SKIP_RETURN_CODE).

Waits are bounded polls (a deadline turns a hang into a failure); no assertion depends on
how long anything takes.
"""
import argparse
import datetime
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import traceback

SKIP = 77
WAIT_S = 30.0       # upper bound for "the daemon is up" and similar polls


class Skip(Exception):
    pass


class Failure(AssertionError):
    pass


def check(cond, msg):
    if not cond:
        raise Failure(msg)


def rfc3339(dt):
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Client:
    """One connection to the daemon's socket: a request line in, a reply line out."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(WAIT_S)
        self.sock.connect(path)
        self.buf = b""

    def send_raw(self, data):
        self.sock.sendall(data)

    def read_reply(self):
        return json.loads(self.read_line())

    def read_line(self):
        """The next reply line, as the bytes the daemon sent (without the newline)."""
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise Failure("daemon closed the connection; partial reply %r" % self.buf[:200])
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line

    def request(self, obj):
        data = obj if isinstance(obj, (bytes, bytearray)) else json.dumps(obj).encode()
        self.send_raw(data + b"\n")
        return self.read_reply()

    def request_line(self, data):
        """Sends one request's bytes; returns the reply line's bytes."""
        self.send_raw(data + b"\n")
        return self.read_line()

    def close(self):
        self.sock.close()


class Env:
    """A temporary directory with a config and a state dir, and the daemons started in it."""

    def __init__(self, coverd, data):
        self.coverd = coverd
        self.data = data
        self.root = tempfile.mkdtemp(prefix="coverd-it-")
        self.state = os.path.join(self.root, "state")
        self.conf = os.path.join(self.root, "coverd.conf")
        self.sock = os.path.join(self.state, "coverd.sock")
        self.procs = []
        self.logs = []
        self.write_conf()

    def write_conf(self, level="info", gnss="none", extra=""):
        with open(self.conf, "w") as f:
            f.write("# written by daemon_test.py\n"
                    "[device]\nid = it-dev\n\n"
                    "[store]\nstate_dir = %s\ntrack_flush = 1s\n\n"
                    "[gnss]\nsource = %s\n%s\n"
                    "[log]\nlevel = %s\nsyslog = no\n" % (self.state, gnss, extra, level))

    def start(self, *args, wait=True, user=None, env=None, foreground=True):
        log = os.path.join(self.root, "coverd-%d.log" % len(self.logs))
        cmd = [self.coverd] + (["-f"] if foreground else []) + ["-c", self.conf] + list(args)
        if user is not None:
            cmd = ["setpriv", "--reuid=" + user, "--regid=nogroup", "--clear-groups"] + cmd
        errf = open(log, "w")
        penv = None
        if env is not None:
            penv = dict(os.environ)
            penv.update(env)
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=errf, stdin=subprocess.DEVNULL,
                             env=penv)
        errf.close()
        self.procs.append(p)
        self.logs.append(log)
        if wait:
            self.wait_ready(p)
        return p

    def log(self, i=-1):
        with open(self.logs[i]) as f:
            return f.read()

    def wait_ready(self, p):
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            if p.poll() is not None:
                raise Failure("coverd exited with %s before serving:\n%s" % (p.returncode, self.log()))
            try:
                c = Client(self.sock)
                r = c.request({"cmd": "ping"})
                c.close()
                if r.get("pong"):
                    return
            except (OSError, Failure):
                pass
            time.sleep(0.05)
        raise Failure("coverd did not answer on %s:\n%s" % (self.sock, self.log()))

    def client(self):
        return Client(self.sock)

    def ask(self, obj):
        c = self.client()
        try:
            return c.request(obj)
        finally:
            c.close()

    def status(self):
        r = self.ask({"cmd": "status"})
        check(r.get("ok") is True, "status failed: %r" % r)
        return r["status"]

    def stop(self, p, sig=signal.SIGTERM):
        p.send_signal(sig)
        try:
            return p.wait(timeout=WAIT_S)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            raise Failure("coverd did not exit after signal %d" % sig)

    def cleanup(self, keep):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        if keep:
            print("kept", self.root)
        else:
            for dirpath, dirnames, _ in os.walk(self.root):
                for d in dirnames:
                    try:
                        os.chmod(os.path.join(dirpath, d), 0o755)
                    except OSError:
                        pass
            shutil.rmtree(self.root, ignore_errors=True)


def open_session(env, c, t0=None):
    """Policy, online and a job through the socket; returns the reply of the job event."""
    def ev(obj, dt):
        if t0 is not None:
            obj["t"] = rfc3339(t0 + datetime.timedelta(seconds=dt))
        r = c.request(obj)
        check(r.get("ok") is True and r.get("accepted") is True, "event %r refused: %r" % (obj, r))
        return r
    ev({"type": "policy", "event": "assign", "policy_id": "P-1", "driver_id": "D-1",
        "vehicle_id": "V-1"}, 0)
    ev({"type": "app", "event": "online"}, 0)
    return ev({"type": "app", "event": "job_accepted"}, 1)


def counters(env):
    return env.status().get("counters", {})


# ------------------------------------------------------------------- cases

def case_ipc_errors(env):
    env.start()
    c = env.client()
    before = counters(env)

    r = c.request(b"{not json")
    check(r.get("ok") is False and "error" in r, "malformed JSON: %r" % r)
    r = c.request(b"[1,2,3]")
    check(r.get("ok") is False and "JSON object" in r["error"], "array: %r" % r)
    r = c.request({"type": "app", "event": "job_teleported"})
    check(r.get("ok") is False and "job_teleported" in r["error"] and "event" in r["error"],
          "unknown event must name the field and value: %r" % r)
    r = c.request({"cmd": "frobnicate"})
    check(r.get("ok") is False and "frobnicate" in r["error"], "unknown command: %r" % r)
    # Bytes that are not UTF-8 in a request are shown escaped, so the reply stays valid
    # JSON text (issue 7, item 6): an unknown command and an unknown activation id.
    for raw, field in ((b'{"cmd":"\xff\xfe\xc3"}\n', "cmd"),
                       (b'{"cmd":"explain","id":"a-\xe2\x82"}\n', "id")):
        c.send_raw(raw)
        line = c.read_line()
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            raise Failure("reply to %r is not UTF-8: %r" % (raw, line))
        rep = json.loads(text)
        check(rep.get("ok") is False and ('field "%s"' % field) in rep["error"] and
              "\\x" in rep["error"], "invalid UTF-8 shown escaped: %r" % rep)
    r = c.request({"type": "fix", "lat": 91.5, "lon": 0, "mode": 3})
    check(r.get("ok") is False and "lat" in r["error"], "bad latitude: %r" % r)
    r = c.request({"type": "restart"})
    check(r.get("ok") is False and "restart" in r["error"], "restart over the socket: %r" % r)

    # Over 64 KiB: an error reply, the rest of the line discarded, the connection usable.
    big = b'{"type":"app","event":"' + b"x" * 70000 + b'"}'
    r = c.request(big)
    check(r.get("ok") is False and "too large" in r["error"], "oversized: %r" % r)
    # Exactly at the limit (65536 bytes with the newline) is still a request.
    pad = 65535 - len(b'{"cmd":"ping","pad":""}')
    r = c.request(b'{"cmd":"ping","pad":"' + b"y" * pad + b'"}')
    check(r.get("pong") is True, "a 65536-byte request must be served: %r" % r)
    # Several requests in one write are answered in order.
    c.send_raw(b'{"cmd":"ping"}\n{"bad\n{"cmd":"ping"}\n')
    r1, r2, r3 = c.read_reply(), c.read_reply(), c.read_reply()
    check(r1.get("pong") and r2.get("ok") is False and r3.get("pong"), "pipelined: %r %r %r" % (r1, r2, r3))

    after = counters(env)
    check(after.get("ipc.malformed", 0) - before.get("ipc.malformed", 0) == 8,
          "ipc.malformed should have grown by 8: %r -> %r" % (before, after))
    check(after.get("ipc.oversized", 0) - before.get("ipc.oversized", 0) == 1,
          "ipc.oversized should have grown by 1: %r" % after)
    r = c.request({"cmd": "ping"})
    check(r.get("pong") is True, "daemon must still serve the same connection: %r" % r)
    c.close()
    check(env.procs[0].poll() is None, "daemon must still run")
    check(env.stop(env.procs[0]) == 0, "clean exit after bad input")


def case_ipc_limits(env):
    import threading
    p = env.start()
    # Many requests written without reading: the daemon holds back (bounded output
    # buffer, no reading while replies are unread) and loses nothing.
    n = 3000
    c = env.client()
    payload = b"".join(b'{"cmd":"status","n":%d}\n' % i if i % 2 else b'{"cmd":"ping"}\n'
                       for i in range(n))
    w = threading.Thread(target=c.send_raw, args=(payload,))
    w.start()
    time.sleep(0.5)   # let the replies back up before anything is read
    for i in range(n):
        r = c.read_reply()
        if i % 2:
            check(r.get("ok") is True and "status" in r, "reply %d: %r" % (i, r))
        else:
            check(r.get("pong") is True, "reply %d: %r" % (i, r))
    w.join()
    c.close()

    # 64 clients at once are served; one more is told so and closed.
    clients = []
    for _ in range(64):
        cl = env.client()
        check(cl.request({"cmd": "ping"}).get("pong") is True, "client served")
        clients.append(cl)
    extra = env.client()
    r = extra.read_reply()
    check(r.get("ok") is False and "too many clients" in r["error"], "65th client: %r" % r)
    extra.close()
    for cl in clients:
        cl.close()
    deadline = time.monotonic() + WAIT_S
    ok = False
    while time.monotonic() < deadline and not ok:
        try:
            ok = env.ask({"cmd": "ping"}).get("pong") is True
        except (Failure, OSError):
            # The daemon may not have seen the 64 closes yet and refuse this one too,
            # closing the socket under our request: retry until it has.
            time.sleep(0.05)
    check(ok, "served again once the others left")
    check(counters(env).get("ipc.refused", 0) >= 1, "refusal counted")

    # A client that vanishes with replies pending does not hurt the daemon.
    c = env.client()
    c.send_raw(b'{"cmd":"status"}\n' * 200)
    c.close()
    check(env.ask({"cmd": "ping"}).get("pong") is True, "still serving")
    check(env.stop(p) == 0, "clean exit")


def case_ipc_session(env):
    env.start()
    st = env.status()
    check(st["on_cover"] is False and st["session"] is None, "no cover at start: %r" % st)
    h = env.ask({"cmd": "health"})["health"]
    check(h["db"] is True and h["healthy"] is False and h["fix_age_ms"] is None,
          "without a fix the daemon is not healthy: %r" % h)

    c = env.client()
    job = open_session(env, c)
    check(isinstance(job.get("event_id"), int) and job["event_id"] > 0, "event id: %r" % job)
    st = env.status()
    check(st["on_cover"] is True and st["session"], "session must be open: %r" % st)
    check(st["activation"] == st["session"] + "-0", "activation 0 in progress: %r" % st)
    acts = env.ask({"cmd": "activations"})["activations"]
    check(len(acts) == 1 and acts[0]["status"] == "open" and acts[0]["end"] is None,
          "one open activation: %r" % acts)
    sess = env.ask({"cmd": "sessions"})["sessions"]
    check(len(sess) == 1 and sess[0]["id"] == st["session"] and sess[0]["open"], "sessions: %r" % sess)

    r = c.request({"type": "fix", "lat": 51.5, "lon": -0.12, "speed": 5.2, "course": 90,
                   "eph": 6, "mode": 3})
    check(r.get("ok") is True and r.get("accepted") is True, "fix: %r" % r)
    h = env.ask({"cmd": "health"})["health"]
    check(h["healthy"] is True and h["fix_age_ms"] is not None, "fresh fix, db, loop: %r" % h)
    st = env.status()
    check(st["last_fix"] and abs(st["last_fix"]["lat"] - 51.5) < 1e-9, "last fix: %r" % st)

    ex = env.ask({"cmd": "explain", "id": acts[0]["id"]})
    check(ex.get("ok") is True, "explain: %r" % ex)
    e = ex["explain"]
    check(e["open_event"]["id"] == job["event_id"] == acts[0]["open_event_id"],
          "explain names the job_accepted event that opened it: %r" % e)
    check(e["open_event"]["payload"]["event"] == "job_accepted", "open event payload: %r" % e)
    check("job" in e["statement"] and acts[0]["id"] in e["statement"], "statement: %r" % e["statement"])
    ex = env.ask({"cmd": "explain", "id": "no-such-activation"})
    check(ex.get("ok") is False and "no-such-activation" in ex["error"], "explain unknown: %r" % ex)

    r = c.request({"type": "app", "event": "offline"})
    check(r.get("accepted") is True, "offline: %r" % r)
    st = env.status()
    check(st["on_cover"] is False, "offline ends cover: %r" % st)
    sess = env.ask({"cmd": "sessions"})["sessions"]
    check(sess[0]["open"] is False and sess[0]["end_reason"] == "offline", "closed session: %r" % sess)
    c.close()
    check(env.stop(env.procs[0]) == 0, "clean exit")


def restart_case(env, sig):
    # Socket events are stamped by the daemon when they arrive (an app's "t" is only a
    # label), so time goes on by the daemon's own clock: with one-minute activations the
    # session's second activation begins a minute after it opened. app_silence is long so
    # that no silence rule ends the session while the test waits.
    env.write_conf(extra="\n[engine]\nactivation_length = 1m\nmin_cover = 1m\n"
                         "max_session = 48m\napp_silence = 24h\n")
    p = env.start()
    c = env.client()
    open_session(env, c)
    c.close()
    before = env.status()
    check(before["on_cover"], "session open before the stop: %r" % before)
    check(before["activation"] == before["session"] + "-0", "activation 0 in progress: %r" % before)

    rc = env.stop(p, sig)
    if sig == signal.SIGTERM:
        check(rc == 0, "SIGTERM must exit 0, got %s:\n%s" % (rc, env.log()))
        check(not os.path.exists(env.sock), "socket must be removed on SIGTERM")
    else:
        check(rc == -signal.SIGKILL, "killed: %s" % rc)
        check(os.path.exists(env.sock), "a killed daemon leaves its socket behind")

    env.start()
    after = env.status()
    check(after["on_cover"] is True and after["session"] == before["session"],
          "the same session must resume: %r vs %r" % (before, after))
    check(after["jobs_active"] == before["jobs_active"] == 1, "job still in progress: %r" % after)
    check(after["session_start"] == before["session_start"], "same start")
    if sig == signal.SIGKILL:
        check("removed stale socket" in env.log(), "stale socket replaced:\n%s" % env.log())

    # The first minute ends on the resumed daemon's timer: activation 1 of the same session
    # opens (bounded wait: the boundary is a minute after the session's start).
    deadline = time.monotonic() + 90
    st = env.status()
    while st["activation"] != before["session"] + "-1" and time.monotonic() < deadline:
        time.sleep(0.2)
        st = env.status()
    check(st["session"] == before["session"] and st["activation"] == before["session"] + "-1",
          "minute 2 of the same session: %r" % st)
    acts = env.ask({"cmd": "activations", "session": before["session"]})["activations"]
    check([a["index"] for a in acts] == [0, 1], "activations 0 and 1: %r" % acts)
    check(acts[0]["status"] == "closed" and acts[0]["end_reason"] == "hour", "hour 1 closed: %r" % acts[0])
    check(acts[1]["status"] == "open", "hour 2 open: %r" % acts[1])
    sess = env.ask({"cmd": "sessions"})["sessions"]
    check(len(sess) == 1, "still one session: %r" % sess)


def case_restart_sigterm(env):
    restart_case(env, signal.SIGTERM)


def case_restart_kill9(env):
    restart_case(env, signal.SIGKILL)


def case_sighup(env):
    p = env.start()
    env.write_conf(level="debug")
    p.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + WAIT_S
    while "configuration reloaded" not in env.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    check("configuration reloaded" in env.log() and "log level debug" in env.log(),
          "reload with a new level:\n%s" % env.log())
    # Debug lines now appear (a client closing is logged at debug).
    env.ask({"cmd": "ping"})
    deadline = time.monotonic() + WAIT_S
    while "debug:" not in env.log() and time.monotonic() < deadline:
        env.ask({"cmd": "ping"})
        time.sleep(0.05)
    check("debug:" in env.log(), "debug logging after reload:\n%s" % env.log())

    with open(env.conf, "a") as f:
        f.write("\n[engine]\nno_such_key = 1\n")
    p.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + WAIT_S
    while "keeping the old configuration" not in env.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    log = env.log()
    check("keeping the old configuration" in log and "no_such_key" in log,
          "a bad reload names the key and keeps running:\n%s" % log)
    check(p.poll() is None, "daemon still running after a bad reload")
    check(env.ask({"cmd": "ping"}).get("pong") is True, "still serving")
    check(counters(env).get("config.reload_failed") == 1, "reload failure counted")
    check(env.stop(p) == 0, "clean exit")


def case_deadline_timer(env):
    # Short rule durations so the engine's own deadline fires while the test waits: the
    # app goes silent with the vehicle stationary, and the loop's deadline timer ends the
    # session without any further input. A job is in progress, so (revision 2) a silent,
    # stationary vehicle ends cover after idle_end, not gap_end: the courier may be waiting.
    env.write_conf(extra="\n[engine]\ngap_end = 2s\nidle_end = 3s\napp_silence = 2s\n")
    p = env.start()
    c = env.client()
    open_session(env, c)
    c.close()
    sid = env.status()["session"]
    check(sid, "session open")
    deadline = time.monotonic() + WAIT_S
    st = env.status()
    while st["on_cover"] and time.monotonic() < deadline:
        time.sleep(0.1)
        st = env.status()
    check(not st["on_cover"], "the deadline timer must end the session: %r" % st)
    sess = env.ask({"cmd": "sessions"})["sessions"]
    check(len(sess) == 1 and sess[0]["id"] == sid and sess[0]["end_reason"] == "app_silence",
          "ended by app silence: %r" % sess)
    acts = env.ask({"cmd": "activations"})["activations"]
    ex = env.ask({"cmd": "explain", "id": acts[0]["id"]})["explain"]
    check(ex["close_event"] is not None and ex["close_event"]["source"] == "timer" and
          ex["close_event"]["type"] == "tick", "closed by the timer's tick: %r" % ex["close_event"])
    check(env.stop(p) == 0, "clean exit")


def run_tool(args, **kw):
    return subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          stdin=subprocess.DEVNULL, timeout=WAIT_S, **kw)


def case_check_config(env):
    r = run_tool([env.coverd, "-n", "-c", env.conf])
    check(r.returncode == 0, "-n exit %d: %s" % (r.returncode, r.stderr))
    check("[device]" in r.stdout and "id = it-dev" in r.stdout and "source = none" in r.stdout,
          "normalised config printed:\n%s" % r.stdout)
    check("gap_end = 10m" in r.stdout, "defaults written out:\n%s" % r.stdout)
    # The normalised form reads back to itself.
    again = os.path.join(env.root, "again.conf")
    with open(again, "w") as f:
        f.write(r.stdout)
    r2 = run_tool([env.coverd, "-n", "-c", again])
    check(r2.returncode == 0 and r2.stdout == r.stdout, "round trip:\n%s\n%s" % (r2.stdout, r2.stderr))
    # --state-dir overrides the file.
    r3 = run_tool([env.coverd, "-n", "-c", env.conf, "--state-dir", "/elsewhere"])
    check(r3.returncode == 0 and "state_dir = /elsewhere" in r3.stdout, "override:\n%s" % r3.stdout)

    with open(env.conf, "a") as f:
        f.write("\n[engine]\ngap_endd = 10m\n")
    r = run_tool([env.coverd, "-n", "-c", env.conf])
    check(r.returncode == 1, "-n with an unknown key must exit 1, got %d" % r.returncode)
    check("gap_endd" in r.stderr and env.conf in r.stderr, "error names file and key: %r" % r.stderr)
    check(r.stdout == "", "nothing printed on stdout for a bad config")

    r = run_tool([env.coverd, "-n", "-c", os.path.join(env.root, "missing.conf")])
    check(r.returncode == 1 and "missing.conf" in r.stderr, "explicit missing file: %r" % r.stderr)
    r = run_tool([env.coverd, "--version"])
    check(r.returncode == 0 and r.stdout.startswith("coverd "), "version: %r" % r.stdout)
    r = run_tool([env.coverd, "--bogus-flag"])
    check(r.returncode == 2 and "usage" in r.stderr, "bad flag: %d %r" % (r.returncode, r.stderr))


def case_garbage_db(env):
    os.makedirs(env.state)
    db = os.path.join(env.state, "coverd.db")
    with open(db, "wb") as f:
        f.write(b"this is not an SQLite database; it is garbage\n" * 200)
    r = run_tool([env.coverd, "-f", "-c", env.conf])
    check(r.returncode == 1, "a garbage database must give exit 1 (no crash), got %d:\n%s"
          % (r.returncode, r.stderr))
    check(db in r.stderr, "the error names the database: %r" % r.stderr)
    with open(db, "rb") as f:
        check(f.read(16) == b"this is not an S", "the file is left as it was")
    check(not os.path.exists(env.sock), "no socket left behind")

    # A truncated real database: a valid header, the rest cut off.
    shutil.rmtree(env.state)
    p = env.start()
    c = env.client()
    open_session(env, c)
    c.close()
    check(env.stop(p) == 0, "clean stop")
    with open(db, "r+b") as f:
        f.truncate(1024 + 100)
    for suffix in ("-wal", "-shm"):
        if os.path.exists(db + suffix):
            os.unlink(db + suffix)
    r = run_tool([env.coverd, "-f", "-c", env.conf])
    check(r.returncode == 1 and db in r.stderr, "truncated database: %d %r" % (r.returncode, r.stderr))


def case_unreadable_state_dir(env):
    os.makedirs(env.state)
    os.chmod(env.state, 0)
    user = None
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            raise Skip("running as root without setpriv: cannot test an unreadable directory")
        user = "nobody"
        # nobody must reach the config and the binary, just not the state directory.
        os.chmod(env.root, 0o755)
        os.chmod(env.conf, 0o644)
    cmd = [env.coverd, "-f", "-c", env.conf]
    if user:
        cmd = ["setpriv", "--reuid=" + user, "--regid=nogroup", "--clear-groups"] + cmd
        probe = run_tool(["setpriv", "--reuid=" + user, "--regid=nogroup", "--clear-groups",
                          env.coverd, "--version"])
        if probe.returncode != 0:
            raise Skip("coverd cannot run as %s here: %s" % (user, probe.stderr.strip()))
    r = run_tool(cmd)
    check(r.returncode == 1, "unreadable state dir must exit 1, got %d: %s" % (r.returncode, r.stderr))
    check(env.state in r.stderr and "ermission denied" in r.stderr,
          "the error names the path and the reason: %r" % r.stderr)

    # A state directory that cannot be created.
    os.chmod(env.state, 0o755)
    blocked = os.path.join(env.root, "file-not-dir")
    with open(blocked, "w") as f:
        f.write("x")
    r = run_tool([env.coverd, "-f", "-c", env.conf, "--state-dir", os.path.join(blocked, "state")])
    check(r.returncode == 1 and blocked in r.stderr, "uncreatable state dir: %d %r" % (r.returncode, r.stderr))


def case_socket_in_use(env):
    p = env.start()
    r = run_tool([env.coverd, "-f", "-c", env.conf])
    check(r.returncode == 1 and "already serving" in r.stderr,
          "a second daemon must refuse: %d %r" % (r.returncode, r.stderr))
    check(env.ask({"cmd": "ping"}).get("pong") is True, "the first one still serves")
    check(env.stop(p) == 0, "clean stop")


END_0920 = int(datetime.datetime(2026, 11, 28, 9, 20, tzinfo=datetime.timezone.utc).timestamp()) * 1000


def case_replay(env):
    scen = os.path.join(env.root, "s.jsonl")
    lines = [
        '# a comment line, skipped',                                                # 1
        '{"t":"2026-11-28T09:00:00Z","type":"policy","event":"assign","policy_id":"P-1","driver_id":"D-1","vehicle_id":"V-1"}',
        '{"t":"2026-11-28T09:00:00Z","type":"app","event":"online"}',
        '{"t":"2026-11-28T09:00:10Z","type":"app","event":"job_accepted"}',
        '{"t":"2026-11-28T09:00:20Z","type":"app","event":"job_teleported"}',      # 5: bad
        '',                                                                         # 6: blank
        '{"t":"2026-11-28T09:00:30Z","type":"fix","lat":45.77,"lon":14.35,"speed":5.2,"course":90,"eph":6,"mode":3}',
        '{"t":"2026-11-28T09:04:00Z","type":"app","event":"heartbeat"}',
        '{"t":"2026-11-28T09:08:00Z","type":"app","event":"heartbeat"}',
        '{"t":"2026-11-28T09:10:00Z","type":"restart"}',                           # 10
        '{"t":"2026-11-28T08:00:00Z","type":"app","event":"heartbeat"}',           # 11: old
        '{"t":"2026-11-28T09:12:00Z","type":"app","event":"heartbeat"}',
        '{"t":"2026-11-28T09:16:00Z","type":"app","event":"heartbeat"}',
        '{"t":"2026-11-28T09:20:00Z","type":"app","event":"job_delivered"}',
        '{"t":"2026-11-28T09:20:01Z","type":"app","event":"' + "z" * 70000 + '"}', # 15: too long
        '{"t":"2026-11-28T09:24:00Z","type":"app","event":"heartbeat"}',
        '{"t":"2026-11-28T09:28:00Z","type":"app","event":"heartbeat"}',
        # gap_end (10 min after the delivery, app not silent) fires at 09:30, before this:
        '{"t":"2026-11-28T09:31:00Z","type":"app","event":"heartbeat"}',
    ]
    with open(scen, "w") as f:
        f.write("\n".join(lines) + "\n")
    r = run_tool([env.coverd, "-f", "-c", env.conf, "--replay", scen, "--speed", "max"])
    check(r.returncode == 0, "replay exit %d:\n%s" % (r.returncode, r.stderr))
    check("replay: 16 lines, 12 applied, 1 rejected, 2 bad" in r.stdout, "summary: %r" % r.stdout)
    check("%s:5: " % scen in r.stderr and "job_teleported" in r.stderr, "bad line 5: %r" % r.stderr)
    check("%s:15: line too long" % scen in r.stderr, "too long line 11: %r" % r.stderr)
    check(not os.path.exists(env.sock), "socket removed at exit")

    db = sqlite3.connect(os.path.join(env.state, "coverd.db"))
    cnt = dict(db.execute("SELECT name, value FROM counters"))
    check(cnt.get("scenario.bad_line") == 2, "scenario.bad_line: %r" % cnt)
    check(cnt.get("rejected.out_of_order") == 1, "the old heartbeat rejected: %r" % cnt)
    sess = db.execute("SELECT id, end_reason, end_ms FROM sessions").fetchall()
    check(len(sess) == 1 and sess[0][1] == "gap_end" and sess[0][2] == END_0920,
          "one session, ended by gap_end at the delivery: %r" % sess)
    db.close()

    r = run_tool([env.coverd, "-f", "-c", env.conf, "--replay", os.path.join(env.root, "nope.jsonl")])
    check(r.returncode == 1 and "nope.jsonl" in r.stderr, "missing scenario: %d %r" % (r.returncode, r.stderr))
    r = run_tool([env.coverd, "-f", "-c", env.conf, "--replay", scen, "--speed", "fast"])
    check(r.returncode == 2 and "--speed" in r.stderr, "bad speed: %r" % r.stderr)

    # Paced (here 3600 times the recorded pace) gives what --speed max gave.
    shutil.rmtree(env.state)
    r = run_tool([env.coverd, "-f", "-c", env.conf, "--replay", scen, "--speed", "3600"])
    check(r.returncode == 0 and "12 applied, 1 rejected, 2 bad" in r.stdout, "paced: %r" % r.stdout)
    db = sqlite3.connect(os.path.join(env.state, "coverd.db"))
    sess2 = db.execute("SELECT id, end_reason, end_ms FROM sessions").fetchall()
    db.close()
    check(sess2 == sess, "paced replay, same result: %r vs %r" % (sess2, sess))

    # --stay keeps serving after the end; SIGTERM then stops it cleanly.
    p = env.start("--replay", scen, "--speed", "max", "--stay")
    st = env.status()
    check(st["sessions_total"] == 1, "replayed state is served: %r" % st)
    check(env.stop(p) == 0, "clean stop after --stay")


def case_gpsd(env):
    for tool in ("gpsfake", "gpsd"):
        if shutil.which(tool) is None and not os.path.exists("/usr/sbin/" + tool):
            raise Skip("%s is not installed" % tool)
    log = os.path.join(env.data, "gnss", "mt3339.log")
    check(os.path.exists(log), "test data missing: %s" % log)
    port = free_port()
    env.write_conf(gnss="gpsd", extra="gpsd_host = 127.0.0.1\ngpsd_port = %d\n" % port)
    # -c: a delay between sentences, so the log plays for a few seconds and coverd
    # (started right after gpsd listens) sees it; -1: play it once.
    gf_log = open(os.path.join(env.root, "gpsfake.log"), "w")
    gf = subprocess.Popen(["gpsfake", "-1", "-q", "-c", "0.05", "-P", str(port), log],
                          stdout=gf_log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    env.procs.append(gf)
    try:
        p = env.start()
        deadline = time.monotonic() + 60
        fix = None
        while time.monotonic() < deadline and fix is None:
            st = env.status()
            fix = st.get("last_fix")
            if fix is None:
                time.sleep(0.2)
        check(fix is not None, "coverd received no fix from gpsd:\n%s" % env.log())
        # The MT3339 log was recorded in Bend, Oregon, 44.07 N 121.31 W.
        check(abs(fix["lat"] - 44.068) < 0.01 and abs(fix["lon"] + 121.314) < 0.01,
              "fix position: %r" % fix)
        # gpsd reports some of this log's fixes as 2D although every GPGSA says 3D (seen
        # on a loaded machine: mode 2 at this position); which fix coverd holds last
        # depends on timing, so either is right, a no-fix is not.
        check(fix["mode"] in (2, 3), "a 2D or 3D fix from the MT3339 log: %r" % fix)
        check(st["gnss"]["source"] == "gpsd" and st["gnss"]["fixes"] >= 1, "gnss status: %r" % st["gnss"])
        check("connected to gpsd" in env.log(), "connect logged:\n%s" % env.log())
        h = env.ask({"cmd": "health"})["health"]
        check(h["fix_fresh"] is True, "fresh fix makes health: %r" % h)
        check(env.stop(p) == 0, "clean stop")
    finally:
        if gf.poll() is None:
            gf.send_signal(signal.SIGTERM)
            try:
                gf.wait(timeout=WAIT_S)
            except subprocess.TimeoutExpired:
                gf.kill()
                gf.wait()
        gf_log.close()


def case_gpsd_absent(env):
    # No gpsd on the port: the daemon starts anyway, serves, and says it will retry.
    env.write_conf(gnss="gpsd", extra="gpsd_host = 127.0.0.1\ngpsd_port = %d\n" % free_port())
    p = env.start()
    st = env.status()
    check(st["gnss"]["connected"] is False and st["last_fix"] is None, "not connected: %r" % st)
    check("retrying" in env.log(), "retry announced:\n%s" % env.log())
    check(env.stop(p) == 0, "clean stop")


# ------------------------------------------------------------------- live time, retries

DAY_S = 86400


def parse_t(text):
    """An RFC 3339 time as coverd writes it, in seconds since the epoch."""
    fmt = "%Y-%m-%dT%H:%M:%S.%fZ" if "." in text else "%Y-%m-%dT%H:%M:%SZ"
    return datetime.datetime.strptime(text, fmt).replace(tzinfo=datetime.timezone.utc).timestamp()


def check_present(what, value):
    """value (an RFC 3339 string, or ms since the epoch) lies within a day of now."""
    secs = value / 1000.0 if isinstance(value, (int, float)) else parse_t(value)
    check(abs(secs - time.time()) <= DAY_S, "%s is not dated in the present: %r" % (what, value))


def journal(env):
    """The journal rows (id, t_ms, source, type, json, status, reason), read-only beside the
    running daemon."""
    db = sqlite3.connect("file:%s?mode=ro" % os.path.join(env.state, "coverd.db"), uri=True)
    try:
        return db.execute("SELECT id, t_ms, source, type, json, status, reason FROM events"
                          " ORDER BY id").fetchall()
    finally:
        db.close()


def db_rows(env, sql):
    db = sqlite3.connect("file:%s?mode=ro" % os.path.join(env.state, "coverd.db"), uri=True)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


def check_nothing_dated_elsewhere(env):
    """No session, activation, journal row, outbox record or status time outside the present."""
    st = env.status()
    for k in ("session_start", "last_event", "outbox_oldest"):
        if st.get(k) is not None:
            check_present("status " + k, st[k])
    if st.get("last_fix"):
        check_present("status last_fix.t", st["last_fix"]["t"])
    for sess in env.ask({"cmd": "sessions"})["sessions"]:
        check_present("session start", sess["start"])
        if sess["end"] is not None:
            check_present("session end", sess["end"])
    for a in env.ask({"cmd": "activations"})["activations"]:
        check_present("activation start", a["start"])
        if a["end"] is not None:
            check_present("activation end", a["end"])
    for row in journal(env):
        check_present("journal event %d" % row[0], row[1])
    for (body,) in db_rows(env, "SELECT body FROM outbox"):
        rec = json.loads(body)
        for k in ("start", "end"):
            if rec.get(k) is not None:
                check_present("outbox record " + k, rec[k])
    return st


def case_app_time(env):
    """Socket events are stamped by the daemon on receipt: an app's "t" from 2038 or 1999
    is kept as its label (journal, reply), flags clock_step, is counted, and dates nothing;
    not after a restart either."""
    p = env.start()
    c = env.client()
    y2038, y1999 = "2038-01-19T03:14:07Z", "1999-08-22T12:00:00Z"
    sent = [
        ({"type": "policy", "event": "assign", "policy_id": "P-1", "driver_id": "D-1",
          "vehicle_id": "V-1", "t": y1999}, y1999),
        ({"type": "app", "event": "online", "t": y2038, "tq": "gnss"}, y2038),
        ({"type": "app", "event": "job_accepted", "job_id": "J-1", "t": y1999, "tq": "unsynced"}, y1999),
        ({"type": "fix", "lat": 51.5, "lon": -0.12, "speed": 5.2, "course": 90, "eph": 6,
          "mode": 3, "t": y2038}, y2038),
        ({"type": "app", "event": "heartbeat", "t": y1999}, y1999),
        ({"type": "app", "event": "heartbeat", "t": y2038, "id": "hb-2038"}, y2038),
    ]
    for obj, app_t in sent:
        r = c.request(obj)
        check(r.get("ok") is True and r.get("accepted") is True, "%r: %r" % (obj, r))
        check_present("reply t of %r" % obj, r["t"])
        check(r.get("app_t") == app_t, "the reply shows the app's label: %r" % r)
    # An app time within max_app_skew (2 minutes) is no anomaly.
    now = rfc3339(datetime.datetime.now(datetime.timezone.utc))
    r = c.request({"type": "app", "event": "heartbeat", "t": now})
    check(r.get("accepted") is True and r.get("app_t") == now, "heartbeat now: %r" % r)

    st = check_nothing_dated_elsewhere(env)
    check(st["on_cover"] is True, "the job opened a session: %r" % st)
    check(st["last_fix"] is not None, "the fix was used: %r" % st)
    check(st["counters"].get("ipc.app_clock_skew") == len(sent),
          "ipc.app_clock_skew counts the %d skewed events: %r" % (len(sent), st["counters"]))
    acts = env.ask({"cmd": "activations"})["activations"]
    check(len(acts) == 1 and "clock_step" in acts[0]["anomalies"],
          "the activation is flagged clock_step: %r" % acts)
    # The time quality is the timeline's (the host clock), not the "tq" the app sent
    # ("unsynced" on the job that opened the activation, "gnss" on online).
    check(acts[0]["time_quality"] == st["clock"]["quality"],
          "time quality of the timeline: %r vs %r" % (acts[0], st["clock"]))
    # The app's label stays in the journal, beside the receipt time.
    rows = journal(env)
    labels = [json.loads(r[4]).get("t") for r in rows if r[2] == "ipc"]
    check(y1999 in labels and y2038 in labels, "the journal keeps the app's labels: %r" % labels)
    check("the app's time " in env.log() and "max_app_skew" in env.log(),
          "the skew is logged:\n%s" % env.log())
    # An app reporting clock_step is the app's report: it flags the event, and the
    # device does not log that its own clock stepped (issue 7, item 6).
    r = c.request({"type": "app", "event": "heartbeat", "clock_step": True})
    check(r.get("accepted") is True, "heartbeat with clock_step: %r" % r)
    check("the wall clock stepped" not in env.log(),
          "an app's clock_step or skew logged as the device clock stepping:\n%s" % env.log())

    # An app "t" that does not parse is refused naming the field; nothing is stored.
    n = len(journal(env))
    malformed = st["counters"].get("ipc.malformed", 0)
    for bad in ({"type": "app", "event": "heartbeat", "t": "2038-02-30T00:00:00Z"},
                {"type": "app", "event": "heartbeat", "t": 2145916800},
                {"type": "app", "event": "heartbeat", "t": "tomorrow", "id": "hb-bad"}):
        r = c.request(bad)
        check(r.get("ok") is False and 'field "t"' in r.get("error", ""), "%r: %r" % (bad, r))
    check(len(journal(env)) == n, "refused events are not journalled")
    check(counters(env).get("ipc.malformed", 0) == malformed + 3, "refusals counted")
    c.close()

    # After a kill -9 and a restart, still nothing is dated 2038 and new events are stamped
    # in the present.
    env.stop(p, signal.SIGKILL)
    env.start()
    c = env.client()
    r = c.request({"type": "app", "event": "heartbeat"})
    check(r.get("accepted") is True, "heartbeat after restart: %r" % r)
    check_present("reply t after restart", r["t"])
    r = c.request({"type": "app", "event": "job_delivered", "job_id": "J-1"})
    check(r.get("accepted") is True, "delivery after restart: %r" % r)
    c.close()
    st = check_nothing_dated_elsewhere(env)
    check(st["on_cover"] is True, "the session resumed: %r" % st)
    check(env.stop(env.procs[-1]) == 0, "clean exit")


KILL_ID = "accept-J-1"


def count_type(env, typ, event=None):
    n = 0
    for row in journal(env):
        if row[3] == typ and (event is None or json.loads(row[4]).get("event") == event):
            n += 1
    return n


def case_ipc_retry(env):
    """A request with an id is applied once however often it is sent: coverd killed
    (SIGKILL) after committing it and before replying, restarted, and sent the same bytes
    again answers with the recorded reply and does not apply it twice."""
    p = env.start(env={"COVERD_TEST_KILL_BEFORE_REPLY": KILL_ID})
    check("test hook armed" in env.log(), "the hook says it is armed:\n%s" % env.log())
    c = env.client()
    for obj in ({"type": "policy", "event": "assign", "policy_id": "P-1", "driver_id": "D-1",
                 "id": "r-policy"},
                {"type": "app", "event": "online", "id": "r-online"}):
        r = c.request(obj)
        check(r.get("ok") is True and r.get("accepted") is True and r.get("id") == obj["id"],
              "%r: %r" % (obj, r))
    accept = json.dumps({"type": "app", "event": "job_accepted", "job_id": "J-1",
                         "id": KILL_ID}).encode()
    c.send_raw(accept + b"\n")
    try:
        line = c.read_line()
        raise Failure("a reply came although the hook kills coverd first: %r" % line)
    except Failure as e:
        check("closed the connection" in str(e), "no reply: %s" % e)
    except OSError:
        pass
    c.close()
    rc = p.wait(timeout=WAIT_S)
    check(rc == -signal.SIGKILL, "coverd was killed by the hook: %s\n%s" % (rc, env.log()))
    check("killing coverd before its reply" in env.log(), "hook logged:\n%s" % env.log())
    # The request was committed with its effects before the kill.
    check(count_type(env, "app", "job_accepted") == 1, "job_accepted journalled once")
    check(db_rows(env, "SELECT COUNT(*) FROM requests WHERE id = '%s'" % KILL_ID)[0][0] == 1,
          "the request id was recorded with it")

    # The app got no reply, so it retries with the same bytes, after the restart.
    env.start()
    c = env.client()
    first = c.request_line(accept)
    r = json.loads(first)
    check(r.get("ok") is True and r.get("accepted") is True and r.get("id") == KILL_ID,
          "the retry is answered with the recorded reply: %r" % r)
    ids = [row[0] for row in journal(env) if row[3] == "app" and json.loads(row[4]).get("event") == "job_accepted"]
    check(r.get("event_id") == ids[0], "the reply names the one journal event: %r %r" % (r, ids))
    again = c.request_line(accept)
    check(again == first, "a second retry gets the identical reply: %r vs %r" % (again, first))
    st = env.status()
    check(st["jobs_active"] == 1 and st["on_cover"] is True and st["sessions_total"] == 1,
          "applied exactly once: %r" % st)
    check(count_type(env, "app", "job_accepted") == 1, "still one job_accepted in the journal")
    check(len(env.ask({"cmd": "sessions"})["sessions"]) == 1, "one session")
    check(st["counters"].get("ipc.retry") == 2, "retries counted: %r" % st["counters"])

    # A duplicate after a normal reply gets the identical reply, before and after a
    # restart, and is applied once.
    hb = json.dumps({"type": "app", "event": "heartbeat", "id": "hb-1", "t": "2038-01-19T03:14:07Z"}).encode()
    r1 = c.request_line(hb)
    check(json.loads(r1).get("accepted") is True, "heartbeat: %r" % r1)
    r2 = c.request_line(hb)
    check(r2 == r1, "duplicate id, identical reply: %r vs %r" % (r2, r1))
    # Surrounding blanks do not make it another request.
    r3 = c.request_line(b"  " + hb + b"\t")
    check(r3 == r1, "the same request with blanks around it: %r vs %r" % (r3, r1))
    # A fix with an id is committed at once (not only buffered), so a retry after a crash
    # is answered too.
    fix = json.dumps({"type": "fix", "lat": 51.5, "lon": -0.12, "speed": 5.2, "course": 90,
                      "eph": 6, "mode": 3, "id": "fix-1"}).encode()
    f1 = c.request_line(fix)
    check(isinstance(json.loads(f1).get("event_id"), int), "a fix with an id is journalled: %r" % f1)
    c.close()
    env.stop(env.procs[-1], signal.SIGKILL)
    env.start()
    c = env.client()
    check(c.request_line(hb) == r1, "the same reply after a restart")
    check(c.request_line(fix) == f1, "the fix's reply after a restart")
    check(count_type(env, "app", "heartbeat") == 1, "the heartbeat applied once")
    check(count_type(env, "fix") == 1, "the fix applied once")

    # The same id for a different request is refused naming the field; nothing applied.
    n = len(journal(env))
    r = c.request({"type": "app", "event": "offline", "id": "hb-1"})
    check(r.get("ok") is False and 'field "id"' in r.get("error", ""), "id reuse: %r" % r)
    check(len(journal(env)) == n and env.status()["on_cover"] is True, "nothing applied")

    # Requests without an id behave as before: each one is applied.
    for _ in range(2):
        r = c.request({"type": "app", "event": "heartbeat"})
        check(r.get("accepted") is True and "id" not in r, "heartbeat without id: %r" % r)
    check(count_type(env, "app", "heartbeat") == 3, "two more heartbeats journalled")
    st = env.status()
    check(st["counters"].get("ipc.retry") == 6 and st["counters"].get("ipc.id_conflict") == 1,
          "counters: %r" % st["counters"])
    c.close()
    check(env.stop(env.procs[-1]) == 0, "clean exit")

    # The hook is a test hook: without -f or -d it is ignored.
    p = env.start(env={"COVERD_TEST_KILL_BEFORE_REPLY": "hb-ignored"}, foreground=False)
    r = env.ask({"type": "app", "event": "heartbeat", "id": "hb-ignored"})
    check(r.get("ok") is True and p.poll() is None, "no kill outside the foreground: %r" % r)
    check("ignored: the test hook works only in the foreground" in env.log(),
          "the ignored hook is logged:\n%s" % env.log())
    check(env.stop(p) == 0, "clean exit")


def case_ipc_bad_fields(env):
    """A job_id too long or not a string, an id not a string, an app t that does not
    parse: each refused with a reply naming the field and counted; nothing stored changes."""
    p = env.start()
    c = env.client()
    open_session(env, c)
    r = c.request({"type": "app", "event": "job_picked_up", "job_id": "J-1", "id": "ok-1"})
    check(r.get("accepted") is True, "a good job_id: %r" % r)

    def snapshot():
        st = env.status()
        counters_ = st.pop("counters")
        for k in ("last_event",):
            st.pop(k)
        return (st, env.ask({"cmd": "sessions"})["sessions"],
                env.ask({"cmd": "activations"})["activations"], journal(env),
                db_rows(env, "SELECT * FROM requests ORDER BY seq"),
                db_rows(env, "SELECT seq, body FROM outbox ORDER BY seq")), counters_

    before, cnt0 = snapshot()
    bad = [
        ({"type": "app", "event": "job_accepted", "job_id": "j" * 64}, 'field "job_id"'),
        ({"type": "app", "event": "job_accepted", "job_id": 4711}, 'field "job_id"'),
        ({"type": "app", "event": "job_delivered", "job_id": ["J-1"]}, 'field "job_id"'),
        ({"type": "app", "event": "job_accepted", "job_id": ""}, 'field "job_id"'),
        ({"type": "app", "event": "job_accepted", "job_id": "J\u00e9"}, 'field "job_id"'),
        ({"type": "app", "event": "heartbeat", "job_id": "J-1"}, 'field "job_id"'),
        ({"type": "app", "event": "job_accepted", "job_id": "J-2", "id": 17}, 'field "id"'),
        ({"type": "app", "event": "job_accepted", "job_id": "J-2", "id": None}, 'field "id"'),
        ({"type": "app", "event": "job_accepted", "job_id": "J-2", "id": "i" * 64}, 'field "id"'),
        ({"type": "app", "event": "job_accepted", "job_id": "J-2", "t": "2026-13-01T00:00:00Z"}, 'field "t"'),
        ({"type": "app", "event": "job_accepted", "job_id": "J-2", "t": 1795856400}, 'field "t"'),
        # Refused whole even when its id was used before: nothing is answered from the window.
        ({"type": "app", "event": "job_picked_up", "job_id": "j" * 64, "id": "ok-1"}, 'field "job_id"'),
    ]
    for obj, field in bad:
        r = c.request(obj)
        check(r.get("ok") is False and field in r.get("error", ""),
              "%r must be refused naming %s: %r" % (obj, field, r))
    after, cnt1 = snapshot()
    check(after == before, "nothing stored changed:\n%r\n%r" % (before, after))
    check(cnt1.get("ipc.malformed", 0) - cnt0.get("ipc.malformed", 0) == len(bad),
          "each refusal counted in ipc.malformed: %r -> %r" % (cnt0, cnt1))
    check(p.poll() is None, "still running")
    c.close()
    check(env.stop(p) == 0, "clean exit")


def case_ipc_too_many_jobs(env):
    """More jobs in progress than the engine's bound (16): the accept is rejected with the
    reason too_many_jobs, counted, and changes no session or activation."""
    p = env.start()
    c = env.client()
    open_session(env, c)   # one job without id
    for i in range(2, 17):
        r = c.request({"type": "app", "event": "job_accepted", "job_id": "J-%d" % i})
        check(r.get("accepted") is True, "job %d: %r" % (i, r))
    check(env.status()["jobs_active"] == 16, "16 jobs in progress")
    sessions = env.ask({"cmd": "sessions"})["sessions"]
    acts = env.ask({"cmd": "activations"})["activations"]
    line = json.dumps({"type": "app", "event": "job_accepted", "job_id": "J-17", "id": "j17"}).encode()
    first = c.request_line(line)
    r = json.loads(first)
    check(r.get("ok") is True and r.get("accepted") is False and r.get("reason") == "too_many_jobs",
          "the 17th job is refused with its reason: %r" % r)
    check(c.request_line(line) == first, "a retry gets the same refusal")
    st = env.status()
    check(st["jobs_active"] == 16, "still 16 jobs: %r" % st)
    check(st["counters"].get("rejected.too_many_jobs") == 1, "counted once: %r" % st["counters"])
    check(env.ask({"cmd": "sessions"})["sessions"] == sessions, "sessions unchanged")
    check(env.ask({"cmd": "activations"})["activations"] == acts, "activations unchanged")
    c.close()
    check(env.stop(p) == 0, "clean exit")


CASES = {name[5:]: fn for name, fn in globals().items() if name.startswith("case_")}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--coverd", required=True)
    ap.add_argument("--case")
    ap.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "..", "data"))
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    if a.list:
        print("\n".join(sorted(CASES)))
        return 0
    if a.case not in CASES:
        print("unknown case %r; --list shows them" % a.case, file=sys.stderr)
        return 2
    env = Env(os.path.abspath(a.coverd), os.path.abspath(a.data))
    try:
        CASES[a.case](env)
    except Skip as e:
        print("SKIP: %s" % e)
        return SKIP
    except Exception:
        traceback.print_exc()
        for i in range(len(env.logs)):
            print("--- coverd log %d ---\n%s" % (i, env.log(i)), file=sys.stderr)
        env.cleanup(a.keep)
        return 1
    env.cleanup(a.keep)
    print("PASS: %s" % a.case)
    return 0


if __name__ == "__main__":
    sys.exit(main())
