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
# A fixed zone, so the local times below do not depend on the machine: CET, UTC+1 in
# November.
timezone = Europe/Ljubljana

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

# Plain words a driver can check, derived by hand from shift.jsonl (make_shift.py) and
# design.md section 2; times in Europe/Ljubljana (UTC+1 on 2026-11-28) with UTC beside.
case_explain() {
	local id

	run explain "$S1-0"
	expect_rc 0
	no_rule_names
	grep_out "Activation   $S1-0"
	grep_out "Cover        10:00 CET (09:00 UTC) to 10:58 CET (09:58 UTC): 0:58"
	grep_out "Started by   a job accepted at 10:00 CET (09:00 UTC), while the driver was"
	grep_out "Kept alive   this is the session's first hour"
	# Ended by the grace running out after the 09:58 delivery, detected by the 10:08 tick;
	# the hour had been closed at 10:00 first, when the voided second hour began.
	grep_out "Ended by     no new job was accepted within 10 minutes of the last delivery,"
	grep_out "at 10:58 CET (09:58 UTC), so cover ended at that delivery, not"
	grep_out "when the 10 minutes ran out at 11:08 CET (10:08 UTC)."
	grep_out "was first closed at its full length, at 11:00 CET (10:00 UTC),"
	# The facts: the last heartbeat before the deadline was 10:06, the last fix 09:58.
	grep_out "Facts        last delivery 10:58 CET (09:58 UTC); last app event"
	grep_out "11:06 CET (10:06 UTC); last movement 10:58 CET (09:58 UTC)"
	grep_out "Billed       1 unit billed for 0:58 of cover: the minimum"
	grep_out "Activity     27.84 km driven, 0:58 moving, 2 jobs accepted in this hour"
	grep_out "Time source  GNSS satellite time"
	grep_out "Anomalies    a mock location reported by the app"

	# Its second hour, opened at 10:00 inside the grace after the 09:58 delivery.
	run explain "$S1-1"
	expect_rc 0
	no_rule_names
	grep_out "Cover        none: this hour would have begun at 11:00 CET (10:00 UTC)"
	grep_out "Kept alive   when this hour began at 11:00 CET (10:00 UTC), it was within the"
	grep_out "10 minutes of grace after the delivery at 10:58 CET (09:58 UTC)"
	grep_out "Ended by     cover had ended before this hour began at 11:00 CET (10:00 UTC):"
	grep_out "Billed       0 units: voided, the session ended before this hour began"

	# A whole hour closed at its end; the next one kept alive by the job of 10:30.
	run explain "$S2-0"
	expect_rc 0
	no_rule_names
	grep_out "Ended by     this hour ran its full length to 12:30 CET (11:30 UTC), and"
	grep_out "Billed       1 unit billed for 1:00 of cover"
	grep -q "^Facts" "$out" && fail "an hour closed at its end has no facts of an ending"
	run explain "$S2-1"
	expect_rc 0
	no_rule_names
	grep_out "Kept alive   when this hour began at 12:30 CET (11:30 UTC), a job was in"
	grep_out "progress, accepted at 11:30 CET (10:30 UTC)"
	grep_out "12:48 CET (11:48 UTC); last movement 12:44 CET (11:44 UTC)"
	grep_out "Billed       1 unit billed for 0:10 of cover: a started hour is a whole unit"

	# Offline mid-job ends cover at once; the session had no delivery and no fix.
	run explain "$S3-0"
	expect_rc 0
	no_rule_names
	grep_out "Ended by     the driver went offline in the courier app at"
	grep_out "13:20 CET (12:20 UTC), which ends cover at once"
	grep_out "Facts        no delivery in this session; last app event"
	grep_out "13:20 CET (12:20 UTC); no movement recorded in this session"
	grep_out "Billed       1 unit billed for 0:20 of cover: the minimum"

	# The open activation: facts from the engine's saved state.
	run explain "$S4-0"
	expect_rc 0
	no_rule_names
	# The engine's time is that of its last event, the 12:33:30 fix it did not accept.
	grep_out "Cover        from 13:30 CET (12:30 UTC), still running (0:03:30 so far)"
	grep_out "Ended by     not yet: cover is still running"
	grep_out "Facts        so far, no delivery in this session; last app event"
	grep_out "13:32 CET (12:32 UTC); last movement 13:31 CET (12:31 UTC)"

	# The same facts as fields, with the journal events behind them.
	run activations --json
	id=$(jq -r ".[] | select(.id == \"$S1-0\") | .open_event_id" "$out")
	run explain "$S1-0" --json
	expect_rc 0
	jq_true ".activation.id == \"$S1-0\" and .activation.close_rule == \"backdated_end\"
		and .open_event.id == $id and .open_event.payload.event == \"job_accepted\"
		and .close_event.source == \"timer\" and .time_zone == \"Europe/Ljubljana\""
	jq_true '.started_by.reason == "job_accepted" and .started_by.event_id > 0
		and .started_by.at == {"utc": "2026-11-28T09:00:00Z",
		                       "local": "2026-11-28T10:00:00+01:00", "zone": "CET"}'
	jq_true '.kept_alive_by.reason == "start"
		and .kept_alive_by.since.utc == "2026-11-28T09:00:00Z"'
	jq_true '.ended_by.reason == "gap_end" and .ended_by.at.utc == "2026-11-28T09:58:00Z"
		and .ended_by.at.local == "2026-11-28T10:58:00+01:00"
		and .ended_by.event_at.utc == "2026-11-28T10:08:00.001Z"
		and .ended_by.last_delivery.utc == "2026-11-28T09:58:00Z"
		and .ended_by.last_app_event.utc == "2026-11-28T10:06:00Z"
		and .ended_by.last_movement.utc == "2026-11-28T09:58:00Z"'
	jq_true '.billed_units == 1 and .cover_seconds == 3480
		and .billing == "1 unit billed for 0:58 of cover: the minimum"
		and .session.end_reason == "gap_end"'
	# lines and statement carry the same words as the table.
	jq_true '(.lines | map(.label)) == ["Activation", "Session", "Insured", "Date", "Cover",
		"Started by", "Kept alive", "Ended by", "Facts", "Billed", "Activity", "Time source",
		"Anomalies"]
		and (.statement | contains("Billed: 1 unit billed for 0:58 of cover: the minimum"))'
	run explain "$S1-1" --json
	jq_true '.billed_units == 0 and .ended_by.reason == "voided"
		and .kept_alive_by.reason == "grace"
		and .kept_alive_by.since.utc == "2026-11-28T09:58:00Z"'
	run explain "$S2-1" --json
	jq_true '.kept_alive_by.reason == "job"
		and .kept_alive_by.since.local == "2026-11-28T11:30:00+01:00"'
	run explain "$S4-0" --json
	jq_true '.ended_by.reason == null and .billed_units == 1 and .cover_seconds == 210
		and .ended_by.last_app_event.utc == "2026-11-28T12:32:00Z"'

	# TZ in the environment does not override a configured zone; with the key empty it
	# is the zone.
	set +e
	TZ=Asia/Tokyo "$ctl" -c "$conf" explain "$S3-0" >"$out" 2>"$err"
	rc=$?
	set -e
	expect_rc 0
	grep_out "13:20 CET (12:20 UTC)"
	sed 's/^timezone = .*/timezone =/' "$conf" >"$work/system-zone.conf"
	set +e
	TZ=Asia/Tokyo "$ctl" -c "$work/system-zone.conf" explain "$S3-0" >"$out" 2>"$err"
	rc=$?
	set -e
	expect_rc 0
	grep_out "21:20 JST (12:20 UTC)"
	grep_out "Date         Saturday 28 November 2026; times in the system's zone (JST), UTC"
}

