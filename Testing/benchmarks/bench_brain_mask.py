"""Is the product's foreground the brain? (issue 27, item 1)

The automatic baseline foreground ``prepare`` scores slices on
(``imaging.prepare.baseline_foreground``, after N4 as in ``prepare``) is compared with
the brain where the truth is known:

* real pairs: the shared open_ms_data pairs (Lesjak et al., Neuroinformatics 2016,
  CC-BY), raw skull-on 2D FLAIRs, against the dataset's ``brainmask.nii.gz`` mapped
  onto the baseline grid with the dataset's transforms (skipped with one line when
  ``../shared/data`` is absent);
* simulated: pairs of the cohort generator (``sim:<seed>``), whose brain mask is exact;
* held-out: the frozen held-out family (Colin27; ``iso1`` and ``axial3`` grids), brain
  mapped onto the baseline grid with the pair's own pose.

Peer in the same run: the old threshold mask (Otsu, largest component, holes filled).
Figures: Dice, the share of the mask outside the brain, the share of the brain
missed, seconds per scan (wall and CPU, one thread; the first product case also
reads the template, about 1-4 s).

    .venv/bin/python Testing/benchmarks/bench_brain_mask.py [--sim-pairs 4] [--heldout 2]
Writes Testing/benchmarks/results/brain_mask.json.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import SimpleITK as sitk  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import describe_machine, print_table, write_results  # noqa: E402
from open_ms_pairs import CITATION, real_pairs, skip_reason  # noqa: E402

from LongitudinalALLib.imaging.prepare import baseline_foreground  # noqa: E402
from LongitudinalALLib.imaging.preprocess import foreground_mask, n4_correct  # noqa: E402

SIM_SEED = 2701


def methods() -> dict:
    """name -> (N4-corrected image -> UInt8 mask). 'product' is what prepare uses now."""
    return {"threshold": lambda img: foreground_mask(img, "mri"), "product": lambda img: baseline_foreground(img, "mri")[0]}


def overlap(mask: np.ndarray, truth: np.ndarray) -> dict:
    inter = float((mask & truth).sum())
    return {"dice": 2 * inter / max(1.0, float(mask.sum() + truth.sum())),
            "outside": float((mask & ~truth).sum()) / max(1.0, float(mask.sum())),
            "missed": float((truth & ~mask).sum()) / max(1.0, float(truth.sum()))}


def measure(image: sitk.Image, truth: np.ndarray) -> dict:
    """Each method's overlap with ``truth`` (K, J, I) and its seconds, on the N4-corrected ``image``."""
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    n4 = n4_correct(sitk.Cast(image, sitk.sitkFloat32))
    out = {}
    for name, fn in methods().items():
        t0, c0 = time.perf_counter(), time.process_time()
        mask = sitk.GetArrayFromImage(fn(n4)) > 0
        out[name] = {**overlap(mask, truth), "seconds": time.perf_counter() - t0,
                     "cpu_seconds": time.process_time() - c0}  # one thread: wall time on a shared machine inflates
    return out


def real_cases() -> list[tuple[str, sitk.Image, np.ndarray]]:
    return [(p.name, p.baseline, p.on_baseline("brainmask.nii.gz")) for p in real_pairs()]


def sim_cases(n: int, seed: int = SIM_SEED) -> list[tuple[str, sitk.Image, np.ndarray]]:
    """Baselines of ``n`` generator pairs (one per subject) with their exact brain masks."""
    from LongitudinalALLib.cohort.anatomy import load_anatomy
    from LongitudinalALLib.cohort.generator import make_subject
    from LongitudinalALLib.cohort.pair import SimulationOptions, render_pair, sample_pair_params

    anatomy = load_anatomy("mni", 1.0)
    out = []
    for i in range(n):
        subject = make_subject(anatomy, seed, i)
        params = sample_pair_params(np.random.default_rng([seed, 1, i]), subject, f"p{i:03d}", SimulationOptions())
        vol = render_pair(subject, params)
        out.append((f"sim{seed}/p{i:03d}", anatomy.to_image(vol.baseline.astype(np.float32)),
                    vol.brain_mask.astype(bool)))
    return out


