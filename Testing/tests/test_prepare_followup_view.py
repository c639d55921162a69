"""The follow-up's field of view bounds what is scored (issue 27): a slab cut short is not change.

A real anatomy (MNI T1 at 3 mm) is the baseline; the follow-up is the same head
acquired on a slab tilted by 12 degrees that stops above the cerebellum, so its lower
edge cuts the baseline's lower slices obliquely, and it holds one new bright lesion
(``scene_testdata.make_pair``). On the baseline grid the follow-up is resampled padding
below that edge: the difference there is the baseline itself, not change.
"""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from scene_testdata import make_pair

from LongitudinalALLib.active.strategies import QueryContext, get_strategy
from LongitudinalALLib.active.strategies.change import change_saliency
from LongitudinalALLib.imaging.prepare import PrepareOptions, prepare_pair
from LongitudinalALLib.imaging.registration.qc import coverage

TILT_DEG = 12.0
CUT_MM = -25.0  # the follow-up slab starts this far (S, in its own tilted frame) from the head's centre


@pytest.fixture(scope="module")
def cut_pair():
    """(baseline, follow-up on a short tilted slab, baseline brain, new-lesion mask, prepared pair)."""
    base, with_lesion, lesion = make_pair(3.0, shift_mm=0.0)
    brain = sitk.Cast(sitk.BinaryFillhole(sitk.BinaryThreshold(base, 0.25 * float(np.percentile(
        sitk.GetArrayViewFromImage(base), 99)), 1e9)), sitk.sitkUInt8)
    centre = np.array(base.TransformContinuousIndexToPhysicalPoint([(s - 1) / 2 for s in base.GetSize()]))
    tilt = sitk.Euler3DTransform(tuple(centre), np.deg2rad(TILT_DEG), 0.0, 0.0)
    direction = np.asarray(tilt.GetMatrix()).reshape(3, 3) @ np.asarray(base.GetDirection()).reshape(3, 3)
    size = list(base.GetSize())
    spacing = base.GetSpacing()
    lowest = centre + direction[:, 2] * CUT_MM  # the slab's first slice plane passes through here
    size[2] = int((size[2] * spacing[2] / 2 - CUT_MM) / spacing[2])
    origin = lowest - direction[:, 0] * (size[0] - 1) / 2 * spacing[0] - direction[:, 1] * (size[1] - 1) / 2 * spacing[1]
    follow = sitk.Resample(with_lesion, size, sitk.Transform(), sitk.sitkLinear, tuple(origin), spacing,
                           tuple(direction.ravel()), 0.0, sitk.sitkFloat32)
    options = PrepareOptions(n4=False, size=64, spacing_mm=3.0, mask=brain,
                             initial_transform=sitk.Transform(3, sitk.sitkIdentity))
    return base, follow, brain, lesion, prepare_pair(base, follow, options, case_id="cut")


def test_the_scored_foreground_is_the_brain_both_scans_imaged(cut_pair):
    base, follow, brain, _, pair = cut_pair
    view = coverage(follow, base, sitk.Transform(3, sitk.sitkIdentity))
    inside = sitk.GetArrayViewFromImage(brain) > 0
    outside_view = inside & ~view
    assert 0.05 < outside_view.sum() / inside.sum() < 0.6  # the slab really cuts the brain
    scored = sitk.GetArrayViewFromImage(pair.foreground) > 0
    assert not (scored & ~view).any()  # nothing outside the follow-up's field of view is scored
    np.testing.assert_array_equal(scored, inside & view)
    assert pair.foreground_info["outside_followup_view"] == pytest.approx(outside_view.sum() / inside.sum(), abs=1e-4)


def test_the_slab_edge_is_not_taken_for_change(cut_pair):
    base, follow, brain, lesion, pair = cut_pair
    s = pair.slices
    view = coverage(follow, base, sitk.Transform(3, sitk.sitkIdentity))
    cut = s.geometry.to_slices(((sitk.GetArrayViewFromImage(brain) > 0) & ~view).astype(np.uint8), order=0) > 0
    cut_rows = cut.reshape(len(cut), -1).sum(1) > 0.2 * s.foreground.reshape(len(cut), -1).sum(1).max()
    assert cut_rows.sum() >= 3  # slices where the slab edge crosses a good part of the brain
    ctx = QueryContext(s.images, s.foreground, np.zeros(len(s.images), bool), pixel_mm=3.0)
    lesion_rows = s.geometry.to_slices(sitk.GetArrayFromImage(lesion), order=0).reshape(len(cut), -1).any(1)
    saliency = change_saliency(ctx)
    # inside both fields of view only the lesion and interpolation differ
    assert saliency[cut_rows].max() < 0.5 * saliency[lesion_rows].max(), np.round(saliency, 2)
    assert lesion_rows[get_strategy("cold_start").select(ctx, 1).indices[0]]
