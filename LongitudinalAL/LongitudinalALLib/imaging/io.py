"""Load, validate and save 3D scans with SimpleITK, keeping spacing, origin and direction.

Supported: NIfTI (.nii, .nii.gz), NRRD (.nrrd, .nhdr), MetaImage (.mha, .mhd) and a
DICOM series given as its folder (or one of its files). Anything a user can get
wrong (missing file, wrong format, 4D, RGB, empty, constant, NaN, no overlap)
raises :class:`InputError` naming the file and what to do.
"""

from __future__ import annotations

import gzip
import os
import re
import shutil
import tempfile
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from LongitudinalALLib.core.atomic import atomic_path
from LongitudinalALLib.core.errors import InputError
from LongitudinalALLib.imaging.dicom_checks import has_dicom_magic
from LongitudinalALLib.imaging.dicom_series import read_dicom_series
from LongitudinalALLib.imaging.nifti_orientation import check_nifti_orientation
from LongitudinalALLib.imaging.read_guard import IMAGE_IOS, check_declared_size, guard_image_file, require_regular_file
from LongitudinalALLib.imaging.read_guard import damaged as _damaged

SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")
DICOM_SUFFIXES = (".dcm", ".ima", "")
_SPLIT_HEADERS = {".mhd": (".raw", ".zraw"), ".nhdr": (".raw", ".raw.gz")}
_LABEL_MAP_VALUES = 4  # at most this many distinct integer values: a label map, not a scan
_FORMATS = "NIfTI (.nii/.nii.gz), NRRD (.nrrd), MetaImage (.mha/.mhd) or a DICOM series folder"


def image_suffix(path: str | os.PathLike) -> str:
    """The recognised suffix of ``path`` ('.nii.gz', '.nrrd', ...) or '' if none."""
    name = Path(path).name.lower()
    return next((s for s in SUFFIXES if name.endswith(s)), "")


def load_image(path: str | os.PathLike, *, name: str | None = None, series: Sequence[str] = (),
               notes: list[str] | None = None, allow_constant: bool = False) -> sitk.Image:
    """Read one 3D scalar scan and validate it (see :func:`read_image`, :func:`validate_image`)."""
    image = read_image(path, name=name, series=series, notes=notes)
    validate_image(image, name or str(path), allow_constant=allow_constant)
    return image


def load_scan(path: str | os.PathLike, *, series: Sequence[str] = (), notes: list[str] | None = None) -> sitk.Image:
    """:func:`load_image` for a scan given by the user: also refuses label maps (a common mix-up)."""
    image = load_image(path, series=series, notes=notes)
    reject_label_map(image, str(path))
    return image


def read_image(path: str | os.PathLike, *, name: str | None = None, series: Sequence[str] = (),
               notes: list[str] | None = None) -> sitk.Image:
    """Read a volume without judging its values (masks may be empty).

    A 4D file whose fourth dimension has length 1 is accepted as 3D. For a DICOM
    folder, ``series`` (UIDs) picks among several series; the choice is added to ``notes``.
    A truncated NIfTI is refused: ITK would fill the missing part with zeros. Before ITK
    reads, :func:`read_guard.guard_image_file` refuses pipes and devices, headers naming data
    outside their own folder, and declared sizes over the cap or beyond the bytes on disk.
    """
    path = Path(path)
    label = name or str(path)
    if not path.exists():
        raise InputError(f"{label}: file or folder not found.", "Check the path and spelling.")
    try:
        if path.is_dir():
            image = read_dicom_series(path, label, series=series, notes=notes)
        elif not path.is_file():
            require_regular_file(path, label)
        elif suffix := image_suffix(path):
            guard_image_file(path, suffix, label)
            if suffix in (".nii", ".nii.gz"):
                _check_nifti(path, label)
            image = _read_file(path, IMAGE_IOS[suffix])
        elif path.suffix.lower() in DICOM_SUFFIXES and has_dicom_magic(path):
            image = read_dicom_series(path.parent, label, member=path)
        else:
            raise InputError(f"{label}: unsupported file format '{path.suffix or path.name}'.",
                             f"Convert it to {_FORMATS}.")
    except RuntimeError as err:
        raise InputError(f"{label}: cannot be read ({_first_line(err)}).",
                         f"Check the file is complete and is {_FORMATS}; re-export it if needed.") from None
    if image.GetDimension() == 4 and image.GetSize()[3] == 1:
        size = list(image.GetSize())
        image = sitk.Extract(image, size[:3] + [0], [0, 0, 0, 0])
    return image


def _read_file(path: Path, image_io: str) -> sitk.Image:
    """ITK's reader for the format the suffix names, never one guessed from the content."""
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.SetImageIO(image_io)
    return reader.Execute()


def _nonfinite_error(label: str, bad: int) -> InputError:
    return InputError(f"{label}: contains {bad} NaN or infinite voxel values.",
                      "Re-export the file, or replace them (e.g. with 0) and save it again.")


