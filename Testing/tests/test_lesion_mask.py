"""The lesion-mask step (issue 13): minimum volume in mm^3, hysteresis on the component's peak."""

import numpy as np
import pytest

from LongitudinalALLib.model.lesion_mask import (
    ANIMA_MIN_VOLUME_MM3,
    DEFAULT,
    RAW,
    LesionMaskConfig,
    components,
    lesion_mask,
    lesion_mask_from_slices,
)

CFG = LesionMaskConfig(threshold=0.5, peak=0.8, min_volume_mm3=20.0)


def _blob(shape, corner, size, value):
    p = np.zeros(shape, np.float32)
    p[tuple(slice(c, c + s) for c, s in zip(corner, size))] = value
    return p


def test_a_component_under_the_minimum_volume_is_dropped_one_over_it_kept():
    small = _blob((20, 20, 20), (2, 2, 2), (2, 2, 2), 0.95)      # 8 mm^3 at 1 mm
    large = _blob((20, 20, 20), (10, 10, 10), (3, 3, 3), 0.95)   # 27 mm^3
    mask = lesion_mask(np.maximum(small, large), (1.0, 1.0, 1.0), CFG)
    assert mask.sum() == 27 and mask[11, 11, 11] and not mask[3, 3, 3]


def test_spacing_matters_the_same_voxels_are_a_different_volume():
    p = _blob((20, 20, 20), (5, 5, 5), (2, 2, 2), 0.95)  # 8 voxels
    assert lesion_mask(p, (1.0, 1.0, 1.0), CFG).sum() == 0    # 8 mm^3 < 20
    assert lesion_mask(p, (1.0, 1.0, 3.0), CFG).sum() == 8    # 24 mm^3 >= 20
    assert np.allclose(components(p, (1.0, 1.0, 3.0)).volume_mm3, [24.0])


def test_hysteresis_keeps_a_weak_tail_attached_to_a_strong_core_and_drops_a_weak_blob():
    p = _blob((20, 20, 20), (5, 5, 5), (3, 3, 3), 0.9)          # confident core
    p[5:8, 5:8, 8:14] = 0.6                                      # weak tail touching it
    p = np.maximum(p, _blob((20, 20, 20), (14, 14, 2), (3, 3, 4), 0.6))  # weak blob alone, 36 mm^3
    mask = lesion_mask(p, (1.0, 1.0, 1.0), CFG)
    assert mask[6, 6, 6] and mask[6, 6, 12]                       # core and its tail
    assert not mask[15, 15, 3]                                    # the weak blob goes
    assert mask.sum() == 27 + 54


def test_the_foreground_and_the_voxel_threshold_bound_the_components():
    p = _blob((10, 10, 10), (2, 2, 2), (4, 4, 4), 0.95)
    fg = np.zeros(p.shape, bool)
    fg[:, :, :4] = True
    assert lesion_mask(p, (1.0, 1.0, 1.0), RAW, foreground=fg).sum() == 4 * 4 * 2
    assert lesion_mask(p * 0.5 + 0.03, (1.0, 1.0, 1.0), RAW).sum() == 64  # 0.505 >= 0.5
    assert lesion_mask(p * 0.5, (1.0, 1.0, 1.0), RAW).sum() == 0


def test_the_raw_config_is_the_plain_threshold_and_the_default_never_goes_under_anima():
    rng = np.random.default_rng(1)
    p = rng.random((12, 12, 12)).astype(np.float32)
    assert np.array_equal(lesion_mask(p, (1.0, 1.0, 1.0), RAW), p >= 0.5)
    assert DEFAULT.min_volume_mm3 >= ANIMA_MIN_VOLUME_MM3 and DEFAULT.peak >= DEFAULT.threshold


def test_bad_input_is_refused():
    with pytest.raises(ValueError):
        lesion_mask(np.zeros((4, 4)), (1.0, 1.0, 1.0))
    with pytest.raises(ValueError):
        lesion_mask(np.zeros((4, 4, 4)), (1.0, 0.0, 1.0))


class _Identity:
    """SliceGeometry stand-in: slices are the volume's first axis."""

    def to_volume(self, slices, order=1):
        return np.asarray(slices, np.float32)


def test_from_slices_zeroes_probability_outside_the_foreground():
    probs = _blob((6, 10, 10), (1, 1, 1), (3, 3, 3), 0.95)
    fg = np.zeros(probs.shape, bool)
    fg[:, :, 3:] = True
    mask = lesion_mask_from_slices(probs, fg, _Identity(), (1.0, 1.0, 1.0), RAW)
    assert mask.sum() == 3 * 3 * 1 and not mask[2, 2, 2]
