"""Output nodes, the viewer and label transfer on real MRML (slicer-core)."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

slicer = pytest.importorskip("slicer")

import scene_testdata  # noqa: E402

from LongitudinalALLib.active.suggestions import Suggestion, place_on_baseline  # noqa: E402
from LongitudinalALLib.imaging.ras import slice_axis_of  # noqa: E402
from LongitudinalALLib.model.lesion_mask import RAW, LesionMaskConfig, lesion_mask  # noqa: E402
from LongitudinalALLib.scene import headless, labels, outputs, viewer, volumes  # noqa: E402


@pytest.fixture(scope="module")
def pair():
    return scene_testdata.make_pair(3.0)


@pytest.fixture()
def env(tmp_path):
    hs = headless.create_headless_slicer(str(tmp_path / "cache"))
    yield hs
    hs.close()


class AxialGridGeometry:
    """Model slices = the baseline's own K planes (what SliceGeometry does at native spacing)."""

    def to_slices(self, volume, order=1):
        return np.asarray(volume)

    def to_slice(self, volume, n, order=1):
        return np.asarray(volume)[n]

    def to_volume(self, slices, order=1):
        return np.asarray(slices)


@pytest.mark.parametrize("kind", ["rigid", "composite", "bspline"])
def test_transform_node_maps_points_like_simpleitk(env, kind, pair):
    baseline = pair[0]
    if kind == "rigid":
        tx = sitk.Euler3DTransform((1.0, 2.0, 3.0), 0.05, -0.03, 0.1, (2.0, -1.0, 4.0))
    elif kind == "composite":
        tx = sitk.CompositeTransform([sitk.Euler3DTransform((0, 0, 0), 0.02, 0.0, 0.04, (1, 2, 3)),
                                      sitk.AffineTransform((1.05, 0.01, 0, 0, 0.97, 0, 0, 0, 1.0), (0.5, 0, -1))])
    else:
        tx = sitk.BSplineTransformInitializer(baseline, (3, 3, 3))
        params = np.array(tx.GetParameters())
        tx.SetParameters(tuple(np.random.default_rng(1).normal(0, 2.0, params.size)))
    before = env.scene.GetNodesByClass("vtkMRMLTransformNode").GetNumberOfItems()
    node = outputs.update_transform_node(tx, env.scene)
    from_parent = node.GetTransformFromParent()
    for lps in [(0.0, 0.0, 0.0), (10.0, -20.0, 15.0), (-30.0, 25.0, -5.0)]:
        expected = np.array(tx.TransformPoint(lps)) * [-1, -1, 1]
        got = from_parent.TransformPoint(tuple(np.array(lps) * [-1, -1, 1]))
        np.testing.assert_allclose(got, expected, atol=1e-3)
    assert node.IsLinear() == (kind != "bspline")
    again = outputs.update_transform_node(tx, env.scene, node=node)
    assert again is node and env.scene.GetNodesByClass("vtkMRMLTransformNode").GetNumberOfItems() == before + 1