def _check_nifti(path: Path, label: str) -> None:
    """Refuse a NIfTI whose voxel data is shorter than its header says, and NaN/Inf floats.

    ITK's reader fills a truncated file with zeros and turns NaN/Inf into 0, silently.
    The data is streamed once (flat memory); a ``.gz`` is decompressed to its end,
    which also checks its CRC.
    """
    import nibabel

    try:
        nii = nibabel.load(str(path))
    except (EOFError, zlib.error, gzip.BadGzipFile) as err:
        raise _damaged(label, f"its header cannot be read: {err}") from None
    except Exception:  # not a NIfTI at all: SimpleITK's reader reports it with the usual message
        return
    check_nifti_orientation(path, type(nii.header), label)
    dtype = np.dtype(nii.get_data_dtype())
    check_declared_size(int(np.prod(nii.shape, dtype=object)) * dtype.itemsize, list(nii.shape), label)
    expected = int(nii.dataobj.offset) + int(np.prod(nii.shape, dtype=np.int64)) * dtype.itemsize  # where nibabel reads
    try:
        stored = _stored_bytes(path)
        if stored < expected:
            raise _damaged(label, f"{stored} of the {expected} bytes its header announces")
        if dtype.kind != "f":
            return  # integer voxels cannot hold NaN or Inf
        bad = int(np.count_nonzero(~np.isfinite(np.asanyarray(nii.dataobj))))
    except InputError:
        raise  # already the one line (an InputError is a ValueError: never wrap it twice, review 2 N13)
    except (EOFError, zlib.error, gzip.BadGzipFile, ValueError) as err:
        raise _damaged(label, str(err) or type(err).__name__) from None
    if bad:
        raise _nonfinite_error(label, bad)


def _stored_bytes(path: Path) -> int:
    """Bytes of the (decompressed) file, read in chunks."""
    if image_suffix(path) != ".nii.gz":
        return path.stat().st_size
    total = 0
    with gzip.open(path, "rb") as fh:
        while chunk := fh.read(1 << 22):
            total += len(chunk)
    return total


