#!/usr/bin/env bash
# cli_test.sh - coverctl against a real state directory, read-only (no daemon running).
#
# usage: cli_test.sh CASE WORKDIR COVERCTL [FIXTURE SCENARIO]
#   setup   builds WORKDIR/state/coverd.db by running SCENARIO (shift.jsonl) through the
#           real engine and store with FIXTURE (cli_fixture), and writes WORKDIR/test.conf
#   other   one test case against that state (see the functions below)
#
# The expected values are derived by hand from shift.jsonl (see make_shift.py) and the
# rules of design.md section 2, not copied from a run.
set -euo pipefail

case_name=$1
work=$2
ctl=$3
state=$work/state
conf=$work/test.conf
out=$work/out.$case_name
err=$work/err.$case_name

S1=cli-dev-20261128T090000Z-1
S2=cli-dev-20261128T103000Z-2
S3=cli-dev-20261128T120000Z-3
S4=cli-dev-20261128T123000Z-4

fail() {
	echo "FAIL ($case_name): $*" >&2
	for f in "$out" "$err"; do
		if [ -s "$f" ]; then
			echo "--- $f" >&2
			head -c 4000 "$f" >&2
		fi
	done
	exit 1
}

# Runs coverctl with the test config; stdout to $out, stderr to $err; sets rc.
run() {
	set +e
	"$ctl" -c "$conf" "$@" >"$out" 2>"$err"
	rc=$?
	set -e
}

expect_rc() {
	[ "$rc" -eq "$1" ] || fail "exit status $rc, want $1 (coverctl $*)"
}

# jq expression on $out must be true.
jq_true() {
	local r
	r=$(jq -e "$1" "$out" 2>&1) || fail "jq '$1' gave: $r"
}

grep_out() {
	grep -qF -- "$1" "$out" || fail "output lacks \"$1\""
}

grep_err() {
	grep -qF -- "$1" "$err" || fail "stderr lacks \"$1\""
}

case_setup() {
	local fixture=$4 scenario=$5

	rm -rf "$state"
	mkdir -p "$state"
	cat >"$conf" <<EOF
# Written by cli_test.sh setup.
[device]
id = cli-dev

[store]
state_dir = $state

[gnss]
source = none

[log]
syslog = no
EOF
	"$fixture" "$state" "$scenario" cli-dev || fail "cli_fixture failed"
	[ -s "$state/coverd.db" ] || fail "no database at $state/coverd.db"
}

case_sessions_table() {
	run sessions
	expect_rc 0
	[ "$(wc -l <"$out")" -eq 5 ] || fail "want a header and 4 rows"
	head -1 "$out" | grep -qE '^ID +START +END +DURATION +TRIGGER +END REASON' ||
		fail "header"
	grep -qE "^$S1 +2026-11-28T09:00:00Z +2026-11-28T09:58:00Z +0:58:00 +job +gap_end " "$out" ||
		fail "session 1 row"
	grep -qE "^$S3 .* +offline +" "$out" || fail "session 3 row"
	grep -qE "^$S4 +2026-11-28T12:30:00Z +open " "$out" || fail "session 4 row (open)"
	# Aligned: every row starts its START column at the same offset as the header.
	awk 'NR==1{p=index($0,"START")} NR>1 && substr($0,p,4)!="2026"{exit 1}' "$out" ||
		fail "columns not aligned"
}

case_sessions_json() {
	run sessions --json
	expect_rc 0
	jq_true 'type == "array" and length == 4'
	jq_true "map(.id) == [\"$S1\",\"$S2\",\"$S3\",\"$S4\"]"
	jq_true '.[0] | .start == "2026-11-28T09:00:00Z" and .end == "2026-11-28T09:58:00Z"
		and .end_reason == "gap_end" and .open == false and .duration_s == 3480
		and .activations == 1 and .trigger == "job" and .policy_id == "P-1"'
	jq_true '.[1] | .end == "2026-11-28T11:40:00Z" and .activations == 2'
	jq_true '.[2] | .end_reason == "offline" and .policy_id == "P-2,\"gold\""'
	jq_true '.[3] | .open == true and .end == null and .end_reason == null'
}

