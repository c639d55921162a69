"""preprocess.py on real anatomy: N4 removes a known bias, masks, normalisation, histogram matching."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from anatomy_fixtures import mni_brain_mask, mni_t1, smooth_bias

from LongitudinalALLib.core.errors import InputError
from LongitudinalALLib.imaging.preprocess import (
    foreground_mask,
    match_histogram,
    n4_correct,
    normalize_intensity,
    validate_mask,
)


def _from_array(array: np.ndarray, like: sitk.Image) -> sitk.Image:
    img = sitk.GetImageFromArray(array.astype(np.float32))
    img.CopyInformation(like)
    return img


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * np.count_nonzero(a & b) / (np.count_nonzero(a) + np.count_nonzero(b))


def test_n4_reduces_a_known_bias_field():
    base = mni_t1(2)
    truth = sitk.GetArrayFromImage(base)
    brain = (sitk.GetArrayViewFromImage(mni_brain_mask(2)) > 0) & (truth > 30)  # tissue, not partial volume
    biased = _from_array(truth * smooth_bias(base, seed=3, strength=0.3), base)
    corrected = n4_correct(biased)
    assert corrected.GetPixelID() == sitk.sitkFloat32 and corrected.GetSize() == base.GetSize()

    def residual(img: sitk.Image) -> float:  # spread of log(image / truth) inside the brain
        return float(np.std(np.log(sitk.GetArrayViewFromImage(img)[brain] / truth[brain])))

    assert residual(corrected) < 0.88 * residual(biased)


def test_automatic_mask_matches_the_brain():
    base = mni_t1(2)
    auto = sitk.GetArrayViewFromImage(foreground_mask(base)) > 0
    brain = sitk.GetArrayViewFromImage(mni_brain_mask(2)) > 0
    assert _dice(auto, brain) > 0.95


def test_ct_mask_uses_hounsfield_threshold():
    ct = mni_t1(4) * 8.0 - 1000.0  # air -1000 HU, tissue above
    mask = sitk.GetArrayViewFromImage(foreground_mask(ct, "ct")) > 0
    brain = sitk.GetArrayViewFromImage(mni_brain_mask(4)) > 0
    assert _dice(mask, brain) > 0.9
    with pytest.raises(InputError, match="modality"):
        foreground_mask(ct, "pet")


def test_user_mask_must_match_the_grid():
    base = mni_t1(2)
    good = validate_mask(mni_brain_mask(2) * 5, base, "brain.nii.gz")
    assert set(np.unique(sitk.GetArrayViewFromImage(good))) == {0, 1}
    with pytest.raises(InputError) as info:
        validate_mask(mni_brain_mask(4), base, "brain4mm.nii.gz")
    assert "brain4mm.nii.gz" in str(info.value) and "Resample the mask" in str(info.value)
    with pytest.raises(InputError, match="empty"):
        validate_mask(mni_brain_mask(2) * 0, base, "zero.nii.gz")


def test_normalisation_is_robust_to_outliers():
    base, mask = mni_t1(2), mni_brain_mask(2)
    brain = sitk.GetArrayViewFromImage(mask) > 0
    plain = sitk.GetArrayFromImage(normalize_intensity(base, mask))
    inside = plain[brain]
    assert np.percentile(inside, 1) == pytest.approx(0.0, abs=1e-3)
    assert np.percentile(inside, 99) == pytest.approx(1.0, abs=1e-3)
    spiked = sitk.GetArrayFromImage(base)
    idx = np.argwhere(brain)[:: max(1, brain.sum() // 50)][:50]  # 50 extreme voxels
    spiked[tuple(idx.T)] = 1e6
    robust = sitk.GetArrayFromImage(normalize_intensity(_from_array(spiked, base), mask))
    untouched = brain.copy()
    untouched[tuple(idx.T)] = False
    assert np.abs(robust[untouched] - plain[untouched]).max() < 0.01
    assert robust.max() <= 2.0


def test_histogram_matching_undoes_a_gain_change_and_keeps_bright_lesions():
    base, mask = mni_t1(2), mni_brain_mask(2)
    b = sitk.GetArrayFromImage(normalize_intensity(base, mask))
    brain = sitk.GetArrayViewFromImage(mask) > 0
    follow = 1.6 * b + 0.3
    rng = np.random.default_rng(0)
    inside = np.argwhere(brain)
    lesion = np.zeros_like(brain)
    lesion[tuple(inside[rng.choice(len(inside), len(inside) // 300, replace=False)].T)] = True  # 0.3 %
    follow[lesion] += 0.8  # new hyperintensity: +0.5 in baseline units after undoing the gain
    matched = sitk.GetArrayFromImage(match_histogram(_from_array(follow, base), _from_array(b, base), mask, mask))
    healthy = brain & ~lesion
    assert np.median(np.abs(matched[healthy] - b[healthy])) < 0.02
    gain = np.median(matched[lesion] - b[lesion])
    assert 0.3 < gain < 0.7, f"lesion contrast {gain:.3f} should stay near 0.5"
