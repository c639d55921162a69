"""Generate a cohort: subjects, pairs, NIfTI files, a manifest and a subject-wise split.

Determinism: every random choice comes from ``numpy.random.default_rng`` seeded
with ``[seed, 0, subject_index]`` (subject), ``[seed, 1, pair_index]`` (pair) or
``[seed, 2]`` (split); nothing reads the clock or a global RNG, and NIfTI files
are written by SimpleITK from fixed geometry, so the same seed gives the same bytes.

Split: a subject is an anatomy under its own random deformation; all pairs of a
subject go to one split. When Colin27 is installed and requested, the test
subjects are made from Colin27, an anatomy no training subject is made from;
otherwise all splits are deformed MNI and the test split only measures
generalisation to unseen deformations, lesions and acquisitions.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from LongitudinalALLib.cohort.anatomy import (
    DEFAULT_ANATOMIES,
    Anatomy,
    AnatomyUnavailableWarning,
    available_anatomies,
    load_anatomy,
)
from LongitudinalALLib.cohort.flair import sample_subject_contrast
from LongitudinalALLib.cohort.lesions import render_lesion, size_class
from LongitudinalALLib.cohort.pair import PairVolumes, SimulationOptions, render_pair, sample_pair_params
from LongitudinalALLib.cohort.subject import Subject, build_subject, sample_subject_params
from LongitudinalALLib.core import atomic
from LongitudinalALLib.core.errors import InputError
from LongitudinalALLib.core.progress import CancelToken, ProgressCallback, check_cancel, report

MANIFEST = "manifest.json"
FORMAT = "longitudinal-al-cohort"
SPLITS = ("train", "val", "test")
FILES = ("baseline", "followup", "new_lesions", "brain_mask", "wm_mask")


@dataclass(frozen=True)
class CohortOptions:
    """What to generate; every field is recorded in the manifest."""

    n_pairs: int = 40
    seed: int = 0
    spacing_mm: float = 1.0
    anatomies: tuple[str, ...] = DEFAULT_ANATOMIES
    pairs_per_subject: int = 2
    split_fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)
    simulation: SimulationOptions = field(default_factory=SimulationOptions)
    flat: bool = False   # one pair written straight into the output folder (sample data)
    compression_level: int = 6


def assign_splits(n_subjects: int, fractions: tuple[float, float, float], seed: int) -> list[str]:
    """Split label per subject: at least one validation and one test subject from 3 subjects on."""
    if n_subjects < 3:
        return ["train"] * n_subjects if n_subjects < 2 else ["train", "test"]
    n_test = max(1, round(fractions[2] * n_subjects))
    n_val = max(1, round(fractions[1] * n_subjects))
    n_train = n_subjects - n_test - n_val
    if n_train < 1:
        n_train, n_val = 1, n_subjects - 1 - n_test
    labels = np.array(["train"] * n_train + ["val"] * n_val + ["test"] * n_test)
    return [str(s) for s in np.random.default_rng([seed, 2]).permutation(labels)]


def subject_anatomy(split: str, have: list[str], index: int = 0) -> str:
    """Colin27 (when present) only makes test subjects; the other anatomies take turns on the rest."""
    others = [a for a in have if a != "colin27"]
    if "colin27" in have and (split == "test" or not others):
        return "colin27"
    return others[index % len(others)] if others else "mni"


def make_subject(anatomy: Anatomy, seed: int, index: int) -> Subject:
    """Subject ``index`` of a cohort with ``seed`` on ``anatomy`` (deterministic)."""
    rng = np.random.default_rng([seed, 0, index])
    params = sample_subject_params(rng, anatomy.name, index)
    params["contrast"] = sample_subject_contrast(rng)
    return build_subject(anatomy, params)


def _write_image(array: np.ndarray, anatomy: Anatomy, path: Path, level: int) -> None:
    with atomic.atomic_path(path) as tmp:
        sitk.WriteImage(anatomy.to_image(array), str(tmp), True, level)


def write_pair(vol: PairVolumes, anatomy: Anatomy, folder: Path, rel: str, level: int = 6) -> dict[str, str]:
    """Write the pair's NIfTI files and ground-truth registration; return paths relative to the manifest."""
    arrays = {"baseline": vol.baseline, "followup": vol.followup, "new_lesions": vol.new_lesions,
              "brain_mask": vol.brain_mask, "wm_mask": vol.wm_mask}
    files = {}
    for name, arr in arrays.items():
        _write_image(arr, anatomy, folder / f"{name}.nii.gz", level)
        files[name] = f"{rel}{name}.nii.gz"
    with atomic.atomic_path(folder / "registration_truth.tfm") as tmp:
        sitk.WriteTransform(vol.registration_truth, str(tmp))
    files["registration_truth"] = f"{rel}registration_truth.tfm"
    return files


