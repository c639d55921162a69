"""A cohort manifest from real pairs with truth masks, so ``simulate`` runs the product's loop on them.

``make-cohort`` writes a manifest of simulated pairs; ``simulate`` reads only each
pair's ``pair_id``, ``split`` and files ``baseline``, ``followup``, ``new_lesions``
(the truth mask on the baseline grid). This module builds the same manifest from a
listing of the user's own pairs (JSON or CSV, one row per pair):

    subject_id, baseline, followup, new_lesions[, truth_transform][, split][, pair_id]

Paths are relative to the listing. ``new_lesions`` is the new-lesion truth mask; when it
is not on the baseline grid, ``truth_transform`` is an ITK transform file in the
resampling convention (it maps a baseline point to the mask's point) and the mask is
resampled onto the baseline grid (nearest neighbour). ``split`` is train, val or test
(default train). The scans are referenced where they are (absolute paths), the binary
mask on the baseline grid is written beside the manifest.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

from LongitudinalALLib.core import atomic
from LongitudinalALLib.core.case_ids import check_case_id
from LongitudinalALLib.core.errors import InputError
from LongitudinalALLib.cohort.manifest import FORMAT, SPLITS

REQUIRED = ("subject_id", "baseline", "followup", "new_lesions")
OPTIONAL = ("truth_transform", "split", "pair_id")
LISTING_FIX = ("List one pair per row with subject_id, baseline, followup, new_lesions "
               "(optional truth_transform, split, pair_id).")


def read_listing(path: str | Path) -> list[dict[str, str]]:
    """Rows of a JSON (a list, or {"pairs": [...]}) or CSV listing; every field checked, paths made absolute."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"No pair listing at {path}.", "Give a .json or .csv file. " + LISTING_FIX)
    try:
        text = path.read_text(encoding="utf-8")
        if path.suffix.lower() == ".csv":
            rows = list(csv.DictReader(text.splitlines()))
        else:
            data = json.loads(text)
            rows = data.get("pairs") if isinstance(data, dict) else data
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, csv.Error) as err:
        raise InputError(f"Pair listing {path} cannot be read ({err}).", LISTING_FIX) from None
    if not isinstance(rows, list) or not rows:
        raise InputError(f"Pair listing {path} lists no pairs.", LISTING_FIX)
    out, ids = [], set()
    for n, row in enumerate(rows, 1):
        entry = _check_row(row, n, path)
        if entry["pair_id"] in ids:
            raise InputError(f"Pair {n} of {path}: pair_id {entry['pair_id']!r} is listed twice.",
                             "Give every pair its own pair_id.")
        ids.add(entry["pair_id"])
        out.append(entry)
    return out


def _check_row(row: Any, n: int, listing: Path) -> dict[str, str]:
    where = f"Pair {n} of {listing}"
    if not isinstance(row, dict):
        raise InputError(f"{where} is not a set of named fields.", LISTING_FIX)
    unknown = sorted(set(row) - set(REQUIRED) - set(OPTIONAL))
    if unknown:
        raise InputError(f"{where} has unknown fields {unknown}.", LISTING_FIX)
    entry = {}
    for key in REQUIRED + OPTIONAL:
        value = row.get(key)
        if value is None or (isinstance(value, str) and not value.strip()):
            if key in REQUIRED:
                raise InputError(f"{where} has no {key}.", LISTING_FIX)
            continue
        if not isinstance(value, str):
            raise InputError(f"{where}: {key} is {value!r}, not text.", "Write it as a string.")
        entry[key] = value.strip()
    for key in ("baseline", "followup", "new_lesions", "truth_transform"):
        if key in entry:
            p = Path(entry[key]).expanduser()
            p = p if p.is_absolute() else listing.parent / p
            if not p.exists():
                raise InputError(f"{where}: {key} {p} does not exist.", "Fix the path (relative paths start at "
                                 "the listing's folder).")
            entry[key] = str(p.resolve())
    entry.setdefault("split", "train")
    if entry["split"] not in SPLITS:
        raise InputError(f"{where}: split {entry['split']!r} is not one of {', '.join(SPLITS)}.",
                         "Use train or val for the pool and test for evaluation.")
    entry.setdefault("pair_id", f"{entry['subject_id']}_{n:03d}")
    try:  # the manifest's own rule (cohort/manifest.py): an id accepted here must load there
        check_case_id(entry["pair_id"])
    except InputError as err:
        raise InputError(f"{where}: pair_id {entry['pair_id']!r} is not a folder name.", err.fix) from None
    return entry


