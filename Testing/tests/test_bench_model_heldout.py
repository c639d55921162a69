"""The held-out benchmark's scoring (issue 13): MSSEG-2 four metrics, hit rate, difference signal."""

import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import bench_model_heldout as bench  # noqa: E402

from LongitudinalALLib.model import ModelConfig, build_model  # noqa: E402


def _pair(with_lesion: bool) -> dict:
    rng = np.random.default_rng(0)
    base = rng.random((8, 96, 96)).astype(np.float32)
    truth = np.zeros(base.shape, np.uint8)
    reg = base.copy()
    if with_lesion:
        truth[3:5, 40:46, 40:46] = 1
        reg[truth > 0] += 1.0
    fg = np.zeros(base.shape, np.uint8)
    fg[:, 4:92, 4:92] = 1
    return {"baseline": base, "registered": reg, "foreground": fg, "truth": truth, "pair_id": "p",
            "grid_type": "iso1", "spacing": np.array([1.0, 1.0, 3.0]), "origin": np.zeros(3),
            "direction": np.eye(3).ravel()}


def test_score_reports_the_four_metrics_and_the_hit_rate():
    torch.manual_seed(0)
    model = build_model(ModelConfig(channels=(4, 8, 16), strides=(2, 2)))
    les = bench.score(model, _pair(True), "histogram")
    free = bench.score(model, _pair(False), "histogram")
    assert les["has_lesions"] and 0 <= les["dice"] <= 1 and 0 <= les["lesion_f1"] <= 1
    assert les["tissue_share"] == 2 / 8 and les["top10_hit"] == 2 / 8  # 8 tissue slices, 2 with a lesion
    assert not free["has_lesions"] and free["fp_volume_mm3"] >= 0 and free["fp_lesions"] >= 0


def test_summary_medians_and_percentiles_over_lesion_free_pairs():
    rows = [{"has_lesions": False, "fp_lesions": n, "fp_volume_mm3": 3.0 * n} for n in (0, 1, 5)]
    rows.append({"has_lesions": True, "dice": 0.5, "lesion_f1": 0.8, "fp_lesions": 9, "top10_hit": 0.3,
                 "tissue_share": 0.1})
    s = bench.summarise(rows)
    assert s["fp_lesions_median"] == 1 and np.isclose(s["fp_lesions_p90"], 4.2)
    assert s["fp_volume_mm3_median"] == 3.0 and s["dice"] == 0.5 and s["n_lesion_pairs"] == 1


def test_difference_signal_counts_only_the_brain_and_the_new_lesion():
    d = bench.diff_signal(_pair(True), "histogram")
    assert np.isclose(d["lesion_mean_diff"], 1.0) and d["mean_abs"] > 0
    assert bench.diff_signal(_pair(False), "histogram")["mean_abs"] == 0
