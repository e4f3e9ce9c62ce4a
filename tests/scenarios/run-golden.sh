#!/usr/bin/env bash
# run-golden.sh - the golden test of one replay scenario.
#
# Replays SCENARIO through the real daemon into a fresh state directory, reads the
# resulting sessions and activations back with coverctl (read-only, from the state
# directory), normalises them with jq and diffs them against the stored expected files:
#
#   expected/S.sessions.json      every session, sorted by start
#   expected/S.activations.json   every activation (latest revision), sorted
#   expected/S.counters.json      the input counters (scenario.*, rejected.*)
#   expected/S.report.txt         with --report: the replay's report of refused lines
#                                 (stderr) and its summary (stdout)
#
# where S is the scenario's name without .jsonl. When expected/S.expect.json exists it is
# checked as well: a few key facts (sessions, activations, counters, rejected lines,
# exit status) derived BY HAND from the rules of docs/design (see README.md). Those are
# never regenerated; a golden file made from a wrong engine would bake the bug in, the
# hand-derived facts catch it.
#
# Usage:
#   run-golden.sh [options] COVERD COVERCTL SCENARIO.jsonl
#     --report            also compare the replay's report (expected/S.report.txt)
#     --compare BASE      instead of the golden diff: replay BASE too and require the same
#                         sessions and activations, apart from journal ids (a scenario with
#                         simulated restarts against the same one without them)
#     --wrap "CMD ..."    run coverd under CMD, e.g. "valgrind --error-exitcode=1 ..."
#   Environment:
#     COVERD_UPDATE_GOLDEN=1  rewrite the expected files from this run instead of diffing
#                             (after an intended change: regenerate, review `git diff`,
#                             say why in the commit). S.expect.json is never rewritten.
#     KEEP=1                  keep the temporary state directory and print its path.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
conf=$here/test.conf
expdir=$here/expected

check_report=0
compare=""
wrap=""
while [ $# -gt 0 ]; do
	case $1 in
	--report) check_report=1; shift ;;
	--compare) compare=$2; shift 2 ;;
	--wrap) wrap=$2; shift 2 ;;
	--) shift; break ;;
	-*) echo "run-golden.sh: unknown option $1" >&2; exit 2 ;;
	*) break ;;
	esac