def summarise_lesions(params: dict, vol: PairVolumes, spacing_zyx: np.ndarray, subject: Subject) -> dict:
    """Add realised sizes per lesion (voxels, equivalent diameter, components) and pair counts."""
    voxel_mm3 = float(np.prod(spacing_zyx))
    for spec in params["lesions"]:
        box, old, grown = render_lesion(spec, subject.gm.shape, spacing_zyx)
        own_new = vol.new_lesions[box].astype(bool) & (grown >= 0.5) if spec["kind"] != "existing" \
            else np.zeros(old.shape, bool)
        whole = ((grown if spec["kind"] != "existing" else old) * subject.wm_mask[box]) >= 0.5
        spec["n_voxels"] = int(whole.sum())
        spec["equivalent_diameter_mm"] = float((6 * whole.sum() * voxel_mm3 / math.pi) ** (1 / 3))
        spec["n_new_voxels"] = int(own_new.sum())
        spec["new_components"] = int(ndimage.label(own_new, structure=np.ones((3, 3, 3)))[1])
        spec["size_class"] = size_class(spec["diameter_mm"])
        centre = spec["centre_voxel_kji"]
        spec["centre_lps_mm"] = list(subject.anatomy.to_image(np.zeros((1, 1, 1), np.uint8))
                                     .TransformIndexToPhysicalPoint([int(c) for c in centre[::-1]]))
        spec["centre_ras_mm"] = [-spec["centre_lps_mm"][0], -spec["centre_lps_mm"][1], spec["centre_lps_mm"][2]]
    kinds = [s["kind"] for s in params["lesions"]]
    return {
        "n_existing": kinds.count("existing") + kinds.count("enlarging"),
        "n_new": kinds.count("new"),
        "n_enlarging": kinds.count("enlarging"),
        "new_lesion_voxels": int(vol.new_lesions.sum()),
        "new_lesion_components": int(ndimage.label(vol.new_lesions, structure=np.ones((3, 3, 3)))[1]),
    }


def _check_out(out: Path, options: CohortOptions, overwrite: bool) -> None:
    if options.n_pairs < 1:
        raise InputError(f"--n {options.n_pairs} asks for no pairs.", "Give --n 1 or more.")
    if options.flat and options.n_pairs != 1:
        raise InputError("--flat writes one pair straight into the output folder.", "Use it with --n 1.")
    if out.exists() and not out.is_dir():
        raise InputError(f"Output {out} exists and is not a folder.", "Choose another --out.")
    if (out / MANIFEST).exists() and not overwrite:
        raise InputError(f"{out / MANIFEST} already exists.", "Choose an empty --out or pass --overwrite.")


