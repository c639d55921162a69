"""Suggestions show in custom layouts: views are found by orientation, not by name (slicer-app review D15)."""

from __future__ import annotations

import numpy as np
import pytest

slicer = pytest.importorskip("slicer")

import scene_sessions  # noqa: E402

from LongitudinalALLib.core.errors import InputError  # noqa: E402
from LongitudinalALLib.scene import headless, viewer  # noqa: E402


def _on_plane(slice_logic, ras) -> float:
    """Signed distance (mm) of ``ras`` from the plane a slice view shows."""
    m = slice_logic.GetSliceNode().GetSliceToRAS()
    origin = np.array([m.GetElement(r, 3) for r in range(3)])
    return float(np.dot(viewer.slice_normal(slice_logic.GetSliceNode()), np.array(ras) - origin))


def test_a_layout_without_red_yellow_green_shows_suggestions(tmp_path):
    hs = headless.create_headless_slicer(str(tmp_path / "cache"), views={"Slice1": "Axial", "Slice2": "Coronal"})
    logic = scene_sessions.start_session(hs, tmp_path / "work", "axial", k=2)
    s = logic.show_suggestion(1)
    main, other = hs.slice_logic("Slice1"), hs.slice_logic("Slice2")
    assert main.GetSliceOffset() == pytest.approx(s.slice_ras[2], abs=1e-6)
    assert _on_plane(main, s.ras) == pytest.approx(0.0, abs=1e-6)
    assert _on_plane(other, s.ras) == pytest.approx(0.0, abs=1e-6)
    assert other.GetSliceCompositeNode().GetBackgroundVolumeID() == logic.node("registered").GetID()

    hs.slice_logic("Slice1").GetSliceNode().SetOrientation("Sagittal")  # the user re-oriented the only axial view
    with pytest.raises(InputError, match="No slice view in this layout shows the axial orientation") as err:
        logic.show_suggestion(0)
    assert "\n" not in str(err.value)


def test_the_view_with_the_right_orientation_wins_over_the_conventional_name(tmp_path):
    hs = headless.create_headless_slicer(str(tmp_path / "cache"), views={"Red": "Sagittal", "Slice9": "Axial"})
    logic = scene_sessions.start_session(hs, tmp_path / "work", "axial", k=2)
    s = logic.show_suggestion(0)
    assert hs.slice_logic("Slice9").GetSliceOffset() == pytest.approx(s.slice_ras[2], abs=1e-6)
    assert _on_plane(hs.slice_logic("Red"), s.ras) == pytest.approx(0.0, abs=1e-6)  # centred, still sagittal
    assert hs.slice_logic("Red").GetSliceNode().GetOrientation() == "Sagittal"
