"""Registration on clinical grids (issue 12, reliability review D3/D7): thick slices, oblique slabs,
large rotations, and QC that flags what it cannot align. Small grids keep the suite fast."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from anatomy_fixtures import colin27_or_skip
from clinical_grids import GridSpec, Motion, displacement_error, make_clinical_pair

from LongitudinalALLib.imaging.preprocess import foreground_mask, normalize_intensity
from LongitudinalALLib.imaging.registration.pipeline import register
from LongitudinalALLib.imaging.registration.pyramid import shrink_factors

AXIAL_3MM = GridSpec((1.8, 1.8, 3.0), (100, 120, 50))
OBLIQUE_3_3MM = GridSpec((1.9, 1.9, 3.3), (96, 116, 46), max_tilt_deg=20.0)


def _prepared(image: sitk.Image) -> tuple[sitk.Image, sitk.Image]:
    image = sitk.Cast(image, sitk.sitkFloat32)
    mask = foreground_mask(image)
    return normalize_intensity(image, mask), mask


def _register(baseline: sitk.Image, followup: sitk.Image, **kwargs):
    (b, bm), (f, fm) = _prepared(baseline), _prepared(followup)
    return register(b, f, baseline_mask=bm, followup_mask=fm, **kwargs)


def _grid(spacing, size) -> sitk.Image:
    image = sitk.Image([int(s) for s in size], sitk.sitkUInt8)
    image.SetSpacing(spacing)
    return image


def test_pyramid_never_shrinks_thick_axes_and_keeps_voxels():
    flair = _grid((0.94, 0.94, 5.0), (256, 256, 30))
    assert shrink_factors(flair, 8.0) == (8, 8, 1)  # the old isotropic factor 9 left 3 slices
    assert shrink_factors(_grid((0.5, 0.5, 6.0), (440, 440, 25)), 8.0) == (16, 16, 1)
    assert shrink_factors(_grid((2.0, 2.0, 3.0), (115, 115, 50)), 4.0) == (2, 2, 1)
    assert shrink_factors(_grid((1.0, 1.0, 1.0), (40, 200, 200)), 8.0) == (5, 8, 8)  # >= 8 voxels per axis
    assert shrink_factors(flair, 0.0) == (1, 1, 1)  # native level


@pytest.mark.parametrize("spacing, size", [((0.94, 0.94, 5.0), (200, 220, 30)), ((0.5, 0.5, 6.0), (330, 380, 25))],
                         ids=["flair2d_0.94x5_30slices", "0.5x0.5x6"])
@pytest.mark.slow
def test_thick_slice_2d_scans_register(spacing, size):
    """D3: these grids stopped with an ITK 'less than 4 pixels' error; now they align to < 1 mm."""
    spec = GridSpec(spacing, size)
    pair = make_clinical_pair("thick", 3, "mni", grids=(spec, GridSpec(spacing, size, max_tilt_deg=10.0)))
    result = _register(pair.baseline, pair.followup)
    error = displacement_error(result.transform, pair)
    assert error < 1.0, f"{error:.2f} mm"
    assert not result.qc.failed, result.qc.message
    assert result.followup_resampled.GetSize() == pair.baseline.GetSize()


def test_oblique_follow_up_with_different_slices_registers():
    pair = make_clinical_pair("oblique", 5, "mni", grids=(AXIAL_3MM, OBLIQUE_3_3MM))
    result = _register(pair.baseline, pair.followup)
    assert displacement_error(result.transform, pair) < 1.0
    qc = result.qc
    assert not qc.failed, qc.message
    assert qc.edge_after > qc.edge_before + 0.2 and qc.inverse_consistency_mm < 1.0 and qc.dice > 0.9


@pytest.mark.slow
def test_large_rotation_is_found_by_the_multi_start():
    pair = make_clinical_pair("large", 1, "mni", grids=(AXIAL_3MM, OBLIQUE_3_3MM),
                              motion=Motion(max_rotation_deg=28.0, max_shift_mm=20.0))
    angle = np.degrees(np.arccos(np.clip((np.trace(np.asarray(pair.truth.GetMatrix()).reshape(3, 3)) - 1) / 2, -1, 1)))
    assert angle > 20.0  # the seed draws a large turn (plus scale): beyond the old single start's reach
    result = _register(pair.baseline, pair.followup)
    assert displacement_error(result.transform, pair) < 1.0
    assert not result.qc.failed, result.qc.message


@pytest.mark.slow
def test_follow_up_rotated_90_degrees_is_flagged():
    """D7: a 90 degree in-plane turn ended 'ok' with NCC 0.20; now QC names what is wrong."""
    pair = make_clinical_pair("rot90", 4, "mni", grids=(AXIAL_3MM, AXIAL_3MM), motion=Motion(0.0, 0.0, 0.0))
    array = np.ascontiguousarray(np.rot90(sitk.GetArrayFromImage(pair.followup), axes=(1, 2)))
    turned = sitk.GetImageFromArray(array)
    turned.SetSpacing(pair.followup.GetSpacing())
    turned.SetDirection(pair.followup.GetDirection())
    turned.SetOrigin(pair.followup.GetOrigin())
    qc = _register(pair.baseline, turned).qc
    assert qc.failed
    assert qc.message.startswith("Registration looks wrong: ")
    assert "Transforms module" in qc.message and "--initial-transform" in qc.message
    assert any(p.startswith(("tissue edges do not line up", "forward and backward registrations disagree",
                             "the foreground masks overlap poorly", "a transform nudged"))
               for p in qc.problems), qc.problems


def test_initial_transform_is_used_as_given_and_judged():
    pair = make_clinical_pair("initial", 6, "mni", grids=(AXIAL_3MM, OBLIQUE_3_3MM))
    given = pair.expected
    good = _register(pair.baseline, pair.followup, initial_transform=given)
    assert good.qc.stages == [] and not good.qc.failed, good.qc.message
    assert good.transform is given
    off = sitk.CompositeTransform([pair.expected, sitk.TranslationTransform(3, (6.0, 0.0, 0.0))])
    bad = _register(pair.baseline, pair.followup, initial_transform=off)
    assert bad.qc.failed and bad.qc.stages == []


@pytest.mark.slow
def test_left_right_flipped_follow_up_is_flagged_by_the_mirrored_alternative():
    """D17 row 24: a follow-up with its voxels flipped L-R registered 'ok' and moved lesions to the other side.

    Colin27 is one real (asymmetric) head; the MNI template is symmetric by construction, so no check can tell.
    """
    colin27_or_skip("the left-right flip check (Colin27 is asymmetric, MNI is not)")
    pair = make_clinical_pair("flip", 4, "colin27", grids=(AXIAL_3MM, AXIAL_3MM))
    flipped = sitk.GetImageFromArray(np.ascontiguousarray(sitk.GetArrayFromImage(pair.followup)[:, :, ::-1]))
    flipped.CopyInformation(pair.followup)
    qc = _register(pair.baseline, flipped).qc
    assert qc.failed and qc.mirror_edge > qc.edge_after + 0.05
    assert "a left-right mirrored follow-up fits better (check the follow-up's orientation header)" in qc.problems
    unflipped = _register(pair.baseline, pair.followup).qc
    assert not unflipped.failed and unflipped.mirror_edge < unflipped.edge_after, unflipped.message


def test_disagreeing_backward_run_restarts_the_forward_one_and_the_better_is_kept():
    """The stability check: a forward result 10 mm off is replaced by the refined inverse backward result."""
    from LongitudinalALLib.imaging.registration.pipeline import RegistrationSettings, _affine_from, _reconcile
    from LongitudinalALLib.imaging.registration.pyramid import Pyramid

    pair = make_clinical_pair("reconcile", 8, "mni", grids=(AXIAL_3MM, OBLIQUE_3_3MM))
    fixed, moving = Pyramid(*_prepared(pair.baseline)), Pyramid(*_prepared(pair.followup))
    truth = sitk.AffineTransform(pair.expected)
    wrong = sitk.AffineTransform(truth)
    wrong.SetTranslation(tuple(np.add(truth.GetTranslation(), (10.0, 0.0, 0.0))))
    stages = []
    kept = _reconcile(fixed, moving, wrong, _affine_from(sitk.AffineTransform(pair.truth)), RegistrationSettings(),
                      stages)
    assert displacement_error(kept, pair) < 1.0 and stages[-1].name == "restart affine"
    assert _reconcile(fixed, moving, truth, sitk.AffineTransform(pair.truth), RegistrationSettings(), []) is truth
