#!/usr/bin/env python
"""Two learning-curve grids of the same settings, before and after a recipe change: is there a drop? (issue 14)

Reads the finished run tasks of two ``bench_learning_curve.py --work`` folders
(same config, family, seeds, strategies; only the library differs) and pairs
them by (seed) for the cohort AUBC and final Dice, and by (seed x lesion-bearing
test case) for per-case AUBC and final Dice. A drop is a one-sided paired
Wilcoxon p < 0.05 for "before > after"; the seed spread of the before grid is
printed beside each mean difference. Also sums the training seconds of the
query rounds (rounds 2+) of both grids: the cost the recipe change saves.

    .venv/bin/python Testing/benchmarks/learning_curve/lc_compare.py /tmp/lc_before/cpu /tmp/lc_after/cpu --tag speed
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]  # this benchmark's folder, then Testing/benchmarks/ (bench_common)
from bench_common import RESULTS_DIR  # noqa: E402
from lc_stats import aubc, case_aubc, mean_curve, paired_wilcoxon  # noqa: E402


def load_runs(work: Path, family: str, strategy: str) -> dict[int, dict]:
    """seed -> the run task's record (simulation rounds with per-subject metrics)."""
    out = {}
    for p in sorted((work / family).glob(f"{strategy}_s*.result.json")):
        out[int(p.name.split("_s")[-1].split(".")[0])] = json.loads(p.read_text())
    return out


def per_seed(rec: dict) -> dict:
    fr = [r["fraction"] for r in rec["rounds"]]
    return {"aubc": aubc(fr, [r["metrics"]["dice"] for r in rec["rounds"]]),
            "final_dice": rec["rounds"][-1]["metrics"]["dice"],
            "query_train_s": sum(r["train"]["seconds"] for r in rec["rounds"][1:]),
            "query_steps": sum(r["train"]["steps"] for r in rec["rounds"][1:])}


def final_case_dice(rec: dict) -> dict[str, float]:
    return {s["case_id"]: s["dice"] for s in rec["rounds"][-1]["subjects"] if s["has_lesions"]}


def compare(before: dict[int, dict], after: dict[int, dict]) -> dict:
    seeds = sorted(set(before) & set(after))
    if not seeds:
        return {"seeds": []}
    b, a = {s: per_seed(before[s]) for s in seeds}, {s: per_seed(after[s]) for s in seeds}
    out = {"seeds": seeds}
    for k in ("aubc", "final_dice", "query_train_s", "query_steps"):
        xb, xa = np.array([b[s][k] for s in seeds]), np.array([a[s][k] for s in seeds])
        out[k] = {"before_mean": float(xb.mean()), "after_mean": float(xa.mean()), "before_seed_std": float(xb.std()),
                  "after_minus_before": float((xa - xb).mean()), "per_seed_before": xb.tolist(),
                  "per_seed_after": xa.tolist()}
    for k, fn in (("aubc", case_aubc), ("final_dice", final_case_dice)):
        cb = {(s, c): v for s in seeds for c, v in fn(before[s]).items()}
        ca = {(s, c): v for s in seeds for c, v in fn(after[s]).items()}
        drop = paired_wilcoxon({str(x): v for x, v in cb.items()}, {str(x): v for x, v in ca.items()})
        out[k]["per_case_drop_test"] = drop  # "before > after" over (seed x case); mean_difference = before - after
        out[k]["per_seed_drop_test"] = paired_wilcoxon({s: b[s][k] for s in seeds}, {s: a[s][k] for s in seeds})
        p = drop.get("p_greater")
        out[k]["drop"] = p is not None and p < 0.05
    return out


def plot(before: Path, after: Path, families: list[str], strategies: list[str], path: Path) -> None:
    """Mean Dice-vs-fraction curves, before dashed and after solid, one panel per family."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(families), figsize=(6.5 * len(families), 4.5), squeeze=False)
    for ax, fam in zip(axes[0], families):
        for i, st in enumerate(strategies):
            for work, ls, label in ((before, "--", "before"), (after, "-", "after")):
                runs = load_runs(work, fam, st)
                if runs:
                    curve = mean_curve(runs.values())
                    ax.plot([100 * f for f in curve["fractions"]], curve["dice"], ls, marker="o", color=f"C{i}",
                            label=f"{st} {label} ({len(runs)} seeds)")
        ax.set(title=fam, xlabel="% of pool slices labelled", ylabel="mean Dice (new lesions)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("before", help="work folder of the before grid (…/<config>)")
    p.add_argument("after", help="work folder of the after grid")
    p.add_argument("--families", default="sim1234")
    p.add_argument("--strategies", default="fg_random,clasp_pe")
    p.add_argument("--tag", default="")
    args = p.parse_args(argv)
    out = {"benchmark": "learning_curve_compare", "before": args.before, "after": args.after,
           "load_average": list(os.getloadavg()), "results": {}}
    for fam in args.families.split(","):
        for st in args.strategies.split(","):
            r = out["results"][f"{fam}/{st}"] = compare(load_runs(Path(args.before), fam, st),
                                                        load_runs(Path(args.after), fam, st))
            for k in ("aubc", "final_dice", "query_steps") if r["seeds"] else ():
                x = r[k]
                t = x.get("per_case_drop_test", {})
                print(f"{fam} {st:10s} {k:13s} before {x['before_mean']:.3f} (seed std {x['before_seed_std']:.3f}) "
                      f"after {x['after_mean']:.3f}  diff {x['after_minus_before']:+.3f}  "
                      f"p(before>after, cases) {t.get('p_greater')}  drop {x.get('drop')}")
    name = "learning_curve_compare" + (f"_{args.tag}" if args.tag else "")
    (RESULTS_DIR / f"{name}.json").write_text(json.dumps(out, indent=2, default=str) + "\n")
    plot(Path(args.before), Path(args.after), args.families.split(","), args.strategies.split(","),
         RESULTS_DIR / f"{name}.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
