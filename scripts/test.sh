#!/usr/bin/env bash
# Set up .venv (and the test anatomy Colin27, without root, where apt exists) and run the test suite (what CI runs).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/bootstrap.sh"
bash "$root/scripts/fetch_colin27.sh"
cd "$root"
exec .venv/bin/python -m pytest -q "$@"
