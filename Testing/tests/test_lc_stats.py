"""Learning-curve statistics of the issue-15 benchmark: AUBC, labels to 95 %, paired Wilcoxon over seed x case."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks" / "learning_curve"))
from lc_stats import aubc, case_aubc, first_reaching, paired_wilcoxon, summarise_family  # noqa: E402


def _record(rng, gain: float, cases=("a", "b", "c", "d")) -> dict:
    """A simulation.json-shaped record: per-case Dice rising with the labelled fraction (+ noise)."""
    rounds = []
    for r, frac in enumerate((0.01, 0.02, 0.03, 0.05)):
        subj = [{"case_id": c, "has_lesions": True, "dice": float(np.clip(0.3 + gain * r + rng.normal(0, .01), 0, 1))}
                for c in cases] + [{"case_id": "free", "has_lesions": False, "dice": 1.0}]
        d = float(np.mean([s["dice"] for s in subj if s["has_lesions"]]))
        rounds.append({"fraction": frac, "labels": 10 * (r + 1), "contoured": r,
                       "metrics": {"dice": d, "lesion_f1": d, "lesion_precision": d, "lesion_recall": d,
                                   "fp_lesions_lesion_free": 0.0, "lesion_free_clean": 1.0}, "subjects": subj})
    return {"rounds": rounds}


def test_aubc_is_the_normalised_trapezoid_area():
    assert aubc([0.01, 0.03, 0.05], [0.4, 0.4, 0.4]) == pytest.approx(0.4)
    assert aubc([0.0, 1.0], [0.0, 1.0]) == pytest.approx(0.5)
    assert aubc([0.01, 0.02, 0.05], [0.0, 1.0, 1.0]) == pytest.approx((0.5 * 0.01 + 0.03) / 0.04)
    assert first_reaching([5, 10, 15], [0.1, 0.6, 0.9], 0.55) == 10 and first_reaching([5], [0.1], 0.5) is None


def test_paired_wilcoxon_detects_a_consistent_gain_and_only_pairs_common_keys():
    rng = np.random.default_rng(0)
    base = {(s, c): 0.5 + rng.normal(0, 0.05) for s in range(5) for c in "abcd"}
    better = {k: v + 0.02 + abs(rng.normal(0, 0.01)) for k, v in base.items()}
    better[(9, "z")] = 1.0  # no partner: ignored
    w = paired_wilcoxon(better, base)
    assert w["n_pairs"] == 20 and w["wins"] == 20 and w["p_greater"] < 1e-4
    assert paired_wilcoxon(base, better)["p_greater"] > 0.99
    assert paired_wilcoxon(base, base)["p_greater"] is None  # no differences: no test


def test_family_summary_pairs_each_strategy_with_fg_random_per_seed_and_case():
    rng = np.random.default_rng(1)
    runs = {"fg_random": {s: _record(rng, 0.02) for s in range(5)},
            "clasp_pe": {s: _record(rng, 0.1) for s in range(5)}}
    full = {0: {"metrics": {"dice": 0.6}}, 1: {"metrics": {"dice": 0.6}}}
    out = summarise_family(runs, full, pool_slices=500)
    c, f = out["strategies"]["clasp_pe"], out["strategies"]["fg_random"]
    assert set(case_aubc(runs["clasp_pe"][0])) == set("abcd")  # lesion-free subjects have no Dice curve
    assert c["wilcoxon_vs_fg_random"]["n_pairs"] == 20 and c["wilcoxon_vs_fg_random"]["p_greater"] < 0.01
    assert f["wilcoxon_vs_fg_random"] is None and c["aubc_mean"] > f["aubc_mean"]
    assert c["mean_curve_fraction_to_95pct_full"] == 0.05 and f["mean_curve_fraction_to_95pct_full"] is None
    assert c["seeds_reaching_95pct"] == 5 and c["final_msseg2_mean"]["lesion_free_clean"] == 1.0
