#!/bin/sh
# bench-sync.sh - the delivery benchmark (tests/bench/bench_sync.py): drain a backlog of
# 10,000 activation records through a local TLS mosquitto to the reference ingest, compare
# with raw libmosquitto QoS 1 publishing to the same broker, and print the commit-to-ack
# latency. Prints figures; asserts nothing.
#
# usage: tools/bench-sync.sh [BUILD_DIR] [bench_sync.py options]
#   BUILD_DIR defaults to ./build; it is built first (the targets the benchmark runs).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-build}
[ $# -gt 0 ] && shift
cmake --build "$build" --target coverd coverctl coverd-ingest backend_probe sync_raw_publish \
	>/dev/null
exec python3 "$here/../tests/bench/bench_sync.py" --build "$build" "$@"
