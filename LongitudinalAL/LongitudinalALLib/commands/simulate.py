"""``longitudinal-al simulate``: the active-learning loop with an oracle on a cohort."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from LongitudinalALLib.active.policy import DEFAULT_STRATEGY
from LongitudinalALLib.commands.train import add_train_options, train_config

HELP = ("Simulate active learning on a cohort with ground truth: the oracle labels the suggested "
        "slices, a model is trained each round and scored on the test pairs.")

MODELS = {
    "small": {"channels": [8, 16, 32, 64], "strides": [2, 2, 2], "num_res_units": 1, "head_features": 8},
    "default": None,
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cohort", required=True, help="cohort folder (from make-cohort)")
    p.add_argument("--strategy", default=DEFAULT_STRATEGY, help=f"query strategy (default {DEFAULT_STRATEGY})")
    p.add_argument("--rounds", type=int, default=3, help="rounds (default 3)")
    p.add_argument("--per-round", type=int, default=10, help="slices labelled per round (default 10)")
    p.add_argument("--initial", type=int, default=None, help="slices in round 1 (default: --per-round)")
    p.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    p.add_argument("--out", default=None, help="session folder (default <cohort>/simulations/<strategy>_s<seed>)")
    p.add_argument("--init-weights", default="bundled", metavar="bundled|scratch|PATH",
                   help="starting model of round 1: the bundled weights (default, what the Slicer module uses), "
                        "a fresh network (scratch) or a .safetensors file")
    p.add_argument("--size", type=int, default=None,
                   help="slice size in pixels (default: 256 from bundled weights or a file, as the Slicer module; "
                        "128 from scratch)")
    p.add_argument("--spacing", type=float, default=None,
                   help="in-plane pixel size in mm (default: 1 from bundled weights or a file, 2 from scratch)")
    p.add_argument("--model", choices=sorted(MODELS), default=None,
                   help="network size (default: the weights' own network; small from scratch)")
    p.add_argument("--seconds-per-label", type=float, default=None, metavar="S",
                   help="budget each round by the annotator's time, as when rounds train while she labels: "
                        "the round's new labels x S seconds, in optimiser steps at the rate measured on this "
                        "machine at the start (recorded in simulation.json as time_budget); default: the "
                        "recipe's own budget")
    p.add_argument("--json", action="store_true", help="print the whole record as JSON at the end")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_train_options(p, epochs=15)


def _fmt(x: float) -> str:
    return "  n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"


def _start(args: argparse.Namespace) -> tuple[str, dict | None]:
    """(init_weights, model config) from the options; fills the size and spacing defaults of that start."""
    from LongitudinalALLib.core.errors import InputError
    from LongitudinalALLib.model.weights import read_weights_info

    init = args.init_weights
    scratch = init == "scratch"
    if not scratch and init != "bundled":
        init = str(Path(init).expanduser().resolve())
        read_weights_info(init)  # one clear line when the file is missing or not LongitudinalAL weights
    if not scratch and args.model == "small":
        raise InputError(f"--model small cannot start from {args.init_weights} weights (they hold their own "
                         "network).", "Leave --model out, or use --init-weights scratch.")
    args.size = args.size or (128 if scratch else 256)
    args.spacing = args.spacing or (2.0 if scratch else 1.0)
    return init, MODELS[args.model or "small"] if scratch else None


def run(args: argparse.Namespace) -> int:
    from LongitudinalALLib.active.simulate import SimulationConfig, load_cohort_cases, run_simulation
    from LongitudinalALLib.active.strategies import available_strategies
    from LongitudinalALLib.core.errors import InputError
    from LongitudinalALLib.core.progress import TqdmProgress

    if args.strategy not in available_strategies():
        raise InputError(f"Unknown strategy {args.strategy!r}.", f"Choose one of: {', '.join(available_strategies())}.")
    if args.rounds < 1 or args.per_round < 1:
        raise InputError("--rounds and --per-round must be at least 1.", "Give positive numbers.")
    if args.seconds_per_label is not None and not 0 < args.seconds_per_label <= 3600:
        raise InputError(f"--seconds-per-label is {args.seconds_per_label}.",
                         "Give the annotator's seconds per slice, e.g. 15 (at most 3600).")
    init, model = _start(args)
    cohort = Path(args.cohort)
    out = Path(args.out) if args.out else cohort / "simulations" / f"{args.strategy}_s{args.seed}"
    cfg = SimulationConfig(strategy=args.strategy, rounds=args.rounds, per_round=args.per_round,
                           initial=args.initial, seed=args.seed, size=args.size, spacing_mm=args.spacing,
                           model=model, init_weights=init, train=train_config(args, args.seed),
                           seconds_per_label=args.seconds_per_label)
    bar = TqdmProgress(disable=args.quiet or args.json)
    try:
        cache = cohort / "simulations" / "prepared_cache"
        pool = load_cohort_cases(cohort, ("train", "val"), size=args.size, spacing_mm=args.spacing,
                                 seed=args.seed, cache_dir=cache, progress=bar)
        test = load_cohort_cases(cohort, ("test",), size=args.size, spacing_mm=args.spacing,
                                 seed=args.seed, cache_dir=cache, progress=bar)
    finally:
        bar.close()
    n_slices = sum(len(oc.slices.images) for oc in pool)
    if not args.json:
        print(f"pool: {len(pool)} pairs, {n_slices} slices; test: {len(test)} pairs; strategy {args.strategy}")
        print("round  labels  %pool  contoured  Dice   lesionF1  precision  recall  FP/lesion-free")

    def log(row: dict) -> None:
        if args.json:
            return
        m = row["metrics"]
        if "train" not in row:
            print(f"{0:5d}  {0:6d}  {0:5.1f}  {0:9d}  {_fmt(m['dice'])}  {_fmt(m['lesion_f1'])}     "
                  f"{_fmt(m['lesion_precision'])}      {_fmt(m['lesion_recall'])}   "
                  f"{_fmt(m['fp_lesions_lesion_free'])}  (the starting model)", flush=True)
            return
        print(f"{row['round']:5d}  {row['labels']:6d}  {100 * row['fraction']:5.1f}  {row['contoured']:9d}  "
              f"{_fmt(m['dice'])}  {_fmt(m['lesion_f1'])}     {_fmt(m['lesion_precision'])}      "
              f"{_fmt(m['lesion_recall'])}   {_fmt(m['fp_lesions_lesion_free'])}", flush=True)
        for w in row["train"].get("warnings", []):
            print(f"       warning: {w}", flush=True)

    record = run_simulation(out, pool, test, cfg, log=log)
    if record.get("time_budget") and not args.json:
        tb = record["time_budget"]
        print(f"time budget: {tb['seconds_per_label']:g} s per label at {tb['steps_per_second']:.2f} optimiser "
              f"steps/s measured on this machine; steps per round: {[r['train'].get('steps') for r in record['rounds']]}")
    if args.json:
        print(json.dumps({k: v for k, v in record.items()}, indent=2, default=str))
    else:
        print(f"session and simulation.json in {out}")
    return 0
