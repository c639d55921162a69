"""One suggestion record carries the pool row and the baseline slice; every scene operation agrees.

Architecture review problem 1: ``slice_index`` was the pool row in one place and the
baseline slice in another. Pairing flips the slice axis for coronal and sagittal
runs and for axial volumes whose k axis points inferior, so there the label was
read from, and stored for, a slice the user never saw. Each geometry below flips;
the test checks what the main slice view shows (real MRML slice logic), the
candidate point, and the label accepted from the painted slice.
"""

from __future__ import annotations

import numpy as np
import pytest

slicer = pytest.importorskip("slicer")

import scene_sessions  # noqa: E402

from LongitudinalALLib.active.store import SessionStore  # noqa: E402
from LongitudinalALLib.imaging.ras import slice_axis_of  # noqa: E402
from LongitudinalALLib.scene import headless, labels, outputs, viewer, volumes  # noqa: E402

GEOMETRIES = [("sagittal", scene_sessions.IDENTITY), ("coronal", scene_sessions.IDENTITY),
              ("axial", scene_sessions.K_INFERIOR)]


def _shown_slice(app, view: str, reference, voxel_axis: int) -> int:
    """Baseline voxel slice (along ``voxel_axis``: 0=i, 1=j, 2=k) that slice view ``view`` shows."""
    xy = np.array([[0, 0, 0, 1], [200, 0, 0, 1], [0, 200, 0, 1], [120, 80, 0, 1]], float).T
    ijk = np.linalg.inv(volumes.ijk_to_ras(reference)) @ viewer.xy_to_ras(app, view) @ xy
    coords = ijk[voxel_axis]
    assert np.ptp(coords) < 1e-6, "the view is not parallel to the baseline slices"
    assert abs(coords[0] - round(coords[0])) < 1e-6, "the view lies between two baseline slices"
    return int(round(coords[0]))


@pytest.fixture(scope="module", params=GEOMETRIES, ids=[g[0] if g[1] == scene_sessions.IDENTITY else "axial-k-inferior"
                                                        for g in GEOMETRIES])
def flipped(request, tmp_path_factory):
    axis, direction = request.param
    tmp = tmp_path_factory.mktemp(axis)
    hs = headless.create_headless_slicer(str(tmp / "cache"))
    logic = scene_sessions.start_session(hs, tmp / "work", axis, direction, k=4)
    session = SessionStore.open_recovered(logic.work_dir / "session")[0]
    case = session.case(logic.suggestions[0].case_id)
    assert case.geometry.flips[0], "this geometry must flip the slice axis"
    return {"hs": hs, "logic": logic, "axis": axis, "case": case}


def test_suggestions_carry_row_and_baseline_slice(flipped):
    case, logic = flipped["case"], flipped["logic"]
    n = len(case.provenance)
    suggestions = logic.suggestions
    assert any(s.row != n - 1 - s.row for s in suggestions), "need a suggestion off the middle slice"
    for s in suggestions:
        assert s.slice_index == case.provenance[s.row].slice_index == case.geometry.slice_index(s.row)
        assert s.slice_index == n - 1 - s.row  # flipped: the two numbers differ
        assert tuple(s.slice_ras) == pytest.approx(case.provenance[s.row].center_ras)


def test_view_and_candidate_point_are_on_the_suggested_baseline_slice(flipped):
    hs, logic, axis = flipped["hs"], flipped["logic"], flipped["axis"]
    reference = logic.reference_volume()
    ijk_to_ras = volumes.ijk_to_ras(reference)
    voxel_axis = 2 - slice_axis_of(ijk_to_ras, axis)
    view = viewer.AXIS_VIEW[axis]
    for i, s in enumerate(logic.suggestions):
        logic.show_suggestion(i)
        assert _shown_slice(hs.app, view, reference, voxel_axis) == s.slice_index
        ijk = np.linalg.inv(ijk_to_ras) @ np.array([*s.ras, 1.0])
        assert ijk[voxel_axis] == pytest.approx(s.slice_index, abs=1e-6)
        # the two other views are centred on the candidate point
        for other in set(viewer.VIEW_NAMES) - {view}:
            centre = viewer.xy_to_ras(hs.app, other) @ np.array([*(np.array(
                hs.app.GetSliceLogicByLayoutName(other).GetSliceNode().GetDimensions()[:2]) / 2.0), 0, 1])
            assert np.dot(viewer.slice_normal(hs.app.GetSliceLogicByLayoutName(other).GetSliceNode()),
                          centre[:3] - np.array(s.ras)) == pytest.approx(0.0, abs=1e-6)


def test_accept_reads_the_label_from_the_slice_the_user_sees(flipped):
    hs, logic, axis, case = flipped["hs"], flipped["logic"], flipped["axis"], flipped["case"]
    reference = logic.reference_volume()
    voxel_axis = 2 - slice_axis_of(volumes.ijk_to_ras(reference), axis)
    n = len(case.provenance)
    for index in range(len(logic.suggestions)):  # a suggestion off the middle slice (where row == slice)
        s = logic.show_suggestion(index)
        shown = _shown_slice(hs.app, viewer.AXIS_VIEW[axis], reference, voxel_axis)
        if shown != n - 1 - shown:
            break
    # paint a 3x3 patch at the middle of the plane the user sees
    dims = reference.GetImageData().GetDimensions()  # (I, J, K)
    mask = np.zeros(dims[::-1], np.uint8)  # (K, J, I)
    sel = [slice(d // 2 - 1, d // 2 + 2) for d in dims]
    sel[voxel_axis] = shown
    mask[tuple(sel[::-1])] = 1
    labels.write_segment(logic.node("segmentation"), outputs.LESION_SEGMENT, mask, reference)
    accepted = logic.accept_current()
    assert accepted.slice_index == shown
    session = SessionStore.open_recovered(logic.work_dir / "session")[0]
    assert [r.key for r in session.labels()] == [f"{s.case_id}:{shown}"]
    stored = session.label(s.case_id, shown)
    expected = case.geometry.to_slices(mask.astype(np.float32), order=0)[session.position(s.case_id, shown)] > 0.5
    assert stored.sum() == 9 and np.array_equal(stored, expected)
    # the restored segmentation puts the label back on the same baseline slice
    hs.scene.RemoveNode(logic.node("segmentation"))
    restored = labels.export_segment(logic.segmentation(), outputs.LESION_SEGMENT, reference)
    assert np.array_equal(restored, mask)
