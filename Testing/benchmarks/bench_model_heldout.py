"""Held-out evaluation (issue 13): bundled weights, side by side, on the frozen held-out family.

Every pair of ``cohort/heldout.py`` (Colin27, its own contrast and lesion models,
grid types ``iso1`` and ``axial3``) goes through the product's ``prepare_pair``
once (cached under results/tmp/heldout); then each weights file is scored in the
same run on the same slices, with the histogram-matched follow-up (``prepare`` as
it is) and with the voxel-pairwise matched one (``intensity_match``):

* lesion pairs: Dice and lesion F1 on the baseline grid (``metrics.py`` as it is on this branch);
* lesion-free pairs: false-positive lesions (components) and false-positive volume (mm^3);
* first suggestion: share of the top-10 slices by ``entropy_mean`` that hold a true new lesion,
  against the share among all tissue slices;
* difference channel on lesion-free pairs: mean |difference| and share of brain voxels with
  |difference| > 0.1 (normalised units), histogram vs pairwise matching.

Run:  .venv/bin/python Testing/benchmarks/bench_model_heldout.py --n 6 \
          --weights old=LongitudinalAL/Resources/Weights/change_unet.safetensors,new=/tmp/new.safetensors
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "LongitudinalAL"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import describe_machine, write_results  # noqa: E402

CACHE = ROOT / "Testing" / "benchmarks" / "results" / "tmp" / "heldout"
MATCHINGS = ("histogram", "pairwise")


def prepared(index: int, grid_type: str) -> dict:
    """The held-out pair through the product's prepare_pair (cached): volumes and truth on the baseline grid."""
    from LongitudinalALLib.cohort import heldout
    from LongitudinalALLib.imaging.prepare import prepare_pair

    path = CACHE / f"{heldout.FAMILY_VERSION}_{grid_type}_{index:03d}.npz"
    if not path.is_file():
        pair = heldout.make_pair(index, grid_type)
        pp = prepare_pair(pair.baseline, pair.followup, case_id=pair.pair_id, labels=pair.truth)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, baseline=sitk.GetArrayFromImage(pp.baseline),
                            registered=sitk.GetArrayFromImage(pp.followup_registered),
                            foreground=sitk.GetArrayFromImage(pp.foreground),
                            truth=sitk.GetArrayFromImage(pair.truth),
                            spacing=np.array(pp.baseline.GetSpacing()), origin=np.array(pp.baseline.GetOrigin()),
                            direction=np.array(pp.baseline.GetDirection()))
    with np.load(path) as z:
        return {k: z[k] for k in z.files} | {"pair_id": f"{grid_type}_{index:03d}", "grid_type": grid_type}


def _image(a: np.ndarray, d: dict) -> sitk.Image:
    img = sitk.GetImageFromArray(a)
    img.SetSpacing(tuple(float(v) for v in d["spacing"]))
    img.SetOrigin(tuple(float(v) for v in d["origin"]))
    img.SetDirection(tuple(float(v) for v in d["direction"]))
    return img


def variant(d: dict, matching: str):
    """(baseline, follow-up, foreground) images for one matching; pairwise remaps the follow-up."""
    from LongitudinalALLib.imaging.intensity_match import match_registered

    base, reg, fg = (_image(d[k], d) for k in ("baseline", "registered", "foreground"))
    if matching == "pairwise":
        reg = match_registered(reg, base, fg)
    return base, reg, fg


def diff_signal(d: dict, matching: str) -> dict:
    base, reg, fg = variant(d, matching)
    m = sitk.GetArrayViewFromImage(fg) > 0
    diff = (sitk.GetArrayViewFromImage(reg) - sitk.GetArrayViewFromImage(base))[m]
    out = {"mean_abs": float(np.abs(diff).mean()), "share_over_0.1": float((np.abs(diff) > 0.1).mean())}
    t = d["truth"] > 0
    if t.any():
        full = sitk.GetArrayViewFromImage(reg) - sitk.GetArrayViewFromImage(base)
        out["lesion_mean_diff"] = float(full[t].mean())
    return out


