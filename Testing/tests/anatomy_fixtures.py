"""Real brain anatomy for tests: the MNI ICBM152 2009 T1 bundled with nilearn.

The T1 is skull-stripped (background 0) and stored with RAS voxel axes
(LPS direction diag(-1, -1, 1)), so tests also exercise orientation handling.
Volumes are cached per resolution; every call returns a fresh copy so a test
cannot change what another test sees.

Helpers build follow-up scans from a baseline through a *known* transform, so
registration error can be measured exactly (mean displacement inside the brain).

Colin27 (Debian's mricron-data) is optional: :func:`colin27_or_skip` skips with one line
naming how to get it, except where ``LONGITUDINAL_AL_REQUIRE_COLIN27=1`` (set by ``.ci/run``
where apt exists), so the frozen held-out checksum cannot silently stop running on CI.
"""

from __future__ import annotations

import functools
import math
import os
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from LongitudinalALLib.cohort.anatomy import COLIN27_INSTALL_HINT, colin27_dir

REQUIRE_COLIN27_ENV = "LONGITUDINAL_AL_REQUIRE_COLIN27"


def colin27_or_skip(needed_for: str) -> Path:
    """The folder holding Colin27's ch2bet.nii.gz and ch2.nii.gz; skips (or fails where required) without it.

    Call it inside a test, or at a module's top so a whole module skips with one line."""
    folder = colin27_dir()
    if folder is not None and (folder / "ch2.nii.gz").is_file():
        return folder
    line = f"{needed_for} needs Colin27 (mricron-data ch2bet.nii.gz + ch2.nii.gz): {COLIN27_INSTALL_HINT}"
    if os.environ.get(REQUIRE_COLIN27_ENV) == "1":
        pytest.fail(f"{line} ({REQUIRE_COLIN27_ENV}=1: this machine must run the Colin27 tests)", pytrace=False)
    pytest.skip(line, allow_module_level=True)


def mni_t1_path() -> str:
    """Path of the bundled MNI T1 NIfTI (197 x 233 x 189, 1 mm, uint8)."""
    from nilearn.datasets import MNI152_FILE_PATH

    return str(MNI152_FILE_PATH)


@functools.lru_cache(maxsize=4)
def _mni_t1(resolution_mm: int) -> sitk.Image:
    image = sitk.Cast(sitk.ReadImage(mni_t1_path()), sitk.sitkFloat32)
    if resolution_mm != 1:
        image = sitk.BinShrink(image, [resolution_mm] * 3)  # block average, keeps physical extent
    return image


def mni_t1(resolution_mm: int = 2) -> sitk.Image:
    """The MNI T1 as float32, block-averaged to ``resolution_mm`` (1, 2, 3 or 4 mm)."""
    return sitk.Image(_mni_t1(int(resolution_mm)))


@functools.lru_cache(maxsize=4)
def _mni_mask(resolution_mm: int) -> sitk.Image:
    t1 = _mni_t1(resolution_mm)
    mask = sitk.BinaryThreshold(t1, 20.0, 1e9, 1, 0)
    mask = sitk.BinaryFillhole(sitk.RelabelComponent(sitk.ConnectedComponent(mask)) == 1)
    return sitk.Cast(mask, sitk.sitkUInt8)


def mni_brain_mask(resolution_mm: int = 2) -> sitk.Image:
    """Brain mask (UInt8 0/1) of :func:`mni_t1` at the same resolution."""
    return sitk.Image(_mni_mask(int(resolution_mm)))


def brain_center(image: sitk.Image) -> tuple[float, float, float]:
    """Physical (LPS) centre of the image's bounding box."""
    size = np.asarray(image.GetSize(), dtype=float)
    return image.TransformContinuousIndexToPhysicalPoint(tuple((size - 1) / 2.0))


def random_affine(seed: int, center: tuple[float, float, float], *, max_rotation_deg: float = 10.0,
                  max_translation_mm: float = 15.0, max_scale: float = 0.05) -> sitk.AffineTransform:
    """A random rotation (<= max deg about a random axis), translation and per-axis scaling."""
    rng = np.random.default_rng(seed)
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    angle = math.radians(rng.uniform(0.5, 1.0) * max_rotation_deg)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    rotation = np.eye(3) + math.sin(angle) * k + (1 - math.cos(angle)) * (k @ k)
    scale = np.diag(1.0 + rng.uniform(-max_scale, max_scale, size=3))
    direction = rng.normal(size=3)
    translation = direction / np.linalg.norm(direction) * rng.uniform(0.5, 1.0) * max_translation_mm
    transform = sitk.AffineTransform(3)
    transform.SetCenter(center)
    transform.SetMatrix(tuple((rotation @ scale).ravel()))
    transform.SetTranslation(tuple(translation))
    return transform


