#!/usr/bin/env bash
# demo.sh - the README's demo command: replays the recorded six-hour shift through the
# daemon and prints the sessions and hourly activations it produced. Placeholder until the
# full demo (local TLS broker and the reference ingest, issue 3) replaces the middle part.
#
# Environment: COVERD_SKIP_DEPS=1 skips tools/install-deps.sh; JOBS=N sets build jobs.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
jobs=${JOBS:-$(nproc 2>/dev/null || echo 2)}
scenario=tests/scenarios/shift-6h.jsonl

die() { printf 'demo: error: %s\n' "$*" >&2; exit 1; }

if [ "${COVERD_SKIP_DEPS:-0}" != 1 ]; then
	tools/install-deps.sh
fi

mkdir -p build/logs
echo "demo: building in build/"
if ! { cmake -S . -B build >build/logs/demo-configure.log 2>&1 &&
	cmake --build build -j "$jobs" >build/logs/demo-build.log 2>&1; }; then
	tail -n 40 build/logs/demo-configure.log build/logs/demo-build.log >&2
	die "build failed (logs in build/logs)"
fi
[ -f "$scenario" ] || die "$scenario is missing"

state=$(mktemp -d "${TMPDIR:-/tmp}/coverd-demo.XXXXXX")
trap 'rm -rf "$state"' EXIT

echo "demo: replaying $scenario (state in $state)"
build/daemon/coverd --replay "$scenario" --speed max --state-dir "$state"
echo
echo "== sessions"
build/tools/coverctl --state-dir "$state" sessions
echo
echo "== activations"
build/tools/coverctl --state-dir "$state" activations
