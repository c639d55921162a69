"""Scalar volume node <-> SimpleITK image with exact geometry, plus input checks.

MRML stores geometry as an IJK->RAS matrix; SimpleITK as origin/spacing/direction
in LPS. ``lps = diag(-1, -1, 1) @ ras`` converts either way. Arrays on both
sides are (K, J, I) numpy order, so pixel data is copied as it is.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk
import slicer
import vtk

from LongitudinalALLib.core.errors import InputError
from LongitudinalALLib.imaging.io import MIN_OVERLAP, box_overlap
from LongitudinalALLib.imaging.ras import LPS_TO_RAS, image_ijk_to_ras


def _node_label(node) -> str:
    try:
        return f"'{node.GetName()}'"
    except Exception:  # noqa: BLE001 - a deleted VTK object may not even answer GetName
        return "the selected node"


def validate_scalar_volume(node, role: str) -> None:
    """Raise InputError unless ``node`` is a live scalar (not label-map) volume with pixels."""
    if node is None:
        raise InputError(f"No {role} volume is selected.", f"Select a {role} scalar volume.")
    if node.GetScene() is None:
        raise InputError(f"The {role} volume {_node_label(node)} was deleted from the scene.",
                         f"Load the {role} image again and select it.")
    if node.IsA("vtkMRMLLabelMapVolumeNode"):
        raise InputError(f"The {role} volume {_node_label(node)} is a label map, not an image.",
                         "Select the scan itself (a scalar volume); convert it in the Volumes module "
                         "if it was loaded as a label map.")
    if not node.IsA("vtkMRMLScalarVolumeNode"):
        raise InputError(f"The {role} node {_node_label(node)} is a {node.GetClassName()}, not a scalar volume.",
                         f"Select a scalar {role} volume.")
    image = node.GetImageData()
    if image is None or image.GetNumberOfPoints() == 0:
        raise InputError(f"The {role} volume {_node_label(node)} has no voxels.", "Load the image again.")
    if image.GetNumberOfScalarComponents() != 1:
        raise InputError(f"The {role} volume {_node_label(node)} has {image.GetNumberOfScalarComponents()} "
                         "components per voxel (colour or vector image).",
                         "Select a single-channel (grey-level) scan.")


def ijk_to_ras(node) -> np.ndarray:
    """(4, 4) IJK->world RAS matrix, including a linear parent transform if any."""
    m = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(m)
    matrix = slicer.util.arrayFromVTKMatrix(m)
    parent = node.GetParentTransformNode()
    if parent is not None:
        if not parent.IsLinear():
            raise InputError(f"The volume '{node.GetName()}' is under a non-linear transform.",
                             "Harden the transform (Data module, right click > Harden transform) first.")
        w = vtk.vtkMatrix4x4()
        parent.GetMatrixTransformToWorld(w)
        matrix = slicer.util.arrayFromVTKMatrix(w) @ matrix
    return matrix


def node_to_sitk(node, role: str = "input") -> sitk.Image:
    """Copy a scalar volume node into a SimpleITK image (LPS geometry, same pixel type)."""
    validate_scalar_volume(node, role)
    matrix = ijk_to_ras(node)
    spacing = np.linalg.norm(matrix[:3, :3], axis=0)
    if np.any(spacing <= 0):
        raise InputError(f"The {role} volume '{node.GetName()}' has a zero voxel spacing.",
                         "Fix the spacing in the Volumes module (Volume Information).")
    direction_lps = LPS_TO_RAS @ (matrix[:3, :3] / spacing)
    origin_lps = LPS_TO_RAS @ matrix[:3, 3]
    array = slicer.util.arrayFromVolume(node)  # (K, J, I), a view on the node's memory
    image = sitk.GetImageFromArray(np.ascontiguousarray(array))
    image.SetSpacing(tuple(float(s) for s in spacing))
    image.SetOrigin(tuple(float(v) for v in origin_lps))
    image.SetDirection(tuple(float(v) for v in direction_lps.ravel()))
    return image


def set_voxels(node, array: np.ndarray, ijk_to_ras_matrix: np.ndarray) -> None:
    """Give ``node`` the voxels ``array`` (K, J, I) and the (4, 4) IJK->RAS geometry (Slicer's own helpers)."""
    slicer.util.updateVolumeFromArray(node, np.ascontiguousarray(array))
    node.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(np.asarray(ijk_to_ras_matrix, dtype=float)))


def sitk_to_node(image: sitk.Image, scene, name: str, node=None, color_node_id: str | None = None,
                 label_map: bool = False):
    """Create (or update) a volume node holding ``image``; adds display and storage nodes."""
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(f"Image '{name}' has several components per voxel.", "Use a single-channel image.")
    if node is None or node.GetScene() is None:
        cls = "vtkMRMLLabelMapVolumeNode" if label_map else "vtkMRMLScalarVolumeNode"
        node = scene.AddNewNodeByClass(cls, name)
    set_voxels(node, sitk.GetArrayFromImage(image), image_ijk_to_ras(image))
    ensure_display_and_storage(node, color_node_id)
    return node


def ensure_display_and_storage(node, color_node_id: str | None = None) -> None:
    """Give a volume node a display node (with LUT) and a storage node so it is saved in a .mrb."""
    if node.GetDisplayNode() is None:
        node.CreateDefaultDisplayNodes()
    display = node.GetDisplayNode()
    if color_node_id:
        display.SetAndObserveColorNodeID(color_node_id)
    elif display.GetColorNode() is None and not node.IsA("vtkMRMLLabelMapVolumeNode"):
        display.SetAndObserveColorNodeID("vtkMRMLColorTableNodeGrey")
    if node.GetStorageNode() is None:
        node.AddDefaultStorageNode()


def load_volume(path: str | Path, scene, name: str | None = None):
    """Read an image file into a new scalar volume node with a volume archetype storage node."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"Image file not found: {path}.", "Check the path.")
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name or path.name.split(".")[0])
    storage = scene.AddNewNodeByClass("vtkMRMLVolumeArchetypeStorageNode")
    storage.SetFileName(str(path))
    node.SetAndObserveStorageNodeID(storage.GetID())
    if not storage.ReadData(node):
        scene.RemoveNode(node)
        scene.RemoveNode(storage)
        raise InputError(f"Could not read the image {path}.", "Use NRRD, NIfTI or MetaImage.")
    ensure_display_and_storage(node)
    return node


def ras_bounds(node) -> np.ndarray:
    """(2, 3) min/max RAS corners of the voxel-centre box of a volume node."""
    dims = node.GetImageData().GetDimensions()
    corners = np.array([[i, j, k, 1.0] for i in (0, dims[0] - 1) for j in (0, dims[1] - 1) for k in (0, dims[2] - 1)])
    ras = (ijk_to_ras(node) @ corners.T).T[:, :3]
    return np.stack([ras.min(axis=0), ras.max(axis=0)])


def check_overlap(baseline, followup) -> float:
    """Raise InputError if the two volumes share (almost) no physical space (the CLI's rule:
    ``imaging.io.box_overlap`` against ``MIN_OVERLAP``); return the overlap fraction."""
    a, b = ras_bounds(baseline), ras_bounds(followup)
    fraction = box_overlap(a[0], a[1], b[0], b[1])
    if fraction < MIN_OVERLAP:
        raise InputError(
            f"The baseline '{baseline.GetName()}' and follow-up '{followup.GetName()}' volumes do not overlap "
            f"in space ({fraction:.0%} of the smaller volume is shared).",
            "Check that both scans are of the same patient and region; if their origins differ a lot, "
            "align them roughly first (Transforms module) and harden the transform.")
    return fraction
