"""Voxel-pairwise intensity matching (issue 13 review of histogram matching between visits)."""

import numpy as np
import SimpleITK as sitk

from LongitudinalALLib.imaging.intensity_match import _isotonic, match_registered


def _image(a):
    return sitk.GetImageFromArray(a.astype(np.float32))


def test_pairwise_match_undoes_a_monotone_contrast_change_and_keeps_a_new_lesion():
    rng = np.random.default_rng(0)
    tissue = rng.random((30, 40, 40)).astype(np.float32)   # GM (0) to WM (1) partial volume
    base = 0.6 + 0.3 * tissue
    follow = (0.6 + 0.3 * tissue) ** 2.0                               # grey/white contrast changed
    follow[10:14, 10:14, 10:14] = 1.5                                  # new bright lesion
    out = sitk.GetArrayFromImage(match_registered(_image(follow), _image(base),
                                                  sitk.GetImageFromArray(np.ones(base.shape, np.uint8))))
    outside = np.ones(base.shape, bool)
    outside[10:14, 10:14, 10:14] = False
    assert np.abs(out - base)[outside].mean() < 0.01 < np.abs(follow - base)[outside].mean()
    assert (out - base)[10:14, 10:14, 10:14].mean() > 0.3


def test_too_small_a_mask_leaves_the_followup_unchanged():
    f = _image(np.random.default_rng(1).random((5, 5, 5)))
    out = match_registered(f, f, sitk.GetImageFromArray(np.ones((5, 5, 5), np.uint8)))
    assert out is f


def test_isotonic_pools_violators():
    assert np.allclose(_isotonic(np.array([1.0, 3.0, 2.0, 4.0]), np.ones(4)), [1.0, 2.5, 2.5, 4.0])