def reject_label_map(image: sitk.Image, name: str) -> None:
    """A scan holds many grey values; a label map a handful of integers (0/1, 0/255...)."""
    array = sitk.GetArrayViewFromImage(image)
    sample = array.ravel()[:: max(1, array.size // 20000)]
    if len(np.unique(sample)) > _LABEL_MAP_VALUES:
        return
    values = np.unique(array)
    if len(values) <= _LABEL_MAP_VALUES and np.all(values == np.round(values)):
        shown = ", ".join(f"{v:g}" for v in values)
        raise InputError(f"{name}: looks like a label map (its only values are {shown}), not a scan.",
                         "Give the MRI/CT scan itself; lesion masks go to `longitudinal-al label --mask`.")


def validate_image(image: sitk.Image, name: str = "image", *, allow_constant: bool = False) -> None:
    """Reject images the pipeline cannot use, with a message naming ``name`` and the fix.

    ``allow_constant``: masks may be empty (all 0).
    """
    dim = image.GetDimension()
    if dim == 4:
        raise InputError(f"{name}: is 4D ({image.GetSize()[3]} volumes, e.g. a time series).",
                         "Give one 3D volume: extract the time point you want (e.g. in Slicer or with fslroi).")
    if dim != 3:
        raise InputError(f"{name}: is {dim}D, a 3D volume is needed.", "Give the whole 3D scan, not one slice.")
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(f"{name}: has {image.GetNumberOfComponentsPerPixel()} components per voxel "
                         "(colour or vector image).", "Give a single-channel (grey-value) scan.")
    if min(image.GetSize()) == 0 or image.GetNumberOfPixels() == 0:
        raise InputError(f"{name}: is empty (size {image.GetSize()}).", "Re-export the scan; the file holds no voxels.")
    if any(s <= 0 or not np.isfinite(s) for s in image.GetSpacing()):
        raise InputError(f"{name}: has invalid voxel spacing {image.GetSpacing()}.", "Fix the header spacing.")
    direction = np.asarray(image.GetDirection(), float).reshape(dim, dim)
    if not np.allclose(direction.T @ direction, np.eye(dim), atol=1e-3):
        raise InputError(f"{name}: its direction matrix is not orthonormal (skewed or scaled axes), so voxel "
                         "positions are ambiguous.", "Fix the header (re-export from the scanner, or resample "
                         "it in Slicer with 'Resample Scalar Volume') and load it again.")
    array = sitk.GetArrayViewFromImage(image)
    if array.dtype.kind == "f":
        bad = int(array.size - np.count_nonzero(np.isfinite(array)))
        if bad:
            raise _nonfinite_error(name, bad)
    if not allow_constant and array.min() == array.max():
        raise InputError(f"{name}: is constant (every voxel is {array.flat[0]}).",
                         "It holds no image: check that the right file was chosen.")


def save_image(image: sitk.Image, path: str | os.PathLike, *, compress: bool = True) -> Path:
    """Write ``image`` atomically; the format follows the suffix of ``path``."""
    path = Path(path)
    suffix = image_suffix(path)
    if not suffix:
        raise InputError(f"{path}: unsupported output format.", f"Use one of {', '.join(SUFFIXES)}.")
    if suffix in _SPLIT_HEADERS:
        _save_split(image, path, compress)
        return path
    with atomic_path(path) as tmp:
        sitk.WriteImage(image, str(tmp), compress)
    return path


def _save_split(image: sitk.Image, path: Path, compress: bool) -> None:
    """Header + data file pair: write both in a private folder, move the data first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(prefix=".save.", dir=path.parent))
    try:
        sitk.WriteImage(image, str(tmp_dir / path.name), compress)
        header = tmp_dir / path.name
        for item in sorted(tmp_dir.iterdir(), key=lambda p: p == header):
            os.replace(item, path.parent / item.name)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


def physical_bounds(image: sitk.Image) -> tuple[np.ndarray, np.ndarray]:
    """Axis-aligned (LPS) box (lo, hi) covering every voxel of ``image``, in mm."""
    size = np.asarray(image.GetSize(), dtype=float)
    corners = [image.TransformContinuousIndexToPhysicalPoint(tuple(-0.5 + c * size))
               for c in np.ndindex(2, 2, 2)]
    pts = np.asarray(corners)
    return pts.min(axis=0), pts.max(axis=0)


#: the one overlap rule (CLI and Slicer): a pair shares at least this fraction of the smaller scan's box
MIN_OVERLAP = 0.05


def box_overlap(lo_a, hi_a, lo_b, hi_b) -> float:
    """Fraction of the smaller of two boxes (corners in mm, one frame: LPS or RAS) shared with the other."""
    lo_a, hi_a, lo_b, hi_b = (np.asarray(v, dtype=float) for v in (lo_a, hi_a, lo_b, hi_b))
    inter = np.clip(np.minimum(hi_a, hi_b) - np.maximum(lo_a, lo_b), 0, None)
    smaller = min(np.prod(np.maximum(hi_a - lo_a, 1e-6)), np.prod(np.maximum(hi_b - lo_b, 1e-6)))
    return float(np.prod(inter) / smaller)


def check_overlap(baseline: sitk.Image, followup: sitk.Image, *, baseline_name: str = "baseline",
                  followup_name: str = "follow-up") -> float:
    """Fraction of the smaller scan's box shared with the other; raise below :data:`MIN_OVERLAP`."""
    lo_b, hi_b = physical_bounds(baseline)
    lo_f, hi_f = physical_bounds(followup)
    fraction = box_overlap(lo_b, hi_b, lo_f, hi_f)
    if fraction < MIN_OVERLAP:
        gap = float(np.linalg.norm((lo_b + hi_b) / 2 - (lo_f + hi_f) / 2))
        raise InputError(f"{baseline_name} and {followup_name} do not overlap in physical space "
                         f"({fraction:.0%} of the smaller scan is shared; their centres are {gap:.0f} mm apart).",
                         "Check they are scans of the same patient; if the headers' origins differ, "
                         "pre-align the follow-up (e.g. Slicer Transforms module) or fix the origin.")
    return fraction


def same_grid(a: sitk.Image, b: sitk.Image, tolerance: float = 1e-3) -> bool:
    """True when ``a`` and ``b`` share size, spacing, origin and direction."""
    return (a.GetSize() == b.GetSize()
            and np.allclose(a.GetSpacing(), b.GetSpacing(), atol=tolerance)
            and np.allclose(a.GetOrigin(), b.GetOrigin(), atol=tolerance * max(1.0, max(a.GetSpacing())))
            and np.allclose(a.GetDirection(), b.GetDirection(), atol=tolerance))


def _first_line(err: Exception) -> str:
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    return lines[-1] if lines else type(err).__name__


def check_output_dir(path: str | os.PathLike, option: str = "--out") -> Path:
    """Prove ``path`` can be created and written, before any long computation; nothing is left behind.

    A file in the way, a read-only or full disk, or missing permissions end in
    one :class:`InputError` naming the path and the fix.
    """
    from LongitudinalALLib.core.os_errors import user_os_error

    out = Path(path).absolute()
    existing = next(p for p in (out, *out.parents) if p.exists())
    if not existing.is_dir():
        where = "is a file" if existing == out else f"lies below the file {existing}"
        raise InputError(f"{option} {path}: {where}, not a folder.",
                         f"Choose a folder for {option} (a new or existing one), or move that file away.")
    try:
        fd, probe = tempfile.mkstemp(prefix=".write-test.", dir=existing)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        mapped = user_os_error(err, existing)
        if mapped is None:
            raise
        raise InputError(f"{option} {path}: cannot write there ({mapped.problem})", mapped.fix) from None
    return out


def case_id_from_path(path: str | Path) -> str:
    """A case id from a scan's file name: suffix dropped, characters unsafe in file names replaced by '_'."""
    name = Path(path).name
    name = name[: len(name) - len(image_suffix(name))]
    name = re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip("._-")
    return name[:128] or "case"
