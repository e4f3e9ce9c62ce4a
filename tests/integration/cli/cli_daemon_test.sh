#!/usr/bin/env bash
# cli_daemon_test.sh - coverctl against a running coverd over its socket.
#
# usage: cli_daemon_test.sh COVERD COVERCTL WORKDIR
#
# Starts the real daemon (gnss none) on a fresh state directory, drives a short shift with
# `coverctl event` (the policy and a GNSS fix go in as raw socket lines, as the app or a
# backend command would send them), and checks what coverctl reports, from the daemon and
# read-only from the same database: both paths must print the same records.
set -euo pipefail

coverd=$1
ctl=$2
work=$3
state=$work/state
conf=$work/coverd.conf
sock=$state/coverd.sock
out=$work/out
err=$work/err
pid=""

fail() {
	echo "FAIL: $*" >&2
	for f in "$out" "$err" "$work/coverd.log"; do
		if [ -s "$f" ]; then
			echo "--- $f" >&2
			tail -c 3000 "$f" >&2
		fi
	done
	exit 1
}

cleanup() {
	# Only the daemon this script started is stopped, by its pid.
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	fi
}
trap cleanup EXIT

run() {
	set +e
	"$ctl" -c "$conf" "$@" >"$out" 2>"$err"
	rc=$?
	set -e
}

expect_rc() {
	[ "$rc" -eq "$1" ] || fail "exit status $rc, want $1 (step: $2)"
}

jq_true() {
	local r
	r=$(jq -e "$1" "$out" 2>&1) || fail "jq '$1' gave: $r"
}

grep_out() {
	grep -qF -- "$1" "$out" || fail "output lacks \"$1\""
}

# One raw request line on the socket; prints the reply line.
send_line() {
	python3 - "$sock" "$1" <<'EOF'
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(10)
s.connect(sys.argv[1])
s.sendall(sys.argv[2].encode() + b"\n")
buf = b""
while not buf.endswith(b"\n"):
    chunk = s.recv(65536)
    if not chunk:
        break
    buf += chunk
sys.stdout.write(buf.decode())
EOF
}

rm -rf "$work"
mkdir -p "$state"
cat >"$conf" <<EOF
# Written by cli_daemon_test.sh.
[device]
id = clid
timezone = Europe/Ljubljana

[store]
state_dir = $state

[gnss]
source = none

[log]
syslog = no
level = info

[mqtt]
enabled = no
EOF

"$coverd" -f -c "$conf" >"$work/coverd.log" 2>&1 &
pid=$!
# Wait for the daemon to answer (bounded: the daemon must come up, not within a time).
for _ in $(seq 1 200); do
	if "$ctl" -c "$conf" --timeout 1 version 2>/dev/null | grep -q '^coverd '; then
		break
	fi
	kill -0 "$pid" 2>/dev/null || fail "coverd exited during start-up"
	sleep 0.1
done
run version
expect_rc 0 version
grep_out "coverd "
grep_out "at $sock"

# No fix yet: the loop and the database are fine, the daemon is not healthy.
run health
expect_rc 1 "health without a fix"
grep_out "unhealthy"
grep_out "database   ok"
run health --json
expect_rc 1 "health --json without a fix"
jq_true '.healthy == false and .db == true and (.loop_age_ms | type) == "number"
	and .fix_age_ms == null and (.reasons | length) >= 1'

# A job without a policy opens no cover.
run event online
expect_rc 0 "event online"
grep_out "event online accepted (journal event #"
run event job_accepted
expect_rc 0 "event job_accepted without a policy"
run activations --json
expect_rc 0 activations
jq_true 'length == 0'
run event job_cancelled
expect_rc 0 "event job_cancelled"

# The backend assigns a policy; the next accepted job starts cover.
reply=$(send_line '{"type":"policy","event":"assign","policy_id":"P-7","driver_id":"D-7","vehicle_id":"V-7"}')
echo "$reply" | jq -e '.ok == true and .accepted == true' >/dev/null || fail "policy assign: $reply"
reply=$(send_line '{"type":"fix","lat":51.5,"lon":-0.12,"speed":6.5,"course":90,"eph":5,"mode":3}')
echo "$reply" | jq -e '.ok == true' >/dev/null || fail "fix: $reply"
run event job_accepted --json
expect_rc 0 "event job_accepted"
jq_true '.ok == true and .accepted == true and (.event_id | type) == "number"'

# A fresh fix, a live loop and a database: healthy, exit 0.
run health
expect_rc 0 "health with a fresh fix"
grep_out "healthy"

