"""Show a suggestion in the slice views (works on Slicer's views and on headless ones).

The view whose orientation matches the pairing axis (Red for axial in the
conventional layout, but any axial view in a custom one) is moved to the
suggested slice; every other slice view is centred on the candidate change.
Views are found by orientation, not by name, so custom layouts and renamed
views work; a layout with no view of that orientation is a one-line InputError.
Background is the registered follow-up, foreground the difference (or score)
with some opacity, and the "New lesions" segmentation is shown for editing.
"""

from __future__ import annotations

import numpy as np

from LongitudinalALLib.active.suggestions import Suggestion
from LongitudinalALLib.core.errors import InputError

AXIS_VIEW: dict[str, str] = {"axial": "Red", "sagittal": "Yellow", "coronal": "Green"}
VIEW_NAMES = ("Red", "Yellow", "Green")
ORIENTATION = {"axial": "Axial", "sagittal": "Sagittal", "coronal": "Coronal"}


def slice_logic(app, view: str):
    """Slice logic of a view by layout name (Slicer's or a headless one)."""
    logic = app.GetSliceLogicByLayoutName(view)
    if logic is None:
        raise InputError(f"There is no '{view}' slice view in this layout.", "Switch to a layout that shows it.")
    return logic


def all_slice_logics(app) -> list:
    """Every slice logic of the application that has a slice node, in layout order."""
    collection = app.GetSliceLogics()
    logics = [collection.GetItemAsObject(i) for i in range(collection.GetNumberOfItems())] if collection else []
    return [logic for logic in logics if logic is not None and logic.GetSliceNode() is not None]


def main_view_logic(app, axis: str):
    """The slice logic to move to the suggested slice: the conventional view if it has the right
    orientation, else any view with that orientation."""
    wanted = ORIENTATION[axis]
    matching = [lg for lg in all_slice_logics(app) if lg.GetSliceNode().GetOrientation() == wanted]
    if not matching:
        raise InputError(f"No slice view in this layout shows the {axis} orientation the session was paired in.",
                         f"Switch to a layout with slice views (e.g. Conventional) or set a view to {wanted}.")
    return next((lg for lg in matching if lg.GetSliceNode().GetLayoutName() == AXIS_VIEW[axis]), matching[0])


def slice_normal(slice_node) -> np.ndarray:
    """(3,) unit normal (RAS) of a slice node: third column of SliceToRAS."""
    m = slice_node.GetSliceToRAS()
    return np.array([m.GetElement(r, 2) for r in range(3)])


def set_layers(app, background_id: str | None, foreground_id: str | None, opacity: float = 0.4) -> None:
    """Same background/foreground in every slice view of the layout."""
    for logic in all_slice_logics(app):
        composite = logic.GetSliceCompositeNode()
        composite.SetBackgroundVolumeID(background_id)
        composite.SetForegroundVolumeID(foreground_id)
        composite.SetForegroundOpacity(float(opacity))


def show_suggestion(app, suggestion: Suggestion, axis: str = "axial", background_id: str | None = None,
                    foreground_id: str | None = None, opacity: float = 0.4, segmentation_node=None) -> float:
    """Move the views to ``suggestion``; returns the main view's slice offset (mm along its normal)."""
    main_logic = main_view_logic(app, axis)
    if background_id is not None:
        set_layers(app, background_id, foreground_id, opacity)
    for logic in all_slice_logics(app):
        logic.GetSliceNode().JumpSliceByCentering(*suggestion.ras)
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


