#!/usr/bin/env bash
# make-scenarios.sh - regenerates the generated scenarios of tests/scenarios from the real
# track in tests/data/tracks. The commands below are the exact ones the committed .jsonl
# files were made with (README.md repeats them); the output is byte for byte the same on
# every run, which the ctest "scenarios.regenerate" checks.
#
# Usage: tests/scenarios/make-scenarios.sh [OUTDIR]   (default: tests/scenarios)
# bad-input.jsonl is written by hand and is not made here.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-tests/scenarios}
cd "$root"
mkdir -p "$out"

g() { python3 tools/gpx2scenario.py tests/data/tracks/cerknicko-jezero.gpx "$@"; }

g --start 2026-11-28T09:00:00Z --duration 6h --rate 5 --jobs 15 --break 2h45m,3h25m --cancel 12 --jitter 0.2 --seed 7 -o "$out/shift-6h.jsonl"
g --start 2026-11-28T10:00:00Z --duration 1h31m --rate 5 --jobs 3 --first-job 3m --last-delivery 1h15m --offline-at 1h30m --gap 58m,1h6m -o "$out/tunnel-gap.jsonl"
g --start 2026-11-28T10:00:00Z --track-window 1h14m50s,1h34m32s --duration 1h35m --rate 5 --jobs 1 --last-delivery 1h10m --offline-at 1h15m --app-silent-from 20m --stop-at 58m -o "$out/app-crash.jsonl"
g --start 2026-11-28T13:00:00Z --skip 45m --duration 2h40m --rate 5 --jobs 6 --first-job 5m --offline-at 2h35m --restart-at 12m2s --restart-at 27m --restart-at 1h5m1s --restart-at 1h40m --restart-at 1h40m --restart-at 2h32m -o "$out/restart-mid-session.jsonl"
g --start 2026-11-28T13:00:00Z --skip 45m --duration 2h40m --rate 5 --jobs 6 --first-job 5m --offline-at 2h35m -o "$out/restart-mid-session.baseline.jsonl"
g --start 2026-11-28T22:30:00Z --duration 3h40m --rate 5 --jobs 8 --first-job 5m --break 2h,2h20m -o "$out/midnight.jsonl"
g --start 2026-11-28T09:00:00Z --duration 2h --rate 5 --jobs 4 --no-policy -o "$out/no-policy.jsonl"
