#!/usr/bin/env python
"""Strategy and round-recipe variants on tuning families the learning-curve benchmark never uses (issue 15).

Why: a choice made on the benchmark's own pools (sim:1234, heldout:12) would be
tuned on the test. Here the pools are simulator families 777 and 778 (12 pairs
each, the CPU config's settings: 2 mm, 128 px, small network, 1 % per round,
5 rounds) and every model is scored on 16 further pairs of family 4321 (10 with
new lesions), so one lesion-bearing subject weighs less than in a 6-pair test
split. Each variant: fg_random first round (shared per seed and train recipe),
then 4 rounds of the variant. Full supervision per family (3 seeds, the
benchmark's recipe) gives the 95 % line.

    .venv/bin/python Testing/benchmarks/learning_curve/lc_tuning.py --variant base='{}' \\
        --variant ctx05='{"kwargs": {"context_weight": 0.5}}' --variant thr02='{"kwargs": {"threshold": 0.2}}' \\
        --variant steps1000='{"train": {"min_total_steps": 1000}}' --variant fg_random='{"strategy": "fg_random"}'

A variant is JSON: ``strategy`` (default clasp_pe), ``kwargs`` (strategy options; the noise schedule spans
the 4 query rounds), ``train`` (TrainConfig fields). Runs found in --work are reused (resumable).
Writes results/lc_tuning[_<tag>].json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import time
from dataclasses import replace
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]  # this benchmark's folder, then Testing/benchmarks/ (bench_common)
from bench_learning_curve import CONFIGS, prepare_families, round_train_config  # noqa: E402
from bench_common import RESULTS_DIR  # noqa: E402
from lc_grid import session_model  # noqa: E402

CPU = CONFIGS["cpu"]
SETTINGS = dict(size=CPU["size"], spacing_mm=CPU["spacing"])


def family(work: Path, seed: int, n_pairs: int):
    """Loader of the prepared cases (by splits) of simulator family ``seed``, generated once as the CPU grid does."""
    from LongitudinalALLib.active.simulate import load_cohort_cases

    cohort = Path(prepare_families([f"sim:{seed}"], {**CPU, "n_pairs": n_pairs}, work)[f"sim{seed}"])
    return lambda splits: load_cohort_cases(cohort, splits, cache_dir=cohort.parent / "prepared", **SETTINGS)


def run_variant(work: Path, fam: int, pool, test, seed: int, name: str, spec: dict) -> list[float]:
    from LongitudinalALLib.active.simulate import SimulationConfig, fork_simulation, run_simulation
    from LongitudinalALLib.commands.simulate import MODELS
    from LongitudinalALLib.model.training import TrainConfig

    train = TrainConfig.from_dict({**round_train_config(CPU).to_dict(), **spec.get("train", {})})
    n = math.ceil(CPU["label_pct"] / 100 * sum(len(o.slices.images) for o in pool))
    first = SimulationConfig(strategy="fg_random", rounds=1, per_round=n, initial=n, model=MODELS[CPU["model"]],
                             train=train, seed=seed, **SETTINGS)
    strategy = spec.get("strategy", "clasp_pe")
    cfg = replace(first, strategy=strategy, rounds=CPU["rounds"],
                  strategy_kwargs={**({"rounds": CPU["rounds"] - 1} if strategy == "clasp_pe" else {}),
                                   **spec.get("kwargs", {})})
    out = work / "runs" / f"{fam}_{name}_s{seed}"
    if not (out / "simulation.json").is_file():  # fork the first round shared by every variant of this recipe
        recipe = hashlib.sha256(json.dumps(spec.get("train", {}), sort_keys=True).encode()).hexdigest()[:8]
        init = work / "runs" / f"{fam}_init_{recipe}_s{seed}"
        if not (init / "simulation.json").is_file():
            run_simulation(init, pool, test, first)
        fork_simulation(init, out, cfg)
    rec = run_simulation(out, pool, test, cfg)
    return [r["metrics"]["dice"] for r in rec["rounds"]]


def full_supervision(work: Path, fam: int, pool, test, seed: int) -> float:
    from LongitudinalALLib.active.simulate import SimulationConfig, evaluate, train_full_supervision
    from LongitudinalALLib.commands.simulate import MODELS

    folder = work / "runs" / f"{fam}_full_s{seed}"
    model = session_model(folder)
    if model is not None:  # trained before: score its checkpoint
        return evaluate(model, test).dice
    train = replace(round_train_config(CPU), epochs=CPU["full_epochs"], patience=CPU["full_patience"])
    cfg = SimulationConfig(model=MODELS[CPU["model"]], train=train, seed=seed, **SETTINGS)
    return train_full_supervision(folder, pool, test, cfg)["metrics"]["dice"]


def main(argv=None) -> int:
    import numpy as np
    import torch

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--variant", action="append", required=True, metavar="NAME=JSON")
    p.add_argument("--families", default="777,778")
    p.add_argument("--seeds", default="0,1,2,3,4")
    p.add_argument("--work", default="/tmp/longitudinal_al_lc_tuning")
    p.add_argument("--tag", default="")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    t0, work = time.perf_counter(), Path(args.work)
    variants = {v.partition("=")[0]: json.loads(v.partition("=")[2] or "{}") for v in args.variant}
    seeds = [int(s) for s in args.seeds.split(",")]
    test = family(work, 4321, 16)(("train", "val", "test"))
    record = {"benchmark": "lc_tuning", "test": "sim4321 (16 pairs, every split)",
              "train": round_train_config(CPU).to_dict(),
              "variants": variants, "families": {}}
    for fam in (int(f) for f in args.families.split(",")):
        load = family(work, fam, CPU["n_pairs"])
        pool = load(("train", "val"))
        full = [full_supervision(work, fam, pool, test, s) for s in (0, 1, 2)]
        fam_out = {"full_supervision": {"per_seed": full, "mean": float(np.mean(full))}, "variants": {}}
        for name, spec in variants.items():
            curves = {s: run_variant(work, fam, pool, test, s, name, spec) for s in seeds}
            mean = np.mean(list(curves.values()), axis=0)
            fam_out["variants"][name] = {"per_seed": curves, "mean_curve": mean.round(4).tolist(),
                                         "final": float(mean[-1]), "final_pct_of_full": float(mean[-1] / np.mean(full)),
                                         "aubc": float(mean.mean())}
            print(f"{fam} {name:12s} " + " ".join(f"{x:.3f}" for x in mean) +
                  f"  final {mean[-1] / np.mean(full):.0%} of full {np.mean(full):.3f}", flush=True)
        record["families"][str(fam)] = fam_out
    names = list(variants)
    record["pooled"] = {n: {"final": float(np.mean([f["variants"][n]["final"] for f in record["families"].values()])),
                            "aubc": float(np.mean([f["variants"][n]["aubc"] for f in record["families"].values()]))}
                        for n in names}
    record["seconds"] = round(time.perf_counter() - t0, 1)
    out = RESULTS_DIR / f"lc_tuning{('_' + args.tag) if args.tag else ''}.json"
    out.write_text(json.dumps(record, indent=2) + "\n")
    for n in names:
        print(f"pooled {n:12s} final {record['pooled'][n]['final']:.3f}  AUBC {record['pooled'][n]['aubc']:.3f}")
    print(f"{record['seconds']:.0f} s -> {out.relative_to(HERE.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
