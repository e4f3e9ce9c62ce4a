#!/usr/bin/env bash
# readonly_db_test.sh - a database coverd may not write stops the start with a clear
# error (issue 7, item 3). SQLite opens such a file read-only without complaint; coverd
# used to start, answer health and accept events while storing nothing.
#
# The database is made by a replay, then made unwritable for the daemon: as root by
# running the daemon as nobody (root writes through any file mode), otherwise by mode 0444.
#
# Usage: readonly_db_test.sh COVERD SCENARIO CONF
set -euo pipefail
coverd=$1
scen=$2
conf=$3
work=$(mktemp -d "${TMPDIR:-/tmp}/coverd-rodb.XXXXXX")
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"
mkdir "$work/state"
cp "$conf" "$work/c.conf"
chmod 644 "$work/c.conf"
"$coverd" --replay "$scen" --speed max --state-dir "$work/state" -c "$work/c.conf" >/dev/null 2>&1 ||
	{ echo "FAIL: the replay that makes the database failed" >&2; exit 1; }
chmod 644 "$work/state/coverd.db"
if [ "$(id -u)" -eq 0 ]; then
	chown nobody "$work/state"      # the directory is the daemon's, the file is not
	run=(runuser -u nobody --)
else
	chmod 444 "$work/state/coverd.db"
	run=()
fi
set +e
timeout 20 "${run[@]}" "$coverd" -f -c "$work/c.conf" --state-dir "$work/state" \
	>"$work/out" 2>"$work/err"
rc=$?
set -e
if [ "$rc" -eq 124 ]; then
	echo "FAIL: coverd kept running on a database it cannot write" >&2
	exit 1
fi
[ "$rc" -ne 0 ] || { echo "FAIL: coverd exited 0 on an unwritable database" >&2; exit 1; }
grep -qF "the database file is not writable" "$work/err" ||
	{ echo "FAIL: no clear reason on stderr:" >&2; cat "$work/err" >&2; exit 1; }
echo "ok readonly database refused: $(tail -n 1 "$work/err")"
