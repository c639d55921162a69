"""Real anatomy that ships inside installed packages, as tissue maps on a grid.

Sources (no download at run time):

* ``mni``: nilearn's bundled MNI ICBM152 2009a template (T1, GM and WM
  probabilities, 197x233x189 at 1 mm); CSF = filled brain mask - GM - WM.
* ``colin27``: Debian's ``mricron-data`` Colin27 (``ch2bet.nii.gz``, one real
  subject, 181x217x181 at 1 mm), installed system-wide or by ``scripts/fetch_colin27.sh``
  into the environment's ``share/mricron/templates`` (no root); tissue maps come from a
  3-class Otsu split of the brain-extracted T1 with a linear ramp between class means
  (partial volume).
* ``pycortex_s1``: the real single-subject T1 in the pycortex 1.4.0 sdist (full head,
  256^3 at 1 mm; fetched by ``Testing/benchmarks/setup_pycortex_anatomy.sh``, never
  committed); brain mask by affine MNI template fit (``anatomy_extract``), then N4 and
  the same Otsu tissue maps as Colin27.

Every map is cropped to the brain (plus a margin) and, for coarser spacings,
smoothed then resampled *before* anything else runs, so a 2 mm cohort is fast.
Arrays are (K, J, I) = (z, y, x) float32 in [0, 1]; geometry is SimpleITK's (LPS).
"""

from __future__ import annotations

import functools
import os
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from LongitudinalALLib.core.errors import InputError

#: every anatomy the generator knows, in the order it prefers them
ANATOMIES: tuple[str, ...] = ("mni", "colin27", "pycortex_s1")
#: what ``make-cohort`` uses unless told otherwise
DEFAULT_ANATOMIES: tuple[str, ...] = ("mni", "colin27")
PYCORTEX_ENV = "LONGITUDINAL_AL_PYCORTEX_T1"
#: where the set-up script puts it in a source checkout (the package sits two levels below the root)
PYCORTEX_DEFAULT = (Path(__file__).resolve().parents[3] / "Testing" / "benchmarks" / "results" / "tmp" / "anatomy"
                    / "pycortex_S1_raw.nii.gz")
PYCORTEX_INSTALL_HINT = (
    "run `bash Testing/benchmarks/setup_pycortex_anatomy.sh` in the source checkout, or set "
    f"{PYCORTEX_ENV} to pycortex's filestore/db/S1/anatomicals/raw.nii.gz"
)
COLIN27_ENV = "LONGITUDINAL_AL_COLIN27_DIR"
#: Debian's install, then the environment's own copy (``scripts/fetch_colin27.sh``, no root)
COLIN27_DIRS: tuple[str, ...] = ("/usr/share/mricron/templates", "/usr/share/mricron",
                                 str(Path(sys.prefix) / "share" / "mricron" / "templates"))
COLIN27_INSTALL_HINT = (
    "install it with `sudo apt-get install -y mricron-data` (Debian/Ubuntu), or without root with "
    f"`bash scripts/fetch_colin27.sh` in the source checkout, or set {COLIN27_ENV} to a folder holding "
    "ch2bet.nii.gz"
)
CROP_MARGIN_MM = 6.0


class AnatomyUnavailableWarning(UserWarning):
    """An optional anatomy source is not installed; the generator goes on without it."""


@dataclass(frozen=True)
class Anatomy:
    """Tissue probability maps of one real brain on one grid.

    ``gm``/``wm``/``csf``: (K, J, I) float32 in [0, 1], summing to <= 1 (0 outside);
    ``brain``: (K, J, I) bool. ``spacing``/``origin``/``direction`` are SimpleITK's (x, y, z, LPS).
    """

    name: str
    source: str
    gm: np.ndarray
    wm: np.ndarray
    csf: np.ndarray
    brain: np.ndarray
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: tuple[float, ...]

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.gm.shape)  # type: ignore[return-value]

    def to_image(self, array: np.ndarray) -> sitk.Image:
        """Wrap a (K, J, I) array in this anatomy's geometry."""
        img = sitk.GetImageFromArray(array)
        img.SetSpacing(self.spacing)
        img.SetOrigin(self.origin)
        img.SetDirection(self.direction)
        return img


def _nilearn_data_dir() -> Path:
    """nilearn's bundled data folder, found without importing nilearn (that import takes seconds)."""
    import importlib.util

    spec = importlib.util.find_spec("nilearn")
    if spec is None or not spec.submodule_search_locations:
        raise InputError("nilearn is not installed, so the MNI anatomy is missing.", "Run `pip install nilearn`.")
    return Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data"


def colin27_dir() -> Path | None:
    """The folder holding Colin27's ``ch2bet.nii.gz``, or None when it is not installed."""
    override = os.environ.get(COLIN27_ENV)
    candidates = (override,) if override else COLIN27_DIRS
    for folder in candidates:
        if folder and (Path(folder) / "ch2bet.nii.gz").is_file():
            return Path(folder)
    return None


