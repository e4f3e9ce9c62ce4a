#!/usr/bin/env python3
"""bench_sync - delivery throughput and latency (issue 3's benchmark). Prints figures;
it is not a test and asserts nothing about speed.

    tools/bench-sync.sh [BUILD_DIR]        (or: bench_sync.py --build BUILD_DIR)

In one run, against one local mosquitto with the shipped fleet configuration and TLS
(SYNC_BROKER_EXTRA="set_tcp_nodelay true" appends broker settings, ';'-separated, for
experiments):
 1. drain: coverd writes a backlog of COUNT activation records while the broker is down
    (a replayed synthetic scenario) and is restarted once the broker is up; the drain
    rate is the backlog over the time from coverd's CONNACK to the backend's ack of the
    last record (coverd logs it). Twice: to a null backend that acks each record on
    arrival (the device side's own rate), then, with the same backlog marked undelivered
    again, to the reference coverd-ingest (verify, store, commit, then ack);
 2. raw: plain libmosquitto QoS 1 publishing of COUNT messages of the envelopes' mean
    size to the same broker (tests/bench/sync_raw_publish.c), first publish to last
    PUBACK;
 3. live: sessions fed over the local socket while connected; coverd measures each
    commit-to-ack time itself (status member mqtt.commit_to_ack_ms), p50 and p99.
"""

