"""Arrays of an .npz are loaded only after the shapes their headers declare match what the caller expects."""

import numpy as np
import pytest

from LongitudinalALLib.core.npz_header import load_checked


def test_matching_members_are_loaded_and_others_left(tmp_path):
    path = tmp_path / "case.npz"
    np.savez(path, images=np.ones((2, 3, 4, 4), np.float32), extra=np.zeros(3))
    out = load_checked(path, {"images": (2, 3, 4, 4)})
    assert list(out) == ["images"] and out["images"].sum() == 96


@pytest.mark.parametrize("expected, why", [
    ({"images": (2, 3, 4, 5)}, "declares shape (2, 3, 4, 4), expected (2, 3, 4, 5)"),
    ({"labels": (2, 4, 4)}, "has no array 'labels'"),
])
def test_a_member_of_another_shape_or_missing_is_refused(tmp_path, expected, why):
    path = tmp_path / "case.npz"
    np.savez(path, images=np.ones((2, 3, 4, 4), np.float32))
    with pytest.raises(ValueError, match=why.replace("(", r"\(").replace(")", r"\)")):
        load_checked(path, expected)


def test_a_truncated_file_is_a_value_error(tmp_path):
    path = tmp_path / "case.npz"
    np.savez(path, images=np.ones((64, 64), np.float32))
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ValueError, match="case.npz cannot be read"):
        load_checked(path, {"images": (64, 64)})
