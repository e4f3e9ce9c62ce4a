#!/usr/bin/env bash
# check-regenerate.sh - the committed scenarios are reproducible: make-scenarios.sh, run
# into a temporary directory, gives every generated .jsonl byte for byte, and README.md
# quotes each of its generating commands verbatim (so the documented command is the one
# that was used).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/coverd-regen.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
failed=0

"$here/make-scenarios.sh" "$tmp"
n=0
for f in "$tmp"/*.jsonl; do
	n=$((n + 1))
	if ! cmp -s "$f" "$here/$(basename "$f")"; then
		echo "FAIL: $(basename "$f") differs from what make-scenarios.sh generates" >&2
		failed=1
	fi
done
[ "$n" -ge 7 ] || { echo "FAIL: make-scenarios.sh made only $n scenarios" >&2; failed=1; }

# The commands as README.md writes them: the output path spelled out, without the helper.
# shellcheck disable=SC2016  # sed text, not shell expansions
cmds=$(grep -E '^g --start ' "$here/make-scenarios.sh" |
	sed -e 's/^g //' -e 's/ -o "\$out\/\(.*\)"$/ -o tests\/scenarios\/\1/')
while IFS= read -r cmd; do
	if ! grep -Fq -- "$cmd" "$here/README.md"; then
		echo "FAIL: README.md does not quote: $cmd" >&2
		failed=1
	fi
done <<<"$cmds"

[ $failed = 0 ] && echo "ok: $n scenarios regenerate identically and README.md quotes each command"
exit $failed
