"""The refactor check of issue 10 compares records without their wall-clock fields, NaN equal to NaN."""

import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import bench_loop_reproduces as bench  # noqa: E402


def test_comparable_drops_clock_fields_and_keeps_every_number():
    a = {"round": 1, "seconds": 3.2, "train": {"final_train_loss": 0.5, "time": 1.0}, "dice": math.nan}
    b = {"round": 1, "seconds": 9.9, "train": {"final_train_loss": 0.5, "time": 7.0}, "dice": math.nan}
    assert bench.comparable(a) == bench.comparable(b)
    assert bench.comparable(a) != bench.comparable({**b, "train": {"final_train_loss": 0.5000001}})
