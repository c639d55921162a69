#!/usr/bin/env bash
# Fetch the real single-subject T1 shipped in the pycortex 1.4.0 sdist (filestore/db/S1/anatomicals/raw.nii.gz)
# into Testing/benchmarks/results/tmp/anatomy/ (gitignored) for the clinical-grid registration benchmark and
# the bundled model's training data. Never committed; clinical_grids.py and cohort/anatomy.py find it there
# (or at $LONGITUDINAL_AL_PYCORTEX_T1).
#
# `pip download --no-binary :all:` cannot be used: pip builds the sdist's metadata, and pycortex's build
# dependencies do not install here. So the sdist is taken from the package index's simple page (the same
# file pip would fetch) and checked against the sha256 the index publishes.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
dest="$root/Testing/benchmarks/results/tmp/anatomy"
python="${PYTHON:-$root/.venv/bin/python}"
index="${PIP_INDEX_URL:-https://pypi.org/simple}"
mkdir -p "$dest"
if [ -f "$dest/pycortex_S1_raw.nii.gz" ]; then echo "present: $dest/pycortex_S1_raw.nii.gz"; exit 0; fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"$python" - "$index" "$tmp/pycortex-1.4.0.tar.gz" <<'PY'
import hashlib, re, sys, urllib.request
index, out = sys.argv[1].rstrip("/"), sys.argv[2]
page = urllib.request.urlopen(f"{index}/pycortex/", timeout=60).read().decode()
m = re.search(r'href="([^"]*/pycortex-1\.4\.0\.tar\.gz)#sha256=([0-9a-f]{64})"', page)
if not m:
    sys.exit(f"pycortex-1.4.0.tar.gz is not listed on {index}/pycortex/; set PIP_INDEX_URL to an index that has it.")
url, want = m.group(1), m.group(2)
if url.startswith("/"):
    url = re.match(r"https?://[^/]+", index).group(0) + url
data = urllib.request.urlopen(url, timeout=300).read()
got = hashlib.sha256(data).hexdigest()
if got != want:
    sys.exit(f"pycortex-1.4.0.tar.gz checksum mismatch ({got} != {want}); download again.")
open(out, "wb").write(data)
PY
tar -xzf "$tmp"/pycortex-1.4.0.tar.gz -C "$tmp" pycortex-1.4.0/filestore/db/S1/anatomicals/raw.nii.gz
mv "$tmp/pycortex-1.4.0/filestore/db/S1/anatomicals/raw.nii.gz" "$dest/pycortex_S1_raw.nii.gz"
echo "wrote $dest/pycortex_S1_raw.nii.gz"
