#!/usr/bin/env bash
# Set up .venv (and the test anatomy Colin27, without root, where apt exists) and run the test suite (what CI runs).
# Two pytest workers (pytest-xdist, one file per worker at a time, so module fixtures are made once):
# the suite's budget is 180 s on 2 idle cores. LONGITUDINAL_AL_TEST_WORKERS=0 runs it in one process.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/bootstrap.sh"
bash "$root/scripts/fetch_colin27.sh"
cd "$root"
workers="${LONGITUDINAL_AL_TEST_WORKERS:-2}"
parallel=()
if [ "$workers" != 0 ] && .venv/bin/python -c "import xdist" 2>/dev/null; then
  parallel=(-n "$workers" --dist loadfile)
fi
exec .venv/bin/python -m pytest -q ${parallel[@]+"${parallel[@]}"} "$@"