def heldout_cases(n: int) -> list[tuple[str, sitk.Image, np.ndarray]]:
    """Baselines of the first ``n`` held-out pairs per grid type, with the brain seen on the baseline grid."""
    from LongitudinalALLib.cohort import heldout
    from LongitudinalALLib.cohort.anatomy import colin27_dir, load_anatomy
    from LongitudinalALLib.cohort.grids import Grid, acquire, brain_centre_lps, grid_reference, pose_transform

    if colin27_dir() is None:
        print("held-out family skipped: Colin27 is not installed (apt-get install mricron-data)")
        return []
    anat = load_anatomy(heldout.ANATOMY, 1.0)
    src = anat.to_image(np.zeros(anat.shape, np.float32))
    out = []
    for grid_type, (b_sp, _, _) in heldout.GRID_TYPES.items():
        for i in range(n):
            pair = heldout.make_pair(i, grid_type)
            pose = pair.params["pose"][0]
            tf = pose_transform(pose["rotation_deg_xyz"], pose["translation_mm_xyz"], brain_centre_lps(src, anat.brain))
            brain = acquire(anat.to_image(anat.brain.astype(np.float32)), grid_reference(src, Grid(b_sp)), tf) >= 0.5
            out.append((f"heldout/{grid_type}/{pair.pair_id}", pair.baseline, brain))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sim-pairs", type=int, default=4)
    ap.add_argument("--heldout", type=int, default=2, help="pairs per held-out grid type")
    ap.add_argument("--out-dir", default=None)
    args = ap.parse_args(argv)

    families: dict[str, list] = {}
    reason = skip_reason()
    if reason:
        print(reason)
    else:
        families["real"] = real_cases()
    families["simulated"] = sim_cases(args.sim_pairs)
    families["heldout"] = heldout_cases(args.heldout)

    cases, rows = [], []
    for family, items in families.items():
        for name, image, truth in items:
            res = measure(image, truth)
            cases.append({"family": family, "case": name, **res})
            for method, r in res.items():
                rows.append([family, name, method, f"{r['dice']:.3f}", f"{r['outside']:.3f}", f"{r['missed']:.3f}",
                             f"{r['seconds']:.1f}", f"{r['cpu_seconds']:.1f}"])
            print(f"{family} {name}: " + ", ".join(f"{m} Dice {r['dice']:.3f}" for m, r in res.items()), flush=True)
    print()
    print_table(rows, ["family", "case", "method", "Dice", "outside", "missed", "s", "CPU s"])
    summary = {}
    for family in families:
        fam = [c for c in cases if c["family"] == family]
        if fam:
            summary[family] = {m: {"min_dice": min(c[m]["dice"] for c in fam),
                                   "mean_dice": float(np.mean([c[m]["dice"] for c in fam])),
                                   "max_outside": max(c[m]["outside"] for c in fam),
                                   "mean_seconds": float(np.mean([c[m]["seconds"] for c in fam])),
                                   "mean_cpu_seconds": float(np.mean([c[m]["cpu_seconds"] for c in fam]))}
                               for m in methods()}
    for family, s in summary.items():
        print(f"{family}: " + "; ".join(f"{m} min Dice {v['min_dice']:.3f}, max outside {v['max_outside']:.3f}, "
                                       f"{v['mean_seconds']:.1f} s ({v['mean_cpu_seconds']:.1f} s CPU)"
                                       for m, v in s.items()))
    if "real" in families:
        print(f"Real pairs: {CITATION}")
    path = write_results("brain_mask", {"machine": describe_machine(), "cases": cases, "summary": summary,
                                        "real_pairs_skipped": reason, "citation_real": CITATION,
                                        "truth": {"real": "dataset brainmask.nii.gz via inverse study1 transform",
                                                  "simulated": "generator brain mask",
                                                  "heldout": "Colin27 brain acquired on the baseline grid and pose"}},
                         args.out_dir)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