def smooth_bias(image: sitk.Image, seed: int, strength: float = 0.15) -> np.ndarray:
    """A smooth multiplicative field (K, J, I) float32 in about [1 - s, 1 + s]."""
    rng = np.random.default_rng(seed)
    shape = sitk.GetArrayViewFromImage(image).shape
    grids = np.meshgrid(*[np.linspace(-1.0, 1.0, n, dtype=np.float32) for n in shape], indexing="ij")
    coef = rng.uniform(-1.0, 1.0, size=3).astype(np.float32)
    field = sum(c * g for c, g in zip(coef, grids)) / 3.0 + 0.3 * grids[0] * grids[1]
    return (1.0 + strength * field).astype(np.float32)


def make_followup(baseline: sitk.Image, transform: sitk.Transform, *, seed: int = 0,
                  noise: float = 0.02, bias: float = 0.1, intensity_scale: float = 1.1,
                  pad_mm: float = 16.0) -> sitk.Image:
    """Follow-up scan F with F(q) = baseline(transform(q)), plus noise, bias and a gain change.

    The follow-up grid is the baseline grid padded by ``pad_mm`` on every side (a
    different field of view), so a registration that recovers ``T`` maps baseline
    point p to ``transform.GetInverse()(p)``.
    """
    pad = [int(round(pad_mm / s)) for s in baseline.GetSpacing()]
    grid = sitk.ConstantPad(baseline, pad, pad, 0.0)
    moved = sitk.Resample(baseline, grid, transform, sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    array = sitk.GetArrayFromImage(moved)
    rng = np.random.default_rng(seed + 1000)
    peak = float(np.percentile(array[array > 0], 99)) if np.any(array > 0) else 1.0
    array = array * smooth_bias(moved, seed, bias) * intensity_scale
    array += rng.normal(0.0, noise * peak, size=array.shape).astype(np.float32) * (array > 0)
    out = sitk.GetImageFromArray(np.clip(array, 0, None).astype(np.float32))
    out.CopyInformation(moved)
    return out


def mean_displacement_error(estimated: sitk.Transform, truth_inverse: sitk.Transform,
                            mask: sitk.Image, max_points: int = 20000, seed: int = 0) -> float:
    """Mean |estimated(p) - truth_inverse(p)| in mm over brain voxel centres p of ``mask``."""
    idx = np.argwhere(sitk.GetArrayViewFromImage(mask) > 0)[:, ::-1]  # (n, 3) as (i, j, k)
    if len(idx) > max_points:
        idx = idx[np.random.default_rng(seed).choice(len(idx), max_points, replace=False)]
    errors = []
    for i, j, k in idx.tolist():
        p = mask.TransformIndexToPhysicalPoint((i, j, k))
        errors.append(np.linalg.norm(np.subtract(estimated.TransformPoint(p), truth_inverse.TransformPoint(p))))
    return float(np.mean(errors))


def skull_on_head(t1: sitk.Image, brain: np.ndarray, transform: sitk.Transform,
                  spacing: tuple[float, float, float] = (1.5, 1.5, 1.5)) -> tuple[sitk.Image, np.ndarray]:
    """(head, (K, J, I) bool brain): the template brain moved by ``transform`` inside a dark skull and a
    bright scalp, seen on a grid of ``spacing`` (e.g. thick 2D slices)."""
    from scipy import ndimage

    arr = sitk.GetArrayFromImage(t1)
    outer = ndimage.binary_dilation(brain, iterations=14)
    skull = ndimage.binary_dilation(brain, iterations=8) & ~brain
    scalp = outer & ~ndimage.binary_dilation(brain, iterations=8)
    head = np.where(brain, arr, 0) + 40.0 * skull + 230.0 * scalp
    head_img = sitk.GetImageFromArray(head.astype(np.float32))
    head_img.CopyInformation(t1)
    mask_img = sitk.GetImageFromArray(brain.astype(np.uint8))
    mask_img.CopyInformation(t1)
    ref = sitk.Image([int(n / s) + int(30 / s) for n, s in zip(t1.GetSize(), spacing)], sitk.sitkFloat32)
    ref.SetSpacing(tuple(float(s) for s in spacing))
    ref.SetDirection(t1.GetDirection())
    ref.SetOrigin(tuple(np.array(t1.GetOrigin()) - np.array(t1.GetDirection()).reshape(3, 3) @ np.full(3, 15.0)))
    moved = sitk.Resample(head_img, ref, transform, sitk.sitkLinear, 0.0)
    truth = sitk.GetArrayFromImage(sitk.Resample(mask_img, ref, transform, sitk.sitkNearestNeighbor, 0)) > 0
    return moved, truth
