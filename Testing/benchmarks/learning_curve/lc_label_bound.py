#!/usr/bin/env python
"""What limits a learning curve at 5 %: which slices were labelled, or how long each round trained? (issue 15)

Reads a finished ``bench_learning_curve.py`` grid (its work folder) and, for one
family and strategy, trains on fixed labelled sets from scratch with two step
budgets (the round's 200 and the ~2000 full supervision takes):

* ``al_final``: the strategy's final model as the grid left it (warm-started rounds);
* ``al_labels``: the strategy's final labelled set (every seed's own);
* ``every_lesion_slice``: every pool slice with a new lesion, filled up to the
  same label count with random lesion-free slices (a query that found every
  lesion slice; an upper bound of what any strategy could label).

Every model is scored on the family's test split and, with ``--extra``, on a
larger cohort of the same family kind (more lesion-bearing subjects, less
noise), against full supervision's checkpoints of the grid scored the same way.

    .venv/bin/python Testing/benchmarks/learning_curve/lc_label_bound.py --work /tmp/lc15/cpu --family sim1234 \\
        --extra /tmp/longitudinal_al_lc_tuning/sim4321 --tag sim1234
Writes results/lc_label_bound[_<tag>].json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]  # this benchmark's folder, then Testing/benchmarks/ (bench_common)
from bench_common import RESULTS_DIR  # noqa: E402
from lc_grid import session_model  # noqa: E402


def _cases(folder: Path, splits, cfg: dict):
    from LongitudinalALLib.active.simulate import load_cohort_cases

    return load_cohort_cases(folder / "cohort", splits, size=cfg["size"], spacing_mm=cfg["spacing_mm"],
                             cache_dir=folder / "prepared")


def _train(out: Path, pool, answers, cfg: dict, seed: int, steps: int):
    """A fresh session holding ``answers`` [(case_id, slice_index, mask)], one round from scratch."""
    from LongitudinalALLib.active.loop import ActiveLoop
    from LongitudinalALLib.active.policy import training_seed
    from LongitudinalALLib.active.store import SessionStore
    from LongitudinalALLib.model.training import TrainConfig

    if out.exists():
        shutil.rmtree(out)
    store = SessionStore.create(out, [oc.slices for oc in pool], strategy="random", seed=seed,
                                model_config=cfg["model"], init_weights="scratch")
    store.add_labels(answers)
    loop = ActiveLoop(store)
    train = TrainConfig.from_dict({**cfg["train"], "epochs": max(cfg["train"]["epochs"], steps // 40),
                                   "min_total_steps": steps, "seed": training_seed(seed, 1)})
    result = loop.train(loop.train_config(**train.to_dict()))
    return loop.current_model(), result.summary()


def main(argv=None) -> int:
    import torch

    from LongitudinalALLib.active.simulate import evaluate
    from LongitudinalALLib.active.store import SessionStore

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", required=True, help="the grid's work folder (…/<config>)")
    p.add_argument("--family", default="sim1234")
    p.add_argument("--strategy", default="clasp_pe")
    p.add_argument("--seeds", default="0,1,2,3,4")
    p.add_argument("--steps", default="200,2000")
    p.add_argument("--extra", default=None, help="a prepared cohort folder (cohort/, prepared/) scored as well")
    p.add_argument("--scratch", default="/tmp/longitudinal_al_lc_label_bound")
    p.add_argument("--tag", default="")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    t0, fam = time.perf_counter(), Path(args.work) / args.family
    seeds, budgets = [int(s) for s in args.seeds.split(",")], [int(s) for s in args.steps.split(",")]
    cfg = json.loads((fam / f"{args.strategy}_s{seeds[0]}" / "simulation.json").read_text())["config"]
    pool, tests = _cases(fam, ("train", "val"), cfg), {"test": _cases(fam, ("test",), cfg)}
    if args.extra:
        tests["extra"] = _cases(Path(args.extra), ("train", "val", "test"), cfg)

    def score(model) -> dict:
        return {name: evaluate(model, cases).dice for name, cases in tests.items()}

    lesion = [(oc.slices.case_id, pr.slice_index, lab) for oc in pool
              for pr, lab in zip(oc.slices.provenance, oc.slices.labels) if lab.any()]
    free = [(oc.slices.case_id, pr.slice_index, lab) for oc in pool
            for pr, lab in zip(oc.slices.provenance, oc.slices.labels) if not lab.any()]
    full = {s: score(m) for s in range(3) if (m := session_model(fam / f"full_s{s}")) is not None}
    arms: dict[str, dict] = {"al_final": {}, **{f"{a}_{n}_steps": {} for a in ("al_labels", "every_lesion_slice")
                                                for n in budgets}}
    for seed in seeds:
        run = fam / f"{args.strategy}_s{seed}"
        arms["al_final"][seed] = score(session_model(run))
        src = SessionStore.open(run)
        have = [(r.case_id, r.slice_index, src.label(r.case_id, r.slice_index)) for r in src.labels()]
        rng = np.random.default_rng(seed)
        every = lesion + [free[i] for i in rng.choice(len(free), max(0, len(have) - len(lesion)), replace=False)]
        for n in budgets:
            for arm, answers in (("al_labels", have), ("every_lesion_slice", every)):
                model, summary = _train(Path(args.scratch) / f"{arm}_{n}_s{seed}", pool, answers, cfg, seed, n)
                arms[f"{arm}_{n}_steps"][seed] = {**score(model), "labels": len(answers),
                                                  "lesion_slices": sum(int(np.any(a[2])) for a in answers),
                                                  "steps": summary["steps"]}
        print(f"seed {seed}: " + ", ".join(f"{k} {v[seed]['test']:.3f}" for k, v in arms.items()), flush=True)
    ref = {t: float(np.mean([f[t] for f in full.values()])) for t in tests}
    summary = {k: {t: {"mean": float(np.mean([v[s][t] for s in seeds])),
                       "pct_of_full": float(np.mean([v[s][t] for s in seeds]) / ref[t])} for t in tests}
               for k, v in arms.items()}
    record = {"benchmark": "lc_label_bound", "work": str(fam), "strategy": args.strategy, "seeds": seeds,
              "pool_slices": len(lesion) + len(free), "pool_lesion_slices": len(lesion),
              "tests": {t: len(c) for t, c in tests.items()}, "full_supervision": {"per_seed": full, "mean": ref},
              "arms": {k: {str(s): r for s, r in v.items()} for k, v in arms.items()}, "summary": summary,
              "seconds": round(time.perf_counter() - t0, 1)}
    out = RESULTS_DIR / f"lc_label_bound{('_' + args.tag) if args.tag else ''}.json"
    out.write_text(json.dumps(record, indent=2) + "\n")
    print("full supervision: " + ", ".join(f"{t} {v:.3f}" for t, v in ref.items()))
    for k, v in summary.items():
        print(f"{k:28s} " + "  ".join(f"{t} {x['mean']:.3f} ({x['pct_of_full']:.0%})" for t, x in v.items()))
    print(f"{record['seconds']:.0f} s -> {out.relative_to(HERE.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
