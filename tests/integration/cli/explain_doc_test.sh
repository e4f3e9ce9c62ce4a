#!/usr/bin/env bash
# explain_doc_test.sh - the worked examples of docs/explain.md are real output: each
# example's scenario is replayed through coverd, explained by coverctl, and compared with
# the block in the document. After an intended change of the words or of a scenario,
# paste the new output into docs/explain.md (the diff below is what to paste).
#
# usage: explain_doc_test.sh COVERD COVERCTL SOURCE_DIR WORKDIR
set -euo pipefail

coverd=$1
ctl=$2
src=$3
work=$4
conf=$src/tests/scenarios/test.conf
doc=$src/docs/explain.md

rm -rf "$work"
mkdir -p "$work"
status=0
for example in shift-6h:dev-test-20261128T090300Z-1-2 midnight:dev-test-20261128T223500Z-1-2; do
	scenario=${example%%:*}
	id=${example#*:}
	mkdir -p "$work/$scenario"
	"$coverd" --replay "$src/tests/scenarios/$scenario.jsonl" --speed max \
		--state-dir "$work/$scenario" -c "$conf" >"$work/$scenario.log" 2>&1 ||
		{ echo "FAIL: replay of $scenario" >&2; tail -5 "$work/$scenario.log" >&2; exit 1; }
	# The document's examples are in Europe/Ljubljana; test.conf leaves the zone to TZ.
	TZ=Europe/Ljubljana "$ctl" -c "$conf" --state-dir "$work/$scenario" explain "$id" \
		>"$work/$scenario.out"
	# The fenced block that begins with this activation's first line.
	python3 - "$doc" "$id" >"$work/$scenario.doc" <<'PYEOF'
import sys
text = open(sys.argv[1]).read().split("\n")
head = "Activation   " + sys.argv[2]
for i, line in enumerate(text):
    if line == head and i > 0 and text[i - 1] == "```":
        j = text.index("```", i)
        print("\n".join(text[i:j]))
        break
else:
    sys.exit("docs/explain.md has no example block for " + sys.argv[2])
PYEOF
	if ! diff -u "$work/$scenario.doc" "$work/$scenario.out"; then
		echo "FAIL: docs/explain.md example for $id differs from coverctl's output" >&2
		status=1
	fi
done
[ $status = 0 ] && echo "ok docs/explain.md examples are coverctl's output"
exit $status
