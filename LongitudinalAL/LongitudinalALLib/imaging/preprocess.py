"""Intensity preprocessing so baseline and follow-up are comparable voxel by voxel.

- :func:`n4_correct`: N4 bias-field correction fitted on a copy shrunk to ~6 mm
  voxels (fast at any resolution) with the field evaluated at full resolution.
- :func:`foreground_mask`: Otsu (MRI) or a -500 HU threshold (CT), largest
  connected component, holes filled; or :func:`validate_mask` for a user's mask.
- :func:`normalize_intensity`: robust percentiles inside the mask, p1 -> 0 and
  p99 -> 1 (clipped to [0, 2] so a bright new lesion above p99 keeps its
  contrast but a few extreme voxels cannot dominate).
- :func:`match_histogram`: maps follow-up quantiles onto the baseline's inside
  the masks, with linear extrapolation beyond the end quantiles so new lesions
  are not clipped.
All outputs are float32 images on the input's grid.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from LongitudinalALLib.core.errors import InputError
from LongitudinalALLib.imaging.io import same_grid

CLIP_HIGH = 2.0


def n4_correct(image: sitk.Image, mask: sitk.Image | None = None, *, fit_voxel_mm: float = 6.0,
               iterations: tuple[int, ...] = (50, 40, 30), spline_distance_mm: float = 100.0) -> sitk.Image:
    """Return ``image`` divided by its estimated smooth bias field (float32, same grid).

    The field (B-spline knots ``spline_distance_mm`` apart) is fitted on a copy
    shrunk to about ``fit_voxel_mm`` voxels, whatever the input spacing: a field
    that smooth needs no finer grid, and the fit dominates preparation time.
    """
    image = sitk.Cast(image, sitk.sitkFloat32)
    if mask is None:
        mask = rough_mask(image)
    mask = sitk.Cast(mask > 0, sitk.sitkUInt8)
    # N4 works on log intensities: only strictly positive voxels may be fitted.
    fit_mask = sitk.Cast(sitk.And(mask, sitk.Cast(image > 0, sitk.sitkUInt8)), sitk.sitkUInt8)
    if _count(fit_mask) < 100:
        return image  # nothing to fit (e.g. all non-positive): leave unchanged
    factor = [max(1, min(int(round(fit_voxel_mm / sp)), sz // 16)) for sp, sz in zip(image.GetSpacing(), image.GetSize())]
    small = sitk.Shrink(image, factor)
    small_mask = sitk.Shrink(fit_mask, factor)
    n4 = sitk.N4BiasFieldCorrectionImageFilter()
    n4.SetMaximumNumberOfIterations([int(i) for i in iterations])
    extent = np.asarray(image.GetSize()) * np.asarray(image.GetSpacing())
    n4.SetNumberOfControlPoints([max(4, int(e / spline_distance_mm) + 3) for e in extent])
    n4.Execute(small, small_mask)
    log_field = n4.GetLogBiasFieldAsImage(image)  # evaluated on the full-resolution grid
    return sitk.Cast(image / sitk.Exp(log_field), sitk.sitkFloat32)


def rough_mask(image: sitk.Image) -> sitk.Image:
    """Otsu foreground (UInt8) without clean-up, for N4's fitting region."""
    return sitk.Cast(sitk.OtsuThreshold(sitk.Cast(image, sitk.sitkFloat32), 0, 1, 128), sitk.sitkUInt8)


def foreground_mask(image: sitk.Image, modality: str = "mri") -> sitk.Image:
    """Automatic foreground (UInt8 0/1): threshold, largest component, holes filled."""
    image = sitk.Cast(image, sitk.sitkFloat32)
    if modality == "ct":
        mask = sitk.Cast(image > -500.0, sitk.sitkUInt8)
    elif modality == "mri":
        mask = rough_mask(image)
    else:
        raise InputError(f"Unknown modality '{modality}'.", "Use 'mri' or 'ct'.")
    if _count(mask) == 0:
        raise InputError("The automatic foreground mask is empty.", "Give a mask image (--mask).")
    largest = sitk.RelabelComponent(sitk.ConnectedComponent(mask), sortByObjectSize=True) == 1
    closed = sitk.BinaryMorphologicalClosing(sitk.Cast(largest, sitk.sitkUInt8), [2, 2, 2])
    return sitk.Cast(sitk.BinaryFillhole(closed), sitk.sitkUInt8)


