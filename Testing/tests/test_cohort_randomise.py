"""Domain-randomised training family (issue 13): what it must cover, and that it is reproducible."""

import numpy as np
import pytest
import SimpleITK as sitk

from LongitudinalALLib.cohort import randomise
from LongitudinalALLib.cohort.anatomy import load_anatomy
from LongitudinalALLib.cohort.generator import make_subject
from LongitudinalALLib.cohort.heldout import checksum


def test_parameters_cover_clinical_range():
    subject = make_subject(load_anatomy("mni", 2.0), 5, 0)
    params = [randomise.sample_params(np.random.default_rng(i), subject, f"p{i}") for i in range(40)]
    free = [not any(les["kind"] != "existing" for les in p["lesions"]) for p in params]
    assert np.mean(free) >= 1 / 3
    thick = [g["spacing"][2] for p in params for g in p["grids"]]
    inplane = [g["spacing"][0] for p in params for g in p["grids"]]
    assert min(thick) == 1.0 and max(thick) > 4.5 and min(inplane) >= 0.5 and max(inplane) <= 1.2
    # each visit its own grey/white contrast, so tissue-structured differences are common
    ratios = [p["visits"][1]["gm"] / p["visits"][0]["gm"] for p in params]
    assert np.mean([abs(r - 1) > 0.1 for r in ratios]) > 0.5
    for p in params:
        assert max(abs(v) for v in p["residual"]["rotation_deg_xyz"]) <= 2.0
        assert max(abs(v) for v in p["residual"]["translation_mm_xyz"]) <= 1.5


@pytest.mark.slow
def test_pair_is_deterministic_int16_with_truth_on_baseline_grid():
    a = randomise.make_pair(3, 0, anatomy_spacing_mm=2.0)
    b = randomise.make_pair(3, 0, anatomy_spacing_mm=2.0)
    assert checksum(a) == checksum(b)
    assert a.baseline.GetPixelID() == sitk.sitkInt16 and a.followup.GetPixelID() == sitk.sitkInt16
    assert a.truth.GetSize() == a.baseline.GetSize()


def test_curve_is_monotone_and_keeps_bright_lesions_bright():
    rng = np.random.default_rng(0)
    visit = randomise._visit(rng)
    x = np.linspace(0, 2, 200).astype(np.float32)
    y = randomise.apply_curve(x, np.ones_like(x, bool), visit)
    assert np.all(np.diff(y) >= 0) and y[-1] > y[100]


def test_misregister_moves_by_the_residual():
    arr = np.zeros((20, 20, 20), np.float32)
    arr[8:12, 8:12, 8:12] = 1
    img = sitk.GetImageFromArray(arr)
    fg = sitk.GetImageFromArray(np.ones((20, 20, 20), np.uint8))
    moved = randomise.misregister(img, img, fg, {"rotation_deg_xyz": [0, 0, 0], "translation_mm_xyz": [1.0, 0, 0]})
    out = sitk.GetArrayFromImage(moved)
    assert np.allclose(out[8:12, 8:12, 7:11], 1) and out[10, 10, 11] == 0
