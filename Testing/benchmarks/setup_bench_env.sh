#!/usr/bin/env bash
# Create .venv-bench (repo root, gitignored) holding ANTsPy for the registration benchmark.
# antspyx pins older numpy/scipy, so it must never go into the product .venv.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
env="$root/.venv-bench"
python="${PYTHON:-python3.11}"
command -v "$python" >/dev/null || python=python3
if [ ! -x "$env/bin/python" ]; then
    "$python" -m venv "$env"
fi
"$env/bin/python" -m pip install --quiet --upgrade pip
"$env/bin/python" -m pip install --quiet antspyx SimpleITK numpy
"$env/bin/python" -c "import ants, SimpleITK, numpy; print('ants', ants.__version__, 'numpy', numpy.__version__)"