case_sessions_csv() {
	run sessions --csv
	expect_rc 0
	[ "$(head -1 "$out")" = $'id,open,start,end,duration_s,trigger,end_reason,policy_id,driver_id,vehicle_id,activations\r' ] ||
		fail "CSV header"
	[ "$(wc -l <"$out")" -eq 5 ] || fail "want a header and 4 rows"
	grep -qF 'cli-dev-20261128T120000Z-3,false,2026-11-28T12:00:00Z,2026-11-28T12:20:00Z,1200,job,offline,"P-2,""gold""",D-1,V-1,1' "$out" ||
		fail "session 3 row with RFC 4180 quoting"
}

case_activations_table() {
	run activations
	expect_rc 0
	[ "$(wc -l <"$out")" -eq 7 ] || fail "want a header and 6 rows"
	head -1 "$out" | grep -qE '^ID +SESSION +IDX +START +END +DURATION +END REASON +DISTANCE km +JOBS +STATUS$' ||
		fail "header"
	grep -qE "^$S2-0 +$S2 +0 +2026-11-28T10:30:00Z +2026-11-28T11:30:00Z +1:00:00 +hour +28\.[0-9]{2} +1 +closed$" "$out" ||
		fail "activation 2-0 row"
	grep -qE "^$S1-1 .* +voided$" "$out" || fail "voided row"
	grep -qE "^$S4-0 .* open .* +open$" "$out" || fail "open row"
}

case_activations_json() {
	run activations --json
	expect_rc 0
	jq_true 'type == "array" and length == 6'
	jq_true "map(.id) == [\"$S1-0\",\"$S1-1\",\"$S2-0\",\"$S2-1\",\"$S3-0\",\"$S4-0\"]"
	# The fields issue 2 requires, with their types, on every activation.
	jq_true 'all(.[]; (.id|type) == "string" and (.session_id|type) == "string"
		and (.index|type) == "number" and (.start|type) == "string"
		and ((.end|type) == "string" or .end == null)
		and ((.end_reason|type) == "string" or .end_reason == null)
		and (.distance_m|type) == "number")'
	jq_true 'all(.[]; .start | test("^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d(\\.\\d{3})?Z$"))'
	# Session 1: ended by gap_end at the 09:58 delivery; its second hour, opened at
	# 10:00 inside the grace period, is voided, never deleted.
	jq_true ".[0] | .session_id == \"$S1\" and .index == 0 and .start == \"2026-11-28T09:00:00Z\"
		and .end == \"2026-11-28T09:58:00Z\" and .end_reason == \"gap_end\" and .status == \"closed\"
		and .jobs == 2 and .anomalies == [\"mock_location\"] and .open_rule == \"start_job\"
		and .policy_id == \"P-1\" and .time_quality == \"gnss\""
	jq_true '.[1] | .index == 1 and .status == "voided" and .start == "2026-11-28T10:00:00Z"
		and .open_rule == "hour_boundary"'
	# Session 2: a whole hour closed by its boundary, then ten minutes closed by gap_end.
	# 58 min at 8 m/s is 27.84 km; an hour at 8 m/s is 28.8 km (haversine, mean radius).
	jq_true '.[0].distance_m > 27800 and .[0].distance_m < 27900'
	jq_true '.[2] | .start == "2026-11-28T10:30:00Z" and .end == "2026-11-28T11:30:00Z"
		and .end_reason == "hour" and .close_rule == "hour_boundary" and .jobs == 1
		and .distance_m > 28750 and .distance_m < 28850 and .moving_s == 3600'
	# Ten minutes at 8 m/s is 4.8 km; the jumped fix at 11:35 is not travelled to or from
	# (two 15 s legs, 240 m), and nothing after the 11:40 end counts.
	jq_true '.[3] | .start == "2026-11-28T11:30:00Z" and .end == "2026-11-28T11:40:00Z"
		and .end_reason == "gap_end" and (.anomalies | index("position_jump")) != null
		and .distance_m > 4500 and .distance_m < 4620'
	jq_true '.[4] | .end == "2026-11-28T12:20:00Z" and .end_reason == "offline"'
	# The open activation: end null, and the job that opened it counted from the
	# engine's live state.
	jq_true '.[5] | .status == "open" and .end == null and .end_reason == null
		and .close_rule == null and .jobs == 1'
	run activations --json --session "$S2"
	expect_rc 0
	jq_true "length == 2 and all(.[]; .session_id == \"$S2\")"
	run activations --session no-such-session --json
	expect_rc 0
	jq_true 'length == 0'
}

