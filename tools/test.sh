#!/usr/bin/env bash
# test.sh - the whole test suite, as the README's test command and .ci/run run it.
#
# Phases, each reported on one line:
#   deps      tools/install-deps.sh (a no-op when everything is installed)
#   build     build/ with -DCOVERD_WERROR=ON
#   test      ctest in build/, every test except the "valgrind" ones (run in the last phase)
#   asan      build-asan/ with ASan+UBSan and -Werror, then ctest there without the
#             "valgrind" and "bench" labels (valgrind cannot run sanitized binaries, and
#             figures measured under ASan mean nothing)
#   valgrind  ctest -L valgrind in build/: a scenario replayed under valgrind
# Every phase runs even when an earlier test phase failed, so one run shows every failure;
# a phase whose build failed skips its tests. The exit status is non-zero on any failure.
# The last line totals the ctest results of all phases as "coverd: N passed, N failed".
#
# Environment:
#   COVERD_SKIP_DEPS=1   do not call install-deps.sh
#   COVERD_SKIP_ASAN=1   skip the sanitizer phase (quicker local runs; CI never sets it)
#   JOBS=N               parallel build and test jobs (default: nproc)
set -u

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 1
jobs=${JOBS:-$(nproc 2>/dev/null || echo 2)}
logdir="$root/build/logs"

summary=()
failed=0
total_pass=0
total_fail=0

now() { date +%s; }
note() { printf 'test.sh: %s\n' "$*"; }
record() { # phase status seconds detail
	local line
	line=$(printf '%-10s %-4s %4ss  %s' "$1" "$2" "$3" "$4")
	summary+=("$line")
	printf '== %s\n' "$line"
	[ "$2" = ok ] || failed=1
}

# Runs a command with its output in a log file; on failure shows the log's end, where
# the compiler or cmake error is.
quiet() { # log cmd...
	local log=$1
	shift
	if "$@" >"$log" 2>&1; then
		return 0
	fi
	echo "---- last lines of $log" >&2
	tail -n 80 "$log" >&2
	echo "----" >&2
	return 1
}

configure_and_build() { # phase dir cmake-args...
	local phase=$1 dir=$2 t0
	shift 2
	t0=$(now)
	mkdir -p "$logdir"
	if quiet "$logdir/$phase-configure.log" cmake -S "$root" -B "$dir" "$@" &&
		quiet "$logdir/$phase-build.log" cmake --build "$dir" -j "$jobs"; then
		record "$phase" ok $(($(now) - t0)) "$dir"
		return 0
	fi
	record "$phase" FAIL $(($(now) - t0)) "$dir (logs in $logdir)"
	return 1
}

# ctest's own closing line ("100% tests passed, 0 tests failed out of 12") gives the
# counts; a phase that finds no test at all fails, since each phase exists to run some.
run_ctest() { # phase dir ctest-args...
	local phase=$1 dir=$2 t0 rc out line n f
	shift 2
	t0=$(now)
	out="$logdir/$phase-ctest.log"
	ctest --test-dir "$dir" --output-on-failure --no-tests=error -j "$jobs" "$@" 2>&1 | tee "$out"
	rc=${PIPESTATUS[0]}
	line=$(grep -E 'tests passed, [0-9]+ tests? failed out of [0-9]+' "$out" | tail -n 1)
	if [ -n "$line" ]; then
		f=$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\1/' <<<"$line")
		n=$(sed -E 's/.* failed out of ([0-9]+).*/\1/' <<<"$line")
		total_pass=$((total_pass + n - f))
		total_fail=$((total_fail + f))
		line="$((n - f)) passed, $f failed"
	else
		line="no test ran"
	fi
	if [ "$rc" -eq 0 ]; then
		record "$phase" ok $(($(now) - t0)) "$line"
	else
		record "$phase" FAIL $(($(now) - t0)) "$line"
	fi
}

# deps
if [ "${COVERD_SKIP_DEPS:-0}" = 1 ]; then
	record deps ok 0 "skipped (COVERD_SKIP_DEPS=1)"
else
	t0=$(now)
	if "$root/tools/install-deps.sh"; then
		record deps ok $(($(now) - t0)) "tools/install-deps.sh"
	else
		record deps FAIL $(($(now) - t0)) "tools/install-deps.sh"
		printf '%s\n' "${summary[@]}"
		exit 1
	fi
fi

# build + test (normal)
built=0
if configure_and_build build "$root/build" -DCOVERD_WERROR=ON; then
	built=1
	run_ctest test "$root/build" -LE valgrind
fi

# asan
if [ "${COVERD_SKIP_ASAN:-0}" = 1 ]; then
	record asan ok 0 "skipped (COVERD_SKIP_ASAN=1)"
elif configure_and_build asan-build "$root/build-asan" \
		-DCOVERD_ASAN=ON -DCOVERD_UBSAN=ON -DCOVERD_WERROR=ON; then
	# halt_on_error makes UBSan findings fail the test instead of only printing.
	ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1} \
	UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
		run_ctest asan "$root/build-asan" -LE 'valgrind|bench'
fi

# valgrind, in the normal build (only when it built)
if [ "$built" = 1 ]; then
	run_ctest valgrind "$root/build" -L valgrind
else
	record valgrind FAIL 0 "skipped: build/ did not build"
fi

echo
echo "test.sh summary (phase, status, time, detail):"
printf '  %s\n' "${summary[@]}"
[ "$failed" -eq 0 ] || note "FAILED: see the phases marked FAIL above"
echo "coverd: $total_pass passed, $total_fail failed"
exit "$failed"
