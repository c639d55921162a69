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

Each model is scored with each lesion-mask step side by side (``--masks``): ``raw``
(p >= 0.5, the product before issue 13) and ``lesion_mask`` (``model/lesion_mask.py``);
for the lesion-free pairs every false lesion is described (``false_lesions.py``:
volume, peak probability, location) and tabulated by location.

Run:  .venv/bin/python Testing/benchmarks/model_heldout/bench_model_heldout.py --n 10 \
          --weights old=/tmp/old.safetensors,new=Resources/Weights/change_unet.safetensors
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "LongitudinalAL"))
HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]  # this benchmark's folder, then Testing/benchmarks/ (bench_common)

import false_lesions  # noqa: E402
from bench_common import describe_machine, write_results  # noqa: E402

CACHE = ROOT / "Testing" / "benchmarks" / "results" / "tmp" / "heldout"
MATCHINGS = ("histogram", "pairwise")
MASKS = ("raw", "lesion_mask")  # probabilities -> lesion mask: plain threshold, and the product's step


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


def masks(probs: np.ndarray, c, d: dict, names) -> dict[str, np.ndarray]:
    """(K, J, I) new-lesion masks on the baseline grid: ``raw`` (p >= 0.5 on the slices, as before
    issue 13's lesion-mask step) and ``lesion_mask`` (``model/lesion_mask.py`` with its frozen defaults)."""
    from LongitudinalALLib.model.lesion_mask import lesion_mask_from_slices, threshold_mask_from_slices

    out = {}
    if "raw" in names:
        out["raw"] = threshold_mask_from_slices(probs, c.foreground, c.geometry)
    if "lesion_mask" in names:
        out["lesion_mask"] = lesion_mask_from_slices(probs, c.foreground, c.geometry, d["spacing"])
    return out


def score(model, d: dict, matching: str, mask_names=MASKS) -> dict[str, dict]:
    """MSSEG-2 style metrics and the first-suggestion hit rate of one model on one pair, per mask step;
    on a lesion-free pair also what each false lesion is (``false_lesions.describe``)."""
    from LongitudinalALLib.active.strategies.uncertainty import binary_entropy
    from LongitudinalALLib.active.triage import pair_probability
    from LongitudinalALLib.imaging.pairing import pair_slices
    from LongitudinalALLib.model import Predictor
    from LongitudinalALLib.model.lesion_mask import probability_volume
    from LongitudinalALLib.model.metrics import subject_metrics

    base, reg, fg = variant(d, matching)
    c = pair_slices(base, reg, fg, d["pair_id"], labels=d["truth"])
    probs = Predictor(model).predict(c.images)
    tissue = c.foreground.reshape(len(c.foreground), -1).mean(1) > 0.05
    ent = binary_entropy(torch.from_numpy(probs)).numpy() * c.foreground
    per_slice = ent.reshape(len(ent), -1).sum(1) / np.maximum(c.foreground.reshape(len(ent), -1).sum(1), 1)
    per_slice[~tissue] = -np.inf
    top = np.argsort(-per_slice, kind="stable")[:10]
    has = c.labels.reshape(len(c.labels), -1).any(1)
    hits = {"top10_hit": float(has[top].mean()), "tissue_share": float(has[tissue].mean())} if has.any() else {}
    prob_vol = None if d["truth"].any() else probability_volume(probs, c.foreground, c.geometry)
    triage = {"pair_probability": pair_probability(probs, c.foreground)}  # issue 15's triage score of the pair
    rows = {}
    for name, vol in masks(probs, c, d, mask_names).items():
        m = subject_metrics(d["pair_id"], vol, d["truth"] > 0)
        rows[name] = {"dice": m.dice, "lesion_f1": m.lesions.f1, "n_true": m.lesions.n_true,
                      "fp_lesions": m.lesions.false_positives,
                      "fp_volume_mm3": float(m.pred_voxels * np.prod(d["spacing"])) if not m.has_lesions else None,
                      "has_lesions": m.has_lesions} | hits | triage
        if prob_vol is not None:
            rows[name]["false_lesions"] = false_lesions.describe(vol, prob_vol, location_maps(d), d["spacing"])
    return rows