run activations --json
expect_rc 0 "activations --json"
jq_true 'length == 1'
jq_true '.[0] | (.id | startswith("clid-")) and (.id | endswith("-0")) and .index == 0
	and .status == "open" and .end == null and .end_reason == null
	and .policy_id == "P-7" and .driver_id == "D-7" and .vehicle_id == "V-7"
	and .open_rule == "start_job" and (.open_event_id | type) == "number"
	and (.start | test("^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d(\\.\\d{3})?Z$"))'
act_id=$(jq -r '.[0].id' "$out")
sess_id=$(jq -r '.[0].session_id' "$out")

# The same records from the daemon and read-only from its database (-s names a socket
# where nothing listens, so coverctl reads the state directory while the daemon runs).
for what in sessions activations; do
	"$ctl" -c "$conf" "$what" --json >"$work/$what.daemon" || fail "$what from the daemon"
	"$ctl" -c "$conf" -s "$work/nothing.sock" "$what" --json >"$work/$what.ro" 2>/dev/null ||
		fail "$what read-only"
	diff -u "$work/$what.daemon" "$work/$what.ro" >"$work/$what.diff" ||
		fail "$what differ between the daemon and the database: $(cat "$work/$what.diff")"
done

run status --json
expect_rc 0 status
jq_true ".source == \"daemon\" and .device_id == \"clid\" and .on_cover == true
	and .session == \"$sess_id\" and .activation == \"$act_id\" and .has_policy == true
	and .policy_id == \"P-7\" and .jobs_active == 1 and .last_fix.lat == 51.5
	and .outbox_depth == 1"
# GNSS accounting from the daemon: the one fix sent was accepted; a fix without a fix
# and one with an unknown error are refused by reason.
reply=$(send_line '{"type":"fix","lat":51.5,"lon":-0.12,"mode":1}')
echo "$reply" | jq -e '.ok == true' >/dev/null || fail "no-fix fix: $reply"
reply=$(send_line '{"type":"fix","lat":51.5,"lon":-0.12,"speed":6.5,"mode":3}')
echo "$reply" | jq -e '.ok == true' >/dev/null || fail "fix without eph: $reply"
run status --json
expect_rc 0 "status gnss"
jq_true '.gnss_fixes.accepted == 1 and .gnss_fixes.rejected == {"no_fix": 1, "eph": 1, "bad_value": 0,
	"out_of_order": 0} and .gnss_fixes.moving_s == 0
	and .job_events == {"duplicate": 0, "ignored": 0, "timed_out": 0}'
run status
expect_rc 0 "status table"
grep_out "Source         daemon at $sock"
grep_out "Session        $sess_id"

# Explained by the daemon, in plain words and the configured zone.
run explain "$act_id"
expect_rc 0 explain
grep_out "Activation   $act_id"
grep_out "Started by   a job accepted at "
grep_out "Kept alive   this is the session's first hour"
grep_out "Ended by     not yet: cover is still running"
grep_out "Billed       1 unit billed: the first hour is billed whole"
for name in start_job hour_boundary gap_end backdated_end; do
	if grep -qF "$name" "$out"; then fail "explain text names the internal rule $name"; fi
done
grep -qE "^Cover        from [0-9]{2}:[0-9]{2}(:[0-9]{2})? CET \([0-9]{2}:[0-9]{2}(:[0-9]{2})? UTC\), still running" "$out" ||
	fail "explain: local time with UTC beside"
run explain "$act_id" --json
expect_rc 0 "explain --json"
jq_true '.open_event.source == "ipc" and .open_event.payload.event == "job_accepted"
	and .started_by.reason == "job_accepted" and .time_zone == "Europe/Ljubljana"
	and .started_by.at.zone == "CET" and (.started_by.at.local | endswith("+01:00"))
	and .ended_by.reason == null and .billed_units == 1 and .kept_alive_by.reason == "start"'

run explain no-such-activation
expect_rc 1 "explain unknown id"
grep -qF "no activation" "$err" || fail "explain unknown id: message"

# An unknown event name is refused before anything reaches the daemon.
run event teleported
expect_rc 2 "unknown event"
run status --json
jq_true '(.counters["ipc.malformed"] // 0) == 0'

