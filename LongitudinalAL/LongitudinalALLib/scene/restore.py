"""Restore the session whenever a scene is imported, whether or not the module panel exists.

Slicer opens an .mrb (double-click, drag and drop, File > Open) with
``vtkMRMLScene::ReadFromMRB``, which ends in the scene's ``EndImportEvent``.
The module installs one :class:`ImportRestorer` at startup, so the session is
unpacked even before anyone opens the LongitudinalAL panel. A problem in the
scene (unsafe, too large, damaged) is reported as one line, never raised into
the VTK event loop.
"""

from __future__ import annotations

import logging
from typing import Callable

from LongitudinalALLib.core.errors import LongitudinalALError

log = logging.getLogger(__name__)


class ImportRestorer:
    """Observes ``logic.scene``'s EndImportEvent: resets options this machine does not offer, then
    calls ``logic.ensure_session()``."""

    def __init__(self, logic, on_error: Callable[[str], None] | None = None) -> None:
        self.logic = logic
        self.on_error = on_error or log.error
        self.errors: list[str] = []  # the one-line messages shown, newest last
        scene = logic.scene
        self._tag = scene.AddObserver(scene.EndImportEvent, self._on_import)

    def _on_import(self, caller=None, event=None) -> None:
        self.logic.reset_unavailable_options()  # a scene from another machine: one log line per value reset
        try:
            self.logic.ensure_session()
        except LongitudinalALError as err:
            self.errors.append(str(err))
            self.on_error(str(err))

    def remove(self) -> None:
        """Stop observing (module cleanup)."""
        if self._tag is not None:
            self.logic.scene.RemoveObserver(self._tag)
            self._tag = None
