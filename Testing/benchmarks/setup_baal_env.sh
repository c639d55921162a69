#!/usr/bin/env bash
# Create .venv-baal (repository root, gitignored): the peer environment for bench_scoring.py.
# baal never enters the product .venv. torch==2.13.0 is installed FIRST so that pip
# keeps the CPU build instead of resolving a CUDA torch for baal's "torch>=..." requirement.
# Usage: Testing/benchmarks/setup_baal_env.sh   (BAAL_VERSION=x.y.z to pin another baal)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
py="${PYTHON:-python3}"
baal_spec="baal${BAAL_VERSION:+==$BAAL_VERSION}"
if [ ! -x .venv-baal/bin/python ]; then
  "$py" -m venv .venv-baal
fi
.venv-baal/bin/python -m pip install -q --upgrade pip
.venv-baal/bin/python -m pip install -q "torch==2.13.0"
# monai + safetensors: the benchmark builds the product's own network in this env (same weights file)
.venv-baal/bin/python -m pip install -q "torch==2.13.0" "$baal_spec" "monai==1.6.1" safetensors SimpleITK
# the product itself is not installed here: bench_scoring.py puts LongitudinalAL/ on PYTHONPATH
.venv-baal/bin/python - <<'PY'
import baal, torch
print("baal", getattr(baal, "__version__", "?"), "torch", torch.__version__)
PY