def score(model, d: dict, matching: str) -> dict:
    """MSSEG-2 style metrics and the first-suggestion hit rate of one model on one pair."""
    from LongitudinalALLib.active.strategies.uncertainty import binary_entropy
    from LongitudinalALLib.imaging.pairing import pair_slices
    from LongitudinalALLib.model import Predictor
    from LongitudinalALLib.model.metrics import subject_metrics

    base, reg, fg = variant(d, matching)
    c = pair_slices(base, reg, fg, d["pair_id"], labels=d["truth"])
    probs = Predictor(model).predict(c.images)
    pred = (probs >= 0.5) & c.foreground
    vol = c.geometry.to_volume(pred.astype(np.float32), order=0) > 0.5
    m = subject_metrics(d["pair_id"], vol, d["truth"] > 0)
    tissue = c.foreground.reshape(len(c.foreground), -1).mean(1) > 0.05
    ent = binary_entropy(torch.from_numpy(probs)).numpy() * c.foreground
    per_slice = ent.reshape(len(ent), -1).sum(1) / np.maximum(c.foreground.reshape(len(ent), -1).sum(1), 1)
    per_slice[~tissue] = -np.inf
    top = np.argsort(-per_slice, kind="stable")[:10]
    has = c.labels.reshape(len(c.labels), -1).any(1)
    row = {"dice": m.dice, "lesion_f1": m.lesions.f1, "n_true": m.lesions.n_true,
           "fp_lesions": m.lesions.false_positives,
           "fp_volume_mm3": float(m.pred_voxels * np.prod(d["spacing"])) if not m.has_lesions else None,
           "has_lesions": m.has_lesions}
    if has.any():
        row["top10_hit"] = float(has[top].mean())
        row["tissue_share"] = float(has[tissue].mean())
    return row


def summarise(rows: list[dict]) -> dict:
    les = [r for r in rows if r["has_lesions"]]
    free = [r for r in rows if not r["has_lesions"]]
    fp = np.array([r["fp_lesions"] for r in free], float)

    def mean(key, rs):
        v = [r[key] for r in rs if r.get(key) is not None]
        return float(np.mean(v)) if v else None

    return {"n_lesion_pairs": len(les), "dice": mean("dice", les), "lesion_f1": mean("lesion_f1", les),
            "top10_hit": mean("top10_hit", les), "tissue_share": mean("tissue_share", les),
            "n_lesion_free_pairs": len(free),
            "fp_lesions_median": float(np.median(fp)) if fp.size else None,
            "fp_lesions_p90": float(np.percentile(fp, 90)) if fp.size else None,
            "fp_volume_mm3_median": float(np.median([r["fp_volume_mm3"] for r in free])) if free else None}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=6, help="pairs per grid type (even: half lesion-free)")
    ap.add_argument("--grid-types", default="iso1,axial3")
    ap.add_argument("--weights", default="old=" + str(ROOT / "LongitudinalAL/Resources/Weights/change_unet.safetensors"))
    ap.add_argument("--matchings", default="histogram", help="follow-up matchings to score the models on")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--name", default="model_heldout")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    from LongitudinalALLib.model import load_weights

    models = {k: load_weights(v) for k, v in (item.split("=", 1) for item in args.weights.split(",") if item)}
    t0 = time.perf_counter()
    out = {"command": "python Testing/benchmarks/bench_model_heldout.py " + " ".join(sys.argv[1:] if argv is None else argv),
           "machine": describe_machine(), "weights": args.weights, "metrics_note":
           "metrics.py lesion F1 with the MSSEG-2 detection rule (animaSegPerfAnalyzer alpha/beta/gamma)", "grid_types": {}}
    for gt in args.grid_types.split(","):
        pairs = [prepared(i, gt) for i in range(args.n)]
        res = {"diff_signal": {}, "models": {}}
        for mt in MATCHINGS:
            res["diff_signal"][mt] = [diff_signal(d, mt) | {"pair": d["pair_id"]} for d in pairs]
        for mt in args.matchings.split(","):
            for name, model in models.items():
                rows = [score(model, d, mt) | {"pair": d["pair_id"]} for d in pairs]
                res["models"][f"{name}/{mt}"] = {"summary": summarise(rows), "pairs": rows}
                print(gt, f"{name}/{mt}", res["models"][f"{name}/{mt}"]["summary"], flush=True)
        out["grid_types"][gt] = res
    out["seconds"] = round(time.perf_counter() - t0, 1)
    write_results(args.name, out)
    return out


if __name__ == "__main__":
    main()
