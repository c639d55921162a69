#!/usr/bin/env python
"""Learning curves of query strategies against full supervision (oracle simulation), issue 15.

Per cohort family (a simulator seed range, or a cohort folder such as the
model issue's held-out family) and per seed: one shared first round
(foreground-aware random, trained once, then forked for every strategy), then
each strategy's rounds up to >= 5 % of the pool's slices. Full supervision is
trained on the whole pool with the same recipe and more epochs (its training
curve is in the JSON). Reported per family and strategy: area under the
Dice-vs-fraction curve (AUBC), labels needed for 95 % of full-supervision
Dice, MSSEG-2 metrics at the end (Dice on lesion-bearing subjects, lesion-wise
F1/precision/recall, false-positive lesions and clean rate on lesion-free
subjects), a one-sided paired Wilcoxon test over (seed x test case) per-case
AUBC against fg_random, and the triage AUROC (does the follow-up hold any new
lesion?) of every final model on the test pairs.

    .venv/bin/python Testing/benchmarks/learning_curve/bench_learning_curve.py --config cpu          # the CPU grid
    .venv/bin/python Testing/benchmarks/learning_curve/bench_learning_curve.py --strategies all      # every strategy
    .venv/bin/python Testing/benchmarks/learning_curve/bench_learning_curve.py --families sim:1234,heldout:12,dir:/data/c
    .venv/bin/python Testing/benchmarks/learning_curve/bench_learning_curve.py --ray [--ray-address auto]  # tasks on Ray
    .venv/bin/python Testing/benchmarks/learning_curve/bench_learning_curve.py --collect             # summarise what is done

The grid runs as resumable tasks (lc_grid.py); the summary is read from disk,
so the ``results`` part of the JSON is the same with or without Ray.
Writes results/learning_curve_<config>[_<tag>].json and .png.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from dataclasses import asdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]  # this benchmark's folder, then Testing/benchmarks/ (bench_common)

from bench_common import RESULTS_DIR  # noqa: E402
from lc_grid import result_path, run_grid  # noqa: E402
from lc_stats import mean_std, summarise_family  # noqa: E402

CONFIGS = {
    # CPU grid (2 shared cores): 12-pair families at 2 mm in-plane (6 pool pairs, 6 test pairs, half of the
    # follow-ups without new lesions), 128x128 slices, small network; each round labels ceil(label_pct % of the
    # pool), 5 rounds -> >= 5 % (486-slice simulated pool: 5 per round, 25 = 5.1 %); crops are the product's
    # share of the slice (96 of 256 px since issue 14 -> 48 of 128); pools: the simulator and the model issue's
    # frozen held-out family; the 95 % reference is the mean of 3 full-supervision seeds
    "cpu": dict(n_pairs=12, split=(0.45, 0.1, 0.45), p_no_new=0.5, spacing=2.0, size=128, model="small",
                rounds=5, label_pct=1.0, epochs=10, min_steps=10, round_steps=200, batch=8, crop=48, lr=3e-3,
                patience=4, full_epochs=50, full_patience=15, mc_passes=4, seeds=(0, 1, 2, 3, 4), full_seeds=(0, 1, 2),
                strategies=("fg_random", "clasp_pe"), families=("sim:1234", "heldout:12")),
    # GPU grid: larger families at 1 mm, default network, every strategy
    "gpu": dict(n_pairs=40, split=(0.6, 0.1, 0.3), p_no_new=0.5, spacing=1.0, size=256, model="default",
                rounds=8, label_pct=0.75, epochs=40, min_steps=20, round_steps=200, batch=16, crop=96, lr=1e-3,
                patience=8, full_epochs=80, full_patience=12, mc_passes=10, seeds=(0, 1, 2, 3, 4),
                full_seeds=(0, 1, 2, 3, 4), strategies="all", families=("sim:1234", "sim:5678")),
    # seconds: the smoke test and the Ray-vs-sequential check
    "tiny": dict(n_pairs=6, split=(0.4, 0.2, 0.4), p_no_new=0.3, spacing=4.0, size=64, model="small", rounds=2,
                 label_pct=5.0, epochs=1, min_steps=2, round_steps=200, batch=4, crop=32, lr=3e-3, patience=2,
                 full_epochs=1, full_patience=2, mc_passes=2, seeds=(0, 1), full_seeds=(0,),
                 strategies=("fg_random", "clasp_pe"), families=("sim:11",)),
}
MC_STRATEGIES = {"mc_entropy", "bald", "powerbald", "lmi_hybrid"}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", choices=sorted(CONFIGS), default="cpu")
    p.add_argument("--work", default="/tmp/longitudinal_al_learning_curve", help="scratch folder")
    p.add_argument("--families", default=None,
                   help="comma-separated: sim:<cohort seed> (simulated here), heldout:<n pairs> (the model issue's "
                        "frozen family, written here) or dir:<cohort folder>")
    p.add_argument("--full-seeds", default=None,
                   help="comma-separated seeds of full supervision (default: the config's; reference = their mean)")
    p.add_argument("--strategies", default=None, help="comma-separated names, or 'all' (default: the config's)")
    p.add_argument("--seeds", default=None, help="comma-separated seeds (default from the config)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override one number of the config, e.g. --set crop=48 (a recipe change to compare)")
    p.add_argument("--tag", default="", help="suffix of the result files")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads per task (1 is best on a busy machine)")
    p.add_argument("--ray", action="store_true", help="run the grid's tasks on Ray (pip install ray)")
    p.add_argument("--ray-address", default=None, help="an existing Ray cluster (default: start a local one)")
    p.add_argument("--collect", action="store_true", help="run nothing: summarise the finished tasks in --work")
    return p.parse_args(argv)


def prepare_families(specs, c: dict, work: Path) -> dict[str, str]:
    """family name -> cohort folder (simulated families are generated once)."""
    from LongitudinalALLib.cohort.generator import CohortOptions, generate_cohort
    from LongitudinalALLib.cohort.pair import SimulationOptions

    out = {}
    for spec in specs:
        kind, _, value = spec.partition(":")
        if kind == "dir":
            out[Path(value).name] = value
            continue
        if kind == "heldout":  # the model issue's frozen family: n pairs, the last half the test split
            name, folder = f"heldout{value}", work / f"heldout{value}" / "cohort"
            if not (folder / "manifest.json").is_file():
                from lc_heldout_cohort import write_family

                write_family(folder, int(value), int(value) // 2)
            out[name] = str(folder)
            continue
        name, folder = f"sim{value}", work / f"sim{value}" / "cohort"
        if not (folder / "manifest.json").is_file():
            generate_cohort(folder, CohortOptions(n_pairs=c["n_pairs"], seed=int(value), spacing_mm=c["spacing"],
                                                  split_fractions=tuple(c["split"]),
                                                  simulation=SimulationOptions(p_no_new=c["p_no_new"])),
                            overwrite=True)
        out[name] = str(folder)
    return out


def round_train_config(c: dict, device: str | None = "cpu"):
    """The TrainConfig of a query round of config ``c`` (full supervision overrides epochs and patience)."""
    from LongitudinalALLib.model.training import TrainConfig

    # no wall-time cap: on a shared machine it would make the curve depend on the load
    return TrainConfig(epochs=c["epochs"], min_steps=c["min_steps"], min_total_steps=c["round_steps"],
                       batch_size=c["batch"], crop_size=c["crop"], lr=c["lr"], patience=c["patience"], device=device,
                       max_seconds=None)


def grid_context(args, c: dict, work: Path, families: dict, strategies: list[str]) -> dict:
    """Everything a task needs, as JSON-able data (it travels to Ray workers); pools prepared here, once."""
    import math

    from LongitudinalALLib.active.simulate import SimulationConfig, load_cohort_cases
    from LongitudinalALLib.commands.simulate import MODELS

    train = round_train_config(c, "cpu" if not args.ray else None)
    base, pools = {}, {}
    for fam, cohort in families.items():
        kw = dict(size=c["size"], spacing_mm=c["spacing"], cache_dir=work / fam / "prepared")
        pools[fam] = sum(len(o.slices.images) for o in load_cohort_cases(cohort, ("train", "val"), **kw))
        load_cohort_cases(cohort, ("test",), **kw)
        n = math.ceil(c["label_pct"] / 100 * pools[fam])
        cfg = SimulationConfig(strategy="fg_random", rounds=1, per_round=n, initial=n, size=c["size"],
                               spacing_mm=c["spacing"], model=MODELS[c["model"]], train=train)
        base[fam] = {**asdict(cfg), "train": train.to_dict()}
    kwargs = {s: {"passes": c["mc_passes"]} for s in strategies if s in MC_STRATEGIES}
    kwargs["clasp_pe"] = {"rounds": c["rounds"] - 1}  # the noise schedule spans the query rounds
    return {"work": str(work), "families": families, "pool_slices": pools, "config": c, "threads": args.threads,
            "base": base, "strategy_kwargs": kwargs,
            "full_train": {"epochs": c["full_epochs"], "patience": c["full_patience"]}}


def build_tasks(families, seeds, full_seeds, strategies) -> list[dict]:
    """Seed-major order: a partial grid still holds every strategy of the seeds it finished."""
    tasks = []
    for seed in seeds:
        for fam in families:
            if seed in full_seeds:
                tasks.append({"kind": "full", "family": fam, "seed": seed})
            tasks.append({"kind": "initial", "family": fam, "seed": seed})
            tasks += [{"kind": "run", "family": fam, "seed": seed, "strategy": s} for s in strategies]
    return tasks


def collect(ctx: dict, families, seeds, full_seeds, strategies) -> dict:
    """Results from disk in a fixed order: per family, strategies summarised over the seeds all finished."""
    out = {}
    for fam in families:
        def load(task):
            p = result_path(ctx, task)
            return json.loads(p.read_text()) if p.is_file() else None
        full = {s: r for s in full_seeds if (r := load({"kind": "full", "family": fam, "seed": s}))}
        runs = {st: {s: load({"kind": "run", "family": fam, "seed": s, "strategy": st}) for s in seeds}
                for st in strategies}
        done = [s for s in seeds if all(runs[st][s] for st in strategies)]
        if not done or not full:
            continue
        runs = {st: {s: runs[st][s] for s in done} for st in strategies}
        fam_out = summarise_family(runs, full, ctx["pool_slices"][fam])
        fam_out["seeds"] = done
        fam_out["full_supervision"] = {s: {"labels": f["labels"], "metrics": f["metrics"], "training_curve": [
            {k: v for k, v in e.items() if k != "seconds"} for e in f["training_curve"]]} for s, f in full.items()}
        tri = {st: [runs[st][s]["triage"]["auroc"] for s in done] for st in strategies}
        tri["full_supervision"] = [f["triage"]["auroc"] for f in full.values()]
        fam_out["triage_auroc"] = {k: {"per_seed": v, "mean": mean_std(v)[0]} for k, v in tri.items()}
        fam_out["triage_example"] = {"strategy": strategies[-1], "seed": done[0],
                                     "rows": runs[strategies[-1]][done[0]]["triage"]["rows"]}
        out[fam] = fam_out
    return out


def targets(results: dict, default: str = "clasp_pe", reference: str = "fg_random") -> dict:
    """Issue 15's targets per family: >= 95 % of full Dice with <= 5 % of slices; AUBC above fg_random, p < 0.05."""
    out = {}
    for fam, r in results.items():
        s = r["strategies"].get(default)
        if s is None:
            continue
        reach = s["mean_curve_fraction_to_95pct_full"]
        w = s.get(f"wilcoxon_vs_{reference}") or {}
        out[fam] = {"strategy": default, "full_dice": r["full_supervision_dice"],
                    "mean_curve_fraction_to_95pct_full": reach,
                    "reaches_95pct_within_5pct": reach is not None and reach <= 0.05,
                    "aubc": s["aubc_mean"], "aubc_fg_random": r["strategies"].get(reference, {}).get("aubc_mean"),
                    "wilcoxon_p_greater": w.get("p_greater"),
                    "aubc_beats_fg_random_p_lt_0_05": w.get("p_greater") is not None and w["p_greater"] < 0.05}
    return out


