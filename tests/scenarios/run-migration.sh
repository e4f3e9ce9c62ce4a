#!/usr/bin/env bash
# run-migration.sh - the engine-state migration from revision 1, on a real database.
#
# tests/data/fixtures/state-v1-mid-shift.db was written by the revision 1 coverd (engine
# state format 1, schema 3) after replaying the first 1800 lines of shift-6h.jsonl: an open
# session, its second activation open, a job in progress. This test copies it, lets the
# current coverd migrate it on start and replays the rest of the shift (lines 1801 on) into
# it, then requires the same sessions and activations (ids, start, end, end reason,
# status, revision, jobs) as a replay of the whole shift into a fresh database: the open
# session resumes mid-shift exactly where it was. Distances and moving times are not
# compared: the first 1800 lines were measured under revision 1's movement rule.
#
# Usage: run-migration.sh COVERD COVERCTL
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
coverd=$1
coverctl=$2
conf=$here/test.conf
fixture=$root/tests/data/fixtures/state-v1-mid-shift.db
scen=$here/shift-6h.jsonl
work=$(mktemp -d "${TMPDIR:-/tmp}/coverd-migr.XXXXXX")
trap 'rm -rf "$work"' EXIT

mkdir -p "$work/old/state" "$work/new/state"
cp "$fixture" "$work/old/state/coverd.db"
[ "$(sqlite3 "$work/old/state/coverd.db" "SELECT json_extract(json, '$.format') FROM engine_state")" = 1 ] ||
	{ echo "FAIL: the fixture does not hold a format-1 engine state" >&2; exit 1; }
tail -n +1801 "$scen" >"$work/rest.jsonl"
"$coverd" --replay "$work/rest.jsonl" --speed max --state-dir "$work/old/state" -c "$conf" \
	>"$work/old/out" 2>"$work/old/err" || { tail "$work/old/err" >&2; echo "FAIL: replay onto the fixture" >&2; exit 1; }
"$coverd" --replay "$scen" --speed max --state-dir "$work/new/state" -c "$conf" \
	>"$work/new/out" 2>"$work/new/err" || { tail "$work/new/err" >&2; echo "FAIL: full replay" >&2; exit 1; }
[ "$(sqlite3 "$work/old/state/coverd.db" "SELECT json_extract(json, '$.format') FROM engine_state")" = 2 ] ||
	{ echo "FAIL: the migrated state was not saved in format 2" >&2; exit 1; }

pick='if type == "object" then (.sessions // .activations) else . end'
for what in sessions activations; do
	for side in old new; do
		"$coverctl" -c "$conf" --state-dir "$work/$side/state" $what --json |
			jq -S "$pick"' | map({id, start, "end": .["end"], end_reason, status, revision, jobs,
			       activations} | with_entries(select(.value != null))) | sort_by(.id)' \
				>"$work/$side.$what.json"
	done
	if ! diff -u --label "whole shift, fresh database" --label "migrated mid-shift fixture + rest" \
		"$work/new.$what.json" "$work/old.$what.json" >&2; then
		echo "FAIL: $what differ after the migration" >&2
		exit 1
	fi
done
n=$(jq length "$work/new.activations.json")
[ "$n" -ge 5 ] || { echo "FAIL: only $n activations: the comparison proves nothing" >&2; exit 1; }
echo "ok [migration]: revision 1 state resumed mid-shift; $n activations identical"
