#!/usr/bin/env bash
# Put Colin27 (Debian's mricron-data: templates/ch2bet.nii.gz and ch2.nii.gz) into the project's environment,
# .venv/share/mricron/templates, where cohort/anatomy.py looks after /usr/share/mricron. No root needed:
# `apt-get download` (apt checks the .deb against the signed package index; with a private copy of the index
# when the system's is empty) and `dpkg-deb -x` into a temporary folder, then each file's content is checked
# against the sha256 pinned below before it is kept.
# Needed by the held-out family's frozen checksum test and the left-right flip registration test.
# Never fails the set-up: where it cannot get the files (no apt, no network, other content) it prints one
# line and exits 0, and those tests skip with the same hint (or fail under .ci/run, which requires them).
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# where cohort/anatomy.py will look: $LONGITUDINAL_AL_COLIN27_DIR when set (then only there), else the environment
dest="${1:-${LONGITUDINAL_AL_COLIN27_DIR:-$root/.venv/share/mricron/templates}}"
python="${PYTHON:-python3}"
[ -x "$root/.venv/bin/python" ] && python="$root/.venv/bin/python"

# sha256 of the decompressed NIfTI (gzip headers differ between repacks; the voxels must not)
check() {  # check FOLDER: exit 0 when both files are there with the pinned content
  "$python" - "$1" <<'PY'
import gzip, hashlib, pathlib, sys
want = {"ch2bet.nii.gz": "521204362226d485c92ef5383327765b0344c99ff9ac60000a1f591ff0c3fb34",
        "ch2.nii.gz": "707a360b809ba937f6c007231bcf7dc6e2d33657497b254414c9894b6efa5f8c"}
folder = pathlib.Path(sys.argv[1])
for name, sha in want.items():
    path = folder / name
    if not path.is_file() or hashlib.sha256(gzip.decompress(path.read_bytes())).hexdigest() != sha:
        sys.exit(1)
PY
}

skip() { echo "Colin27 not fetched ($1); the tests that need it will skip. $2" >&2; exit 0; }

if check "$dest"; then exit 0; fi
if [ -z "${LONGITUDINAL_AL_COLIN27_DIR:-}" ] && check /usr/share/mricron/templates; then exit 0; fi  # Debian's
command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null \
  || skip "no apt-get/dpkg-deb: not a Debian/Ubuntu machine" \
          "Get ch2bet.nii.gz and ch2.nii.gz from mricron-data and set LONGITUDINAL_AL_COLIN27_DIR to their folder."
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
if ! apt-get -qq download mricron-data >/dev/null 2>&1; then
  # the system's package index is empty or stale (fresh machine): use a private one, no root needed
  mkdir -p lists/partial cache/archives/partial
  apt_opts=(-o "Dir::State::Lists=$tmp/lists" -o "Dir::Cache=$tmp/cache" -o Debug::NoLocking=1)
  apt-get -qq "${apt_opts[@]}" update >/dev/null 2>&1 \
    && apt-get -qq "${apt_opts[@]}" download mricron-data >/dev/null 2>&1 \
    || skip "apt-get could not download mricron-data" "Check the network, or run \`apt-get install mricron-data\`."
fi
dpkg-deb -x mricron-data_*.deb x || skip "dpkg-deb could not unpack mricron-data" "Run \`apt-get install mricron-data\`."
check x/usr/share/mricron/templates \
  || skip "mricron-data's ch2bet.nii.gz/ch2.nii.gz differ from the pinned sha256" \
          "Point LONGITUDINAL_AL_COLIN27_DIR at the Colin27 files of mricron-data 1.2.20211006."
mkdir -p "$dest"
cp x/usr/share/mricron/templates/ch2bet.nii.gz x/usr/share/mricron/templates/ch2.nii.gz "$dest/"
echo "Colin27 (mricron-data, sha256 checked) -> $dest"
