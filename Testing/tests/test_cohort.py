"""Simulated cohort: what a new-lesion ground truth must guarantee (2 mm, MNI, in-process)."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from LongitudinalALLib.cohort.anatomy import load_anatomy
from LongitudinalALLib.cohort.generator import make_subject
from LongitudinalALLib.cohort.lesions import render_lesion
from LongitudinalALLib.cohort.pair import SimulationOptions, render_pair, sample_pair_params

QUIET = SimulationOptions(misalign=False, bias=False, noise=False, drift=False, atrophy=False,
                          min_new_lesions=2, p_enlarging=1.0)


@pytest.fixture(scope="module")
def subject():
    return make_subject(load_anatomy("mni", 2.0), seed=11, index=0)


def _pair(subject, options, index=0):
    params = sample_pair_params(np.random.default_rng([11, 1, index]), subject, f"p{index:03d}", options)
    return params, render_pair(subject, params)


def test_anatomy_tissue_maps_are_plausible():
    anat = load_anatomy("mni", 2.0)
    voxel_ml = np.prod(anat.spacing) / 1000.0
    gm, wm, csf = (float(m.sum() * voxel_ml) for m in (anat.gm, anat.wm, anat.csf))
    # an adult brain: ~0.6-1.0 l GM, ~0.4-0.8 l WM, some CSF; fractions never exceed 1
    assert 500 < gm < 1100 and 400 < wm < 900 and 50 < csf < 500
    assert float((anat.gm + anat.wm + anat.csf).max()) <= 1.0 + 1e-5
    assert not anat.brain[0].any() and not anat.brain[-1].any()  # cropped with a margin


def test_subject_deformation_changes_anatomy(subject):
    anat = subject.anatomy
    other = make_subject(anat, seed=11, index=1)
    assert subject.wm.shape == anat.wm.shape
    # deformed, but still a brain of similar size
    assert 0.75 < subject.brain.sum() / anat.brain.sum() < 1.3
    assert np.mean(subject.wm_mask != other.wm_mask) > 0.01
    assert all(v.size > 50 for v in subject.regions.values()), {k: v.size for k, v in subject.regions.items()}


def test_new_lesions_lie_in_white_matter_and_change_intensity(subject):
    params, vol = _pair(subject, QUIET)
    mask = vol.new_lesions.astype(bool)
    assert mask.sum() > 0
    assert vol.wm_mask[mask].all(), "a new-lesion voxel lies outside the baseline white matter"
    wm_level = params["levels_baseline"]["wm"] * params["levels_baseline"]["scale"]
    change = vol.followup_clean[mask] - vol.baseline_clean[mask]
    assert change.min() > 0.02 * wm_level, "a new-lesion voxel did not become brighter"


def test_followup_equals_baseline_outside_mask_when_acquisition_is_off(subject):
    _, vol = _pair(subject, QUIET)
    mask = vol.new_lesions.astype(bool)
    rim = ndimage.binary_dilation(mask, structure=np.ones((3, 3, 3), bool))
    far = ~rim
    assert np.array_equal(vol.followup_clean[far], vol.baseline_clean[far])
    assert np.array_equal(vol.followup[far], vol.baseline[far])  # the written int16 volumes too
    # partial volume: rim voxels outside the mask changed by less than the lesion contrast
    d = np.abs(vol.followup_clean - vol.baseline_clean)
    assert d[rim & ~mask].max() < d[mask].max()


def test_enlarging_lesion_counts_only_its_grown_part(subject):
    params, vol = _pair(subject, QUIET)
    enl = [s for s in params["lesions"] if s["kind"] == "enlarging"]
    assert enl, "p_enlarging=1 must give an enlarging lesion"
    box, old, grown = render_lesion(enl[0], subject.gm.shape, subject.spacing_zyx)
    old_in = (old * subject.wm_mask[box]) >= 0.5
    assert old_in.any() and not vol.new_lesions[box][old_in].any(), "the old part is flagged as new"
    grown_new = (grown * subject.wm_mask[box] >= 0.5) & ~old_in
    assert vol.new_lesions[box][grown_new].mean() > 0.5
    # the old part is in the baseline image (a lesion already there)
    assert vol.lesion_frac_baseline[box][old_in].min() >= 0.5


def test_misalignment_ground_truth_transform_realigns(subject):
    opts = SimulationOptions(bias=False, noise=False, drift=False, atrophy=False)
    _, vol = _pair(subject, opts, index=3)
    anat = subject.anatomy
    fixed = anat.to_image(vol.baseline.astype(np.float32))
    moving = anat.to_image(vol.followup.astype(np.float32))
    inner = ndimage.binary_erosion(subject.brain, iterations=3) & ~ndimage.binary_dilation(
        vol.new_lesions.astype(bool), iterations=2)

    def err(image, t):
        out = sitk.GetArrayFromImage(sitk.Resample(image, fixed, t, sitk.sitkLinear, 0.0))
        return float(np.abs(out - vol.baseline)[inner].mean())

    truth = vol.registration_truth
    # what interpolating there and back costs a perfectly aligned image: the best any transform can do
    floor = err(sitk.Resample(fixed, fixed, truth.GetInverse(), sitk.sitkLinear, 0.0), truth)
    assert err(moving, truth) <= 1.01 * floor + 1e-3
    assert err(moving, sitk.Transform()) > 2 * err(moving, truth)
    assert err(moving, truth.GetInverse()) > 2 * err(moving, truth)  # the direction matters


def test_acquisition_effects_change_the_followup_everywhere(subject):
    _, vol = _pair(subject, SimulationOptions(min_new_lesions=1), index=4)
    brain = subject.brain
    assert np.mean(vol.followup[brain] != vol.baseline[brain]) > 0.9
    # Rician noise: background is not zero
    assert vol.baseline[~brain].mean() > 1


def test_pairs_without_new_lesions_occur(subject):
    empty = 0
    for i in range(25):
        params = sample_pair_params(np.random.default_rng([5, 1, i]), subject, f"p{i}", SimulationOptions())
        if not any(s["kind"] in ("new", "enlarging") for s in params["lesions"]):
            empty += 1
            vol = render_pair(subject, params)
            assert vol.new_lesions.sum() == 0
            assert any(s["kind"] == "existing" for s in params["lesions"])
    assert 1 <= empty <= 15


def test_lesion_sizes_classes_and_soft_edges(subject):
    classes, sizes = set(), []
    for i in range(12):
        params = sample_pair_params(np.random.default_rng([6, 1, i]), subject, f"p{i}", SimulationOptions())
        for s in params["lesions"]:
            classes.add(s["class"])
            if s["kind"] == "new":
                sizes.append(s["diameter_mm"])
                _, soft, _ = render_lesion(s, subject.gm.shape, subject.spacing_zyx)
                assert ((soft > 0) & (soft < 1)).any(), "no partial-volume border"
    assert classes == {"periventricular", "juxtacortical", "deep"}
    assert min(sizes) >= 3.0 and max(sizes) <= 15.0
    assert min(sizes) < 5.0 and max(sizes) > 8.0
