"""Labels between the "New lesions" segmentation (baseline grid) and model slices.

Reading: export a segment to a label map on the baseline grid (K, J, I), then
cut model slices with ``SliceGeometry.to_slices(order=0)``; an empty slice means
"no new lesion". Writing: ``to_volume(order=0)`` back to the baseline grid and
replace the segment's binary label map. The model's prediction segment is
always the product's lesion-mask step (``model/lesion_mask.py``: components, a
confident peak, a minimum volume in mm^3 from the reference's spacing), never a
bare voxel threshold, so what a user sees is what is scored.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import numpy as np
import slicer
import vtk
from vtk.util import numpy_support

from LongitudinalALLib.core.errors import InputError
from LongitudinalALLib.scene import volumes
from LongitudinalALLib.scene.outputs import LESION_SEGMENT, PREDICTION_SEGMENT, segment_id

if TYPE_CHECKING:
    from LongitudinalALLib.model.lesion_mask import LesionMaskConfig


class SliceGeometryLike(Protocol):
    def to_slices(self, volume: np.ndarray, order: int = 1) -> np.ndarray: ...  # (K,J,I) -> (N,H,W)
    def to_slice(self, volume: np.ndarray, n: int, order: int = 1) -> np.ndarray: ...  # (K,J,I) -> (H,W)
    def to_volume(self, slices: np.ndarray, order: int = 1) -> np.ndarray: ...  # (N,H,W) -> (K,J,I)


def export_segment(segmentation_node, segment_name: str, reference) -> np.ndarray:
    """(K, J, I) uint8 mask of one segment on the reference volume's grid."""
    scene = segmentation_node.GetScene()
    dims = reference.GetImageData().GetDimensions()
    empty = np.zeros(dims[::-1], dtype=np.uint8)
    sid = segment_id(segmentation_node, segment_name)
    if not sid:
        return empty
    ids = vtk.vtkStringArray()
    ids.InsertNextValue(sid)
    labelmap = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "lal-export")
    try:
        ok = slicer.vtkSlicerSegmentationsModuleLogic.ExportSegmentsToLabelmapNode(
            segmentation_node, ids, labelmap, reference)
        image = labelmap.GetImageData()
        if not ok or image is None or image.GetNumberOfPoints() == 0:
            return empty
        array = numpy_support.vtk_to_numpy(image.GetPointData().GetScalars()).reshape(dims[::-1])
        return (array > 0).astype(np.uint8)
    finally:
        _remove_with_helpers(scene, labelmap)


def _remove_with_helpers(scene, node) -> None:
    for i in range(node.GetNumberOfDisplayNodes()):
        display = node.GetNthDisplayNode(i)
        if display is not None:
            color = display.GetColorNode()
            if color is not None and color.GetName().startswith("lal-export"):
                scene.RemoveNode(color)
    scene.RemoveNode(node)


def write_segment(segmentation_node, segment_name: str, mask: np.ndarray, reference) -> None:
    """Replace a segment's content by ``mask`` (K, J, I) given on the reference grid."""
    sid = segment_id(segmentation_node, segment_name)
    if not sid:
        sid = segmentation_node.GetSegmentation().AddEmptySegment(segment_name, segment_name)
    oriented = slicer.vtkOrientedImageData()
    mask = np.ascontiguousarray(mask, dtype=np.uint8)
    oriented.SetDimensions(mask.shape[2], mask.shape[1], mask.shape[0])
    oriented.GetPointData().SetScalars(numpy_support.numpy_to_vtk(mask.ravel(), deep=True,
                                                                  array_type=vtk.VTK_UNSIGNED_CHAR))
    oriented.SetImageToWorldMatrix(slicer.util.vtkMatrixFromArray(volumes.ijk_to_ras(reference)))
    logic = slicer.vtkSlicerSegmentationsModuleLogic
    if not logic.SetBinaryLabelmapToSegment(oriented, segmentation_node, sid, logic.MODE_REPLACE):
        raise InputError(f"Could not write segment '{segment_name}'.",
                         "Show the suggestion again to recreate the segmentation, then repeat the step.")


def read_label_slice(segmentation_node, reference, geometry: SliceGeometryLike, row: int,
                     segment_name: str = LESION_SEGMENT) -> np.ndarray:
    """(H, W) uint8 label of model slice ``row`` (a pool row, ``Suggestion.row``: not the baseline
    ``slice_index``, which differs whenever pairing flips the slice axis); all zero = no new lesion there."""
    mask = export_segment(segmentation_node, segment_name, reference)
    return (geometry.to_slice(mask, row, order=0) > 0).astype(np.uint8)  # only that slice is resampled


def write_label_slice(segmentation_node, reference, geometry: SliceGeometryLike, row: int,
                      label: np.ndarray, segment_name: str = LESION_SEGMENT) -> None:
    """Put a model-grid label (H, W) of pool row ``row`` into the segment, replacing only what that slice covers."""
    mask = export_segment(segmentation_node, segment_name, reference)
    n = geometry.to_slices(np.zeros(mask.shape, np.float32), order=0).shape[0]
    stack = np.zeros((n, *label.shape), np.float32)
    stack[row] = label
    covered = np.ones_like(stack)
    coverage = geometry.to_volume(np.where(np.arange(n)[:, None, None] == row, covered, 0), order=0) > 0.5
    new = geometry.to_volume(stack, order=0) > 0.5
    mask = np.where(coverage, new, mask > 0).astype(np.uint8)
    write_segment(segmentation_node, segment_name, mask, reference)


def write_prediction(segmentation_node, reference, geometry: SliceGeometryLike, probs: np.ndarray,
                     config: LesionMaskConfig | None = None, foreground: np.ndarray | None = None) -> int:
    """Write the lesion mask of model probabilities (N, H, W) into the prediction segment; returns voxel count.

    ``foreground`` (N, H, W) bounds it when given (the case's brain mask); ``config`` None: the frozen defaults.
    """
    from LongitudinalALLib.model.lesion_mask import (  # here: the panel loads without torch
        DEFAULT,
        lesion_mask_from_slices,
    )

    fg = np.ones(probs.shape, bool) if foreground is None else foreground
    mask = lesion_mask_from_slices(probs, fg, geometry, reference.GetSpacing(), config or DEFAULT)
    write_segment(segmentation_node, PREDICTION_SEGMENT, mask.astype(np.uint8), reference)
    return int(mask.sum())


def write_prediction_map(segmentation_node, reference, probability: np.ndarray,
                         foreground: np.ndarray | None = None, config: LesionMaskConfig | None = None) -> int:
    """Write the lesion mask of a (K, J, I) probability map on the reference grid; returns voxel count."""
    from LongitudinalALLib.model.lesion_mask import DEFAULT, lesion_mask  # here: the panel loads without torch

    mask = lesion_mask(probability, reference.GetSpacing(), config or DEFAULT, foreground)
    write_segment(segmentation_node, PREDICTION_SEGMENT, mask.astype(np.uint8), reference)
    return int(mask.sum())