# Going offline ends cover at that moment.
run event job_delivered
expect_rc 0 "event job_delivered"
# A delivery re-sent with nothing in progress is a duplicate: counted, no effect.
run event job_delivered
expect_rc 0 "event job_delivered again"
run event offline
expect_rc 0 "event offline"
# A job accepted while offline is ignored, and counted.
run event job_accepted
expect_rc 0 "event job_accepted while offline"
run status --json
expect_rc 0 "status job events"
jq_true '.job_events == {"duplicate": 1, "ignored": 1, "timed_out": 0} and .on_cover == false'
"$ctl" -c "$conf" status --json >"$work/status.daemon" || fail "status from the daemon"
"$ctl" -c "$conf" -s "$work/nothing.sock" status --json >"$work/status.ro" 2>/dev/null ||
	fail "status read-only"
[ "$(jq -c '[.gnss_fixes, .job_events]' "$work/status.daemon")" = \
  "$(jq -c '[.gnss_fixes, .job_events]' "$work/status.ro")" ] ||
	fail "status gnss and job_events differ between the daemon and the database"
# The closed activation explained by the daemon and from the database: the same.
"$ctl" -c "$conf" explain "$act_id" --json >"$work/explain.daemon" || fail "explain (daemon)"
"$ctl" -c "$conf" -s "$work/nothing.sock" explain "$act_id" --json >"$work/explain.ro" \
	2>/dev/null || fail "explain read-only"
diff -u "$work/explain.daemon" "$work/explain.ro" >"$work/explain.diff" ||
	fail "explain differs between the daemon and the database: $(cat "$work/explain.diff")"
jq -e '.ended_by.reason == "offline" and (.ended_by.last_delivery | type) == "object"
	and (.billing | startswith("1 unit billed for "))' "$work/explain.daemon" >/dev/null ||
	fail "explain of the closed activation: $(cat "$work/explain.daemon")"
run activations --json
expect_rc 0 "activations after offline"
jq_true "length == 1 and .[0].id == \"$act_id\" and .[0].status == \"closed\"
	and .[0].end_reason == \"offline\" and .[0].close_rule == \"offline\"
	and (.[0].end | type) == \"string\" and .[0].end >= .[0].start"
run sessions --csv
expect_rc 0 "sessions --csv"
[ "$(wc -l <"$out")" -eq 2 ] || fail "sessions --csv: want a header and one row"
grep -q "^$sess_id,false,.*,offline,P-7,D-7,V-7,1"$'\r'"\$" "$out" || fail "sessions --csv row"

run status --job-id A
expect_rc 2 "--job-id on status"
grep -qF -- "--job-id and --id go with the event command only" "$err" || fail "--job-id usage message"

# Job ids and request ids: a job picked up by id, sent twice with one request id, is
# applied once; the retry gets the original reply (the same journal event).
run event job_picked_up --job-id order-1 --id cli-req-1 --json
expect_rc 0 "event with --job-id and --id"
first=$(jq -c '.event_id' "$out")
run event job_picked_up --job-id order-1 --id cli-req-1 --json
expect_rc 0 "the same request id again"
[ "$(jq -c '.event_id' "$out")" = "$first" ] || fail "a retry with the same id was applied again"
# A job id of 64 characters is refused by the daemon, naming the field.
run event job_picked_up --job-id "$(printf 'j%.0s' $(seq 64))"
expect_rc 1 "job id too long"
grep -qF 'job_id' "$err" || fail "the refusal of a long job id names the field: $(cat "$err")"

"$ctl" -c "$conf" activations --json >"$work/final.daemon" || fail "activations"
# Stopped, the daemon's records are still there, read-only, exactly as it served them.
kill -TERM "$pid"
wait "$pid" || fail "coverd did not exit cleanly on SIGTERM"
pid=""
run activations --json
expect_rc 0 "activations without the daemon"
diff -u "$work/final.daemon" "$out" >"$work/final.diff" ||
	fail "activations differ after the daemon stopped: $(cat "$work/final.diff")"
run health
expect_rc 1 "health after the daemon stopped"
grep_out "loop not alive"
run event online
expect_rc 1 "event without the daemon"
grep -qF "$sock" "$err" || fail "event without the daemon: message names the socket"

# An unknown time zone is refused by coverd -n, naming the key.
bad=$work/bad-zone.conf
sed 's/^timezone = .*/timezone = Europe\/Atlantis/' "$conf" >"$bad"
set +e
"$coverd" -n -c "$bad" >"$out" 2>"$err"
rc=$?
set -e
[ "$rc" -ne 0 ] || fail "coverd -n accepted an unknown time zone"
grep -qF '[device] timezone: "Europe/Atlantis" is not a known time zone' "$err" ||
	fail "coverd -n: message for an unknown zone"

echo "ok cli daemon test"
