"""Choose the lesion-mask step's parameters (``model/lesion_mask.py``) on the TRAINING family only.

Why here: the held-out family (``cohort/heldout.py``) must stay unseen by any
choice, so the peak (hysteresis) threshold and the minimum lesion volume are
chosen on fresh draws of the domain-randomised training family
(``cohort/randomise.py``, prepared exactly as ``Resources/Weights/train_bundled.py``
prepares them, with a family seed the weights never saw).

Each pair is predicted once by the bundled weights; its components at the voxel
threshold are matched to the truth once (``metrics.overlap_table``); every
candidate then only drops whole components, so it is scored from the table.

Rule: take the candidate with the highest pooled MSSEG-2 lesion F1 over all
pairs (lesion counts summed over pairs, so a false lesion on a lesion-free pair
lowers precision exactly as a missed lesion lowers recall) among those that
keep the mean lesion recall of the lesion pairs within ``MAX_RECALL_LOSS`` of
the raw threshold's; then the highest mean Dice, then the mildest (lowest peak,
then lowest volume). Issue 13's false-lesion targets are reported for the
choice, not used to choose.

History, kept honest: the first rule was the pooled F1 alone (written before
any figure). On 30 pairs of seed 2027 it chose the grid's largest volume
(150 mm^3) at half the raw recall (0.53 -> 0.27): on this family the model's
false lesions outnumber its true ones, so pooled F1 pays for each false lesion
with real lesions; a step that drops half of the new lesions is no product
default (``results/lesion_mask_tuning_first_rule.json``). The recall bound was
added after seeing that, and the peak grid was extended past 0.95;
``first_rule`` in the JSON is what the first rule picks on the extended grid.

    python Resources/Weights/train_bundled.py --work /tmp/fp_tune --family-seed 2027 --n-pairs 27 --n-val 3 --prepare-only
    python Testing/benchmarks/model_heldout/tune_lesion_mask.py --work /tmp/fp_tune --family-seed 2027
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "LongitudinalAL"))
HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]  # this benchmark's folder, then Testing/benchmarks/ (bench_common)

from bench_common import describe_machine, write_results  # noqa: E402

PEAKS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.97, 0.99)
MAX_RECALL_LOSS = 0.05  # mean lesion recall the step may cost against the raw threshold
TRAINING_SEED = 1313  # train_bundled.py's family seed: the weights saw these draws
MIN_VOLUMES_MM3 = (3.0, 5.0, 10.0, 15.0, 20.0, 30.0, 50.0, 75.0, 100.0, 150.0)


def _train_bundled():
    spec = importlib.util.spec_from_file_location("train_bundled", ROOT / "Resources/Weights/train_bundled.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def pair_record(model, path: Path, matching: str) -> dict:
    """One prepared pair -> its component table (truth x predicted), component volumes and peaks."""
    from LongitudinalALLib.model import Predictor
    from LongitudinalALLib.model.lesion_mask import components
    from LongitudinalALLib.model.metrics import connected_lesions, overlap_table

    c = _train_bundled().case_slices(path, matching)
    with np.load(path) as z:
        truth, spacing = z["truth"] > 0, z["spacing"]
        params = json.loads(str(z["params"]))
    probs = Predictor(model).predict(c.images) * (c.foreground > 0)
    comps = components(c.geometry.to_volume(probs.astype(np.float32), order=1), spacing)
    lab_t, n_t = connected_lesions(truth)
    return {"pair": path.stem, "table": overlap_table(lab_t, n_t, comps.labels, comps.n),
            "volume_mm3": comps.volume_mm3, "peak": comps.peak, "has_lesions": bool(n_t),
            "spacing": [float(v) for v in spacing], "thick": float(max(spacing)) > 1.5,
            "grids": params.get("grids")}


def score(rec: dict, peak: float, min_volume: float) -> dict:
    """Dice, lesion F1 and false lesions of one pair when only the passing components are kept."""
    from LongitudinalALLib.model.metrics import counts_from_table, keep_predicted

    table = keep_predicted(rec["table"], (rec["peak"] >= peak) & (rec["volume_mm3"] >= min_volume))
    inter, pred, true = table[1:, 1:].sum(), table[:, 1:].sum(), table[1:, :].sum()
    counts = counts_from_table(table)
    return {"dice": 1.0 if pred + true == 0 else float(2 * inter / (pred + true)), "lesion_f1": counts.f1,
            "fp_lesions": counts.false_positives, "recall": counts.recall if counts.n_true else None,
            "counts": counts}


def summary(recs: list[dict], peak: float, min_volume: float) -> dict:
    from LongitudinalALLib.model.metrics import LesionCounts

    rows = [score(r, peak, min_volume) | {"has_lesions": r["has_lesions"]} for r in recs]
    les = [r for r in rows if r["has_lesions"]]
    fp = np.array([r["fp_lesions"] for r in rows if not r["has_lesions"]], float)
    pooled = sum((r["counts"] for r in rows), LesionCounts(0, 0, 0, 0))
    return {"peak": peak, "min_volume_mm3": min_volume, "pooled_f1": pooled.f1,
            "dice": float(np.mean([r["dice"] for r in les])) if les else None,
            "lesion_f1": float(np.mean([r["lesion_f1"] for r in les])) if les else None,
            "recall": float(np.mean([r["recall"] for r in les])) if les else None,
            "fp_median": float(np.median(fp)) if fp.size else None,
            "fp_p90": float(np.percentile(fp, 90)) if fp.size else None}


def _order(r: dict) -> tuple:
    return -r["pooled_f1"], -(r["dice"] or 0), r["peak"], r["min_volume_mm3"]


def choose(rows: list[dict], raw_recall: float) -> dict:
    """The module docstring's rule."""
    return min((r for r in rows if r["recall"] >= raw_recall - MAX_RECALL_LOSS), key=_order)


