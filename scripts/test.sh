#!/usr/bin/env bash
# Run the suite twice: with the accelerated cext (and a hard failure if it did not build), then
# with the pure-Python twin forced. Extra arguments go to pytest. Exits non-zero if either fails.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
status=0
echo "=== pass 1/2: accelerated cext ==="
OPTROLLUP_REQUIRE_ACCEL=1 $PY -m pytest -p no:cacheprovider "$@" || status=$?
echo "=== pass 2/2: OPTROLLUP_PUREPYTHON=1 ==="
OPTROLLUP_PUREPYTHON=1 $PY -m pytest -p no:cacheprovider "$@" || { s=$?; [ $status -eq 0 ] && status=$s; }
exit $status