done
if [ $# -ne 3 ]; then
	sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
	exit 2
fi
coverd=$1
coverctl=$2
scenario=$3
name=$(basename "$scenario" .jsonl)
# A scenario that needs other parameters (another trigger, say) brings NAME.conf beside it.
[ -f "$(dirname "$scenario")/$name.conf" ] && conf=$(dirname "$scenario")/$name.conf

for tool in jq diff; do
	command -v "$tool" >/dev/null || { echo "run-golden.sh: $tool is required" >&2; exit 2; }
done
[ -x "$coverd" ] || { echo "run-golden.sh: $coverd is not an executable" >&2; exit 2; }
[ -x "$coverctl" ] || { echo "run-golden.sh: $coverctl is not an executable" >&2; exit 2; }
[ -r "$scenario" ] || { echo "run-golden.sh: cannot read $scenario" >&2; exit 2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/coverd-golden.XXXXXX")
cleanup() {
	if [ "${KEEP:-0}" = 1 ]; then
		echo "run-golden.sh: kept $work" >&2
	else
		rm -rf "$work"
	fi
}
trap cleanup EXIT

failed=0
fail() { echo "FAIL [$name]: $*" >&2; failed=1; }

# Lists, normalised: an array (whether coverctl prints one or wraps it in an object),
# every object's keys sorted, the elements in a stable order independent of store order.
norm_sessions() { jq -S 'if type == "object" then .sessions else . end | sort_by(.start, .id)'; }
norm_activations() {
	jq -S 'if type == "object" then .activations else . end | sort_by(.session_id, .index)'
}
# The counters about input: what was refused and why. Other counters (flushes, timers)
# depend on how the replay was paced, not on the scenario.
norm_counters() {
	jq -S 'if has("status") then .status else . end | .counters // {}
	       | with_entries(select(.key | test("^(scenario|rejected|jobs)\\.")))'
}
# The replay's report of refused input: the lines naming a scenario line ("PATH:N: why")
# with the path reduced to the file's name, the log lines about rejected events without
# their time stamp and pid, and the summary from stdout.
norm_report() {
	local base
	base=$(basename "$1")
	{
		grep -F "$base:" "$2" | sed -E "s#^.*/?(${base//./\\.}:)#\\1#" || true
		grep -E ': (warning: )?event at .* rejected' "$2" | sed -E 's#^.*: (warning: )?event at #event at #' || true
		grep -E '^replay: ' "$3" || true
	}
}

# replay SCENARIO DIR: one run of the daemon into a fresh state directory. Leaves the
# exit status in DIR/exit, stderr in DIR/stderr and the normalised records in DIR/*.json.
replay() {
	local scen=$1 dir=$2 rc=0
	mkdir -p "$dir/state"
	# shellcheck disable=SC2086  # $wrap is a command line, split on purpose
	$wrap "$coverd" --replay "$scen" --speed max --state-dir "$dir/state" -c "$conf" \
		>"$dir/stdout" 2>"$dir/stderr" || rc=$?
	echo "$rc" >"$dir/exit"
	if ! "$coverctl" -c "$conf" --state-dir "$dir/state" sessions --json >"$dir/sessions.raw" 2>"$dir/ctl.err" ||
	   ! "$coverctl" -c "$conf" --state-dir "$dir/state" activations --json >"$dir/activations.raw" 2>>"$dir/ctl.err"; then
		fail "coverctl could not read $dir/state: $(cat "$dir/ctl.err")"
		return 1
	fi
	norm_sessions <"$dir/sessions.raw" >"$dir/sessions.json"
	norm_activations <"$dir/activations.raw" >"$dir/activations.json"
	if "$coverctl" -c "$conf" --state-dir "$dir/state" status --json >"$dir/status.raw" 2>>"$dir/ctl.err"; then
		norm_counters <"$dir/status.raw" >"$dir/counters.json"
	else
		fail "coverctl status could not read $dir/state: $(cat "$dir/ctl.err")"
		return 1
	fi
	norm_report "$scen" "$dir/stderr" "$dir/stdout" >"$dir/report.txt"
}

show_stderr() { sed 's/^/  coverd: /' "$1/stderr" | tail -n 20 >&2; }

replay "$scenario" "$work/run" || { show_stderr "$work/run"; exit 1; }
rc=$(cat "$work/run/exit")

# --compare: the same results with and without the simulated restarts. Journal ids differ
# (a restart is journaled), everything else must not.
if [ -n "$compare" ]; then
	replay "$compare" "$work/base" || { show_stderr "$work/base"; exit 1; }
	[ "$rc" = 0 ] || fail "coverd exited $rc on $scenario"
	[ "$(cat "$work/base/exit")" = 0 ] || fail "coverd exited $(cat "$work/base/exit") on $compare"
	strip='map(del(.open_event_id, .close_event_id))'
	for what in sessions activations; do
		if ! diff -u --label "$(basename "$compare") $what" --label "$name $what" \
			<(jq -S "$strip" "$work/base/$what.json") <(jq -S "$strip" "$work/run/$what.json") >&2; then
			fail "$what differ between $(basename "$compare") and $name"
		fi
	done
	if [ "$(jq length "$work/run/activations.json")" -eq 0 ]; then
		fail "no activations at all: the comparison would prove nothing"
	fi
	[ $failed = 0 ] && echo "ok [$name]: same sessions and activations as $(basename "$compare")"
	exit $failed
fi

# The golden files.
files=(sessions.json activations.json counters.json)
[ $check_report = 1 ] && files+=(report.txt)
for f in "${files[@]}"; do
	exp=$expdir/$name.$f
	if [ "${COVERD_UPDATE_GOLDEN:-0}" = 1 ]; then
		cp "$work/run/$f" "$exp"
		echo "updated $exp"
	elif [ ! -f "$exp" ]; then
		fail "$exp is missing (make it with COVERD_UPDATE_GOLDEN=1, then review it)"
	elif ! diff -u --label "expected/$name.$f" --label "actual" "$exp" "$work/run/$f" >&2; then
		fail "$f differs from expected/$name.$f"
	fi
done

# The hand-derived facts. Only the keys written in the expectation are compared, so an
# expectation states exactly what was derived and nothing more.
expect=$expdir/$name.expect.json
if [ -f "$expect" ]; then
	want_rc=$(jq -r '.exit // 0' "$expect")
	[ "$rc" = "$want_rc" ] || fail "coverd exited $rc, the expectation says $want_rc"
	# shellcheck disable=SC2016  # jq's $variables, not the shell's
	project='
	  def pick($e): . as $a | reduce ($e | keys_unsorted[]) as $k ({}; . + {($k): $a[$k]});
	  def side($e; $a): [range(0; [($e|length), ($a|length)] | max)]
	    | map(. as $i | if $i < ($e|length) and $i < ($a|length)
	                    then ($a[$i] | pick($e[$i])) else $a[$i] end);
	  {sessions: side($x.sessions // []; $s), activations: side($x.activations // []; $a)}
	  + (if $x.counters then {counters: ($c | pick($x.counters))} else {} end)'
	expected_facts=$(jq -S '{sessions: (.sessions // []), activations: (.activations // [])}
	                        + (if .counters then {counters: .counters} else {} end)' "$expect")
	actual_facts=$(jq -S -n --slurpfile xx "$expect" --slurpfile ss "$work/run/sessions.json" \
		--slurpfile aa "$work/run/activations.json" --slurpfile cc "$work/run/counters.json" \
		'$xx[0] as $x | $ss[0] as $s | $aa[0] as $a | $cc[0] as $c | '"$project")
	if ! diff -u --label "expected/$name.expect.json (hand-derived)" --label "actual" \
		<(echo "$expected_facts") <(echo "$actual_facts") >&2; then
		fail "the results disagree with the hand-derived expectation $name.expect.json"
	fi
	# Every refused line must be reported on stderr with its number ("PATH:N: why").
	for n in $(jq -r '.rejected_lines // [] | .[]' "$expect"); do
		grep -Fq "$name.jsonl:$n: " "$work/run/stderr" ||
			fail "stderr does not report line $n of $name.jsonl with its number"
	done
	summary=$(jq -r '.summary // empty' "$expect")
	if [ -n "$summary" ] && ! grep -Fq "$summary" "$work/run/stdout"; then
		fail "the replay's summary on stdout is not \"$summary\": $(cat "$work/run/stdout")"
	fi
elif [ "$rc" != 0 ]; then
	fail "coverd exited $rc"
fi

if [ $failed != 0 ]; then
	show_stderr "$work/run"
	exit 1
fi
echo "ok [$name]"
