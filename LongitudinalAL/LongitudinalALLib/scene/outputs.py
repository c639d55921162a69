"""Create or update the output nodes of a run (each saved with the scene).

Nodes: registration transform, registered follow-up, difference (diverging
colours), per-voxel score, suggestions table, suggestion points and the
"New lesions" segmentation on the baseline geometry. Each ``update_*`` reuses
the node it is given when it is still in the scene, so re-running never piles
up duplicates.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import slicer

from LongitudinalALLib.active.suggestions import Suggestion
from LongitudinalALLib.core.errors import InputError
from LongitudinalALLib.scene import volumes

DIVERGING_NAME = "LongitudinalAL DivergingBlueRed"
LESION_SEGMENT = "new lesion"
PREDICTION_SEGMENT = "model prediction"
#: "pair P(new lesion)": the triage score of the suggestion's pair (triage.pair_probability), so a
#: user sees at a glance whether this follow-up likely holds any new lesion at all
#: "why" / "rule score": the rule that picked the slice and its score (issue 27), e.g. a cold-start pick's
#: change saliency beside the strategy's own score of 0
TABLE_COLUMNS = ("rank", "case", "slice", "R", "A", "S", "score", "why", "rule score", "pair P(new lesion)",
                 "status")
_COLUMN_KINDS = ("int", "string", "int", "double", "double", "double", "double", "string", "double", "double",
                 "string")


def _alive(node) -> bool:
    return node is not None and node.GetScene() is not None


def diverging_color_node(scene, n: int = 256):
    """Blue (negative) - white (0) - red (positive) colour table; created once per scene."""
    node = scene.GetFirstNodeByName(DIVERGING_NAME)
    if node is not None:
        return node
    node = scene.AddNewNodeByClass("vtkMRMLColorTableNode", DIVERGING_NAME)
    node.SetTypeToUser()
    node.SetNumberOfColors(n)
    t = np.linspace(-1.0, 1.0, n)
    for i, v in enumerate(t):
        if v < 0:
            r = g = 1.0 + v
            b = 1.0
        else:
            r = 1.0
            g = b = 1.0 - v
        node.SetColor(i, f"{v:+.2f}", float(r), float(g), float(b), 1.0)
    node.AddDefaultStorageNode()
    return node


def to_affine_if_linear(transform: sitk.Transform) -> sitk.Transform:
    """Collapse a linear (possibly composite) transform into one AffineTransform, else return it."""
    dim = transform.GetDimension()
    p0 = np.array(transform.TransformPoint((0.0,) * dim))
    cols = [np.array(transform.TransformPoint(tuple(np.eye(dim)[i] * 100.0))) - p0 for i in range(dim)]
    matrix = np.stack(cols, axis=1) / 100.0
    rng = np.random.default_rng(0)
    for q in rng.uniform(-150, 150, size=(4, dim)):
        if not np.allclose(transform.TransformPoint(tuple(q)), matrix @ q + p0, atol=1e-4):
            return transform  # not affine (B-spline, displacement field)
    affine = sitk.AffineTransform(dim)
    affine.SetMatrix(tuple(matrix.ravel()))
    affine.SetTranslation(tuple(p0))
    return affine


def update_transform_node(transform: sitk.Transform, scene, name: str = "Follow-up to baseline", node=None):
    """Transform node whose FromParent is the follow-up->baseline resampling transform.

    Written as an ITK .tfm and read by a transform storage node, so Slicer's own
    LPS->RAS conversion and resampling convention apply (B-splines included).
    """
    if not _alive(node):
        node = None
    with tempfile.TemporaryDirectory(prefix="lal-tfm-") as tmp:
        path = Path(tmp) / "transform.tfm"
        sitk.WriteTransform(to_affine_if_linear(transform), str(path))
        storage = slicer.vtkMRMLTransformStorageNode()
        storage.SetFileName(str(path))
        target = node if node is not None else scene.AddNewNodeByClass(
            "vtkMRMLLinearTransformNode" if _is_linear(transform) else "vtkMRMLTransformNode", name)
        if not storage.ReadData(target):
            raise InputError(f"Slicer could not read the registration transform {path}.",
                             "Press Run again to register the pair anew.")
    if target.GetStorageNode() is None:
        target.AddDefaultStorageNode()
    return target


def _is_linear(transform: sitk.Transform) -> bool:
    return isinstance(to_affine_if_linear(transform), sitk.AffineTransform)


def update_registered_volume(image: sitk.Image, scene, name: str = "Follow-up (registered)", node=None):
    return volumes.sitk_to_node(image, scene, name, node if _alive(node) else None)


def update_difference_volume(image: sitk.Image, scene, name: str = "Difference", node=None):
    """Difference volume shown with diverging colours, window symmetric about 0."""
    node = volumes.sitk_to_node(image, scene, name, node if _alive(node) else None,
                                color_node_id=diverging_color_node(scene).GetID())
    array = sitk.GetArrayViewFromImage(image)
    half = float(np.percentile(np.abs(array), 99.9)) or 1.0
    display = node.GetDisplayNode()
    display.AutoWindowLevelOff()
    display.SetWindowLevel(2.0 * half, 0.0)
    return node


def update_score_volume(array: np.ndarray, reference, scene, name: str = "Change score", node=None):
    """Per-voxel score/uncertainty (K, J, I) on the reference (baseline) grid, hot colours."""
    if not _alive(node):
        node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name)
    volumes.set_voxels(node, np.asarray(array, dtype=np.float32), volumes.ijk_to_ras(reference))
    volumes.ensure_display_and_storage(node, "vtkMRMLColorTableNodeIron")
    display = node.GetDisplayNode()
    display.AutoWindowLevelOff()
    top = float(np.max(array)) if np.size(array) else 1.0
    display.SetWindowLevel(max(top, 1e-6), max(top, 1e-6) / 2.0)
    display.SetLowerThreshold(1e-3 * max(top, 1e-6))
    display.ApplyThresholdOn()
    return node


def update_suggestions_table(suggestions: list[Suggestion], scene, name: str = "Suggestions", node=None):
    """Table (``TABLE_COLUMNS``): rank, case, slice, R, A, S (candidate change), score, why, rule score,
    pair P(new lesion), status; one row per suggestion. A table of an older scene gets today's columns."""
    if not _alive(node):
        node = scene.AddNewNodeByClass("vtkMRMLTableNode", name)
        node.SetUseColumnTitleAsColumnHeader(True)
        node.AddDefaultStorageNode()
    node.SetLocked(True)  # qMRMLTableView would let the user edit cells the next update wipes (review L5)
    table = node.GetTable()
    if [table.GetColumnName(i) for i in range(table.GetNumberOfColumns())] != list(TABLE_COLUMNS):
        node.RemoveAllColumns()
        for col, kind in zip(TABLE_COLUMNS, _COLUMN_KINDS):
            node.AddColumn(_vtk_array(kind, col))
        table = node.GetTable()
    table.SetNumberOfRows(len(suggestions))
    for row, s in enumerate(suggestions):
        values = (s.rank, s.case_id, s.slice_index, *s.ras, s.score, s.reason,
                  float("nan") if s.rule_score is None else float(s.rule_score),
                  float(s.extra.get("pair_probability", float("nan"))), s.status)
        for col, value in enumerate(values):
            table.SetValue(row, col, value)
    table.Modified()
    node.Modified()
    return node


