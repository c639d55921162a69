"""LongitudinalAL: active learning for new-lesion segmentation on longitudinal scans.

A shell, as in SlicerNNUnet: the Module, a Widget that builds the panel from the
library (``LongitudinalALLib.scene.panel``), a thin Logic and the self-test. The
scene logic (``LongitudinalALLib.scene.logic``, tested headless on real MRML)
owns the background job run in a worker process. Qt is imported only in the
Widget and the startup hooks; torch never in this process.
"""

import os

import slicer
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)

from LongitudinalALLib.scene import panel_options
from LongitudinalALLib.scene.logic import LongitudinalALSceneLogic


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


def showLater(message):
    """An error found while a scene loads, shown once loading is over (no modal dialog inside EndImportEvent)."""
    import qt

    qt.QTimer.singleShot(0, lambda: slicer.util.errorDisplay(message))


def installSceneRestorer():
    """Restore the session from every imported .mrb, whether or not the panel was opened (scene/restore.py)."""
    from LongitudinalALLib.scene.restore import ImportRestorer

    global sceneRestorer
    sceneRestorer = ImportRestorer(LongitudinalALSceneLogic(slicer.mrmlScene, slicer.app.applicationLogic()),
                                   showLater)


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


class LongitudinalALWidget(ScriptedLoadableModuleWidget):
    """Builds the panel from the library; the panel wires the .ui to the Logic."""

    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        self.logic = self.panel = None

    def setup(self):
        import qt

        from LongitudinalALLib.scene.panel import Panel

        ScriptedLoadableModuleWidget.setup(self)
        self.logic = LongitudinalALLogic()
        widget, self.panel = Panel.build(self.resourcePath("UI/LongitudinalAL.ui"), self.logic.sceneLogic,
                                         qt.QTimer(), lambda: self.parent.isEntered, self.logic.getParameterNode())
        self.layout.addWidget(widget)

    def enter(self):
        self.panel.enter()

    def exit(self):
        self.panel.exit()

    def cleanup(self):
        self.panel.cleanup()


class LongitudinalALLogic(ScriptedLoadableModuleLogic):
    """Thin: the scene logic does the work."""

    def __init__(self, runner=None, work_root=None):
        ScriptedLoadableModuleLogic.__init__(self)
        self.sceneLogic = LongitudinalALSceneLogic(slicer.mrmlScene, slicer.app.applicationLogic(),
                                                   work_root=work_root, runner=runner)

    def getParameterNode(self):
        """The panel's wrapper, after values this machine does not offer were reset (the wrapper raises on them)."""
        from LongitudinalALLib.scene import panel_params

        return panel_params.wrap(super().getParameterNode())


class LongitudinalALTest(ScriptedLoadableModuleTest):
    """Full loop on the sample pair through the panel's own path (background jobs in worker processes):
    run, label, accept, retrain, save, reopen, continue; in a temporary work folder, removed afterwards.
    Skipped where torch is not installed (the extension factory's build machines)."""

    def runTest(self):
        slicer.mrmlScene.Clear()
        self.test_full_loop()

    def test_full_loop(self):
        import shutil
        import tempfile

        if not panel_options.torch_installed():
            self.skipTest("LongitudinalAL: torch is not installed here; the full loop is skipped")
        work = tempfile.mkdtemp(prefix="lal-selftest-")
        try:
            self._full_loop(work)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def _full_loop(self, work):
        import numpy as np

        from LongitudinalALLib.scene import labels, outputs
        from LongitudinalALLib.scene.logic import RunOptions

        files = sampleFiles()
        self.assertIsNotNone(files, "the bundled sample pair is missing from Resources/SampleData")
        baseline, followup = (slicer.util.loadVolume(f) for f in files)
        logic = LongitudinalALLogic(work_root=os.path.join(work, "sessions")).sceneLogic
        process_events = getattr(slicer.app, "processEvents", None)  # the GUI stays responsive while jobs run
        keep_ui = (lambda *progress: process_events()) if process_events else None
        options = RunOptions(spacing_mm=3.0, size=64, prepare={"n4": False}, k=3, strategy="entropy_mean",
                             model_config={"channels": [8, 16, 32], "strides": [2, 2], "num_res_units": 1},
                             init_weights="scratch", device="cpu",  # an exact 2-step budget: no floor
                             train={"epochs": 1, "steps_per_epoch": 2, "batch_size": 2, "crop_size": None})
        logic.jobs.start_run(baseline, followup, options)
        outcome = logic.jobs.wait(keep_ui)
        self.assertEqual(outcome.status, "done", outcome.message)
        suggestions = logic.suggestions
        self.assertEqual(len(suggestions), 3)
        first = suggestions[0]
        case = logic.read_session().case(first.case_id)
        label = np.zeros(case.images.shape[2:], np.uint8)
        label[20:26, 20:26] = 1
        labels.write_label_slice(logic.node("segmentation"), logic.reference_volume(), case.geometry, first.row,
                                 label)
        logic.accept_current()
        logic.jobs.start_train()
        outcome = logic.jobs.wait(keep_ui)
        self.assertEqual(outcome.status, "done", outcome.message)
        self.assertEqual(logic.read_session().round_number, 1)
        path = os.path.join(work, "session.mrb")
        logic.save_bundle(path)
        logic.load_bundle(path)
        np.testing.assert_array_equal(logic.read_session().label(first.case_id, first.slice_index), label)
        self.assertIsNotNone(logic.node("segmentation"))
        self.assertTrue(outputs.segment_id(logic.node("segmentation"), outputs.LESION_SEGMENT))
        logic.step(1)
        self.delayDisplay("LongitudinalAL full loop passed")