def test_difference_table_points_segmentation(env, pair):
    baseline, followup, lesion = pair
    base = volumes.sitk_to_node(baseline, env.scene, "baseline")
    diff = outputs.update_difference_volume(followup - baseline, env.scene)
    lut = diff.GetDisplayNode().GetColorNode()
    assert lut.GetName() == outputs.DIVERGING_NAME
    rgba = [0.0] * 4
    lut.GetColor(0, rgba)
    assert rgba[2] > 0.9 and rgba[0] < 0.1  # most negative = blue
    lut.GetColor(lut.GetNumberOfColors() - 1, rgba)
    assert rgba[0] > 0.9 and rgba[2] < 0.1  # most positive = red
    assert diff.GetDisplayNode().GetLevel() == 0.0

    evidence = sitk.GetArrayFromImage(followup - baseline)
    fg = sitk.GetArrayFromImage(baseline) > 0.1
    ijk = volumes.ijk_to_ras(base)
    lesion_k = int(np.argmax(sitk.GetArrayFromImage(lesion).sum(axis=(1, 2))))
    centres = [tuple(float(v) for v in (ijk @ [30, 40, k, 1.0])[:3]) for k in (lesion_k, 5)]
    sugg = [Suggestion(rank, "case0", k, c, c, score, row=k, reason=why, rule_score=rule)
            for rank, (k, c, score, why, rule) in enumerate(zip(
                (lesion_k, 5), centres, (1.0, 0.0), ("uncertain new lesion", "large change before any lesion is labelled"),
                (0.8, 2.5)), start=1)]
    place_on_baseline(sugg, evidence, fg, ijk)
    # the candidate on the lesion slice lies inside the simulated new lesion
    blob_ras = np.array(scene_testdata.blob_center_lps(baseline)) * [-1, -1, 1]
    assert np.linalg.norm(np.array(sugg[0].ras) - blob_ras) < 9.0
    table = outputs.update_suggestions_table(sugg, env.scene)
    assert [table.GetColumnName(i) for i in range(table.GetNumberOfColumns())] == list(outputs.TABLE_COLUMNS)
    assert table.GetNumberOfRows() == 2 and table.GetCellText(0, 2) == str(lesion_k)
    assert float(table.GetCellText(0, 5)) == pytest.approx(sugg[0].ras[2], abs=1e-4)
    why, rule = list(outputs.TABLE_COLUMNS).index("why"), list(outputs.TABLE_COLUMNS).index("rule score")
    assert table.GetCellText(1, why) == "large change before any lesion is labelled"  # issue 27: why a 0 score
    assert float(table.GetCellText(1, rule)) == pytest.approx(2.5)
    old = env.scene.AddNewNodeByClass("vtkMRMLTableNode", "saved before issue 27")  # an older scene's 9 columns
    for col in ("rank", "case", "slice", "R", "A", "S", "score", "pair P(new lesion)", "status"):
        old.AddColumn(outputs._vtk_array("string", col))
    old = outputs.update_suggestions_table(sugg, env.scene, node=old)
    assert [old.GetColumnName(i) for i in range(old.GetNumberOfColumns())] == list(outputs.TABLE_COLUMNS)
    assert old.GetCellText(1, why) == "large change before any lesion is labelled"
    sugg[0].status = "accepted"
    status = list(outputs.TABLE_COLUMNS).index("status")
    assert outputs.update_suggestions_table(sugg, env.scene, node=table).GetCellText(0, status) == "accepted"
    points = outputs.update_suggestion_points(sugg, env.scene)
    assert points.GetNumberOfControlPoints() == 2
    # review L5: neither can be edited by the user (an update would wipe the edit)
    assert table.GetLocked() and points.GetLocked()
    assert points.GetNthControlPointDescription(1).endswith("large change before any lesion is labelled (2.5)")
    np.testing.assert_allclose(points.GetNthControlPointPositionWorld(0), sugg[0].ras, atol=1e-6)
    seg = outputs.ensure_segmentation(base, env.scene)
    assert outputs.segment_id(seg, outputs.LESION_SEGMENT) and outputs.segment_id(seg, outputs.PREDICTION_SEGMENT)
    assert outputs.ensure_segmentation(base, env.scene, node=seg) is seg


def test_label_slice_roundtrip_and_empty_slice(env, pair):
    baseline, _, lesion = pair
    base = volumes.sitk_to_node(baseline, env.scene, "baseline")
    seg = outputs.ensure_segmentation(base, env.scene)
    geometry = AxialGridGeometry()
    mask = sitk.GetArrayFromImage(lesion)
    k = int(np.argmax(mask.sum(axis=(1, 2))))
    assert labels.read_label_slice(seg, base, geometry, k).sum() == 0  # nothing drawn: "no new lesion"
    labels.write_label_slice(seg, base, geometry, k, mask[k])
    np.testing.assert_array_equal(labels.read_label_slice(seg, base, geometry, k), mask[k])
    labels.write_label_slice(seg, base, geometry, k + 1, mask[k + 1])  # another slice keeps the first
    np.testing.assert_array_equal(labels.read_label_slice(seg, base, geometry, k), mask[k])
    np.testing.assert_array_equal(labels.export_segment(seg, outputs.LESION_SEGMENT, base)[k + 1], mask[k + 1])
    count = labels.write_prediction(seg, base, geometry, mask.astype(np.float32), config=RAW)
    assert count == int(mask.sum())
    assert env.scene.GetNodesByClass("vtkMRMLLabelMapVolumeNode").GetNumberOfItems() == 0  # no leftovers