case_activations_csv() {
	run activations --csv
	expect_rc 0
	[ "$(head -1 "$out")" = $'id,session_id,index,revision,status,start,end,end_reason,distance_m,moving_s,jobs,policy_id,driver_id,vehicle_id,time_quality,anomalies,open_rule,close_rule,open_event_id,close_event_id\r' ] ||
		fail "CSV header"
	[ "$(wc -l <"$out")" -eq 7 ] || fail "want a header and 6 rows"
	# Every CSV cell must equal the JSON value (parsed by a real CSV reader).
	"$ctl" -c "$conf" activations --json >"$work/acts.json" || fail "activations --json"
	python3 - "$out" "$work/acts.json" <<'EOF' || fail "CSV and JSON disagree"
import csv, json, sys
rows = list(csv.DictReader(open(sys.argv[1], newline="")))
acts = json.load(open(sys.argv[2]))
assert len(rows) == len(acts) == 6, (len(rows), len(acts))
for row, act in zip(rows, acts):
    for key, cell in row.items():
        v = act[key]
        if v is None:
            want = ""
        elif isinstance(v, list):
            want = ";".join(v)
        elif isinstance(v, bool):
            want = "true" if v else "false"
        elif isinstance(v, (int, float)):
            assert float(cell) == float(v), (key, cell, v)
            continue
        else:
            want = v
        assert cell == want, (act["id"], key, cell, want)
assert rows[4]["policy_id"] == 'P-2,"gold"'
EOF
}

case_explain() {
	local open_id close_id
	run activations --json
	open_id=$(jq -r ".[] | select(.id == \"$S1-0\") | .open_event_id" "$out")
	close_id=$(jq -r ".[] | select(.id == \"$S1-0\") | .close_event_id" "$out")
	if ! [ "$open_id" -gt 0 ] || ! [ "$close_id" -gt "$open_id" ]; then
		fail "event ids $open_id $close_id"
	fi
	run explain "$S1-0"
	expect_rc 0
	grep_out "Activation   $S1-0"
	grep_out "Interval     2026-11-28T09:00:00Z -> 2026-11-28T09:58:00Z (0:58:00)"
	# The event that opened it, with its payload, and the rule in words.
	grep_out "journal event #$open_id at 2026-11-28T09:00:00Z from replay, type app"
	grep_out '"event":"job_accepted"'
	grep_out "rule start_job"
	grep_out "a job was accepted while the driver was"
	# The event that closed it: the timer tick at 10:08, gap_end after the 09:58 delivery.
	grep_out "journal event #$close_id at 2026-11-28T10:08:00Z from timer, type tick"
	grep_out "end reason gap_end"
	grep_out "10 min (gap_end)"
	grep_out "Billed       1 unit (first hour: billed whole, minimum cover)"
	grep_out "Activity     distance 27.84 km, moving 0:58:00, 2 jobs"
	grep_out "Anomalies    mock_location"
	grep_out "Time quality gnss"

	run explain "$S1-1"
	expect_rc 0
	grep_out "Voided       at"
	grep_out "not billed (voided)"
	grep_out "hour 2 of the session began"

	run explain "$S2-0" --json
	expect_rc 0
	jq_true ".activation.id == \"$S2-0\" and .activation.close_rule == \"hour_boundary\"
		and .open_event.payload.event == \"job_accepted\" and .open_event.source == \"replay\"
		and (.close_event | type) == \"object\""
	jq_true '.statement | test("its hour ended while cover continued")'

	run explain "$S4-0"
	expect_rc 0
	grep_out "-> (open)"
	grep_out "is still open"
}

