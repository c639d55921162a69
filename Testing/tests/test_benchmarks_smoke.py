"""Smoke test of the benchmark scripts: each main() runs in its --tiny configuration and
writes JSON with the expected keys and positive figures. Not a timed test: the numbers
are only checked to be real (positive, finite), never compared with a target."""

from __future__ import annotations

import importlib
import json
import math
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path[:0] = [str(BENCH), str(BENCH / "interactive")]  # bench_first_suggestion lives in interactive/


def _bench(name: str):
    return importlib.import_module(name)


def _positive(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def _load(out: Path, name: str) -> dict:
    path = out / f"{name}.json"
    assert path.is_file(), f"{path} was not written"
    doc = json.loads(path.read_text())
    assert doc["benchmark"] == name and doc["tiny"] is True
    assert doc["machine"]["cpu_cores_usable"] >= 1 and doc["machine"]["torch"]
    return doc


def test_common_timing_and_memory():
    bc = _bench("bench_common")
    buf = []
    t = bc.time_call(lambda: buf.append(bytearray(64 * 2**20)), repeats=2, warmup=1, trace_python=True)
    assert len(buf) == 3 and t.repeats == 2 and len(t.times_s) == 2
    assert 0 < t.min_s <= t.median_s <= t.max_s
    # the last repeat allocated 64 MiB: both the heap tracer and the RSS high-water mark see it
    assert t.memory.python_heap_peak_mb >= 60
    assert t.memory.rss_peak_mb >= t.memory.rss_before_mb


def test_query_selection_tiny(tmp_path):
    _bench("bench_query_selection").main(["--tiny", "--device", "cpu", "--out-dir", str(tmp_path)])
    doc = _load(tmp_path, "query_selection_tiny")
    (row,) = doc["configs"]
    cs, bd = row["coreset"], row["badge"]
    for name in ("product_cpu", "proposed_matvec_cpu", "peer_sklearn_pairwise"):
        assert _positive(cs[name]["median_s"]) and _positive(cs[name]["covering_radius"])
    # same greedy rule, same start: the product picks exactly what the reference loop picks
    assert cs["peer_sklearn_pairwise"]["same_picks_as_product_cpu"] is True
    assert cs["proposed_matvec_cpu"]["same_picks_as_product_cpu"] is True
    assert _positive(cs["product_cpu"]["speedup_vs_peer"])
    for name in ("product_cpu", "peer_sklearn_kmeans_plusplus", "peer_badge_reference_numpy"):
        assert _positive(bd[name]["median_s"]) and _positive(bd[name]["kmeans_potential"])
        assert bd[name]["distinct_picks"] == row["k"]
    # the proposed BADGE kernel draws like Generator.choice: same rng -> same slices as the product
    assert bd["proposed_matvec_cpu"]["picks_shared_with_product_cpu"] == row["k"]


def test_scoring_tiny(tmp_path):
    _bench("bench_scoring").main(["--tiny", "--device", "cpu", "--no-baal", "--passes", "3",
                                  "--out-dir", str(tmp_path)])
    doc = _load(tmp_path, "scoring_tiny")
    res = doc["devices"]["cpu"]
    for kind in ("plain", "mc_dropout"):
        for name in ("product_fp32", "product_bf16", "peer_naive_reload_b8_fp32"):
            r = res[kind][name]
            assert _positive(r["median_s"]) and _positive(r["slices_per_s"])
            assert r["memory"]["rss_peak_mb"] > 0
        speed = res[f"{kind}_speedup_vs_naive_reload_b8_fp32"]
        assert _positive(speed["best_product"]) and _positive(speed["product_fp32"])
    assert -1.0 <= res["mc_dropout"]["product_bf16"]["bald_spearman_vs_product_fp32"] <= 1.0


@pytest.mark.slow
def test_first_suggestion_tiny(tmp_path):
    _bench("bench_first_suggestion").main(["--tiny", "--device", "cpu", "-k", "3", "--out-dir", str(tmp_path)])
    doc = _load(tmp_path, "first_suggestion_tiny")
    res = doc["devices"]["cpu"]
    for stage in ("registration", "scoring", "selection"):
        assert stage in res["stages_s"] and res["stages_s"][stage] >= 0
    assert _positive(res["stages_s"]["registration"]) and _positive(res["stages_s"]["scoring"])
    assert _positive(res["total_s"])
    assert math.isclose(res["total_s"], sum(res["stages_s"].values()), rel_tol=1e-9)
    assert len(res["picks"]) == 3 and len(set(res["picks"])) == 3
    assert all(0 <= i < res["n_slices"] for i in res["picks"])
    assert res["slices_scored"] == res["n_slices"]
    prop = doc["devices"]["cpu_proposed"]  # bf16 + foreground-only scoring
    assert 0 < prop["slices_scored"] <= prop["n_slices"] and _positive(prop["stages_s"]["scoring"])
    assert len(set(prop["picks"])) == 3 and all(0 <= i < prop["n_slices"] for i in prop["picks"])
