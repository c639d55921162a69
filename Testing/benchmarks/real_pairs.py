"""The two shared real longitudinal MS pairs (open_ms_data; Lesjak et al., Neuroinformatics 2016, CC-BY).

Read from ``../shared/data/open_ms_data`` next to the repository (never committed; see its README).
Why a module: the appearance measurement (``bench_real_appearance.py``) and the weights comparison
(``bench_real_weights.py``) must split the change mask and prepare the pairs the same way.

* :func:`split_change` puts both FLAIRs on the dataset's ``gt`` grid with its own transforms, divides
  each by its brain median (voxels above the 50th percentile of the non-zero brain ones), and labels
  each 26-connected change component "new or enlarging" (follow-up brighter on average) or "shrinking";
* :func:`prepared_real_pair` runs the product's ``prepare_pair`` (cached under results/tmp/real) and
  carries the new-or-enlarging truth (and the shrinking components) onto the baseline scan's grid.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data" / "open_ms_data"
PATIENTS = ("patient03", "patient12")
CACHE = ROOT / "Testing" / "benchmarks" / "results" / "tmp" / "real"
CITATION = ("Lesjak Z, Pernus F, Likar B, Spiclin Z. Validation of white-matter lesion change detection "
            "methods on a novel publicly available MRI image database. Neuroinformatics 14(4), 2016 "
            "(open_ms_data, CC-BY)")
STRUCT26 = np.ones((3, 3, 3), bool)


def missing_reason() -> str | None:
    """One line saying why the real pairs cannot be used here, or None when they are present."""
    if not all((DATA / p / "gt.nii.gz").is_file() for p in PATIENTS):
        return f"skipped: the shared real pairs are not at {DATA} (see its README; they are never committed)"
    return None


def absent() -> bool:
    """True (after printing the one-line reason) when a benchmark must skip."""
    why = missing_reason()
    if why:
        print(why)
    return why is not None


def read_transform(path: Path) -> sitk.Transform:
    """The dataset's ITK affine (common-space point -> study point)."""
    return sitk.ReadTransform(str(path))


def brain_median(values: np.ndarray) -> float:
    """Median of the brain voxels above the 50th percentile of the non-zero ones (the README's rule)."""
    v = values[values > 0]
    return float(np.median(v[v > np.percentile(v, 50)]))


def on_gt_grid(patient: str) -> dict:
    """Both studies on the gt grid, each divided by its brain median; gt, brain mask (K, J, I) arrays."""
    folder = DATA / patient
    gt = sitk.ReadImage(str(folder / "gt.nii.gz"))
    brain = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "brainmask.nii.gz"))) > 0
    out = {"gt": sitk.GetArrayFromImage(gt) > 0, "brain": brain, "gt_image": gt}
    for k in (1, 2):
        img = sitk.Cast(sitk.ReadImage(str(folder / f"study{k}_FLAIR.nii.gz")), sitk.sitkFloat32)
        t = read_transform(folder / f"study{k}_FLAIR_to_common_space.txt")
        a = sitk.GetArrayFromImage(sitk.Resample(img, gt, t, sitk.sitkLinear, 0.0, sitk.sitkFloat32))
        out[f"study{k}"] = a / brain_median(a[brain])
    return out


def split_change(d: dict) -> tuple[np.ndarray, np.ndarray, int, int]:
    """(new-or-enlarging mask, shrinking mask, n new, n shrinking) on the gt grid."""
    lab, n = ndimage.label(d["gt"], STRUCT26)
    if n == 0:
        z = np.zeros_like(d["gt"])
        return z, z, 0, 0
    diff = d["study2"] - d["study1"]
    mean = ndimage.mean(diff, lab, np.arange(1, n + 1))
    new_ids = np.flatnonzero(mean > 0) + 1
    new = np.isin(lab, new_ids)
    return new, d["gt"] & ~new, int(len(new_ids)), int(n - len(new_ids))


def _to_baseline(mask: np.ndarray, gt_image: sitk.Image, base: sitk.Image, t1: sitk.Transform) -> np.ndarray:
    """A gt-grid mask seen on the baseline scan's grid (linear fraction >= 0.5)."""
    m = sitk.GetImageFromArray(mask.astype(np.float32))
    m.CopyInformation(gt_image)
    out = sitk.Resample(m, base, t1.GetInverse(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    return (sitk.GetArrayFromImage(out) >= 0.5).astype(np.uint8)


def prepared_real_pair(patient: str) -> dict:
    """The pair through the product's ``prepare_pair`` (defaults, cached) with its truth on the baseline grid.

    Returns arrays ``baseline``, ``registered``, ``foreground``, ``truth`` (new or enlarging), ``shrinking``
    (K, J, I) and the baseline grid's ``spacing``, ``origin``, ``direction``.
    """
    from LongitudinalALLib.imaging.prepare import prepare_pair

    path = CACHE / f"{patient}.npz"
    if not path.is_file():
        folder = DATA / patient
        d = on_gt_grid(patient)
        new, shrink, _, _ = split_change(d)
        base = sitk.ReadImage(str(folder / "study1_FLAIR.nii.gz"))
        t1 = read_transform(folder / "study1_FLAIR_to_common_space.txt")
        truth = _to_baseline(new, d["gt_image"], base, t1)
        shrinking = _to_baseline(shrink, d["gt_image"], base, t1)
        pp = prepare_pair(base, sitk.ReadImage(str(folder / "study2_FLAIR.nii.gz")), case_id=patient)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez_compressed(tmp, baseline=sitk.GetArrayFromImage(pp.baseline),
                            registered=sitk.GetArrayFromImage(pp.followup_registered),
                            foreground=sitk.GetArrayFromImage(pp.foreground), truth=truth, shrinking=shrinking,
                            spacing=np.array(pp.baseline.GetSpacing()), origin=np.array(pp.baseline.GetOrigin()),
                            direction=np.array(pp.baseline.GetDirection()))
        tmp.replace(path)
    with np.load(path) as z:
        return {k: z[k] for k in z.files} | {"pair_id": patient}
