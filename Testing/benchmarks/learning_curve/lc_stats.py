"""Learning-curve statistics: AUBC, labels to 95 % of full supervision, paired Wilcoxon, MSSEG-2 end metrics.

Inputs are the ``simulation.json`` records of ``simulate.run_simulation``
(rounds with labelled fraction, cohort metrics and per-subject metrics).
The paired test compares a strategy with foreground-aware random over
(seed x test case): each pair is the per-subject area under that case's
Dice-vs-fraction curve, the same seed's shared initial set on both sides.
"""

from __future__ import annotations

import math

import numpy as np

MSSEG2 = ("dice", "lesion_f1", "lesion_precision", "lesion_recall", "fp_lesions_lesion_free", "lesion_free_clean")


def aubc(fractions, values) -> float:
    """Area under the curve over the labelled-fraction range, divided by that range (0..1 like Dice)."""
    f, v = np.asarray(fractions, float), np.asarray(values, float)
    if len(f) < 2 or f[-1] <= f[0]:
        return float(v.mean()) if len(v) else float("nan")
    return float(np.sum((v[1:] + v[:-1]) / 2 * np.diff(f)) / (f[-1] - f[0]))


def first_reaching(xs, values, target: float):
    """The first x whose value reaches ``target`` (None if never)."""
    return next((x for x, v in zip(xs, values) if v is not None and v >= target), None)


def _clean(xs) -> list[float]:
    return [float(x) for x in xs if x is not None and not (isinstance(x, float) and math.isnan(x))]


def mean_std(xs) -> tuple[float | None, float | None]:
    xs = _clean(xs)
    return (float(np.mean(xs)), float(np.std(xs))) if xs else (None, None)


def case_aubc(record: dict) -> dict[str, float]:
    """Per lesion-bearing test case: AUBC of its Dice over the rounds."""
    fr = [r["fraction"] for r in record["rounds"]]
    cases = [s["case_id"] for s in record["rounds"][0]["subjects"] if s["has_lesions"]]
    return {c: aubc(fr, [next(s["dice"] for s in r["subjects"] if s["case_id"] == c) for r in record["rounds"]])
            for c in cases}


def paired_wilcoxon(a: dict, b: dict) -> dict:
    """One-sided Wilcoxon signed-rank (a > b) over the keys both hold; two-sided p too."""
    from scipy.stats import wilcoxon

    keys = sorted(set(a) & set(b))
    d = np.array([a[k] - b[k] for k in keys], float)
    out = {"n_pairs": len(keys), "mean_difference": float(d.mean()) if len(d) else None,
           "wins": int((d > 0).sum()), "losses": int((d < 0).sum())}
    if len(d) == 0 or not np.any(d != 0):
        return {**out, "p_greater": None, "p_two_sided": None}
    return {**out, "p_greater": float(wilcoxon(d, alternative="greater").pvalue),
            "p_two_sided": float(wilcoxon(d).pvalue)}


def mean_curve(records) -> dict[str, list[float]]:
    """Mean fractions and Dice per round over simulation records (rounds all of them have)."""
    rounds = [rec["rounds"] for rec in records]
    n_r = min(len(r) for r in rounds)
    return {"fractions": [mean_std([r[i]["fraction"] for r in rounds])[0] for i in range(n_r)],
            "dice": [mean_std([r[i]["metrics"]["dice"] for r in rounds])[0] for i in range(n_r)]}


def summarise_strategy(per_seed: dict, full_dice: float, pool_slices: int) -> dict:
    """Curves, AUBC, labels to 95 % of ``full_dice`` and the final MSSEG-2 metrics over seeds."""
    rows = {}
    for seed, rec in per_seed.items():
        fr = [r["fraction"] for r in rec["rounds"]]
        dice = [r["metrics"]["dice"] for r in rec["rounds"]]
        rows[seed] = {"fractions": fr, "labels": [r["labels"] for r in rec["rounds"]],
                      "contoured": [r["contoured"] for r in rec["rounds"]], "dice": dice,
                      "aubc": aubc(fr, dice), "labels_to_95pct_full": first_reaching(
                          [r["labels"] for r in rec["rounds"]], dice, 0.95 * full_dice),
                      "final": {k: rec["rounds"][-1]["metrics"][k] for k in MSSEG2}}
    seeds = list(rows)
    curve = mean_curve(per_seed.values())
    reach = [rows[s]["labels_to_95pct_full"] for s in seeds]
    m, sd = mean_std([rows[s]["aubc"] for s in seeds])
    return {"per_seed": rows, "mean_curve": curve, "aubc_mean": m, "aubc_std": sd,
            "labels_to_95pct_full": reach, "seeds_reaching_95pct": sum(r is not None for r in reach),
            "mean_curve_fraction_to_95pct_full": first_reaching(curve["fractions"], curve["dice"], 0.95 * full_dice),
            "final_msseg2_mean": {k: mean_std([rows[s]["final"][k] for s in seeds])[0] for k in MSSEG2},
            "pool_slices": pool_slices}


def summarise_family(runs: dict, full: dict, pool_slices: int, reference: str = "fg_random") -> dict:
    """Per strategy (``runs[strategy][seed]`` records) + paired tests against ``reference``."""
    full_dice = mean_std([f["metrics"]["dice"] for f in full.values()])[0]
    out = {s: summarise_strategy(v, full_dice, pool_slices) for s, v in runs.items() if v}
    ref = {(seed, c): x for seed, rec in runs.get(reference, {}).items() for c, x in case_aubc(rec).items()}
    for s, v in out.items():
        mine = {(seed, c): x for seed, rec in runs[s].items() for c, x in case_aubc(rec).items()}
        v["wilcoxon_vs_" + reference] = paired_wilcoxon(mine, ref) if s != reference else None
    return {"full_supervision_dice": full_dice, "strategies": out}
