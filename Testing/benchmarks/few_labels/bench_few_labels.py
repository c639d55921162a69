#!/usr/bin/env python
"""One round on 2 contoured + 4 lesion-free slices, 10 seeds: does every seed learn? (issue 16)

The scenario of Testing/tests/test_training_few_labels.py at the product's
default step budget: a 4-pair 3 mm cohort (MNI anatomy, 4-6 new lesions per
pair, 64 px slices), per seed a fresh session, the TINY network from scratch,
``TrainConfig(epochs=15, lr=3e-3, crop_size=32)`` and otherwise the defaults
of the code it runs on (so the same script measures the code before and after
the fix). Prints and writes, per seed, the labelled lesion slices with a
predicted lesion pixel and the test Dice.

    .venv/bin/python Testing/benchmarks/few_labels/bench_few_labels.py --work /tmp/few_labels --tag after
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]  # this benchmark's folder, then Testing/benchmarks/ (bench_common)
sys.path.insert(0, str(HERE.parents[1] / "tests"))
from bench_common import RESULTS_DIR  # noqa: E402
from test_training_few_labels import TINY  # noqa: E402  (the test's scenario, imports no new API)
from test_training_few_labels import _pick as pick


def scenario(work: Path):
    """The test's cohort (made once under ``work``): pool and test cases."""
    from LongitudinalALLib.active.simulate import load_cohort_cases
    from LongitudinalALLib.cohort.generator import CohortOptions, generate_cohort
    from LongitudinalALLib.cohort.pair import SimulationOptions

    if not (work / "cohort" / "manifest.json").is_file():
        generate_cohort(work / "cohort", CohortOptions(n_pairs=4, seed=7, spacing_mm=3.0, anatomies=("mni",),
                        simulation=SimulationOptions(min_new_lesions=4, p_no_new=0.0)), overwrite=True)
    kw = dict(size=64, spacing_mm=3.0, cache_dir=work / "prepared")
    pool = load_cohort_cases(work / "cohort", ("train", "val"), **kw)
    return pool, load_cohort_cases(work / "cohort", ("test",), **kw)


def parse_args(argv, doc: str) -> argparse.Namespace:
    """The options both few-label benchmarks take."""
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("--work", default="/tmp/longitudinal_al_few_labels")
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--tag", default="")
    return p.parse_args(argv)


def setup(args: argparse.Namespace):
    """(work folder, pool, test) of the scenario, torch on one thread (a shared machine)."""
    import torch

    torch.set_num_threads(1)
    work = Path(args.work)
    return (work, *scenario(work))


def labelled_session(folder: Path, pool, seed: int):
    """A fresh session (tiny network from scratch) on ``pool`` with the few labels ``pick`` gives ``seed``."""
    from LongitudinalALLib.active.store import SessionStore

    s = SessionStore.create(folder, [oc.slices for oc in pool], seed=seed, model_config=TINY, init_weights="scratch",
                            overwrite=True)
    s.add_labels(pick(pool, seed))
    return s


def main(argv=None) -> int:
    args = parse_args(argv, __doc__)
    import torch

    from LongitudinalALLib.active.loop import ActiveLoop
    from LongitudinalALLib.active.simulate import evaluate
    from LongitudinalALLib.model.training import TrainConfig

    work, pool, test = setup(args)
    rows = []
    for seed in range(args.seeds):
        t = time.perf_counter()
        s = labelled_session(work / f"{args.tag or 'run'}_s{seed}", pool, seed)
        r = ActiveLoop(s).train(TrainConfig(epochs=15, lr=3e-3, crop_size=32, device="cpu", seed=seed))
        m, a = ActiveLoop(s).current_model(), ActiveLoop(s).training_arrays()
        with torch.no_grad():
            pred = torch.sigmoid(m(torch.from_numpy(a["train_images"])))[:, 0].numpy() >= 0.5
        les = a["train_labels"].reshape(len(pred), -1).any(1)
        summary = r.summary()
        row = {"seed": seed, "lesion_slices": int(les.sum()),
               "lesion_slices_hit": int(pred[les].reshape(int(les.sum()), -1).any(1).sum()),
               "test_dice": evaluate(m, test).dice, "steps": summary.get("steps"),
               "collapse": summary.get("collapse", {}).get("outcome"), "seconds": round(time.perf_counter() - t, 1)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    dice = [r["test_dice"] for r in rows]
    out = {"benchmark": "few_labels", "tag": args.tag, "rows": rows, "mean_test_dice": float(np.mean(dice)),
           "seeds_test_dice_0": sum(d <= 0 for d in dice),
           "seeds_no_lesion_on_labelled": sum(r["lesion_slices_hit"] == 0 for r in rows)}
    print(f"mean test Dice {out['mean_test_dice']:.3f}; seeds with test Dice 0: {out['seeds_test_dice_0']}; "
          f"seeds predicting no lesion on their labelled slices: {out['seeds_no_lesion_on_labelled']}")
    RESULTS_DIR.mkdir(exist_ok=True)
    name = "few_labels" + (f"_{args.tag}" if args.tag else "")
    (RESULTS_DIR / f"{name}.json").write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
