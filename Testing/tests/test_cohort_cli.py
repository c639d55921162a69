"""make-cohort end to end: files vs manifest, split by subject, determinism, missing Colin27."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from LongitudinalALLib.cohort.anatomy import AnatomyUnavailableWarning, available_anatomies, colin27_dir
from LongitudinalALLib.cohort.contact_sheet import lesion_slices
from LongitudinalALLib.cohort.generator import regenerate_pair
from LongitudinalALLib.cohort.manifest import load_manifest, pair_files, pairs_in_split
from LongitudinalALLib.commands import cli
from LongitudinalALLib.core.errors import InputError

FAST = ["--spacing", "2", "--quiet"]


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    out = tmp_path_factory.mktemp("cohort")
    rc = cli.main(["make-cohort", "--n", "6", "--seed", "4", "--out", str(out), "--contact-sheet", "1",
                   "--pairs-per-subject", "2", *FAST])
    assert rc == 0
    return load_manifest(out)


def _array(path: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def test_manifest_matches_files(cohort):
    assert len(cohort["pairs"]) == 6
    for pair in cohort["pairs"]:
        files = pair_files(cohort, pair)
        assert all(p.is_file() for p in files.values()), files
        base_img = sitk.ReadImage(str(files["baseline"]))
        assert base_img.GetPixelID() == sitk.sitkInt16
        assert list(base_img.GetSpacing()) == pair["spacing_mm_xyz"] == [2.0, 2.0, 2.0]
        mask_img = sitk.ReadImage(str(files["new_lesions"]))
        assert mask_img.GetPixelID() == sitk.sitkUInt8
        mask = sitk.GetArrayFromImage(mask_img)
        assert list(mask.shape) == pair["shape_kji"] == list(_array(files["followup"]).shape)
        assert set(np.unique(mask)) <= {0, 1}
        c = pair["counts"]
        assert int(mask.sum()) == c["new_lesion_voxels"]
        n_comp = ndimage.label(mask, structure=np.ones((3, 3, 3)))[1]
        assert n_comp == c["new_lesion_components"]
        new = [s for s in pair["lesions"] if s["kind"] in ("new", "enlarging")]
        # lesions are placed apart, so each voxel and component belongs to exactly one lesion
        assert sum(s["n_new_voxels"] for s in new) == c["new_lesion_voxels"]
        assert sum(s["new_components"] for s in new) == n_comp
        assert (n_comp > 0) == any(s["n_new_voxels"] > 0 for s in new)
        for s in pair["lesions"]:
            assert s["kind"] in ("new", "enlarging", "existing")
            assert s["class"] in ("periventricular", "juxtacortical", "deep")
            if s["kind"] == "new":
                assert mask[tuple(s["centre_voxel_kji"])] == 1, s["id"]
                assert 3.0 <= s["diameter_mm"] <= 15.0
        wm = _array(files["wm_mask"]).astype(bool)
        assert wm[mask > 0].all()
        t = sitk.ReadTransform(str(files["registration_truth"]))
        assert np.allclose(t.GetParameters()[:9], pair["registration_truth"]["matrix"])


def test_pair_regenerates_from_manifest_alone(cohort):
    pair = cohort["pairs"][1]
    vol = regenerate_pair(cohort, pair["pair_id"])
    files = pair_files(cohort, pair)
    for name in ("baseline", "followup", "new_lesions"):
        assert np.array_equal(getattr(vol, name), _array(files[name])), name


def test_split_keeps_subjects_together(cohort):
    by_subject: dict[str, set[str]] = {}
    for p in cohort["pairs"]:
        by_subject.setdefault(p["subject_id"], set()).add(p["split"])
    assert len(by_subject) == 3 and all(len(v) == 1 for v in by_subject.values())
    splits = {p["split"] for p in cohort["pairs"]}
    assert splits == {"train", "val", "test"}
    listed = [p["pair_id"] for s in ("train", "val", "test") for p in pairs_in_split(cohort, s)]
    assert sorted(listed) == [p["pair_id"] for p in cohort["pairs"]]
    test_anat = {p["anatomy"] for p in pairs_in_split(cohort, "test")}
    other_anat = {p["anatomy"] for p in cohort["pairs"] if p["split"] != "test"}
    if colin27_dir() is not None:  # Colin27 installed: test anatomy never seen in training
        assert test_anat == {"colin27"} and other_anat == {"mni"}
    else:
        assert test_anat == other_anat == {"mni"} and cohort["anatomies_missing"]
    with pytest.raises(InputError, match="Unknown split"):
        pairs_in_split(cohort, "holdout")


def test_contact_sheet_written_for_first_pair_only(cohort):
    first, second = (pair_files(cohort, p)["baseline"].parent for p in cohort["pairs"][:2])
    png = first / "contact_sheet.png"
    assert png.is_file() and not (second / "contact_sheet.png").exists()
    img = mpimg.imread(png)
    assert img.shape[0] > 200 and img.shape[1] > 600
    assert img[..., :3].std() > 0.1  # not blank
    mask = _array(pair_files(cohort, cohort["pairs"][0])["new_lesions"])
    for k in lesion_slices(mask, 4):
        assert mask[k].any()


def _hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_same_seed_gives_identical_bytes(tmp_path):
    outs = []
    for name, seed in (("a", 9), ("b", 9), ("c", 10)):
        out = tmp_path / name
        assert cli.main(["make-cohort", "--n", "2", "--seed", str(seed), "--out", str(out),
                         "--anatomies", "mni", *FAST]) == 0
        outs.append(_hashes(out))
    assert outs[0] == outs[1] and len(outs[0]) == 13  # manifest + 2 x 6 files
    assert outs[0]["p000/baseline.nii.gz"] != outs[2]["p000/baseline.nii.gz"]


def test_missing_colin27_warns_with_install_hint_and_continues(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LONGITUDINAL_AL_COLIN27_DIR", str(tmp_path / "empty"))
    with pytest.warns(AnatomyUnavailableWarning, match="apt-get install -y mricron-data"):
        assert available_anatomies(["mni", "colin27"]) == ["mni"]
    out = tmp_path / "c"
    rc = cli.main(["make-cohort", "--n", "3", "--pairs-per-subject", "1", "--seed", "1", "--out", str(out),
                   "--anatomies", "mni,colin27", *FAST])
    assert rc == 0
    assert "apt-get install -y mricron-data" in capsys.readouterr().err
    m = json.loads((out / "manifest.json").read_text())
    assert {p["anatomy"] for p in m["pairs"]} == {"mni"} and len(m["pairs"]) == 3
    assert "mricron-data" in m["anatomies_missing"][0]


def test_bad_input_gives_clear_errors(tmp_path, capsys):
    (tmp_path / "manifest.json").write_text("{}")
    assert cli.main(["make-cohort", "--n", "1", "--out", str(tmp_path), *FAST]) == 2
    assert "already exists" in capsys.readouterr().err
    assert cli.main(["make-cohort", "--n", "2", "--flat", "--out", str(tmp_path / "x"), *FAST]) == 2
    assert "--n 1" in capsys.readouterr().err
    assert cli.main(["make-cohort", "--n", "1", "--anatomies", "mni,bigbrain", "--out",
                     str(tmp_path / "y"), *FAST]) == 2
    assert "Unknown anatomy" in capsys.readouterr().err
    assert cli.main(["make-cohort", "--n", "1", "--spacing", "9", "--out", str(tmp_path / "z"), "--quiet"]) == 2
    assert "Spacing" in capsys.readouterr().err
    with pytest.raises(InputError, match="not a LongitudinalAL cohort manifest"):
        load_manifest(tmp_path / "manifest.json")


def test_progress_reported_and_cancel_leaves_no_manifest(tmp_path):
    from LongitudinalALLib.cohort.generator import CohortOptions, generate_cohort
    from LongitudinalALLib.core.errors import CancelledError
    from LongitudinalALLib.core.progress import CancelToken

    token = CancelToken()
    seen: list[tuple[str, float, str]] = []

    def progress(stage: str, fraction: float, message: str = "") -> None:
        seen.append((stage, fraction, message))
        if message == "p001":  # the second pair starts: cancel
            token.cancel()

    opts = CohortOptions(n_pairs=3, seed=2, spacing_mm=2.0, anatomies=("mni",), pairs_per_subject=3)
    with pytest.raises(CancelledError):
        generate_cohort(tmp_path / "c", opts, progress=progress, cancel=token)
    assert [s[2] for s in seen] == ["p000", "p001"] and seen[0][1] == 0.0
    assert not (tmp_path / "c" / "manifest.json").exists()