def generate_cohort(out: str | Path, options: CohortOptions, *, overwrite: bool = False,
                    progress: ProgressCallback | None = None, cancel: CancelToken | None = None) -> Path:
    """Generate ``options.n_pairs`` pairs under ``out``; returns the manifest path.

    Files per pair (``out/<pair_id>/`` or ``out/`` when flat): baseline, followup,
    new_lesions (exact new-lesion mask, baseline space, uint8), brain_mask, wm_mask
    (.nii.gz) and registration_truth.tfm.
    """
    out = Path(out)
    _check_out(out, options, overwrite)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", AnatomyUnavailableWarning)
        have = available_anatomies(list(options.anatomies))
    missing = [str(w.message) for w in caught if issubclass(w.category, AnatomyUnavailableWarning)]
    for msg in missing:  # re-emit for the caller (the CLI prints them)
        warnings.warn(msg, AnatomyUnavailableWarning, stacklevel=2)
    n_subjects = math.ceil(options.n_pairs / options.pairs_per_subject)
    splits = assign_splits(n_subjects, options.split_fractions, options.seed)
    subjects_meta, pairs_meta = [], []
    subject: Subject | None = None
    for p in range(options.n_pairs):
        check_cancel(cancel, "Cohort generation")
        s_idx = p // options.pairs_per_subject
        if subject is None or subject.params["subject_id"] != f"s{s_idx:03d}":
            anatomy = load_anatomy(subject_anatomy(splits[s_idx], have, s_idx), options.spacing_mm)
            subject = make_subject(anatomy, options.seed, s_idx)
            subjects_meta.append({**subject.params, "split": splits[s_idx]})
        pair_id = f"p{p:03d}"
        report(progress, "make-cohort", p / options.n_pairs, pair_id)
        params = sample_pair_params(np.random.default_rng([options.seed, 1, p]), subject, pair_id,
                                    options.simulation)
        vol = render_pair(subject, params)
        folder, rel = (out, "") if options.flat else (out / pair_id, f"{pair_id}/")
        files = write_pair(vol, subject.anatomy, folder, rel, options.compression_level)
        counts = summarise_lesions(params, vol, subject.spacing_zyx, subject)
        t = vol.registration_truth
        pairs_meta.append({
            **params, "split": splits[s_idx], "rng_seed": [options.seed, 1, p], "files": files,
            "shape_kji": list(vol.baseline.shape), "spacing_mm_xyz": list(subject.anatomy.spacing),
            "origin_lps_mm": list(subject.anatomy.origin), "direction": list(subject.anatomy.direction),
            "registration_truth": {"matrix": list(t.GetMatrix()), "translation": list(t.GetTranslation()),
                                   "center": list(t.GetCenter()),
                                   "meaning": "SimpleITK resampling transform fixed=baseline -> moving=follow-up"},
            "counts": counts,
        })
    report(progress, "make-cohort", 1.0, "manifest")
    manifest = {
        "format": FORMAT, "version": 1,
        "options": {**asdict(options), "anatomies": list(options.anatomies)},
        "anatomies_used": {name: load_anatomy(name, options.spacing_mm).source for name in sorted(
            {s["anatomy"] for s in subjects_meta})},
        "anatomies_missing": missing,
        "split_rule": ("pairs of one subject (anatomy + its own random deformation) share a split; "
                       "Colin27 subjects form the test split when available, otherwise every split is "
                       "deformed MNI"),
        "subjects": subjects_meta,
        "pairs": pairs_meta,
        "summary": cohort_summary(pairs_meta),
    }
    atomic.write_json(out / MANIFEST, manifest)
    return out / MANIFEST


def regenerate_pair(manifest: dict, pair_id: str) -> PairVolumes:
    """Render a manifest's pair again from its recorded parameters alone (same arrays as the files)."""
    pair = next((p for p in manifest["pairs"] if p["pair_id"] == pair_id), None)
    if pair is None:
        raise InputError(f"No pair {pair_id!r} in the manifest.", "Use a pair_id listed in manifest.json.")
    meta = next(s for s in manifest["subjects"] if s["subject_id"] == pair["subject_id"])
    anatomy = load_anatomy(meta["anatomy"], manifest["options"]["spacing_mm"])
    return render_pair(build_subject(anatomy, meta), pair)


def cohort_summary(pairs: list[dict]) -> dict:
    """Counts a reader wants first: pairs per split, pairs without new lesions, new lesions per size class."""
    by_size = {f"{lo:g}-{hi:g}": 0 for lo, hi in ((3, 5), (5, 10), (10, 15))}
    for p in pairs:
        for s in p["lesions"]:
            if s["kind"] == "new":
                by_size[s["size_class"]] += 1
    return {
        "pairs": len(pairs),
        "pairs_per_split": {s: sum(p["split"] == s for p in pairs) for s in SPLITS},
        "pairs_without_new_lesions": sum(p["counts"]["new_lesion_voxels"] == 0 for p in pairs),
        "new_lesions_by_size_mm": by_size,
        "enlarging_lesions": sum(p["counts"]["n_enlarging"] for p in pairs),
        "existing_lesions": sum(p["counts"]["n_existing"] for p in pairs),
    }