def test_the_prediction_segment_is_the_lesion_mask_step_not_a_bare_threshold(env, pair):
    baseline = pair[0]
    base = volumes.sitk_to_node(baseline, env.scene, "baseline")
    seg = outputs.ensure_segmentation(base, env.scene)
    probs = np.zeros(sitk.GetArrayViewFromImage(baseline).shape, np.float32)
    k, j, i = (n // 2 for n in probs.shape)
    probs[k - 1:k + 2, j - 3:j + 3, i - 3:i + 3] = 0.95   # a confident blob
    probs[k, j + 12, i + 12] = 0.97                        # a one-voxel speck
    probs[k, j - 12:j - 6, i - 12:i - 6] = 0.6             # a weak blob
    config = LesionMaskConfig(threshold=0.5, peak=0.9, min_volume_mm3=2.0 * float(np.prod(baseline.GetSpacing())))
    expected = lesion_mask(probs, baseline.GetSpacing(), config)
    assert expected.sum() == 3 * 6 * 6 and (probs >= 0.5).sum() > expected.sum()
    for write in (lambda: labels.write_prediction(seg, base, AxialGridGeometry(), probs, config=config),
                  lambda: labels.write_prediction_map(seg, base, probs, config=config)):
        assert write() == expected.sum()
        np.testing.assert_array_equal(labels.export_segment(seg, outputs.PREDICTION_SEGMENT, base), expected)


def test_red_view_shows_the_suggested_slice(env, pair):
    baseline, followup, lesion = pair
    base = volumes.sitk_to_node(baseline, env.scene, "baseline")
    follow = volumes.sitk_to_node(followup, env.scene, "follow-up")
    display = follow.GetDisplayNode()
    display.SetInterpolate(0)
    lo, hi = float(sitk.GetArrayViewFromImage(followup).min()), float(sitk.GetArrayViewFromImage(followup).max())
    display.AutoWindowLevelOff()
    display.SetWindowLevel(hi - lo, (hi + lo) / 2)
    ijk = volumes.ijk_to_ras(base)
    k = int(np.argmax(sitk.GetArrayFromImage(lesion).sum(axis=(1, 2))))
    slice_ras = tuple((ijk @ [33, 39, k, 1.0])[:3])
    s = Suggestion(1, "case0", k, (slice_ras[0] + 6, slice_ras[1] - 3, slice_ras[2]), slice_ras, 0.9)
    offset = viewer.show_suggestion(env.app, s, "axial", follow.GetID(), None, 0.0)
    red = env.app.GetSliceLogicByLayoutName("Red")
    assert red.GetSliceOffset() == pytest.approx(slice_ras[2]) and offset == pytest.approx(slice_ras[2])
    assert red.GetSliceCompositeNode().GetBackgroundVolumeID() == follow.GetID()
    # Yellow and Green go through the candidate point
    yellow, green = (env.app.GetSliceLogicByLayoutName(v) for v in ("Yellow", "Green"))
    assert yellow.GetSliceOffset() == pytest.approx(-s.ras[0]) and green.GetSliceOffset() == pytest.approx(s.ras[1])

    rgba = viewer.resliced_rgba(env.app, "Red")
    xy2ras = viewer.xy_to_ras(env.app, "Red")
    h, w = rgba.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w]
    ras = xy2ras @ np.stack([xs.ravel(), ys.ravel(), np.zeros(xs.size), np.ones(xs.size)])
    np.testing.assert_allclose(ras[2], slice_ras[2], atol=1e-6)  # every pixel lies on the slice
    ijk_pts = np.linalg.inv(ijk) @ ras
    idx = np.rint(ijk_pts[:3]).astype(int)
    inside = np.all((idx >= 0) & (idx < np.array(followup.GetSize())[:, None]), axis=0)
    expected = sitk.GetArrayFromImage(followup)[idx[2, inside], idx[1, inside], idx[0, inside]]
    expected_grey = np.clip((expected - lo) / (hi - lo) * 255.0, 0, 255)
    shown = rgba[..., 0].ravel()[inside].astype(float)
    assert inside.sum() > 1000
    assert np.mean(np.abs(shown - expected_grey) <= 2.0) > 0.99
    assert np.all(rgba[..., 0].ravel()[~inside] == 0)


def test_slice_axis_and_navigation():
    ijk = np.diag([-3.0, -3.0, 3.0, 1.0])
    assert slice_axis_of(ijk, "axial") == 0 and slice_axis_of(ijk, "sagittal") == 2
    assert viewer.next_index(0, 3) == 1 and viewer.next_index(2, 3) == 0
    assert viewer.next_index(0, 3, -1) == 2 and viewer.next_index(-1, 0) == -1
