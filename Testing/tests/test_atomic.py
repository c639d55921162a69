"""atomic.py: targets appear whole or not at all, with the usual file mode."""

import os
import stat

import numpy as np
import pytest

from LongitudinalALLib.core import atomic


def test_write_json_and_npz_round_trip(tmp_path):
    atomic.write_json(tmp_path / "a" / "state.json", {"x": np.int64(3), "arr": np.arange(3)})
    assert (tmp_path / "a" / "state.json").read_text().count('"x": 3') == 1
    atomic.write_npz(tmp_path / "m.npz", mask=np.eye(3, dtype=np.uint8))
    assert np.array_equal(np.load(tmp_path / "m.npz")["mask"], np.eye(3))


def test_failed_write_keeps_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "labels.json"
    atomic.write_text(target, "old")
    with pytest.raises(RuntimeError):
        with atomic.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash mid-write")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.json"]


def test_written_file_has_umask_mode_not_0600(tmp_path):
    old = os.umask(0o022)
    try:
        atomic.write_text(tmp_path / "f.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "f.txt").stat().st_mode) == 0o644