def choose_first_rule(rows: list[dict]) -> dict:
    """The first rule (pooled F1 alone), kept to show why it was replaced."""
    return min(rows, key=_order)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", required=True, help="train_bundled.py --work folder with prepared/r<seed>_*.npz")
    ap.add_argument("--family-seed", type=int, required=True)
    ap.add_argument("--weights", default=str(ROOT / "Resources/Weights/change_unet.safetensors"))
    ap.add_argument("--matching", default="histogram")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--name", default="lesion_mask_tuning")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    from LongitudinalALLib.model import load_weights

    machine = describe_machine()
    paths = sorted(Path(args.work, "prepared").glob(f"r{args.family_seed}_*.npz"))
    if args.family_seed == TRAINING_SEED or not paths:
        raise SystemExit(f"need fresh training draws (seed {args.family_seed}: {len(paths)} pairs; "
                         f"{TRAINING_SEED} made the weights)")
    t0 = time.perf_counter()
    model = load_weights(args.weights)
    recs = [pair_record(model, p, args.matching) for p in paths]
    grid = [summary(recs, pk, mv) for pk in PEAKS for mv in MIN_VOLUMES_MM3]
    raw = summary(recs, 0.0, 0.0)
    best = choose(grid, raw["recall"])
    groups = {name: [r for r in recs if r["thick"] == thick] for name, thick in (("thin", False), ("thick", True))}
    out = {"command": "python Testing/benchmarks/model_heldout/tune_lesion_mask.py " + " ".join(sys.argv[1:] if argv is None else argv),
           "machine": machine, "family": "cohort/randomise.py", "family_seed": args.family_seed,
           "weights": args.weights, "matching": args.matching, "voxel_threshold": 0.5,
           "rule": __doc__.split("Rule: ")[1].split("\n\n")[0].replace("\n", " "),
           "rule_history": __doc__.split("History, kept honest: ")[1].split("\n\n")[0].replace("\n", " "),
           "n_pairs": len(recs), "n_lesion_free": sum(not r["has_lesions"] for r in recs),
           "max_recall_loss": MAX_RECALL_LOSS, "raw": raw, "chosen": best,
           "first_rule": choose_first_rule(grid),
           "by_thickness": {k: {"n_pairs": len(v), "raw": summary(v, 0.0, 0.0) if v else None,
                                "chosen": summary(v, best["peak"], best["min_volume_mm3"]) if v else None}
                            for k, v in groups.items()},
           "grid": grid,
           "pairs": [{"pair": r["pair"], "has_lesions": r["has_lesions"], "spacing": r["spacing"],
                      "n_components": len(r["peak"])} for r in recs],
           "seconds": round(time.perf_counter() - t0, 1)}
    print(json.dumps({k: out[k] for k in ("n_pairs", "n_lesion_free", "raw", "chosen", "first_rule", "by_thickness")}, indent=1))
    write_results(args.name, out)
    return out


if __name__ == "__main__":
    main()
