"""Load an annotator's lesion mask and put it on the baseline grid stored in the session.

A wrong mask becomes confident wrong labels, so it is checked before anything is
recorded: the file is complete, values are finite and 0/1 (or one chosen label
value), it is not an intensity scan, and it overlaps the baseline. The baseline
grid comes from the session's own pool record (``pool/<case>.json`` geometry), never
from a prepared folder that may have moved. Slices the mask does not cover cannot
be answered "no lesion" from it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from LongitudinalALLib.core.errors import InputError
from LongitudinalALLib.imaging.io import physical_bounds, read_image, same_grid, validate_image
from LongitudinalALLib.imaging.pairing import CaseSlices, SliceGeometry

_MAX_LABELS = 8  # more distinct values than this (or fractions): an intensity scan
_MIN_COVERED = 0.99  # share of a slice's foreground the mask must cover to answer it


@dataclass
class MaskOnBaseline:
    volume: np.ndarray   # (K, J, I) uint8 0/1 on the baseline grid
    covered: np.ndarray  # (K, J, I) bool: voxels the mask file covers
    note: str            # what was done to it ("" if nothing)


def baseline_grid(geometry: SliceGeometry) -> sitk.Image:
    """An empty UInt8 image with the baseline's size, spacing, origin and direction."""
    ref = sitk.Image([int(n) for n in reversed(geometry.shape)], sitk.sitkUInt8)
    ref.SetSpacing(geometry.voxel_spacing)
    ref.SetOrigin(geometry.origin)
    ref.SetDirection(geometry.direction)
    return ref


def read_label_mask(path: str, label_value: float | None = None, *, series: Sequence[str] = (),
                    notes: list[str] | None = None) -> sitk.Image:
    """The lesion voxels of the mask at ``path`` as a UInt8 0/1 image (header kept).

    ``series``/``notes``: DICOM series choice, as in :func:`io.read_image`.
    """
    name = f"Mask {path}"
    image = read_image(path, name=name, series=series, notes=notes)
    validate_image(image, name, allow_constant=True)
    arr = sitk.GetArrayViewFromImage(image)
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise InputError(f"{name}: contains {int(np.count_nonzero(~np.isfinite(arr)))} NaN or infinite values.",
                         "A mask holds 0 (background) and 1 (lesion); re-export it.")
    if arr.min() < 0:
        raise InputError(f"{name}: contains {int(np.count_nonzero(arr < 0))} negative values.",
                         "A mask holds 0 (background) and 1 (lesion); re-export it.")
    values = _distinct(arr)
    if values is None:
        raise InputError(f"{name}: this looks like an intensity scan, not a mask (many distinct values).",
                         "Give the lesion mask (0 = background, 1 = lesion) drawn on the baseline.")
    if np.any(values != np.round(values)):
        raise InputError(f"{name}: holds fractional values ({_show(values)}), e.g. a probability map.",
                         "Threshold it into a 0/1 lesion mask first.")
    if label_value is not None:
        if label_value not in values and len(values) > 1:
            raise InputError(f"{name}: no voxel has the label value {label_value:g} "
                             f"(values present: {_show(values)}).", "Pick one of them with --label-value.")
        lesion = arr == label_value
    elif set(values.tolist()) <= {0, 1}:
        lesion = arr == 1
    else:
        raise InputError(f"{name}: holds the label values {_show(values)}, not just 0 and 1.",
                         "Say which value marks new lesions with --label-value (e.g. --label-value "
                         f"{values[values > 0][0]:g}).")
    out = sitk.GetImageFromArray(lesion.astype(np.uint8))
    out.CopyInformation(image)
    return out


def _distinct(arr: np.ndarray) -> np.ndarray | None:
    """Sorted distinct values, or None when there are clearly too many (checked on a sample first)."""
    sample = arr.ravel()[:: max(1, arr.size // 20000)]
    if len(np.unique(sample)) > _MAX_LABELS:
        return None
    values = np.unique(arr)
    return None if len(values) > _MAX_LABELS else values


def _show(values: np.ndarray) -> str:
    return ", ".join(f"{v:g}" for v in values)


def mask_on_baseline(mask: sitk.Image, geometry: SliceGeometry, name: str) -> MaskOnBaseline:
    """Resample ``mask`` (nearest) onto the stored baseline grid; refuse one that misses it."""
    ref = baseline_grid(geometry)
    if same_grid(mask, ref):
        arr = sitk.GetArrayFromImage(mask)
        return MaskOnBaseline(arr, np.ones(arr.shape, bool), "")
    lo_m, hi_m = physical_bounds(mask)
    lo_b, hi_b = physical_bounds(ref)
    if np.any(np.minimum(hi_m, hi_b) - np.maximum(lo_m, lo_b) <= 0):
        gap = float(np.linalg.norm((lo_m + hi_m) / 2 - (lo_b + hi_b) / 2))
        raise InputError(f"{name} does not overlap the session's baseline scan (centres {gap:.0f} mm apart).",
                         "Give the mask drawn on this case's baseline (check --case and the mask's header).")
    arr = sitk.GetArrayFromImage(sitk.Resample(mask, ref, sitk.Transform(), sitk.sitkNearestNeighbor, 0))
    ones = sitk.Image(mask.GetSize(), sitk.sitkUInt8) + 1
    ones.CopyInformation(mask)
    covered = sitk.GetArrayFromImage(sitk.Resample(ones, ref, sitk.Transform(), sitk.sitkNearestNeighbor, 0)) > 0
    if sitk.GetArrayViewFromImage(mask).any() and not arr.any():
        raise InputError(f"{name}: its lesion voxels all lie outside the session's baseline scan.",
                         "Give the mask drawn on this case's baseline (check --case and the mask's header).")
    return MaskOnBaseline(arr, covered, "mask resampled onto the baseline grid stored in the session")


def uncovered_slices(case: CaseSlices, covered: np.ndarray, slice_indices: list[int],
                     positions: list[int]) -> list[int]:
    """Listed slices whose foreground (whole window if none) the mask covers under 99 %."""
    if covered.all():
        return []
    cov = case.geometry.to_slices(covered, order=0)
    out = []
    for s, n in zip(slice_indices, positions):
        need = case.foreground[n] if case.foreground[n].any() else np.ones(cov[n].shape, bool)
        if np.count_nonzero(cov[n] & need) < _MIN_COVERED * np.count_nonzero(need):
            out.append(int(s))
    return out