def truth_on_baseline(entry: dict[str, str]):
    """The truth mask as a uint8 {0,1} image on the baseline grid (resampled through truth_transform if given)."""
    import SimpleITK as sitk

    from LongitudinalALLib.imaging.io import load_image, read_image, same_grid

    base = read_image(entry["baseline"], name=f"baseline {entry['baseline']}")
    mask = load_image(entry["new_lesions"], name=f"new_lesions {entry['new_lesions']}", allow_constant=True)
    if "truth_transform" in entry:
        try:
            transform = sitk.ReadTransform(entry["truth_transform"])
        except RuntimeError:
            raise InputError(f"truth_transform {entry['truth_transform']} is not an ITK transform file.",
                             "Save it from Slicer's Transforms module or SimpleITK (.tfm, .txt, .h5).") from None
        mask = sitk.Resample(mask, base, transform, sitk.sitkNearestNeighbor, 0.0)
    elif not same_grid(mask, base):  # the project's one rule (origin tolerance scaled by the spacing)
        raise InputError(f"new_lesions {entry['new_lesions']} is not on the baseline grid "
                         f"({mask.GetSize()} vs {base.GetSize()} voxels, or another origin/direction).",
                         "Add truth_transform (an ITK transform from baseline points to the mask's points), "
                         "or resample the mask onto the baseline.")
    out = sitk.Cast(sitk.GetImageFromArray((sitk.GetArrayFromImage(mask) > 0).astype(np.uint8)), sitk.sitkUInt8)
    out.CopyInformation(base)
    return out


#: single-file formats copied byte for byte; anything else (a DICOM folder, a detached header) is converted
SELF_CONTAINED = (".nii", ".nii.gz", ".nrrd", ".mha")


def _copy_scan(source: str, folder: Path, name: str) -> str:
    """Put a scan inside the cohort folder (a manifest names only files inside it, issue 22 N15); returns
    its path relative to the cohort. Single-file formats are copied unchanged, others written as NIfTI."""
    import shutil

    import SimpleITK as sitk

    from LongitudinalALLib.imaging.io import read_image

    src = Path(source)
    suffix = next((sfx for sfx in SELF_CONTAINED if src.name.lower().endswith(sfx)), None)
    if src.is_file() and suffix is not None:
        target = folder / f"{name}{suffix}"
        with atomic.atomic_path(target) as tmp:
            shutil.copyfile(src, tmp)
    else:
        target = folder / f"{name}.nii.gz"
        image = read_image(src, name=f"{name} {source}")
        with atomic.atomic_path(target) as tmp:
            sitk.WriteImage(image, str(tmp), True)
    return f"{folder.name}/{target.name}"


def import_cohort(listing: str | Path | list[dict[str, str]], out: str | Path, *, overwrite: bool = False,
                  listing_path: str | Path | None = None) -> Path:
    """Write ``out/manifest.json`` (the make-cohort format) and each pair's mask on its baseline grid.

    ``listing``: a listing file, or rows already read by :func:`read_listing`. Returns the manifest path.
    """
    import SimpleITK as sitk
    from scipy import ndimage

    rows = read_listing(listing) if not isinstance(listing, list) else listing
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"Output {out} exists and is not a folder.", "Choose another --out.")
    if (out / "manifest.json").exists() and not overwrite:
        raise InputError(f"{out / 'manifest.json'} already exists.", "Choose an empty --out or pass --overwrite.")
    pairs = []
    for entry in rows:
        mask = truth_on_baseline(entry)
        arr = sitk.GetArrayFromImage(mask)
        folder = out / entry["pair_id"]
        folder.mkdir(parents=True, exist_ok=True)
        with atomic.atomic_path(folder / "new_lesions.nii.gz") as tmp:
            sitk.WriteImage(mask, str(tmp), True)
        files = {"baseline": _copy_scan(entry["baseline"], folder, "baseline"),
                 "followup": _copy_scan(entry["followup"], folder, "followup"),
                 "new_lesions": f"{entry['pair_id']}/new_lesions.nii.gz"}
        pairs.append({"pair_id": entry["pair_id"], "subject_id": entry["subject_id"], "split": entry["split"],
                      "files": files, "source": {k: entry[k] for k in ("baseline", "followup", "new_lesions",
                                                                       "truth_transform") if k in entry},
                      "shape_kji": list(arr.shape), "spacing_mm_xyz": list(mask.GetSpacing()),
                      "counts": {"new_lesion_voxels": int(arr.sum()), "new_lesion_components": int(
                          ndimage.label(arr, structure=np.ones((3, 3, 3)))[1])}})
    manifest = {
        "format": FORMAT, "version": 1, "imported": True,
        "listing": str(Path(listing_path or listing).resolve()) if not isinstance(listing, list) or listing_path
        else None,
        "split_rule": "as listed (default train)",
        "pairs": pairs,
        "summary": {"pairs": len(pairs), "pairs_per_split": {s: sum(p["split"] == s for p in pairs) for s in SPLITS},
                    "pairs_without_new_lesions": sum(p["counts"]["new_lesion_voxels"] == 0 for p in pairs)},
    }
    atomic.write_json(out / "manifest.json", manifest)
    return out / "manifest.json"