def pycortex_t1_path() -> Path | None:
    """pycortex's S1 raw T1 (full head), or None when it has not been fetched."""
    path = Path(os.environ.get(PYCORTEX_ENV) or PYCORTEX_DEFAULT)
    return path if path.is_file() else None


def available_anatomies(requested: tuple[str, ...] | list[str] = DEFAULT_ANATOMIES) -> list[str]:
    """The requested anatomies that are installed; warns (with the install command) for the others."""
    unknown = [a for a in requested if a not in ANATOMIES]
    if unknown:
        raise InputError(f"Unknown anatomy {', '.join(unknown)!s}.",
                         f"Choose from: {', '.join(ANATOMIES)} (comma separated).")
    have = []
    for name in requested:
        if name == "colin27" and colin27_dir() is None:
            warnings.warn(
                f"Colin27 anatomy not found (looked in {os.environ.get(COLIN27_ENV) or ', '.join(COLIN27_DIRS)}): "
                f"{COLIN27_INSTALL_HINT}. Continuing with the other anatomies.",
                AnatomyUnavailableWarning, stacklevel=2)
            continue
        if name == "pycortex_s1" and pycortex_t1_path() is None:
            warnings.warn(f"pycortex S1 anatomy not found: {PYCORTEX_INSTALL_HINT}. Continuing with the other "
                          "anatomies.", AnatomyUnavailableWarning, stacklevel=2)
            continue
        if name not in have:
            have.append(name)
    if not have:
        have = ["mni"]  # always installed with nilearn
    return have


def _read(path: Path) -> sitk.Image:
    if not path.is_file():
        raise InputError(f"Anatomy file {path} is missing.", "Reinstall nilearn / mricron-data.")
    return sitk.ReadImage(str(path), sitk.sitkFloat32)


def _filled_mask(mask: np.ndarray) -> np.ndarray:
    """Close small gaps and fill the ventricles/sulci so CSF counts as brain."""
    closed = ndimage.binary_closing(mask, structure=np.ones((3, 3, 3), bool), iterations=2)
    return ndimage.binary_fill_holes(closed)


def _load_mni() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, sitk.Image]:
    data = _nilearn_data_dir()
    t1 = _read(data / "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz")
    gm = sitk.GetArrayFromImage(_read(data / "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz")) / 255.0
    wm = sitk.GetArrayFromImage(_read(data / "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz")) / 255.0
    t1a = sitk.GetArrayFromImage(t1)
    brain = _filled_mask((t1a > 0.2 * 255 * 0.2) | (gm + wm > 0.5))
    return gm, wm, brain, t1a, t1


