"""The bundled sample pair: small, what the README says it is, and made by the documented command."""

from __future__ import annotations

import hashlib
import re
import shlex

import numpy as np
import SimpleITK as sitk

from LongitudinalALLib.cohort.manifest import load_manifest, pair_files
from LongitudinalALLib.commands import cli
from LongitudinalALLib.core.resources import sample_data_dir

IMAGES = ("baseline.nii.gz", "followup.nii.gz", "new_lesions.nii.gz", "brain_mask.nii.gz", "wm_mask.nii.gz")


def test_sample_pair_content():
    folder = sample_data_dir()
    total = sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
    assert total < 5e6, f"sample data is {total / 1e6:.1f} MB"
    manifest = load_manifest(folder)
    (pair,) = manifest["pairs"]
    files = pair_files(manifest, pair)
    base = sitk.ReadImage(str(files["baseline"]))
    assert base.GetPixelID() == sitk.sitkInt16 and base.GetSpacing() == (1.5, 1.5, 1.5)
    mask = sitk.GetArrayFromImage(sitk.ReadImage(str(files["new_lesions"])))
    wm = sitk.GetArrayFromImage(sitk.ReadImage(str(files["wm_mask"]))).astype(bool)
    assert mask.sum() > 0 and wm[mask > 0].all()
    new = [s for s in pair["lesions"] if s["kind"] == "new" and s["n_new_voxels"] > 0]
    assert len(new) >= 2
    sizes = sorted(s["equivalent_diameter_mm"] for s in new)
    assert sizes[-1] - sizes[0] > 3.0, sizes  # different sizes
    assert any(s["kind"] == "existing" for s in pair["lesions"])
    # pre-existing lesions are visible in both scans (brighter than the surrounding white matter)
    b = sitk.GetArrayFromImage(base).astype(float)
    f = sitk.GetArrayFromImage(sitk.ReadImage(str(files["followup"]))).astype(float)
    assert b.shape == f.shape == mask.shape
    wm_median = np.median(b[wm])
    big_old = max((s for s in pair["lesions"] if s["kind"] == "existing"), key=lambda s: s["n_voxels"])
    assert b[tuple(big_old["centre_voxel_kji"])] > 1.2 * wm_median


def test_sample_pair_is_reproduced_by_the_documented_command(tmp_path):
    readme = (sample_data_dir() / "README.md").read_text()
    block = re.search(r"```\n(.*?)\n```", readme, re.S).group(1).replace("\\\n", " ")
    argv = shlex.split(block)
    assert argv[0].endswith("longitudinal-al") and "--out" in argv
    argv[argv.index("--out") + 1] = str(tmp_path)
    assert cli.main(argv[1:] + ["--quiet"]) == 0
    for name in IMAGES:
        want = hashlib.sha256((sample_data_dir() / name).read_bytes()).hexdigest()
        got = hashlib.sha256((tmp_path / name).read_bytes()).hexdigest()
        assert got == want, f"{name} differs from the committed sample: regenerate it with the README command"
