"""import-cohort: real pairs with truth masks become the manifest `simulate` reads (issue 24).

The independent reference is physical space: a lesion cube placed at known
millimetres on a mask grid shifted by a known translation must land on the same
millimetres of the baseline grid after the transform is applied; every bad
field of the listing is one line naming the pair, the field and the fix.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from LongitudinalALLib.cohort.import_pairs import import_cohort, read_listing
from LongitudinalALLib.cohort.manifest import load_manifest, pair_files, pairs_in_split
from LongitudinalALLib.commands.cli import main
from LongitudinalALLib.core.errors import InputError

SHIFT = (6.0, -4.0, 9.0)  # mm: a baseline point p is the mask's point p + SHIFT


def _image(arr: np.ndarray, spacing, origin) -> sitk.Image:
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing(spacing)
    img.SetOrigin(origin)
    return img


@pytest.fixture
def pairs(tmp_path):
    """Two pairs: one mask on the baseline grid, one on a shifted grid with its transform."""
    rng = np.random.default_rng(0)
    base = _image(rng.random((10, 24, 20)).astype(np.float32) * 100, (1.0, 1.0, 3.0), (0.0, 0.0, 0.0))
    for name in ("b.nii.gz", "f.nii.gz"):
        sitk.WriteImage(base, str(tmp_path / name))
    same = np.zeros((10, 24, 20), np.uint8)
    same[4:6, 10:14, 8:12] = 3                         # any non-zero value is lesion
    sitk.WriteImage(_image(same, (1.0, 1.0, 3.0), (0.0, 0.0, 0.0)), str(tmp_path / "same.nii.gz"))
    other = np.zeros((12, 30, 30), np.uint8)           # 1 mm grid; the cube sits at baseline mm + SHIFT
    other[(12 + 9) // 3: (18 + 9) // 3, 10 - 4: 14 - 4, 8 + 6: 12 + 6] = 1
    sitk.WriteImage(_image(other, (1.0, 1.0, 3.0), (0.0, 0.0, 0.0)), str(tmp_path / "other.nii.gz"))
    sitk.WriteTransform(sitk.TranslationTransform(3, SHIFT), str(tmp_path / "to_mask.tfm"))
    rows = [{"subject_id": "p1", "baseline": "b.nii.gz", "followup": "f.nii.gz", "new_lesions": "same.nii.gz"},
            {"subject_id": "p2", "pair_id": "p2_t", "baseline": "b.nii.gz", "followup": "f.nii.gz",
             "new_lesions": "other.nii.gz", "truth_transform": "to_mask.tfm", "split": "test"}]
    (tmp_path / "pairs.json").write_text(json.dumps({"pairs": rows}))
    return tmp_path, rows, same > 0


def test_imported_masks_land_on_the_baseline_grid(pairs, capsys):
    folder, _, expected = pairs
    assert main(["import-cohort", str(folder / "pairs.json"), "--out", str(folder / "cohort")]) == 0
    assert "2 pairs" in capsys.readouterr().out
    manifest = load_manifest(folder / "cohort")
    assert [p["pair_id"] for p in pairs_in_split(manifest, "train")] == ["p1_001"]
    (test,) = pairs_in_split(manifest, "test")
    for pair in manifest["pairs"]:
        files = pair_files(manifest, pair)
        # the scans are copied inside the cohort (a manifest names only its own files, issue 22 N15), unchanged
        assert files["baseline"].read_bytes() == (folder / "b.nii.gz").read_bytes() and files["followup"].is_file()
        assert files["baseline"].is_relative_to((folder / "cohort").resolve())
        mask = sitk.ReadImage(str(files["new_lesions"]))
        assert mask.GetSize() == (20, 24, 10) and mask.GetSpacing() == (1.0, 1.0, 3.0)
        np.testing.assert_array_equal(sitk.GetArrayFromImage(mask) > 0, expected)  # same mm as the cube
        assert sitk.GetArrayFromImage(mask).max() == 1 and pair["counts"]["new_lesion_components"] == 1
    assert test["source"]["truth_transform"].endswith("to_mask.tfm")


@pytest.mark.parametrize("change, words", [
    ({"followup": None}, "Pair 1 of .* has no followup"),
    ({"baseline": "missing.nii.gz"}, "Pair 1 of .*: baseline .*missing.nii.gz does not exist"),
    ({"split": "holdout"}, "split 'holdout' is not one of train, val, test"),
    ({"new_lesions": "other.nii.gz"}, "not on the baseline grid .* Add truth_transform"),
    ({"truth_transform": "b.nii.gz"}, "is not an ITK transform file"),
    ({"pair_id": "../x"}, "is not a folder name"),
    ({"pair_id": "_x"}, "is not a folder name"),  # the manifest's rule: accepted here, it would not load
    ({"extra": "1"}, "unknown fields \\['extra'\\]"),
    ({"subject_id": 7}, "subject_id is 7, not text"),
])
def test_every_bad_field_is_one_line(pairs, change, words):
    folder, rows, _ = pairs
    row = {**rows[0], **change}
    (folder / "bad.json").write_text(json.dumps([{k: v for k, v in row.items() if v is not None}]))
    with pytest.raises(InputError, match=words):
        import_cohort(folder / "bad.json", folder / "out")


def test_csv_listing_duplicate_ids_and_existing_output(pairs, capsys):
    folder, rows, _ = pairs
    (folder / "pairs.csv").write_text("subject_id,baseline,followup,new_lesions,pair_id\n"
                                      "a,b.nii.gz,f.nii.gz,same.nii.gz,x\na,b.nii.gz,f.nii.gz,same.nii.gz,x\n")
    with pytest.raises(InputError, match="pair_id 'x' is listed twice"):
        read_listing(folder / "pairs.csv")
    assert main(["import-cohort", str(folder / "pairs.json"), "--out", str(folder / "c")]) == 0
    capsys.readouterr()
    assert main(["import-cohort", str(folder / "pairs.json"), "--out", str(folder / "c")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "already exists" in err and "--overwrite" in err
