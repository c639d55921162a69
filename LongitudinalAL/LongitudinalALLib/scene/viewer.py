"""Show a suggestion in the slice views (works on Slicer's views and on headless ones).

The view matching the pairing axis (Red for axial) is moved to the suggested
slice; the two others are centred on the candidate change. Background is the
registered follow-up, foreground the difference (or score) with some opacity,
and the "New lesions" segmentation is shown for editing.
"""

from __future__ import annotations

import numpy as np


from .suggestions import Suggestion

AXIS_VIEW: dict[str, str] = {"axial": "Red", "sagittal": "Yellow", "coronal": "Green"}
VIEW_NAMES = ("Red", "Yellow", "Green")


def slice_logic(app, view: str):
    """Slice logic of a view by layout name (Slicer's or a headless one)."""
    logic = app.GetSliceLogicByLayoutName(view)
    if logic is None:
        raise RuntimeError(f"No '{view}' slice view in this application.")
    return logic


def slice_normal(slice_node) -> np.ndarray:
    """(3,) unit normal (RAS) of a slice node: third column of SliceToRAS."""
    m = slice_node.GetSliceToRAS()
    return np.array([m.GetElement(r, 2) for r in range(3)])


def set_layers(app, background_id: str | None, foreground_id: str | None, opacity: float = 0.4,
               views: tuple[str, ...] = VIEW_NAMES) -> None:
    for view in views:
        composite = slice_logic(app, view).GetSliceCompositeNode()
        composite.SetBackgroundVolumeID(background_id)
        composite.SetForegroundVolumeID(foreground_id)
        composite.SetForegroundOpacity(float(opacity))


def show_suggestion(app, suggestion: Suggestion, axis: str = "axial", background_id: str | None = None,
                    foreground_id: str | None = None, opacity: float = 0.4, segmentation_node=None) -> float:
    """Move the views to ``suggestion``; returns the main view's slice offset (mm along its normal)."""
    if background_id is not None:
        set_layers(app, background_id, foreground_id, opacity)
    main = AXIS_VIEW[axis]
    for view in VIEW_NAMES:
        node = slice_logic(app, view).GetSliceNode()
        node.JumpSliceByCentering(*suggestion.ras)
    main_logic = slice_logic(app, main)
    offset = float(np.dot(slice_normal(main_logic.GetSliceNode()), suggestion.slice_ras))
    main_logic.SetSliceOffset(offset)
    if segmentation_node is not None and segmentation_node.GetDisplayNode() is not None:
        display = segmentation_node.GetDisplayNode()
        display.SetVisibility(True)
        display.SetVisibility2DFill(True)
        display.SetVisibility2DOutline(True)
    return offset


def resliced_rgba(app, view: str) -> np.ndarray:
    """(H, W, 4) uint8 image the view currently shows (before any OpenGL), row 0 at the bottom."""
    from vtk.util import numpy_support

    logic = slice_logic(app, view)
    connection = logic.GetImageDataConnection()
    producer = connection.GetProducer()
    producer.Update()
    image = producer.GetOutputDataObject(connection.GetIndex())
    dims = image.GetDimensions()
    array = numpy_support.vtk_to_numpy(image.GetPointData().GetScalars())
    return array.reshape(dims[1], dims[0], -1)


def xy_to_ras(app, view: str) -> np.ndarray:
    """(4, 4) matrix mapping view pixel (x, y, 0, 1) to RAS."""
    m = slice_logic(app, view).GetSliceNode().GetXYToRAS()
    return np.array([[m.GetElement(r, c) for c in range(4)] for r in range(4)])


def next_index(current: int, count: int, step: int = 1) -> int:
    """Index of the next/previous suggestion, wrapping around; -1 when there is none."""
    if count <= 0:
        return -1
    return (current + step) % count if current >= 0 else (0 if step > 0 else count - 1)