case_explain_unknown() {
	run explain no-such-activation
	expect_rc 1
	grep_err 'no activation "no-such-activation"'
	grep_err "$state/coverd.db"
	[ ! -s "$out" ] || fail "stdout should be empty"
}

case_status() {
	run status --json
	expect_rc 0
	jq_true ".source == \"state_dir\" and .device_id == \"cli-dev\" and .on_cover == true
		and .session == \"$S4\" and .session_start == \"2026-11-28T12:30:00Z\"
		and .activation == \"$S4-0\" and .online == true and .private == false
		and .has_policy == true and .policy_id == \"P-2,\\\"gold\\\"\" and .jobs_active == 1
		and .last_fix.t == \"2026-11-28T12:31:00Z\" and .last_fix.lat == 51.7"
	# Outbox rows, by hand: session 1 opened 0, closed 0 (hour), opened 1, closed 0 again,
	# voided 1 (5); session 2 opened and closed 0 and 1 (4); session 3 (2); session 4 (1).
	jq_true '.outbox_depth == 12 and .outbox_oldest == "2026-11-28T09:00:00Z"'
	run status
	expect_rc 0
	grep_out "read-only (no daemon:"
	grep_out "On cover       yes, since 2026-11-28T12:30:00Z"
	grep_out "Outbox         12 undelivered"
}

case_health_no_daemon() {
	run health
	expect_rc 1
	grep_out "unhealthy"
	grep_out "loop not alive"
	grep_out "$state/coverd.sock"
	grep_out "database   ok"
	run health --json
	expect_rc 1
	jq_true '.healthy == false and .db == true and (.reasons | length) == 1'
	# A state directory without a database: unhealthy for two reasons.
	mkdir -p "$work/empty"
	set +e
	"$ctl" --state-dir "$work/empty" health --json >"$out" 2>"$err"
	rc=$?
	set -e
	expect_rc 1
	jq_true '.healthy == false and .db == false and (.reasons | length) == 2'
}

case_no_state() {
	set +e
	"$ctl" --state-dir "$work/does-not-exist" sessions >"$out" 2>"$err"
	rc=$?
	set -e
	expect_rc 1
	grep_err "$work/does-not-exist"
	grep_err "$work/does-not-exist/coverd.sock"
	# A garbage database: a clear error naming it, never a crash.
	mkdir -p "$work/garbage"
	head -c 8192 /dev/urandom >"$work/garbage/coverd.db"
	printf 'SQLite format 3\0garbage' | dd of="$work/garbage/coverd.db" conv=notrunc status=none
	set +e
	"$ctl" --state-dir "$work/garbage" activations >"$out" 2>"$err"
	rc=$?
	set -e
	expect_rc 1
	grep_err "$work/garbage/coverd.db"
	# A socket path given with -s is the one named when nothing answers there.
	set +e
	"$ctl" --state-dir "$work/does-not-exist" -s "$work/other.sock" status >"$out" 2>"$err"
	rc=$?
	set -e
	expect_rc 1
	grep_err "$work/other.sock"
}

case_event_no_daemon() {
	run event job_accepted
	expect_rc 1
	grep_err "needs a running daemon"
	grep_err "$state/coverd.sock"
}

