"""LongitudinalAL: active learning for new-lesion segmentation on longitudinal scans.

Thin Slicer module: the Widget wires the .ui to the Logic, the Logic delegates
to ``LongitudinalALLib.scene.logic.LongitudinalALSceneLogic`` (tested headless
on real MRML), heavy jobs run in a worker process. ``qt`` is imported only
inside the Widget.
"""

import os

import slicer
from slicer import vtkMRMLScalarVolumeNode
from slicer.parameterNodeWrapper import parameterNodeWrapper
from slicer.ScriptedLoadableModule import (ScriptedLoadableModule, ScriptedLoadableModuleLogic,
                                           ScriptedLoadableModuleTest, ScriptedLoadableModuleWidget)
from slicer.util import VTKObservationMixin

from LongitudinalALLib.scene.logic import LongitudinalALSceneLogic, RunOptions
from LongitudinalALLib.scene.outputs import LESION_SEGMENT, segment_id

MR_BRAIN_TUMOR = (  # Slicer's own longitudinal pair (same patient, two time points)
    ("MRBrainTumor1", "RegLib_C01_1.nrrd", "998cb522173839c78657f4bc0ea907cea09fd04e44601f17c82ea27927937b95"),
    ("MRBrainTumor2", "RegLib_C01_2.nrrd", "1a64f3f422eb3d1c9b093d1a18da354b13bcf307907c66317e2463ee530b7a97"),
)


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


def sampleFiles():
    """(baseline, follow-up) files of the bundled sample pair, or None when it is absent."""
    from LongitudinalALLib.resources import sample_data_dir

    found = {}
    for path in sorted(sample_data_dir().glob("*")):
        for role in ("baseline", "followup"):
            if path.name.lower().startswith(role) and path.suffix in (".nrrd", ".gz", ".mha", ".nii"):
                found.setdefault(role, str(path))
    return (found["baseline"], found["followup"]) if len(found) == 2 else None


def registerSampleData():
    """Register our sample pair and Slicer's MRBrainTumor1/2 in the Sample Data module."""
    import SampleData

    icon = os.path.join(os.path.dirname(__file__), "Resources", "Icons", "LongitudinalAL.png")
    files = sampleFiles()
    if files:
        SampleData.SampleDataLogic.registerCustomSampleDataSource(
            category="LongitudinalAL", sampleName="LongitudinalALSamplePair", thumbnailFileName=icon,
            uris=["file://" + f for f in files], fileNames=[os.path.basename(f) for f in files],
            nodeNames=["LongitudinalAL baseline", "LongitudinalAL follow-up"])
    SampleData.SampleDataLogic.registerCustomSampleDataSource(
        category="LongitudinalAL", sampleName="MRBrainTumor pair", thumbnailFileName=icon,
        uris=[slicer.util.TESTING_DATA_URL + "SHA256/" + sha for _, _, sha in MR_BRAIN_TUMOR],
        fileNames=[f for _, f, _ in MR_BRAIN_TUMOR], nodeNames=[n for n, _, _ in MR_BRAIN_TUMOR],
        checksums=["SHA256:" + sha for _, _, sha in MR_BRAIN_TUMOR])


@parameterNodeWrapper
class LongitudinalALParameterNode:
    baseline: vtkMRMLScalarVolumeNode
    followup: vtkMRMLScalarVolumeNode
    spacingMm: float = 1.0
    size: int = 256
    strategy: str = "entropy_mean"
    k: int = 10
    deformable: bool = False
    useCpu: bool = False


class LongitudinalALWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self.job = None
        self._parameterNode = None

    def setup(self):
        import qt

        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/LongitudinalAL.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = LongitudinalALLogic()
        try:  # the strategies need torch, which may not be installed yet
            from LongitudinalALLib.strategies import available_strategies

            self.ui.strategyComboBox.addItems(available_strategies())
        except ImportError:
            self.ui.strategyComboBox.addItems([RunOptions.strategy])
        editorNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentEditorNode")
        self.ui.segmentEditorWidget.setMRMLSegmentEditorNode(editorNode)
        self.timer = qt.QTimer()
        self.timer.setInterval(200)
        self.timer.connect("timeout()", self.onPoll)
        for button, slot in ((self.ui.runButton, self.onRun), (self.ui.cancelButton, self.onCancel),
                             (self.ui.acceptButton, self.onAccept), (self.ui.retrainButton, self.onRetrain),
                             (self.ui.previousButton, lambda: self.onStep(-1)),
                             (self.ui.nextButton, lambda: self.onStep(1))):
            button.connect("clicked(bool)", slot)
        self.ui.suggestionTable.connect("clicked(QModelIndex)", lambda index: self.onShow(index.row()))
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndImportEvent, self.onSceneImported)
        self._parameterNode = self.logic.getParameterNode()
        self._parameterNode.connectGui(self.ui)
        self.refresh()

    def cleanup(self):
        self.removeObservers()
        if self.job is not None:
            self.job[0].cancel()

    def _guard(self, action):
        with slicer.util.tryWithErrorDisplay("LongitudinalAL:", waitCursor=True):
            action()
        self.refresh()

    def options(self):
        p = self._parameterNode
        return RunOptions(prepare={"spacing_mm": p.spacingMm, "size": p.size, "deformable": p.deformable},
                          strategy=p.strategy, k=p.k, prefer_cpu=p.useCpu)

    def onRun(self):
        from LongitudinalALLib.scene.install import ensure_dependencies

        if ensure_dependencies():
            p = self._parameterNode
            self._guard(lambda: self.startJob("prepare", self.logic.sceneLogic.run_spec(p.baseline, p.followup, self.options())))

    def onRetrain(self):
        self._guard(lambda: self.startJob("train", self.logic.sceneLogic.train_spec()))

    def startJob(self, job, spec):
        from LongitudinalALLib.scene.worker import WorkerProcess

        self.job = (WorkerProcess(job, spec).start(), spec)
        self.timer.start()
        self.refresh()

    def onPoll(self):
        proc, spec = self.job
        if not proc.poll(self.onProgress):
            return
        self.timer.stop()
        self.job = None
        if proc.error is not None:
            slicer.util.errorDisplay(str(proc.error))
        elif proc.job == "prepare":
            self._guard(lambda: self.logic.sceneLogic.apply_prepare_result(spec, proc.result))
        else:
            self._guard(lambda: self.logic.sceneLogic.apply_train_result(proc.result))
        self.refresh()

    def onProgress(self, stage, fraction, message=""):
        self.ui.progressBar.setValue(int(round(100 * fraction)))
        self.ui.statusLabel.setText(f"{stage}: {message}" if message else stage)

    def onCancel(self):
        if self.job is not None:
            self.job[0].cancel()

    def onAccept(self):
        self._guard(self.logic.sceneLogic.accept_current)

    def onStep(self, delta):
        self._guard(lambda: self.logic.sceneLogic.step(delta))

    def onShow(self, row):
        self._guard(lambda: self.logic.sceneLogic.show_suggestion(row))

    def onSceneImported(self, caller=None, event=None):
        self._guard(self.logic.sceneLogic.ensure_session)

    def refresh(self):
        scene = self.logic.sceneLogic
        busy = self.job is not None
        has = bool(scene.suggestions)
        self.ui.runButton.enabled = not busy
        self.ui.cancelButton.enabled = busy
        for button in (self.ui.acceptButton, self.ui.previousButton, self.ui.nextButton, self.ui.retrainButton):
            button.enabled = has and not busy
        self.ui.suggestionTable.setMRMLTableNode(scene.node("table"))
        segmentation = scene.node("segmentation")
        self.ui.segmentEditorWidget.setSegmentationNode(segmentation)
        self.ui.segmentEditorWidget.setSourceVolumeNode(scene.node("registered"))
        if segmentation is not None:  # the user draws into "new lesion", never into the prediction
            self.ui.segmentEditorWidget.setCurrentSegmentID(segment_id(segmentation, LESION_SEGMENT))
        self.ui.suggestionLabel.text = f"{scene.current_index + 1} / {len(scene.suggestions)}" if has else "-"
        self.ui.deviceLabel.text = scene.status().get("device") or self.ui.deviceLabel.text


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
    """Full loop on the sample pair inside Slicer: run, label, accept, retrain, save, reopen, continue."""

    def runTest(self):
        slicer.mrmlScene.Clear()
        self.test_full_loop()

    def test_full_loop(self):
        import tempfile

        import numpy as np

        from LongitudinalALLib.scene import labels, outputs
        from LongitudinalALLib.scene.worker import run_in_process

        files = sampleFiles()
        self.assertIsNotNone(files, "the bundled sample pair is missing from Resources/SampleData")
        baseline, followup = (slicer.util.loadVolume(f) for f in files)
        logic = LongitudinalALLogic(runner=run_in_process).sceneLogic
        options = RunOptions(prepare={"spacing_mm": 3.0, "size": 64, "n4": False}, k=3, strategy="entropy_mean",
                             model_config={"channels": [8, 16, 32], "strides": [2, 2], "num_res_units": 1},
                             init_weights="scratch", prefer_cpu=True,  # an exact 2-step budget: no floor
                             train={"epochs": 1, "steps_per_epoch": 2, "batch_size": 2, "crop_size": None})
        suggestions = logic.run(baseline, followup, options)
        self.assertEqual(len(suggestions), 3)
        first = suggestions[0]
        case = logic._session().case(first.case_id)
        label = np.zeros(case.images.shape[2:], np.uint8)
        label[20:26, 20:26] = 1
        row = logic._session().position(first.case_id, first.slice_index)
        labels.write_label_slice(logic.node("segmentation"), logic.reference_volume(), case.geometry, row, label)
        logic.accept_current()
        logic.retrain()
        path = os.path.join(tempfile.mkdtemp(), "session.mrb")
        logic.save_bundle(path)
        logic.load_bundle(path)
        session = logic._session()
        np.testing.assert_array_equal(session.label(first.case_id, first.slice_index), label)
        self.assertIsNotNone(logic.node("segmentation"))
        self.assertTrue(outputs.segment_id(logic.node("segmentation"), outputs.LESION_SEGMENT))
        logic.step(1)
        self.delayDisplay("LongitudinalAL full loop passed")
