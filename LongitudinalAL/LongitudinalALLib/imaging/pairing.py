"""Pair every baseline slice with its registered follow-up and their difference.

Slices are taken along the baseline *voxel* axis closest to the anatomical
normal in RAS (never by array order), so to_volume(to_slices(v)) can be exact.
Each slice is shown in a canonical orientation and resampled in-plane to
isotropic ``spacing_mm`` pixels (aspect ratio kept), then cropped/padded to
``size`` around the centre of the 3D foreground bounding box (one window for
the whole stack, so the model sees a consistent field of view).

Canonical views (rows top->bottom, columns left->right, slices in order):
- axial:    anterior at the top, patient right on image left (radiological), inferior -> superior
- coronal:  superior at the top, patient right on image left, posterior -> anterior
- sagittal: superior at the top, anterior on image left, patient left -> right
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from LongitudinalALLib.core.errors import InputError
from LongitudinalALLib.imaging.io import same_grid
from LongitudinalALLib.imaging.ras import LPS_TO_RAS

AXES = ("axial", "coronal", "sagittal")
_R, _A, _S = np.eye(3)
#: axis -> (slice normal, direction of increasing row, direction of increasing column), RAS
_VIEWS = {
    "axial": (_S, -_A, -_R),
    "coronal": (_A, -_S, -_R),
    "sagittal": (_R, -_S, -_A),
}


@dataclass(frozen=True)
class SliceProvenance:
    case_id: str
    slice_index: int  # index along the baseline voxel axis closest to the normal
    center_ras: tuple[float, float, float]  # centre of the model window on that slice, RAS mm
    normal_ras: tuple[float, float, float]  # unit normal, RAS
    foreground_fraction: float  # of the model window

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class SliceGeometry:
    """Maps the baseline grid (K, J, I) <-> model slices (N, H, W).

    ``perm`` holds the array axes used as (slice, row, column); ``flips`` says
    which of them run backwards in the canonical view; ``start`` is the canonical
    (row, column) voxel index sampled by model pixel (0, 0); ``step`` is voxels
    per model pixel along (row, column).
    """

    axis: str
    size: tuple[int, int]
    spacing_mm: float
    shape: tuple[int, int, int]
    voxel_spacing: tuple[float, float, float]  # SimpleITK (x, y, z) order
    origin: tuple[float, float, float]  # LPS
    direction: tuple[float, ...]  # 9 values, LPS, SimpleITK row-major
    perm: tuple[int, int, int]
    flips: tuple[bool, bool, bool]
    start: tuple[float, float]

    # ---- construction -------------------------------------------------------------
    @classmethod
    def for_image(cls, image: sitk.Image, axis: str = "axial", size: tuple[int, int] | int = (256, 256),
                  spacing_mm: float = 1.0, foreground: np.ndarray | None = None) -> "SliceGeometry":
        """Geometry for ``image``; the window is centred on ``foreground`` (K, J, I) if given."""
        if axis not in AXES:
            raise InputError(f"Unknown slice axis '{axis}'.", f"Use one of {', '.join(AXES)}.")
        size = (int(size), int(size)) if np.isscalar(size) else (int(size[0]), int(size[1]))
        if min(size) < 1 or not spacing_mm > 0:
            raise InputError(f"Invalid slice size {size} or spacing {spacing_mm}.",
                             "Use a positive size (e.g. 256) and spacing in mm (e.g. 1.0).")
        perm, flips = canonical_axes(image.GetDirection(), axis)
        shape = tuple(int(n) for n in reversed(image.GetSize()))
        spacing = image.GetSpacing()
        step = [spacing_mm / spacing[2 - perm[c]] for c in (1, 2)]
        extent = [shape[perm[c]] for c in (1, 2)]
        if foreground is not None and np.any(foreground):
            canon = _canonical(np.asarray(foreground), perm, flips)
            rows = np.flatnonzero(canon.any(axis=(0, 2)))
            cols = np.flatnonzero(canon.any(axis=(0, 1)))
            centre = [(rows[0] + rows[-1]) / 2.0, (cols[0] + cols[-1]) / 2.0]
        else:
            centre = [(n - 1) / 2.0 for n in extent]
        # Rounded so that at matching spacing model pixels sit exactly on voxels.
        start = tuple(float(np.round(centre[c] - (size[c] - 1) / 2.0 * step[c])) for c in (0, 1))
        return cls(axis, size, float(spacing_mm), shape, tuple(map(float, spacing)),
                   tuple(map(float, image.GetOrigin())), tuple(map(float, image.GetDirection())),
                   perm, flips, start)

    # ---- derived --------------------------------------------------------------------
    @property
    def n_slices(self) -> int:
        return self.shape[self.perm[0]]

    @property
    def step(self) -> tuple[float, float]:
        return tuple(self.spacing_mm / self.voxel_spacing[2 - self.perm[c]] for c in (1, 2))

    @property
    def normal_ras(self) -> tuple[float, float, float]:
        column = _ras_columns(self.direction)[:, 2 - self.perm[0]] * (-1.0 if self.flips[0] else 1.0)
        return tuple(float(v) for v in column)

    def slice_index(self, n: int | np.ndarray) -> np.ndarray | int:
        """Baseline voxel index along the slice axis of stack position ``n``."""
        return self.n_slices - 1 - n if self.flips[0] else n

    def center_ras(self) -> np.ndarray:
        """(N, 3) RAS centre of the model window on every slice."""
        n = np.arange(self.n_slices, dtype=float)
        r = self.start[0] + (self.size[0] - 1) / 2.0 * self.step[0]
        c = self.start[1] + (self.size[1] - 1) / 2.0 * self.step[1]
        canon = [n, np.full_like(n, r), np.full_like(n, c)]
        array_idx = np.zeros((self.n_slices, 3))
        for ax in range(3):
            x = canon[ax]
            array_idx[:, self.perm[ax]] = self.shape[self.perm[ax]] - 1 - x if self.flips[ax] else x
        ijk = array_idx[:, ::-1] * np.asarray(self.voxel_spacing)
        lps = np.asarray(self.origin) + ijk @ np.asarray(self.direction).reshape(3, 3).T
        return lps @ LPS_TO_RAS.T

    # ---- resampling -----------------------------------------------------------------
    def to_slices(self, volume: np.ndarray, order: int = 1) -> np.ndarray:
        """(K, J, I) baseline-grid array -> (N, H, W) model slices (0 outside the volume)."""
        volume = np.asarray(volume)
        if volume.shape != self.shape:
            raise InputError(f"Volume shape {volume.shape} does not match the slice geometry {self.shape}.",
                             "Resample it onto the baseline grid first.")
        canon = _canonical(volume, self.perm, self.flips)
        return _resample(canon, (1.0, *self.step), (0.0, *self.start), (self.n_slices, *self.size), order)

    def to_slice(self, volume: np.ndarray, n: int, order: int = 1) -> np.ndarray:
        """Model slice ``n`` (H, W) of a (K, J, I) array: ``to_slices(volume, order)[n]`` without the others.

        Why: Accept needs the one slice the user painted, not the whole stack.
        """
        volume = np.asarray(volume)
        if volume.shape != self.shape or not 0 <= int(n) < self.n_slices:
            raise InputError(f"Volume shape {volume.shape} or slice {n} does not match the slice geometry "
                             f"{self.shape} ({self.n_slices} slices).", "Resample it onto the baseline grid first.")
        canon = _canonical(volume, self.perm, self.flips)[int(n):int(n) + 1]
        return _resample(canon, (1.0, *self.step), (0.0, *self.start), (1, *self.size), order)[0]

    def to_volume(self, slices: np.ndarray, order: int = 1) -> np.ndarray:
        """(N, H, W) model slices -> (K, J, I) baseline-grid array (0 outside the window)."""
        slices = np.asarray(slices)
        if slices.shape != (self.n_slices, *self.size):
            raise InputError(f"Slices of shape {slices.shape} do not match the geometry "
                             f"({self.n_slices}, {self.size[0]}, {self.size[1]}).",
                             "Use the geometry the slices were made with.")
        step = self.step
        canon_shape = (self.n_slices, self.shape[self.perm[1]], self.shape[self.perm[2]])
        canon = _resample(slices, (1.0, 1.0 / step[0], 1.0 / step[1]),
                          (0.0, -self.start[0] / step[0], -self.start[1] / step[1]), canon_shape, order)
        return np.ascontiguousarray(_uncanonical(canon, self.perm, self.flips))

    # ---- persistence ----------------------------------------------------------------
    def to_dict(self) -> dict:
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: dict) -> "SliceGeometry":
        try:
            return cls(axis=str(d["axis"]), size=tuple(int(v) for v in d["size"]),
                       spacing_mm=float(d["spacing_mm"]), shape=tuple(int(v) for v in d["shape"]),
                       voxel_spacing=tuple(float(v) for v in d["voxel_spacing"]),
                       origin=tuple(float(v) for v in d["origin"]),
                       direction=tuple(float(v) for v in d["direction"]),
                       perm=tuple(int(v) for v in d["perm"]), flips=tuple(bool(v) for v in d["flips"]),
                       start=tuple(float(v) for v in d["start"]))
        except (KeyError, TypeError, ValueError) as err:
            raise InputError(f"Slice geometry record is incomplete or damaged ({err}).",
                             "Prepare the case again to rebuild it.") from None


@dataclass
class CaseSlices:
    case_id: str
    images: np.ndarray  # (N, 3, H, W) float32: baseline, registered follow-up, difference
    foreground: np.ndarray  # (N, H, W) bool
    provenance: list[SliceProvenance]
    geometry: SliceGeometry
    labels: np.ndarray | None = None  # (N, H, W) uint8 new-lesion mask, when known


def pair_slices(baseline: sitk.Image, followup_registered: sitk.Image, foreground: sitk.Image, case_id: str, *,
                axis: str = "axial", size: tuple[int, int] | int = (256, 256), spacing_mm: float = 1.0,
                labels: sitk.Image | np.ndarray | None = None) -> CaseSlices:
    """Every baseline slice along ``axis`` as a (baseline, follow-up, difference) triple."""
    for name, img in (("registered follow-up", followup_registered), ("foreground mask", foreground)):
        if not same_grid(img, baseline):
            raise InputError(f"The {name} is not on the baseline grid.", "Resample it onto the baseline first.")
    fg_vol = sitk.GetArrayViewFromImage(foreground) > 0
    geom = SliceGeometry.for_image(baseline, axis, size, spacing_mm, fg_vol)
    b = geom.to_slices(sitk.GetArrayViewFromImage(baseline).astype(np.float32, copy=False))
    f = geom.to_slices(sitk.GetArrayViewFromImage(followup_registered).astype(np.float32, copy=False))
    images = np.empty((geom.n_slices, 3, *geom.size), np.float32)
    images[:, 0], images[:, 1] = b, f
    np.subtract(f, b, out=images[:, 2])
    del b, f
    fg = geom.to_slices(fg_vol, order=0)
    lab = None
    if labels is not None:
        lab_vol = sitk.GetArrayViewFromImage(labels) if isinstance(labels, sitk.Image) else np.asarray(labels)
        lab = (geom.to_slices(lab_vol > 0, order=0)).astype(np.uint8)
    centres = geom.center_ras()
    normal = geom.normal_ras
    fractions = fg.mean(axis=(1, 2))
    prov = [SliceProvenance(case_id, int(geom.slice_index(n)), tuple(float(v) for v in centres[n]), normal,
                            float(fractions[n])) for n in range(geom.n_slices)]
    return CaseSlices(case_id, images, fg, prov, geom, lab)


def canonical_axes(direction: tuple[float, ...], axis: str) -> tuple[tuple[int, int, int], tuple[bool, bool, bool]]:
    """Array axes (slice, row, column) and their flips for ``axis``, from the direction matrix."""
    ras = _ras_columns(direction)  # column v = RAS direction of voxel axis v (i, j, k)
    targets = _VIEWS[axis]
    free = [0, 1, 2]
    voxel_axes, flips = [], []
    for target in targets[:2]:
        dots = [abs(float(ras[:, v] @ target)) for v in free]
        v = free.pop(int(np.argmax(dots)))
        voxel_axes.append(v)
    voxel_axes.append(free[0])
    for v, target in zip(voxel_axes, targets):
        flips.append(bool(ras[:, v] @ target < 0))
    return tuple(2 - v for v in voxel_axes), tuple(flips)


def _ras_columns(direction: tuple[float, ...]) -> np.ndarray:
    return LPS_TO_RAS @ np.asarray(direction, dtype=float).reshape(3, 3)


def _canonical(volume: np.ndarray, perm, flips) -> np.ndarray:
    view = np.transpose(volume, perm)
    return view[tuple(slice(None, None, -1) if f else slice(None) for f in flips)]


def _uncanonical(canon: np.ndarray, perm, flips) -> np.ndarray:
    view = canon[tuple(slice(None, None, -1) if f else slice(None) for f in flips)]
    return np.transpose(view, np.argsort(perm))


def _resample(volume: np.ndarray, scale, offset, shape, order: int) -> np.ndarray:
    """out[n, r, c] = volume[n*s0 + o0, r*s1 + o1, c*s2 + o2] (axis-aligned, so separable and fast)."""
    is_bool = volume.dtype == bool
    if is_bool:
        volume, order = volume.view(np.uint8), 0
    out_dtype = volume.dtype if order == 0 else np.float32
    if volume.dtype not in (np.float32, np.float64) and order > 0:
        volume = volume.astype(np.float32)
    out = ndimage.affine_transform(volume, np.asarray(scale, float), offset=np.asarray(offset, float),
                                   output_shape=tuple(int(v) for v in shape), output=out_dtype, order=order,
                                   mode="constant", cval=0.0, prefilter=False)
    return out.astype(bool) if is_bool else out
