"""Run the Slicer module file's own self-test (full loop on the sample pair) on headless MRML.

Only what exists solely in the Qt application is supplied here: ``slicer.app``
(its application logic), ``slicer.mrmlScene``, ``slicer.util.loadVolume`` and the
ScriptedLoadableModule base classes (plain stand-ins: the Widget is not
exercised); the parameter node wrapper is Slicer's own (reference sources). Everything the Logic and the self-test call is
the real scene layer and the real engine.
"""

from __future__ import annotations

import tempfile
import unittest

import pytest

slicer = pytest.importorskip("slicer")

from slicer_app_standins import install_real_parameter_node_wrapper, load_module_file  # noqa: E402

from LongitudinalALLib.scene import headless, panel_options, persistence, volumes  # noqa: E402


@pytest.mark.slow  # the module's own full loop: registration, scoring, a training round
def test_module_self_test_runs_the_full_loop_and_leaves_nothing_behind(tmp_path, monkeypatch):
    hs = headless.create_headless_slicer(str(tmp_path / "cache"))
    install_real_parameter_node_wrapper(monkeypatch, slicer)  # Slicer 5.10's own wrapper
    monkeypatch.setattr(slicer.util, "loadVolume", lambda path: volumes.load_volume(path, hs.scene))
    temp, user_root = tmp_path / "temp", tmp_path / "user-sessions"
    temp.mkdir()
    monkeypatch.setenv("TMPDIR", str(temp))
    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    monkeypatch.setenv(persistence.WORK_ROOT_ENV, str(user_root))  # the user's real work root
    module = load_module_file(monkeypatch, hs.scene, hs.app)

    case = module.LongitudinalALTest("test_full_loop")
    result = unittest.TestResult()
    case.run(result)
    assert result.errors == [] and result.failures == [], result.errors + result.failures
    assert result.testsRun == 1 and result.skipped == []
    assert module.sampleFiles() is not None
    # review L7: no session in the user's work root, no .mrb or work folder left in the temp folder
    assert not user_root.exists() or list(user_root.iterdir()) == []
    assert [p.name for p in temp.iterdir() if not p.name.startswith(("lal-work-", "torchinductor"))] == []


def test_ctest_collects_the_full_loop_and_it_is_skipped_without_torch(tmp_path, monkeypatch):
    """Review M2: slicer.testing.runUnitTest loads test_* methods with unittest's loader (runTest is never
    called), so the torch guard must sit in test_full_loop; the extension factory has no torch."""
    hs = headless.create_headless_slicer(str(tmp_path / "cache"))
    install_real_parameter_node_wrapper(monkeypatch, slicer)
    module = load_module_file(monkeypatch, hs.scene, hs.app)
    monkeypatch.setattr(panel_options, "torch_installed", lambda: False)
    monkeypatch.setattr(module, "sampleFiles", lambda: pytest.fail("the loop ran on a machine without torch"))
    suite = unittest.TestLoader().loadTestsFromTestCase(module.LongitudinalALTest)  # what runUnitTest does
    assert [t.id().rsplit(".", 1)[-1] for t in suite] == ["test_full_loop"]
    result = unittest.TestResult()
    suite.run(result)
    assert result.errors == [] and result.failures == [] and len(result.skipped) == 1
