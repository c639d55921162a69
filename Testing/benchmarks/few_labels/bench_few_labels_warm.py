#!/usr/bin/env python
"""The round after issue 16's few-label round: does a warm start on the smaller budget (issue 14) still learn?

Scenario of bench_few_labels.py (4-pair 3 mm MNI cohort, 64 px, TINY network,
``TrainConfig(epochs=15, lr=3e-3, crop_size=32)``): per seed a session from
scratch labels 2 contoured + 4 lesion-free slices and trains round 1 (cold: the
200-step floor). Then 6 more slices drawn the same way are labelled and round 2
is trained twice from round 1's weights on the same arrays: ``before`` without a
warm budget (200 steps again) and ``after`` with ``warm_min_total_steps=100`` (the
warm budget when round 1's model already finds the labelled lesions). Per seed and
recipe: starting Dice, steps, budget rule, collapse outcome, labelled lesion
slices hit and test Dice; summary: seeds that collapsed or reached test Dice 0,
mean test Dice, and the paired difference after - before.

    .venv/bin/python Testing/benchmarks/few_labels/bench_few_labels_warm.py --work /tmp/few_labels --seeds 10
"""

from __future__ import annotations

import copy
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]  # this benchmark's folder, then Testing/benchmarks/ (bench_common)
from bench_common import RESULTS_DIR  # noqa: E402
from bench_few_labels import labelled_session, parse_args, pick, setup  # noqa: E402

RECIPES = {"before": {"warm_min_total_steps": None}, "after": {"warm_min_total_steps": 100}}


def round_two(model, arrays, test, cfg) -> dict:
    """Train a copy of ``model`` on the session arrays with ``cfg``; what it learned."""
    from LongitudinalALLib.active.simulate import evaluate
    from LongitudinalALLib.model.training import train_model

    m = copy.deepcopy(model)
    val = len(arrays["val_images"]) > 0
    t = time.process_time()
    r = train_model(m, arrays["train_images"], arrays["train_labels"], arrays["val_images"] if val else None,
                    arrays["val_labels"] if val else None, cfg, train_foreground=arrays["train_fg"])
    s = r.summary()
    return {"start_dice": s["start_dice"], "steps": s["steps"], "budget_rule": s["budget_rule"],
            "collapse": s["collapse"].get("outcome"),
            "lesion_slices_hit": s["collapse"].get("check", {}).get("slices_hit"),
            "test_dice": evaluate(m, test).dice, "cpu_s": round(time.process_time() - t, 2)}


def main(argv=None) -> int:
    args = parse_args(argv, __doc__)

    from LongitudinalALLib.active.loop import ActiveLoop
    from LongitudinalALLib.model.training import TrainConfig

    work, pool, test = setup(args)
    rows = []
    for seed in range(args.seeds):
        s = labelled_session(work / f"warm{args.tag}_s{seed}", pool, seed)
        base = dict(epochs=15, lr=3e-3, crop_size=32, device="cpu", seed=seed)
        ActiveLoop(s).train(TrainConfig(**base))
        done = {(c, i) for c, i, _ in pick(pool, seed)}
        for case_id, slice_index, truth in pick(pool, seed + 1000):
            if (case_id, slice_index) not in done:
                s.add_label(case_id, slice_index, truth)
        model, arrays = ActiveLoop(s).current_model(), ActiveLoop(s).training_arrays()
        row = {"seed": seed, "labels": s.budget()["total"]["labelled"], "contoured": s.budget()["total"]["contoured"],
               **{name: round_two(model, arrays, test, TrainConfig(**base, **kw)) for name, kw in RECIPES.items()}}
        rows.append(row)
        print(json.dumps(row), flush=True)
    out = {"benchmark": "few_labels_warm", "tag": args.tag, "rows": rows, "load_average_end": list(os.getloadavg())}
    for name in RECIPES:
        dice = [r[name]["test_dice"] for r in rows]
        out[name] = {"mean_test_dice": float(np.mean(dice)), "min_test_dice": float(np.min(dice)),
                     "seeds_test_dice_0": sum(d <= 0 for d in dice),
                     "seeds_collapsed": sum(r[name]["collapse"] not in ("ok", None) for r in rows),
                     "mean_steps": float(np.mean([r[name]["steps"] for r in rows])),
                     "cpu_s": float(np.sum([r[name]["cpu_s"] for r in rows]))}
        print(f"{name}: {out[name]}")
    d = np.array([r["after"]["test_dice"] - r["before"]["test_dice"] for r in rows])
    out["after_minus_before_test_dice"] = {"mean": float(d.mean()), "std": float(d.std()),
                                           "wins": int((d > 0).sum()), "losses": int((d < 0).sum())}
    print(f"after - before test Dice: {out['after_minus_before_test_dice']}")
    name = "few_labels_warm" + (f"_{args.tag}" if args.tag else "")
    RESULTS_DIR.mkdir(exist_ok=True)
    (RESULTS_DIR / f"{name}.json").write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
