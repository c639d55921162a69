"""Pictures of the slice views from a scene without a display (README and catalog screenshots).

Why: the catalog downloads every screenshot URL and the README should show
what the panel shows. Slicer's slice logic blends the background, foreground
and label layers into an RGBA image without OpenGL, so the same views the
module sets up can be captured headless; the segmentation is exported to a
label layer and the suggested point is drawn as a ring.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def view_rgb(slice_logic, size: tuple[int, int] = (320, 320)) -> np.ndarray:
    """(H, W, 3) uint8 of what the view shows (background, foreground, label layers blended)."""
    from vtk.util.numpy_support import vtk_to_numpy

    width, height = size
    node = slice_logic.GetSliceNode()
    offset = slice_logic.GetSliceOffset()
    node.SetDimensions(width, height, 1)
    slice_logic.FitSliceToBackground(width, height)  # the whole volume in view, as Slicer's "reset view"
    slice_logic.SetSliceOffset(offset)  # fitting re-centres the slice too: keep the shown one
    connection = slice_logic.GetImageDataConnection()
    producer = connection.GetProducer()
    producer.Update()
    image = producer.GetOutputDataObject(connection.GetIndex())
    dims = image.GetDimensions()
    pixels = vtk_to_numpy(image.GetPointData().GetScalars()).reshape(dims[1], dims[0], -1)
    return np.ascontiguousarray(pixels[::-1, :, :3])  # VTK rows run bottom-up


def ras_to_xy(slice_node, ras) -> tuple[float, float]:
    """Pixel position (x right, y down) of a RAS point in a view's image."""
    import vtk

    matrix = vtk.vtkMatrix4x4()
    vtk.vtkMatrix4x4.Invert(slice_node.GetXYToRAS(), matrix)
    x, y, _, _ = matrix.MultiplyPoint((*ras, 1.0))
    return x, slice_node.GetDimensions()[1] - 1 - y


def draw_ring(rgb: np.ndarray, x: float, y: float, radius: float = 12.0,
              color: tuple[int, int, int] = (255, 220, 0), width: float = 1.6) -> None:
    yy, xx = np.mgrid[0:rgb.shape[0], 0:rgb.shape[1]]
    ring = np.abs(np.hypot(xx - x, yy - y) - radius) <= width
    rgb[ring] = color


def show_segmentation_as_label(scene, segmentation, reference, views, opacity: float = 0.6):
    """Export ``segmentation`` to a label map on ``reference``'s grid and show it as the label layer."""
    import slicer

    label = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "snapshot labels")
    logic = slicer.vtkSlicerSegmentationsModuleLogic
    logic.ExportVisibleSegmentsToLabelmapNode(segmentation, label, reference)
    for view in views:
        composite = view.GetSliceCompositeNode()
        composite.SetLabelVolumeID(label.GetID())
        composite.SetLabelOpacity(opacity)
    return label


def write_png(rgb: np.ndarray, path: str | Path) -> Path:
    import vtk
    from vtk.util.numpy_support import numpy_to_vtk

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image = vtk.vtkImageData()
    image.SetDimensions(rgb.shape[1], rgb.shape[0], 1)
    image.GetPointData().SetScalars(numpy_to_vtk(rgb[::-1].reshape(-1, 3).copy(), deep=True))
    writer = vtk.vtkPNGWriter()
    writer.SetFileName(str(path))
    writer.SetInputData(image)
    writer.Write()
    return path
