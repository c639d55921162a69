"""open_ms_data (Lesjak et al., Neuroinformatics 2016, CC-BY) as a LongitudinalAL cohort, via import-cohort.

The dataset's change mask ``gt.nii.gz`` marks lesions that appeared or grew AND lesions
that shrank or faded, on a common-space grid. The product looks for new lesions, so
(the data folder's README rule) both FLAIRs are put on the gt grid with the dataset's
transforms, divided by their brain median, and a 26-connected change component is
kept as "new or enlarging" when the follow-up is brighter than the baseline on average
inside it; shrinking ones are left out of the truth (a prediction there is a false
lesion). The kept mask stays on the gt grid; import-cohort puts it on the baseline with
the inverse of the dataset's study1 transform (ITK resampling convention: study1 point
-> common point). The data are read from ``../shared/data/open_ms_data`` (never copied
into the project).

    python Testing/benchmarks/open_ms_cohort.py --out /tmp/open_ms_cohort [--test patient12]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
DATA = REPO.parent / "shared" / "data" / "open_ms_data"
PATIENTS = ("patient03", "patient12")
CITATION = ("Lesjak Z, Pernus F, Likar B, Spiclin Z. Validation of white-matter lesion change detection methods "
            "on a novel publicly available MRI image database. Neuroinformatics 2016 (open_ms_data, CC-BY)")


def data_dir() -> Path | None:
    """The shared data folder, or None (benchmarks then skip with one line)."""
    return DATA if all((DATA / p / "gt.nii.gz").is_file() for p in PATIENTS) else None


def _brain_normalised(img) -> np.ndarray:
    """Divide by the median of the voxels above the 50th percentile of the non-zero ones (the README's rule;
    restricting them to the brain mask gives 26/20 components on patient03 instead of the README's 29/17)."""
    import SimpleITK as sitk

    a = sitk.GetArrayFromImage(img).astype(np.float32)
    vals = a[a > 0]
    return a / float(np.median(vals[vals > np.percentile(vals, 50)]))


def new_or_enlarging(patient_dir: Path):
    """(mask image on the gt grid, counts): the change components where the follow-up got brighter."""
    import SimpleITK as sitk
    from scipy import ndimage

    gt = sitk.ReadImage(str(patient_dir / "gt.nii.gz"))
    on_gt = []
    for study in ("study1", "study2"):
        t = sitk.ReadTransform(str(patient_dir / f"{study}_FLAIR_to_common_space.txt"))
        img = sitk.Resample(sitk.Cast(sitk.ReadImage(str(patient_dir / f"{study}_FLAIR.nii.gz")), sitk.sitkFloat32),
                            gt, t, sitk.sitkLinear, 0.0)
        on_gt.append(_brain_normalised(img))
    change = sitk.GetArrayFromImage(gt) > 0
    comps, n = ndimage.label(change, structure=np.ones((3, 3, 3)))
    diff = on_gt[1] - on_gt[0]
    means = ndimage.mean(diff, comps, index=np.arange(1, n + 1))
    keep = np.flatnonzero(np.asarray(means) > 0) + 1
    out = sitk.GetImageFromArray(np.isin(comps, keep).astype(np.uint8))
    out.CopyInformation(gt)
    return out, {"new_or_enlarging": int(len(keep)), "shrinking": int(n - len(keep))}


def build(out: Path, test: str = "patient12", data: Path | None = None) -> Path:
    """Write the truth masks, transforms and listing under ``out``; import them; return the manifest path."""
    import SimpleITK as sitk

    from LongitudinalALLib.cohort.import_pairs import import_cohort

    data = data or DATA
    out.mkdir(parents=True, exist_ok=True)
    rows, counts = [], {}
    for p in PATIENTS:
        src = data / p
        mask, counts[p] = new_or_enlarging(src)
        sitk.WriteImage(mask, str(out / f"{p}_new_or_enlarging_gt_grid.nii.gz"), True)
        t1 = sitk.ReadTransform(str(src / "study1_FLAIR_to_common_space.txt"))
        sitk.WriteTransform(t1.GetInverse(), str(out / f"{p}_study1_to_gt.tfm"))  # baseline point -> gt point
        rows.append({"subject_id": p, "pair_id": p, "split": "test" if p == test else "train",
                     "baseline": str(src / "study1_FLAIR.nii.gz"), "followup": str(src / "study2_FLAIR.nii.gz"),
                     "new_lesions": f"{p}_new_or_enlarging_gt_grid.nii.gz",
                     "truth_transform": f"{p}_study1_to_gt.tfm"})
    (out / "listing.json").write_text(json.dumps({"pairs": rows, "components": counts, "source": CITATION},
                                                 indent=1))
    return import_cohort(out / "listing.json", out / "cohort", overwrite=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="/tmp/open_ms_cohort")
    p.add_argument("--test", default="patient12", choices=PATIENTS)
    args = p.parse_args()
    if data_dir() is None:
        print(f"skipped: {DATA} is absent (open_ms_data, see its README)")
        return 0
    path = build(Path(args.out), args.test)
    print(json.loads((Path(args.out) / "listing.json").read_text())["components"], "->", path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