def validate_mask(mask: sitk.Image, reference: sitk.Image, name: str = "mask") -> sitk.Image:
    """Check a user's mask lies on ``reference``'s grid and is not empty; return it as UInt8 0/1."""
    if mask.GetDimension() != 3 or mask.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(f"{name}: must be a 3D single-channel image.", "Give a label map (0 = background).")
    if not same_grid(mask, reference):
        raise InputError(f"{name}: does not match the baseline's grid (size {mask.GetSize()} vs "
                         f"{reference.GetSize()}, or spacing/origin/direction differ).",
                         "Resample the mask onto the baseline (e.g. Slicer 'Resample Scalar/Vector/DWI "
                         "Volume' with nearest neighbour) or draw it on the baseline.")
    binary = sitk.Cast(sitk.NotEqual(mask, 0), sitk.sitkUInt8)
    if _count(binary) == 0:
        raise InputError(f"{name}: is empty (no non-zero voxel).", "Give a mask covering the region to analyse.")
    return binary


def normalize_intensity(image: sitk.Image, mask: sitk.Image, low: float = 1.0, high: float = 99.0) -> sitk.Image:
    """Map the ``low``..``high`` percentiles inside ``mask`` to 0..1, clipped to [0, CLIP_HIGH]."""
    array = sitk.GetArrayViewFromImage(image)
    inside = array[sitk.GetArrayViewFromImage(mask) > 0]
    if inside.size == 0:
        raise InputError("Cannot normalise intensities: the foreground mask is empty.", "Give a non-empty mask.")
    p_lo, p_hi = np.percentile(inside, [low, high]).astype(np.float64)
    if p_hi <= p_lo:
        p_lo, p_hi = float(inside.min()), float(inside.max())
    if p_hi <= p_lo:
        raise InputError("Cannot normalise intensities: the scan is constant inside the mask.",
                         "Check the mask covers the anatomy.")
    out = np.clip((array.astype(np.float32) - np.float32(p_lo)) / np.float32(p_hi - p_lo), 0.0, CLIP_HIGH)
    return _like(out, image)


def match_histogram(followup: sitk.Image, baseline: sitk.Image, followup_mask: sitk.Image,
                    baseline_mask: sitk.Image, n_quantiles: int = 64) -> sitk.Image:
    """Follow-up intensities remapped so their distribution in the mask matches the baseline's."""
    f = sitk.GetArrayViewFromImage(followup)
    b = sitk.GetArrayViewFromImage(baseline)
    f_in = f[sitk.GetArrayViewFromImage(followup_mask) > 0]
    b_in = b[sitk.GetArrayViewFromImage(baseline_mask) > 0]
    if f_in.size < n_quantiles or b_in.size < n_quantiles:
        raise InputError("Histogram matching needs foreground in both scans.",
                         "Check the masks overlap the anatomy after registration.")
    q = np.linspace(1.0, 99.0, n_quantiles)
    src = np.percentile(f_in, q)
    dst = np.percentile(b_in, q)
    src, dst = _strictly_increasing(src, dst)
    out = np.interp(f, src, dst).astype(np.float32)
    # Linear extrapolation with the end segments' slopes instead of clamping.
    lo, hi = f < src[0], f > src[-1]
    slope_lo = (dst[1] - dst[0]) / (src[1] - src[0])
    slope_hi = (dst[-1] - dst[-2]) / (src[-1] - src[-2])
    out[lo] = dst[0] + (f[lo] - src[0]) * slope_lo
    out[hi] = dst[-1] + (f[hi] - src[-1]) * slope_hi
    return _like(np.clip(out, 0.0, None), followup)


def _strictly_increasing(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Drop repeated source quantiles (flat histograms) so interpolation is well defined."""
    keep = np.concatenate([[True], np.diff(src) > 1e-6 * max(1.0, float(np.ptp(src)))])
    src, dst = src[keep], np.maximum.accumulate(dst[keep])
    if src.size < 2:
        src, dst = np.array([0.0, 1.0]), np.array([0.0, 1.0])
    return src, dst


def _like(array: np.ndarray, reference: sitk.Image) -> sitk.Image:
    out = sitk.GetImageFromArray(np.ascontiguousarray(array, dtype=np.float32))
    out.CopyInformation(reference)
    return out


def _count(mask: sitk.Image) -> int:
    return int(np.count_nonzero(sitk.GetArrayViewFromImage(mask)))