def plot(results: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fams = list(results)
    fig, axes = plt.subplots(2, len(fams), figsize=(6.5 * len(fams), 9), squeeze=False)
    for j, fam in enumerate(fams):
        r, ax = results[fam], axes[0][j]
        for name, s in r["strategies"].items():
            x = [100 * f for f in s["mean_curve"]["fractions"]]
            ax.plot(x, s["mean_curve"]["dice"], "--" if name == "fg_random" else "-", marker="o",
                    label=f"{name} (AUBC {s['aubc_mean']:.3f})")
        ax.axhline(r["full_supervision_dice"], color="k", label="full supervision")
        ax.axhline(0.95 * r["full_supervision_dice"], color="k", ls=":", label="95 % of full")
        ax.set_ylim(top=max(ax.get_ylim()[1], 1.03 * r["full_supervision_dice"]))  # keep the reference in view
        ax.set(title=f"{fam}: seeds {r['seeds']}", xlabel="% of pool slices labelled", ylabel="Dice (new lesions)")
        ax.legend(fontsize=8)
        ax = axes[1][j]
        for seed, f in r["full_supervision"].items():
            h = f["training_curve"]
            ax.plot([e.get("train_loss") for e in h], label=f"seed {seed} train loss")
            ax.plot([e.get("val_dice") for e in h], ls=":", label=f"seed {seed} val Dice")
        ax.set(title="full supervision training curve", xlabel="epoch")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def task_seconds(work: Path, families: dict) -> dict:
    """Per family, the summed run time of its finished tasks (a --collect run's own seconds say nothing)."""
    return {fam: round(sum(json.loads(p.read_text()).get("seconds", 0.0)
                           for p in (work / fam).glob("*.result.json")), 1) for fam in families}


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    from LongitudinalALLib.active.strategies import available_strategies

    torch.set_num_threads(args.threads)
    c = dict(CONFIGS[args.config])
    for item in args.set:
        key, _, value = item.partition("=")
        if key not in c or isinstance(c[key], (tuple, list, str)):
            raise SystemExit(f"--set {item}: {key!r} is not a number of the {args.config} config")
        c[key] = type(c[key])(float(value)) if isinstance(c[key], int) else float(value)
    strategies = args.strategies or c["strategies"]
    strategies = available_strategies() if strategies == "all" else (
        strategies.split(",") if isinstance(strategies, str) else list(strategies))
    if "fg_random" not in strategies:
        strategies = ["fg_random", *strategies]  # the reference of the paired test
    seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else list(c["seeds"])
    full_seeds = ([int(s) for s in args.full_seeds.split(",")] if args.full_seeds
                  else [s for s in c["full_seeds"] if s in seeds] or seeds[:1])
    work = Path(args.work) / args.config
    t0 = time.perf_counter()
    families = prepare_families(args.families.split(",") if args.families else c["families"], c, work)
    ctx = grid_context(args, c, work, families, strategies)
    if not args.collect:
        run_grid(build_tasks(families, seeds, full_seeds, strategies), ctx, use_ray=args.ray,
                 address=args.ray_address)
    results = collect(ctx, families, seeds, full_seeds, strategies)
    record = {"benchmark": "learning_curve", "config_name": args.config, "config": c, "strategies": strategies,
              "families": {k: str(v) for k, v in families.items()}, "seeds": seeds, "full_seeds": full_seeds,
              "results": results, "targets": targets(results),
              "run": {"seconds": round(time.perf_counter() - t0, 1), "ray": args.ray,
                      "task_seconds_sum": task_seconds(work, families),
                      "machine": f"{platform.machine()}, {args.threads} torch threads per task, python "
                                 f"{platform.python_version()}"}}
    name = f"learning_curve_{args.config}{('_' + args.tag) if args.tag else ''}"
    RESULTS_DIR.mkdir(exist_ok=True)
    (RESULTS_DIR / f"{name}.json").write_text(json.dumps(record, indent=2, default=str) + "\n")
    if results:
        plot(results, RESULTS_DIR / f"{name}.png")
    for fam, r in results.items():
        print(f"{fam}: full supervision Dice {r['full_supervision_dice']:.3f}, seeds {r['seeds']}")
        for st, s in r["strategies"].items():
            w = s.get("wilcoxon_vs_fg_random") or {}
            print(f"  {st:22s} AUBC {s['aubc_mean']:.3f}+-{s['aubc_std']:.3f}  final Dice "
                  f"{s['final_msseg2_mean']['dice']:.3f}  labels->95% {s['labels_to_95pct_full']}  "
                  f"p(>fg_random) {w.get('p_greater')}  triage AUROC {r['triage_auroc'][st]['mean']}")
    print(f"{time.perf_counter() - t0:.0f} s -> results/{name}.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
