#!/usr/bin/env python
"""Learning curves of every query strategy against full supervision (oracle simulation).

For each seed: one simulated cohort split into pool (train+val pairs) and test
pairs; round 1 labels the same foreground-random initial set for every
strategy (trained once, then forked); later rounds follow each strategy. A
full-supervision model is trained on the whole pool with the same recipe.
Reported per strategy (mean +- std over seeds): per-subject foreground-only
Dice, lesion-wise F1/precision/recall, FP lesions on lesion-free test pairs,
the normalised area under the Dice-vs-labelled-fraction curve, and the
labelled fraction needed to reach 95 % of full-supervision Dice.

    .venv/bin/python Testing/benchmarks/bench_learning_curve.py --config cpu
    .venv/bin/python Testing/benchmarks/bench_learning_curve.py --config gpu --work /scratch/lc

Writes results/learning_curve_<config>.json and .png.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent

CONFIGS = {
    # ~15 min target on 2 CPU cores: small cohort at 2 mm, 128x128 slices, small network, short rounds
    "cpu": dict(n_pairs=8, spacing=2.0, size=128, model="small", rounds=4, initial=6, per_round=6,
                epochs=15, steps=None, min_steps=10, batch=8, crop=64, lr=3e-3, patience=5, mc_passes=4,
                seeds=(0, 1, 2)),
    # full configuration for a GPU: 1 mm, 256x256, default network
    "gpu": dict(n_pairs=40, spacing=1.0, size=256, model="default", rounds=8, initial=20, per_round=20,
                epochs=40, steps=None, min_steps=20, batch=16, crop=128, lr=1e-3, patience=8, mc_passes=10,
                seeds=(0, 1, 2)),
}
MC_STRATEGIES = {"mc_entropy", "bald", "powerbald", "lmi_hybrid"}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", choices=sorted(CONFIGS), default="cpu")
    p.add_argument("--work", default="/tmp/longitudinal_al_learning_curve", help="scratch folder")
    p.add_argument("--strategies", default="all", help="comma-separated names (default all)")
    p.add_argument("--seeds", default=None, help="comma-separated seeds (default from the config)")
    p.add_argument("--rounds", type=int, default=None, help="override the config's rounds")
    p.add_argument("--n-pairs", type=int, default=None, help="override the cohort size")
    p.add_argument("--tag", default="", help="suffix of the result files")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (1 is fastest on a busy machine)")
    p.add_argument("--collect", action="store_true",
                   help="train nothing: summarise the finished runs found in --work (e.g. seeds run in parallel)")
    return p.parse_args(argv)


def auc(fractions: list[float], values: list[float]) -> float:
    """Area under the curve over the labelled-fraction range, divided by that range (0..1 like Dice)."""
    f, v = np.asarray(fractions, float), np.asarray(values, float)
    if len(f) < 2 or f[-1] <= f[0]:
        return float(v.mean()) if len(v) else float("nan")
    return float(np.sum((v[1:] + v[:-1]) / 2 * np.diff(f)) / (f[-1] - f[0]))


def fraction_to_reach(fractions: list[float], values: list[float], target: float) -> float | None:
    for f, v in zip(fractions, values):
        if v >= target:
            return float(f)
    return None


def _nanmean(xs):
    xs = [x for x in xs if x is not None and not (isinstance(x, float) and math.isnan(x))]
    return float(np.mean(xs)) if xs else None


def _nanstd(xs):
    xs = [x for x in xs if x is not None and not (isinstance(x, float) and math.isnan(x))]
    return float(np.std(xs)) if xs else None


def summarise(runs: dict, full: dict) -> dict:
    """Per strategy: curves averaged over seeds, AUC and labels-to-95%."""
    keys = ("dice", "lesion_f1", "lesion_precision", "lesion_recall", "fp_lesions_lesion_free")
    out = {}
    for strat, per_seed in runs.items():
        rows = {}
        for seed, rec in per_seed.items():
            fr = [r["fraction"] for r in rec["rounds"]]
            dice = [r["metrics"]["dice"] for r in rec["rounds"]]
            target = 0.95 * full[seed]["metrics"]["dice"]
            rows[seed] = {"fractions": fr, "labels": [r["labels"] for r in rec["rounds"]],
                          "contoured": [r["contoured"] for r in rec["rounds"]],
                          **{k: [r["metrics"][k] for r in rec["rounds"]] for k in keys},
                          "auc_dice": auc(fr, dice), "fraction_to_95pct_full": fraction_to_reach(fr, dice, target)}
        seeds = list(rows)
        n_r = min(len(rows[s]["fractions"]) for s in seeds)
        mean = {k: [_nanmean([rows[s][k][i] for s in seeds]) for i in range(n_r)] for k in ("fractions", *keys)}
        std = {k: [_nanstd([rows[s][k][i] for s in seeds]) for i in range(n_r)] for k in keys}
        reach = [rows[s]["fraction_to_95pct_full"] for s in seeds]
        out[strat] = {"per_seed": rows, "mean": mean, "std": std,
                      "auc_dice_mean": _nanmean([rows[s]["auc_dice"] for s in seeds]),
                      "auc_dice_std": _nanstd([rows[s]["auc_dice"] for s in seeds]),
                      "fraction_to_95pct_full": reach,
                      "seeds_reaching_95pct": sum(r is not None for r in reach)}
    return out


def plot(summary: dict, full: dict, path: Path, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(13, 5))
    full_dice = _nanmean([f["metrics"]["dice"] for f in full.values()])
    full_f1 = _nanmean([f["metrics"]["lesion_f1"] for f in full.values()])
    cmap = plt.get_cmap("tab20")
    for i, (name, s) in enumerate(sorted(summary.items(), key=lambda kv: -(kv[1]["auc_dice_mean"] or 0))):
        x = 100 * np.asarray(s["mean"]["fractions"])
        for ax, key in zip(axes, ("dice", "lesion_f1")):
            m = np.asarray(s["mean"][key], float)
            sd = np.asarray([v if v is not None else np.nan for v in s["std"][key]], float)
            style = "-" if name not in ("random", "fg_random") else "--"
            ax.plot(x, m, style, marker="o", ms=3, color=cmap(i % 20),
                    label=f"{name} (AUC {s['auc_dice_mean']:.3f})" if key == "dice" else name)
            ax.fill_between(x, m - sd, m + sd, color=cmap(i % 20), alpha=0.08)
    for ax, ref, lab in zip(axes, (full_dice, full_f1), ("Dice (per subject, new lesions only)", "lesion-wise F1")):
        if ref is not None:
            ax.axhline(ref, color="k", lw=1.5, label="full supervision")
            if lab.startswith("Dice"):
                ax.axhline(0.95 * ref, color="k", lw=0.8, ls=":", label="95 % of full")
        ax.set_xlabel("% of pool slices labelled")
        ax.set_ylabel(lab)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, ncol=2)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_results(args, c, seeds, strategies, pool, test, n_pool, runs, full, timings, t0, final) -> None:
    """Summarise what has finished so far and write the JSON (+ PNG and table when ``final``)."""
    import torch

    runs = {s: v for s, v in runs.items() if v}
    done_seeds = [s for s in seeds if s in full and all(s in runs.get(st, {}) for st in strategies)]
    runs = {st: {s: v[s] for s in done_seeds} for st, v in runs.items()}
    full = {s: full[s] for s in done_seeds}
    if not done_seeds:
        return
    seeds = done_seeds
    summary = summarise(runs, full)
    full_dice = _nanmean([f["metrics"]["dice"] for f in full.values()])
    best = max(summary, key=lambda s: summary[s]["auc_dice_mean"] or -1)
    fg_auc = summary.get("fg_random", {}).get("auc_dice_mean")
    result = {
        "benchmark": "learning_curve", "config_name": args.config, "config": c, "seeds": seeds,
        "strategies": strategies, "pool": {"pairs": len(pool), "slices": n_pool}, "test_pairs": len(test),
        "full_supervision": {str(k): {kk: v[kk] for kk in ("labels", "metrics", "train")} for k, v in full.items()},
        "full_supervision_dice_mean": full_dice,
        "summary": {k: {kk: vv for kk, vv in v.items() if kk != "per_seed"} | {"per_seed": v["per_seed"]}
                    for k, v in summary.items()},
        "ranking_by_auc": sorted(summary, key=lambda s: -(summary[s]["auc_dice_mean"] or -1)),
        "best_strategy": best,
        "target_check": {
            "target": ">= 95% of full-supervision Dice with <= 5% of slices labelled; AUC above fg_random",
            "best_auc": summary[best]["auc_dice_mean"], "fg_random_auc": fg_auc,
            "full_dice_mean": full_dice,
            "mean_curve_fraction_to_95pct_full": {
                s: fraction_to_reach(v["mean"]["fractions"], v["mean"]["dice"], 0.95 * full_dice)
                for s, v in summary.items()},
            "strategies_reaching_95pct_within_5pct_mean_curve": [s for s, v in summary.items() if (
                r := fraction_to_reach(v["mean"]["fractions"], v["mean"]["dice"], 0.95 * full_dice)) is not None
                and r <= 0.05],
            "strategies_reaching_95pct_within_5pct_every_seed": [s for s, v in summary.items() if all(
                r is not None and r <= 0.05 for r in v["fraction_to_95pct_full"])],
            "strategies_with_auc_above_fg_random": [s for s, v in summary.items()
                                                    if fg_auc is not None and v["auc_dice_mean"] > fg_auc],
        },
        "seconds": round(time.perf_counter() - t0, 1), "timings_s": {k: round(v, 1) for k, v in timings.items()},
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads, "
                   f"{'cuda' if torch.cuda.is_available() else 'cpu'}, python {platform.python_version()}",
    }
    out_dir = HERE / "results"
    out_dir.mkdir(exist_ok=True)
    name = f"learning_curve_{args.config}{('_' + args.tag) if args.tag else ''}"
    (out_dir / f"{name}.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    if not final:
        return
    plot(summary, full, out_dir / f"{name}.png",
         f"{args.config}: {len(pool)} pool pairs / {len(test)} test pairs, seeds {seeds}; full supervision "
         f"Dice {full_dice:.3f}")
    print("\nstrategy               AUC(Dice)  final Dice  final F1  frac->95% full")
    for s in result["ranking_by_auc"]:
        v = summary[s]
        print(f"{s:22s} {v['auc_dice_mean']:.3f}      {v['mean']['dice'][-1]:.3f}       "
              f"{v['mean']['lesion_f1'][-1]:.3f}     {v['fraction_to_95pct_full']}")
    print(f"full supervision Dice {full_dice:.3f}; total {result['seconds']:.0f} s -> {out_dir / name}.json/.png")


def collect(work: Path, seeds, strategies, c, pool, test, runs, full, base) -> None:
    """Fill ``runs``/``full`` from finished run folders (full supervision re-scored from its checkpoint)."""
    from LongitudinalALLib.model import load_weights
    from LongitudinalALLib.simulate import _metrics_row, evaluate

    for seed in seeds:
        fdir = work / f"full_s{seed}"
        if (fdir / "full.json").is_file():
            full[seed] = json.loads((fdir / "full.json").read_text())
        elif (fdir / "checkpoints" / "round_1.safetensors").is_file():
            state = json.loads((fdir / "state.json").read_text())
            m = evaluate(load_weights(fdir / "checkpoints" / "round_1.safetensors"), test, base.threshold)
            full[seed] = {"labels": state["rounds"][0]["budget"]["labelled"], "fraction": 1.0,
                          "train": state["rounds"][0]["train"], "metrics": _metrics_row(m), "subjects": m.subjects}
        for strat in strategies:
            f = work / f"{strat}_s{seed}" / "simulation.json"
            if f.is_file():
                rec = json.loads(f.read_text())
                if len(rec["rounds"]) >= c["rounds"]:
                    runs[strat][seed] = rec
    print(f"collected: full supervision for seeds {sorted(full)}; "
          f"complete runs {sum(len(v) for v in runs.values())}", flush=True)


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    from LongitudinalALLib.cohort.generator import CohortOptions, generate_cohort
    from LongitudinalALLib.commands.simulate import MODELS
    from LongitudinalALLib.simulate import (SimulationConfig, fork_simulation, load_cohort_cases, run_simulation,
                                            train_full_supervision)
    from LongitudinalALLib.strategies import available_strategies
    from LongitudinalALLib.training import TrainConfig

    if args.threads:
        torch.set_num_threads(args.threads)
    c = dict(CONFIGS[args.config])
    if args.rounds:
        c["rounds"] = args.rounds
    if args.n_pairs:
        c["n_pairs"] = args.n_pairs
    seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else list(c["seeds"])
    strategies = available_strategies() if args.strategies == "all" else args.strategies.split(",")
    work = Path(args.work) / args.config
    t0 = time.perf_counter()
    cohort_dir = work / "cohort"
    if not (cohort_dir / "manifest.json").is_file():
        generate_cohort(cohort_dir, CohortOptions(n_pairs=c["n_pairs"], seed=1234, spacing_mm=c["spacing"]),
                        overwrite=True)
    kw = dict(size=c["size"], spacing_mm=c["spacing"], cache_dir=work / "prepared")
    pool = load_cohort_cases(cohort_dir, ("train", "val"), **kw)
    test = load_cohort_cases(cohort_dir, ("test",), **kw)
    n_pool = sum(len(o.slices.images) for o in pool)
    print(f"cohort {len(pool)} pool pairs ({n_pool} slices), {len(test)} test pairs; "
          f"{time.perf_counter() - t0:.0f} s", flush=True)
    # no wall-time cap: on a shared machine it would make the curve depend on the load
    train = TrainConfig(epochs=c["epochs"], steps_per_epoch=c["steps"], min_steps=c["min_steps"],
                        batch_size=c["batch"], crop_size=c["crop"], lr=c["lr"], patience=c["patience"],
                        max_seconds=None)
    base = SimulationConfig(strategy="fg_random", rounds=1, per_round=c["per_round"], initial=c["initial"],
                            size=c["size"], spacing_mm=c["spacing"], model=MODELS[c["model"]], train=train)
    runs: dict = {s: {} for s in strategies}
    full: dict = {}
    timings: dict = {}
    if args.collect:
        collect(work, seeds, strategies, c, pool, test, runs, full, base)
        write_results(args, c, seeds, strategies, pool, test, n_pool, runs, full, timings, t0, final=True)
        return 0
    for seed in seeds:
        ts = time.perf_counter()
        full[seed] = train_full_supervision(work / f"full_s{seed}", pool, test, replace(base, seed=seed))
        (work / f"full_s{seed}" / "full.json").write_text(json.dumps(full[seed], default=str))
        timings[f"full_s{seed}"] = time.perf_counter() - ts
        print(f"seed {seed}: full supervision Dice {full[seed]['metrics']['dice']:.3f} "
              f"F1 {full[seed]['metrics']['lesion_f1']:.3f} ({timings[f'full_s{seed}']:.0f} s)", flush=True)
        first = work / f"initial_s{seed}"
        if not (first / "simulation.json").is_file() or \
                len(json.loads((first / "simulation.json").read_text())["rounds"]) < 1:
            run_simulation(first, pool, test, replace(base, seed=seed))
        for strat in strategies:
            ts = time.perf_counter()
            skw = {"passes": c["mc_passes"]} if strat in MC_STRATEGIES else {}
            cfg = replace(base, seed=seed, strategy=strat, rounds=c["rounds"], strategy_kwargs=skw)
            dst = work / f"{strat}_s{seed}"
            if not (dst / "simulation.json").is_file():
                fork_simulation(first, dst, cfg)
            runs[strat][seed] = run_simulation(dst, pool, test, cfg)
            timings[f"{strat}_s{seed}"] = time.perf_counter() - ts
            last = runs[strat][seed]["rounds"][-1]
            print(f"seed {seed} {strat:22s} Dice {last['metrics']['dice']:.3f} F1 {last['metrics']['lesion_f1']:.3f} "
                  f"at {100 * last['fraction']:.1f} % ({timings[f'{strat}_s{seed}']:.0f} s)", flush=True)
        write_results(args, c, seeds, strategies, pool, test, n_pool, runs, full, timings, t0, final=True)
    write_results(args, c, seeds, strategies, pool, test, n_pool, runs, full, timings, t0, final=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
