#!/usr/bin/env bash
# Fetch the real single-subject T1 shipped in the pycortex 1.4.0 sdist (filestore/db/S1/anatomicals/raw.nii.gz)
# into Testing/benchmarks/results/tmp/anatomy/ (gitignored) for the clinical-grid registration benchmark.
# Never committed; clinical_grids.py finds it there (or at $LONGITUDINAL_AL_PYCORTEX_T1).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
dest="$root/Testing/benchmarks/results/tmp/anatomy"
python="${PYTHON:-$root/.venv/bin/python}"
mkdir -p "$dest"
if [ -f "$dest/pycortex_S1_raw.nii.gz" ]; then echo "present: $dest/pycortex_S1_raw.nii.gz"; exit 0; fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"$python" -m pip download --quiet --no-deps --no-binary :all: pycortex==1.4.0 -d "$tmp"
tar -xzf "$tmp"/pycortex-1.4.0.tar.gz -C "$tmp" pycortex-1.4.0/filestore/db/S1/anatomicals/raw.nii.gz
mv "$tmp/pycortex-1.4.0/filestore/db/S1/anatomicals/raw.nii.gz" "$dest/pycortex_S1_raw.nii.gz"
echo "wrote $dest/pycortex_S1_raw.nii.gz"
