"""The module panel: wires the .ui to the scene logic and shows its state (SlicerNNUnet's Lib Widget).

Why in the library: the module file stays a shell (Module, Widget, self-test), and
this code is tested headless with recording stand-ins for its widgets. No Qt is
imported here: the module file hands in the one Qt object the panel needs (its
poll timer). The Logic owns the job (``scene_logic.jobs``: start, poll, apply,
cancel); the panel only wires buttons, guards errors and copies ``jobs.state()``.
"""

from __future__ import annotations

import logging
from typing import Callable

import slicer
from slicer.util import VTKObservationMixin

from LongitudinalALLib.scene import stored_panel, transform_review
from LongitudinalALLib.scene.outputs import LESION_SEGMENT, segment_id

log = logging.getLogger(__name__)
POLL_MS = 200  # how often the panel polls a running job


class Panel(VTKObservationMixin):
    """``ui``: the .ui's named widgets (``slicer.util.childWidgetVariables``); ``timer``: a QTimer;
    ``is_entered``: whether the module is shown; ``parameter_node``: the bound wrapper (or None)."""

    def __init__(self, ui, scene_logic, timer, is_entered: Callable[[], bool], parameter_node=None) -> None:
        VTKObservationMixin.__init__(self)
        self.ui, self.logic, self.timer, self.is_entered = ui, scene_logic, timer, is_entered
        self.jobs = scene_logic.jobs
        self.parameterNode = parameter_node
        self.storedRows: list = []

    @classmethod
    def build(cls, ui_path: str, scene_logic, timer, is_entered, parameter_node) -> tuple[object, Panel]:
        """Load the .ui, bind it and the scene; returns (the top widget to lay out, the panel)."""
        widget = slicer.util.loadUI(ui_path)
        widget.setMRMLScene(scene_logic.scene)
        panel = cls(slicer.util.childWidgetVariables(widget), scene_logic, timer, is_entered, parameter_node)
        panel.connect()
        return widget, panel

    def connect(self) -> None:
        ui = self.ui
        editor = ui.segmentEditorWidget
        editor.setSegmentationNodeSelectorVisible(False)  # the panel chooses them; user picks were reset
        editor.setSourceVolumeNodeSelectorVisible(False)
        self.selectEditorNode()
        self.timer.setInterval(POLL_MS)
        self.timer.connect("timeout()", self.onPoll)
        for button, slot in ((ui.runButton, self.onRunOrCancel), (ui.acceptButton, self.onAccept),
                             (ui.retrainButton, self.onRetrain), (ui.previousButton, lambda: self.onStep(-1)),
                             (ui.nextButton, lambda: self.onStep(1)), (ui.repairButton, self.onRepair)):
            button.connect("clicked(bool)", slot)
        ui.suggestionTable.connect("clicked(QModelIndex)", lambda index: self.onShow(index.row()))
        ui.storedCollapsibleButton.connect("contentsCollapsed(bool)", lambda collapsed: self.onStoredList())
        ui.removeStoredButton.connect("clicked(bool)", self.onRemoveStored)
        scene = self.logic.scene
        self.addObserver(scene, scene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(scene, scene.EndCloseEvent, self.onSceneEndClose)
        self.addObserver(scene, scene.EndImportEvent, self.onSceneImported)
        self.parameterNode.connectGui(ui)
        self._guard(self.logic.ensure_session)  # a scene opened before the panel was

    # ------------------------------------------------------------ module life
    def enter(self) -> None:
        self.selectEditorNode()
        self.ui.segmentEditorWidget.installKeyboardShortcuts()
        self.ui.segmentEditorWidget.setupViewObservations()
        self.refresh()
        self.activatePaint()

    def activatePaint(self) -> None:
        """Labelling starts with Paint on "new lesion" (not while the user has another effect)."""
        editor = self.ui.segmentEditorWidget
        if self.logic.node("segmentation") is not None and editor.activeEffect() is None:
            editor.setActiveEffectByName("Paint")

    def exit(self) -> None:
        editor = self.ui.segmentEditorWidget
        editor.setActiveEffect(None)  # a Paint effect must not keep painting in other modules
        editor.uninstallKeyboardShortcuts()
        editor.removeViewObservations()

    def cleanup(self) -> None:
        self.removeObservers()
        self.timer.stop()
        self.jobs.shutdown()  # the job is cancelled and the kept worker ends

    def selectEditorNode(self) -> None:
        from LongitudinalALLib.scene.editor_node import segment_editor_node

        node = segment_editor_node(self.logic.scene)
        if self.ui.segmentEditorWidget.mrmlSegmentEditorNode() != node:
            self.ui.segmentEditorWidget.setMRMLSegmentEditorNode(node)

    def _guard(self, action) -> None:
        """Run a user action; errors show one dialog (tryWithErrorDisplay re-raises) and the panel refreshes."""
        try:
            with slicer.util.tryWithErrorDisplay("LongitudinalAL:", waitCursor=True):
                action()
        except Exception:  # noqa: BLE001 - already shown to the user
            log.debug("LongitudinalAL action failed", exc_info=True)
        finally:
            self.refresh()

    # ------------------------------------------------------------ buttons
    def onRunOrCancel(self) -> None:
        if self.jobs.busy:
            self.jobs.cancel()
            self.ui.statusLabel.setText("Cancelling...")
            return
        self._guard(self._startRun)

    def _startRun(self) -> None:
        from LongitudinalALLib.scene.install import ensure_dependencies

        if ensure_dependencies():
            p = self.parameterNode
            self.jobs.start_run(p.baseline, p.followup)  # the options: the "run" pack, read by the logic
            self.timer.start()

    def onRepair(self) -> None:  # a flagged registration, corrected in the Transforms module: pair from it
        self._guard(lambda: (transform_review.start_repair(self.logic), self.timer.start()))

    def onRetrain(self) -> None:
        self._guard(lambda: (self.jobs.start_train(), self.timer.start()))

    def onPoll(self) -> None:
        outcome = None
        try:
            outcome = self.jobs.poll(self.onProgress)
            if outcome is None:
                return
            self.ui.statusLabel.setText(outcome.message)
            self.ui.logTextEdit.setPlainText(self.jobs.log_text())
            if outcome.status == "failed":  # a cancel is shown in the status line only
                slicer.util.errorDisplay(outcome.message)
        finally:
            if outcome is not None or not self.jobs.busy:  # the job ended: always a usable panel
                if not self.jobs.busy and not self.jobs.has_idle_work:  # a round may have started the next one
                    self.timer.stop()
                self.refresh()
        if outcome.status == "done" and self.is_entered():
            self.activatePaint()

    def onProgress(self, stage, fraction, message="") -> None:
        self.ui.progressBar.setValue(int(round(100 * fraction)))
        self.ui.statusLabel.setText(f"{stage}: {message}" if message else stage)
        self.ui.logTextEdit.appendPlainText(self.jobs.lines[-1] if self.jobs.lines else stage)

    def onAccept(self) -> None:
        """The label is stored; the timer's next step repacks the scene and starts a round on the labels so far."""
        self._guard(lambda: (self.jobs.accept(), self.timer.start()))

    def onStep(self, delta) -> None:
        self._guard(lambda: self.logic.step(delta))

    def onShow(self, row) -> None:
        self._guard(lambda: self.logic.show_suggestion(row))

    def onStoredList(self) -> None:
        """Fill "Stored sessions" (name, date, rounds, labels, size); see scene/stored_panel.py."""
        self.storedRows = stored_panel.listing(self.logic)
        self.ui.storedSessionsList.clear()
        for _, line in self.storedRows:
            self.ui.storedSessionsList.addItem(line)

    def onRemoveStored(self) -> None:
        row, rows = self.ui.storedSessionsList.currentRow, self.storedRows
        self._guard(lambda: self.ui.statusLabel.setText(stored_panel.remove(
            self.logic, rows, row, lambda text: slicer.util.confirmYesNoDisplay(text))))
        self.onStoredList()

    # ------------------------------------------------------------ scene events
    def onSceneStartClose(self, caller=None, event=None) -> None:
        """The logic cancels a running job (never applied to the next scene); polling then reports it."""
        self.ui.segmentEditorWidget.setSegmentationNode(None)
        self.ui.segmentEditorWidget.removeViewObservations()

    def onSceneEndClose(self, caller=None, event=None) -> None:
        self.selectEditorNode()
        if self.is_entered():
            self.ui.segmentEditorWidget.setupViewObservations()
        self.refresh()

    def onSceneImported(self, caller=None, event=None) -> None:
        """The module-level restorer (scene/restore.py) already reset the options and restored the session."""
        self.selectEditorNode()
        self.refresh()

    def refresh(self) -> None:
        scene = self.logic
        state = self.jobs.state(has_suggestions=bool(scene.suggestions))
        self.ui.runButton.text = state.run_text
        self.ui.runButton.enabled = state.run_enabled
        for button in (self.ui.acceptButton, self.ui.previousButton, self.ui.nextButton):
            button.enabled = state.labelling_enabled
        self.ui.retrainButton.enabled = state.retrain_enabled
        self.ui.suggestionTable.setMRMLTableNode(scene.node("table"))
        segmentation = scene.node("segmentation")
        editor = self.ui.segmentEditorWidget
        editor.setSegmentationNode(segmentation)
        editor.setSourceVolumeNode(scene.node("registered"))
        if segmentation is not None:  # the user draws into "new lesion", never into the prediction
            editor.setCurrentSegmentID(segment_id(segmentation, LESION_SEGMENT))
        has = bool(scene.suggestions)
        self.ui.suggestionLabel.text = f"{scene.current_index + 1} / {len(scene.suggestions)}" if has else "-"
        status = scene.status()
        self.ui.deviceLabel.text = status.get("device") or self.ui.deviceLabel.text
        self.ui.registrationWarningLabel.text = status.get("registration_warning", "")
        self.ui.repairButton.enabled = bool(status.get("registration_warning")) and not self.jobs.busy
