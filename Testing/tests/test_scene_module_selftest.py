"""Run the Slicer module file's own self-test (full loop on the sample pair) on headless MRML.

Only what exists solely in the Qt application is supplied here: ``slicer.app``
(its application logic), ``slicer.mrmlScene``, ``slicer.util.loadVolume`` and the
ScriptedLoadableModule base classes (plain stand-ins: the Widget is not
exercised); the parameter node wrapper is Slicer's own (reference sources). Everything the Logic and the self-test call is
the real scene layer and the real engine.
"""

from __future__ import annotations

import unittest

import pytest

slicer = pytest.importorskip("slicer")

from slicer_app_standins import install_real_parameter_node_wrapper, load_module_file  # noqa: E402

from LongitudinalALLib.scene import headless, volumes  # noqa: E402


@pytest.mark.slow  # the module's own full loop: registration, scoring, a training round
def test_module_self_test_runs_the_full_loop(tmp_path, monkeypatch):
    hs = headless.create_headless_slicer(str(tmp_path / "cache"))
    install_real_parameter_node_wrapper(monkeypatch, slicer)  # Slicer 5.10's own wrapper
    monkeypatch.setattr(slicer.util, "loadVolume", lambda path: volumes.load_volume(path, hs.scene))
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    module = load_module_file(monkeypatch, hs.scene, hs.app)

    case = module.LongitudinalALTest("test_full_loop")
    result = unittest.TestResult()
    case.run(result)
    assert result.errors == [] and result.failures == [], result.errors + result.failures
    assert result.testsRun == 1
    assert module.sampleFiles() is not None
