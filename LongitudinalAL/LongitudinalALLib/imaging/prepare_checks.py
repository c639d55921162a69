"""Input checks specific to preparing a pair (beyond io.validate_image), and the initial transform.

Why separate: each check turns an input that registration would otherwise
mishandle silently or with an indirect message into one clear line:
too-coarse voxels, a mask or label map given as a scan, the same scan twice.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from LongitudinalALLib.core.errors import InputError
from LongitudinalALLib.imaging.io import reject_label_map

MAX_INPLANE_MM = 4.0  # the two finest axes; 2D clinical scans have 0.4-2 mm in-plane


def check_scan(image: sitk.Image, name: str) -> None:
    """Reject grids too coarse to register and images that hold a mask or label map (io.reject_label_map)."""
    check_grid(image, name)
    reject_label_map(image, name)


def check_grid(image: sitk.Image, name: str) -> None:
    """Reject grids too coarse to register (two axes coarser than MAX_INPLANE_MM)."""
    spacing = sorted(image.GetSpacing())
    if spacing[1] > MAX_INPLANE_MM:
        shown = " x ".join(f"{s:.1f}" for s in image.GetSpacing())
        raise InputError(f"{name}: voxels are {shown} mm, too coarse to register a brain "
                         f"(two axes must be {MAX_INPLANE_MM:.0f} mm or finer).",
                         "Give the original acquisition, not a downsampled copy.")


def same_scan_warning(baseline: sitk.Image, followup: sitk.Image) -> list[str]:
    """A warning when both inputs are one scan (same grid and voxels): the difference will be empty."""
    if (baseline.GetSize() == followup.GetSize()
            and np.allclose(baseline.GetSpacing(), followup.GetSpacing())
            and np.allclose(baseline.GetOrigin(), followup.GetOrigin())
            and np.allclose(baseline.GetDirection(), followup.GetDirection())
            and np.array_equal(sitk.GetArrayViewFromImage(baseline), sitk.GetArrayViewFromImage(followup))):
        return ["baseline and follow-up are the same scan: the difference image is empty; check that the "
                "follow-up file is the later visit."]
    return []


def load_transform(value: sitk.Transform | str | Path) -> sitk.Transform:
    """A 3D resampling transform (baseline point -> follow-up point) from a file or as given."""
    if isinstance(value, sitk.Transform):
        transform = value
    else:
        path = Path(value)
        if not path.is_file():
            raise InputError(f"{path}: transform file not found.", "Give the .tfm/.h5 saved by prepare or by "
                             "Slicer's Transforms module.")
        try:
            transform = sitk.ReadTransform(str(path))
        except RuntimeError:
            raise InputError(f"{path}: cannot be read as an ITK transform.", "Give the .tfm/.h5/.txt saved by "
                             "prepare or by Slicer's Transforms module (File > Save).") from None
    if transform.GetDimension() != 3:
        raise InputError(f"initial transform: is {transform.GetDimension()}D, a 3D transform is needed.",
                         "Save the follow-up-to-baseline transform from Slicer's Transforms module.")
    return transform
