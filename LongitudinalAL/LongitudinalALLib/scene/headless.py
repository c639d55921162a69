"""A Slicer-like MRML scene without the Qt application (``slicer-core`` wheel).

Slicer's application creates the module logics, the colour LUTs and the three
slice views; outside Slicer we have to do it ourselves, and keep Python
references to every logic alive (VTK drops them otherwise and later calls crash).
Used by the tests and by headless runs of :class:`..logic.LongitudinalALSceneLogic`.
"""

from __future__ import annotations

import tempfile
import weakref
from dataclasses import dataclass, field
from typing import Any

import slicer
import vtk

#: slice view name -> orientation, as in Slicer's conventional layout
VIEWS: dict[str, str] = {"Red": "Axial", "Yellow": "Sagittal", "Green": "Coronal"}

_MODULE_LOGICS = (
    ("Volumes", "vtkSlicerVolumesLogic"),
    ("Segmentations", "vtkSlicerSegmentationsModuleLogic"),
    ("Markups", "vtkSlicerMarkupsLogic"),
    ("Transforms", "vtkSlicerTransformLogic"),
    ("SubjectHierarchy", "vtkSlicerSubjectHierarchyModuleLogic"),
    ("Tables", "vtkSlicerTablesLogic"),
)


@dataclass
class HeadlessSlicer:
    """Everything a Slicer session would hold for one scene (references kept on purpose)."""

    scene: Any
    app: Any
    logics: dict[str, Any] = field(default_factory=dict)
    slice_logics: dict[str, Any] = field(default_factory=dict)
    cache_dir: str = ""

    def slice_logic(self, name: str) -> Any:
        return self.slice_logics[name]

    def close(self) -> None:
        """Empty the scene and detach every logic; the object must not be used afterwards."""
        self.scene.Clear(True)
        _detach_logics(self.logics, self.slice_logics)


def _detach_logics(logics: dict[str, Any], slice_logics: dict[str, Any]) -> None:
    """Take the slice logics off the scene, then the colour logic.

    Why: left to Python's garbage collector, the logics die in any order, and
    the colour logic's destructor removes its colour nodes from the scene while
    a half-destroyed slice logic still observes it (a segfault inside
    vtkMRMLSliceLogic::ProcessMRMLLogicsEvents, seen in the test suite).
    """
    for logic in slice_logics.values():
        logic.SetMRMLScene(None)
    if "Colors" in logics:
        logics["Colors"].SetMRMLScene(None)


def create_headless_slicer(cache_dir: str | None = None, views: dict[str, str] | None = None) -> HeadlessSlicer:
    """Build a scene with app logic, default colours, module logics and slice views.

    views: layout name -> orientation; default Red/Yellow/Green as in Slicer's conventional layout.
    """
    cache_dir = cache_dir or tempfile.mkdtemp(prefix="lal-mrml-cache-")
    scene = slicer.vtkMRMLScene()
    cache = slicer.vtkCacheManager()
    cache.SetRemoteCacheDirectory(cache_dir)
    data_io = slicer.vtkDataIOManager()
    data_io.SetCacheManager(cache)
    scene.SetCacheManager(cache)
    scene.SetDataIOManager(data_io)  # ReadFromMRB needs both managers

    app = slicer.vtkSlicerApplicationLogic()
    app.SetMRMLScene(scene)
    colors = app.GetColorLogic()
    colors.SetMRMLScene(scene)
    colors.AddDefaultColorNodes()
    app.SetModuleLogic("Colors", colors)
    slice_collection = vtk.vtkCollection()
    app.SetSliceLogics(slice_collection)
    app.SetViewLogics(vtk.vtkCollection())
    slicer.vtkMRMLSliceNode.AddDefaultSliceOrientationPresets(scene, True)

    logics: dict[str, Any] = {"Colors": colors}
    for name, class_name in _MODULE_LOGICS:
        logic = getattr(slicer, class_name)()
        logic.SetMRMLScene(scene)
        logic.SetMRMLApplicationLogic(app)
        app.SetModuleLogic(name, logic)
        logics[name] = logic

    slice_logics: dict[str, Any] = {}
    for view, orientation in (VIEWS if views is None else views).items():
        sl = slicer.vtkMRMLSliceLogic()
        sl.SetMRMLScene(scene)
        sl.SetMRMLApplicationLogic(app)
        node = sl.AddSliceNode(view)
        node.SetOrientation(orientation)
        node.SetLayoutName(view)
        slice_collection.AddItem(sl)
        slice_logics[view] = sl
    headless = HeadlessSlicer(scene, app, logics, slice_logics, cache_dir)
    weakref.finalize(headless, _detach_logics, logics, slice_logics)  # also when close() is never called
    return headless
