"""Run the Slicer module file's own self-test (full loop on the sample pair) on headless MRML.

Only what exists solely in the Qt application is supplied here: ``slicer.app``
(its application logic), ``slicer.mrmlScene``, ``slicer.util.loadVolume`` and the
ScriptedLoadableModule base classes / parameter-node wrapper (plain stand-ins:
the Widget is not exercised). Everything the Logic and the self-test call is
the real scene layer and the real engine.
"""

from __future__ import annotations

import importlib.util
import sys
import types
import unittest
from pathlib import Path

import pytest

slicer = pytest.importorskip("slicer")

from LongitudinalALLib.scene import headless, session_scene, volumes  # noqa: E402

MODULE_FILE = Path(__file__).resolve().parents[2] / "LongitudinalAL" / "LongitudinalAL.py"


def _base_classes(scene) -> types.ModuleType:
    mod = types.ModuleType("slicer.ScriptedLoadableModule")

    class ScriptedLoadableModule:
        def __init__(self, parent):
            self.parent = parent

    class ScriptedLoadableModuleLogic:
        def __init__(self):
            pass

        def getParameterNode(self):
            return session_scene.parameter_node(scene)

    class ScriptedLoadableModuleTest(unittest.TestCase):
        def delayDisplay(self, message, msec=None):
            print(message)

    mod.ScriptedLoadableModule = ScriptedLoadableModule
    mod.ScriptedLoadableModuleLogic = ScriptedLoadableModuleLogic
    mod.ScriptedLoadableModuleTest = ScriptedLoadableModuleTest
    mod.ScriptedLoadableModuleWidget = type("ScriptedLoadableModuleWidget", (), {})
    return mod


def test_module_self_test_runs_the_full_loop(tmp_path, monkeypatch):
    hs = headless.create_headless_slicer(str(tmp_path / "cache"))
    wrapper = types.ModuleType("slicer.parameterNodeWrapper")
    wrapper.parameterNodeWrapper = lambda cls: cls
    monkeypatch.setitem(sys.modules, "slicer.parameterNodeWrapper", wrapper)
    monkeypatch.setitem(sys.modules, "slicer.ScriptedLoadableModule", _base_classes(hs.scene))
    monkeypatch.setattr(slicer, "mrmlScene", hs.scene, raising=False)
    monkeypatch.setattr(slicer, "app", types.SimpleNamespace(applicationLogic=lambda: hs.app), raising=False)
    monkeypatch.setattr(slicer.util, "loadVolume", lambda path: volumes.load_volume(path, hs.scene))
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    spec = importlib.util.spec_from_file_location("LongitudinalAL", MODULE_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    case = module.LongitudinalALTest("test_full_loop")
    result = unittest.TestResult()
    case.run(result)
    assert result.errors == [] and result.failures == [], result.errors + result.failures
    assert result.testsRun == 1
    assert module.sampleFiles() is not None
