"""The shared real longitudinal MS pairs (open_ms_data; Lesjak et al., Neuroinformatics 2016, CC-BY).

Why: the product's foreground and first-round suggestions answer to real skull-on
clinical scans, judged by the dataset's own masks. The scans are never committed:
they are read from ``../shared/data/open_ms_data`` beside the repository root, and a
benchmark skips them with one line when that folder is absent.

Each ``studyY_FLAIR_to_common_space.txt`` maps a common-space point to the study-Y
point (ITK resampling convention), so a common-space mask (``brainmask``, ``gt``) is
put on the baseline grid by resampling it with the inverse of ``T_1``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data" / "open_ms_data"
CITATION = ("Lesjak Z, Pernus F, Likar B, Spiclin Z. Validation of white-matter lesion change detection methods "
            "on a novel publicly available MRI image database. Neuroinformatics 2016 (open_ms_data, CC-BY)")


@dataclass
class RealPair:
    name: str
    folder: Path
    baseline: sitk.Image  # study1 FLAIR, float32, its own grid
    to_common: sitk.Transform  # T_1: common point -> baseline point

    @property
    def baseline_path(self) -> Path:
        return self.folder / "study1_FLAIR.nii.gz"

    @property
    def followup_path(self) -> Path:
        return self.folder / "study2_FLAIR.nii.gz"

    def on_baseline(self, file: str) -> np.ndarray:
        """(K, J, I) bool: the common-space mask ``file`` (e.g. brainmask.nii.gz) on the baseline grid."""
        mask = sitk.ReadImage(str(self.folder / file))
        moved = sitk.Resample(mask, self.baseline, self.to_common.GetInverse(), sitk.sitkNearestNeighbor, 0)
        return sitk.GetArrayFromImage(moved) > 0


def skip_reason() -> str | None:
    """One line saying why the real pairs are skipped, or None when they are here."""
    if not DATA.is_dir():
        return f"real pairs skipped: {DATA} is absent (the shared open_ms_data folder)"
    return None


def real_pairs() -> list[RealPair]:
    """Every patientNN folder holding both FLAIRs, the transforms and the brain mask."""
    out = []
    for folder in sorted(DATA.glob("patient*")):
        needed = ("study1_FLAIR.nii.gz", "study2_FLAIR.nii.gz", "study1_FLAIR_to_common_space.txt",
                  "brainmask.nii.gz", "gt.nii.gz")
        if all((folder / f).is_file() for f in needed):
            out.append(RealPair(folder.name, folder, sitk.ReadImage(str(folder / needed[0]), sitk.sitkFloat32),
                                sitk.ReadTransform(str(folder / needed[2]))))
    return out


def _brain_normalised(image: sitk.Image, reference: sitk.Image, transform: sitk.Transform) -> np.ndarray:
    """``image`` on ``reference``'s grid divided by its brain median (median above the 50th percentile of non-zero)."""
    arr = sitk.GetArrayFromImage(sitk.Resample(image, reference, transform, sitk.sitkLinear, 0.0, sitk.sitkFloat32))
    nz = arr[arr > 0]
    return arr / float(np.median(nz[nz > np.percentile(nz, 50)]))


def _change_components(pair: RealPair) -> tuple[sitk.Image, np.ndarray, np.ndarray]:
    """(gt image, 26-connected labels of its change on the gt grid, (n,) bool: follow-up brighter inside)."""
    gt = sitk.ReadImage(str(pair.folder / "gt.nii.gz"))
    labels, n = ndimage.label(sitk.GetArrayFromImage(gt) > 0, structure=np.ones((3, 3, 3), bool))
    base = _brain_normalised(pair.baseline, gt, pair.to_common)
    foll = _brain_normalised(sitk.ReadImage(str(pair.followup_path), sitk.sitkFloat32), gt,
                             sitk.ReadTransform(str(pair.folder / "study2_FLAIR_to_common_space.txt")))
    idx = np.arange(1, n + 1)
    brighter = np.asarray(ndimage.mean(foll, labels, idx)) > np.asarray(ndimage.mean(base, labels, idx))
    return gt, labels, brighter.reshape(-1)


def new_or_enlarging(pair: RealPair) -> tuple[np.ndarray, tuple[int, int]]:
    """((K, J, I) bool on the baseline grid, (n new-or-enlarging, n shrinking)): README's rule.

    Both FLAIRs go onto the gt grid with the dataset's transforms, each divided by its
    brain median; a 26-connected component of ``gt`` is new or enlarging when the
    follow-up is brighter than the baseline on average inside it.
    """
    gt, labels, brighter = _change_components(pair)
    keep = sitk.GetImageFromArray(np.isin(labels, np.flatnonzero(brighter) + 1).astype(np.uint8))
    keep.CopyInformation(gt)
    moved = sitk.Resample(keep, pair.baseline, pair.to_common.GetInverse(), sitk.sitkNearestNeighbor, 0)
    return sitk.GetArrayFromImage(moved) > 0, (int(brighter.sum()), int((~brighter).sum()))
