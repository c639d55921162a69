"""Smoke test of bench_interactive (issue 14) in its --tiny configuration: the JSON holds every figure
the issue asks for, each next to its load average. Not a timed test: figures are checked to be
real numbers, never compared with a target."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks" / "interactive"))


def _real(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


@pytest.mark.slow
def test_interactive_tiny_writes_prepare_first_suggestions_and_accept(tmp_path):
    import bench_interactive

    bench_interactive.main(["--tiny", "--device", "cpu", "--out-dir", str(tmp_path), "--threads", "1",
                            "--strategies", "entropy_mean,bald", "--before", "bald", "--budgets", "steps_60"])
    doc = json.loads((tmp_path / "interactive_tiny.json").read_text())
    assert _real(doc["prepare"]["seconds"]) and "load1" in doc["prepare"]
    assert doc["before_committed"] == {} or "prepare_s" in doc["before_committed"]
    cpu = doc["devices"]["cpu"]
    first = cpu["first"]
    assert set(first) == {"entropy_mean", "bald"} and set(first["bald"]) >= {"after", "before"}
    for rows in first.values():
        for row in (r for r in rows.values() if isinstance(r, dict)):
            assert _real(row["seconds"]) and _real(row["ratio_to_deterministic"]) and len(row["picks"]) == 10
            assert "load1" in row
    assert 0.0 <= first["bald"]["top_k_overlap_with_before"] <= 1.0
    acc = cpu["accept"]["steps_60"]
    assert acc["steps"] >= 60 and _real(acc["train_s"]) and _real(acc["total_s"]) and "load1" in acc