def _otsu_tissue_maps(t1: sitk.Image, inside: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(GM, WM) memberships (K, J, I) in [0, 1] of a brain-only T1: 3-class Otsu (CSF < GM < WM), then a
    linear ramp between class means, so a voxel halfway between two means is half of each (partial volume)."""
    t1a = sitk.GetArrayFromImage(t1)
    otsu = sitk.OtsuMultipleThresholdsImageFilter()  # deterministic (no k-means restarts)
    otsu.SetNumberOfThresholds(2)
    otsu.SetNumberOfHistogramBins(128)
    brain_img = sitk.GetImageFromArray(inside.astype(np.uint8))
    brain_img.CopyInformation(t1)
    otsu.Execute(sitk.Mask(t1, brain_img))
    lo, hi = otsu.GetThresholds()
    vals = t1a[inside]
    m_csf, m_gm, m_wm = (float(vals[vals < lo].mean()), float(vals[(vals >= lo) & (vals < hi)].mean()),
                         float(vals[vals >= hi].mean()))
    wm = np.clip((t1a - m_gm) / (m_wm - m_gm), 0, 1)
    gm_up = np.clip((t1a - m_csf) / (m_gm - m_csf), 0, 1)
    gm = np.where(t1a >= m_gm, 1 - wm, gm_up)
    return gm * inside, wm * inside


def _load_colin27() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, sitk.Image]:
    folder = colin27_dir()
    if folder is None:
        raise InputError("Colin27 anatomy is not installed.", COLIN27_INSTALL_HINT + ".")
    t1 = _read(folder / "ch2bet.nii.gz")
    t1a = sitk.GetArrayFromImage(t1)
    inside = t1a > 0
    gm, wm = _otsu_tissue_maps(t1, inside)
    return gm, wm, _filled_mask(inside), t1a, t1


def _load_pycortex_s1() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, sitk.Image]:
    from LongitudinalALLib.cohort.anatomy_extract import template_brain_mask

    path = pycortex_t1_path()
    if path is None:
        raise InputError("The pycortex S1 anatomy has not been fetched.", PYCORTEX_INSTALL_HINT + ".")
    head = sitk.DICOMOrient(_read(path), "LPS")  # axial array order, as the grids expect (S1 is stored coronal)
    _, _, mni_brain, _, mni_t1 = _load_mni()
    brain = template_brain_mask(head, mni_t1, mni_brain)
    # N4 inside the brain on a 4 mm copy; the bias field is applied at full resolution
    brain_img = sitk.GetImageFromArray(brain.astype(np.uint8))
    brain_img.CopyInformation(head)
    small, small_mask = sitk.Shrink(head, [4] * 3), sitk.Shrink(brain_img, [4] * 3)
    n4 = sitk.N4BiasFieldCorrectionImageFilter()
    n4.SetMaximumNumberOfIterations([30, 20])
    n4.Execute(small, small_mask)
    t1 = sitk.Mask(head / sitk.Exp(n4.GetLogBiasFieldAsImage(head)), brain_img)
    gm, wm = _otsu_tissue_maps(t1, brain)
    return gm, wm, _filled_mask(brain), sitk.GetArrayFromImage(t1), t1


@functools.lru_cache(maxsize=4)
def load_anatomy(name: str, spacing_mm: float = 1.0) -> Anatomy:
    """Tissue maps of ``name`` cropped to the brain and resampled to isotropic ``spacing_mm``.

    Cached: the arrays are read-only, copy before editing.
    """
    if spacing_mm < 0.5 or spacing_mm > 4.0:
        raise InputError(f"Spacing {spacing_mm} mm is outside 0.5-4 mm.", "Use e.g. --spacing 1 or --spacing 2.")
    if name == "mni":
        gm, wm, brain, _, ref = _load_mni()
        source = "nilearn MNI ICBM152 2009a (sym) T1/GM/WM, bundled with nilearn"
    elif name == "colin27":
        gm, wm, brain, _, ref = _load_colin27()
        source = f"Colin27 ch2bet.nii.gz from mricron-data ({colin27_dir()}), 3-class Otsu tissue maps"
    elif name == "pycortex_s1":
        gm, wm, brain, _, ref = _load_pycortex_s1()
        source = (f"pycortex 1.4.0 S1 raw T1 ({pycortex_t1_path()}), brain by affine MNI template fit, N4, "
                  "3-class Otsu tissue maps")
    else:
        raise InputError(f"Unknown anatomy {name!r}.", f"Choose from: {', '.join(ANATOMIES)}.")
    csf = np.clip(brain - gm - wm, 0, 1)
    # crop to the brain + margin
    idx = np.argwhere(brain)
    margin = int(np.ceil(CROP_MARGIN_MM / min(ref.GetSpacing())))
    lo = np.maximum(idx.min(0) - margin, 0)
    hi = np.minimum(idx.max(0) + margin + 1, brain.shape)
    sl = tuple(slice(a, b) for a, b in zip(lo, hi))
    origin = ref.TransformIndexToPhysicalPoint([int(v) for v in lo[::-1]])
    maps = [np.ascontiguousarray(m[sl], dtype=np.float32) for m in (gm, wm, csf, brain.astype(np.float32))]
    src_spacing = np.array(ref.GetSpacing())
    if not np.allclose(src_spacing, spacing_mm):
        maps, origin, size = _resample(maps, src_spacing, origin, ref.GetDirection(), spacing_mm)
        spacing = (float(spacing_mm),) * 3
    else:
        spacing = tuple(float(s) for s in src_spacing)
    gm_r, wm_r, csf_r, brain_r = maps
    brain_b = brain_r >= 0.5
    arrays = [np.clip(m, 0, 1).astype(np.float32) * brain_b for m in (gm_r, wm_r, csf_r)]
    for a in arrays + [brain_b]:
        a.setflags(write=False)
    return Anatomy(name=name, source=source, gm=arrays[0], wm=arrays[1], csf=arrays[2], brain=brain_b,
                   spacing=spacing, origin=tuple(float(o) for o in origin), direction=tuple(ref.GetDirection()))


def _resample(maps: list[np.ndarray], src_spacing: np.ndarray, origin, direction, spacing_mm: float):
    """Anti-alias (Gaussian, sigma from the spacing ratio) then linearly resample onto the coarser grid."""
    shape = maps[0].shape
    extent = np.array(shape[::-1]) * src_spacing  # x, y, z
    size = [int(np.ceil(e / spacing_mm)) for e in extent]
    # keep the grid centre fixed
    centre_shift = (extent - np.array(size) * spacing_mm) / 2.0 + (spacing_mm - src_spacing) / 2.0
    d = np.array(direction).reshape(3, 3)
    new_origin = tuple(np.array(origin) + d @ centre_shift)
    out = []
    for m in maps:
        sigma = np.sqrt(np.maximum((spacing_mm / src_spacing) ** 2 - 1, 0)) / 2.355
        sm = ndimage.gaussian_filter(m, sigma=sigma[::-1]) if np.any(sigma > 0) else m
        img = sitk.GetImageFromArray(sm.astype(np.float32))
        img.SetSpacing(tuple(float(s) for s in src_spacing))
        img.SetOrigin(tuple(float(o) for o in origin))
        img.SetDirection(tuple(direction))
        res = sitk.Resample(img, size, sitk.Transform(), sitk.sitkLinear, new_origin,
                            (float(spacing_mm),) * 3, tuple(direction), 0.0, sitk.sitkFloat32)
        out.append(sitk.GetArrayFromImage(res))
    return out, new_origin, size