case_usage() {
	local args
	while IFS= read -r args; do
		# shellcheck disable=SC2086
		run $args
		[ "$rc" -eq 2 ] || fail "coverctl $args: exit $rc, want 2"
		grep -q "coverctl: " "$err" || fail "coverctl $args: no message"
	done <<'EOF'

frobnicate
explain
explain a b
event
sessions extra
activations --json --csv
status --csv
health --csv
sessions --session x
--bogus-option sessions
--timeout abc status
--timeout 0 status
event teleported
EOF
	run event teleported
	grep_err "valid events: online, offline, job_accepted, job_picked_up, job_delivered, job_cancelled, heartbeat, private_on, private_off"
	run help
	expect_rc 0
	grep_out "usage: coverctl"
	run --help
	expect_rc 0
	run version
	expect_rc 0
	grep_out "coverctl "
	# -c with a file that does not exist: failure naming it, not usage.
	set +e
	"$ctl" -c "$work/no-such.conf" sessions >"$out" 2>"$err"
	rc=$?
	set -e
	expect_rc 1
	grep_err "$work/no-such.conf"
}

# A fake daemon on $1 that accepts connections and, per mode $2, never answers
# ("silent") or answers a line that is not JSON ("garbage"). Sets fake_pid.
start_fake_daemon() {
	rm -f "$1"
	python3 - "$1" "$2" <<'PYEOF' &
import os, socket, sys
path, mode = sys.argv[1], sys.argv[2]
srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
srv.bind(path + ".tmp")
os.rename(path + ".tmp", path)   # the socket appears under its name once bound
srv.listen(8)
held = []
while True:
    c, _ = srv.accept()
    c.recv(65536)
    if mode == "garbage":
        c.sendall(b"this is not json\n")
    held.append(c)               # keep the connection open, say nothing more
PYEOF
	fake_pid=$!
	for _ in $(seq 1 300); do
		[ -S "$1" ] && return 0
		kill -0 "$fake_pid" 2>/dev/null || fail "fake daemon did not start"
		sleep 0.05
	done
	fail "fake daemon socket $1 did not appear"
}

stop_fake_daemon() {
	if [ -n "${fake_pid:-}" ]; then
		kill "$fake_pid" 2>/dev/null || true
		wait "$fake_pid" 2>/dev/null || true
		fake_pid=""
	fi
}

case_unanswering_daemon() {
	local fake=$work/fake.sock
	trap stop_fake_daemon EXIT
	start_fake_daemon "$fake" silent
	# A daemon that never replies: the read commands fall back to the database with a
	# warning naming the socket and the timeout; health is unhealthy; event fails.
	run -s "$fake" --timeout 0.5 sessions --json
	expect_rc 0
	jq_true 'length == 4'
	grep_err "no reply from the daemon at $fake within 0.5 s"
	run -s "$fake" --timeout 0.5 health
	expect_rc 1
	grep_out "loop not alive: no reply from the daemon at $fake"
	run -s "$fake" --timeout 0.5 event online
	expect_rc 1
	grep_err "no reply from the daemon at $fake"
	stop_fake_daemon
	# A reply that is not JSON is named as such.
	start_fake_daemon "$fake" garbage
	run -s "$fake" health
	expect_rc 1
	grep_out "sent a reply that is not a JSON object"
	run -s "$fake" event online
	expect_rc 1
	grep_err "daemon at $fake sent a reply that is not a JSON object"
	stop_fake_daemon
}

case "$case_name" in
setup) case_setup "$@" ;;
sessions_table | sessions_json | sessions_csv | activations_table | activations_json | \
activations_csv | explain | explain_unknown | status | health_no_daemon | no_state | \
event_no_daemon | usage | unanswering_daemon)
	"case_$case_name" ;;
*) echo "cli_test.sh: unknown case $case_name" >&2; exit 2 ;;
esac
echo "ok $case_name"
