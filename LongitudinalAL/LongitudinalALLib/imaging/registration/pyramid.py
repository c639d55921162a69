"""Per-axis multi-resolution pyramid for registration on clinical (anisotropic) grids.

Why per axis: one isotropic shrink factor taken from the finest spacing turns a
0.94 x 0.94 x 5 mm scan with 30 slices into 3 slices at an 8 mm level, and ITK's
Gaussian gradient filter then stops ("less than 4 pixels"). Here each axis is
shrunk by ``floor(level_mm / spacing)``; axes already at THICK_MM or coarser
(thick 2D slices, 3-6 mm) are never shrunk, and every axis keeps MIN_VOXELS.
Level 0 mm is the native grid. Images are block-averaged (cheap anti-aliasing);
masks keep any covered block.
"""

from __future__ import annotations

import math

import SimpleITK as sitk

THICK_MM = 2.5
MIN_VOXELS = 8


def shrink_factors(image: sitk.Image, level_mm: float) -> tuple[int, int, int]:
    """Shrink factor per axis (i, j, k) for a pyramid level of about ``level_mm``."""
    factors = []
    for spacing, size in zip(image.GetSpacing(), image.GetSize()):
        f = 1 if spacing >= THICK_MM or level_mm <= 0 else max(1, math.floor(level_mm / spacing + 1e-6))
        factors.append(int(max(1, min(f, size // MIN_VOXELS))))
    return tuple(factors)


class Pyramid:
    """Shrunk copies of one image and its mask, built once per factor triple."""

    def __init__(self, image: sitk.Image, mask: sitk.Image | None):
        self.image = sitk.Cast(image, sitk.sitkFloat32)
        self.mask = None if mask is None else sitk.Cast(mask > 0, sitk.sitkUInt8)
        self._levels: dict[tuple[int, int, int], tuple[sitk.Image, sitk.Image | None]] = {}

    def __call__(self, level_mm: float) -> tuple[sitk.Image, sitk.Image | None]:
        """(image float32, mask UInt8 or None) at ``level_mm`` (0: native)."""
        factors = shrink_factors(self.image, level_mm)
        if factors not in self._levels:
            if factors == (1, 1, 1):
                self._levels[factors] = (self.image, self.mask)
            else:
                image = sitk.BinShrink(self.image, factors)
                mask = None if self.mask is None else sitk.Cast(
                    sitk.BinShrink(sitk.Cast(self.mask, sitk.sitkFloat32), factors) > 0.0, sitk.sitkUInt8)
                self._levels[factors] = (image, mask)
        return self._levels[factors]

    def is_native(self, level_mm: float) -> bool:
        return shrink_factors(self.image, level_mm) == (1, 1, 1)
