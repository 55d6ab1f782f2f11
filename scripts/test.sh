#!/usr/bin/env bash
# Run the suite twice: with the accelerated cext (and a hard failure if it did not build), and
# with the pure-Python twin forced. Extra arguments go to pytest. Exits non-zero if either fails.
#
# The two passes run side by side (each pytest is one process, and most of a pass is one core
# or less: anvil, devnets and the node's threads wait on each other), each with its own temp
# root; the pure pass's output is printed after the accelerated one's. On two cores this takes
# the suite from ~23 to ~15 minutes. OPTROLLUP_TEST_SERIAL=1 runs them one after the other.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
work=$(mktemp -d "${TMPDIR:-/tmp}/optrollup-test.XXXXXX")
trap 'rm -rf "$work"' EXIT

# --durations: the slowest tests of each pass in the log, for keeping the suite's time in check
# OPTROLLUP_TEST_PASS: which pass runs the tests marked one_pass (they never touch cext), so
# that the two passes take about as long (tests/conftest.py)
pass1() { OPTROLLUP_TEST_PASS=accel OPTROLLUP_REQUIRE_ACCEL=1 $PY -m pytest -p no:cacheprovider --durations=15 --basetemp="$work/accel" "$@"; }
pass2() { OPTROLLUP_TEST_PASS=pure OPTROLLUP_PUREPYTHON=1 $PY -m pytest -p no:cacheprovider --durations=15 --basetemp="$work/pure" "$@"; }

if [ "${OPTROLLUP_TEST_SERIAL:-0}" = 1 ]; then
    echo "=== pass 1/2: accelerated cext ==="
    pass1 "$@"; s1=$?
    echo "=== pass 2/2: OPTROLLUP_PUREPYTHON=1 ==="
    pass2 "$@"; s2=$?
else
    start=$(date +%s)
    pass2 "$@" > "$work/pure.log" 2>&1 &
    pure=$!
    echo "=== pass 1/2: accelerated cext (pass 2/2, the pure-Python twin, runs beside it) ==="
    pass1 "$@"; s1=$?
    echo "=== pass 1/2 done after $(( $(date +%s) - start )) s; waiting for pass 2/2 ==="
    wait "$pure"; s2=$?
    echo "=== pass 2/2: OPTROLLUP_PUREPYTHON=1 (done after $(( $(date +%s) - start )) s) ==="
    cat "$work/pure.log"
fi
[ "$s1" -ne 0 ] && exit "$s1"
exit "$s2"
