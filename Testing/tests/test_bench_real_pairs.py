"""Issue 24's real-pair benchmarks: one skip line without the shared data, and the change split by sign."""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import bench_real_appearance  # noqa: E402
import bench_real_weights  # noqa: E402
import real_pairs  # noqa: E402


def test_benchmarks_skip_with_one_line_without_the_data(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(real_pairs, "DATA", tmp_path / "absent")
    assert bench_real_appearance.main([]) == {}
    assert bench_real_weights.main(["--heldout-n", "0"]) == {}
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and all(line.startswith("skipped: ") for line in lines)


def test_change_is_split_by_the_sign_of_the_intensity_change():
    gt = np.zeros((6, 10, 10), bool)
    gt[1:3, 1:3, 1:3] = True  # brighter at follow-up: new
    gt[4:6, 6:9, 6:9] = True  # darker at follow-up: shrinking
    s1 = np.ones(gt.shape, np.float32)
    s2 = s1.copy()
    s2[1:3, 1:3, 1:3] = 1.4
    s2[4:6, 6:9, 6:9] = 0.7
    new, shrink, n_new, n_shrink = real_pairs.split_change({"gt": gt, "study1": s1, "study2": s2})
    assert (n_new, n_shrink) == (1, 1)
    assert new[1, 1, 1] and not new[4, 6, 6] and shrink[4, 6, 6] and not shrink[1, 1, 1]


def test_shape_of_a_component_is_measured_in_mm():
    mask = np.zeros((3, 20, 20), bool)
    mask[1, 5:7, 2:14] = True  # 12 x 2 voxels in one slice
    (c,) = bench_real_appearance.component_shapes(mask, (0.5, 0.5, 3.0))
    assert c["slices"] == 1 and np.isclose(c["volume_mm3"], 24 * 0.75)
    assert c["elongation"] > 3