# No engine rule or end-reason name with an underscore (gap_end, hour_boundary,
# backdated_end, ...) appears in the text output: it is for drivers.
no_rule_names() {
	local name
	for name in start_job start_online start_motion hour_boundary gap_end idle_end \
		app_silence max_session policy_revoked end_cover backdated_end job_timeout \
		start_job_in_progress zero_length; do
		if grep -qF -- "$name" "$out"; then
			fail "the text names the internal rule $name"
		fi
	done
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
	# GNSS accounting, from the saved engine state. Accepted: 233 fixes in session 1
	# (09:00-09:58 every 15 s), 297 in session 2 (10:30-11:44) and the 12:31 fix. Refused:
	# the 12:33 fix without a fix, the 12:33:15 (80 m) and 12:33:30 (unknown) errors, the
	# last line (older than the one before). Moving: 232 legs of 15 s in session 1, 296 in
	# session 2 less the two around the 11:35 jump; the 12:31 fix follows a gap too long.
	jq_true '.gnss_fixes == {"accepted": 531, "rejected": {"no_fix": 1, "eph": 2, "bad_value": 0,
		"out_of_order": 1}, "moving_s": 7890}'
	# The 12:21 delivery with no job in progress, the 12:22 accept while offline.
	jq_true '.job_events == {"duplicate": 1, "ignored": 1, "timed_out": 0}'
	run status
	expect_rc 0
	grep_out "read-only (no daemon:"
	grep_out "On cover       yes, since 2026-11-28T12:30:00Z"
	grep_out "Outbox         12 undelivered"
	grep_out "GNSS fixes     531 accepted, 4 rejected"
	grep_out "rejected: 1 no fix, 2 error too large or unknown, 0 bad value, 1 out of order"
	grep_out "Moving time    2:11:30"
	grep_out "Job events     1 duplicate, 1 ignored (offline or private), 0 timed out"
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