def _vtk_array(kind: str, name: str):
    import vtk

    array = {"int": vtk.vtkIntArray, "double": vtk.vtkDoubleArray, "string": vtk.vtkStringArray}[kind]()
    array.SetName(name)
    return array


def update_suggestion_points(suggestions: list[Suggestion], scene, name: str = "Suggested changes", node=None):
    """Point list with one locked point per suggestion at its candidate change (RAS)."""
    if not _alive(node):
        node = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", name)
        node.CreateDefaultDisplayNodes()
        node.AddDefaultStorageNode()
    node.SetLocked(True)  # no user points in it (it may be the active place list); the next update wipes them
    node.RemoveAllControlPoints()
    for s in suggestions:
        index = node.AddControlPoint(*s.ras, f"#{s.rank}")
        node.SetNthControlPointLocked(index, True)
        why = f": {s.why()}" if s.reason else ""
        node.SetNthControlPointDescription(index, f"{s.case_id} slice {s.slice_index} score {s.score:.4g}{why}")
    return node


def ensure_segmentation(reference, scene, name: str = "New lesions", node=None):
    """Segmentation with a 'new lesion' and a 'model prediction' segment, on the reference geometry."""
    if not _alive(node):
        node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", name)
        node.CreateDefaultDisplayNodes()
        node.SetReferenceImageGeometryParameterFromVolumeNode(reference)
        node.AddDefaultStorageNode()
    segmentation = node.GetSegmentation()
    for segment_name, color in ((LESION_SEGMENT, (0.95, 0.1, 0.1)), (PREDICTION_SEGMENT, (1.0, 0.85, 0.1))):
        if segmentation.GetSegmentIdBySegmentName(segment_name) == "":
            segmentation.AddEmptySegment(segment_name, segment_name, color)
    display = node.GetDisplayNode()
    prediction_id = segmentation.GetSegmentIdBySegmentName(PREDICTION_SEGMENT)
    display.SetSegmentOpacity2DFill(prediction_id, 0.25)
    return node


def segment_id(segmentation_node, name: str) -> str:
    return segmentation_node.GetSegmentation().GetSegmentIdBySegmentName(name)
