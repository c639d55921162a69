"""The foreground slices are scored in is the brain on skull-on scans (issue 27, item 1), on synthetic heads."""

import logging

import numpy as np
import pytest
import SimpleITK as sitk
from anatomy_fixtures import skull_on_head

from LongitudinalALLib.imaging import brain_mask, prepare
from LongitudinalALLib.imaging.brain_mask import BrainFit, _check, snap_edge
from LongitudinalALLib.imaging.preprocess import foreground_mask


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * float((a & b).sum()) / float(a.sum() + b.sum())


def _ball(shape, centre, radius_mm, spacing_zyx) -> np.ndarray:
    grid = np.ogrid[tuple(slice(0, n) for n in shape)]
    return sum(((g - c) * s) ** 2 for g, c, s in zip(grid, centre, spacing_zyx)) <= radius_mm ** 2


def test_edge_step_moves_a_fit_that_is_too_small_to_the_brain_and_stops_at_the_skull():
    sp_zyx = (3.0, 1.0, 1.0)  # thick axial slices
    shape, centre = (40, 150, 150), (20, 75, 75)
    brain = _ball(shape, centre, 50, sp_zyx)
    csf_bone = _ball(shape, centre, 58, sp_zyx) & ~brain
    scalp = _ball(shape, centre, 64, sp_zyx) & ~csf_bone & ~brain
    rng = np.random.default_rng(0)
    image = 100.0 * brain + 8.0 * csf_bone + 160.0 * scalp + rng.normal(0, 3, shape)
    fitted = _ball(shape, centre, 47, sp_zyx)  # the affine fit 3 mm inside the edge
    snapped = snap_edge(image.astype(np.float32), fitted, sp_zyx[::-1])
    assert _dice(fitted, brain) < 0.95
    assert _dice(snapped, brain) > 0.98, _dice(snapped, brain)
    assert not (snapped & scalp).any()
    too_big = _ball(shape, centre, 53, sp_zyx)  # 3 mm out, into the dark CSF and bone
    assert _dice(snap_edge(image.astype(np.float32), too_big, sp_zyx[::-1]), brain) > 0.98


def test_fit_checks_name_an_implausible_brain():
    image = sitk.Image([20, 20, 20], sitk.sitkFloat32)
    image.SetSpacing((10.0, 10.0, 10.0))  # 1 ml voxels
    fitted = np.zeros((20, 20, 20), bool)
    fitted[5:15, 5:15, 5:16] = True  # 1.1 litres in the field of view
    head = np.ones_like(fitted)
    assert _check(fitted, head, 1.1, image) == ""
    assert "litres" in _check(fitted, head, 3.5, image)
    partial = fitted.copy()
    partial[:, :, 8:] = False  # 0.3 of a 1.8 litre brain seen
    assert "field of view" in _check(partial, head, 1.8, image)
    assert "outside the head" in _check(fitted, np.zeros_like(fitted), 1.1, image)


def test_a_failed_fit_keeps_the_threshold_mask_with_one_log_line(monkeypatch, caplog):
    image = sitk.GetImageFromArray(np.pad(np.full((10, 10, 10), 100.0, np.float32), 5))
    head = foreground_mask(image)
    monkeypatch.setattr(prepare, "fit_brain", lambda img, h: BrainFit(None, "the fitted brain would hold 9 litres",
                                                                      9.0, 1.0))
    with caplog.at_level(logging.WARNING):
        mask, info = prepare.baseline_foreground(image, "mri", head)
    assert np.array_equal(sitk.GetArrayFromImage(mask), sitk.GetArrayFromImage(head))
    assert info["method"] == "threshold" and "9 litres" in info["fallback"]
    assert len(caplog.records) == 1 and "9 litres" in caplog.records[0].getMessage()

    def diverges(img, h):
        raise RuntimeError("ITK ERROR: ImageRegistrationMethod: All samples map outside moving image buffer.\n")

    monkeypatch.setattr(prepare, "fit_brain", diverges)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        _, info = prepare.baseline_foreground(image, "mri", head)
    assert "did not converge" in info["fallback"] and len(caplog.records) == 1
    assert prepare.baseline_foreground(image, "ct", head)[1] == {"method": "threshold"}


@pytest.mark.slow
def test_thick_slice_skull_on_scan_gives_the_brain_not_the_head():
    """3.3 mm slices, moved head, dark skull and bright scalp: the threshold mask holds the scalp (Dice ~0.6)."""
    t1, template_mask, _ = brain_mask.mni_template()
    brain = sitk.GetArrayFromImage(template_mask) > 0
    centre = t1.TransformContinuousIndexToPhysicalPoint([s / 2 for s in t1.GetSize()])
    motion = sitk.Euler3DTransform(centre, np.deg2rad(7), np.deg2rad(-4), np.deg2rad(3), (6.0, -9.0, 8.0))
    head, truth = skull_on_head(t1, brain, motion, spacing=(0.9, 0.9, 3.3))
    # the skull base: below the brain's middle, the dark bone ring becomes muscle and marrow as bright
    # as the brain, so the threshold mask runs from the brain into the scalp there (as on real scans)
    arr = sitk.GetArrayFromImage(head)
    level = float(np.median(arr[truth]))
    low = np.arange(arr.shape[0])[:, None, None] < np.flatnonzero(truth.any(axis=(1, 2))).mean()
    arr[low & ~truth & (arr > 0) & (arr < 0.5 * level)] = 0.9 * level
    grid, head = head, sitk.GetImageFromArray(arr)
    head.CopyInformation(grid)
    threshold = sitk.GetArrayFromImage(foreground_mask(head)) > 0
    mask, info = prepare.baseline_foreground(head, "mri")
    found = sitk.GetArrayFromImage(mask) > 0
    assert info["method"] == "template", info
    assert _dice(threshold, truth) < 0.8
    assert _dice(found, truth) > 0.95, _dice(found, truth)
    # at most the edge step's 3 mm into the bright skull base: the threshold mask's share is ~10x this
    assert (found & ~truth).sum() < 0.05 * found.sum() < (threshold & ~truth).sum()
