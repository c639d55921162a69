"""registration.py recovers known transforms applied to real brain anatomy."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from anatomy_fixtures import brain_center, make_followup, mean_displacement_error, mni_brain_mask, mni_t1, random_affine

from LongitudinalALLib.core.errors import CancelledError
from LongitudinalALLib.core.progress import CancelToken
from LongitudinalALLib.imaging.preprocess import foreground_mask, normalize_intensity
from LongitudinalALLib.imaging.registration.pipeline import RegistrationQC, RegistrationSettings, register
from LongitudinalALLib.imaging.registration.qc import judge


def _pair(resolution: int, seed: int):
    base = mni_t1(resolution)
    mask = mni_brain_mask(resolution)
    truth = random_affine(seed, brain_center(base))
    follow = make_followup(base, truth, seed=seed)
    fmask = foreground_mask(follow)
    return (normalize_intensity(base, mask), normalize_intensity(follow, fmask), mask, fmask, truth)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_recovers_known_affine_at_2mm(seed):
    base, follow, mask, fmask, truth = _pair(2, seed)
    result = register(base, follow, baseline_mask=mask, followup_mask=fmask)
    error = mean_displacement_error(result.transform, truth.GetInverse(), mask)
    assert error <= 0.5, f"mean displacement error {error:.3f} mm"
    qc = result.qc
    assert not qc.failed and qc.ncc_after > qc.ncc_before + 0.3 and qc.mattes_after < qc.mattes_before
    assert [s.name for s in qc.stages][:2] == ["rigid", "affine"] and all(s.iterations > 0 for s in qc.stages)
    assert "backward rigid" in [s.name for s in qc.stages] and qc.inverse_consistency_mm < 0.5
    assert result.followup_resampled.GetSize() == base.GetSize()


@pytest.mark.slow  # a full-resolution registration
def test_recovers_known_affine_at_1mm():
    base, follow, mask, fmask, truth = _pair(1, 7)
    result = register(base, follow, baseline_mask=mask, followup_mask=fmask)
    error = mean_displacement_error(result.transform, truth.GetInverse(), mask, max_points=5000)
    assert error <= 0.5, f"mean displacement error {error:.3f} mm"


@pytest.mark.slow
def test_deterministic_for_a_seed_and_transform_file_round_trip(tmp_path):
    base, follow, mask, fmask, _ = _pair(4, 3)
    a = register(base, follow, baseline_mask=mask, followup_mask=fmask)
    b = register(base, follow, baseline_mask=mask, followup_mask=fmask)
    # Same samples; only multi-threaded summation order may differ in the last digits.
    np.testing.assert_allclose(a.transform.GetParameters(), b.transform.GetParameters(), atol=1e-5)
    path = tmp_path / "t.tfm"
    sitk.WriteTransform(a.transform, str(path))
    back = sitk.ReadTransform(str(path))
    p = (10.0, -20.0, 30.0)
    np.testing.assert_allclose(back.TransformPoint(p), a.transform.TransformPoint(p), atol=1e-6)


@pytest.mark.slow
def test_deformable_stage_is_composed_after_the_affine():
    base, follow, mask, fmask, truth = _pair(4, 5)
    result = register(base, follow, baseline_mask=mask, followup_mask=fmask,
                      settings=RegistrationSettings(deformable=True, bspline_iterations=10, backward_check=False,
                                                                mirror_check=False))
    assert isinstance(result.transform, sitk.CompositeTransform)
    assert result.transform.GetNumberOfTransforms() == 2
    assert [s.name for s in result.qc.stages][-1] == "bspline"
    assert mean_displacement_error(result.transform, truth.GetInverse(), mask) < 1.5  # 4 mm voxels


def test_progress_and_cancel():
    base, follow, mask, fmask, _ = _pair(4, 1)
    seen = []
    register(base, follow, baseline_mask=mask, followup_mask=fmask, progress=lambda *a: seen.append(a))
    assert seen[0][:2] == ("registration", 0.0) and seen[-1][:2] == ("registration", 1.0)
    token = CancelToken()
    token.cancel()
    with pytest.raises(CancelledError):
        register(base, follow, baseline_mask=mask, followup_mask=fmask, cancel=token)


def _qc(**kwargs) -> RegistrationQC:
    good = dict(mattes_before=-0.2, mattes_after=-0.5, ncc_before=0.3, ncc_after=0.9, edge_before=0.45,
                edge_after=0.95, dice=0.97, inverse_consistency_mm=0.2, edge_gain=-0.02, mirror_edge=0.7)
    return RegistrationQC(**{**good, **kwargs})


def test_judge_flags_each_failed_check_and_says_what_to_try():
    qc = _qc()
    judge(qc)
    assert not qc.failed and qc.problems == []
    cases = {
        "the transform mirrors the follow-up (determinant -1.00)": dict(determinant=-1.0, scales=(1.0, 1.0, 1.0)),
        "implausible scaling or shear (axis scales 0.40..0.40)": dict(determinant=0.064, scales=(0.4, 0.4, 0.4)),
        "forward and backward registrations disagree by 3.2 mm": dict(inverse_consistency_mm=3.2),
        "the foreground masks overlap poorly (Dice 0.70)": dict(dice=0.70),
        "tissue edges do not line up (edge alignment 0.60, good pairs > 0.75)": dict(edge_after=0.6, mirror_edge=0.5),
        "low correlation inside the mask (0.17 -> 0.20)": dict(ncc_before=0.17, ncc_after=0.20),
        "a left-right mirrored follow-up fits better (check the follow-up's orientation header)":
            dict(mirror_edge=0.99),
    }
    for problem, fields in cases.items():
        qc = _qc(**fields)
        judge(qc)
        assert qc.failed and qc.problems == [problem], (problem, qc.problems)
        assert qc.message == ("Registration looks wrong: " + problem + ". Correct the transform in Slicer "
                              "(Transforms module, edit followup_to_baseline.tfm, save it) and run again with "
                              "--initial-transform, give a foreground mask, or keep it with --accept-qc-failure.")
    assert set(_qc().to_dict()) >= {"mattes_before", "mattes_after", "ncc_before", "ncc_after", "stages", "seconds",
                                    "failed", "message", "edge_after", "dice", "inverse_consistency_mm", "problems"}