def location_maps(d: dict) -> tuple[np.ndarray, np.ndarray]:
    if "_maps" not in d:
        d["_maps"] = false_lesions.distance_maps(d["baseline"], d["foreground"], d["spacing"])
    return d["_maps"]


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


def triage_auroc(grid_types: dict) -> dict:
    """Per model/matching: AUROC of the pair's new-lesion probability for "holds a new lesion", all grids pooled."""
    from LongitudinalALLib.active.triage import auroc

    pooled: dict[str, list] = {}
    for res in grid_types.values():
        for key, entry in res["models"].items():
            pooled.setdefault(key.rsplit("/", 1)[0], []).extend(entry["pairs"])
    out = {}
    for key, rows in pooled.items():
        rows = list({r["pair"]: r for r in rows}.values())  # one row per pair (mask steps share the score)
        out[key] = {"auroc": auroc([r["pair_probability"] for r in rows], [r["has_lesions"] for r in rows]),
                    "pairs": len(rows), "lesion_pairs": sum(r["has_lesions"] for r in rows)}
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=6, help="pairs per grid type (even: half lesion-free)")
    ap.add_argument("--grid-types", default="iso1,axial3")
    ap.add_argument("--weights", default="bundled=" + str(ROOT / "Resources/Weights/change_unet.safetensors"))
    ap.add_argument("--matchings", default="histogram", help="follow-up matchings to score the models on")
    ap.add_argument("--masks", default=",".join(MASKS), help="lesion-mask steps to score side by side")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--name", default="model_heldout")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    from LongitudinalALLib.model import load_weights
    from LongitudinalALLib.model.lesion_mask import DEFAULT

    mask_names = tuple(args.masks.split(","))
    models = {k: load_weights(v) for k, v in (item.split("=", 1) for item in args.weights.split(",") if item)}
    t0 = time.perf_counter()
    out = {"command": "python Testing/benchmarks/model_heldout/bench_model_heldout.py " + " ".join(sys.argv[1:] if argv is None else argv),
           "machine": describe_machine(), "weights": args.weights, "metrics_note":
           "metrics.py lesion F1 with the MSSEG-2 detection rule (animaSegPerfAnalyzer alpha/beta/gamma)",
           "masks": {"raw": "p >= 0.5 on the model slices, nearest to the baseline grid",
                     "lesion_mask": "model/lesion_mask.py, defaults " + json.dumps(DEFAULT.to_dict())},
           "false_lesions_note": false_lesions.__doc__.split("\n\n", 1)[1].strip(), "grid_types": {}}
    for gt in args.grid_types.split(","):
        pairs = [prepared(i, gt) for i in range(args.n)]
        res = {"diff_signal": {}, "models": {}}
        for mt in MATCHINGS:
            res["diff_signal"][mt] = [diff_signal(d, mt) | {"pair": d["pair_id"]} for d in pairs]
        for mt in args.matchings.split(","):
            for name, model in models.items():
                scored = [score(model, d, mt, mask_names) for d in pairs]
                for mk in mask_names:
                    rows = [s[mk] | {"pair": d["pair_id"]} for s, d in zip(scored, pairs)]
                    fl = [f | {"pair": r["pair"]} for r in rows for f in r.pop("false_lesions", [])]
                    res["models"][f"{name}/{mt}/{mk}"] = {"summary": summarise(rows),
                                                          "false_lesions": {"by_location": false_lesions.table(fl),
                                                                            "components": fl},
                                                          "pairs": rows}
                    print(gt, f"{name}/{mt}/{mk}", res["models"][f"{name}/{mt}/{mk}"]["summary"], flush=True)
        out["grid_types"][gt] = res
    out["triage_auroc"] = triage_auroc(out["grid_types"])
    print("triage AUROC", out["triage_auroc"], flush=True)
    out["seconds"] = round(time.perf_counter() - t0, 1)
    write_results(args.name, out)
    return out


if __name__ == "__main__":
    main()