import argparse
import base64
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import mqtt_harness as h  # noqa: E402
from sync_env import SYNTHETIC_ENGINE, Bins, SyncEnv, synthetic_scenario  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--count", type=int, default=10000, help="records in the backlog (about)")
    ap.add_argument("--inflight", type=int, default=32)
    ap.add_argument("--live", type=int, default=300, help="sessions fed live (2 records each)")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--ingest", help="another coverd-ingest binary (experiments)")
    a = ap.parse_args()
    b = os.path.abspath(a.build)
    bins = Bins(os.path.join(b, "daemon", "coverd"), os.path.join(b, "tools", "coverctl"),
                os.path.join(b, "tools", "coverd-ingest"),
                os.path.join(b, "tests", "integration", "backend_probe"))
    if a.ingest:
        bins.ingest = os.path.abspath(a.ingest)
    raw_bin = os.path.join(b, "tests", "integration", "sync_raw_publish")
    for p in (bins.coverd, bins.coverctl, bins.ingest, bins.probe, raw_bin):
        if not os.access(p, os.X_OK):
            sys.exit("bench_sync: %s not built (make -C %s)" % (p, b))
    work = tempfile.mkdtemp(prefix="coverd-bench-sync-")
    env = SyncEnv(work, bins)
    try:
        sessions = (a.count + 95) // 96
        scen = os.path.join(work, "synthetic.jsonl")
        want = synthetic_scenario(scen, sessions)
        env.write_conf(keepalive="30s", inflight=a.inflight, engine=SYNTHETIC_ENGINE)
        env.enroll()

        # 1. The backlog, written with the broker down.
        t = time.monotonic()
        env.start_coverd("--replay", scen, "--speed", "max", "--stay")
        env.wait_status(lambda s: env.replay_done(s) and s["outbox_depth"] == want,
                        "the backlog to be written")
        write_s = time.monotonic() - t
        env.stop_coverd()
        ob = env.outbox()
        sizes = [len(json.dumps({"v": 1, "alg": "ES256", "device_id": env.device, "seq": s,
                                 "body": base64.b64encode(body if isinstance(body, bytes) else body.encode()).decode(),
                                 "sig": base64.b64encode(sig).decode()}, separators=(",", ":")))
                 for s, body, sig, _ in ob]
        mean = sum(sizes) // len(sizes)

        def drain(what):
            env.start_coverd()
            i = env.wait_coverd_log("outbox: backlog of", "the backlog to drain to " + what)
            m = re.search(r"backlog of (\d+) records delivered in ([0-9.]+) s since connecting",
                          env.coverd_log()[i:])
            env.wait_drained(min_records=want)
            return int(m.group(1)), float(m.group(2))

        env.start_broker()
        # 1a. To a null backend that acks on arrival: the device side's own rate.
        acker = h.spawn([raw_bin, "--ack", env.device, "--host", "127.0.0.1", "--port", str(env.port),
                         "--cafile", os.path.join(env.pki, "ca.crt"),
                         "--cert", os.path.join(env.pki, "ingest.crt"),
                         "--key", os.path.join(env.pki, "ingest.key")],
                        stdout=subprocess.PIPE, text=True)
        acker.stdout.readline()
        null_n, null_s = drain("the null backend")
        env.stop_coverd()
        h.stop(acker)
        # The same backlog again, undelivered, for the reference ingest (which has seen
        # none of it): resends are byte-identical, so it is the same work.
        db = sqlite3.connect(os.path.join(env.state, "coverd.db"))
        db.execute("UPDATE outbox SET delivered_ms = NULL")
        db.commit()
        db.close()
        # 1b. To the reference ingest: verified, stored, acked after commit.
        env.start_ingest()
        drained, secs = drain("the ingest")
        drain_rate = drained / secs
        env.check_exactly_once()

        # 2. Raw libmosquitto QoS 1 to the same broker, same size, another identity.
        raw = subprocess.run([raw_bin, "--host", "127.0.0.1", "--port", str(env.port),
                              "--cafile", os.path.join(env.pki, "ca.crt"),
                              "--cert", os.path.join(env.pki, "device-dev-b.crt"),
                              "--key", os.path.join(env.pki, "device-dev-b.key"),
                              "--topic", "coverd/v1/dev-b/cmd/reply", "--count", str(want),
                              "--size", str(mean)], check=True, capture_output=True, text=True)
        rm = re.search(r"seconds=([0-9.]+) rate=([0-9.]+)", raw.stdout)
        raw_rate = float(rm.group(2))

        # 3. Live: records committed while connected, commit to ack measured by coverd.
        env.ipc.ask({"type": "policy", "event": "assign", "policy_id": "P-2", "driver_id": "D-2"})
        for _ in range(a.live):
            for ev in ("online", "job_accepted", "offline"):
                env.ipc.ask({"type": "app", "event": ev})
        st = env.wait_drained(min_records=want + 2 * a.live)
        lat = st["mqtt"]["commit_to_ack_ms"]

        print("coverd delivery benchmark (%s)" % time.strftime("%Y-%m-%d %H:%M:%S"))
        print("  broker: mosquitto, shipped fleet configuration%s, TLS 1.2+ mutual, loopback"
              % (" + " + os.environ["SYNC_BROKER_EXTRA"] if os.environ.get("SYNC_BROKER_EXTRA") else ""))
        print("  machine: %d CPUs (broker, coverd, backend and this script share them)" % os.cpu_count())
        print("  backlog: %d records, mean envelope %d bytes, window %d (written in %.1f s)"
              % (want, mean, st["mqtt"]["window"], write_s))
        print("  raw libmosquitto QoS 1:             %8.0f messages/s (%s s)" % (raw_rate, rm.group(1)))
        print("  drain, acked by a null backend:     %8.0f records/s  (%d in %.2f s)  ratio %.2f"
              % (null_n / null_s, null_n, null_s, null_n / null_s / raw_rate))
        print("  drain, acked by coverd-ingest:      %8.0f records/s  (%d in %.2f s)  ratio %.2f"
              % (drain_rate, drained, secs, drain_rate / raw_rate))
        print("  (target: drain >= 0.5 x raw)")
        print("  commit to ack, live (%d records): p50 %s ms, p99 %s ms, max %s ms"
              % (lat.get("n", 0), lat.get("p50"), lat.get("p99"), lat.get("max")))
    finally:
        env.cleanup()
        if a.keep:
            print("kept", work)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
