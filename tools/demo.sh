#!/usr/bin/env bash
# demo.sh - the README's demo command. Replays the recorded six-hour courier shift
# (tests/scenarios/shift-6h.jsonl, positions from a real GPX track) through coverd, which
# delivers its signed activation records over MQTT with mutual TLS to a local mosquitto
# started here with certificates made on the spot, where the reference ingest
# (coverd-ingest) verifies, stores and acknowledges them. Then prints the shift's
# timeline, the device's activations and the hours the ingest billed, side by side.
#
# Everything runs on loopback in a temporary directory that is removed at the end
# (COVERD_DEMO_KEEP=1 keeps it). Environment: COVERD_SKIP_DEPS=1 skips
# tools/install-deps.sh; JOBS=N sets build jobs.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
jobs=${JOBS:-$(nproc 2>/dev/null || echo 2)}
scenario=tests/scenarios/shift-6h.jsonl
device=dev-demo

die() { printf 'demo: error: %s\n' "$*" >&2; exit 1; }
say() { printf 'demo: %s\n' "$*"; }

if [ "${COVERD_SKIP_DEPS:-0}" != 1 ]; then
	tools/install-deps.sh
fi

mkdir -p build/logs
say "building in build/"
if ! { cmake -S . -B build >build/logs/demo-configure.log 2>&1 &&
	cmake --build build -j "$jobs" >build/logs/demo-build.log 2>&1; }; then
	tail -n 40 build/logs/demo-configure.log build/logs/demo-build.log >&2
	die "build failed (logs in build/logs)"
fi
[ -f "$scenario" ] || die "$scenario is missing"
coverd=build/daemon/coverd
coverctl=build/tools/coverctl
ingest=build/tools/coverd-ingest

work=$(mktemp -d "${TMPDIR:-/tmp}/coverd-demo.XXXXXX")
pids=()
cleanup() {
	for p in "${pids[@]}"; do
		kill "$p" 2>/dev/null || true
	done
	for p in "${pids[@]}"; do
		wait "$p" 2>/dev/null || true
	done
	if [ "${COVERD_DEMO_KEEP:-0}" = 1 ]; then
		say "kept $work"
	else
		rm -rf "$work"
	fi
}
trap cleanup EXIT

# A free loopback port: bind port 0 and read what the kernel chose.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

say "making a CA, broker, ingest and device certificates in $work/pki"
tools/pki.sh "$work/pki" "$device" >"$work/pki.log" 2>&1 || { cat "$work/pki.log" >&2; die "pki.sh failed"; }

say "starting mosquitto with TLS on 127.0.0.1:$port (the shipped fleet config and ACL)"
mkdir -p "$work/broker"
conf=$(tools/broker-conf.sh "$work/pki" "$work/broker" "$port")
mosquitto -c "$conf" >"$work/broker/stdout.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
	if python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$port),0.2)" 2>/dev/null; then
		break
	fi
	sleep 0.1
done

# The device key is made by coverd itself on first start; enrol it before any record can
# arrive, so the ingest knows the device.
state="$work/state"
mkdir -p "$state"
chmod 700 "$state"
cat >"$work/coverd.conf" <<EOF
[device]
id = $device

[gnss]
source = none

[log]
level = warn
syslog = no

[mqtt]
enabled = yes
host = 127.0.0.1
port = $port
ca_file = $work/pki/ca.crt
cert_file = $work/pki/device-$device.crt
key_file = $work/pki/device-$device.key
signing_key = $state/device.key
EOF

say "first start of coverd: it creates its P-256 signing key (mode 0600)"
"$coverd" -c "$work/coverd.conf" --state-dir "$state" >"$work/coverd-first.log" 2>&1 &
first=$!
pids+=($first)
for _ in $(seq 100); do
	[ -s "$state/device.key" ] && break
	kill -0 "$first" 2>/dev/null || { cat "$work/coverd-first.log" >&2; die "coverd exited at its first start"; }
	sleep 0.1
done
kill -TERM "$first"
wait "$first" || { cat "$work/coverd-first.log" >&2; die "coverd did not stop cleanly"; }
"$coverctl" key --public --key "$state/device.key" >"$work/device.pub" ||
	die "could not read the device's public key"
"$ingest" enroll --db "$work/ingest.db" "$device" "$work/device.pub" >/dev/null ||
	die "could not enrol $device at the ingest"

say "starting the reference ingest (verifies signatures and chain, stores, then acks)"
"$ingest" run --db "$work/ingest.db" --host 127.0.0.1 --port "$port" \
	--cafile "$work/pki/ca.crt" --cert "$work/pki/ingest.crt" --key "$work/pki/ingest.key" \
	>"$work/ingest.log" 2>&1 &
pids+=($!)

say "replaying $scenario through coverd (as fast as possible; delivery over MQTT+TLS)"
"$coverd" -c "$work/coverd.conf" --state-dir "$state" --replay "$scenario" --speed max --stay \
	>"$work/coverd.log" 2>&1 &
coverd_pid=$!
pids+=($coverd_pid)

# Wait until the daemon has replayed the whole shift and the backend has acknowledged
# every record it produced.
depth=""
for _ in $(seq 600); do
	if grep -q '^replay: ' "$work/coverd.log" 2>/dev/null; then
		depth=$("$coverctl" --state-dir "$state" status --json 2>/dev/null | jq -r '.outbox_depth // empty' || true)
		[ "$depth" = 0 ] && break
	fi
	kill -0 "$coverd_pid" 2>/dev/null || { cat "$work/coverd.log" >&2; die "coverd exited early"; }
	sleep 0.1
done
[ "$depth" = 0 ] || { tail -n 20 "$work/coverd.log" "$work/ingest.log" >&2; die "the backlog did not drain (outbox depth ${depth:-unknown})"; }
grep '^replay: ' "$work/coverd.log" | sed 's/^/demo: /'
kill -TERM "$coverd_pid"
wait "$coverd_pid" || die "coverd did not stop cleanly"

echo
echo "== timeline of the shift (from the device's journal)"
"$coverctl" --state-dir "$state" activations --json | jq -r '
  def hm: .[11:16];
  group_by(.session_id)[] |
  ("session " + .[0].session_id),
  (.[] | select(.status != "voided") |
    "  \(.start | hm)-\(.end | hm)  hour \(.index)  \(.end_reason)  \((.distance_m / 1000 * 10 | round) / 10) km, \(.jobs) jobs"),
  (map(select(.status == "voided"))[] | "  \(.start | hm)        hour \(.index) voided (session ended before it began)")'
echo
echo "== the device's activations (coverctl activations)"
"$coverctl" --state-dir "$state" activations
echo
echo "== what the backend billed (coverd-ingest report)"
"$ingest" report --db "$work/ingest.db"
echo
device_hours=$("$coverctl" --state-dir "$state" activations --json | jq '[.[] | select(.status != "voided")] | length')
billed=$("$ingest" report --db "$work/ingest.db" --json | jq '[.. | objects | .hours? // empty] | add // 0')
echo "device activations: $device_hours, hours billed by the ingest: $billed"
[ "$device_hours" = "$billed" ] || die "the ingest and the device disagree"
