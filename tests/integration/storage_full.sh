#!/usr/bin/env bash
# storage_full.sh - design invariant 5: when storage is full, track detail goes first and
# billing records are never dropped. Replays the six-hour shift twice through the real
# coverd: once unbounded, once with [store] max_size_kib below what the whole shift needs
# (the billing records fit, the track does not). The bounded run must hold exactly the
# same sessions, activations and outbox records, must have deleted track detail to get
# there, and must say so in its counters.
#
# usage: storage_full.sh COVERD COVERCTL SCENARIO BASE_CONF WORKDIR
set -euo pipefail
coverd=$1 coverctl=$2 scenario=$3 base=$4 work=$5
rm -rf "$work"
mkdir -p "$work/free" "$work/full"

fail() { echo "storage_full: FAIL: $*" >&2; exit 1; }

cp "$base" "$work/free.conf"
# The whole shift takes about 200 KiB; billing records alone about 110 KiB.
sed 's/^\[gnss\]/[store]\nmax_size_kib = 140\n\n[gnss]/' "$base" >"$work/full.conf"
grep -q '^max_size_kib = 140' "$work/full.conf" || fail "could not write the bounded config"

for run in free full; do
	"$coverd" -c "$work/$run.conf" --state-dir "$work/$run" --replay "$scenario" --speed max \
		>"$work/$run.out" 2>"$work/$run.err" || { cat "$work/$run.err" >&2; fail "$run replay failed"; }
	"$coverctl" -c "$work/$run.conf" --state-dir "$work/$run" activations --json >"$work/$run.acts.json"
	"$coverctl" -c "$work/$run.conf" --state-dir "$work/$run" sessions --json >"$work/$run.sessions.json"
	"$coverctl" -c "$work/$run.conf" --state-dir "$work/$run" status --json >"$work/$run.status.json"
done

n=$(jq length "$work/free.acts.json")
[ "$n" -gt 0 ] || fail "the unbounded run produced no activations"
cmp -s "$work/free.acts.json" "$work/full.acts.json" ||
	{ diff "$work/free.acts.json" "$work/full.acts.json" | head -20 >&2; fail "activations differ when storage is full"; }
cmp -s "$work/free.sessions.json" "$work/full.sessions.json" || fail "sessions differ when storage is full"

# Every outbox record (billing) is kept, byte for byte.
q='SELECT seq, hex(body) FROM outbox ORDER BY seq'
[ "$(sqlite3 "$work/free/coverd.db" "$q")" = "$(sqlite3 "$work/full/coverd.db" "$q")" ] ||
	fail "outbox records differ when storage is full"

full=$(jq '.counters["storage.full"] // 0' "$work/full.status.json")
pruned=$(jq '.counters["track.pruned"] // 0' "$work/full.status.json")
[ "$full" -gt 0 ] || fail "storage.full not raised (the bound was never reached?)"
[ "$pruned" -gt 0 ] || fail "no track detail was deleted"
grep -q 'storage full' "$work/full.err" || fail "no log line about the full storage"
free_pts=$(sqlite3 "$work/free/coverd.db" 'SELECT coalesce(sum(n),0) FROM track')
full_pts=$(sqlite3 "$work/full/coverd.db" 'SELECT coalesce(sum(n),0) FROM track')
[ "$full_pts" -lt "$free_pts" ] || fail "track points were not reduced ($full_pts vs $free_pts)"
size=$(stat -c %s "$work/full/coverd.db")
[ "$size" -le $((140 * 1024 + 4096)) ] || fail "database grew to $size bytes past its bound"
echo "storage_full: ok: $n activations kept, $pruned track points deleted, storage.full=$full, db $size bytes"
