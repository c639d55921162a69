"""Prepare one longitudinal pair: load -> validate -> N4 -> mask -> normalise -> register
-> resample -> histogram match -> difference -> slice pairs; and write the results.

Progress stages: "load", "n4", "mask", "registration", "pairing".
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from LongitudinalALLib.core import atomic
from LongitudinalALLib.core.errors import InputError
from LongitudinalALLib.core.progress import CancelToken, ProgressCallback, check_cancel, report
from LongitudinalALLib.imaging.brain_mask import fit_brain
from LongitudinalALLib.imaging.io import (
    SUFFIXES,
    case_id_from_path,
    check_overlap,
    load_image,
    read_image,
    same_grid,
    save_image,
    validate_image,
)
from LongitudinalALLib.imaging.pairing import CaseSlices, pair_slices
from LongitudinalALLib.imaging.prepare_checks import check_scan, load_transform, same_scan_warning
from LongitudinalALLib.imaging.preprocess import (
    foreground_mask,
    match_histogram,
    n4_correct,
    normalize_intensity,
    validate_mask,
)
from LongitudinalALLib.imaging.registration.pipeline import RegistrationQC, RegistrationSettings, register
from LongitudinalALLib.imaging.registration.qc import coverage

log = logging.getLogger(__name__)

MODALITIES = ("mri", "ct")
OUTPUT_FILES = {
    "baseline": "baseline_preprocessed.nii.gz",
    "followup_registered": "followup_registered.nii.gz",
    "difference": "difference.nii.gz",
    "foreground": "foreground_mask.nii.gz",
    "transform": "followup_to_baseline.tfm",
    "qc": "qc.json",
    "geometry": "slice_geometry.json",
}
#: the same files in a Slicer work folder (saved scenes carry these names, so they stay)
SCENE_FILES = {**OUTPUT_FILES, "baseline": "baseline.nrrd", "followup_registered": "followup_registered.nrrd",
               "difference": "difference.nrrd", "foreground": "foreground.nrrd", "transform": "transform.tfm"}


@dataclass
class PrepareOptions:
    modality: str = "mri"
    n4: bool | None = None  # None: on for MRI, off for CT
    mask: sitk.Image | str | None = None  # baseline foreground; None: automatic
    deformable: bool = False
    axis: str = "axial"
    size: int = 256
    spacing_mm: float = 1.0
    seed: int = 0
    #: follow-up -> baseline resampling transform (path or sitk.Transform) used as it is, without
    #: registering: e.g. prepare's .tfm corrected in Slicer's Transforms module
    initial_transform: sitk.Transform | str | Path | None = None

    @property
    def use_n4(self) -> bool:
        return self.modality == "mri" if self.n4 is None else bool(self.n4)


@dataclass
class PreparedPair:
    case_id: str
    baseline: sitk.Image  # preprocessed, normalised float32
    followup_registered: sitk.Image  # on the baseline grid, histogram-matched float32
    difference: sitk.Image  # follow-up - baseline, float32
    #: UInt8 on the baseline grid: the brain slices are scored in (baseline_foreground), inside the
    #: follow-up's field of view (in_followup_view)
    foreground: sitk.Image
    transform: sitk.Transform  # follow-up -> baseline resampling transform (baseline point -> follow-up point)
    qc: RegistrationQC
    slices: CaseSlices
    seconds: dict[str, float] = field(default_factory=dict)
    #: how the foreground was found: {"method": "template" | "threshold" | "user", ...} (written to qc.json)
    foreground_info: dict = field(default_factory=dict)


def prepare_pair(baseline: sitk.Image | str | Path, followup: sitk.Image | str | Path,
                 options: PrepareOptions | None = None, *, case_id: str | None = None,
                 labels: sitk.Image | str | Path | None = None, progress: ProgressCallback | None = None,
                 cancel: CancelToken | None = None) -> PreparedPair:
    """Run the whole preparation of one pair (paths or SimpleITK images)."""
    opt = options or PrepareOptions()
    if opt.modality not in MODALITIES:
        raise InputError(f"Unknown modality '{opt.modality}'.", f"Use one of {', '.join(MODALITIES)}.")
    seconds: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[stage] = seconds.get(stage, 0.0) + now - clock
        clock = now

    report(progress, "load", 0.0)
    base = _as_image(baseline, "baseline")
    report(progress, "load", 0.4)
    foll = _as_image(followup, "follow-up")
    check_scan(base, _name(baseline, "baseline"))
    check_scan(foll, _name(followup, "follow-up"))
    warnings = same_scan_warning(base, foll)
    initial = None if opt.initial_transform is None else load_transform(opt.initial_transform)
    if initial is None:
        check_overlap(base, foll)
    lab = None if labels is None else _as_image(labels, "labels", validate=False)
    if lab is not None and not same_grid(lab, base):
        raise InputError("labels: not on the baseline grid.", "Resample the label map onto the baseline scan.")
    user_mask = None
    if opt.mask is not None:
        user_mask = validate_mask(_as_image(opt.mask, "mask", validate=False), base, name=_name(opt.mask, "mask"))
    case_id = case_id or _case_id(baseline)
    report(progress, "load", 1.0)
    lap("load")

    check_cancel(cancel, "Preparation")
    base = sitk.Cast(base, sitk.sitkFloat32)
    foll = sitk.Cast(foll, sitk.sitkFloat32)
    if opt.use_n4:
        report(progress, "n4", 0.0, "baseline")
        base = n4_correct(base, user_mask)
        check_cancel(cancel, "Preparation")
        report(progress, "n4", 0.5, "follow-up")
        foll = n4_correct(foll)
    report(progress, "n4", 1.0, "done" if opt.use_n4 else "skipped")
    lap("n4")

    check_cancel(cancel, "Preparation")
    report(progress, "mask", 0.0)
    # the head (threshold) mask normalises and registers, as the bundled model was measured with;
    # the brain is what slices are scored, mapped and picked in
    base_mask = user_mask if user_mask is not None else foreground_mask(base, opt.modality)
    if user_mask is not None:
        brain, foreground_info = user_mask, {"method": "user"}
    else:
        brain, foreground_info = baseline_foreground(base, opt.modality, base_mask)
    report(progress, "mask", 0.5)
    foll_mask = foreground_mask(foll, opt.modality)
    base = normalize_intensity(base, base_mask)
    foll = normalize_intensity(foll, foll_mask)
    report(progress, "mask", 1.0)
    lap("mask")

    check_cancel(cancel, "Preparation")
    settings = RegistrationSettings(deformable=opt.deformable, seed=opt.seed)
    result = register(base, foll, baseline_mask=base_mask, followup_mask=foll_mask, settings=settings,
                      initial_transform=initial, progress=progress, cancel=cancel)
    result.qc.warnings.extend(warnings)
    foll_mask_on_base = sitk.Resample(foll_mask, base, result.transform, sitk.sitkNearestNeighbor, 0)
    match_mask = sitk.And(base_mask, sitk.Cast(foll_mask_on_base, sitk.sitkUInt8))
    if not sitk.GetArrayViewFromImage(match_mask).any():
        match_mask = base_mask
    registered = match_histogram(result.followup_resampled, base, match_mask, match_mask)
    difference = sitk.Subtract(registered, base)
    brain, foreground_info = in_followup_view(brain, foreground_info, coverage(foll, base, result.transform))
    lap("registration")

    check_cancel(cancel, "Preparation")
    report(progress, "pairing", 0.0)
    slices = pair_slices(base, registered, brain, case_id, axis=opt.axis, size=(opt.size, opt.size),
                         spacing_mm=opt.spacing_mm, labels=lab)
    report(progress, "pairing", 1.0, f"{slices.images.shape[0]} slices")
    lap("pairing")
    return PreparedPair(case_id, base, registered, difference, brain, result.transform, result.qc,
                        slices, seconds, foreground_info)


def baseline_foreground(image: sitk.Image, modality: str = "mri",
                        head: sitk.Image | None = None) -> tuple[sitk.Image, dict]:
    """(UInt8 mask on ``image``'s grid, how it was found): the automatic foreground slices are scored in.

    MRI: the brain by template fit (:mod:`imaging.brain_mask`); when the fit fails its checks,
    the threshold mask ``head`` (computed when not given) with one log line. CT: the threshold
    mask. ``image``: the baseline after N4 (MRI). Benchmarks measure this function.
    """
    head = head if head is not None else foreground_mask(image, modality)
    if modality != "mri":
        return head, {"method": "threshold"}
    try:
        fit = fit_brain(image, head)
    except RuntimeError as err:  # ITK gave up (e.g. too few samples in a tiny image)
        reason, seconds = f"the template fit did not converge ({str(err).strip().splitlines()[-1][:120]})", 0.0
    else:
        if fit.mask is not None:
            return fit.mask, {"method": "template", "litres": round(fit.litres, 3), "seconds": round(fit.seconds, 2)}
        reason, seconds = fit.reason, fit.seconds
    log.warning("Brain mask: %s; slices are scored in the threshold foreground (head) instead.", reason)
    return head, {"method": "threshold", "fallback": reason, "seconds": round(seconds, 2)}


def in_followup_view(brain: sitk.Image, info: dict, view: np.ndarray) -> tuple[sitk.Image, dict]:
    """(``brain`` (UInt8) where the follow-up holds data, ``info`` + the share of the brain left out).

    Why: outside the follow-up's field of view (a shorter or tilted slab) the registered
    follow-up is resampled padding, so the difference there is the baseline itself, not
    change: a slice cut obliquely by the follow-up's slab edge would look like the largest
    change of the pair. Only tissue both scans imaged is scored, mapped and picked; the
    baseline's own field of view is its grid. ``view`` (K, J, I) bool on the baseline grid
    (``registration.qc.coverage``). When the follow-up covers none of the brain the brain
    is kept (registration QC reports that pair) and the share says 1.0.
    """
    inside = sitk.GetArrayFromImage(brain) > 0
    kept = inside & view
    dropped = 1.0 - float(kept.sum()) / max(1, int(inside.sum()))
    info = {**info, "outside_followup_view": round(dropped, 4)}
    if not kept.any():
        log.warning("The follow-up's field of view holds none of the baseline's foreground; it is kept whole.")
        return brain, info
    if dropped > 0:
        log.info("%.1f %% of the foreground lies outside the follow-up's field of view: not scored.", 100 * dropped)
    out = sitk.GetImageFromArray(kept.astype(np.uint8))
    out.CopyInformation(brain)
    return out, info


def write_prepared(pair: PreparedPair, out_dir: str | Path, files: dict[str, str] = OUTPUT_FILES) -> dict[str, Path]:
    """Write volumes, the transform (.tfm, readable by Slicer), qc.json and the slice geometry.

    The one writer of a prepared folder; ``files`` names them (``OUTPUT_FILES`` for the
    command line, ``SCENE_FILES`` for the Slicer work folder).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {key: out / name for key, name in files.items()}
    save_image(pair.baseline, paths["baseline"])
    save_image(pair.followup_registered, paths["followup_registered"])
    save_image(pair.difference, paths["difference"])
    save_image(pair.foreground, paths["foreground"])
    with atomic.atomic_path(paths["transform"]) as tmp:
        sitk.WriteTransform(pair.transform, str(tmp))
    atomic.write_json(paths["qc"], {"case_id": pair.case_id, "registration": pair.qc.to_dict(),
                                    "seconds": pair.seconds, "n_slices": int(pair.slices.images.shape[0]),
                                    "foreground": pair.foreground_info})
    atomic.write_json(paths["geometry"], pair.slices.geometry.to_dict())
    return paths


def find_prepared(folder: str | Path, name: str) -> Path:
    """The file of volume ``name`` in a prepared folder: as ``write_prepared`` named it, else
    ``<name>.nii.gz``/``.nrrd``/... (a folder assembled by hand)."""
    folder = Path(folder)
    candidates = [folder / OUTPUT_FILES[name]] if name in OUTPUT_FILES else []
    candidates += [folder / f"{name}{suffix}" for suffix in SUFFIXES]
    for path in candidates:
        if path.is_file():
            return path
    raise InputError(f"{folder} has no {name} volume ({candidates[0].name}).",
                     "Point --pair to a folder written by `longitudinal-al prepare`.")


def read_prepared(folder: str | Path, case_id: str, *, axis: str = "axial", size: int = 256,
                  spacing_mm: float = 1.0) -> CaseSlices:
    """The reader beside :func:`write_prepared`: re-pair a prepared folder's baseline, registered
    follow-up and foreground into (N, 3, size, size) slices (no registration)."""
    vols = {n: read_image(find_prepared(folder, n)) for n in ("baseline", "followup_registered", "foreground")}
    return pair_slices(vols["baseline"], vols["followup_registered"], vols["foreground"], case_id,
                       axis=axis, size=(size, size), spacing_mm=spacing_mm)


def _as_image(value: sitk.Image | str | Path, name: str, validate: bool = True) -> sitk.Image:
    if isinstance(value, sitk.Image):
        if validate:
            validate_image(value, name)
        return value
    if isinstance(value, (str, Path)):
        if validate:
            return load_image(value)
        return load_image_unchecked(value)
    raise InputError(f"{name}: expected a file path or a SimpleITK image, got {type(value).__name__}.",
                     "Pass the path of the scan.")


def load_image_unchecked(path: str | Path) -> sitk.Image:
    """Masks and label maps may legitimately be constant (e.g. no lesion): checked, but constant allowed."""
    return load_image(path, allow_constant=True)


def _name(value, default: str) -> str:
    return str(value) if isinstance(value, (str, Path)) else default


def _case_id(baseline) -> str:
    return case_id_from_path(baseline) if isinstance(baseline, (str, Path)) else "case"
