"""Bundled weights side by side on the two shared real pairs and on the held-out family, in one run.

Real pairs: open_ms_data patient03 and patient12 (Lesjak et al., Neuroinformatics 2016, CC-BY), read
from ``../shared/data/open_ms_data`` (one skip line when absent). Each goes through the product's
``prepare_pair`` with its defaults (256 px at 1 mm slices), the model, and the product's lesion-mask
step (``model/lesion_mask.py``; ``raw`` p >= 0.5 beside it). Truth: the new-or-enlarging components of
the change mask on the baseline grid (``real_pairs.py``); a predicted lesion that touches no new lesion
is a false lesion, and those lying on a shrinking lesion are counted apart. Target (issue 24): lesion
F1 >= 0.45 with <= 1 false lesion per pair. The held-out family (``bench_model_heldout.py``, frozen,
Colin27) is scored for the same weights in the same run (``--heldout-n`` pairs per grid type; 0 = off).

Run:  python Testing/benchmarks/bench_real_weights.py --weights old=/tmp/old.safetensors,new=Resources/Weights/change_unet.safetensors
JSON: Testing/benchmarks/results/<--name>.json
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parent / "model_heldout")]
import real_pairs  # noqa: E402
from bench_common import describe_machine, write_results  # noqa: E402

sys.path.insert(0, str(real_pairs.ROOT / "LongitudinalAL"))
import bench_model_heldout as heldout_bench  # noqa: E402


def score_real(model, d: dict) -> dict[str, dict]:
    """Per mask step: Dice, lesion F1 (MSSEG-2 rule), true / predicted lesions, false lesions (on shrinking)."""
    from LongitudinalALLib.imaging.pairing import pair_slices
    from LongitudinalALLib.model import Predictor
    from LongitudinalALLib.model.metrics import subject_metrics

    base, reg, fg = heldout_bench.variant(d, "histogram")
    c = pair_slices(base, reg, fg, d["pair_id"], labels=d["truth"])
    probs = Predictor(model).predict(c.images)
    out = {}
    for name, vol in heldout_bench.masks(probs, c, d, heldout_bench.MASKS).items():
        m = subject_metrics(d["pair_id"], vol, d["truth"] > 0)
        lab, n = ndimage.label(vol > 0, real_pairs.STRUCT26)
        ids = np.arange(1, n + 1)
        on_new = ndimage.maximum(d["truth"] > 0, lab, ids) if n else np.zeros(0)
        on_shrink = ndimage.maximum(d["shrinking"] > 0, lab, ids) if n else np.zeros(0)
        out[name] = {"dice": m.dice, "lesion_f1": m.lesions.f1, "n_true": m.lesions.n_true,
                     "n_pred": int(n), "fp_lesions": m.lesions.false_positives,
                     "fp_on_shrinking": int(np.sum((on_new == 0) & (on_shrink > 0))),
                     "pred_voxels": int(m.pred_voxels)}
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", default="bundled=" + str(real_pairs.ROOT / "Resources/Weights/change_unet.safetensors"))
    ap.add_argument("--heldout-n", type=int, default=10, help="held-out pairs per grid type (0 = real pairs only)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--name", default="real_weights")
    args = ap.parse_args(argv)
    if real_pairs.absent():
        return {}
    torch.set_num_threads(args.threads)
    from LongitudinalALLib.model import load_weights

    models = {k: load_weights(v) for k, v in (item.split("=", 1) for item in args.weights.split(",") if item)}
    t0 = time.perf_counter()
    out = {"command": "python Testing/benchmarks/bench_real_weights.py " + " ".join(sys.argv[1:] if argv is None else argv),
           "data": real_pairs.CITATION, "machine": describe_machine(), "weights": args.weights,
           "truth": "new-or-enlarging components of gt.nii.gz on the baseline grid (real_pairs.split_change)",
           "real": {}, "heldout": {}}
    pairs = [real_pairs.prepared_real_pair(p) for p in real_pairs.PATIENTS]
    for name, model in models.items():
        for mk in heldout_bench.MASKS:
            out["real"][f"{name}/{mk}"] = {"pairs": {}}
        for d in pairs:
            for mk, row in score_real(model, d).items():
                out["real"][f"{name}/{mk}"]["pairs"][d["pair_id"]] = row
        for mk in heldout_bench.MASKS:
            entry = out["real"][f"{name}/{mk}"]
            rows = list(entry["pairs"].values())
            entry["mean"] = {k: float(np.mean([r[k] for r in rows])) for k in ("dice", "lesion_f1", "fp_lesions")}
            entry["target_met"] = all(r["lesion_f1"] >= 0.45 and r["fp_lesions"] <= 1 for r in rows)
            print("real", f"{name}/{mk}", entry["mean"], {p: (round(r["lesion_f1"], 3), r["fp_lesions"], r["n_pred"])
                                                          for p, r in entry["pairs"].items()}, flush=True)
    if args.heldout_n:
        for gt in ("iso1", "axial3"):
            hp = [heldout_bench.prepared(i, gt) for i in range(args.heldout_n)]
            res = {}
            for name, model in models.items():
                scored = [heldout_bench.score(model, d, "histogram") for d in hp]
                for mk in heldout_bench.MASKS:
                    rows = [s[mk] | {"pair": d["pair_id"]} for s, d in zip(scored, hp)]
                    for r in rows:
                        r.pop("false_lesions", None)
                    res[f"{name}/{mk}"] = {"summary": heldout_bench.summarise(rows), "pairs": rows}
                    print("heldout", gt, f"{name}/{mk}", res[f"{name}/{mk}"]["summary"], flush=True)
            out["heldout"][gt] = res
    out["seconds"] = round(time.perf_counter() - t0, 1)
    write_results(args.name, out)
    return out


if __name__ == "__main__":
    main()
