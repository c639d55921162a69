"""The held-out benchmark's scoring (issue 13): MSSEG-2 four metrics, hit rate, difference signal."""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks" / "model_heldout"))

import bench_model_heldout as bench  # noqa: E402
import false_lesions  # noqa: E402

from LongitudinalALLib.model import ModelConfig, build_model  # noqa: E402
from LongitudinalALLib.model.lesion_mask import DEFAULT  # noqa: E402


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


def test_score_reports_the_four_metrics_and_the_hit_rate_per_mask_step():
    torch.manual_seed(0)
    model = build_model(ModelConfig(channels=(4, 8, 16), strides=(2, 2)))
    les = bench.score(model, _pair(True), "histogram")
    free = bench.score(model, _pair(False), "histogram")
    assert set(les) == set(free) == {"raw", "lesion_mask"}
    for mk in bench.MASKS:
        assert les[mk]["has_lesions"] and 0 <= les[mk]["dice"] <= 1 and 0 <= les[mk]["lesion_f1"] <= 1
        assert les[mk]["tissue_share"] == 2 / 8 and les[mk]["top10_hit"] == 2 / 8  # 8 tissue slices, 2 lesion ones
        assert not free[mk]["has_lesions"] and free[mk]["fp_volume_mm3"] >= 0 and free[mk]["fp_lesions"] >= 0
        assert len(free[mk]["false_lesions"]) == free[mk]["fp_lesions"]  # one described row per false lesion
        assert "false_lesions" not in les[mk]


def test_masks_side_by_side_the_step_drops_a_speck_the_raw_threshold_keeps():
    d = _pair(False)
    from LongitudinalALLib.imaging.pairing import pair_slices

    c = pair_slices(*bench.variant(d, "histogram"), "p", labels=d["truth"])
    probs = np.zeros(c.foreground.shape, np.float32)
    centre = tuple(s // 2 for s in probs.shape[1:])
    probs[4, centre[0], centre[1]] = 0.99  # one confident pixel: 3 mm^3 on the 1x1x3 mm grid
    out = bench.masks(probs, c, d, bench.MASKS)
    kept = DEFAULT.min_volume_mm3 <= 3.0 and DEFAULT.peak <= 0.99  # the frozen rule on this one speck
    assert out["raw"].sum() == 1 and out["lesion_mask"].sum() == int(kept)


def test_false_lesions_are_described_by_size_peak_and_location():
    fg = np.zeros((20, 40, 40), np.uint8)
    fg[:, 5:35, 5:35] = 1
    base = np.ones(fg.shape, np.float32)
    mask = np.zeros(fg.shape, bool)
    mask[10, 5:7, 20] = True      # at the brain edge
    mask[8:10, 19:21, 19:21] = True  # deep inside: 14 mm from the edge
    prob = mask * 0.7
    rows = false_lesions.describe(mask, prob, false_lesions.distance_maps(base, fg, (1.0, 1.0, 1.0)), (1.0, 1.0, 1.0))
    assert sorted(r["volume_mm3"] for r in rows) == [2.0, 8.0]
    assert [r["location"] for r in sorted(rows, key=lambda r: r["volume_mm3"])] == ["brain_edge", "deep_white_matter"]
    assert all(np.isclose(r["peak"], 0.7) for r in rows)
    assert false_lesions.table(rows)["all"]["n"] == 2


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


def test_triage_auroc_pools_the_grids_and_counts_each_pair_once():
    def rows(pairs):
        return [{"pair": p, "pair_probability": prob, "has_lesions": les} for p, prob, les in pairs]

    grids = {"iso1": {"models": {"m/h/raw": {"pairs": rows([("a", 0.9, True), ("b", 0.2, False)])},
                                 "m/h/lesion_mask": {"pairs": rows([("a", 0.9, True), ("b", 0.2, False)])}}},
             "axial3": {"models": {"m/h/raw": {"pairs": rows([("c", 0.1, False), ("d", 0.15, True)])}}}}
    out = bench.triage_auroc(grids)["m/h"]
    assert out["pairs"] == 4 and out["lesion_pairs"] == 2
    assert out["auroc"] == pytest.approx(0.75)  # d (0.15) ranks below b (0.2): one of four pairs misordered
