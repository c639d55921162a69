"""LongitudinalAL: active learning for new-lesion segmentation on longitudinal scans.

Thin Slicer module: the Widget wires the .ui to the Logic, the Logic delegates
to ``LongitudinalALLib.scene.logic.LongitudinalALSceneLogic`` (tested headless
on real MRML), which owns the background job (``sceneLogic.jobs``: start, poll,
apply, cancel) run in a worker process. ``qt`` is imported only inside the
Widget, torch never in this process.
"""

import logging
import os
from typing import Annotated

import slicer
from slicer import vtkMRMLScalarVolumeNode
from slicer.parameterNodeWrapper import Choice, WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

from LongitudinalALLib.scene import panel_options, stored_panel, transform_review
from LongitudinalALLib.scene.logic import LongitudinalALSceneLogic, RunOptions
from LongitudinalALLib.scene.outputs import LESION_SEGMENT, segment_id
from LongitudinalALLib.scene.persistence import default_work_root

#: compute devices offered (best first), found without importing torch (a worker's cached answer or a probe)
DEVICES = panel_options.available_devices(default_work_root())


class LongitudinalAL(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        parent.title = "Longitudinal Active Learning"
        parent.categories = ["Active Learning"]
        parent.dependencies = []
        parent.contributors = ["LongitudinalAL contributors"]
        parent.helpText = ("Register a follow-up scan to its baseline, score every slice pair with a change "
                           "segmentation model and label only the slices most worth labelling.")
        parent.acknowledgementText = "Query strategies after LMI-AL (IJCNN 2025) and MDAL cold start."
        slicer.app.connect("startupCompleted()", registerSampleData)
        slicer.app.connect("startupCompleted()", installSceneRestorer)


def installSceneRestorer():
    """Restore the session from every imported .mrb, whether or not the panel was opened (scene/restore.py)."""
    from LongitudinalALLib.scene.restore import ImportRestorer

    global sceneRestorer
    sceneRestorer = ImportRestorer(LongitudinalALSceneLogic(slicer.mrmlScene, slicer.app.applicationLogic()),
                                   slicer.util.errorDisplay)


def sampleFiles():
    """(baseline, follow-up) files of the bundled sample pair, or None when it is absent."""
    from LongitudinalALLib.scene.sample_data import sample_pair_files

    return sample_pair_files()


def registerSampleData():
    """Register our sample pair and Slicer's MRBrainTumor1/2 in the Sample Data module."""
    import SampleData

    from LongitudinalALLib.core.resources import icon_path
    from LongitudinalALLib.scene.sample_data import mr_brain_tumor_source, sample_source

    icon = str(icon_path())
    files = sampleFiles()
    if files:
        SampleData.SampleDataLogic.registerCustomSampleDataSource(**sample_source(files, icon))
    SampleData.SampleDataLogic.registerCustomSampleDataSource(**mr_brain_tumor_source(slicer.util.TESTING_DATA_URL,
                                                                                     icon))


@parameterNodeWrapper
class LongitudinalALParameterNode:
    baseline: vtkMRMLScalarVolumeNode
    followup: vtkMRMLScalarVolumeNode
    spacingMm: Annotated[float, WithinRange(*panel_options.SPACING_MM)] = 1.0
    size: Annotated[int, WithinRange(*panel_options.SIZE_PX)] = 256
    strategy: Annotated[str, Choice(list(panel_options.STRATEGIES))] = panel_options.DEFAULT_STRATEGY
    k: Annotated[int, WithinRange(*panel_options.K_PER_ROUND)] = 10
    deformable: bool = False
    device: Annotated[str, Choice(list(DEVICES))] = DEVICES[0]


class LongitudinalALWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """Wires the .ui to the Logic and shows its state; the Logic owns the job (``sceneLogic.jobs``)."""

    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None

    def setup(self):
        import qt

        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/LongitudinalAL.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = LongitudinalALLogic()
        self.jobs = self.logic.sceneLogic.jobs
        editor = self.ui.segmentEditorWidget
        editor.setSegmentationNodeSelectorVisible(False)  # the panel chooses them; user picks were reset
        editor.setSourceVolumeNodeSelectorVisible(False)
        self.selectEditorNode()
        self.timer = qt.QTimer()
        self.timer.setInterval(200)
        self.timer.connect("timeout()", self.onPoll)
        for button, slot in ((self.ui.runButton, self.onRunOrCancel), (self.ui.acceptButton, self.onAccept),
                             (self.ui.retrainButton, self.onRetrain),
                             (self.ui.previousButton, lambda: self.onStep(-1)),
                             (self.ui.nextButton, lambda: self.onStep(1)), (self.ui.repairButton, self.onRepair)):
            button.connect("clicked(bool)", slot)
        self.ui.suggestionTable.connect("clicked(QModelIndex)", lambda index: self.onShow(index.row()))
        self.ui.storedCollapsibleButton.connect("contentsCollapsed(bool)", lambda collapsed: self.onStoredList())
        self.ui.removeStoredButton.connect("clicked(bool)", self.onRemoveStored)
        scene = slicer.mrmlScene
        self.addObserver(scene, scene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(scene, scene.EndCloseEvent, self.onSceneEndClose)
        self.addObserver(scene, scene.EndImportEvent, self.onSceneImported)
        self._parameterNode = self.logic.getParameterNode()
        self._parameterNode.connectGui(self.ui)
        self._guard(self.logic.sceneLogic.ensure_session)  # a scene opened before the panel was

    def enter(self):
        self.selectEditorNode()
        self.ui.segmentEditorWidget.installKeyboardShortcuts()
        self.ui.segmentEditorWidget.setupViewObservations()
        self.refresh()
        self.activatePaint()

    def activatePaint(self):
        """Labelling starts with Paint on "new lesion" (not while the user has another effect)."""
        editor = self.ui.segmentEditorWidget
        if self.logic.sceneLogic.node("segmentation") is not None and editor.activeEffect() is None:
            editor.setActiveEffectByName("Paint")

    def exit(self):
        editor = self.ui.segmentEditorWidget
        editor.setActiveEffect(None)  # a Paint effect must not keep painting in other modules
        editor.uninstallKeyboardShortcuts()
        editor.removeViewObservations()

    def cleanup(self):
        self.removeObservers()
        self.timer.stop()
        self.jobs.cancel()

    def selectEditorNode(self):
        from LongitudinalALLib.scene.editor_node import segment_editor_node

        node = segment_editor_node(slicer.mrmlScene)
        if self.ui.segmentEditorWidget.mrmlSegmentEditorNode() != node:
            self.ui.segmentEditorWidget.setMRMLSegmentEditorNode(node)

    def _guard(self, action):
        """Run a user action; errors show one dialog (tryWithErrorDisplay re-raises) and the panel refreshes."""
        try:
            with slicer.util.tryWithErrorDisplay("LongitudinalAL:", waitCursor=True):
                action()
        except Exception:  # noqa: BLE001 - already shown to the user
            logging.debug("LongitudinalAL action failed", exc_info=True)
        finally:
            self.refresh()

    def options(self):
        p = self._parameterNode
        return RunOptions(prepare={"spacing_mm": p.spacingMm, "size": p.size, "deformable": p.deformable},
                          strategy=p.strategy, k=p.k, device=p.device)

    def onRunOrCancel(self):
        if self.jobs.busy:
            self.jobs.cancel()
            self.ui.statusLabel.setText("Cancelling...")
            return
        self._guard(self._startRun)

    def _startRun(self):
        from LongitudinalALLib.scene.install import ensure_dependencies

        if ensure_dependencies():
            p = self._parameterNode
            self.jobs.start_run(p.baseline, p.followup, self.options())
            self.timer.start()

    def onRepair(self):  # a flagged registration, corrected in the Transforms module: pair from it
        self._guard(lambda: (transform_review.start_repair(self.logic.sceneLogic), self.timer.start()))

    def onRetrain(self):
        self._guard(lambda: (self.jobs.start_train(), self.timer.start()))

    def onPoll(self):
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
                if not self.jobs.busy:  # a background round may have started the next one
                    self.timer.stop()
                self.refresh()
        if outcome.status == "done" and self.parent.isEntered:
            self.activatePaint()

    def onProgress(self, stage, fraction, message=""):
        self.ui.progressBar.setValue(int(round(100 * fraction)))
        self.ui.statusLabel.setText(f"{stage}: {message}" if message else stage)
        self.ui.logTextEdit.appendPlainText(self.jobs.lines[-1] if self.jobs.lines else stage)

    def onAccept(self):  # the label is stored; a round trains on the labels so far while labelling goes on
        self._guard(lambda: (self.jobs.accept(), self.jobs.busy and self.timer.start()))

    def onStep(self, delta):
        self._guard(lambda: self.logic.sceneLogic.step(delta))

    def onShow(self, row):
        self._guard(lambda: self.logic.sceneLogic.show_suggestion(row))

    def onStoredList(self):
        """Fill "Stored sessions" (name, date, rounds, labels, size); see scene/stored_panel.py."""
        self.storedRows = stored_panel.listing(self.logic.sceneLogic)
        self.ui.storedSessionsList.clear()
        for _, line in self.storedRows:
            self.ui.storedSessionsList.addItem(line)

    def onRemoveStored(self):
        row, rows = self.ui.storedSessionsList.currentRow, getattr(self, "storedRows", [])
        self._guard(lambda: self.ui.statusLabel.setText(stored_panel.remove(
            self.logic.sceneLogic, rows, row, lambda text: slicer.util.confirmYesNoDisplay(text))))
        self.onStoredList()

    def onSceneStartClose(self, caller=None, event=None):
        """The logic cancels a running job (never applied to the next scene); polling then reports it."""
        self.ui.segmentEditorWidget.setSegmentationNode(None)
        self.ui.segmentEditorWidget.removeViewObservations()

    def onSceneEndClose(self, caller=None, event=None):
        self.selectEditorNode()
        if self.parent.isEntered:
            self.ui.segmentEditorWidget.setupViewObservations()
        self.refresh()

    def onSceneImported(self, caller=None, event=None):
        """The module-level restorer (scene/restore.py) already restored the session and showed any error."""
        self.selectEditorNode()
        self.refresh()

    def refresh(self):
        scene = self.logic.sceneLogic
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


class LongitudinalALLogic(ScriptedLoadableModuleLogic, VTKObservationMixin):
    """Thin: the scene logic does the work; this packs the session whenever the scene is saved."""

    def __init__(self, runner=None):
        ScriptedLoadableModuleLogic.__init__(self)
        VTKObservationMixin.__init__(self)
        self.sceneLogic = LongitudinalALSceneLogic(slicer.mrmlScene, slicer.app.applicationLogic(), runner=runner)
        self.addObserver(slicer.mrmlScene, slicer.vtkMRMLScene.StartSaveEvent, self.onStartSave)

    def getParameterNode(self):
        return LongitudinalALParameterNode(super().getParameterNode())

    def onStartSave(self, caller=None, event=None):
        self.sceneLogic.pack_for_save()


class LongitudinalALTest(ScriptedLoadableModuleTest):
    """Full loop on the sample pair through the panel's own path (background jobs in worker processes):
    run, label, accept, retrain, save, reopen, continue. Skipped where torch is not installed."""

    def runTest(self):
        slicer.mrmlScene.Clear()
        if not panel_options.torch_installed():
            self.delayDisplay("LongitudinalAL: torch is not installed here; the full loop is skipped")
            return
        self.test_full_loop()

    def test_full_loop(self):
        import tempfile

        import numpy as np

        from LongitudinalALLib.scene import labels, outputs

        files = sampleFiles()
        self.assertIsNotNone(files, "the bundled sample pair is missing from Resources/SampleData")
        baseline, followup = (slicer.util.loadVolume(f) for f in files)
        logic = LongitudinalALLogic().sceneLogic
        options = RunOptions(prepare={"spacing_mm": 3.0, "size": 64, "n4": False}, k=3, strategy="entropy_mean",
                             model_config={"channels": [8, 16, 32], "strides": [2, 2], "num_res_units": 1},
                             init_weights="scratch", prefer_cpu=True,  # an exact 2-step budget: no floor
                             train={"epochs": 1, "steps_per_epoch": 2, "batch_size": 2, "crop_size": None})
        logic.jobs.start_run(baseline, followup, options)
        outcome = logic.jobs.wait()
        self.assertEqual(outcome.status, "done", outcome.message)
        suggestions = logic.suggestions
        self.assertEqual(len(suggestions), 3)
        first = suggestions[0]
        case = logic._session().case(first.case_id)
        label = np.zeros(case.images.shape[2:], np.uint8)
        label[20:26, 20:26] = 1
        row = logic._session().position(first.case_id, first.slice_index)
        labels.write_label_slice(logic.node("segmentation"), logic.reference_volume(), case.geometry, row, label)
        logic.accept_current()
        logic.jobs.start_train()
        outcome = logic.jobs.wait()
        self.assertEqual(outcome.status, "done", outcome.message)
        self.assertEqual(logic._session().round_number, 1)
        path = os.path.join(tempfile.mkdtemp(), "session.mrb")
        logic.save_bundle(path)
        logic.load_bundle(path)
        session = logic._session()
        np.testing.assert_array_equal(session.label(first.case_id, first.slice_index), label)
        self.assertIsNotNone(logic.node("segmentation"))
        self.assertTrue(outputs.segment_id(logic.node("segmentation"), outputs.LESION_SEGMENT))
        logic.step(1)
        self.delayDisplay("LongitudinalAL full loop passed")
